/*
 * deploy/deploy.c - one deploy, rollback or undeploy of an app on this host.
 *
 * Crash safety comes from the order of the steps: an extract goes to
 * revisions/<id>.tmp and is renamed only after the data is synced (an
 * overlay revision: each layer's tree is synced and renamed into place,
 * then the overlay is mounted at revisions/<id>), then its completion
 * marker manifests/<id>.complete is written; a revision is reused
 * (rollback, redeploy, a cycle back to an id) only with its marker, and is
 * taken away marker first, then manifest, then by a rename to a trash name,
 * so a half-extracted or half-removed tree is never switched to. `current`
 * is replaced by rename(2) of a fresh symlink. The slow part of a removal,
 * deleting the trash, runs after the command has reported (deploy_sweep).
 * Everything a killed deploy can leave behind has a name (*.tmp, .trash-*,
 * .download-*, .hook-*.json, .current.tmp) that the next deploy, or the
 * next sweep, removes while it holds the app lock.
 *
 * SIGTERM/SIGINT (proc_cancel_on_signals(), set by the CLI): each step
 * checks before it starts; what is under way is finished or undone (an
 * extract is removed, a switch whose post-deploy hooks were interrupted is
 * switched back), and the operation fails with "interrupted".
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <stdio.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>

#include "archive/archive.h"
#include "deploy/deploy-int.h"

/* One locked operation on one app. */
struct dctx {
	const struct config *cfg;
	struct storage *s;
	const struct deploy_opts *o;
	struct app_paths p;
	int lock_fd;
	int log_fd;
	char hostname[HOST_NAME_MAX + 1];
	struct sign_trust trust;    /* signing.trusted: nothing from storage without it */
};

static void dctx_close(struct dctx *d)
{
	if (d->log_fd >= 0)
		close(d->log_fd);
	if (d->lock_fd >= 0)
		close(d->lock_fd);
	d->log_fd = d->lock_fd = -1;
	app_paths_free(&d->p);
	sign_trust_free(&d->trust);
}

/* Creates <root>/<app>, takes the app lock and opens the deploy log. */
static int dctx_open(struct dctx *d, const struct config *c, struct storage *s, const char *app,
		     const struct deploy_opts *o, bool create, struct err *e)
{
	memset(d, 0, sizeof(*d));
	d->cfg = c;
	d->s = s;
	d->o = o;
	d->lock_fd = d->log_fd = -1;
	if (!app || !app_name_ok(app))
		return err_set(e, -EINVAL, "invalid app name '%s'", app ? app : "");
	const char *root = o->root ? o->root : c->deploy.root;
	if (!root || root[0] != '/')
		return err_set(e, -EINVAL, "the deploy root must be an absolute path");
	app_paths_init(&d->p, root, app);
	if (gethostname(d->hostname, sizeof(d->hostname) - 1) < 0)
		d->hostname[0] = '\0';
	if (s) {
		int r = sign_trust_config(&d->trust, c, e);
		if (r < 0)
			return r;
	}

	struct stat st;
	if (!create && lstat(d->p.dir, &st) < 0)
		return err_set(e, -ENOENT, "app '%s' is not deployed under '%s'", app, root);
	int r = fs_mkdir_p(d->p.dir, 0755);
	if (r < 0)
		return err_set_errno(e, r, "cannot create '%s'", d->p.dir);
	if (lstat(d->p.dir, &st) < 0 || !S_ISDIR(st.st_mode))
		return err_set(e, -ENOTDIR, "'%s' is not a directory", d->p.dir);

	/* an `undeploy --purge` that held the lock meanwhile removed the lock
	 * file with the dir: a lock on the unlinked file protects nothing, so
	 * take it again on the new one */
	for (int tries = 0;; tries++) {
		_cleanup_err_ struct err le = ERR_INIT;
		struct stat a, b;
		r = lock_file(d->p.lock, !o->no_wait, &le);
		if (r == -EWOULDBLOCK)
			return err_set(e, r, "another deploy of app '%s' is running (lock '%s' "
				       "is held)", app, d->p.lock);
		if (r < 0)
			return err_set(e, r, "%s", err_msg(&le));
		if (fstat(r, &a) == 0 && stat(d->p.lock, &b) == 0 && a.st_ino == b.st_ino &&
		    a.st_dev == b.st_dev) {
			d->lock_fd = r;
			break;
		}
		close(r);
		if (tries == 3 || (!create && lstat(d->p.dir, &st) < 0))
			return err_set(e, -ENOENT, "app '%s' was removed meanwhile", app);
		if ((r = fs_mkdir_p(d->p.dir, 0755)) < 0)
			return err_set_errno(e, r, "cannot create '%s'", d->p.dir);
	}

	d->log_fd = open(d->p.log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640);
	if (d->log_fd < 0)
		return err_set_errno(e, -errno, "cannot open '%s'", d->p.log);
	return 0;
}

static bool has_prefix(const char *s, const char *p)
{
	return !strncmp(s, p, strlen(p));
}

/* ------------------------------------------------------ complete, retire */

/*
 * A revision is complete, and may be reused, only while its marker
 * manifests/<id>.complete exists: it is written last when the revision is
 * extracted (after the tree was synced, the manifest written and the tree
 * renamed to its final name) and removed first when the revision is retired.
 * A tree without it (an extract or a removal cut short, or a revision of an
 * upaas that had no markers) is never switched to: it is extracted again.
 */
static bool revision_complete(struct dctx *d, const char *id)
{
	_cleanup_free_ char *rev = app_revision_path(&d->p, id);
	_cleanup_free_ char *marker = app_marker_path(&d->p, id);
	struct stat st;

	return lstat(rev, &st) == 0 && S_ISDIR(st.st_mode) && lstat(marker, &st) == 0 &&
	       S_ISREG(st.st_mode);
}

static int marker_write(struct dctx *d, const char *id, struct err *e)
{
	_cleanup_free_ char *marker = app_marker_path(&d->p, id);
	_cleanup_free_ char *text = xasprintf("%s\n", id);
	int r = fs_write_atomic(marker, text, strlen(text), 0644);

	if (r < 0)
		return err_set_errno(e, r, "cannot write '%s'", marker);
	return 0;
}

/* A fresh name in dir for the trash of name. */
static char *trash_path(const char *dir, const char *name)
{
	uint64_t rnd = 0;

	if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
		rnd = now_ms() ^ ((uint64_t)getpid() << 32);
	return xasprintf("%s/" TRASH_PREFIX "%s.%016llx", dir, name, (unsigned long long)rnd);
}

/* overlay/<name> (the upper and work dirs of an overlay revision) into its
 * trash, once nothing is mounted from it. A missing one is fine. */
static int overlay_state_retire(struct dctx *d, const char *name, struct err *e)
{
	_cleanup_free_ char *sdir = path_join(d->p.dir, OVERLAY_STATE);
	_cleanup_free_ char *state = path_join(sdir, name);
	_cleanup_free_ char *trash = trash_path(sdir, name);

	if (rename(state, trash) < 0) {
		if (errno == ENOENT)
			return 0;
		return err_set_errno(e, -errno, "cannot rename '%s' to '%s'", state, trash);
	}
	fs_fsync_parent(state);
	return 0;
}

/*
 * Takes revisions/<name> away from readers at once: for an id its marker
 * first, then its manifest; then its mount (an overlay revision), then the
 * tree is renamed to a trash name, and its overlay state after it (deleted
 * later by deploy_sweep()). A crash in between leaves a tree
 * without a marker, which is never reused. A missing tree is fine.
 */
static int revision_retire(struct dctx *d, const char *name, bool is_id, struct err *e)
{
	_cleanup_free_ char *rev = path_join(d->p.revisions, name);
	_cleanup_free_ char *trash = trash_path(d->p.revisions, name);

	if (is_id) {
		_cleanup_free_ char *marker = app_marker_path(&d->p, name);
		_cleanup_free_ char *mp = app_manifest_path(&d->p, name);

		if (unlink(marker) < 0 && errno != ENOENT)
			return err_set_errno(e, -errno, "cannot remove '%s'", marker);
		fs_fsync_parent(marker);
		crash_point("deploy.retire.after-marker");
		if (unlink(mp) < 0 && errno != ENOENT)
			return err_set_errno(e, -errno, "cannot remove '%s'", mp);
		crash_point("deploy.retire.after-manifest");
		_cleanup_free_ char *fp = xasprintf("%s/%s.files.json", d->p.manifests, name);
		unlink(fp);
	}
	/* an overlay revision: its mount goes first (a tree is never renamed,
	 * nor deleted, while mounted), then its upper dir with the tree */
	int r = revision_umount(rev, e);
	if (r < 0)
		return r;
	if (rename(rev, trash) < 0) {
		if (errno != ENOENT)
			return err_set_errno(e, -errno, "cannot rename '%s' to '%s'", rev, trash);
	} else {
		fs_fsync_parent(rev);
		crash_point("deploy.retire.after-rename");
	}
	return overlay_state_retire(d, name, e);
}

