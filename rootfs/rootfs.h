/*
 * rootfs/rootfs.h - the roots builds run in: the cache of read-only roots
 * and layers (rootfs/rootcache.c), writable overlay workspaces over them
 * (rootfs/workspace.c), and the work dir they live in (rootfs/workdir.c).
 */
#ifndef UPAAS_ROOTFS_H
#define UPAAS_ROOTFS_H

#include "common/common.h"
#include "config/config.h"
#include "sandbox/sandbox.h"
#include "storage/storage.h"

/*
 * The host ids of root inside the sandbox (sandbox.* of the admin config):
 * what the trees of the cache and of workspaces belong to.
 */
void rootfs_range(const struct config *c, struct sandbox_range *ret);

/*
 * A cache of read-only roots under <paths.cache>/roots/<sha256>/, keyed by
 * the sha256 of a blob (base image or package), trimmed LRU to
 * limits.unpacked_cache bytes. An entry is either
 *   - a full copy: the blob unpacked (fetched through storage, its sha256
 *     checked, published by rename only when complete), or
 *   - a layer: the overlay upper dir of the build that packed the blob, with
 *     a record of its parent (the sha256 of the root it sat on). Its merged
 *     view over the parent's chain equals the blob's content except for
 *     mtimes (packing clamps them, the layer keeps the real ones).
 *
 * rootcache_get() fills ret_lowers with the lower dirs to stack, top first:
 * one full copy, or a chain of layers ending at a full copy. When a link of
 * a chain is missing (trimmed) or the chain is longer than
 * ROOTCACHE_MAX_LAYERS, the blob is fetched and unpacked as a full copy
 * instead. Returns 0 when everything came from the cache, 1 when the blob
 * was fetched and unpacked.
 *
 * Every tree of the cache belongs to the sandbox's range (rootfs_range()):
 * a blob is unpacked with its ids shifted into it, a layer is what the
 * sandbox wrote. roots/.format records the format and the range; a cache
 * without it (the first edition's, owned by real root) or made for another
 * range is moved aside and removed, and the cache starts empty.
 */
#define ROOTCACHE_MAX_LAYERS 40
int rootcache_get(const struct config *c, struct storage *s, const char *key, const char *sha256,
		  uint64_t size, struct strv *ret_lowers, struct err *e);
/*
 * The lower dirs of a package of n layers (bottom first; upaas-package(5)),
 * top first: the entry of each layer, keyed by its sha256, fetched from
 * storage (verified) when the cache lacks it: the bottom layer unpacked as
 * a full copy, each other one in overlay's format with a record of the layer
 * below. An entry that a build kept (its upper dir) may sit on another chain
 * of the same content; it is used as its record says. A broken or too long
 * chain is made again from the package's own layers. Returns 0 when
 * everything came from the cache, 1 when a layer was fetched.
 */
struct rootcache_layer {
	const char *key;
	const char *sha256;
	uint64_t size;
};
int rootcache_get_layers(const struct config *c, struct storage *s,
			 const struct rootcache_layer *l, size_t n, struct strv *ret_lowers,
			 struct err *e);
/* The same, but always one full copy (a layer entry of sha256 is replaced):
 * for when a chain of layers cannot be mounted. */
int rootcache_get_full(const struct config *c, struct storage *s, const char *key,
		       const char *sha256, uint64_t size, struct strv *ret_lowers, struct err *e);
/*
 * Publishes upper (an unmounted overlay upper dir, whose lower was the root
 * of parent_sha256) as the layer entry of sha256, by rename: upper is gone
 * afterwards on success. -EEXIST when sha256 has an entry already; -EXDEV
 * (or another error) when upper cannot be moved into the cache: the caller
 * just goes on without a layer.
 */
int rootcache_put_layer(const struct config *c, const char *sha256, const char *parent_sha256,
			const char *upper, struct err *e);
/*
 * Records the chain of app's last build (the entries of top_sha256's
 * chain, in roots/.chains/<app>) and removes the entries of the chain it
 * recorded before that this one no longer holds: a chain a squash or a
 * fresh build replaced goes at once instead of waiting for the size limit.
 * Entries of other apps' chains, keep_sha256 (the base image; may be NULL)
 * and entries a workspace stacks or someone is making stay.
 */
int rootcache_retire(const struct config *c, const char *app, const char *top_sha256,
		     const char *keep_sha256, struct err *e);
/* Removes what makers and removers that died left in the cache (temps,
 * sidecars of entries that are gone), each under its entry's lock; called
 * by rootcache_get() itself. Returns how many were removed. */
int rootcache_sweep(const struct config *c);
/* Removes least recently used entries until the cache is below max bytes.
 * Entries named in keep (paths or sha256s, may be NULL) and entries that a
 * workspace stacks are never removed. */
