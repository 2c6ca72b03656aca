/*
 * builder/git.c - the host side of an app's repository: one bare mirror per
 * app, updated incrementally, read with plumbing commands. git always runs
 * by argv through proc_*, never through a shell.
 */
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>

#include "builder/builder.h"
#include "builder/build-int.h"

#define GIT_TIMEOUT_MS (30u * 60u * 1000u)

static bool is_url(const char *s)
{
	if (strstr(s, "://"))
		return true;
	/* scp-like user@host:path (a local path with ':' has a '/' before it) */
	const char *colon = strchr(s, ':');
	const char *slash = strchr(s, '/');
	return colon && strchr(s, '@') && (!slash || colon < slash);
}

int git_source_url(const char *source, struct buf *ret_url, struct err *e)
{
	if (!source || !*source)
		return err_set(e, -EINVAL, "no source given");
	if (source[0] == '-') {
		_cleanup_free_ char *shown = url_redacted(source);
		return err_set(e, -EINVAL, "bad source '%s'", shown);
	}
	buf_reset(ret_url);
	if (is_url(source))
		return buf_adds(ret_url, source);
	char *real = realpath(source, NULL);
	if (!real)
		return err_set_errno(e, -errno, "'%s' is not a git URL or an existing repository path",
			       source);
	buf_adds(ret_url, real);
	free(real);
	return 0;
}

int git_source_app(const char *source, struct buf *ret_app, struct err *e)
{
	size_t n = strlen(source);
	while (n > 1 && source[n - 1] == '/')
		n--;
	size_t start = n;
	while (start > 0 && source[start - 1] != '/' && source[start - 1] != ':')
		start--;
	size_t len = n - start;
	if (len > 4 && !strncmp(source + start + len - 4, ".git", 4))
		len -= 4;
	_cleanup_free_ char *name = xstrndup(source + start, len);
	if (!app_name_ok(name)) {
		_cleanup_free_ char *shown = url_redacted(source);
		return err_set(e, -EINVAL, "cannot derive an app name from '%s' ('%s' is not a "
			       "valid name): use --app NAME", shown, name);
	}
	buf_reset(ret_app);
	buf_adds(ret_app, name);
	return 0;
}

/* Runs git with args (NULL-terminated); stdout to out_fd (>= 0) or into
 * capture (may be NULL). With ap, the credentials of the source URL reach
 * git through its askpass, never its argv or environment. Returns 0, -EIO
 * with git's exit status in the message, or -errno. */
static int git_argv(const char *git_dir, int log_fd, int out_fd, struct buf *capture,
		    const struct askpass *ap, const char *const *args, struct err *e)
{
	struct proc p = PROC_INIT;

	strv_push(&p.argv, "git");
	if (git_dir)
		strv_pushf(&p.argv, "--git-dir=%s", git_dir);
	/* no credential helper of the host keeps what the askpass answers */
	strv_push(&p.argv, "-c");
	strv_push(&p.argv, "credential.helper=");
	for (; *args; args++)
		strv_push(&p.argv, *args);
	extern char **environ;
	for (char **v = environ; *v; v++)
		strv_push(&p.env, *v);
	/* never ask for credentials on a terminal in the middle of a build;
	 * and no way to the terminal or the keyring upaas runs with, for git
	 * or the helpers it runs (ssh, credential helpers) */
	strv_setenv(&p.env, "GIT_TERMINAL_PROMPT", "0");
	p.new_session = true;
	strv_setenv(&p.env, "LC_ALL", "C");
	if (ap) {
		askpass_env(ap, &p.env);
		p.child_setup = askpass_child_setup;
		p.child_data = (void *)ap;
	}
	p.stdout_fd = out_fd;
	p.capture = capture;
	p.stderr_fd = log_fd;   /* messages in the build log, not the terminal */
	if (log_fd < 0 && capture)
		p.stderr_fd = -1;
	p.timeout_ms = GIT_TIMEOUT_MS;
	int r = proc_run(&p, e);
	if (r > 0) {
		_cleanup_buf_ struct buf d = BUF_INIT;
		proc_describe(&p, &d);
		r = err_set(e, -EIO, "'%s' exited with status %d", d.p, r);
	}
	proc_free(&p);
	return r;
}

#define GIT_MAX_ARGS 16

/* git_argv() with the args as a NULL-terminated list, stdout into capture. */
static int git(const char *git_dir, int log_fd, struct buf *capture, struct err *e, ...)
{
	const char *args[GIT_MAX_ARGS + 1];
	size_t n = 0;
	va_list ap;

	va_start(ap, e);
	for (const char *a; (a = va_arg(ap, const char *)) && n < GIT_MAX_ARGS;)
		args[n++] = a;
	va_end(ap);
	args[n] = NULL;
	return git_argv(git_dir, log_fd, -1, capture, NULL, args, e);
}

