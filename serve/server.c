/*
 * serve/server.c - the HTTP server: libmicrohttpd set up with a thread per
 * connection, the limits every request passes (connections, per-address
 * rate, header and body sizes, slow clients), the client address behind
 * trusted proxies, replies, the database pool, and the clean stop.
 */
#define UPAAS_SERVE_INTERNAL 1
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <curl/curl.h>

#include "serve/serve-int.h"

#define POOL_MAX 16
#define POOL_WAIT_S 10
/* Request headers and the connection's buffers (libmicrohttpd answers
 * 431 when the headers do not fit). */
#define CONN_MEMORY (64 * 1024)
#define THREAD_STACK (512 * 1024)
/* How long a stop waits for running requests before it cuts them. */
#define STOP_GRACE_MS 5000

/* ---------------------------------------------------------------- pool */

int pool_init(struct pool *p, const struct config *c, size_t max, struct err *e)
{
	*p = (struct pool){ .c = c, .max = max };
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->freed, NULL);
	p->idle = xcalloc(max, sizeof(*p->idle));
	/* One connection now: a bad queue.url fails at start, not later. */
	struct queue *q = NULL;
	int r = queue_open(&q, c, e);
	if (r < 0)
		return r;
	p->idle[p->n_idle++] = q;
	p->open = 1;
	return 0;
}

void pool_destroy(struct pool *p)
{
	for (size_t i = 0; i < p->n_idle; i++)
		queue_close(p->idle[i]);
	free(p->idle);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->freed);
	*p = (struct pool){ 0 };
}

int pool_get(struct pool *p, struct queue **ret, struct err *e)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += POOL_WAIT_S;
	pthread_mutex_lock(&p->lock);
	for (;;) {
		if (p->n_idle) {
			*ret = p->idle[--p->n_idle];
			pthread_mutex_unlock(&p->lock);
			return 0;
		}
		if (p->open < p->max) {
			p->open++;
			pthread_mutex_unlock(&p->lock);
			int r = queue_open(ret, p->c, e);
			if (r < 0) {
				pthread_mutex_lock(&p->lock);
				p->open--;
				pthread_cond_signal(&p->freed);
				pthread_mutex_unlock(&p->lock);
			}
			return r;
		}
		if (pthread_cond_timedwait(&p->freed, &p->lock, &until) == ETIMEDOUT) {
			pthread_mutex_unlock(&p->lock);
			return err_set(e, -EBUSY, "every database connection is busy");
		}
	}
}

void pool_put(struct pool *p, struct queue *q)
{
	if (!q)
		return;
	pthread_mutex_lock(&p->lock);
	p->idle[p->n_idle++] = q;
	pthread_cond_signal(&p->freed);
	pthread_mutex_unlock(&p->lock);
}

/* -------------------------------------------------------------- CIDRs */

int cidr_parse(const char *s, struct cidr *ret)
{
	_cleanup_free_ char *addr = xstrdup(s);
	char *slash = strchr(addr, '/');
	if (slash)
		*slash++ = '\0';
	struct cidr c = { 0 };
	if (inet_pton(AF_INET, addr, c.addr) == 1) {
		c.family = AF_INET;
		c.bits = 32;
	} else if (inet_pton(AF_INET6, addr, c.addr) == 1) {
		c.family = AF_INET6;
		c.bits = 128;
	} else {
		return -EINVAL;
	}
	if (slash) {
		int64_t bits;
		if (parse_int64(slash, 0, c.bits, &bits) < 0)
			return -EINVAL;
		c.bits = (int)bits;
	}
	*ret = c;
	return 0;
}

bool cidr_match(const struct cidr *v, size_t n, int family, const unsigned char *addr)
{
	for (size_t i = 0; i < n; i++) {
		if (v[i].family != family)
			continue;
		int full = v[i].bits / 8, rest = v[i].bits % 8;
		if (memcmp(v[i].addr, addr, (size_t)full))
			continue;
		if (rest && ((v[i].addr[full] ^ addr[full]) & (0xff << (8 - rest))))
			continue;
		return true;
	}
	return false;
}

/* Parses a textual address into family/bytes (IPv4-mapped IPv6 as IPv4). */
static bool addr_parse(const char *s, int *family, unsigned char out[16])
{
	if (inet_pton(AF_INET, s, out) == 1) {
		*family = AF_INET;
		return true;
	}
	if (inet_pton(AF_INET6, s, out) == 1) {
		static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
		if (!memcmp(out, mapped, 12)) {
			memmove(out, out + 12, 4);
			*family = AF_INET;
		} else {
			*family = AF_INET6;
		}
		return true;
	}
	return false;
}

