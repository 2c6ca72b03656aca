/*
 * storage/local.c - the "local" handler: objects are regular files under a
 * directory (storage.path, default <state>/storage) that mirrors the key.
 *
 * Safety:
 *  - every path is walked from the root with openat(O_NOFOLLOW) per
 *    component, so a symlink planted in the storage dir is never followed,
 *    for reads or writes;
 *  - an upload writes ".tmp-<random>" in the object's directory, fsyncs it,
 *    renames it over the final name and fsyncs the directory: a reader or a
 *    crash sees the old object or the new one, never half of one;
 *  - the writer holds an flock() on its temp file from its creation to
 *    its rename, so a temp file nobody holds is dead (its writer crashed):
 *    the next upload or listing that meets one in its directory, the next
 *    open of the storage, and `storage check` (storage_sweep_uploads)
 *    remove it at once; a live one is never touched;
 *  - ".tmp-" files are invisible to get/stat/list.
 */
#define UPAAS_STORAGE_INTERNAL 1

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "storage/storage-int.h"

#define TMP_PREFIX ".tmp-"
/* Directory depth we descend to when listing or cleaning. */
#define WALK_MAX_DEPTH 128

struct local {
	char *root;
	int root_fd;
};

struct local_upload {
	struct strv comps;   /* key split at '/' */
	int *fds;            /* directory fds of comps[0..n-2], owned */
	size_t n_fds;
	int fd;              /* the temp file, flock()ed until its rename */
	char tmp[32];        /* its name in the object's directory */
};

static struct local *L(struct storage *s)
{
	return s->priv;
}

/* Splits key into components; the local handler refuses empty components
 * (they would collapse on a filesystem) and names it uses itself. */
static int local_split(const char *key, struct strv *comps, struct err *e)
{
	const char *c = key;
	for (;;) {
		const char *end = strchr(c, '/');
		size_t n = end ? (size_t)(end - c) : strlen(c);
		if (n == 0)
			return err_set(e, -EINVAL,
				       "storage key '%s' has an empty component, which the local handler cannot store",
				       key);
		if (n >= strlen(TMP_PREFIX) && !strncmp(c, TMP_PREFIX, strlen(TMP_PREFIX)))
			return err_set(e, -EINVAL,
				       "storage key '%s' has a component starting with '" TMP_PREFIX
				       "', which the local handler reserves", key);
		if (n > 255)
			return err_set(e, -ENAMETOOLONG, "storage key '%s' has a component longer than 255 bytes",
				       key);
		strv_push_take(comps, xstrndup(c, n));
		if (!end)
			break;
		c = end + 1;
	}
	return 0;
}

/* The directory fds of one key's parents; fds[i] is comps[0..i]. */
struct dirchain {
	struct strv comps;
	int *fds;
	size_t n_fds;
};

static void dirchain_free(struct dirchain *d)
{
	for (size_t i = 0; i < d->n_fds; i++)
		close(d->fds[i]);
	free(d->fds);
	d->fds = NULL;
	d->n_fds = 0;
	strv_free(&d->comps);
}

/* The fd of the directory that holds the object. */
static int dirchain_fd(const struct local *l, const struct dirchain *d)
{
	return d->n_fds ? d->fds[d->n_fds - 1] : l->root_fd;
}

static const char *dirchain_base(const struct dirchain *d)
{
	return d->comps.v[d->comps.n - 1];
}

/*
 * Opens the parent directories of key without following symlinks, creating
 * them when create is set. -ENOENT when one is missing (and !create),
 * -ENOTDIR when one is not a directory (or is a symlink).
 */
static int dirchain_open(struct local *l, const char *key, bool create, struct dirchain *d,
			 struct err *e)
{
	int r = local_split(key, &d->comps, e);
	if (r < 0)
		return r;
	size_t n_dirs = d->comps.n - 1;
	d->fds = xcalloc(n_dirs ? n_dirs : 1, sizeof(int));
	for (size_t i = 0; i < n_dirs; i++) {
		int at = i ? d->fds[i - 1] : l->root_fd;
		const char *name = d->comps.v[i];
		int fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0 && errno == ENOENT && create) {
			if (mkdirat(at, name, 0755) < 0 && errno != EEXIST)
				return -errno;
			fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		}
		if (fd < 0)
			return errno == ELOOP ? -ENOTDIR : -errno;
		d->fds[d->n_fds++] = fd;
	}
	return 0;
}

