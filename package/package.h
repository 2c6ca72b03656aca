/*
 * package/package.h - the package format: the manifest writer and reader
 * (package/manifest.c) and stored packages (package/packages.c).
 *
 * The package manifest (packages/<app>/<id>.json) is JSON, upaas-package(5):
 *   { "format": 2, "app", "id", "parent" (id or null), "fresh" (bool),
 *     "base": { "kind": "image"|"package", "name", "sha256", "reason" },
 *     "image": { "name", "sha256" } of the base image the line started from,
 *     "repository": { "url", "ref", "commit", "commit_time" },
 *     "interpreter": { "type", "version" },
 *     "layers": [ { "sha256", "size", "kind": "full"|"delta",
 *                   "key": "layers/<sha256>.tar.zst" } ]   bottom first
 *     "os_packages": [..], "metadata_sha256",
 *     "app_home": "/home/app", "uid", "gid", "keep_git",
 *     "deploy": { "shared": [..], "hooks": { "pre": [..], "post": [..] }, "keep" },
 *     "builder": hostname, "steps": [ { "name", "seconds", "status" } ],
 *     "stages": [ .. ], "created": "2026-11-20T21:45:00Z" }
 * A first-edition manifest ("format": 1) has "blob": { "key", "sha256",
 * "size" } instead of layers: it reads as one full layer.
 */
#ifndef UPAAS_PACKAGE_H
#define UPAAS_PACKAGE_H

#include "common/common.h"
#include "archive/archive.h"
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
/* One layer of a package (upaas-package(5)). */
struct package_layer {
	char *key;                 /* layers/<sha256>.tar.zst, or a first-edition blob */
	char sha256[65];           /* of the compressed bytes */
	uint64_t size;             /* compressed bytes */
	char *kind;                /* "full" (the bottom one) or "delta" */
};
/* The format packages are written in, and the most layers one may list. */
#define PACKAGE_FORMAT 2
#define PACKAGE_LAYERS_MAX 64

struct package_info {
	char *app;
	char *id;
	char *parent;              /* NULL for a fresh package */
	bool fresh;
	struct { char *kind, *name, *sha256, *reason; } base;
	struct { char *name, *sha256; } image;   /* image the line started from */
	struct { char *url, *ref, *commit; int64_t commit_time; } repo;   /* commit: hex */
	struct { char *type, *version; } interp;
	int format;                /* 1: first edition (one blob), 2: layered */
	struct package_layer *layers;  /* bottom first; at least one */
	size_t n_layers;
	struct strv os_packages;   /* Debian packages installed by the line */
	char *metadata_sha256;
	char *app_home;            /* NULL when the manifest has none */
	int64_t uid, gid;          /* -1 when the manifest has none */
	bool keep_git;
	struct { struct strv shared, hooks_pre, hooks_post; int keep; } deploy;
	char *builder;
	/* provenance: who built it, with what, from what */
	char *upaas_version;       /* of the builder */
	char *key_id;              /* of the key that signed the manifest */
	struct { char *key; char sha256[65]; uint64_t size; } sbom;   /* key NULL: none */
	struct package_step *steps;    /* the build steps, in order */
	size_t n_steps;
	struct package_step *stages;   /* fetch, base, workspace, steps, pack, ... */
	size_t n_stages;
	char *created;
	char *json;                /* package_load(): the manifest text */
	char *signer;              /* package_load(): the key id that signed it, NULL
				    * when unsigned (signing.allow_unsigned) */
};
void package_info_free(struct package_info *p);
/* Serialises p as the manifest JSON above (format 2). */
void package_manifest_json(const struct package_info *p, struct buf *out);
/* The bytes of all its layers. */
uint64_t package_size(const struct package_info *p);

/* The largest manifest text read. */
#define PACKAGE_MANIFEST_MAX ((size_t)1 << 20)