/*
 * The client's address: the peer's, unless the peer is a trusted proxy;
 * then X-Forwarded-For is read from the right, skipping trusted proxies,
 * and the first other address is the client (what an untrusted client
 * put on the left of the header is never believed).
 */
static void client_address(struct req *r)
{
	struct server *s = r->srv;
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	snprintf(r->ip, sizeof(r->ip), "unknown");
	if (!ci || !ci->client_addr)
		return;
	const struct sockaddr *sa = ci->client_addr;
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, r->ip,
			  sizeof(r->ip));
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr,
			  r->ip, sizeof(r->ip));
	int fam;
	unsigned char a[16];
	if (!s->n_proxies || !addr_parse(r->ip, &fam, a) || !cidr_match(s->proxies, s->n_proxies, fam, a))
		return;
	const char *proto = req_header(r, "X-Forwarded-Proto");
	r->forwarded_https = proto && !strcasecmp(proto, "https");
	const char *xff = req_header(r, "X-Forwarded-For");
	if (!xff)
		return;
	_cleanup_free_ char *list = xstrdup(xff);
	for (;;) {
		char *comma = strrchr(list, ',');
		char *item = comma ? comma + 1 : list;
		while (*item == ' ' || *item == '\t')
			item++;
		size_t n = strlen(item);
		while (n && (item[n - 1] == ' ' || item[n - 1] == '\t'))
			item[--n] = '\0';
		if (!addr_parse(item, &fam, a))
			return;   /* junk: keep the last good address */
		inet_ntop(fam, a, r->ip, sizeof(r->ip));
		if (!cidr_match(s->proxies, s->n_proxies, fam, a) || !comma)
			return;
		*comma = '\0';
	}
}

/* ---------------------------------------------------------- rate limit */

/* A token bucket per client address in a fixed table: an address takes
 * its slot over from another whose bucket has refilled; two busy
 * addresses that share a slot share a bucket (the table never grows). */
static bool rate_allow(struct server *s, const char *ip)
{
	uint64_t h = 1469598103934665603ull;
	for (const char *p = ip; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ull;
	double rate = s->c->serve.limits.rate, burst = s->c->serve.limits.burst;
	uint64_t now = now_ms();
	pthread_mutex_lock(&s->rate_lock);
	struct rate_slot *sl = &s->rate[h % RATE_SLOTS];
	double tokens = sl->tokens + (double)(now - sl->last_ms) * rate / 1000.0;
	if (tokens > burst)
		tokens = burst;
	if (strcmp(sl->ip, ip) && (!sl->last_ms || tokens >= burst)) {
		snprintf(sl->ip, sizeof(sl->ip), "%s", ip);
		tokens = burst;
	}
	sl->last_ms = now;
	bool ok = tokens >= 1.0;
	sl->tokens = ok ? tokens - 1.0 : tokens;
	pthread_mutex_unlock(&s->rate_lock);
	return ok;
}

/* ------------------------------------------------------------- replies */

const char *req_header(struct req *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *req_arg(struct req *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

enum MHD_Result reply(struct req *r, unsigned status, struct MHD_Response *resp)
{
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
	MHD_add_response_header(resp, "X-Frame-Options", "DENY");
	if (r->srv->stopping)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
	enum MHD_Result ret = MHD_queue_response(r->conn, status, resp);
	MHD_destroy_response(resp);
	r->replied = true;
	r->status = status;
	return ret;
}

enum MHD_Result reply_json(struct req *r, unsigned status, struct json_object *o)
{
	const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
							     JSON_C_TO_STRING_NOSLASHESCAPE);
	size_t n = strlen(text);
	char *copy = xmalloc(n + 1);
	memcpy(copy, text, n);
	copy[n] = '\n';
	json_object_put(o);
	struct MHD_Response *resp =
		MHD_create_response_from_buffer(n + 1, copy, MHD_RESPMEM_MUST_FREE);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (status == MHD_HTTP_UNAUTHORIZED)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
					"Bearer realm=\"upaas\"");
	if (status == MHD_HTTP_TOO_MANY_REQUESTS)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
	return reply(r, status, resp);
}

enum MHD_Result reply_error(struct req *r, unsigned status, const char *fmt, ...)
{
	_cleanup_buf_ struct buf m = BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	buf_vaddf(&m, fmt, ap);
	va_end(ap);
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "error", json_object_new_string(m.p));
	return reply_json(r, status, o);
}

