/*
 * archive/archive.c - packing a tree into a zstd pax tar (pack_tree) and
 * extracting one (unpack_file), both with libarchive.
 *
 * pack_tree walks the tree itself instead of using archive_read_disk: it
 * needs a sorted, deterministic order, numeric ids only (names would be
 * resolved against the host's passwd, not the image's), no atime/ctime, and
 * big reads; archive_read_disk gives none of these cheaply.
 */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include "archive/archive.h"

#define PACK_READ_BUF (1u << 20)        /* file data is read in 1 MiB chunks */
#define PACK_BLOCK (1u << 20)           /* libarchive output block */
#define PACK_MAX_DEPTH 256
#define XATTR_LIST_MAX_BYTES (1u << 16)
#define XATTR_VALUE_MAX_BYTES (1u << 16)

static void archive_write_freep(struct archive **a)
{
	if (*a)
		archive_write_free(*a);
}

static void archive_read_freep(struct archive **a)
{
	if (*a)
		archive_read_free(*a);
}

static void entry_freep(struct archive_entry **ae)
{
	if (*ae)
		archive_entry_free(*ae);
}

static void dir_closep(DIR **d)
{
	if (*d)
		closedir(*d);
}

/* ------------------------------------------------------------------ pack */

struct pack_ctx {
	const char *root;
	const struct pack_opts *o;
	struct archive *a;
	struct archive_entry *entry;
	struct archive_entry_linkresolver *lr;
	sink_fn sink;
	void *sink_data;
	struct sha256 hash;
	uint64_t size;
	uint64_t entries;
	int sink_rc;            /* first error of the sink */
	bool discard;           /* failed: what libarchive still flushes goes nowhere */
	char *rbuf;
	struct buf rel;         /* path of the current entry, relative to root */
	struct buf xnames;
	struct buf xval;
	struct err *e;
};

/* The libarchive output callback: hash and forward in one pass. */
static ssize_t pack_write_cb(struct archive *a, void *data, const void *p, size_t n)
{
	struct pack_ctx *x = data;
	int r;

	if (x->discard)
		return (ssize_t)n;
	sha256_update(&x->hash, p, n);
	r = x->sink(x->sink_data, p, n);
	if (r < 0) {
		if (!x->sink_rc)
			x->sink_rc = r;
		archive_set_error(a, -r, "write failed: %s", strerror(-r));
		return -1;
	}
	x->size += n;
	return (ssize_t)n;
}

/* Records a libarchive error on the write handle as e; returns the code. */
static int pack_fail(struct pack_ctx *x, const char *what)
{
	int code;

	if (x->sink_rc)
		return err_set(x->e, x->sink_rc, "packing '%s': %s", x->root,
			       archive_error_string(x->a) ?: strerror(-x->sink_rc));
	code = archive_errno(x->a) > 0 ? -archive_errno(x->a) : -EIO;
	return err_set(x->e, code, "packing '%s': %s '%s': %s", x->root, what,
		       x->rel.len ? x->rel.p : ".", archive_error_string(x->a) ?: "unknown error");
}

/* true when rel matches an exclude pattern ("dir" or "dir/ *"). */
static bool pack_excluded(const struct pack_ctx *x, const char *rel)
{
	if (!x->o->exclude)
		return false;
	for (const char *const *p = x->o->exclude; *p; p++) {
		const char *pat = *p;

		while (*pat == '/')
			pat++;
		if (!*pat)
			continue;
		if (fnmatch(pat, rel, FNM_PATHNAME) == 0)
			return true;
	}
	return false;
}

/*
 * File capabilities (security.capability): v2 is 20 bytes (magic_etc, then
 * permitted/inheritable twice), v3 adds the root id of the user namespace
 * the capability is for. A capability of a shifted tree's root is a v3 one
 * with the offset as its root id; unshifted, it is a v2 one (the host's
 * root). Returns the new length (0: leave the value alone), or -EINVAL for
 * a v3 root id that does not shift.
 */
#define CAP_V2_SIZE 20
#define CAP_V3_SIZE 24
#define CAP_REVISION_MASK 0xff000000u
#define CAP_REVISION_2 0x02000000u
#define CAP_REVISION_3 0x03000000u

