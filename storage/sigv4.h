/*
 * storage/sigv4.h - AWS Signature Version 4, private to storage/.
 *
 * The signer is a chain of small steps, each a pure function of its inputs
 * (the clock included, so tests fix it):
 *
 *   canonical request -> string to sign -> signing key -> signature
 *
 * Two forms: sigv4_sign() fills the headers of a request (Authorization,
 * x-amz-date, x-amz-content-sha256, x-amz-security-token), sigv4_presign()
 * builds the query string of a presigned URL (X-Amz-Algorithm, ...,
 * X-Amz-Signature). Neither ever copies the secret key into its output.
 */
#ifndef UPAAS_STORAGE_SIGV4_H
#define UPAAS_STORAGE_SIGV4_H

#ifndef UPAAS_STORAGE_INTERNAL
#error "sigv4.h is private to storage/"
#endif

#include <time.h>

#include "common/common.h"

#define SIGV4_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"
/* sha256 of the empty string */
#define SIGV4_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/* Who signs, and for which scope. session_token may be NULL. */
struct sigv4_key {
	const char *access_key;
	const char *secret_key;
	const char *session_token;
	const char *region;       /* "us-east-1" */
	const char *service;      /* "s3" */
};

/* What is signed. */
struct sigv4_req {
	const char *method;       /* "GET" */
	const char *host;         /* the Host header exactly as sent ("h:7480") */
	const char *path;         /* URI-encoded path as sent (sigv4_uri_encode) */
	const struct kvlist *query;    /* raw (not encoded) name/value pairs; NULL: none */
	const struct kvlist *headers;  /* extra headers to sign; NULL: none */
	const char *payload_hash; /* hex sha256 of the body, or UNSIGNED-PAYLOAD */
	bool content_sha256;      /* S3: also sign x-amz-content-sha256 */
};

/* What the signer produced. Free with sigv4_out_free(). */
struct sigv4_out {
	char amz_date[17];        /* 20130524T000000Z */
	char signature[65];
	struct buf canonical;     /* the canonical request (for tests/debugging) */
	struct buf string_to_sign;
	struct buf signed_headers;/* "host;x-amz-content-sha256;x-amz-date" */
	/* sigv4_sign: the headers to send, "Name: value" (Authorization last) */
	struct strv headers;
	/* sigv4_presign: the whole query string, X-Amz-Signature last */
	struct buf query;
};
#define SIGV4_OUT_INIT { .canonical = BUF_INIT, .string_to_sign = BUF_INIT, \
	.signed_headers = BUF_INIT, .headers = STRV_INIT, .query = BUF_INIT }
void sigv4_out_free(struct sigv4_out *o);

/*
 * URI-encodes s (n bytes) the S3 way: every byte except A-Z a-z 0-9 - . _ ~
 * becomes %XX (upper-case hex), and '/' is kept when keep_slash is set.
 * Each path segment is encoded exactly once.
 */
int sigv4_uri_encode(struct buf *out, const char *s, size_t n, bool keep_slash);

/* The canonical query string of q: names and values encoded, sorted by name
 * then value, "a=1&b=" (an empty value keeps its '='). Appends to out. */
int sigv4_canonical_query(struct buf *out, const struct kvlist *q);

/* Formats t as 20130524T000000Z (UTC). */
void sigv4_amz_date(time_t t, char out[17]);

/* Signs r at time now for header authentication; fills out. Returns 0 or
 * -EINVAL (missing field, header value with a newline). */
int sigv4_sign(const struct sigv4_key *k, const struct sigv4_req *r, time_t now,
	       struct sigv4_out *out);

/* Presigns r (r->headers must be NULL: only host is signed) valid for
 * expires seconds (1..604800); out->query is the query string to append
 * after '?'. */
int sigv4_presign(const struct sigv4_key *k, const struct sigv4_req *r, time_t now,
		  unsigned expires, struct sigv4_out *out);

#endif
