/*
 * deploy/watch.c - `upaas watch`: poll apps/<app>/current on a cron
 * schedule (or every deploy.interval seconds), deploy what changed, and
 * keep this host's reports in storage up to date.
 *
 * Cheap polling: apps/_index (package.h), which changes whenever a
 * current does, is read with a conditional GET (the ETag of the last
 * read), so an idle round costs one request whatever the number of apps;
 * only an app whose entry names another package than this host runs has
 * its current read (conditionally too). Without a usable index, in the
 * first round and every WATCH_FULL_EVERY rounds, each current is read;
 * each round starts up to deploy.jitter seconds late (random), so that a
 * fleet of watchers does not hit storage in the same second. The host's
 * heartbeat (hosts/<host>/_host.json) is written at most once a minute;
 * the report of an app is written after each of its deploys, once when
 * the watcher starts, and again after a write that failed.
 */
#include <errno.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>

#include "deploy/deploy-int.h"

/* Seconds between two heartbeats of an idle watcher. */
#define WATCH_BEAT_EVERY 60
/* Every this many rounds each app's current is read by itself (once an
 * hour at one round a minute), whatever the index says. */
#define WATCH_FULL_EVERY 60
/* Rounds between two looks for an index that storage did not have. */
#define WATCH_INDEX_RETRY 10

/* What the watcher remembers of one app between rounds. */
struct wapp {
	char *app;
	char *etag;                /* of apps/<app>/current at the last read */
	char *id;                  /* what it named then */
	bool reported;             /* the report of the last change is in storage */
};

struct wstate {
	struct wapp *v;
	size_t n;
	struct package_index index;  /* apps/_index as last read, when have_index */
	bool have_index;
	char *index_etag;
	char *bad_etag;              /* of an index refused before: said once */
	uint64_t index_missing;      /* the round it was last found missing; 0: not */
	char *host;                /* NULL: reports are off (or no valid name) */
	int64_t beat_at;           /* unix s of the last heartbeat written; 0: none */
	int64_t interval;          /* seconds between rounds, for the heartbeat */
};

static void wstate_free(struct wstate *w)
{
	for (size_t i = 0; i < w->n; i++) {
		free(w->v[i].app);
		free(w->v[i].etag);
		free(w->v[i].id);
	}
	free(w->v);
	free(w->host);
	if (w->have_index)
		package_index_free(&w->index);
	free(w->index_etag);
	free(w->bad_etag);
	memset(w, 0, sizeof(*w));
}

static struct wapp *wapp_get(struct wstate *w, const char *app)
{
	for (size_t i = 0; i < w->n; i++)
		if (!strcmp(w->v[i].app, app))
			return &w->v[i];
	w->v = xrealloc(w->v, (w->n + 1) * sizeof(*w->v));
	struct wapp *a = &w->v[w->n++];
	*a = (struct wapp){ .app = xstrdup(app) };
	return a;
}

/* The id a failed deploy left in <root>/<app>/.failed, NULL when none. */
static char *failed_id(const struct app_paths *p)
{
	_cleanup_buf_ struct buf b = BUF_INIT;
	if (buf_read_file(&b, p->failed_marker, 4096) < 0)
		return NULL;
	buf_rtrim(&b);
	return package_id_ok(b.p) ? buf_detach(&b) : NULL;
}

/* The id apps/<app>/current names, verified against t, read only when it
 * changed since the last round (a look without the lock: deploy_run()
 * reads it again, verified and against the sequence this host has seen,
 * before it deploys). -errno (e set) on failure; -ENOENT when there is
 * none. */
static int current_id(struct storage *s, const struct sign_trust *t, struct wapp *wa,
		      struct buf *id, struct err *e)
{
	_cleanup_free_ char *key = storage_key_current(wa->app);
	_cleanup_buf_ struct buf etag = BUF_INIT, text = BUF_INIT;
	struct package_current pc = { 0 };
	int r = storage_get_buf_if(s, key, wa->id ? wa->etag : NULL, &etag, &text,
				   PACKAGE_CURRENT_MAX, e);
	if (r == STORAGE_NOT_MODIFIED) {
		log_debug("app '%s': '%s' is not modified", wa->app, key);
		buf_reset(id);
		buf_adds(id, wa->id);
		return 0;
	}
	free(wa->etag);
	free(wa->id);
	wa->etag = wa->id = NULL;
	if (r < 0)
		return r;
	if ((r = package_current_parse(t, wa->app, text.p, text.len, &pc, e)) < 0)
		return r;
	buf_reset(id);
	buf_adds(id, pc.id);
	package_current_free(&pc);
	if (!package_id_ok(id->p))
		return err_set(e, -EINVAL, "invalid package id '%s' in '%s'", id->p, key);
	if (etag.len) {
		wa->etag = xstrdup(etag.p);
		wa->id = xstrdup(id->p);
	}
	return 0;
}

