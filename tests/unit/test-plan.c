/*
 * tests/unit/test-plan.c - the merge rules: version choice, env precedence,
 * package union, action replacement; version_cmp and version_match.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "config/config.h"

static struct config cfg;

/* Every level sets LEVEL and its own variable, and defines actions so that
 * each replacement is visible. */
static const char admin[] =
	"interpreters = {\n"
	"  env = { LEVEL = \"global\"; G = \"g\"; };\n"
	"  actions = { system = \"sys\"; finalize = \"fin\"; before = \"g-before\";\n"
	"              main = \"g-main\"; after = \"g-after\"; };\n"
	"  python = {\n"
	"    any = { packages = [ \"python3\", \"ca-certificates\" ]; env = { LEVEL = \"any\"; A = \"a\"; };\n"
	"            actions = { interpreter = \"any-interp\"; main = \"any-main\"; }; };\n"
	"    versions = (\n"
	"      { version = \"3.9\"; packages = [ \"python3.9\" ]; },\n"
	"      { version = \"3.11\"; packages = [ \"python3.11\", \"python3\" ];\n"
	"        env = { LEVEL = \"version\"; V = \"v\"; };\n"
	"        actions = { interpreter = \"v-interp\"; after = [ \"v-after1\", \"v-after2\" ]; }; },\n"
	"      { version = \"3.1\"; },\n"
	"      { version = \"3.1.2\"; },\n"
	"      { version = \"31\"; },\n"
	"      { version = \"2.7\"; }\n"
	"    );\n"
	"  };\n"
	"  nodejs = { any = { packages = [ \"nodejs\" ]; }; };\n"
	"};\n";

static int setup(void **state)
{
	struct diags d = DIAGS_INIT;
	char t[] = "/tmp/upaas-test-plan.XXXXXX";
	int fd = mkstemp(t);
	assert_true(fd >= 0);
	assert_int_equal(fs_write_all(fd, admin, strlen(admin)), 0);
	close(fd);
	int r = config_load(&cfg, t, &d);
	unlink(t);
	if (r < 0) {
		_cleanup_buf_ struct buf all = BUF_INIT;
		diags_format(&d, &all);
		fail_msg("%s", all.p);
	}
	diags_free(&d);
	return 0;
}

static int teardown(void **state)
{
	config_free(&cfg);
	return 0;
}

static void parse_meta(struct metadata *m, const char *text)
{
	struct diags d = DIAGS_INIT;
	if (metadata_parse(m, "m", text, &cfg, &d) < 0) {
		_cleanup_buf_ struct buf all = BUF_INIT;
		diags_format(&d, &all);
		fail_msg("%s", all.p);
	}
	diags_free(&d);
}

/* ------------------------------------------------------------- versions */

static void test_version_cmp(void **state)
{
	static const struct { const char *a, *b; int want; } cases[] = {
		{ "3.9", "3.11", -1 }, { "3.11", "3.9", 1 }, { "3.11", "3.11", 0 },
		{ "3", "3.0", -1 }, { "3.11", "3.11.2", -1 }, { "10", "9", 1 },
		{ "2.7.18", "3", -1 }, { "18", "20", -1 }, { "3.012", "3.12", 0 },
		{ "3.12rc1", "3.12", -1 }, { "3.12rc1", "3.12rc2", -1 }, { "", "1", -1 },
		{ "1.a", "1.b", -1 }, { "31", "3.1", 1 }, { "0.0", "0", 1 },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		int r = version_cmp(cases[i].a, cases[i].b);
		int s = version_cmp(cases[i].b, cases[i].a);
		if (r != cases[i].want || s != -cases[i].want)
			fail_msg("version_cmp(%s, %s) = %d / %d, want %d", cases[i].a,
				 cases[i].b, r, s, cases[i].want);
	}
}

