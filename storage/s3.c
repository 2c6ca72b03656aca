/*
 * storage/s3.c - the "s3" storage handler: AWS S3 and compatible servers
 * (Ceph radosgw, MinIO, ...) over libcurl, signed with storage/sigv4.c.
 *
 * Requests:
 *   put   single PUT up to multipart_threshold bytes, else
 *         CreateMultipartUpload, UploadPart (parallel, libcurl multi),
 *         CompleteMultipartUpload; any failure or abort -> AbortMultipartUpload
 *   get   GET, streamed to the sink; a GET cut short after some bytes
 *         resumes with Range from the bytes the sink already took, on
 *         condition (If-Match) that the object kept its ETag
 *   stat  HEAD
 *   list  ListObjectsV2 with continuation tokens
 *   del   DELETE (404 is success)
 *   presign  a query-string signed GET URL
 *   sweep ListMultipartUploads (+ ListParts for the last activity) under
 *         the prefix, AbortMultipartUpload of the idle ones
 *
 * Every request is retried with exponential backoff on transport errors,
 * 5xx, 408 and 429, up to cfg->retries times. Timeouts: connect_timeout for
 * the connection, and a stall timeout (cfg->timeout: no byte moved for that
 * long) instead of a deadline for the whole transfer, so that a large object
 * on a slow link arrives while a dead server is given up on quickly. Messages name the method, the
 * key, the bucket and the server's error code; never a secret (libcurl's
 * verbose mode, which would print the Authorization header, stays off).
 */
#define UPAAS_STORAGE_INTERNAL 1

#include <errno.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/crypto.h>

#include "storage/sigv4.h"
#include "storage/storage-int.h"

#define MiB ((int64_t)1024 * 1024)
#define S3_MIN_PART (5 * MiB)
#define S3_MAX_PART (5 * 1024 * MiB)
#define S3_MAX_PARTS 10000
/* Bodies we keep in memory: error documents, listings, upload ids. */
#define S3_RESP_MAX ((size_t)16 * 1024 * 1024)
#define S3_BACKOFF_MS 250u
#define S3_BACKOFF_MAX_MS 8000u

struct s3 {
	char *scheme;           /* "http" / "https" */
	char *host;             /* Host header: "127.0.0.1:7480", "b.s3.amazonaws.com" */
	char *base_path;        /* "" or "/bucket" (path style), after the endpoint's path */
	char *bucket;
	char *prefix;           /* "" or ending in '/' */
	char *region;
	char *access_key;
	char *secret_key;
	char *session_token;
	bool path_style;
	bool unsigned_payload;
	size_t threshold;
	size_t part_size;
	int parallel;
	int retries;
	long timeout;           /* stall timeout, seconds; 0: none */
	long connect_timeout;   /* seconds */
	bool curl_init;
	CURL *easy;             /* single requests; keeps its connection alive */
};

/* One HTTP request and what came back. */
struct s3_req {
	/* in */
	const char *method;
	const char *key;        /* full object key (prefix included); NULL: the bucket */
	const char *what;       /* for messages instead of "METHOD 'key'" */
	struct kvlist query;
	const char *body;       /* request body, not owned */
	size_t body_len;
	const char *payload_hash;   /* NULL: computed from body */
	const char *range;      /* Range header, or NULL */
	sink_fn sink;   /* where a 2xx body goes; NULL: into resp */
	void *sink_data;
	bool resumable;         /* a GET cut short resumes where it stopped */
	/* across attempts */
	char *validator;        /* the ETag of the first answer (If-Match) */
	uint64_t total;         /* the object's size, when known */
	bool have_total;
	uint64_t attempt_start; /* delivered when this attempt began */
	/* per attempt */
	CURL *h;
	struct curl_slist *hdrs;
	char *url;
	size_t body_off;
	char hash[65];
	char errbuf[CURL_ERROR_SIZE];
	/* out */
	CURLcode cc;
	long status;
	char *reason;           /* "Not Found" */
	struct buf resp;        /* error document or small 2xx body */
	char *etag;
	uint64_t content_length;
	bool have_length;
	int64_t last_modified;
	uint64_t delivered;     /* bytes handed to the sink, all attempts */
	int64_t range_first;    /* Content-Range's first byte; -1: none */
	uint64_t range_total;   /* Content-Range's "/total", when have_range_total */
	bool have_range_total;
	bool body_started;      /* this attempt's answer is checked */
	uint64_t attempt_body;  /* body bytes of this attempt's 2xx answer */
	uint64_t skip;          /* bytes of a 200 to drop (server ignored Range) */
	char *range_hdr;        /* this attempt's Range, owned */
	char *fail_msg;         /* why this attempt's body was refused */
	uint64_t stall_ms;      /* the stall timeout; 0: none */
	uint64_t moved;         /* bytes up and down at the last move */
	uint64_t moved_ms;      /* when they last moved */
	bool stalled;           /* given up: nothing moved for stall_ms */
	bool uncancellable;     /* cleanup (an abort): runs despite SIGTERM */
	bool cancelled;         /* stopped by SIGTERM/SIGINT */
	int sink_err;
};

enum outcome { OUT_OK, OUT_RETRY, OUT_FAIL };

struct s3_part {
	int number;
	struct buf data;
	char *etag;
	int attempts;
	uint64_t next_try_ms;
	bool in_flight;
	bool done;
	struct s3_req rq;
};

struct s3_upload {
	struct s3 *s3;
	char *key;              /* full key */
	struct buf cur;         /* the object (single PUT) or the part being filled */
	bool multipart;
	char *upload_id;
	struct s3_part **parts;
	size_t n_parts;
	size_t cap_parts;
	size_t first_open;      /* parts before this index are all done */
	size_t pending;         /* parts not done yet */
	size_t in_flight;
	CURLM *multi;
	bool failed;
	struct err err;         /* the first part failure */
};

/* ------------------------------------------------------------ helpers */

static void free_secret(char **p)
{
	if (*p) {
		OPENSSL_cleanse(*p, strlen(*p));
		free(*p);
		*p = NULL;
	}
}

static bool str_set(const char *s)
{
	return s && *s;
}

/* The full object key: prefix + key. */
static char *full_key(const struct s3 *s3, const char *key)
{
	return xasprintf("%s%s", s3->prefix, key);
}

/* A little jitter, without touching the process's random() state. */
static unsigned jitter(unsigned range)
{
	static uint64_t x;

	if (!x)
		x = (now_ms() << 20) ^ (uint64_t)getpid() ^ 0x9e3779b97f4a7c15ull;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return range ? (unsigned)(x % range) : 0;
}

/* Backoff before attempt n+1 (n >= 1): 250 ms doubling, capped, +-20 %. */
static unsigned backoff_ms(int n)
{
	unsigned ms = S3_BACKOFF_MS << (n - 1 < 6 ? n - 1 : 6);

	if (ms > S3_BACKOFF_MAX_MS)
		ms = S3_BACKOFF_MAX_MS;
	return ms - ms / 5 + jitter(ms / 5 * 2 + 1);
}

/* Sleeps ms, or less when a signal cancels (unless uncancellable). */
static void sleep_ms(unsigned ms, bool uncancellable)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		if (proc_cancelled && !uncancellable)
			return;
}

