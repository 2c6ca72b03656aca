/*
 * tests/unit/test-manifest.c - the package manifest: what the writer writes
 * the one reader gives back, field by field; a manifest of the first
 * edition still reads; and every way a manifest from storage can be wrong
 * is refused with a message naming the field.
 */
#include <errno.h>
#include <string.h>

#include <json-c/json.h>

#include "tests/unit/unit.h"
#include "package/package.h"

#define SHA_A "4086a7d7efe346936ca3595f2ff5d16c21aa27a6da1e05a9474247961a0fbbce"
#define SHA_B "f2f2e530a6bfa310dd38c55637c4b6c2c35b274ab8553fa7b9669777a2b06592"
#define SHA_C "012f4f435169d2fc9011a991c3d5de48100900e9c5091c645b2cb8d12373e4c4"
#define SHA_D "9cec3c7096213372420308f638d73af72fac553f2928135fb8dd10744a91ec9d"
#define COMMIT "c773add9f4d982743923f441d3ffbbce3ab70490"

static struct package_step *steps_new(size_t n, const char *const *names, const double *secs,
				      const char *const *status)
{
	struct package_step *v = xcalloc(n, sizeof(*v));
	for (size_t i = 0; i < n; i++) {
		v[i].name = xstrdup(names[i]);
		v[i].seconds = secs[i];
		v[i].status = status[i] ? xstrdup(status[i]) : NULL;
	}
	return v;
}

/* Every field of package_info set, none to its zero value. */
static void fill(struct package_info *p)
{
	static const char *const sn[] = { "system", "os packages", "main" };
	static const double ss[] = { 0.25, 0, 1.5 };
	static const char *const st[] = { "ok", "skipped", NULL };
	static const char *const gn[] = { "fetch", "pack" };
	static const double gs[] = { 0.095, 1.521 };
	static const char *const gt[] = { "ok", "ok" };

	memset(p, 0, sizeof(*p));
	p->app = xstrdup("flask");
	p->id = xstrdup("20261120T214500Z-3f9a2c1");
	p->parent = xstrdup("20261119T100000Z-0000000");
	p->fresh = false;
	p->base.kind = xstrdup("package");
	p->base.name = xstrdup("20261119T100000Z-0000000");
	p->base.sha256 = xstrdup(SHA_A);
	p->base.reason = xstrdup("the current package");
	p->image.name = xstrdup("bookworm-minbase-amd64");
	p->image.sha256 = xstrdup(SHA_B);
	p->repo.url = xstrdup("/src/flask \"quoted\" \\ é");
	p->repo.ref = xstrdup("refs/heads/main");
	p->repo.commit = xstrdup(COMMIT);
	p->repo.commit_time = 1790000000;
	p->interp.type = xstrdup("python");
	p->interp.version = xstrdup("3.11");
	p->format = 2;
	p->n_layers = 2;
	p->layers = xcalloc(2, sizeof(*p->layers));
	p->layers[0] = (struct package_layer){ .key = xasprintf("layers/%s.tar.zst", SHA_D),
					       .size = 123456789012ull, .kind = xstrdup("full") };
	memcpy(p->layers[0].sha256, SHA_D, 65);
	p->layers[1] = (struct package_layer){ .key = xasprintf("layers/%s.tar.zst", SHA_C),
					       .size = 4321, .kind = xstrdup("delta") };
	memcpy(p->layers[1].sha256, SHA_C, 65);
	strv_push(&p->os_packages, "python3");
	strv_push(&p->os_packages, "python3-flask");
	p->metadata_sha256 = xstrdup(SHA_C);
	p->app_home = xstrdup("/home/app");
	p->uid = 1001;
	p->gid = 1002;
	p->keep_git = true;
	strv_push(&p->deploy.shared, "data");
	strv_push(&p->deploy.shared, "var/uploads");
	strv_push(&p->deploy.hooks_pre, "bin/migrate");
	strv_push(&p->deploy.hooks_post, "bin/warm");
	strv_push(&p->deploy.hooks_post, "bin/notify");
	p->deploy.keep = 3;
	p->builder = xstrdup("host1");
	p->steps = steps_new(3, sn, ss, st);
	p->n_steps = 3;
	p->stages = steps_new(2, gn, gs, gt);
	p->n_stages = 2;
	p->created = xstrdup("2026-11-20T21:45:00Z");
}

static void same_str(const char *a, const char *b, const char *what)
{
	if (!a || !b) {
		if (a != b)
			fail_msg("%s: '%s' != '%s'", what, a ? a : "(null)", b ? b : "(null)");
		return;
	}
	if (strcmp(a, b))
		fail_msg("%s: '%s' != '%s'", what, a, b);
}

static void same_strv(const struct strv *a, const struct strv *b, const char *what)
{
	if (a->n != b->n)
		fail_msg("%s: %zu entries, not %zu", what, b->n, a->n);
	for (size_t i = 0; i < a->n; i++)
		same_str(a->v[i], b->v[i], what);
}

