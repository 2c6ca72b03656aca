/*
 * tests/unit/test-sbom.c - the bill of materials of a fixture root tree made
 * here: dpkg status, npm lockfiles of every version, Python dist-info; what
 * must not be found (symlinks out of the tree, below node_modules, /proc);
 * package URLs; the stored JSON read back; the SPDX and CycloneDX output.
 */
#include "tests/unit/unit.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include <json-c/json.h>

#include "package/package.h"

static char *dir, *root, *outside;

static void put(const char *rel, const char *text)
{
	_cleanup_free_ char *path = path_join(root, rel);
	_cleanup_free_ char *parent = xstrdup(path);
	*strrchr(parent, '/') = '\0';
	assert_int_equal(fs_mkdir_p(parent, 0755), 0);
	assert_int_equal(fs_write_atomic(path, text, strlen(text), 0644), 0);
}

static void link_in(const char *target, const char *rel)
{
	_cleanup_free_ char *path = path_join(root, rel);
	_cleanup_free_ char *parent = xstrdup(path);
	*strrchr(parent, '/') = '\0';
	assert_int_equal(fs_mkdir_p(parent, 0755), 0);
	assert_int_equal(symlink(target, path), 0);
}

static const char dpkg_status[] =
	"Package: python3-flask\n"
	"Status: install ok installed\n"
	"Priority: optional\n"
	"Architecture: all\n"
	"Version: 2.2.2-3\n"
	"Description: micro web framework based on Werkzeug and Jinja2\n"
	" Flask is a micro web framework for Python.\n"
	" .\n"
	" Version: 9.9 (a continuation line, not a field)\n"
	"\n"
	"Package: libc6\n"
	"Status: install ok installed\n"
	"Architecture: amd64\n"
	"Version: 2.36-9+deb12u4\n"
	"\n"
	"Package: removed-but-configured\n"
	"Status: deinstall ok config-files\n"
	"Architecture: amd64\n"
	"Version: 1.0\n"
	"\n"
	"Package: half-installed\n"
	"Status: install reinstreq half-installed\n"
	"Version: 1.0\n"
	"\n"
	"package: perl-base\n"
	"status: hold ok installed\n"
	"version: 1:5.36.0-7+deb12u1\n"
	"architecture: amd64";   /* the last paragraph without a final newline */

static const char lock_v3[] =
	"{ \"name\": \"web\", \"lockfileVersion\": 3, \"packages\": {\n"
	"  \"\": { \"name\": \"web\", \"version\": \"1.0.0\" },\n"
	"  \"node_modules/express\": { \"version\": \"4.18.2\" },\n"
	"  \"node_modules/express/node_modules/debug\": { \"version\": \"2.6.9\" },\n"
	"  \"node_modules/@types/node\": { \"version\": \"20.1.0\", \"dev\": true },\n"
	"  \"node_modules/alias\": { \"name\": \"real-name\", \"version\": \"3.0.0\" },\n"
	"  \"node_modules/local\": { \"resolved\": \"packages/local\", \"link\": true },\n"
	"  \"packages/local\": { \"name\": \"local\", \"version\": \"0.0.1\" }\n"
	"} }\n";

static const char lock_v1[] =
	"{ \"name\": \"old\", \"lockfileVersion\": 1, \"dependencies\": {\n"
	"  \"lodash\": { \"version\": \"4.17.21\" },\n"
	"  \"a\": { \"version\": \"1.0.0\", \"dependencies\": {\n"
	"    \"b\": { \"version\": \"2.0.0\" },\n"
	"    \"mine\": { \"version\": \"file:../mine\" } } }\n"
	"} }\n";

static const char lock_v2_hidden[] =
	"{ \"name\": \"old\", \"lockfileVersion\": 2, \"requires\": true, \"packages\": {\n"
	"  \"node_modules/lodash\": { \"version\": \"4.17.21\" },\n"
	"  \"node_modules/left-pad\": { \"version\": \"1.3.0\" } } }\n";

static const char metadata_flask[] =
	"Metadata-Version: 2.1\n"
	"Name: Flask\n"
	"Version: 2.2.2\n"
	"Summary: A simple framework\n"
	"\n"
	"Name: not-this\n"
	"Version: 0.0\n";

