/*
 * builder/checkout.c - makes the app's directory in the root exactly the
 * tracked tree of a commit, from the host side, writing only what differs.
 *
 * Input: the commit's tree (git_tree_list(): paths, modes, blob ids, the
 * repository of each blob), for an incremental build the tree of the base
 * package's commit, and the index the base's checkout left (the stat of
 * each file it wrote or checked, so that an unchanged file is verified by a
 * stat instead of its content). Phases:
 *
 *   remove    what the old tree tracked and the new one does not (or not as
 *             the same kind of thing: file, symlink, directory), with what
 *             the build put inside when it is a directory now
 *   dirs      every directory of the new tree is a real directory of the
 *             app's, 0755 (a symlink or a file there is replaced; a
 *             directory the build made read-only or a files entry made
 *             root's is fixed), parents first
 *   prune     directories of the old tree the new one has not, once empty
 *             (untracked content the build wrote keeps them)
 *   files     each file and symlink of the new tree: a changed one is
 *             written (a new file renamed over the name, owner, mode, mtime
 *             the commit's time); an unchanged one is checked (type, owner,
 *             mode, and its content when its stat differs from the index's)
 *             and rewritten only when the previous build altered it
 *
 * A fresh build is the same with an empty old tree. Everything happens
 * through directory fds below the app's directory, opened with openat2
 * RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS: no symlink is ever followed, so
 * nothing outside the app's directory (let alone the root) is reached, and
 * removals go through fs_rm_rf_at(). Unchanged files are not touched, so an
 * overlay's upper dir (the package's layer) holds only what changed.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "builder/builder.h"
#include "builder/build-int.h"

#define INDEX_MAGIC "upaas-checkout 1 "
#define INDEX_MAX ((size_t)256 << 20)
#define SYMLINK_MAX 65536

/* ---------------------------------------------------------------- index */

static int rec_cmp(const void *a, const void *b)
{
	return strcmp(((const struct checkout_rec *)a)->path, ((const struct checkout_rec *)b)->path);
}

void checkout_index_free(struct checkout_index *ix)
{
	for (size_t i = 0; i < ix->n; i++)
		free(ix->v[i].path);
	free(ix->v);
	free(ix->base);
	*ix = (struct checkout_index)CHECKOUT_INDEX_INIT;
}

static struct checkout_rec *index_add(struct checkout_index *ix)
{
	if (ix->n == ix->cap) {
		ix->cap = ix->cap ? 2 * ix->cap : 256;
		ix->v = xrealloc(ix->v, ix->cap * sizeof(*ix->v));
	}
	struct checkout_rec *r = &ix->v[ix->n++];
	memset(r, 0, sizeof(*r));
	return r;
}

static const struct checkout_rec *index_find(const struct checkout_index *ix, const char *path)
{
	if (!ix || !ix->n)
		return NULL;
	struct checkout_rec key = { .path = (char *)path };
	return bsearch(&key, ix->v, ix->n, sizeof(*ix->v), rec_cmp);
}

int checkout_index_load(const char *path, const char *base, struct checkout_index *ret)
{
	_cleanup_buf_ struct buf t = BUF_INIT;
	struct checkout_index ix = CHECKOUT_INDEX_INIT;
	int r = buf_read_file(&t, path, INDEX_MAX);
	if (r < 0)
		return r;
	size_t ml = strlen(INDEX_MAGIC);
	const char *nl = memchr(t.p, '\n', t.len);
	if (t.len < ml || strncmp(t.p, INDEX_MAGIC, ml) || !nl)
		return -EBADMSG;
	/* the index of another package is of no use */
	if ((size_t)(nl - t.p - ml) != strlen(base) || strncmp(t.p + ml, base, strlen(base)))
		return -ESTALE;
	for (const char *p = nl + 1; p < t.p + t.len; p += strlen(p) + 1) {
		/* "oid size mtime ctime mode uid gid path" */
		char oid[65];
		unsigned long long size, mode, uid, gid;
		long long mtime, ctime;
		int off = 0;
		if (sscanf(p, "%64s %llu %lld %lld %llo %llu %llu%n", oid, &size, &mtime, &ctime,
			   &mode, &uid, &gid, &off) != 7 || off <= 0 || p[off] != ' ' || !p[off + 1]) {
			checkout_index_free(&ix);
			return -EBADMSG;
		}
		struct checkout_rec *rec = index_add(&ix);
		memcpy(rec->oid, oid, sizeof(oid));
		rec->path = xstrdup(p + off + 1);
		rec->size = size;
		rec->mtime_ns = mtime;
		rec->ctime_ns = ctime;
		rec->mode = (mode_t)mode;
		rec->uid = (uid_t)uid;
		rec->gid = (gid_t)gid;
	}
	if (ix.n > 1)
		qsort(ix.v, ix.n, sizeof(*ix.v), rec_cmp);
	ix.base = xstrdup(base);
	*ret = ix;
	return 0;
}