enum MHD_Result reply_err(struct req *r, int code, const struct err *e)
{
	unsigned st;
	switch (code) {
	case -ENOENT: st = MHD_HTTP_NOT_FOUND; break;
	case -EEXIST:
	case -EBUSY: st = MHD_HTTP_CONFLICT; break;
	case -EINVAL: st = MHD_HTTP_BAD_REQUEST; break;
	case -EACCES: st = MHD_HTTP_FORBIDDEN; break;
	case -E2BIG: st = MHD_HTTP_CONTENT_TOO_LARGE; break;
	default: st = MHD_HTTP_INTERNAL_SERVER_ERROR; break;
	}
	if (st == MHD_HTTP_INTERNAL_SERVER_ERROR)
		log_warn("%s %s: %s", r->method, r->url, e && e->code ? err_msg(e) : strerror(-code));
	return reply_error(r, st, "%s", e && e->code ? err_msg(e) : strerror(-code));
}

struct json_object *req_json_body(struct req *r)
{
	struct json_tokener *tok = json_tokener_new_ex(32);
	struct json_object *o = json_tokener_parse_ex(tok, r->body.p, (int)r->body.len);
	enum json_tokener_error je = json_tokener_get_error(tok);
	bool whole = je == json_tokener_success && tok->char_offset == (int)r->body.len;
	json_tokener_free(tok);
	if (!o || !whole || !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		reply_error(r, MHD_HTTP_BAD_REQUEST, "the body is not a JSON object%s%s",
			    je != json_tokener_success ? ": " : "",
			    je != json_tokener_success ? json_tokener_error_desc(je) : "");
		return NULL;
	}
	return o;
}

/* ------------------------------------------------------------ requests */

static void req_free(struct req *r)
{
	buf_free(&r->body);
	free(r->token_name);
	free(r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct req *r = *con_cls;
	if (!r)
		return;
	uint64_t took = now_ms() - r->start_ms;
	bool quiet = r->status < 400 && !strcmp(r->method, "GET");
	log_msg(quiet ? LOG_DEBUG : LOG_INFO, "%s %s %s %u %llu ms%s", r->ip, r->method, r->url,
		r->status, (unsigned long long)took,
		toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (cut)");
	req_free(r);
	*con_cls = NULL;
}

static enum MHD_Result dispatch(struct req *r)
{
	const char *u = r->url;
	if (!strncmp(u, "/api/v1/", 8) || !strcmp(u, "/api/v1"))
		return api_handle(r, u + 7);
	if (!strncmp(u, "/hooks/", 7))
		return hooks_handle(r, u + 6);
	if (!strncmp(u, "/api/", 5))
		return reply_error(r, MHD_HTTP_NOT_FOUND, "no such API (this server speaks /api/v1)");
	return static_handle(r, u);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version,
				  const char *upload_data, size_t *upload_size, void **con_cls)
{
	struct server *s = cls;
	struct req *r = *con_cls;
	if (!r) {
		r = xcalloc(1, sizeof(*r));
		*r = (struct req){ .srv = s, .conn = conn, .method = method, .url = url,
				   .body = BUF_INIT, .start_ms = now_ms() };
		buf_init(&r->body, (size_t)s->c->serve.limits.max_body);
		*con_cls = r;
		client_address(r);
		if (s->stopping)
			return reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "the server is stopping");
		if (!rate_allow(s, r->ip))
			return reply_error(r, MHD_HTTP_TOO_MANY_REQUESTS,
					   "too many requests from %s: slow down", r->ip);
		/* A declared body that is too large is refused before it is
		 * read; libmicrohttpd then closes the connection. */
		const char *cl = req_header(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
		int64_t len;
		if (cl && parse_int64(cl, 0, INT64_MAX, &len) == 0 &&
		    len > s->c->serve.limits.max_body)
			return reply_error(r, MHD_HTTP_CONTENT_TOO_LARGE,
					   "the body is larger than %lld bytes",
					   (long long)s->c->serve.limits.max_body);
		return MHD_YES;
	}
	if (r->replied) {
		*upload_size = 0;
		return MHD_YES;
	}
	if (*upload_size) {
		if (!r->body_too_large && buf_add(&r->body, upload_data, *upload_size) < 0)
			r->body_too_large = true;
		*upload_size = 0;
		return MHD_YES;
	}
	if (r->body_too_large)
		return reply_error(r, MHD_HTTP_CONTENT_TOO_LARGE, "the body is larger than %lld bytes",
				   (long long)s->c->serve.limits.max_body);
	return dispatch(r);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	_cleanup_buf_ struct buf m = BUF_INIT;
	buf_vaddf(&m, fmt, ap);
	buf_rtrim(&m);
	log_debug("http: %s", m.p);
}

/* ------------------------------------------------------------ listening */

/* Fills ss from "ADDR:PORT", "[ADDR6]:PORT" or "*:PORT". */
static int listen_addr(const char *spec, struct sockaddr_storage *ss, socklen_t *len,
		       struct err *e)
{
	const char *colon = strrchr(spec, ':');
	int64_t port;
	if (!colon || parse_int64(colon + 1, 0, 65535, &port) < 0)
		return err_set(e, -EINVAL, "listen address '%s': want ADDRESS:PORT", spec);
	_cleanup_free_ char *host = xstrndup(spec, (size_t)(colon - spec));
	memset(ss, 0, sizeof(*ss));
	size_t n = strlen(host);
	if (host[0] == '[' && n > 2 && host[n - 1] == ']') {
		host[n - 1] = '\0';
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)port);
		if (inet_pton(AF_INET6, host + 1, &a->sin6_addr) != 1)
			return err_set(e, -EINVAL, "listen address '%s': bad IPv6 address", spec);
		*len = sizeof(*a);
		return AF_INET6;
	}
	struct sockaddr_in *a = (struct sockaddr_in *)ss;
	a->sin_family = AF_INET;
	a->sin_port = htons((uint16_t)port);
	if (!strcmp(host, "*"))
		a->sin_addr.s_addr = htonl(INADDR_ANY);
	else if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
		return err_set(e, -EINVAL, "listen address '%s': bad IPv4 address", spec);
	*len = sizeof(*a);
	return AF_INET;
}

