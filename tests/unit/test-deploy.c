/*
 * tests/unit/test-deploy.c - the pure parts of deploy/: cron schedules,
 * hook variables (JSON and environment), history lines, prune selection,
 * the manifest as deploy reads it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "deploy/deploy-int.h"

static time_t utc(int y, int mo, int d, int h, int mi)
{
	struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h,
			 .tm_min = mi };
	return timegm(&tm);
}

static int setup_utc(void **state)
{
	(void)state;
	setenv("TZ", "UTC", 1);
	tzset();
	return 0;
}

/* ------------------------------------------------------------------ cron */

static void test_cron_parse_ok(void **state)
{
	static const struct {
		const char *spec;
		uint64_t minute;
		uint32_t hour;
		uint32_t dom;
		uint16_t month;
		uint8_t dow;
		bool dom_star, dow_star;
	} t[] = {
		{ "* * * * *", 0x0fffffffffffffffull, 0xffffff, 0xfffffffe, 0x1ffe, 0x7f, true, true },
		{ "0 0 1 1 0", 1, 1, 2, 2, 1, false, false },
		{ "*/15 * * * *", 1 | 1ull << 15 | 1ull << 30 | 1ull << 45, 0xffffff, 0xfffffffe,
		  0x1ffe, 0x7f, true, true },
		{ "5,10-12 1-3/2 */10 jan,Mar-may sun", 1ull << 5 | 7ull << 10, 1 << 1 | 1 << 3,
		  1 << 1 | 1 << 11 | 1 << 21 | 1u << 31, 1 << 1 | 1 << 3 | 1 << 4 | 1 << 5, 1,
		  true, false },
		{ "0 12 * * 7", 1, 1 << 12, 0xfffffffe, 0x1ffe, 1, true, false },
		{ "0 12 * * 5-7", 1, 1 << 12, 0xfffffffe, 0x1ffe, 1 | 1 << 5 | 1 << 6, true, false },
		{ "30/10 * * * *", 1ull << 30 | 1ull << 40 | 1ull << 50, 0xffffff, 0xfffffffe,
		  0x1ffe, 0x7f, true, true },
		{ "@hourly", 1, 0xffffff, 0xfffffffe, 0x1ffe, 0x7f, true, true },
		{ "@daily", 1, 1, 0xfffffffe, 0x1ffe, 0x7f, true, true },
		{ "  0   6  *  *  1-5 ", 1, 1 << 6, 0xfffffffe, 0x1ffe, 0x3e, true, false },
	};
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
		struct cron c;
		struct err e = ERR_INIT;
		int r = cron_parse(&c, t[i].spec, &e);
		if (r != 0)
			fail_msg("'%s': %s", t[i].spec, err_msg(&e));
		assert_int_equal(c.minute, t[i].minute);
		assert_int_equal(c.hour, t[i].hour);
		assert_int_equal(c.dom, t[i].dom);
		assert_int_equal(c.month, t[i].month);
		assert_int_equal(c.dow, t[i].dow);
		assert_int_equal(c.dom_star, t[i].dom_star);
		assert_int_equal(c.dow_star, t[i].dow_star);
		err_free(&e);
	}
}

static void test_cron_parse_bad(void **state)
{
	static const char *const bad[] = {
		"", "* * * *", "* * * * * *", "60 * * * *", "* 24 * * *", "* * 0 * *",
		"* * 32 * *", "* * * 13 * ", "* * * * 8", "*/0 * * * *", "5-1 * * * *",
		"a * * * *", "1, * * * *", ",1 * * * *", "1-* * * * *", "*/ * * * *",
		"* * * foo *", "@often", "1-2-3 * * * *", "-1 * * * *",
	};
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct cron c;
		struct err e = ERR_INIT;
		if (cron_parse(&c, bad[i], &e) != -EINVAL)
			fail_msg("'%s' was accepted", bad[i]);
		assert_non_null(strstr(err_msg(&e), "schedule"));
		err_free(&e);
	}
}