static void same_steps(const struct package_step *a, size_t na, const struct package_step *b,
		       size_t nb, const char *what)
{
	if (na != nb)
		fail_msg("%s: %zu entries, not %zu", what, nb, na);
	for (size_t i = 0; i < na; i++) {
		same_str(a[i].name, b[i].name, what);
		/* the writer writes "ok" for no status */
		same_str(a[i].status ? a[i].status : "ok", b[i].status, what);
		/* and milliseconds */
		if (a[i].seconds - b[i].seconds > 0.0005 || b[i].seconds - a[i].seconds > 0.0005)
			fail_msg("%s: %f s, not %f s", what, b[i].seconds, a[i].seconds);
	}
}

/* q, read back, holds every field of p, the struct written. */
static void assert_same(const struct package_info *p, const struct package_info *q)
{
	same_str(p->app, q->app, "app");
	same_str(p->id, q->id, "id");
	same_str(p->parent, q->parent, "parent");
	assert_int_equal(p->fresh, q->fresh);
	same_str(p->base.kind, q->base.kind, "base.kind");
	same_str(p->base.name, q->base.name, "base.name");
	same_str(p->base.sha256, q->base.sha256, "base.sha256");
	same_str(p->base.reason, q->base.reason, "base.reason");
	same_str(p->image.name, q->image.name, "image.name");
	same_str(p->image.sha256, q->image.sha256, "image.sha256");
	same_str(p->repo.url, q->repo.url, "repository.url");
	same_str(p->repo.ref, q->repo.ref, "repository.ref");
	same_str(p->repo.commit, q->repo.commit, "repository.commit");
	assert_int_equal(p->repo.commit_time, q->repo.commit_time);
	same_str(p->interp.type, q->interp.type, "interpreter.type");
	same_str(p->interp.version, q->interp.version, "interpreter.version");
	assert_int_equal(q->format, 2);
	assert_int_equal(p->n_layers, q->n_layers);
	for (size_t i = 0; i < p->n_layers; i++) {
		same_str(p->layers[i].key, q->layers[i].key, "layers.key");
		same_str(p->layers[i].sha256, q->layers[i].sha256, "layers.sha256");
		same_str(p->layers[i].kind, q->layers[i].kind, "layers.kind");
		assert_true(p->layers[i].size == q->layers[i].size);
	}
	same_strv(&p->os_packages, &q->os_packages, "os_packages");
	same_str(p->metadata_sha256, q->metadata_sha256, "metadata_sha256");
	same_str(p->app_home, q->app_home, "app_home");
	assert_int_equal(p->uid, q->uid);
	assert_int_equal(p->gid, q->gid);
	assert_int_equal(p->keep_git, q->keep_git);
	same_strv(&p->deploy.shared, &q->deploy.shared, "deploy.shared");
	same_strv(&p->deploy.hooks_pre, &q->deploy.hooks_pre, "deploy.hooks.pre");
	same_strv(&p->deploy.hooks_post, &q->deploy.hooks_post, "deploy.hooks.post");
	assert_int_equal(p->deploy.keep, q->deploy.keep);
	same_str(p->builder, q->builder, "builder");
	same_steps(p->steps, p->n_steps, q->steps, q->n_steps, "steps");
	same_steps(p->stages, p->n_stages, q->stages, q->n_stages, "stages");
	same_str(p->created, q->created, "created");
}

static void roundtrip(const struct package_info *p)
{
	struct package_info q;
	struct buf json = BUF_INIT;
	struct err e = ERR_INIT;

	package_manifest_json(p, &json);
	if (package_manifest_parse(&q, json.p, p->app, p->id, &e) < 0)
		fail_msg("%s\n%s", err_msg(&e), json.p);
	assert_same(p, &q);
	assert_string_equal(q.json, json.p);
	package_info_free(&q);
	buf_free(&json);
	err_free(&e);
}

static void test_roundtrip(void **state)
{
	struct package_info p;
	(void)state;

	fill(&p);
	roundtrip(&p);

	/* a fresh package: no parent, nothing optional, uid/gid unknown */
	free(p.parent);
	p.parent = NULL;
	p.fresh = true;
	free(p.base.kind);
	p.base.kind = xstrdup("image");
	free(p.interp.version);
	p.interp.version = NULL;
	free(p.app_home);
	p.app_home = NULL;
	free(p.base.reason);
	p.base.reason = xstrdup("");
	p.uid = p.gid = -1;
	p.keep_git = false;
	p.deploy.keep = 0;
	p.layers[0].size = 0;
	p.repo.commit_time = -86400;
	strv_free(&p.os_packages);
	strv_free(&p.deploy.shared);
	strv_free(&p.deploy.hooks_pre);
	strv_free(&p.deploy.hooks_post);
	roundtrip(&p);

	struct buf json = BUF_INIT;
	package_manifest_json(&p, &json);
	assert_non_null(strstr(json.p, "\"parent\": null"));
	assert_non_null(strstr(json.p, "\"uid\": null"));
	assert_non_null(strstr(json.p, "\"layers\""));
	buf_free(&json);

	/* a sha-256 repository: 64 hex digits */
	free(p.repo.commit);
	p.repo.commit = xstrdup(SHA_A);
	roundtrip(&p);
	package_info_free(&p);
}

