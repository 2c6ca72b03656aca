/*
 * deploy/exec.c - `upaas exec`: run a command in the current revision of
 * an app, in the sandbox, as the app user. This is how a systemd unit
 * starts an app (dist/systemd/upaas-app@.service).
 */
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>

#include "sandbox/sandbox.h"
#include "deploy/deploy-int.h"

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
	struct sandbox sb = SANDBOX_INIT;
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

	gethostname(host, sizeof(host) - 1);
	strv_extend(&sb.argv, &o->argv);
	strv_setenv(&sb.env, "PATH", SANDBOX_DEFAULT_PATH);
	strv_setenv(&sb.env, "HOME", o->as_root ? "/root" : m.app_home);
	strv_setenv(&sb.env, "USER", o->as_root ? "root" : c->apps.user ? c->apps.user : "app");
	strv_setenv(&sb.env, "LOGNAME", o->as_root ? "root" : c->apps.user ? c->apps.user : "app");
	strv_setenv(&sb.env, "LANG", "C.UTF-8");
	const char *term = getenv("TERM");
	if (term)
		strv_setenv(&sb.env, "TERM", term);
	strv_setenv(&sb.env, "UPAAS_APP", app);
	strv_setenv(&sb.env, "UPAAS_PACKAGE_ID", cur);
	strv_setenv(&sb.env, "UPAAS_COMMIT", m.repo.commit ? m.repo.commit : "");
	for (size_t i = 0; i < o->env.n; i++)
		strv_setenv(&sb.env, o->env.v[i].key, o->env.v[i].val);

	/* no build rlimits: a running app gets the limits of its service
	 * (LimitNOFILE= and friends in the unit) */
	sb.root = rev;
	sb.cwd = o->cwd ? o->cwd : m.app_home;
	sb.hostname = host[0] ? host : NULL;
	sb.network = true;
	sb.drop_privs = !o->as_root;
	sb.uid = (uid_t)m.uid;
	sb.gid = (gid_t)m.gid;
	sb.timeout_ms = 0;
	sb.log_fd = -1;
	sb.stdin_fd = STDIN_FILENO;

	struct sandbox_bind bind = { .host = p.shared, .target = "/shared", .writable = true };
	struct stat st;
	if (m.deploy.shared.n && lstat(p.shared, &st) == 0 && S_ISDIR(st.st_mode)) {
		sb.binds = &bind;
		sb.n_binds = 1;
	}
	r = sandbox_run(&sb, e);
out:
	sandbox_free(&sb);
	package_info_free(&m);
	app_paths_free(&p);
	return r;
}
