/*
 * storage/http.c - the "http" handler: read-only GET/HEAD of
 * <storage.url>/<key> with libcurl, for hosts that pull packages from a
 * plain web server (or a public bucket). Writes, deletes and listing are
 * refused by the generic layer (no slots here): -EROFS / -EOPNOTSUPP.
 *
 * Each key segment is percent-encoded (RFC 3986 unreserved characters stay),
 * '/' separates segments. storage.connect_timeout bounds the connection and
 * storage.timeout any stall of the transfer, not the whole download: a
 * large package on a slow link may take longer. A GET that fails (transport
 * error, 5xx) is retried storage.retries times; one that delivered bytes
 * resumes with Range from the bytes the sink already took, with If-Range on
 * the first answer's ETag (or Last-Modified): an object that changed in
 * between fails the download, a server that ignores Range sends it whole
 * and the head is dropped.
 *
 * Credentials: a userinfo in storage.url (https://user:password@host/) is
 * taken out of the URL when the handler opens. It goes to libcurl as
 * CURLOPT_USERNAME/PASSWORD, only in requests to the URL's own host, and no
 * URL that upaas shows, logs or puts in a message carries it.
 *
 * Redirects are followed here, not by libcurl, and only to the scheme and
 * host of storage.url or to a host of storage.redirect_hosts (same scheme):
 * a storage server cannot send a host to file://, to http from https, or to
 * some other host's service.
 */
#define UPAAS_STORAGE_INTERNAL 1

#include <curl/curl.h>
#include <errno.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "storage/storage-int.h"

#define REDIRECTS_MAX 10

struct http {
	char *base;      /* without a trailing '/' and without userinfo */
	char *scheme;    /* of base: "http" or "https" */
	char *host;      /* of base, without port */
	char *user;      /* secret: from the userinfo of storage.url, or NULL */
	char *pass;      /* secret */
	struct strv redirect_hosts;
	long timeout;    /* stall timeout, seconds; 0: none */
	long connect_timeout;
	int retries;
};

static struct http *H(struct storage *s)
{
	return s->priv;
}

static void curl_easy_cleanupp(CURL **c)
{
	if (*c)
		curl_easy_cleanup(*c);
}
#define _cleanup_curl_ _cleanup_(curl_easy_cleanupp)

static void curl_url_cleanupp(CURLU **u)
{
	if (*u)
		curl_url_cleanup(*u);
}
#define _cleanup_curlu_ _cleanup_(curl_url_cleanupp)

/* The scheme and host (lower case, without port) of an absolute URL; -EINVAL
 * when it is not one, or carries a userinfo. */
static int url_origin(const char *url, char **ret_scheme, char **ret_host)
{
	_cleanup_curlu_ CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *user = NULL;

	if (!u || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK)
		return -EINVAL;
	if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK) {
		curl_free(user);
		return -EINVAL;
	}
	if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
		curl_free(scheme);
		return -EINVAL;
	}
	*ret_scheme = xstrdup(scheme);
	*ret_host = xstrdup(host);
	for (char *p = *ret_host; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	curl_free(scheme);
	curl_free(host);
	return 0;
}

static int http_open(struct storage *s, const struct cfg_storage *cfg, const char *state_dir,
		     struct err *e)
{
	struct http *h = H(s);
	_cleanup_free_ char *bare = NULL;