/*
 * The one manifest reader. A manifest comes from storage: it is data, and
 * it is held to this edition's fields:
 *  - required: "format" 1 or 2, "app" (app_name_ok), "id" (package_id_ok);
 *    format 1: "blob" with "key" (storage_key_ok), "sha256" (64 lowercase
 *    hex) and "size" (an integer >= 0), which becomes the one full layer;
 *    format 2: "layers", 1 to PACKAGE_LAYERS_MAX objects with "key",
 *    "sha256", "size" and "kind" ("full" for the bottom one, "delta" for
 *    the others; absent: that), each sha256 once, each key
 *    "layers/<sha256>.tar.zst" (or, the bottom one, the blob of a
 *    first-edition package of the same app, "packages/<app>/<id>.tar.zst");
 *  - every known field that is present has its type (a string, an integer,
 *    a list, ...), else it is an error naming the field; JSON null counts as
 *    absent; unknown fields are ignored (a newer builder may add some);
 *  - checked values: "parent" a package id, "repository.commit" 40 or 64
 *    lowercase hex digits, the sha256 fields 64, "base.kind" image or
 *    package, "os_packages" Debian package names, "app_home" a safe absolute
 *    path, "deploy.shared" and "deploy.hooks.pre/post" safe relative paths,
 *    "uid"/"gid" in the range of apps.uid/apps.gid, "deploy.keep" in that of
 *    the metadata's deploy.keep, "created" an ISO 8601 UTC time;
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

/*
 * What a manifest text lists as layers, read leniently (for the collection
 * of layers: a manifest keeps a key as long as it names it): every string
 * "key" of "layers" and the "blob" key, whatever else the manifest holds.
 * -EBADMSG when the text is not a JSON object.
 */
int package_manifest_keys(const char *text, struct strv *ret, struct err *e);
/* The same for the sha256 of every layer (and of the "blob"), as listed. */
int package_manifest_shas(const char *text, struct strv *ret, struct err *e);

/* true for a package id usable as a revision name on a deploy host:
 * [A-Za-z0-9][A-Za-z0-9._-]* (at most 128), not ending in ".tmp" or
 * ".failed" (deploy's names for revisions in the making and failed ones). */
bool package_id_ok(const char *id);

struct sign_trust;
/* Reads packages/<app>/<id>.json and verifies its signature against t
 * before it is parsed (-ENOENT when there is no such package; the errors of
 * signed_get() otherwise). */
int package_load(struct storage *s, const struct sign_trust *t, const char *app, const char *id,
		 struct package_info *ret, struct err *e);
/* The id named by apps/<app>/current, verified as package_current_read()
 * does (-ENOENT when there is none). */
int package_current(struct storage *s, const struct sign_trust *t, const char *app,
		    struct buf *ret_id, struct err *e);
/* The ids of the app's packages (those with a manifest), oldest first. */
int packages_list(struct storage *s, const char *app, struct strv *ids, struct err *e);
/* Reads the package's bill of materials (packages/<app>/<id>.sbom.json),
 * checking its size and sha256 against the (verified) manifest; -ENOENT
 * when the package has none. */
struct sbom;
int package_sbom(struct storage *s, const struct package_info *p, struct sbom *ret,
		 struct err *e);
/*
 * Keeps the newest keep packages of app (and always the current one) and
 * deletes the others: manifest first (the commit marker), then its
 * signature, bill of materials and log. Their layers stay: layers_gc()
 * removes those no package lists any more.
 * The logs of builds that made no package (failed, cancelled) are kept the
 * same way: the newest keep of them.
 * ret_removed (may be NULL) receives the ids removed. Then deletes the
 * bills of materials and signatures of app that no manifest names
 * (what a build or a prune that died left) once they are
 * PACKAGE_ORPHAN_GRACE_S old, and at once what a prune that died left.
 */
#define PACKAGE_ORPHAN_GRACE_S (15 * 60)
int packages_prune(struct storage *s, const struct sign_trust *t, const char *app, int keep,
		   struct strv *ret_removed, struct err *e);

/* ------------------------------------------------------------ signatures */

