/*
 * tests/unit/test-metadata.c - the app metadata (.upaas.cfg): values, every
 * kind of problem with its exact line, untrusted-input guards, examples.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "config/config.h"

static struct config cfg;

static int setup(void **state)
{
	struct diags d = DIAGS_INIT;
	char t[] = "/tmp/upaas-test-metadata.XXXXXX";
	int fd = mkstemp(t);
	static const char admin[] =
		"interpreters = {\n"
		"  python = { versions = ( { version = \"3.11\"; } ); };\n"
		"  nodejs = { any = { packages = [\"nodejs\"]; }; };\n"
		"};\n";
	assert_true(fd >= 0);
	assert_int_equal(fs_write_all(fd, admin, strlen(admin)), 0);
	close(fd);
	assert_int_equal(config_load(&cfg, t, &d), 0);
	unlink(t);
	diags_free(&d);
	return 0;
}

static int teardown(void **state)
{
	config_free(&cfg);
	return 0;
}

static void test_full(void **state)
{
	struct metadata m;
	struct diags d = DIAGS_INIT;
	static const char text[] =
		"interpreter = { type = \"python\"; versions = [ \"3.11\", \"3\" ]; };\n"
		"os = { packages = [ \"libpq-dev\", \"gcc\" ]; };\n"
		"env = { DJANGO_SETTINGS_MODULE = \"app.settings\"; DEBUG = \"0\"; };\n"
		"repository = { clone = \"git clone --depth 1 $UPAAS_REPO .\"; update = [ \"git fetch\", \"git reset --hard $UPAAS_COMMIT\" ]; };\n"
		"actions = { before = \"echo before\"; main = [ \"pip install -r requirements.txt\" ]; after = []; };\n"
		"files = (\n"
		"  { path = \"/etc/app.conf\"; content = \"key = value\\n\"; },\n"
		"  { path = \"/home/app/.profile\"; content = \"\"; }\n"
		");\n"
		"deploy = { shared = [ \"data\", \"logs/app\" ]; hooks = { pre = \"deploy/pre\"; post = [ \"deploy/post\", \"deploy/notify\" ]; }; keep = 3; };\n"
		"git = { keep = true; };\n";

	assert_int_equal(metadata_parse(&m, "app/.upaas.cfg", text, &cfg, &d), 0);
	assert_int_equal(d.n, 0);
	assert_string_equal(m.file, "app/.upaas.cfg");
	assert_string_equal(m.interp_type, "python");
	assert_int_equal(m.interp_versions.n, 2);
	assert_string_equal(m.interp_versions.v[1], "3");
	assert_int_equal(m.os_packages.n, 2);
	assert_string_equal(kvlist_get(&m.env, "DJANGO_SETTINGS_MODULE"), "app.settings");
	assert_true(m.repo_clone.defined);
	assert_int_equal(m.repo_clone.commands.n, 1);
	assert_int_equal(m.repo_update.commands.n, 2);
	assert_true(m.actions.a[STEP_BEFORE].defined);
	assert_string_equal(m.actions.a[STEP_BEFORE].commands.v[0], "echo before");
	assert_int_equal(m.actions.a[STEP_MAIN].commands.n, 1);
	assert_true(m.actions.a[STEP_AFTER].defined);
	assert_int_equal(m.actions.a[STEP_AFTER].commands.n, 0);
	assert_false(m.actions.a[STEP_SYSTEM].defined);
	assert_int_equal(m.files.n, 2);
	assert_string_equal(kvlist_get(&m.files, "/etc/app.conf"), "key = value\n");
	assert_string_equal(kvlist_get(&m.files, "/home/app/.profile"), "");
	assert_int_equal(m.deploy.shared.n, 2);
	assert_int_equal(m.deploy.hooks_pre.n, 1);
	assert_string_equal(m.deploy.hooks_pre.v[0], "deploy/pre");
	assert_int_equal(m.deploy.hooks_post.n, 2);
	assert_int_equal(m.deploy.keep, 3);
	assert_true(m.keep_git);
	metadata_free(&m);
}

static void test_minimal(void **state)
{
	struct metadata m;
	struct diags d = DIAGS_INIT;
	assert_int_equal(metadata_parse(&m, "x", "interpreter = { type = \"nodejs\"; };\n", &cfg, &d), 0);
	assert_string_equal(m.interp_type, "nodejs");
	assert_int_equal(m.interp_versions.n, 0);
	assert_false(m.keep_git);
	assert_int_equal(m.deploy.keep, 0);
	assert_int_equal(m.files.n, 0);
	for (int i = 0; i < STEP__COUNT; i++)
		assert_false(m.actions.a[i].defined);
	metadata_free(&m);
	/* a single version string is accepted as a one-element list */
	assert_int_equal(metadata_parse(&m, "x", "interpreter = { type = \"python\"; versions = \"3\"; };\n",
					&cfg, &d), 0);
	assert_int_equal(m.interp_versions.n, 1);
	metadata_free(&m);
	diags_free(&d);
}

