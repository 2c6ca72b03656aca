/*
 * rootfs/rootcache.c - read-only roots under <paths.cache>/roots/<sha256>/,
 * the lower layers of workspaces.
 *
 * Files per entry, all in roots/:
 *   <sha>/            the tree, published by rename when complete: a full
 *                     copy (the blob unpacked) or, when <sha>.parent
 *                     exists, a layer (an overlay upper dir)
 *   <sha>.parent      a layer's parent: the sha256 of the root it sits on;
 *                     written (and synced) before <sha>/ is renamed into
 *                     place, removed only after <sha>/ is gone, so a layer
 *                     is never taken for a full copy; a stale one (no
 *                     <sha>/) is removed by whoever publishes <sha>/ next
 *   <sha>.lock        flock()ed while the entry is made, replaced or removed
 *   <sha>.used        its mtime is the last use (LRU)
 *   <sha>.size        the tree's disk usage in bytes (decimal)
 *   <sha>.tmp-XXXXXX  work in progress (blob + unpacked tree) or an entry
 *                     being removed; a stale one (its maker died) is removed
 *                     by the next maker
 *
 * A layer's merged view over its parent's chain is what the build packed
 * into the blob, except for mtimes: the blob has them clamped to the
 * commit time (SOURCE_DATE_EPOCH), the layer keeps the real ones. Packing
 * always clamps, so packages built over a layer stay deterministic; only
 * a build step that looks at mtimes of files it did not write could tell
 * a layered root from an unpacked one. That is the price of not unpacking
 * the previous package on every incremental build.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>

#include "archive/archive.h"
#include "rootfs/rootfs.h"

#define MOUNTINFO_MAX_BYTES (16u << 20)

static char *roots_dir(const struct config *c)
{
	return path_join(c->paths.cache, "roots");
}

static void touch(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);

	if (fd >= 0) {
		futimens(fd, NULL);
		close(fd);
	}
}

/* Disk usage of the tree below dfd (taken), never following links. */
static uint64_t tree_usage(int dfd, unsigned depth)
{
	DIR *d = fdopendir(dfd);
	uint64_t sum = 0;
	struct dirent *de;

	if (!d) {
		close(dfd);
		return 0;
	}
	while ((de = readdir(d))) {
		struct stat st;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		sum += (uint64_t)st.st_blocks * 512;
		if (S_ISDIR(st.st_mode) && depth < 256) {
			int fd = openat(dirfd(d), de->d_name,
					O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

			if (fd >= 0)
				sum += tree_usage(fd, depth + 1);
		}
	}
	closedir(d);
	return sum;
}

/* Removes <sha>.tmp-* leftovers of makers that died (caller holds the lock). */
static void remove_stale(const char *roots, const char *sha)
{
	_cleanup_strv_ struct strv stale = STRV_INIT;
	_cleanup_free_ char *prefix = xasprintf("%s.tmp-", sha);
	DIR *d = opendir(roots);

	if (!d)
		return;
	for (struct dirent *de; (de = readdir(d));)
		if (!strncmp(de->d_name, prefix, strlen(prefix)))
			strv_push(&stale, de->d_name);
	closedir(d);
	for (size_t i = 0; i < stale.n; i++) {
		_cleanup_free_ char *p = path_join(roots, stale.v[i]);
		_cleanup_err_ struct err e = ERR_INIT;

		if (fs_rm_rf(p, &e) < 0)
			log_warn("cannot remove stale '%s': %s", p, err_msg(&e));
	}
}

static void unlink_record(const char *roots, const char *sha)
{
	_cleanup_free_ char *rec = xasprintf("%s/%s.parent", roots, sha);

	if (unlink(rec) == 0)
		fs_fsync_parent(rec);
}

/*
 * Takes roots/<sha> out of the cache (caller holds its lock): renamed to a
 * temporary name first, so nobody sees a half-removed tree, then its layer
 * record and sidecars go, then the tree.
 */
static int remove_entry(const char *roots, const char *sha, struct err *e)
{
	_cleanup_free_ char *final = path_join(roots, sha);
	_cleanup_free_ char *tmp = xasprintf("%s/%s.tmp-XXXXXX", roots, sha);
	_cleanup_free_ char *sf = xasprintf("%s.size", final), *uf = xasprintf("%s.used", final);

	if (!mkdtemp(tmp))
		return err_set_errno(e, -errno, "cannot create a directory in '%s'", roots);
	if (rename(final, tmp) < 0) {
		int r = -errno;

		rmdir(tmp);
		if (r == -ENOENT)
			return 0;
		return err_set_errno(e, r, "cannot remove '%s'", final);
	}
	fs_fsync_parent(final);
	unlink_record(roots, sha);
	unlink(sf);
	unlink(uf);
	return fs_rm_rf(tmp, e);
}

/* The parent sha of layer roots/<sha>: 1 and ret filled, 0 for a full copy,
 * -EBADMSG for a broken record. */
static int read_parent(const char *roots, const char *sha, char ret[65])
{
	_cleanup_free_ char *rec = xasprintf("%s/%s.parent", roots, sha);
	_cleanup_buf_ struct buf t = BUF_INIT;
	int r = buf_read_file(&t, rec, 256);

	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	buf_rtrim(&t);
	if (!hex64_ok(t.p) || !strcmp(t.p, sha))
		return -EBADMSG;
	memcpy(ret, t.p, 65);
	return 1;
}

/*
 * The chain of lower dirs for sha, top first, ending at a full copy:
 * 0 and out filled; -ENOENT when sha has no entry, -ENOLINK when a link
 * below it is missing, -E2BIG when the chain is longer than
 * ROOTCACHE_MAX_LAYERS (+ the full copy), -EBADMSG for a broken record.
 */
static int chain_resolve(const char *roots, const char *sha, struct strv *out)
{
	char cur[65], next[65];

	memcpy(cur, sha, 65);
	for (unsigned depth = 0;; depth++) {
		_cleanup_free_ char *p = path_join(roots, cur);
		struct stat st;
		int r;

		if (lstat(p, &st) < 0 || !S_ISDIR(st.st_mode))
			return depth ? -ENOLINK : -ENOENT;
		r = read_parent(roots, cur, next);
		if (r < 0)
			return r;
		strv_push(out, p);
		if (r == 0)
			return 0;
		if (depth >= ROOTCACHE_MAX_LAYERS)   /* also ends a cycle */
			return -E2BIG;
		memcpy(cur, next, 65);
	}
}

/* Hashes fd to its end (at most max + 1 bytes are read). */
static int hash_fd(int fd, uint64_t max, char hex[65], uint64_t *ret_size)
{
	_cleanup_free_ char *block = xmalloc(1u << 20);
	struct sha256 h;
	uint64_t n = 0;
	int r = sha256_init(&h);

	if (r < 0)
		return r;
	for (;;) {
		ssize_t k = read(fd, block, 1u << 20);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			r = -errno;
			sha256_free(&h);
			return r;
		}
		if (k == 0)
			break;
		sha256_update(&h, block, (size_t)k);
		n += (uint64_t)k;
		if (n > max)
			break;
	}
	sha256_final(&h, hex);
	*ret_size = n;
	return 0;
}