/*
 * ed25519 keys and signatures (package/sign.c, OpenSSL). The formats are
 * upaas-package(5):
 *  - a key pair is two PEM files: the private key (PKCS#8, unencrypted,
 *    mode 0600) and the public key (SubjectPublicKeyInfo);
 *  - a key id is the first 16 hex digits of sha256 over the raw 32-byte
 *    public key;
 *  - a signature line is "ed25519 <key id> <base64 of the 64-byte
 *    signature>\n", the signature over the exact bytes of the object, so
 *    that `openssl pkeyutl -verify -rawin` checks it;
 *  - a stored object <key> is signed by a detached <key>.sig holding one or
 *    more signature lines, written before the object (which stays the
 *    commit marker); apps/<app>/current carries its signature line(s) in
 *    front of its JSON document (one object, replaced whole).
 * Readers never use an object before sign_verify() accepted it against the
 * trusted keys, or (only with signing.allow_unsigned) found it unsigned.
 * Errors: -ENOKEY not signed, -EKEYREJECTED signed by a key that is not
 * trusted, -EBADMSG a signature that does not match or is malformed; the
 * message names the object.
 */
#define SIGN_KEYID_LEN 16
struct sign_key;

/* Makes a new key pair: priv_path created 0600 and pub_path 0644, both with
 * O_EXCL|O_NOFOLLOW (an existing file is never replaced: -EEXIST).
 * ret_id (may be NULL) receives the key id. */
int sign_key_generate(const char *priv_path, const char *pub_path,
		      char ret_id[SIGN_KEYID_LEN + 1], struct err *e);
/* Loads a private key: a regular file (no symlink) of mode 0600 or
 * stricter, owned by the caller or root (-EACCES otherwise). */
int sign_key_load_private(const char *path, struct sign_key **ret, struct err *e);
/* Loads a public key: not writable by group or others. */
int sign_key_load_public(const char *path, struct sign_key **ret, struct err *e);
/* Loads whichever of the two path holds, with the checks of its kind. */
int sign_key_load(const char *path, struct sign_key **ret, struct err *e);
void sign_key_free(struct sign_key *k);
const char *sign_key_id(const struct sign_key *k);
bool sign_key_is_private(const struct sign_key *k);
const char *sign_key_path(const struct sign_key *k);   /* NULL when not from a file */
/* Appends the public key as PEM to out. */
int sign_key_public_pem(const struct sign_key *k, struct buf *out, struct err *e);

/* The trusted public keys (signing.trusted) and the admin's choice about
 * unsigned objects (signing.allow_unsigned). */
struct sign_trust {
	struct sign_key **keys;
	size_t n;
	bool allow_unsigned;
};
#define SIGN_TRUST_INIT { NULL, 0, false }
/* Loads every file of files as a public key; any bad file fails it all. */
int sign_trust_load(struct sign_trust *t, const struct strv *files, bool allow_unsigned,
		    struct err *e);
/* The key pair a host makes itself, under <paths.state>/keys/. */
#define SIGN_DEFAULT_PRIVATE "signing.key"
#define SIGN_DEFAULT_PUBLIC "signing.pub"
/* sign_trust_load() of the config's signing.trusted and allow_unsigned;
 * when signing.trusted is not set, the host's own <state>/keys/signing.pub
 * if it exists (so one host that builds and deploys needs no config, and a
 * deploy host needs only the builder's public key copied to that path). */
int sign_trust_config(struct sign_trust *t, const struct config *c, struct err *e);
/* Loads signing.key (when not set: <state>/keys/signing.key if it exists):
 * 1 and the key, or 0 and NULL when there is none. */
int sign_key_config(const struct config *c, struct sign_key **ret, struct err *e);
/* The same for builders: when signing.key is not set and the host has no
 * key yet, makes <state>/keys/signing.{key,pub} first (unless
 * signing.allow_unsigned), so that a build on the defaults is signed. */
int sign_key_config_make(const struct config *c, struct sign_key **ret, struct err *e);
/* Adds k (taken) to t. */
void sign_trust_add(struct sign_trust *t, struct sign_key *k);
void sign_trust_free(struct sign_trust *t);
#define _cleanup_trust_ _cleanup_(sign_trust_free)
static inline void sign_key_freep(struct sign_key **k) { sign_key_free(*k); }
#define _cleanup_sign_key_ _cleanup_(sign_key_freep)

/* Appends one signature line of p[0..n) by private key k to out. */
int sign_bytes(const struct sign_key *k, const void *p, size_t n, struct buf *out,
	       struct err *e);
