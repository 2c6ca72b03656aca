/* tests/unit/test-manifest.c - the package manifest: write, read back, reject. */
#include <errno.h>
#include <string.h>

#include "tests/unit/unit.h"
#include "package/package.h"

static void fill(struct package_info *p)
{
	memset(p, 0, sizeof(*p));
	p->app = xstrdup("flask");
	p->id = xstrdup("20261120T214500Z-3f9a2c1");
	p->parent = xstrdup("20261119T100000Z-0000000");
	p->fresh = false;
	p->base.kind = xstrdup("package");
	p->base.name = xstrdup("20261119T100000Z-0000000");
	p->base.sha256 = xstrdup("ab");
	p->base.reason = xstrdup("the current package");
	p->image.name = xstrdup("bookworm-minbase-amd64");
	p->image.sha256 = xstrdup("cd");
	p->repo.url = xstrdup("/src/flask \"quoted\"");
	p->repo.ref = xstrdup("refs/heads/main");
	p->repo.commit = xstrdup("0123456789abcdef0123456789abcdef01234567");
	p->repo.commit_time = 1790000000;
	p->interp.type = xstrdup("python");
	p->interp.version = xstrdup("3.11");
	p->blob.key = xstrdup("packages/flask/20261120T214500Z-3f9a2c1.tar.zst");
	memset(p->blob.sha256, 'e', 64);
	p->blob.size = 123456789012ull;
	strv_push(&p->os_packages, "python3");
	strv_push(&p->os_packages, "python3-flask");
	p->metadata_sha256 = xstrdup("ff");
	p->app_home = xstrdup("/home/app");
	p->uid = 1000;
	p->gid = 1000;
	strv_push(&p->deploy.shared, "data");
	strv_push(&p->deploy.hooks_pre, "bin/migrate");
	p->deploy.keep = 3;
	p->builder = xstrdup("host1");
	p->steps = xcalloc(2, sizeof(*p->steps));
	p->n_steps = 2;
	p->steps[0] = (struct package_step){ xstrdup("system"), 0.25, xstrdup("ok") };
	p->steps[1] = (struct package_step){ xstrdup("main"), 1.5, xstrdup("skipped") };
	p->created = xstrdup("2026-11-20T21:45:00Z");
}

static void test_roundtrip(void **state)
{
	struct package_info p, q;
	struct buf json = BUF_INIT;
	struct err e = ERR_INIT;
	fill(&p);
	package_manifest_json(&p, &json);
	assert_int_equal(package_manifest_parse(&q, json.p, &e), 0);
	assert_string_equal(q.app, "flask");
	assert_string_equal(q.parent, p.parent);
	assert_false(q.fresh);
	assert_string_equal(q.base.reason, "the current package");
	assert_string_equal(q.image.sha256, "cd");
	assert_string_equal(q.repo.url, p.repo.url);
	assert_int_equal(q.repo.commit_time, 1790000000);
	assert_string_equal(q.interp.version, "3.11");
	assert_string_equal(q.blob.sha256, p.blob.sha256);
	assert_true(q.blob.size == 123456789012ull);
	assert_int_equal(q.os_packages.n, 2);
	assert_string_equal(q.os_packages.v[1], "python3-flask");
	assert_string_equal(q.deploy.hooks_pre.v[0], "bin/migrate");
	assert_int_equal(q.deploy.keep, 3);
	assert_int_equal(q.n_steps, 2);
	assert_string_equal(q.steps[1].status, "skipped");
	assert_true(q.steps[1].seconds > 1.49 && q.steps[1].seconds < 1.51);
	assert_non_null(strstr(json.p, "\"layers\""));
	assert_non_null(strstr(json.p, "\"parent\": \"20261119T100000Z-0000000\""));
	package_info_free(&q);
	/* a fresh package has a null parent */
	free(p.parent);
	p.parent = NULL;
	buf_reset(&json);
	package_manifest_json(&p, &json);
	assert_non_null(strstr(json.p, "\"parent\": null"));
	assert_int_equal(package_manifest_parse(&q, json.p, &e), 0);
	assert_null(q.parent);
	package_info_free(&q);
	package_info_free(&p);
	buf_free(&json);
	err_free(&e);
}

static void test_reject(void **state)
{
	static const char *const bad[] = {
		"", "[]", "{", "{\"format\": 2, \"app\": \"a\", \"id\": \"b\"}",
		"{\"format\": 1, \"app\": \"a\", \"id\": \"b\"}",
		"{\"format\": 1, \"app\": \"a\", \"id\": \"b\", \"blob\": {\"key\": \"../x\", "
		"\"sha256\": \"eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee\", "
		"\"size\": 1}}",
		"{\"format\": 1, \"app\": \"a\", \"id\": \"b\", \"blob\": {\"key\": \"k\", "
		"\"sha256\": \"E\", \"size\": 1}}",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct package_info q;
		struct err e = ERR_INIT;
		assert_int_equal(package_manifest_parse(&q, bad[i], &e), -EINVAL);
		assert_true(e.msg.len > 0);
		err_free(&e);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_reject),
	};
	return cmocka_run_group_tests_name("manifest", tests, NULL, NULL);
}