/* What a killed deploy left of overlay revisions (lock held): a layer tree
 * cut short (trees/<name>.tmp), and the upper dir of a revision that is
 * gone; both to the trash. */
static void cleanup_overlay_leftovers(struct dctx *d)
{
	_cleanup_free_ char *tdir = path_join(d->p.dir, LAYER_TREES);
	_cleanup_free_ char *sdir = path_join(d->p.dir, OVERLAY_STATE);
	_cleanup_err_ struct err e = ERR_INIT;
	_cleanup_strv_ struct strv names = STRV_INIT;
	DIR *dir = opendir(tdir);

	for (struct dirent *de; dir && (de = readdir(dir));) {
		size_t n = strlen(de->d_name);
		if (de->d_name[0] != '.' && n > 4 && !strcmp(de->d_name + n - 4, ".tmp"))
			strv_push(&names, de->d_name);
	}
	if (dir)
		closedir(dir);
	for (size_t i = 0; i < names.n; i++) {
		_cleanup_free_ char *from = path_join(tdir, names.v[i]);
		_cleanup_free_ char *to = trash_path(tdir, names.v[i]);
		if (rename(from, to) == 0)
			deploy_log(d->log_fd, "leftover tree '%s' goes to the trash", names.v[i]);
	}
	strv_free(&names);
	dir = opendir(sdir);
	for (struct dirent *de; dir && (de = readdir(dir));)
		if (de->d_name[0] != '.')
			strv_push(&names, de->d_name);
	if (dir)
		closedir(dir);
	for (size_t i = 0; i < names.n; i++) {
		_cleanup_free_ char *rev = path_join(d->p.revisions, names.v[i]);
		struct stat st;
		if (lstat(rev, &st) == 0)
			continue;
		err_clear(&e);
		if (overlay_state_retire(d, names.v[i], &e) < 0)
			log_warn("%s", err_msg(&e));
	}
}

/* Removes what a killed or failed deploy left behind (lock held). */
static void cleanup_leftovers(struct dctx *d)
{
	_cleanup_strv_ struct strv failed = STRV_INIT, tmp = STRV_INIT;
	_cleanup_err_ struct err e = ERR_INIT;

	deploy_revisions_list(d->p.revisions, NULL, &failed, &tmp, &e);
	strv_extend(&tmp, &failed);
	/* into the trash: deleting a big tree is for after the report */
	for (size_t i = 0; i < tmp.n; i++) {
		err_clear(&e);
		if (revision_retire(d, tmp.v[i], false, &e) < 0)
			log_warn("%s", err_msg(&e));
		else
			deploy_log(d->log_fd, "leftover '%s' goes to the trash", tmp.v[i]);
	}
	cleanup_overlay_leftovers(d);
	DIR *dir = opendir(d->p.dir);
	if (!dir)
		return;
	struct dirent *de;
	while ((de = readdir(dir))) {
		const char *n = de->d_name;
		if (has_prefix(n, ".overlay-probe.")) {
			_cleanup_free_ char *probe = path_join(d->p.dir, n);
			_cleanup_free_ char *m = path_join(probe, "m");
			err_clear(&e);
			if (revision_umount(m, &e) < 0 || fs_rm_rf(probe, &e) < 0)
				log_warn("%s", err_msg(&e));
			continue;
		}
		if (has_prefix(n, ".download-") || has_prefix(n, "..download-") ||
		    has_prefix(n, ".hook-") || !strcmp(n, ".current.tmp")) {
			struct stat st;
			if (fstatat(dirfd(dir), n, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
			    !S_ISDIR(st.st_mode))
				unlinkat(dirfd(dir), n, 0);
		}
	}
	closedir(dir);
}

/* ------------------------------------------------------------ the switch */

static uint64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Points `current` at revisions/<id> (id NULL: removes it): a new symlink,
 * rename(2) over the old one, fsync of the directory. */
static int switch_current(struct dctx *d, const char *id, uint64_t *ret_us, struct err *e)
{
	uint64_t t0 = mono_us();
	if (!id) {
		if (unlink(d->p.current) < 0 && errno != ENOENT)
			return err_set_errno(e, -errno, "cannot remove '%s'", d->p.current);
	} else {
		_cleanup_free_ char *target = xasprintf("revisions/%s", id);
		if (unlink(d->p.current_tmp) < 0 && errno != ENOENT)
			return err_set_errno(e, -errno, "cannot remove '%s'", d->p.current_tmp);
		if (symlink(target, d->p.current_tmp) < 0)
			return err_set_errno(e, -errno, "cannot create '%s'", d->p.current_tmp);
		crash_point("deploy.before-switch");
		if (rename(d->p.current_tmp, d->p.current) < 0) {
			int r = err_set_errno(e, -errno, "cannot rename '%s' to '%s'",
					d->p.current_tmp, d->p.current);
			unlink(d->p.current_tmp);
			return r;
		}
	}
	crash_point("deploy.after-switch");
	int r = fs_fsync_parent(d->p.current);
	if (r < 0)
		return err_set_errno(e, r, "cannot sync '%s'", d->p.dir);
	if (ret_us)
		*ret_us = mono_us() - t0;
	deploy_log(d->log_fd, "current -> %s", id ? id : "(none)");
	return 0;
}

/* ---------------------------------------------------------- fetch, extract */

/* Reads the manifest kept next to a revision. */
static int local_manifest(struct dctx *d, const char *id, struct package_info *m,
			  struct err *e)
{
	_cleanup_free_ char *path = app_manifest_path(&d->p, id);
	_cleanup_buf_ struct buf text = BUF_INIT;
	int r = buf_read_file(&text, path, PACKAGE_MANIFEST_MAX);
	if (r < 0)
		return err_set_errno(e, r, "cannot read '%s'", path);
	r = deploy_manifest_read(m, text.p, d->p.app, id, d->cfg, e);
	if (r < 0)
		return err_prefix(e, "'%s'", path);
	return 0;
}

/* The manifest from storage, once its signature checks out against the
 * trusted keys; nothing of it is used before. */
static int remote_manifest(struct dctx *d, const char *id, struct package_info *m,
			   struct buf *text, struct err *e)
{
	_cleanup_free_ char *key = storage_key_package(d->p.app, id, "json");
	char keyid[SIGN_KEYID_LEN + 1] = "";
	int r = signed_get(d->s, &d->trust, key, text, PACKAGE_MANIFEST_MAX, keyid, e);
	if (r == -ENOENT) {
		err_clear(e);
		return err_set(e, r, "package '%s' of app '%s' does not exist in %s", id, d->p.app,
			       storage_where(d->s));
	}
	if (r < 0)
		return r;
	if (r < 0)
		return r;
	if (r == 0)
		deploy_log(d->log_fd, "'%s' is signed by trusted key %s", key, keyid);
	else
		deploy_log(d->log_fd, "'%s' is not signed (signing.allow_unsigned)", key);
	r = deploy_manifest_read(m, text->p, d->p.app, id, d->cfg, e);
	if (r < 0)
		return err_prefix(e, "'%s'", key);
	return 0;
}

static void dropped_add(struct unpack_dropped *to, const struct unpack_dropped *x)
{
	to->setid += x->setid;
	to->caps += x->caps;
	to->xattrs += x->xattrs;
	to->devices += x->devices;
}

/* Syncs the file system of the tree at path (an extract about to be
 * published). Defence in depth: a file system left with no free block at
 * all is taken as a failed write. */
static int sync_tree(const char *path, struct err *e)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	struct statvfs vfs;

	if (fd < 0 || syncfs(fd) < 0)
		return err_set_errno(e, -errno, "cannot sync '%s'", path);
	if (fstatvfs(fd, &vfs) == 0 && vfs.f_bfree == 0)
		return err_set(e, -ENOSPC, "no space left on the filesystem of '%s'", path);
	return 0;
}