static uint32_t le32_get(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void le32_put(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
	p[2] = (unsigned char)(v >> 16);
	p[3] = (unsigned char)(v >> 24);
}

/* Shifted to unshifted (pack): v3 with root id offset+r -> r (v2 for 0). */
static int cap_unshift(unsigned char *v, size_t len, uint32_t offset)
{
	if (len != CAP_V3_SIZE || (le32_get(v) & CAP_REVISION_MASK) != CAP_REVISION_3)
		return 0;
	uint32_t root = le32_get(v + CAP_V2_SIZE);
	if (root < offset || root - offset >= ARCHIVE_ID_RANGE)
		return -EINVAL;
	if (root == offset) {
		le32_put(v, (le32_get(v) & ~CAP_REVISION_MASK) | CAP_REVISION_2);
		return CAP_V2_SIZE;
	}
	le32_put(v + CAP_V2_SIZE, root - offset);
	return CAP_V3_SIZE;
}

/* Unshifted to shifted (unpack): v2 -> v3 with root id offset; v3 r -> offset+r. */
static int cap_shift(unsigned char *v, size_t len, uint32_t offset)
{
	uint32_t rev = len >= 4 ? le32_get(v) & CAP_REVISION_MASK : 0;
	if (len == CAP_V2_SIZE && rev == CAP_REVISION_2) {
		le32_put(v, (le32_get(v) & ~CAP_REVISION_MASK) | CAP_REVISION_3);
		le32_put(v + CAP_V2_SIZE, offset);
		return CAP_V3_SIZE;
	}
	if (len == CAP_V3_SIZE && rev == CAP_REVISION_3) {
		uint32_t root = le32_get(v + CAP_V2_SIZE);
		if (root >= ARCHIVE_ID_RANGE)
			return -EINVAL;
		le32_put(v + CAP_V2_SIZE, root + offset);
		return CAP_V3_SIZE;
	}
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Adds the xattrs of the object at fd (or path for non-openable objects),
 * sorted by name so that the archive is deterministic. */
static int pack_xattrs(struct pack_ctx *x, int fd, const char *path)
{
	_cleanup_strv_ struct strv names = STRV_INIT;
	ssize_t n;

	buf_reset(&x->xnames);
	if (buf_grow(&x->xnames, XATTR_LIST_MAX_BYTES) < 0)
		return -ENOMEM;
	n = fd >= 0 ? flistxattr(fd, x->xnames.p, XATTR_LIST_MAX_BYTES)
		    : llistxattr(path, x->xnames.p, XATTR_LIST_MAX_BYTES);
	if (n < 0) {
		if (errno == ENOTSUP || errno == ENODATA)
			return 0;
		return err_set_errno(x->e, -errno, "packing '%s': cannot list xattrs of '%s'",
			       x->root, x->rel.p);
	}
	if (n == 0)
		return 0;
	for (ssize_t i = 0; i < n;) {
		const char *name = x->xnames.p + i;
		size_t l = strnlen(name, (size_t)(n - i));

		if (l)
			strv_push(&names, name);
		i += (ssize_t)l + 1;
	}
	if (names.n > 1)
		qsort(names.v, names.n, sizeof(char *), cmp_str);
	for (size_t i = 0; i < names.n; i++) {
		ssize_t vl;

		buf_reset(&x->xval);
		if (buf_grow(&x->xval, XATTR_VALUE_MAX_BYTES) < 0)
			return -ENOMEM;
		vl = fd >= 0 ? fgetxattr(fd, names.v[i], x->xval.p, XATTR_VALUE_MAX_BYTES)
			     : lgetxattr(path, names.v[i], x->xval.p, XATTR_VALUE_MAX_BYTES);
		if (vl < 0) {
			if (errno == ENODATA)
				continue;
			return err_set_errno(x->e, -errno, "packing '%s': cannot read xattr '%s' of '%s'",
				       x->root, names.v[i], x->rel.p);
		}
		if (x->o->uid_offset && !strcmp(names.v[i], "security.capability")) {
			int nl = cap_unshift((unsigned char *)x->xval.p, (size_t)vl, x->o->uid_offset);
			if (nl < 0)
				return err_set(x->e, -EINVAL, "packing '%s': the file capabilities of '%s' "
					       "are for a user namespace outside the sandbox's ids",
					       x->root, x->rel.p);
			if (nl > 0)
				vl = nl;
		}
		archive_entry_xattr_add_entry(x->entry, names.v[i], x->xval.p, (size_t)vl);
	}
	return 0;
}

/* Writes the data of a regular file: exactly size bytes, in big chunks. A
 * file that shrinks while being read is padded with zeros, one that grows is
 * cut, so the header stays true. */
static int pack_data(struct pack_ctx *x, int fd, int64_t size)
{
	int64_t left = size;

	while (left > 0) {
		size_t want = left > PACK_READ_BUF ? PACK_READ_BUF : (size_t)left;
		ssize_t n = read(fd, x->rbuf, want);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return err_set_errno(x->e, -errno, "packing '%s': cannot read '%s'", x->root,
				       x->rel.p);
		}
		if (n == 0) {
			memset(x->rbuf, 0, want);
			n = (ssize_t)want;
		}
		if (archive_write_data(x->a, x->rbuf, (size_t)n) < 0)
			return pack_fail(x, "writing");
		left -= n;
		if (x->o->progress)
			progress_add(x->o->progress, (uint64_t)n);
	}
	return 0;
}

static int pack_dir(struct pack_ctx *x, int dfd, unsigned depth);

/* Packs one directory entry name (in directory dfd); x->rel is its path. */
static int pack_one(struct pack_ctx *x, int dfd, const char *name, unsigned depth)
{
	struct archive_entry *ae = x->entry, *sparse = NULL;
	_cleanup_close_ int fd = -1;
	_cleanup_free_ char *fullpath = NULL;
	struct stat st;
	int64_t mtime;
	int r;

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT)
			return 0;   /* vanished meanwhile */
		return err_set_errno(x->e, -errno, "packing '%s': cannot stat '%s'", x->root,
			       x->rel.p);
	}
	if (S_ISSOCK(st.st_mode))
		return 0;       /* tar cannot hold sockets; they are runtime state */

	/* a shifted tree holds the ids inside; anything else in it was made
	 * by someone who should not have (or a first-edition root) */
	uid_t uid = st.st_uid;
	gid_t gid = st.st_gid;
	if (x->o->uid_offset || x->o->gid_offset) {
		if (uid - x->o->uid_offset >= ARCHIVE_ID_RANGE || uid < x->o->uid_offset ||
		    gid - x->o->gid_offset >= ARCHIVE_ID_RANGE || gid < x->o->gid_offset)
			return err_set(x->e, -EPERM, "packing '%s': '%s' is owned by %u:%u, outside the "
				       "sandbox's ids (%u:%u and the %u after them)", x->root, x->rel.p,
				       (unsigned)uid, (unsigned)gid, x->o->uid_offset,
				       x->o->gid_offset, ARCHIVE_ID_RANGE - 1);
		uid -= x->o->uid_offset;
		gid -= x->o->gid_offset;
	}
	archive_entry_clear(ae);
	archive_entry_set_pathname(ae, x->rel.p);
	archive_entry_set_mode(ae, st.st_mode);
	archive_entry_set_uid(ae, uid);
	archive_entry_set_gid(ae, gid);
	mtime = st.st_mtim.tv_sec;
	if (x->o->mtime_clamp >= 0 && mtime > x->o->mtime_clamp)
		mtime = x->o->mtime_clamp;
	archive_entry_set_mtime(ae, mtime, 0);

	if (S_ISREG(st.st_mode)) {
		fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
		if (fd < 0)
			return err_set_errno(x->e, -errno, "packing '%s': cannot open '%s'", x->root,
				       x->rel.p);
		archive_entry_set_size(ae, st.st_size);
	} else if (S_ISDIR(st.st_mode)) {
		fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return err_set_errno(x->e, -errno, "packing '%s': cannot open directory '%s'",
				       x->root, x->rel.p);
	} else if (S_ISLNK(st.st_mode)) {
		_cleanup_buf_ struct buf t = BUF_INIT;
		size_t cap = st.st_size > 0 ? (size_t)st.st_size + 1 : 256;
		ssize_t n;

		for (;;) {
			if (buf_grow(&t, cap) < 0)
				return -ENOMEM;
			n = readlinkat(dfd, name, t.p, cap);
			if (n < 0)
				return err_set_errno(x->e, -errno, "packing '%s': cannot read link '%s'",
					       x->root, x->rel.p);
			if ((size_t)n < cap)
				break;
			if (cap >= PATH_MAX * 4)
				return err_set(x->e, -ENAMETOOLONG, "packing '%s': link '%s' too long",
					       x->root, x->rel.p);
			cap *= 2;
		}
		t.p[n] = 0;
		archive_entry_set_symlink(ae, t.p);
	} else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
		archive_entry_set_rdevmajor(ae, major(st.st_rdev));
		archive_entry_set_rdevminor(ae, minor(st.st_rdev));
	}

	if (fd >= 0) {
		r = pack_xattrs(x, fd, NULL);
	} else {
		fullpath = path_join(x->root, x->rel.p);
		r = pack_xattrs(x, -1, fullpath);
	}
	if (r < 0)
		return r;

	/* Hard links: the first path carries the data, later ones link to it. */
	if (!S_ISDIR(st.st_mode) && st.st_nlink > 1) {
		archive_entry_set_dev(ae, st.st_dev);
		archive_entry_set_ino64(ae, (int64_t)st.st_ino);
		archive_entry_set_nlink(ae, (unsigned)st.st_nlink);
		archive_entry_linkify(x->lr, &ae, &sparse);
		if (ae != x->entry || sparse)
			return err_set(x->e, -EINVAL, "packing '%s': unexpected link resolution at '%s'",
				       x->root, x->rel.p);
		/* dev/ino must not reach the archive: they differ between trees */
		archive_entry_set_dev(ae, 0);
		archive_entry_set_ino64(ae, 0);
		archive_entry_set_nlink(ae, 0);
		if (archive_entry_hardlink(ae))
			archive_entry_set_size(ae, 0);
	}

	if (archive_write_header(x->a, ae) < ARCHIVE_WARN)
		return pack_fail(x, "writing header of");
	x->entries++;

	if (S_ISREG(st.st_mode) && !archive_entry_hardlink(ae) && st.st_size > 0) {
		r = pack_data(x, fd, st.st_size);
		if (r < 0)
			return r;
	}
	if (S_ISDIR(st.st_mode)) {
		if (depth >= PACK_MAX_DEPTH)
			return err_set(x->e, -ELOOP, "packing '%s': '%s' is nested too deeply",
				       x->root, x->rel.p);
		return pack_dir(x, TAKE_FD(fd), depth + 1);
	}
	return 0;
}

