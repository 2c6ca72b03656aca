/*
 * builder/git.c - the host side of an app's repository: one bare mirror per
 * app, updated incrementally, read with plumbing commands. git always runs
 * by argv through proc_*, never through a shell.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/socket.h>
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

/* The transports a submodule's URL may use (GIT_ALLOW_PROTOCOL): never
 * ext:: or fd::, which run commands or use fds; file only where the admin
 * allows local paths (git.local_paths). */
#define GIT_REMOTE_PROTOCOLS "http:https:git:ssh"

/* Runs git with args (NULL-terminated); stdout to out_fd (>= 0) or into
 * capture (may be NULL). With ap, the credentials of the source URL reach
 * git through its askpass, never its argv or environment; with protocols,
 * git may use only those transports (GIT_ALLOW_PROTOCOL). Returns 0, -EIO
 * with git's exit status in the message, or -errno. */
static int git_argv_p(const char *git_dir, int log_fd, int out_fd, struct buf *capture,
		      const struct askpass *ap, const char *protocols, const char *const *args,
		      struct err *e)
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
	if (protocols)
		strv_setenv(&p.env, "GIT_ALLOW_PROTOCOL", protocols);
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

static int git_argv(const char *git_dir, int log_fd, int out_fd, struct buf *capture,
		    const struct askpass *ap, const char *const *args, struct err *e)
{
	return git_argv_p(git_dir, log_fd, out_fd, capture, ap, NULL, args, e);
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

bool git_has_commit(const char *git_dir, const char *commit)
{
	_cleanup_err_ struct err ig = ERR_INIT;
	_cleanup_free_ char *spec = xasprintf("%s^{commit}", commit);
	const char *args[] = { "cat-file", "-e", "--end-of-options", spec, NULL };
	return git_argv(git_dir, -1, -1, NULL, NULL, args, &ig) == 0;
}

/*
 * Creates or updates the bare mirror <dir>/<name>.git of url under the
 * flock <dir>/<name>.lock. With only_if_missing (a commit id), an existing
 * mirror that already has that commit is not fetched again.
 */
static int mirror_update_in(const char *dir, const char *name, const char *url, bool update_head,
			    const struct askpass *ap, const char *protocols,
			    const char *only_if_missing, int log_fd, struct buf *ret_mirror,
			    struct err *e)
{
	_cleanup_free_ char *mirror = xasprintf("%s/%s.git", dir, name);
	_cleanup_free_ char *lockp = xasprintf("%s/%s.lock", dir, name);
	int r = fs_mkdir_p(dir, 0755);
	if (r < 0)
		return err_set_errno(e, r, "cannot create '%s'", dir);
	_cleanup_close_ int lock = lock_file(lockp, true, e);
	if (lock < 0)
		return lock;

	struct stat st;
	if (lstat(mirror, &st) == 0 && S_ISDIR(st.st_mode)) {
		if (!only_if_missing || !git_has_commit(mirror, only_if_missing)) {
			const char *seturl[] = { "remote", "set-url", "origin", "--", url, NULL };
			const char *fetch[] = { "fetch", "--prune", "--quiet", "origin", NULL };
			r = git_argv(mirror, log_fd, -1, NULL, NULL, seturl, e);
			if (r >= 0)
				r = git_argv_p(mirror, log_fd, -1, NULL, ap, protocols, fetch, e);
			if (r < 0)
				return err_prefix(e, "cannot update the mirror of '%s'", url);
			if (update_head)
				mirror_follow_head(mirror, log_fd, ap);
		}
	} else {
		/* cloned next to it and renamed: a half-done clone is never
		 * taken for a mirror */
		_cleanup_free_ char *tmp = xasprintf("%s/.%s.git.tmp", dir, name);
		r = fs_rm_rf(tmp, e);
		if (r < 0)
			return r;
		const char *clone[] = { "clone", "--mirror", "--quiet", "--", url, tmp, NULL };
		r = git_argv_p(NULL, log_fd, -1, NULL, ap, protocols, clone, e);
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

static void askpass_closep(struct askpass *a)
{
	askpass_close(a);
}

int git_mirror_update(const struct config *c, const char *app, const char *url,
		      const char *user, const char *pass, bool update_head, int log_fd,
		      struct buf *ret_mirror, struct err *e)
{
	_cleanup_free_ char *dir = path_join(c->paths.cache, "git");
	_cleanup_(askpass_closep) struct askpass cred = { .fd = -1 };
	const struct askpass *ap = NULL;
	if (user || pass) {
		int r = askpass_open(&cred, user, pass, e);
		if (r < 0)
			return r;
		ap = &cred;
	}
	return mirror_update_in(dir, app, url, update_head, ap, NULL, NULL, log_fd, ret_mirror, e);
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

/* Why HEAD names no commit: an empty repository, or a default branch
 * without a commit (an unborn HEAD), with the branches there are. */
static int unborn_head(const char *mirror, const char *head, struct err *e)
{
	_cleanup_buf_ struct buf refs = BUF_INIT;
	_cleanup_err_ struct err ig = ERR_INIT;
	buf_init(&refs, 4096);
	git(mirror, -1, &refs, &ig, "for-each-ref", "--count=5", "--format=%(refname:short)",
	    "refs/heads/", "refs/tags/", NULL);
	buf_rtrim(&refs);
	if (!refs.len)
		return err_set(e, -ENOENT, "the repository is empty: it has no commit yet");
	for (char *p = refs.p; (p = strchr(p, '\n'));)
		*p = ' ';
	const char *branch = !strncmp(head, "refs/heads/", 11) ? head + 11 : head;
	return err_set(e, -ENOENT, "the default branch '%s' has no commit yet (an unborn HEAD): "
		       "build another branch or tag with --ref (there are: %s)", branch, refs.p);
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
	if ((r < 0 || out.len < 40) && !strcmp(ref, "HEAD"))
		return unborn_head(mirror, name.p, e);
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
	/* the size first: a file over max is refused with its size and the
	 * limit, not with git's output cut short */
	_cleanup_buf_ struct buf size = BUF_INIT;
	buf_init(&size, 64);
	r = git(mirror, -1, &size, e, "cat-file", "-s", "--end-of-options", spec, NULL);
	if (r < 0)
		return r;
	buf_rtrim(&size);
	int64_t n;
	if (parse_int64(size.p, 0, INT64_MAX, &n) < 0)
		return err_set(e, -EIO, "git gave the size of '%s' as '%s'", path, size.p);
	if ((uint64_t)n > max)
		return err_set(e, -E2BIG, "'%s' is %lld bytes: it may be at most %zu bytes", path,
			       (long long)n, max);
	buf_free(out);
	buf_init(out, max);
	return git(mirror, -1, out, e, "cat-file", "blob", spec, NULL);
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

/* ------------------------------------------------------------ submodules */

#define GIT_MODULES_MAX 256          /* submodules of one build, all levels */
#define GIT_MODULES_DEPTH 8          /* submodules of submodules of ... */
#define GIT_LS_TREE_MAX ((size_t)256 << 20)
#define GIT_MODULES_FILE_MAX ((size_t)1 << 20)
#define GIT_URL_MAX 4096

void git_modules_free(struct git_modules *m)
{
	for (size_t i = 0; i < m->n; i++) {
		free(m->v[i].path);
		free(m->v[i].url);
		free(m->v[i].mirror);
		free(m->v[i].commit);
	}
	free(m->v);
	*m = (struct git_modules)GIT_MODULES_INIT;
}

/* "host:path" or "user@host:path" (ssh), as git reads it: a ':' before any
 * '/', and not a drive letter or a helper's "x::" */
static bool url_scp_like(const char *s)
{
	const char *colon = strchr(s, ':');
	const char *slash = strchr(s, '/');
	return colon && colon > s && (!slash || colon < slash) && colon[1] != ':';
}

/*
 * A submodule URL relative to the superproject's ("../lib.git",
 * "./vendor"), resolved as git does: each "../" takes one component off
 * base, each "./" none; anything else is returned as it is.
 */
static int module_url_resolve(const char *base, const char *rel, struct buf *out,
			      struct err *e)
{
	buf_reset(out);
	if (strncmp(rel, "./", 2) && strncmp(rel, "../", 3))
		return buf_adds(out, rel);
	_cleanup_free_ char *b = xstrdup(base);
	size_t n = strlen(b);
	while (n > 1 && b[n - 1] == '/')
		b[--n] = '\0';
	/* what "../" may not cut into: "scheme://host" or "host:" */
	const char *sep = strstr(b, "://");
	size_t floor = 0;
	if (sep)
		floor = (size_t)(strchrnul(sep + 3, '/') - b);
	else if (url_scp_like(b))
		floor = (size_t)(strchr(b, ':') - b) + 1;
	bool colon = false;
	for (;;) {
		if (!strncmp(rel, "./", 2)) {
			rel += 2;
		} else if (!strncmp(rel, "../", 3)) {
			rel += 3;
			char *slash = strrchr(b, '/');
			if (slash && (size_t)(slash - b) >= floor && slash > b) {
				*slash = '\0';
			} else if (!sep && floor && strlen(b) > floor) {
				b[floor - 1] = '\0';   /* "host:repo" -> "host" + ":" */
				colon = true;
			} else {
				return err_set(e, -EINVAL, "cannot resolve the relative submodule URL "
					       "'%s' against '%s'", rel, base);
			}
		} else {
			break;
		}
	}
	buf_addf(out, "%s%s%s", b, colon ? ":" : "/", rel);
	while (out->len > 1 && out->p[out->len - 1] == '/')
		buf_setlen(out, out->len - 1);
	return 0;
}

/* true when path is dir or below it (both absolute, canonical). */
static bool path_below(const char *path, const char *dir)
{
	size_t n = strlen(dir);
	while (n > 1 && dir[n - 1] == '/')
		n--;
	return !strncmp(path, dir, n) && (path[n] == '/' || path[n] == '\0' || n == 1);
}

/*
 * Checks a submodule URL (data from the repository) like a source URL and
 * more: never an option, never a remote helper (ext::, fd::), only the
 * transports of GIT_REMOTE_PROTOCOLS, and a local path (or file://) only
 * inside git.local_paths. ret_url gets what to clone (a local path made
 * canonical), ret_protocols what git may use for it.
 */
static int module_url_check(const struct config *c, const char *name, const char *url,
			    struct buf *ret_url, const char **ret_protocols, struct err *e)
{
	size_t n = strlen(url);
	if (!n || n > GIT_URL_MAX)
		return err_set(e, -EINVAL, "submodule '%s': bad URL", name);
	for (const char *p = url; *p; p++)
		if ((unsigned char)*p < ' ' || *p == 0x7f)
			return err_set(e, -EINVAL, "submodule '%s': URL with a control character", name);
	if (url[0] == '-')
		return err_set(e, -EINVAL, "submodule '%s': URL '%s' looks like an option", name, url);
	const char *scheme_end = strstr(url, "://");
	const char *helper = strstr(url, "::");
	if (helper && (!scheme_end || helper < scheme_end))
		return err_set(e, -EPERM, "submodule '%s': URL '%s' names a git remote helper, "
			       "which upaas does not run", name, url);
	buf_reset(ret_url);
	*ret_protocols = GIT_REMOTE_PROTOCOLS;
	const char *local = NULL;
	if (scheme_end) {
		static const char *const ok[] = { "https", "http", "git", "ssh", "git+ssh", "ssh+git" };
		size_t sl = (size_t)(scheme_end - url);
		bool known = false;
		for (size_t i = 0; i < ARRAY_SIZE(ok); i++)
			known |= strlen(ok[i]) == sl && !strncmp(url, ok[i], sl);
		if (sl == 4 && !strncmp(url, "file", 4))
			local = scheme_end + 3;
		else if (!known)
			return err_set(e, -EPERM, "submodule '%s': URL '%s': the transport '%.*s' is "
				       "not allowed (https, http, git, ssh)", name, url, (int)sl, url);
		else if (scheme_end[3] == '-')
			return err_set(e, -EINVAL, "submodule '%s': URL '%s' looks like an option",
				       name, url);
	} else if (url_scp_like(url)) {
		const char *host = strchr(url, '@');
		host = host && host < strchr(url, ':') ? host + 1 : url;
		if (*host == '-')
			return err_set(e, -EINVAL, "submodule '%s': URL '%s' looks like an option",
				       name, url);
	} else {
		local = url;
	}
	if (!local)
		return buf_adds(ret_url, url);

	/* a local repository: only where the admin allows it */
	_cleanup_free_ char *real = local[0] == '/' ? realpath(local, NULL) : NULL;
	if (local[0] != '/' || !real)
		return err_set(e, local[0] == '/' ? -ENOENT : -EINVAL, "submodule '%s': '%s' is "
			       "not an existing absolute path", name, url);
	for (size_t i = 0; i < c->git.local_paths.n; i++) {
		_cleanup_free_ char *dir = realpath(c->git.local_paths.v[i], NULL);
		if (dir && path_below(real, dir)) {
			*ret_protocols = GIT_REMOTE_PROTOCOLS ":file";
			return buf_adds(ret_url, real);
		}
	}
	return err_set(e, -EPERM, "submodule '%s': the local path '%s' is not inside "
		       "git.local_paths of the admin config%s", name, real,
		       c->git.local_paths.n ? "" : " (none is allowed)");
}

/* The gitlinks of commit: paths and recorded commits. */
static int gitlinks(const char *mirror, const char *commit, struct strv *paths,
		    struct strv *commits, struct err *e)
{
	_cleanup_buf_ struct buf out = BUF_INIT;
	buf_init(&out, GIT_LS_TREE_MAX);
	const char *args[] = { "ls-tree", "-r", "-z", "--full-tree", "--end-of-options", commit,
			       NULL };
	int r = git_argv(mirror, -1, -1, &out, NULL, args, e);
	if (r == -E2BIG)
		return err_set(e, r, "the tree of %.12s is too large to list", commit);
	if (r < 0)
		return r;
	for (const char *p = out.p; p < out.p + out.len; p += strlen(p) + 1) {
		/* "160000 commit <id>\t<path>" */
		if (strncmp(p, "160000 commit ", 14))
			continue;
		const char *tab = strchr(p, '\t');
		if (!tab)
			continue;
		_cleanup_free_ char *id = xstrndup(p + 14, (size_t)(tab - p - 14));
		if (!commit_id_ok(id) || !path_rel_ok(tab + 1))
			return err_set(e, -EINVAL, "submodule at '%s': bad path or commit in the tree",
				       tab + 1);
		strv_push(paths, tab + 1);
		strv_push(commits, id);
	}
	return 0;
}

/* .gitmodules at commit: submodule name -> path and name -> url. */
static int gitmodules_read(const char *mirror, const char *commit, struct kvlist *paths,
			   struct kvlist *urls, struct err *e)
{
	_cleanup_buf_ struct buf out = BUF_INIT;
	_cleanup_err_ struct err ig = ERR_INIT;
	_cleanup_free_ char *blob = xasprintf("%s:.gitmodules", commit);
	buf_init(&out, GIT_MODULES_FILE_MAX);
	const char *type[] = { "cat-file", "-t", "--end-of-options", blob, NULL };
	if (git_argv(mirror, -1, -1, &out, NULL, type, &ig) < 0)
		return 0;   /* no .gitmodules */
	buf_rtrim(&out);
	if (strcmp(out.p, "blob"))
		return 0;
	buf_reset(&out);
	const char *args[] = { "config", "--blob", blob, "-z", "--get-regexp",
			       "^submodule\\..*\\.(path|url)$", NULL };
	int r = git_argv(mirror, -1, -1, &out, NULL, args, &ig);
	if (r == -E2BIG)
		return err_set(e, r, ".gitmodules at %.12s is larger than %zu bytes", commit,
			       GIT_MODULES_FILE_MAX);
	if (r < 0)
		return 0;   /* exit 1: nothing matched */
	for (const char *p = out.p; p < out.p + out.len; p += strlen(p) + 1) {
		/* "submodule.NAME.path\nVALUE" */
		const char *nl = strchr(p, '\n');
		if (!nl || strncmp(p, "submodule.", 10))
			continue;
		const char *dot = nl;
		while (dot > p + 10 && *dot != '.')
			dot--;
		if (dot <= p + 10)
			continue;
		_cleanup_free_ char *name = xstrndup(p + 10, (size_t)(dot - p - 10));
		if (!strncmp(dot, ".path\n", 6))
			kvlist_set(paths, name, nl + 1);
		else if (!strncmp(dot, ".url\n", 5))
			kvlist_set(urls, name, nl + 1);
	}
	return 0;
}

static int modules_walk(const struct config *c, const char *mirror, const char *commit,
			const char *url, const char *prefix, unsigned depth, bool fetch, int log_fd,
			struct git_modules *out, struct err *e)
{
	_cleanup_strv_ struct strv lpaths = STRV_INIT, lcommits = STRV_INIT;
	struct kvlist paths = KVLIST_INIT, urls = KVLIST_INIT;
	int r = gitlinks(mirror, commit, &lpaths, &lcommits, e);
	if (r >= 0 && lpaths.n)
		r = gitmodules_read(mirror, commit, &paths, &urls, e);
	for (size_t i = 0; r >= 0 && i < lpaths.n; i++) {
		_cleanup_free_ char *full = xasprintf("%s%s", prefix, lpaths.v[i]);
		const char *name = NULL;
		for (size_t j = 0; j < paths.n && !name; j++)
			if (!strcmp(paths.v[j].val, lpaths.v[i]))
				name = paths.v[j].key;
		const char *rel = name ? kvlist_get(&urls, name) : NULL;
		if (!rel) {
			/* git itself leaves such a gitlink an empty directory */
			if (log_fd >= 0) {
				_cleanup_free_ char *m = xasprintf("warning: the submodule at '%s' has "
								   "no URL in .gitmodules: left empty", full);
				log_line_fd(log_fd, m, strlen(m));
			}
			continue;
		}
		if (depth >= GIT_MODULES_DEPTH || out->n >= GIT_MODULES_MAX) {
			r = err_set(e, -ELOOP, "submodule '%s': more than %d levels or %d submodules",
				    full, GIT_MODULES_DEPTH, GIT_MODULES_MAX);
			break;
		}
		_cleanup_buf_ struct buf abs = BUF_INIT, sub_url = BUF_INIT, sub_mirror = BUF_INIT;
		const char *protocols = NULL;
		r = module_url_resolve(url, rel, &abs, e);
		if (r >= 0)
			r = module_url_check(c, full, abs.p, &sub_url, &protocols, e);
		if (r < 0)
			break;
		char hex[65];
		sha256_hex(sub_url.p, sub_url.len, hex);
		hex[32] = '\0';
		_cleanup_free_ char *dir = path_join(c->paths.cache, "git/modules");
		if (log_fd >= 0 && fetch) {
			_cleanup_free_ char *m = xasprintf("submodule '%s': %s at %s", full, sub_url.p,
							   lcommits.v[i]);
			log_line_fd(log_fd, m, strlen(m));
		}
		if (fetch) {
			r = mirror_update_in(dir, hex, sub_url.p, false, NULL, protocols,
					     lcommits.v[i], log_fd, &sub_mirror, e);
			if (r < 0) {
				err_prefix(e, "submodule '%s'", full);
				break;
			}
		} else {
			buf_reset(&sub_mirror);
			buf_addf(&sub_mirror, "%s/%s.git", dir, hex);
		}
		struct stat st;
		if (lstat(sub_mirror.p, &st) < 0 || !git_has_commit(sub_mirror.p, lcommits.v[i])) {
			r = err_set(e, fetch ? -ENOENT : -ESTALE, "submodule '%s': commit %s is not "
				    "in %s'%s'", full, lcommits.v[i], fetch ? "" : "the mirror of ",
				    sub_url.p);
			break;
		}
		out->v = xrealloc(out->v, (out->n + 1) * sizeof(*out->v));
		out->v[out->n++] = (struct git_module){
			.path = xstrdup(full),
			.url = xstrdup(sub_url.p),
			.mirror = xstrdup(sub_mirror.p),
			.commit = xstrdup(lcommits.v[i]),
		};
		_cleanup_free_ char *sub_prefix = xasprintf("%s/", full);
		r = modules_walk(c, sub_mirror.p, lcommits.v[i], sub_url.p, sub_prefix, depth + 1,
				 fetch, log_fd, out, e);
	}
	kvlist_free(&paths);
	kvlist_free(&urls);
	return r;
}

int git_modules_resolve(const struct config *c, const char *mirror, const char *commit,
			const char *url, bool fetch, int log_fd, struct git_modules *ret,
			struct err *e)
{
	struct git_modules m = GIT_MODULES_INIT;
	if (!commit_id_ok(commit))
		return err_set(e, -EINVAL, "bad commit id '%s'", commit ? commit : "");
	int r = modules_walk(c, mirror, commit, url, "", 0, fetch, log_fd, &m, e);
	if (r < 0) {
		git_modules_free(&m);
		return r;
	}
	*ret = m;
	return 0;
}

/* ------------------------------------------------------------ trees */

void git_tree_free(struct git_tree *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->v[i].path);
	free(t->v);
	*t = (struct git_tree)GIT_TREE_INIT;
}

static int entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct git_entry *)a)->path, ((const struct git_entry *)b)->path);
}

