/*
 * storage/sigv4.c - AWS Signature Version 4 with OpenSSL.
 *
 * Written after the AWS documentation ("Signature Calculations for the
 * Authorization Header" and "Query String Authentication") and checked
 * against its published examples in tests/unit/test-sigv4.c.
 */
#define UPAAS_STORAGE_INTERNAL 1
#include "storage/sigv4.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#define SIGV4_ALGORITHM "AWS4-HMAC-SHA256"

/* A header of the canonical request: lower-case name, trimmed value. */
struct hdr {
	char *name;
	char *value;
};

void sigv4_out_free(struct sigv4_out *o)
{
	if (!o)
		return;
	buf_free(&o->canonical);
	buf_free(&o->string_to_sign);
	buf_free(&o->signed_headers);
	buf_free(&o->query);
	strv_free(&o->headers);
}

int sigv4_uri_encode(struct buf *out, const char *s, size_t n, bool keep_slash)
{
	static const char hex[] = "0123456789ABCDEF";
	int r;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.' || c == '_' || c == '~' || (c == '/' && keep_slash)) {
			r = buf_addch(out, (char)c);
		} else {
			char esc[3] = { '%', hex[c >> 4], hex[c & 15] };
			r = buf_add(out, esc, 3);
		}
		if (r < 0)
			return r;
	}
	return 0;
}

struct qpair {
	char *name;
	char *value;
};

static int qpair_cmp(const void *a, const void *b)
{
	const struct qpair *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	return c ? c : strcmp(x->value, y->value);
}

int sigv4_canonical_query(struct buf *out, const struct kvlist *q)
{
	struct qpair *v;
	int r = 0;

	if (!q || q->n == 0)
		return 0;
	v = xcalloc(q->n, sizeof(*v));
	for (size_t i = 0; i < q->n && r == 0; i++) {
		struct buf n = BUF_INIT, val = BUF_INIT;

		r = sigv4_uri_encode(&n, q->v[i].key, strlen(q->v[i].key), false);
		if (r == 0 && q->v[i].val)
			r = sigv4_uri_encode(&val, q->v[i].val, strlen(q->v[i].val), false);
		v[i].name = buf_detach(&n);
		v[i].value = buf_detach(&val);
		buf_free(&n);
		buf_free(&val);
	}
	if (r == 0) {
		qsort(v, q->n, sizeof(*v), qpair_cmp);
		for (size_t i = 0; i < q->n && r == 0; i++)
			r = buf_addf(out, "%s%s=%s", i ? "&" : "", v[i].name, v[i].value);
	}
	for (size_t i = 0; i < q->n; i++) {
		free(v[i].name);
		free(v[i].value);
	}
	free(v);
	return r;
}

void sigv4_amz_date(time_t t, char out[17])
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

static void hex_encode(const unsigned char *p, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hex[p[i] >> 4];
		out[2 * i + 1] = hex[p[i] & 15];
	}
	out[2 * n] = '\0';
}

static int hmac_sha256(const void *key, size_t keylen, const void *data, size_t n,
		       unsigned char out[32])
{
	unsigned int len = 32;

	if (!HMAC(EVP_sha256(), key, (int)keylen, data, n, out, &len) || len != 32)
		return -EIO;
	return 0;
}

static int hdr_cmp(const void *a, const void *b)
{
	return strcmp(((const struct hdr *)a)->name, ((const struct hdr *)b)->name);
}

/* Trims the value and collapses inner runs of spaces, as SigV4 asks. */
static char *hdr_value_trim(const char *v)
{
	struct buf b = BUF_INIT;
	bool space = false;

	while (*v == ' ' || *v == '\t')
		v++;
	for (; *v; v++) {
		if (*v == ' ' || *v == '\t') {
			space = true;
			continue;
		}
		if (space && b.len)
			buf_addch(&b, ' ');
		space = false;
		buf_addch(&b, *v);
	}
	return buf_detach(&b);
}

static void hdrs_free(struct hdr *h, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(h[i].name);
		free(h[i].value);
	}
	free(h);
}

/* Step 1: the canonical request, and the signed header list.
 *   METHOD \n PATH \n QUERY \n name:value\n... \n signed;headers \n PAYLOAD */