int checkout_index_save(const struct checkout_index *ix, const char *base, const char *path,
			struct err *e)
{
	_cleanup_buf_ struct buf t = BUF_INIT;
	buf_init(&t, INDEX_MAX);
	buf_addf(&t, "%s%s\n", INDEX_MAGIC, base);
	for (size_t i = 0; i < ix->n; i++) {
		const struct checkout_rec *r = &ix->v[i];
		if (buf_addf(&t, "%s %llu %lld %lld %llo %llu %llu %s", r->oid,
			     (unsigned long long)r->size, (long long)r->mtime_ns,
			     (long long)r->ctime_ns, (unsigned long long)r->mode,
			     (unsigned long long)r->uid, (unsigned long long)r->gid, r->path) < 0 ||
		    buf_addch(&t, '\0') < 0)
			return err_set(e, -E2BIG, "the checkout index is larger than %zu bytes",
				       INDEX_MAX);
	}
	int r = fs_write_atomic(path, t.p, t.len, 0600);
	return r < 0 ? err_set_errno(e, r, "cannot write '%s'", path) : 0;
}

/* ---------------------------------------------------------------- walking */

struct co_run {
	struct checkout *co;
	int homefd;
	struct git_batch *batch;    /* one per repository (src), started on use */
	unsigned tmp_seq;
	struct err *e;
};

static int64_t ts_ns(const struct timespec *t)
{
	return (int64_t)t->tv_sec * 1000000000 + t->tv_nsec;
}

/* Opens directory rel below the app's directory ("" for itself), never
 * through a symlink and never out of it. */
static int open_dir(struct co_run *x, const char *rel)
{
	struct open_how how = {
		.flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
			   RESOLVE_NO_XDEV,
	};
	long fd = syscall(SYS_openat2, x->homefd, *rel ? rel : ".", &how, sizeof(how));
	return fd < 0 ? -errno : (int)fd;
}

/* Opens the directory that holds rel; *base points at rel's last name. */
static int open_parent(struct co_run *x, const char *rel, const char **base)
{
	const char *slash = strrchr(rel, '/');
	if (!slash) {
		*base = rel;
		return open_dir(x, "");
	}
	*base = slash + 1;
	_cleanup_free_ char *dir = xstrndup(rel, (size_t)(slash - rel));
	return open_dir(x, dir);
}

/* The path of rel for messages: the app's directory and rel. */
static char *shown(const struct co_run *x, const char *rel)
{
	return path_join(x->co->home, rel);
}

static int fail(struct co_run *x, int code, const char *what, const char *rel)
{
	_cleanup_free_ char *p = shown(x, rel);
	return err_set_errno(x->e, code, "checkout: cannot %s '%s'", what, p);
}

/* Removes rel (and, for a directory, what it holds). */
static int remove_at(struct co_run *x, int pfd, const char *base, const char *rel)
{
	_cleanup_free_ char *p = shown(x, rel);
	int r = fs_rm_rf_at(pfd, base, p, x->e);
	if (r >= 0)
		x->co->st.removed++;
	return r;
}


/* "f" file, "l" symlink, "d" directory (a gitlink) */
static char kind_of(unsigned m)
{
	return m == 0120000 ? 'l' : m == 0160000 ? 'd' : 'f';
}

static int entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct git_entry *)a)->path, ((const struct git_entry *)b)->path);
}

static const struct git_entry *tree_find(const struct git_tree *t, const char *path)
{
	if (!t || !t->n)
		return NULL;
	struct git_entry key = { .path = (char *)path };
	return bsearch(&key, t->v, t->n, sizeof(*t->v), entry_cmp);
}

/* The directories a tree implies (every parent of an entry, and its
 * gitlinks), sorted: a parent comes before what it holds. */
static void tree_dirs(const struct git_tree *t, struct strv *out)
{
	_cleanup_strv_ struct strv all = STRV_INIT;
	for (size_t i = 0; t && i < t->n; i++) {
		const char *p = t->v[i].path;
		for (const char *s = strchr(p, '/'); s; s = strchr(s + 1, '/'))
			strv_push_take(&all, xstrndup(p, (size_t)(s - p)));
		if (t->v[i].mode == 0160000)
			strv_push(&all, p);
	}
	strv_sort(&all);
	for (size_t i = 0; i < all.n; i++)
		if (!i || strcmp(all.v[i], all.v[i - 1]))
			strv_push(out, all.v[i]);
}