/* Packs the children of the directory dfd (taken), sorted by name. */
static int pack_dir(struct pack_ctx *x, int dfd, unsigned depth)
{
	_cleanup_(dir_closep) DIR *d = NULL;
	_cleanup_strv_ struct strv names = STRV_INIT;
	struct dirent *de;
	size_t base = x->rel.len;
	int r;

	d = fdopendir(dfd);
	if (!d) {
		r = -errno;
		close(dfd);
		return err_set_errno(x->e, r, "packing '%s': cannot read directory '%s'", x->root,
			       x->rel.len ? x->rel.p : ".");
	}
	errno = 0;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		strv_push(&names, de->d_name);
		errno = 0;
	}
	if (errno)
		return err_set_errno(x->e, -errno, "packing '%s': cannot read directory '%s'", x->root,
			       x->rel.len ? x->rel.p : ".");
	if (names.n > 1)
		qsort(names.v, names.n, sizeof(char *), cmp_str);

	for (size_t i = 0; i < names.n; i++) {
		buf_setlen(&x->rel, base);
		if (base)
			buf_addch(&x->rel, '/');
		if (buf_adds(&x->rel, names.v[i]) < 0)
			return err_set(x->e, -ENAMETOOLONG, "packing '%s': path too long", x->root);
		if (pack_excluded(x, x->rel.p))
			continue;
		r = pack_one(x, dirfd(d), names.v[i], depth);
		if (r < 0)
			return r;
	}
	buf_setlen(&x->rel, base);
	return 0;
}

