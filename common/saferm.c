/*
 * common/saferm.c - recursive removal that never follows a symlink and never
 * crosses into another mount.
 *
 * fs_rm_rf() first refuses when /proc/self/mountinfo lists a mount point at
 * or below the tree. The walk itself then works on directory fds only:
 * every directory is opened with O_NOFOLLOW|O_DIRECTORY relative to its
 * parent's fd, must live on the same device as the top and must not be the
 * root of a mount (statx STATX_ATTR_MOUNT_ROOT), so a mount made after the
 * check, or a directory swapped for a symlink, stops the walk instead of
 * leading it out of the tree. Symlinks are unlinked, never followed.
 *
 * The walk is iterative. At most RM_OPEN_DIRS directory fds are kept open;
 * deeper ancestors are closed and reopened through ".." on the way back up,
 * checked against the device and inode recorded on the way down.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>

#include "common/common.h"

#define RM_OPEN_DIRS 64          /* directory fds kept open while walking */
#define RM_MAX_DEPTH 65536       /* deeper trees are refused (-ELOOP) */
#define MOUNTINFO_MAX ((size_t)64 << 20)

/* ------------------------------------------------------------ mountinfo */

/* Undoes the octal escapes of /proc/self/mountinfo (\040 space, \011 tab,
 * \012 newline, \134 backslash) in place. */
static void mountinfo_unescape(char *s)
{
	char *w = s;
	for (char *r = s; *r; ) {
		if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' &&
		    r[3] >= '0' && r[3] <= '7') {
			*w++ = (char)(((r[1] - '0') << 6) | ((r[2] - '0') << 3) | (r[3] - '0'));
			r += 4;
		} else {
			*w++ = *r++;
		}
	}
	*w = '\0';
}

/* true when mount point mp is dir itself or below it. */
static bool path_at_or_below(const char *mp, const char *dir)
{
	size_t n = strlen(dir);
	if (n == 1 && dir[0] == '/')
		return true;
	return strncmp(mp, dir, n) == 0 && (mp[n] == '\0' || mp[n] == '/');
}

/*
 * Looks for a mount point at or below the canonical path dir. Returns 1 and
 * the first one found in ret (may be NULL), 0 when there is none, -errno
 * when mountinfo cannot be read.
 */
static int mounts_below(const char *dir, char **ret)
{
	_cleanup_buf_ struct buf b = BUF_INIT;
	int r = buf_read_file(&b, "/proc/self/mountinfo", MOUNTINFO_MAX);
	if (r < 0)
		return r;
	for (char *line = b.p, *next; *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		else
			next = line + strlen(line);
		/* id parent major:minor root mount-point options ... */
		char *f = line;
		for (int i = 0; i < 4 && f; i++) {
			f = strchr(f, ' ');
			if (f)
				f++;
		}
		if (!f)
			continue;
		char *end = strchr(f, ' ');
		if (end)
			*end = '\0';
		mountinfo_unescape(f);
		if (path_at_or_below(f, dir)) {
			if (ret)
				*ret = xstrdup(f);
			return 1;
		}
	}
	return 0;
}

/*
 * The canonical absolute path of p without following a final symlink: the
 * realpath of a directory, or realpath(dirname)/basename for anything else.
 */
static int canon_path(const char *p, bool is_dir, char **ret)
{
	if (is_dir) {
		char *c = realpath(p, NULL);
		if (!c)
			return -errno;
		*ret = c;
		return 0;
	}
	_cleanup_free_ char *dir = xstrdup(p);
	char *slash = strrchr(dir, '/');
	const char *base = p;
	if (!slash) {
		free(dir);
		dir = xstrdup(".");
	} else {
		base = p + (slash - dir) + 1;
		if (slash == dir)
			slash[1] = '\0';
		else
			*slash = '\0';
	}
	_cleanup_free_ char *c = realpath(dir, NULL);
	if (!c)
		return -errno;
	*ret = path_join(c, base);
	return 0;
}

bool fs_has_mounts_below(const char *path)
{
	_cleanup_free_ char *c = realpath(path, NULL);
	if (!c)
		return false;
	return mounts_below(c, NULL) > 0;
}

/* ----------------------------------------------------------------- walk */

struct rm_frame {
	DIR *d;          /* NULL while closed to save fds */
	dev_t dev;
	ino_t ino;
	char *name;      /* name in the parent; NULL for the top */
};