/* A manifest as the first edition wrote it (`upaas build`, copied from a
 * real package; only the repository path changed). */
static const char first_edition[] =
	"{\n"
	"  \"format\": 1,\n"
	"  \"app\": \"dep-e18139\",\n"
	"  \"id\": \"20261129T195400Z-125736f\",\n"
	"  \"parent\": \"20261129T195353Z-33e7da7\",\n"
	"  \"fresh\": false,\n"
	"  \"base\": {\n"
	"    \"kind\": \"package\",\n"
	"    \"name\": \"20261129T195353Z-33e7da7\",\n"
	"    \"sha256\": \"" SHA_A "\",\n"
	"    \"reason\": \"the current package\"\n"
	"  },\n"
	"  \"image\": {\n"
	"    \"name\": \"bookworm-minbase-amd64\",\n"
	"    \"sha256\": \"" SHA_B "\"\n"
	"  },\n"
	"  \"repository\": {\n"
	"    \"url\": \"/srv/git/dep\",\n"
	"    \"ref\": \"refs/heads/main\",\n"
	"    \"commit\": \"" COMMIT "\",\n"
	"    \"commit_time\": 1795982040\n"
	"  },\n"
	"  \"interpreter\": {\n"
	"    \"type\": \"python\",\n"
	"    \"version\": \"3\"\n"
	"  },\n"
	"  \"blob\": {\n"
	"    \"key\": \"packages/dep-e18139/20261129T195400Z-125736f.tar.zst\",\n"
	"    \"sha256\": \"" SHA_D "\",\n"
	"    \"size\": 55942901,\n"
	"    \"compression\": \"zstd\",\n"
	"    \"format\": \"pax\"\n"
	"  },\n"
	"  \"layers\": [\n"
	"    {\n"
	"      \"key\": \"packages/dep-e18139/20261129T195400Z-125736f.tar.zst\",\n"
	"      \"sha256\": \"" SHA_D "\",\n"
	"      \"size\": 55942901\n"
	"    }\n"
	"  ],\n"
	"  \"os_packages\": [\n"
	"  ],\n"
	"  \"metadata_sha256\": \"" SHA_C "\",\n"
	"  \"app_home\": \"/home/app\",\n"
	"  \"uid\": 1000,\n"
	"  \"gid\": 1000,\n"
	"  \"keep_git\": false,\n"
	"  \"deploy\": {\n"
	"    \"shared\": [\n"
	"      \"data\"\n"
	"    ],\n"
	"    \"hooks\": {\n"
	"      \"pre\": [\n"
	"        \"hooks/pre\"\n"
	"      ],\n"
	"      \"post\": [\n"
	"        \"hooks/post\"\n"
	"      ]\n"
	"    },\n"
	"    \"keep\": 2\n"
	"  },\n"
	"  \"builder\": \"vm\",\n"
	"  \"steps\": [\n"
	"    { \"name\": \"system\", \"seconds\": 0.016, \"status\": \"ok\" },\n"
	"    { \"name\": \"os packages\", \"seconds\": 0.000, \"status\": \"skipped\" },\n"
	"    { \"name\": \"interpreter\", \"seconds\": 0.000, \"status\": \"skipped\" },\n"
	"    { \"name\": \"checkout\", \"seconds\": 0.019, \"status\": \"ok\" },\n"
	"    { \"name\": \"files\", \"seconds\": 0.000, \"status\": \"skipped\" },\n"
	"    { \"name\": \"before\", \"seconds\": 0.000, \"status\": \"skipped\" },\n"
	"    { \"name\": \"main\", \"seconds\": 0.000, \"status\": \"skipped\" },\n"
	"    { \"name\": \"after\", \"seconds\": 0.000, \"status\": \"skipped\" },\n"
	"    { \"name\": \"finalize\", \"seconds\": 0.000, \"status\": \"skipped\" }\n"
	"  ],\n"
	"  \"stages\": [\n"
	"    { \"name\": \"fetch\", \"seconds\": 0.095, \"status\": \"ok\" },\n"
	"    { \"name\": \"base\", \"seconds\": 0.010, \"status\": \"ok\" },\n"
	"    { \"name\": \"workspace\", \"seconds\": 0.000, \"status\": \"ok\" },\n"
	"    { \"name\": \"steps\", \"seconds\": 0.035, \"status\": \"ok\" },\n"
	"    { \"name\": \"pack\", \"seconds\": 1.521, \"status\": \"ok\" }\n"
	"  ],\n"
	"  \"created\": \"2026-11-29T19:54:01Z\"\n"
	"}\n";

