/*
 * builder/workspace.c - a writable root over a read-only lower directory:
 * overlayfs where the kernel allows it, else a plain copy.
 */
#include <errno.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include "builder/builder.h"

/* overlayfs splits its options at ',' and lowerdir at ':'; such paths
 * (and '\\' escapes) are not worth the trouble: use a copy instead. */
static bool overlay_path_ok(const char *p)
{
	return !strpbrk(p, ",:\\");
}

static int ws_mkdir(const char *p, struct err *e)
{
	if (mkdir(p, 0755) < 0)
		return err_set(e, -errno, "cannot create '%s': %s", p, strerror(errno));
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

static int ws_setup(struct workspace *w, const char *dir, const char *lower, struct err *e)
{
	_cleanup_free_ char *work = NULL, *opts = NULL;
	int r;

	*w = (struct workspace)WORKSPACE_INIT;
	r = fs_mkdir_p(dir, 0700);
	if (r < 0)
		return err_set(e, r, "cannot create '%s': %s", dir, strerror(-r));
	w->dir = xstrdup(dir);
	w->root = path_join(dir, "root");
	r = ws_mkdir(w->root, e);
	if (r < 0)
		return r;

	if (overlay_path_ok(lower) && overlay_path_ok(dir)) {
		w->upper = path_join(dir, "upper");
		work = path_join(dir, "work");
		r = ws_mkdir(w->upper, e);
		if (r >= 0)
			r = ws_mkdir(work, e);
		if (r < 0)
			return r;
		opts = xasprintf("lowerdir=%s,upperdir=%s,workdir=%s", lower, w->upper, work);
		if (mount("overlay", w->root, "overlay", 0, opts) == 0) {
			w->overlay = true;
			w->mounted = true;
			return 0;
		}
		r = -errno;
		/* not an overlay-capable setup: fall back; anything else is real */
		if (r != -EINVAL && r != -ENODEV && r != -ENOTSUP && r != -EPERM &&
		    r != -ENOSYS)
			return err_set(e, r, "cannot mount an overlay on '%s': %s", w->root,
				       strerror(-r));
		log_debug("overlayfs unavailable on '%s' (%s): copying '%s'", w->root,
			  strerror(-r), lower);
		rmdir(work);
		rmdir(w->upper);
		free(w->upper);
		w->upper = NULL;
	}
	return ws_copy(lower, w->root, e);
}

/* On failure, whatever was made is removed again. */
int workspace_create(struct workspace *w, const char *dir, const char *lower, struct err *e)
{
	int r = ws_setup(w, dir, lower, e);

	if (r < 0) {
		_cleanup_err_ struct err e2 = ERR_INIT;

		if (workspace_destroy(w, &e2) < 0)
			log_warn("cleaning up '%s': %s", dir, err_msg(&e2));
	}
	return r;
}

int workspace_destroy(struct workspace *w, struct err *e)
{
	int r = 0;

	if (!w->dir)
		return 0;
	if (w->mounted) {
		if (umount2(w->root, MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
			r = err_set(e, -errno, "cannot unmount '%s': %s", w->root, strerror(errno));
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
