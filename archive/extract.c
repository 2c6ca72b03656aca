/*
 * archive/extract.c - extracting a tar (a package layer, a first-edition
 * blob, a base image) into a directory: unpack_fd() and unpack_file().
 *
 * libarchive reads the archive; this file writes the tree itself instead of
 * archive_write_disk, which walks every component of every entry's path
 * again (lstat + open per component: 1.65 M openat for 120 k entries).
 * Here each directory is opened once: the directories on the path of the
 * current entry stay open on a stack, an entry whose parent is on the stack
 * costs one openat relative to that fd, and moving to a sibling directory
 * costs one more. The stack is what makes it cheap on sorted archives (every
 * upaas layer is sorted, and so is `tar -c` output: a directory, then its
 * contents); any order works.
 *
 * Safety, whatever the archive says:
 *  - no absolute path, no ".." component, never the root itself;
 *  - nothing is written through a symlink: every directory is opened with
 *    O_NOFOLLOW relative to its parent's fd, every file is created with
 *    O_CREAT|O_EXCL|O_NOFOLLOW, and a symlink (or a file) on the way of an
 *    entry fails the extraction;
 *  - a hard link's target is opened beneath the root (openat2
 *    RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS, or the same walk by hand), so it
 *    names a file inside the tree;
 *  - removal (an entry replacing a directory, a whiteout) never follows a
 *    symlink and never crosses into another file system;
 *  - overlayfs's own xattrs (trusted.overlay.*, user.overlay.*) are never
 *    set from an archive: whiteouts and opaque directories come only from
 *    the names of upaas-package(5).
 */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include "archive/archive.h"
#include "archive/archive-int.h"

#define READ_BLOCK (1u << 20)
#define MAX_DEPTH 256
#define RM_MAX_DEPTH 512

/* ------------------------------------------------------------ inode set */

/* The inodes an APPLY extraction created, so that a whiteout or an opaque
 * marker never removes what the same layer made. Open addressing. */
struct inoset {
	uint64_t *v;
	size_t n, cap;      /* cap: a power of two, or 0 */
};

static size_t ino_slot(const struct inoset *s, uint64_t ino)
{
	uint64_t h = ino * 0x9e3779b97f4a7c15ull;
	return (size_t)(h >> 17) & (s->cap - 1);
}

/* Inode 0 is never a real inode; it marks a free slot. */
static void inoset_add(struct inoset *s, uint64_t ino)
{
	if (!ino)
		return;
	if (2 * (s->n + 1) > s->cap) {
		struct inoset t = { .cap = s->cap ? s->cap * 2 : 1024 };
		t.v = xcalloc(t.cap, sizeof(*t.v));
		for (size_t i = 0; i < s->cap; i++)
			if (s->v[i])
				inoset_add(&t, s->v[i]);
		free(s->v);
		*s = t;
	}
	for (size_t i = ino_slot(s, ino);; i = (i + 1) & (s->cap - 1)) {
		if (s->v[i] == ino)
			return;
		if (!s->v[i]) {
			s->v[i] = ino;
			s->n++;
			return;
		}
	}
}

static bool inoset_has(const struct inoset *s, uint64_t ino)
{
	if (!s->cap || !ino)
		return false;
	for (size_t i = ino_slot(s, ino);; i = (i + 1) & (s->cap - 1)) {
		if (s->v[i] == ino)
			return true;
		if (!s->v[i])
			return false;
	}
}

/* ------------------------------------------------------------- context */

/* One open directory on the path of the current entry. */
struct xdir {
	int fd;
	size_t end;          /* length of the path up to and with this name */
	bool fix;            /* restore mode and mtime when leaving it */
	mode_t mode;
	int64_t mtime;
	long mtime_ns;
};

struct xctx {
	const struct unpack_opts *o;
	const char *name;    /* the archive, for messages */
	int rootfd;
	dev_t dev;           /* the root's file system: removal stays on it */
	uid_t euid;
	gid_t egid;
	struct xdir stack[MAX_DEPTH + 1];   /* [0]: the root */
	size_t depth;        /* entries of stack in use beyond the root */
	struct buf cur;      /* path of stack[depth] ("" for the root) */
	struct buf path;     /* the cleaned path of the current entry */
	struct inoset made;  /* APPLY: inodes created by this layer */
	struct archive *a;
	char *block;
	struct err *e;
	struct unpack_dropped dropped;
	/* the compressed stream */
	int fd;
	struct sha256 hash;
	bool hashing;
	uint64_t read;
	uint64_t entries;
};

static int xfail(struct xctx *x, int code, const char *fmt, ...) _printf_(3, 4);
static int xfail(struct xctx *x, int code, const char *fmt, ...)
{
	_cleanup_buf_ struct buf m = BUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	buf_vaddf(&m, fmt, ap);
	va_end(ap);
	if (x->path.len)
		return err_set(x->e, code, "'%s': entry '%s': %s", x->name, x->path.p, m.p);
	return err_set(x->e, code, "'%s': %s", x->name, m.p);
}

