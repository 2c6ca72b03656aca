/*
 * deploy/hooks.c - the hook contract: argv[1] operation, argv[2] a 0600 JSON
 * file of variables, the same variables as UPAAS_* environment, cwd the new
 * revision, a timeout, output into the deploy log.
 *
 * App hooks run in the app's sandbox (deploy/exec.c: app_sandbox_init()),
 * chrooted into the new revision, as the app user of this host's config
 * (as root inside with deploy.hooks_as_root), with the shared dirs at
 * /shared, the previous revision read-only at /run/upaas/previous and the
 * variables at /run/upaas/hook.json; their paths are the ones inside. What
 * they start dies with them. Admin hooks run on the host as root, in a
 * session of their own.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>

#include <json-c/json.h>

#include "deploy/deploy-int.h"
#include "sandbox/sandbox.h"

void deploy_log(int fd, const char *fmt, ...)
{
	if (fd < 0)
		return;
	_cleanup_buf_ struct buf b = BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	buf_vaddf(&b, fmt, ap);
	va_end(ap);
	log_line_fd(fd, b.p, b.len);
}

/* The variables, as (json name, env name, value) in one table so that the
 * JSON file and the environment can never disagree. */
struct var {
	const char *name;
	const char *env;
	const char *val;
};

static size_t vars_table(const struct hook_vars *v, char tbuf[32], struct var out[16])
{
	time_iso8601(v->time, tbuf);
	const struct var t[] = {
		{ "app", "UPAAS_APP", v->app },
		{ "package_id", "UPAAS_PACKAGE_ID", v->package_id },
		{ "commit", "UPAAS_COMMIT", v->commit },
		{ "revision_dir", "UPAAS_REVISION_DIR", v->revision_dir },
		{ "previous_revision_dir", "UPAAS_PREVIOUS_REVISION_DIR", v->previous_revision_dir },
		{ "shared_dir", "UPAAS_SHARED_DIR", v->shared_dir },
		{ "data_dir", "UPAAS_DATA_DIR", v->data_dir },
		{ "root", "UPAAS_ROOT", v->root },
		{ "hostname", "UPAAS_HOSTNAME", v->hostname },
		{ "operation", "UPAAS_OPERATION", v->operation },
		{ "event", "UPAAS_EVENT", v->event },
		{ "time", "UPAAS_TIME", tbuf },
	};
	for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
		out[i] = t[i];
		if (!out[i].val)
			out[i].val = "";
	}
	return ARRAY_SIZE(t);
}

void hook_vars_json(const struct hook_vars *v, struct buf *out)
{
	char tbuf[32];
	struct var t[16];
	size_t n = vars_table(v, tbuf, t);
	struct json_object *j = json_object_new_object();
	for (size_t i = 0; i < n; i++)
		json_object_object_add(j, t[i].name, json_object_new_string(t[i].val));
	json_object_object_add(j, "unix_time", json_object_new_int64(v->time));
	json_to_buf(j, out);
	json_object_put(j);
}

void hook_vars_env(const struct hook_vars *v, struct strv *env)
{
	char tbuf[32];
	struct var t[16];
	size_t n = vars_table(v, tbuf, t);
	for (size_t i = 0; i < n; i++)
		strv_setenv(env, t[i].env, t[i].val);
	strv_setenv(env, "CURRENT_CONFIG", v->revision_dir ? v->revision_dir : "");
	strv_setenv(env, "PREVIOUS_CONFIG",
		    v->previous_revision_dir ? v->previous_revision_dir : "");
}

/* -------------------------------------------------------------- running */

/* Resolves an app hook below data_dir; it must stay inside revision_dir
 * once every symlink is resolved, and be an executable regular file.
 * Returns its path inside the revision ("/home/app/hooks/pre"). */
static int app_hook_path(const struct hook_vars *v, const char *rel, char **ret, struct err *e)
{
	_cleanup_free_ char *full = path_join(v->data_dir, rel);
	_cleanup_free_ char *real = realpath(full, NULL);
	_cleanup_free_ char *rev = realpath(v->revision_dir, NULL);
	if (!real)
		return err_set_errno(e, -errno, "app hook '%s' not found in the package", rel);
	if (!rev)
		return err_set_errno(e, -errno, "cannot resolve '%s'", v->revision_dir);
	size_t n = strlen(rev);
	if (strncmp(real, rev, n) || real[n] != '/')
		return err_set(e, -EPERM, "app hook '%s' resolves outside the revision", rel);
	struct stat st;
	if (stat(real, &st) < 0 || !S_ISREG(st.st_mode) || !(st.st_mode & 0111))
		return err_set(e, -EACCES, "app hook '%s' is not an executable file", rel);
	/* its path inside the revision, which is the root of its sandbox */
	*ret = xstrdup(real + n);
	return 0;
}