/* Sets a zstd option; a libarchive that lacks it is not an error. */
static void pack_zstd_option(struct archive *a, const char *key, int value)
{
	char v[24];

	snprintf(v, sizeof(v), "%d", value);
	if (archive_write_set_filter_option(a, "zstd", key, v) != ARCHIVE_OK)
		log_debug("libarchive zstd option %s=%s not supported: %s", key, v,
			  archive_error_string(a) ?: "");
}

int pack_tree(const char *root, const struct pack_opts *o, sink_fn sink, void *data,
	      struct pack_result *ret, struct err *e)
{
	_cleanup_(archive_write_freep) struct archive *a = NULL;
	_cleanup_(entry_freep) struct archive_entry *ae = NULL;
	_cleanup_free_ char *rbuf = NULL;
	struct pack_ctx x = { .root = root, .o = o, .sink = sink, .sink_data = data,
			      .rel = BUF_INIT, .xnames = BUF_INIT, .xval = BUF_INIT, .e = e };
	int threads = o->threads;
	int dfd, r;

	if (threads <= 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		threads = n > 0 ? (int)n : 1;
	}
	dfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return err_set_errno(e, -errno, "cannot open '%s'", root);

	r = sha256_init(&x.hash);
	if (r < 0) {
		close(dfd);
		return err_set_errno(e, r, "sha256");
	}
	a = archive_write_new();
	ae = archive_entry_new();
	x.lr = archive_entry_linkresolver_new();
	rbuf = xmalloc(PACK_READ_BUF);
	if (!a || !ae || !x.lr) {
		close(dfd);
		sha256_free(&x.hash);
		if (x.lr)
			archive_entry_linkresolver_free(x.lr);
		return err_set(e, -ENOMEM, "out of memory");
	}
	x.a = a;
	x.entry = ae;
	x.rbuf = rbuf;
	archive_entry_linkresolver_set_strategy(x.lr, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED);