static int xfail_errno(struct xctx *x, int code, const char *what)
{
	return xfail(x, code, "%s: %s", what, strerror(-code));
}

/* ------------------------------------------------------------ the stream */

/* libarchive's read callback: the fd, hashed and counted on the way, and
 * never more than o->size bytes when a size is expected. */
static ssize_t read_cb(struct archive *a, void *data, const void **buf)
{
	struct xctx *x = data;
	ssize_t n;

	do
		n = read(x->fd, x->block, READ_BLOCK);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		archive_set_error(a, errno, "read failed");
		return -1;
	}
	if (x->o->sha256 && x->read + (uint64_t)n > x->o->size) {
		char m[64];

		/* libarchive's own printf knows no %llu */
		snprintf(m, sizeof(m), "larger than the %llu bytes expected",
			 (unsigned long long)x->o->size);
		archive_set_error(a, EFBIG, "%s", m);
		return -1;
	}
	if (x->hashing)
		sha256_update(&x->hash, x->block, (size_t)n);
	x->read += (uint64_t)n;
	if (x->o->progress)
		progress_add(x->o->progress, (uint64_t)n);
	*buf = x->block;
	return n;
}

/* Reads what libarchive left after the end of the archive (padding) into
 * the hash, then compares size and sha256. */
static int stream_verify(struct xctx *x)
{
	char hex[65];

	for (;;) {
		ssize_t n = read(x->fd, x->block, READ_BLOCK);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return err_set_errno(x->e, -errno, "'%s': read failed", x->name);
		if (n == 0)
			break;
		if (x->read + (uint64_t)n > x->o->size)
			return err_set(x->e, -EBADMSG, "'%s' is corrupt: larger than the %llu "
				       "bytes expected", x->name, (unsigned long long)x->o->size);
		sha256_update(&x->hash, x->block, (size_t)n);
		x->read += (uint64_t)n;
	}
	x->hashing = false;
	sha256_final(&x->hash, hex);
	if (x->read != x->o->size)
		return err_set(x->e, -EBADMSG, "'%s' is corrupt: %llu bytes, expected %llu",
			       x->name, (unsigned long long)x->read, (unsigned long long)x->o->size);
	if (strcmp(hex, x->o->sha256))
		return err_set(x->e, -EBADMSG, "'%s' is corrupt: sha256 %s, expected %s", x->name,
			       hex, x->o->sha256);
	return 0;
}

static int archive_fail(struct xctx *x, struct archive *a)
{
	int code = archive_errno(a) > 0 ? -archive_errno(a) : -EIO;
	const char *what = archive_error_string(a) ?: "unknown error";

	if (code == -EFBIG && x->o->sha256)
		return err_set(x->e, -EBADMSG, "'%s' is corrupt: %s", x->name, what);
	return xfail(x, code, "%s", what);
}

/* ------------------------------------------------------------- removal */

/* Removes name below dfd and everything under it, without following a
 * symlink or leaving the file system dev. */
