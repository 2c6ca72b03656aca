/*
 * actions/steps.c - the step runner: runs the steps of one build in order
 * inside the workspace root, each with its log section, duration and
 * timeout (commands.timeout per step). step_defs below is the policy that
 * actions/actions.h documents: who runs each step, with or without network.
 * Nothing here runs on the host: the checkout comes from the builder as
 * data (an archive of the commit, the paths it deleted).
 */
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "actions/actions.h"
#include "sandbox/sandbox.h"

/* Where the host-side mirror appears inside the sandbox (read-only). */
#define SANDBOX_MIRROR "/run/upaas/repo.git"
/* git's system config for the commands that see the mirror (read-only). */
#define SANDBOX_GITCONFIG "/run/upaas/gitconfig"

const char *step_status_name(enum step_status s)
{
	switch (s) {
	case STEP_OK: return "ok";
	case STEP_SKIPPED: return "skipped";
	case STEP_FAILED: return "failed";
	default: return "not run";
	}
}

bool actions_file_path_ok(const char *path)
{
	if (!path || path[0] != '/' || path[1] == '\0')
		return false;
	const char *p = path + 1;
	for (;;) {
		const char *end = strchr(p, '/');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			return false;
		if (!end)
			return true;
		p = end + 1;
	}
}

/*
 * The admin's part of the env (interpreters.env < type.any < version), for
 * the steps that run as root: the metadata's env comes from the app, and a
 * PATH or LD_PRELOAD of its choosing would run the app's code as root.
 */
static void admin_env(const struct actions_ctx *x, struct strv *env)
{
	const struct config *c = x->cfg;
	const struct plan *p = x->plan;
	const struct kvlist *levels[3] = { &c->interpreters.env, NULL, NULL };

	for (size_t i = 0; p->interp_type && i < c->interpreters.n_types; i++) {
		const struct cfg_interp_type *t = &c->interpreters.types[i];
		if (strcmp(t->name, p->interp_type))
			continue;
		levels[1] = &t->any.env;
		for (size_t j = 0; p->interp_version && j < t->n_versions; j++)
			if (!strcmp(t->versions[j].version, p->interp_version))
				levels[2] = &t->versions[j].env;
	}
	for (size_t l = 0; l < ARRAY_SIZE(levels); l++)
		for (size_t i = 0; levels[l] && i < levels[l]->n; i++)
			strv_setenv(env, levels[l]->v[i].key, levels[l]->v[i].val);
}

void actions_env(const struct actions_ctx *x, bool as_app, struct strv *env)
{
	strv_setenv(env, "PATH", SANDBOX_DEFAULT_PATH);
	strv_setenv(env, "LANG", "C.UTF-8");
	if (as_app) {
		for (size_t i = 0; i < x->plan->env.n; i++)
			strv_setenv(env, x->plan->env.v[i].key, x->plan->env.v[i].val);
	} else {
		admin_env(x, env);
	}
	/* upaas's own variables always win over the merged env */
	strv_setenv(env, "UPAAS_APP", x->app);
	strv_setenv(env, "UPAAS_BUILD_ID", x->build_id);
	strv_setenv(env, "UPAAS_COMMIT", x->commit);
	strv_setenv(env, "UPAAS_FRESH_PACKAGE", x->fresh ? "true" : "false");
	/* reproducible builds: tools that record a time use the commit's */
	if (x->commit_time > 0) {
		char t[24];
		snprintf(t, sizeof(t), "%lld", (long long)x->commit_time);
		strv_setenv(env, "SOURCE_DATE_EPOCH", t);
	}
	strv_setenv(env, "UPAAS_APP_HOME", x->cfg->apps.home);
	if (x->plan->interp_type)
		strv_setenv(env, "UPAAS_INTERPRETER", x->plan->interp_type);
	if (x->plan->interp_version)
		strv_setenv(env, "UPAAS_INTERPRETER_VERSION", x->plan->interp_version);
	if (as_app) {
		strv_setenv(env, "HOME", x->cfg->apps.home);
		strv_setenv(env, "USER", x->cfg->apps.user);
		strv_setenv(env, "LOGNAME", x->cfg->apps.user);
	} else {
		strv_setenv(env, "HOME", "/root");
		strv_setenv(env, "DEBIAN_FRONTEND", "noninteractive");
	}
}

/* ------------------------------------------------------------ running */

struct run {
	struct actions_ctx *x;
	const struct step_def *def;
	enum step step;
	uint64_t deadline;          /* now_ms() value */
	bool as_app;                /* from def */
	bool network;               /* from def; the checkout may turn it on */
	bool mirror;                /* bind the host mirror read-only */
	int stdin_fd;
	struct strv extra_env;      /* NAME=VALUE pairs appended */
};