/* What to do about app now that its current names id: 1 when a deploy ran and failed, 0
 * otherwise. */
static int watch_act(const struct config *c, struct storage *s, const struct watch_opts *o,
		     struct wstate *w, struct wapp *wa, const char *root, const char *app,
		     const struct buf *idb)
{
	_cleanup_err_ struct err e = ERR_INIT;
	struct buf id = *idb;   /* read only */
	struct app_paths p;
	int r;

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

	/* deploy_run() reads the current again, verified and against the
	 * sequence this host has seen; the report is written below, where a
	 * failed write is seen */
	struct deploy_opts dopts = { .root = root, .no_wait = true, .tee = o->tee,
				     .no_report = true };
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
	if (r != -EWOULDBLOCK && w->host)
		wa->reported = deploy_report_after(c, s, root, app,
						   res.id ? deploy_op_name(res.op) : NULL,
						   res.id ? res.id : id.p, r, &e) == 0;
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

/* One look at app by its own current (read conditionally): 1 when a
 * deploy ran and failed, 0 otherwise. */
static int watch_app(const struct config *c, struct storage *s, const struct sign_trust *t,
		     const struct watch_opts *o, struct wstate *w, const char *root,
		     const char *app)
{
	_cleanup_err_ struct err e = ERR_INIT;
	_cleanup_buf_ struct buf id = BUF_INIT;

	if (!app_name_ok(app)) {
		log_error("invalid app name '%s'", app);
		return 1;
	}
	struct wapp *wa = wapp_get(w, app);
	int r = current_id(s, t, wa, &id, &e);
	if (r == -ENOENT) {
		log_warn("app '%s' has no current package in %s", app, storage_where(s));
		return 0;
	}
	if (r < 0) {
		log_error("app '%s': %s", app, err_msg(&e));
		return 1;
	}
	return watch_act(c, s, o, w, wa, root, app, &id);
}

/*
 * The index of this round (apps/_index, read conditionally): true when
 * w->index holds one to go by. Without one (none in storage, or it cannot
 * be verified), every app is read by itself.
 */
static bool watch_index(struct storage *s, const struct sign_trust *t, struct wstate *w,
			uint64_t round)
{
	_cleanup_err_ struct err e = ERR_INIT;
	_cleanup_buf_ struct buf etag = BUF_INIT;
	struct package_index x;
	/* none in storage (builders that write none): a look now and then */
	if (w->index_missing && round - w->index_missing < WATCH_INDEX_RETRY)
		return false;
	w->index_missing = 0;
	int r = package_index_read(s, t, w->have_index ? w->index_etag : w->bad_etag, &etag, &x,
				   &e);
	if (r == STORAGE_NOT_MODIFIED && w->have_index) {
		log_debug("'%s' is not modified", PACKAGE_INDEX_KEY);
		return true;
	}
	if (r == STORAGE_NOT_MODIFIED) {
		log_debug("'%s' is not modified (refused before): every app is read by itself",
			  PACKAGE_INDEX_KEY);
		return false;
	}
	if (w->have_index)
		package_index_free(&w->index);
	free(w->index_etag);
	free(w->bad_etag);
	w->index_etag = w->bad_etag = NULL;
	w->have_index = false;
	if (r == -ENOENT) {
		log_debug("no '%s' in %s: every app is read by itself", PACKAGE_INDEX_KEY,
			  storage_where(s));
		w->index_missing = round;
		return false;
	}
	if (r < 0) {
		/* said once, until it changes */
		log_warn("%s: every app is read by itself", err_msg(&e));
		w->bad_etag = etag.len ? xstrdup(etag.p) : NULL;
		return false;
	}
	w->index = x;
	w->have_index = true;
	w->index_etag = etag.len ? xstrdup(etag.p) : NULL;
	return true;
}

/*
 * One look at app by the index: 0 when the index names what this host
 * runs of it (or the package that failed here before): nothing to read;
 * -1 when it names another package, or does not list the app: its current
 * is read by itself, verified (the index only says where to look, so that
 * an entry that is late or lost never moves a host back).
 */
static int watch_app_indexed(const struct watch_opts *o, struct wstate *w, const char *root,
			     const char *app)
{
	const struct package_index_entry *en = package_index_find(&w->index, app);
	if (!en || !app_name_ok(app))
		return -1;
	struct app_paths p;
	app_paths_init(&p, root, app);
	_cleanup_free_ char *cur = deploy_current_id(p.current);
	_cleanup_free_ char *failed = failed_id(&p);
	app_paths_free(&p);
	if (cur && !strcmp(cur, en->id)) {
		log_debug("app '%s' is at %s (index)", app, cur);
		return 0;
	}
	if (failed && !strcmp(failed, en->id) && !o->force) {
		log_debug("app '%s': package %s failed before, waiting for a newer one (index)",
			  app, en->id);
		return 0;
	}
	return -1;
}

/* The report of an app at the first round (what this host runs of it,
 * perhaps nothing yet), or one that could not be written before. */
static void watch_report(const struct config *c, struct storage *s, struct wstate *w,
			 const char *root, const char *app)
{
	if (!w->host || !app_name_ok(app))
		return;
	struct wapp *wa = wapp_get(w, app);
	if (!wa->reported)
		wa->reported = deploy_report_after(c, s, root, app, NULL, NULL, 0, NULL) == 0;
}

/* The heartbeat, when the last one is a minute old (or failed). */
static void watch_beat(struct storage *s, struct wstate *w, const char *root,
		       const struct strv *apps)
{
	int64_t now = now_unix();
	if (!w->host || (w->beat_at && now - w->beat_at < WATCH_BEAT_EVERY && now >= w->beat_at))
		return;
	struct host_beat b = { .host = xstrdup(w->host), .time = now,
			       .version = xstrdup(PACKAGE_VERSION), .interval = w->interval,
			       .apps = KVLIST_INIT };
	for (size_t i = 0; i < apps->n; i++) {
		if (!app_name_ok(apps->v[i]))
			continue;
		struct app_paths p;
		app_paths_init(&p, root, apps->v[i]);
		_cleanup_free_ char *cur = deploy_current_id(p.current);
		kvlist_set(&b.apps, apps->v[i], cur ? cur : "");
		app_paths_free(&p);
	}
	_cleanup_err_ struct err e = ERR_INIT;
	if (host_beat_put(s, &b, &e) < 0)
		log_warn("%s", err_msg(&e));
	else
		w->beat_at = now;
	host_beat_free(&b);
}

/* A random delay in [0, max] seconds, in milliseconds. */
static uint64_t jitter_ms(int max)
{
	uint32_t x = 0;
	if (max <= 0)
		return 0;
	if (getrandom(&x, sizeof(x), GRND_NONBLOCK) != sizeof(x))
		x = (uint32_t)(now_ms() * 2654435761u) ^ (uint32_t)getpid();
	return (uint64_t)x % ((uint64_t)max * 1000 + 1);
}

/* The wall clock in ms (one clock for every deadline: time() is a coarser
 * one that lags clock_gettime() by a tick). */
static int64_t wall_ms(void)
{
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/* Sleeps until the wall clock reaches until (ms), in short steps so that a
 * stop request is seen within a second. false when asked to stop. */
static bool sleep_until(const struct watch_opts *o, int64_t until_ms)
{
	for (;;) {
		if (o->stop && *o->stop)
			return false;
		int64_t ms = wall_ms();
		if (ms >= until_ms)
			return true;
		int64_t step = until_ms - ms < 500 ? until_ms - ms : 500;
		struct timespec ts = { 0, (long)step * 1000000L };
		nanosleep(&ts, NULL);
	}
}

int deploy_watch(const struct config *c, struct storage *s, const struct watch_opts *o,
		 struct err *e)
{
	const char *root = o->root ? o->root : c->deploy.root;
	const char *sched = o->schedule ? o->schedule :
			    c->deploy.schedule ? c->deploy.schedule : "* * * * *";
	int interval = o->interval > 0 ? o->interval : o->schedule ? 0 : c->deploy.interval;
	int jitter = o->jitter >= 0 ? o->jitter : c->deploy.jitter;
	struct cron cr;
	struct wstate w = { .interval = interval > 0 ? interval : 60 };
	int r;

	if (!interval && (r = cron_parse(&cr, sched, e)) < 0)
		return r;
	if (c->deploy.report && (storage_caps(s) & STORAGE_CAP_WRITE)) {
		_cleanup_err_ struct err he = ERR_INIT;
		if (deploy_host_name(c, &w.host, &he) < 0)
			log_warn("no host reports: %s", err_msg(&he));
	}

	/* the overlay revisions a reboot unmounted, before any round */
	{
		_cleanup_err_ struct err me = ERR_INIT;
		_cleanup_strv_ struct strv failed = STRV_INIT;
		int n = deploy_remount(c, root, NULL, &failed, &me);
		if (n < 0)
			log_warn("%s", err_msg(&me));
		else if (n > 0)
			log_info("mounted %d revision%s again", n, n == 1 ? "" : "s");
	}

	struct storage_counters before;
	storage_get_counters(s, &before);
	uint64_t start = now_ms();
	for (uint64_t round = 1;; round++) {
		_cleanup_strv_ struct strv apps = STRV_INIT;
		int64_t round_start = wall_ms();
		if (o->apps && o->apps->n)
			strv_copy(&apps, o->apps);
		else if ((r = deploy_list_apps(root, &apps, e)) < 0)
			break;
		if (apps.n == 0)
			log_info("no apps to watch under '%s'", root);

		/* the trusted keys, read each round: a rotation needs no restart */
		_cleanup_trust_ struct sign_trust t = SIGN_TRUST_INIT;
		_cleanup_err_ struct err te = ERR_INIT;
		if (sign_trust_config(&t, c, &te) < 0)
			log_error("%s", err_msg(&te));
		/* by the index, but every app by itself in the first round and
		 * every WATCH_FULL_EVERY rounds (a safety net: an index entry
		 * that was lost costs a delay, never a missed current) */
		bool indexed = watch_index(s, &t, &w, round) && round > 1 &&
			       round % WATCH_FULL_EVERY != 0;
		int failures = 0;
		for (size_t i = 0; i < apps.n; i++) {
			if (o->stop && *o->stop)
				break;
			int f = indexed ? watch_app_indexed(o, &w, root, apps.v[i]) : -1;
			if (f < 0)
				f = watch_app(c, s, &t, o, &w, root, apps.v[i]);
			failures += f;
			watch_report(c, s, &w, root, apps.v[i]);
		}
		watch_beat(s, &w, root, &apps);

		struct storage_counters now;
		_cleanup_buf_ struct buf line = BUF_INIT;
		storage_get_counters(s, &now);
		now.requests -= before.requests;
		now.gets -= before.gets;
		now.not_modified -= before.not_modified;
		now.puts -= before.puts;
		now.stats -= before.stats;
		now.lists -= before.lists;
		now.deletes -= before.deletes;
		now.bytes_in -= before.bytes_in;
		now.bytes_out -= before.bytes_out;
		storage_counters_format(&now, &line);
		log_debug("watch: round %llu, %zu app%s, %.1f min: storage: %s",
			  (unsigned long long)round, apps.n, apps.n == 1 ? "" : "s",
			  (double)(now_ms() - start) / 60000.0, line.p);

		if (o->stop && *o->stop) {
			r = 0;
			break;
		}
		if (o->once) {
			r = failures ? err_set(e, -EIO, "%d deploy%s failed", failures,
					       failures == 1 ? "" : "s") : 0;
			break;
		}

		int64_t next_ms;
		if (interval > 0) {
			next_ms = round_start + (int64_t)interval * 1000;
		} else {
			time_t next;
			if (cron_next(&cr, (time_t)(wall_ms() / 1000), &next) < 0) {
				r = err_set(e, -ERANGE, "schedule '%s' never matches", sched);
				break;
			}
			next_ms = (int64_t)next * 1000;
		}
		next_ms += (int64_t)jitter_ms(jitter);
		log_debug("next check in %.1f s", (double)(next_ms - wall_ms()) / 1000.0);
		if (!sleep_until(o, next_ms)) {
			r = 0;
			break;
		}
	}
	struct storage_counters end;
	_cleanup_buf_ struct buf line = BUF_INIT;
	storage_get_counters(s, &end);
	end.requests -= before.requests;
	end.bytes_in -= before.bytes_in;
	end.bytes_out -= before.bytes_out;
	buf_addf(&line, "%llu storage requests in %.1f min, %llu bytes in, %llu bytes out",
		 (unsigned long long)end.requests, (double)(now_ms() - start) / 60000.0,
		 (unsigned long long)end.bytes_in, (unsigned long long)end.bytes_out);
	if (!o->once)
		log_info("watch: stopped: %s", line.p);
	wstate_free(&w);
	return r;
}