static void test_cron_next(void **state)
{
	static const struct {
		const char *spec;
		int after[5];
		int want[5];
	} t[] = {
		{ "* * * * *", { 2026, 11, 20, 21, 45 }, { 2026, 11, 20, 21, 46 } },
		{ "*/15 * * * *", { 2026, 11, 20, 21, 45 }, { 2026, 11, 20, 22, 0 } },
		{ "0 0 * * *", { 2026, 12, 31, 23, 59 }, { 2027, 1, 1, 0, 0 } },
		{ "30 4 1 * *", { 2026, 1, 31, 5, 0 }, { 2026, 2, 1, 4, 30 } },
		{ "0 0 29 2 *", { 2026, 3, 1, 0, 0 }, { 2028, 2, 29, 0, 0 } },
		/* 2026-11-20 is a Friday; next Monday 09:00 */
		{ "0 9 * * mon", { 2026, 11, 20, 10, 0 }, { 2026, 11, 23, 9, 0 } },
		/* both day fields restricted: the 1st or a Monday */
		{ "0 0 1 * 1", { 2026, 11, 20, 0, 0 }, { 2026, 11, 23, 0, 0 } },
		{ "0 0 1 * 1", { 2026, 11, 23, 0, 0 }, { 2026, 11, 30, 0, 0 } },
		{ "0 0 1 * 1", { 2026, 11, 30, 0, 0 }, { 2026, 12, 1, 0, 0 } },
		/* day restricted, weekday "*": the day only */
		{ "0 0 13 * *", { 2026, 11, 20, 0, 0 }, { 2026, 12, 13, 0, 0 } },
		{ "@yearly", { 2026, 6, 1, 0, 0 }, { 2027, 1, 1, 0, 0 } },
	};
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
		struct cron c;
		struct err e = ERR_INIT;
		assert_int_equal(cron_parse(&c, t[i].spec, &e), 0);
		time_t got;
		time_t after = utc(t[i].after[0], t[i].after[1], t[i].after[2], t[i].after[3],
				   t[i].after[4]) + 7;   /* seconds do not matter */
		assert_int_equal(cron_next(&c, after, &got), 0);
		time_t want = utc(t[i].want[0], t[i].want[1], t[i].want[2], t[i].want[3],
				  t[i].want[4]);
		if (got != want)
			fail_msg("'%s' (#%zu): got %lld, want %lld", t[i].spec, i, (long long)got,
				 (long long)want);
		struct tm tm;
		gmtime_r(&got, &tm);
		assert_true(cron_match(&c, &tm));
	}
	struct cron c;
	struct err e = ERR_INIT;
	time_t got;
	assert_int_equal(cron_parse(&c, "0 0 30 2 *", &e), 0);
	assert_int_equal(cron_next(&c, utc(2026, 1, 1, 0, 0), &got), -ERANGE);
}

/* ------------------------------------------------------------ hook vars */

static const struct hook_vars sample_vars = {
	.app = "web",
	.package_id = "20261120T214500Z-3f9a2c1",
	.commit = "0123456789abcdef0123456789abcdef01234567",
	.revision_dir = "/srv/upaas/web/revisions/20261120T214500Z-3f9a2c1",
	.previous_revision_dir = "/srv/upaas/web/revisions/20261119T100000Z-aaaaaaa",
	.shared_dir = "/srv/upaas/web/shared",
	.data_dir = "/srv/upaas/web/revisions/20261120T214500Z-3f9a2c1/home/app",
	.root = "/srv/upaas",
	.hostname = "host1",
	.operation = "upgrade",
	.event = "pre-deploy",
	.time = 1795211100,   /* 2026-11-20T21:45:00Z */
};