/* Writes a log line (timestamped) to the build log. */
static void blog(struct actions_ctx *x, const char *fmt, ...) _printf_(2, 3);
static void blog(struct actions_ctx *x, const char *fmt, ...)
{
	_cleanup_buf_ struct buf b = BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	buf_vaddf(&b, fmt, ap);
	va_end(ap);
	if (x->log_fd >= 0)
		log_line_fd(x->log_fd, b.p, b.len);
	if (x->log_fd2 > 0)
		log_line_fd(x->log_fd2, b.p, b.len);
}

/*
 * The git config the commands that see the mirror get as their system
 * config (GIT_CONFIG_SYSTEM): the mirror belongs to another user than the
 * app, which git refuses as "dubious ownership" unless safe.directory names
 * it. -c or GIT_CONFIG_* would not do: git drops them for the upload-pack
 * of a local fetch or clone, which is the one that checks. Written once per
 * build in tmpdir; *ret is its path.
 */
static int git_config_file(const struct actions_ctx *x, char **ret, struct err *e)
{
	static const char text[] =
		"# written by upaas: the app's mirror, bound read-only, belongs to\n"
		"# another user than the app\n"
		"[safe]\n"
		"\tdirectory = " SANDBOX_MIRROR "\n";
	_cleanup_free_ char *p = path_join(x->tmpdir, "gitconfig");
	if (access(p, F_OK) < 0) {
		int r = fs_write_atomic(p, text, sizeof(text) - 1, 0644);
		if (r < 0)
			return err_set_errno(e, r, "cannot write '%s'", p);
	}
	*ret = TAKE_PTR(p);
	return 0;
}

/*
 * The bootstrap mirror's credentials (bootstrap.mirror's userinfo) as an
 * apt_auth.conf(5) file in the build's tmpdir, owned by the sandbox's root
 * and readable by it alone; *ret NULL when the mirror has none.
 */
static int mirror_auth_file(struct actions_ctx *x, char **ret, struct err *e)
{
	const struct config *c = x->cfg;
	_cleanup_free_ char *bare = NULL;
	_cleanup_buf_ struct buf auth = BUF_INIT;
	*ret = NULL;
	if (!c->bootstrap.mirror || url_apt_auth(c->bootstrap.mirror, &auth, &bare) <= 0)
		return 0;
	struct sandbox_policy pol;
	struct sandbox_range ids;
	actions_sandbox_policy(c, &pol);
	sandbox_range_get(&pol, &ids);
	_cleanup_free_ char *path = path_join(x->tmpdir, "mirror-auth.conf");
	int r = fs_write_atomic(path, auth.p, auth.len, 0600);
	explicit_bzero(auth.p, auth.len);
	if (r < 0)
		return err_set_errno(e, r, "cannot write '%s'", path);
	if (chown(path, ids.uid_base, ids.gid_base) < 0) {
		r = err_set_errno(e, -errno, "cannot hand '%s' to the sandbox's root", path);
		unlink(path);
		return r;
	}
	*ret = TAKE_PTR(path);
	return 0;
}

/*
 * Runs argv (taken) in the sandbox. Returns 0 when it exited 0; otherwise
 * records "step 'S' failed: ..." and returns < 0 (-ECHILD for a non-zero exit,
 * with the status in the step record).
 */