/* Adds the entries of commit's tree in mirror below prefix (src: which
 * mirror), a submodule's in place of its gitlink. */
static int tree_walk(const char *mirror, const char *commit, const char *prefix, unsigned src,
		     const struct git_modules *mods, unsigned depth, struct git_tree *t,
		     struct err *e)
{
	_cleanup_buf_ struct buf out = BUF_INIT;
	buf_init(&out, GIT_LS_TREE_MAX);
	const char *args[] = { "ls-tree", "-r", "-z", "--full-tree", "--end-of-options", commit,
			       NULL };
	int r = git_argv(mirror, -1, -1, &out, NULL, args, e);
	if (r == -E2BIG)
		return err_set(e, r, "the tree of %.12s is too large to list", commit);
	if (r < 0)
		return r;
	for (const char *p = out.p; p < out.p + out.len; p += strlen(p) + 1) {
		/* "<mode> <type> <id>\t<path>" */
		const char *sp1 = strchr(p, ' ');
		const char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
		const char *tab = sp2 ? strchr(sp2 + 1, '\t') : NULL;
		if (!tab || (size_t)(tab - sp2 - 1) > 64)
			return err_set(e, -EIO, "cannot read the tree of %.12s", commit);
		_cleanup_free_ char *id = xstrndup(sp2 + 1, (size_t)(tab - sp2 - 1));
		const char *path = tab + 1;
		unsigned mode;
		if (!strncmp(p, "100644 ", 7))
			mode = 0100644;
		else if (!strncmp(p, "100755 ", 7))
			mode = 0100755;
		else if (!strncmp(p, "120000 ", 7))
			mode = 0120000;
		else if (!strncmp(p, "160000 ", 7))
			mode = 0160000;
		else
			continue;   /* git writes no other modes */
		_cleanup_free_ char *full = xasprintf("%s%s", prefix, path);
		if (!commit_id_ok(id) || !path_rel_ok(full))
			return err_set(e, -EINVAL, "'%s' at %.12s: a path or an object id upaas "
				       "cannot check out", full, commit);
		if (mode == 0160000 && depth < GIT_MODULES_DEPTH) {
			size_t m = 0;
			while (m < mods->n && strcmp(mods->v[m].path, full))
				m++;
			if (m < mods->n) {
				_cleanup_free_ char *sub = xasprintf("%s/", full);
				r = tree_walk(mods->v[m].mirror, mods->v[m].commit, sub, (unsigned)m + 1,
					      mods, depth + 1, t, e);
				if (r < 0)
					return r;
				/* the submodule's own directory, even when empty */
			}
		}
		if (t->n == t->cap) {
			t->cap = t->cap ? 2 * t->cap : 256;
			t->v = xrealloc(t->v, t->cap * sizeof(*t->v));
		}
		struct git_entry *en = &t->v[t->n++];
		*en = (struct git_entry){ .path = TAKE_PTR(full), .mode = mode, .src = src };
		memcpy(en->oid, id, strlen(id) + 1);
	}
	return 0;
}