/*
 * Checks sig (sig_len bytes of signature lines) over p[0..n): 0 when a line
 * made by a trusted key checks out (ret_id, may be NULL, gets its id).
 * what names the object in messages.
 */
int sign_verify(const struct sign_trust *t, const char *what, const void *p, size_t n,
		const char *sig, size_t sig_len, char ret_id[SIGN_KEYID_LEN + 1], struct err *e);

/*
 * Objects that carry their signature lines in front of their text, as
 * apps/<app>/current and apps/_index do (one object, replaced whole, so
 * that a reader never sees a new text with an old signature):
 * signed_text_verify() checks text[0..len) and sets *ret_doc to where the
 * document starts; 0 signed by a trusted key, 1 unsigned and allowed,
 * -errno as signed_get(). signed_text_format() appends k's signature line
 * (none when k is NULL) and the document to out.
 */
int signed_text_verify(const struct sign_trust *t, const char *what, const char *text,
		       size_t len, size_t *ret_doc, char ret_id[SIGN_KEYID_LEN + 1],
		       struct err *e);
int signed_text_format(const struct sign_key *k, const char *doc, size_t len,
		       struct buf *out, struct err *e);

/* The storage key of key's detached signature: "<key>.sig" (caller frees). */
char *sign_sig_key(const char *key);
/* Stores p as key: with k, its signature <key>.sig first, then the object;
 * k NULL stores it unsigned. */
int signed_put(struct storage *s, const struct sign_key *k, const char *key, const void *p,
	       size_t n, struct err *e);
/*
 * Reads key (at most max bytes) and its <key>.sig and verifies them against
 * t. Returns 0 when signed by a trusted key (ret_id, may be NULL, gets the
 * key id), 1 when unsigned and t->allow_unsigned (a warning is logged each
 * time; ret_id gets ""), -errno otherwise; out is written only on success.
 */
int signed_get(struct storage *s, const struct sign_trust *t, const char *key, struct buf *out,
	       size_t max, char ret_id[SIGN_KEYID_LEN + 1], struct err *e);
/* Deletes key, then its signature. */
int signed_delete(struct storage *s, const char *key, struct err *e);

/*
 * apps/<app>/current: which package an app runs, signed, with a sequence
 * number that only grows (deploy hosts refuse a lower one than they have
 * seen) and the time it was made. The first edition's plain "<id>\n" reads
 * as sequence 0, unsigned.
 */
/* The largest current read (signature lines and document). */
#define PACKAGE_CURRENT_MAX 4096
struct package_current {
	char *app;
	char *id;
	uint64_t sequence;          /* >= 1; 0: a first-edition current */
	char *created;              /* ISO 8601 UTC, NULL when unknown */
	char *builder;              /* host name, NULL when unknown */
	char keyid[SIGN_KEYID_LEN + 1];   /* "" when unsigned */
};
void package_current_free(struct package_current *c);
/* The JSON document of c (what the signature covers). */
void package_current_json(const struct package_current *c, struct buf *out);
/* The whole object: k's signature line (none when k is NULL), then the
 * document. */
int package_current_format(const struct sign_key *k, const struct package_current *c,
			   struct buf *out, struct err *e);
/* Parses and verifies the text of app's current; 0 signed, 1 unsigned and
 * allowed, -errno as signed_get(). */
int package_current_parse(const struct sign_trust *t, const char *app, const char *text,
			  size_t len, struct package_current *ret, struct err *e);
/* Reads apps/<app>/current and parses it (-ENOENT when there is none). */
int package_current_read(struct storage *s, const struct sign_trust *t, const char *app,
			 struct package_current *ret, struct err *e);
/* Replaces apps/<app>/current with c, signed by k (unsigned when NULL). */
int package_current_write(struct storage *s, const struct sign_key *k,
			  const struct package_current *c, struct err *e);

/* ----------------------------------------------------------------- index */