static void test_hook_vars_json(void **state)
{
	struct buf b = BUF_INIT;
	(void)state;
	hook_vars_json(&sample_vars, &b);
	struct json_object *j = json_tokener_parse(b.p);
	assert_non_null(j);
	static const struct {
		const char *key, *want;
	} t[] = {
		{ "app", "web" },
		{ "package_id", "20261120T214500Z-3f9a2c1" },
		{ "commit", "0123456789abcdef0123456789abcdef01234567" },
		{ "revision_dir", "/srv/upaas/web/revisions/20261120T214500Z-3f9a2c1" },
		{ "previous_revision_dir", "/srv/upaas/web/revisions/20261119T100000Z-aaaaaaa" },
		{ "shared_dir", "/srv/upaas/web/shared" },
		{ "data_dir", "/srv/upaas/web/revisions/20261120T214500Z-3f9a2c1/home/app" },
		{ "root", "/srv/upaas" },
		{ "hostname", "host1" },
		{ "operation", "upgrade" },
		{ "event", "pre-deploy" },
		{ "time", "2026-11-20T21:45:00Z" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
		struct json_object *v;
		assert_true(json_object_object_get_ex(j, t[i].key, &v));
		assert_string_equal(json_object_get_string(v), t[i].want);
	}
	json_object_put(j);
	buf_free(&b);

	/* quotes and control characters survive as JSON strings */
	struct hook_vars odd = sample_vars;
	odd.hostname = "a\"b\\c\nd";
	odd.previous_revision_dir = NULL;
	hook_vars_json(&odd, &b);
	j = json_tokener_parse(b.p);
	assert_non_null(j);
	struct json_object *v;
	assert_true(json_object_object_get_ex(j, "hostname", &v));
	assert_string_equal(json_object_get_string(v), "a\"b\\c\nd");
	assert_true(json_object_object_get_ex(j, "previous_revision_dir", &v));
	assert_string_equal(json_object_get_string(v), "");
	json_object_put(j);
	buf_free(&b);
}

static const char *env_get(const struct strv *env, const char *name)
{
	size_t n = strlen(name);
	for (size_t i = 0; i < env->n; i++)
		if (!strncmp(env->v[i], name, n) && env->v[i][n] == '=')
			return env->v[i] + n + 1;
	return NULL;
}

static void test_hook_vars_env(void **state)
{
	struct strv env = STRV_INIT;
	(void)state;
	strv_setenv(&env, "UPAAS_APP", "stale");
	hook_vars_env(&sample_vars, &env);
	assert_string_equal(env_get(&env, "UPAAS_APP"), "web");
	assert_string_equal(env_get(&env, "UPAAS_PACKAGE_ID"), "20261120T214500Z-3f9a2c1");
	assert_string_equal(env_get(&env, "UPAAS_OPERATION"), "upgrade");
	assert_string_equal(env_get(&env, "UPAAS_SHARED_DIR"), "/srv/upaas/web/shared");
	assert_string_equal(env_get(&env, "UPAAS_TIME"), "2026-11-20T21:45:00Z");
	assert_string_equal(env_get(&env, "CURRENT_CONFIG"), sample_vars.revision_dir);
	assert_string_equal(env_get(&env, "PREVIOUS_CONFIG"), sample_vars.previous_revision_dir);
	size_t apps = 0;
	for (size_t i = 0; i < env.n; i++)
		apps += !strncmp(env.v[i], "UPAAS_APP=", 10);
	assert_int_equal(apps, 1);
	strv_free(&env);
}

/* -------------------------------------------------------------- history */

static void test_history_roundtrip(void **state)
{
	struct deploy_hist h = { .time = 1795211100, .op = "upgrade", .id = "B", .result = "ok",
				 .previous = "A" };
	struct buf b = BUF_INIT;
	(void)state;
	deploy_hist_format(&h, &b);
	assert_string_equal(b.p, "2026-11-20T21:45:00Z upgrade B ok A\n");
	buf_rtrim(&b);
	struct deploy_hist p;
	assert_int_equal(deploy_hist_parse(b.p, &p), 0);
	assert_int_equal(p.time, 1795211100);
	assert_string_equal(p.op, "upgrade");
	assert_string_equal(p.id, "B");
	assert_string_equal(p.result, "ok");
	assert_string_equal(p.previous, "A");
	deploy_hist_free(&p);
	buf_free(&b);

	h.previous = NULL;
	deploy_hist_format(&h, &b);
	assert_string_equal(b.p, "2026-11-20T21:45:00Z upgrade B ok -\n");
	buf_free(&b);

	static const char *const bad[] = {
		"", "garbage", "2026-11-20T21:45:00Z upgrade B", "yesterday upgrade B ok A",
		"2026-11-20T21:45:00Z  upgrade B ok A", "2026-11-20T21:45:00Z upgrade B ok A extra",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		assert_int_equal(deploy_hist_parse(bad[i], &p), -EINVAL);
}

static void test_history_previous(void **state)
{
	struct {
		const char *line;
	} lines[] = {
		{ "2026-11-20T10:00:00Z install A ok -" },
		{ "2026-11-20T11:00:00Z upgrade B ok A" },
		{ "2026-11-20T12:00:00Z upgrade C failed:post-deploy B" },
		{ "2026-11-20T12:00:01Z switch-back B ok C" },
		{ "2026-11-20T13:00:00Z upgrade D failed:pre-deploy B" },
	};
	struct deploy_hist h[ARRAY_SIZE(lines) + 2];
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(lines); i++)
		assert_int_equal(deploy_hist_parse(lines[i].line, &h[i]), 0);
	size_t n = ARRAY_SIZE(lines);

	char *p = deploy_hist_previous(h, n, "B");
	assert_non_null(p);
	assert_string_equal(p, "A");      /* failed C and D never were live */
	free(p);

	/* after a rollback to A, previous is B: rollback toggles */
	assert_int_equal(deploy_hist_parse("2026-11-20T14:00:00Z rollback A ok B", &h[n++]), 0);
	p = deploy_hist_previous(h, n, "A");
	assert_string_equal(p, "B");
	free(p);

	/* an undeploy ends the line */
	assert_int_equal(deploy_hist_parse("2026-11-20T15:00:00Z undeploy A ok A", &h[n++]), 0);
	assert_null(deploy_hist_previous(h, n, NULL));
	assert_null(deploy_hist_previous(h, 0, NULL));
	for (size_t i = 0; i < n; i++)
		deploy_hist_free(&h[i]);
}

/* ----------------------------------------------------------------- prune */

static void split(struct strv *out, const char *s)
{
	while (s && *s) {
		const char *sp = strchr(s, ' ');
		size_t n = sp ? (size_t)(sp - s) : strlen(s);
		char *w = strndup(s, n);
		strv_push(out, w);
		free(w);
		s = sp ? sp + 1 : NULL;
	}
}

static void test_prune_select(void **state)
{
	static const struct {
		const char *ids, *current, *previous;
		int keep;
		const char *want;
	} t[] = {
		{ "", "A", NULL, 5, "" },
		{ "A B C", "C", "B", 5, "" },
		{ "A B C D E F G", "G", "F", 5, "A B" },
		{ "G F E D C B A", "G", "F", 5, "A B" },
		/* current and previous old: kept, newest others fill up */
		{ "A B C D E F G", "A", "B", 3, "C D E F" },
		/* keep below 2 still keeps current and previous */
		{ "A B C D", "D", "C", 1, "A B" },
		{ "A B C D", "D", NULL, 1, "A B C" },
		{ "A B C D", "D", NULL, 0, "A B C" },
		/* current not among the ids (e.g. not deployed yet) */
		{ "A B C", NULL, NULL, 2, "A" },
		{ "A B C D", "B", "Z", 2, "A C" },
	};
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
		struct strv ids = STRV_INIT, rm = STRV_INIT, want = STRV_INIT;
		split(&ids, t[i].ids);
		split(&want, t[i].want);
		deploy_prune_select(&ids, t[i].current, t[i].previous, t[i].keep, &rm);
		if (rm.n != want.n)
			fail_msg("#%zu: removes %zu, want %zu", i, rm.n, want.n);
		for (size_t k = 0; k < rm.n; k++)
			assert_string_equal(rm.v[k], want.v[k]);
		strv_free(&ids);
		strv_free(&rm);
		strv_free(&want);
	}
}

