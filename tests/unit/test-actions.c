/* tests/unit/test-actions.c - the step runner's pure parts: file paths,
 * the build environment, the step policy table against actions.h's prose. */
#include <string.h>

#include "tests/unit/unit.h"
#include "actions/actions.h"

static void test_file_paths(void **state)
{
	static const struct { const char *p; bool ok; } t[] = {
		{ "/etc/app.conf", true }, { "/home/app/x/y.txt", true },
		{ "/a", true }, { "/a/.hidden", true }, { "/a/..x", true },
		{ "", false }, { "/", false }, { "relative/x", false },
		{ "/../etc/passwd", false }, { "/home/app/../../etc/x", false },
		{ "/home/./app", false }, { "/home//app", false }, { "/home/app/", false },
		{ "/a/..", false },
	};
	for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
		if (actions_file_path_ok(t[i].p) != t[i].ok)
			fail_msg("'%s': want %d", t[i].p, t[i].ok);
	}
	assert_false(actions_file_path_ok(NULL));
}

static const char *env_get(const struct strv *env, const char *name)
{
	size_t n = strlen(name);
	for (size_t i = 0; i < env->n; i++)
		if (!strncmp(env->v[i], name, n) && env->v[i][n] == '=')
			return env->v[i] + n + 1;
	return NULL;
}

static void test_env(void **state)
{
	struct config c;
	struct plan plan = { 0 };
	config_defaults(&c);
	kvlist_set(&plan.env, "PATH", "/opt/bin:/usr/bin");
	kvlist_set(&plan.env, "UPAAS_APP", "spoofed");
	kvlist_set(&plan.env, "FOO", "bar");
	plan.interp_type = "python";
	struct actions_ctx x = {
		.cfg = &c, .plan = &plan, .app = "flask", .build_id = "B",
		.commit = "abc", .fresh = false,
	};
	struct strv env = STRV_INIT;
	actions_env(&x, true, &env);
	assert_string_equal(env_get(&env, "PATH"), "/opt/bin:/usr/bin");
	assert_string_equal(env_get(&env, "UPAAS_APP"), "flask");
	assert_string_equal(env_get(&env, "FOO"), "bar");
	assert_string_equal(env_get(&env, "UPAAS_FRESH_PACKAGE"), "false");
	assert_string_equal(env_get(&env, "UPAAS_COMMIT"), "abc");
	assert_string_equal(env_get(&env, "HOME"), c.apps.home);
	assert_string_equal(env_get(&env, "LANG"), "C.UTF-8");
	assert_null(env_get(&env, "DEBIAN_FRONTEND"));
	strv_free(&env);
	x.fresh = true;
	/* root steps get the admin's env only: an app-chosen PATH (or
	 * LD_PRELOAD) would run the app's own code as root */
	kvlist_set(&c.interpreters.env, "ADMIN", "1");
	actions_env(&x, false, &env);
	assert_string_equal(env_get(&env, "PATH"),
			    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
	assert_null(env_get(&env, "FOO"));
	assert_string_equal(env_get(&env, "ADMIN"), "1");
	assert_string_equal(env_get(&env, "UPAAS_APP"), "flask");
	assert_string_equal(env_get(&env, "HOME"), "/root");
	assert_string_equal(env_get(&env, "UPAAS_FRESH_PACKAGE"), "true");
	assert_string_equal(env_get(&env, "DEBIAN_FRONTEND"), "noninteractive");
	strv_free(&env);
	kvlist_free(&plan.env);
	config_free(&c);
}

/* The policy as actions/actions.h documents it ("runs as", "network"). */
static void test_step_policy(void **state)
{
	static const struct { enum step step; const char *name; bool as_app, network; } doc[] = {
		{ STEP_SYSTEM, "system", false, true },
		{ STEP_PACKAGES, "os packages", false, true },
		{ STEP_INTERPRETER, "interpreter", false, true },
		{ STEP_CHECKOUT, "checkout", true, false },
		{ STEP_FILES, "files", false, false },
		{ STEP_BEFORE, "before", true, true },
		{ STEP_MAIN, "main", true, true },
		{ STEP_AFTER, "after", true, true },
		{ STEP_FINALIZE, "finalize", false, false },
	};
	assert_int_equal(ARRAY_SIZE(doc), STEP__COUNT);
	for (size_t i = 0; i < ARRAY_SIZE(doc); i++) {
		const struct step_def *d = actions_step_def(doc[i].step);

		assert_non_null(d);
		assert_int_equal(d->step, doc[i].step);
		assert_string_equal(step_name(d->step), doc[i].name);
		assert_non_null(d->run);
		if (d->as_app != doc[i].as_app || d->network != doc[i].network)
			fail_msg("step '%s': as_app %d network %d, documented %d %d", doc[i].name,
				 d->as_app, d->network, doc[i].as_app, doc[i].network);
		/* only the app's own clone/update commands get the network
		 * beyond the table, and only in the checkout step */
		assert_int_equal(d->network_custom, doc[i].step == STEP_CHECKOUT);
	}
	assert_null(actions_step_def(STEP__COUNT));
	assert_null(actions_step_def((enum step)-1));
}

/* Which checkout runs: the app's clone on fresh builds, its update on
 * incremental ones, else the builder's archive. */
static void test_custom_checkout(void **state)
{
	struct metadata m = { 0 };

	assert_null(actions_custom_checkout(&m, true));
	assert_null(actions_custom_checkout(&m, false));
	m.repo_clone.defined = true;
	assert_ptr_equal(actions_custom_checkout(&m, true), &m.repo_clone);
	assert_null(actions_custom_checkout(&m, false));
	m.repo_update.defined = true;
	assert_ptr_equal(actions_custom_checkout(&m, false), &m.repo_update);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_file_paths),
		cmocka_unit_test(test_env),
		cmocka_unit_test(test_step_policy),
		cmocka_unit_test(test_custom_checkout),
	};
	return cmocka_run_group_tests_name("actions", tests, NULL, NULL);
}