/*
 * apps/_index (package/index.c): one small object that changes whenever an
 * app's current changes, so that a watcher learns with one conditional read
 * which apps it must look at, whatever their number:
 *   { "format": 1, "kind": "index", "created": ISO 8601,
 *     "apps": { "<app>": { "id": "<package id>", "sequence": N }, ... } }
 * with its signature lines in front, like current ("_" starts no app
 * name, so the key is nobody's apps/<app>/). It is a hint, not an order:
 * a host deploys only the verified current, with its sequence check; an
 * index that cannot be read or verified only makes watchers look at each
 * app's current themselves. Builders update it after they write a current,
 * under a lock that serialises the writers of a fleet (the queue's), so
 * that no update is lost to a concurrent one.
 */
#define PACKAGE_INDEX_KEY "apps/_index"
#define PACKAGE_INDEX_MAX ((size_t)4 << 20)
struct package_index_entry {
	char *app;
	char *id;
	uint64_t sequence;
};
struct package_index {
	struct package_index_entry *v;   /* sorted by app */
	size_t n;
	char *created;                   /* NULL when unknown */
	char keyid[SIGN_KEYID_LEN + 1];  /* "" when unsigned */
};
void package_index_free(struct package_index *x);
const struct package_index_entry *package_index_find(const struct package_index *x,
						     const char *app);
/* Sets app's entry unless it holds a higher sequence (or the same one)
 * already; 1 when the index changed, 0 when not. */
int package_index_set(struct package_index *x, const char *app, const char *id,
		      uint64_t sequence);
/* The JSON document (what the signature covers). */
void package_index_json(const struct package_index *x, struct buf *out);
/* Parses and verifies an index as stored; 0 signed, 1 unsigned and
 * allowed, -errno as signed_get() (-EINVAL for a bad document). */
int package_index_parse(const struct sign_trust *t, const char *text, size_t len,
			struct package_index *ret, struct err *e);
/* Reads apps/_index with a conditional GET (etag as storage_get_if()):
 * 0 and the index (ret_etag its ETag), STORAGE_NOT_MODIFIED, -ENOENT when
 * there is none, -errno. */
int package_index_read(struct storage *s, const struct sign_trust *t, const char *etag,
		       struct buf *ret_etag, struct package_index *ret, struct err *e);

/* The lock of the index's writers: lock(data, true) before the index is
 * read, lock(data, false) after it is written. NULL or no function: no lock
 * (a single writer). */
struct package_index_lock {
	int (*lock)(void *data, bool acquire, struct err *e);
	void *data;
};
/*
 * Puts cur into the index under lock: reads it (one that is missing, or
 * cannot be verified against t, is started again with a warning), sets
 * the app's entry, writes it signed by k (unsigned when NULL).
 */
int package_index_update(struct storage *s, const struct sign_key *k, const struct sign_trust *t,
			 const struct package_current *cur, const struct package_index_lock *lock,
			 struct err *e);
/* Makes the index again from every apps/<app>/current (a listing, a read
 * each; one that cannot be verified is left out, with a warning), under
 * lock; ret (may be NULL) receives it. */
int package_index_rebuild(struct storage *s, const struct sign_key *k,
			  const struct sign_trust *t, const struct package_index_lock *lock,
			  struct package_index *ret, struct err *e);

/* ------------------------------------------------------------------ SBOM */

/*
 * The bill of materials of a root tree (package/sbom.c): every installed
 * Debian package of <root>/var/lib/dpkg/status with its version and
 * architecture, the npm packages of the package-lock.json files found in the
 * tree (lockfileVersion 1, 2 and 3; node_modules/.package-lock.json, and no
 * walk below node_modules), and the Python packages of the *.dist-info/
 * METADATA directories found (Name, Version). The walk follows no symlink,
 * stays on the root's file system, skips proc, sys and dev at the top, and is
 * bounded (depth, entries, file sizes); a tree past the bounds gives a
 * truncated bill (truncated, with a warning).
 */
