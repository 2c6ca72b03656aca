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
 *   <sha>.used        its mtime is the last use (LRU); a workspace that stacks
 *                     the entry holds a shared flock() on it, a removal an
 *                     exclusive one
 *   <sha>.size        the tree's disk usage in bytes (decimal)
 *   <sha>.tmp-XXXXXX  work in progress (blob + unpacked tree) or an entry
 *                     being removed; a stale one (its maker died: the lock
 *                     is free) is removed by the next rootcache_get() of any
 *                     sha (rootcache_sweep), or the next maker
 *   .format           the format and the sandbox range the trees belong to
 *                     (a cache without it is the first edition's)
 * and, beside roots/, roots.format.lock and the caches of another format
 * or range moved aside (roots.old-ID), removed once nothing uses them.
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

#include "actions/actions.h"
#include "archive/archive.h"
#include "rootfs/rootfs.h"

/* What roots/.format says: the trees belong to the sandbox's range. */
#define ROOTS_FORMAT "upaas roots 2: uid %u gid %u\n"

static char *roots_dir(const struct config *c)
{
	return path_join(c->paths.cache, "roots");
}

void rootfs_range(const struct config *c, struct sandbox_range *ret)
{
	struct sandbox_policy p;
	actions_sandbox_policy(c, &p);
	sandbox_range_get(&p, ret);
}

/* Removes the caches moved aside by roots_format(); in-use ones stay. */
static void remove_old_roots(const struct config *c)
{
	_cleanup_strv_ struct strv old = STRV_INIT;
	DIR *d = opendir(c->paths.cache);
	if (!d)
		return;
	for (struct dirent *de; (de = readdir(d));)
		if (!strncmp(de->d_name, "roots.old-", 10))
			strv_push(&old, de->d_name);
	closedir(d);
	for (size_t i = 0; i < old.n; i++) {
		_cleanup_free_ char *p = path_join(c->paths.cache, old.v[i]);
		_cleanup_err_ struct err e = ERR_INIT;
		if (fs_rm_rf(p, &e) < 0)
			log_warn("root cache: cannot remove the old '%s' yet: %s", p, err_msg(&e));
	}
}

/*
 * Makes sure roots/ is of this format and range (once per process): a
 * cache of the first edition (trees owned by real root, no .format) or of
 * another range cannot be used by the sandbox, so it is moved aside whole
 * (roots.old-ID, by rename: builds using it keep their mounts) and removed
 * where nothing uses it; the cache starts empty. Nothing for the admin to
 * do but wait for the first build to unpack its base again.
 */
static int roots_format(const struct config *c, const char *roots, struct err *e)
{
	static char *done;
	struct sandbox_range ids;
	rootfs_range(c, &ids);
	_cleanup_free_ char *want = xasprintf(ROOTS_FORMAT, (unsigned)ids.uid_base,
					      (unsigned)ids.gid_base);
	_cleanup_free_ char *key = xasprintf("%s %s", roots, want);
	if (done && !strcmp(done, key))
		return 0;

	int r = fs_mkdir_p(c->paths.cache, 0755);
	if (r < 0)
		return err_set_errno(e, r, "cannot create '%s'", c->paths.cache);
	_cleanup_free_ char *lock = xasprintf("%s.format.lock", roots);
	_cleanup_close_ int lfd = lock_file(lock, true, e);
	if (lfd < 0)
		return lfd;
	_cleanup_free_ char *fmt = path_join(roots, ".format");
	_cleanup_buf_ struct buf have = BUF_INIT;
	r = buf_read_file(&have, fmt, 256);
	if (r < 0 || strcmp(have.p, want)) {
		struct stat st;
		if (lstat(roots, &st) == 0) {
			_cleanup_free_ char *id = id_new();
			_cleanup_free_ char *old = xasprintf("%s.old-%s", roots, id);
			log_info("root cache: '%s' %s: starting a new one", roots,
				 r < 0 ? "is of the first edition (owned by root)"
				       : "was made for another sandbox range");
			if (rename(roots, old) < 0)
				return err_set_errno(e, -errno, "cannot move '%s' aside", roots);
			fs_fsync_parent(roots);
		}
		r = fs_mkdir_p(roots, 0700);
		if (r < 0)
			return err_set_errno(e, r, "cannot create '%s'", roots);
		r = fs_write_atomic(fmt, want, strlen(want), 0644);
		if (r < 0)
			return err_set_errno(e, r, "cannot write '%s'", fmt);
	}
	remove_old_roots(c);
	free(done);
	done = TAKE_PTR(key);
	return 0;
}

/*
 * Workspaces hold the entries they stack with a shared lock on <sha>.used
 * (rootfs/workspace.c). Takes it exclusively, for a removal: the fd that
 * holds it (-1: nothing to hold), or -EBUSY while a workspace holds it.
 */
static int entry_claim(const char *roots, const char *sha)
{
	_cleanup_free_ char *used = xasprintf("%s/%s.used", roots, sha);
	int fd = open(used, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int r = errno == EWOULDBLOCK ? -EBUSY : -1;
		close(fd);
		return r;
	}
	return fd;
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
	crash_point("rootcache.remove.after-rename");
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

/* Hashes fd to its end, at most max + 1 bytes. */
static int hash_fd(int fd, uint64_t max, char hex[65], uint64_t *ret_size)
{
	_cleanup_free_ char *block = xmalloc(1u << 20);
	struct sha256 h;
	uint64_t n = 0;
	int r = sha256_init(&h);

	if (r < 0)
		return r;
	while (n <= max) {
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
	}
	sha256_final(&h, hex);
	*ret_size = n;
	return 0;
}

/*
 * Fetches and verifies the blob, unpacks it into tmp/root and publishes
 * that as final; the caller holds the lock and removes tmp. Local storage
 * is read in place (hashed first, and again while it is unpacked: nothing
 * unverified reaches the unpacker); other storage is streamed into tmp,
 * bounded by the size of the (verified) manifest and checked on the way.
 */
static int rootcache_fill(const struct config *cfg, struct storage *s, const char *roots,
			  const char *tmp, const char *key, const char *sha256, uint64_t size,
			  const char *parent, const char *final, struct err *e)
{
	_cleanup_free_ char *blob = path_join(tmp, "blob"), *tree = path_join(tmp, "root");
	_cleanup_free_ char *sizefile = NULL, *txt = NULL;
	_cleanup_close_ int fd = -1;
	struct progress prog = { 0 };
	uint64_t got = 0;
	int dfd, r;

	if (storage_caps(s) & STORAGE_CAP_FD) {
		char hex[65];

		fd = storage_open_fd(s, key, e);
		if (fd < 0)
			return err_prefix(e, "fetching '%s'", key);
		r = hash_fd(fd, size, hex, &got);
		if (r < 0)
			return err_set_errno(e, r, "cannot read '%s'", key);
		if (got != size)
			return err_set(e, -EBADMSG, "the blob failed verification: '%s' has %s%llu "
				       "bytes, the manifest says %llu", key, got > size ? "more than " : "",
				       (unsigned long long)got, (unsigned long long)size);
		if (strcmp(hex, sha256))
			return err_set(e, -EBADMSG, "the blob failed verification: '%s' has sha256 %s, "
				       "the manifest says %s", key, hex, sha256);
		if (lseek(fd, 0, SEEK_SET) < 0)
			return err_set_errno(e, -errno, "cannot read '%s'", key);
	} else {
		r = storage_get_verified(s, key, blob, sha256, size, "the blob", e);
		if (r < 0)
			return err_prefix(e, "fetching '%s'", key);
		fd = open(blob, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return err_set_errno(e, -errno, "cannot open '%s'", blob);
		unlink(blob);
		got = size;
	}
	/* owned by the sandbox's range: root inside is its first id */
	struct sandbox_range ids;
	rootfs_range(cfg, &ids);
	/* a layer over another in overlay's format, a full root as it is */
	struct unpack_opts uo = { .mode = parent ? UNPACK_UPPER : UNPACK_PLAIN, .name = key,
				  .sha256 = sha256, .size = got, .progress = &prog,
				  .uid_offset = ids.uid_base, .gid_offset = ids.gid_base };
	progress_begin(&prog, "unpacking", got);
	r = unpack_fd(fd, tree, &uo, NULL, e);
	progress_end(&prog);
	if (r < 0)
		return r;

	dfd = open(tree, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	sizefile = xasprintf("%s/%s.size", roots, sha256);
	txt = xasprintf("%llu\n", (unsigned long long)(dfd >= 0 ? tree_usage(dfd, 0) : 0));
	fs_write_atomic(sizefile, txt, strlen(txt), 0644);
	if (parent) {
		/* the record before the tree: a layer is never taken for a full
		 * copy */
		_cleanup_free_ char *rec = xasprintf("%s/%s.parent", roots, sha256);
		_cleanup_free_ char *line = xasprintf("%s\n", parent);
		r = fs_write_atomic(rec, line, strlen(line), 0644);
		if (r < 0)
			return err_set_errno(e, r, "cannot write '%s'", rec);
	} else {
		/* a stale layer record would make the full copy look like a layer */
		unlink_record(roots, sha256);
	}
	crash_point("rootcache.before-publish");
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
	crash_point("rootcache.after-publish");
	return 0;
}

/* Makes roots/<sha> in a fresh roots/<sha>.tmp-XXXXXX; lock held. parent:
 * the layer it sits on (NULL: a full root). */
static int rootcache_make(const struct config *c, struct storage *s, const char *roots,
			  const char *key, const char *sha256, uint64_t size, const char *parent,
			  const char *final, struct err *e)
{
	_cleanup_free_ char *tmp = xasprintf("%s/%s.tmp-XXXXXX", roots, sha256);
	_cleanup_err_ struct err e2 = ERR_INIT;
	int r;

	if (!mkdtemp(tmp))
		return err_set_errno(e, -errno, "cannot create a directory in '%s'", roots);
	r = rootcache_fill(c, s, roots, tmp, key, sha256, size, parent, final, e);
	if (fs_rm_rf(tmp, &e2) < 0)
		log_warn("cannot remove '%s': %s", tmp, err_msg(&e2));
	return r;
}

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

	r = roots_format(c, roots, e);
	if (r < 0)
		return r;
	/* whoever comes next removes what dead makers left */
	rootcache_sweep(c);

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
			log_info("root cache: %.12s: %s: unpacking it", sha256, chain_why(r));
			_cleanup_close_ int claim = entry_claim(roots, sha256);
			if (claim == -EBUSY)
				return err_set(e, -EBUSY,
					       "the cached root '%s' is unusable (%s) and in use",
					       final, chain_why(r));
			r = remove_entry(roots, sha256, e);
			if (r < 0)
				return r;
		}
		remove_stale(roots, sha256);
		r = rootcache_make(c, s, roots, key, sha256, size, NULL, final, e);
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

/* Makes the entry of layer l (over parent, NULL for a full one) unless a
 * usable one is there; an unusable one is replaced. 1 when it was made. */
static int layer_entry(const struct config *c, struct storage *s, const char *roots,
		       const struct rootcache_layer *l, const char *parent, struct err *e)
{
	_cleanup_free_ char *final = path_join(roots, l->sha256);
	_cleanup_free_ char *lock = xasprintf("%s.lock", final);
	_cleanup_strv_ struct strv chain = STRV_INIT;
	_cleanup_close_ int lfd = lock_file(lock, true, e);
	struct stat st;
	int r;

	if (lfd < 0)
		return lfd;
	/* made by someone else while we waited? */
	r = chain_resolve(roots, l->sha256, &chain);
	if (r == 0)
		return 0;
	if (lstat(final, &st) == 0) {
		_cleanup_close_ int claim = entry_claim(roots, l->sha256);
		log_info("root cache: %.12s: %s: fetching it again", l->sha256, chain_why(r));
		if (claim == -EBUSY)
			return err_set(e, -EBUSY, "the cached layer '%s' is unusable (%s) and in use",
				       final, chain_why(r));
		if ((r = remove_entry(roots, l->sha256, e)) < 0)
			return r;
	}
	remove_stale(roots, l->sha256);
	r = rootcache_make(c, s, roots, l->key, l->sha256, l->size, parent, final, e);
	return r < 0 ? r : 1;
}

int rootcache_get_layers(const struct config *c, struct storage *s,
			 const struct rootcache_layer *l, size_t n, struct strv *ret_lowers,
			 struct err *e)
{
	_cleanup_free_ char *roots = roots_dir(c);
	size_t have = 0;
	int r, made = 0;

	if (!n)
		return err_set(e, -EINVAL, "no layer to stack");
	for (size_t i = 0; i < n; i++)
		if (!hex64_ok(l[i].sha256))
			return err_set(e, -EINVAL, "'%s' is not a sha256", l[i].sha256);
	r = roots_format(c, roots, e);
	if (r < 0)
		return r;
	/* whoever comes next removes what dead makers left */
	rootcache_sweep(c);
	/* the highest layer whose chain the cache has whole: the ones above
	 * it are fetched, bottom up, each over the one below */
	for (size_t i = n; i > 0 && !have; i--) {
		_cleanup_strv_ struct strv chain = STRV_INIT;
		if (chain_resolve(roots, l[i - 1].sha256, &chain) == 0)
			have = i;
	}
	for (size_t i = have; i < n; i++) {
		r = layer_entry(c, s, roots, &l[i], i ? l[i - 1].sha256 : NULL, e);
		if (r < 0)
			return err_prefix(e, "layer %zu of %zu", i + 1, n);
		made |= r;
	}
	strv_free(ret_lowers);
	r = chain_resolve(roots, l[n - 1].sha256, ret_lowers);
	if (r < 0) {
		strv_free(ret_lowers);
		return err_set(e, -ENOLINK, "the cached layer '%s/%s': %s", roots, l[n - 1].sha256,
			       chain_why(r));
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
	r = roots_format(c, roots, e);
	if (r < 0)
		return r;
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
	crash_point("rootcache.layer.after-record");
	if (rename(upper, final) < 0) {
		r = -errno;
		unlink(rec);
		unlink(sizefile);
		return err_set_errno(e, r, "cannot move '%s' to '%s'", upper, final);
	}
	fs_fsync_parent(final);
	crash_point("rootcache.layer.after-rename");
	touch(used);
	return 0;
}

/*
 * Removes what dead makers and removers left in roots/: each <sha>.tmp-*
 * while <sha>.lock is free (we hold it meanwhile: nobody makes <sha> under
 * us), and the sidecars of a <sha> that has no tree any more.
 */
int rootcache_sweep(const struct config *c)
{
	_cleanup_free_ char *roots = roots_dir(c);
	_cleanup_strv_ struct strv names = STRV_INIT;
	DIR *d = opendir(roots);
	int n = 0;

	if (!d)
		return 0;
	for (struct dirent *de; (de = readdir(d));)
		if (strlen(de->d_name) > 64 && de->d_name[64] == '.')
			strv_push(&names, de->d_name);
	closedir(d);
	for (size_t i = 0; i < names.n; i++) {
		_cleanup_free_ char *sha = xstrndup(names.v[i], 64);
		const char *ext = names.v[i] + 64;
		bool tmp = !strncmp(ext, ".tmp-", 5);
		bool side = !strcmp(ext, ".parent") || !strcmp(ext, ".size") || !strcmp(ext, ".used");

		if (!hex64_ok(sha) || (!tmp && !side))
			continue;
		_cleanup_free_ char *lock = xasprintf("%s/%s.lock", roots, sha);
		_cleanup_free_ char *tree = path_join(roots, sha);
		_cleanup_free_ char *p = path_join(roots, names.v[i]);
		_cleanup_err_ struct err e = ERR_INIT;
		struct stat st;

		if (side && lstat(tree, &st) == 0)
			continue;
		_cleanup_close_ int lfd = lock_file(lock, false, &e);
		if (lfd < 0)
			continue;   /* being made or removed right now */
		if (side && lstat(tree, &st) == 0)
			continue;
		if (fs_rm_rf(p, &e) < 0) {
			log_warn("cannot remove stale '%s': %s", p, err_msg(&e));
			continue;
		}
		n++;
	}
	return n;
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
	if (total > max)
		qsort(v, n, sizeof(*v), cmp_used);
	for (size_t i = 0; i < n && total > max; i++) {
		_cleanup_free_ char *lock = xasprintf("%s/%s.lock", roots, v[i].sha);
		_cleanup_close_ int lfd = -1;
		_cleanup_err_ struct err e2 = ERR_INIT;

		/* a layer over a removed entry falls back to unpacking later */
		if (kept(keep, v[i].sha))
			continue;
		_cleanup_close_ int claim = entry_claim(roots, v[i].sha);
		if (claim == -EBUSY)
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

/* ------------------------------------------------------------ retire */

/* roots/.chains/<app>: the entries of the app's last chain, a sha a line. */
static int chain_record_read(const char *path, struct strv *ret)
{
	_cleanup_buf_ struct buf t = BUF_INIT;
	int r = buf_read_file(&t, path, 64 * 1024);

	if (r < 0)
		return r;
	for (char *line = t.p, *nl; line && *line; line = nl) {
		nl = strchr(line, '\n');
		if (nl)
			*nl++ = '\0';
		if (hex64_ok(line))
			strv_push(ret, line);
	}
	return 0;
}

int rootcache_retire(const struct config *c, const char *app, const char *top_sha256,
		     const char *keep_sha256, struct err *e)
{
	_cleanup_free_ char *roots = roots_dir(c);
	_cleanup_free_ char *dir = path_join(roots, ".chains");
	_cleanup_free_ char *rec = NULL, *lock = NULL;
	_cleanup_strv_ struct strv chain = STRV_INIT, now = STRV_INIT, old = STRV_INIT;
	_cleanup_buf_ struct buf text = BUF_INIT;
	_cleanup_close_ int lfd = -1;
	int r;

	if (!app_name_ok(app) || !hex64_ok(top_sha256))
		return err_set(e, -EINVAL, "invalid chain '%s' of app '%s'", top_sha256, app);
	r = fs_mkdir_p(dir, 0700);
	if (r < 0)
		return err_set_errno(e, r, "cannot create '%s'", dir);
	rec = path_join(dir, app);
	/* one lock for all records: a removal must see every app's */
	lock = path_join(dir, ".lock");
	lfd = lock_file(lock, true, e);
	if (lfd < 0)
		return lfd;
	if (chain_resolve(roots, top_sha256, &chain) < 0)
		return 0;   /* nothing usable to record */
	for (size_t i = 0; i < chain.n; i++) {
		const char *sha = strrchr(chain.v[i], '/') + 1;
		strv_push(&now, sha);
		buf_addf(&text, "%s\n", sha);
	}
	chain_record_read(rec, &old);
	r = fs_write_atomic(rec, text.p, text.len, 0600);
	if (r < 0)
		return err_set_errno(e, r, "cannot write '%s'", rec);

	/* what other apps' chains hold stays */
	_cleanup_strv_ struct strv others = STRV_INIT;
	DIR *d = opendir(dir);
	for (struct dirent *de; d && (de = readdir(d));) {
		if (!app_name_ok(de->d_name) || !strcmp(de->d_name, app))
			continue;
		_cleanup_free_ char *p = path_join(dir, de->d_name);
		chain_record_read(p, &others);
	}
	if (d)
		closedir(d);
	for (size_t i = 0; i < old.n; i++) {
		const char *sha = old.v[i];
		_cleanup_err_ struct err e2 = ERR_INIT;

		if (strv_contains(&now, sha) || strv_contains(&others, sha) ||
		    (keep_sha256 && !strcmp(sha, keep_sha256)))
			continue;
		_cleanup_free_ char *elock = xasprintf("%s/%s.lock", roots, sha);
		_cleanup_close_ int efd = lock_file(elock, false, &e2);
		if (efd < 0)
			continue;   /* being made or used right now */
		_cleanup_close_ int claim = entry_claim(roots, sha);
		if (claim == -EBUSY)
			continue;   /* a workspace stacks it */
		if (remove_entry(roots, sha, &e2) < 0)
			log_warn("root cache: cannot remove '%s/%s': %s", roots, sha, err_msg(&e2));
		else
			log_debug("root cache: removed %.12s, which app '%s' no longer stacks", sha,
				  app);
	}
	return 0;
}