static int canonical_request(const struct sigv4_key *k, const struct sigv4_req *r,
			     const char *amz_date, const struct kvlist *query,
			     bool presign, struct sigv4_out *out)
{
	size_t n_extra = r->headers ? r->headers->n : 0;
	struct hdr *h = xcalloc(n_extra + 4, sizeof(*h));
	size_t n = 0;
	int ret = 0;

	h[n].name = xstrdup("host");
	h[n++].value = hdr_value_trim(r->host);
	if (!presign) {
		h[n].name = xstrdup("x-amz-date");
		h[n++].value = xstrdup(amz_date);
		if (r->content_sha256) {
			h[n].name = xstrdup("x-amz-content-sha256");
			h[n++].value = xstrdup(r->payload_hash);
		}
		if (k->session_token && *k->session_token) {
			h[n].name = xstrdup("x-amz-security-token");
			h[n++].value = hdr_value_trim(k->session_token);
		}
	}
	for (size_t i = 0; i < n_extra; i++) {
		const struct kv *e = &r->headers->v[i];

		if (strpbrk(e->val, "\r\n") || strpbrk(e->key, "\r\n: ")) {
			ret = -EINVAL;
			break;
		}
		h[n].name = xstrdup(e->key);
		for (char *c = h[n].name; *c; c++)
			if (*c >= 'A' && *c <= 'Z')
				*c = (char)(*c - 'A' + 'a');
		h[n++].value = hdr_value_trim(e->val);
	}
	if (ret == 0 && (strpbrk(r->host, "\r\n") ||
			 (k->session_token && strpbrk(k->session_token, "\r\n"))))
		ret = -EINVAL;
	if (ret < 0) {
		hdrs_free(h, n);
		return ret;
	}
	qsort(h, n, sizeof(*h), hdr_cmp);

	buf_reset(&out->signed_headers);
	for (size_t i = 0; i < n; i++)
		buf_addf(&out->signed_headers, "%s%s", i ? ";" : "", h[i].name);

	buf_reset(&out->canonical);
	buf_addf(&out->canonical, "%s\n%s\n", r->method, r->path);
	sigv4_canonical_query(&out->canonical, query);
	buf_addch(&out->canonical, '\n');
	for (size_t i = 0; i < n; i++)
		buf_addf(&out->canonical, "%s:%s\n", h[i].name, h[i].value);
	buf_addf(&out->canonical, "\n%s\n%s", out->signed_headers.p,
		 presign ? SIGV4_UNSIGNED_PAYLOAD : r->payload_hash);
	hdrs_free(h, n);
	return 0;
}

/* The credential scope: 20130524/us-east-1/s3/aws4_request */
static char *credential_scope(const struct sigv4_key *k, const char *amz_date)
{
	return xasprintf("%.8s/%s/%s/aws4_request", amz_date, k->region, k->service);
}

/* Step 2: ALGORITHM \n DATE \n SCOPE \n hex(sha256(canonical request)) */
static void string_to_sign(const char *amz_date, const char *scope, const struct buf *canonical,
			   struct buf *out)
{
	char hash[65];

	sha256_hex(canonical->p, canonical->len, hash);
	buf_reset(out);
	buf_addf(out, "%s\n%s\n%s\n%s", SIGV4_ALGORITHM, amz_date, scope, hash);
}

/* Step 3: kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" secret, date), region),
 * service), "aws4_request"). The intermediate keys are wiped. */
static int signing_key(const struct sigv4_key *k, const char *amz_date, unsigned char out[32])
{
	size_t slen = strlen(k->secret_key);
	unsigned char *seed = xmalloc(slen + 4);
	unsigned char a[32], b[32];
	int r;

	memcpy(seed, "AWS4", 4);
	memcpy(seed + 4, k->secret_key, slen);
	r = hmac_sha256(seed, slen + 4, amz_date, 8, a);
	OPENSSL_cleanse(seed, slen + 4);
	free(seed);
	if (r == 0)
		r = hmac_sha256(a, 32, k->region, strlen(k->region), b);
	if (r == 0)
		r = hmac_sha256(b, 32, k->service, strlen(k->service), a);
	if (r == 0)
		r = hmac_sha256(a, 32, "aws4_request", 12, out);
	OPENSSL_cleanse(a, sizeof(a));
	OPENSSL_cleanse(b, sizeof(b));
	return r;
}