struct rm_walk {
	const char *top;        /* canonical path, for messages */
	dev_t dev;
	struct rm_frame *fr;
	size_t n;
	size_t cap;
	int noatime;            /* O_NOATIME, or 0 once it failed with EPERM */
	struct err *e;
};

/* The path of entry name in the deepest directory, for messages. */
static char *walk_path(const struct rm_walk *w, const char *name)
{
	struct buf b = BUF_INIT;
	buf_adds(&b, w->top);
	for (size_t i = 1; i < w->n; i++)
		buf_addf(&b, "/%s", w->fr[i].name);
	if (name)
		buf_addf(&b, "/%s", name);
	return buf_detach(&b);
}

static int walk_fail(struct rm_walk *w, int code, const char *what, const char *name)
{
	_cleanup_free_ char *p = walk_path(w, name);
	return err_set_errno(w->e, code, "cannot remove '%s': %s", p, what);
}

/* Opens directory name below dfd without following a symlink; makes it
 * readable first when we own it but may not read it. */
static int open_dir(struct rm_walk *w, int dfd, const char *name)
{
	for (int attempt = 0; ; attempt++) {
		int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC | w->noatime);
		if (fd >= 0)
			return fd;
		if (errno == EPERM && w->noatime) {
			/* O_NOATIME needs ownership or CAP_FOWNER */
			w->noatime = 0;
			continue;
		}
		if (errno != EACCES || attempt > 0)
			return -errno;
		struct stat st;
		if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			return -errno;
		if (!S_ISDIR(st.st_mode))
			return -ENOTDIR;
		/* AT_SYMLINK_NOFOLLOW: glibc changes the inode through an
		 * O_PATH|O_NOFOLLOW fd, never through a symlink */
		if (fchmodat(dfd, name, (st.st_mode & 07777) | S_IRWXU, AT_SYMLINK_NOFOLLOW) < 0)
			return -EACCES;
	}
}

/* unlinkat() that makes a read-only directory writable (u+wx) once. */
static int unlink_in(int dfd, const char *name, int flags)
{
	if (unlinkat(dfd, name, flags) == 0)
		return 0;
	if (errno != EACCES && errno != EPERM)
		return -errno;
	int saved = errno;
	struct stat st;
	if (fstat(dfd, &st) < 0 || (st.st_mode & S_IRWXU) == S_IRWXU ||
	    fchmod(dfd, (st.st_mode & 07777) | S_IRWXU) < 0)
		return -saved;
	return unlinkat(dfd, name, flags) == 0 ? 0 : -errno;
}

static void walk_push(struct rm_walk *w, DIR *d, const struct stat *st, const char *name)
{
	if (w->n == w->cap) {
		w->cap = w->cap ? w->cap * 2 : 16;
		w->fr = xrealloc(w->fr, w->cap * sizeof(*w->fr));
	}
	w->fr[w->n++] = (struct rm_frame){ d, st->st_dev, st->st_ino, name ? xstrdup(name) : NULL };
	/* keep at most RM_OPEN_DIRS fds: close the oldest open ancestor */
	if (w->n > RM_OPEN_DIRS) {
		struct rm_frame *old = &w->fr[w->n - 1 - RM_OPEN_DIRS];
		if (old->d) {
			closedir(old->d);
			old->d = NULL;
		}
	}
}

static void walk_free(struct rm_walk *w)
{
	for (size_t i = 0; i < w->n; i++) {
		if (w->fr[i].d)
			closedir(w->fr[i].d);
		free(w->fr[i].name);
	}
	free(w->fr);
	w->fr = NULL;
	w->n = w->cap = 0;
}

/* Checks that a directory we are about to enter is part of the tree. */
static int check_dir(struct rm_walk *w, int fd, struct stat *st, const char *name)
{
	if (fstat(fd, st) < 0)
		return walk_fail(w, -errno, "stat", name);
	if (st->st_dev != w->dev) {
		_cleanup_free_ char *p = walk_path(w, name);
		return err_set(w->e, -EXDEV, "refusing to remove '%s': '%s' is on another filesystem",
			       w->top, p);
	}
	struct statx sx;
	if (statx(fd, "", AT_EMPTY_PATH, 0, &sx) == 0 &&
	    (sx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) &&
	    (sx.stx_attributes & STATX_ATTR_MOUNT_ROOT)) {
		_cleanup_free_ char *p = walk_path(w, name);
		return err_set(w->e, -EBUSY, "refusing to remove '%s': '%s' is mounted below it",
			       w->top, p);
	}
	return 0;
}