static bool sorted_contains(const struct strv *s, const char *p)
{
	size_t lo = 0, hi = s->n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(s->v[mid], p);
		if (!c)
			return true;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

/* ------------------------------------------------------------------ phases */

/* What the old tree tracked and the new one does not, or not as that kind
 * (a file that is a directory now, a symlink that is a file...): removed,
 * with what the build put inside when it is a directory by now. Old
 * gitlinks are directories: pruned once empty. */
static int phase_remove(struct co_run *x)
{
	const struct checkout *co = x->co;
	for (size_t i = 0; co->old && i < co->old->n; i++) {
		const struct git_entry *o = &co->old->v[i];
		if (o->mode == 0160000)
			continue;
		const struct git_entry *n = tree_find(co->tree, o->path);
		if (n && kind_of(n->mode) == kind_of(o->mode))
			continue;   /* checked or rewritten in place */
		const char *base;
		int pfd = open_parent(x, o->path, &base);
		if (pfd < 0)
			continue;   /* its directory is gone or no directory: nothing there */
		int r = remove_at(x, pfd, base, o->path);
		close(pfd);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Every directory of the new tree: a real directory of the app's, 0755. */
static int phase_dirs(struct co_run *x, const struct strv *dirs)
{
	struct checkout *co = x->co;
	for (size_t i = 0; i < dirs->n; i++) {
		const char *rel = dirs->v[i], *base;
		_cleanup_close_ int pfd = open_parent(x, rel, &base);
		if (pfd < 0)
			return fail(x, pfd, "open the directory of", rel);
		struct stat st;
		bool make = false;
		if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno != ENOENT)
				return fail(x, -errno, "stat", rel);
			make = true;
		} else if (!S_ISDIR(st.st_mode)) {
			int r = remove_at(x, pfd, base, rel);
			if (r < 0)
				return r;
			make = true;
		}
		if (make) {
			if (mkdirat(pfd, base, 0700) < 0)
				return fail(x, -errno, "create the directory", rel);
			co->st.dirs_made++;
		}
		bool fixed = false;
		if (make || st.st_uid != co->uid || st.st_gid != co->gid) {
			if (fchownat(pfd, base, co->uid, co->gid, AT_SYMLINK_NOFOLLOW) < 0)
				return fail(x, -errno, "chown", rel);
			fixed = true;
		}
		if (make || (st.st_mode & 07777) != 0755) {
			if (fchmodat(pfd, base, 0755, 0) < 0)
				return fail(x, -errno, "chmod", rel);
			fixed = true;
		}
		co->st.dirs_fixed += fixed && !make;
	}
	return 0;
}

/* Directories of the old tree the new one has not: removed once empty,
 * deepest first. */
static int phase_prune(struct co_run *x, const struct strv *old_dirs, const struct strv *new_dirs)
{
	for (size_t i = old_dirs->n; i-- > 0;) {
		const char *rel = old_dirs->v[i], *base;
		if (sorted_contains(new_dirs, rel))
			continue;
		int pfd = open_parent(x, rel, &base);
		if (pfd < 0)
			continue;
		struct stat st;
		if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)) {
			if (unlinkat(pfd, base, AT_REMOVEDIR) == 0)
				x->co->st.dirs_removed++;
			else if (errno != ENOTEMPTY && errno != EEXIST && errno != ENOENT) {
				int r = fail(x, -errno, "remove the directory", rel);
				close(pfd);
				return r;
			}
		}
		close(pfd);
	}
	return 0;
}

static int sink_fd(void *data, const void *p, size_t n)
{
	return fs_write_all(*(int *)data, p, n);
}

static int sink_buf(void *data, const void *p, size_t n)
{
	return buf_add(data, p, n);
}

/* The blob oid of repository src, streamed to sink. */
static int blob(struct co_run *x, const struct git_entry *en, sink_fn sink, void *data,
		uint64_t *size)
{
	const struct checkout *co = x->co;
	if (en->src >= co->n_mirrors)
		return err_set(x->e, -EINVAL, "checkout: no repository for '%s'", en->path);
	struct git_batch *b = &x->batch[en->src];
	if (!b->started) {
		int r = git_batch_start(b, co->mirrors[en->src], x->e);
		if (r < 0)
			return r;
	}
	return git_batch_blob(b, en->oid, sink, data, size, x->e);
}

