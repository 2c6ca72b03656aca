/*
 * deploy/overlay.c - overlay-mounted revisions (deploy.materialize).
 *
 * A deploy host extracts each verified layer once, into a tree of its own
 * in overlayfs's upper format (trees/<sha256>.<policy>: a whiteout is a 0:0
 * character device, an opaque directory has trusted.overlay.opaque=y), and
 * a revision is an overlayfs mount of its layers' trees at revisions/<id>,
 * bottom layer lowest, with a writable upper and work dir of its own in
 * overlay/<id>/. Materializing a revision from trees the host holds costs
 * one mount, whatever the size of the root: a one-file change extracts one
 * small tree. The trees are never written through a mount (overlayfs never
 * writes a lower layer), so revisions share them.
 *
 * overlay/<id>/lowers says what to mount, so that the mounts a reboot took
 * away come back (`upaas remount`, the upaas-remount systemd unit, and every
 * command that uses a revision):
 *
 *   upaas-overlay 1 nosuid          (or "suid": deploy.allow_privileged_files)
 *   <tree name of the bottom layer>
 *   ...
 *   <tree name of the top layer>
 *
 * Kernel: overlayfs with lower dirs that hold whiteouts, and the fd paths
 * (/proc/self/fd/N) for the dirs, both in Linux 6.1 (Debian 12).
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "deploy/deploy-int.h"

#ifndef STATX_ATTR_MOUNT_ROOT
#define STATX_ATTR_MOUNT_ROOT 0x00002000
#endif

#define LOWERS_HEADER "upaas-overlay 1"
/* overlayfs takes at most this many lower dirs (and the options must fit a
 * page): more is for extraction */
#define OVERLAY_MAX_LOWERS 128

char *overlay_state_path(const struct app_paths *p, const char *name)
{
	return xasprintf("%s/" OVERLAY_STATE "/%s", p->dir, name);
}

char *layer_tree_name(const char *sha256, const struct unpack_policy *pol)
{
	_cleanup_buf_ struct buf what = BUF_INIT;
	char hex[65];

	/* the same layer extracted under another policy is another tree */
	buf_addf(&what, "privileged=%d\n", pol && pol->privileged);
	for (size_t i = 0; pol && pol->allow_xattrs && i < pol->allow_xattrs->n; i++)
		buf_addf(&what, "xattr=%s\n", pol->allow_xattrs->v[i]);
	sha256_hex(what.p, what.len, hex);
	return xasprintf("%.64s.%.8s", sha256, hex);
}

bool layer_tree_name_ok(const char *name)
{
	size_t n = strlen(name);

	if (n != 64 + 1 + 8 || name[64] != '.')
		return false;
	for (size_t i = 0; i < n; i++)
		if (i != 64 && !strchr("0123456789abcdef", name[i]))
			return false;
	return true;
}

bool path_is_mount_root(const char *path)
{
	struct statx stx;

	if (statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, STATX_TYPE, &stx) < 0)
		return false;
	if (stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT)
		return stx.stx_attributes & STATX_ATTR_MOUNT_ROOT;
	/* no answer from statx: a device other than the parent's */
	_cleanup_free_ char *parent = xasprintf("%s/..", path);
	struct stat a, b;
	return lstat(path, &a) == 0 && stat(parent, &b) == 0 && a.st_dev != b.st_dev;
}

int revision_umount(const char *path, struct err *e)
{
	/* stacked mounts too; a revision in use (an app still running in a
	 * pruned one) is detached: it goes once its last user has gone */
	for (int i = 0; i < 16 && path_is_mount_root(path); i++) {
		if (umount2(path, UMOUNT_NOFOLLOW) == 0)
			continue;
		if (errno == EBUSY && umount2(path, MNT_DETACH | UMOUNT_NOFOLLOW) == 0) {
			log_debug("'%s' is in use: detached", path);
			continue;
		}
		if (errno == EINVAL || errno == ENOENT)
			return 0;
		return err_set_errno(e, -errno, "cannot unmount '%s'", path);
	}
	return 0;
}

