/*
 * storage/storage.h - pluggable object storage over the key layout of
 * DESIGN.md (images/, packages/, apps/, logs/).
 *
 * A handler is a `const struct storage_ops` (storage/storage-int.h), picked by
 * name: "local", "s3", "http". Keys are relative, '/'-separated, and never
 * contain "..", a leading '/', or NUL.
 *
 * Writes are uploads: storage_upload_begin() -> storage_upload_write()* ->
 * storage_upload_commit() or storage_upload_abort(). Nothing is visible under
 * the key before commit returns 0; an aborted or failed upload leaves nothing
 * behind (no temp file, no S3 multipart upload).
 *
 * Reads stream into a sink callback. Callers that trust the bytes verify the
 * sha256 from the manifest themselves.
 *
 * Errors are -errno: -ENOENT (missing key / 404), -EACCES (403, bad
 * credentials), -EROFS (read-only handler), -EIO (server/transport), with
 * the detail in struct err.
 */
#ifndef UPAAS_STORAGE_H
#define UPAAS_STORAGE_H

#include "common/common.h"
#include "config/config.h"

struct storage;
struct storage_upload;

struct storage_stat {
	uint64_t size;
	int64_t mtime;    /* unix seconds, 0 when unknown */
};

/* Capability bits of a handler. */
#define STORAGE_CAP_WRITE   (1u << 0)
#define STORAGE_CAP_LIST    (1u << 1)
#define STORAGE_CAP_PRESIGN (1u << 2)
/* storage_open_fd(): objects are files on this host, read in place */
#define STORAGE_CAP_FD      (1u << 3)
/* storage_upload_commit_as(): an upload's key may be chosen at commit */
#define STORAGE_CAP_COMMIT_AS (1u << 4)

/* Opens the handler named by cfg->handler. Secrets must be resolved already
 * (config_storage_secrets). */
int storage_open(struct storage **ret, const struct cfg_storage *cfg, const char *state_dir,
		 struct err *e);
void storage_close(struct storage *s);
const char *storage_name(const struct storage *s);
/* Pushes the names of the handlers built into this binary, in table order. */
void storage_handler_names(struct strv *ret);
unsigned storage_caps(const struct storage *s);
/* Describes where objects go, for messages: "/var/lib/upaas/storage",
 * "s3://bucket/prefix". */
const char *storage_where(const struct storage *s);

/* Shows transfer progress on a terminal while set (stage label). */
void storage_set_progress(struct storage *s, const char *label);

int storage_upload_begin(struct storage *s, const char *key, uint64_t size_hint,
			 struct storage_upload **ret, struct err *e);
int storage_upload_write(struct storage_upload *u, const void *p, size_t n, struct err *e);
/* Makes the object visible. Frees u whatever it returns. */
int storage_upload_commit(struct storage_upload *u, struct err *e);
/* Makes the object visible under key instead of the key it began with
 * (a content address known only once everything is written); an object
 * already there is replaced. Frees u whatever it returns. -EOPNOTSUPP
 * (after aborting u) without STORAGE_CAP_COMMIT_AS. */
int storage_upload_commit_as(struct storage_upload *u, const char *key, struct err *e);
/* Discards everything written. Frees u; accepts NULL. */
void storage_upload_abort(struct storage_upload *u);

/* Begins an upload of key and hands it out as a struct sink (common.h):
 * its write, commit and abort are the upload's. */
int storage_upload_sink(struct storage *s, const char *key, uint64_t size_hint,
			struct sink *ret, struct err *e);

/* Convenience: whole object from memory / from an fd (read to EOF). */
int storage_put_buf(struct storage *s, const char *key, const void *p, size_t n, struct err *e);
int storage_put_fd(struct storage *s, const char *key, int fd, struct err *e);
int storage_put_file(struct storage *s, const char *key, const char *path, struct err *e);

/* Streams an object to sink; a sink returning < 0 stops the transfer and
 * that value is returned. */
int storage_get(struct storage *s, const char *key, sink_fn sink, void *data,
		struct err *e);
/* An fd open for reading on the object itself, read in place (no copy),
 * for handlers with STORAGE_CAP_FD (-EOPNOTSUPP otherwise); -ENOENT when
 * it is missing. The caller verifies what it reads and closes the fd. */
int storage_open_fd(struct storage *s, const char *key, struct err *e);
/* Small objects (manifests, pointers) into a buffer, at most max bytes. */
int storage_get_buf(struct storage *s, const char *key, struct buf *out, size_t max,
		    struct err *e);

/*
 * Conditional reads, for pollers (upaas watch): etag is what an earlier
 * read of the same key returned in ret_etag (NULL or "": read whatever the
 * object is). Returns 0 when the object was streamed to sink (ret_etag, when
 * not NULL, then receives its new ETag, "" when the handler has none), or
 * STORAGE_NOT_MODIFIED when its ETag is still etag: nothing reached the sink
 * and ret_etag is unchanged. The ETag is opaque: the handler's own token
 * (local: device, inode, size and mtime of the file; s3: the server's ETag,
 * If-None-Match; http: the server's ETag, else its Last-Modified with
 * If-Modified-Since). A handler that cannot tell always reads the object.
 */