/* A fresh package of the first edition, where the writer wrote nulls. */
static const char first_edition_fresh[] =
	"{ \"format\": 1, \"app\": \"web\", \"id\": \"20261129T195345Z-19898ab\","
	"  \"parent\": null, \"fresh\": true,"
	"  \"base\": { \"kind\": \"image\", \"name\": \"bookworm-minbase-amd64\","
	"    \"sha256\": \"" SHA_B "\", \"reason\": \"first build of 'web'\" },"
	"  \"image\": { \"name\": \"bookworm-minbase-amd64\", \"sha256\": \"" SHA_B "\" },"
	"  \"repository\": { \"url\": \"https://git.example.org/web.git\", \"ref\": \"refs/heads/main\","
	"    \"commit\": \"" COMMIT "\", \"commit_time\": 1795982040 },"
	"  \"interpreter\": { \"type\": \"nodejs\", \"version\": null },"
	"  \"blob\": { \"key\": \"packages/web/20261129T195345Z-19898ab.tar.zst\","
	"    \"sha256\": \"" SHA_D "\", \"size\": 1234, \"compression\": \"zstd\", \"format\": \"pax\" },"
	"  \"layers\": [ { \"key\": \"packages/web/20261129T195345Z-19898ab.tar.zst\","
	"    \"sha256\": \"" SHA_D "\", \"size\": 1234 } ],"
	"  \"os_packages\": [ \"ca-certificates\", \"nodejs\", \"npm\" ],"
	"  \"metadata_sha256\": \"" SHA_C "\", \"app_home\": \"/\", \"uid\": 1000, \"gid\": 1000,"
	"  \"keep_git\": true,"
	"  \"deploy\": { \"shared\": [ ], \"hooks\": { \"pre\": [ ], \"post\": [ ] }, \"keep\": 0 },"
	"  \"builder\": \"build-1\", \"steps\": [ ], \"stages\": [ ],"
	"  \"created\": \"2026-11-29T19:53:45Z\" }";

static void expect(const char *text, const char *want, const char *what);

static void test_first_edition(void **state)
{
	struct package_info q;
	struct err e = ERR_INIT;
	(void)state;

	if (package_manifest_parse(&q, first_edition, "dep-e18139", "20261129T195400Z-125736f",
				   &e) < 0)
		fail_msg("%s", err_msg(&e));
	assert_string_equal(q.parent, "20261129T195353Z-33e7da7");
	assert_false(q.fresh);
	assert_string_equal(q.base.kind, "package");
	assert_string_equal(q.base.sha256, SHA_A);
	assert_string_equal(q.image.sha256, SHA_B);
	assert_string_equal(q.repo.commit, COMMIT);
	assert_int_equal(q.repo.commit_time, 1795982040);
	assert_string_equal(q.interp.version, "3");
	/* the blob is the one full layer */
	assert_int_equal(q.format, 1);
	assert_int_equal(q.n_layers, 1);
	assert_string_equal(q.layers[0].sha256, SHA_D);
	assert_int_equal(q.layers[0].size, 55942901);
	assert_string_equal(q.layers[0].key, "packages/dep-e18139/20261129T195400Z-125736f.tar.zst");
	assert_string_equal(q.layers[0].kind, "full");
	assert_int_equal(q.os_packages.n, 0);
	assert_string_equal(q.metadata_sha256, SHA_C);
	assert_int_equal(q.uid, 1000);
	assert_string_equal(q.deploy.shared.v[0], "data");
	assert_string_equal(q.deploy.hooks_pre.v[0], "hooks/pre");
	assert_string_equal(q.deploy.hooks_post.v[0], "hooks/post");
	assert_int_equal(q.deploy.keep, 2);
	assert_int_equal(q.n_steps, 9);
	assert_string_equal(q.steps[8].name, "finalize");
	assert_string_equal(q.steps[8].status, "skipped");
	assert_int_equal(q.n_stages, 5);
	assert_true(q.stages[4].seconds > 1.52 && q.stages[4].seconds < 1.522);
	assert_string_equal(q.created, "2026-11-29T19:54:01Z");
	assert_string_equal(q.json, first_edition);
	package_info_free(&q);

	if (package_manifest_parse(&q, first_edition_fresh, "web", NULL, &e) < 0)
		fail_msg("%s", err_msg(&e));
	assert_null(q.parent);
	assert_true(q.fresh);
	assert_null(q.interp.version);
	assert_string_equal(q.app_home, "/");
	assert_int_equal(q.os_packages.n, 3);
	assert_true(q.keep_git);
	assert_int_equal(q.n_steps, 0);
	package_info_free(&q);

	/* what deploy's tests and the S3 test write by hand: the required
	 * fields only */
	static const char minimal[] =
		"{ \"format\": 1, \"app\": \"demo\", \"id\": \"good1\", \"fresh\": true,"
		"  \"blob\": { \"key\": \"packages/demo/good1.tar.zst\", \"sha256\": \"" SHA_D "\","
		"  \"size\": 100000 } }";
	if (package_manifest_parse(&q, minimal, NULL, NULL, &e) < 0)
		fail_msg("%s", err_msg(&e));
	assert_null(q.app_home);
	assert_int_equal(q.uid, -1);
	assert_int_equal(q.gid, -1);
	assert_null(q.repo.commit);
	assert_int_equal(q.deploy.shared.n, 0);
	assert_int_equal(q.n_layers, 1);
	package_info_free(&q);

	/* format 1: the blob is required and checked */
	expect("{ \"format\": 1, \"app\": \"demo\", \"id\": \"good1\" }",
	       "manifest: blob is missing", "format 1 without a blob");
	expect("{ \"format\": 1, \"app\": \"demo\", \"id\": \"good1\", \"blob\": { \"key\": "
	       "\"../x\", \"sha256\": \"" SHA_D "\", \"size\": 1 } }",
	       "manifest: blob.key '../x' is not a storage key", "format 1, bad blob key");
	expect("{ \"format\": 1, \"app\": \"demo\", \"id\": \"good1\", \"blob\": { \"key\": "
	       "\"packages/demo/good1.tar.zst\", \"sha256\": \"x\", \"size\": 1 } }",
	       "manifest: blob.sha256 'x' is not a sha256", "format 1, bad blob sha256");
	err_free(&e);
}

