/*
 * storage/http.c - the "http" handler: read-only GET/HEAD of
 * <storage.url>/<key> with libcurl, for hosts that pull packages from a
 * plain web server (or a public bucket). Writes, deletes and listing are
 * refused by the generic layer (no slots here): -EROFS / -EOPNOTSUPP.
 *
 * Each key segment is percent-encoded (RFC 3986 unreserved characters stay),
 * '/' separates segments. Redirects are followed (http/https only).
 * storage.timeout bounds the connection and any stall of the transfer,
 * not the whole download: a large package on a slow link may take longer.
 * A conditional GET (storage_get_if) sends If-None-Match with the server's
 * ETag, or If-Modified-Since with its Last-Modified when it gave no ETag.
 */
#define UPAAS_STORAGE_INTERNAL 1

#include <curl/curl.h>
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "storage/storage-int.h"

struct http {
	char *base;      /* without a trailing '/' */
	long timeout;    /* seconds */
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
	h->timeout = cfg->timeout > 0 ? cfg->timeout : 300;
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
	SET(CURLOPT_CONNECTTIMEOUT, h->timeout);
	/* a stall longer than the timeout fails the transfer */
	SET(CURLOPT_LOW_SPEED_LIMIT, 1L);
	SET(CURLOPT_LOW_SPEED_TIME, h->timeout);
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

struct get_ctx {
	sink_fn sink;
	void *data;
	int sink_r;
};

static size_t write_cb(char *p, size_t size, size_t nmemb, void *data)
{
	struct get_ctx *g = data;
	size_t n = size * nmemb;
	int r = g->sink(g->data, p, n);
	if (r < 0) {
		g->sink_r = r;
		return 0;   /* makes curl stop with CURLE_WRITE_ERROR */
	}
	return n;
}

static int http_get(struct storage *s, const char *key, sink_fn sink, void *data,
		    struct err *e)
{
	struct http *h = H(s);
	_cleanup_free_ char *url = http_url(h, key);
	_cleanup_curl_ CURL *c = curl_easy_init();
	char errbuf[CURL_ERROR_SIZE] = "";
	struct get_ctx g = { .sink = sink, .data = data };

	if (!c || http_setup(h, c, url, errbuf) < 0 ||
	    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_WRITEDATA, &g) != CURLE_OK)
		return err_set(e, -EIO, "cannot set up a request for '%s'", url);
	CURLcode cc = curl_easy_perform(c);
	if (g.sink_r < 0)   /* the sink's failure is the caller's to describe */
		return g.sink_r;
	return http_result(c, cc, "GET", url, key, errbuf, e);
}

/* A conditional GET: what came back besides the body. */
struct cond_ctx {
	struct get_ctx g;
	char *etag;            /* the answer's ETag */
	char *last_modified;   /* its Last-Modified */
};

static size_t cond_header_cb(char *p, size_t size, size_t nmemb, void *data)
{
	struct cond_ctx *cc = data;
	size_t n = size * nmemb, len = n;

	while (len && (p[len - 1] == '\r' || p[len - 1] == '\n'))
		len--;
	_cleanup_free_ char *line = xstrndup(p, len);
	char *colon = strchr(line, ':');
	if (!strncmp(line, "HTTP/", 5)) {   /* a new answer (a redirect) */
		free(cc->etag);
		free(cc->last_modified);
		cc->etag = cc->last_modified = NULL;
		return n;
	}
	if (!colon)
		return n;
	*colon = '\0';
	const char *v = colon + 1;
	while (*v == ' ' || *v == '\t')
		v++;
	if (!*v)
		return n;
	if (!strcasecmp(line, "etag")) {
		free(cc->etag);
		cc->etag = xstrdup(v);
	} else if (!strcasecmp(line, "last-modified")) {
		free(cc->last_modified);
		cc->last_modified = xstrdup(v);
	}
	return n;
}

/* Our ETag token of an answer without an ETag: its Last-Modified, marked
 * so that the next request asks If-Modified-Since instead. */
#define LM_PREFIX "lm:"

static int http_get_if(struct storage *s, const char *key, const char *etag,
		       struct buf *ret_etag, sink_fn sink, void *data, struct err *e)
{
	struct http *h = H(s);
	_cleanup_free_ char *url = http_url(h, key);
	_cleanup_curl_ CURL *c = curl_easy_init();
	char errbuf[CURL_ERROR_SIZE] = "";
	struct cond_ctx cc = { .g = { .sink = sink, .data = data } };
	struct curl_slist *hdrs = NULL;
	_cleanup_free_ char *cond = NULL;
	int r;

	if (!strncmp(etag, LM_PREFIX, strlen(LM_PREFIX)))
		cond = xasprintf("If-Modified-Since: %s", etag + strlen(LM_PREFIX));
	else if (*etag)
		cond = xasprintf("If-None-Match: %s", etag);
	if (cond)
		hdrs = curl_slist_append(hdrs, cond);
	if (!c || http_setup(h, c, url, errbuf) < 0 ||
	    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_WRITEDATA, &cc.g) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, cond_header_cb) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_HEADERDATA, &cc) != CURLE_OK ||
	    (hdrs && curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs) != CURLE_OK)) {
		curl_slist_free_all(hdrs);
		return err_set(e, -EIO, "cannot set up a request for '%s'", url);
	}
	CURLcode code = curl_easy_perform(c);
	long status = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (cc.g.sink_r < 0)    /* the sink's failure is the caller's to describe */
		r = cc.g.sink_r;
	else if (code == CURLE_OK && status == 304 && cond)
		r = STORAGE_NOT_MODIFIED;
	else
		r = http_result(c, code, "GET", url, key, errbuf, e);
	if (r == 0 && cc.etag)
		buf_adds(ret_etag, cc.etag);
	else if (r == 0 && cc.last_modified)
		buf_addf(ret_etag, LM_PREFIX "%s", cc.last_modified);
	curl_slist_free_all(hdrs);
	free(cc.etag);
	free(cc.last_modified);
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
	.get_if = http_get_if,
	.stat = http_stat,
};