/* Writes entry en as rel's new content: a new file or symlink in the same
 * directory, renamed over the name (what was there is replaced, a directory
 * removed first). */
static int write_entry(struct co_run *x, int pfd, const char *base, const struct git_entry *en,
		       bool dir_there)
{
	struct checkout *co = x->co;
	char tmp[64];
	struct timespec times[2] = { { co->mtime, 0 }, { co->mtime, 0 } };
	int r;

	if (dir_there && (r = remove_at(x, pfd, base, en->path)) < 0)
		return r;
	if (en->mode == 0120000) {
		_cleanup_buf_ struct buf target = BUF_INIT;
		buf_init(&target, SYMLINK_MAX);
		r = blob(x, en, sink_buf, &target, NULL);
		if (r < 0)
			return r;
		if (!target.len || memchr(target.p, '\0', target.len))
			return err_set(x->e, -EINVAL, "checkout: '%s' is a symlink to nothing", en->path);
		for (;;) {
			snprintf(tmp, sizeof(tmp), ".upaas-checkout-%ld-%u", (long)getpid(), x->tmp_seq++);
			if (symlinkat(target.p, pfd, tmp) == 0)
				break;
			if (errno != EEXIST)
				return fail(x, -errno, "create the symlink", en->path);
		}
		if (fchownat(pfd, tmp, co->uid, co->gid, AT_SYMLINK_NOFOLLOW) < 0 ||
		    utimensat(pfd, tmp, times, AT_SYMLINK_NOFOLLOW) < 0) {
			r = -errno;
			unlinkat(pfd, tmp, 0);
			return fail(x, r, "set the owner of", en->path);
		}
	} else {
		int fd = -1;
		while (fd < 0) {
			snprintf(tmp, sizeof(tmp), ".upaas-checkout-%ld-%u", (long)getpid(), x->tmp_seq++);
			fd = openat(pfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
			if (fd < 0 && errno != EEXIST)
				return fail(x, -errno, "create", en->path);
		}
		r = blob(x, en, sink_fd, &fd, NULL);
		if (r >= 0 && (fchown(fd, co->uid, co->gid) < 0 ||
			       fchmod(fd, en->mode == 0100755 ? 0755 : 0644) < 0 ||
			       futimens(fd, times) < 0))
			r = fail(x, -errno, "write", en->path);
		if (close(fd) < 0 && r >= 0)
			r = fail(x, -errno, "write", en->path);
		if (r < 0) {
			unlinkat(pfd, tmp, 0);
			return r;
		}
	}
	if (renameat(pfd, tmp, pfd, base) < 0) {
		r = -errno;
		unlinkat(pfd, tmp, 0);
		return fail(x, r, "rename into place", en->path);
	}
	co->st.written++;
	return 0;
}

/* 1 when rel (stat st) has blob en's content, 0 when not, or -errno. */
static int same_content(struct co_run *x, int pfd, const char *base, const struct git_entry *en,
			const struct stat *st)
{
	char hex[65];
	x->co->st.hashed++;
	if (S_ISLNK(st->st_mode)) {
		/* a symlink's target against the blob it came from */
		_cleanup_buf_ struct buf want = BUF_INIT;
		buf_init(&want, SYMLINK_MAX);
		int r = blob(x, en, sink_buf, &want, NULL);
		if (r < 0)
			return r;
		_cleanup_free_ char *t = xmalloc(SYMLINK_MAX + 1);
		ssize_t n = readlinkat(pfd, base, t, SYMLINK_MAX + 1);
		return n >= 0 && (size_t)n == want.len && !memcmp(t, want.p, want.len);
	}
	_cleanup_close_ int fd = openat(pfd, base, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return 0;
	int r = hash_git_blob(fd, (uint64_t)st->st_size, strlen(en->oid) == 64, hex);
	return r < 0 ? 0 : !strcmp(hex, en->oid);
}

static void record(struct co_run *x, int pfd, const char *base, const struct git_entry *en)
{
	struct stat st;
	if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return;
	struct checkout_rec *r = index_add(&x->co->out);
	r->path = xstrdup(en->path);
	memcpy(r->oid, en->oid, sizeof(r->oid));
	r->size = (uint64_t)st.st_size;
	r->mtime_ns = ts_ns(&st.st_mtim);
	r->ctime_ns = ts_ns(&st.st_ctim);
	r->mode = st.st_mode;
	r->uid = st.st_uid;
	r->gid = st.st_gid;
}

/* Each file and symlink of the new tree. */
static int phase_files(struct co_run *x)
{
	struct checkout *co = x->co;
	for (size_t i = 0; i < co->tree->n; i++) {
		const struct git_entry *en = &co->tree->v[i];
		if (en->mode == 0160000)
			continue;
		if (proc_cancelled)
			return err_set(x->e, -ECANCELED, "checkout cancelled");
		const char *base;
		_cleanup_close_ int pfd = open_parent(x, en->path, &base);
		if (pfd < 0)
			return fail(x, pfd, "open the directory of", en->path);
		struct stat st;
		int r = 0;
		if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno != ENOENT)
				return fail(x, -errno, "stat", en->path);
			r = write_entry(x, pfd, base, en, false);
		} else {
			const struct git_entry *o = tree_find(co->old, en->path);
			bool unchanged = o && o->mode == en->mode && !strcmp(o->oid, en->oid);
			bool type_ok = en->mode == 0120000 ? S_ISLNK(st.st_mode) : S_ISREG(st.st_mode);
			mode_t want = en->mode == 0100755 ? 0755 : 0644;
			bool meta_ok = st.st_uid == co->uid && st.st_gid == co->gid &&
				       (S_ISLNK(st.st_mode) || (st.st_mode & 07777) == want);
			if (!unchanged || !type_ok) {
				r = write_entry(x, pfd, base, en, S_ISDIR(st.st_mode));
			} else {
				const struct checkout_rec *rec = index_find(co->index, en->path);
				bool same = rec && !strcmp(rec->oid, en->oid) &&
					    rec->size == (uint64_t)st.st_size &&
					    rec->mtime_ns == ts_ns(&st.st_mtim) &&
					    rec->ctime_ns == ts_ns(&st.st_ctim) &&
					    rec->mode == st.st_mode && rec->uid == st.st_uid &&
					    rec->gid == st.st_gid;
				if (!same) {
					r = same_content(x, pfd, base, en, &st);
					if (r < 0)
						return r;
					same = r > 0;
					r = 0;
				}
				if (!same) {
					co->st.repaired++;
					r = write_entry(x, pfd, base, en, false);
				} else if (!meta_ok) {
					/* the content is right: only owner and mode */
					if (fchownat(pfd, base, co->uid, co->gid, AT_SYMLINK_NOFOLLOW) < 0 ||
					    (!S_ISLNK(st.st_mode) && fchmodat(pfd, base, want, 0) < 0))
						return fail(x, -errno, "fix the owner and mode of", en->path);
					co->st.repaired++;
				} else {
					co->st.kept++;
				}
			}
		}
		if (r < 0)
			return r;
		record(x, pfd, base, en);
	}
	return 0;
}

