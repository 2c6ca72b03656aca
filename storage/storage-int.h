/*
 * storage/storage-int.h - the handler vtable; only the files of storage/
 * include this.
 *
 * The contract between the generic layer (storage.c) and a handler:
 *  - the generic layer allocates s->priv (priv_size) and u->priv
 *    (upload_size) zeroed, and frees them and s->where; handlers do not;
 *  - a failed open() is not followed by close();
 *  - a failed upload_commit() has cleaned up after itself (temp file removed,
 *    multipart upload aborted) and is not followed by upload_abort();
 *  - keys are validated by the generic layer before any slot is called.
 */
#ifndef UPAAS_STORAGE_INT_H
#define UPAAS_STORAGE_INT_H

#ifndef UPAAS_STORAGE_INTERNAL
#error "storage-int.h is private to storage/"
#endif

#include "storage/storage.h"

/*
 * One handler, in curl's vtls style. priv_size bytes of private state are
 * allocated (zeroed) for each opened storage, and upload_size for each upload.
 * Optional slots may be NULL; the caller then fails with -EOPNOTSUPP (or
 * -EROFS for writes).
 */
struct storage_ops {
	const char *name;
	unsigned caps;                    /* STORAGE_CAP_* */
	size_t priv_size;
	size_t upload_size;
	int (*open)(struct storage *s, const struct cfg_storage *cfg, const char *state_dir,
		    struct err *e);
	void (*close)(struct storage *s);
	int (*upload_begin)(struct storage *s, struct storage_upload *u, const char *key,
			    uint64_t size_hint, struct err *e);
	int (*upload_write)(struct storage_upload *u, const void *p, size_t n, struct err *e);
	int (*upload_commit)(struct storage_upload *u, struct err *e);
	void (*upload_abort)(struct storage_upload *u);
	/* optional (STORAGE_CAP_COMMIT_AS): commit under another, valid key */
	int (*upload_commit_as)(struct storage_upload *u, const char *key, struct err *e);
	int (*get)(struct storage *s, const char *key, sink_fn sink, void *data,
		   struct err *e);
	/* Optional: a conditional GET (storage_get_if); etag is never NULL
	 * here but may be "". Returns 0 with the object streamed and its
	 * ETag in ret_etag (empty when there is none), or STORAGE_NOT_MODIFIED.
	 * Without it the generic layer calls get(). */
	int (*get_if)(struct storage *s, const char *key, const char *etag, struct buf *ret_etag,
		      sink_fn sink, void *data, struct err *e);
	int (*stat)(struct storage *s, const char *key, struct storage_stat *ret, struct err *e);
	/* optional (STORAGE_CAP_FD): the object itself, open for reading */
	int (*open_fd)(struct storage *s, const char *key, struct err *e);
	int (*list)(struct storage *s, const char *prefix, storage_list_fn cb, void *data,
		    struct err *e);
	int (*del)(struct storage *s, const char *key, struct err *e);
	int (*presign)(struct storage *s, const char *key, unsigned expires, struct buf *url,
		       struct err *e);
	/* storage_sweep_uploads(); NULL: the handler leaves none behind */
	int (*sweep)(struct storage *s, int64_t grace, storage_stale_fn cb, void *data,
		     struct err *e);
};

struct storage {
	const struct storage_ops *ops;
	char *where;                      /* set by open */
	struct progress progress;
	const char *progress_label;
	struct storage_counters counters;   /* kept by the generic layer */
	void *priv;
};

struct storage_upload {
	struct storage *s;
	char *key;
	uint64_t written;
	void *priv;
};

extern const struct storage_ops storage_local_ops;
extern const struct storage_ops storage_s3_ops;
extern const struct storage_ops storage_http_ops;

#endif