int git_tree_list(const char *mirror, const char *commit, const struct git_modules *mods,
		  struct git_tree *ret, struct err *e)
{
	struct git_tree t = GIT_TREE_INIT;
	if (!commit_id_ok(commit))
		return err_set(e, -EINVAL, "bad commit id '%s'", commit ? commit : "");
	int r = tree_walk(mirror, commit, "", 0, mods, 0, &t, e);
	if (r < 0) {
		git_tree_free(&t);
		return r;
	}
	if (t.n > 1)
		qsort(t.v, t.n, sizeof(*t.v), entry_cmp);
	*ret = t;
	return 0;
}

/* ------------------------------------------------------------ blobs */

int git_batch_start(struct git_batch *b, const char *mirror, struct err *e)
{
	int in[2], out[2];
	*b = (struct git_batch)GIT_BATCH_INIT;
	/* requests go through a socket: send(MSG_NOSIGNAL) to a git that
	 * died is an error, not a SIGPIPE */
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in) < 0)
		return err_set_errno(e, -errno, "cannot create a socket pair");
	if (pipe2(out, O_CLOEXEC) < 0) {
		int r = -errno;
		close(in[0]);
		close(in[1]);
		return err_set_errno(e, r, "cannot create a pipe");
	}
	strv_push(&b->p.argv, "git");
	strv_pushf(&b->p.argv, "--git-dir=%s", mirror);
	strv_push(&b->p.argv, "cat-file");
	strv_push(&b->p.argv, "--batch");
	extern char **environ;
	for (char **v = environ; *v; v++)
		strv_push(&b->p.env, *v);
	strv_setenv(&b->p.env, "LC_ALL", "C");
	b->p.stdin_fd = in[0];
	b->p.stdout_fd = out[1];
	int r = proc_start(&b->p, e);
	close(in[0]);
	close(out[1]);
	b->p.stdin_fd = b->p.stdout_fd = -1;
	if (r < 0) {
		close(in[1]);
		close(out[0]);
		proc_free(&b->p);
		return r;
	}
	b->in = in[1];
	b->out = out[0];
	b->started = true;
	return 0;
}

