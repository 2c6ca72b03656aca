/*
 * rootfs/workdir.c - every name, lock and sweep under paths.workdir (the
 * table is in rootfs/rootfs.h).
 *
 * The rule is one: an entry is removed only while every lock that its
 * owner may hold is free, and while the sweep holds those locks itself (so
 * no owner can start on the same name under it), and only through
 * fs_rm_rf(), which never follows a symlink or crosses a mount point.
 *
 * Lock files under the work dir may be unlinked by a sweep (an `image run`
 * lock whose run is gone). A taker therefore checks, once it holds the
 * flock, that the inode it locked is still the one at the path, and tries
 * again if not; a lock file that a sweep unlinked is never trusted.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>

#include "rootfs/rootfs.h"

#define ID_LEN 24                       /* strlen("20261120T214500Z-3f9a2c1") */
#define LOCK_SUFFIX ".lock"
#define RUN_PREFIX "run-"
#define IMAGE_PREFIX "image-"
#define IMAGE_TMP_LEN 7                 /* ".XXXXXX" of mkdtemp */
#define LOG_SUFFIX ".log"
#define MAX_OWNER_LOCKS 2

/* ------------------------------------------------------------ names */

char *workdir_build_dir(const struct config *c, const char *app, const char *id)
{
	return xasprintf("%s/%s-%s", c->paths.workdir, app, id);
}

char *workdir_run_dir(const struct config *c, const char *id)
{
	return xasprintf("%s/" RUN_PREFIX "%s", c->paths.workdir, id);
}

static char *build_lock_path(const struct config *c, const char *app)
{
	return xasprintf("%s/%s" LOCK_SUFFIX, c->paths.workdir, app);
}

static char *run_lock_path(const struct config *c, const char *id)
{
	return xasprintf("%s/" RUN_PREFIX "%s" LOCK_SUFFIX, c->paths.workdir, id);
}

static char *image_lock_path(const struct config *c, const char *name)
{
	return xasprintf("%s/images/%s" LOCK_SUFFIX, c->paths.cache, name);
}

/* ------------------------------------------------------------ locks */

/*
 * Creates dir (0700) and flock()s path in it, waiting when wait, and makes
 * sure that the locked inode is the one at path: a sweep may have unlinked
 * the file between our open and our flock. Returns the fd holding the lock.
 */
static int lock_take(const char *dir, const char *path, bool wait, struct err *e)
{
	int r = fs_mkdir_p(dir, 0700);
	if (r < 0)
		return err_set_errno(e, r, "cannot create '%s'", dir);
	for (;;) {
		struct stat held, now;
		int fd = lock_file(path, wait, e);

		if (fd < 0)
			return fd;
		if (fstat(fd, &held) < 0) {
			r = -errno;
			close(fd);
			return err_set_errno(e, r, "cannot stat the lock '%s'", path);
		}
		if (lstat(path, &now) == 0 && now.st_dev == held.st_dev && now.st_ino == held.st_ino)
			return fd;
		close(fd);   /* unlinked under us: take the new one */
	}
}

int workdir_lock_build(const struct config *c, const char *app, struct err *e)
{
	_cleanup_free_ char *path = build_lock_path(c, app);
	return lock_take(c->paths.workdir, path, true, e);
}

int workdir_lock_run(const struct config *c, const char *id, struct err *e)
{
	_cleanup_free_ char *path = run_lock_path(c, id);
	return lock_take(c->paths.workdir, path, true, e);
}

void workdir_unlock_run(const struct config *c, const char *id, int fd)
{
	_cleanup_free_ char *path = run_lock_path(c, id);

	if (fd < 0)
		return;
	/* still held: nobody can be waiting for this one to mean anything */
	unlink(path);
	close(fd);
}

int workdir_lock_image(const struct config *c, const char *name, struct err *e)
{
	_cleanup_free_ char *dir = path_join(c->paths.cache, "images");
	_cleanup_free_ char *path = image_lock_path(c, name);
	return lock_take(dir, path, true, e);
}

int workdir_image_mkdtemp(const struct config *c, const char *name, char **ret_dir,
			  struct err *e)
{
	int r = fs_mkdir_p(c->paths.workdir, 0700);
	if (r < 0)
		return err_set_errno(e, r, "cannot create '%s'", c->paths.workdir);
	_cleanup_free_ char *tmp = xasprintf("%s/" IMAGE_PREFIX "%s.XXXXXX", c->paths.workdir, name);
	if (!mkdtemp(tmp))
		return err_set_errno(e, -errno, "cannot create a directory in '%s'",
				     c->paths.workdir);
	*ret_dir = TAKE_PTR(tmp);
	return 0;
}

/* ------------------------------------------------------------ the sweep */

/* The locks an entry's owner may hold, and what removing it means. */
struct owner {
	char *locks[MAX_OWNER_LOCKS];
	size_t n;
	char *unlink_lock;       /* a lock file that goes with the entry */
};

static void owner_clear(struct owner *o)
{
	for (size_t i = 0; i < o->n; i++)
		free(o->locks[i]);
	free(o->unlink_lock);
	memset(o, 0, sizeof(*o));
}

static bool has_suffix(const char *s, size_t n, const char *suffix)
{
	size_t k = strlen(suffix);
	return n >= k && !memcmp(s + n - k, suffix, k);
}

static bool is_alnum(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
}

/* "run-<id>": an image run's workspace, and also the name that a build of
 * an app called "run" would use. */
