/*
 * tests/unit/test-mirror.c - the host mirror detection over sample apt
 * source files in a temp root.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>
#include <sys/stat.h>

#define UPAAS_IMAGES_INTERNAL
#include "images/mirror.h"

struct file {
	const char *name;      /* relative to <root>/etc/apt */
	const char *text;
};

struct mcase {
	const char *name;
	const char *dist;
	struct file files[4];
	const char *want;
};

static const struct mcase cases[] = {
	{ "no sources at all", "bookworm", { { NULL, NULL } }, MIRROR_FALLBACK },
	{ "one-line, first matching suite", "bookworm", {
		{ "sources.list",
		  "# comment\n"
		  "deb-src http://src.example/debian bookworm main\n"
		  "deb http://security.debian.org/debian-security bookworm-security main\n"
		  "deb http://old.example/debian bullseye main\n"
		  "deb http://ftp.example/debian/ bookworm main contrib\n"
		  "deb http://late.example/debian bookworm main\n" },
		{ NULL, NULL } }, "http://ftp.example/debian" },
	{ "one-line with options", "bookworm", {
		{ "sources.list",
		  "deb [arch=amd64 signed-by=/usr/share/keyrings/x.gpg] http://opt.example/debian bookworm main\n"
		  "deb [ trusted=yes ] http://opt2.example/debian bookworm main\n" },
		{ NULL, NULL } }, "http://opt.example/debian" },
	{ "options spread over words", "bookworm", {
		{ "sources.list",
		  "deb [ trusted=yes ] http://opt2.example/debian bookworm main  # trailing\n" },
		{ NULL, NULL } }, "http://opt2.example/debian" },
	{ "no suite match: first non-security", "trixie", {
		{ "sources.list",
		  "deb http://security.debian.org/debian-security bookworm-security main\n"
		  "deb http://m.example/debian bookworm main\n" },
		{ NULL, NULL } }, "http://m.example/debian" },
	{ "only security: fallback", "trixie", {
		{ "sources.list",
		  "deb http://security.debian.org/ bookworm/updates main\n" },
		{ NULL, NULL } }, MIRROR_FALLBACK },
	{ "deb822, multi paragraph with comments", "bookworm", {
		{ "sources.list.d/debian.sources",
		  "Types: deb\n"
		  "# http://snapshot.debian.org/archive/debian-security/20250520T000000Z\n"
		  "URIs: http://deb.debian.org/debian-security\n"
		  "Suites: bookworm-security\n"
		  "Components: main\n"
		  "\n"
		  "Types: deb deb-src\n"
		  "# http://snapshot.debian.org/archive/debian/20250520T000000Z\n"
		  "URIs: http://deb822.example/debian\n"
		  "Suites: bookworm bookworm-updates\n"
		  "Components: main\n"
		  "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n" },
		{ NULL, NULL } }, "http://deb822.example/debian" },
	{ "deb822, deb-src only, disabled, continuation lines", "bookworm", {
		{ "sources.list.d/a.sources",
		  "Types: deb-src\n"
		  "URIs: http://src.example/debian\n"
		  "Suites: bookworm\n"
		  "\n"
		  "Enabled: no\n"
		  "Types: deb\n"
		  "URIs: http://off.example/debian\n"
		  "Suites: bookworm\n"
		  "  \n"
		  "types: deb\n"
		  "Signed-By:\n"
		  " -----BEGIN PGP PUBLIC KEY BLOCK-----\n"
		  " .\n"
		  " mQINBGPL0BUBEAD=\n"
		  "uris:\n"
		  " http://cont.example/debian\n"
		  "suites: sid\n"
		  "   bookworm\n" },
		{ NULL, NULL } }, "http://cont.example/debian" },
	{ "sources.list before sources.list.d, .d in name order", "bookworm", {
		{ "sources.list.d/b.list", "deb http://b.example/debian bookworm main\n" },
		{ "sources.list.d/a.sources",
		  "Types: deb\nURIs: http://a.example/debian\nSuites: bookworm\n" },
		{ "sources.list", "deb http://main.example/debian bookworm main\n" },
		{ NULL, NULL } }, "http://main.example/debian" },
	{ "files with other suffixes are ignored", "bookworm", {
		{ "sources.list.d/x.list.disabled-by-farm",
		  "deb http://disabled.example/debian bookworm main\n" },
		{ "sources.list.d/z.list", "deb http://z.example/debian bookworm main\n" },
		{ NULL, NULL } }, "http://z.example/debian" },
	{ "unusable schemes are skipped", "bookworm", {
		{ "sources.list",
		  "deb cdrom:[Debian GNU/Linux 12]/ bookworm main\n"
		  "deb mirror+file:/etc/apt/mirrors.txt bookworm main\n"
		  "deb https://secure.example/debian bookworm main\n" },
		{ NULL, NULL } }, "https://secure.example/debian" },
	{ "multiple URIs in one paragraph", "bookworm", {
		{ "sources.list.d/m.sources",
		  "Types: deb\nURIs: http://one.example/debian http://two.example/debian\n"
		  "Suites: bookworm\nComponents: main\n" },
		{ NULL, NULL } }, "http://one.example/debian" },
};

static void write_file(const char *root, const struct file *f)
{
	_cleanup_free_ char *p = xasprintf("%s/etc/apt/%s", root, f->name);
	_cleanup_free_ char *dir = xstrdup(p);

	*strrchr(dir, '/') = 0;
	assert_int_equal(fs_mkdir_p(dir, 0755), 0);
	assert_int_equal(fs_write_atomic(p, f->text, strlen(f->text), 0644), 0);
}

static void test_cases(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char tmpl[] = "/tmp/upaas-test-mirror.XXXXXX";
		_cleanup_buf_ struct buf out = BUF_INIT;
		_cleanup_err_ struct err e = ERR_INIT;

		assert_non_null(mkdtemp(tmpl));
		for (const struct file *f = cases[i].files; f->name; f++)
			write_file(tmpl, f);
		mirror_detect(tmpl, cases[i].dist, &out);
		print_message("# %s: %s\n", cases[i].name, out.p);
		assert_string_equal(out.p, cases[i].want);
		assert_int_equal(fs_rm_rf(tmpl, &e), 0);
	}
}

static void test_parse_list_fields(void **state)
{
	struct apt_sources l = APT_SOURCES_INIT;

	(void)state;
	apt_sources_parse_list(&l, "deb http://x.example/debian bookworm main\n"
				   "deb\n"
				   "deb http://only-uri.example\n"
				   "deb [broken http://y.example/debian bookworm main");
	assert_int_equal(l.n, 1);
	assert_string_equal(l.v[0].uri, "http://x.example/debian");
	assert_int_equal(l.v[0].suites.n, 1);
	assert_string_equal(l.v[0].suites.v[0], "bookworm");
	apt_sources_free(&l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cases),
		cmocka_unit_test(test_parse_list_fields),
	};

	return cmocka_run_group_tests_name("mirror", tests, NULL, NULL);
}