/*
 * Fetches and verifies the blob, unpacks it into tmp/root and publishes
 * that as final; the caller holds the lock and removes tmp. Local storage
 * is read in place (hashed, then hashed again while it is unpacked); other
 * storage is downloaded into tmp first.
 */
static int rootcache_fill(struct storage *s, const char *roots, const char *tmp,
			  const char *key, const char *sha256, uint64_t size, const char *final,
			  struct err *e)
{
	_cleanup_free_ char *blob = path_join(tmp, "blob"), *tree = path_join(tmp, "root");
	_cleanup_free_ char *sizefile = NULL, *txt = NULL;
	_cleanup_close_ int fd = -1;
	struct progress prog = { 0 };
	char hex[65];
	uint64_t got = 0;
	int dfd, r;

	if (storage_caps(s) & STORAGE_CAP_FD) {
		fd = storage_open_fd(s, key, e);
		if (fd < 0)
			return err_prefix(e, "fetching '%s'", key);
		r = hash_fd(fd, size ? size : UINT64_MAX - 1, hex, &got);
		if (r < 0)
			return err_set_errno(e, r, "cannot read '%s'", key);
		if (lseek(fd, 0, SEEK_SET) < 0)
			return err_set_errno(e, -errno, "cannot read '%s'", key);
	} else {
		r = storage_get_file(s, key, blob, hex, &got, e);
		if (r < 0)
			return err_prefix(e, "fetching '%s'", key);
		fd = open(blob, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return err_set_errno(e, -errno, "cannot open '%s'", blob);
		unlink(blob);
	}
	if (strcmp(hex, sha256) || (size && got != size))
		return err_set(e, -EBADMSG,
			       "'%s' is corrupt: sha256 %s, %llu bytes; the manifest says %s, %llu bytes",
			       key, hex, (unsigned long long)got, sha256, (unsigned long long)size);
	struct unpack_opts uo = { .mode = UNPACK_PLAIN, .name = key, .sha256 = sha256,
				  .size = got, .progress = &prog };
	progress_begin(&prog, "unpacking", got);
	r = unpack_fd(fd, tree, &uo, NULL, e);
	progress_end(&prog);
	if (r < 0)
		return r;

	dfd = open(tree, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	sizefile = xasprintf("%s/%s.size", roots, sha256);
	txt = xasprintf("%llu\n", (unsigned long long)(dfd >= 0 ? tree_usage(dfd, 0) : 0));
	fs_write_atomic(sizefile, txt, strlen(txt), 0644);
	/* a stale layer record would make the full copy look like a layer */
	unlink_record(roots, sha256);
	if (rename(tree, final) < 0) {
		struct stat st;

		/* published by a maker that did not share our lock file (it was
		 * trimmed and made anew meanwhile): theirs is as good as ours */
		if ((errno == EEXIST || errno == ENOTEMPTY) && lstat(final, &st) == 0 &&
		    S_ISDIR(st.st_mode))
			return 0;
		return err_set_errno(e, -errno, "cannot publish '%s'", final);
	}
	fs_fsync_parent(final);
	return 0;
}

/* Makes roots/<sha> in a fresh roots/<sha>.tmp-XXXXXX; lock held. */
static int rootcache_make(struct storage *s, const char *roots, const char *key,
			  const char *sha256, uint64_t size, const char *final, struct err *e)
{
	_cleanup_free_ char *tmp = xasprintf("%s/%s.tmp-XXXXXX", roots, sha256);
	_cleanup_err_ struct err e2 = ERR_INIT;
	int r;

	if (!mkdtemp(tmp))
		return err_set_errno(e, -errno, "cannot create a directory in '%s'", roots);
	r = rootcache_fill(s, roots, tmp, key, sha256, size, final, e);
	if (fs_rm_rf(tmp, &e2) < 0)
		log_warn("cannot remove '%s': %s", tmp, err_msg(&e2));
	return r;
}

static void lowers_in_use(const char *roots, struct strv *out);

static const char *chain_why(int r)
{
	return r == -ENOLINK ? "a layer below it is missing"
	       : r == -E2BIG ? "its chain of layers is too long"
	       : r == -EMEDIUMTYPE ? "a full copy was asked for"
	       : "its layer record is broken";
}

/* chain_resolve(), and with full a layered chain counts as unusable. */
static int chain_get(const char *roots, const char *sha, bool full, struct strv *out)
{
	int r;

	strv_free(out);
	r = chain_resolve(roots, sha, out);
	if (r == 0 && full && out->n > 1)
		r = -EMEDIUMTYPE;
	return r;
}

static int get_impl(const struct config *c, struct storage *s, const char *key,
		    const char *sha256, uint64_t size, bool full, struct strv *ret_lowers,
		    struct err *e)
{
	_cleanup_free_ char *roots = roots_dir(c);
	_cleanup_free_ char *final = NULL, *lock = NULL;
	_cleanup_close_ int lfd = -1;
	int r, made = 0;

	if (!hex64_ok(sha256))
		return err_set(e, -EINVAL, "'%s' is not a sha256", sha256);
	final = path_join(roots, sha256);
	lock = xasprintf("%s.lock", final);

	r = fs_mkdir_p(roots, 0700);
	if (r < 0)
		return err_set_errno(e, r, "cannot create '%s'", roots);

	r = chain_get(roots, sha256, full, ret_lowers);
	if (r < 0) {
		lfd = lock_file(lock, true, e);
		if (lfd < 0)
			return lfd;
		/* another process may have made it while we waited */
		r = chain_get(roots, sha256, full, ret_lowers);
	}
	if (r < 0) {
		strv_free(ret_lowers);
		if (r != -ENOENT) {
			/* a layer that cannot be stacked: a full copy replaces it */
			_cleanup_strv_ struct strv busy = STRV_INIT;

			log_info("root cache: %.12s: %s: unpacking it", sha256, chain_why(r));
			lowers_in_use(roots, &busy);
			if (strv_contains(&busy, sha256))
				return err_set(e, -EBUSY,
					       "the cached root '%s' is unusable (%s) and in use",
					       final, chain_why(r));
			r = remove_entry(roots, sha256, e);
			if (r < 0)
				return r;
		}
		remove_stale(roots, sha256);
		r = rootcache_make(s, roots, key, sha256, size, final, e);
		if (r < 0)
			return r;
		strv_push(ret_lowers, final);
		made = 1;
	}
	for (size_t i = 0; i < ret_lowers->n; i++) {
		_cleanup_free_ char *used = xasprintf("%s.used", ret_lowers->v[i]);

		touch(used);
	}
	if (c->limits.unpacked_cache > 0) {
		_cleanup_err_ struct err e2 = ERR_INIT;

		if (rootcache_trim(c, ret_lowers, &e2) < 0)
			log_warn("trimming the root cache: %s", err_msg(&e2));
	}
	return made;
}

int rootcache_get(const struct config *c, struct storage *s, const char *key, const char *sha256,
		  uint64_t size, struct strv *ret_lowers, struct err *e)
{
	return get_impl(c, s, key, sha256, size, false, ret_lowers, e);
}

int rootcache_get_full(const struct config *c, struct storage *s, const char *key,
		       const char *sha256, uint64_t size, struct strv *ret_lowers, struct err *e)
{
	return get_impl(c, s, key, sha256, size, true, ret_lowers, e);
}

int rootcache_put_layer(const struct config *c, const char *sha256, const char *parent_sha256,
			const char *upper, struct err *e)
{
	_cleanup_free_ char *roots = roots_dir(c);
	_cleanup_free_ char *final = NULL, *lock = NULL, *rec = NULL, *txt = NULL;
	_cleanup_free_ char *sizefile = NULL, *used = NULL;
	_cleanup_close_ int lfd = -1;
	struct stat st;
	int dfd, r;

	if (!hex64_ok(sha256) || !hex64_ok(parent_sha256) || !strcmp(sha256, parent_sha256))
		return err_set(e, -EINVAL, "invalid layer %s over %s", sha256, parent_sha256);
	final = path_join(roots, sha256);
	lock = xasprintf("%s.lock", final);
	rec = xasprintf("%s.parent", final);
	sizefile = xasprintf("%s.size", final);
	used = xasprintf("%s.used", final);
	r = fs_mkdir_p(roots, 0700);
	if (r < 0)
		return err_set_errno(e, r, "cannot create '%s'", roots);
	lfd = lock_file(lock, true, e);
	if (lfd < 0)
		return lfd;
	if (lstat(final, &st) == 0)
		return err_set(e, -EEXIST, "'%s' exists already", final);

	/* the size first (cheap while upper is still ours), then the record,
	 * synced, then the tree: the record is never missing for a layer */
	dfd = open(upper, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0)
		return err_set_errno(e, -errno, "cannot open '%s'", upper);
	txt = xasprintf("%llu\n", (unsigned long long)tree_usage(dfd, 0));
	fs_write_atomic(sizefile, txt, strlen(txt), 0644);
	free(txt);
	txt = xasprintf("%s\n", parent_sha256);
	r = fs_write_atomic(rec, txt, strlen(txt), 0644);
	if (r < 0)
		return err_set_errno(e, r, "cannot write '%s'", rec);
	if (rename(upper, final) < 0) {
		r = -errno;
		unlink(rec);
		unlink(sizefile);
		return err_set_errno(e, r, "cannot move '%s' to '%s'", upper, final);
	}
	fs_fsync_parent(final);
	touch(used);
	return 0;
}

/* ------------------------------------------------------------------ trim */

struct cached {
	char *sha;
	uint64_t size;
	int64_t used;
};

static int cmp_used(const void *a, const void *b)
{
	const struct cached *x = a, *y = b;

	if (x->used != y->used)
		return x->used < y->used ? -1 : 1;
	return strcmp(x->sha, y->sha);
}

/*
 * Collects the copies that a mounted overlay uses as a lower layer in any
 * mount namespace on this host (workspaces live in private namespaces, so
 * our own mountinfo does not show them).
 */
static void lowers_in_use(const char *roots, struct strv *out)
{
	DIR *d = opendir("/proc");
	_cleanup_buf_ struct buf mi = BUF_INIT;
	_cleanup_free_ char *needle = xasprintf("%s/", roots);

	if (!d)
		return;
	for (struct dirent *de; (de = readdir(d));) {
		_cleanup_free_ char *p = NULL;
		const char *at;

		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		p = xasprintf("/proc/%s/mountinfo", de->d_name);
		buf_reset(&mi);
		if (buf_read_file(&mi, p, MOUNTINFO_MAX_BYTES) < 0)
			continue;
		for (at = mi.p; (at = strstr(at, needle)); at += strlen(needle)) {
			const char *sha = at + strlen(needle);
			_cleanup_free_ char *h = xstrndup(sha, 64);

			if (strlen(h) == 64 && hex64_ok(h) && !strv_contains(out, h))
				strv_push(out, h);
		}
	}
	closedir(d);
}

static bool kept(const struct strv *keep, const char *sha)
{
	for (size_t i = 0; keep && i < keep->n; i++) {
		const char *k = strrchr(keep->v[i], '/');

		if (!strcmp(k ? k + 1 : keep->v[i], sha))
			return true;
	}
	return false;
}

int rootcache_trim(const struct config *c, const struct strv *keep, struct err *e)
{
	_cleanup_free_ char *roots = roots_dir(c);
	_cleanup_strv_ struct strv busy = STRV_INIT;
	struct cached *v = NULL;
	size_t n = 0, cap = 0;
	uint64_t total = 0, max = (uint64_t)c->limits.unpacked_cache;
	DIR *d;
	int r = 0;

	d = opendir(roots);
	if (!d)
		return errno == ENOENT ? 0 : err_set_errno(e, -errno, "cannot open '%s'", roots);
	for (struct dirent *de; (de = readdir(d));) {
		_cleanup_free_ char *sf = NULL, *uf = NULL;
		_cleanup_buf_ struct buf t = BUF_INIT;
		struct stat st;
		int64_t sz = 0;

		if (!hex64_ok(de->d_name))
			continue;
		sf = xasprintf("%s/%s.size", roots, de->d_name);
		uf = xasprintf("%s/%s.used", roots, de->d_name);
		if (buf_read_file(&t, sf, 64) >= 0) {
			buf_rtrim(&t);
			parse_int64(t.p, 0, INT64_MAX, &sz);
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			v = xrealloc(v, cap * sizeof(*v));
		}
		v[n].sha = xstrdup(de->d_name);
		v[n].size = (uint64_t)sz;
		v[n].used = stat(uf, &st) == 0 ? st.st_mtim.tv_sec : 0;
		total += v[n].size;
		n++;
	}
	closedir(d);
	if (total > max) {
		qsort(v, n, sizeof(*v), cmp_used);
		lowers_in_use(roots, &busy);
	}
	for (size_t i = 0; i < n && total > max; i++) {
		_cleanup_free_ char *lock = xasprintf("%s/%s.lock", roots, v[i].sha);
		_cleanup_close_ int lfd = -1;
		_cleanup_err_ struct err e2 = ERR_INIT;

		/* a layer over a removed entry falls back to unpacking later */
		if (kept(keep, v[i].sha) || strv_contains(&busy, v[i].sha))
			continue;
		lfd = lock_file(lock, false, &e2);
		if (lfd < 0)
			continue;   /* being made right now */
		if (remove_entry(roots, v[i].sha, e) < 0) {
			r = e->code;
			break;
		}
		total -= v[i].size;
	}
	for (size_t i = 0; i < n; i++)
		free(v[i].sha);
	free(v);
	return r;
}