/* Reads up to n bytes of the answer into p (at least 1 unless at EOF). */
static ssize_t batch_read(struct git_batch *b, char *p, size_t n)
{
	if (b->len) {
		size_t k = n < b->len ? n : b->len;
		memcpy(p, b->buf + b->start, k);
		b->start += k;
		b->len -= k;
		return (ssize_t)k;
	}
	for (;;) {
		ssize_t r = read(b->out, p, n);
		if (r < 0 && errno == EINTR)
			continue;
		return r < 0 ? -errno : r;
	}
}

/* One line of the answer (without its newline) into line. */
static int batch_line(struct git_batch *b, struct buf *line)
{
	buf_reset(line);
	for (;;) {
		if (!b->len) {
			ssize_t r = read(b->out, b->buf, sizeof(b->buf));
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				return r < 0 ? -errno : -EPIPE;
			b->start = 0;
			b->len = (size_t)r;
		}
		char *nl = memchr(b->buf + b->start, '\n', b->len);
		size_t k = nl ? (size_t)(nl - b->buf - b->start) : b->len;
		if (buf_add(line, b->buf + b->start, k) < 0)
			return -E2BIG;
		b->start += k + (nl ? 1 : 0);
		b->len -= k + (nl ? 1 : 0);
		if (nl)
			return 0;
	}
}