static void test_version_match(void **state)
{
	static const struct { const char *pattern, *v; bool want; } cases[] = {
		{ "3", "3.11", true }, { "3", "3", true }, { "3", "31", false },
		{ "3", "3.1.2", true }, { "3.1", "3.1", true }, { "3.1", "3.1.2", true },
		{ "3.1", "3.11", false }, { "3.11", "3.1", false }, { "3.11", "3.11", true },
		{ "", "3.11", true }, { "*", "2.7", true }, { "3.11.1", "3.11", false },
		{ "2", "3.2", false },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		if (version_match(cases[i].pattern, cases[i].v) != cases[i].want)
			fail_msg("version_match(%s, %s) != %d", cases[i].pattern, cases[i].v,
				 cases[i].want);
}

/* Version choice: keep, want, metadata list, none. */
static void test_version_choice(void **state)
{
	static const struct {
		const char *meta_versions;   /* libconfig list, or NULL */
		const char *keep, *want;
		const char *result;          /* NULL: -EINVAL */
	} cases[] = {
		{ NULL, NULL, NULL, "31" },              /* highest configured */
		{ "[ \"3\" ]", NULL, NULL, "3.11" },     /* fuzzy, highest match */
		{ "[ \"3.9\" ]", NULL, NULL, "3.9" },
		{ "[ \"3.1\" ]", NULL, NULL, "3.1.2" },  /* 3.1 and 3.1.2, not 3.11 */
		{ "[ \"31\" ]", NULL, NULL, "31" },
		{ "[ \"3.12\", \"3.9\" ]", NULL, NULL, "3.9" },  /* first that matches */
		{ "[ \"2\", \"3\" ]", NULL, NULL, "2.7" },       /* in order, not highest */
		{ "[ \"3.12\" ]", NULL, NULL, NULL },
		{ "[ \"3\" ]", "3.9", NULL, "3.9" },     /* keep wins */
		{ NULL, "3.9", NULL, "3.9" },
		{ "[ \"3\" ]", "3.10", NULL, "3.11" },   /* keep no longer configured */
		{ "[ \"3.11\" ]", "3.9", NULL, "3.11" }, /* keep no longer asked for */
		{ "[ \"3\" ]", NULL, "3.9", "3.9" },     /* want over metadata */
		{ "[ \"3.9\" ]", NULL, "3", "3.11" },
		{ "[ \"3\" ]", NULL, "4", NULL },
		{ "[ \"3\" ]", "3.9", "3.11", "3.11" },  /* keep must match want */
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct metadata m;
		struct plan p;
		struct err e = ERR_INIT;
		_cleanup_free_ char *text = cases[i].meta_versions ?
			xasprintf("interpreter = { type = \"python\"; versions = %s; };", cases[i].meta_versions) :
			xstrdup("interpreter = { type = \"python\"; };");
		parse_meta(&m, text);
		int r = plan_make(&p, &cfg, &m, cases[i].keep, cases[i].want, &e);
		if (cases[i].result) {
			if (r != 0 || strcmp(p.interp_version, cases[i].result))
				fail_msg("case %zu: want %s, got r=%d %s %s", i, cases[i].result, r,
					 r ? err_msg(&e) : p.interp_version, "");
			assert_string_equal(p.interp_type, "python");
			plan_free(&p);
		} else {
			if (r != -EINVAL)
				fail_msg("case %zu: want -EINVAL, got %d", i, r);
			assert_non_null(strstr(err_msg(&e), "configured: 3.9, 3.11, 3.1, 3.1.2, 31, 2.7"));
		}
		err_free(&e);
		metadata_free(&m);
	}
}

/* A type without versions: its any block, the version as asked. */
static void test_any_only(void **state)
{
	struct metadata m;
	struct plan p;
	struct err e = ERR_INIT;

	parse_meta(&m, "interpreter = { type = \"nodejs\"; versions = [ \"18\" ]; };");
	assert_int_equal(plan_make(&p, &cfg, &m, NULL, NULL, &e), 0);
	assert_string_equal(p.interp_version, "18");
	assert_int_equal(p.packages.n, 1);
	assert_string_equal(p.packages.v[0], "nodejs");
	/* global actions still apply */
	assert_string_equal(p.actions[STEP_MAIN].commands.v[0], "g-main");
	assert_false(p.actions[STEP_INTERPRETER].defined);
	plan_free(&p);
	metadata_free(&m);

	parse_meta(&m, "interpreter = { type = \"nodejs\"; };");
	assert_int_equal(plan_make(&p, &cfg, &m, NULL, NULL, &e), 0);
	assert_string_equal(p.interp_version, "");
	plan_free(&p);
	metadata_free(&m);
}

static void test_unknown_type(void **state)
{
	struct metadata m = { 0 };
	struct plan p;
	struct err e = ERR_INIT;

	m.interp_type = xstrdup("ruby");
	assert_int_equal(plan_make(&p, &cfg, &m, NULL, NULL, &e), -EINVAL);
	assert_string_equal(err_msg(&e), "interpreter type 'ruby' is not configured "
			    "(configured: python, nodejs)");
	err_free(&e);
	metadata_free(&m);
}

/* ----------------------------------------------------------------- merge */

static void test_merge(void **state)
{
	static const struct {
		const char *meta;           /* besides the interpreter */
		const char *version;        /* metadata versions */
		/* expectations */
		const char *level;          /* env LEVEL */
		const char *packages;       /* joined with ' ' */
		const char *interp, *before, *main, *after;   /* joined with ';', "-" = undefined */
	} cases[] = {
		/* version 3.11: env from every level, version wins */
		{ "", "3.11", "version", "ca-certificates python3 python3.11",
		  "v-interp", "g-before", "any-main", "v-after1;v-after2" },
		/* version 3.9: no version env/actions, any block's stay */
		{ "", "3.9", "any", "ca-certificates python3 python3.9",
		  "any-interp", "g-before", "any-main", "g-after" },
		/* metadata env wins, metadata packages join (sorted, unique) */
		{ "env = { LEVEL = \"app\"; }; os = { packages = [ \"zlib1g-dev\", \"python3\", \"gcc\" ]; };",
		  "3.11", "app", "ca-certificates gcc python3 python3.11 zlib1g-dev",
		  "v-interp", "g-before", "any-main", "v-after1;v-after2" },
		/* metadata actions replace; an empty list disables */
		{ "actions = { before = \"m-before\"; main = [ \"m1\", \"m2\" ]; after = []; };",
		  "3.11", "version", "ca-certificates python3 python3.11",
		  "v-interp", "m-before", "m1;m2", "" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct metadata m;
		struct plan p;
		struct err e = ERR_INIT;
		_cleanup_free_ char *text = xasprintf(
			"interpreter = { type = \"python\"; versions = [ \"%s\" ]; };\n%s",
			cases[i].version, cases[i].meta);
		parse_meta(&m, text);
		assert_int_equal(plan_make(&p, &cfg, &m, NULL, NULL, &e), 0);

		assert_string_equal(kvlist_get(&p.env, "LEVEL"), cases[i].level);
		assert_string_equal(kvlist_get(&p.env, "G"), "g");
		assert_string_equal(kvlist_get(&p.env, "A"), "a");
		if (!strcmp(cases[i].version, "3.11"))
			assert_string_equal(kvlist_get(&p.env, "V"), "v");
		else
			assert_null(kvlist_get(&p.env, "V"));

		_cleanup_buf_ struct buf pk = BUF_INIT;
		for (size_t j = 0; j < p.packages.n; j++)
			buf_addf(&pk, "%s%s", j ? " " : "", p.packages.v[j]);
		assert_string_equal(pk.p, cases[i].packages);

		static const enum step steps[] = { STEP_INTERPRETER, STEP_BEFORE, STEP_MAIN, STEP_AFTER };
		const char *want[] = { cases[i].interp, cases[i].before, cases[i].main, cases[i].after };
		for (size_t s = 0; s < ARRAY_SIZE(steps); s++) {
			_cleanup_buf_ struct buf got = BUF_INIT;
			const struct action *a = &p.actions[steps[s]];
			if (!a->defined)
				buf_adds(&got, "-");
			for (size_t j = 0; j < a->commands.n; j++)
				buf_addf(&got, "%s%s", j ? ";" : "", a->commands.v[j]);
			if (strcmp(got.p, want[s]))
				fail_msg("case %zu, step %s: got '%s', want '%s'", i,
					 step_name(steps[s]), got.p, want[s]);
		}
		/* system/finalize only from the global level */
		assert_string_equal(p.actions[STEP_SYSTEM].commands.v[0], "sys");
		assert_string_equal(p.actions[STEP_FINALIZE].commands.v[0], "fin");
		/* steps without actions stay undefined */
		assert_false(p.actions[STEP_PACKAGES].defined);
		assert_false(p.actions[STEP_CHECKOUT].defined);
		assert_false(p.actions[STEP_FILES].defined);
		plan_free(&p);
		metadata_free(&m);
	}
}

/* A hand-made metadata struct cannot define admin-only actions. */
static void test_who_may_define(void **state)
{
	struct metadata m;
	struct plan p;
	struct err e = ERR_INIT;

	parse_meta(&m, "interpreter = { type = \"python\"; versions = [\"3.11\"]; };");
	static const enum step admin_only[] = { STEP_SYSTEM, STEP_INTERPRETER, STEP_FINALIZE };
	for (size_t i = 0; i < ARRAY_SIZE(admin_only); i++) {
		m.actions.a[admin_only[i]].defined = true;
		strv_push(&m.actions.a[admin_only[i]].commands, "evil");
	}
	assert_int_equal(plan_make(&p, &cfg, &m, NULL, NULL, &e), 0);
	assert_string_equal(p.actions[STEP_SYSTEM].commands.v[0], "sys");
	assert_string_equal(p.actions[STEP_INTERPRETER].commands.v[0], "v-interp");
	assert_string_equal(p.actions[STEP_FINALIZE].commands.v[0], "fin");
	plan_free(&p);
	metadata_free(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_version_cmp),
		cmocka_unit_test(test_version_match),
		cmocka_unit_test(test_version_choice),
		cmocka_unit_test(test_any_only),
		cmocka_unit_test(test_unknown_type),
		cmocka_unit_test(test_merge),
		cmocka_unit_test(test_who_may_define),
	};
	return cmocka_run_group_tests_name("plan", tests, setup, teardown);
}
