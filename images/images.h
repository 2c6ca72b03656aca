/*
 * images/images.h - base OS images: bootstrapped with mmdebstrap (preferred)
 * or debootstrap, packed with libarchive (zstd, pax), stored through the
 * storage handler as a blob, images/<name>/<creation id>.tar.zst, plus the
 * manifest images/<name>.json that names it ("key"; first-edition images
 * have their blob at images/<name>.tar.zst). A creation stores a new blob,
 * then replaces the manifest, then deletes the old blob: readers see a
 * consistent pair, whatever stops the creation.
 *
 * The manifest (JSON) holds: "format": 1, "name", "distribution", "suite",
 * "arch", "variant", "components", "mirror", "packages" (the installed
 * package set, "name=version"), "extra_packages", "tool", "cache_key",
 * "sha256", "size", "created" (outside the blob), "source_date_epoch" (the
 * mirror's Release Date: bootstrap and packing clamp times to it, so that
 * the same mirror state gives the same sha256).
 *
 * The cache key is the sha256 of the inputs (distribution, variant, arch,
 * components, extra packages, mirror). An image whose key differs from the
 * config's, or older than bootstrap.max_age_days, is rebuilt on next use.
 */
#ifndef UPAAS_IMAGES_H
#define UPAAS_IMAGES_H

#include "common/common.h"
#include "config/config.h"
#include "storage/storage.h"

struct image_info {
	char *name;
	char *key;              /* storage key of the blob */
	char sha256[65];
	uint64_t size;
	int64_t created;        /* unix seconds */
	char *cache_key;
	char *distribution;
	char *arch;
	char *tool;
	char *manifest_json;    /* the whole manifest text */
};
void image_info_free(struct image_info *i);

/*
 * Paths of a Debian tree that record the time something ran (dpkg's and
 * apt's logs, ldconfig's aux cache, the -old backups of debconf and dpkg):
 * never packed, neither into images nor packages, so that the same inputs
 * give the same sha256. Pack exclude patterns (archive.h), NULL-terminated.
 */
extern const char *const image_time_records[];

/* The default image name for the config: "<distribution>-<variant>-<arch>". */
char *image_default_name(const struct config *c);
/* The mirror to use: bootstrap.mirror, else the host's apt mirror. */
int image_mirror(const struct config *c, struct buf *out, struct err *e);
/* Reads the stored manifest once its signature (images/<name>.json.sig)
 * checks out against t (-ENOENT when there is no such image; the errors of
 * signed_get() otherwise). */
struct sign_trust;
int image_load(struct storage *s, const struct sign_trust *t, const char *name,
	       struct image_info *ret, struct err *e);
/* true when the stored image is missing, stale or from other inputs;
 * reason (may be NULL) says why. */
bool image_needs_rebuild(const struct config *c, const struct image_info *i, struct buf *reason);
/* Loads the image (verified against signing.trusted); bootstraps, packs and
 * stores it (signed with signing.key) first when missing or stale (or
 * force), one creator per image name on this host at a time. A manifest
 * that fails its signature is an error, never a reason to make a new one. */
int image_ensure(const struct config *c, struct storage *s, const char *name, bool force,
		 struct image_info *ret, struct err *e);
int image_list(struct storage *s, struct strv *names, struct err *e);
/* Removes the image: its manifest first, then its blob (and what dead
 * creations of it on this host left), under the image's lock. */
int image_remove(const struct config *c, struct storage *s, const char *name, struct err *e);


/*
 * `image run` (images/run.c): runs argv in a throwaway copy of image name
 * (an overlay over its cached root, in the work dir, rootfs/rootfs.h), in
 * the sandbox: root inside, or apps.uid/apps.gid with no capabilities
 * (as_user); only loopback unless network. The default image is created
 * when missing; another name must exist (-ENOENT, saying how to create it).
 * The image never changes. Returns the command's exit status (128+N when
 * killed by signal N), -ETIMEDOUT after timeout_s, or -errno.
 */
struct image_run_opts {
	const char *name;
	char *const *argv;         /* NULL-terminated */
	bool network;
	bool as_user;
	unsigned timeout_s;        /* 0: none */
	int stdin_fd;              /* -1: /dev/null */
	const char *term;          /* TERM for the command; NULL: none */
};
int image_run(const struct config *c, struct storage *s, const struct image_run_opts *o,
	      struct err *e);

#endif
