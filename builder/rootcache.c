/*
 * builder/rootcache.c - unpacked, read-only copies of blobs under
 * <paths.cache>/roots/<sha256>/, the lower layers of workspaces.
 *
 * Files per copy, all in roots/:
 *   <sha>/            the tree, published by rename when complete
 *   <sha>.lock        flock()ed while the copy is being made
 *   <sha>.used        its mtime is the last use (LRU)
 *   <sha>.size        the tree's disk usage in bytes (decimal)
 *   <sha>.tmp-XXXXXX  work in progress: blob + unpacked tree; a stale one
 *                     (its maker died) is removed by the next maker
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>

#include "builder/builder.h"

#define MOUNTINFO_MAX_BYTES (16u << 20)

static bool sha_ok(const char *s)
{
	size_t i;

	for (i = 0; s[i]; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return i == 64;
}

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

/* Fetches and verifies the blob, unpacks it into tmp/root and publishes
 * that as final; the caller holds the lock and removes tmp. */
static int rootcache_fill(struct storage *s, const char *roots, const char *tmp,
			  const char *key, const char *sha256, uint64_t size, const char *final,
			  struct err *e)
{
	_cleanup_free_ char *blob = path_join(tmp, "blob"), *tree = path_join(tmp, "root");
	_cleanup_free_ char *sizefile = NULL, *txt = NULL;
	struct progress prog = { 0 };
	char hex[65];
	uint64_t got = 0;
	int dfd, r;

	r = storage_get_file(s, key, blob, hex, &got, e);
	if (r < 0)
		return err_prefix(e, "fetching '%s'", key);
	if (strcmp(hex, sha256) || (size && got != size))
		return err_set(e, -EBADMSG,
			       "'%s' is corrupt: sha256 %s, %llu bytes; the manifest says %s, %llu bytes",
			       key, hex, (unsigned long long)got, sha256, (unsigned long long)size);
	progress_begin(&prog, "unpacking", got);
	r = unpack_file(blob, tree, true, &prog, e);
	progress_end(&prog);
	if (r < 0)
		return r;
	unlink(blob);

	dfd = open(tree, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	sizefile = xasprintf("%s/%s.size", roots, sha256);
	txt = xasprintf("%llu\n", (unsigned long long)(dfd >= 0 ? tree_usage(dfd, 0) : 0));
	fs_write_atomic(sizefile, txt, strlen(txt), 0644);
	if (rename(tree, final) < 0) {
		struct stat st;

		/* published by a maker that did not share our lock file (it was
		 * trimmed and made anew meanwhile): theirs is as good as ours */
		if ((errno == EEXIST || errno == ENOTEMPTY) && lstat(final, &st) == 0 &&
		    S_ISDIR(st.st_mode))
			return 0;
		return err_set(e, -errno, "cannot publish '%s': %s", final, strerror(errno));
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
		return err_set(e, -errno, "cannot create a directory in '%s': %s", roots,
			       strerror(errno));
	r = rootcache_fill(s, roots, tmp, key, sha256, size, final, e);
	if (fs_rm_rf(tmp, &e2) < 0)
		log_warn("cannot remove '%s': %s", tmp, err_msg(&e2));
	return r;
}

int rootcache_get(const struct config *c, struct storage *s, const char *key, const char *sha256,
		  uint64_t size, struct buf *ret_path, struct err *e)
{
	_cleanup_free_ char *roots = roots_dir(c);
	_cleanup_free_ char *final = NULL, *lock = NULL, *used = NULL;
	_cleanup_close_ int lfd = -1;
	struct stat st;
	int r;

	if (!sha_ok(sha256))
		return err_set(e, -EINVAL, "'%s' is not a sha256", sha256);
	final = path_join(roots, sha256);
	lock = xasprintf("%s.lock", final);
	used = xasprintf("%s.used", final);

	r = fs_mkdir_p(roots, 0700);
	if (r < 0)
		return err_set(e, r, "cannot create '%s': %s", roots, strerror(-r));

	if (lstat(final, &st) < 0 || !S_ISDIR(st.st_mode)) {
		lfd = lock_file(lock, true, e);
		if (lfd < 0)
			return lfd;
		/* another process may have made it while we waited */
		if (lstat(final, &st) < 0 || !S_ISDIR(st.st_mode)) {
			remove_stale(roots, sha256);
			r = rootcache_make(s, roots, key, sha256, size, final, e);
			if (r < 0)
				return r;
		}
	}
	touch(used);
	buf_reset(ret_path);
	buf_adds(ret_path, final);
	if (c->limits.unpacked_cache > 0) {
		_cleanup_err_ struct err e2 = ERR_INIT;

		if (rootcache_trim(c, final, &e2) < 0)
			log_warn("trimming the root cache: %s", err_msg(&e2));
	}
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

			if (strlen(h) == 64 && sha_ok(h) && !strv_contains(out, h))
				strv_push(out, h);
		}
	}
	closedir(d);
}

int rootcache_trim(const struct config *c, const char *keep, struct err *e)
{
	_cleanup_free_ char *roots = roots_dir(c);
	_cleanup_strv_ struct strv busy = STRV_INIT;
	struct cached *v = NULL;
	size_t n = 0, cap = 0;
	uint64_t total = 0, max = (uint64_t)c->limits.unpacked_cache;
	const char *keep_sha = keep ? strrchr(keep, '/') : NULL;
	DIR *d;
	int r = 0;

	keep_sha = keep_sha ? keep_sha + 1 : keep;
	d = opendir(roots);
	if (!d)
		return errno == ENOENT ? 0 : err_set(e, -errno, "cannot open '%s': %s", roots,
						     strerror(errno));
	for (struct dirent *de; (de = readdir(d));) {
		_cleanup_free_ char *sf = NULL, *uf = NULL;
		_cleanup_buf_ struct buf t = BUF_INIT;
		struct stat st;
		int64_t sz = 0;

		if (!sha_ok(de->d_name))
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
		_cleanup_free_ char *p = path_join(roots, v[i].sha);
		_cleanup_free_ char *lock = xasprintf("%s.lock", p);
		_cleanup_free_ char *sf = xasprintf("%s.size", p), *uf = xasprintf("%s.used", p);
		_cleanup_close_ int lfd = -1;
		_cleanup_err_ struct err e2 = ERR_INIT;

		if ((keep_sha && !strcmp(v[i].sha, keep_sha)) || strv_contains(&busy, v[i].sha))
			continue;
		lfd = lock_file(lock, false, &e2);
		if (lfd < 0)
			continue;   /* being made right now */
		if (fs_rm_rf(p, e) < 0) {
			r = e->code;
			break;
		}
		unlink(sf);
		unlink(uf);
		total -= v[i].size;
	}
	for (size_t i = 0; i < n; i++)
		free(v[i].sha);
	free(v);
	return r;
}
