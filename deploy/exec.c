/*
 * deploy/exec.c - `upaas exec`: run a command in the current revision of
 * an app, in the sandbox, as the app user. This is how a systemd unit
 * starts an app (dist/systemd/upaas-app@.service). Also the sandbox of the
 * app on a deploy host, which app deploy hooks share (deploy/hooks.c).
 */
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>

#include "actions/actions.h"
#include "deploy/deploy-int.h"

int app_sandbox_init(struct app_sandbox *a, const struct config *c, const char *rev,
		     const char *shared, bool as_root, struct err *e)
{
	*a = (struct app_sandbox){ .sb = SANDBOX_INIT };
	struct sandbox *sb = &a->sb;

	/* the admin's filter, pasta, rlimits and cgroup limits; the ids below */
	actions_sandbox_policy(c, &a->pol);
	sandbox_apply_policy(sb, &a->pol);
	struct sandbox_range r;
	sandbox_range_get(&a->pol, &r);
	sb->n_uid_map = sb->n_gid_map = 0;
	uid_t uid = (uid_t)c->apps.uid;
	gid_t gid = (gid_t)c->apps.gid;
	if (sandbox_map_id(sb, 0, r.uid_base, 0, r.gid_base) < 0 ||
	    sandbox_map_id(sb, uid, uid, gid, gid) < 0)
		return err_set(e, -E2BIG, "sandbox: too many ids to map");
	sb->root = rev;
	sb->drop_privs = !as_root;
	sb->uid = uid;
	sb->gid = gid;
	sb->network = true;
	if (c->deploy.loopback_ports.n) {
		_cleanup_buf_ struct buf b = BUF_INIT;
		for (size_t i = 0; i < c->deploy.loopback_ports.n; i++)
			buf_addf(&b, "%s%s", i ? "," : "", c->deploy.loopback_ports.v[i]);
		a->ports = buf_detach(&b);
		sb->loopback_ports = a->ports;
	}
	struct stat st;
	if (shared && lstat(shared, &st) == 0 && S_ISDIR(st.st_mode))
		app_sandbox_bind(a, shared, "/shared", true);
	return 0;
}

void app_sandbox_bind(struct app_sandbox *a, const char *host, const char *target, bool rw)
{
	if (a->sb.n_binds >= ARRAY_SIZE(a->binds))
		return;
	a->binds[a->sb.n_binds++] = (struct sandbox_bind){ .host = host, .target = target,
							    .writable = rw };
	a->sb.binds = a->binds;
}

void app_sandbox_free(struct app_sandbox *a)
{
	sandbox_free(&a->sb);
	free(a->ports);
	a->ports = NULL;
}

int deploy_exec(const struct config *c, const char *app, const struct deploy_exec_opts *o,
		struct err *e)
{
	const char *root = o->root ? o->root : c->deploy.root;
	struct app_paths p;
	int r;

	if (!app || !app_name_ok(app))
		return err_set(e, -EINVAL, "invalid app name '%s'", app ? app : "");
	if (o->argv.n == 0)
		return err_set(e, -EINVAL, "no command to run");
	app_paths_init(&p, root, app);

	/* the link is read once: a deploy switching meanwhile does not
	 * change the revision this command runs in */
	_cleanup_free_ char *cur = deploy_current_id(p.current);
	_cleanup_free_ char *rev = cur ? app_revision_path(&p, cur) : NULL;
	_cleanup_free_ char *mpath = cur ? app_manifest_path(&p, cur) : NULL;
	_cleanup_buf_ struct buf text = BUF_INIT;
	struct package_info m = { 0 };
	struct app_sandbox a = { .sb = SANDBOX_INIT };
	char host[HOST_NAME_MAX + 1] = "";

	if (!cur) {
		r = err_set(e, -ENOENT, "app '%s' has no current revision under '%s'", app, root);
		goto out;
	}
	if ((r = buf_read_file(&text, mpath, PACKAGE_MANIFEST_MAX)) < 0) {
		r = err_set_errno(e, r, "cannot read '%s'", mpath);
		goto out;
	}
	if ((r = deploy_manifest_read(&m, text.p, app, cur, c, e)) < 0)
		goto out;
	/* an overlay revision whose mount a reboot took away */
	if ((r = revision_mount(&p, cur, e)) < 0)
		goto out;
	if ((r = app_sandbox_init(&a, c, rev, m.deploy.shared.n ? p.shared : NULL, o->as_root,
				  e)) < 0)
		goto out;
	struct sandbox *sb = &a.sb;

	gethostname(host, sizeof(host) - 1);
	strv_extend(&sb->argv, &o->argv);
	strv_setenv(&sb->env, "PATH", SANDBOX_DEFAULT_PATH);
	strv_setenv(&sb->env, "HOME", o->as_root ? "/root" : m.app_home);
	strv_setenv(&sb->env, "USER", o->as_root ? "root" : c->apps.user ? c->apps.user : "app");
	strv_setenv(&sb->env, "LOGNAME", o->as_root ? "root" : c->apps.user ? c->apps.user : "app");
	strv_setenv(&sb->env, "LANG", "C.UTF-8");
	const char *term = getenv("TERM");
	if (term)
		strv_setenv(&sb->env, "TERM", term);
	strv_setenv(&sb->env, "UPAAS_APP", app);
	strv_setenv(&sb->env, "UPAAS_PACKAGE_ID", cur);
	strv_setenv(&sb->env, "UPAAS_COMMIT", m.repo.commit ? m.repo.commit : "");
	for (size_t i = 0; i < o->env.n; i++)
		strv_setenv(&sb->env, o->env.v[i].key, o->env.v[i].val);

	/* a service: no build limits (a running app gets those of its unit:
	 * LimitNOFILE=, MemoryMax=), and it stays in its unit's cgroup; the
	 * ports it listens on are published on the host's addresses */
	sb->rlimit_nofile = sb->rlimit_nproc = sb->rlimit_as = sb->rlimit_fsize = 0;
	sb->pids_max = sb->memory_max = 0;
	sb->cpu_weight = 0;
	sb->no_cgroup = true;
	sb->publish_ports = true;
	/* a service stops gracefully: what systemd (KillMode=mixed) or a
	 * terminal sends upaas reaches the app through a minimal init, which
	 * also reaps the app's orphans */
	sb->init = true;
	sb->cwd = o->cwd ? o->cwd : m.app_home;
	sb->hostname = host[0] ? host : NULL;
	sb->timeout_ms = 0;
	sb->log_fd = -1;
	sb->stdin_fd = STDIN_FILENO;
	r = sandbox_run(sb, e);
out:
	app_sandbox_free(&a);
	package_info_free(&m);
	app_paths_free(&p);
	return r;
}