static int run_argv(struct run *rn, struct strv *argv, const char *what, struct err *e)
{
	struct actions_ctx *x = rn->x;
	const struct config *c = x->cfg;
	const char *sname = step_name(rn->step);
	struct sandbox sb = SANDBOX_INIT;
	struct sandbox_bind binds[4];
	size_t n_binds = 0;
	int r;

	if (proc_cancelled) {
		strv_free(argv);
		return err_set(e, -ECANCELED, "build cancelled before step '%s'", sname);
	}
	uint64_t t = now_ms();
	if (rn->deadline && t >= rn->deadline) {
		strv_free(argv);
		x->steps[rn->step].exit_status = -ETIMEDOUT;
		return err_set(e, -ETIMEDOUT, "step '%s' failed: timed out after %d s", sname,
			       c->commands.timeout);
	}

	sb.root = x->root;
	sb.argv = *argv;
	*argv = (struct strv)STRV_INIT;
	actions_env(x, rn->as_app, &sb.env);
	for (size_t i = 0; i + 1 < rn->extra_env.n; i += 2)
		strv_setenv(&sb.env, rn->extra_env.v[i], rn->extra_env.v[i + 1]);
	sb.cwd = rn->as_app ? c->apps.home : "/";
	sb.network = rn->network;
	sb.drop_privs = rn->as_app;
	sb.uid = (uid_t)c->apps.uid;
	sb.gid = (gid_t)c->apps.gid;
	sb.timeout_ms = rn->deadline ? (unsigned)(rn->deadline - t) : 0;
	sb.log_fd = x->log_fd;
	sb.log_fd2 = x->log_fd2 > 0 ? x->log_fd2 : -1;
	sb.tee = x->tee;
	sb.stdin_fd = rn->stdin_fd;
	_cleanup_free_ char *gitconfig = NULL;
	if (rn->mirror && x->mirror) {
		binds[n_binds++] = (struct sandbox_bind){ .host = x->mirror, .target = SANDBOX_MIRROR };
		r = git_config_file(x, &gitconfig, e);
		if (r < 0) {
			sandbox_free(&sb);
			return r;
		}
		binds[n_binds++] = (struct sandbox_bind){ .host = gitconfig, .target = SANDBOX_GITCONFIG };
		strv_setenv(&sb.env, "GIT_CONFIG_SYSTEM", SANDBOX_GITCONFIG);
	}
	/* the host's CA bundle for downloads through a TLS-intercepting proxy;
	 * only where the chroot has the directory, so nothing is created */
	_cleanup_free_ char *ca_dir = NULL;
	const char *ca = c->commands.ca_bundle;
	if (rn->network && ca && ca[0] == '/' && access(ca, R_OK) == 0) {
		ca_dir = path_join(x->root, ca);
		char *slash = strrchr(ca_dir, '/');
		*slash = '\0';
		struct stat dst;
		if (lstat(ca_dir, &dst) == 0 && S_ISDIR(dst.st_mode))
			binds[n_binds++] = (struct sandbox_bind){ .host = ca, .target = ca };
	}
	/* apt of a root step with network (the os packages step) reaches a
	 * mirror that wants credentials; the app's steps never see them */
	_cleanup_free_ char *auth_file = NULL;
	if (rn->network && !rn->as_app) {
		r = mirror_auth_file(x, &auth_file, e);
		if (r < 0) {
			sandbox_free(&sb);
			return r;
		}
		if (auth_file)
			binds[n_binds++] = (struct sandbox_bind){ .host = auth_file,
								  .target = APT_MIRROR_AUTH };
	}
	sb.binds = binds;
	sb.n_binds = n_binds;
	/* the build's user namespace (root inside is the range's first id),
	 * the limits, the filter */
	struct sandbox_policy pol;
	actions_sandbox_policy(c, &pol);
	sandbox_apply_policy(&sb, &pol);
	/* RLIMIT_NPROC is for what the app runs; the cgroup's pids limit
	 * binds every step */
	if (!rn->as_app)
		sb.rlimit_nproc = 0;

	blog(x, "--- %s: %s", sname, what);
	r = sandbox_run(&sb, e);
	sandbox_free(&sb);
	if (auth_file)
		unlink(auth_file);
	struct sandbox_timing st;
	sandbox_last_timing(&st);
	if (st.total_us)
		blog(x, "--- %s: sandbox setup %.1f ms (of which waiting for the network %.1f ms)",
		     sname, (double)st.total_us / 1000.0, (double)st.network_us / 1000.0);
	if (r < 0) {
		x->steps[rn->step].exit_status = r;
		if (r == -ETIMEDOUT && e->code) {
			err_clear(e);
			return err_set(e, r, "step '%s' failed: %s timed out after %d s", sname,
				       what, c->commands.timeout);
		}
		return err_prefix(e, "step '%s' failed", sname);
	}
	if (r != 0) {
		x->steps[rn->step].exit_status = r;
		if (proc_cancelled)
			return err_set(e, -ECANCELED, "build cancelled during step '%s'", sname);
		if (r == 128 + SIGXFSZ && c->limits.fsize > 0) {
			char sz[32];
			fmt_bytes((uint64_t)c->limits.fsize, sz);
			return err_set(e, -EFBIG, "step '%s' failed: %s wrote a file larger than "
				       "limits.fsize (%s) and was killed (SIGXFSZ)", sname, what, sz);
		}
		if (r > 128) {
			const char *abbrev = sigabbrev_np(r - 128);
			return err_set(e, -ECHILD, "step '%s' failed: %s was killed by signal %d%s%s%s",
				       sname, what, r - 128, abbrev ? " (SIG" : "", abbrev ? abbrev : "",
				       abbrev ? ")" : "");
		}
		return err_set(e, -ECHILD, "step '%s' failed: %s exited with status %d", sname,
			       what, r);
	}
	return 0;
}