enum sbom_kind { SBOM_DEB, SBOM_NPM, SBOM_PYPI };
struct sbom_item {
	enum sbom_kind kind;
	char *name;
	char *version;
	char *arch;                 /* deb: the Architecture field; else NULL */
};
struct sbom {
	struct sbom_item *v;        /* sorted by kind, name, version; unique */
	size_t n, cap;
	char *distro;               /* os-release ID ("debian"), or NULL */
	char *distro_version;       /* os-release VERSION_ID ("12"), or NULL */
	bool truncated;
};
/* What the bill is of, for the standard formats. */
struct sbom_subject {
	const char *name;           /* the app */
	const char *version;        /* the package id */
	const char *created;        /* ISO 8601 UTC; NULL: now */
	const char *tool_version;   /* upaas's version */
};
int sbom_scan(struct sbom *ret, const char *root, struct err *e);
void sbom_free(struct sbom *s);
/* "deb", "npm", "pypi": the purl types. */
const char *sbom_kind_name(enum sbom_kind k);
/* The parsers of sbom_scan(), for tests: each adds what text lists. */
int sbom_parse_dpkg_status(struct sbom *s, const char *text, size_t len);
int sbom_parse_npm_lock(struct sbom *s, const char *text);
int sbom_parse_python_metadata(struct sbom *s, const char *text, size_t len);
/* The package URL of an item: pkg:deb/debian/python3-flask@2.2.2-3?arch=all&distro=debian-12. */
void sbom_purl(const struct sbom *s, const struct sbom_item *it, struct buf *out);
/* upaas's own JSON, stored with a package: { "format": 1, "distro",
 * "distro_version", "complete", "components": [ { "type", "name",
 * "version", "arch" } ] }; and its strict reader. */
void sbom_json(const struct sbom *s, struct buf *out);
int sbom_parse(struct sbom *ret, const char *text, struct err *e);
/* SPDX 2.3 JSON and CycloneDX 1.5 JSON of s. */
void sbom_spdx(const struct sbom *s, const struct sbom_subject *subj, struct buf *out);
void sbom_cyclonedx(const struct sbom *s, const struct sbom_subject *subj, struct buf *out);

/* ============================================================== layers */

/*
 * The layers of stored packages (package/layers.c, upaas-package(5)).
 * Every layer is checked against the size and sha256 its manifest gives
 * before anything uses it; a message names the layer ("layer 3f9a2c1b5d7e
 * (2 of 3) of package app/id ('layers/<sha256>.tar.zst'): missing from
 * storage"). -ENOENT for a missing layer, -EBADMSG for a corrupt one.
 */

/*
 * An fd (at offset 0) on the verified bytes of layer i of p: with a handler
 * that has STORAGE_CAP_FD (local storage) the object itself, read in place
 * and hashed first; else a private temporary file in tmpdir that the
 * download streams into, hashed on the way and stopped past the size the
 * manifest gives. The caller closes it.
 */
int layer_open(struct storage *s, const struct package_info *p, size_t i, const char *tmpdir,
	       struct err *e);
/*
 * layer_open() for a deploy host that keeps the layers of its revisions:
 * kept (an existing directory) holds verified copies, <sha256>.tar.zst. A
 * layer there is read from it, hashed first (a copy that fails is removed
 * and the layer fetched again); one fetched from storage without
 * STORAGE_CAP_FD streams into a private file in kept and is linked there
 * under its name once verified (a crash leaves no half copy under a name).
 * Local storage is read in place as by layer_open(), nothing is kept.
 * ret_fetched: true when the bytes came from storage.
 */
int layer_open_kept(struct storage *s, const struct package_info *p, size_t i, const char *kept,
		    bool *ret_fetched, struct err *e);
/* Verifies layer i and unpacks it into dest in mode (archive.h), checking
 * its sha256 again while it is read. */
int layer_unpack(struct storage *s, const struct package_info *p, size_t i, const char *dest,
		 enum unpack_mode mode, const char *tmpdir, struct progress *progress,
		 struct err *e);
/* The whole tree of p into dest (missing or empty): the bottom layer, then
 * each delta applied onto it (UNPACK_APPLY). The caller removes dest on
 * failure. */
int package_unpack(struct storage *s, const struct package_info *p, const char *dest,
		   const char *tmpdir, struct progress *progress, struct err *e);
/* Downloads every layer and checks its size and sha256 (nothing is kept). */
int package_verify_layers(struct storage *s, const struct package_info *p, struct err *e);
/*
 * path NULL: package_verify_layers(). Else one flat tarball of the whole root is
 * written to path (atomically, never left there when a check fails): the
 * verified layer itself when p has one, else the layers applied in order
 * into a temporary tree next to path, packed again (mtimes kept).
 */