static int read_pem(const char *path, struct buf *out, struct err *e)
{
	int r = buf_read_file(out, path, 1 << 20);
	if (r < 0)
		return err_set(e, r, "cannot read '%s': %s", path, strerror(-r));
	return 0;
}

/* ---------------------------------------------------------------- run */

static void server_free(struct server *s)
{
	if (s->web_fd >= 0)
		close(s->web_fd);
	free(s->web_dir);
	free(s->proxies);
	free(s->rate);
	sign_trust_free(&s->trust);
	pthread_mutex_destroy(&s->rate_lock);
	pthread_mutex_destroy(&s->stop_lock);
	pthread_cond_destroy(&s->stop_cond);
}

/* "sqlite" or "postgresql", for the start message (never the URL: it
 * may hold a password). */
static const char *queue_backend_of_url(const char *url)
{
	return url && (!strncmp(url, "postgres://", 11) || !strncmp(url, "postgresql://", 13))
		       ? "postgresql" : "sqlite";
}

/* Waits for SIGTERM or SIGINT (blocked in every thread). */
static int wait_for_stop(void)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	for (;;) {
		int sig = 0;
		if (sigwait(&set, &sig) == 0)
			return sig;
	}
}

/* Logs where it listens, waits for a stop signal, then quiesces: no new
 * connections; live streams see stopping and end; running requests get a
 * grace period. MHD_stop_daemon() is the caller's. */