	(void)state_dir;
	if (!cfg->url || !*cfg->url)
		return err_set(e, -EINVAL, "storage handler 'http' needs storage.url");
	/* from here on, only the URL without its userinfo is ever shown */
	if (url_split_userinfo(cfg->url, &bare, &h->user, &h->pass) < 0) {
		_cleanup_free_ char *shown = url_redacted(cfg->url);
		return err_set(e, -EINVAL, "storage.url '%s' has a bad %%-escape in its userinfo",
			       shown);
	}
	if (strncmp(bare, "http://", 7) && strncmp(bare, "https://", 8))
		return err_set(e, -EINVAL, "storage.url '%s' is not an http:// or https:// URL",
			       bare);
	if (url_origin(bare, &h->scheme, &h->host) < 0)
		return err_set(e, -EINVAL, "storage.url '%s' is not a valid URL", bare);
	/* refcounted by libcurl; the S3 handler may call it too */
	CURLcode cc = curl_global_init(CURL_GLOBAL_DEFAULT);
	if (cc != CURLE_OK)
		return err_set(e, -EIO, "cannot initialise libcurl: %s", curl_easy_strerror(cc));

	size_t n = strlen(bare);
	while (n > 0 && bare[n - 1] == '/')
		n--;
	h->base = xstrndup(bare, n);
	h->timeout = cfg->timeout > 0 ? cfg->timeout : 0;
	h->connect_timeout = cfg->connect_timeout > 0 ? cfg->connect_timeout : 10;
	h->retries = cfg->retries > 0 ? (cfg->retries < 20 ? cfg->retries : 20) : 0;
	strv_copy(&h->redirect_hosts, &cfg->redirect_hosts);
	s->where = xstrdup(h->base);
	return 0;
}

static void http_close(struct storage *s)
{
	struct http *h = H(s);
	free(h->base);
	free(h->scheme);
	free(h->host);
	secret_free(h->user);
	secret_free(h->pass);
	strv_free(&h->redirect_hosts);
	curl_global_cleanup();
}

/* base + "/" + key, each segment percent-encoded. */
static char *http_url(struct http *h, const char *key)
{
	static const char hex[] = "0123456789ABCDEF";
	struct buf b = BUF_INIT;
	buf_adds(&b, h->base);
	buf_addch(&b, '/');
	for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
		unsigned char ch = *p;
		if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
		    (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_' ||
		    ch == '~' || ch == '/') {
			buf_addch(&b, (char)ch);
		} else {
			buf_addch(&b, '%');
			buf_addch(&b, hex[ch >> 4]);
			buf_addch(&b, hex[ch & 15]);
		}
	}
	return buf_detach(&b);
}

