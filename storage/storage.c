/*
 * storage/storage.c - the generic storage layer: picks a handler by name,
 * checks keys, wraps transfers with progress, and builds the convenience
 * calls (put_buf/put_fd/put_file, get_buf/get_file, list_keys) on top of
 * the handler vtable of storage-int.h.
 *
 * Contract with the handlers (storage-int.h):
 *  - open() fills s->where (malloc'd) and s->priv; s->where and the priv
 *    block itself belong to this layer, which frees them (handlers never
 *    free them); on failure open() frees what it allocated inside priv
 *    (close() is not called after a failed open);
 *  - keys reaching a handler already passed storage_key_ok();
 *  - upload_commit() makes the object visible or, on failure, removes
 *    every trace of the upload itself (upload_abort() is not called after
 *    it); the generic layer frees the upload either way;
 *  - a missing write slot (upload_begin, del) means read-only: -EROFS;
 *    a missing list/presign slot means -EOPNOTSUPP.
 */
#define UPAAS_STORAGE_INTERNAL 1

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <poll.h>
#include <stddef.h>
#include <string.h>
#include <sys/stat.h>

#include "storage/storage-int.h"

/*
 * storage_s3_ops is a strong reference (storage-int.h): a weak one would
 * not pull s3.o out of libupaas.a. To build without S3, declare it
 * __attribute__((weak)) here and drop s3.c; the table then reports
 * "storage handler 's3' is not built in".
 */
/* The handlers, by name; NULL-terminated. ops is NULL when a handler is
 * known but not built into this binary. */
static const struct {
	const char *name;
	const struct storage_ops *ops;
} handlers[] = {
	{ "local", &storage_local_ops },
	{ "s3", &storage_s3_ops },
	{ "http", &storage_http_ops },
	{ NULL, NULL },
};

/* S3's limit; also keeps error messages and paths bounded. */
#define STORAGE_KEY_MAX 1024
/* Convenience transfers move data in blocks of this size. */
#define STORAGE_BLOCK ((size_t)128 * 1024)