/* The admin's hooks of event, in name order; skips dot files and editor
 * backups (~), and anything that is not an executable regular file. */
static int admin_hooks(const struct config *c, const char *event, struct strv *out,
		       struct err *e)
{
	if (!c || !c->deploy.hooks_dir || !*c->deploy.hooks_dir)
		return 0;
	_cleanup_free_ char *dname = xasprintf("%s.d", event);
	_cleanup_free_ char *dir = path_join(c->deploy.hooks_dir, dname);
	DIR *d = opendir(dir);
	if (!d) {
		if (errno == ENOENT)
			return 0;
		return err_set_errno(e, -errno, "cannot read hook dir '%s'", dir);
	}
	_cleanup_strv_ struct strv names = STRV_INIT;
	struct dirent *de;
	while ((de = readdir(d))) {
		size_t n = strlen(de->d_name);
		struct stat st;
		if (de->d_name[0] == '.' || de->d_name[n - 1] == '~')
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, 0) < 0 || !S_ISREG(st.st_mode) ||
		    !(st.st_mode & 0111))
			continue;
		strv_push(&names, de->d_name);
	}
	closedir(d);
	strv_sort(&names);
	for (size_t i = 0; i < names.n; i++)
		strv_push_take(out, path_join(dir, names.v[i]));
	return 0;
}

/* Writes the variables v to a fresh 0600 file in dir owned by uid/gid. */
static int write_vars_file(const struct hook_run *h, const struct hook_vars *v, uid_t uid,
			   gid_t gid, char **ret, struct err *e)
{
	_cleanup_buf_ struct buf json = BUF_INIT;
	hook_vars_json(v, &json);
	char *path = xasprintf("%s/.hook-XXXXXX.json", h->tmpdir);
	_cleanup_close_ int fd = mkostemps(path, 5, O_CLOEXEC);
	if (fd < 0) {
		int r = err_set_errno(e, -errno, "cannot create hook variables in '%s'", h->tmpdir);
		free(path);
		return r;
	}
	int r = fs_write_all(fd, json.p, json.len);
	if (r >= 0 && fchmod(fd, 0600) < 0)
		r = -errno;
	if (r >= 0 && fchown(fd, uid, gid) < 0)
		r = -errno;
	if (r < 0) {
		unlink(path);
		free(path);
		return err_set_errno(e, r, "cannot write hook variables");
	}
	*ret = path;
	return 0;
}

/* The outcome of a hook as an error (or 0). */
static int hook_result(const struct hook_run *h, const char *label, int r, struct err *pe,
		       struct err *e)
{
	if (r == 0)
		return 0;
	if (r == -ETIMEDOUT)
		r = err_set(e, r, "%s hook '%s' timed out after %d s", h->event, label,
			    h->cfg->deploy.hook_timeout);
	else if (r == -EAGAIN || r == -ENOMEM)
		r = err_set(e, -EIO, "%s hook '%s' failed: %s", h->event, label, err_msg(pe));
	else if (r < 0)
		r = err_set(e, r, "%s hook '%s' could not run: %s", h->event, label, err_msg(pe));
	else if (r > 128)
		r = err_set(e, -EIO, "%s hook '%s' was killed by signal %d", h->event, label,
			    r - 128);
	else
		r = err_set(e, -EIO, "%s hook '%s' failed with exit status %d", h->event, label, r);
	deploy_log(h->log_fd, "%s", err_msg(e));
	return r;
}

static unsigned hook_timeout_ms(const struct hook_run *h)
{
	return h->cfg && h->cfg->deploy.hook_timeout > 0 ?
	       (unsigned)h->cfg->deploy.hook_timeout * 1000u : 0;
}

/* An admin hook: on the host, as root, in a session of its own. */
static int run_admin(const struct hook_run *h, const char *path, const char *label,
		     struct err *e)
{
	_cleanup_free_ char *vars = NULL;
	int r = write_vars_file(h, h->vars, 0, 0, &vars, e);
	if (r < 0)
		return r;

