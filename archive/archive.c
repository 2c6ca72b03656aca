/*
 * archive/archive.c - packing a tree into a zstd pax tar (pack_tree), or an
 * overlay upper dir into a layer (pack_layer), with libarchive. Extracting
 * is archive/extract.c.
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
#include <locale.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include "archive/archive.h"
#include "archive/archive-int.h"

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

/* A directory entry held back until something below it is written (a
 * layer leaves out directories that did not change, unless it needs them
 * as the parents of what did). */
struct pending {
	struct archive_entry *ae;
	bool written;
};

struct pack_ctx {
	const char *root;
	const struct pack_opts *o;
	bool layer;             /* pack_layer(): an overlay upper dir */
	struct archive *a;
	struct archive_entry *entry;
	struct archive_entry_linkresolver *lr;
	sink_fn sink;
	void *sink_data;
	struct sha256 hash;
	bool discard;           /* failed: what libarchive flushes goes nowhere */
	uint64_t size;
	uint64_t entries;
	uint64_t whiteouts;
	uint64_t unchanged;
	int sink_rc;            /* first error of the sink */
	char *rbuf;
	char *lbuf;             /* layer: the lower file's data, for comparing */
	struct buf rel;         /* path of the current entry, relative to root */
	struct buf xnames;
	struct buf xattrs;      /* the current entry's xattrs (xattrs_read) */
	struct buf lxattrs;     /* the lower entry's */
	struct pending pend[PACK_MAX_DEPTH + 1];
	size_t n_pend;
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
int archive_cap_shift(unsigned char *v, size_t len, uint32_t offset)
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

/* overlayfs's own attributes: never packed (upaas-package(5)). */
static bool overlay_xattr(const char *name)
{
	return !strncmp(name, "trusted.overlay.", 16) || !strncmp(name, "user.overlay.", 13);
}

/* What an overlay upper dir's entry says about itself. */
enum ovl_flags {
	OVL_OPAQUE = 1 << 0,      /* a directory that hides the layers below */
	OVL_WHITEOUT = 1 << 1,    /* an "xwhiteout": a file marked as a whiteout */
	OVL_REDIRECT = 1 << 2,    /* redirect_dir: a renamed directory of a lower */
	OVL_METACOPY = 1 << 3,    /* metacopy: the data is in a lower */
};

static unsigned ovl_flag(const char *name, const char *v, ssize_t vl)
{
	const char *attr = !strncmp(name, "trusted.overlay.", 16) ? name + 16 : name + 13;

	if (!strcmp(attr, "opaque") && vl == 1 && v[0] == 'y')
		return OVL_OPAQUE;
	if (!strcmp(attr, "whiteout"))
		return OVL_WHITEOUT;
	if (!strcmp(attr, "redirect"))
		return OVL_REDIRECT;
	if (!strcmp(attr, "metacopy"))
		return OVL_METACOPY;
	return 0;
}

/*
 * Reads the xattrs of the object at fd (or path for non-openable objects)
 * into out, sorted by name so that the archive is deterministic, as
 * "name\0<8-byte length>value" records; overlayfs's own are left out and
 * reported in *ovl (may be NULL). A file system without xattrs has none.
 */
static int xattrs_read(struct pack_ctx *x, int fd, const char *path, struct buf *out,
		       unsigned *ovl)
{
	_cleanup_strv_ struct strv names = STRV_INIT;
	ssize_t n;

	buf_reset(out);
	if (ovl)
		*ovl = 0;
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
		char val[XATTR_VALUE_MAX_BYTES];
		ssize_t vl;
		uint64_t len;

		vl = fd >= 0 ? fgetxattr(fd, names.v[i], val, sizeof(val))
			     : lgetxattr(path, names.v[i], val, sizeof(val));
		if (vl < 0) {
			if (errno == ENODATA)
				continue;
			return err_set_errno(x->e, -errno, "packing '%s': cannot read xattr '%s' of '%s'",
				       x->root, names.v[i], x->rel.p);
		}
		if (overlay_xattr(names.v[i])) {
			if (ovl)
				*ovl |= ovl_flag(names.v[i], val, vl);
			continue;
		}
		/* a shifted tree's capabilities are for the sandbox's namespace */
		if (x->o->uid_offset && !strcmp(names.v[i], "security.capability")) {
			int nl = cap_unshift((unsigned char *)val, (size_t)vl, x->o->uid_offset);
			if (nl < 0)
				return err_set(x->e, -EINVAL, "packing '%s': the file capabilities of '%s' "
					       "are for a user namespace outside the sandbox's ids",
					       x->root, x->rel.p);
			if (nl > 0)
				vl = nl;
		}
		len = (uint64_t)vl;
		if (buf_add(out, names.v[i], strlen(names.v[i]) + 1) < 0 ||
		    buf_add(out, &len, sizeof(len)) < 0 || buf_add(out, val, (size_t)vl) < 0)
			return err_set(x->e, -E2BIG, "packing '%s': too many xattrs on '%s'", x->root,
				       x->rel.p);
	}
	return 0;
}