int overlay_lowers_read(const struct app_paths *p, const char *name, struct strv *trees,
			bool *ret_nosuid, struct err *e)
{
	_cleanup_free_ char *state = overlay_state_path(p, name);
	_cleanup_free_ char *path = path_join(state, "lowers");
	_cleanup_buf_ struct buf text = BUF_INIT;
	int r = buf_read_file(&text, path, 64 * 1024);

	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return err_set_errno(e, r, "cannot read '%s'", path);
	char *save = NULL, *line = strtok_r(text.p, "\n", &save);
	if (!line || strncmp(line, LOWERS_HEADER " ", strlen(LOWERS_HEADER) + 1))
		return err_set(e, -EINVAL, "'%s': not a list of layer trees", path);
	const char *flags = line + strlen(LOWERS_HEADER) + 1;
	if (strcmp(flags, "nosuid") && strcmp(flags, "suid"))
		return err_set(e, -EINVAL, "'%s': unknown mount flags '%s'", path, flags);
	if (ret_nosuid)
		*ret_nosuid = !strcmp(flags, "nosuid");
	while ((line = strtok_r(NULL, "\n", &save))) {
		if (!layer_tree_name_ok(line))
			return err_set(e, -EINVAL, "'%s': '%s' is not a layer tree", path, line);
		strv_push(trees, line);
	}
	if (!trees->n)
		return err_set(e, -EINVAL, "'%s': no layer tree", path);
	return 1;
}

/* Mounts the overlay of trees (bottom first) with state's upper and work
 * dirs at target. The dirs go to the kernel as /proc/self/fd paths, each
 * opened without following a symlink, so that long names fit a page. */
