/*
 * serve/api.c - the JSON API under /api/v1: apps, builds (and their logs,
 * whole or followed live with Server-Sent Events), packages, deploy hosts.
 * Objects are those the CLI prints with --json (queue/json.c,
 * serve/json.c), sometimes with a few more fields.
 *
 * Auth: "Authorization: Bearer TOKEN"; each route names the scope it
 * needs (read < build < admin). No token: 401, unless the route only
 * reads and serve.anonymous_read is set. A token of a lower scope: 403.
 */
#define UPAAS_SERVE_INTERNAL 1
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/stat.h>

#include "serve/serve-int.h"

#define MAX_SEGS 8
#define LIST_LIMIT_DEFAULT 100
#define LIST_LIMIT_MAX 1000
#define APP_BUILDS 5
#define LOG_MAX ((size_t)64 << 20)
/* Live logs: how often the build's state is read, how long a stream
 * may stay silent before a keep-alive comment. */
#define SSE_STATE_MS 250
#define SSE_IDLE_MS 100
#define SSE_KEEPALIVE_MS 15000
#define SSE_CHUNK 16384

struct route_ctx {
	struct req *r;
	char *seg[MAX_SEGS];
	size_t n;
	struct queue *q;         /* borrowed from the pool */
	struct err e;
};

/* --------------------------------------------------------------- helpers */

static struct json_object *jstr(const char *s)
{
	return s ? json_object_new_string(s) : NULL;
}

/* Splits path ("/apps/x") into segments; false when it has too many or an
 * empty one in the middle. */
static bool split_path(const char *path, struct route_ctx *x)
{
	const char *p = path;
	while (*p == '/')
		p++;
	while (*p) {
		size_t n = strcspn(p, "/");
		if (x->n == MAX_SEGS || n == 0)
			return false;
		x->seg[x->n++] = xstrndup(p, n);
		p += n;
		if (*p == '/')
			p++;
	}
	return true;
}

static struct storage *open_storage(struct route_ctx *x)
{
	struct storage *s = NULL;
	const struct config *c = x->r->srv->c;
	if (storage_open(&s, &c->storage, c->paths.state, &x->e) < 0)
		return NULL;
	return s;
}

static void storage_closep(struct storage **s)
{
	storage_close(*s);
}
#define _cleanup_storage_ _cleanup_(storage_closep)

/* The request's body field as a string; NULL when missing or null;
 * *bad set when it is another type. */
static const char *body_str(struct json_object *o, const char *key, bool *bad)
{
	struct json_object *v = NULL;
	if (!json_object_object_get_ex(o, key, &v) || !v)
		return NULL;
	if (!json_object_is_type(v, json_type_string)) {
		*bad = true;
		return NULL;
	}
	return json_object_get_string(v);
}

static bool body_bool(struct json_object *o, const char *key, bool *bad)
{
	struct json_object *v = NULL;
	if (!json_object_object_get_ex(o, key, &v) || !v)
		return false;
	if (!json_object_is_type(v, json_type_boolean)) {
		*bad = true;
		return false;
	}
	return json_object_get_boolean(v);
}

/* ------------------------------------------------------------------- auth */

/* 0 when the request may go on with scope need; else a reply was sent
 * (401/403) and -EACCES is returned. */
static int require(struct route_ctx *x, enum token_scope need)
{
	struct req *r = x->r;
	const char *h = req_header(r, MHD_HTTP_HEADER_AUTHORIZATION);
	if (!h) {
		if (need == TOKEN_READ && r->srv->c->serve.anonymous_read) {
			r->authed = true;
			r->scope = TOKEN_READ;
			return 0;
		}
		reply_error(r, MHD_HTTP_UNAUTHORIZED, "a token is needed (Authorization: Bearer TOKEN)");
		return -EACCES;
	}
	if (strncasecmp(h, "Bearer ", 7) || !h[7]) {
		reply_error(r, MHD_HTTP_UNAUTHORIZED, "want Authorization: Bearer TOKEN");
		return -EACCES;
	}
	const char *tok = h + 7;
	while (*tok == ' ')
		tok++;
	struct queue_token t = { 0 };
	_cleanup_err_ struct err e = ERR_INIT;
	int rc = queue_token_verify(x->q, tok, &t, &e);
	if (rc == -EACCES) {
		reply_error(r, MHD_HTTP_UNAUTHORIZED, "unknown token");
		return -EACCES;
	}
	if (rc < 0) {
		reply_err(r, rc, &e);
		return -EACCES;
	}
	r->authed = true;
	r->scope = t.scope;
	r->token_name = TAKE_PTR(t.name);
	queue_token_clear(&t);
	if (r->scope < need) {
		reply_error(r, MHD_HTTP_FORBIDDEN, "token '%s' has scope %s; this needs %s",
			    r->token_name, token_scope_name(r->scope), token_scope_name(need));
		return -EACCES;
	}
	return 0;
}

