/*
 * deploy/watch.c - `upaas watch`: poll apps/<app>/current on a cron
 * schedule and deploy what changed.
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "deploy/deploy-int.h"

/* The id a failed deploy left in <root>/<app>/.failed, NULL when none. */
static char *failed_id(const struct app_paths *p)
{
	_cleanup_buf_ struct buf b = BUF_INIT;
	if (buf_read_file(&b, p->failed_marker, 4096) < 0)
		return NULL;
	buf_rtrim(&b);
	return package_id_ok(b.p) ? buf_detach(&b) : NULL;
}

/* One look at app: 1 when a deploy ran and failed, 0 otherwise. */
static int watch_app(const struct config *c, struct storage *s, const struct watch_opts *o,
		     const char *root, const char *app)
{
	_cleanup_err_ struct err e = ERR_INIT;
	_cleanup_buf_ struct buf id = BUF_INIT;
	_cleanup_free_ char *key = storage_key_current(app);
	struct app_paths p;

	if (!app_name_ok(app)) {
		log_error("invalid app name '%s'", app);
		return 1;
	}
	/* a look without the lock: deploy_run() reads it again, verified and
	 * against the sequence this host has seen, before it deploys */
	_cleanup_trust_ struct sign_trust t = SIGN_TRUST_INIT;
	struct package_current pc = { 0 };
	int r = sign_trust_config(&t, c, &e);
	if (r >= 0)
		r = package_current_read(s, &t, app, &pc, &e);
	if (r == -ENOENT) {
		log_warn("app '%s' has no current package in %s", app, storage_where(s));
		return 0;
	}
	if (r < 0) {
		log_error("app '%s': %s", app, err_msg(&e));
		return 1;
	}
	buf_adds(&id, pc.id);
	package_current_free(&pc);
	if (!package_id_ok(id.p)) {
		log_error("app '%s': invalid package id '%s' in '%s'", app, id.p, key);
		return 1;
	}

	app_paths_init(&p, root, app);
	_cleanup_free_ char *cur = deploy_current_id(p.current);
	_cleanup_free_ char *failed = failed_id(&p);
	int ret = 0;
	if (cur && !strcmp(cur, id.p)) {
		log_debug("app '%s' is at %s", app, cur);
		goto out;
	}
	if (failed && !strcmp(failed, id.p) && !o->force) {
		log_debug("app '%s': package %s failed before, waiting for a newer one", app,
			  id.p);
		goto out;
	}

	struct deploy_opts dopts = { .root = root, .no_wait = true, .tee = o->tee };
	struct deploy_result res = { 0 };
	log_info("app '%s': deploying %s (current: %s)", app, id.p, cur ? cur : "none");
	r = deploy_run(c, s, app, &dopts, &res, &e);
	if (r != -EWOULDBLOCK && o->on_deploy)
		o->on_deploy(o->on_deploy_data, app, &res, r, &e);
	if (r == -EWOULDBLOCK) {
		log_info("app '%s' is being deployed by someone else: next round", app);
	} else if (r < 0) {
		log_error("app '%s': deploy of %s failed%s: %s", app, id.p,
			  res.reverted ? " and was switched back" : "", err_msg(&e));
		struct stat st;
		if (lstat(p.dir, &st) == 0 &&
		    fs_write_atomic(p.failed_marker, id.p, id.len, 0644) < 0)
			log_warn("cannot write '%s'", p.failed_marker);
		ret = 1;
	} else {
		log_info("app '%s': %s deployed (%s, switch %.2f ms)", app, id.p,
			 deploy_op_name(res.op), res.switch_us / 1000.0);
		unlink(p.failed_marker);
	}
	deploy_result_free(&res);
	/* reported: now the trash of what it pruned can go */
	if (r != -EWOULDBLOCK) {
		_cleanup_err_ struct err se = ERR_INIT;
		if (deploy_sweep(c, root, app, &se) < 0)
			log_warn("app '%s': %s", app, err_msg(&se));
	}
out:
	app_paths_free(&p);
	return ret;
}

int deploy_watch(const struct config *c, struct storage *s, const struct watch_opts *o,
		 struct err *e)
{
	const char *root = o->root ? o->root : c->deploy.root;
	const char *sched = o->schedule ? o->schedule :
			    c->deploy.schedule ? c->deploy.schedule : "* * * * *";
	struct cron cr;
	int r = cron_parse(&cr, sched, e);
	if (r < 0)
		return r;

	for (;;) {
		_cleanup_strv_ struct strv apps = STRV_INIT;
		if (o->apps && o->apps->n)
			strv_copy(&apps, o->apps);
		else if ((r = deploy_list_apps(root, &apps, e)) < 0)
			return r;
		if (apps.n == 0)
			log_info("no apps to watch under '%s'", root);

		int failures = 0;
		for (size_t i = 0; i < apps.n; i++) {
			if (o->stop && *o->stop)
				return 0;
			failures += watch_app(c, s, o, root, apps.v[i]);
		}
		if (o->once)
			return failures ? err_set(e, -EIO, "%d deploy%s failed", failures,
						  failures == 1 ? "" : "s") : 0;

		time_t next;
		if (cron_next(&cr, time(NULL), &next) < 0)
			return err_set(e, -ERANGE, "schedule '%s' never matches", sched);
		log_debug("next check in %lld s", (long long)(next - time(NULL)));
		/* short sleeps so that a stop request is seen within a second */
		while (!(o->stop && *o->stop) && time(NULL) < next)
			sleep(1);
		if (o->stop && *o->stop)
			return 0;
	}
}