/* ------------------------------------------------------------ rejection */

/* The writer's output for fill(), as a json-c tree to spoil. */
static struct json_object *good_tree(void)
{
	struct package_info p;
	struct buf json = BUF_INIT;
	fill(&p);
	package_manifest_json(&p, &json);
	struct json_object *o = json_tokener_parse(json.p);
	assert_non_null(o);
	package_info_free(&p);
	buf_free(&json);
	return o;
}

/*
 * Sets the value at path ("deploy.hooks.pre", "steps.0.name") to the JSON
 * text value, or removes it (value NULL).
 */
static void tree_set(struct json_object *o, const char *path, const char *value)
{
	_cleanup_free_ char *copy = xstrdup(path);
	char *name = copy, *dot;
	while ((dot = strchr(name, '.'))) {
		*dot = '\0';
		struct json_object *next = NULL;
		if (json_object_is_type(o, json_type_array))
			next = json_object_array_get_idx(o, (size_t)strtoul(name, NULL, 10));
		else
			json_object_object_get_ex(o, name, &next);
		if (!next)
			fail_msg("no '%s' in the good manifest (%s)", name, path);
		o = next;
		name = dot + 1;
	}
	if (!value) {
		json_object_object_del(o, name);
		return;
	}
	struct json_object *v = json_tokener_parse(value);
	if (!v && strcmp(value, "null"))
		fail_msg("bad test value %s", value);
	if (json_object_is_type(o, json_type_array))
		json_object_array_put_idx(o, (size_t)strtoul(name, NULL, 10), v);
	else
		json_object_object_add(o, name, v);
}

/* Parses text: -EINVAL with want in the message, or 0 when want is NULL. */
static void expect(const char *text, const char *want, const char *what)
{
	struct package_info q;
	struct err e = ERR_INIT;
	int r = package_manifest_parse(&q, text, NULL, NULL, &e);
	if (!want) {
		if (r < 0)
			fail_msg("%s: refused: %s", what, err_msg(&e));
		package_info_free(&q);
	} else if (r != -EINVAL) {
		fail_msg("%s: accepted (%d), expected '%s'", what, r, want);
	} else if (!strstr(err_msg(&e), want)) {
		fail_msg("%s: message '%s' lacks '%s'", what, err_msg(&e), want);
	}
	err_free(&e);
}

/* The good manifest with path set to value (NULL: removed). */
static void expect_set(const char *path, const char *value, const char *want)
{
	struct json_object *o = good_tree();
	tree_set(o, path, value);
	struct buf text = BUF_INIT;
	json_to_buf(o, &text);
	json_object_put(o);
	_cleanup_free_ char *what = xasprintf("%s = %s", path, value ? value : "(removed)");
	expect(text.p, want, what);
	buf_free(&text);
}

/* Every field the reader knows, by JSON type. */
static const struct {
	const char *path;
	char type;      /* s string, i integer, n number, b boolean, l list, o object */
	bool required;
} known[] = {
	{ "format", 'i', true },
	{ "app", 's', true },
	{ "id", 's', true },
	{ "parent", 's', false },
	{ "fresh", 'b', false },
	{ "base", 'o', false },
	{ "base.kind", 's', false },
	{ "base.name", 's', false },
	{ "base.sha256", 's', false },
	{ "base.reason", 's', false },
	{ "image", 'o', false },
	{ "image.name", 's', false },
	{ "image.sha256", 's', false },
	{ "repository", 'o', false },
	{ "repository.url", 's', false },
	{ "repository.ref", 's', false },
	{ "repository.commit", 's', false },
	{ "repository.commit_time", 'i', false },
	{ "interpreter", 'o', false },
	{ "interpreter.type", 's', false },
	{ "interpreter.version", 's', false },
	{ "layers", 'l', true },
	{ "layers.0.key", 's', true },
	{ "layers.0.sha256", 's', true },
	{ "layers.0.size", 'i', true },
	{ "layers.0.kind", 's', false },
	{ "os_packages", 'l', false },
	{ "metadata_sha256", 's', false },
	{ "app_home", 's', false },
	{ "uid", 'i', false },
	{ "gid", 'i', false },
	{ "keep_git", 'b', false },
	{ "deploy", 'o', false },
	{ "deploy.shared", 'l', false },
	{ "deploy.hooks", 'o', false },
	{ "deploy.hooks.pre", 'l', false },
	{ "deploy.hooks.post", 'l', false },
	{ "deploy.keep", 'i', false },
	{ "builder", 's', false },
	{ "steps", 'l', false },
	{ "steps.0.name", 's', true },
	{ "steps.0.seconds", 'n', false },
	{ "steps.0.status", 's', false },
	{ "stages", 'l', false },
	{ "stages.0.name", 's', true },
	{ "stages.0.seconds", 'n', false },
	{ "stages.0.status", 's', false },
	{ "created", 's', false },
};