/* Text of the first <tag>...</tag> in xml, entities decoded; NULL if none. */
static char *xml_unescape(const char *p, size_t n)
{
	struct buf b = BUF_INIT;

	for (size_t i = 0; i < n; i++) {
		if (p[i] != '&') {
			buf_addch(&b, p[i]);
			continue;
		}
		const char *semi = memchr(p + i, ';', n - i);
		size_t len = semi ? (size_t)(semi - (p + i)) + 1 : 0;
		static const struct { const char *ent; char c; } ents[] = {
			{ "&amp;", '&' }, { "&lt;", '<' }, { "&gt;", '>' },
			{ "&quot;", '"' }, { "&apos;", '\'' },
		};
		bool done = false;

		for (size_t k = 0; k < ARRAY_SIZE(ents) && !done; k++) {
			if (len == strlen(ents[k].ent) && !memcmp(p + i, ents[k].ent, len)) {
				buf_addch(&b, ents[k].c);
				done = true;
			}
		}
		if (!done && len > 3 && len < 12 && p[i + 1] == '#') {
			/* numeric reference: &#233; or &#xE9; -> UTF-8 */
			char num[12];
			char *end;
			unsigned long cp;

			memcpy(num, p + i + 2, len - 3);
			num[len - 3] = '\0';
			if (num[0] == 'x' || num[0] == 'X')
				cp = strtoul(num + 1, &end, 16);
			else
				cp = strtoul(num, &end, 10);
			if (*end == '\0' && cp > 0 && cp <= 0x10ffff) {
				if (cp < 0x80) {
					buf_addch(&b, (char)cp);
				} else if (cp < 0x800) {
					buf_addch(&b, (char)(0xc0 | (cp >> 6)));
					buf_addch(&b, (char)(0x80 | (cp & 0x3f)));
				} else if (cp < 0x10000) {
					buf_addch(&b, (char)(0xe0 | (cp >> 12)));
					buf_addch(&b, (char)(0x80 | ((cp >> 6) & 0x3f)));
					buf_addch(&b, (char)(0x80 | (cp & 0x3f)));
				} else {
					buf_addch(&b, (char)(0xf0 | (cp >> 18)));
					buf_addch(&b, (char)(0x80 | ((cp >> 12) & 0x3f)));
					buf_addch(&b, (char)(0x80 | ((cp >> 6) & 0x3f)));
					buf_addch(&b, (char)(0x80 | (cp & 0x3f)));
				}
				done = true;
			}
		}
		if (done)
			i += len - 1;
		else
			buf_addch(&b, '&');
	}
	return buf_detach(&b);
}

/*
 * Finds <tag>text</tag> in [p, end) and returns the decoded text (caller
 * frees), or NULL. *next, when not NULL, is set past the closing tag.
 * Raw '<' never occurs in XML text, so a plain search cannot be fooled by
 * a key that looks like markup.
 */
static char *xml_find(const char *p, const char *end, const char *tag, const char **next)
{
	_cleanup_free_ char *open = xasprintf("<%s>", tag);
	_cleanup_free_ char *close = xasprintf("</%s>", tag);
	const char *a = memmem(p, (size_t)(end - p), open, strlen(open));

	if (!a)
		return NULL;
	a += strlen(open);
	const char *z = memmem(a, (size_t)(end - a), close, strlen(close));
	if (!z)
		return NULL;
	if (next)
		*next = z + strlen(close);
	return xml_unescape(a, (size_t)(z - a));
}

static void xml_escape(struct buf *b, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '&': buf_adds(b, "&amp;"); break;
		case '<': buf_adds(b, "&lt;"); break;
		case '>': buf_adds(b, "&gt;"); break;
		default: buf_addch(b, *s);
		}
	}
}

/* 2026-11-20T21:45:00.000Z -> unix seconds; 0 when unparsable. */
static int64_t parse_iso8601(const char *s)
{
	struct tm tm = { 0 };
	const char *end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);

	return end ? (int64_t)timegm(&tm) : 0;
}

/* ------------------------------------------------------------ requests */

static void req_reset(struct s3_req *rq)
{
	curl_slist_free_all(rq->hdrs);
	rq->hdrs = NULL;
	free(rq->url);
	rq->url = NULL;
	free(rq->reason);
	rq->reason = NULL;
	free(rq->etag);
	rq->etag = NULL;
	buf_free(&rq->resp);
	buf_init(&rq->resp, S3_RESP_MAX);
	rq->body_off = 0;
	rq->errbuf[0] = '\0';
	rq->cc = CURLE_OK;
	rq->status = 0;
	rq->content_length = 0;
	rq->have_length = false;
	rq->last_modified = 0;
	rq->range_first = -1;
	rq->range_total = 0;
	rq->have_range_total = false;
	rq->body_started = false;
	rq->attempt_body = 0;
	rq->skip = 0;
	free(rq->range_hdr);
	rq->range_hdr = NULL;
	free(rq->fail_msg);
	rq->fail_msg = NULL;
	rq->attempt_start = rq->delivered;
	rq->moved = 0;
	rq->moved_ms = now_ms();
	rq->stalled = false;
	rq->cancelled = false;
	rq->sink_err = 0;
}

/* libcurl's progress callback: fails a transfer in which no byte moved,
 * either way, for the stall timeout (libcurl's own LOW_SPEED check
 * averages over a window, and so waits seconds longer). */
static int req_progress(void *data, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
			curl_off_t ulnow)
{
	struct s3_req *rq = data;
	uint64_t moved = (uint64_t)dlnow + (uint64_t)ulnow, now = now_ms();

	if (proc_cancelled && !rq->uncancellable) {
		rq->cancelled = true;
		return 1;
	}
	if (moved != rq->moved) {
		rq->moved = moved;
		rq->moved_ms = now;
		return 0;
	}
	if (rq->stall_ms && now - rq->moved_ms >= rq->stall_ms) {
		rq->stalled = true;
		return 1;
	}
	return 0;
}

static void req_free(struct s3_req *rq)
{
	req_reset(rq);
	buf_free(&rq->resp);
	kvlist_free(&rq->query);
	free(rq->validator);
	rq->validator = NULL;
}

/*
 * Checks, at its first body byte, that the answer of a resumed GET carries
 * the rest of the same object: a 206 from the byte we asked for, or a 200
 * whose head we then drop. -ESTALE with rq->fail_msg when it does not.
 */
static int req_body_start(struct s3_req *rq, long status)
{
	rq->body_started = true;
	if (!rq->validator) {
		/* the first answer: what later attempts must match */
		if (rq->etag)
			rq->validator = xstrdup(rq->etag);
		if (status == 200 && rq->have_length) {
			rq->total = rq->content_length;
			rq->have_total = true;
		} else if (status == 206 && rq->have_range_total) {
			rq->total = rq->range_total;
			rq->have_total = true;
		}
		return 0;
	}
	if (rq->etag && strcmp(rq->etag, rq->validator)) {
		rq->fail_msg = xasprintf("the object changed while it was read (ETag %s, then %s)",
					 rq->validator, rq->etag);
		return -ESTALE;
	}
	if (status == 206 && rq->range_first != (int64_t)rq->attempt_start) {
		rq->fail_msg = xasprintf("the server resumed at byte %lld, not at byte %llu",
					 (long long)rq->range_first,
					 (unsigned long long)rq->attempt_start);
		return -EIO;
	}
	if (status == 200)
		rq->skip = rq->attempt_start;
	return 0;
}

static size_t req_write(char *p, size_t size, size_t nmemb, void *data)
{
	struct s3_req *rq = data;
	size_t n = size * nmemb;
	long status = 0;

	curl_easy_getinfo(rq->h, CURLINFO_RESPONSE_CODE, &status);
	if (rq->sink && status >= 200 && status < 300) {
		size_t drop = 0;
		int r = 0;

		if (!rq->body_started && (r = req_body_start(rq, status)) < 0) {
			rq->sink_err = r;
			return 0;
		}
		rq->attempt_body += n;
		if (rq->skip) {
			drop = rq->skip < n ? (size_t)rq->skip : n;
			rq->skip -= drop;
		}
		if (n > drop)
			r = rq->sink(rq->sink_data, p + drop, n - drop);
		if (r < 0) {
			rq->sink_err = r;
			return 0;
		}
		rq->delivered += n - drop;
		return n;
	}
	if (buf_add(&rq->resp, p, n) < 0) {
		/* an overlong error document is cut; an overlong answer fails */
		if (rq->sink || status >= 300)
			return n;
		rq->sink_err = -E2BIG;
		return 0;
	}
	return n;
}

static bool header_is(const char *line, size_t n, const char *name, const char **val)
{
	size_t len = strlen(name);

	if (n <= len || strncasecmp(line, name, len) || line[len] != ':')
		return false;
	*val = line + len + 1;
	return true;
}

