/* tests/unit/test-url.c - credentials taken out of URLs (common/url.c). */
#include "tests/unit/unit.h"

#include <errno.h>
#include <string.h>

#include "common/common.h"

static void test_redact(void **state)
{
	(void)state;
	static const char *const cases[][2] = {
		{ "https://user:pass@host/repo.git", "https://********@host/repo.git" },
		{ "https://TOKEN@host/repo.git", "https://********@host/repo.git" },
		{ "https://host/repo.git", "https://host/repo.git" },
		{ "postgresql://u:p%40ss@db:5432/upaas", "postgresql://********@db:5432/upaas" },
		{ "postgresql://db/upaas?user=u&password=pw&sslmode=require",
		  "postgresql://db/upaas?user=u&password=********&sslmode=require" },
		{ "https://h/x?X-Amz-Signature=abc#frag", "https://h/x?X-Amz-Signature=********#frag" },
		/* an '@' in the password */
		{ "https://u:p@ss@host/", "https://********@host/" },
		/* a raw '/' in the password: careful, not exact */
		{ "https://u:pa/ss@host/x", "https://********@host/x" },
		/* an '@' in the path without a ':' before it is a path */
		{ "https://registry/@scope/pkg", "https://registry/@scope/pkg" },
		{ "/srv/git/app.git", "/srv/git/app.git" },
		{ "git@host:app.git", "git@host:app.git" },
		{ "", "" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		_cleanup_free_ char *got = url_redacted(cases[i][0]);
		if (strcmp(got, cases[i][1]))
			fail_msg("%s: got '%s', want '%s'", cases[i][0], got, cases[i][1]);
	}
}

static void test_split(void **state)
{
	(void)state;
	char *bare, *user, *pass;

	assert_int_equal(url_split_userinfo("https://al%3Ace:s%40cr%2Ft@h:8080/r.git?x#y",
					    &bare, &user, &pass), 1);
	assert_string_equal(bare, "https://h:8080/r.git?x#y");
	assert_string_equal(user, "al:ce");
	assert_string_equal(pass, "s@cr/t");
	free(bare);
	secret_free(user);
	secret_free(pass);

	assert_int_equal(url_split_userinfo("https://tok@h/r", &bare, &user, &pass), 1);
	assert_string_equal(bare, "https://h/r");
	assert_string_equal(user, "tok");
	assert_null(pass);
	free(bare);
	secret_free(user);

	assert_int_equal(url_split_userinfo("https://h/a@b", &bare, &user, &pass), 0);
	assert_string_equal(bare, "https://h/a@b");
	assert_null(user);
	assert_null(pass);
	free(bare);

	assert_int_equal(url_split_userinfo("https://u:%zz@h/", &bare, &user, &pass), -EINVAL);
	assert_int_equal(url_split_userinfo("https://u:%00@h/", &bare, &user, &pass), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_redact),
		cmocka_unit_test(test_split),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