	archive_write_set_format_pax_restricted(a);
	/* names are bytes: no iconv per entry, and non-UTF-8 names survive */
	if (archive_write_set_format_option(a, "pax", "hdrcharset", "BINARY") != ARCHIVE_OK)
		log_debug("libarchive pax option hdrcharset=BINARY not supported");
	archive_write_add_filter_zstd(a);
	pack_zstd_option(a, "compression-level", o->level);
	if (threads > 1)
		pack_zstd_option(a, "threads", threads);
	archive_write_set_bytes_per_block(a, PACK_BLOCK);
	archive_write_set_bytes_in_last_block(a, 1);

	if (archive_write_open(a, &x, NULL, pack_write_cb, NULL) != ARCHIVE_OK) {
		r = pack_fail(&x, "opening archive for");
		close(dfd);
	} else {
		r = pack_dir(&x, dfd, 0);
		if (r >= 0 && archive_write_close(a) != ARCHIVE_OK)
			r = pack_fail(&x, "closing archive after");
	}
	if (r < 0) {
		/* A failed archive must not flush into the sink; closing it
		 * (into nowhere) frees what libarchive holds, which
		 * archive_write_fail() would leak (its client buffer) */
		x.discard = true;
		archive_write_close(a);
	}
	archive_write_free(TAKE_PTR(a));
	archive_entry_linkresolver_free(x.lr);
	buf_free(&x.rel);
	buf_free(&x.xnames);
	buf_free(&x.xval);
	if (r < 0) {
		sha256_free(&x.hash);
		return r;
	}
	sha256_final(&x.hash, ret->sha256);
	ret->size = x.size;
	ret->entries = x.entries;
	return 0;
}

/* The sink of pack_tree() in pack_to_storage(): out, stopped by a cancel. */
struct out_sink {
	struct sink *out;
	struct err *e;
};

static int out_write(void *data, const void *p, size_t n)
{
	struct out_sink *os = data;

	if (proc_cancelled)
		return -ECANCELED;
	return os->out->write(os->out->data, p, n, os->e);
}

int pack_to_storage(const char *root, const struct pack_opts *o, struct sink *out,
		    struct pack_result *ret, struct err *e)
{
	struct pack_opts po = *o;
	struct progress prog = { 0 };
	struct out_sink os = { out, e };
	int r;

	if (!po.progress)
		po.progress = &prog;
	progress_begin(po.progress, "packing", 0);
	r = pack_tree(root, &po, out_write, &os, ret, e);
	progress_end(po.progress);
	if (r >= 0 && proc_cancelled)
		r = -ECANCELED;
	if (r < 0) {
		/* a cancel without a message is the caller's to describe */
		out->abort(out->data);
		return r;
	}
	return out->commit(out->data, e);
}

void archive_filter_names(struct strv *out)
{
	/* packages and images are zstd tars: the libarchive we run with
	 * must have libzstd */
	if (archive_libzstd_version())
		strv_push(out, "zstd");
}

/* ---------------------------------------------------------------- unpack */

/* Checks an entry path (or hard link target) and joins it to dest.
 * Absolute paths and ".." components are refused with secure, and ".." is
 * refused always: nothing may land outside dest. entry is the name of the
 * entry when p is its hard link target, else NULL. */
static int unpack_path(const char *archive, const char *dest, const char *entry, const char *p,
		       bool secure, char **ret, struct err *e)
{
	const char *s = p;

	if (*s == '/') {
		if (secure && entry)
			return err_set(e, -EPERM, "'%s': entry '%s' links to an absolute path '%s'",
				       archive, entry, p);
		if (secure)
			return err_set(e, -EPERM, "'%s': entry '%s' has an absolute path", archive, p);
		while (*s == '/')
			s++;
	}
	for (const char *c = s; *c;) {
		const char *end = strchrnul(c, '/');

		if (end - c == 2 && c[0] == '.' && c[1] == '.') {
			if (entry)
				return err_set(e, -EPERM, "'%s': entry '%s' links to '%s', outside "
					       "the target directory", archive, entry, p);
			return err_set(e, -EPERM, "'%s': entry '%s' leaves the target directory",
				       archive, p);
		}
		c = *end ? end + 1 : end;
	}
	while (s[0] == '.' && s[1] == '/')
		s += 2;
	*ret = (*s == 0 || !strcmp(s, ".")) ? NULL : path_join(dest, s);
	return 0;
}