/* -------------------------------------------------------------- manifest */

#define SHA "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define COMMIT "0123456789abcdef0123456789abcdef01234567"

/* deploy reads manifests with the one reader (test-manifest.c checks it);
 * who the app runs as is the host's decision, whatever the manifest says. */
static void test_manifest(void **state)
{
	static const char *const good =
		"{ \"format\": 1, \"app\": \"web\", \"id\": \"20261120T214500Z-3f9a2c1\","
		" \"repository\": { \"url\": \"x\", \"commit\": \"" COMMIT "\" },"
		" \"blob\": { \"key\": \"packages/web/20261120T214500Z-3f9a2c1.tar.zst\","
		"   \"sha256\": \"" SHA "\", \"size\": 1234 },"
		" \"app_home\": \"/srv/app\", \"uid\": 1001, \"gid\": 1002,"
		" \"deploy\": { \"shared\": [\"data\", \"var/uploads\"],"
		"   \"hooks\": { \"pre\": [\"bin/pre\"], \"post\": [] }, \"keep\": 3 } }";
	static const char *const bare =
		"{ \"format\": 1, \"app\": \"web\", \"id\": \"x1\","
		" \"blob\": { \"key\": \"k\", \"sha256\": \"" SHA "\", \"size\": 1 } }";
	struct package_info m;
	struct err e = ERR_INIT;
	struct config c;
	(void)state;

	config_defaults(&c);
	free(c.apps.home);
	c.apps.home = xstrdup("/srv/app");
	assert_int_equal(deploy_manifest_read(&m, good, "web", "20261120T214500Z-3f9a2c1", &c,
					      &e), 0);
	assert_string_equal(m.repo.commit, COMMIT);
	assert_string_equal(m.layers[0].sha256, SHA);
	assert_int_equal(m.layers[0].size, 1234);
	assert_string_equal(m.app_home, "/srv/app");
	/* the host's ids, not the manifest's 1001 and 1002 */
	assert_int_equal(m.uid, 1000);
	assert_int_equal(m.gid, 1000);
	assert_int_equal(m.deploy.keep, 3);
	assert_int_equal(m.deploy.shared.n, 2);
	assert_string_equal(m.deploy.shared.v[1], "var/uploads");
	assert_int_equal(m.deploy.hooks_pre.n, 1);
	assert_int_equal(m.deploy.hooks_post.n, 0);
	package_info_free(&m);
	config_free(&c);

	/* silent manifest, no config: /home/app, 1000 */
	assert_int_equal(deploy_manifest_read(&m, bare, "web", "x1", NULL, &e), 0);
	assert_string_equal(m.app_home, "/home/app");
	assert_int_equal(m.uid, 1000);
	assert_int_equal(m.gid, 1000);
	assert_null(m.repo.commit);
	package_info_free(&m);

	/* silent manifest: the config decides */
	config_defaults(&c);
	c.apps.uid = 2001;
	c.apps.gid = 2002;
	free(c.apps.home);
	c.apps.home = xstrdup("/var/lib/app");
	assert_int_equal(deploy_manifest_read(&m, bare, NULL, NULL, &c, &e), 0);
	assert_string_equal(m.app_home, "/var/lib/app");
	assert_int_equal(m.uid, 2001);
	assert_int_equal(m.gid, 2002);
	package_info_free(&m);
	/* a manifest that says otherwise: still the config's ids; a package
	 * built for another home is refused */
	assert_int_equal(deploy_manifest_read(&m, good, NULL, NULL, &c, &e), -EINVAL);
	assert_non_null(strstr(err_msg(&e), "app_home '/srv/app' is not this host's apps.home"));
	err_clear(&e);
	free(c.apps.home);
	c.apps.home = xstrdup("/srv/app");
	assert_int_equal(deploy_manifest_read(&m, good, NULL, NULL, &c, &e), 0);
	assert_int_equal(m.uid, 2001);
	assert_int_equal(m.gid, 2002);
	package_info_free(&m);
	/* uid 0 in a manifest is refused for that reason alone */
	static const char *const root0 =
		"{ \"format\": 1, \"app\": \"web\", \"id\": \"x1\", \"uid\": 0,"
		" \"blob\": { \"key\": \"k\", \"sha256\": \"" SHA "\", \"size\": 1 } }";
	assert_int_equal(deploy_manifest_read(&m, root0, NULL, NULL, &c, &e), -EINVAL);
	assert_non_null(strstr(err_msg(&e), "uid"));
	err_clear(&e);
	config_free(&c);

	/* wrong app / id */
	assert_int_equal(deploy_manifest_read(&m, good, "api", NULL, NULL, &e), -EINVAL);
	err_clear(&e);
	assert_int_equal(deploy_manifest_read(&m, good, "web", "other", NULL, &e), -EINVAL);
	err_clear(&e);

#define HEAD(id) "{ \"format\": 1, \"app\": \"web\", \"id\": \"" id "\"," \
	" \"blob\": { \"key\": \"k\", \"sha256\": \"" SHA "\", \"size\": 1 }"
	static const char *const bad[] = {
		"not json",
		"[]",
		HEAD("x1") ", \"deploy\": { \"shared\": [\"../etc\"] } }",
		HEAD("x1") ", \"app_home\": \"home/app\" }",
		HEAD("x1.tmp") " }",
		HEAD("x1") ", \"uid\": 0 }",
		/* no format */
		"{ \"app\": \"web\", \"id\": \"x1\","
		" \"blob\": { \"key\": \"k\", \"sha256\": \"" SHA "\", \"size\": 1 } }",
	};
#undef HEAD
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		if (deploy_manifest_read(&m, bad[i], "web", NULL, NULL, &e) != -EINVAL)
			fail_msg("bad manifest #%zu accepted", i);
		err_clear(&e);
	}
	err_free(&e);
}