/* What extraction dropped, or that the admin let privileged files through:
 * said in the deploy log, and the revision's record next to its manifest
 * (manifests/<id>.files.json). */
static int write_files_record(struct dctx *d, const char *id, bool privileged,
			      const struct unpack_dropped *dr, struct err *e)
{
	if (privileged)
		deploy_log(d->log_fd, "privileged files kept (deploy.allow_privileged_files)");
	else if (dr->setid || dr->caps || dr->xattrs || dr->devices)
		deploy_log(d->log_fd, "dropped: setuid/setgid bits of %llu files, %llu file "
			   "capabilities, %llu trusted/security xattrs, %llu device nodes",
			   (unsigned long long)dr->setid, (unsigned long long)dr->caps,
			   (unsigned long long)dr->xattrs, (unsigned long long)dr->devices);
	_cleanup_free_ char *path = xasprintf("%s/%s.files.json", d->p.manifests, id);
	_cleanup_free_ char *text = xasprintf(
		"{\n  \"privileged_files\": %s,\n  \"dropped\": { \"setuid_setgid\": %llu, "
		"\"capabilities\": %llu, \"xattrs\": %llu, \"devices\": %llu }\n}\n",
		privileged ? "true" : "false", (unsigned long long)dr->setid,
		(unsigned long long)dr->caps, (unsigned long long)dr->xattrs,
		(unsigned long long)dr->devices);
	int r = fs_write_atomic(path, text, strlen(text), 0644);
	return r < 0 ? err_set_errno(e, r, "cannot write '%s'", path) : 0;
}

/*
 * Fetches each layer of the package, checks its size and sha256 against
 * the manifest, and extracts it into revisions/<id>.tmp (the bottom one as
 * it is, each later one applied onto it), which becomes revisions/<id> once
 * synced, and complete once its marker is written. Local storage is read in
 * place; other storage is streamed into a private temporary file in the
 * app's dir. Nothing is extracted from a layer that fails verification. An
 * incomplete revisions/<id> that `current` names (a forced redeploy of it)
 * is replaced in one exchange (RENAME_EXCHANGE), never removed while
 * current points at it.
 */
static int fetch_and_extract(struct dctx *d, const struct package_info *m,
			     const struct buf *manifest_text, struct deploy_result *res,
			     struct err *e)
{
	_cleanup_free_ char *rev = app_revision_path(&d->p, m->id);
	_cleanup_free_ char *tmp = xasprintf("%s.tmp", rev);
	_cleanup_free_ char *tmpname = xasprintf("%s.tmp", m->id);
	_cleanup_free_ char *mpath = app_manifest_path(&d->p, m->id);
	_cleanup_free_ char *kept = path_join(d->p.dir, KEPT_LAYERS);
	struct progress pr = { 0 };
	/* the tree is the app's: no setuid/setgid, no capabilities, no device
	 * nodes, no trusted/security xattrs but the admin's, unless the admin
	 * lets privileged files through */
	struct unpack_policy pol = { .privileged = d->cfg->deploy.allow_privileged_files,
				     .allow_xattrs = &d->cfg->deploy.allow_xattrs };
	struct unpack_dropped dropped = { 0 };
	uint64_t t0;
	int r = 0;

	/* local storage is read in place: nothing to keep */
	if (storage_caps(d->s) & STORAGE_CAP_FD) {
		free(kept);
		kept = NULL;
	}
	if ((r = fs_mkdir_p(d->p.revisions, 0755)) < 0 || (r = fs_mkdir_p(d->p.manifests, 0755)) < 0 ||
	    (kept && (r = fs_mkdir_p(kept, 0700)) < 0))
		return err_set_errno(e, r, "cannot create the revision dirs in '%s'", d->p.dir);
	if (progress_enabled)
		progress_begin(&pr, "extract", package_size(m));
	for (size_t i = 0; i < m->n_layers && r >= 0; i++) {
		const struct package_layer *l = &m->layers[i];
		_cleanup_buf_ struct buf name = BUF_INIT;
		struct unpack_result ur;

		r = proc_check_cancel(e);
		if (r < 0)
			break;

		t0 = now_ms();
		/* the size and sha256 of the signed manifest, checked before it is
		 * used; a download stops at the signed size; a layer this host
		 * keeps for another revision is not fetched again */
		bool fetched;
		_cleanup_close_ int fd = layer_open_kept(d->s, m, i, kept, &fetched, e);
		res->fetch_ms += now_ms() - t0;
		if (fd < 0) {
			r = fd;
			break;
		}
		if (fetched) {
			res->fetched_bytes += l->size;
			res->fetched_layers++;
		} else {
			res->kept_layers++;
		}
		deploy_log(d->log_fd, "layer %zu of %zu '%s' (%llu bytes): %s, sha256 %s verified",
			   i + 1, m->n_layers, l->key, (unsigned long long)l->size,
			   fetched ? "fetched" : "kept on this host", l->sha256);
		t0 = now_ms();
		buf_addf(&name, "layer %.12s of package '%s'", l->sha256, m->id);
		struct unpack_opts o = { .mode = i ? UNPACK_APPLY : UNPACK_PLAIN, .name = name.p,
					 .sha256 = l->sha256, .size = l->size, .policy = &pol,
					 .progress = progress_enabled ? &pr : NULL };
		r = unpack_fd(fd, tmp, &o, &ur, e);
		res->extract_ms += now_ms() - t0;
		if (r >= 0)
			dropped_add(&dropped, &ur.dropped);
	}
	if (progress_enabled)
		progress_end(&pr);
	if (r >= 0)
		r = write_files_record(d, m->id, pol.privileged, &dropped, e);
	t0 = now_ms();
	if (r >= 0) {
		/* the files must be on disk before the name says "complete" */
		r = sync_tree(tmp, e);
	}
	if (r >= 0)
		crash_point("deploy.after-extract");
	if (r >= 0) {
		r = fs_write_atomic(mpath, manifest_text->p, manifest_text->len, 0644);
		if (r < 0)
			err_set_errno(e, r, "cannot write '%s'", mpath);
	}
	struct stat st;
	bool exchange = r >= 0 && lstat(rev, &st) == 0;
	if (r >= 0)
		crash_point("deploy.before-extract-rename");
	if (r >= 0 && exchange &&
	    renameat2(AT_FDCWD, tmp, AT_FDCWD, rev, RENAME_EXCHANGE) < 0)
		r = err_set_errno(e, -errno, "cannot exchange '%s' and '%s'", tmp, rev);
	else if (r >= 0 && !exchange && rename(tmp, rev) < 0)
		r = err_set_errno(e, -errno, "cannot rename '%s' to '%s'", tmp, rev);
	if (r >= 0)
		r = fs_fsync_parent(rev);
	if (r >= 0)
		crash_point("deploy.after-extract-rename");
	if (r >= 0)
		r = marker_write(d, m->id, e);
	if (r < 0) {
		_cleanup_err_ struct err e2 = ERR_INIT;
		/* an interrupted extract is undone: into the trash */
		revision_retire(d, tmpname, false, &e2);
		if (!exchange) {
			_cleanup_free_ char *fpath = xasprintf("%s/%s.files.json", d->p.manifests,
							       m->id);
			unlink(mpath);
			unlink(fpath);
		}
		if (e->code == 0)
			err_set_errno(e, r, "cannot sync '%s'", d->p.revisions);
		if (r == -EBADMSG || r == -ENOENT)
			return err_prefix(e, "package '%s' failed verification", m->id);
		return err_prefix(e, "cannot extract package '%s'", m->id);
	}
	if (exchange) {
		/* the incomplete tree it replaced is at tmp now */
		_cleanup_err_ struct err e2 = ERR_INIT;
		if (revision_retire(d, tmpname, false, &e2) < 0)
			log_warn("%s", err_msg(&e2));
	}
	crash_point("deploy.after-marker");
	res->extract_ms += now_ms() - t0;
	res->fetched = true;
	deploy_log(d->log_fd, "extracted %zu layer%s into '%s' in %llu ms", m->n_layers,
		   m->n_layers == 1 ? "" : "s", rev, (unsigned long long)res->extract_ms);
	return 0;
}

/* ----------------------------------------------------- overlay revisions */

/*
 * Whether this deploy makes overlay revisions (deploy.materialize): "auto"
 * asks the deploy root's file system once per process (a scratch mount).
 */