/* "steps.0.name" as the reader names it: "steps[0].name". */
static char *field_name(const char *path)
{
	struct buf b = BUF_INIT;
	for (const char *s = path; *s; s++) {
		if (*s == '.' && s[1] >= '0' && s[1] <= '9') {
			buf_addch(&b, '[');
			while (s[1] >= '0' && s[1] <= '9')
				buf_addch(&b, *++s);
			buf_addch(&b, ']');
		} else {
			buf_addch(&b, *s);
		}
	}
	return buf_detach(&b);
}

static void test_wrong_types(void **state)
{
	/* one wrong value of each other type */
	static const struct { char type; const char *value; } wrong[] = {
		{ 's', "\"1\"" }, { 'i', "1" }, { 'n', "1.5" }, { 'b', "true" },
		{ 'l', "[]" }, { 'o', "{}" },
	};
	(void)state;

	for (size_t i = 0; i < ARRAY_SIZE(known); i++) {
		_cleanup_free_ char *name = field_name(known[i].path);
		_cleanup_free_ char *want = xasprintf("manifest: %s is ", name);
		for (size_t k = 0; k < ARRAY_SIZE(wrong); k++) {
			char t = known[i].type;
			if (wrong[k].type == t || (t == 'n' && wrong[k].type == 'i'))
				continue;
			expect_set(known[i].path, wrong[k].value, want);
		}
		/* null is absence: an error for required fields only */
		_cleanup_free_ char *missing = xasprintf("manifest: %s is missing", name);
		expect_set(known[i].path, "null", known[i].required ? missing : NULL);
		expect_set(known[i].path, NULL, known[i].required ? missing : NULL);
	}
}