bool storage_key_ok(const char *key)
{
	if (!key || !*key || *key == '/')
		return false;
	size_t len = strlen(key);
	if (len > STORAGE_KEY_MAX)
		return false;
	for (const char *p = key; *p; p++) {
		unsigned char ch = (unsigned char)*p;
		/* control characters would end up in logs and terminals */
		if (ch < 0x20 || ch == 0x7f)
			return false;
	}
	/* "." and ".." components: empty components ("a//b") are allowed
	 * here because S3 keeps them; handlers on a filesystem refuse them */
	const char *c = key;
	for (;;) {
		const char *end = strchr(c, '/');
		size_t n = end ? (size_t)(end - c) : strlen(c);
		if ((n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
			return false;
		if (!end)
			break;
		c = end + 1;
	}
	return true;
}

/* A listing prefix: "" or NULL (everything), else like a key but it may
 * end in '/'. */
static bool prefix_ok(const char *prefix)
{
	if (!prefix || !*prefix)
		return true;
	size_t n = strlen(prefix);
	if (prefix[n - 1] != '/')
		return storage_key_ok(prefix);
	_cleanup_free_ char *trimmed = xstrndup(prefix, n - 1);
	return n > 1 && storage_key_ok(trimmed);
}

static void xfer_end(struct storage *s);

static int key_check(const char *key, struct err *e)
{
	if (storage_key_ok(key))
		return 0;
	return err_set(e, -EINVAL, "invalid storage key '%s'", key ? key : "");
}

int storage_open(struct storage **ret, const struct cfg_storage *cfg, const char *state_dir,
		 struct err *e)
{
	const char *name = cfg && cfg->handler && *cfg->handler ? cfg->handler : "local";
	const struct storage_ops *ops = NULL;
	bool known = false;

	for (size_t i = 0; handlers[i].name; i++) {
		if (strcmp(handlers[i].name, name))
			continue;
		known = true;
		ops = handlers[i].ops;
		break;
	}
	if (!known)
		return err_set(e, -EINVAL, "unknown storage handler '%s' (known: local, s3, http)",
			       name);
	if (!ops)
		return err_set(e, -EOPNOTSUPP, "storage handler '%s' is not built in", name);

	struct storage *s = xcalloc(1, sizeof(*s));
	s->ops = ops;
	if (ops->priv_size)
		s->priv = xcalloc(1, ops->priv_size);
	struct cfg_storage empty = { 0 };
	int r = ops->open(s, cfg ? cfg : &empty, state_dir, e);
	if (r < 0) {
		free(s->priv);
		free(s->where);
		free(s);
		return r;
	}
	if (!s->where)
		s->where = xstrdup(ops->name);
	*ret = s;
	return 0;
}

void storage_close(struct storage *s)
{
	if (!s)
		return;
	if (s->ops->close)
		s->ops->close(s);
	xfer_end(s);
	free(s->priv);
	free(s->where);
	free(s);
}

const char *storage_name(const struct storage *s)
{
	return s->ops->name;
}

void storage_handler_names(struct strv *ret)
{
	for (size_t i = 0; handlers[i].name; i++)
		if (handlers[i].ops)
			strv_push(ret, handlers[i].name);
}

unsigned storage_caps(const struct storage *s)
{
	return s->ops->caps;
}

const char *storage_where(const struct storage *s)
{
	return s->where;
}

void storage_set_progress(struct storage *s, const char *label)
{
	s->progress_label = label;
}

/* Starts the progress line of one transfer when a label is set. */
static void xfer_begin(struct storage *s, uint64_t total)
{
	if (!s->progress_label || !progress_enabled)
		return;
	if (s->progress.active)
		progress_end(&s->progress);
	progress_begin(&s->progress, s->progress_label, total);
}

static void xfer_add(struct storage *s, uint64_t n)
{
	if (s->progress.active)
		progress_add(&s->progress, n);
}

static void xfer_end(struct storage *s)
{
	if (s->progress.active)
		progress_end(&s->progress);
}

static int read_only(struct storage *s, struct err *e)
{
	return err_set(e, -EROFS, "storage handler '%s' is read-only", s->ops->name);
}

/* ------------------------------------------------------------ uploads */

static void upload_free(struct storage_upload *u)
{
	free(u->priv);
	free(u->key);
	free(u);
}

int storage_upload_begin(struct storage *s, const char *key, uint64_t size_hint,
			 struct storage_upload **ret, struct err *e)
{
	int r = key_check(key, e);
	if (r < 0)
		return r;
	if (!s->ops->upload_begin || !(s->ops->caps & STORAGE_CAP_WRITE))
		return read_only(s, e);

	struct storage_upload *u = xcalloc(1, sizeof(*u));
	u->s = s;
	u->key = xstrdup(key);
	if (s->ops->upload_size)
		u->priv = xcalloc(1, s->ops->upload_size);
	r = s->ops->upload_begin(s, u, key, size_hint, e);
	if (r < 0) {
		upload_free(u);
		return r;
	}
	xfer_begin(s, size_hint);
	*ret = u;
	return 0;
}

int storage_upload_write(struct storage_upload *u, const void *p, size_t n, struct err *e)
{
	if (n == 0)
		return 0;
	/* SIGTERM/SIGINT (proc_cancel_on_signals): the caller aborts */
	if (proc_cancelled)
		return proc_check_cancel(e);
	int r = u->s->ops->upload_write(u, p, n, e);
	if (r < 0)
		return r;
	u->written += n;
	xfer_add(u->s, n);
	return 0;
}

int storage_upload_commit(struct storage_upload *u, struct err *e)
{
	struct storage *s = u->s;
	int r;

	/* cancelled before the object is visible: undo, not finish */
	if (proc_cancelled) {
		r = proc_check_cancel(e);
		storage_upload_abort(u);
		return r;
	}
	r = s->ops->upload_commit(u, e);
	s->counters.requests++;
	s->counters.puts++;
	if (r >= 0)
		s->counters.bytes_out += u->written;
	xfer_end(s);
	upload_free(u);
	return r < 0 ? r : 0;
}

int storage_upload_commit_as(struct storage_upload *u, const char *key, struct err *e)
{
	struct storage *s = u->s;
	int r = key_check(key, e);

	if (r >= 0 && (!s->ops->upload_commit_as || !(s->ops->caps & STORAGE_CAP_COMMIT_AS)))
		r = err_set(e, -EOPNOTSUPP, "storage handler '%s' cannot choose a key at commit",
			    s->ops->name);
	if (r < 0) {
		storage_upload_abort(u);
		return r;
	}
	r = s->ops->upload_commit_as(u, key, e);
	xfer_end(s);
	upload_free(u);
	return r < 0 ? r : 0;
}

void storage_upload_abort(struct storage_upload *u)
{
	if (!u)
		return;
	struct storage *s = u->s;
	if (s->ops->upload_abort)
		s->ops->upload_abort(u);
	xfer_end(s);
	upload_free(u);
}

static int sink_write(void *data, const void *p, size_t n, struct err *e)
{
	return storage_upload_write(data, p, n, e);
}

static int sink_commit(void *data, struct err *e)
{
	return storage_upload_commit(data, e);
}

static void sink_abort(void *data)
{
	storage_upload_abort(data);
}

int storage_upload_sink(struct storage *s, const char *key, uint64_t size_hint,
			struct sink *ret, struct err *e)
{
	struct storage_upload *u;
	int r = storage_upload_begin(s, key, size_hint, &u, e);

	if (r < 0)
		return r;
	*ret = (struct sink){ sink_write, sink_commit, sink_abort, u };
	return 0;
}

int storage_put_buf(struct storage *s, const char *key, const void *p, size_t n, struct err *e)
{
	struct storage_upload *u = NULL;
	int r = storage_upload_begin(s, key, n, &u, e);
	if (r < 0)
		return r;
	/* in blocks, so that the progress line moves */
	for (size_t off = 0; off < n; off += STORAGE_BLOCK) {
		size_t len = n - off < STORAGE_BLOCK ? n - off : STORAGE_BLOCK;
		r = storage_upload_write(u, (const char *)p + off, len, e);
		if (r < 0) {
			storage_upload_abort(u);
			return r;
		}
	}
	return storage_upload_commit(u, e);
}

/* Waits until fd (a pipe, a terminal) has data or EOF, or a SIGTERM/SIGINT
 * cancels (the handler restarts a blocked read, so it is never blocked in
 * one for long): 0, or -ECANCELED. */
static int wait_readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	for (;;) {
		if (proc_cancelled)
			return -ECANCELED;
		int n = poll(&p, 1, 200);
		if (n > 0 || (n < 0 && errno != EINTR))
			return 0;   /* ready, or let read() say what is wrong */
	}
}

/* Uploads fd to EOF; name is used in messages. */
static int put_fd_named(struct storage *s, const char *key, int fd, const char *name,
			struct err *e)
{
	struct stat st;
	uint64_t hint = 0;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
		hint = (uint64_t)st.st_size;

	struct storage_upload *u = NULL;
	int r = storage_upload_begin(s, key, hint, &u, e);
	if (r < 0)
		return r;
	_cleanup_free_ char *block = xmalloc(STORAGE_BLOCK);
	bool stream = fstat(fd, &st) == 0 && !S_ISREG(st.st_mode);
	for (;;) {
		if (stream && wait_readable(fd) < 0) {
			r = proc_check_cancel(e);
			storage_upload_abort(u);
			return r;
		}
		ssize_t n = read(fd, block, STORAGE_BLOCK);
		if (n < 0 && errno == EINTR && !proc_cancelled)
			continue;
		if (proc_cancelled) {
			r = proc_check_cancel(e);
			storage_upload_abort(u);
			return r;
		}
		if (n < 0) {
			r = err_set_errno(e, -errno, "cannot read '%s'", name);
			storage_upload_abort(u);
			return r;
		}
		if (n == 0)
			break;
		r = storage_upload_write(u, block, (size_t)n, e);
		if (r < 0) {
			storage_upload_abort(u);
			return r;
		}
	}
	return storage_upload_commit(u, e);
}

int storage_put_fd(struct storage *s, const char *key, int fd, struct err *e)
{
	return put_fd_named(s, key, fd, "input", e);
}

int storage_put_file(struct storage *s, const char *key, const char *path, struct err *e)
{
	int r = key_check(key, e);
	if (r < 0)
		return r;
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return err_set_errno(e, -errno, "cannot open '%s'", path);
	return put_fd_named(s, key, fd, path, e);
}

/* ------------------------------------------------------------ downloads */

/* Wraps the caller's sink to count bytes and move the progress line. */
struct get_ctx {
	struct storage *s;
	sink_fn sink;
	void *data;
	uint64_t n;
};

static int get_sink(void *data, const void *p, size_t n)
{
	struct get_ctx *g = data;
	if (proc_cancelled)
		return -ECANCELED;
	int r = g->sink(g->data, p, n);
	if (r < 0)
		return r;
	g->n += n;
	g->s->counters.bytes_in += n;
	xfer_add(g->s, n);
	return 0;
}

int storage_get(struct storage *s, const char *key, sink_fn sink, void *data,
		struct err *e)
{
	return storage_get_if(s, key, NULL, NULL, sink, data, e);
}

/* An ETag that may go into a request header: printable, bounded. */
static bool etag_ok(const char *t)
{
	if (!t || !*t || strlen(t) > 512)
		return false;
	for (const unsigned char *p = (const unsigned char *)t; *p; p++)
		if (*p < 0x20 || *p >= 0x7f)
			return false;
	return true;
}

int storage_get_if(struct storage *s, const char *key, const char *etag, struct buf *ret_etag,
		   sink_fn sink, void *data, struct err *e)
{
	int r = key_check(key, e);
	if (r < 0)
		return r;
	if (!s->ops->get)
		return err_set(e, -EOPNOTSUPP, "storage handler '%s' cannot read objects",
			       s->ops->name);
	struct get_ctx g = { .s = s, .sink = sink, .data = data };
	_cleanup_buf_ struct buf tag = BUF_INIT;
	buf_init(&tag, 1024);
	s->counters.requests++;
	s->counters.gets++;
	xfer_begin(s, 0);
	if (s->ops->get_if)
		r = s->ops->get_if(s, key, etag_ok(etag) ? etag : "", &tag, get_sink, &g, e);
	else
		r = s->ops->get(s, key, get_sink, &g, e);
	xfer_end(s);
	if (r == STORAGE_NOT_MODIFIED) {
		s->counters.not_modified++;
		return STORAGE_NOT_MODIFIED;
	}
	if (r < 0 && proc_cancelled && !e->code)
		proc_check_cancel(e);
	if (r < 0)
		return r;
	if (ret_etag) {
		buf_reset(ret_etag);
		if (etag_ok(tag.p))
			buf_add(ret_etag, tag.p, tag.len);
	}
	return 0;
}

int storage_open_fd(struct storage *s, const char *key, struct err *e)
{
	int r = key_check(key, e);
	if (r < 0)
		return r;
	if (!s->ops->open_fd || !(s->ops->caps & STORAGE_CAP_FD))
		return err_set(e, -EOPNOTSUPP, "storage handler '%s' cannot read objects in place",
			       s->ops->name);
	return s->ops->open_fd(s, key, e);
}

struct buf_ctx {
	struct buf *b;
	size_t max;
};

static int buf_sink(void *data, const void *p, size_t n)
{
	struct buf_ctx *c = data;
	if (n > c->max - c->b->len)
		return -E2BIG;
	return buf_add(c->b, p, n) < 0 ? -E2BIG : 0;
}

int storage_get_buf(struct storage *s, const char *key, struct buf *out, size_t max,
		    struct err *e)
{
	return storage_get_buf_if(s, key, NULL, NULL, out, max, e);
}

int storage_get_buf_if(struct storage *s, const char *key, const char *etag,
		       struct buf *ret_etag, struct buf *out, size_t max, struct err *e)
{
	_cleanup_buf_ struct buf tmp = BUF_INIT;
	if (max == 0)
		max = BUF_DEFAULT_MAX;
	buf_init(&tmp, max);
	struct buf_ctx c = { .b = &tmp, .max = max };
	int r = storage_get_if(s, key, etag, ret_etag, buf_sink, &c, e);
	if (r == -E2BIG)
		return err_set(e, r, "object '%s' is larger than %zu bytes", key, max);
	if (r != 0)
		return r;
	/* out changes only on success */
	buf_reset(out);
	r = buf_add(out, tmp.p, tmp.len);
	if (r < 0)
		return err_set(e, r, "object '%s' does not fit in the buffer", key);
	return 0;
}

struct file_ctx {
	int fd;
	struct sha256 h;
	uint64_t size;
	uint64_t max;       /* 0: none */
	int err;
};

static int file_sink(void *data, const void *p, size_t n)
{
	struct file_ctx *f = data;
	/* a bounded download stops at its bound, not after it */
	if (f->max && f->size + n > f->max) {
		f->size += n;
		return -EFBIG;
	}
	int r = fs_write_all(f->fd, p, n);
	if (r < 0) {
		f->err = r;
		return r;
	}
	sha256_update(&f->h, p, n);
	f->size += n;
	return 0;
}

/*
 * storage_get_file(), and with want_sha a verified one: the transfer stops
 * past want_size bytes (-EFBIG) and the file is renamed into place only
 * when its size and sha256 are the wanted ones (-EBADMSG otherwise; no
 * message for either, the caller says what they mean). ret_hex and
 * ret_size get what was fetched.
 */
static int get_file(struct storage *s, const char *key, const char *path, const char *want_sha,
		    uint64_t want_size, char ret_hex[65], uint64_t *ret_size, struct err *e)
{
	int r = key_check(key, e);
	if (r < 0)
		return r;

	/* the temp file lives next to path, so that rename() is atomic */
	_cleanup_free_ char *dircopy = xstrdup(path);
	_cleanup_free_ char *basecopy = xstrdup(path);
	const char *dir = dirname(dircopy);
	const char *base = basename(basecopy);
	_cleanup_free_ char *tmp = xasprintf("%s/.%s.tmp-XXXXXX", dir, base);

	/* one byte more than promised is enough to know it is not the object */
	struct file_ctx f = { .fd = mkostemp(tmp, O_CLOEXEC), .max = want_sha ? want_size + 1 : 0 };
	if (f.fd < 0)
		return err_set_errno(e, -errno, "cannot create a temporary file next to '%s'", path);
	r = sha256_init(&f.h);
	if (r < 0) {
		close(f.fd);
		unlink(tmp);
		return err_set(e, r, "cannot start sha256");
	}

	char hex[65] = "";
	r = storage_get(s, key, file_sink, &f, e);
	if (r == -EFBIG && !f.err)
		err_clear(e);   /* past the bound: the caller says what that means */
	else if (r < 0 && f.err < 0)
		err_set(e, r, "cannot write '%s': %s", tmp, strerror(-f.err));
	if (r >= 0) {
		sha256_final(&f.h, hex);
		if (want_sha && (f.size != want_size || strcmp(hex, want_sha)))
			r = -EBADMSG;
	}
	if (r >= 0 && fchmod(f.fd, 0644) < 0)
		r = err_set_errno(e, -errno, "cannot chmod '%s'", tmp);
	if (r >= 0 && fsync(f.fd) < 0)
		r = err_set_errno(e, -errno, "cannot fsync '%s'", tmp);
	if (close(f.fd) < 0 && r >= 0)
		r = err_set_errno(e, -errno, "cannot write '%s'", tmp);
	if (r >= 0 && rename(tmp, path) < 0)
		r = err_set_errno(e, -errno, "cannot rename '%s' to '%s'", tmp, path);
	sha256_free(&f.h);
	if (ret_hex)
		memcpy(ret_hex, hex, sizeof(hex));
	if (ret_size)
		*ret_size = f.size;
	if (r < 0) {
		unlink(tmp);
		return r;
	}
	r = fs_fsync_parent(path);
	if (r < 0)
		return err_set_errno(e, r, "cannot fsync the directory of '%s'", path);
	return 0;
}

int storage_get_file(struct storage *s, const char *key, const char *path, char ret_hex[65],
		     uint64_t *ret_size, struct err *e)
{
	return get_file(s, key, path, NULL, 0, ret_hex, ret_size, e);
}

int storage_get_verified(struct storage *s, const char *key, const char *path,
			 const char sha256[65], uint64_t size, const char *what, struct err *e)
{
	char hex[65];
	uint64_t got = 0;
	int r = get_file(s, key, path, sha256, size, hex, &got, e);

	if (r == -EFBIG)
		return err_set(e, -EBADMSG, "%s failed verification: '%s' is larger than the %llu "
			       "bytes the manifest says (the download stopped there)", what, key,
			       (unsigned long long)size);
	if (r == -EBADMSG && got != size)
		return err_set(e, -EBADMSG, "%s failed verification: %llu bytes fetched, the "
			       "manifest says %llu (truncated or tampered blob)", what,
			       (unsigned long long)got, (unsigned long long)size);
	if (r == -EBADMSG)
		return err_set(e, -EBADMSG, "%s failed verification: sha256 %s, the manifest says "
			       "%s", what, hex, sha256);
	return r;
}

/* -------------------------------------------------------- stat, list, delete */

int storage_stat(struct storage *s, const char *key, struct storage_stat *ret, struct err *e)
{
	int r = key_check(key, e);
	if (r < 0)
		return r;
	if (!s->ops->stat)
		return err_set(e, -EOPNOTSUPP, "storage handler '%s' cannot stat objects",
			       s->ops->name);
	struct storage_stat st = { 0 };
	s->counters.requests++;
	s->counters.stats++;
	r = s->ops->stat(s, key, &st, e);
	if (r < 0)
		return r;
	if (ret)
		*ret = st;
	return 0;
}

int storage_list(struct storage *s, const char *prefix, storage_list_fn cb, void *data,
		 struct err *e)
{
	if (!prefix_ok(prefix))
		return err_set(e, -EINVAL, "invalid storage prefix '%s'", prefix);
	if (!s->ops->list || !(s->ops->caps & STORAGE_CAP_LIST))
		return err_set(e, -EOPNOTSUPP, "storage handler '%s' cannot list objects",
			       s->ops->name);
	s->counters.requests++;
	s->counters.lists++;
	return s->ops->list(s, prefix ? prefix : "", cb, data, e);
}

static int keys_cb(void *data, const char *key, const struct storage_stat *st)
{
	strv_push(data, key);
	return 0;
}

int storage_list_keys(struct storage *s, const char *prefix, struct strv *names, struct err *e)
{
	_cleanup_strv_ struct strv got = STRV_INIT;
	int r = storage_list(s, prefix, keys_cb, &got, e);
	if (r < 0)
		return r;
	strv_sort(&got);
	for (size_t i = 0; i < got.n; i++)
		strv_push_take(names, TAKE_PTR(got.v[i]));
	return 0;
}

int storage_delete(struct storage *s, const char *key, struct err *e)
{
	int r = key_check(key, e);
	if (r < 0)
		return r;
	if (!s->ops->del || !(s->ops->caps & STORAGE_CAP_WRITE))
		return read_only(s, e);
	s->counters.requests++;
	s->counters.deletes++;
	return s->ops->del(s, key, e);
}

void storage_get_counters(const struct storage *s, struct storage_counters *ret)
{
	*ret = s->counters;
}

void storage_counters_format(const struct storage_counters *c, struct buf *out)
{
	static const struct {
		const char *name;
		size_t off;
	} kinds[] = {
		{ "GET", offsetof(struct storage_counters, gets) },
		{ "not modified", offsetof(struct storage_counters, not_modified) },
		{ "PUT", offsetof(struct storage_counters, puts) },
		{ "HEAD", offsetof(struct storage_counters, stats) },
		{ "LIST", offsetof(struct storage_counters, lists) },
		{ "DELETE", offsetof(struct storage_counters, deletes) },
	};
	bool first = true;

	buf_addf(out, "%llu request%s", (unsigned long long)c->requests,
		 c->requests == 1 ? "" : "s");
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		uint64_t n = *(const uint64_t *)((const char *)c + kinds[i].off);
		if (!n)
			continue;
		buf_addf(out, "%s%llu %s", first ? " (" : ", ", (unsigned long long)n,
			 kinds[i].name);
		first = false;
	}
	/* exact counts: scripts (the fleet bench) read them */
	buf_addf(out, "%s, %llu bytes in, %llu bytes out", first ? "" : ")",
		 (unsigned long long)c->bytes_in, (unsigned long long)c->bytes_out);
}