	struct proc p = PROC_INIT;
	strv_push(&p.argv, path);
	strv_push(&p.argv, h->vars->operation);
	strv_push(&p.argv, vars);
	p.env_set = true;
	strv_setenv(&p.env, "PATH", SANDBOX_DEFAULT_PATH);
	strv_setenv(&p.env, "LANG", "C.UTF-8");
	strv_setenv(&p.env, "HOME", "/root");
	hook_vars_env(h->vars, &p.env);
	p.cwd = h->vars->revision_dir;
	p.log_fd = h->log_fd;
	p.tee = h->tee;
	p.timeout_ms = hook_timeout_ms(h);
	p.new_session = true;
	deploy_log(h->log_fd, "%s hook %s '%s' (%s, as root)", h->event, label, path,
		   h->vars->operation);
	log_info("running %s hook '%s'", h->event, label);
	_cleanup_err_ struct err pe = ERR_INIT;
	r = proc_run(&p, &pe);
	proc_free(&p);
	unlink(vars);
	return hook_result(h, label, r, &pe, e);
}

#define HOOK_VARS_INSIDE "/run/upaas/hook.json"
#define HOOK_PREVIOUS_INSIDE "/run/upaas/previous"

/* An app hook (inside is its path in the revision): in the app's sandbox. */
static int run_app(const struct hook_run *h, const char *inside, const char *label,
		   bool as_app, struct err *e)
{
	const struct hook_vars *hv = h->vars;
	bool prev = hv->previous_revision_dir && *hv->previous_revision_dir;
	/* the variables as the hook sees them: the paths inside */
	struct hook_vars in = *hv;
	in.revision_dir = "/";
	in.previous_revision_dir = prev ? HOOK_PREVIOUS_INSIDE : "";
	in.shared_dir = "/shared";
	in.data_dir = h->m && h->m->app_home ? h->m->app_home : "/";
	in.root = "/";

	struct app_sandbox a;
	int r = app_sandbox_init(&a, h->cfg, hv->revision_dir, hv->shared_dir, !as_app, e);
	_cleanup_free_ char *vars = NULL;
	if (r >= 0)
		r = write_vars_file(h, &in, as_app ? a.sb.uid : 0, as_app ? a.sb.gid : 0, &vars, e);
	if (r < 0) {
		app_sandbox_free(&a);
		return r;
	}
	app_sandbox_bind(&a, vars, HOOK_VARS_INSIDE, false);
	if (prev)
		app_sandbox_bind(&a, hv->previous_revision_dir, HOOK_PREVIOUS_INSIDE, false);
	struct sandbox *sb = &a.sb;
	strv_push(&sb->argv, inside);
	strv_push(&sb->argv, hv->operation);
	strv_push(&sb->argv, HOOK_VARS_INSIDE);
	strv_setenv(&sb->env, "PATH", SANDBOX_DEFAULT_PATH);
	strv_setenv(&sb->env, "LANG", "C.UTF-8");
	strv_setenv(&sb->env, "HOME", as_app ? in.data_dir : "/root");
	hook_vars_env(&in, &sb->env);
	sb->cwd = "/";
	sb->log_fd = h->log_fd;
	sb->tee = h->tee;
	sb->timeout_ms = hook_timeout_ms(h);
	deploy_log(h->log_fd, "%s hook %s '%s' (%s, as %s, sandboxed)", h->event, label, inside,
		   hv->operation, as_app ? "app user" : "root inside");
	log_info("running %s hook '%s'", h->event, label);
	_cleanup_err_ struct err pe = ERR_INIT;
	r = sandbox_run(sb, &pe);
	app_sandbox_free(&a);
	unlink(vars);
	return hook_result(h, label, r, &pe, e);
}

int hooks_run(const struct hook_run *h, struct err *e)
{
	_cleanup_strv_ struct strv admin = STRV_INIT;
	const struct strv *app = NULL;
	int r = admin_hooks(h->cfg, h->event, &admin, e);
	if (r < 0)
		return r;
	if (h->m && !strcmp(h->event, "pre-deploy"))
		app = &h->m->deploy.hooks_pre;
	else if (h->m && !strcmp(h->event, "post-deploy"))
		app = &h->m->deploy.hooks_post;
	bool as_app = !(h->cfg && h->cfg->deploy.hooks_as_root);
	bool admin_first = !strncmp(h->event, "pre-", 4);

	for (int pass = 0; pass < 2; pass++) {
		bool do_admin = (pass == 0) == admin_first;
		if (do_admin) {
			for (size_t i = 0; i < admin.n; i++) {
				const char *slash = strrchr(admin.v[i], '/');
				if ((r = run_admin(h, admin.v[i], slash + 1, e)) < 0)
					return r;
			}
			continue;
		}
		for (size_t i = 0; app && i < app->n; i++) {
			_cleanup_free_ char *path = NULL;
			if ((r = app_hook_path(h->vars, app->v[i], &path, e)) < 0) {
				deploy_log(h->log_fd, "%s", err_msg(e));
				return r;
			}
			if ((r = run_app(h, path, app->v[i], as_app, e)) < 0)
				return r;
		}
	}
	return 0;
}