static int setup(void **state)
{
	char t[] = "/tmp/test-sbom.XXXXXX";
	(void)state;
	if (!mkdtemp(t))
		return -1;
	dir = xstrdup(t);
	root = path_join(dir, "root");
	outside = path_join(dir, "outside");
	put("var/lib/dpkg/status", dpkg_status);
	put("usr/lib/os-release", "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n"
				  "VERSION_ID=\"12\"\nID=debian\n");
	link_in("../usr/lib/os-release", "etc/os-release");
	put("home/app/web/package-lock.json", lock_v3);
	put("home/app/old/package-lock.json", lock_v1);
	put("home/app/old/node_modules/.package-lock.json", lock_v2_hidden);
	/* below node_modules: a dependency's own lockfile lists what it was
	 * developed with, not what is installed */
	put("home/app/old/node_modules/left-pad/package-lock.json",
	    "{ \"lockfileVersion\": 1, \"dependencies\": { \"never\": { \"version\": \"6.6.6\" } } }");
	put("usr/lib/python3/dist-packages/Flask-2.2.2.dist-info/METADATA", metadata_flask);
	put("home/app/venv/lib/python3.11/site-packages/requests-2.31.0.dist-info/METADATA",
	    "Name: requests\nVersion: 2.31.0\n");
	put("home/app/venv/lib/python3.11/site-packages/broken.dist-info/METADATA",
	    "Name: broken\n");
	/* /proc of a root is the kernel's */
	put("proc/1/x.dist-info/METADATA", "Name: from-proc\nVersion: 1\n");
	/* never through a symlink: outside the tree ... */
	_cleanup_free_ char *od = path_join(outside, "evil.dist-info");
	assert_int_equal(fs_mkdir_p(od, 0755), 0);
	_cleanup_free_ char *om = path_join(od, "METADATA");
	assert_int_equal(fs_write_atomic(om, "Name: evil\nVersion: 1\n", 22, 0644), 0);
	link_in(outside, "usr/lib/python3/dist-packages/outside");
	link_in(od, "usr/lib/python3/dist-packages/linked.dist-info");
	/* ... nor a METADATA that is one */
	_cleanup_free_ char *lm = path_join(root, "usr/lib/python3/dist-packages/sneaky.dist-info");
	assert_int_equal(fs_mkdir_p(lm, 0755), 0);
	_cleanup_free_ char *lmm = path_join(lm, "METADATA");
	assert_int_equal(symlink(om, lmm), 0);
	return 0;
}

static int teardown(void **state)
{
	_cleanup_err_ struct err e = ERR_INIT;
	(void)state;
	fs_rm_rf(dir, &e);
	free(dir);
	free(root);
	free(outside);
	return 0;
}

static const struct sbom_item *find(const struct sbom *s, enum sbom_kind k, const char *name)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->v[i].kind == k && !strcmp(s->v[i].name, name))
			return &s->v[i];
	return NULL;
}

static void expect(const struct sbom *s, enum sbom_kind k, const char *name, const char *ver)
{
	const struct sbom_item *it = find(s, k, name);
	if (!it)
		fail_msg("%s %s not found", sbom_kind_name(k), name);
	if (strcmp(it->version, ver))
		fail_msg("%s %s: version '%s', want '%s'", sbom_kind_name(k), name, it->version, ver);
}

static void test_scan(void **state)
{
	_cleanup_err_ struct err e = ERR_INIT;
	struct sbom s;
	(void)state;

	assert_int_equal(sbom_scan(&s, root, &e), 0);
	assert_false(s.truncated);
	assert_string_equal(s.distro, "debian");
	assert_string_equal(s.distro_version, "12");

	/* dpkg: installed packages only, fields of any case */
	expect(&s, SBOM_DEB, "python3-flask", "2.2.2-3");
	expect(&s, SBOM_DEB, "libc6", "2.36-9+deb12u4");
	expect(&s, SBOM_DEB, "perl-base", "1:5.36.0-7+deb12u1");
	assert_string_equal(find(&s, SBOM_DEB, "python3-flask")->arch, "all");
	assert_null(find(&s, SBOM_DEB, "removed-but-configured"));
	assert_null(find(&s, SBOM_DEB, "half-installed"));

	/* npm: v3 packages, v1 nested dependencies, the hidden lockfile */
	expect(&s, SBOM_NPM, "express", "4.18.2");
	expect(&s, SBOM_NPM, "debug", "2.6.9");
	expect(&s, SBOM_NPM, "@types/node", "20.1.0");
	expect(&s, SBOM_NPM, "real-name", "3.0.0");
	expect(&s, SBOM_NPM, "lodash", "4.17.21");
	expect(&s, SBOM_NPM, "b", "2.0.0");
	expect(&s, SBOM_NPM, "left-pad", "1.3.0");
	assert_null(find(&s, SBOM_NPM, "web"));      /* the project itself */
	assert_null(find(&s, SBOM_NPM, "local"));    /* a workspace link */
	assert_null(find(&s, SBOM_NPM, "mine"));     /* file: */
	assert_null(find(&s, SBOM_NPM, "never"));    /* below node_modules */

	/* python */
	expect(&s, SBOM_PYPI, "Flask", "2.2.2");
	expect(&s, SBOM_PYPI, "requests", "2.31.0");
	assert_null(find(&s, SBOM_PYPI, "broken"));
	assert_null(find(&s, SBOM_PYPI, "not-this"));
	assert_null(find(&s, SBOM_PYPI, "from-proc"));
	assert_null(find(&s, SBOM_PYPI, "evil"));

	/* lodash is in two lockfiles, once in the bill */
	size_t lodash = 0;
	for (size_t i = 0; i < s.n; i++)
		lodash += !strcmp(s.v[i].name, "lodash");
	assert_int_equal(lodash, 1);
	assert_int_equal(s.n, 3 + 8 + 2);
	sbom_free(&s);
}

