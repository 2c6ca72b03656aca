/*
 * rootfs/workspace.c - a writable root over read-only lower directories:
 * overlayfs where the kernel allows it, else a plain copy of a single one.
 */
#include <errno.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include "rootfs/rootfs.h"

/* overlayfs splits its options at ',' and lowerdir at ':'; such paths
 * (and '\\' escapes) are not worth the trouble: use a copy instead. */
static bool overlay_path_ok(const char *p)
{
	return !strpbrk(p, ",:\\");
}

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

/* The mount(2) data is one page; leave room for upperdir and workdir. */
#define OVERLAY_LOWERDIR_MAX 3072

static int ws_setup(struct workspace *w, const char *dir, const struct strv *lowers,
		    struct err *e)
{
	_cleanup_free_ char *work = NULL, *opts = NULL;
	_cleanup_buf_ struct buf lowerdir = BUF_INIT;
	bool paths_ok = overlay_path_ok(dir);
	int r;

	*w = (struct workspace)WORKSPACE_INIT;
	if (!lowers || !lowers->n)
		return err_set(e, -EINVAL, "no lower directory for the workspace '%s'", dir);
	for (size_t i = 0; i < lowers->n; i++) {
		if (i)
			buf_addch(&lowerdir, ':');
		buf_adds(&lowerdir, lowers->v[i]);
		paths_ok = paths_ok && overlay_path_ok(lowers->v[i]);
	}
	if (lowers->n > 1 && (!paths_ok || lowerdir.len > OVERLAY_LOWERDIR_MAX))
		return err_set(e, -EOPNOTSUPP,
			       "cannot stack %zu layers for '%s': a path contains ':', ',' or '\\', "
			       "or the list is too long", lowers->n, dir);
	r = fs_mkdir_p(dir, 0700);
	if (r < 0)
		return err_set_errno(e, r, "cannot create '%s'", dir);
	w->dir = xstrdup(dir);
	w->root = path_join(dir, "root");
	r = ws_mkdir(w->root, e);
	if (r < 0)
		return r;

	if (paths_ok) {
		w->upper = path_join(dir, "upper");
		work = path_join(dir, "work");
		r = ws_mkdir(w->upper, e);
		if (r >= 0)
			r = ws_mkdir(work, e);
		if (r < 0)
			return r;
		opts = xasprintf("lowerdir=%s,upperdir=%s,workdir=%s", lowerdir.p, w->upper, work);
		if (mount("overlay", w->root, "overlay", 0, opts) == 0) {
			w->overlay = true;
			w->mounted = true;
			return 0;
		}
		r = -errno;
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
	}
	return ws_copy(lowers->v[0], w->root, e);
}

/* On failure, whatever was made is removed again. */
int workspace_create(struct workspace *w, const char *dir, const struct strv *lowers,
		     struct err *e)
{
	int r = ws_setup(w, dir, lowers, e);

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
	free(w->dir);
	free(w->root);
	free(w->upper);
	*w = (struct workspace)WORKSPACE_INIT;
	return 0;
}