static bool overlay_wanted(struct dctx *d)
{
	static dev_t probed_dev;
	static int probed = -1;
	const char *m = d->cfg->deploy.materialize ? d->cfg->deploy.materialize : "auto";
	struct stat st;

	if (!strcmp(m, "extract"))
		return false;
	if (!strcmp(m, "overlay"))
		return true;
	if (stat(d->p.dir, &st) < 0)
		return false;
	if (probed < 0 || probed_dev != st.st_dev) {
		_cleanup_err_ struct err e = ERR_INIT;
		probed = overlay_probe(d->p.dir, &e) == 0;
		probed_dev = st.st_dev;
		if (!probed)
			log_info("revisions are extracted, not overlay-mounted: %s", err_msg(&e));
	}
	return probed;
}

/* trees/<name>.dropped: what the policy took out of a tree, for the record
 * of each revision that stacks it. */
static void dropped_read(const char *path, struct unpack_dropped *to)
{
	_cleanup_buf_ struct buf text = BUF_INIT;
	unsigned long long v[4];

	if (buf_read_file(&text, path, 256) >= 0 &&
	    sscanf(text.p, "%llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3]) == 4)
		dropped_add(to, &(struct unpack_dropped){ v[0], v[1], v[2], v[3] });
}

/*
 * The tree of layer i of m (trees/<name>): kept when the host has it (it
 * exists under its name only whole and synced), else fetched (local
 * storage read in place, other storage streamed into a private file),
 * verified, extracted into <name>.tmp in overlayfs's upper format, synced
 * and renamed. Nothing is extracted from a layer that fails verification.
 */
static int tree_ensure(struct dctx *d, const struct package_info *m, size_t i,
		       const struct unpack_policy *pol, const char *tname, struct progress *pr,
		       struct deploy_result *res, struct unpack_dropped *dropped, struct err *e)
{
	const struct package_layer *l = &m->layers[i];
	_cleanup_free_ char *tdir = path_join(d->p.dir, LAYER_TREES);
	_cleanup_free_ char *tree = path_join(tdir, tname);
	_cleanup_free_ char *tmp = xasprintf("%s.tmp", tree);
	_cleanup_free_ char *rec = xasprintf("%s.dropped", tree);
	_cleanup_buf_ struct buf name = BUF_INIT;
	struct unpack_result ur = { 0 };
	struct stat st;
	uint64_t t0;
	int r;

	if (lstat(tree, &st) == 0 && S_ISDIR(st.st_mode)) {
		res->kept_layers++;
		dropped_read(rec, dropped);
		deploy_log(d->log_fd, "layer %zu of %zu '%s': its tree is on this host", i + 1,
			   m->n_layers, l->key);
		return 0;
	}
	r = fs_rm_rf(tmp, e);
	if (r < 0)
		return r;
	t0 = now_ms();
	_cleanup_close_ int fd = layer_open(d->s, m, i, d->p.dir, e);
	res->fetch_ms += now_ms() - t0;
	if (fd < 0)
		return fd;
	res->fetched_bytes += l->size;
	res->fetched_layers++;
	deploy_log(d->log_fd, "layer %zu of %zu '%s' (%llu bytes): fetched, sha256 %s verified",
		   i + 1, m->n_layers, l->key, (unsigned long long)l->size, l->sha256);
	t0 = now_ms();
	buf_addf(&name, "layer %.12s of package '%s'", l->sha256, m->id);
	struct unpack_opts o = { .mode = UNPACK_UPPER, .name = name.p, .sha256 = l->sha256,
				 .size = l->size, .policy = pol, .progress = pr };
	r = unpack_fd(fd, tmp, &o, &ur, e);
	if (r >= 0) {
		_cleanup_free_ char *text = xasprintf(
			"%llu %llu %llu %llu\n", (unsigned long long)ur.dropped.setid,
			(unsigned long long)ur.dropped.caps, (unsigned long long)ur.dropped.xattrs,
			(unsigned long long)ur.dropped.devices);
		r = fs_write_atomic(rec, text, strlen(text), 0644);
		if (r < 0)
			err_set_errno(e, r, "cannot write '%s'", rec);
	}
	if (r >= 0) {
		/* the files on disk before the name says "whole" */
		r = sync_tree(tmp, e);
	}
	if (r >= 0 && rename(tmp, tree) < 0)
		r = err_set_errno(e, -errno, "cannot rename '%s' to '%s'", tmp, tree);
	if (r >= 0)
		r = fs_fsync_parent(tree);
	res->extract_ms += now_ms() - t0;
	if (r < 0) {
		_cleanup_err_ struct err e2 = ERR_INIT;
		if (fs_rm_rf(tmp, &e2) < 0)
			log_warn("%s", err_msg(&e2));
		if (e->code == 0)
			err_set_errno(e, r, "cannot sync '%s'", tdir);
		return r;
	}
	dropped_add(dropped, &ur.dropped);
	return 0;
}

/*
 * fetch_and_extract() for an overlay revision: each layer's tree (only those
 * the host lacks are fetched and extracted), then overlay/<id> and the
 * mount at revisions/<id>, the manifest, the marker. The crash points are
 * those of an extract: "extract" is the trees, its "rename" the mount.
 */
static int fetch_and_mount(struct dctx *d, const struct package_info *m,
			   const struct buf *manifest_text, struct deploy_result *res,
			   struct err *e)
{
	_cleanup_free_ char *rev = app_revision_path(&d->p, m->id);
	_cleanup_free_ char *mpath = app_manifest_path(&d->p, m->id);
	_cleanup_free_ char *tdir = path_join(d->p.dir, LAYER_TREES);
	_cleanup_strv_ struct strv trees = STRV_INIT;
	struct unpack_policy pol = { .privileged = d->cfg->deploy.allow_privileged_files,
				     .allow_xattrs = &d->cfg->deploy.allow_xattrs };
	struct unpack_dropped dropped = { 0 };
	struct progress pr = { 0 };
	int r = 0;

	if ((r = fs_mkdir_p(d->p.revisions, 0755)) < 0 || (r = fs_mkdir_p(d->p.manifests, 0755)) < 0 ||
	    (r = fs_mkdir_p(tdir, 0700)) < 0)
		return err_set_errno(e, r, "cannot create the revision dirs in '%s'", d->p.dir);
	if (progress_enabled)
		progress_begin(&pr, "extract", package_size(m));
	for (size_t i = 0; i < m->n_layers && r >= 0; i++) {
		_cleanup_free_ char *tname = layer_tree_name(m->layers[i].sha256, &pol);
		r = proc_check_cancel(e);
		if (r >= 0)
			r = tree_ensure(d, m, i, &pol, tname, progress_enabled ? &pr : NULL, res,
					&dropped, e);
		strv_push(&trees, tname);
	}
	if (progress_enabled)
		progress_end(&pr);
	uint64_t t0 = now_ms();
	if (r >= 0)
		r = write_files_record(d, m->id, pol.privileged, &dropped, e);
	if (r >= 0)
		crash_point("deploy.after-extract");
	if (r >= 0) {
		r = fs_write_atomic(mpath, manifest_text->p, manifest_text->len, 0644);
		if (r < 0)
			err_set_errno(e, r, "cannot write '%s'", mpath);
	}
	/* what an earlier revision of this id left (the caller retired its
	 * tree): its upper dir is not this one's */
	if (r >= 0)
		r = overlay_state_retire(d, m->id, e);
	if (r >= 0)
		crash_point("deploy.before-extract-rename");
	if (r >= 0)
		r = revision_mount_new(&d->p, m->id, &trees, !pol.privileged, e);
	if (r >= 0)
		r = fs_fsync_parent(rev);
	if (r >= 0)
		crash_point("deploy.after-extract-rename");
	if (r >= 0)
		r = marker_write(d, m->id, e);
	if (r < 0) {
		_cleanup_err_ struct err e2 = ERR_INIT;
		_cleanup_free_ char *fpath = xasprintf("%s/%s.files.json", d->p.manifests, m->id);
		/* an interrupted revision is undone: unmounted, into the trash
		 * (the trees are whole: they stay for the next deploy) */
		if (revision_retire(d, m->id, true, &e2) < 0)
			log_warn("%s", err_msg(&e2));
		unlink(mpath);
		unlink(fpath);
		if (e->code == 0)
			err_set_errno(e, r, "cannot sync '%s'", d->p.revisions);
		if (r == -EBADMSG || r == -ENOENT)
			return err_prefix(e, "package '%s' failed verification", m->id);
		return err_prefix(e, "cannot extract package '%s'", m->id);
	}
	crash_point("deploy.after-marker");
	res->extract_ms += now_ms() - t0;
	res->fetched = true;
	deploy_log(d->log_fd, "mounted %zu layer%s at '%s' (%zu fetched and extracted) in %llu ms",
		   m->n_layers, m->n_layers == 1 ? "" : "s", rev, res->fetched_layers,
		   (unsigned long long)res->extract_ms);
	return 0;
}

/* ------------------------------------------------------------ shared dirs */

/* Opens (creating with owner uid/gid when create) each component of rel
 * below dirfd, never following a symlink. Returns the fd of the last. */
static int open_dirs(int dirfd, const char *base, const char *rel, bool create, uid_t uid,
		     gid_t gid, struct err *e)
{
	int fd = dup(dirfd);
	if (fd < 0)
		return err_set_errno(e, -errno, "dup");
	const char *s = rel;
	while (*s) {
		const char *slash = strchr(s, '/');
		size_t n = slash ? (size_t)(slash - s) : strlen(s);
		_cleanup_free_ char *comp = xstrndup(s, n);
		int nfd = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (nfd < 0 && errno == ENOENT && create) {
			if (mkdirat(fd, comp, 0755) < 0 && errno != EEXIST) {
				int r = -errno;
				close(fd);
				return err_set_errno(e, r, "cannot create '%s' in '%s'", rel, base);
			}
			if (fchownat(fd, comp, uid, gid, AT_SYMLINK_NOFOLLOW) < 0) {
				int r = -errno;
				close(fd);
				return err_set_errno(e, r, "cannot chown '%s' in '%s'", rel, base);
			}
			nfd = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		}
		if (nfd < 0) {
			int r = -errno;
			close(fd);
			if (r == -ELOOP || r == -ENOTDIR)
				return err_set(e, -ENOTDIR,
					       "'%s' in '%s' is not a directory (a symlink?)", rel,
					       base);
			return err_set_errno(e, r, "cannot open '%s' in '%s'", rel, base);
		}
		close(fd);
		fd = nfd;
		if (!slash)
			break;
		s = slash + 1;
	}
	return fd;
}

static size_t count_components(const char *p)
{
	size_t n = 0;
	for (const char *s = p; *s; s++)
		if (*s != '/' && (s == p || s[-1] == '/'))
			n++;
	return n;
}

/* Links each shared dir of m into the revision at rev (see deploy.h). */
static int link_shared(struct dctx *d, const char *rev, const struct package_info *m,
		       struct err *e)
{
	if (m->deploy.shared.n == 0)
		return 0;
	int r = fs_mkdir_p(d->p.shared, 0755);
	if (r < 0)
		return err_set_errno(e, r, "cannot create '%s'", d->p.shared);
	_cleanup_close_ int shfd = open(d->p.shared, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	_cleanup_close_ int revfd = open(rev, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (shfd < 0 || revfd < 0)
		return err_set_errno(e, -errno, "cannot open '%s'", shfd < 0 ? d->p.shared : rev);

	/* the mount point of the shared data inside the chroot (upaas exec) */
	struct stat st;
	if (mkdirat(revfd, "shared", 0755) < 0 && errno != EEXIST)
		return err_set_errno(e, -errno, "cannot create '%s/shared'", rev);
	if (fstatat(revfd, "shared", &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
		return err_set(e, -ENOTDIR, "'%s/shared' in the package is not a directory", rev);

	const char *home = m->app_home;
	while (*home == '/')
		home++;
	for (size_t i = 0; i < m->deploy.shared.n; i++) {
		const char *dir = m->deploy.shared.v[i];
		/* host side: created on the first deploy, owned by the app */
		_cleanup_close_ int hfd = open_dirs(shfd, d->p.shared, dir, true, (uid_t)m->uid,
						    (gid_t)m->gid, e);
		if (hfd < 0)
			return hfd;

		/* revision side: <app_home>/<dir> becomes the link */
		_cleanup_free_ char *rel = *home ? xasprintf("%s/%s", home, dir) : xstrdup(dir);
		char *slash = strrchr(rel, '/');
		const char *last = slash ? slash + 1 : rel;
		_cleanup_free_ char *parent = slash ? xstrndup(rel, (size_t)(slash - rel)) : NULL;
		_cleanup_close_ int pfd = parent ? open_dirs(revfd, rev, parent, true,
							      (uid_t)m->uid, (gid_t)m->gid, e)
						 : dup(revfd);
		if (pfd < 0)
			return pfd < -1 ? pfd : err_set_errno(e, -errno, "dup");
		if (fstatat(pfd, last, &st, AT_SYMLINK_NOFOLLOW) == 0) {
			if (S_ISDIR(st.st_mode)) {
				/* the parents were opened without following
				 * symlinks, so this path stays inside rev */
				_cleanup_free_ char *full = path_join(rev, rel);
				if ((r = fs_rm_rf(full, e)) < 0)
					return r;
			} else if (unlinkat(pfd, last, 0) < 0) {
				return err_set_errno(e, -errno, "cannot replace '%s' in '%s'", rel,
					       rev);
			}
		}
		/* up from the link's dir to <root>/<app>: its depth + 2
		 * (revisions/<id>); inside the chroot the same text climbs to /
		 * and lands on /shared/<dir> */
		size_t ups = count_components(rel) - 1 + 2;
		_cleanup_buf_ struct buf target = BUF_INIT;
		for (size_t k = 0; k < ups; k++)
			buf_adds(&target, "../");
		buf_addf(&target, "shared/%s", dir);
		if (symlinkat(target.p, pfd, last) < 0)
			return err_set_errno(e, -errno, "cannot link '%s' in '%s'", rel, rev);
		deploy_log(d->log_fd, "shared '%s' -> '%s'", rel, target.p);
	}
	return 0;
}

/* ------------------------------------------------------------------ hooks */

struct varsbuf {
	char *rev, *prev, *data;
	struct hook_vars v;
};

static void varsbuf_free(struct varsbuf *b)
{
	free(b->rev);
	free(b->prev);
	free(b->data);
}

static void vars_fill(struct varsbuf *b, struct dctx *d, const struct package_info *m,
		      const char *id, const char *prev_id, const char *op, const char *event)
{
	b->rev = app_revision_path(&d->p, id);
	b->prev = prev_id ? app_revision_path(&d->p, prev_id) : xstrdup("");
	const char *home = m && m->app_home ? m->app_home : "/";
	b->data = strcmp(home, "/") ? xasprintf("%s%s", b->rev, home) : xstrdup(b->rev);
	b->v = (struct hook_vars){
		.app = d->p.app,
		.package_id = id,
		.commit = m && m->repo.commit ? m->repo.commit : "",
		.revision_dir = b->rev,
		.previous_revision_dir = b->prev,
		.shared_dir = d->p.shared,
		.data_dir = b->data,
		.root = d->p.root,
		.hostname = d->hostname,
		.operation = op,
		.event = event,
		.time = now_unix(),
	};
}

static int run_event(struct dctx *d, const char *event, const struct package_info *m,
		     const char *id, const char *prev_id, const char *op, struct err *e)
{
	struct varsbuf b;
	vars_fill(&b, d, m, id, prev_id, op, event);
	struct hook_run h = { .cfg = d->cfg, .event = event, .m = m, .vars = &b.v,
			      .tmpdir = d->p.dir, .log_fd = d->log_fd, .tee = d->o->tee };
	int r = hooks_run(&h, e);
	varsbuf_free(&b);
	return r;
}

static void history(struct dctx *d, const char *op, const char *id, const char *result,
		    const char *prev)
{
	struct deploy_hist h = { .time = now_unix(), .op = (char *)op, .id = (char *)id,
				 .result = (char *)result, .previous = (char *)prev };
	_cleanup_err_ struct err e = ERR_INIT;
	if (deploy_hist_append(d->p.history, &h, &e) < 0)
		log_warn("%s", err_msg(&e));
	deploy_log(d->log_fd, "%s %s %s", op, id, result);
}

static char *history_previous(struct dctx *d, const char *current)
{
	struct deploy_hist *h = NULL;
	size_t n = 0;
	_cleanup_err_ struct err e = ERR_INIT;
	if (deploy_hist_read(d->p.history, &h, &n, &e) < 0)
		return NULL;
	char *prev = deploy_hist_previous(h, n, current);
	deploy_hist_free_all(h, n);
	return prev;
}

/* ------------------------------------------------------------------ prune */

static void prune(struct dctx *d, const struct package_info *m, const char *current)
{
	_cleanup_strv_ struct strv ids = STRV_INIT, remove = STRV_INIT;
	_cleanup_err_ struct err e = ERR_INIT;
	_cleanup_free_ char *prev = history_previous(d, current);
	int keep = m && m->deploy.keep > 0 ? m->deploy.keep
		 : d->cfg->deploy.keep > 0 ? d->cfg->deploy.keep : 5;

	if (deploy_revisions_list(d->p.revisions, &ids, NULL, NULL, &e) < 0)
		return;
	deploy_prune_select(&ids, current, prev, keep, &remove);
	/* each goes to the trash (marker first): deleting the trees is for
	 * after the deploy has reported (deploy_sweep) */
	for (size_t i = 0; i < remove.n; i++) {
		err_clear(&e);
		crash_point("deploy.prune.before-retire");
		if (revision_retire(d, remove.v[i], true, &e) < 0) {
			log_warn("cannot prune revision %s: %s", remove.v[i], err_msg(&e));
			continue;
		}
		deploy_log(d->log_fd, "pruned revision %s", remove.v[i]);
	}
}

/* ----------------------------------------------------------------- deploy */

/* The body of deploy/rollback once the lock is held and the id known. */
static int deploy_locked(struct dctx *d, const char *id, bool rollback, struct deploy_result *res,
			 struct err *e)
{
	_cleanup_free_ char *cur = deploy_current_id(d->p.current);
	_cleanup_free_ char *rev = app_revision_path(&d->p, id);
	struct package_info m = { 0 };
	uint64_t t0 = now_ms();
	int r;

	res->id = xstrdup(id);
	res->previous = cur ? xstrdup(cur) : NULL;
	res->op = rollback ? DEPLOY_OP_ROLLBACK : cur ? DEPLOY_OP_UPGRADE : DEPLOY_OP_INSTALL;
	const char *op = deploy_op_name(res->op);

	if (cur && !strcmp(cur, id) && !d->o->force) {
		res->noop = true;
		deploy_log(d->log_fd, "%s is already current: nothing to do", id);
		return 0;
	}
	deploy_log(d->log_fd, "%s of %s (current: %s)", op, id, cur ? cur : "none");

	/* an existing complete revision (a rollback, a redeploy, a cycle
	 * back to an id) is reused: it was verified and synced when it was
	 * extracted, and its marker says it still is whole */
	bool have = revision_complete(d, id) && local_manifest(d, id, &m, e) == 0;
	err_clear(e);
	/* an overlay revision whose mount a reboot took away is mounted again */
	if (have && (r = revision_mount(&d->p, id, e)) != 0) {
		if (r < 0) {
			deploy_log(d->log_fd, "revision %s does not mount (%s): extracting it again",
				   id, err_msg(e));
			err_clear(e);
			have = false;
		} else {
			deploy_log(d->log_fd, "mounted revision %s again", id);
		}
	}
	if (!have) {
		_cleanup_buf_ struct buf text = BUF_INIT;
		package_info_free(&m);
		/* a tree without its marker cannot be trusted: it goes to the
		 * trash, unless current names it (then the new extract takes
		 * its place in one exchange) */
		struct stat st;
		if (lstat(rev, &st) == 0 && (!cur || strcmp(cur, id))) {
			deploy_log(d->log_fd, "revision %s is incomplete: extracting it again", id);
			if ((r = revision_retire(d, id, true, e)) < 0)
				return r;
		}
		if ((r = proc_check_cancel(e)) < 0 ||
		    (r = remote_manifest(d, id, &m, &text, e)) < 0 ||
		    (r = (overlay_wanted(d) && !(cur && !strcmp(cur, id) && lstat(rev, &st) == 0)
			  ? fetch_and_mount : fetch_and_extract)(d, &m, &text, res, e)) < 0) {
			package_info_free(&m);
			history(d, op, id, "failed:fetch", cur);
			return r;
		}
	}

	if ((r = proc_check_cancel(e)) < 0 || (r = link_shared(d, rev, &m, e)) < 0) {
		history(d, op, id, "failed:shared", cur);
		goto out;
	}

	if ((r = proc_check_cancel(e)) < 0 ||
	    (r = run_event(d, "pre-deploy", &m, id, cur, op, e)) < 0) {
		/* current untouched; keep the revision for inspection (not
		 * when the hooks were interrupted: the revision is fine) */
		if ((!cur || strcmp(cur, id)) && !proc_cancelled) {
			_cleanup_free_ char *failed = xasprintf("%s.failed", rev);
			_cleanup_free_ char *mp = app_manifest_path(&d->p, id);
			_cleanup_free_ char *marker = app_marker_path(&d->p, id);
			_cleanup_free_ char *fname = xasprintf("%s.failed", id);
			_cleanup_free_ char *state = overlay_state_path(&d->p, id);
			_cleanup_free_ char *fstate = overlay_state_path(&d->p, fname);
			_cleanup_err_ struct err e2 = ERR_INIT;
			unlink(marker);
			/* a mount point does not rename: an overlay revision is
			 * unmounted, renamed with its upper dir, mounted again */
			if (revision_umount(rev, &e2) < 0)
				log_warn("%s", err_msg(&e2));
			if (rename(rev, failed) == 0) {
				unlink(mp);
				if (rename(state, fstate) == 0 && revision_mount(&d->p, fname, &e2) < 0)
					log_warn("%s", err_msg(&e2));
			}
			deploy_log(d->log_fd, "kept the failed revision as '%s'", failed);
		}
		history(d, op, id, "failed:pre-deploy", cur);
		goto out;
	}

	if ((r = proc_check_cancel(e)) < 0 ||
	    (r = switch_current(d, id, &res->switch_us, e)) < 0) {
		history(d, op, id, "failed:switch", cur);
		goto out;
	}

	/* interrupted now, the switch is undone like a failed hook's */
	if ((r = proc_check_cancel(e)) < 0 ||
	    (r = run_event(d, "post-deploy", &m, id, cur, op, e)) < 0) {
		_cleanup_err_ struct err e2 = ERR_INIT;
		history(d, op, id, "failed:post-deploy", cur);
		res->reverted = true;
		/* a forced redeploy of the current package: `current` named
		 * this revision before and still does; removing it would take
		 * the app down instead of switching back */
		if (cur && !strcmp(cur, id))
			goto out;
		if (switch_current(d, cur, NULL, &e2) < 0) {
			log_error("cannot switch back: %s", err_msg(&e2));
			goto out;
		}
		if (!cur)
			goto out;
		if (proc_cancelled) {
			/* its hooks would be killed at once */
			deploy_log(d->log_fd, "switched back to %s (interrupted: no hooks run)", cur);
			history(d, "switch-back", cur, "ok", id);
			goto out;
		}
		/* the previous revision is live again: tell its hooks */
		struct package_info pm = { 0 };
		if (local_manifest(d, cur, &pm, &e2) < 0)
			log_warn("%s", err_msg(&e2));
		int r2 = run_event(d, "post-deploy", pm.id ? &pm : NULL, cur, id, "rollback", &e2);
		package_info_free(&pm);
		history(d, "switch-back", cur, r2 < 0 ? "failed:post-deploy" : "ok", id);
		if (r2 < 0)
			log_warn("%s", err_msg(&e2));
		goto out;
	}

	history(d, op, id, "ok", cur);
	prune(d, &m, id);
	r = 0;
out:
	res->total_ms = now_ms() - t0;
	package_info_free(&m);
	return r;
}

int deploy_run(const struct config *c, struct storage *s, const char *app,
	       const struct deploy_opts *o, struct deploy_result *ret, struct err *e)
{
	struct dctx d;
	_cleanup_buf_ struct buf idb = BUF_INIT;
	int r;

	memset(ret, 0, sizeof(*ret));
	if ((r = dctx_open(&d, c, s, app, o, true, e)) < 0)
		goto out;
	cleanup_leftovers(&d);
	if (o->package_id) {
		/* an explicit id is the admin's own choice: no pointer involved */
		buf_adds(&idb, o->package_id);
	} else {
		struct package_current cur = { 0 };
		/* verified, and never older than what this host has seen */
		r = deploy_current_read(s, &d.trust, app, d.p.sequence, &cur, e);
		if (r < 0) {
			deploy_log(d.log_fd, "refused: %s", err_msg(e));
			goto out;
		}
		deploy_log(d.log_fd, "current is %s, sequence %llu, %s%s", cur.id,
			   (unsigned long long)cur.sequence, cur.keyid[0] ? "signed by key " :
			   "unsigned", cur.keyid);
		buf_adds(&idb, cur.id);
		package_current_free(&cur);
	}
	if (!package_id_ok(idb.p)) {
		r = err_set(e, -EINVAL, "invalid package id '%s'", idb.p);
		goto out;
	}
	r = deploy_locked(&d, idb.p, o->rollback, ret, e);
out:
	if (ret->id && !o->no_report)
		deploy_report_after(c, s, d.p.root, app, deploy_op_name(ret->op), ret->id, r, e);
	dctx_close(&d);
	return r;
}

int deploy_rollback(const struct config *c, struct storage *s, const char *app, const char *to_id,
		    const struct deploy_opts *o, struct deploy_result *ret, struct err *e)
{
	struct dctx d;
	struct deploy_opts ro = *o;
	_cleanup_free_ char *cur = NULL, *target = NULL;
	int r;

	memset(ret, 0, sizeof(*ret));
	ro.rollback = true;
	if ((r = dctx_open(&d, c, s, app, &ro, false, e)) < 0)
		goto out;
	cleanup_leftovers(&d);
	cur = deploy_current_id(d.p.current);
	target = to_id ? xstrdup(to_id) : history_previous(&d, cur);
	if (!target) {
		r = err_set(e, -ENOENT, "app '%s' has no previous revision to roll back to", app);
		goto out;
	}
	if (!package_id_ok(target)) {
		r = err_set(e, -EINVAL, "invalid package id '%s'", target);
		goto out;
	}
	r = deploy_locked(&d, target, true, ret, e);
out:
	if (ret->id && !o->no_report)
		deploy_report_after(c, s, d.p.root, app, deploy_op_name(ret->op), ret->id, r, e);
	dctx_close(&d);
	return r;
}

int deploy_undeploy(const struct config *c, struct storage *s, const char *app,
		    const struct deploy_opts *o, bool purge, struct deploy_result *ret,
		    struct err *e)
{
	struct dctx d;
	struct package_info m = { 0 };
	_cleanup_free_ char *cur = NULL;
	bool opened = false;
	_cleanup_strv_ struct strv ids = STRV_INIT, left = STRV_INIT;
	int r;

	memset(ret, 0, sizeof(*ret));
	ret->op = purge ? DEPLOY_OP_UNINSTALL : DEPLOY_OP_UNDEPLOY;
	const char *op = deploy_op_name(ret->op);
	if ((r = dctx_open(&d, c, s, app, o, false, e)) < 0)
		goto out;
	opened = true;
	cleanup_leftovers(&d);
	cur = deploy_current_id(d.p.current);
	if (!cur && !purge) {
		r = err_set(e, -ENOENT, "app '%s' is not deployed under '%s'", app, d.p.root);
		goto out;
	}
	if (cur) {
		ret->id = xstrdup(cur);
		_cleanup_err_ struct err me = ERR_INIT;
		if (local_manifest(&d, cur, &m, &me) < 0)
			log_warn("%s", err_msg(&me));
		deploy_log(d.log_fd, "%s of %s", op, cur);
		if ((r = proc_check_cancel(e)) < 0 ||
		    (r = run_event(&d, "pre-undeploy", m.id ? &m : NULL, cur, NULL, op, e)) < 0) {
			history(&d, op, cur, "failed:pre-undeploy", cur);
			goto out;
		}
		if ((r = proc_check_cancel(e)) < 0 || (r = switch_current(&d, NULL, NULL, e)) < 0)
			goto out;
		crash_point("undeploy.after-current");
		/* from here on the undeploy is finished, whatever signal comes:
		 * the hooks are told (a SIGTERM kills them), the rest is quick */
		_cleanup_err_ struct err pe = ERR_INIT;
		if (run_event(&d, "post-undeploy", m.id ? &m : NULL, cur, NULL, op, &pe) < 0)
			log_warn("%s (the app is undeployed)", err_msg(&pe));
		history(&d, op, cur, "ok", cur);
	}
	/* every revision goes to the trash, marker first, so that none can be
	 * switched to any more; deleting the trees is for after the report */
	if ((r = deploy_revisions_list(d.p.revisions, &ids, &left, &left, e)) < 0)
		goto out;
	for (size_t i = 0; i < ids.n + left.n; i++) {
		bool is_id = i < ids.n;
		if ((r = revision_retire(&d, is_id ? ids.v[i] : left.v[i - ids.n], is_id, e)) < 0)
			goto out;
	}
	crash_point("undeploy.after-retire");
	if ((r = fs_rm_rf(d.p.manifests, e)) < 0)
		goto out;
	unlink(d.p.failed_marker);
	if (purge) {
		/* shared data, history and log go too: the whole dir, to the
		 * trash in one rename (a deploy waiting for the lock then finds
		 * its lock file gone, and starts afresh) */
		_cleanup_free_ char *trash = trash_path(d.p.root, app);
		if (d.log_fd >= 0)
			close(d.log_fd);
		d.log_fd = -1;
		if (rename(d.p.dir, trash) < 0) {
			r = err_set_errno(e, -errno, "cannot rename '%s' to '%s'", d.p.dir, trash);
			goto out;
		}
		fs_fsync_parent(d.p.dir);
		crash_point("undeploy.after-purge-rename");
	}
	r = 0;
out:
	if (opened && !o->no_report)
		deploy_report_after(c, s, d.p.root, app, op, ret->id, r, e);
	package_info_free(&m);
	dctx_close(&d);
	return r;
}

/* ------------------------------------------------------------------ sweep */

/* Deletes the trash entries of dir (names starting with TRASH_PREFIX),
 * each first renamed to a fresh trash name of ours, so that two sweeps never
 * delete the same tree at once. Returns how many were deleted. */
static int sweep_dir(const char *dir)
{
	_cleanup_strv_ struct strv names = STRV_INIT;
	DIR *d = opendir(dir);
	int n = 0;

	if (!d)
		return 0;
	for (struct dirent *de; (de = readdir(d));)
		if (has_prefix(de->d_name, TRASH_PREFIX))
			strv_push(&names, de->d_name);
	closedir(d);
	for (size_t i = 0; i < names.n; i++) {
		_cleanup_free_ char *from = path_join(dir, names.v[i]);
		_cleanup_free_ char *mine = trash_path(dir, "sweep");
		_cleanup_err_ struct err e = ERR_INIT;

		if (rename(from, mine) < 0)
			continue;   /* another sweep took it */
		if (fs_rm_rf(mine, &e) < 0) {
			log_warn("cannot remove '%s': %s", mine, err_msg(&e));
			continue;
		}
		crash_point("deploy.sweep.after-remove");
		n++;
	}
	return n;
}

/*
 * Removes the kept layers (layers/<sha256>.tar.zst) that no manifest of a
 * revision on the host lists any more (lock held). A manifest that cannot
 * be read keeps them all. Returns how many were removed.
 */
static int sweep_kept_layers(const struct dctx *d)
{
	_cleanup_free_ char *kept = path_join(d->p.dir, KEPT_LAYERS);
	_cleanup_strv_ struct strv listed = STRV_INIT, files = STRV_INIT;
	DIR *dir = opendir(kept);
	int n = 0;

	if (!dir)
		return 0;
	/* everything but the listed layers: a temporary file a dead deploy
	 * left too (deploys hold the lock we hold) */
	for (struct dirent *de; (de = readdir(dir));)
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			strv_push(&files, de->d_name);
	closedir(dir);
	if (!files.n)
		return 0;
	dir = opendir(d->p.revisions);
	for (struct dirent *de; dir && (de = readdir(dir));) {
		if (de->d_name[0] == '.')
			continue;
		/* a revision in the making or a failed one is no one's now */
		_cleanup_free_ char *id = xstrdup(de->d_name);
		size_t len = strlen(id);
		if (len > 4 && !strcmp(id + len - 4, ".tmp"))
			continue;
		_cleanup_free_ char *mpath = app_manifest_path(&d->p, id);
		_cleanup_buf_ struct buf text = BUF_INIT;
		_cleanup_err_ struct err e = ERR_INIT;
		int r = buf_read_file(&text, mpath, PACKAGE_MANIFEST_MAX);
		if (r == -ENOENT)
			continue;
		if (r < 0 || package_manifest_shas(text.p, &listed, &e) < 0) {
			closedir(dir);
			return 0;
		}
	}
	if (dir)
		closedir(dir);
	for (size_t i = 0; i < files.n; i++) {
		const char *f = files.v[i];
		_cleanup_free_ char *sha = xstrndup(f, 64);
		if (strlen(f) == 64 + 8 && !strcmp(f + 64, ".tar.zst") && strv_contains(&listed, sha))
			continue;
		_cleanup_free_ char *p = path_join(kept, f);
		if (unlink(p) == 0)
			n++;
	}
	return n;
}

/*
 * Removes the layer trees (trees/<name> and its record <name>.dropped) that
 * no overlay revision on the host lists (lock held): first into the trash,
 * then deleted with it. A list that cannot be read keeps them all.
 * Returns how many went.
 */
static int sweep_trees(const struct dctx *d)
{
	_cleanup_free_ char *tdir = path_join(d->p.dir, LAYER_TREES);
	_cleanup_free_ char *sdir = path_join(d->p.dir, OVERLAY_STATE);
	_cleanup_strv_ struct strv listed = STRV_INIT, names = STRV_INIT;
	DIR *dir = opendir(tdir);
	int n = 0;

	if (!dir)
		return 0;
	for (struct dirent *de; (de = readdir(dir));)
		if (de->d_name[0] != '.')
			strv_push(&names, de->d_name);
	closedir(dir);
	if (!names.n)
		return 0;
	dir = opendir(sdir);
	for (struct dirent *de; dir && (de = readdir(dir));) {
		_cleanup_err_ struct err e = ERR_INIT;
		if (de->d_name[0] == '.')
			continue;
		if (overlay_lowers_read(&d->p, de->d_name, &listed, NULL, &e) < 0) {
			log_warn("%s: no layer tree is removed", err_msg(&e));
			closedir(dir);
			return 0;
		}
	}
	if (dir)
		closedir(dir);
	for (size_t i = 0; i < names.n; i++) {
		const char *f = names.v[i];
		_cleanup_free_ char *base = xstrndup(f, 64 + 1 + 8);
		if (layer_tree_name_ok(base) && strv_contains(&listed, base) &&
		    (!f[strlen(base)] || !strcmp(f + strlen(base), ".dropped")))
			continue;
		_cleanup_free_ char *from = path_join(tdir, f);
		_cleanup_free_ char *to = trash_path(tdir, f);
		if (rename(from, to) == 0 && layer_tree_name_ok(f))
			n++;
	}
	if (n)
		fs_fsync_parent(tdir);
	return n;
}

/* The trash of one app, under its lock (not waited for: whoever holds it
 * sweeps after its own report), then the layers no revision lists. An
 * undeployed app's empty dirs go too. */
static int sweep_app(const struct config *c, const char *root, const char *app)
{
	struct deploy_opts o = { .root = root, .no_wait = true };
	_cleanup_err_ struct err e = ERR_INIT;
	struct dctx d;
	int n = 0;

	if (dctx_open(&d, c, NULL, app, &o, false, &e) < 0) {
		dctx_close(&d);
		return 0;
	}
	_cleanup_free_ char *tdir = path_join(d.p.dir, LAYER_TREES);
	_cleanup_free_ char *sdir = path_join(d.p.dir, OVERLAY_STATE);
	n = sweep_dir(d.p.revisions);
	n += sweep_dir(sdir);
	int nl = sweep_kept_layers(&d);
	int nt = sweep_trees(&d);
	n += sweep_dir(tdir);
	_cleanup_free_ char *cur = deploy_current_id(d.p.current);
	_cleanup_free_ char *kept = path_join(d.p.dir, KEPT_LAYERS);
	if (!cur) {
		/* undeployed: no revision is left, only the empty dirs */
		rmdir(d.p.revisions);
		rmdir(d.p.manifests);
		rmdir(kept);
		rmdir(sdir);
		rmdir(tdir);
	}
	if (nt > 0)
		deploy_log(d.log_fd, "took %d layer tree%s no revision lists", nt,
			   nt == 1 ? "" : "s");
	if (n > 0)
		deploy_log(d.log_fd, "deleted %d tree%s from the trash", n, n == 1 ? "" : "s");
	if (nl > 0)
		deploy_log(d.log_fd, "deleted %d kept layer%s no revision lists", nl,
			   nl == 1 ? "" : "s");
	dctx_close(&d);
	return n;
}

int deploy_sweep(const struct config *c, const char *root, const char *app, struct err *e)
{
	int n;

	if (!root)
		root = c->deploy.root;
	if (!root || root[0] != '/')
		return err_set(e, -EINVAL, "the deploy root must be an absolute path");
	/* purged apps */
	n = sweep_dir(root);
	if (app) {
		if (!app_name_ok(app))
			return err_set(e, -EINVAL, "invalid app name '%s'", app);
		return n + sweep_app(c, root, app);
	}
	_cleanup_strv_ struct strv apps = STRV_INIT;
	int r = deploy_list_apps(root, &apps, e);
	if (r < 0)
		return r;
	for (size_t i = 0; i < apps.n; i++)
		n += sweep_app(c, root, apps.v[i]);
	return n;
}

/* The overlay revisions of one app that are whole but not mounted, mounted
 * again under its lock (waited for). */
static int remount_app(const struct config *c, const char *root, const char *app,
		       struct strv *failed)
{
	struct deploy_opts o = { .root = root };
	_cleanup_strv_ struct strv ids = STRV_INIT, kept = STRV_INIT;
	_cleanup_err_ struct err e = ERR_INIT;
	struct dctx d;
	int n = 0;

	if (dctx_open(&d, c, NULL, app, &o, false, &e) < 0) {
		dctx_close(&d);
		return 0;
	}
	deploy_revisions_list(d.p.revisions, &ids, &kept, NULL, &e);
	strv_extend(&ids, &kept);
	for (size_t i = 0; i < ids.n; i++) {
		const char *id = ids.v[i];
		size_t len = strlen(id);
		bool is_failed = len > 7 && !strcmp(id + len - 7, ".failed");
		if (!is_failed && !revision_complete(&d, id))
			continue;
		err_clear(&e);
		int r = revision_mount(&d.p, id, &e);
		if (r > 0) {
			deploy_log(d.log_fd, "mounted revision %s again", id);
			n++;
		} else if (r < 0) {
			log_warn("app %s: %s", app, err_msg(&e));
			strv_pushf(failed, "%s/%s", app, id);
		}
	}
	dctx_close(&d);
	return n;
}

int deploy_remount(const struct config *c, const char *root, const char *app,
		   struct strv *failed, struct err *e)
{
	_cleanup_strv_ struct strv apps = STRV_INIT;
	int n = 0, r;

	if (!root)
		root = c->deploy.root;
	if (!root || root[0] != '/')
		return err_set(e, -EINVAL, "the deploy root must be an absolute path");
	if (app) {
		if (!app_name_ok(app))
			return err_set(e, -EINVAL, "invalid app name '%s'", app);
		strv_push(&apps, app);
	} else if ((r = deploy_list_apps(root, &apps, e)) < 0) {
		return r;
	}
	for (size_t i = 0; i < apps.n; i++)
		n += remount_app(c, root, apps.v[i], failed);
	return n;
}

int deploy_list_apps(const char *root, struct strv *apps, struct err *e)
{
	DIR *d = opendir(root);
	if (!d) {
		if (errno == ENOENT)
			return 0;
		return err_set_errno(e, -errno, "cannot read '%s'", root);
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		struct stat st;
		if (!app_name_ok(de->d_name) ||
		    fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISDIR(st.st_mode))
			continue;
		_cleanup_free_ char *cur = xasprintf("%s/current", de->d_name);
		_cleanup_free_ char *hist = xasprintf("%s/history", de->d_name);
		if (fstatat(dirfd(d), cur, &st, AT_SYMLINK_NOFOLLOW) == 0 ||
		    fstatat(dirfd(d), hist, &st, AT_SYMLINK_NOFOLLOW) == 0)
			strv_push(apps, de->d_name);
	}
	closedir(d);
	strv_sort(apps);
	return 0;
}