/* ------------------------------------------------------------------- apps */

/* An app with its current package and its last build (or builds). */
static struct json_object *app_full(struct route_ctx *x, struct storage *s,
				    const struct queue_app *a, size_t n_builds, bool secret)
{
	struct json_object *o = queue_app_json(a, secret);
	_cleanup_buf_ struct buf cur = BUF_INIT;
	_cleanup_err_ struct err se = ERR_INIT;
	bool has_cur = s && package_current(s, &x->r->srv->trust, a->name, &cur, &se) >= 0;
	json_object_object_add(o, "current", has_cur ? jstr(cur.p) : NULL);
	struct queue_filter f = { .app = a->name, .state = -1, .limit = n_builds };
	struct queue_build *v = NULL;
	size_t n = 0;
	_cleanup_err_ struct err be = ERR_INIT;
	if (queue_list(x->q, &f, &v, &n, &be) < 0)
		n = 0;
	if (n_builds == 1) {
		json_object_object_add(o, "last_build", n ? queue_build_json(&v[0]) : NULL);
	} else {
		struct json_object *arr = json_object_new_array();
		for (size_t i = 0; i < n; i++)
			json_object_array_add(arr, queue_build_json(&v[i]));
		json_object_object_add(o, "builds", arr);
	}
	queue_builds_free(v, n);
	return o;
}

static enum MHD_Result apps_list(struct route_ctx *x)
{
	struct queue_app *v = NULL;
	size_t n = 0;
	int rc = queue_app_list(x->q, &v, &n, &x->e);
	if (rc < 0)
		return reply_err(x->r, rc, &x->e);
	_cleanup_storage_ struct storage *s = open_storage(x);
	err_clear(&x->e);
	struct json_object *arr = json_object_new_array();
	for (size_t i = 0; i < n; i++)
		json_object_array_add(arr, app_full(x, s, &v[i], 1, false));
	queue_apps_free(v, n);
	return reply_json(x->r, MHD_HTTP_OK, arr);
}

static enum MHD_Result app_show(struct route_ctx *x, const char *name)
{
	_cleanup_(queue_app_clear) struct queue_app a = { 0 };
	int rc = queue_app_get(x->q, name, &a, &x->e);
	if (rc < 0)
		return reply_err(x->r, rc, &x->e);
	_cleanup_storage_ struct storage *s = open_storage(x);
	err_clear(&x->e);
	return reply_json(x->r, MHD_HTTP_OK,
			  app_full(x, s, &a, APP_BUILDS, x->r->scope >= TOKEN_ADMIN));
}

static enum MHD_Result app_add(struct route_ctx *x)
{
	struct json_object *b = req_json_body(x->r);
	if (!b)
		return MHD_YES;
	bool bad = false;
	const char *name = body_str(b, "name", &bad);
	const char *repo = body_str(b, "repo", &bad);
	const char *branch = body_str(b, "branch", &bad);
	bool replace = body_bool(b, "replace", &bad);
	bool new_secret = body_bool(b, "new_secret", &bad);
	enum MHD_Result ret;
	if (bad || !name || !repo) {
		ret = reply_error(x->r, MHD_HTTP_BAD_REQUEST, "want {\"name\": \"...\", \"repo\": "
				  "\"...\", \"branch\": \"...\", \"replace\": false, "
				  "\"new_secret\": false}");
		json_object_put(b);
		return ret;
	}
	int rc = queue_app_add(x->q, name, repo, branch, replace, &x->e);
	if (rc >= 0 && new_secret)
		rc = queue_app_new_secret(x->q, name, &x->e);
	struct queue_app a = { 0 };
	if (rc >= 0)
		rc = queue_app_get(x->q, name, &a, &x->e);
	if (rc < 0)
		ret = reply_err(x->r, rc, &x->e);
	else
		ret = reply_json(x->r, MHD_HTTP_CREATED, queue_app_json(&a, true));
	queue_app_clear(&a);
	json_object_put(b);
	return ret;
}