static int overlay_mount(const struct app_paths *p, const char *state, const struct strv *trees,
			 bool nosuid, const char *target, struct err *e)
{
	_cleanup_free_ char *tdir = path_join(p->dir, LAYER_TREES);
	_cleanup_free_ char *upper = path_join(state, "upper");
	_cleanup_free_ char *work = path_join(state, "work");
	_cleanup_buf_ struct buf opts = BUF_INIT;
	int fds[OVERLAY_MAX_LOWERS + 2];
	size_t n = 0;
	int r = 0;

	if (trees->n > OVERLAY_MAX_LOWERS)
		return err_set(e, -E2BIG, "%zu layers are more than an overlay of '%s' takes",
			       trees->n, target);
	_cleanup_close_ int tfd = open(tdir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (tfd < 0)
		return err_set_errno(e, -errno, "cannot open '%s'", tdir);
	buf_adds(&opts, "lowerdir=");
	/* overlayfs lists the top layer first */
	for (size_t i = trees->n; i-- > 0 && r >= 0;) {
		int fd = openat(tfd, trees->v[i], O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0) {
			r = err_set_errno(e, -errno, "cannot open the layer tree '%s/%s'", tdir,
					  trees->v[i]);
			break;
		}
		fds[n++] = fd;
		buf_addf(&opts, "%s/proc/self/fd/%d", i + 1 < trees->n ? ":" : "", fd);
	}
	const char *rw[2] = { upper, work };
	for (size_t i = 0; i < 2 && r >= 0; i++) {
		int fd = open(rw[i], O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0) {
			r = err_set_errno(e, -errno, "cannot open '%s'", rw[i]);
			break;
		}
		fds[n++] = fd;
		buf_addf(&opts, ",%s=/proc/self/fd/%d", i ? "workdir" : "upperdir", fd);
	}
	/* no redirects, no metadata-only copies: the upper dir is plain files */
	buf_adds(&opts, ",index=off,redirect_dir=off,metacopy=off");
	unsigned long flags = MS_NODEV | (nosuid ? MS_NOSUID : 0);
	if (r >= 0 && mount("overlay", target, "overlay", flags, opts.p) < 0)
		r = err_set_errno(e, -errno, "cannot mount the overlay of %zu layer%s at '%s'",
				  trees->n, trees->n == 1 ? "" : "s", target);
	for (size_t i = 0; i < n; i++)
		close(fds[i]);
	return r;
}

int revision_mount(const struct app_paths *p, const char *name, struct err *e)
{
	_cleanup_strv_ struct strv trees = STRV_INIT;
	_cleanup_free_ char *state = overlay_state_path(p, name);
	_cleanup_free_ char *rev = path_join(p->revisions, name);
	bool nosuid = true;
	int r = overlay_lowers_read(p, name, &trees, &nosuid, e);

	if (r <= 0)
		return r;
	/* two commands (`upaas exec` takes no app lock) never both mount it:
	 * the second one finds it mounted */
	_cleanup_close_ int sfd = open(state, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (sfd < 0 || flock(sfd, LOCK_EX) < 0)
		return err_set_errno(e, -errno, "cannot lock '%s'", state);
	if (path_is_mount_root(rev))
		return 0;
	struct stat st;
	if (lstat(rev, &st) < 0 || !S_ISDIR(st.st_mode))
		return err_set(e, -ENOENT, "the mount point '%s' is missing", rev);
	r = overlay_mount(p, state, &trees, nosuid, rev, e);
	return r < 0 ? r : 1;
}

int revision_mount_new(const struct app_paths *p, const char *name, const struct strv *trees,
		       bool nosuid, struct err *e)
{
	_cleanup_free_ char *sdir = path_join(p->dir, OVERLAY_STATE);
	_cleanup_free_ char *state = overlay_state_path(p, name);
	_cleanup_free_ char *upper = path_join(state, "upper");
	_cleanup_free_ char *work = path_join(state, "work");
	_cleanup_free_ char *lowers = path_join(state, "lowers");
	_cleanup_free_ char *rev = path_join(p->revisions, name);
	_cleanup_buf_ struct buf text = BUF_INIT;
	int r;

	if ((r = fs_mkdir_p(sdir, 0700)) < 0)
		return err_set_errno(e, r, "cannot create '%s'", sdir);
	if (mkdir(state, 0700) < 0)
		return err_set_errno(e, -errno, "cannot create '%s'", state);
	/* the root of the merged tree is the top layer's (its mode, owner) */
	if (mkdir(upper, 0755) < 0 || mkdir(work, 0700) < 0)
		return err_set_errno(e, -errno, "cannot create the upper and work dirs in '%s'",
				     state);
	buf_addf(&text, LOWERS_HEADER " %s\n", nosuid ? "nosuid" : "suid");
	for (size_t i = 0; i < trees->n; i++)
		buf_addf(&text, "%s\n", trees->v[i]);
	if ((r = fs_write_atomic(lowers, text.p, text.len, 0644)) < 0)
		return err_set_errno(e, r, "cannot write '%s'", lowers);
	if (mkdir(rev, 0755) < 0 && errno != EEXIST)
		return err_set_errno(e, -errno, "cannot create '%s'", rev);
	return overlay_mount(p, state, trees, nosuid, rev, e);
}

int overlay_probe(const char *dir, struct err *e)
{
	_cleanup_free_ char *probe = xasprintf("%s/.overlay-probe.%d", dir, (int)getpid());
	const char *sub[] = { "l", "u", "w", "m" };
	_cleanup_err_ struct err re = ERR_INIT;
	int r = 0;

	fs_rm_rf(probe, &re);
	if (mkdir(probe, 0700) < 0)
		return err_set_errno(e, -errno, "cannot create '%s'", probe);
	for (size_t i = 0; i < 4 && r == 0; i++) {
		_cleanup_free_ char *s = path_join(probe, sub[i]);
		if (mkdir(s, 0700) < 0)
			r = err_set_errno(e, -errno, "cannot create '%s'", s);
	}
	if (r == 0) {
		_cleanup_free_ char *opts = xasprintf("lowerdir=%s/l,upperdir=%s/u,workdir=%s/w,"
						      "index=off,redirect_dir=off,metacopy=off",
						      probe, probe, probe);
		_cleanup_free_ char *m = path_join(probe, "m");
		if (strpbrk(probe, ":,\\"))
			r = err_set(e, -EINVAL, "'%s' cannot name an overlay dir", probe);
		else if (mount("overlay", m, "overlay", MS_NODEV | MS_NOSUID, opts) < 0)
			r = err_set_errno(e, -errno, "overlayfs does not mount in '%s'", dir);
		else
			umount2(m, UMOUNT_NOFOLLOW);
	}
	err_clear(&re);
	if (fs_rm_rf(probe, &re) < 0)
		log_warn("%s", err_msg(&re));
	return r;
}
