/*
 * builder/builder.h - one build: the sandbox, the workspace (overlayfs over a
 * cached unpacked base), packing with libarchive, and the build pipeline.
 *
 * Sections are owned by different files: sandbox.c, archive.c, rootcache.c,
 * workspace.c, build.c. Each section documents its own lifecycle.
 */
#ifndef UPAAS_BUILDER_H
#define UPAAS_BUILDER_H

#include "common/common.h"
#include "config/config.h"
#include "storage/storage.h"

/* ================================================================ sandbox */

/*
 * Runs one command inside root with its own mount, PID, UTS and IPC
 * namespaces (and a network namespace with only lo unless network=true):
 * mounts made private first, a private /proc, a minimal /dev (null, zero,
 * full, random, urandom, tty, a new devpts, tmpfs shm), the host's
 * resolv.conf bound read-only, a policy-rc.d that keeps daemons from starting,
 * rlimits, a wall-clock timeout that kills the whole tree, and optionally the
 * uid/gid of an unprivileged user with every capability dropped and
 * no_new_privs. Output goes to log_fd as timestamped lines (tee: also stderr).
 *
 * Nothing mounted for the command outlives it, even when upaas is killed
 * with SIGKILL: mounts live in the command's own mount namespace, and the
 * command's init gets SIGKILL when upaas dies (PR_SET_PDEATHSIG).
 *
 * Returns the exit status, 128+signal, or -errno; -ETIMEDOUT on timeout
 * with "'CMD' timed out after N s" in e.
 */
struct sandbox_bind {
	const char *host;        /* host path */
	const char *target;      /* path inside root (created if missing) */
	bool writable;
};

struct sandbox {
	const char *root;        /* directory to chroot into */
	struct strv argv;
	struct strv env;         /* the whole environment of the command */
	const char *cwd;         /* inside root; NULL: "/" */
	const char *hostname;    /* NULL: "upaas" */
	bool network;            /* false: private network namespace */
	bool drop_privs;         /* run as uid/gid with no capabilities */
	uid_t uid;
	gid_t gid;
	unsigned timeout_ms;     /* 0: none */
	int log_fd;              /* -1: inherit stdout/stderr */
	int log_fd2;             /* -1: none; a live copy of the log lines */
	bool tee;
	struct buf *capture;     /* stdout into this buffer, if set */
	int stdin_fd;            /* -1: /dev/null */
	const struct sandbox_bind *binds;
	size_t n_binds;
	/* rlimits; 0 = leave as is. Without CAP_SYS_RESOURCE a limit above the
	 * inherited hard limit is clamped to it (lowering is what matters). */
	int64_t rlimit_nofile;
	int64_t rlimit_nproc;
	int64_t rlimit_as;
	int64_t rlimit_fsize;
};
#define SANDBOX_INIT { .argv = STRV_INIT, .env = STRV_INIT, .log_fd = -1, .log_fd2 = -1, \
	.stdin_fd = -1 }

int sandbox_run(const struct sandbox *sb, struct err *e);
void sandbox_free(struct sandbox *sb);    /* frees argv and env */
/* Fills rlimits from the admin config. */
void sandbox_limits_from_config(struct sandbox *sb, const struct config *c);

/*
 * Moves the calling process into a private mount namespace (unshare +
 * MS_REC|MS_PRIVATE on /), so that every mount it makes afterwards (the
 * workspace overlay) disappears with the process, even on SIGKILL.
 * Idempotent. Call it before any workspace_create().
 */
int sandbox_private_mounts(struct err *e);

/* ================================================================ archive */

/*
 * Packs the tree at root into a zstd-compressed pax tar, streamed to sink,
 * computing the sha256 of the compressed stream on the way (one pass).
 * Entries are sorted by path; mtimes above mtime_clamp are clamped to it
 * (mtime_clamp < 0: no clamping); no atime. Ownership, modes, xattrs (file
 * capabilities), hard links and device nodes are kept.
 * exclude: patterns relative to root, such as "proc", "dev/" "*" or
 * "var/lib/apt/lists/" "*": "dir" excludes dir and everything below;
 * "dir/" followed by "*" keeps dir itself and excludes its contents.
 */
struct pack_opts {
	int level;               /* zstd level */
	int threads;             /* 0: number of cores */
	int64_t mtime_clamp;     /* SOURCE_DATE_EPOCH, -1: none */
	const char *const *exclude;  /* NULL-terminated, may be NULL */
	struct progress *progress;   /* may be NULL */
};
struct pack_result {
	char sha256[65];
	uint64_t size;           /* compressed bytes */
	uint64_t entries;
};
int pack_tree(const char *root, const struct pack_opts *o, storage_sink_fn sink, void *data,
	      struct pack_result *ret, struct err *e);

/*
 * Extracts a zstd/gzip/plain tar file into dest (created, must not exist or
 * be empty). With secure=true refuses "..", absolute paths and writes through
 * symlinks (libarchive's ARCHIVE_EXTRACT_SECURE_*), as deploy needs.
 * Ownership, modes, xattrs and device nodes are restored.
 */
int unpack_file(const char *archive, const char *dest, bool secure, struct progress *progress,
		struct err *e);

/* ============================================================== rootcache */

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
 */
#define ROOTCACHE_MAX_LAYERS 12
int rootcache_get(const struct config *c, struct storage *s, const char *key, const char *sha256,
		  uint64_t size, struct strv *ret_lowers, struct err *e);
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
/* Removes least recently used entries until the cache is below max bytes.
 * Entries named in keep (paths or sha256s, may be NULL) and entries that a
 * mounted overlay uses as a lower layer are never removed. */