static bool run_name(const char *name, size_t n)
{
	return n == strlen(RUN_PREFIX) + ID_LEN && !strncmp(name, RUN_PREFIX, strlen(RUN_PREFIX)) &&
	       id_ok(name + strlen(RUN_PREFIX));
}

/*
 * Which locks guard name (an entry of the work dir): fills o and returns
 * true, or returns false for what the sweep never removes (the lock files
 * of builds, unknown names).
 */
static bool entry_owner(const struct config *c, const char *name, struct owner *o)
{
	size_t n = strlen(name);

	if (has_suffix(name, n, LOCK_SUFFIX)) {
		/* the lock of an image run whose workspace is gone; a
		 * run-<id> dir next to it is swept with its lock */
		_cleanup_free_ char *base = xstrndup(name, n - strlen(LOCK_SUFFIX));
		_cleanup_free_ char *dir = path_join(c->paths.workdir, base);
		struct stat st;

		if (!run_name(base, strlen(base)) || lstat(dir, &st) == 0)
			return false;
		o->locks[o->n++] = path_join(c->paths.workdir, name);
		return true;
	}
	if (run_name(name, n)) {
		/* never taken for a build dir of app "run" alone, nor for an
		 * image run's alone: both owners must be gone */
		o->locks[o->n++] = run_lock_path(c, name + strlen(RUN_PREFIX));
		o->locks[o->n++] = build_lock_path(c, "run");
		o->unlink_lock = run_lock_path(c, name + strlen(RUN_PREFIX));
		return true;
	}
	if (n > ID_LEN + 1 && name[n - ID_LEN - 1] == '-' && id_ok(name + n - ID_LEN)) {
		_cleanup_free_ char *app = xstrndup(name, n - ID_LEN - 1);

		if (!app_name_ok(app))
			return false;
		o->locks[o->n++] = build_lock_path(c, app);
		return true;
	}
	if (!strncmp(name, IMAGE_PREFIX, strlen(IMAGE_PREFIX))) {
		/* image-<name>.XXXXXX, and the bootstrap's log next to it */
		size_t k = has_suffix(name, n, LOG_SUFFIX) ? n - strlen(LOG_SUFFIX) : n;
		size_t start = strlen(IMAGE_PREFIX);

		if (k < start + 1 + IMAGE_TMP_LEN || name[k - IMAGE_TMP_LEN] != '.')
			return false;
		for (size_t i = k - IMAGE_TMP_LEN + 1; i < k; i++)
			if (!is_alnum(name[i]))
				return false;
		_cleanup_free_ char *image = xstrndup(name + start, k - IMAGE_TMP_LEN - start);
		if (!path_component_ok(image))
			return false;
		o->locks[o->n++] = image_lock_path(c, image);
		return true;
	}
	return false;
}

/*
 * Takes the lock at path without waiting and without creating it, for as
 * long as the entry it guards is being removed. Returns 1 (*ret_fd holds
 * it, or -1 when there is no such file or it is the caller's held lock),
 * 0 when another process holds it, or -errno.
 */
static int lock_try(const char *path, const struct stat *held, int *ret_fd)
{
	struct stat st;
	int fd;

	*ret_fd = -1;
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 1 : -errno;
	if (fstat(fd, &st) < 0) {
		int r = -errno;
		close(fd);
		return r;
	}
	if (held && st.st_dev == held->st_dev && st.st_ino == held->st_ino) {
		close(fd);
		return 1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int r = errno == EWOULDBLOCK ? 0 : -errno;
		close(fd);
		return r;
	}
	*ret_fd = fd;
	return 1;
}

/* Removes the entry name when its owner is gone: 1 when removed, 0 when
 * it is not the sweep's or still in use, -errno (logged). */
static int sweep_one(const struct config *c, const char *name, const struct stat *held)
{
	_cleanup_free_ char *path = path_join(c->paths.workdir, name);
	struct owner o = { 0 };
	int fds[MAX_OWNER_LOCKS];
	size_t taken = 0;
	int r = 0;

	if (!entry_owner(c, name, &o))
		return 0;
	for (; taken < o.n; taken++) {
		r = lock_try(o.locks[taken], held, &fds[taken]);
		if (r <= 0)
			break;
	}
	if (r < 0)
		log_warn("cannot test the lock '%s': %s", o.locks[taken], strerror(-r));
	if (r > 0) {
		_cleanup_err_ struct err e = ERR_INIT;

		r = fs_rm_rf(path, &e);
		if (r < 0) {
			log_warn("cannot remove the leftover '%s': %s", path, err_msg(&e));
		} else {
			log_debug("removed the leftover '%s'", path);
			if (o.unlink_lock)
				unlink(o.unlink_lock);
			r = 1;
		}
	}
	for (size_t i = 0; i < taken; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	owner_clear(&o);
	return r;
}

int workdir_sweep(const struct config *c, int held_fd)
{
	_cleanup_strv_ struct strv names = STRV_INIT;
	struct stat held;
	int removed = 0;
	DIR *d;

	if (held_fd >= 0 && fstat(held_fd, &held) < 0)
		return -errno;
	d = opendir(c->paths.workdir);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	for (struct dirent *de; (de = readdir(d));)
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			strv_push(&names, de->d_name);
	closedir(d);
	strv_sort(&names);
	for (size_t i = 0; i < names.n; i++)
		if (sweep_one(c, names.v[i], held_fd >= 0 ? &held : NULL) > 0)
			removed++;
	return removed;
}