static void test_bad_values(void **state)
{
	static const struct { const char *path, *value, *want; } bad[] = {
		{ "format", "3", "manifest: format 3 is not 1 or 2" },
		{ "format", "0", "manifest: format 0" },
		{ "app", "\"Bad App\"", "manifest: app 'Bad App' is not a valid app name" },
		{ "app", "\"\"", "manifest: app" },
		{ "id", "\"../x\"", "manifest: id '../x' is not a valid package id" },
		{ "id", "\"-x\"", "manifest: id" },
		{ "id", "\"x.tmp\"", "manifest: id" },
		{ "id", "\"x.failed\"", "manifest: id" },
		{ "parent", "\"a/b\"", "manifest: parent" },
		{ "base.kind", "\"other\"", "manifest: base.kind" },
		{ "base.sha256", "\"ab\"", "manifest: base.sha256" },
		{ "image.sha256", "\"" SHA_A "0\"", "manifest: image.sha256" },
		{ "metadata_sha256", "\"ff\"", "manifest: metadata_sha256" },
		{ "repository.commit", "\"--upload-pack=touch /tmp/x\"",
		  "manifest: repository.commit '--upload-pack" },
		{ "repository.commit", "\"--" COMMIT "\"", "manifest: repository.commit" },
		{ "repository.commit", "\"abc\"", "manifest: repository.commit" },
		{ "repository.commit", "\"C773ADD9F4D982743923F441D3FFBBCE3AB70490\"",
		  "manifest: repository.commit" },
		{ "repository.commit", "\"\"", "manifest: repository.commit" },
		{ "layers.0.key", "\"../x\"", "manifest: layers[0].key '../x' is not a storage key" },
		{ "layers.0.key", "\"/etc/passwd\"", "manifest: layers[0].key" },
		{ "layers.0.key", "\"layers/" SHA_A ".tar.zst\"",
		  "manifest: layers[0].key 'layers/" SHA_A ".tar.zst' is not layers/<its sha256>" },
		{ "layers.1.key", "\"packages/flask/x.tar.zst\"", "manifest: layers[1].key" },
		{ "layers.0.key", "\"packages/other/x.tar.zst\"", "manifest: layers[0].key" },
		{ "layers.0.key", "\"a/../b\"", "manifest: layers[0].key" },
		{ "layers.0.sha256", "\"E\"", "manifest: layers[0].sha256 'E' is not a sha256" },
		{ "layers.0.sha256", "\"" SHA_A "\\u0000\"", "manifest: layers[0].sha256" },
		{ "layers.0.size", "-1", "manifest: layers[0].size -1 is out of range" },
		{ "layers.0.kind", "\"delta\"", "manifest: layers[0].kind is 'delta', not 'full'" },
		{ "layers.1.kind", "\"full\"", "manifest: layers[1].kind is 'full', not 'delta'" },
		{ "layers.1.kind", "\"diff\"", "manifest: layers[1].kind 'diff' is not" },
		{ "layers", "[]", "manifest: layers is empty" },
		{ "layers.0", "1", "manifest: layers[0] is an integer, not an object" },
		{ "os_packages", "[\"python3\", \"bad;pkg\"]",
		  "manifest: os_packages entry 'bad;pkg' is not a valid Debian package name" },
		{ "os_packages", "[\"-oAPT::x\"]", "manifest: os_packages entry" },
		{ "app_home", "\"home/app\"", "manifest: app_home 'home/app' is not a safe absolute" },
		{ "app_home", "\"/home/../etc\"", "manifest: app_home" },
		{ "app_home", "\"/home//app\"", "manifest: app_home" },
		{ "app_home", "\"\"", "manifest: app_home" },
		{ "deploy.shared", "[\"../../x\"]", "manifest: deploy.shared entry '../../x' is not" },
		{ "deploy.shared", "[\"/etc\"]", "manifest: deploy.shared entry '/etc'" },
		{ "deploy.shared", "[\"data\", 7]", "manifest: deploy.shared[1] is an integer" },
		{ "deploy.shared", "[\"a/./b\"]", "manifest: deploy.shared entry" },
		{ "deploy.hooks.pre", "[\"a/../../x\"]", "manifest: deploy.hooks.pre entry" },
		{ "deploy.hooks.post", "[\"\"]", "manifest: deploy.hooks.post entry" },
		{ "deploy.hooks.post", "[null]", "manifest: deploy.hooks.post[0] is null" },
		{ "deploy.keep", "-1", "manifest: deploy.keep -1 is out of range" },
		{ "deploy.keep", "100001", "manifest: deploy.keep" },
		{ "uid", "0", "manifest: uid 0 is out of range" },
		{ "gid", "65536", "manifest: gid 65536 is out of range" },
		{ "uid", "-1", "manifest: uid" },
		{ "uid", "2147483647", "manifest: uid" },
		{ "gid", "4294967296", "manifest: gid" },
		{ "gid", "1e3", "manifest: gid is a floating-point number, not an integer" },
		{ "created", "\"yesterday\"", "manifest: created" },
		{ "steps.0.seconds", "-1", "manifest: steps[0].seconds" },
		{ "steps.1", "\"system\"", "manifest: steps[1] is a string, not an object" },
		/* strings: no control characters, no NUL, bounded */
		{ "builder", "\"a\\u001b[2Jb\"", "manifest: builder holds a control character" },
		{ "base.reason", "\"a\\nb\"", "manifest: base.reason holds a control character" },
		{ "repository.url", "\"x\\u0000y\"", "manifest: repository.url holds a control" },
		{ "interpreter.type", "\"\\u007f\"", "manifest: interpreter.type holds" },
	};
	(void)state;

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		expect_set(bad[i].path, bad[i].value, bad[i].want);

	/* the edges that pass */
	expect_set("uid", "1", NULL);
	expect_set("gid", "65535", NULL);
	expect_set("deploy.keep", "100000", NULL);
	expect_set("layers.0.size", "0", NULL);
	expect_set("layers.0.kind", "null", NULL);
	expect_set("layers.0.key", "\"packages/flask/20261119T100000Z-0000000.tar.zst\"", NULL);
	expect_set("steps.0.seconds", "3", NULL);
	expect_set("repository.commit", "\"" SHA_A "\"", NULL);
	expect_set("app_home", "\"/\"", NULL);
	/* unknown fields are ignored, wherever they are */
	expect_set("signature", "{\"alg\": \"ed25519\", \"sig\": [1, 2]}", NULL);
	expect_set("layers.0.zstd_level", "19", NULL);
	expect_set("deploy.hooks.pre-undeploy", "[\"bin/x\"]", NULL);
	expect_set("steps.0.cpu_seconds", "0.5", NULL);
}

/* A list of n entries: pre, the index, post. */
static char *list_of(size_t n, const char *pre, const char *post)
{
	struct buf b = BUF_INIT;
	buf_addch(&b, '[');
	for (size_t i = 0; i < n; i++)
		buf_addf(&b, "%s%s%zu%s", i ? "," : "", pre, i, post);
	buf_addch(&b, ']');
	return buf_detach(&b);
}