static size_t req_header(char *p, size_t size, size_t nmemb, void *data)
{
	struct s3_req *rq = data;
	size_t n = size * nmemb;
	_cleanup_free_ char *line = NULL;
	const char *v;
	size_t len = n;

	while (len && (p[len - 1] == '\r' || p[len - 1] == '\n'))
		len--;
	line = xstrndup(p, len);
	if (!strncmp(line, "HTTP/", 5)) {
		/* a new response (after 100 Continue): start over */
		const char *sp = strchr(line, ' ');

		free(rq->reason);
		rq->reason = NULL;
		if (sp && (sp = strchr(sp + 1, ' ')))
			rq->reason = xstrdup(sp + 1);
		return n;
	}
	if (header_is(line, len, "etag", &v)) {
		while (*v == ' ')
			v++;
		free(rq->etag);
		rq->etag = xstrdup(v);
	} else if (header_is(line, len, "content-length", &v)) {
		int64_t cl;

		while (*v == ' ')
			v++;
		if (parse_int64(v, 0, INT64_MAX, &cl) == 0) {
			rq->content_length = (uint64_t)cl;
			rq->have_length = true;
		}
	} else if (header_is(line, len, "content-range", &v)) {
		/* bytes FIRST-LAST/TOTAL */
		unsigned long long first, last, total;

		while (*v == ' ')
			v++;
		if (sscanf(v, "bytes %llu-%llu/%llu", &first, &last, &total) == 3) {
			rq->range_first = (int64_t)first;
			rq->range_total = total;
			rq->have_range_total = true;
		} else if (sscanf(v, "bytes %llu-%llu/", &first, &last) == 2) {
			rq->range_first = (int64_t)first;
		}
	} else if (header_is(line, len, "last-modified", &v)) {
		time_t t = curl_getdate(v, NULL);

		rq->last_modified = t > 0 ? (int64_t)t : 0;
	}
	return n;
}

static size_t req_read(char *p, size_t size, size_t nmemb, void *data)
{
	struct s3_req *rq = data;
	size_t n = size * nmemb;

	if (n > rq->body_len - rq->body_off)
		n = rq->body_len - rq->body_off;
	memcpy(p, rq->body + rq->body_off, n);
	rq->body_off += n;
	return n;
}

static int req_seek(void *data, curl_off_t off, int origin)
{
	struct s3_req *rq = data;

	if (origin != SEEK_SET || off < 0 || (size_t)off > rq->body_len)
		return CURL_SEEKFUNC_FAIL;
	rq->body_off = (size_t)off;
	return CURL_SEEKFUNC_OK;
}

/* The URI-encoded path of a request: base path, then the key. */
static void req_path(const struct s3 *s3, const struct s3_req *rq, struct buf *out)
{
	buf_adds(out, s3->base_path);
	if (rq->key) {
		buf_addch(out, '/');
		sigv4_uri_encode(out, rq->key, strlen(rq->key), true);
	}
	if (out->len == 0)
		buf_addch(out, '/');
}

static struct sigv4_key s3_sigkey(const struct s3 *s3)
{
	return (struct sigv4_key){
		.access_key = s3->access_key,
		.secret_key = s3->secret_key,
		.session_token = s3->session_token,
		.region = s3->region,
		.service = "s3",
	};
}

/* Prepares handle h for one attempt of rq: URL, signature, callbacks. */
static int req_setup(struct s3 *s3, CURL *h, struct s3_req *rq, struct err *e)
{
	_cleanup_buf_ struct buf path = BUF_INIT;
	_cleanup_buf_ struct buf url = BUF_INIT;
	struct sigv4_out sig = SIGV4_OUT_INIT;
	struct sigv4_key k = s3_sigkey(s3);
	struct kvlist extra = KVLIST_INIT;
	int r;

	req_reset(rq);
	rq->h = h;
	if (rq->resumable && rq->delivered > 0)
		rq->range_hdr = xasprintf("bytes=%llu-", (unsigned long long)rq->delivered);
	const char *range = rq->range_hdr ? rq->range_hdr : rq->range;
	const char *if_match = rq->range_hdr ? rq->validator : NULL;
	if (!rq->payload_hash && !rq->hash[0]) {
		if (s3->unsigned_payload && rq->body_len)
			memcpy(rq->hash, SIGV4_UNSIGNED_PAYLOAD, sizeof(SIGV4_UNSIGNED_PAYLOAD));
		else
			sha256_hex(rq->body ? rq->body : "", rq->body_len, rq->hash);
	}
	req_path(s3, rq, &path);
	buf_addf(&url, "%s://%s%s", s3->scheme, s3->host, path.p);
	if (rq->query.n) {
		buf_addch(&url, '?');
		sigv4_canonical_query(&url, &rq->query);
	}
	rq->url = buf_detach(&url);

	struct sigv4_req sr = {
		.method = rq->method,
		.host = s3->host,
		.path = path.p,
		.query = &rq->query,
		.payload_hash = rq->payload_hash ? rq->payload_hash : rq->hash,
		.content_sha256 = true,
	};
	if (if_match)
		kvlist_set(&extra, "if-match", if_match);
	if (range)
		kvlist_set(&extra, "range", range);
	if (extra.n)
		sr.headers = &extra;
	r = sigv4_sign(&k, &sr, time(NULL), &sig);
	kvlist_free(&extra);
	if (r < 0) {
		sigv4_out_free(&sig);
		return err_set(e, r, "s3: cannot sign %s '%s' in bucket '%s'", rq->method,
			       rq->key ? rq->key : "", s3->bucket);
	}

	_cleanup_free_ char *host = xasprintf("Host: %s", s3->host);
	rq->hdrs = curl_slist_append(rq->hdrs, host);
	for (size_t i = 0; i < sig.headers.n; i++)
		rq->hdrs = curl_slist_append(rq->hdrs, sig.headers.v[i]);
	/* the signature goes out in the headers: wipe our copy */
	for (size_t i = 0; i < sig.headers.n; i++)
		OPENSSL_cleanse(sig.headers.v[i], strlen(sig.headers.v[i]));
	sigv4_out_free(&sig);
	if (range) {
		_cleanup_free_ char *rh = xasprintf("Range: %s", range);
		rq->hdrs = curl_slist_append(rq->hdrs, rh);
	}
	if (if_match) {
		_cleanup_free_ char *ih = xasprintf("If-Match: %s", if_match);
		rq->hdrs = curl_slist_append(rq->hdrs, ih);
	}
	/* no 100-continue round trip; the body is small or already in memory */
	rq->hdrs = curl_slist_append(rq->hdrs, "Expect:");
	if (!strcmp(rq->method, "POST"))
		rq->hdrs = curl_slist_append(rq->hdrs, "Content-Type: application/xml");
	else if (!strcmp(rq->method, "PUT"))
		rq->hdrs = curl_slist_append(rq->hdrs, "Content-Type: application/octet-stream");

	curl_easy_setopt(h, CURLOPT_URL, rq->url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, rq->hdrs);
	curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	/* no deadline for the whole transfer: a stall fails it */
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, s3->connect_timeout);
	rq->stall_ms = s3->timeout > 0 ? (uint64_t)s3->timeout * 1000 : 0;
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, req_progress);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, rq);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, rq->errbuf);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, req_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, rq);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, req_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, rq);
	curl_easy_setopt(h, CURLOPT_BUFFERSIZE, 512L * 1024);
	curl_easy_setopt(h, CURLOPT_VERBOSE, 0L);
	if (!strcmp(rq->method, "HEAD")) {
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	} else if (!strcmp(rq->method, "PUT")) {
		curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(h, CURLOPT_UPLOAD_BUFFERSIZE, 2L * 1024 * 1024);
		curl_easy_setopt(h, CURLOPT_READFUNCTION, req_read);
		curl_easy_setopt(h, CURLOPT_READDATA, rq);
		curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, req_seek);
		curl_easy_setopt(h, CURLOPT_SEEKDATA, rq);
		curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)rq->body_len);
	} else if (!strcmp(rq->method, "POST")) {
		curl_easy_setopt(h, CURLOPT_POST, 1L);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, rq->body ? rq->body : "");
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->body_len);
	} else if (strcmp(rq->method, "GET")) {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, rq->method);
	}
	return 0;
}

/* Records the result of a finished attempt. */
static void req_done(struct s3_req *rq, CURLcode cc)
{
	rq->cc = cc;
	curl_easy_getinfo(rq->h, CURLINFO_RESPONSE_CODE, &rq->status);
}

static enum outcome req_outcome(const struct s3_req *rq)
{
	/* bytes already in the sink cannot be taken back: a GET that
	 * delivered some goes on from there, or not at all */
	bool again = !rq->delivered || (rq->resumable && rq->validator);