static enum MHD_Result app_remove(struct route_ctx *x, const char *name)
{
	int rc = queue_app_remove(x->q, name, &x->e);
	if (rc < 0)
		return reply_err(x->r, rc, &x->e);
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "removed", json_object_new_string(name));
	return reply_json(x->r, MHD_HTTP_OK, o);
}

/* --------------------------------------------------------------- packages */

static enum MHD_Result packages_list_h(struct route_ctx *x, const char *app)
{
	_cleanup_(queue_app_clear) struct queue_app a = { 0 };
	int rc = queue_app_get(x->q, app, &a, &x->e);
	if (rc < 0)
		return reply_err(x->r, rc, &x->e);
	_cleanup_storage_ struct storage *s = open_storage(x);
	if (!s)
		return reply_err(x->r, -EIO, &x->e);
	_cleanup_strv_ struct strv ids = STRV_INIT;
	_cleanup_buf_ struct buf cur = BUF_INIT;
	rc = packages_list(s, app, &ids, &x->e);
	if (rc < 0)
		return reply_err(x->r, rc, &x->e);
	if (package_current(s, &x->r->srv->trust, app, &cur, &x->e) < 0)
		buf_reset(&cur);
	err_clear(&x->e);
	struct json_object *arr = json_object_new_array();
	for (size_t i = 0; i < ids.n; i++) {
		struct package_info p = { 0 };
		_cleanup_err_ struct err pe = ERR_INIT;
		bool is_cur = cur.len && !strcmp(cur.p, ids.v[i]);
		struct json_object *o = NULL;
		if (package_load(s, &x->r->srv->trust, app, ids.v[i], &p, &pe) >= 0)
			o = package_json(&p, is_cur);
		if (!o) {
			o = json_object_new_object();
			json_object_object_add(o, "id", json_object_new_string(ids.v[i]));
			json_object_object_add(o, "error", json_object_new_string(err_msg(&pe)));
			json_object_object_add(o, "current", json_object_new_boolean(is_cur));
		}
		json_object_array_add(arr, o);
		package_info_free(&p);
	}
	return reply_json(x->r, MHD_HTTP_OK, arr);
}

static enum MHD_Result package_show_h(struct route_ctx *x, const char *app, const char *id)
{
	if (!app_name_ok(app))
		return reply_error(x->r, MHD_HTTP_NOT_FOUND, "no app '%s'", app);
	_cleanup_storage_ struct storage *s = open_storage(x);
	if (!s)
		return reply_err(x->r, -EIO, &x->e);
	_cleanup_buf_ struct buf cur = BUF_INIT;
	bool has_cur = package_current(s, &x->r->srv->trust, app, &cur, &x->e) >= 0;
	err_clear(&x->e);
	if (!strcmp(id, "current")) {
		if (!has_cur)
			return reply_error(x->r, MHD_HTTP_NOT_FOUND, "app '%s' has no current package",
					   app);
		id = cur.p;
	}
	struct package_info p = { 0 };
	int rc = package_load(s, &x->r->srv->trust, app, id, &p, &x->e);
	if (rc == -EINVAL)
		rc = -ENOENT;   /* a malformed id names no package */
	if (rc < 0)
		return reply_err(x->r, rc, &x->e);
	struct json_object *o = package_json(&p, has_cur && !strcmp(cur.p, p.id));
	package_info_free(&p);
	if (!o)
		return reply_error(x->r, MHD_HTTP_INTERNAL_SERVER_ERROR, "unreadable manifest");
	return reply_json(x->r, MHD_HTTP_OK, o);
}

static enum MHD_Result current_h(struct route_ctx *x, const char *app)
{
	_cleanup_(queue_app_clear) struct queue_app a = { 0 };
	int rc = queue_app_get(x->q, app, &a, &x->e);
	if (rc < 0)
		return reply_err(x->r, rc, &x->e);
	_cleanup_storage_ struct storage *s = open_storage(x);
	_cleanup_buf_ struct buf cur = BUF_INIT;
	bool has = s && package_current(s, &x->r->srv->trust, app, &cur, &x->e) >= 0;
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "app", json_object_new_string(app));
	json_object_object_add(o, "current", has ? jstr(cur.p) : NULL);
	return reply_json(x->r, MHD_HTTP_OK, o);
}

