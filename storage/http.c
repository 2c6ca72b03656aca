/*
 * storage/http.c - the "http" handler: read-only GET/HEAD of
 * <storage.url>/<key> with libcurl, for hosts that pull packages from a
 * plain web server (or a public bucket). Writes, deletes and listing are
 * refused by the generic layer (no slots here): -EROFS / -EOPNOTSUPP.
 *
 * Each key segment is percent-encoded (RFC 3986 unreserved characters stay),
 * '/' separates segments. Redirects are followed (http/https only).
 * storage.connect_timeout bounds the connection and storage.timeout any
 * stall of the transfer, not the whole download: a large package on a slow
 * link may take longer. A GET that fails (transport error, 5xx) is retried
 * storage.retries times; one that delivered bytes resumes with Range from
 * the bytes the sink already took, with If-Range on the first answer's
 * ETag (or Last-Modified): an object that changed in between fails the
 * download, a server that ignores Range sends it whole and we drop the head.
 */
#define UPAAS_STORAGE_INTERNAL 1

#include <curl/curl.h>
#include <errno.h>
#include <string.h>
#include <time.h>

#include "storage/storage-int.h"

struct http {
	char *base;      /* without a trailing '/' */
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

static int http_open(struct storage *s, const struct cfg_storage *cfg, const char *state_dir,
		     struct err *e)
{
	struct http *h = H(s);
	const char *url = cfg->url;

	if (!url || !*url)
		return err_set(e, -EINVAL, "storage handler 'http' needs storage.url");
	if (strncmp(url, "http://", 7) && strncmp(url, "https://", 8))
		return err_set(e, -EINVAL, "storage.url '%s' is not an http:// or https:// URL",
			       url);
	/* refcounted by libcurl; the S3 handler may call it too */
	CURLcode cc = curl_global_init(CURL_GLOBAL_DEFAULT);
	if (cc != CURLE_OK)
		return err_set(e, -EIO, "cannot initialise libcurl: %s", curl_easy_strerror(cc));

	size_t n = strlen(url);
	while (n > 0 && url[n - 1] == '/')
		n--;
	h->base = xstrndup(url, n);
	h->timeout = cfg->timeout > 0 ? cfg->timeout : 0;
	h->connect_timeout = cfg->connect_timeout > 0 ? cfg->connect_timeout : 10;
	h->retries = cfg->retries > 0 ? (cfg->retries < 20 ? cfg->retries : 20) : 0;
	s->where = xstrdup(h->base);
	return 0;
}

static void http_close(struct storage *s)
{
	free(H(s)->base);
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
	SET(CURLOPT_FOLLOWLOCATION, 1L);
	SET(CURLOPT_MAXREDIRS, 10L);
	SET(CURLOPT_FAILONERROR, 1L);
	SET(CURLOPT_CONNECTTIMEOUT, h->connect_timeout);
	/* a stall longer than the timeout fails the transfer */
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
	int r = 0;

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
		CURLcode cc = curl_easy_perform(c);
		bool again = get_retryable(&g, cc) && attempt <= h->retries;
		if (g.fail) {
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
				http_result(c, cc, "GET", url, key, errbuf, &tmp);
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
				r = http_result(c, cc, "GET", url, key, errbuf, &last);
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
	CURLcode cc = curl_easy_perform(c);
	int r = http_result(c, cc, "HEAD", url, key, errbuf, e);
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