	/* an answer that came is taken, even after a SIGTERM: a completed
	 * upload must not be reported as failed */
	if (rq->sink_err || rq->cancelled)
		return OUT_FAIL;
	if (rq->cc != CURLE_OK)
		return again ? OUT_RETRY : OUT_FAIL;
	if (rq->status >= 200 && rq->status < 300) {
		/* CompleteMultipartUpload may report an error inside a 200 */
		if (!rq->sink && strstr(rq->resp.p, "<Error>"))
			return OUT_RETRY;
		/* a body shorter than announced: the connection was cut */
		if (rq->sink && rq->have_length && rq->attempt_body != rq->content_length)
			return again ? OUT_RETRY : OUT_FAIL;
		return OUT_OK;
	}
	if (rq->status >= 500 || rq->status == 408 || rq->status == 429)
		return again ? OUT_RETRY : OUT_FAIL;
	return OUT_FAIL;
}

/* Records the failure of rq in e: "s3: PUT 'k' in bucket 'b' failed: 403
 * SignatureDoesNotMatch". Returns -EACCES, -ENOENT, the sink's error or -EIO. */
static int req_error(const struct s3 *s3, const struct s3_req *rq, int attempts, struct err *e)
{
	_cleanup_buf_ struct buf what = BUF_INIT;
	_cleanup_buf_ struct buf why = BUF_INIT;
	_cleanup_free_ char *code = NULL, *msg = NULL;
	int r = -EIO;

	if (rq->sink_err == -E2BIG && !rq->sink)
		return err_set(e, -EIO, "s3: answer to %s in bucket '%s' is larger than %zu bytes",
			       rq->method, s3->bucket, S3_RESP_MAX);
	if (rq->sink_err && !rq->fail_msg)
		return rq->sink_err;
	if (rq->cancelled || (proc_cancelled && !rq->uncancellable && rq->cc != CURLE_OK))
		return proc_check_cancel(e);
	if (rq->what)
		buf_adds(&what, rq->what);
	else if (rq->key)
		buf_addf(&what, "%s '%s'", rq->method, rq->key);
	else
		buf_adds(&what, rq->method);

	if (rq->fail_msg) {
		buf_adds(&why, rq->fail_msg);
		r = rq->sink_err;
	} else if (rq->range_hdr && rq->status == 412) {
		/* If-Match of a resumed GET */
		buf_addf(&why, "the object changed while it was read (%ld PreconditionFailed "
			 "resuming at byte %llu)", rq->status, (unsigned long long)rq->attempt_start);
		r = -ESTALE;
	} else if (rq->stalled) {
		buf_addf(&why, "nothing moved for %llu s (storage.timeout)",
			 (unsigned long long)(rq->stall_ms / 1000));
	} else if (rq->cc != CURLE_OK) {
		buf_adds(&why, rq->errbuf[0] ? rq->errbuf : curl_easy_strerror(rq->cc));
	} else {
		const char *end = rq->resp.p + rq->resp.len;

		code = xml_find(rq->resp.p, end, "Code", NULL);
		msg = xml_find(rq->resp.p, end, "Message", NULL);
		buf_addf(&why, "%ld %s", rq->status,
			 str_set(code) ? code : rq->reason ? rq->reason : "");
		buf_rtrim(&why);
		if (str_set(msg) && strlen(msg) < 300)
			buf_addf(&why, " (%s)", msg);
		if (rq->status == 403)
			r = -EACCES;
		else if (rq->status == 404)
			r = -ENOENT;
	}
	if (attempts > 1)
		buf_addf(&why, " (%d attempts)", attempts);
	return err_set(e, r, "s3: %s in bucket '%s' failed: %s", what.p, s3->bucket, why.p);
}

/* Runs rq on the shared handle, retrying with backoff. 0 or -errno. */
static int s3_do(struct s3 *s3, struct s3_req *rq, int attempts, struct err *e)
{
	if (attempts < 1)
		attempts = s3->retries + 1;
	for (int i = 1;; i++) {
		curl_easy_reset(s3->easy);
		int r = req_setup(s3, s3->easy, rq, e);

		if (r < 0)
			return r;
		req_done(rq, curl_easy_perform(s3->easy));
		switch (req_outcome(rq)) {
		case OUT_OK:
			return 0;
		case OUT_RETRY:
			if (proc_cancelled && !rq->uncancellable)
				return proc_check_cancel(e);
			if (i < attempts) {
				_cleanup_err_ struct err tmp = ERR_INIT;
				unsigned ms = backoff_ms(i);

				req_error(s3, rq, 1, &tmp);
				if (rq->resumable && rq->delivered)
					log_warn("%s, resuming at byte %llu in %u ms", err_msg(&tmp),
						 (unsigned long long)rq->delivered, ms);
				else
					log_warn("%s, retrying in %u ms", err_msg(&tmp), ms);
				sleep_ms(ms, rq->uncancellable);
				if (proc_cancelled && !rq->uncancellable)
					return proc_check_cancel(e);
				continue;
			}
			return req_error(s3, rq, i, e);
		case OUT_FAIL:
			return req_error(s3, rq, i, e);
		}
	}
}

/* ------------------------------------------------------------ open/close */

static void s3_close(struct storage *st)
{
	struct s3 *s3 = st->priv;

	if (!s3)
		return;
	if (s3->easy)
		curl_easy_cleanup(s3->easy);
	s3->easy = NULL;
	free(s3->scheme);
	free(s3->host);
	free(s3->base_path);
	free(s3->bucket);
	free(s3->prefix);
	free(s3->region);
	free(s3->access_key);
	free_secret(&s3->secret_key);
	free_secret(&s3->session_token);
	if (s3->curl_init)
		curl_global_cleanup();
	s3->curl_init = false;
}

/* A bucket name that is also a DNS label sequence (for virtual hosts). */
static bool bucket_ok(const char *b)
{
	size_t n = strlen(b);

	if (n < 3 || n > 63)
		return false;
	for (const char *p = b; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' ||
		      *p == '_' || (*p >= 'A' && *p <= 'Z')))
			return false;
	return true;
}

static int s3_open(struct storage *st, const struct cfg_storage *cfg, const char *state_dir,
		   struct err *e)
{
	struct s3 *s3 = st->priv;
	const char *endpoint = cfg->endpoint;
	_cleanup_free_ char *def_endpoint = NULL;
	const char *access = str_set(cfg->access_key) ? cfg->access_key : getenv("AWS_ACCESS_KEY_ID");
	const char *secret = str_set(cfg->secret_key) ? cfg->secret_key : getenv("AWS_SECRET_ACCESS_KEY");
	const char *token = str_set(cfg->session_token) ? cfg->session_token : getenv("AWS_SESSION_TOKEN");

	s3->region = xstrdup(str_set(cfg->region) ? cfg->region : "us-east-1");
	if (!str_set(cfg->bucket) || !bucket_ok(cfg->bucket)) {
		s3_close(st);
		return err_set(e, -EINVAL, "s3: %s bucket name '%s'",
			       str_set(cfg->bucket) ? "invalid" : "no", cfg->bucket ? cfg->bucket : "");
	}
	if (!str_set(access) || !str_set(secret)) {
		s3_close(st);
		return err_set(e, -EINVAL, "s3: no credentials for bucket '%s' (set access_key and "
			       "secret_key or secret_key_file, or AWS_ACCESS_KEY_ID and "
			       "AWS_SECRET_ACCESS_KEY)", cfg->bucket);
	}
	if (!str_set(endpoint)) {
		if (!strcmp(s3->region, "us-east-1"))
			def_endpoint = xstrdup("https://s3.amazonaws.com");
		else
			def_endpoint = xasprintf("https://s3.%s.amazonaws.com", s3->region);
		endpoint = def_endpoint;
	}

	/* scheme://host[:port][/path] */
	const char *sep = strstr(endpoint, "://");
	if (!sep || (strncmp(endpoint, "http", 4) || (sep - endpoint != 4 && sep - endpoint != 5)) ||
	    (sep - endpoint == 5 && endpoint[4] != 's') || !sep[3] || sep[3] == '/' ||
	    strpbrk(endpoint, " \t\r\n?#@")) {
		s3_close(st);
		return err_set(e, -EINVAL, "s3: invalid endpoint '%s' (want http[s]://host[:port])",
			       endpoint);
	}
	s3->scheme = xstrndup(endpoint, (size_t)(sep - endpoint));
	const char *hp = sep + 3;
	const char *slash = strchr(hp, '/');
	_cleanup_free_ char *hostport = slash ? xstrndup(hp, (size_t)(slash - hp)) : xstrdup(hp);
	_cleanup_free_ char *epath = xstrdup(slash ? slash : "");
	size_t el = strlen(epath);
	while (el && epath[el - 1] == '/')
		epath[--el] = '\0';