/* Sets what every request shares. */
static int http_setup(struct http *h, CURL *c, const char *url, char errbuf[CURL_ERROR_SIZE])
{
	CURLcode cc = CURLE_OK;
#define SET(opt, val) if (cc == CURLE_OK) cc = curl_easy_setopt(c, opt, val)
	SET(CURLOPT_URL, url);
	SET(CURLOPT_ERRORBUFFER, errbuf);
	SET(CURLOPT_NOSIGNAL, 1L);
	/* redirects are checked and followed by http_perform() */
	SET(CURLOPT_FOLLOWLOCATION, 0L);
	SET(CURLOPT_FAILONERROR, 1L);
	SET(CURLOPT_CONNECTTIMEOUT, h->connect_timeout);
	/* a stall longer than the timeout fails the transfer (a GET watches
	 * it itself, to the second: progress_cb) */
	if (h->timeout > 0) {
		SET(CURLOPT_LOW_SPEED_LIMIT, 1L);
		SET(CURLOPT_LOW_SPEED_TIME, h->timeout);
	}
	SET(CURLOPT_USERAGENT, "upaas/" PACKAGE_VERSION);
#if LIBCURL_VERSION_NUM >= 0x075500
	SET(CURLOPT_PROTOCOLS_STR, "http,https");
	SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
	SET(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
	SET(CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
#undef SET
	return cc == CURLE_OK ? 0 : -EIO;
}

/* Where a request to url may go, and with which credentials: the base's
 * own host gets them, a host of redirect_hosts does not, others nothing. */
enum target { TARGET_REFUSED, TARGET_OWN, TARGET_OTHER };
static enum target http_target(struct http *h, const char *url)
{
	_cleanup_free_ char *scheme = NULL, *host = NULL;
	if (url_origin(url, &scheme, &host) < 0 || strcmp(scheme, h->scheme))
		return TARGET_REFUSED;
	if (!strcmp(host, h->host))
		return TARGET_OWN;
	for (size_t i = 0; i < h->redirect_hosts.n; i++)
		if (!strcasecmp(host, h->redirect_hosts.v[i]))
			return TARGET_OTHER;
	return TARGET_REFUSED;
}

/* One download, over its attempts. */
struct get_ctx {
	CURL *c;
	sink_fn sink;
	void *data;
	int sink_r;
	uint64_t delivered;     /* bytes the sink took, all attempts */
	uint64_t attempt_start; /* delivered when this attempt began */
	uint64_t skip;          /* head of a 200 to drop on a resumed attempt */
	uint64_t total;         /* the object's size, when have_total */
	bool have_total;
	bool started;           /* this attempt's answer is checked */
	char *validator;        /* the first answer's ETag, else Last-Modified */
	char *etag;             /* this answer's headers */
	char *last_modified;
	int64_t range_first;    /* this answer's Content-Range, -1: none */
	char *fail;             /* why this attempt's answer was refused */
	CURLcode cc;            /* the last transfer's result */
	uint64_t stall_ms;      /* the stall timeout; 0: none */
	uint64_t moved;         /* bytes received at the last move */
	uint64_t moved_ms;      /* when they last moved */
	bool stalled;
};

static void get_attempt_reset(struct get_ctx *g)
{
	free(g->etag);
	free(g->last_modified);
	free(g->fail);
	g->etag = g->last_modified = g->fail = NULL;
	g->range_first = -1;
	g->started = false;
	g->skip = 0;
	g->sink_r = 0;
	g->attempt_start = g->delivered;
	g->moved = 0;
	g->moved_ms = now_ms();
	g->stalled = false;
}

/* Fails a transfer in which no byte moved for the stall timeout
 * (libcurl's LOW_SPEED check averages over a window: seconds late). */
static int progress_cb(void *data, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow)
{
	struct get_ctx *g = data;
	uint64_t now = now_ms();

	if (proc_cancelled)
		return 1;
	if ((uint64_t)dlnow != g->moved) {
		g->moved = (uint64_t)dlnow;
		g->moved_ms = now;
		return 0;
	}
	if (g->stall_ms && now - g->moved_ms >= g->stall_ms) {
		g->stalled = true;
		return 1;
	}
	return 0;
}

static size_t header_cb(char *p, size_t size, size_t nmemb, void *data)
{
	struct get_ctx *g = data;
	size_t n = size * nmemb, len = n;
	unsigned long long first, last;

	while (len && (p[len - 1] == '\r' || p[len - 1] == '\n'))
		len--;
	_cleanup_free_ char *line = xstrndup(p, len);
	char *colon = strchr(line, ':');
	if (!strncmp(line, "HTTP/", 5)) {   /* a new answer (redirect) */
		free(g->etag);
		free(g->last_modified);
		g->etag = g->last_modified = NULL;
		g->range_first = -1;
		return n;
	}
	if (!colon)
		return n;
	*colon = '\0';
	const char *v = colon + 1;
	while (*v == ' ' || *v == '\t')
		v++;
	if (!strcasecmp(line, "etag")) {
		free(g->etag);
		g->etag = xstrdup(v);
	} else if (!strcasecmp(line, "last-modified")) {
		free(g->last_modified);
		g->last_modified = xstrdup(v);
	} else if (!strcasecmp(line, "content-range") &&
		   sscanf(v, "bytes %llu-%llu/", &first, &last) == 2) {
		g->range_first = (int64_t)first;
	}
	return n;
}


static bool is_redirect(long status)
{
	return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

static int http_result(CURL *c, CURLcode cc, const char *method, const char *url,
		       const char *key, const char *errbuf, struct err *e);

/*
 * Performs the request c is set up for (url first), following the redirects
 * that http_target() allows, at most REDIRECTS_MAX. Returns 0, the sink's
 * error, or -errno with a message that shows no credentials.
 */
static int http_perform(struct http *h, CURL *c, const char *url, const char *method,
			const char *key, struct get_ctx *g, char errbuf[CURL_ERROR_SIZE],
			struct err *e)
{
	_cleanup_free_ char *cur = xstrdup(url);

	for (int hop = 0;; hop++) {
		bool own = http_target(h, cur) == TARGET_OWN;
		CURLcode cc = CURLE_OK;
		/* the credentials go to the storage URL's host only */
		if (curl_easy_setopt(c, CURLOPT_URL, cur) != CURLE_OK ||
		    curl_easy_setopt(c, CURLOPT_USERNAME, own ? h->user : NULL) != CURLE_OK ||
		    curl_easy_setopt(c, CURLOPT_PASSWORD, own ? h->pass : NULL) != CURLE_OK)
			return err_set(e, -EIO, "cannot set up a request for '%s'", cur);
		errbuf[0] = '\0';
		cc = curl_easy_perform(c);
		if (g)
			g->cc = cc;
		if (g && g->sink_r < 0 && !g->fail)   /* the sink's failure is the caller's */
			return g->sink_r;
		long status = 0;
		char *next = NULL;
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
		if (cc != CURLE_OK || !is_redirect(status))
			return http_result(c, cc, method, cur, key, errbuf, e);
		curl_easy_getinfo(c, CURLINFO_REDIRECT_URL, &next);
		if (!next)
			return err_set(e, -EIO, "%s '%s': HTTP %ld without a Location", method, cur,
				       status);
		if (hop == REDIRECTS_MAX)
			return err_set(e, -EIO, "%s '%s': more than %d redirects", method, url,
				       REDIRECTS_MAX);
		if (http_target(h, next) == TARGET_REFUSED) {
			_cleanup_free_ char *shown = url_redacted(next);
			return err_set(e, -EACCES, "%s '%s' redirects to '%s': refused (not the scheme "
				       "and host of storage.url, nor one of storage.redirect_hosts)",
				       method, cur, shown);
		}
		free(cur);
		cur = xstrdup(next);
	}
}

/* Maps the outcome of a request to -errno with a message. */
static int http_result(CURL *c, CURLcode cc, const char *method, const char *url,
		       const char *key, const char *errbuf, struct err *e)
{
	long status = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (cc == CURLE_OK && status < 400)
		return 0;
	if (status == 404 || status == 410)
		return err_set(e, -ENOENT, "object '%s' not found at '%s' (HTTP %ld)", key, url,
			       status);
	if (status == 401 || status == 403)
		return err_set(e, -EACCES, "access to '%s' denied (HTTP %ld)", url, status);
	if (status >= 400)
		return err_set(e, -EIO, "%s '%s' failed: HTTP %ld", method, url, status);
	if (cc == CURLE_OPERATION_TIMEDOUT)
		return err_set(e, -ETIMEDOUT, "%s '%s' timed out: %s", method, url,
			       *errbuf ? errbuf : curl_easy_strerror(cc));
	return err_set(e, -EIO, "%s '%s' failed: %s", method, url,
		       *errbuf ? errbuf : curl_easy_strerror(cc));
}

/* Checks, at its first body byte, that an answer carries the object we
 * began with, from the byte we need. */
static int body_start(struct get_ctx *g)
{
	long status = 0;
	curl_off_t len = -1;
	const char *v = g->etag ? g->etag : g->last_modified;

	g->started = true;
	curl_easy_getinfo(g->c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(g->c, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &len);
	if (g->delivered == 0) {
		free(g->validator);
		g->validator = v ? xstrdup(v) : NULL;
		if (status == 200 && len >= 0) {
			g->total = (uint64_t)len;
			g->have_total = true;
		}
		return 0;
	}
	if (!v || strcmp(v, g->validator)) {
		g->fail = xasprintf("the object changed while it was read (%s, then %s)",
				    g->validator, v ? v : "none");
		return -ESTALE;
	}
	if (status == 206 && g->range_first != (int64_t)g->attempt_start) {
		g->fail = xasprintf("the server resumed at byte %lld, not at byte %llu",
				    (long long)g->range_first, (unsigned long long)g->attempt_start);
		return -EIO;
	}
	if (status == 200)
		g->skip = g->attempt_start;
	return 0;
}

static size_t write_cb(char *p, size_t size, size_t nmemb, void *data)
{
	struct get_ctx *g = data;
	size_t n = size * nmemb, drop = 0;
	long status = 0;
	int r = 0;

	/* the body of a redirect is not the object */
	curl_easy_getinfo(g->c, CURLINFO_RESPONSE_CODE, &status);
	if (is_redirect(status))
		return n;
	if (!g->started && (r = body_start(g)) < 0) {
		g->sink_r = r;
		return 0;
	}
	if (g->skip) {
		drop = g->skip < n ? (size_t)g->skip : n;
		g->skip -= drop;
	}
	if (n > drop)
		r = g->sink(g->data, p + drop, n - drop);
	if (r < 0) {
		g->sink_r = r;
		return 0;   /* makes curl stop with CURLE_WRITE_ERROR */
	}
	g->delivered += n - drop;
	return n;
}

/* true when a failed attempt is worth another one. */
static bool get_retryable(struct get_ctx *g, CURLcode cc)
{
	long status = 0;

	if (g->sink_r < 0 || cc == CURLE_OK)
		return false;
	/* bytes in the sink cannot be taken back: resume them, or give up */
	if (g->delivered && !g->validator)
		return false;
	curl_easy_getinfo(g->c, CURLINFO_RESPONSE_CODE, &status);
	if (cc == CURLE_HTTP_RETURNED_ERROR)
		return status >= 500 || status == 408 || status == 429;
	return cc != CURLE_URL_MALFORMAT && cc != CURLE_UNSUPPORTED_PROTOCOL &&
	       cc != CURLE_TOO_MANY_REDIRECTS;
}

static int http_get(struct storage *s, const char *key, sink_fn sink, void *data,
		    struct err *e)
{
	struct http *h = H(s);
	_cleanup_free_ char *url = http_url(h, key);
	struct get_ctx g = { .sink = sink, .data = data, .range_first = -1 };
	int r = 0;

	for (int attempt = 1;; attempt++) {
		_cleanup_curl_ CURL *c = curl_easy_init();
		struct curl_slist *hdrs = NULL;
		char errbuf[CURL_ERROR_SIZE] = "";

		get_attempt_reset(&g);
		g.c = c;
		g.stall_ms = (uint64_t)h->timeout * 1000;
		if (!c || http_setup(h, c, url, errbuf) < 0 ||
		    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb) != CURLE_OK ||
		    curl_easy_setopt(c, CURLOPT_WRITEDATA, &g) != CURLE_OK ||
		    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, header_cb) != CURLE_OK ||
		    curl_easy_setopt(c, CURLOPT_HEADERDATA, &g) != CURLE_OK ||
		    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L) != CURLE_OK ||
		    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, progress_cb) != CURLE_OK ||
		    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &g) != CURLE_OK) {
			r = err_set(e, -EIO, "cannot set up a request for '%s'", url);
			break;
		}
		if (g.delivered) {
			_cleanup_free_ char *range = xasprintf("Range: bytes=%llu-",
							       (unsigned long long)g.delivered);
			_cleanup_free_ char *ifr = xasprintf("If-Range: %s", g.validator);
			hdrs = curl_slist_append(hdrs, range);
			hdrs = curl_slist_append(hdrs, ifr);
			curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
		}
		_cleanup_err_ struct err perr = ERR_INIT;
		int pr = http_perform(h, c, url, "GET", key, &g, errbuf, &perr);
		CURLcode cc = pr < 0 && g.cc == CURLE_OK ? CURLE_HTTP_RETURNED_ERROR : g.cc;
		bool again = pr < 0 && get_retryable(&g, cc) && attempt <= h->retries;
		if (pr >= 0) {
			r = 0;
		} else if (g.fail) {
			r = err_set(e, g.sink_r, "GET '%s' failed: %s", url, g.fail);
		} else if (proc_cancelled && cc != CURLE_OK) {
			r = proc_check_cancel(e);
		} else if (g.sink_r < 0) {
			r = g.sink_r;   /* the sink's failure is the caller's to describe */
		} else if (again) {
			_cleanup_err_ struct err tmp = ERR_INIT;
			unsigned ms = 250u << (attempt - 1 < 5 ? attempt - 1 : 5);
			struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

			if (g.stalled)
				err_set(&tmp, -ETIMEDOUT, "GET '%s' failed: nothing moved for %ld s "
					"(storage.timeout)", url, h->timeout);
			else
				err_set(&tmp, pr, "%s", err_msg(&perr));
			if (g.delivered)
				log_warn("%s, resuming at byte %llu in %u ms", err_msg(&tmp),
					 (unsigned long long)g.delivered, ms);
			else
				log_warn("%s, retrying in %u ms", err_msg(&tmp), ms);
			curl_slist_free_all(hdrs);
			while (nanosleep(&ts, &ts) < 0 && errno == EINTR && !proc_cancelled)
				;
			if (proc_cancelled) {
				r = proc_check_cancel(e);
				break;
			}
			continue;
		} else {
			_cleanup_err_ struct err last = ERR_INIT;

			if (g.stalled)
				r = err_set(&last, -ETIMEDOUT, "GET '%s' failed: nothing moved for %ld s "
					    "(storage.timeout)", url, h->timeout);
			else
				r = err_set(&last, pr, "%s", err_msg(&perr));
			if (r < 0 && attempt > 1)
				err_set(e, r, "%s (%d attempts)", err_msg(&last), attempt);
			else if (r < 0)
				err_set(e, r, "%s", err_msg(&last));
		}
		curl_slist_free_all(hdrs);
		break;
	}
	if (r == 0 && g.have_total && g.delivered != g.total)
		r = err_set(e, -EIO, "GET '%s' was cut short: %llu of %llu bytes", url,
			    (unsigned long long)g.delivered, (unsigned long long)g.total);
	g.c = NULL;
	get_attempt_reset(&g);
	free(g.validator);
	return r;
}