/* Turns a dirchain_open() failure into a message. */
static int chain_error(struct local *l, const char *key, int r, struct err *e)
{
	if (e->code)   /* already described (bad key) */
		return r;
	if (r == -ENOTDIR)
		return err_set(e, r, "cannot store '%s' in '%s': a parent of it is not a directory",
			       key, l->root);
	return err_set_errno(e, r, "cannot open the directory of '%s' in '%s'", key, l->root);
}

/* ------------------------------------------------------------ cleaning */

/* A new open file description of the directory fd: a dup() would share
 * the read position with every other user of fd. */
static int reopen_dir(int fd)
{
	return openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

static bool is_tmp(const char *name)
{
	return !strncmp(name, TMP_PREFIX, strlen(TMP_PREFIX));
}

/*
 * Removes the temp file name in dfd when its writer is gone, that is when
 * nobody holds its flock(). Returns 1 when removed, 0 when it is alive (or
 * not a temp file), -errno on failure. The name is unlinked only while we
 * hold the lock and it still names the file we locked; a writer that takes
 * its lock after us finds its file unlinked (st_nlink 0) and starts over.
 */
static int tmp_reap(int dfd, const char *name)
{
	_cleanup_close_ int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	struct stat st, now;

	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return 0;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0)
		return errno == EWOULDBLOCK ? 0 : -errno;
	if (fstatat(dfd, name, &now, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (now.st_dev != st.st_dev || now.st_ino != st.st_ino)
		return 0;
	if (unlinkat(dfd, name, 0) < 0)
		return errno == ENOENT ? 0 : -errno;
	log_debug("removed the temp file '%s' of a dead upload", name);
	return 1;
}

/* What a sweep found: dead temp files removed, live ones left. */
struct sweep {
	struct buf path;     /* the directory's key prefix, "" or ending in '/' */
	storage_stale_fn cb; /* NULL: nobody asks */
	void *data;
	int removed;
	int r;               /* the first callback failure */
};

/* Reports one temp file to the sweep's callback. */
static void sweep_report(struct sweep *sw, int dfd, const char *name, bool removed,
			 const struct stat *st)
{
	if (!sw || !sw->cb || sw->r < 0)
		return;
	_cleanup_free_ char *key = xasprintf("%s%s", sw->path.p, name);
	struct storage_stale u = {
		.key = key,
		.started = st->st_mtime,   /* its last write: the best we know */
		.idle = now_unix() - st->st_mtime,
		.size = (uint64_t)st->st_size,
		.removed = removed,
	};
	int r = sw->cb(sw->data, &u);
	if (r < 0)
		sw->r = r;
}

/* Reaps the temp file name of dfd and reports it. */
static void sweep_one(struct sweep *sw, int dfd, const char *name)
{
	struct stat st;

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
		return;
	int r = tmp_reap(dfd, name);
	if (r > 0 && sw)
		sw->removed++;
	if (r >= 0)
		sweep_report(sw, dfd, name, r > 0, &st);
}

/* Removes the dead temp files of one directory (not below it). */
static void clean_dir(int dfd)
{
	int fd = reopen_dir(dfd);
	DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;

	if (!dir) {
		if (fd >= 0)
			close(fd);
		return;
	}
	for (struct dirent *de; (de = readdir(dir));)
		if (is_tmp(de->d_name))
			sweep_one(NULL, dirfd(dir), de->d_name);
	closedir(dir);
}

/* Removes the dead temp files below dfd (takes dfd), reporting to sw. */
static void clean_tree(struct sweep *sw, int dfd, int depth)
{
	DIR *dir = fdopendir(dfd);
	if (!dir) {
		close(dfd);
		return;
	}
	struct dirent *de;
	while ((de = readdir(dir))) {
		const char *name = de->d_name;
		if (!strcmp(name, ".") || !strcmp(name, ".."))
			continue;
		if (is_tmp(name)) {
			sweep_one(sw, dirfd(dir), name);
			continue;
		}
		struct stat st;
		if (depth >= WALK_MAX_DEPTH ||
		    fstatat(dirfd(dir), name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
			continue;
		int fd = openat(dirfd(dir), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			continue;
		size_t plen = sw ? sw->path.len : 0;
		if (sw)
			buf_addf(&sw->path, "%s/", name);
		clean_tree(sw, fd, depth + 1);
		if (sw)
			buf_setlen(&sw->path, plen);
	}
	closedir(dir);
}

/* ------------------------------------------------------------ open/close */

static int local_open(struct storage *s, const struct cfg_storage *cfg, const char *state_dir,
		      struct err *e)
{
	struct local *l = L(s);
	_cleanup_free_ char *root = NULL;

	if (cfg->path && *cfg->path)
		root = xstrdup(cfg->path);
	else if (state_dir && *state_dir)
		root = path_join(state_dir, "storage");
	else
		return err_set(e, -EINVAL, "storage handler 'local' needs storage.path or paths.state");

	int r = fs_mkdir_p(root, 0755);
	if (r < 0)
		return err_set_errno(e, r, "cannot create '%s'", root);
	int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return err_set_errno(e, -errno, "cannot open '%s'", root);

	/* whoever opens the storage next removes what dead uploads left */
	int clean = reopen_dir(fd);
	if (clean >= 0)
		clean_tree(NULL, clean, 0);

	l->root_fd = fd;
	s->where = xstrdup(root);
	l->root = TAKE_PTR(root);
	return 0;
}

static void local_close(struct storage *s)
{
	struct local *l = L(s);
	close(l->root_fd);
	free(l->root);
}

/* ------------------------------------------------------------ uploads */

static void tmp_name(char out[32])
{
	uint64_t rnd = 0;
	if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
		rnd = now_ms() ^ ((uint64_t)getpid() << 32);
	snprintf(out, 32, TMP_PREFIX "%016llx", (unsigned long long)rnd);
}

static int local_upload_begin(struct storage *s, struct storage_upload *u, const char *key,
			      uint64_t size_hint, struct err *e)
{
	struct local *l = L(s);
	struct local_upload *lu = u->priv;
	int r;

	lu->fd = -1;
	/* A concurrent delete may remove an empty parent directory between
	 * our mkdirat() and the temp file's creation: walk again then. */
	for (int attempt = 0; attempt < 5; attempt++) {
		struct dirchain d = { 0 };
		r = dirchain_open(l, key, true, &d, e);
		if (r < 0) {
			dirchain_free(&d);
			return chain_error(l, key, r, e);
		}
		/* what dead writers left here goes first */
		clean_dir(dirchain_fd(l, &d));
		tmp_name(lu->tmp);
		int fd = openat(dirchain_fd(l, &d), lu->tmp,
				O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
		if (fd < 0) {
			r = -errno;
			dirchain_free(&d);
			if (r == -ENOENT || r == -EEXIST)
				continue;
			return err_set_errno(e, r, "cannot create a temporary file for '%s' in '%s'",
				       key, l->root);
		}
		/* the lock says "alive" to sweepers; one that took our new file
		 * for a dead one before we locked it has unlinked it */
		struct stat st;
		if (flock(fd, LOCK_EX) < 0 || fstat(fd, &st) < 0) {
			r = -errno;
			close(fd);
			unlinkat(dirchain_fd(l, &d), lu->tmp, 0);
			dirchain_free(&d);
			return err_set_errno(e, r, "cannot lock the temporary file of '%s' in '%s'",
					     key, l->root);
		}
		if (st.st_nlink == 0) {
			r = -ENOENT;
			close(fd);
			dirchain_free(&d);
			continue;
		}
		lu->fd = fd;
		lu->comps = d.comps;
		lu->fds = d.fds;
		lu->n_fds = d.n_fds;
		return 0;
	}
	return err_set_errno(e, r, "cannot create a temporary file for '%s' in '%s'", key, l->root);
}

static int local_upload_write(struct storage_upload *u, const void *p, size_t n, struct err *e)
{
	struct local_upload *lu = u->priv;
	int r = fs_write_all(lu->fd, p, n);
	if (r < 0)
		return err_set_errno(e, r, "cannot write '%s' in '%s'", u->key,
			       L(u->s)->root);
	return 0;
}

/* Removes the now-empty parent directories of an object, deepest first,
 * through the fds of the chain (never by path); stops at the first one that
 * is not empty. The root itself stays. */
static void remove_empty_parents(struct strv *comps, int *fds, size_t n_fds, int root_fd)
{
	for (size_t i = n_fds; i > 0; i--) {
		int at = i >= 2 ? fds[i - 2] : root_fd;
		if (unlinkat(at, comps->v[i - 1], AT_REMOVEDIR) < 0)
			break;
	}
}

static void upload_release(struct storage_upload *u, bool prune)
{
	struct local_upload *lu = u->priv;
	struct dirchain d = { .comps = lu->comps, .fds = lu->fds, .n_fds = lu->n_fds };

	/* unlinked while we still hold its lock, so that no sweeper can
	 * mistake it for a dead writer's */
	if (prune)
		unlinkat(dirchain_fd(L(u->s), &d), lu->tmp, 0);
	if (lu->fd >= 0) {
		close(lu->fd);
		lu->fd = -1;
	}
	if (prune)
		remove_empty_parents(&d.comps, d.fds, d.n_fds, L(u->s)->root_fd);
	dirchain_free(&d);
	lu->comps = (struct strv)STRV_INIT;
	lu->fds = NULL;
	lu->n_fds = 0;
}

static int local_upload_commit(struct storage_upload *u, struct err *e)
{
	struct local *l = L(u->s);
	struct local_upload *lu = u->priv;
	struct dirchain d = { .comps = lu->comps, .fds = lu->fds, .n_fds = lu->n_fds };
	int dfd = dirchain_fd(l, &d);
	int r = 0;

	/* the lock lives in the open file description: a duplicate keeps it
	 * through the close that reports a late write error, until the rename */
	_cleanup_close_ int lock_fd = fcntl(lu->fd, F_DUPFD_CLOEXEC, 3);

	if (lock_fd < 0)
		r = err_set_errno(e, -errno, "cannot write '%s' in '%s'", u->key, l->root);
	if (r >= 0 && fsync(lu->fd) < 0)
		r = err_set_errno(e, -errno, "cannot fsync '%s' in '%s'", u->key, l->root);
	if (r >= 0 && close(TAKE_FD(lu->fd)) < 0)
		r = err_set_errno(e, -errno, "cannot write '%s' in '%s'", u->key, l->root);
	if (r >= 0)
		crash_point("storage.local.before-rename");
	/* rename() replaces a symlink at the final name, never follows it */
	if (r >= 0 && renameat(dfd, lu->tmp, dfd, dirchain_base(&d)) < 0) {
		r = -errno;
		if (r == -EISDIR || r == -ENOTEMPTY || r == -EEXIST)
			err_set(e, r, "cannot store '%s' in '%s': a directory has that name", u->key,
				l->root);
		else
			err_set_errno(e, r, "cannot rename the upload of '%s' in '%s'", u->key,
				l->root);
	}
	if (r < 0) {
		upload_release(u, true);
		return r;
	}
	crash_point("storage.local.after-rename");
	if (fsync(dfd) < 0)
		r = err_set_errno(e, -errno, "cannot fsync the directory of '%s' in '%s'", u->key,
			    l->root);
	upload_release(u, false);
	return r;
}

/* Commits the upload under another key: renamed into that key's directory
 * (made when missing), walked without following symlinks. */
static int local_upload_commit_as(struct storage_upload *u, const char *key, struct err *e)
{
	struct local *l = L(u->s);
	struct local_upload *lu = u->priv;
	struct dirchain d = { .comps = lu->comps, .fds = lu->fds, .n_fds = lu->n_fds };
	_cleanup_(dirchain_free) struct dirchain to = { 0 };
	int r = 0;

	if (fsync(lu->fd) < 0)
		r = err_set_errno(e, -errno, "cannot fsync '%s' in '%s'", key, l->root);
	if (r >= 0 && close(TAKE_FD(lu->fd)) < 0)
		r = err_set_errno(e, -errno, "cannot write '%s' in '%s'", key, l->root);
	if (r >= 0 && (r = dirchain_open(l, key, true, &to, e)) < 0)
		r = chain_error(l, key, r, e);
	if (r >= 0 && renameat(dirchain_fd(l, &d), lu->tmp, dirchain_fd(l, &to),
			       dirchain_base(&to)) < 0) {
		r = -errno;
		if (r == -EISDIR || r == -ENOTEMPTY || r == -EEXIST)
			err_set(e, r, "cannot store '%s' in '%s': a directory has that name", key,
				l->root);
		else
			err_set_errno(e, r, "cannot rename the upload of '%s' in '%s'", key, l->root);
	}
	if (r < 0) {
		upload_release(u, true);
		return r;
	}
	if (fsync(dirchain_fd(l, &to)) < 0)
		r = err_set_errno(e, -errno, "cannot fsync the directory of '%s' in '%s'", key,
			    l->root);
	/* the begin key's directory may be left empty */
	upload_release(u, false);
	return r;
}

static void local_upload_abort(struct storage_upload *u)
{
	upload_release(u, true);
}

/* ------------------------------------------------------------ reads */

/* Opens an object for reading; -ENOENT unless it is a regular file. */
static int object_open(struct local *l, const char *key, struct stat *st, struct err *e)
{
	_cleanup_(dirchain_free) struct dirchain d = { 0 };
	int r = dirchain_open(l, key, false, &d, e);
	if (r == -ENOENT || r == -ENOTDIR)
		return err_set(e, -ENOENT, "object '%s' not found in '%s'", key, l->root);
	if (r < 0)
		return chain_error(l, key, r, e);
	int fd = openat(dirchain_fd(l, &d), dirchain_base(&d),
			O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0 && (errno == ENOENT || errno == ELOOP || errno == ENOTDIR))
		return err_set(e, -ENOENT, "object '%s' not found in '%s'", key, l->root);
	if (fd < 0)
		return err_set_errno(e, -errno, "cannot open '%s' in '%s'", key, l->root);
	if (fstat(fd, st) < 0) {
		r = -errno;
		close(fd);
		return err_set_errno(e, r, "cannot stat '%s' in '%s'", key, l->root);
	}
	if (!S_ISREG(st->st_mode)) {
		close(fd);
		return err_set(e, -ENOENT, "object '%s' not found in '%s'", key, l->root);
	}
	return fd;
}

/* The ETag of a local object: an upload renames a new file over the key,
 * so the inode changes with every write; size and mtime catch a file
 * rewritten in place by hand. */
static void local_etag(const struct stat *st, struct buf *out)
{
	buf_reset(out);
	buf_addf(out, "\"%llx-%llx-%llx-%llx.%09ld\"", (unsigned long long)st->st_dev,
		 (unsigned long long)st->st_ino, (unsigned long long)st->st_size,
		 (unsigned long long)st->st_mtim.tv_sec, st->st_mtim.tv_nsec);
}

static int local_get_if(struct storage *s, const char *key, const char *etag,
			struct buf *ret_etag, sink_fn sink, void *data, struct err *e)
{
	struct local *l = L(s);
	struct stat st;
	_cleanup_close_ int fd = object_open(l, key, &st, e);
	if (fd < 0)
		return fd;
	_cleanup_buf_ struct buf tag = BUF_INIT;
	local_etag(&st, &tag);
	if (*etag && !strcmp(etag, tag.p))
		return STORAGE_NOT_MODIFIED;
	if (ret_etag) {
		buf_reset(ret_etag);
		buf_adds(ret_etag, tag.p);
	}
	_cleanup_free_ char *block = xmalloc(128 * 1024);
	for (;;) {
		ssize_t n = read(fd, block, 128 * 1024);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return err_set_errno(e, -errno, "cannot read '%s' in '%s'", key, l->root);
		if (n == 0)
			return 0;
		/* a sink's failure is the caller's to describe */
		int r = sink(data, block, (size_t)n);
		if (r < 0)
			return r;
	}
}

static int local_get(struct storage *s, const char *key, sink_fn sink, void *data,
		     struct err *e)
{
	return local_get_if(s, key, "", NULL, sink, data, e);
}

static int local_stat(struct storage *s, const char *key, struct storage_stat *ret,
		      struct err *e)
{
	struct stat st;
	_cleanup_close_ int fd = object_open(L(s), key, &st, e);
	if (fd < 0)
		return fd;
	ret->size = (uint64_t)st.st_size;
	ret->mtime = st.st_mtime;
	return 0;
}

static int local_open_fd(struct storage *s, const char *key, struct err *e)
{
	struct stat st;

	return object_open(L(s), key, &st, e);
}

/* ------------------------------------------------------------ list */

struct entry {
	char *sortkey;   /* name, plus '/' for a directory */
	bool dir;
	struct storage_stat st;
};

static int entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct entry *)a)->sortkey, ((const struct entry *)b)->sortkey);
}

struct list_ctx {
	struct local *l;
	storage_list_fn cb;
	void *data;
	struct err *e;
};

/*
 * Lists the directory dfd (takes it), whose keys start with path (""
 * or ending in '/'), and recurses. Only names starting with match are
 * taken at this level. Entries are sorted as name + '/' for directories,
 * which gives the keys' global lexical order ("a-b" before "a/c").
 */
static int list_dir(struct list_ctx *c, int dfd, struct buf *path, const char *match,
		    int depth)
{
	DIR *dir = fdopendir(dfd);
	if (!dir) {
		int r = -errno;
		close(dfd);
		return err_set_errno(c->e, r, "cannot list '%s' in '%s'", path->p, c->l->root);
	}
	struct entry *ents = NULL;
	size_t n = 0, cap = 0;
	int r = 0;
	struct dirent *de;
	size_t mlen = strlen(match);

	errno = 0;
	while ((de = readdir(dir))) {
		const char *name = de->d_name;
		if (!strcmp(name, ".") || !strcmp(name, ".."))
			continue;
		if (is_tmp(name)) {
			/* a dead upload's: whoever comes next removes it */
			tmp_reap(dirfd(dir), name);
			errno = 0;
			continue;
		}
		if (strncmp(name, match, mlen))
			continue;
		struct stat st;
		if (fstatat(dirfd(dir), name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		bool isdir = S_ISDIR(st.st_mode);
		if (!isdir && !S_ISREG(st.st_mode))
			continue;   /* symlinks, fifos: never objects */
		if (n == cap) {
			cap = cap ? cap * 2 : 32;
			ents = xrealloc(ents, cap * sizeof(*ents));
		}
		ents[n++] = (struct entry){
			.sortkey = isdir ? xasprintf("%s/", name) : xstrdup(name),
			.dir = isdir,
			.st = { .size = (uint64_t)st.st_size, .mtime = st.st_mtime },
		};
		errno = 0;
	}
	if (errno)
		r = err_set_errno(c->e, -errno, "cannot list '%s' in '%s'", path->p, c->l->root);
	if (n)
		qsort(ents, n, sizeof(*ents), entry_cmp);

	size_t plen = path->len;
	for (size_t i = 0; i < n && r >= 0; i++) {
		buf_setlen(path, plen);
		buf_adds(path, ents[i].sortkey);
		if (!ents[i].dir) {
			r = c->cb(c->data, path->p, &ents[i].st);
			continue;
		}
		if (depth >= WALK_MAX_DEPTH)
			continue;
		size_t nlen = strlen(ents[i].sortkey) - 1;
		_cleanup_free_ char *name = xstrndup(ents[i].sortkey, nlen);
		int fd = openat(dirfd(dir), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0) {
			if (errno == ENOENT)   /* removed meanwhile */
				continue;
			r = err_set_errno(c->e, -errno, "cannot list '%s' in '%s'", path->p,
				    c->l->root);
			continue;
		}
		r = list_dir(c, fd, path, "", depth + 1);
	}
	buf_setlen(path, plen);
	for (size_t i = 0; i < n; i++)
		free(ents[i].sortkey);
	free(ents);
	closedir(dir);
	return r;
}

static int local_list(struct storage *s, const char *prefix, storage_list_fn cb, void *data,
		      struct err *e)
{
	struct local *l = L(s);
	struct list_ctx c = { .l = l, .cb = cb, .data = data, .e = e };
	_cleanup_buf_ struct buf path = BUF_INIT;
	const char *slash = strrchr(prefix, '/');
	const char *match = slash ? slash + 1 : prefix;
	int fd;

	if (slash) {
		/* walk to the prefix's directory; a missing one lists nothing */
		_cleanup_free_ char *dirkey = xasprintf("%.*s/x", (int)(slash - prefix), prefix);
		_cleanup_(dirchain_free) struct dirchain d = { 0 };
		_cleanup_err_ struct err ignored = ERR_INIT;
		int r = dirchain_open(l, dirkey, false, &d, &ignored);
		if (r == -ENOENT || r == -ENOTDIR || r == -EINVAL)
			return 0;   /* also "a//": no such object on a filesystem */
		if (r < 0)
			return chain_error(l, dirkey, r, e);
		fd = reopen_dir(dirchain_fd(l, &d));
		buf_add(&path, prefix, (size_t)(slash - prefix) + 1);
	} else {
		fd = reopen_dir(l->root_fd);
	}
	if (fd < 0)
		return err_set_errno(e, -errno, "cannot list '%s'", l->root);
	return list_dir(&c, fd, &path, match, 0);
}

/* ------------------------------------------------------------ delete */

static int local_del(struct storage *s, const char *key, struct err *e)
{
	struct local *l = L(s);
	_cleanup_(dirchain_free) struct dirchain d = { 0 };
	int r = dirchain_open(l, key, false, &d, e);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return chain_error(l, key, r, e);
	int dfd = dirchain_fd(l, &d);
	if (unlinkat(dfd, dirchain_base(&d), 0) < 0) {
		if (errno == ENOENT)
			return 0;
		if (errno == EISDIR)
			return err_set(e, -EISDIR, "cannot delete '%s' in '%s': it is a directory",
				       key, l->root);
		return err_set_errno(e, -errno, "cannot delete '%s' in '%s'", key, l->root);
	}
	crash_point("storage.local.after-unlink");
	if (fsync(dfd) < 0)
		log_debug("cannot fsync the directory of '%s': %s", key, strerror(errno));
	remove_empty_parents(&d.comps, d.fds, d.n_fds, l->root_fd);
	return 0;
}

/* ------------------------------------------------------------ sweep */

/* Dead temps go whatever grace says: their writers' locks tell. */
static int local_sweep(struct storage *s, int64_t grace, storage_stale_fn cb, void *data,
		       struct err *e)
{
	struct local *l = L(s);
	struct sweep sw = { .path = BUF_INIT, .cb = cb, .data = data };
	int fd = reopen_dir(l->root_fd);

	if (fd < 0)
		return err_set_errno(e, -errno, "cannot open '%s'", l->root);
	clean_tree(&sw, fd, 0);
	buf_free(&sw.path);
	return sw.r < 0 ? sw.r : sw.removed;
}

const struct storage_ops storage_local_ops = {
	.name = "local",
	.caps = STORAGE_CAP_WRITE | STORAGE_CAP_LIST | STORAGE_CAP_FD | STORAGE_CAP_COMMIT_AS,
	.priv_size = sizeof(struct local),
	.upload_size = sizeof(struct local_upload),
	.open = local_open,
	.close = local_close,
	.upload_begin = local_upload_begin,
	.upload_write = local_upload_write,
	.upload_commit = local_upload_commit,
	.upload_abort = local_upload_abort,
	.upload_commit_as = local_upload_commit_as,
	.open_fd = local_open_fd,
	.get = local_get,
	.get_if = local_get_if,
	.stat = local_stat,
	.list = local_list,
	.del = local_del,
	.sweep = local_sweep,
};