static int rm_at(int dfd, const char *name, dev_t dev, unsigned depth)
{
	struct stat st;
	int fd;
	DIR *d;

	if (unlinkat(dfd, name, 0) == 0)
		return 0;
	if (errno == ENOENT)
		return 0;
	if (errno != EISDIR && errno != EPERM)
		return -errno;
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISDIR(st.st_mode))
		return -EPERM;
	if (st.st_dev != dev)
		return -EXDEV;           /* a mount point: never removed through */
	if (depth >= RM_MAX_DEPTH)
		return -ELOOP;
	fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		int r = -errno;
		close(fd);
		return r;
	}
	for (struct dirent *de; (de = readdir(d));) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		int r = rm_at(dirfd(d), de->d_name, dev, depth + 1);
		if (r < 0) {
			closedir(d);
			return r;
		}
	}
	closedir(d);
	if (unlinkat(dfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

/* Empties the directory dfd, except what this layer made (APPLY). */
static int empty_dir(struct xctx *x, int dfd)
{
	int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	_cleanup_strv_ struct strv names = STRV_INIT;
	DIR *d;

	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		int r = -errno;
		close(fd);
		return r;
	}
	for (struct dirent *de; (de = readdir(d));)
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") &&
		    !inoset_has(&x->made, de->d_ino))
			strv_push(&names, de->d_name);
	closedir(d);
	for (size_t i = 0; i < names.n; i++) {
		int r = rm_at(dfd, names.v[i], x->dev, 0);
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---------------------------------------------------------------- paths */

/*
 * Cleans the entry path p into out: no leading "./" or '/', no "." or empty
 * components, no trailing '/'. Refuses an absolute path and "..". Returns 1
 * for the root itself, 0 for a path below it.
 */
static int clean_path(struct xctx *x, const char *p, bool link, struct buf *out)
{
	buf_reset(out);
	if (*p == '/')
		return link ? xfail(x, -EPERM, "links to an absolute path '%s'", p)
			    : err_set(x->e, -EPERM, "'%s': entry '%s' has an absolute path",
				      x->name, p);
	for (const char *c = p; *c;) {
		const char *end = strchrnul(c, '/');
		size_t n = (size_t)(end - c);

		if (n == 2 && c[0] == '.' && c[1] == '.')
			return link ? xfail(x, -EPERM, "links to '%s', outside the target directory", p)
				    : err_set(x->e, -EPERM, "'%s': entry '%s' leaves the target "
					      "directory", x->name, p);
		if (n && !(n == 1 && c[0] == '.')) {
			if (out->len)
				buf_addch(out, '/');
			if (buf_add(out, c, n) < 0)
				return xfail(x, -ENAMETOOLONG, "path too long");
		}
		c = *end ? end + 1 : end;
	}
	return out->len ? 0 : 1;
}

/* Restores the mode and mtime of a directory this extraction made, as it
 * is left (later entries below it would change its mtime). */
static void stack_pop(struct xctx *x)
{
	struct xdir *d = &x->stack[x->depth];

	if (d->fix) {
		struct timespec ts[2] = { { d->mtime, d->mtime_ns }, { d->mtime, d->mtime_ns } };

		if (fchmod(d->fd, d->mode & 07777) < 0)
			log_debug("'%s': cannot chmod '%s': %s", x->name, x->cur.p, strerror(errno));
		if (futimens(d->fd, ts) < 0)
			log_debug("'%s': cannot set the time of '%s': %s", x->name, x->cur.p,
				  strerror(errno));
	}
	close(d->fd);
	x->depth--;
	buf_setlen(&x->cur, x->stack[x->depth].end);
}

/* Opens (or with create, makes) the directory name below the top of the
 * stack and pushes it. */
static int stack_push(struct xctx *x, const char *name, size_t n)
{
	_cleanup_free_ char *comp = xstrndup(name, n);
	int top = x->stack[x->depth].fd;
	int fd;

	if (x->depth >= MAX_DEPTH)
		return xfail(x, -ELOOP, "nested more than %d levels deep", MAX_DEPTH);
	fd = openat(top, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		/* a parent without an entry of its own, as tar makes them */
		if (mkdirat(top, comp, 0755) < 0 && errno != EEXIST)
			return xfail_errno(x, -errno, "cannot create a parent directory");
		fd = openat(top, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd >= 0 && x->o->mode == UNPACK_APPLY) {
			struct stat st;
			if (fstat(fd, &st) == 0)
				inoset_add(&x->made, st.st_ino);
		}
	}
	if (fd < 0) {
		int r = -errno;
		struct stat st;

		if ((r == -ELOOP || r == -ENOTDIR) &&
		    fstatat(top, comp, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
			return xfail(x, -EPERM, "would be written through the symlink '%.*s%s%s'",
				     (int)x->cur.len, x->cur.p, x->cur.len ? "/" : "", comp);
		if (r == -ELOOP || r == -ENOTDIR)
			return xfail(x, -ENOTDIR, "'%.*s%s%s' is not a directory", (int)x->cur.len,
				     x->cur.p, x->cur.len ? "/" : "", comp);
		return xfail_errno(x, r, "cannot open a parent directory");
	}
	if (x->cur.len)
		buf_addch(&x->cur, '/');
	buf_add(&x->cur, name, n);
	x->depth++;
	x->stack[x->depth] = (struct xdir){ .fd = fd, .end = x->cur.len };
	return 0;
}

/*
 * Makes the stack hold exactly the parent directories of x->path (pops what
 * is not on its way, opens what is missing). Returns the fd of the parent
 * and points *ret_base at the last component of x->path.
 */
static int stack_to_parent(struct xctx *x, const char **ret_base)
{
	const char *p = x->path.p;
	const char *slash = strrchr(p, '/');
	size_t plen = slash ? (size_t)(slash - p) : 0;
	int r;

	/* pop until the stack's path is a prefix of the parent's, at a
	 * component boundary */
	while (x->depth > 0 &&
	       !(x->cur.len <= plen && !memcmp(x->cur.p, p, x->cur.len) &&
		 (x->cur.len == plen || p[x->cur.len] == '/')))
		stack_pop(x);
	/* then open what remains of the parent's path */
	for (size_t at = x->cur.len ? x->cur.len + 1 : 0; at < plen && slash;) {
		const char *end = memchr(p + at, '/', plen - at);
		size_t n = end ? (size_t)(end - (p + at)) : plen - at;

		r = stack_push(x, p + at, n);
		if (r < 0)
			return r;
		at += n + 1;
	}
	*ret_base = slash ? slash + 1 : p;
	return x->stack[x->depth].fd;
}

/* Opens the parent of a hard link's target beneath the root, following no
 * symlink; *ret_base points into path. */
static int open_beneath(struct xctx *x, const char *path, const char **ret_base)
{
	const char *slash = strrchr(path, '/');
	_cleanup_free_ char *parent = slash ? xstrndup(path, (size_t)(slash - path)) : NULL;
	struct open_how how = {
		.flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
			   RESOLVE_NO_XDEV,
	};
	long fd;

	*ret_base = slash ? slash + 1 : path;
	if (!parent)
		return openat(x->rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	fd = syscall(SYS_openat2, x->rootfd, parent, &how, sizeof(how));
	if (fd >= 0 || (errno != ENOSYS && errno != EPERM))
		return fd >= 0 ? (int)fd : -errno;
	/* no openat2 (or a seccomp filter refuses it): the same, by hand */
	int cur = openat(x->rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	for (char *c = parent, *next; cur >= 0 && c; c = next) {
		next = strchr(c, '/');
		if (next)
			*next++ = '\0';
		int nfd = openat(cur, c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		int saved = errno;
		close(cur);
		errno = saved;
		cur = nfd;
	}
	return cur >= 0 ? cur : -errno;
}

/* --------------------------------------------------------------- entries */

static bool overlay_xattr(const char *name)
{
	return !strncmp(name, "trusted.overlay.", 16) || !strncmp(name, "user.overlay.", 13);
}

/* true when an xattr name is one the policy lets through: anything but
 * trusted.* and security.*, and of those the names (or "prefix*") the
 * admin allows. security.capability is a file capability. */
static bool xattr_allowed(const struct unpack_policy *pol, const char *name)
{
	if (!pol || pol->privileged)
		return true;
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

/* Sets the xattrs of the entry on fd, or on name below dfd when fd < 0. */
static int set_xattrs(struct xctx *x, struct archive_entry *ae, int fd, int dfd,
		      const char *name)
{
	const char *xn;
	const void *xv;
	size_t xs;

	if (archive_entry_xattr_reset(ae) == 0)
		return 0;
	while (archive_entry_xattr_next(ae, &xn, &xv, &xs) == ARCHIVE_OK) {
		unsigned char cap[CAP_V3_SIZE];
		int r;

		if (!xn || !*xn || overlay_xattr(xn))
			continue;
		if (!xattr_allowed(x->o->policy, xn)) {
			if (!strcmp(xn, "security.capability"))
				x->dropped.caps++;
			else
				x->dropped.xattrs++;
			continue;
		}
		/* a shifted tree's capabilities are for the sandbox's namespace */
		if (x->o->uid_offset && !strcmp(xn, "security.capability") && xs <= sizeof(cap)) {
			memcpy(cap, xv, xs);
			int nl = archive_cap_shift(cap, xs, x->o->uid_offset);
			if (nl < 0)
				return xfail(x, -EPERM, "has file capabilities for a user namespace "
					     "beyond the sandbox's ids");
			if (nl > 0) {
				xv = cap;
				xs = (size_t)nl;
			}
		}
		if (fd >= 0) {
			r = fsetxattr(fd, xn, xv, xs, 0);
		} else {
			_cleanup_free_ char *p = xasprintf("/proc/self/fd/%d/%s", dfd, name);
			r = lsetxattr(p, xn, xv, xs, 0);
		}
		if (r < 0 && errno != ENOTSUP && errno != EPERM)
			return xfail(x, -errno, "cannot set xattr '%s': %s", xn, strerror(errno));
	}
	return 0;
}

/* Removes what is at name (any type) so that the entry can take its place;
 * refuses to replace an overlay whiteout of the same layer (UPPER). */
static int make_room(struct xctx *x, int dfd, const char *name)
{
	struct stat st;
	int r;

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : xfail_errno(x, -errno, "cannot replace it");
	if (x->o->mode == UNPACK_UPPER && S_ISCHR(st.st_mode) && st.st_rdev == 0)
		return xfail(x, -EINVAL, "the layer holds both this entry and its whiteout");
	if (x->o->mode == UNPACK_APPLY && !S_ISDIR(st.st_mode) && st.st_nlink == 1 &&
	    inoset_has(&x->made, st.st_ino))
		log_debug("'%s': entry '%s' given twice: the last one wins", x->name, x->path.p);
	r = rm_at(dfd, name, x->dev, 0);
	if (r < 0)
		return xfail_errno(x, r, "cannot replace what is there");
	return 0;
}

static void mark_made(struct xctx *x, int fd, int dfd, const char *name)
{
	struct stat st;

	if (x->o->mode != UNPACK_APPLY)
		return;
	if ((fd >= 0 ? fstat(fd, &st) : fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW)) == 0)
		inoset_add(&x->made, st.st_ino);
}

static int owner_and_time(struct xctx *x, struct archive_entry *ae, int fd, int dfd,
			  const char *name, bool is_dir)
{
	uid_t uid = (uid_t)archive_entry_uid(ae);
	gid_t gid = (gid_t)archive_entry_gid(ae);
	mode_t mode = archive_entry_mode(ae);
	int r;

	/* a file made by this process already belongs to euid/egid */
	if (uid != x->euid || gid != x->egid) {
		r = fd >= 0 ? fchown(fd, uid, gid) : fchownat(dfd, name, uid, gid, AT_SYMLINK_NOFOLLOW);
		if (r < 0 && !(errno == EPERM && x->euid != 0))
			return xfail_errno(x, -errno, "cannot set the owner");
	}
	/* xattrs after the owner (chown drops security.capability) */
	r = set_xattrs(x, ae, fd, dfd, name);
	if (r < 0)
		return r;
	if (is_dir)
		return 0;     /* mode and time when the directory is left */
	/* the mode was given at creation (umask 0); chown drops set-id bits */
	if ((mode & 07000) && !S_ISLNK(mode)) {
		r = fd >= 0 ? fchmod(fd, mode & 07777) : fchmodat(dfd, name, mode & 07777, 0);
		if (r < 0)
			return xfail_errno(x, -errno, "cannot set the mode");
	}
	struct timespec ts[2] = {
		{ archive_entry_mtime(ae), archive_entry_mtime_nsec(ae) },
		{ archive_entry_mtime(ae), archive_entry_mtime_nsec(ae) },
	};
	r = fd >= 0 ? futimens(fd, ts) : utimensat(dfd, name, ts, AT_SYMLINK_NOFOLLOW);
	if (r < 0)
		return xfail_errno(x, -errno, "cannot set the time");
	return 0;
}

static int write_data(struct xctx *x, int fd, int64_t size)
{
	const void *blk;
	size_t len;
	la_int64_t off, end = 0;
	int r;

	while ((r = archive_read_data_block(x->a, &blk, &len, &off)) == ARCHIVE_OK) {
		const char *p = blk;

		while (len > 0) {
			ssize_t n = pwrite(fd, p, len, off);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				return xfail_errno(x, -errno, "cannot write");
			p += n;
			off += n;
			len -= (size_t)n;
		}
		if (off > end)
			end = off;
	}
	if (r != ARCHIVE_EOF)
		return archive_fail(x, x->a);
	/* a sparse file may end in a hole */
	if (end < size && ftruncate(fd, size) < 0)
		return xfail_errno(x, -errno, "cannot write");
	return 0;
}

static int do_file(struct xctx *x, struct archive_entry *ae, int dfd, const char *name)
{
	mode_t mode = archive_entry_mode(ae) & 0777;
	_cleanup_close_ int fd = -1;
	int r;

	for (int tries = 0; fd < 0; tries++) {
		fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
		if (fd >= 0)
			break;
		if (errno != EEXIST || tries)
			return xfail_errno(x, -errno, "cannot create");
		if ((r = make_room(x, dfd, name)) < 0)
			return r;
	}
	mark_made(x, fd, dfd, name);
	if ((r = write_data(x, fd, archive_entry_size(ae))) < 0)
		return r;
	return owner_and_time(x, ae, fd, dfd, name, false);
}

/* Removes the xattrs of fd that the entry does not have. */
static int drop_xattrs(struct xctx *x, struct archive_entry *ae, int fd)
{
	char names[65536];
	ssize_t n = flistxattr(fd, names, sizeof(names));

	for (ssize_t i = 0; i < n; i += (ssize_t)strlen(names + i) + 1) {
		const char *xn, *have = names + i;
		const void *xv;
		size_t xs;
		bool keep = false;

		archive_entry_xattr_reset(ae);
		while (!keep && archive_entry_xattr_next(ae, &xn, &xv, &xs) == ARCHIVE_OK)
			keep = xn && !strcmp(xn, have);
		/* the entry's own are set again right after */
		if (!keep && fremovexattr(fd, have) < 0 && errno != ENODATA && errno != EPERM)
			return xfail_errno(x, -errno, "cannot remove an xattr");
	}
	return 0;
}

static int do_dir(struct xctx *x, struct archive_entry *ae, int dfd, const char *name)
{
	struct stat st;
	int fd, r;

	if (mkdirat(dfd, name, 0700) < 0) {
		if (errno != EEXIST)
			return xfail_errno(x, -errno, "cannot create");
		if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			return xfail_errno(x, -errno, "cannot stat");
		if (!S_ISDIR(st.st_mode)) {
			if ((r = make_room(x, dfd, name)) < 0)
				return r;
			if (mkdirat(dfd, name, 0700) < 0)
				return xfail_errno(x, -errno, "cannot create");
		}
	}
	fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return xfail_errno(x, -errno, "cannot open");
	mark_made(x, fd, dfd, name);
	/* a directory of the layers below keeps its contents, and takes the
	 * entry's metadata: the xattrs the entry lacks go */
	if (x->o->mode == UNPACK_APPLY && (r = drop_xattrs(x, ae, fd)) < 0) {
		close(fd);
		return r;
	}
	r = owner_and_time(x, ae, fd, dfd, name, true);
	if (r < 0 || x->depth >= MAX_DEPTH) {
		close(fd);
		return r < 0 ? r : xfail(x, -ELOOP, "nested more than %d levels deep", MAX_DEPTH);
	}
	/* on the stack: its entries usually follow */
	if (x->cur.len)
		buf_addch(&x->cur, '/');
	buf_adds(&x->cur, name);
	x->depth++;
	x->stack[x->depth] = (struct xdir){
		.fd = fd, .end = x->cur.len, .fix = true, .mode = archive_entry_mode(ae),
		.mtime = archive_entry_mtime(ae), .mtime_ns = archive_entry_mtime_nsec(ae),
	};
	return 0;
}

static int do_special(struct xctx *x, struct archive_entry *ae, int dfd, const char *name)
{
	mode_t mode = archive_entry_mode(ae);
	const char *target = archive_entry_symlink(ae);
	int r;

	for (int tries = 0;; tries++) {
		if (S_ISLNK(mode))
			r = symlinkat(target ? target : "", dfd, name);
		else if (S_ISFIFO(mode))
			r = mkfifoat(dfd, name, mode & 07777);
		else
			r = mknodat(dfd, name, mode & (S_IFMT | 07777),
				    makedev(archive_entry_rdevmajor(ae), archive_entry_rdevminor(ae)));
		if (r == 0)
			break;
		if (errno != EEXIST || tries)
			return xfail_errno(x, -errno, "cannot create");
		if ((r = make_room(x, dfd, name)) < 0)
			return r;
	}
	mark_made(x, -1, dfd, name);
	return owner_and_time(x, ae, -1, dfd, name, false);
}

static int do_hardlink(struct xctx *x, const char *target, int dfd, const char *name)
{
	_cleanup_buf_ struct buf t = BUF_INIT;
	_cleanup_close_ int tfd = -1;
	const char *tbase;
	struct stat st;
	int r = clean_path(x, target, true, &t);

	if (r < 0)
		return r;
	if (r > 0)
		return xfail(x, -EINVAL, "links to the root");
	tfd = open_beneath(x, t.p, &tbase);
	if (tfd < 0)
		return xfail(x, tfd, "links to '%s', which is not a file in the tree", target);
	if (fstatat(tfd, tbase, &st, AT_SYMLINK_NOFOLLOW) < 0 || S_ISDIR(st.st_mode))
		return xfail(x, -EINVAL, "links to '%s', which is not a file in the tree", target);
	if (x->o->mode == UNPACK_APPLY && !inoset_has(&x->made, st.st_ino))
		return xfail(x, -EINVAL, "links to '%s', which is not an entry of the same layer",
			     target);
	for (int tries = 0;; tries++) {
		if (linkat(tfd, tbase, dfd, name, 0) == 0)
			return 0;
		if (errno != EEXIST || tries)
			return xfail_errno(x, -errno, "cannot link");
		if ((r = make_room(x, dfd, name)) < 0)
			return r;
	}
}

/* A whiteout entry (upaas-package(5)) below the directory dfd. */
static int do_whiteout(struct xctx *x, int dfd, const char *base)
{
	const char *target = base + strlen(WHITEOUT_PREFIX);
	bool opaque = !strcmp(base, WHITEOUT_OPAQUE);
	struct stat st;
	int r;

	if (!opaque && !path_component_ok(target))
		return xfail(x, -EINVAL, "is not a valid whiteout");
	if (x->o->mode == UNPACK_UPPER) {
		if (opaque) {
			if (fsetxattr(dfd, "trusted.overlay.opaque", "y", 1, 0) < 0)
				return xfail_errno(x, -errno, "cannot mark the directory opaque");
			return 0;
		}
		if (mknodat(dfd, target, S_IFCHR | 0000, makedev(0, 0)) == 0)
			return 0;
		if (errno == EEXIST)
			return xfail(x, -EINVAL, "the layer holds both '%s' and its whiteout", target);
		return xfail_errno(x, -errno, "cannot make the whiteout");
	}
	/* APPLY: delete from the layers below */
	if (opaque) {
		r = empty_dir(x, dfd);
		return r < 0 ? xfail_errno(x, r, "cannot empty the opaque directory") : 0;
	}
	if (fstatat(dfd, target, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : xfail_errno(x, -errno, "cannot stat its target");
	if (inoset_has(&x->made, st.st_ino))
		return xfail(x, -EINVAL, "the layer holds both '%s' and its whiteout", target);
	r = rm_at(dfd, target, x->dev, 0);
	return r < 0 ? xfail_errno(x, r, "cannot delete its target") : 0;
}

/* The owner of the entry shifted into the sandbox's range, and what the
 * policy takes: 1 when the entry is not created at all (a device node). */
static int entry_adjust(struct xctx *x, struct archive_entry *ae)
{
	const struct unpack_policy *pol = x->o->policy;
	mode_t type = archive_entry_filetype(ae);

	if (x->o->uid_offset || x->o->gid_offset) {
		int64_t uid = archive_entry_uid(ae), gid = archive_entry_gid(ae);
		if (uid < 0 || uid >= ARCHIVE_ID_RANGE || gid < 0 || gid >= ARCHIVE_ID_RANGE)
			return xfail(x, -EPERM, "is owned by %lld:%lld, beyond the sandbox's %u ids",
				     (long long)uid, (long long)gid, ARCHIVE_ID_RANGE);
		archive_entry_set_uid(ae, uid + x->o->uid_offset);
		archive_entry_set_gid(ae, gid + x->o->gid_offset);
	}
	if (!pol || pol->privileged)
		return 0;
	if (type == AE_IFCHR || type == AE_IFBLK) {
		x->dropped.devices++;
		return 1;
	}
	mode_t perm = archive_entry_perm(ae);
	if (perm & (S_ISUID | S_ISGID)) {
		archive_entry_set_perm(ae, perm & ~(mode_t)(S_ISUID | S_ISGID));
		x->dropped.setid++;
	}
	return 0;
}

static int do_entry(struct xctx *x, struct archive_entry *ae)
{
	const char *base, *hl = archive_entry_hardlink(ae);
	mode_t mode;
	int dfd, r;

	r = clean_path(x, archive_entry_pathname(ae) ?: "", false, &x->path);
	if (r < 0)
		return r;
	if (r > 0)
		return 0;   /* the root itself: dest keeps its own mode */
	dfd = stack_to_parent(x, &base);
	if (dfd < 0)
		return dfd;
	if (x->o->mode != UNPACK_PLAIN && !strncmp(base, WHITEOUT_PREFIX, strlen(WHITEOUT_PREFIX)))
		return do_whiteout(x, dfd, base);
	if (hl)
		return do_hardlink(x, hl, dfd, base);
	if ((r = entry_adjust(x, ae)) != 0)
		return r < 0 ? r : 0;
	mode = archive_entry_mode(ae);
	switch (mode & S_IFMT) {
	case S_IFREG:
		return do_file(x, ae, dfd, base);
	case S_IFDIR:
		return do_dir(x, ae, dfd, base);
	case S_IFLNK: case S_IFCHR: case S_IFBLK: case S_IFIFO:
		return do_special(x, ae, dfd, base);
	default:
		log_debug("'%s': entry '%s' of an unknown type skipped", x->name, x->path.p);
		return 0;
	}
}

/* ------------------------------------------------------------ the run */

/* Checks dest for the mode: PLAIN and UPPER want an empty (or new)
 * directory, APPLY an existing one. Returns its fd. */
static int open_dest(const char *dest, enum unpack_mode mode, struct err *e)
{
	int fd;

	if (mode != UNPACK_APPLY && mkdir(dest, 0755) < 0 && errno != EEXIST)
		return err_set_errno(e, -errno, "cannot create '%s'", dest);
	fd = open(dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return err_set_errno(e, -errno, "cannot open '%s'", dest);
	if (mode == UNPACK_APPLY)
		return fd;
	int dup_fd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
	if (!d) {
		int r = -errno;
		if (dup_fd >= 0)
			close(dup_fd);
		close(fd);
		return err_set_errno(e, r, "cannot read '%s'", dest);
	}
	for (struct dirent *de; (de = readdir(d));)
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
			closedir(d);
			close(fd);
			return err_set(e, -EEXIST, "'%s' is not empty", dest);
		}
	closedir(d);
	return fd;
}

static void archive_read_freep(struct archive **a)
{
	if (*a)
		archive_read_free(*a);
}

int unpack_fd(int fd, const char *dest, const struct unpack_opts *o, struct unpack_result *ret,
	      struct err *e)
{
	_cleanup_(archive_read_freep) struct archive *a = NULL;
	_cleanup_free_ char *block = NULL;
	struct xctx x = { .o = o, .name = o->name ? o->name : dest, .fd = fd, .e = e,
			  .cur = BUF_INIT, .path = BUF_INIT };
	struct stat st;
	mode_t old_umask;
	int r;

	if (o->sha256 && !hex64_ok(o->sha256))
		return err_set(e, -EINVAL, "'%s': '%s' is not a sha256", x.name, o->sha256);
	x.rootfd = open_dest(dest, o->mode, e);
	if (x.rootfd < 0)
		return x.rootfd;
	if (fstat(x.rootfd, &st) < 0) {
		r = err_set_errno(e, -errno, "cannot stat '%s'", dest);
		close(x.rootfd);
		return r;
	}
	x.dev = st.st_dev;
	x.euid = geteuid();
	x.egid = getegid();
	/* the root of a shifted tree is root's inside */
	if ((o->uid_offset || o->gid_offset) &&
	    fchown(x.rootfd, o->uid_offset, o->gid_offset) < 0) {
		r = err_set_errno(e, -errno, "cannot chown '%s'", dest);
		close(x.rootfd);
		return r;
	}
	x.stack[0] = (struct xdir){ .fd = x.rootfd, .end = 0 };
	if (o->sha256) {
		if ((r = sha256_init(&x.hash)) < 0) {
			close(x.rootfd);
			return err_set(e, r, "cannot start sha256");
		}
		x.hashing = true;
	}
	block = xmalloc(READ_BLOCK);
	x.block = block;

	a = archive_read_new();
	if (!a) {
		r = err_set(e, -ENOMEM, "out of memory");
		goto out;
	}
	x.a = a;
	/* tar only (ustar, pax, GNU), plain or compressed as upaas writes it */
	archive_read_support_format_tar(a);
	archive_read_support_format_gnutar(a);
	archive_read_support_filter_zstd(a);
	archive_read_support_filter_gzip(a);
	archive_read_support_filter_xz(a);
	if (archive_read_open(a, &x, NULL, read_cb, NULL) != ARCHIVE_OK) {
		r = archive_fail(&x, a);
		goto out;
	}
	/* modes are given at creation, exactly; restored below */
	old_umask = umask(0);
	for (;;) {
		struct archive_entry *ae;

		/* SIGTERM/SIGINT: stop between entries; the caller removes dest */
		if (proc_cancelled) {
			r = proc_check_cancel(e);
			break;
		}
		buf_reset(&x.path);
		r = archive_read_next_header(a, &ae);
		if (r == ARCHIVE_EOF) {
			r = 0;
			break;
		}
		if (r < ARCHIVE_WARN) {
			r = archive_fail(&x, a);
			break;
		}
		r = do_entry(&x, ae);
		if (r < 0)
			break;
		x.entries++;
	}
	umask(old_umask);
	buf_reset(&x.path);
	while (x.depth > 0)
		stack_pop(&x);
	if (r >= 0 && o->sha256)
		r = stream_verify(&x);
out:
	if (x.hashing)
		sha256_free(&x.hash);
	close(x.rootfd);
	free(x.made.v);
	buf_free(&x.cur);
	buf_free(&x.path);
	if (r >= 0 && ret)
		*ret = (struct unpack_result){ .entries = x.entries, .bytes = x.read,
					       .dropped = x.dropped };
	return r < 0 ? r : 0;
}

int unpack_file(const char *archive, const char *dest, bool secure, struct progress *progress,
		struct err *e)
{
	struct unpack_opts o = { .mode = UNPACK_PLAIN, .name = archive, .progress = progress };
	_cleanup_close_ int fd = open(archive, O_RDONLY | O_CLOEXEC | O_NOCTTY);

	(void)secure;   /* always: see the top of this file */
	if (fd < 0)
		return err_set_errno(e, -errno, "cannot open '%s'", archive);
	return unpack_fd(fd, dest, &o, NULL, e);
}

int unpack_file_shifted(const char *archive, const char *dest, uint32_t uid_offset,
			uint32_t gid_offset, struct progress *progress, struct err *e)
{
	struct unpack_opts o = { .mode = UNPACK_PLAIN, .name = archive, .progress = progress,
				 .uid_offset = uid_offset, .gid_offset = gid_offset };
	_cleanup_close_ int fd = open(archive, O_RDONLY | O_CLOEXEC | O_NOCTTY);

	if (fd < 0)
		return err_set_errno(e, -errno, "cannot open '%s'", archive);
	return unpack_fd(fd, dest, &o, NULL, e);
}

int unpack_file_policy(const char *archive, const char *dest, bool secure,
		       const struct unpack_policy *pol, struct progress *progress,
		       struct unpack_dropped *ret_dropped, struct err *e)
{
	struct unpack_opts o = { .mode = UNPACK_PLAIN, .name = archive, .progress = progress,
				 .policy = pol };
	struct unpack_result res;
	_cleanup_close_ int fd = open(archive, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	int r;

	(void)secure;
	if (fd < 0)
		return err_set_errno(e, -errno, "cannot open '%s'", archive);
	r = unpack_fd(fd, dest, &o, &res, e);
	if (r >= 0 && ret_dropped)
		*ret_dropped = res.dropped;
	return r;
}