	s3->bucket = xstrdup(cfg->bucket);
	s3->path_style = cfg->path_style;
	if (cfg->path_style) {
		s3->host = xstrdup(hostport);
		s3->base_path = xasprintf("%s/%s", epath, cfg->bucket);
	} else {
		if (strchr(cfg->bucket, '.') && !strcmp(s3->scheme, "https"))
			log_warn("s3: bucket '%s' has a dot; TLS certificates of virtual hosts "
				 "do not cover it, consider path_style = true", cfg->bucket);
		s3->host = xasprintf("%s.%s", cfg->bucket, hostport);
		s3->base_path = xstrdup(epath);
	}

	const char *pre = cfg->prefix ? cfg->prefix : "";
	while (*pre == '/')
		pre++;
	size_t pl = strlen(pre);
	s3->prefix = pl && pre[pl - 1] != '/' ? xasprintf("%s/", pre) : xstrdup(pre);

	s3->access_key = xstrdup(access);
	s3->secret_key = xstrdup(secret);
	s3->session_token = str_set(token) ? xstrdup(token) : NULL;
	s3->unsigned_payload = cfg->unsigned_payload;
	s3->threshold = cfg->multipart_threshold > 0 ? (size_t)cfg->multipart_threshold : 16 * MiB;
	s3->part_size = cfg->part_size > 0 ? (size_t)cfg->part_size : 16 * MiB;
	if (s3->part_size < S3_MIN_PART || s3->part_size > S3_MAX_PART) {
		int64_t ps = cfg->part_size;

		s3_close(st);
		return err_set(e, -EINVAL, "s3: part_size %lld is outside 5 MiB .. 5 GiB",
			       (long long)ps);
	}
	s3->parallel = cfg->parallel > 0 ? cfg->parallel : 4;
	if (s3->parallel > 64)
		s3->parallel = 64;
	s3->retries = cfg->retries >= 0 ? cfg->retries : 4;
	if (s3->retries > 20)
		s3->retries = 20;
	s3->timeout = cfg->timeout > 0 ? cfg->timeout : 0;
	s3->connect_timeout = cfg->connect_timeout > 0 ? cfg->connect_timeout : 10;

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		s3_close(st);
		return err_set(e, -EIO, "s3: cannot initialise libcurl");
	}
	s3->curl_init = true;
	s3->easy = curl_easy_init();
	if (!s3->easy) {
		s3_close(st);
		return err_set(e, -ENOMEM, "s3: cannot create a libcurl handle");
	}
	st->where = xasprintf("s3://%s/%s", s3->bucket, s3->prefix);
	return 0;
}

/* ------------------------------------------------------------ multipart */

static int mp_create(struct s3_upload *u, struct err *e)
{
	struct s3_req rq = { .method = "POST", .key = u->key };
	int r;

	kvlist_set(&rq.query, "uploads", "");
	rq.what = xasprintf("CreateMultipartUpload '%s'", u->key);
	r = s3_do(u->s3, &rq, 0, e);
	if (r == 0) {
		u->upload_id = xml_find(rq.resp.p, rq.resp.p + rq.resp.len, "UploadId", NULL);
		if (!str_set(u->upload_id))
			r = err_set(e, -EIO, "s3: %s in bucket '%s' returned no UploadId", rq.what,
				    u->s3->bucket);
	}
	free((char *)rq.what);
	req_free(&rq);
	return r;
}

static void part_free(struct s3_part *p)
{
	if (!p)
		return;
	if (p->rq.h)
		curl_easy_cleanup(p->rq.h);
	free((char *)p->rq.what);
	req_free(&p->rq);
	buf_free(&p->data);
	free(p->etag);
	free(p);
}

static void part_start(struct s3_upload *u, struct s3_part *p)
{
	CURL *h = curl_easy_init();
	int r;

	if (!h) {
		err_set(&u->err, -ENOMEM, "s3: cannot create a libcurl handle");
		u->failed = true;
		return;
	}
	p->rq.body = p->data.p;
	p->rq.body_len = p->data.len;
	r = req_setup(u->s3, h, &p->rq, &u->err);
	if (r < 0) {
		curl_easy_cleanup(h);
		p->rq.h = NULL;
		u->failed = true;
		return;
	}
	curl_easy_setopt(h, CURLOPT_PRIVATE, p);
	if (curl_multi_add_handle(u->multi, h) != CURLM_OK) {
		curl_easy_cleanup(h);
		p->rq.h = NULL;
		err_set(&u->err, -EIO, "s3: cannot queue part %d of '%s'", p->number, u->key);
		u->failed = true;
		return;
	}
	p->attempts++;
	p->in_flight = true;
	u->in_flight++;
}

/* Starts queued parts while there is room and their retry time has come. */
static void mp_start_ready(struct s3_upload *u)
{
	uint64_t now = now_ms();

	while (u->first_open < u->n_parts && u->parts[u->first_open]->done)
		u->first_open++;
	for (size_t i = u->first_open; i < u->n_parts && !u->failed; i++) {
		struct s3_part *p = u->parts[i];

		if ((int)u->in_flight >= u->s3->parallel)
			break;
		if (!p->done && !p->in_flight && p->next_try_ms <= now)
			part_start(u, p);
	}
}

/* A part finished (one attempt): success, a retry later, or the failure. */
static void part_finished(struct s3_upload *u, struct s3_part *p, CURLcode cc)
{
	req_done(&p->rq, cc);
	curl_multi_remove_handle(u->multi, p->rq.h);
	curl_easy_cleanup(p->rq.h);
	p->rq.h = NULL;
	p->in_flight = false;
	u->in_flight--;

	enum outcome o = req_outcome(&p->rq);
	if (o == OUT_OK && !str_set(p->rq.etag)) {
		err_set(&u->err, -EIO, "s3: %s in bucket '%s' returned no ETag", p->rq.what,
			u->s3->bucket);
		u->failed = true;
		return;
	}
	if (o == OUT_OK) {
		p->etag = TAKE_PTR(p->rq.etag);
		p->done = true;
		buf_free(&p->data);
		req_reset(&p->rq);
		u->pending--;
		return;
	}
	if (o == OUT_RETRY && p->attempts <= u->s3->retries) {
		_cleanup_err_ struct err tmp = ERR_INIT;
		unsigned ms = backoff_ms(p->attempts);

		req_error(u->s3, &p->rq, 1, &tmp);
		log_warn("%s, retrying in %u ms", err_msg(&tmp), ms);
		p->next_try_ms = now_ms() + ms;
		return;
	}
	req_error(u->s3, &p->rq, p->attempts, &u->err);
	u->failed = true;
}

/* Moves the transfers on; with block, waits (up to 1 s) for activity. */
static void mp_pump(struct s3_upload *u, bool block)
{
	int running = 0, left = 0;
	CURLMsg *msg;

	mp_start_ready(u);
	curl_multi_perform(u->multi, &running);
	while ((msg = curl_multi_info_read(u->multi, &left))) {
		struct s3_part *p = NULL;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&p);
		part_finished(u, p, msg->data.result);
	}
	if (u->failed)
		return;
	mp_start_ready(u);
	if (!block)
		return;

	/* wait for the sockets, or until the next retry is due */
	int timeout = 1000;
	bool waiting = false;
	uint64_t now = now_ms();
	for (size_t i = u->first_open; i < u->n_parts; i++) {
		struct s3_part *p = u->parts[i];

		if (!p->done && !p->in_flight) {
			int64_t d = p->next_try_ms > now ? (int64_t)(p->next_try_ms - now) : 0;
			waiting = true;
			if (d < timeout)
				timeout = (int)d;
		}
	}
	if (u->in_flight)
		curl_multi_poll(u->multi, NULL, 0, timeout, NULL);
	else if (waiting && timeout > 0)
		sleep_ms((unsigned)timeout, false);
}