struct bad_case {
	const char *text;
	int line;
	const char *msg;
};

#define PY "interpreter = { type = \"python\"; };\n"

static const struct bad_case bad_cases[] = {
	{ "interpreter = {\n  type = ;\n};\n", 2, "syntax error" },
	{ PY "os = {\n  packages = [ \"a\", 1 ]\n};\n", 3, "mismatched element type in array" },
	{ "interpreter = {\n  type = \"ruby\";\n};\n", 2, "unknown interpreter type 'ruby' (configured: python, nodejs)" },
	{ "interpreter = {\n  versions = [\"3\"];\n};\n", 1, "missing required setting 'type'" },
	{ "os = { packages = [\"gcc\"]; };\n", 0, "missing required group 'interpreter'" },
	{ "interpreter = {\n  type = 3;\n};\n", 2, "interpreter.type: expected a string, got an integer" },
	{ "interpreter = {\n  type = \"python\";\n  version = \"3\";\n};\n", 3, "unknown setting 'version'" },
	{ PY "os = {\n  packages = [ \"gcc\",\n    \"\" ];\n};\n", 4, "os.packages[1]: must not be empty" },
	{ PY "os = {\n  packages = [ \"gcc; curl evil | sh\" ];\n};\n", 3, "is not a valid Debian package name" },
	{ PY "os = {\n  packages = [ \"--allow-unauthenticated\" ];\n};\n", 3, "is not a valid Debian package name" },
	{ PY "os = {\n  packages = \"libpq-dev\";\n  extra = 1;\n};\n", 4, "os.extra: unknown setting 'extra'" },
	{ PY "\n\nmisc = 1;\n", 4, "unknown setting 'misc'" },
	{ PY "actions = {\n  system = \"apt-get install x\";\n};\n", 3, "action 'system' may not be defined here" },
	{ PY "actions = {\n  finalize = \"x\";\n};\n", 3, "action 'finalize' may not be defined here" },
	{ PY "actions = {\n  interpreter = \"x\";\n};\n", 3, "action 'interpreter' may not be defined here" },
	{ PY "actions = {\n  build = \"x\";\n};\n", 3, "unknown action 'build'" },
	{ PY "actions = {\n  main = ( \"make\", 1 );\n};\n", 3, "expected a string, got an integer" },
	{ PY "env = {\n  PORT = 8080;\n};\n", 3, "env.PORT: expected a string (quote the value)" },
	{ PY "env = \"x\";\n", 2, "env: expected a group, got a string" },
	{ PY "files = (\n  { path = \"etc/x\"; content = \"\"; } );\n", 3, "is not an absolute path inside the chroot" },
	{ PY "files = (\n  { path = \"/etc/../../x\"; content = \"\"; } );\n", 3, "is not an absolute path inside the chroot" },
	{ PY "files = (\n  { path = \"/\"; content = \"\"; } );\n", 3, "is not an absolute path" },
	{ PY "files = (\n  { path = \"/etc/x\"; } );\n", 3, "missing 'content'" },
	{ PY "files = (\n  { content = \"x\"; } );\n", 3, "missing 'path'" },
	{ PY "files = (\n  { path = \"/a\"; content = \"\"; },\n  { path = \"/a\"; content = \"\"; } );\n", 4, "file '/a' is defined twice" },
	{ PY "files = (\n  { path = \"/a\"; content = \"\"; mode = \"0644\"; } );\n", 3, "unknown setting 'mode'" },
	{ PY "files = {\n  a = \"b\";\n};\n", 2, "expected a list of groups" },
	{ PY "deploy = {\n  shared = [ \"../etc\" ];\n};\n", 3, "is not a relative path inside the app" },
	{ PY "deploy = {\n  shared = [ \"/var/data\" ];\n};\n", 3, "is not a relative path inside the app" },
	{ PY "deploy = {\n  hooks = {\n    pre = \"../../bin/sh\";\n  };\n};\n", 4, "is not a relative path" },
	{ PY "deploy = {\n  hooks = {\n    mid = \"x\";\n  };\n};\n", 4, "unknown setting 'mid'" },
	{ PY "deploy = {\n  keep = -1;\n};\n", 3, "deploy.keep: must be between 0 and 100000, got -1" },
	{ PY "git = {\n  keep = \"yes\";\n};\n", 3, "expected a boolean" },
	{ PY "repository = {\n  clone = \"\";\n};\n", 3, "must not be empty" },
	{ "interpreter = { type = \"python\";\n  versions = [ \"3; rm\" ]; };\n", 2, "is not a version" },
	{ PY "\n@include \"/etc/passwd\"\n", 3, "@include is not allowed" },
};

