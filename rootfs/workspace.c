/*
 * rootfs/workspace.c - a writable root over read-only lower directories:
 * overlayfs where the kernel allows it, else a plain copy of a single one.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include "rootfs/rootfs.h"

static int ws_mkdir(const char *p, struct err *e)
{
	if (mkdir(p, 0755) < 0)
		return err_set_errno(e, -errno, "cannot create '%s'", p);
	return 0;
}

/* Copies lower into root with cp -a (reflinks where the filesystem can). */
static int ws_copy(const char *lower, const char *root, struct err *e)
{
	struct proc p = PROC_INIT;
	_cleanup_free_ char *src = path_join(lower, ".");
	int r;

	strv_push(&p.argv, "cp");
	strv_push(&p.argv, "-a");
	strv_push(&p.argv, "--reflink=auto");
	strv_push(&p.argv, "--");
	strv_push(&p.argv, src);
	strv_push(&p.argv, root);
	r = proc_run(&p, e);
	proc_free(&p);
	if (r < 0)
		return err_prefix(e, "copying '%s'", lower);
	if (r > 0)
		return err_set(e, -EIO, "copying '%s' to '%s' failed (cp exit status %d)", lower,
			       root, r);
	return 0;
}

/* The fds of the overlay's dirs; closed once it is mounted (it holds them). */
struct ws_fds {
	int *v;
	size_t n;
};

static void ws_fds_close(struct ws_fds *f)
{
	for (size_t i = 0; i < f->n; i++)
		close(f->v[i]);
	free(f->v);
	f->v = NULL;
	f->n = 0;
}

/* Appends "/proc/self/fd/N" of an O_PATH fd of dir to opts. */
static int ws_fd_opt(struct ws_fds *f, const char *dir, struct buf *opts, struct err *e)
{
	int fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return err_set_errno(e, -errno, "cannot open '%s'", dir);
	f->v = xrealloc(f->v, (f->n + 1) * sizeof(*f->v));
	f->v[f->n++] = fd;
	buf_addf(opts, "/proc/self/fd/%d", fd);
	return 0;
}

/*
 * Holds a shared lock on <lower>.used, where the lower is an entry of the
 * root cache (the file exists), for the workspace's life: rootcache_trim()
 * takes the lock exclusively before it removes an entry.
 */
static void ws_hold(struct workspace *w, const char *lower)
{
	_cleanup_free_ char *used = xasprintf("%s.used", lower);
	int fd = open(used, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return;
	if (flock(fd, LOCK_SH) < 0) {
		close(fd);
		return;
	}
	w->held = xrealloc(w->held, (w->n_held + 1) * sizeof(*w->held));
	w->held[w->n_held++] = fd;
}

static int ws_setup(struct workspace *w, const struct config *c, const char *dir,
		    const struct strv *lowers, struct err *e)
{
	_cleanup_free_ char *work = NULL;
	_cleanup_buf_ struct buf opts = BUF_INIT;
	struct ws_fds fds = { NULL, 0 };
	struct sandbox_range ids;
	int r;

	*w = (struct workspace)WORKSPACE_INIT;
	if (!lowers || !lowers->n)
		return err_set(e, -EINVAL, "no lower directory for the workspace '%s'", dir);
	rootfs_range(c, &ids);
	r = fs_mkdir_p(dir, 0700);
	if (r < 0)
		return err_set_errno(e, r, "cannot create '%s'", dir);
	w->dir = xstrdup(dir);
	w->root = path_join(dir, "root");
	r = ws_mkdir(w->root, e);
	if (r < 0)
		return r;
	for (size_t i = 0; i < lowers->n; i++)
		ws_hold(w, lowers->v[i]);

	w->upper = path_join(dir, "upper");
	work = path_join(dir, "work");
	r = ws_mkdir(w->upper, e);
	if (r >= 0)
		r = ws_mkdir(work, e);
	/* the merged root is the upper dir's: root's inside the sandbox */
	if (r >= 0 && lchown(w->upper, ids.uid_base, ids.gid_base) < 0)
		r = err_set_errno(e, -errno, "cannot chown '%s'", w->upper);
	buf_adds(&opts, "lowerdir=");
	for (size_t i = 0; r >= 0 && i < lowers->n; i++) {
		if (i)
			buf_addch(&opts, ':');
		r = ws_fd_opt(&fds, lowers->v[i], &opts, e);
	}
	if (r >= 0) {
		buf_adds(&opts, ",upperdir=");
		r = ws_fd_opt(&fds, w->upper, &opts, e);
	}
	if (r >= 0) {
		buf_adds(&opts, ",workdir=");
		r = ws_fd_opt(&fds, work, &opts, e);
	}
	if (r < 0) {
		ws_fds_close(&fds);
		return r;
	}
	r = mount("overlay", w->root, "overlay", 0, opts.p) == 0 ? 0 : -errno;
	ws_fds_close(&fds);
	if (r == 0) {
		w->overlay = true;
		w->mounted = true;
		return 0;
	}
	/* not an overlay-capable setup: fall back; anything else is real */
	if (lowers->n > 1 ||
	    (r != -EINVAL && r != -ENODEV && r != -ENOTSUP && r != -EPERM && r != -ENOSYS))
		return err_set_errno(e, r, "cannot mount an overlay of %zu layer%s on '%s'",
			       lowers->n, lowers->n == 1 ? "" : "s", w->root);
	log_debug("overlayfs unavailable on '%s' (%s): copying '%s'", w->root,
		  strerror(-r), lowers->v[0]);
	rmdir(work);
	rmdir(w->upper);
	free(w->upper);
	w->upper = NULL;
	/* cp -a gives root the lower's owner: root's inside, as the cache's */
	return ws_copy(lowers->v[0], w->root, e);
}

/* On failure, whatever was made is removed again. */
int workspace_create(struct workspace *w, const struct config *c, const char *dir,
		     const struct strv *lowers, struct err *e)
{
	int r = ws_setup(w, c, dir, lowers, e);

	if (r < 0) {
		_cleanup_err_ struct err e2 = ERR_INIT;

		if (workspace_destroy(w, &e2) < 0)
			log_warn("cleaning up '%s': %s", dir, err_msg(&e2));
	}
	return r;
}

int workspace_unmount(struct workspace *w, struct err *e)
{
	if (!w->mounted)
		return 0;
	if (umount2(w->root, UMOUNT_NOFOLLOW) < 0 && errno != EINVAL && errno != ENOENT)
		return err_set_errno(e, -errno, "cannot unmount '%s'", w->root);
	w->mounted = false;
	return 0;
}

int workspace_destroy(struct workspace *w, struct err *e)
{
	int r = 0;

	if (!w->dir)
		return 0;
	if (w->mounted) {
		if (umount2(w->root, MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
			r = err_set_errno(e, -errno, "cannot unmount '%s'", w->root);
		else
			w->mounted = false;
	}
	if (r == 0)
		r = fs_rm_rf(w->dir, e);
	if (r < 0)
		return r;
	workspace_free(w);
	return 0;
}

void workspace_free(struct workspace *w)
{
	for (size_t i = 0; i < w->n_held; i++)
		close(w->held[i]);
	free(w->held);
	free(w->dir);
	free(w->root);
	free(w->upper);
	*w = (struct workspace)WORKSPACE_INIT;
}