int checkout_apply(struct checkout *co, struct err *e)
{
	struct co_run x = { .co = co, .homefd = -1, .e = e };
	_cleanup_strv_ struct strv new_dirs = STRV_INIT, old_dirs = STRV_INIT;
	int r;

	co->st = (struct checkout_stats){ 0 };
	checkout_index_free(&co->out);
	_cleanup_close_ int rootfd = open(co->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		return err_set_errno(e, -errno, "checkout: cannot open '%s'", co->root);
	/* the app's directory itself, made by the system step: inside the
	 * root, and no symlink */
	x.homefd = fs_open_in_root(rootfd, co->home, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
	if (x.homefd < 0)
		return err_set_errno(e, x.homefd, "checkout: cannot open the app's directory '%s'",
				     co->home);
	x.batch = xcalloc(co->n_mirrors ? co->n_mirrors : 1, sizeof(*x.batch));
	for (size_t i = 0; i < co->n_mirrors; i++)
		x.batch[i] = (struct git_batch)GIT_BATCH_INIT;

	tree_dirs(co->tree, &new_dirs);
	tree_dirs(co->old, &old_dirs);
	r = phase_remove(&x);
	if (r >= 0)
		r = phase_dirs(&x, &new_dirs);
	if (r >= 0)
		r = phase_prune(&x, &old_dirs, &new_dirs);
	if (r >= 0)
		r = phase_files(&x);
	for (size_t i = 0; i < co->n_mirrors; i++)
		git_batch_end(&x.batch[i]);
	free(x.batch);
	close(x.homefd);
	if (r >= 0 && co->out.n > 1)
		qsort(co->out.v, co->out.n, sizeof(*co->out.v), rec_cmp);
	return r;
}