/* Step 4: hex(HMAC(kSigning, string to sign)) */
static int signature(const unsigned char key[32], const struct buf *sts, char out[65])
{
	unsigned char mac[32];
	int r = hmac_sha256(key, 32, sts->p, sts->len, mac);

	if (r == 0)
		hex_encode(mac, 32, out);
	return r;
}

static bool key_ok(const struct sigv4_key *k)
{
	return k && k->access_key && *k->access_key && k->secret_key && k->region &&
	       *k->region && k->service && *k->service &&
	       !strpbrk(k->access_key, "\r\n/,= ");
}

/* Runs steps 1-4 with the given query; fills out->signature. */
static int sign_chain(const struct sigv4_key *k, const struct sigv4_req *r, const char *amz_date,
		      const struct kvlist *query, bool presign, struct sigv4_out *out)
{
	_cleanup_free_ char *scope = credential_scope(k, amz_date);
	unsigned char key[32];
	int ret;

	ret = canonical_request(k, r, amz_date, query, presign, out);
	if (ret < 0)
		return ret;
	string_to_sign(amz_date, scope, &out->canonical, &out->string_to_sign);
	ret = signing_key(k, amz_date, key);
	if (ret == 0)
		ret = signature(key, &out->string_to_sign, out->signature);
	OPENSSL_cleanse(key, sizeof(key));
	return ret;
}

int sigv4_sign(const struct sigv4_key *k, const struct sigv4_req *r, time_t now,
	       struct sigv4_out *out)
{
	_cleanup_free_ char *scope = NULL;
	int ret;

	if (!key_ok(k) || !r->method || !r->host || !r->path || !r->payload_hash)
		return -EINVAL;
	sigv4_amz_date(now, out->amz_date);
	ret = sign_chain(k, r, out->amz_date, r->query, false, out);
	if (ret < 0)
		return ret;

	scope = credential_scope(k, out->amz_date);
	strv_free(&out->headers);
	strv_pushf(&out->headers, "x-amz-date: %s", out->amz_date);
	if (r->content_sha256)
		strv_pushf(&out->headers, "x-amz-content-sha256: %s", r->payload_hash);
	if (k->session_token && *k->session_token)
		strv_pushf(&out->headers, "x-amz-security-token: %s", k->session_token);
	strv_pushf(&out->headers,
		   "Authorization: " SIGV4_ALGORITHM " Credential=%s/%s,SignedHeaders=%s,Signature=%s",
		   k->access_key, scope, out->signed_headers.p, out->signature);
	return 0;
}

int sigv4_presign(const struct sigv4_key *k, const struct sigv4_req *r, time_t now,
		  unsigned expires, struct sigv4_out *out)
{
	struct kvlist q = KVLIST_INIT;
	_cleanup_free_ char *scope = NULL, *cred = NULL, *exp = NULL;
	int ret;

	if (!key_ok(k) || !r->method || !r->host || !r->path || r->headers ||
	    expires < 1 || expires > 604800)
		return -EINVAL;
	sigv4_amz_date(now, out->amz_date);
	scope = credential_scope(k, out->amz_date);
	cred = xasprintf("%s/%s", k->access_key, scope);
	exp = xasprintf("%u", expires);

	if (r->query)
		kvlist_copy(&q, r->query);
	kvlist_set(&q, "X-Amz-Algorithm", SIGV4_ALGORITHM);
	kvlist_set(&q, "X-Amz-Credential", cred);
	kvlist_set(&q, "X-Amz-Date", out->amz_date);
	kvlist_set(&q, "X-Amz-Expires", exp);
	if (k->session_token && *k->session_token)
		kvlist_set(&q, "X-Amz-Security-Token", k->session_token);
	kvlist_set(&q, "X-Amz-SignedHeaders", "host");

	ret = sign_chain(k, r, out->amz_date, &q, true, out);
	if (ret == 0) {
		buf_reset(&out->query);
		sigv4_canonical_query(&out->query, &q);
		buf_addf(&out->query, "&X-Amz-Signature=%s", out->signature);
	}
	kvlist_free(&q);
	return ret;
}