#define STORAGE_NOT_MODIFIED 1
int storage_get_if(struct storage *s, const char *key, const char *etag, struct buf *ret_etag,
		   sink_fn sink, void *data, struct err *e);
/* The same into a buffer, at most max bytes; out changes only when 0 is
 * returned. */
int storage_get_buf_if(struct storage *s, const char *key, const char *etag,
		       struct buf *ret_etag, struct buf *out, size_t max, struct err *e);
/* Downloads to path atomically (temp + rename); returns the sha256 and size
 * when ret_hex/ret_size are not NULL. */
int storage_get_file(struct storage *s, const char *key, const char *path, char ret_hex[65],
		     uint64_t *ret_size, struct err *e);

/* Downloads key to path (atomically, as storage_get_file) only when it is
 * exactly size bytes with this sha256: the transfer stops past size bytes,
 * and nothing is left at path on a mismatch (-EBADMSG, "<what> failed
 * verification: ...", what such as "package 'X'"). */
int storage_get_verified(struct storage *s, const char *key, const char *path,
			 const char sha256[65], uint64_t size, const char *what, struct err *e);

int storage_stat(struct storage *s, const char *key, struct storage_stat *ret, struct err *e);

/* Calls cb for each key under prefix, in lexical order. cb returning < 0
 * stops the listing and that value is returned. */
typedef int (*storage_list_fn)(void *data, const char *key, const struct storage_stat *st);
int storage_list(struct storage *s, const char *prefix, storage_list_fn cb, void *data,
		 struct err *e);
/* Convenience: every key under prefix into names (sorted). */
int storage_list_keys(struct storage *s, const char *prefix, struct strv *names, struct err *e);

/* Deleting a missing key is success. */
int storage_delete(struct storage *s, const char *key, struct err *e);

/*
 * An upload that never finished: an S3 multipart upload whose writer died
 * or could not abort it, a temp file of the local handler whose writer
 * died (the local handler knows: a live writer holds a lock on its temp).
 */
struct storage_stale {
	const char *key;        /* the key it was meant for (local: the temp's) */
	const char *id;         /* the S3 upload id; NULL for local temps */
	int64_t started;        /* unix seconds; 0 when unknown */
	int64_t idle;           /* seconds since its last write */
	uint64_t size;          /* bytes stored so far */
	bool removed;           /* aborted or removed by this sweep */
	const char *error;      /* why removing it failed; NULL */
};
typedef int (*storage_stale_fn)(void *data, const struct storage_stale *u);

/* Idle time after which storage_sweep_uploads() takes an S3 multipart
 * upload for dead: a live writer stores a part far more often. */
#define STORAGE_UPLOAD_GRACE (3600)

/*
 * Finds the unfinished uploads under the storage and removes the dead ones:
 * local temps whose writer is gone (always; live ones never), S3 multipart
 * uploads idle for at least grace seconds (grace 0: every one, also those
 * a live writer may still use; grace < 0: none, just list). cb, when not
 * NULL, sees each one found, removed or not; cb returning < 0 stops the
 * sweep with that value. Returns the number removed, or -errno (-EIO when
 * some abort failed; the others were still tried). Handlers that cannot
 * have any (http) return 0.
 */
int storage_sweep_uploads(struct storage *s, int64_t grace, storage_stale_fn cb, void *data,
			  struct err *e);

/* A URL anyone can GET for expires seconds (-EOPNOTSUPP if the handler can't). */
int storage_presign(struct storage *s, const char *key, unsigned expires, struct buf *url,
		    struct err *e);

/*
 * What one opened storage did so far: one count per operation (a GET, a
 * conditional GET answered "not modified", an upload, a HEAD, a listing, a
 * DELETE), each one request to a remote handler unless it was retried,
 * uploaded in parts or listed in pages. bytes_in counts what reached the
 * callers' sinks, bytes_out what uploads committed.
 */
struct storage_counters {
	uint64_t requests;         /* the sum of the operations below */
	uint64_t gets, not_modified, puts, stats, lists, deletes;
	uint64_t bytes_in, bytes_out;
};
void storage_get_counters(const struct storage *s, struct storage_counters *ret);
/* "12 requests (10 GET, 8 not modified, 2 PUT), 1234 bytes in, 300 bytes out" */
void storage_counters_format(const struct storage_counters *c, struct buf *out);

/* true when key is well-formed (see above). */
bool storage_key_ok(const char *key);

/* Key layout helpers (caller frees). */
char *storage_key_image(const char *name, const char *ext);        /* images/<name>.<ext> */
char *storage_key_package(const char *app, const char *id, const char *ext);
char *storage_key_current(const char *app);                        /* apps/<app>/current */
char *storage_key_log(const char *app, const char *id);            /* logs/<app>/<id>.log */
char *storage_key_layer(const char *sha256);                       /* layers/<sha256>.tar.zst */

#endif
