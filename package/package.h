/*
 * package/package.h - the package format: the manifest writer and reader
 * (package/manifest.c) and stored packages (package/packages.c).
 *
 * The package manifest (packages/<app>/<id>.json) is JSON:
 *   { "format": 1, "app", "id", "parent" (id or null), "fresh" (bool),
 *     "base": { "kind": "image"|"package", "name", "sha256", "reason" },
 *     "image": { "name", "sha256" } of the base image the line started from,
 *     "repository": { "url", "ref", "commit", "commit_time" },
 *     "interpreter": { "type", "version" },
 *     "blob": { "key", "sha256", "size", "compression": "zstd", "format": "pax" },
 *     "layers": [ { "key", "sha256", "size" } ]   (one today: the blob)
 *     "os_packages": [..], "metadata_sha256",
 *     "app_home": "/home/app", "uid", "gid", "keep_git",
 *     "deploy": { "shared": [..], "hooks": { "pre": [..], "post": [..] }, "keep" },
 *     "builder": hostname, "steps": [ { "name", "seconds", "status" } ],
 *     "stages": [ .. ], "created": "2026-11-20T21:45:00Z" }
 */
#ifndef UPAAS_PACKAGE_H
#define UPAAS_PACKAGE_H

#include "common/common.h"
#include "config/config.h"
#include "storage/storage.h"

/*
 * Stored packages (package/manifest.c, package/packages.c): the manifest of
 * one package read back into a struct (the one reader, shared by the
 * package commands, the builder and deploy), listing, verification,
 * download and pruning. A package exists only once packages/<app>/<id>.json exists.
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
	struct { char *url, *ref, *commit; int64_t commit_time; } repo;   /* commit: hex */
	struct { char *type, *version; } interp;
	struct { char *key; char sha256[65]; uint64_t size; } blob;
	struct strv os_packages;   /* Debian packages installed by the line */
	char *metadata_sha256;
	char *app_home;            /* NULL when the manifest has none */
	int64_t uid, gid;          /* -1 when the manifest has none */
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
/* Serialises p as the manifest JSON above. */
void package_manifest_json(const struct package_info *p, struct buf *out);

/* The largest manifest text read. */
#define PACKAGE_MANIFEST_MAX ((size_t)1 << 20)

/*
 * The one manifest reader. A manifest comes from storage: it is data, and
 * it is held to this edition's fields:
 *  - required: "format" 1, "app" (app_name_ok), "id" (package_id_ok),
 *    "blob" with "key" (storage_key_ok), "sha256" (64 lowercase hex) and
 *    "size" (an integer >= 0);
 *  - every known field that is present has its type (a string, an integer,
 *    a list, ...), else it is an error naming the field; JSON null counts as
 *    absent; unknown fields are ignored (a newer builder may add some);
 *  - checked values: "parent" a package id, "repository.commit" 40 or 64
 *    lowercase hex digits, the sha256 fields 64, "base.kind" image or
 *    package, "os_packages" Debian package names, "app_home" a safe absolute
 *    path, "deploy.shared" and "deploy.hooks.pre/post" safe relative paths,
 *    "uid"/"gid" in the range of apps.uid/apps.gid, "deploy.keep" in that of
 *    the metadata's deploy.keep, "created" an ISO 8601 UTC time, "layers"
 *    objects with a key, a sha256 and a size;
 *  - bounded: strings 4096 bytes without control characters, lists 256
 *    entries (os_packages 4096), the text PACKAGE_MANIFEST_MAX;
 *  - nothing after the JSON object but white space.
 * Absent fields are NULL, empty, 0 or false, except uid and gid (-1); a step
 * without a status gets "ok". app and id (each may be NULL) must be the
 * manifest's own. On success ret->json holds a copy of text. -EINVAL with
 * "manifest: <field> ..." in e otherwise.
 */
int package_manifest_parse(struct package_info *ret, const char *text, const char *app,
			   const char *id, struct err *e);

/* true for a package id usable as a revision name on a deploy host:
 * [A-Za-z0-9][A-Za-z0-9._-]* (at most 128), not ending in ".tmp" or
 * ".failed" (deploy's names for revisions in the making and failed ones). */
bool package_id_ok(const char *id);

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
 * The logs of builds that made no package (failed, cancelled) are kept the
 * same way: the newest keep of them.
 * ret_removed (may be NULL) receives the ids removed.
 */
int packages_prune(struct storage *s, const char *app, int keep, struct strv *ret_removed,
		   struct err *e);

#endif