int git_batch_blob(struct git_batch *b, const char *oid, sink_fn sink, void *data,
		   uint64_t *ret_size, struct err *e)
{
	if (!b->started || !commit_id_ok(oid))
		return err_set(e, -EINVAL, "bad object id '%s'", oid ? oid : "");
	_cleanup_free_ char *req = xasprintf("%s\n", oid);
	size_t rl = strlen(req);
	for (size_t off = 0; off < rl;) {
		ssize_t n = send(b->in, req + off, rl - off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return err_set_errno(e, -errno, "git cat-file: cannot ask for %s", oid);
		off += (size_t)n;
	}
	int r;
	_cleanup_buf_ struct buf line = BUF_INIT;
	buf_init(&line, 256);
	r = batch_line(b, &line);
	if (r < 0)
		return err_set_errno(e, r, "git cat-file: no answer for %s", oid);
	/* "<id> blob <size>" or "<id> missing" */
	size_t il = strlen(oid);
	int64_t size;
	if (strncmp(line.p, oid, il) || strncmp(line.p + il, " blob ", 6) ||
	    parse_int64(line.p + il + 6, 0, INT64_MAX, &size) < 0)
		return err_set(e, -ENOENT, "git cat-file: %s is not a blob of the repository (%s)",
			       oid, line.p);
	char blk[65536];
	uint64_t left = (uint64_t)size;
	int sr = 0;
	while (left > 0) {
		ssize_t n = batch_read(b, blk, left > sizeof(blk) ? sizeof(blk) : (size_t)left);
		if (n <= 0)
			return err_set_errno(e, n < 0 ? (int)n : -EPIPE, "git cat-file: %s cut short", oid);
		if (sr >= 0)
			sr = sink(data, blk, (size_t)n);   /* read the rest even so */
		left -= (uint64_t)n;
	}
	char nl;
	if (batch_read(b, &nl, 1) != 1 || nl != '\n')
		return err_set(e, -EIO, "git cat-file: bad answer after %s", oid);
	if (sr < 0)
		return err_set_errno(e, sr, "cannot write the content of %s", oid);
	if (ret_size)
		*ret_size = (uint64_t)size;
	return 0;
}

void git_batch_end(struct git_batch *b)
{
	if (!b->started)
		return;
	_cleanup_err_ struct err ig = ERR_INIT;
	close(b->in);
	close(b->out);
	proc_finish(&b->p, &ig);
	proc_free(&b->p);
	b->started = false;
}