/* Makes sure the parent frame has an open DIR, reopening it through ".." of
 * the child (which must still be the directory we came from). */
static int walk_reopen_parent(struct rm_walk *w)
{
	struct rm_frame *child = &w->fr[w->n - 1], *parent = &w->fr[w->n - 2];
	if (parent->d)
		return 0;
	int fd = openat(dirfd(child->d), "..", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return walk_fail(w, -errno, "open '..'", NULL);
	struct stat st;
	if (fstat(fd, &st) < 0 || st.st_dev != parent->dev || st.st_ino != parent->ino) {
		close(fd);
		_cleanup_free_ char *p = walk_path(w, NULL);
		return err_set(w->e, -ESTALE, "cannot remove '%s': '%s' was moved during the removal",
			       w->top, p);
	}
	parent->d = fdopendir(fd);
	if (!parent->d) {
		int r = -errno;
		close(fd);
		return walk_fail(w, r, "fdopendir", NULL);
	}
	return 0;
}

/* Descends into directory name of the deepest frame. 0: entered, 1: it was
 * no directory after all (caller unlinks it), 2: vanished, < 0: error. */
static int walk_enter(struct rm_walk *w, const char *name)
{
	int dfd = dirfd(w->fr[w->n - 1].d);
	int fd = open_dir(w, dfd, name);
	if (fd == -ENOENT)
		return 2;
	if (fd == -ELOOP || fd == -ENOTDIR)
		return 1;
	if (fd < 0)
		return walk_fail(w, fd, "open", name);
	struct stat st;
	int r = check_dir(w, fd, &st, name);
	if (r < 0) {
		close(fd);
		return r;
	}
	if (w->n >= RM_MAX_DEPTH) {
		close(fd);
		return walk_fail(w, -ELOOP, "tree too deep", name);
	}
	DIR *d = fdopendir(fd);
	if (!d) {
		r = -errno;
		close(fd);
		return walk_fail(w, r, "fdopendir", name);
	}
	walk_push(w, d, &st, name);
	return 0;
}

/* Removes everything below the top frame (already pushed). */
static int walk_run(struct rm_walk *w)
{
	while (w->n > 0) {
		struct rm_frame *f = &w->fr[w->n - 1];
		errno = 0;
		struct dirent *de = readdir(f->d);
		if (!de) {
			if (errno)
				return walk_fail(w, -errno, "read directory", NULL);
			if (w->n == 1)
				return 0;    /* the caller removes the top */
			int r = walk_reopen_parent(w);
			if (r < 0)
				return r;
			struct rm_frame *parent = &w->fr[w->n - 2];
			_cleanup_free_ char *name = f->name;
			closedir(f->d);
			w->n--;
			r = unlink_in(dirfd(parent->d), name, AT_REMOVEDIR);
			if (r < 0 && r != -ENOENT)
				return walk_fail(w, r, "rmdir", name);
			continue;
		}
		const char *name = de->d_name;
		if (!strcmp(name, ".") || !strcmp(name, ".."))
			continue;
		int dfd = dirfd(f->d);
		bool is_dir = de->d_type == DT_DIR;
		if (de->d_type == DT_UNKNOWN) {
			struct stat st;
			if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
				if (errno == ENOENT)
					continue;
				return walk_fail(w, -errno, "stat", name);
			}
			is_dir = S_ISDIR(st.st_mode);
		}
		if (is_dir) {
			int r = walk_enter(w, name);
			if (r < 0)
				return r;
			if (r != 1)
				continue;
			/* not a directory any more: unlink it below */
		}
		int r = unlink_in(dfd, name, 0);
		if (r == -EISDIR) {
			r = walk_enter(w, name);
			if (r < 0)
				return r;
			continue;
		}
		if (r < 0 && r != -ENOENT)
			return walk_fail(w, r, "unlink", name);
	}
	return 0;
}

static int rm_dir_at(int pfd, const char *base, const char *top, const struct stat *st,
		     struct err *e);