static void test_names(void **state)
{
	(void)state;
	/* revision names (package_id_ok, more in test-manifest.c) */
	assert_true(package_id_ok("20261120T214500Z-3f9a2c1"));
	assert_false(package_id_ok("x.tmp"));
	assert_false(package_id_ok("x.failed"));
	assert_true(path_rel_ok("data"));
	assert_true(path_rel_ok("var/uploads"));
	assert_false(path_rel_ok("/data"));
	assert_false(path_rel_ok("data/"));
	assert_false(path_rel_ok("a//b"));
	assert_false(path_rel_ok("a/../b"));
	assert_false(path_rel_ok("./a"));
	assert_false(path_rel_ok(""));
	assert_false(path_rel_ok("a\nb"));
}

/* overlay/<name>/lowers: the one reader of what a revision mounts */
static void test_overlay_lowers(void **state)
{
	(void)state;
	char tmpl[] = "/tmp/upaas-test-ovl.XXXXXX";
	assert_non_null(mkdtemp(tmpl));
	struct app_paths p;
	app_paths_init(&p, tmpl, "app");
	_cleanup_free_ char *state_dir = overlay_state_path(&p, "r1");
	assert_int_equal(fs_mkdir_p(state_dir, 0700), 0);
	_cleanup_free_ char *lowers = path_join(state_dir, "lowers");
	const char *sha = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
	struct unpack_policy plain = { 0 }, priv = { .privileged = true };
	_cleanup_free_ char *t1 = layer_tree_name(sha, &plain);
	_cleanup_free_ char *t2 = layer_tree_name(sha, &priv);

	/* the policy is in the name: a tree made under another is not reused */
	assert_true(layer_tree_name_ok(t1));
	assert_true(layer_tree_name_ok(t2));
	assert_string_not_equal(t1, t2);
	assert_int_equal(strncmp(t1, sha, 64), 0);
	assert_false(layer_tree_name_ok("../x"));
	assert_false(layer_tree_name_ok(sha));

	struct { const char *text; int want; } cases[] = {
		{ "upaas-overlay 1 nosuid\n%s\n%s\n", 1 },
		{ "upaas-overlay 1 suid\n%s\n", 1 },
		{ "upaas-overlay 2 nosuid\n%s\n", -EINVAL },
		{ "upaas-overlay 1 setuid\n%s\n", -EINVAL },
		{ "upaas-overlay 1 nosuid\n", -EINVAL },
		{ "upaas-overlay 1 nosuid\n%s\n../../etc\n", -EINVAL },
		{ "", -EINVAL },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		_cleanup_buf_ struct buf tb = BUF_INIT;
		/* "%s" in a case: the trees, in order */
		int k = 0;
		for (const char *c = cases[i].text; *c; c++) {
			if (c[0] == '%' && c[1] == 's') {
				buf_adds(&tb, k++ ? t2 : t1);
				c++;
			} else {
				buf_addch(&tb, *c);
			}
		}
		const char *text = tb.p ? tb.p : "";
		_cleanup_strv_ struct strv trees = STRV_INIT;
		_cleanup_err_ struct err e = ERR_INIT;
		bool nosuid = false;
		assert_int_equal(fs_write_atomic(lowers, text, tb.len, 0644), 0);
		int r = overlay_lowers_read(&p, "r1", &trees, &nosuid, &e);
		assert_int_equal(r, cases[i].want);
		if (r == 1) {
			assert_string_equal(trees.v[0], t1);
			assert_int_equal(nosuid, !strstr(cases[i].text, " suid"));
		} else {
			assert_non_null(strstr(err_msg(&e), "lowers"));
		}
	}
	/* no state: not an overlay revision */
	_cleanup_strv_ struct strv none = STRV_INIT;
	_cleanup_err_ struct err e = ERR_INIT;
	assert_int_equal(overlay_lowers_read(&p, "r2", &none, NULL, &e), 0);
	assert_false(path_is_mount_root(state_dir));
	assert_true(path_is_mount_root("/"));
	_cleanup_err_ struct err re = ERR_INIT;
	assert_int_equal(fs_rm_rf(tmpl, &re), 0);
	app_paths_free(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cron_parse_ok),
		cmocka_unit_test(test_cron_parse_bad),
		cmocka_unit_test(test_cron_next),
		cmocka_unit_test(test_hook_vars_json),
		cmocka_unit_test(test_hook_vars_env),
		cmocka_unit_test(test_history_roundtrip),
		cmocka_unit_test(test_history_previous),
		cmocka_unit_test(test_prune_select),
		cmocka_unit_test(test_manifest),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_overlay_lowers),
	};
	return cmocka_run_group_tests_name("deploy", tests, setup_utc, NULL);
}
