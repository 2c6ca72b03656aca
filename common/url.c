/*
 * common/url.c - credentials in URLs: take them out before a URL is shown,
 * logged or handed to a program on its command line.
 */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "common/common.h"

#define MASK "********"

/* Where the authority of an absolute "scheme://" URL starts, or NULL. */
static const char *authority_start(const char *url)
{
	const char *p = strstr(url, "://");
	if (!p || p == url)
		return NULL;
	for (const char *q = url; q < p; q++)
		if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') ||
		      (*q >= '0' && *q <= '9') || *q == '+' || *q == '-' || *q == '.'))
			return NULL;
	return p + 3;
}

/* The '@' that ends the userinfo, or NULL: the last '@' of the authority
 * (RFC 3986: the authority ends at the first '/', '?' or '#'). */
static const char *userinfo_end(const char *auth)
{
	size_t n = strcspn(auth, "/?#");
	const char *at = NULL;
	for (const char *p = auth; p < auth + n; p++)
		if (*p == '@')
			at = p;
	return at;
}

/* true for query parameter names whose values are secrets. */
static bool secret_param(const char *name, size_t n)
{
	static const char *const words[] = { "password", "passwd", "secret", "token",
					     "signature", "credential" };
	for (size_t i = 0; i < ARRAY_SIZE(words); i++) {
		size_t w = strlen(words[i]);
		for (size_t j = 0; j + w <= n; j++)
			if (!strncasecmp(name + j, words[i], w))
				return true;
	}
	return false;
}

void url_redact(const char *url, struct buf *out)
{
	const char *auth = authority_start(url);
	if (!auth) {
		buf_adds(out, url);
		return;
	}
	const char *at = userinfo_end(auth);
	/* Be careful rather than exact: a password with a raw '/' makes its
	 * tail look like a path ("user:pa/ss@host"); an '@' before the query
	 * with a ':' in front of it is taken for the end of a userinfo too. */
	if (!at) {
		size_t n = strcspn(auth, "?#");
		const char *last = NULL;
		for (const char *p = auth; p < auth + n; p++)
			if (*p == '@')
				last = p;
		if (last && memchr(auth, ':', (size_t)(last - auth)))
			at = last;
	}
	buf_add(out, url, (size_t)(auth - url));
	if (at) {
		buf_adds(out, MASK "@");
		auth = at + 1;
	}
	const char *q = strchr(auth, '?');
	if (!q) {
		buf_adds(out, auth);
		return;
	}
	buf_add(out, auth, (size_t)(q + 1 - auth));
	/* name=value pairs of the query, values of secret names masked */
	for (const char *p = q + 1; *p;) {
		size_t n = strcspn(p, "&#");
		const char *eq = memchr(p, '=', n);
		if (eq && secret_param(p, (size_t)(eq - p))) {
			buf_add(out, p, (size_t)(eq + 1 - p));
			buf_adds(out, MASK);
		} else {
			buf_add(out, p, n);
		}
		p += n;
		if (*p == '#') {
			buf_adds(out, p);
			break;
		}
		if (*p == '&')
			buf_addch(out, *p++);
	}
}

char *url_redacted(const char *url)
{
	struct buf b = BUF_INIT;
	url_redact(url ? url : "", &b);
	return buf_detach(&b);
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decodes p[0..n); NULL when it holds a bad escape or a NUL. */
static char *pct_decode(const char *p, size_t n)
{
	struct buf b = BUF_INIT;
	for (size_t i = 0; i < n; i++) {
		char c = p[i];
		if (c == '%') {
			if (i + 2 >= n || hexval(p[i + 1]) < 0 || hexval(p[i + 2]) < 0) {
				buf_free(&b);
				return NULL;
			}
			c = (char)(hexval(p[i + 1]) * 16 + hexval(p[i + 2]));
			if (!c) {
				buf_free(&b);
				return NULL;
			}
			i += 2;
		}
		buf_addch(&b, c);
	}
	return buf_detach(&b);
}

int url_split_userinfo(const char *url, char **ret_bare, char **ret_user, char **ret_pass)
{
	const char *auth = authority_start(url);
	const char *at = auth ? userinfo_end(auth) : NULL;

	if (!at) {
		*ret_bare = xstrdup(url);
		*ret_user = *ret_pass = NULL;
		return 0;
	}
	const char *colon = memchr(auth, ':', (size_t)(at - auth));
	const char *uend = colon ? colon : at;
	_cleanup_free_ char *user = pct_decode(auth, (size_t)(uend - auth));
	_cleanup_free_ char *pass = colon ? pct_decode(colon + 1, (size_t)(at - colon - 1)) : NULL;
	if (!user || (colon && !pass)) {
		if (user)
			explicit_bzero(user, strlen(user));
		if (pass)
			explicit_bzero(pass, strlen(pass));
		return -EINVAL;
	}
	*ret_bare = xasprintf("%.*s%s", (int)(auth - url), url, at + 1);
	*ret_user = TAKE_PTR(user);
	*ret_pass = TAKE_PTR(pass);
	return 1;
}

void secret_free(char *s)
{
	if (s)
		explicit_bzero(s, strlen(s));
	free(s);
}