/* Returns the absolute, symlink-free dest, created when missing; refuses a
 * directory that is not empty. */
static int unpack_dest(const char *dest, char **ret, struct err *e)
{
	_cleanup_(dir_closep) DIR *d = NULL;
	struct dirent *de;
	char *real;

	if (mkdir(dest, 0755) < 0 && errno != EEXIST)
		return err_set_errno(e, -errno, "cannot create '%s'", dest);
	d = opendir(dest);
	if (!d)
		return err_set_errno(e, -errno, "cannot open '%s'", dest);
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			return err_set(e, -EEXIST, "'%s' is not empty", dest);
	real = realpath(dest, NULL);
	if (!real)
		return err_set_errno(e, -errno, "cannot resolve '%s'", dest);
	*ret = real;
	return 0;
}

static int unpack_error(struct archive *a, const char *archive, const char *entry,
			struct err *e)
{
	int code = archive_errno(a) > 0 ? -archive_errno(a) : -EIO;
	const char *what = archive_error_string(a) ?: "unknown error";
	/* libarchive's "Write failed" does not say why: add the errno */
	const char *why = archive_errno(a) > 0 && !strstr(what, strerror(archive_errno(a)))
		? strerror(archive_errno(a)) : NULL;

	if (entry)
		return err_set(e, code, "'%s': entry '%s': %s%s%s", archive, entry, what,
			       why ? ": " : "", why ? why : "");
	return err_set(e, code, "'%s': %s%s%s", archive, what, why ? ": " : "", why ? why : "");
}

/* The ids and file capabilities of an entry, shifted into the range. */
static int unpack_shift(struct archive_entry *ae, uint32_t uid_offset, uint32_t gid_offset,
			const char *archive, const char *name, struct err *e)
{
	int64_t uid = archive_entry_uid(ae), gid = archive_entry_gid(ae);
	if (uid < 0 || uid >= ARCHIVE_ID_RANGE || gid < 0 || gid >= ARCHIVE_ID_RANGE)
		return err_set(e, -EPERM, "'%s': entry '%s' is owned by %lld:%lld, beyond the "
			       "sandbox's %u ids", archive, name, (long long)uid, (long long)gid,
			       ARCHIVE_ID_RANGE);
	archive_entry_set_uid(ae, uid + uid_offset);
	archive_entry_set_gid(ae, gid + gid_offset);
	/* no names: they would be looked up, and mean the host's users */
	archive_entry_set_uname(ae, NULL);
	archive_entry_set_gname(ae, NULL);

	const char *xname;
	const void *xval;
	size_t xlen;
	bool caps = false;
	for (archive_entry_xattr_reset(ae); archive_entry_xattr_next(ae, &xname, &xval, &xlen) ==
	     ARCHIVE_OK;)
		caps |= !strcmp(xname, "security.capability");
	if (!caps)
		return 0;
	/* rebuild the list with the capability shifted */
	struct strv names = STRV_INIT;
	struct buf vals = BUF_INIT;
	size_t *lens = NULL, n = 0;
	for (archive_entry_xattr_reset(ae); archive_entry_xattr_next(ae, &xname, &xval, &xlen) ==
	     ARCHIVE_OK; n++) {
		strv_push(&names, xname);
		lens = xrealloc(lens, (n + 1) * sizeof(*lens));
		lens[n] = xlen;
		buf_add(&vals, xval, xlen);
		if (!strcmp(xname, "security.capability")) {
			unsigned char v[CAP_V3_SIZE];
			if (xlen <= sizeof(v)) {
				memcpy(v, xval, xlen);
				int nl = cap_shift(v, xlen, uid_offset);
				if (nl < 0) {
					strv_free(&names);
					buf_free(&vals);
					free(lens);
					return err_set(e, -EPERM, "'%s': entry '%s' has file capabilities "
						       "for a user namespace beyond the sandbox's ids",
						       archive, name);
				}
				if (nl > 0) {
					buf_setlen(&vals, vals.len - xlen);
					buf_add(&vals, v, (size_t)nl);
					lens[n] = (size_t)nl;
				}
			}
		}
	}
	archive_entry_xattr_clear(ae);
	size_t off = 0;
	for (size_t i = 0; i < n; i++) {
		archive_entry_xattr_add_entry(ae, names.v[i], vals.p + off, lens[i]);
		off += lens[i];
	}
	strv_free(&names);
	buf_free(&vals);
	free(lens);
	return 0;
}