/* Blocks until fewer than max parts are pending (or a part failed). */
static int mp_wait(struct s3_upload *u, size_t max, struct err *e)
{
	while (!u->failed && u->pending > max && !proc_cancelled)
		mp_pump(u, true);
	if (proc_cancelled && !u->failed)
		return proc_check_cancel(e);
	if (u->failed) {
		err_set(e, u->err.code, "%s", err_msg(&u->err));
		return u->err.code < 0 ? u->err.code : -EIO;
	}
	return 0;
}

/* Queues data (taken over) as the next part. */
static int mp_submit(struct s3_upload *u, struct buf *data, struct err *e)
{
	struct s3_part *p;
	int r;

	if (u->n_parts >= S3_MAX_PARTS)
		return err_set(e, -EFBIG, "s3: '%s' needs more than %d parts of %zu bytes; "
			       "raise part_size", u->key, S3_MAX_PARTS, u->s3->part_size);
	/* at most `parallel` parts in memory besides the one being filled */
	r = mp_wait(u, (size_t)u->s3->parallel - 1, e);
	if (r < 0)
		return r;

	p = xcalloc(1, sizeof(*p));
	p->number = (int)u->n_parts + 1;
	p->data = *data;
	buf_init(data, data->max);
	p->rq.method = "PUT";
	p->rq.key = u->key;
	p->rq.what = xasprintf("PUT part %d of '%s'", p->number, u->key);
	_cleanup_free_ char *num = xasprintf("%d", p->number);
	kvlist_set(&p->rq.query, "partNumber", num);
	kvlist_set(&p->rq.query, "uploadId", u->upload_id);
	if (u->s3->unsigned_payload)
		memcpy(p->rq.hash, SIGV4_UNSIGNED_PAYLOAD, sizeof(SIGV4_UNSIGNED_PAYLOAD));
	else
		sha256_hex(p->data.p, p->data.len, p->rq.hash);

	if (u->n_parts == u->cap_parts) {
		u->cap_parts = u->cap_parts ? 2 * u->cap_parts : 64;
		u->parts = xrealloc(u->parts, u->cap_parts * sizeof(*u->parts));
	}
	u->parts[u->n_parts++] = p;
	u->pending++;
	mp_pump(u, false);
	return 0;
}

/* Switches to a multipart upload: creates it and cuts what is buffered. */
static int mp_begin(struct s3_upload *u, struct err *e)
{
	size_t ps = u->s3->part_size;
	int r;

	u->multi = curl_multi_init();
	if (!u->multi)
		return err_set(e, -ENOMEM, "s3: cannot create a libcurl multi handle");
	r = mp_create(u, e);
	if (r < 0)
		return r;
	u->multipart = true;
	if (u->cur.len < ps)
		return 0;
	/* the threshold is above the part size: cut the buffer into parts */
	struct buf rest = BUF_INIT;
	buf_init(&rest, u->cur.max);
	size_t off = 0;
	for (; u->cur.len - off >= ps && r == 0; off += ps) {
		struct buf part = BUF_INIT;

		buf_init(&part, u->cur.max);
		buf_add(&part, u->cur.p + off, ps);
		r = mp_submit(u, &part, e);
		buf_free(&part);
	}
	if (r == 0)
		buf_add(&rest, u->cur.p + off, u->cur.len - off);
	buf_free(&u->cur);
	u->cur = rest;
	return r;
}

/* Cancels the transfers and aborts the upload on the server, insisting a
 * little longer than for other requests: an orphaned upload costs storage
 * until someone notices. */
static int mp_abort(struct s3_upload *u, struct err *e)
{
	int r = 0;

	for (size_t i = 0; i < u->n_parts; i++) {
		struct s3_part *p = u->parts[i];

		if (p->in_flight && p->rq.h) {
			curl_multi_remove_handle(u->multi, p->rq.h);
			curl_easy_cleanup(p->rq.h);
			p->rq.h = NULL;
			p->in_flight = false;
		}
	}
	u->in_flight = 0;
	if (u->upload_id) {
		struct s3_req rq = { .method = "DELETE", .key = u->key, .uncancellable = true };

		kvlist_set(&rq.query, "uploadId", u->upload_id);
		rq.what = xasprintf("AbortMultipartUpload '%s' (upload id '%s')", u->key,
				    u->upload_id);
		log_info("s3: aborting the multipart upload of '%s'", u->key);
		r = s3_do(u->s3, &rq, u->s3->retries + 4, e);
		if (r == -ENOENT)    /* NoSuchUpload: already gone */
			r = 0;
		free((char *)rq.what);
		req_free(&rq);
	}
	return r;
}

/*
 * Aborts a failed upload. When even that fails, a warning says so and what
 * will remove the leftover; the caller's error (the root cause) is never
 * replaced, and the CLI prints it last.
 */
static void mp_abort_or_warn(struct s3_upload *u)
{
	_cleanup_err_ struct err ae = ERR_INIT;

	if (mp_abort(u, &ae) < 0)
		log_warn("%s; the incomplete upload stays in the bucket until "
			 "'upaas storage check' (or a lifecycle rule) aborts it", err_msg(&ae));
}

static int mp_complete(struct s3_upload *u, struct err *e)
{
	_cleanup_buf_ struct buf body = BUF_INIT;
	struct s3_req rq = { .method = "POST", .key = u->key };
	int r;

	buf_adds(&body, "<CompleteMultipartUpload>");
	for (size_t i = 0; i < u->n_parts; i++) {
		buf_addf(&body, "<Part><PartNumber>%d</PartNumber><ETag>", u->parts[i]->number);
		xml_escape(&body, u->parts[i]->etag);
		buf_adds(&body, "</ETag></Part>");
	}
	buf_adds(&body, "</CompleteMultipartUpload>");
	kvlist_set(&rq.query, "uploadId", u->upload_id);
	rq.body = body.p;
	rq.body_len = body.len;
	rq.what = xasprintf("CompleteMultipartUpload '%s'", u->key);
	r = s3_do(u->s3, &rq, 0, e);
	free((char *)rq.what);
	req_free(&rq);
	return r;
}

/* ------------------------------------------------------------ uploads */

static void upload_cleanup(struct s3_upload *u)
{
	for (size_t i = 0; i < u->n_parts; i++)
		part_free(u->parts[i]);
	free(u->parts);
	u->parts = NULL;
	u->n_parts = 0;
	if (u->multi)
		curl_multi_cleanup(u->multi);
	u->multi = NULL;
	buf_free(&u->cur);
	free(u->upload_id);
	u->upload_id = NULL;
	free(u->key);
	u->key = NULL;
	err_free(&u->err);
}

static int s3_upload_begin(struct storage *st, struct storage_upload *su, const char *key,
			   uint64_t size_hint, struct err *e)
{
	struct s3 *s3 = st->priv;
	struct s3_upload *u = su->priv;
	size_t max = s3->threshold > s3->part_size ? s3->threshold : s3->part_size;

	u->s3 = s3;
	u->key = full_key(s3, key);
	u->err = (struct err)ERR_INIT;
	buf_init(&u->cur, max);
	/* one allocation for what will surely be buffered */
	if (size_hint)
		buf_grow(&u->cur, size_hint < max ? (size_t)size_hint : s3->part_size);
	return 0;
}

static int s3_upload_write(struct storage_upload *su, const void *p, size_t n, struct err *e)
{
	struct s3_upload *u = su->priv;
	const char *c = p;
	int r;

	if (u->failed)
		return mp_wait(u, 0, e);
	while (n > 0) {
		if (!u->multipart) {
			size_t room = u->s3->threshold - u->cur.len;

			if (n <= room) {
				if (buf_add(&u->cur, c, n) < 0)
					return err_set(e, -ENOMEM, "s3: upload buffer overflow");
				return 0;
			}
			r = mp_begin(u, e);
			if (r < 0)
				return r;
			continue;
		}
		size_t take = u->s3->part_size - u->cur.len;

		if (take > n)
			take = n;
		if (u->cur.cap < u->s3->part_size)
			buf_grow(&u->cur, u->s3->part_size - u->cur.len);
		buf_add(&u->cur, c, take);
		c += take;
		n -= take;
		if (u->cur.len == u->s3->part_size) {
			r = mp_submit(u, &u->cur, e);
			if (r < 0)
				return r;
		}
	}
	mp_pump(u, false);
	if (u->failed)
		return mp_wait(u, 0, e);
	return 0;
}

