/* tests/unit/test-url.c - credentials taken out of URLs (common/url.c) and
 * handed to a child through an askpass (common/askpass.c): this binary is
 * its own askpass program, as upaas is. */
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

/* Runs this binary as the askpass of a child, with prompt; returns its
 * exit status, stdout in out. */
static int ask(struct askpass *a, bool inherit, const char *prompt, struct buf *out)
{
	_cleanup_err_ struct err e = ERR_INIT;
	struct proc p = PROC_INIT;
	strv_push(&p.argv, a->exe);
	strv_push(&p.argv, prompt);
	askpass_env(a, &p.env);
	for (size_t i = 0; i < p.env.n; i++)
		if (strstr(p.env.v[i], "s3cret") || strstr(p.env.v[i], "alice"))
			fail_msg("the environment holds the secret: %s", p.env.v[i]);
	if (inherit) {
		p.child_setup = askpass_child_setup;
		p.child_data = a;
	}
	p.capture = out;
	p.stderr_fd = -1;
	int r = proc_run(&p, &e);
	proc_free(&p);
	return r;
}

static void test_askpass(void **state)
{
	(void)state;
	_cleanup_err_ struct err e = ERR_INIT;
	_cleanup_buf_ struct buf out = BUF_INIT;
	struct askpass a;

	assert_int_equal(askpass_open(&a, "alice", "s3cret pass", &e), 0);
	assert_int_equal(ask(&a, true, "Username for 'https://h': ", &out), 0);
	assert_string_equal(out.p, "alice\n");
	buf_reset(&out);
	assert_int_equal(ask(&a, true, "Password for 'https://alice@h': ", &out), 0);
	assert_string_equal(out.p, "s3cret pass\n");
	buf_reset(&out);
	/* other questions get no answer */
	assert_int_equal(ask(&a, true, "Are you sure you want to continue connecting?", &out), 1);
	assert_string_equal(out.p, "");
	/* a child that was not given the memfd cannot read it */
	assert_int_equal(ask(&a, false, "Password for 'https://alice@h': ", &out), 1);
	assert_string_equal(out.p, "");
	/* the memfd is sealed: nobody changes the answer */
	assert_int_equal(write(a.fd, "x", 1), -1);
	askpass_close(&a);
	assert_int_equal(askpass_open(&a, "a\nb", "c", &e), -EINVAL);
}

int main(int argc, char **argv)
{
	int rc = askpass_main(argc, argv);
	if (rc >= 0)
		return rc;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_redact),
		cmocka_unit_test(test_split),
		cmocka_unit_test(test_askpass),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