/* ------------------------------------------------------------------ hosts */

/* What each deploy host runs: hosts/<host>/<app>.json in storage, once
 * hosts report; an empty list until then. */
static enum MHD_Result hosts_h(struct route_ctx *x)
{
	_cleanup_storage_ struct storage *s = open_storage(x);
	struct json_object *arr = json_object_new_array();
	_cleanup_strv_ struct strv keys = STRV_INIT;
	if (!s || storage_list_keys(s, "hosts/", &keys, &x->e) < 0)
		keys.n = 0;
	for (size_t i = 0; i < keys.n && i < 10000; i++) {
		const char *k = keys.v[i];
		if (!strncmp(k, "hosts/", 6))
			k += 6;
		size_t hn = strcspn(k, "/");
		size_t n = strlen(k);
		if (!k[hn] || n < 5 || strcmp(k + n - 5, ".json"))
			continue;
		_cleanup_free_ char *key = xasprintf("hosts/%s", k);
		_cleanup_buf_ struct buf text = BUF_INIT;
		_cleanup_err_ struct err he = ERR_INIT;
		if (storage_get_buf(s, key, &text, 1 << 20, &he) < 0)
			continue;
		struct json_object *rep = json_tokener_parse(text.p);
		struct json_object *o = json_object_new_object();
		_cleanup_free_ char *host = xstrndup(k, hn);
		_cleanup_free_ char *app = xstrndup(k + hn + 1, n - hn - 1 - 5);
		json_object_object_add(o, "host", json_object_new_string(host));
		json_object_object_add(o, "app", json_object_new_string(app));
		json_object_object_add(o, "report", rep);
		json_object_array_add(arr, o);
	}
	return reply_json(x->r, MHD_HTTP_OK, arr);
}

/* ----------------------------------------------------------------- builds */

static struct json_object *build_full(const struct queue_build *b)
{
	struct json_object *o = queue_build_json(b);
	_cleanup_free_ char *url = xasprintf("/api/v1/builds/%s/log", b->id);
	json_object_object_add(o, "log_url", json_object_new_string(url));
	return o;
}

static enum MHD_Result builds_list(struct route_ctx *x)
{
	struct queue_filter f = QUEUE_FILTER_INIT;
	f.limit = LIST_LIMIT_DEFAULT;
	const char *app = req_arg(x->r, "app");
	const char *state = req_arg(x->r, "state");
	const char *limit = req_arg(x->r, "limit");
	if (app && *app)
		f.app = app;
	if (state && *state) {
		enum build_state st;
		if (build_state_parse(state, &st) < 0)
			return reply_error(x->r, MHD_HTTP_BAD_REQUEST, "unknown state '%s' (queued, "
					   "running, succeeded, failed or cancelled)", state);
		f.state = (int)st;
	}
	if (limit && *limit) {
		int64_t l;
		if (parse_int64(limit, 1, LIST_LIMIT_MAX, &l) < 0)
			return reply_error(x->r, MHD_HTTP_BAD_REQUEST, "limit: want 1 to %d",
					   LIST_LIMIT_MAX);
		f.limit = (size_t)l;
	}
	struct queue_build *v = NULL;
	size_t n = 0;
	int rc = queue_list(x->q, &f, &v, &n, &x->e);
	if (rc < 0)
		return reply_err(x->r, rc, &x->e);
	struct json_object *arr = json_object_new_array();
	for (size_t i = 0; i < n; i++)
		json_object_array_add(arr, build_full(&v[i]));
	queue_builds_free(v, n);
	return reply_json(x->r, MHD_HTTP_OK, arr);
}

static enum MHD_Result build_show(struct route_ctx *x, const char *id)
{
	_cleanup_(queue_build_clear) struct queue_build b = { 0 };
	int rc = queue_get(x->q, id, &b, &x->e);
	if (rc < 0)
		return reply_err(x->r, rc, &x->e);
	return reply_json(x->r, MHD_HTTP_OK, build_full(&b));
}

