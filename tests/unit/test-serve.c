/*
 * tests/unit/test-serve.c - the pure parts of `upaas serve`: repository
 * URL matching of webhooks, address ranges of trusted proxies, and the
 * HMAC of signed events (RFC 4231 test case 2).
 */
#define UPAAS_SERVE_INTERNAL 1
#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

#include "tests/unit/unit.h"
#include "serve/serve-int.h"

static void norm_is(const char *in, const char *want)
{
	struct buf b = BUF_INIT;
	repo_url_norm(in, &b);
	if (strcmp(b.p, want))
		fail_msg("'%s' -> '%s', want '%s'", in, b.p, want);
	buf_free(&b);
}

static void test_repo_url_norm(void **state)
{
	/* every spelling of one GitHub repository is the same */
	norm_is("https://github.com/Acme/Web.git", "github.com/acme/web");
	norm_is("https://github.com/acme/web", "github.com/acme/web");
	norm_is("git://github.com/acme/web.git", "github.com/acme/web");
	norm_is("git@github.com:acme/web.git", "github.com/acme/web");
	norm_is("ssh://git@github.com/acme/web.git", "github.com/acme/web");
	norm_is("ssh://git@GitHub.com:22/acme/web/", "github.com/acme/web");
	norm_is("https://user:pass@gitlab.example:8443/group/sub/web.git",
		"gitlab.example/group/sub/web");
	norm_is("https://github.com/acme/web?x=1#y", "github.com/acme/web");
	/* local repositories keep their case */
	norm_is("/srv/Git/web.git", "/srv/Git/web");
	norm_is("file:///srv/Git/web/", "/srv/Git/web");
	/* others stay others */
	struct buf a = BUF_INIT, b = BUF_INIT;
	repo_url_norm("https://github.com/acme/web", &a);
	repo_url_norm("https://github.com/acme/web2", &b);
	assert_string_not_equal(a.p, b.p);
	repo_url_norm("https://evil.example/acme/web", &b);
	assert_string_not_equal(a.p, b.p);
	buf_free(&a);
	buf_free(&b);
}

static void test_cidr(void **state)
{
	struct cidr v[3];
	assert_int_equal(cidr_parse("10.0.0.0/8", &v[0]), 0);
	assert_int_equal(cidr_parse("192.168.1.7", &v[1]), 0);
	assert_int_equal(cidr_parse("fd00::/8", &v[2]), 0);
	assert_int_equal(cidr_parse("10.0.0.0/33", &v[0]), -EINVAL);
	assert_int_equal(cidr_parse("nope", &v[0]), -EINVAL);
	cidr_parse("10.0.0.0/8", &v[0]);
	unsigned char a[16];
	inet_pton(AF_INET, "10.20.30.40", a);
	assert_true(cidr_match(v, 3, AF_INET, a));
	inet_pton(AF_INET, "11.0.0.1", a);
	assert_false(cidr_match(v, 3, AF_INET, a));
	inet_pton(AF_INET, "192.168.1.7", a);
	assert_true(cidr_match(v, 3, AF_INET, a));
	inet_pton(AF_INET, "192.168.1.8", a);
	assert_false(cidr_match(v, 3, AF_INET, a));
	inet_pton(AF_INET6, "fd12::1", a);
	assert_true(cidr_match(v, 3, AF_INET6, a));
	inet_pton(AF_INET6, "fe80::1", a);
	assert_false(cidr_match(v, 3, AF_INET6, a));
}

static void test_hmac(void **state)
{
	char hex[65];
	const char *msg = "what do ya want for nothing?";
	notify_sign("Jefe", msg, strlen(msg), hex);
	assert_string_equal(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_repo_url_norm),
		cmocka_unit_test(test_cidr),
		cmocka_unit_test(test_hmac),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