static void serve_until_stopped(struct server *s, const char *listen, bool tls)
{
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
	_cleanup_free_ char *host = xstrndup(listen, (size_t)(strrchr(listen, ':') - listen));
	log_info("listening on %s://%s:%u/ (queue: %s, dashboard: %s)", tls ? "https" : "http",
		 host, di ? di->port : 0, queue_backend_of_url(s->c->queue.url),
		 s->web_fd >= 0 ? s->web_dir : "none");

	int sig = wait_for_stop();
	log_info("%s: stopping", strsignal(sig));
	s->stopping = 1;
	/* closed after MHD_stop_daemon(): a connection thread may use it */
	s->lsock = MHD_quiesce_daemon(s->d);
	pthread_mutex_lock(&s->stop_lock);
	pthread_cond_broadcast(&s->stop_cond);
	pthread_mutex_unlock(&s->stop_lock);
	uint64_t until = now_ms() + STOP_GRACE_MS;
	while (now_ms() < until) {
		di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
		if (!di || di->num_connections == 0)
			break;
		struct timespec ts = { 0, 20 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
}

int serve_run(const struct config *c, const struct serve_opts *o, struct err *e)
{
	struct server s = { .c = c, .web_fd = -1, .lsock = MHD_INVALID_SOCKET };
	pthread_mutex_init(&s.rate_lock, NULL);
	pthread_mutex_init(&s.stop_lock, NULL);
	pthread_cond_init(&s.stop_cond, NULL);
	s.rate = xcalloc(RATE_SLOTS, sizeof(*s.rate));
	s.web_dir = xstrdup(o && o->web_dir ? o->web_dir : c->serve.web_dir);
	const char *listen = o && o->listen ? o->listen : c->serve.listen;
	int r = 0;

	for (size_t i = 0; i < c->serve.trusted_proxies.n; i++) {
		s.proxies = xrealloc(s.proxies, (s.n_proxies + 1) * sizeof(*s.proxies));
		if (cidr_parse(c->serve.trusted_proxies.v[i], &s.proxies[s.n_proxies]) == 0)
			s.n_proxies++;
	}
	r = sign_trust_config(&s.trust, c, e);
	if (r < 0) {
		server_free(&s);
		return r;
	}
	s.web_fd = open(s.web_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (s.web_fd < 0)
		log_warn("no dashboard: cannot open '%s': %s", s.web_dir, strerror(errno));

	struct sockaddr_storage ss;
	socklen_t sslen = 0;
	int fam = listen_addr(listen, &ss, &sslen, e);
	if (fam < 0) {
		server_free(&s);
		return fam;
	}
	_cleanup_buf_ struct buf cert = BUF_INIT;
	_cleanup_buf_ struct buf key = BUF_INIT;
	bool tls = c->serve.tls_cert && c->serve.tls_key;
	if (tls) {
		if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)
			r = err_set(e, -EOPNOTSUPP, "this libmicrohttpd has no TLS");
		if (r >= 0)
			r = read_pem(c->serve.tls_cert, &cert, e);
		if (r >= 0)
			r = read_pem(c->serve.tls_key, &key, e);
		if (r < 0) {
			explicit_bzero(key.p, key.len);
			server_free(&s);
			return r;
		}
	}

	r = pool_init(&s.pool, c, POOL_MAX, e);
	if (r < 0) {
		explicit_bzero(key.p, key.len);
		server_free(&s);
		return r;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);

	/* Every thread started from here on inherits the blocked signals;
	 * this thread waits for them with sigwait(). */
	sigset_t set, old;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &set, &old);

	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
			 MHD_USE_POLL | MHD_USE_ITC | MHD_USE_ERROR_LOG |
			 (fam == AF_INET6 ? MHD_USE_IPv6 : 0) | (tls ? MHD_USE_TLS : 0);
	struct MHD_OptionItem tls_opts[] = {
		{ MHD_OPTION_HTTPS_MEM_CERT, 0, cert.p },
		{ MHD_OPTION_HTTPS_MEM_KEY, 0, key.p },
		{ MHD_OPTION_END, 0, NULL },
	};
	s.d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, &s,
			       MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
			       MHD_OPTION_CONNECTION_LIMIT, (unsigned)c->serve.limits.connections,
			       MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)c->serve.limits.timeout,
			       MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONN_MEMORY,
			       MHD_OPTION_THREAD_STACK_SIZE, (size_t)THREAD_STACK,
			       MHD_OPTION_NOTIFY_COMPLETED, on_completed, &s,
			       MHD_OPTION_EXTERNAL_LOGGER, mhd_log, &s,
			       MHD_OPTION_LISTEN_BACKLOG_SIZE, 128u,
			       MHD_OPTION_ARRAY, tls ? tls_opts : tls_opts + 2,
			       MHD_OPTION_END);
	explicit_bzero(key.p, key.len);
	if (!s.d)
		r = err_set(e, -EADDRNOTAVAIL, "cannot listen on %s (in use, or not an address "
			    "of this host?)", listen);
	if (r >= 0)
		r = notifier_start(&s, e);
	if (r >= 0)
		serve_until_stopped(&s, listen, tls);
	if (s.d)
		MHD_stop_daemon(s.d);
	if (s.lsock != MHD_INVALID_SOCKET)
		close(s.lsock);
	notifier_stop(&s);
	pool_destroy(&s.pool);
	server_free(&s);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return r;
}