int storage_sweep_uploads(struct storage *s, int64_t grace, storage_stale_fn cb, void *data,
			  struct err *e)
{
	if (!s->ops->sweep)
		return 0;
	return s->ops->sweep(s, grace, cb, data, e);
}

int storage_presign(struct storage *s, const char *key, unsigned expires, struct buf *url,
		    struct err *e)
{
	int r = key_check(key, e);
	if (r < 0)
		return r;
	if (!s->ops->presign || !(s->ops->caps & STORAGE_CAP_PRESIGN))
		return err_set(e, -EOPNOTSUPP, "storage handler '%s' cannot presign URLs",
			       s->ops->name);
	return s->ops->presign(s, key, expires, url, e);
}

/* ------------------------------------------------------------- key layout */

char *storage_key_image(const char *name, const char *ext)
{
	return xasprintf("images/%s.%s", name, ext);
}

char *storage_key_package(const char *app, const char *id, const char *ext)
{
	return xasprintf("packages/%s/%s.%s", app, id, ext);
}

char *storage_key_current(const char *app)
{
	return xasprintf("apps/%s/current", app);
}

char *storage_key_log(const char *app, const char *id)
{
	return xasprintf("logs/%s/%s.log", app, id);
}

char *storage_key_layer(const char *sha256)
{
	return xasprintf("layers/%s.tar.zst", sha256);
}