/* true when an xattr name is one the policy lets through: anything but
 * trusted.* and security.*, and of those the names (or "prefix*") the
 * admin allows. security.capability is a file capability. */
static bool xattr_allowed(const struct unpack_policy *pol, const char *name)
{
	if (strncmp(name, "trusted.", 8) && strncmp(name, "security.", 9))
		return true;
	for (size_t i = 0; pol->allow_xattrs && i < pol->allow_xattrs->n; i++) {
		const char *a = pol->allow_xattrs->v[i];
		size_t n = strlen(a);
		if (n && a[n - 1] == '*' ? !strncmp(name, a, n - 1) : !strcmp(name, a))
			return true;
	}
	return false;
}

/* Applies pol to one entry: false when the entry is dropped as a whole (a
 * device node), else its setuid/setgid bits and privileged xattrs go. */
static bool entry_filter(struct archive_entry *ae, const struct unpack_policy *pol,
			 struct unpack_dropped *d)
{
	mode_t type = archive_entry_filetype(ae);
	if (type == AE_IFCHR || type == AE_IFBLK) {
		d->devices++;
		return false;
	}
	mode_t perm = archive_entry_perm(ae);
	if (perm & (S_ISUID | S_ISGID)) {
		archive_entry_set_perm(ae, perm & ~(mode_t)(S_ISUID | S_ISGID));
		d->setid++;
	}
	bool any = false;
	const char *name;
	const void *val;
	size_t len;
	archive_entry_xattr_reset(ae);
	while (archive_entry_xattr_next(ae, &name, &val, &len) == ARCHIVE_OK)
		any |= !xattr_allowed(pol, name);
	if (!any)
		return true;
	/* rebuild the list without the refused names */
	struct strv keep_names = STRV_INIT;
	struct buf keep_vals = BUF_INIT;
	struct { size_t off, len; } *kv = NULL;
	size_t nk = 0;
	archive_entry_xattr_reset(ae);
	while (archive_entry_xattr_next(ae, &name, &val, &len) == ARCHIVE_OK) {
		if (!xattr_allowed(pol, name)) {
			if (!strcmp(name, "security.capability"))
				d->caps++;
			else
				d->xattrs++;
			continue;
		}
		kv = xrealloc(kv, (nk + 1) * sizeof(*kv));
		kv[nk].off = keep_vals.len;
		kv[nk].len = len;
		nk++;
		strv_push(&keep_names, name);
		buf_add(&keep_vals, val, len);
	}
	archive_entry_xattr_clear(ae);
	for (size_t i = 0; i < nk; i++)
		archive_entry_xattr_add_entry(ae, keep_names.v[i], keep_vals.p + kv[i].off,
					      kv[i].len);
	free(kv);
	strv_free(&keep_names);
	buf_free(&keep_vals);
	return true;
}

/* Every unpack: with pol (may be NULL) filtering, with shift the ids into
 * the sandbox's range. */
struct unpack_shift_ids {
	uint32_t uid_offset;
	uint32_t gid_offset;
};

static int unpack_impl(const char *archive, const char *dest, bool secure,
		       const struct unpack_policy *pol, const struct unpack_shift_ids *shift,
		       struct progress *progress, struct unpack_dropped *ret_dropped,
		       struct err *e);

int unpack_file(const char *archive, const char *dest, bool secure, struct progress *progress,
		struct err *e)
{
	return unpack_impl(archive, dest, secure, NULL, NULL, progress, NULL, e);
}

int unpack_file_policy(const char *archive, const char *dest, bool secure,
		       const struct unpack_policy *pol, struct progress *progress,
		       struct unpack_dropped *ret_dropped, struct err *e)
{
	return unpack_impl(archive, dest, secure, pol, NULL, progress, ret_dropped, e);
}

int unpack_file_shifted(const char *archive, const char *dest, uint32_t uid_offset,
			uint32_t gid_offset, struct progress *progress, struct err *e)
{
	struct unpack_shift_ids s = { uid_offset, gid_offset };
	return unpack_impl(archive, dest, true, NULL, &s, progress, NULL, e);
}