/* 202 with the build; coalesced tells whether it joined a queued one. */
static enum MHD_Result reply_queued(struct route_ctx *x, const char *id, bool coalesced)
{
	_cleanup_(queue_build_clear) struct queue_build b = { 0 };
	int rc = queue_get(x->q, id, &b, &x->e);
	if (rc < 0)
		return reply_err(x->r, rc, &x->e);
	struct json_object *o = build_full(&b);
	json_object_object_add(o, "coalesced", json_object_new_boolean(coalesced));
	return reply_json(x->r, MHD_HTTP_ACCEPTED, o);
}

/* A ref as git would take it: no option look-alike, no spaces or control
 * characters (the builder checks it again). */
static bool ref_ok(const char *ref)
{
	size_t n = strlen(ref);
	if (n == 0 || n > 255 || ref[0] == '-')
		return false;
	for (const unsigned char *p = (const unsigned char *)ref; *p; p++)
		if (*p <= ' ' || *p == 0x7f || *p == '~' || *p == '^' || *p == ':' || *p == '\\')
			return false;
	return true;
}

static enum MHD_Result build_add(struct route_ctx *x)
{
	struct json_object *b = req_json_body(x->r);
	if (!b)
		return MHD_YES;
	bool bad = false;
	const char *app = body_str(b, "app", &bad);
	const char *ref = body_str(b, "ref", &bad);
	bool fresh = body_bool(b, "fresh", &bad);
	enum MHD_Result ret;
	if (bad || !app) {
		ret = reply_error(x->r, MHD_HTTP_BAD_REQUEST,
				  "want {\"app\": \"...\", \"ref\": \"...\", \"fresh\": false}");
		json_object_put(b);
		return ret;
	}
	if (ref && !ref_ok(ref)) {
		json_object_put(b);
		return reply_error(x->r, MHD_HTTP_BAD_REQUEST, "'ref' is not a branch, tag or commit");
	}
	_cleanup_free_ char *id = NULL;
	bool coalesced = false;
	int rc = queue_add(x->q, app, ref, fresh, &id, &coalesced, &x->e);
	ret = rc < 0 ? reply_err(x->r, rc, &x->e) : reply_queued(x, id, coalesced);
	json_object_put(b);
	return ret;
}

static enum MHD_Result build_cancel(struct route_ctx *x, const char *id)
{
	int rc = queue_cancel(x->q, id, &x->e);
	if (rc == -EINVAL)   /* it has ended already */
		return reply_error(x->r, MHD_HTTP_CONFLICT, "%s", err_msg(&x->e));
	if (rc < 0)
		return reply_err(x->r, rc, &x->e);
	return build_show(x, id);
}

static enum MHD_Result build_retry(struct route_ctx *x, const char *id)
{
	_cleanup_free_ char *nid = NULL;
	int rc = queue_retry(x->q, id, &nid, &x->e);
	if (rc == -EINVAL)   /* it is queued or running */
		return reply_error(x->r, MHD_HTTP_CONFLICT, "%s", err_msg(&x->e));
	if (rc < 0)
		return reply_err(x->r, rc, &x->e);
	return reply_queued(x, nid, false);
}

/* ------------------------------------------------------------------- logs */

/* The whole log: the file on this host, else the stored copy. */
static enum MHD_Result log_whole(struct route_ctx *x, const struct queue_build *b)
{
	_cleanup_free_ char *path = queue_log_path(x->r->srv->c, b->id);
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct MHD_Response *resp = NULL;
	struct stat st;
	if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
		resp = MHD_create_response_from_fd((uint64_t)st.st_size, fd);
	} else {
		if (fd >= 0)
			close(fd);
		_cleanup_storage_ struct storage *s = open_storage(x);
		_cleanup_free_ char *key = storage_key_log(b->app, b->id);
		struct buf text = BUF_INIT;
		int rc = s ? storage_get_buf(s, key, &text, LOG_MAX, &x->e) : -EIO;
		if (rc < 0) {
			buf_free(&text);
			if (!build_state_final(b->state) || rc == -ENOENT)
				return reply_error(x->r, MHD_HTTP_NOT_FOUND, "no log for build %s %s",
						   b->id, b->state == BUILD_QUEUED ? "yet" : "here");
			return reply_err(x->r, rc, &x->e);
		}
		size_t n = text.len;
		resp = MHD_create_response_from_buffer(n, buf_detach(&text), MHD_RESPMEM_MUST_FREE);
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	return reply(x->r, MHD_HTTP_OK, resp);
}