int fs_rm_rf(const char *path, struct err *e)
{
	if (!path || !*path)
		return err_set(e, -EINVAL, "refusing to remove an empty path");
	/* "link/" would make lstat follow the link: drop trailing slashes */
	_cleanup_free_ char *p = xstrdup(path);
	size_t len = strlen(p);
	while (len > 1 && p[len - 1] == '/')
		p[--len] = '\0';

	struct stat st;
	if (lstat(p, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		return err_set_errno(e, -errno, "cannot remove '%s'", path);
	}
	bool is_dir = S_ISDIR(st.st_mode);
	_cleanup_free_ char *canon = NULL;
	int r = canon_path(p, is_dir, &canon);
	if (r < 0)
		return err_set_errno(e, r, "cannot remove '%s'", path);

	_cleanup_free_ char *mp = NULL;
	r = mounts_below(canon, &mp);
	if (r < 0)
		return err_set_errno(e, r, "cannot remove '%s': cannot read '/proc/self/mountinfo'",
			       path);
	if (r > 0)
		return err_set(e, -EBUSY, "refusing to remove '%s': '%s' is mounted below it", path, mp);

	if (!is_dir) {
		/* a symlink is removed itself, never its target */
		if (unlink(p) < 0 && errno != ENOENT)
			return err_set_errno(e, -errno, "cannot remove '%s'", path);
		return 0;
	}

	/* From here on everything goes through fds below the parent. */
	char *slash = strrchr(canon, '/');
	if (!slash || !slash[1])
		return err_set(e, -EBUSY, "refusing to remove '%s'", path);
	_cleanup_free_ char *parent = slash == canon ? xstrdup("/") : xstrndup(canon, (size_t)(slash - canon));
	const char *base = slash + 1;
	_cleanup_close_ int pfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (pfd < 0)
		return err_set_errno(e, -errno, "cannot remove '%s': cannot open '%s'", path, parent);
	return rm_dir_at(pfd, base, canon, &st, e);
}

/* Removes directory base of pfd, which lstat gave as st, and what it holds;
 * top names it in messages. */
static int rm_dir_at(int pfd, const char *base, const char *top, const struct stat *st,
		     struct err *e)
{
	struct rm_walk w = { .top = top, .dev = st->st_dev, .noatime = O_NOATIME, .e = e };
	int fd = open_dir(&w, pfd, base);
	if (fd == -ENOENT)
		return 0;
	if (fd < 0)
		return err_set_errno(e, fd, "cannot remove '%s'", top);
	struct stat topst;
	if (fstat(fd, &topst) < 0 || topst.st_dev != st->st_dev || topst.st_ino != st->st_ino) {
		close(fd);
		return err_set(e, -ESTALE, "cannot remove '%s': it changed during the removal", top);
	}
	DIR *d = fdopendir(fd);
	if (!d) {
		int r = -errno;
		close(fd);
		return err_set_errno(e, r, "cannot remove '%s'", top);
	}
	walk_push(&w, d, &topst, NULL);
	int r = walk_run(&w);
	walk_free(&w);
	if (r < 0)
		return r;
	r = unlink_in(pfd, base, AT_REMOVEDIR);
	if (r < 0 && r != -ENOENT)
		return err_set_errno(e, r, "cannot remove '%s'", top);
	return 0;
}

int fs_rm_rf_at(int dfd, const char *name, const char *display, struct err *e)
{
	struct stat st;
	if (!path_component_ok(name))
		return err_set(e, -EINVAL, "refusing to remove '%s'", display);
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT)
			return 0;
		return err_set_errno(e, -errno, "cannot remove '%s'", display);
	}
	if (!S_ISDIR(st.st_mode)) {
		int r = unlink_in(dfd, name, 0);
		if (r < 0 && r != -ENOENT)
			return err_set_errno(e, r, "cannot remove '%s'", display);
		return 0;
	}
	/* the walk refuses another device and a mount root below; the top
	 * itself must not be one either */
	struct statx sx;
	if (statx(dfd, name, AT_SYMLINK_NOFOLLOW, 0, &sx) == 0 &&
	    (sx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) &&
	    (sx.stx_attributes & STATX_ATTR_MOUNT_ROOT))
		return err_set(e, -EBUSY, "refusing to remove '%s': it is a mount point", display);
	return rm_dir_at(dfd, name, display, &st, e);
}