static void test_bad_cases(void **state)
{
	for (size_t i = 0; i < ARRAY_SIZE(bad_cases); i++) {
		const struct bad_case *bc = &bad_cases[i];
		struct metadata m;
		struct diags d = DIAGS_INIT;
		_cleanup_buf_ struct buf all = BUF_INIT;
		_cleanup_free_ char *want = bc->line ? xasprintf("repo/.upaas.cfg:%d: ", bc->line)
						     : xstrdup("repo/.upaas.cfg: ");

		int r = metadata_parse(&m, "repo/.upaas.cfg", bc->text, &cfg, &d);
		diags_format(&d, &all);
		bool found = false;
		for (size_t j = 0; j < d.n; j++)
			found |= d.v[j].line == bc->line && strstr(d.v[j].msg, bc->msg);
		if (r != -EINVAL || !found || !strstr(all.p, want))
			fail_msg("case %zu: want line %d '%s', got r=%d:\n%s", i, bc->line,
				 bc->msg, r, all.p);
		metadata_free(&m);
		diags_free(&d);
	}
}

static void test_all_problems(void **state)
{
	struct metadata m;
	struct diags d = DIAGS_INIT;
	static const char text[] =
		"interpreter = { type = \"cobol\"; };\n"          /* 1 */
		"os = { packages = [ \"a&b\", \"ok\", \"\" ]; };\n"/* 2, 2 */
		"actions = { system = \"x\"; main = \"y\"; };\n"    /* 3 */
		"colour = \"blue\";\n";                             /* 4 */
	static const int lines[] = { 1, 2, 2, 3, 4 };

	assert_int_equal(metadata_parse(&m, "m", text, &cfg, &d), -EINVAL);
	if (d.n != ARRAY_SIZE(lines)) {
		_cleanup_buf_ struct buf all = BUF_INIT;
		diags_format(&d, &all);
		fail_msg("want %zu problems, got %zu:\n%s", ARRAY_SIZE(lines), d.n, all.p);
	}
	for (size_t i = 0; i < d.n; i++)
		assert_int_equal(d.v[i].line, lines[i]);
	/* what was valid is still there */
	assert_true(m.actions.a[STEP_MAIN].defined);
	assert_false(m.actions.a[STEP_SYSTEM].defined);
	metadata_free(&m);
	diags_free(&d);
}

static void test_load(void **state)
{
	struct metadata m;
	struct diags d = DIAGS_INIT;
	assert_int_equal(metadata_load(&m, "/nonexistent/.upaas.cfg", &cfg, &d), -EINVAL);
	assert_int_equal(d.n, 1);
	assert_non_null(strstr(d.v[0].msg, "cannot read"));
	metadata_free(&m);
	diags_free(&d);

	/* too large */
	size_t n = (1 << 20) + 10;
	char *big = xmalloc(n + 1);
	memset(big, '#', n);
	big[n] = '\0';
	assert_int_equal(metadata_parse(&m, "big", big, &cfg, &d), -EINVAL);
	assert_non_null(strstr(d.v[0].msg, "at most 1048576 bytes (1 MiB)"));
	free(big);
	metadata_free(&m);
	diags_free(&d);
}

/* The shipped examples are valid. */
static void test_examples(void **state)
{
	const char *src = getenv("UPAAS_SRCDIR");
	struct config c;
	struct metadata m;
	struct diags d = DIAGS_INIT;

	if (!src)
		src = ".";
	_cleanup_free_ char *admin = path_join(src, "examples/upaas.cfg");
	_cleanup_free_ char *meta = path_join(src, "examples/upaas-metadata.cfg");
	if (access(admin, R_OK) < 0)
		skip();
	int r = config_load(&c, admin, &d);
	if (r == 0)
		r = metadata_load(&m, meta, &c, &d);
	else
		m = (struct metadata){ 0 };
	if (r < 0) {
		_cleanup_buf_ struct buf all = BUF_INIT;
		diags_format(&d, &all);
		fail_msg("%s", all.p);
	}
	/* the example declares python and nodejs */
	assert_int_equal(c.interpreters.n_types, 2);
	assert_string_equal(c.interpreters.types[0].name, "python");
	assert_string_equal(c.interpreters.types[1].name, "nodejs");
	metadata_free(&m);
	config_free(&c);
	diags_free(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full),
		cmocka_unit_test(test_minimal),
		cmocka_unit_test(test_bad_cases),
		cmocka_unit_test(test_all_problems),
		cmocka_unit_test(test_load),
		cmocka_unit_test(test_examples),
	};
	return cmocka_run_group_tests_name("metadata", tests, setup, teardown);
}