static int http_stat(struct storage *s, const char *key, struct storage_stat *ret,
		     struct err *e)
{
	struct http *h = H(s);
	_cleanup_free_ char *url = http_url(h, key);
	_cleanup_curl_ CURL *c = curl_easy_init();
	char errbuf[CURL_ERROR_SIZE] = "";

	if (!c || http_setup(h, c, url, errbuf) < 0 ||
	    curl_easy_setopt(c, CURLOPT_NOBODY, 1L) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_FILETIME, 1L) != CURLE_OK)
		return err_set(e, -EIO, "cannot set up a request for '%s'", url);
	int r = http_perform(h, c, url, "HEAD", key, NULL, errbuf, e);
	if (r < 0)
		return r;

	curl_off_t len = -1, mtime = -1;
	curl_easy_getinfo(c, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &len);
	curl_easy_getinfo(c, CURLINFO_FILETIME_T, &mtime);
	ret->size = len > 0 ? (uint64_t)len : 0;
	ret->mtime = mtime > 0 ? (int64_t)mtime : 0;
	return 0;
}

const struct storage_ops storage_http_ops = {
	.name = "http",
	.caps = 0,
	.priv_size = sizeof(struct http),
	.open = http_open,
	.close = http_close,
	.get = http_get,
	.stat = http_stat,
};