static void test_purl(void **state)
{
	_cleanup_err_ struct err e = ERR_INIT;
	_cleanup_buf_ struct buf b = BUF_INIT;
	struct sbom s;
	(void)state;

	assert_int_equal(sbom_scan(&s, root, &e), 0);
	sbom_purl(&s, find(&s, SBOM_DEB, "perl-base"), &b);
	assert_string_equal(b.p, "pkg:deb/debian/perl-base@1%3A5.36.0-7%2Bdeb12u1?arch=amd64&distro=debian-12");
	buf_reset(&b);
	sbom_purl(&s, find(&s, SBOM_NPM, "@types/node"), &b);
	assert_string_equal(b.p, "pkg:npm/%40types/node@20.1.0");
	buf_reset(&b);
	sbom_purl(&s, find(&s, SBOM_PYPI, "Flask"), &b);
	assert_string_equal(b.p, "pkg:pypi/flask@2.2.2");
	sbom_free(&s);
}

static void test_json_roundtrip(void **state)
{
	_cleanup_err_ struct err e = ERR_INIT;
	_cleanup_buf_ struct buf a = BUF_INIT, b = BUF_INIT;
	struct sbom s, t;
	(void)state;

	assert_int_equal(sbom_scan(&s, root, &e), 0);
	sbom_json(&s, &a);
	assert_int_equal(sbom_parse(&t, a.p, &e), 0);
	sbom_json(&t, &b);
	assert_string_equal(a.p, b.p);
	assert_int_equal(t.n, s.n);
	sbom_free(&t);
	sbom_free(&s);

	static const char *const bad[] = {
		"{ \"format\": 2, \"components\": [] }",
		"{ \"format\": 1 }",
		"{ \"format\": 1, \"components\": [ { \"type\": \"rpm\", \"name\": \"a\", \"version\": \"1\" } ] }",
		"{ \"format\": 1, \"components\": [ { \"type\": \"deb\", \"name\": \"a b\", \"version\": \"1\" } ] }",
		"{ \"format\": 1, \"components\": [ { \"type\": \"deb\", \"name\": \"a\" } ] }",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		assert_int_equal(sbom_parse(&t, bad[i], &e), -EINVAL);
		err_clear(&e);
	}
}

static void test_formats(void **state)
{
	_cleanup_err_ struct err e = ERR_INIT;
	_cleanup_buf_ struct buf a = BUF_INIT, b = BUF_INIT, c = BUF_INIT;
	struct sbom s;
	struct sbom_subject subj = { .name = "flask", .version = "20261120T214500Z-3f9a2c1",
				     .created = "2026-11-20T21:45:00Z", .tool_version = "0.1.0" };
	(void)state;

	assert_int_equal(sbom_scan(&s, root, &e), 0);
	sbom_spdx(&s, &subj, &a);
	_cleanup_json_ json_object *o = NULL;
	assert_int_equal(json_parse_object(a.p, &o, &e), 0);
	assert_string_equal(json_get_str(o, "spdxVersion"), "SPDX-2.3");
	json_object *pkgs = NULL;
	assert_true(json_object_object_get_ex(o, "packages", &pkgs));
	assert_int_equal(json_object_array_length(pkgs), s.n + 1);
	assert_non_null(strstr(a.p, "\"referenceLocator\": \"pkg:deb/debian/python3-flask@2.2.2-3?arch=all&distro=debian-12\""));
	assert_non_null(strstr(a.p, "\"creators\": [\n      \"Tool: upaas-0.1.0\""));

	sbom_cyclonedx(&s, &subj, &b);
	_cleanup_json_ json_object *x = NULL;
	assert_int_equal(json_parse_object(b.p, &x, &e), 0);
	assert_string_equal(json_get_str(x, "specVersion"), "1.5");
	assert_non_null(strstr(b.p, "\"purl\": \"pkg:pypi/requests@2.31.0\""));
	/* the same input, the same document: the serial number is derived */
	sbom_cyclonedx(&s, &subj, &c);
	assert_string_equal(b.p, c.p);
	sbom_free(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scan),
		cmocka_unit_test(test_purl),
		cmocka_unit_test(test_json_roundtrip),
		cmocka_unit_test(test_formats),
	};
	log_max_level = LOG_ERROR;
	return cmocka_run_group_tests(tests, setup, teardown);
}