int package_fetch(struct storage *s, const struct package_info *p, const char *path,
		  struct err *e);
/* Checks that every layer of p is in storage with its size (a stat each):
 * what a build does right before it writes a manifest. */
int package_layers_check(struct storage *s, const struct package_info *p, struct err *e);

/*
 * Packs a layer and stores it under its content address
 * (layers/<sha256>.tar.zst; an upload never leaves a half object under a
 * final key): root is a tree (a full layer, pack_tree) or, with upper, an
 * overlay upper dir over lower (a delta, pack_layer). With a handler that
 * has STORAGE_CAP_COMMIT_AS the pack streams into storage and is named at
 * the end; else it goes to a private file in tmpdir first, and is not
 * uploaded again when the object is there already and younger than half of
 * grace (so that layers_gc() cannot take it before the manifest lists it).
 * ret (may be NULL) gets the layer (its key and kind owned by the caller),
 * ret_pack (may be NULL) what packing found. Returns 0, or 1 when
 * skip_empty is set and the layer has no entry (nothing is stored, ret is
 * left alone).
 */
struct layer_store_opts {
	const char *root;
	const char *lower;         /* upper only; NULL: nothing below */
	bool upper;
	struct pack_opts pack;
	const char *tmpdir;
	int64_t grace;             /* apps.layer_grace */
	bool skip_empty;           /* a layer of no entry is not stored: 1 */
};
int layer_store(struct storage *s, const struct layer_store_opts *o, struct package_layer *ret,
		struct pack_result *ret_pack, struct err *e);

/*
 * Everything the accounting and the collection of layers need, read once:
 * every object under packages/, layers/ and logs/ (key, size, mtime) and
 * every manifest, of every app (ids sort by time, so each app's packages
 * are oldest first).
 */
struct stored_object {
	char *key;
	struct storage_stat st;
};
struct indexed_package {
	char *app, *id;
	struct strv keys;          /* what it lists as layers (package_manifest_keys) */
	bool ok;                   /* info was read (the strict reader took it) */
	bool gone;                 /* removed while the index was read */
	char *error;               /* not even keys could be read: why */
	struct package_info info;
};
struct package_catalog {
	struct indexed_package *v;     /* sorted by app, then id */
	size_t n;
	struct stored_object *objects; /* sorted by key */
	size_t n_objects;
};
int package_catalog_load(struct storage *s, struct package_catalog *ret, struct err *e);
void package_catalog_free(struct package_catalog *x);
const struct stored_object *package_catalog_object(const struct package_catalog *x,
						 const char *key);
/* The bytes of the layers ip is the first (oldest) package of its app to
 * list: what it added to its app's storage. */
uint64_t package_own_size(const struct package_catalog *x, const struct indexed_package *ip);

/* What an app costs in storage, each layer counted once. */
struct app_usage {
	size_t packages;           /* manifests */
	size_t unreadable;         /* manifests that cannot be read */
	size_t layers;             /* distinct layers listed */
	size_t missing;            /* listed but not in storage */
	uint64_t stored;           /* bytes of those layers */
	uint64_t shared;           /* of stored: layers other apps list too */
	uint64_t listed;           /* the sum of each package's total: the cost
				    * if every package were a full copy */
	uint64_t other;            /* manifests, signatures, logs */
};
int package_usage(const struct package_catalog *x, const char *app, struct app_usage *ret);

/*
 * Removes the layers no package lists any more: every object under layers/
 * and every first-edition blob without a manifest that no manifest (of any
 * app) lists and whose storage mtime is older than grace seconds (a build
 * may have stored it and not have written its manifest yet; a build checks
 * its layers again right before it does). When a manifest cannot be read,
 * (not even as JSON), what it lists is unknown: nothing is removed
 * (-EBADMSG). A manifest the strict reader refuses for another reason
 * still keeps what it lists.
 */
struct gc_result {
	struct strv removed;       /* keys */
	uint64_t bytes;
};
int layers_gc(struct storage *s, int64_t grace, struct gc_result *ret, struct err *e);

#endif