static void xattrs_add(struct archive_entry *ae, const struct buf *xs)
{
	for (size_t at = 0; at < xs->len;) {
		const char *name = xs->p + at;
		uint64_t len;

		at += strlen(name) + 1;
		memcpy(&len, xs->p + at, sizeof(len));
		at += sizeof(len);
		archive_entry_xattr_add_entry(ae, name, xs->p + at, (size_t)len);
		at += (size_t)len;
	}
}

static bool xattrs_equal(const struct buf *a, const struct buf *b)
{
	return a->len == b->len && !memcmp(a->p, b->p, a->len);
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

/* Writes the directory entries held back for the entry about to be
 * written: its parents, outermost first. */
static int pend_flush(struct pack_ctx *x)
{
	for (size_t i = 0; i < x->n_pend; i++) {
		if (x->pend[i].written)
			continue;
		if (archive_write_header(x->a, x->pend[i].ae) < ARCHIVE_WARN)
			return pack_fail(x, "writing header of");
		x->pend[i].written = true;
		x->entries++;
	}
	return 0;
}

static int write_header(struct pack_ctx *x, struct archive_entry *ae)
{
	int r = pend_flush(x);

	if (r < 0)
		return r;
	if (archive_write_header(x->a, ae) < ARCHIVE_WARN)
		return pack_fail(x, "writing header of");
	x->entries++;
	return 0;
}

/* An empty regular file named name with the given prefix, in the
 * directory of x->rel (whose last component is replaced). */
static int write_marker(struct pack_ctx *x, const char *dir, size_t dirlen, const char *name)
{
	_cleanup_free_ char *p = dirlen ? xasprintf("%.*s/%s", (int)dirlen, dir, name)
					: xstrdup(name);
	struct archive_entry *ae = x->entry;

	archive_entry_clear(ae);
	archive_entry_set_pathname(ae, p);
	archive_entry_set_filetype(ae, AE_IFREG);
	archive_entry_set_perm(ae, 0644);
	archive_entry_set_uid(ae, 0);
	archive_entry_set_gid(ae, 0);
	archive_entry_set_size(ae, 0);
	archive_entry_set_mtime(ae, x->o->mtime_clamp >= 0 ? x->o->mtime_clamp : 0, 0);
	return write_header(x, ae);
}

/* The length of the directory part of x->rel, whose last component is
 * name. */
static size_t dir_len(const struct pack_ctx *x, const char *name)
{
	size_t n = strlen(name);

	return x->rel.len > n ? x->rel.len - n - 1 : 0;
}

/* Compares the data of two open files of the same size. */
static int same_data(struct pack_ctx *x, int a, int b, int64_t size, bool *ret)
{
	int64_t off = 0;

	*ret = false;
	while (off < size) {
		size_t want = size - off > PACK_READ_BUF ? PACK_READ_BUF : (size_t)(size - off);
		ssize_t na = pread(a, x->rbuf, want, off), nb = pread(b, x->lbuf, want, off);

		if (na < 0 || nb < 0)
			return err_set_errno(x->e, -errno, "packing '%s': cannot read '%s'", x->root,
				       x->rel.p);
		if (na != nb || na == 0 || memcmp(x->rbuf, x->lbuf, (size_t)na))
			return 0;
		off += na;
	}
	*ret = true;
	return 0;
}

/*
 * Layer: true when the upper entry st (open as fd for files and dirs) is
 * the same as what the layers below have at its name (lfd: the lower view's
 * directory): type, mode, owner, xattrs, and size and data or link target
 * or device; mtimes are not compared. A copy-up that changed nothing is
 * left out of the layer.
 */
static int same_as_lower(struct pack_ctx *x, int lfd, const char *name, const struct stat *st,
			 int fd, bool *ret)
{
	_cleanup_close_ int lf = -1;
	struct stat ls;
	int r;

	*ret = false;
	if (lfd < 0 || fstatat(lfd, name, &ls, AT_SYMLINK_NOFOLLOW) < 0)
		return 0;
	if (ls.st_mode != st->st_mode || ls.st_uid != st->st_uid || ls.st_gid != st->st_gid)
		return 0;
	if (S_ISREG(st->st_mode)) {
		/* a hard link made in this layer is written, so that its
		 * other names can link to it */
		if (st->st_nlink > 1 || ls.st_size != st->st_size)
			return 0;
		lf = openat(lfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
		if (lf < 0)
			return 0;
	} else if (S_ISDIR(st->st_mode)) {
		lf = openat(lfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (lf < 0)
			return 0;
	} else if (S_ISCHR(st->st_mode) || S_ISBLK(st->st_mode)) {
		if (ls.st_rdev != st->st_rdev)
			return 0;
	} else if (S_ISLNK(st->st_mode)) {
		/* the upper link's target is in the entry already */
		const char *t = archive_entry_symlink(x->entry);
		char a[PATH_MAX * 4];
		ssize_t na = readlinkat(lfd, name, a, sizeof(a));

		if (!t || na < 0 || (size_t)na != strlen(t) || memcmp(a, t, (size_t)na))
			return 0;
	}
	/* xattrs of the lower entry */
	if (lf >= 0) {
		r = xattrs_read(x, lf, NULL, &x->lxattrs, NULL);
	} else {
		_cleanup_free_ char *p = xasprintf("/proc/self/fd/%d/%s", lfd, name);
		r = xattrs_read(x, -1, p, &x->lxattrs, NULL);
	}
	if (r < 0)
		return r;
	if (!xattrs_equal(&x->xattrs, &x->lxattrs))
		return 0;
	if (S_ISREG(st->st_mode) && st->st_size > 0)
		return same_data(x, fd, lf, st->st_size, ret);
	*ret = true;
	return 0;
}

static int pack_dir(struct pack_ctx *x, int dfd, int lfd, unsigned depth);

/* Reads the target of the symlink name in dfd into the entry. */
static int read_symlink(struct pack_ctx *x, int dfd, const char *name, const struct stat *st)
{
	_cleanup_buf_ struct buf t = BUF_INIT;
	size_t cap = st->st_size > 0 ? (size_t)st->st_size + 1 : 256;
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
	archive_entry_set_symlink(x->entry, t.p);
	return 0;
}

/*
 * Packs one directory entry name (in directory dfd); x->rel is its path.
 * For a layer, lfd is the directory of the same path in the view of the
 * layers below (-1: nothing below, or hidden by an opaque directory).
 */
static int pack_one(struct pack_ctx *x, int dfd, int lfd, const char *name, unsigned depth)
{
	struct archive_entry *ae = x->entry, *sparse = NULL;
	_cleanup_close_ int fd = -1, child_lfd = -1;
	_cleanup_free_ char *fullpath = NULL;
	unsigned ovl = 0;
	bool held = false, opaque = false;
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
	if (x->layer && S_ISCHR(st.st_mode) && st.st_rdev == 0) {
		/* an overlay whiteout: worth an entry when something below
		 * has the name */
		struct stat ls;

		if (lfd < 0 || fstatat(lfd, name, &ls, AT_SYMLINK_NOFOLLOW) < 0)
			return 0;
		x->whiteouts++;
		_cleanup_free_ char *wh = xasprintf(WHITEOUT_PREFIX "%s", name);
		return write_marker(x, x->rel.p, dir_len(x, name), wh);
	}
	if ((x->layer || x->o->layer) && !strncmp(name, WHITEOUT_PREFIX, strlen(WHITEOUT_PREFIX)))
		return err_set(x->e, -EINVAL, "packing '%s': cannot pack '%s': names starting "
			       "with '" WHITEOUT_PREFIX "' are reserved for whiteouts in a layer",
			       x->root, x->rel.p);

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
		r = read_symlink(x, dfd, name, &st);
		if (r < 0)
			return r;
	} else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
		archive_entry_set_rdevmajor(ae, major(st.st_rdev));
		archive_entry_set_rdevminor(ae, minor(st.st_rdev));
	}

	if (fd >= 0) {
		r = xattrs_read(x, fd, NULL, &x->xattrs, &ovl);
	} else {
		fullpath = path_join(x->root, x->rel.p);
		r = xattrs_read(x, -1, fullpath, &x->xattrs, &ovl);
	}
	if (r < 0)
		return r;
	xattrs_add(ae, &x->xattrs);

	if (x->layer) {
		if (ovl & (OVL_REDIRECT | OVL_METACOPY))
			return err_set(x->e, -EOPNOTSUPP, "packing '%s': '%s' needs the layers below "
				       "it (overlayfs %s): mount with redirect_dir=off,metacopy=off",
				       x->root, x->rel.p, ovl & OVL_REDIRECT ? "redirect_dir" : "metacopy");
		if ((ovl & OVL_WHITEOUT) && S_ISREG(st.st_mode)) {
			struct stat ls;
			if (lfd < 0 || fstatat(lfd, name, &ls, AT_SYMLINK_NOFOLLOW) < 0)
				return 0;
			x->whiteouts++;
			_cleanup_free_ char *wh = xasprintf(WHITEOUT_PREFIX "%s", name);
			return write_marker(x, x->rel.p, dir_len(x, name), wh);
		}
		opaque = S_ISDIR(st.st_mode) && (ovl & OVL_OPAQUE);
		if (S_ISDIR(st.st_mode) && !opaque && lfd >= 0) {
			child_lfd = openat(lfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (child_lfd < 0 && errno != ENOENT && errno != ENOTDIR && errno != ELOOP)
				return err_set_errno(x->e, -errno, "packing '%s': cannot open '%s' in "
					       "the layers below", x->root, x->rel.p);
		}
		bool same = false;
		if (!opaque && (r = same_as_lower(x, lfd, name, &st, fd, &same)) < 0)
			return r;
		if (same && S_ISDIR(st.st_mode)) {
			held = true;    /* written only if something below is */
		} else if (same) {
			x->unchanged++;
			return 0;
		}
	}

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

	if (S_ISDIR(st.st_mode)) {
		if (depth >= PACK_MAX_DEPTH)
			return err_set(x->e, -ELOOP, "packing '%s': '%s' is nested too deeply",
				       x->root, x->rel.p);
		/* the entry of a directory goes on the pending stack: written
		 * now, or (held) when something below it is */
		x->pend[x->n_pend] = (struct pending){ .ae = archive_entry_clone(ae) };
		if (!x->pend[x->n_pend].ae)
			return err_set(x->e, -ENOMEM, "out of memory");
		x->n_pend++;
		r = held ? 0 : pend_flush(x);
		if (r >= 0 && opaque) {
			x->whiteouts++;
			r = write_marker(x, x->rel.p, x->rel.len, WHITEOUT_OPAQUE);
		}
		if (r >= 0)
			r = pack_dir(x, TAKE_FD(fd), x->layer && !opaque ? TAKE_FD(child_lfd) : -1,
				     depth + 1);
		x->n_pend--;
		archive_entry_free(x->pend[x->n_pend].ae);
		if (r >= 0 && held && !x->pend[x->n_pend].written)
			x->unchanged++;
		return r;
	}

	r = write_header(x, ae);
	if (r < 0)
		return r;
	if (S_ISREG(st.st_mode) && !archive_entry_hardlink(ae) && st.st_size > 0) {
		if (x->layer && lseek(fd, 0, SEEK_SET) < 0)
			return err_set_errno(x->e, -errno, "packing '%s': cannot read '%s'", x->root,
				       x->rel.p);
		r = pack_data(x, fd, st.st_size);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Packs the children of the directory dfd (taken), sorted by name; lfd
 * (taken, may be -1) is the same directory in the layers below. */
static int pack_dir(struct pack_ctx *x, int dfd, int lfd, unsigned depth)
{
	_cleanup_(dir_closep) DIR *d = NULL;
	_cleanup_close_ int lower = lfd;
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
		r = pack_one(x, dirfd(d), lower, names.v[i], depth);
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

/* pack_tree() and pack_layer() (lower NULL for a tree), in the calling
 * thread's current locale (see pack_in_utf8()). */
static int pack_run(const char *root, const char *lower, bool layer, const struct pack_opts *o,
		    sink_fn sink, void *data, bool binary, struct pack_result *ret, struct err *e)
{
	_cleanup_(archive_write_freep) struct archive *a = NULL;
	_cleanup_(entry_freep) struct archive_entry *ae = NULL;
	_cleanup_free_ char *rbuf = NULL, *lbuf = NULL;
	struct pack_ctx x = { .root = root, .o = o, .layer = layer, .sink = sink,
			      .sink_data = data, .rel = BUF_INIT, .xnames = BUF_INIT,
			      .xattrs = BUF_INIT, .lxattrs = BUF_INIT, .e = e };
	int threads = o->threads;
	int dfd, lfd = -1, r;

	if (threads <= 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		threads = n > 0 ? (int)n : 1;
	}
	dfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return err_set_errno(e, -errno, "cannot open '%s'", root);
	if (lower) {
		lfd = open(lower, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (lfd < 0) {
			r = err_set_errno(e, -errno, "cannot open '%s'", lower);
			close(dfd);
			return r;
		}
	}

	r = sha256_init(&x.hash);
	if (r < 0) {
		close(dfd);
		if (lfd >= 0)
			close(lfd);
		return err_set_errno(e, r, "sha256");
	}
	a = archive_write_new();
	ae = archive_entry_new();
	x.lr = archive_entry_linkresolver_new();
	rbuf = xmalloc(PACK_READ_BUF);
	if (layer)
		lbuf = xmalloc(PACK_READ_BUF);
	if (!a || !ae || !x.lr) {
		close(dfd);
		if (lfd >= 0)
			close(lfd);
		sha256_free(&x.hash);
		if (x.lr)
			archive_entry_linkresolver_free(x.lr);
		return err_set(e, -ENOMEM, "out of memory");
	}
	x.a = a;
	x.entry = ae;
	x.rbuf = rbuf;
	x.lbuf = lbuf;
	archive_entry_linkresolver_set_strategy(x.lr, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED);

	archive_write_set_format_pax_restricted(a);
	if (binary && archive_write_set_format_option(a, "pax", "hdrcharset", "BINARY") != ARCHIVE_OK)
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
		if (lfd >= 0)
			close(lfd);
	} else {
		r = pack_dir(&x, dfd, lfd, 0);
		if (r >= 0 && archive_write_close(a) != ARCHIVE_OK)
			r = pack_fail(&x, "closing archive after");
	}
	if (r < 0) {
		/* A failed archive must not flush into the sink: what closing
		 * it flushes is dropped (archive_write_fail() would leave
		 * libarchive's output buffer behind, before 3.7) */
		x.discard = true;
		archive_write_close(a);
	}
	archive_write_free(TAKE_PTR(a));
	archive_entry_linkresolver_free(x.lr);
	for (size_t i = 0; i < x.n_pend; i++)
		archive_entry_free(x.pend[i].ae);
	buf_free(&x.rel);
	buf_free(&x.xnames);
	buf_free(&x.xattrs);
	buf_free(&x.lxattrs);
	if (r < 0) {
		sha256_free(&x.hash);
		return r;
	}
	sha256_final(&x.hash, ret->sha256);
	ret->size = x.size;
	ret->entries = x.entries;
	ret->whiteouts = x.whiteouts;
	ret->unchanged = x.unchanged;
	return 0;
}

/*
 * Names are written as the pax standard wants them: UTF-8, which GNU tar and
 * bsdtar read without a word. libarchive converts each name from the
 * current locale's charset to UTF-8, so the packing thread runs in C.UTF-8
 * (uselocale: per thread, the rest of upaas keeps its locale): a name that
 * is valid UTF-8 is copied as it is (no normalization), and a name that is
 * not fails the conversion, which makes libarchive write that one entry
 * with hdrcharset=BINARY and its bytes unchanged. Extraction (upaas's own,
 * in the C locale) gives every name back byte for byte. Without a C.UTF-8
 * locale every entry is written as BINARY, as before.
 */
static int pack_in_utf8(const char *root, const char *lower, bool layer,
			const struct pack_opts *o, sink_fn sink, void *data,
			struct pack_result *ret, struct err *e)
{
	locale_t utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
	if (utf8 == (locale_t)0) {
		log_debug("no C.UTF-8 locale: names are packed as bytes (hdrcharset=BINARY)");
		return pack_run(root, lower, layer, o, sink, data, true, ret, e);
	}
	locale_t old = uselocale(utf8);
	int r = pack_run(root, lower, layer, o, sink, data, false, ret, e);
	uselocale(old);
	freelocale(utf8);
	return r;
}

int pack_tree(const char *root, const struct pack_opts *o, sink_fn sink, void *data,
	      struct pack_result *ret, struct err *e)
{
	return pack_in_utf8(root, NULL, false, o, sink, data, ret, e);
}

int pack_layer(const char *upper, const char *lower, const struct pack_opts *o, sink_fn sink,
	       void *data, struct pack_result *ret, struct err *e)
{
	return pack_in_utf8(upper, lower, true, o, sink, data, ret, e);
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

/* pack_to_storage() and pack_layer_to_storage(). */
static int pack_out(const char *root, const char *lower, bool layer, const struct pack_opts *o,
		    struct sink *out, struct pack_result *ret, struct err *e)
{
	struct pack_opts po = *o;
	struct progress prog = { 0 };
	struct out_sink os = { out, e };
	int r;

	if (!po.progress)
		po.progress = &prog;
	progress_begin(po.progress, "packing", 0);
	r = pack_in_utf8(root, lower, layer, &po, out_write, &os, ret, e);
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

int pack_to_storage(const char *root, const struct pack_opts *o, struct sink *out,
		    struct pack_result *ret, struct err *e)
{
	return pack_out(root, NULL, false, o, out, ret, e);
}

int pack_layer_to_storage(const char *upper, const char *lower, const struct pack_opts *o,
			  struct sink *out, struct pack_result *ret, struct err *e)
{
	return pack_out(upper, lower, true, o, out, ret, e);
}

void archive_filter_names(struct strv *out)
{
	/* packages and images are zstd tars: the libarchive we run with
	 * must have libzstd */
	if (archive_libzstd_version())
		strv_push(out, "zstd");
}