/*
 * A live log as Server-Sent Events:
 *   id: <byte offset>         (resume with Last-Event-ID or ?offset=)
 *   data: <line>              (several lines per event)
 *   event: state, data: <build JSON>   when the state changes
 *   event: end, data: <build JSON>     once the build has ended and
 *                                      its last lines were sent
 * Each stream runs in its connection's own thread and blocks there.
 */
struct sse {
	struct server *srv;
	char *id;
	char *path;
	int fd;
	uint64_t offset;
	struct buf partial;      /* an unfinished last line */
	struct buf out;          /* encoded, not sent yet */
	size_t out_pos;
	int last_state;
	uint64_t next_state_ms;
	uint64_t last_send_ms;
	bool final_seen;
	bool done;
};

static void sse_free(void *cls)
{
	struct sse *s = cls;
	if (s->fd >= 0)
		close(s->fd);
	free(s->id);
	free(s->path);
	buf_free(&s->partial);
	buf_free(&s->out);
	free(s);
}

/* Encodes the lines of data (a chunk that ends at offset end). */
static void sse_lines(struct sse *s, const char *p, size_t n, uint64_t end)
{
	buf_add(&s->partial, p, n);
	char *last_nl = memrchr(s->partial.p, '\n', s->partial.len);
	if (!last_nl)
		return;
	size_t whole = (size_t)(last_nl - s->partial.p) + 1;
	buf_addf(&s->out, "id: %llu\n", (unsigned long long)(end - (s->partial.len - whole)));
	for (const char *l = s->partial.p; l < s->partial.p + whole;) {
		const char *nl = memchr(l, '\n', (size_t)(s->partial.p + whole - l));
		size_t ln = (size_t)(nl - l);
		if (ln && l[ln - 1] == '\r')
			ln--;
		buf_adds(&s->out, "data: ");
		for (size_t i = 0; i < ln; i++)
			buf_addch(&s->out, l[i] == '\r' ? ' ' : l[i]);
		buf_addch(&s->out, '\n');
		l = nl + 1;
	}
	buf_addch(&s->out, '\n');
	size_t rest = s->partial.len - whole;
	memmove(s->partial.p, s->partial.p + whole, rest);
	buf_setlen(&s->partial, rest);
}