/* git() for the commands that talk to the remote: with the askpass. */
static int git_remote(const char *git_dir, int log_fd, struct buf *capture,
		      const struct askpass *ap, struct err *e, ...)
{
	const char *args[GIT_MAX_ARGS + 1];
	size_t n = 0;
	va_list va;

	va_start(va, e);
	for (const char *a; (a = va_arg(va, const char *)) && n < GIT_MAX_ARGS;)
		args[n++] = a;
	va_end(va);
	args[n] = NULL;
	return git_argv(git_dir, log_fd, -1, capture, ap, args, e);
}

/* Points HEAD at the remote's default branch (as `git clone` does). */
static void mirror_follow_head(const char *mirror, int log_fd, const struct askpass *ap)
{
	_cleanup_buf_ struct buf out = BUF_INIT;
	_cleanup_err_ struct err e = ERR_INIT;
	buf_init(&out, 1u << 20);
	if (git_remote(mirror, log_fd, &out, ap, &e, "ls-remote", "--symref", "origin", "HEAD",
		       NULL) < 0)
		return;
	/* "ref: refs/heads/main\tHEAD" */
	if (strncmp(out.p, "ref: refs/heads/", 16))
		return;
	size_t n = strcspn(out.p + 5, "\t\n");
	_cleanup_free_ char *ref = xstrndup(out.p + 5, n);
	git(mirror, log_fd, NULL, &e, "symbolic-ref", "HEAD", ref, NULL);
}

static void askpass_closep(struct askpass *a)
{
	askpass_close(a);
}

int git_mirror_update(const struct config *c, const char *app, const char *url,
		      const char *user, const char *pass, bool update_head, int log_fd,
		      struct buf *ret_mirror, struct err *e)
{
	_cleanup_free_ char *dir = path_join(c->paths.cache, "git");
	_cleanup_free_ char *mirror = xasprintf("%s/%s.git", dir, app);
	_cleanup_free_ char *lockp = xasprintf("%s/%s.lock", dir, app);
	_cleanup_(askpass_closep) struct askpass cred = { .fd = -1 };
	const struct askpass *ap = NULL;
	int r = fs_mkdir_p(dir, 0755);
	if (r < 0)
		return err_set_errno(e, r, "cannot create '%s'", dir);
	_cleanup_close_ int lock = lock_file(lockp, true, e);
	if (lock < 0)
		return lock;
	if (user || pass) {
		r = askpass_open(&cred, user, pass, e);
		if (r < 0)
			return r;
		ap = &cred;
	}

	struct stat st;
	if (lstat(mirror, &st) == 0 && S_ISDIR(st.st_mode)) {
		r = git(mirror, log_fd, NULL, e, "remote", "set-url", "origin", "--", url, NULL);
		if (r >= 0)
			r = git_remote(mirror, log_fd, NULL, ap, e, "fetch", "--prune", "--quiet",
				       "origin", NULL);
		if (r < 0)
			return err_prefix(e, "cannot update the mirror of '%s'", url);
		if (update_head)
			mirror_follow_head(mirror, log_fd, ap);
	} else {
		/* cloned next to it and renamed: a half-done clone is never
		 * taken for a mirror */
		_cleanup_free_ char *tmp = xasprintf("%s/.%s.git.tmp", dir, app);
		r = fs_rm_rf(tmp, e);
		if (r < 0)
			return r;
		r = git_remote(NULL, log_fd, NULL, ap, e, "clone", "--mirror", "--quiet", "--", url,
			       tmp, NULL);
		if (r >= 0 && rename(tmp, mirror) < 0)
			r = err_set_errno(e, -errno, "cannot rename '%s'", tmp);
		if (r < 0) {
			_cleanup_err_ struct err e2 = ERR_INIT;
			fs_rm_rf(tmp, &e2);
			return err_prefix(e, "cannot clone '%s'", url);
		}
	}
	buf_reset(ret_mirror);
	buf_adds(ret_mirror, mirror);
	return 0;
}

static bool ref_ok(const char *ref)
{
	if (!*ref || ref[0] == '-' || strlen(ref) > 255)
		return false;
	for (const char *p = ref; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f)
			return false;
	return true;
}

int git_resolve(const char *mirror, const char *ref, struct buf *ret_commit,
		struct buf *ret_refname, struct err *e)
{
	_cleanup_buf_ struct buf out = BUF_INIT;
	_cleanup_buf_ struct buf name = BUF_INIT;
	_cleanup_err_ struct err ig = ERR_INIT;
	int r;