int rootcache_trim(const struct config *c, const struct strv *keep, struct err *e);

/* ============================================================== workspace */

/*
 * A writable root over read-only lower directories (top first): an overlayfs
 * with its upper and work dirs below dir, mounted at dir/root; where
 * overlayfs is not available, a plain copy of a single lower into dir/root
 * (a chain of layers needs overlayfs: -EOPNOTSUPP). The root belongs to
 * root inside the sandbox (rootfs_range()).
 * The overlay is mounted with its layers named /proc/self/fd/N, so that its
 * options (which /proc/self/mountinfo shows, inside the sandbox too) name
 * no host path; each lower from the cache is held with a shared lock on its
 * <sha>.used for the workspace's life, which keeps rootcache_trim() off it.
 * Lifecycle: workspace_create() -> use ws->root -> [workspace_unmount() ->
 * take ws->upper away] -> workspace_destroy().
 * Requires sandbox_private_mounts() first. destroy unmounts and removes dir
 * with fs_rm_rf (never through a mount point or a symlink).
 */
struct workspace {
	char *dir;
	char *root;             /* the merged, writable tree */
	char *upper;            /* overlay: the changes only */
	bool overlay;
	bool mounted;
	int *held;              /* shared locks on the lowers' <sha>.used */
	size_t n_held;
};
#define WORKSPACE_INIT { NULL, NULL, NULL, false, false, NULL, 0 }
int workspace_create(struct workspace *w, const struct config *c, const char *dir,
		     const struct strv *lowers, struct err *e);
/* Overlay: unmounts root, never lazily (-EBUSY while something still uses
 * it), so that upper is complete and stable and may be moved away. */
int workspace_unmount(struct workspace *w, struct err *e);
int workspace_destroy(struct workspace *w, struct err *e);
/* Frees w and drops its locks, whatever is left on disk (after a destroy
 * that failed: the next sweep of the work dir removes it). */
void workspace_free(struct workspace *w);

/* ================================================================ workdir */

/*
 * Every name under paths.workdir, the lock that guards each, and the one
 * sweep that removes what dead processes left there (rootfs/workdir.c):
 *
 *   <app>.lock                held by a build of app while it runs
 *   <app>-<id>/               the work dir of that build (id: id_new())
 *   run-<id>.lock             held by an `image run` while it runs; removed
 *                             with its workspace
 *   run-<id>/                 that run's workspace
 *   image-<name>.XXXXXX/      a creation of image name, and its .log next
 *                             to it, guarded by <paths.cache>/images/<name>.lock
 *
 * An owner takes its lock before it creates its entry and keeps it until the
 * entry is gone. Anything else in the work dir is left alone.
 *
 * Lifecycle of a build: fd = workdir_lock_build() -> workdir_sweep(c, fd)
 * -> mkdir workdir_build_dir() ... remove it -> close(fd). Of an image run:
 * fd = workdir_lock_run() -> workspace_create(workdir_run_dir()) ...
 * workspace_destroy() -> workdir_unlock_run(). Of an image creation:
 * fd = workdir_lock_image() -> workdir_sweep(c, fd) ->
 * workdir_image_mkdtemp() ... remove it -> close(fd).
 */
char *workdir_build_dir(const struct config *c, const char *app, const char *id);
char *workdir_run_dir(const struct config *c, const char *id);
/* Each creates the lock's directory if needed, waits for the lock, and
 * returns the fd that holds it (close it to release), or -errno. */
int workdir_lock_build(const struct config *c, const char *app, struct err *e);
int workdir_lock_run(const struct config *c, const char *id, struct err *e);
int workdir_lock_image(const struct config *c, const char *name, struct err *e);
/* Removes the lock file of run id (held through fd) and closes fd: once its
 * workspace is gone. fd < 0: nothing. */
void workdir_unlock_run(const struct config *c, const char *id, int fd);
/* Creates paths.workdir and a fresh image-<name>.XXXXXX in it; the caller
 * holds workdir_lock_image(name) and frees *ret_dir. */
int workdir_image_mkdtemp(const struct config *c, const char *name, char **ret_dir,
			  struct err *e);
/*
 * Removes every entry of the work dir whose owner is gone: only while each
 * lock that may guard it is free (a flock test, held during the removal),
 * never through a mount point or a symlink (fs_rm_rf). "run-<id>" is both an
 * image run's workspace and the name a build of an app called "run" would
 * use: it goes only when run-<id>.lock and run.lock are both free.
 * held_fd (-1: none) is a lock the caller holds and under which it has made
 * nothing yet: the entries it guards are dead. Returns how many entries
 * were removed, or -errno when the work dir cannot be read (a missing one
 * is empty); a failure to remove one entry is logged.
 */
int workdir_sweep(const struct config *c, int held_fd);

#endif