/* Reads what the log gained; true when there was something. */
static bool sse_read_log(struct sse *s)
{
	if (s->fd < 0) {
		s->fd = open(s->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (s->fd < 0)
			return false;
	}
	char chunk[SSE_CHUNK];
	ssize_t n = pread(s->fd, chunk, sizeof(chunk), (off_t)s->offset);
	if (n <= 0)
		return false;
	s->offset += (uint64_t)n;
	sse_lines(s, chunk, (size_t)n, s->offset);
	return true;
}

static void sse_event(struct sse *s, const char *event, const struct queue_build *b)
{
	struct json_object *o = build_full(b);
	buf_addf(&s->out, "event: %s\ndata: %s\n\n", event,
		 json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
						   JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
}

/* Reads the build's state; emits state (and end) events. */
static void sse_check_state(struct sse *s)
{
	struct queue *q = NULL;
	_cleanup_err_ struct err e = ERR_INIT;
	if (pool_get(&s->srv->pool, &q, &e) < 0)
		return;
	struct queue_build b = { 0 };
	int rc = queue_get(q, s->id, &b, &e);
	pool_put(&s->srv->pool, q);
	if (rc < 0)
		return;
	if ((int)b.state != s->last_state) {
		s->last_state = (int)b.state;
		sse_event(s, "state", &b);
	}
	if (build_state_final(b.state)) {
		/* the last lines are written before the state: read them all */
		while (sse_read_log(s))
			;
		if (s->partial.len) {
			buf_addch(&s->partial, '\n');
			sse_lines(s, "", 0, s->offset);
		}
		sse_event(s, "end", &b);
		s->done = true;
	}
	queue_build_clear(&b);
}

/* A comment line often enough that the connection timeout (serve.limits.
 * timeout, which cuts off silent clients) never cuts off a silent build. */
static uint64_t sse_keepalive_ms(const struct sse *s)
{
	uint64_t t = (uint64_t)s->srv->c->serve.limits.timeout * 1000u / 3u;
	return t < SSE_KEEPALIVE_MS ? (t > 0 ? t : 1) : SSE_KEEPALIVE_MS;
}

static ssize_t sse_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct sse *s = cls;
	for (;;) {
		if (s->out_pos < s->out.len) {
			size_t n = s->out.len - s->out_pos;
			if (n > max)
				n = max;
			memcpy(buf, s->out.p + s->out_pos, n);
			s->out_pos += n;
			if (s->out_pos == s->out.len) {
				buf_reset(&s->out);
				s->out_pos = 0;
			}
			s->last_send_ms = now_ms();
			return (ssize_t)n;
		}
		if (s->done)
			return MHD_CONTENT_READER_END_OF_STREAM;
		if (s->srv->stopping) {
			s->done = true;
			continue;
		}
		if (sse_read_log(s))
			continue;
		uint64_t now = now_ms();
		if (now >= s->next_state_ms) {
			s->next_state_ms = now + SSE_STATE_MS;
			sse_check_state(s);
			if (s->out.len || s->done)
				continue;
		}
		if (now - s->last_send_ms >= sse_keepalive_ms(s)) {
			buf_adds(&s->out, ": keep-alive\n\n");
			continue;
		}
		poll(NULL, 0, SSE_IDLE_MS);
	}
}

static enum MHD_Result log_follow(struct route_ctx *x, const struct queue_build *b)
{
	struct sse *s = xcalloc(1, sizeof(*s));
	*s = (struct sse){ .srv = x->r->srv, .id = xstrdup(b->id),
			   .path = queue_log_path(x->r->srv->c, b->id), .fd = -1,
			   .partial = BUF_INIT, .out = BUF_INIT, .last_state = -1,
			   .last_send_ms = now_ms() };
	const char *from = req_header(x->r, "Last-Event-ID");
	if (!from)
		from = req_arg(x->r, "offset");
	int64_t off;
	if (from && parse_int64(from, 0, INT64_MAX, &off) == 0)
		s->offset = (uint64_t)off;
	buf_adds(&s->out, "retry: 2000\n\n");
	struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, SSE_CHUNK,
								      sse_reader, s, sse_free);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream; charset=utf-8");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	MHD_add_response_header(resp, "X-Accel-Buffering", "no");
	return reply(x->r, MHD_HTTP_OK, resp);
}

static enum MHD_Result build_log(struct route_ctx *x, const char *id)
{
	_cleanup_(queue_build_clear) struct queue_build b = { 0 };
	int rc = queue_get(x->q, id, &b, &x->e);
	if (rc < 0)
		return reply_err(x->r, rc, &x->e);
	const char *accept = req_header(x->r, MHD_HTTP_HEADER_ACCEPT);
	const char *follow = req_arg(x->r, "follow");
	if ((follow && strcmp(follow, "0")) || (accept && strstr(accept, "text/event-stream"))) {
		/* the stream borrows the pool itself, now and then */
		pool_put(&x->r->srv->pool, TAKE_PTR(x->q));
		return log_follow(x, &b);
	}
	return log_whole(x, &b);
}

/* ----------------------------------------------------------------- router */

static enum MHD_Result whoami(struct route_ctx *x)
{
	struct json_object *o = json_object_new_object();
	bool anon = !x->r->authed && x->r->srv->c->serve.anonymous_read;
	json_object_object_add(o, "name", jstr(x->r->token_name));
	json_object_object_add(o, "scope", x->r->authed || anon
				   ? json_object_new_string(token_scope_name(x->r->scope)) : NULL);
	json_object_object_add(o, "version", json_object_new_string(PACKAGE_VERSION));
	return reply_json(x->r, MHD_HTTP_OK, o);
}

static bool is(const struct route_ctx *x, size_t i, const char *s)
{
	return i < x->n && !strcmp(x->seg[i], s);
}

static enum MHD_Result method_not_allowed(struct route_ctx *x, const char *allow)
{
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "error", json_object_new_string("method not allowed"));
	const char *text = json_object_to_json_string(o);
	struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(text), (void *)text,
								    MHD_RESPMEM_MUST_COPY);
	json_object_put(o);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
	return reply(x->r, MHD_HTTP_METHOD_NOT_ALLOWED, resp);
}