/* Describes an action command for messages: its first line, shortened. */
static void describe_command(const char *cmd, struct buf *out)
{
	size_t n = strcspn(cmd, "\n");
	if (n > 60)
		n = 60;
	buf_addch(out, '\'');
	buf_add(out, cmd, n);
	if (cmd[n])
		buf_adds(out, "...");
	buf_addch(out, '\'');
}

/* Runs each command of an action with /bin/sh -ec. */
static int run_action(struct run *rn, const struct action *a, struct err *e)
{
	for (size_t i = 0; i < a->commands.n; i++) {
		struct strv argv = STRV_INIT;
		_cleanup_buf_ struct buf what = BUF_INIT;
		strv_push(&argv, "/bin/sh");
		strv_push(&argv, "-ec");
		strv_push(&argv, a->commands.v[i]);
		buf_adds(&what, "command ");
		describe_command(a->commands.v[i], &what);
		int r = run_argv(rn, &argv, what.p, e);
		if (r < 0)
			return r;
	}
	return 0;
}

/* ------------------------------------------------------------ steps */

/* The app user, group and home exist and home belongs to the app. The
 * script is fixed text; the values come in as positional parameters. */
static const char ensure_user_sh[] =
	"if [ -L \"$4\" ]; then echo \"upaas: '$4' is a symlink\" >&2; exit 1; fi\n"
	"getent group \"$3\" >/dev/null || groupadd -g \"$3\" \"$1\"\n"
	"getent passwd \"$2\" >/dev/null || useradd -u \"$2\" -g \"$3\" -d \"$4\" -M -s /bin/sh \"$1\"\n"
	"mkdir -p -- \"$4\"\n"
	"chown -h \"$2:$3\" -- \"$4\"\n";

/* Opens path (relative) inside root as the tree sees it: symlinks resolve
 * inside it, ".." stops at its top (openat2 RESOLVE_IN_ROOT). */
static int open_in_root(int rootfd, const char *path, int flags, uint64_t resolve)
{
	struct open_how how = { .flags = (uint64_t)flags | O_CLOEXEC,
				.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | resolve };
	long fd = syscall(SYS_openat2, rootfd, path, &how, sizeof(how));
	return fd < 0 ? -errno : (int)fd;
}

/* true when a line of the colon-separated file text has id as field 3. */
static bool db_has_id(const char *text, int64_t id)
{
	for (const char *line = text; line && *line;) {
		const char *nl = strchr(line, '\n');
		const char *f = line;
		int field = 1;
		while (field < 3 && f && (!nl || f < nl)) {
			f = strchr(f, ':');
			if (f)
				f++;
			field++;
		}
		if (f && (!nl || f < nl)) {
			char *end;
			long long v = strtoll(f, &end, 10);
			if (end != f && *end == ':' && v == id)
				return true;
		}
		line = nl ? nl + 1 : NULL;
	}
	return false;
}

/*
 * What ensure_user_sh would find already done, read from the host side
 * (no program of the tree runs, no sandbox starts): a passwd entry with the
 * app's uid, a group with its gid, and the home a directory (not a
 * symlink) that belongs to the app.
 */