static void test_bounds(void **state)
{
	static const struct { const char *path, *pre, *post; size_t max; } lists[] = {
		{ "deploy.shared", "\"d", "\"", 256 },
		{ "deploy.hooks.pre", "\"bin/h", "\"", 256 },
		{ "deploy.hooks.post", "\"bin/h", "\"", 256 },
		{ "os_packages", "\"pkg", "\"", 4096 },
		{ "steps", "{\"name\": \"s", "\", \"seconds\": 0, \"status\": \"ok\"}", 256 },
		{ "stages", "{\"name\": \"s", "\", \"seconds\": 0, \"status\": \"ok\"}", 256 },
	};
	(void)state;

	for (size_t i = 0; i < ARRAY_SIZE(lists); i++) {
		_cleanup_free_ char *full = list_of(lists[i].max, lists[i].pre, lists[i].post);
		_cleanup_free_ char *over = list_of(lists[i].max + 1, lists[i].pre, lists[i].post);
		_cleanup_free_ char *want = xasprintf("manifest: %s has %zu entries, more than %zu",
						      lists[i].path, lists[i].max + 1, lists[i].max);
		expect_set(lists[i].path, full, NULL);
		expect_set(lists[i].path, over, want);
	}

	/* layers: PACKAGE_LAYERS_MAX at most */
	{
		_cleanup_free_ char *over = list_of(PACKAGE_LAYERS_MAX + 1, "{\"key\": \"l",
						    "\", \"sha256\": \"" SHA_A "\", \"size\": 1}");
		_cleanup_free_ char *want = xasprintf("manifest: layers has %d entries, more than %d",
						      PACKAGE_LAYERS_MAX + 1, PACKAGE_LAYERS_MAX);
		expect_set("layers", over, want);
	}

	/* strings: 4096 bytes pass, 4097 do not */
	struct buf s = BUF_INIT;
	buf_addch(&s, '"');
	for (int i = 0; i < 4096; i++)
		buf_addch(&s, 'x');
	buf_addch(&s, '"');
	expect_set("base.reason", s.p, NULL);
	buf_setlen(&s, s.len - 1);
	buf_adds(&s, "x\"");
	expect_set("base.reason", s.p, "manifest: base.reason is longer than 4096 bytes");
	buf_free(&s);

	/* the text: at most PACKAGE_MANIFEST_MAX */
	struct json_object *o = good_tree();
	struct buf big = BUF_INIT;
	struct buf pad = BUF_INIT;
	for (int i = 0; i < 300; i++)
		buf_adds(&pad, "0123456789");
	for (int i = 0; json_object_object_length(o) < 450; i++) {
		char k[32];
		snprintf(k, sizeof(k), "pad%d", i);
		json_object_object_add(o, k, json_object_new_string(pad.p));
	}
	json_to_buf(o, &big);
	assert_true(big.len > PACKAGE_MANIFEST_MAX);
	expect(big.p, "manifest: larger than", "a large manifest");
	json_object_put(o);
	buf_free(&big);
	buf_free(&pad);
}

static void test_not_a_manifest(void **state)
{
	struct package_info p;
	struct buf good = BUF_INIT;
	(void)state;

	fill(&p);
	package_manifest_json(&p, &good);
	package_info_free(&p);
	expect(good.p, NULL, "the good manifest");

	static const char *const trailing[] = { "x", "{}", "[]", ",", "// c" };
	for (size_t i = 0; i < ARRAY_SIZE(trailing); i++) {
		_cleanup_free_ char *t = xasprintf("%s%s", good.p, trailing[i]);
		expect(t, "manifest: not a JSON object", trailing[i]);
	}
	_cleanup_free_ char *ws = xasprintf("%s \n\t\n", good.p);
	expect(ws, NULL, "trailing white space");

	static const char *const junk[] = { "", " ", "[]", "{", "null", "1", "\"x\"", "not json",
					    "{\"format\": 1}{\"format\": 1}" };
	for (size_t i = 0; i < ARRAY_SIZE(junk); i++)
		expect(junk[i], "manifest: ", junk[i]);

	/* app and id must be those asked for */
	struct package_info q;
	struct err e = ERR_INIT;
	assert_int_equal(package_manifest_parse(&q, good.p, "flask", "20261120T214500Z-3f9a2c1",
						&e), 0);
	package_info_free(&q);
	assert_int_equal(package_manifest_parse(&q, good.p, "api", NULL, &e), -EINVAL);
	assert_string_equal(err_msg(&e), "manifest is for app 'flask', not 'api'");
	err_clear(&e);
	assert_int_equal(package_manifest_parse(&q, good.p, NULL, "other", &e), -EINVAL);
	assert_string_equal(err_msg(&e),
			    "manifest is for package '20261120T214500Z-3f9a2c1', not 'other'");
	err_free(&e);
	buf_free(&good);
}

static void test_package_id(void **state)
{
	(void)state;
	assert_true(package_id_ok("20261120T214500Z-3f9a2c1"));
	assert_true(package_id_ok("v1.2_3"));
	assert_true(package_id_ok("good1"));
	assert_false(package_id_ok(NULL));
	assert_false(package_id_ok(""));
	assert_false(package_id_ok(".hidden"));
	assert_false(package_id_ok("-x"));
	assert_false(package_id_ok("_x"));
	assert_false(package_id_ok("a/b"));
	assert_false(package_id_ok(".."));
	assert_false(package_id_ok("a b"));
	assert_false(package_id_ok("x.tmp"));
	assert_false(package_id_ok("x.failed"));
	assert_true(package_id_ok("x.tmp1"));
	char id[130];
	memset(id, 'a', sizeof(id) - 1);
	id[129] = '\0';
	assert_false(package_id_ok(id));
	id[128] = '\0';
	assert_true(package_id_ok(id));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_first_edition),
		cmocka_unit_test(test_wrong_types),
		cmocka_unit_test(test_bad_values),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_not_a_manifest),
		cmocka_unit_test(test_package_id),
	};
	return cmocka_run_group_tests_name("manifest", tests, NULL, NULL);
}