int rootcache_trim(const struct config *c, const struct strv *keep, struct err *e);

/* ============================================================== workspace */

/*
 * A writable root over read-only lower directories (top first): an overlayfs
 * with its upper and work dirs below dir, mounted at dir/root; where
 * overlayfs is not available, a plain copy of a single lower into dir/root
 * (a chain of layers needs overlayfs: -EOPNOTSUPP).
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
};
#define WORKSPACE_INIT { NULL, NULL, NULL, false, false }
int workspace_create(struct workspace *w, const char *dir, const struct strv *lowers,
		     struct err *e);
/* Overlay: unmounts root, never lazily (-EBUSY while something still uses
 * it), so that upper is complete and stable and may be moved away. */
int workspace_unmount(struct workspace *w, struct err *e);
int workspace_destroy(struct workspace *w, struct err *e);

/* ================================================================== build */

/*
 * One build of an app (build.c), the main job:
 * fetch the app into a bare mirror -> resolve ref -> read .upaas.cfg ->
 * pick the base (image or current package) -> workspace -> steps in the
 * sandbox -> pack -> upload blob, manifest, current, log.
 *
 * The package manifest (packages/<app>/<id>.json) is JSON:
 *   { "format": 1, "app", "id", "parent" (id or null), "fresh" (bool),
 *     "base": { "kind": "image"|"package", "name", "sha256", "reason" },
 *     "image": name of the base image the line of packages started from,
 *     "repository": { "url", "ref", "commit", "commit_time" },
 *     "interpreter": { "type", "version" },
 *     "blob": { "key", "sha256", "size", "compression": "zstd", "format": "pax" },
 *     "layers": [ { "key", "sha256", "size" } ]   (one today: the blob)
 *     "metadata_sha256",
 *     "app_home": "/home/app", "uid", "gid",
 *     "deploy": { "shared": [..], "hooks": { "pre": [..], "post": [..] }, "keep" },
 *     "builder": hostname, "steps": [ { "name", "seconds", "status" } ],
 *     "created": "2026-11-20T21:45:00Z" }
 */
struct build_opts {
	const char *source;        /* git URL or local repository path */
	const char *app;           /* app name; NULL: derived from source */
	const char *ref;           /* NULL: the remote's default branch */
	bool fresh;
	const char *interp_version;
	const char *build_id;      /* NULL: a new id */
	int log_fd;                /* -1: none besides the stored log */
	bool tee;                  /* step output also to stderr */
};
struct build_result {
	char *app;
	char *id;
	char *commit;
	bool fresh;
	char *base_reason;
	char sha256[65];
	uint64_t size;
	char *failed_step;         /* set when a step failed */
};
int build_run(const struct config *c, struct storage *s, const struct build_opts *o,
	      struct build_result *ret, struct err *e);
void build_result_free(struct build_result *r);

/* =============================================================== packages */

/*
 * Stored packages (builder/manifest.c, builder/packages.c): the manifest of
 * one package read back into a struct, listing, verification, download and
 * pruning. A package exists only once packages/<app>/<id>.json exists.
 */
struct package_step {
	char *name;                /* step or stage name */
	double seconds;
	char *status;              /* "ok", "skipped" */
};
struct package_info {
	char *app;
	char *id;
	char *parent;              /* NULL for a fresh package */
	bool fresh;
	struct { char *kind, *name, *sha256, *reason; } base;
	struct { char *name, *sha256; } image;   /* image the line started from */
	struct { char *url, *ref, *commit; int64_t commit_time; } repo;
	struct { char *type, *version; } interp;
	struct { char *key; char sha256[65]; uint64_t size; } blob;
	struct strv os_packages;   /* Debian packages installed by the line */
	char *metadata_sha256;
	char *app_home;
	int64_t uid, gid;
	bool keep_git;
	struct { struct strv shared, hooks_pre, hooks_post; int keep; } deploy;
	char *builder;
	struct package_step *steps;    /* the build steps, in order */
	size_t n_steps;
	struct package_step *stages;   /* fetch, base, workspace, steps, pack, ... */
	size_t n_stages;
	char *created;
	char *json;                /* package_load(): the manifest text */
};
void package_info_free(struct package_info *p);
/* Serialises p as the manifest JSON of builder.h's build section. */
void package_manifest_json(const struct package_info *p, struct buf *out);
/* Parses a manifest; -EINVAL with the reason when it is not one. */
int package_manifest_parse(struct package_info *ret, const char *text, struct err *e);
/* Reads packages/<app>/<id>.json (-ENOENT when there is no such package). */
int package_load(struct storage *s, const char *app, const char *id, struct package_info *ret,
		 struct err *e);
/* The id named by apps/<app>/current (-ENOENT when there is none). */
int package_current(struct storage *s, const char *app, struct buf *ret_id, struct err *e);
/* The ids of the app's packages (those with a manifest), oldest first. */
int packages_list(struct storage *s, const char *app, struct strv *ids, struct err *e);
/* Downloads the blob and checks its size and sha256 against the manifest
 * (-EBADMSG on mismatch). path NULL: verify only; else the verified blob is
 * renamed to path (never left there when the check fails). */
int package_fetch(struct storage *s, const struct package_info *p, const char *path,
		  struct err *e);
/*
 * Keeps the newest keep packages of app (and always the current one) and
 * deletes the others: manifest first (the commit marker), then blob and log.
 * ret_removed (may be NULL) receives the ids removed.
 */
int packages_prune(struct storage *s, const char *app, int keep, struct strv *ret_removed,
		   struct err *e);

#endif