static int unpack_impl(const char *archive, const char *dest, bool secure,
		       const struct unpack_policy *pol, const struct unpack_shift_ids *shift,
		       struct progress *progress, struct unpack_dropped *ret_dropped,
		       struct err *e)
{
	struct unpack_dropped dropped = { 0 };
	_cleanup_(archive_read_freep) struct archive *in = NULL;
	_cleanup_(archive_write_freep) struct archive *out = NULL;
	_cleanup_free_ char *root = NULL;
	_cleanup_buf_ struct buf name = BUF_INIT;
	int flags = ARCHIVE_EXTRACT_OWNER | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_TIME |
		    ARCHIVE_EXTRACT_XATTR | ARCHIVE_EXTRACT_ACL | ARCHIVE_EXTRACT_SECURE_NODOTDOT;
	uint64_t seen = 0;
	int r;

	/* The paths handed to libarchive are absolute (dest + entry), so
	 * SECURE_NOABSOLUTEPATHS cannot be used; unpack_path checks the entry
	 * paths instead. SECURE_SYMLINKS checks every component, which is why
	 * dest is resolved to a symlink-free path first. */
	if (secure)
		flags |= ARCHIVE_EXTRACT_SECURE_SYMLINKS;

	r = unpack_dest(dest, &root, e);
	if (r < 0)
		return r;
	/* the root of a shifted tree is root's inside */
	if (shift && lchown(root, shift->uid_offset, shift->gid_offset) < 0)
		return err_set_errno(e, -errno, "cannot chown '%s'", root);

	in = archive_read_new();
	out = archive_write_disk_new();
	if (!in || !out)
		return err_set(e, -ENOMEM, "out of memory");
	archive_read_support_filter_all(in);
	archive_read_support_format_all(in);
	archive_write_disk_set_options(out, flags);
	/* No lookup functions: ownership is restored by number, never by
	 * the host's user names. */
	if (archive_read_open_filename(in, archive, 1u << 20) != ARCHIVE_OK)
		return unpack_error(in, archive, NULL, e);

	for (;;) {
		struct archive_entry *ae;
		_cleanup_free_ char *full = NULL, *link = NULL;
		const char *hl;
		const void *blk;
		size_t len;
		la_int64_t off;

		/* SIGTERM/SIGINT: stop between entries; the caller removes dest */
		if (proc_cancelled)
			return proc_check_cancel(e);
		r = archive_read_next_header(in, &ae);
		if (r == ARCHIVE_EOF)
			break;
		if (r < ARCHIVE_WARN)
			return unpack_error(in, archive, name.len ? name.p : NULL, e);
		buf_reset(&name);
		buf_adds(&name, archive_entry_pathname(ae) ?: "");
		r = unpack_path(archive, root, NULL, name.p, secure, &full, e);
		if (r < 0)
			return r;
		if (!full)
			continue;   /* the root itself: dest keeps its own mode */
		hl = archive_entry_hardlink(ae);
		if (hl) {
			r = unpack_path(archive, root, name.p, hl, secure, &link, e);
			if (r < 0)
				return r;
			if (!link)
				return err_set(e, -EINVAL, "'%s': entry '%s' links to the root",
					       archive, name.p);
			archive_entry_set_hardlink(ae, link);
		}
		archive_entry_set_pathname(ae, full);
		if (shift && (r = unpack_shift(ae, shift->uid_offset, shift->gid_offset, archive,
						name.p, e)) < 0)
			return r;
		if (pol && !pol->privileged && !entry_filter(ae, pol, &dropped)) {
			if (archive_read_data_skip(in) < ARCHIVE_WARN)
				return unpack_error(in, archive, name.p, e);
			continue;
		}

		r = archive_write_header(out, ae);
		if (r < ARCHIVE_WARN)
			return unpack_error(out, archive, name.p, e);
		if (r == ARCHIVE_OK || r == ARCHIVE_WARN) {
			while ((r = archive_read_data_block(in, &blk, &len, &off)) == ARCHIVE_OK) {
				/* write_disk reports a failed write(2) (a full disk) as
				 * ARCHIVE_WARN: any short write is an error here */
				if (archive_write_data_block(out, blk, len, off) != ARCHIVE_OK)
					return unpack_error(out, archive, name.p, e);
			}
			if (r < ARCHIVE_WARN)
				return unpack_error(in, archive, name.p, e);
		}
		if (archive_write_finish_entry(out) < ARCHIVE_WARN)
			return unpack_error(out, archive, name.p, e);
		if (progress) {
			uint64_t now = (uint64_t)archive_filter_bytes(in, -1);

			if (now > seen) {
				progress_add(progress, now - seen);
				seen = now;
			}
		}
	}
	/* Directory modes and times are set at close. */
	if (archive_write_close(out) != ARCHIVE_OK)
		return unpack_error(out, archive, NULL, e);
	if (ret_dropped)
		*ret_dropped = dropped;
	return 0;
}