static int s3_upload_commit(struct storage_upload *su, struct err *e)
{
	struct s3_upload *u = su->priv;
	int r;

	if (!u->multipart) {
		struct s3_req rq = { .method = "PUT", .key = u->key };

		rq.body = u->cur.p;
		rq.body_len = u->cur.len;
		r = s3_do(u->s3, &rq, 0, e);
		req_free(&rq);
		upload_cleanup(u);
		return r;
	}
	r = 0;
	if (u->cur.len)
		r = mp_submit(u, &u->cur, e);
	if (r == 0)
		r = mp_wait(u, 0, e);
	if (r == 0) {
		crash_point("storage.s3.before-complete");
		r = mp_complete(u, e);
	}
	if (r < 0)
		mp_abort_or_warn(u);
	upload_cleanup(u);
	return r;
}

static void s3_upload_abort(struct storage_upload *su)
{
	struct s3_upload *u = su->priv;

	if (u->multipart)
		mp_abort_or_warn(u);
	upload_cleanup(u);
}

/* ------------------------------------------------------------ reads */

static int s3_get(struct storage *st, const char *key, sink_fn sink, void *data,
		  struct err *e)
{
	struct s3 *s3 = st->priv;
	_cleanup_free_ char *k = full_key(s3, key);
	struct s3_req rq = { .method = "GET", .key = k, .sink = sink, .sink_data = data };
	int r;

	rq.resumable = true;
	r = s3_do(s3, &rq, 0, e);
	/* a short body (connection cut after the headers) is an error, not EOF */
	if (r == 0 && rq.have_total && rq.delivered != rq.total)
		r = err_set(e, -EIO, "s3: GET '%s' in bucket '%s' was cut short: %llu of %llu bytes",
			    k, s3->bucket, (unsigned long long)rq.delivered,
			    (unsigned long long)rq.total);
	req_free(&rq);
	return r;
}

static int s3_stat(struct storage *st, const char *key, struct storage_stat *ret, struct err *e)
{
	struct s3 *s3 = st->priv;
	_cleanup_free_ char *k = full_key(s3, key);
	struct s3_req rq = { .method = "HEAD", .key = k };
	int r = s3_do(s3, &rq, 0, e);

	if (r == 0) {
		ret->size = rq.content_length;
		ret->mtime = rq.last_modified;
	}
	req_free(&rq);
	return r;
}

/* One page of ListObjectsV2: calls cb per key; *token is the next token or
 * NULL when the listing is complete. */
static int list_page(struct s3 *s3, const struct buf *xml, storage_list_fn cb, void *data,
		     char **token, struct err *e)
{
	const char *p = xml->p, *end = xml->p + xml->len;
	size_t plen = strlen(s3->prefix);
	_cleanup_free_ char *trunc = xml_find(p, end, "IsTruncated", NULL);

	*token = NULL;
	for (;;) {
		const char *a = memmem(p, (size_t)(end - p), "<Contents>", 10);
		const char *next = a ? memmem(a, (size_t)(end - a), "</Contents>", 11) : NULL;

		if (!next)
			break;
		_cleanup_free_ char *key = xml_find(a, next, "Key", NULL);
		_cleanup_free_ char *size = xml_find(a, next, "Size", NULL);
		_cleanup_free_ char *mod = xml_find(a, next, "LastModified", NULL);
		struct storage_stat stt = { 0 };
		int64_t sz = 0;

		p = next + 11;
		if (!key || strncmp(key, s3->prefix, plen) || !storage_key_ok(key + plen)) {
			if (key)
				log_debug("s3: skipping key '%s' in listing", key);
			continue;
		}
		if (size && parse_int64(size, 0, INT64_MAX, &sz) == 0)
			stt.size = (uint64_t)sz;
		if (mod)
			stt.mtime = parse_iso8601(mod);
		int r = cb(data, key + plen, &stt);
		if (r < 0)
			return r;
	}
	if (trunc && !strcmp(trunc, "true")) {
		*token = xml_find(xml->p, end, "NextContinuationToken", NULL);
		if (!str_set(*token)) {
			free(*token);
			*token = NULL;
			return err_set(e, -EIO, "s3: listing of bucket '%s' is truncated but has "
				       "no NextContinuationToken", s3->bucket);
		}
	}
	return 0;
}

static int s3_list(struct storage *st, const char *prefix, storage_list_fn cb, void *data,
		   struct err *e)
{
	struct s3 *s3 = st->priv;
	_cleanup_free_ char *full = xasprintf("%s%s", s3->prefix, prefix ? prefix : "");
	_cleanup_free_ char *token = NULL;
	_cleanup_free_ char *what = xasprintf("list '%s'", full);
	int r;

	for (int page = 0;; page++) {
		struct s3_req rq = { .method = "GET", .key = NULL, .what = what };
		char *next = NULL;

		kvlist_set(&rq.query, "list-type", "2");
		/* S3's default, explicit: servers may lower it (radosgw's
		 * rgw_max_listing_results), never raise it */
		kvlist_set(&rq.query, "max-keys", "1000");
		if (*full)
			kvlist_set(&rq.query, "prefix", full);
		if (token)
			kvlist_set(&rq.query, "continuation-token", token);
		r = s3_do(s3, &rq, 0, e);
		if (r == 0)
			r = list_page(s3, &rq.resp, cb, data, &next, e);
		req_free(&rq);
		free(token);
		token = next;
		if (r < 0 || !token)
			return r;
		if (page > 10000000)
			return err_set(e, -ELOOP, "s3: listing of bucket '%s' does not end",
				       s3->bucket);
	}
}

static int s3_del(struct storage *st, const char *key, struct err *e)
{
	struct s3 *s3 = st->priv;
	_cleanup_free_ char *k = full_key(s3, key);
	struct s3_req rq = { .method = "DELETE", .key = k };
	_cleanup_err_ struct err tmp = ERR_INIT;
	int r = s3_do(s3, &rq, 0, &tmp);

	if (r < 0 && r != -ENOENT)
		err_set(e, r, "%s", err_msg(&tmp));
	req_free(&rq);
	return r == -ENOENT ? 0 : r;
}

static int s3_presign(struct storage *st, const char *key, unsigned expires, struct buf *url,
		      struct err *e)
{
	struct s3 *s3 = st->priv;
	_cleanup_free_ char *k = full_key(s3, key);
	_cleanup_buf_ struct buf path = BUF_INIT;
	struct sigv4_out sig = SIGV4_OUT_INIT;
	struct sigv4_key sk = s3_sigkey(s3);
	struct s3_req rq = { .method = "GET", .key = k };
	int r;

	if (expires == 0)
		expires = 3600;
	if (expires > 604800)
		return err_set(e, -EINVAL, "s3: presigned URLs expire after at most 7 days "
			       "(604800 s), not %u s", expires);
	req_path(s3, &rq, &path);
	struct sigv4_req sr = {
		.method = "GET",
		.host = s3->host,
		.path = path.p,
	};
	r = sigv4_presign(&sk, &sr, time(NULL), expires, &sig);
	if (r < 0) {
		sigv4_out_free(&sig);
		return err_set(e, r, "s3: cannot presign '%s' in bucket '%s'", k, s3->bucket);
	}
	buf_reset(url);
	buf_addf(url, "%s://%s%s?%s", s3->scheme, s3->host, path.p, sig.query.p);
	sigv4_out_free(&sig);
	return 0;
}

/* ------------------------------------------------------------ sweep */

/* One upload of a ListMultipartUploads page. */
struct mp_entry {
	char *key;              /* without the prefix */
	char *id;
	int64_t initiated;
};

static void mp_entries_free(struct mp_entry *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].key);
		free(v[i].id);
	}
	free(v);
}

/*
 * Parses one page of ListMultipartUploads: the uploads under s3->prefix
 * (others are skipped), and the markers of the next page (both NULL when
 * the listing is complete).
 */