	buf_init(&out, 4096);
	if (!ref) {
		r = git(mirror, -1, &out, &ig, "symbolic-ref", "-q", "HEAD", NULL);
		buf_rtrim(&out);
		buf_adds(&name, r >= 0 && out.len ? out.p : "HEAD");
		buf_reset(&out);
		ref = "HEAD";
	} else {
		if (!ref_ok(ref))
			return err_set(e, -EINVAL, "bad ref '%s'", ref);
		buf_adds(&name, ref);
		/* the full name, for the manifest */
		if (git(mirror, -1, &out, &ig, "rev-parse", "--symbolic-full-name", "--end-of-options",
			ref, NULL) >= 0) {
			buf_rtrim(&out);
			/* git before 2.43 echoes --end-of-options back */
			const char *full = out.p;
			if (!strncmp(full, "--end-of-options\n", 17))
				full += 17;
			else if (!strcmp(full, "--end-of-options"))
				full += 16;
			if (*full && !strchr(full, '\n')) {
				_cleanup_free_ char *copy = xstrdup(full);
				buf_reset(&name);
				buf_adds(&name, copy);
			}
		}
		buf_reset(&out);
	}
	_cleanup_free_ char *spec = xasprintf("%s^{commit}", ref);
	r = git(mirror, -1, &out, &ig, "rev-parse", "--verify", "--quiet", "--end-of-options", spec,
		NULL);
	buf_rtrim(&out);
	if (r < 0 || out.len < 40)
		return err_set(e, -ENOENT, "ref '%s' not found in the repository", ref);
	buf_reset(ret_commit);
	buf_adds(ret_commit, out.p);
	if (ret_refname) {
		buf_reset(ret_refname);
		buf_adds(ret_refname, name.p);
	}
	return 0;
}

int git_show_file(const char *mirror, const char *commit, const char *path, struct buf *out,
		  size_t max, struct err *e)
{
	_cleanup_free_ char *spec = xasprintf("%s:%s", commit, path);
	_cleanup_err_ struct err ig = ERR_INIT;
	_cleanup_buf_ struct buf type = BUF_INIT;
	buf_init(&type, 64);
	/* a missing file and a failing git are different errors */
	int r = git(mirror, -1, &type, &ig, "cat-file", "-t", "--end-of-options", spec, NULL);
	buf_rtrim(&type);
	if (r < 0 || strcmp(type.p, "blob"))
		return -ENOENT;
	buf_free(out);
	buf_init(out, max);
	r = git(mirror, -1, out, e, "cat-file", "blob", spec, NULL);
	if (r == -E2BIG)
		return err_set(e, r, "'%s' is larger than %zu bytes", path, max);
	return r;
}

int git_commit_time(const char *mirror, const char *commit, int64_t *ret, struct err *e)
{
	_cleanup_buf_ struct buf out = BUF_INIT;
	buf_init(&out, 256);
	int r = git(mirror, -1, &out, e, "show", "-s", "--format=%ct", commit, "--", NULL);
	if (r < 0)
		return r;
	buf_rtrim(&out);
	int64_t t;
	r = parse_int64(out.p, 0, INT64_MAX, &t);
	if (r < 0)
		return err_set(e, r, "bad commit time '%s' of %s", out.p, commit);
	*ret = t;
	return 0;
}

/* 40 (sha1) or 64 (sha256) lowercase hex digits. */
static bool commit_id_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	return (n == 40 || n == 64) && strspn(s, "0123456789abcdef") == n;
}

int git_archive_to_fd(const char *mirror, const char *commit, int fd, int log_fd, struct err *e)
{
	if (!commit_id_ok(commit))
		return err_set(e, -EINVAL, "bad commit id '%s'", commit ? commit : "");
	const char *args[] = { "archive", "--format=tar", "--end-of-options", commit, NULL };
	int r = git_argv(mirror, log_fd, fd, NULL, NULL, args, e);
	return r < 0 ? err_prefix(e, "cannot archive commit %.12s", commit) : 0;
}

int git_deleted_files(const char *mirror, const char *from, const char *to, int log_fd,
		      struct buf *ret, struct err *e)
{
	/* from comes from a stored manifest: it must be a commit id before
	 * it goes anywhere near git's argv */
	if (!commit_id_ok(from))
		return err_set(e, -EINVAL, "the base package's commit is not a commit id");
	if (!commit_id_ok(to))
		return err_set(e, -EINVAL, "bad commit id '%s'", to ? to : "");
	_cleanup_buf_ struct buf out = BUF_INIT;
	buf_init(&out, GIT_DELETED_MAX);
	const char *args[] = { "diff", "--name-only", "-z", "--no-renames", "--diff-filter=D",
			       "--end-of-options", from, to, "--", NULL };
	int r = git_argv(mirror, log_fd, -1, &out, NULL, args, e);
	if (r < 0)
		return r;
	buf_free(ret);
	*ret = out;
	out = (struct buf)BUF_INIT;
	return 0;
}