static bool app_user_ready(const struct actions_ctx *x)
{
	const struct config *c = x->cfg;
	struct sandbox_policy pol;
	struct sandbox_range ids;
	_cleanup_close_ int rootfd = open(x->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	_cleanup_buf_ struct buf passwd = BUF_INIT, group = BUF_INIT;
	struct stat st;

	if (rootfd < 0)
		return false;
	for (int i = 0; i < 2; i++) {
		_cleanup_close_ int fd = open_in_root(rootfd, i ? "etc/group" : "etc/passwd",
						      O_RDONLY | O_NOCTTY, 0);
		struct buf *b = i ? &group : &passwd;
		buf_init(b, 4u << 20);
		if (fd < 0 || buf_read_fd(b, fd) < 0)
			return false;
	}
	if (!db_has_id(passwd.p, c->apps.uid) || !db_has_id(group.p, c->apps.gid))
		return false;
	const char *home = c->apps.home;
	while (*home == '/')
		home++;
	_cleanup_close_ int hfd = open_in_root(rootfd, *home ? home : ".",
					       O_PATH | O_NOFOLLOW | O_DIRECTORY, 0);
	if (hfd < 0 || fstat(hfd, &st) < 0 || !S_ISDIR(st.st_mode))
		return false;
	actions_sandbox_policy(c, &pol);
	sandbox_range_get(&pol, &ids);
	return st.st_uid == ids.uid_base + (uid_t)c->apps.uid &&
	       st.st_gid == ids.gid_base + (gid_t)c->apps.gid;
}

static int step_system(struct run *rn, struct err *e)
{
	struct actions_ctx *x = rn->x;
	const struct config *c = x->cfg;
	struct strv argv = STRV_INIT;

	/* a package built on an earlier one has the user: checked from the
	 * host side, which costs no sandbox */
	if (!x->fresh && app_user_ready(x)) {
		blog(x, "--- system: the app user, group and home are there");
		return 0;
	}
	strv_push(&argv, "/bin/sh");
	strv_push(&argv, "-ec");
	strv_push(&argv, ensure_user_sh);
	strv_push(&argv, "sh");
	strv_push(&argv, c->apps.user);
	strv_pushf(&argv, "%lld", (long long)c->apps.uid);
	strv_pushf(&argv, "%lld", (long long)c->apps.gid);
	strv_push(&argv, c->apps.home);
	int r = run_argv(rn, &argv, "creating the app user", e);
	if (r < 0)
		return r;
	/* the admin's system action shapes the base: a package built on an
	 * earlier one already has it */
	if (x->fresh)
		return run_action(rn, &x->plan->actions[STEP_SYSTEM], e);
	return 0;
}

/* Runs an argv template with "{packages}" expanded to one argument per
 * name (or the names appended when it has none). */
static int run_template(struct run *rn, const struct strv *tmpl, const struct strv *names,
			const char *what, struct err *e)
{
	struct strv argv = STRV_INIT;
	bool expanded = false;
	for (size_t i = 0; i < tmpl->n; i++) {
		if (!strcmp(tmpl->v[i], "{packages}")) {
			strv_extend(&argv, names);
			expanded = true;
		} else {
			strv_push(&argv, tmpl->v[i]);
		}
	}
	if (!expanded)
		strv_extend(&argv, names);
	return run_argv(rn, &argv, what, e);
}

/*
 * Installs the plan's packages the tree lacks, and lets go of those the
 * base package was asked for and the plan no longer asks for: marked as
 * installed automatically, then autoremoved (purged) unless another
 * package needs them, which is what a fresh build of the plan would have.
 * Packages of the base image are never let go of.
 */
static int step_packages(struct run *rn, struct err *e)
{
	struct actions_ctx *x = rn->x;
	const struct config *c = x->cfg;
	_cleanup_strv_ struct strv have = STRV_INIT, want = STRV_INIT, drop = STRV_INIT;
	_cleanup_strv_ struct strv candidates = STRV_INIT, dropping = STRV_INIT;
	int r = actions_installed(x->root, &x->plan->packages, &have, e);

	if (r < 0)
		return err_prefix(e, "step 'os packages' failed");
	for (size_t i = 0; i < x->plan->packages.n; i++)
		if (!strv_contains(&have, x->plan->packages.v[i]))
			strv_push(&want, x->plan->packages.v[i]);
	for (size_t i = 0; !x->fresh && x->installed && i < x->installed->n; i++) {
		const char *p = x->installed->v[i];
		if (!strv_contains(&x->plan->packages, p) &&
		    !(x->image_packages && strv_contains(x->image_packages, p)) &&
		    package_name_ok(p))
			strv_push(&candidates, p);
	}
	if (candidates.n) {
		r = actions_installed(x->root, &candidates, &drop, e);
		if (r < 0)
			return err_prefix(e, "step 'os packages' failed");
	}
	if (!c->commands.unmark.n)
		strv_free(&drop);
	if (want.n == 0 && drop.n == 0)
		return 1;   /* skipped */

	if (want.n) {
		r = 0;
		if (c->commands.update.n) {
			struct strv argv = STRV_INIT;
			strv_copy(&argv, &c->commands.update);
			r = run_argv(rn, &argv, "the package update command", e);
		}
		if (r >= 0)
			r = run_template(rn, &c->commands.install, &want, "the package install command", e);
		if (r < 0)
			return r;
	}
	if (drop.n) {
		blog(x, "packages no longer asked for: %zu", drop.n);
		r = run_template(rn, &c->commands.unmark, &drop, "the package unmark command", e);
		if (r >= 0 && c->commands.autoremove.n) {
			struct strv argv = STRV_INIT;
			strv_copy(&argv, &c->commands.autoremove);
			r = run_argv(rn, &argv, "the package autoremove command", e);
		}
	}
	return r;
}

/* "install ok installed", "hold ok installed": the package is there. */
static bool dpkg_installed(const char *status, size_t n)
{
	return n >= 10 && !memcmp(status + n - 10, " installed", 10);
}

int actions_installed(const char *root, const struct strv *names, struct strv *ret,
		      struct err *e)
{
	_cleanup_buf_ struct buf t = BUF_INIT;
	int r = fs_read_in_root(root, DPKG_STATUS, &t, DPKG_STATUS_MAX);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return err_set_errno(e, r, "cannot read '/%s' of the tree", DPKG_STATUS);
	for (const char *para = t.p; *para;) {
		const char *end = strstr(para, "\n\n");
		size_t plen = end ? (size_t)(end - para) + 1 : strlen(para);
		const char *pkg = NULL, *st = NULL;
		size_t pkg_n = 0, st_n = 0;
		for (const char *l = para; l < para + plen;) {
			const char *nl = memchr(l, '\n', (size_t)(para + plen - l));
			size_t ln = nl ? (size_t)(nl - l) : (size_t)(para + plen - l);
			if (ln > 9 && !strncmp(l, "Package: ", 9)) {
				pkg = l + 9;
				pkg_n = ln - 9;
			} else if (ln > 8 && !strncmp(l, "Status: ", 8)) {
				st = l + 8;
				st_n = ln - 8;
			}
			l += ln + 1;
		}
		if (pkg && st && dpkg_installed(st, st_n)) {
			_cleanup_free_ char *name = xstrndup(pkg, pkg_n);
			if (strv_contains(names, name) && !strv_contains(ret, name))
				strv_push(ret, name);
		}
		para += plen;
		while (*para == '\n')
			para++;
	}
	strv_sort(ret);
	return 0;
}

/* With keep_git: a .git at the commit, fetched from the mirror (needs git
 * in the root, e.g. from os packages). */
static const char keep_git_sh[] =
	"[ -d .git ] || git init -q .\n"
	"git fetch -q --no-tags \"$1\" '+refs/heads/*:refs/remotes/origin/*'\n"
	"git update-ref --no-deref HEAD \"$2\"\n"
	"git reset -q\n";

const struct action *actions_custom_checkout(const struct metadata *m, bool fresh)
{
	if (fresh && m->repo_clone.defined)
		return &m->repo_clone;
	if (!fresh && m->repo_update.defined)
		return &m->repo_update;
	return NULL;
}

static int step_checkout(struct run *rn, struct err *e)
{
	struct actions_ctx *x = rn->x;
	const struct action *custom = actions_custom_checkout(x->meta, x->fresh);
	int r;

	strv_push(&rn->extra_env, "UPAAS_REPOSITORY");
	strv_push(&rn->extra_env, SANDBOX_MIRROR);
	strv_push(&rn->extra_env, "UPAAS_REPOSITORY_URL");
	strv_push(&rn->extra_env, x->source ? x->source : "");

	if (custom) {
		/* the app's own clone/update commands: inside the root, with
		 * the mirror bound read-only at $UPAAS_REPOSITORY */
		rn->network = rn->def->network_custom;
		rn->mirror = true;
		return run_action(rn, custom, e);
	}

	if (!x->checkout.apply)
		return err_set(e, -EINVAL, "step 'checkout' failed: nothing to check out");
	blog(x, "--- checkout: the commit's files, from the host");
	r = x->checkout.apply(x->checkout.data, e);
	if (r < 0) {
		x->steps[rn->step].exit_status = r;
		return err_prefix(e, "step 'checkout' failed");
	}
	if (!x->checkout.keep_git)
		return 0;
	struct strv argv = STRV_INIT;
	strv_push(&argv, "/bin/sh");
	strv_push(&argv, "-ec");
	strv_push(&argv, keep_git_sh);
	strv_push(&argv, "sh");
	strv_push(&argv, SANDBOX_MIRROR);
	strv_push(&argv, x->commit);
	rn->mirror = true;
	return run_argv(rn, &argv, "setting up .git (keep_git)", e);
}

/*
 * files: written by upaas from the host side (sandbox_write_file()), never
 * by a program of the tree: an earlier entry may have replaced any of them
 * (/bin/sh, dirname). A file under the app's home belongs to the app user,
 * any other to root (inside ids); missing directories too.
 */
static int step_files(struct run *rn, struct err *e)
{
	struct actions_ctx *x = rn->x;
	const struct config *c = x->cfg;
	const struct kvlist *files = &x->meta->files;
	if (files->n == 0)
		return 1;
	struct sandbox_policy pol;
	struct sandbox_range ids;
	actions_sandbox_policy(c, &pol);
	sandbox_range_get(&pol, &ids);
	size_t hl = strlen(c->apps.home);
	for (size_t i = 0; i < files->n; i++) {
		const char *path = files->v[i].key, *val = files->v[i].val;
		bool app = !strncmp(path, c->apps.home, hl) && path[hl] == '/';
		uid_t uid = ids.uid_base + (app ? (uid_t)c->apps.uid : 0);
		gid_t gid = ids.gid_base + (app ? (gid_t)c->apps.gid : 0);
		blog(x, "--- files: writing '%s' (%s)", path, app ? c->apps.user : "root");
		int r = sandbox_write_file(x->root, path, val, strlen(val), 0644, uid, gid, e);
		if (r < 0) {
			x->steps[rn->step].exit_status = r;
			return err_prefix(e, "step 'files' failed");
		}
	}
	return 0;
}

/* A package built on an earlier one has the interpreter (incremental
 * builds keep its version). */
static int step_interpreter(struct run *rn, struct err *e)
{
	const struct action *a = &rn->x->plan->actions[rn->step];

	return rn->x->fresh && a->defined ? run_action(rn, a, e) : 1;
}

/* before, main, after, finalize: the plan's action, when it has commands. */
static int step_action(struct run *rn, struct err *e)
{
	const struct action *a = &rn->x->plan->actions[rn->step];

	return a->defined && a->commands.n ? run_action(rn, a, e) : 1;
}

/* The step policy (documented in actions/actions.h): in enum step order. */
static const struct step_def step_defs[STEP__COUNT] = {
	{ .step = STEP_SYSTEM,      .network = true,  .as_app = false, .run = step_system },
	{ .step = STEP_PACKAGES,    .network = true,  .as_app = false, .run = step_packages },
	{ .step = STEP_INTERPRETER, .network = true,  .as_app = false, .run = step_interpreter },
	{ .step = STEP_CHECKOUT,    .network = false, .as_app = true,  .run = step_checkout,
	  .network_custom = true },
	{ .step = STEP_FILES,       .network = false, .as_app = false, .run = step_files },
	{ .step = STEP_BEFORE,      .network = true,  .as_app = true,  .run = step_action },
	{ .step = STEP_MAIN,        .network = true,  .as_app = true,  .run = step_action },
	{ .step = STEP_AFTER,       .network = true,  .as_app = true,  .run = step_action },
	{ .step = STEP_FINALIZE,    .network = false, .as_app = false, .run = step_action },
};

void actions_sandbox_policy(const struct config *c, struct sandbox_policy *ret)
{
	*ret = (struct sandbox_policy){
		.user = c->sandbox.user,
		.uid_base = c->sandbox.uid_base,
		.gid_base = c->sandbox.gid_base,
		.seccomp_deny = &c->sandbox.seccomp_deny,
		.pasta = c->sandbox.pasta,
		.pids = c->limits.pids,
		.memory = c->limits.memory,
		.cpu_weight = c->limits.cpu_weight,
		.nofile = c->limits.nofile,
		.nproc = c->limits.nproc,
		.address_space = c->limits.address_space,
		.fsize = c->limits.fsize,
	};
}

const struct step_def *actions_step_def(enum step s)
{
	if ((int)s < 0 || s >= STEP__COUNT || step_defs[s].step != s)
		return NULL;
	return &step_defs[s];
}

/*
 * What exec(2) would refuse with E2BIG, said before anything runs, with the
 * name of what is too long: the kernel takes at most MAX_ARG_STRLEN bytes
 * per argument or NAME=VALUE string, and ARG_MAX_TOTAL for all of them.
 */
#define MAX_ARG_STRLEN_BYTES (32 * 4096)
#define ARG_MAX_TOTAL ((size_t)1 << 21)   /* a quarter of the usual 8 MiB stack */

static int precheck_sizes(const struct actions_ctx *x, struct err *e)
{
	_cleanup_strv_ struct strv env = STRV_INIT;
	size_t total = 0;

	actions_env(x, true, &env);
	for (size_t i = 0; i < env.n; i++) {
		size_t n = strlen(env.v[i]) + 1;
		total += n + sizeof(char *);
		if (n > MAX_ARG_STRLEN_BYTES)
			return err_set(e, -E2BIG, "env '%.*s' is %zu bytes: the kernel passes at most "
				       "%d bytes per variable (MAX_ARG_STRLEN, with its name)",
				       (int)strcspn(env.v[i], "="), env.v[i], n - 1,
				       MAX_ARG_STRLEN_BYTES - 1);
	}
	if (total > ARG_MAX_TOTAL / 2)
		return err_set(e, -E2BIG, "the environment of the build is %zu bytes: the kernel "
			       "passes at most %zu bytes of environment and arguments together",
			       total, ARG_MAX_TOTAL);
	const struct { const struct action *a; const char *name; } acts[] = {
		{ &x->meta->repo_clone, "repository.clone" },
		{ &x->meta->repo_update, "repository.update" },
	};
	for (int s = 0; s < STEP__COUNT + (int)ARRAY_SIZE(acts); s++) {
		const struct action *a = s < STEP__COUNT ? &x->plan->actions[s]
							 : acts[s - STEP__COUNT].a;
		const char *name = s < STEP__COUNT ? step_name((enum step)s) : acts[s - STEP__COUNT].name;
		for (size_t i = 0; a->defined && i < a->commands.n; i++)
			if (strlen(a->commands.v[i]) + 1 > MAX_ARG_STRLEN_BYTES)
				return err_set(e, -E2BIG, "a command of action '%s' is %zu bytes: the "
					       "kernel passes at most %d bytes per argument (MAX_ARG_STRLEN)",
					       name, strlen(a->commands.v[i]), MAX_ARG_STRLEN_BYTES - 1);
	}
	return 0;
}

/* Checks what must hold before anything runs: metadata file paths stay in
 * the root, package names are names, nothing is too long for exec. */
static int precheck(const struct actions_ctx *x, struct err *e)
{
	for (size_t i = 0; i < x->meta->files.n; i++) {
		const char *p = x->meta->files.v[i].key;
		if (!actions_file_path_ok(p))
			return err_set(e, -EINVAL, "files: '%s' is not an absolute path inside the "
				       "chroot (no '.', '..' or empty components)", p);
	}
	for (size_t i = 0; i < x->plan->packages.n; i++)
		if (!package_name_ok(x->plan->packages.v[i]))
			return err_set(e, -EINVAL, "os packages: '%s' is not a valid package name",
				       x->plan->packages.v[i]);
	if (!x->commit || strspn(x->commit, "0123456789abcdef") != strlen(x->commit))
		return err_set(e, -EINVAL, "bad commit id");
	return precheck_sizes(x, e);
}

int actions_run(struct actions_ctx *x, struct err *e)
{
	const struct config *c = x->cfg;
	int r = 0;

	x->failed = -1;
	for (int s = 0; s < STEP__COUNT; s++)
		x->steps[s] = (struct step_record){ STEP_NOT_RUN, 0, 0 };
	r = precheck(x, e);
	if (r < 0)
		return r;

	for (int s = 0; s < STEP__COUNT; s++) {
		const struct step_def *def = actions_step_def((enum step)s);
		struct run rn = {
			.x = x, .def = def, .step = (enum step)s, .stdin_fd = -1,
			.as_app = def->as_app, .network = def->network, .extra_env = STRV_INIT,
		};
		const char *name = step_name(rn.step);
		uint64_t t0 = now_ms();
		if (c->commands.timeout > 0)
			rn.deadline = t0 + (uint64_t)c->commands.timeout * 1000u;

		if (proc_cancelled) {
			r = err_set(e, -ECANCELED, "build cancelled before step '%s'", name);
			x->failed = s;
			break;
		}
		blog(x, "==> step %s", name);
		log_debug("step %s ...", name);
		r = def->run(&rn, e);
		strv_free(&rn.extra_env);
		struct step_record *rec = &x->steps[s];
		rec->seconds = (double)(now_ms() - t0) / 1000.0;
		if (r < 0) {
			rec->status = STEP_FAILED;
			x->failed = s;
			/* what the previous package left may be in the way */
			if (s == STEP_CHECKOUT && !x->fresh && r != -ECANCELED && r != -ETIMEDOUT &&
			    r != -ESTALE)
				buf_adds(&e->msg, "; the checkout over the previous package failed: "
					 "'upaas build --fresh' starts from the base image");
			blog(x, "<== step %s failed after %.2f s: %s", name, rec->seconds, err_msg(e));
			break;
		}
		rec->status = r > 0 ? STEP_SKIPPED : STEP_OK;
		r = 0;
		blog(x, "<== step %s %s in %.2f s", name, step_status_name(rec->status),
		     rec->seconds);
		log_info("step %-11s %-7s %6.2f s", name, step_status_name(rec->status),
			 rec->seconds);
	}
	return r;
}