static int mp_list_page(const struct s3 *s3, const struct buf *xml, struct mp_entry **ret,
			size_t *ret_n, char **next_key, char **next_id, struct err *e)
{
	const char *p = xml->p, *end = xml->p + xml->len;
	size_t plen = strlen(s3->prefix), n = 0, cap = 0;
	struct mp_entry *v = NULL;
	_cleanup_free_ char *trunc = xml_find(p, end, "IsTruncated", NULL);

	*next_key = *next_id = NULL;
	for (;;) {
		const char *a = memmem(p, (size_t)(end - p), "<Upload>", 8);
		const char *z = a ? memmem(a, (size_t)(end - a), "</Upload>", 9) : NULL;

		if (!z)
			break;
		p = z + 9;
		_cleanup_free_ char *key = xml_find(a, z, "Key", NULL);
		_cleanup_free_ char *id = xml_find(a, z, "UploadId", NULL);
		_cleanup_free_ char *init = xml_find(a, z, "Initiated", NULL);

		if (!key || !str_set(id) || strncmp(key, s3->prefix, plen))
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 16;
			v = xrealloc(v, cap * sizeof(*v));
		}
		v[n++] = (struct mp_entry){
			.key = xstrdup(key + plen),
			.id = TAKE_PTR(id),
			.initiated = init ? parse_iso8601(init) : 0,
		};
	}
	if (trunc && !strcmp(trunc, "true")) {
		*next_key = xml_find(xml->p, end, "NextKeyMarker", NULL);
		*next_id = xml_find(xml->p, end, "NextUploadIdMarker", NULL);
		if (!str_set(*next_key)) {
			free(*next_key);
			free(*next_id);
			*next_key = *next_id = NULL;
			mp_entries_free(v, n);
			return err_set(e, -EIO, "s3: the list of multipart uploads of bucket '%s' "
				       "is truncated but has no NextKeyMarker", s3->bucket);
		}
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

/* The parts an upload stored: their total size and the newest's time. */
static int mp_parts(struct s3 *s3, const struct mp_entry *m, uint64_t *size, int64_t *newest,
		    struct err *e)
{
	_cleanup_free_ char *k = full_key(s3, m->key);
	_cleanup_free_ char *marker = NULL;
	_cleanup_free_ char *what = xasprintf("ListParts '%s' (upload id '%s')", k, m->id);

	*size = 0;
	*newest = 0;
	/* 10000 parts at most, 1000 a page */
	for (int page = 0; page < 11; page++) {
		struct s3_req rq = { .method = "GET", .key = k, .what = what };
		int r;

		kvlist_set(&rq.query, "uploadId", m->id);
		if (marker)
			kvlist_set(&rq.query, "part-number-marker", marker);
		r = s3_do(s3, &rq, 0, e);
		if (r < 0) {
			req_free(&rq);
			return r;
		}
		const char *p = rq.resp.p, *end = rq.resp.p + rq.resp.len;
		for (;;) {
			const char *a = memmem(p, (size_t)(end - p), "<Part>", 6);
			const char *z = a ? memmem(a, (size_t)(end - a), "</Part>", 7) : NULL;

			if (!z)
				break;
			p = z + 7;
			_cleanup_free_ char *sz = xml_find(a, z, "Size", NULL);
			_cleanup_free_ char *mod = xml_find(a, z, "LastModified", NULL);
			int64_t v;

			if (sz && parse_int64(sz, 0, INT64_MAX, &v) == 0)
				*size += (uint64_t)v;
			if (mod && (v = parse_iso8601(mod)) > *newest)
				*newest = v;
		}
		_cleanup_free_ char *trunc = xml_find(rq.resp.p, end, "IsTruncated", NULL);
		free(marker);
		marker = trunc && !strcmp(trunc, "true")
			 ? xml_find(rq.resp.p, end, "NextPartNumberMarker", NULL) : NULL;
		req_free(&rq);
		if (!str_set(marker))
			return 0;
	}
	return 0;
}

/* AbortMultipartUpload of one upload (full key k); gone already is fine. */
static int mp_abort_id(struct s3 *s3, const char *k, const char *id, struct err *e)
{
	struct s3_req rq = { .method = "DELETE", .key = k };
	int r;

	kvlist_set(&rq.query, "uploadId", id);
	rq.what = xasprintf("AbortMultipartUpload '%s' (upload id '%s')", k, id);
	r = s3_do(s3, &rq, 0, e);
	if (r == -ENOENT) {    /* NoSuchUpload: already gone */
		err_clear(e);
		r = 0;
	}
	free((char *)rq.what);
	req_free(&rq);
	return r;
}

/* Looks at one upload and aborts it when it is idle for grace seconds. */
static int mp_sweep_one(struct s3 *s3, const struct mp_entry *m, int64_t grace,
			storage_stale_fn cb, void *data, int *removed, struct err *e)
{
	_cleanup_err_ struct err pe = ERR_INIT;
	_cleanup_err_ struct err ae = ERR_INIT;
	_cleanup_free_ char *k = full_key(s3, m->key);
	uint64_t size = 0;
	int64_t newest = 0, now = now_unix();
	int r = 0;

	/* the last part's time says more than the start: a big upload over a
	 * slow link may be old and alive */
	if (mp_parts(s3, m, &size, &newest, &pe) < 0)
		log_warn("%s", err_msg(&pe));
	if (newest < m->initiated)
		newest = m->initiated;
	struct storage_stale u = {
		.key = m->key,
		.id = m->id,
		.started = m->initiated,
		.idle = newest ? now - newest : 0,
		.size = size,
	};
	if (grace == 0 || (grace > 0 && newest && u.idle >= grace)) {
		r = mp_abort_id(s3, k, m->id, &ae);
		if (r < 0) {
			u.error = err_msg(&ae);
			err_set(e, r, "%s", err_msg(&ae));
		} else {
			u.removed = true;
			(*removed)++;
		}
	}
	if (cb) {
		int rc = cb(data, &u);

		if (rc < 0)
			return rc;
	}
	/* an abort that failed does not stop the others */
	return r < 0 ? 1 : 0;
}

static int s3_sweep(struct storage *st, int64_t grace, storage_stale_fn cb, void *data,
		    struct err *e)
{
	struct s3 *s3 = st->priv;
	_cleanup_free_ char *key_marker = NULL, *id_marker = NULL;
	_cleanup_free_ char *what = xasprintf("ListMultipartUploads '%s'", s3->prefix);
	int removed = 0, failed = 0;

	for (int page = 0; page < 100000; page++) {
		struct s3_req rq = { .method = "GET", .key = NULL, .what = what };
		struct mp_entry *v = NULL;
		size_t n = 0;
		char *nk = NULL, *ni = NULL;
		int r;

		kvlist_set(&rq.query, "uploads", "");
		if (*s3->prefix)
			kvlist_set(&rq.query, "prefix", s3->prefix);
		if (key_marker)
			kvlist_set(&rq.query, "key-marker", key_marker);
		if (id_marker)
			kvlist_set(&rq.query, "upload-id-marker", id_marker);
		r = s3_do(s3, &rq, 0, e);
		if (r == 0)
			r = mp_list_page(s3, &rq.resp, &v, &n, &nk, &ni, e);
		req_free(&rq);
		for (size_t i = 0; i < n && r >= 0; i++) {
			r = mp_sweep_one(s3, &v[i], grace, cb, data, &removed, e);
			if (r > 0) {
				failed++;
				r = 0;
			}
		}
		mp_entries_free(v, n);
		free(key_marker);
		free(id_marker);
		key_marker = nk;
		id_marker = ni;
		if (r < 0) {
			free(TAKE_PTR(key_marker));
			return r;
		}
		if (!key_marker)
			break;
	}
	if (failed)
		return e->code < 0 ? e->code : -EIO;
	return removed;
}

const struct storage_ops storage_s3_ops = {
	.name = "s3",
	.caps = STORAGE_CAP_WRITE | STORAGE_CAP_LIST | STORAGE_CAP_PRESIGN,
	.priv_size = sizeof(struct s3),
	.upload_size = sizeof(struct s3_upload),
	.open = s3_open,
	.close = s3_close,
	.upload_begin = s3_upload_begin,
	.upload_write = s3_upload_write,
	.upload_commit = s3_upload_commit,
	.upload_abort = s3_upload_abort,
	.get = s3_get,
	.stat = s3_stat,
	.list = s3_list,
	.del = s3_del,
	.presign = s3_presign,
	.sweep = s3_sweep,
};