/* Checks the method and the scope; true when the handler may run. */
#define ROUTE(m, scope) (route_ok(x, (m), (scope), &ret))
static bool route_ok(struct route_ctx *x, const char *m, enum token_scope scope,
		     enum MHD_Result *ret)
{
	if (strcmp(x->r->method, m) && !(strcmp(m, "GET") == 0 && !strcmp(x->r->method, "HEAD"))) {
		*ret = method_not_allowed(x, m);
		return false;
	}
	if (require(x, scope) < 0) {
		*ret = MHD_YES;
		return false;
	}
	return true;
}

static enum MHD_Result route(struct route_ctx *x)
{
	enum MHD_Result ret = MHD_YES;
	const char *m = x->r->method;
	bool get = !strcmp(m, "GET") || !strcmp(m, "HEAD");
	if (x->n == 1 && is(x, 0, "whoami")) {
		/* without a token: who you are is nobody (or an anonymous
		 * reader), not an error: the dashboard asks before it logs in */
		if (!req_header(x->r, MHD_HTTP_HEADER_AUTHORIZATION) && get)
			ret = whoami(x);
		else if (ROUTE("GET", TOKEN_READ))
			ret = whoami(x);
	} else if (x->n == 1 && is(x, 0, "apps")) {
		if (get ? ROUTE("GET", TOKEN_READ) : ROUTE("POST", TOKEN_ADMIN))
			ret = get ? apps_list(x) : app_add(x);
	} else if (x->n == 2 && is(x, 0, "apps")) {
		if (get ? ROUTE("GET", TOKEN_READ) : ROUTE("DELETE", TOKEN_ADMIN))
			ret = get ? app_show(x, x->seg[1]) : app_remove(x, x->seg[1]);
	} else if (x->n == 3 && is(x, 0, "apps") && is(x, 2, "packages")) {
		if (ROUTE("GET", TOKEN_READ))
			ret = packages_list_h(x, x->seg[1]);
	} else if (x->n == 4 && is(x, 0, "apps") && is(x, 2, "packages")) {
		if (ROUTE("GET", TOKEN_READ))
			ret = package_show_h(x, x->seg[1], x->seg[3]);
	} else if (x->n == 3 && is(x, 0, "apps") && is(x, 2, "current")) {
		if (ROUTE("GET", TOKEN_READ))
			ret = current_h(x, x->seg[1]);
	} else if (x->n == 1 && is(x, 0, "builds")) {
		if (get ? ROUTE("GET", TOKEN_READ) : ROUTE("POST", TOKEN_BUILD))
			ret = get ? builds_list(x) : build_add(x);
	} else if (x->n == 2 && is(x, 0, "builds")) {
		if (ROUTE("GET", TOKEN_READ))
			ret = build_show(x, x->seg[1]);
	} else if (x->n == 3 && is(x, 0, "builds") && is(x, 2, "log")) {
		if (ROUTE("GET", TOKEN_READ))
			ret = build_log(x, x->seg[1]);
	} else if (x->n == 3 && is(x, 0, "builds") && is(x, 2, "cancel")) {
		if (ROUTE("POST", TOKEN_BUILD))
			ret = build_cancel(x, x->seg[1]);
	} else if (x->n == 3 && is(x, 0, "builds") && is(x, 2, "retry")) {
		if (ROUTE("POST", TOKEN_BUILD))
			ret = build_retry(x, x->seg[1]);
	} else if (x->n == 1 && is(x, 0, "hosts")) {
		if (ROUTE("GET", TOKEN_READ))
			ret = hosts_h(x);
	} else {
		ret = reply_error(x->r, MHD_HTTP_NOT_FOUND, "no such API endpoint '%s %s'", m,
				  x->r->url);
	}
	return ret;
}

enum MHD_Result api_handle(struct req *r, const char *path)
{
	struct route_ctx x = { .r = r, .e = ERR_INIT };
	enum MHD_Result ret;
	if (!split_path(path, &x)) {
		ret = reply_error(r, MHD_HTTP_NOT_FOUND, "no such API endpoint '%s'", r->url);
	} else {
		int rc = pool_get(&r->srv->pool, &x.q, &x.e);
		if (rc == -EBUSY)
			ret = reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "%s", err_msg(&x.e));
		else if (rc < 0)
			ret = reply_err(r, rc, &x.e);
		else
			ret = route(&x);
	}
	if (!r->replied)
		ret = reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "no reply");
	pool_put(&r->srv->pool, x.q);
	for (size_t i = 0; i < x.n; i++)
		free(x.seg[i]);
	err_free(&x.e);
	return ret;
}
