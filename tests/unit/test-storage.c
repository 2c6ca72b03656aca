/*
 * tests/unit/test-storage.c - the generic storage layer and the local
 * handler, in a temp dir; the http handler's refusals (no network).
 */
#include "tests/unit/unit.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/time.h>

#include "storage/storage.h"

struct fx {
	char *dir;        /* temp dir */
	char *root;       /* dir/storage */
	struct storage *s;
};

static int open_local(struct fx *f)
{
	struct cfg_storage cfg = { .handler = "local", .path = f->root };
	_cleanup_err_ struct err e = ERR_INIT;
	int r = storage_open(&f->s, &cfg, NULL, &e);
	if (r < 0)
		fail_msg("storage_open: %s", err_msg(&e));
	return r;
}

static int setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));
	char tmpl[] = "/tmp/test-storage.XXXXXX";
	if (!mkdtemp(tmpl))
		return -1;
	f->dir = xstrdup(tmpl);
	f->root = path_join(f->dir, "storage");
	open_local(f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	_cleanup_err_ struct err e = ERR_INIT;
	storage_close(f->s);
	fs_rm_rf(f->dir, &e);
	free(f->root);
	free(f->dir);
	free(f);
	return 0;
}

/* Every file (any kind) below dir, relative, sorted. */
static void walk(const char *dir, const char *rel, struct strv *out)
{
	_cleanup_free_ char *path = *rel ? path_join(dir, rel) : xstrdup(dir);
	DIR *d = opendir(path);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		_cleanup_free_ char *r = *rel ? xasprintf("%s/%s", rel, de->d_name)
					      : xstrdup(de->d_name);
		if (de->d_type == DT_DIR) {
			strv_pushf(out, "%s/", r);
			walk(dir, r, out);
		} else {
			strv_push(out, r);
		}
	}
	closedir(d);
	strv_sort(out);
}

static char *tree(const char *dir)
{
	_cleanup_strv_ struct strv v = STRV_INIT;
	struct buf b = BUF_INIT;
	walk(dir, "", &v);
	for (size_t i = 0; i < v.n; i++)
		buf_addf(&b, "%s%s", i ? " " : "", v.v[i]);
	return buf_detach(&b);
}

static char *get_str(struct storage *s, const char *key, int *ret)
{
	_cleanup_err_ struct err e = ERR_INIT;
	struct buf b = BUF_INIT;
	*ret = storage_get_buf(s, key, &b, 0, &e);
	return buf_detach(&b);
}

static void put_str(struct storage *s, const char *key, const char *val)
{
	_cleanup_err_ struct err e = ERR_INIT;
	int r = storage_put_buf(s, key, val, strlen(val), &e);
	if (r < 0)
		fail_msg("put '%s': %s", key, err_msg(&e));
}

/* ------------------------------------------------------------------ tests */

static void test_key_ok(void **state)
{
	static const struct {
		const char *key;
		bool ok;
	} cases[] = {
		{ "a", true },
		{ "packages/app/20261120T214500Z-3f9a2c1.tar.zst", true },
		{ "a//b", true },             /* S3 keeps it; local refuses it */
		{ "with space/ü+=&*", true },
		{ ".hidden", true },
		{ "a/...", true },
		{ "", false },
		{ "/a", false },
		{ "..", false },
		{ "a/../b", false },
		{ "a/..", false },
		{ "./a", false },
		{ "a/./b", false },
		{ "a\nb", false },
		{ "a\tb", false },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		if (storage_key_ok(cases[i].key) != cases[i].ok)
			fail_msg("storage_key_ok('%s') != %d", cases[i].key, cases[i].ok);
	}
	assert_false(storage_key_ok(NULL));
	_cleanup_free_ char *longkey = xmalloc(1100);
	memset(longkey, 'x', 1099);
	longkey[1099] = 0;
	assert_false(storage_key_ok(longkey));
}

static void test_key_layout(void **state)
{
	_cleanup_free_ char *a = storage_key_image("bookworm-amd64", "tar.zst");
	_cleanup_free_ char *b = storage_key_package("web", "20261120T214500Z-3f9a2c1", "json");
	_cleanup_free_ char *c = storage_key_current("web");
	_cleanup_free_ char *d = storage_key_log("web", "20261120T214500Z-3f9a2c1");
	assert_string_equal(a, "images/bookworm-amd64.tar.zst");
	assert_string_equal(b, "packages/web/20261120T214500Z-3f9a2c1.json");
	assert_string_equal(c, "apps/web/current");
	assert_string_equal(d, "logs/web/20261120T214500Z-3f9a2c1.log");
	assert_true(storage_key_ok(a) && storage_key_ok(b) && storage_key_ok(c) && storage_key_ok(d));
	/* a hostile name cannot escape: the key is refused */
	_cleanup_free_ char *bad = storage_key_package("..", "x", "json");
	assert_false(storage_key_ok(bad));
}

static void test_open_names(void **state)
{
	struct fx *f = *state;
	assert_string_equal(storage_name(f->s), "local");
	assert_string_equal(storage_where(f->s), f->root);
	assert_int_equal(storage_caps(f->s), STORAGE_CAP_WRITE | STORAGE_CAP_LIST | STORAGE_CAP_FD |
					     STORAGE_CAP_COMMIT_AS);

	_cleanup_err_ struct err e = ERR_INIT;
	struct storage *s = NULL;
	struct cfg_storage cfg = { .handler = "ftp" };
	assert_int_equal(storage_open(&s, &cfg, f->dir, &e), -EINVAL);
	assert_non_null(strstr(err_msg(&e), "unknown storage handler 'ftp'"));
	assert_null(s);

	/* default path: <state>/storage */
	err_clear(&e);
	struct cfg_storage def = { 0 };
	assert_int_equal(storage_open(&s, &def, f->dir, &e), 0);
	_cleanup_free_ char *want = path_join(f->dir, "storage");
	assert_string_equal(storage_where(s), want);
	storage_close(s);
}

static void test_roundtrip(void **state)
{
	struct fx *f = *state;
	int r;
	put_str(f->s, "apps/web/current", "20261120T214500Z-3f9a2c1\n");
	_cleanup_free_ char *got = get_str(f->s, "apps/web/current", &r);
	assert_int_equal(r, 0);
	assert_string_equal(got, "20261120T214500Z-3f9a2c1\n");

	/* the file mirrors the key */
	_cleanup_free_ char *path = path_join(f->root, "apps/web/current");
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));

	/* overwrite replaces */
	put_str(f->s, "apps/web/current", "second");
	_cleanup_free_ char *again = get_str(f->s, "apps/web/current", &r);
	assert_string_equal(again, "second");

	/* an empty object */
	put_str(f->s, "empty", "");
	_cleanup_free_ char *empty = get_str(f->s, "empty", &r);
	assert_int_equal(r, 0);
	assert_string_equal(empty, "");

	/* odd characters S3 allows are stored as they are */
	put_str(f->s, "odd/with space ü+=&*", "odd");
	_cleanup_free_ char *odd = get_str(f->s, "odd/with space ü+=&*", &r);
	assert_string_equal(odd, "odd");

	/* get_buf's max */
	_cleanup_err_ struct err e = ERR_INIT;
	_cleanup_buf_ struct buf b = BUF_INIT;
	buf_adds(&b, "keep");
	assert_int_equal(storage_get_buf(f->s, "apps/web/current", &b, 3, &e), -E2BIG);
	assert_string_equal(b.p, "keep");   /* unchanged on failure */
	assert_non_null(strstr(err_msg(&e), "larger than 3 bytes"));
}

static void test_streaming(void **state)
{
	struct fx *f = *state;
	_cleanup_err_ struct err e = ERR_INIT;
	struct storage_upload *u = NULL;
	_cleanup_buf_ struct buf want = BUF_INIT;

	assert_int_equal(storage_upload_begin(f->s, "logs/web/x.log", 0, &u, &e), 0);
	for (int i = 0; i < 20000; i++) {
		char line[32];
		int n = snprintf(line, sizeof(line), "line %d\n", i);
		buf_add(&want, line, (size_t)n);
		assert_int_equal(storage_upload_write(u, line, (size_t)n, &e), 0);
	}
	assert_int_equal(storage_upload_write(u, "", 0, &e), 0);
	assert_int_equal(storage_upload_commit(u, &e), 0);

	_cleanup_buf_ struct buf got = BUF_INIT;
	assert_int_equal(storage_get_buf(f->s, "logs/web/x.log", &got, 0, &e), 0);
	assert_int_equal(got.len, want.len);
	assert_memory_equal(got.p, want.p, want.len);

	struct storage_stat st;
	assert_int_equal(storage_stat(f->s, "logs/web/x.log", &st, &e), 0);
	assert_int_equal(st.size, want.len);
}

static void test_abort(void **state)
{
	struct fx *f = *state;
	_cleanup_err_ struct err e = ERR_INIT;
	struct storage_upload *u = NULL;

	assert_int_equal(storage_upload_begin(f->s, "packages/web/1.tar.zst", 0, &u, &e), 0);
	assert_int_equal(storage_upload_write(u, "partial", 7, &e), 0);
	storage_upload_abort(u);
	storage_upload_abort(NULL);

	/* no temp file, no object, no directory made for it */
	_cleanup_free_ char *t = tree(f->root);
	assert_string_equal(t, "");
	int r;
	_cleanup_free_ char *got = get_str(f->s, "packages/web/1.tar.zst", &r);
	assert_int_equal(r, -ENOENT);

	/* an abort next to other objects keeps them and their directory */
	put_str(f->s, "packages/web/0.json", "{}");
	assert_int_equal(storage_upload_begin(f->s, "packages/web/1.json", 0, &u, &e), 0);
	storage_upload_abort(u);
	_cleanup_free_ char *t2 = tree(f->root);
	assert_string_equal(t2, "packages/ packages/web/ packages/web/0.json");
}

static void test_reader_during_upload(void **state)
{
	struct fx *f = *state;
	_cleanup_err_ struct err e = ERR_INIT;
	struct storage_upload *u = NULL;
	struct storage_stat st;
	int r;

	assert_int_equal(storage_upload_begin(f->s, "packages/web/2.json", 0, &u, &e), 0);
	assert_int_equal(storage_upload_write(u, "{\"half\":", 8, &e), 0);

	_cleanup_free_ char *g1 = get_str(f->s, "packages/web/2.json", &r);
	assert_int_equal(r, -ENOENT);
	err_clear(&e);
	assert_int_equal(storage_stat(f->s, "packages/web/2.json", &st, &e), -ENOENT);
	_cleanup_strv_ struct strv keys = STRV_INIT;
	err_clear(&e);
	assert_int_equal(storage_list_keys(f->s, "", &keys, &e), 0);
	assert_int_equal(keys.n, 0);

	/* the upload's temp file is there, but only as a hidden temp */
	_cleanup_free_ char *t = tree(f->root);
	assert_non_null(strstr(t, "packages/web/.tmp-"));

	assert_int_equal(storage_upload_write(u, "1}", 2, &e), 0);
	assert_int_equal(storage_upload_commit(u, &e), 0);
	_cleanup_free_ char *g2 = get_str(f->s, "packages/web/2.json", &r);
	assert_int_equal(r, 0);
	assert_string_equal(g2, "{\"half\":1}");

	/* replacing: readers see the old object until commit */
	assert_int_equal(storage_upload_begin(f->s, "packages/web/2.json", 0, &u, &e), 0);
	assert_int_equal(storage_upload_write(u, "new", 3, &e), 0);
	_cleanup_free_ char *g3 = get_str(f->s, "packages/web/2.json", &r);
	assert_string_equal(g3, "{\"half\":1}");
	assert_int_equal(storage_upload_commit(u, &e), 0);
	_cleanup_free_ char *g4 = get_str(f->s, "packages/web/2.json", &r);
	assert_string_equal(g4, "new");
	_cleanup_free_ char *t2 = tree(f->root);
	assert_string_equal(t2, "packages/ packages/web/ packages/web/2.json");
}

struct collect {
	struct strv keys;
	struct strv sizes;
	int stop_after;
};

static int collect_cb(void *data, const char *key, const struct storage_stat *st)
{
	struct collect *c = data;
	strv_push(&c->keys, key);
	strv_pushf(&c->sizes, "%llu", (unsigned long long)st->size);
	if (c->stop_after && (int)c->keys.n >= c->stop_after)
		return -ECANCELED;
	return 0;
}

static char *list_str(struct storage *s, const char *prefix, int *ret)
{
	_cleanup_err_ struct err e = ERR_INIT;
	struct collect c = { STRV_INIT, STRV_INIT, 0 };
	struct buf b = BUF_INIT;
	*ret = storage_list(s, prefix, collect_cb, &c, &e);
	for (size_t i = 0; i < c.keys.n; i++)
		buf_addf(&b, "%s%s", i ? " " : "", c.keys.v[i]);
	strv_free(&c.keys);
	strv_free(&c.sizes);
	return buf_detach(&b);
}

static void test_list(void **state)
{
	struct fx *f = *state;
	static const char *const keys[] = {
		"b", "a/c/d", "a-c", "a/b", "a0", "apps/web/current", "a/c/e", "a/b2",
	};
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
		put_str(f->s, keys[i], keys[i]);

	/* temp files of uploads, in progress or crashed, never show */
	_cleanup_free_ char *tmp1 = path_join(f->root, ".tmp-0123456789abcdef");
	_cleanup_free_ char *tmp2 = path_join(f->root, "a/c/.tmp-crashed");
	assert_int_equal(fs_write_atomic(tmp1, "x", 1, 0644), 0);
	assert_int_equal(fs_write_atomic(tmp2, "x", 1, 0644), 0);
	/* nor do symlinks */
	_cleanup_free_ char *link = path_join(f->root, "a/link");
	assert_int_equal(symlink("/etc/passwd", link), 0);

	int r;
	/* global lexical order: '-' (0x2d) < '/' (0x2f) < '0' (0x30) */
	_cleanup_free_ char *all = list_str(f->s, "", &r);
	assert_int_equal(r, 0);
	assert_string_equal(all, "a-c a/b a/b2 a/c/d a/c/e a0 apps/web/current b");
	_cleanup_free_ char *all2 = list_str(f->s, NULL, &r);
	assert_string_equal(all2, all);

	_cleanup_free_ char *a = list_str(f->s, "a", &r);
	assert_string_equal(a, "a-c a/b a/b2 a/c/d a/c/e a0 apps/web/current");
	_cleanup_free_ char *as = list_str(f->s, "a/", &r);
	assert_string_equal(as, "a/b a/b2 a/c/d a/c/e");
	_cleanup_free_ char *ab = list_str(f->s, "a/b", &r);
	assert_string_equal(ab, "a/b a/b2");
	_cleanup_free_ char *ac = list_str(f->s, "a/c/", &r);
	assert_string_equal(ac, "a/c/d a/c/e");
	_cleanup_free_ char *none = list_str(f->s, "zzz/", &r);
	assert_int_equal(r, 0);
	assert_string_equal(none, "");
	_cleanup_free_ char *none2 = list_str(f->s, "b/", &r);   /* b is an object */
	assert_int_equal(r, 0);
	assert_string_equal(none2, "");

	/* bad prefixes */
	_cleanup_free_ char *bad = list_str(f->s, "../", &r);
	assert_int_equal(r, -EINVAL);

	/* a callback stops the listing */
	_cleanup_err_ struct err e = ERR_INIT;
	struct collect c = { STRV_INIT, STRV_INIT, 2 };
	assert_int_equal(storage_list(f->s, "", collect_cb, &c, &e), -ECANCELED);
	assert_int_equal(c.keys.n, 2);
	assert_string_equal(c.sizes.v[0], "3");   /* "a-c" */
	strv_free(&c.keys);
	strv_free(&c.sizes);

	_cleanup_strv_ struct strv names = STRV_INIT;
	assert_int_equal(storage_list_keys(f->s, "a/c", &names, &e), 0);
	assert_int_equal(names.n, 2);
	assert_string_equal(names.v[1], "a/c/e");
}

/* A verified download: stopped past the size it should have, renamed into
 * place only with the right size and sha256. */
static void test_get_verified(void **state)
{
	struct fx *f = *state;
	_cleanup_err_ struct err e = ERR_INIT;
	static const char data[] = "the blob of a package";
	char hex[65], other[65];
	_cleanup_free_ char *path = path_join(f->dir, "out");

	sha256_hex(data, strlen(data), hex);
	sha256_hex("x", 1, other);
	assert_int_equal(storage_put_buf(f->s, "packages/a/1.tar.zst", data, strlen(data), &e), 0);
	assert_int_equal(storage_get_verified(f->s, "packages/a/1.tar.zst", path, hex, strlen(data),
					      "package '1'", &e), 0);
	assert_int_equal(access(path, F_OK), 0);
	unlink(path);

	/* the manifest says less: the transfer stops */
	assert_int_equal(storage_get_verified(f->s, "packages/a/1.tar.zst", path, hex, 5,
					      "package '1'", &e), -EBADMSG);
	assert_non_null(strstr(err_msg(&e), "package '1' failed verification"));
	assert_non_null(strstr(err_msg(&e), "larger than the 5 bytes"));
	assert_int_equal(access(path, F_OK), -1);
	err_clear(&e);
	/* more */
	assert_int_equal(storage_get_verified(f->s, "packages/a/1.tar.zst", path, hex, 100,
					      "package '1'", &e), -EBADMSG);
	assert_non_null(strstr(err_msg(&e), "bytes fetched, the manifest says 100"));
	assert_int_equal(access(path, F_OK), -1);
	err_clear(&e);
	/* another sha256 */
	assert_int_equal(storage_get_verified(f->s, "packages/a/1.tar.zst", path, other,
					      strlen(data), "package '1'", &e), -EBADMSG);
	assert_non_null(strstr(err_msg(&e), "sha256"));
	assert_int_equal(access(path, F_OK), -1);
	err_clear(&e);
	/* nothing left next to it either */
	_cleanup_strv_ struct strv left = STRV_INIT;
	walk(f->dir, "", &left);
	for (size_t i = 0; i < left.n; i++)
		assert_null(strstr(left.v[i], ".out.tmp"));
}

static void test_stat(void **state)
{
	struct fx *f = *state;
	_cleanup_err_ struct err e = ERR_INIT;
	struct storage_stat st = { 99, 99 };
	int64_t before = now_unix();

	put_str(f->s, "images/x.json", "0123456789");
	assert_int_equal(storage_stat(f->s, "images/x.json", &st, &e), 0);
	assert_int_equal(st.size, 10);
	assert_true(st.mtime >= before - 1 && st.mtime <= now_unix() + 1);

	struct storage_stat keep = { 7, 7 };
	assert_int_equal(storage_stat(f->s, "images/nope", &keep, &e), -ENOENT);
	assert_int_equal(keep.size, 7);   /* untouched on failure */
	assert_non_null(strstr(err_msg(&e), "'images/nope'"));
	/* a directory is not an object */
	err_clear(&e);
	assert_int_equal(storage_stat(f->s, "images", &st, &e), -ENOENT);
	/* below an object */
	err_clear(&e);
	assert_int_equal(storage_stat(f->s, "images/x.json/y", &st, &e), -ENOENT);
}

/* Conditional reads (local: the ETag is the file's identity) and the
 * counters of the generic layer. */
static void test_get_if(void **state)
{
	struct fx *f = *state;
	_cleanup_err_ struct err e = ERR_INIT;
	_cleanup_buf_ struct buf out = BUF_INIT, tag = BUF_INIT, tag2 = BUF_INIT;
	struct storage_counters c0, c;

	storage_get_counters(f->s, &c0);
	put_str(f->s, "apps/a/current", "id-1\n");
	assert_int_equal(storage_get_buf_if(f->s, "apps/a/current", NULL, &tag, &out, 64, &e), 0);
	assert_string_equal(out.p, "id-1\n");
	assert_true(tag.len > 2 && tag.p[0] == '"');
	/* unchanged: not modified, out untouched */
	buf_reset(&out);
	buf_adds(&out, "kept");
	assert_int_equal(storage_get_buf_if(f->s, "apps/a/current", tag.p, &tag2, &out, 64, &e),
			 STORAGE_NOT_MODIFIED);
	assert_string_equal(out.p, "kept");
	assert_int_equal(tag2.len, 0);
	/* rewritten with the same bytes: a new file, a new ETag */
	put_str(f->s, "apps/a/current", "id-1\n");
	assert_int_equal(storage_get_buf_if(f->s, "apps/a/current", tag.p, &tag2, &out, 64, &e), 0);
	assert_string_equal(out.p, "id-1\n");
	assert_string_not_equal(tag.p, tag2.p);
	/* an ETag that could not go in a header is no condition */
	assert_int_equal(storage_get_buf_if(f->s, "apps/a/current", "\"a\r\nX: y\"", &tag, &out,
					    64, &e), 0);
	/* a missing key is -ENOENT either way */
	assert_int_equal(storage_get_buf_if(f->s, "apps/b/current", tag2.p, &tag, &out, 64, &e),
			 -ENOENT);

	storage_get_counters(f->s, &c);
	assert_int_equal(c.gets - c0.gets, 5);
	assert_int_equal(c.not_modified - c0.not_modified, 1);
	assert_int_equal(c.puts - c0.puts, 2);
	assert_int_equal(c.requests - c0.requests, 7);
	assert_int_equal(c.bytes_in - c0.bytes_in, 15);
	assert_int_equal(c.bytes_out - c0.bytes_out, 10);
	_cleanup_buf_ struct buf line = BUF_INIT;
	c.requests = 3;
	c.gets = 2;
	c.not_modified = 1;
	c.puts = 1;
	c.stats = c.lists = c.deletes = 0;
	c.bytes_in = 5;
	c.bytes_out = 7;
	storage_counters_format(&c, &line);
	assert_string_equal(line.p, "3 requests (2 GET, 1 not modified, 1 PUT), 5 bytes in, "
			    "7 bytes out");
}

static void test_delete(void **state)
{
	struct fx *f = *state;
	_cleanup_err_ struct err e = ERR_INIT;
	put_str(f->s, "packages/web/1.json", "1");
	put_str(f->s, "packages/web/2.json", "2");
	put_str(f->s, "packages/api/1.json", "1");

	assert_int_equal(storage_delete(f->s, "packages/web/1.json", &e), 0);
	_cleanup_free_ char *t1 = tree(f->root);
	assert_string_equal(t1, "packages/ packages/api/ packages/api/1.json packages/web/ "
				"packages/web/2.json");
	/* the last object of a directory takes the empty directories along */
	assert_int_equal(storage_delete(f->s, "packages/web/2.json", &e), 0);
	_cleanup_free_ char *t2 = tree(f->root);
	assert_string_equal(t2, "packages/ packages/api/ packages/api/1.json");
	assert_int_equal(storage_delete(f->s, "packages/api/1.json", &e), 0);
	_cleanup_free_ char *t3 = tree(f->root);
	assert_string_equal(t3, "");
	struct stat st;
	assert_int_equal(stat(f->root, &st), 0);   /* the root stays */

	/* missing keys are fine, at any depth */
	assert_int_equal(storage_delete(f->s, "packages/web/1.json", &e), 0);
	assert_int_equal(storage_delete(f->s, "nothing/at/all", &e), 0);
	assert_int_equal(storage_delete(f->s, "top", &e), 0);
	assert_int_equal(e.code, 0);

	/* a directory is refused */
	put_str(f->s, "d/x", "x");
	assert_int_equal(storage_delete(f->s, "d", &e), -EISDIR);
}

static void test_bad_keys(void **state)
{
	struct fx *f = *state;
	static const char *const bad[] = {
		"", "/etc/passwd", "..", "../x", "a/../../x", "a/./b", "a\nb",
		/* valid keys that a filesystem cannot hold faithfully */
		"a//b", "a/", ".tmp-x", "a/.tmp-y/z",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		_cleanup_err_ struct err e = ERR_INIT;
		struct storage_upload *u = NULL;
		struct storage_stat st;
		assert_int_equal(storage_upload_begin(f->s, bad[i], 0, &u, &e), -EINVAL);
		assert_null(u);
		assert_int_equal(storage_put_buf(f->s, bad[i], "x", 1, &e), -EINVAL);
		assert_int_equal(storage_stat(f->s, bad[i], &st, &e), -EINVAL);
		assert_int_equal(storage_delete(f->s, bad[i], &e), -EINVAL);
		int r;
		_cleanup_free_ char *g = get_str(f->s, bad[i], &r);
		assert_int_equal(r, -EINVAL);
	}
	_cleanup_err_ struct err e = ERR_INIT;
	assert_int_equal(storage_put_buf(f->s, "a//b", "x", 1, &e), -EINVAL);
	assert_non_null(strstr(err_msg(&e), "empty component"));
	err_clear(&e);
	assert_int_equal(storage_put_buf(f->s, "../x", "x", 1, &e), -EINVAL);
	assert_string_equal(err_msg(&e), "invalid storage key '../x'");
	_cleanup_free_ char *t = tree(f->dir);
	assert_string_equal(t, "storage/");
}

static void test_get_missing(void **state)
{
	struct fx *f = *state;
	_cleanup_err_ struct err e = ERR_INIT;
	_cleanup_buf_ struct buf b = BUF_INIT;
	assert_int_equal(storage_get_buf(f->s, "packages/web/none.json", &b, 0, &e), -ENOENT);
	assert_non_null(strstr(err_msg(&e), "'packages/web/none.json' not found"));
	err_clear(&e);
	put_str(f->s, "x", "x");
	assert_int_equal(storage_get_buf(f->s, "x/y", &b, 0, &e), -ENOENT);
	err_clear(&e);
	_cleanup_free_ char *dest = path_join(f->dir, "dest");
	assert_int_equal(storage_get_file(f->s, "nope", dest, NULL, NULL, &e), -ENOENT);
	struct stat st;
	assert_int_equal(lstat(dest, &st), -1);   /* nothing created */
	_cleanup_free_ char *t = tree(f->dir);
	assert_string_equal(t, "storage/ storage/x");
}

static void test_get_file(void **state)
{
	struct fx *f = *state;
	_cleanup_err_ struct err e = ERR_INIT;
	size_t len = 700 * 1024 + 3;
	_cleanup_free_ char *data = xmalloc(len);
	for (size_t i = 0; i < len; i++)
		data[i] = (char)(i * 7 + i / 1000);
	char want[65];
	sha256_hex(data, len, want);
	assert_int_equal(storage_put_buf(f->s, "packages/web/big.tar.zst", data, len, &e), 0);

	_cleanup_free_ char *outdir = path_join(f->dir, "out");
	assert_int_equal(fs_mkdir_p(outdir, 0755), 0);
	_cleanup_free_ char *dest = path_join(outdir, "pkg.tar.zst");
	/* an existing file is replaced as a whole */
	assert_int_equal(fs_write_atomic(dest, "old", 3, 0600), 0);

	char hex[65] = "";
	uint64_t size = 0;
	assert_int_equal(storage_get_file(f->s, "packages/web/big.tar.zst", dest, hex, &size, &e), 0);
	assert_string_equal(hex, want);
	assert_int_equal(size, len);
	char disk[65];
	uint64_t disk_size = 0;
	assert_int_equal(sha256_file(dest, disk, &disk_size, &e), 0);
	assert_string_equal(disk, want);
	assert_int_equal(disk_size, len);
	struct stat st;
	assert_int_equal(stat(dest, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0644);
	/* no temp file left next to it */
	_cleanup_free_ char *t = tree(outdir);
	assert_string_equal(t, "pkg.tar.zst");

	/* without the optional outputs */
	assert_int_equal(storage_get_file(f->s, "packages/web/big.tar.zst", dest, NULL, NULL, &e), 0);
	/* a missing directory fails without a trace */
	_cleanup_free_ char *bad = path_join(f->dir, "missing/pkg");
	assert_true(storage_get_file(f->s, "packages/web/big.tar.zst", bad, NULL, NULL, &e) < 0);
}

static void test_put_file(void **state)
{
	struct fx *f = *state;
	_cleanup_err_ struct err e = ERR_INIT;
	_cleanup_free_ char *src = path_join(f->dir, "src");
	assert_int_equal(fs_write_atomic(src, "from a file", 11, 0644), 0);
	assert_int_equal(storage_put_file(f->s, "f/1", src, &e), 0);
	int r;
	_cleanup_free_ char *g = get_str(f->s, "f/1", &r);
	assert_string_equal(g, "from a file");

	_cleanup_close_ int fd = open(src, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(storage_put_fd(f->s, "f/2", fd, &e), 0);
	_cleanup_free_ char *g2 = get_str(f->s, "f/2", &r);
	assert_string_equal(g2, "from a file");

	_cleanup_free_ char *missing = path_join(f->dir, "nope");
	assert_int_equal(storage_put_file(f->s, "f/3", missing, &e), -ENOENT);
	assert_non_null(strstr(err_msg(&e), "nope'"));
	_cleanup_free_ char *t = tree(f->root);
	assert_string_equal(t, "f/ f/1 f/2");
}

static void test_symlinks(void **state)
{
	struct fx *f = *state;
	_cleanup_err_ struct err e = ERR_INIT;
	_cleanup_free_ char *outside = path_join(f->dir, "outside");
	_cleanup_free_ char *outdir = path_join(f->dir, "outdir");
	assert_int_equal(fs_write_atomic(outside, "precious", 8, 0644), 0);
	assert_int_equal(fs_mkdir_p(outdir, 0755), 0);

	/* a symlink planted as an object is replaced, never written through */
	_cleanup_free_ char *l1 = path_join(f->root, "evil");
	assert_int_equal(symlink(outside, l1), 0);
	int r;
	_cleanup_free_ char *g = get_str(f->s, "evil", &r);
	assert_int_equal(r, -ENOENT);   /* and not read through */
	put_str(f->s, "evil", "mine");
	_cleanup_buf_ struct buf b = BUF_INIT;
	assert_int_equal(buf_read_file(&b, outside, 0), 0);
	assert_string_equal(b.p, "precious");
	struct stat st;
	assert_int_equal(lstat(l1, &st), 0);
	assert_true(S_ISREG(st.st_mode));

	/* a symlinked directory is never entered */
	_cleanup_free_ char *l2 = path_join(f->root, "dir");
	assert_int_equal(symlink(outdir, l2), 0);
	assert_int_equal(storage_put_buf(f->s, "dir/x", "x", 1, &e), -ENOTDIR);
	_cleanup_free_ char *t = tree(outdir);
	assert_string_equal(t, "");
	_cleanup_free_ char *inside = path_join(outdir, "y");
	assert_int_equal(fs_write_atomic(inside, "y", 1, 0644), 0);
	_cleanup_free_ char *g2 = get_str(f->s, "dir/y", &r);
	assert_int_equal(r, -ENOENT);
	err_clear(&e);
	assert_int_equal(storage_delete(f->s, "dir/y", &e), -ENOTDIR);
	assert_int_equal(stat(inside, &st), 0);   /* still there */
	_cleanup_free_ char *ls = list_str(f->s, "", &r);
	assert_string_equal(ls, "evil");
}

static int stale_cb(void *data, const struct storage_stale *u)
{
	strv_pushf(data, "%s:%s", u->key, u->removed ? "removed" : "left");
	return 0;
}

static void test_stale_tmp_cleaned(void **state)
{
	struct fx *f = *state;
	_cleanup_free_ char *dir = path_join(f->root, "packages/web");
	assert_int_equal(fs_mkdir_p(dir, 0755), 0);
	_cleanup_free_ char *dead = path_join(dir, ".tmp-dead");
	_cleanup_free_ char *live = path_join(dir, ".tmp-live");
	_cleanup_free_ char *obj = path_join(dir, "old-object");
	assert_int_equal(fs_write_atomic(dead, "d", 1, 0644), 0);
	assert_int_equal(fs_write_atomic(live, "l", 1, 0644), 0);
	assert_int_equal(fs_write_atomic(obj, "x", 1, 0644), 0);
	/* a writer alive holds its temp's lock, whatever the temp's age */
	_cleanup_close_ int lfd = open(live, O_RDONLY | O_CLOEXEC);
	assert_true(lfd >= 0);
	assert_int_equal(flock(lfd, LOCK_EX), 0);
	struct timeval tv[2] = { { now_unix() - 2 * 86400, 0 }, { now_unix() - 2 * 86400, 0 } };
	assert_int_equal(utimes(live, tv), 0);

	/* the next open removes the dead one at once, keeps the live one */
	storage_close(f->s);
	open_local(f);
	_cleanup_free_ char *t = tree(f->root);
	assert_string_equal(t, "packages/ packages/web/ packages/web/.tmp-live "
			       "packages/web/old-object");

	/* so does an upload into the same directory, and a listing of it */
	assert_int_equal(fs_write_atomic(dead, "d", 1, 0644), 0);
	put_str(f->s, "packages/web/new", "n");
	_cleanup_free_ char *t2 = tree(f->root);
	assert_string_equal(t2, "packages/ packages/web/ packages/web/.tmp-live "
				"packages/web/new packages/web/old-object");
	assert_int_equal(fs_write_atomic(dead, "d", 1, 0644), 0);
	int r;
	_cleanup_free_ char *ls = list_str(f->s, "packages/", &r);
	assert_int_equal(r, 0);
	assert_string_equal(ls, "packages/web/new packages/web/old-object");
	_cleanup_free_ char *t3 = tree(f->root);
	assert_string_equal(t3, t2);

	/* and a sweep, which says what it found */
	assert_int_equal(fs_write_atomic(dead, "d", 1, 0644), 0);
	_cleanup_strv_ struct strv seen = STRV_INIT;
	_cleanup_err_ struct err e = ERR_INIT;
	assert_int_equal(storage_sweep_uploads(f->s, 0, stale_cb, &seen, &e), 1);
	strv_sort(&seen);
	assert_int_equal(seen.n, 2);
	assert_string_equal(seen.v[0], "packages/web/.tmp-dead:removed");
	assert_string_equal(seen.v[1], "packages/web/.tmp-live:left");
	_cleanup_free_ char *t4 = tree(f->root);
	assert_string_equal(t4, t2);

	/* once its writer is gone, the live one goes too */
	close(TAKE_FD(lfd));
	assert_int_equal(storage_sweep_uploads(f->s, STORAGE_UPLOAD_GRACE, NULL, NULL, &e), 1);
	_cleanup_free_ char *t5 = tree(f->root);
	assert_string_equal(t5, "packages/ packages/web/ packages/web/new packages/web/old-object");
}

static void test_http_readonly(void **state)
{
	/* port 1 on loopback: nothing listens, the refusals come first */
	struct cfg_storage cfg = { .handler = "http", .url = "http://127.0.0.1:1/base/", .timeout = 5 };
	_cleanup_err_ struct err e = ERR_INIT;
	struct storage *s = NULL;
	assert_int_equal(storage_open(&s, &cfg, NULL, &e), 0);
	assert_string_equal(storage_name(s), "http");
	assert_string_equal(storage_where(s), "http://127.0.0.1:1/base");
	assert_int_equal(storage_caps(s) & (STORAGE_CAP_WRITE | STORAGE_CAP_LIST), 0);

	struct storage_upload *u = NULL;
	assert_int_equal(storage_upload_begin(s, "a", 0, &u, &e), -EROFS);
	assert_string_equal(err_msg(&e), "storage handler 'http' is read-only");
	assert_int_equal(storage_put_buf(s, "a", "x", 1, &e), -EROFS);
	assert_int_equal(storage_delete(s, "a", &e), -EROFS);
	err_clear(&e);
	assert_int_equal(storage_list(s, "", collect_cb, NULL, &e), -EOPNOTSUPP);
	assert_non_null(strstr(err_msg(&e), "cannot list"));
	err_clear(&e);
	struct storage_stat st;
	int r = storage_stat(s, "a", &st, &e);
	assert_int_equal(r, -EIO);
	assert_non_null(strstr(err_msg(&e), "http://127.0.0.1:1/base/a"));
	storage_close(s);

	struct cfg_storage nourl = { .handler = "http" };
	err_clear(&e);
	assert_int_equal(storage_open(&s, &nourl, NULL, &e), -EINVAL);
	assert_non_null(strstr(err_msg(&e), "storage.url"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_ok),
		cmocka_unit_test(test_key_layout),
		cmocka_unit_test_setup_teardown(test_open_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_streaming, setup, teardown),
		cmocka_unit_test_setup_teardown(test_abort, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reader_during_upload, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stat, setup, teardown),
		cmocka_unit_test_setup_teardown(test_get_if, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_get_verified, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_get_missing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_get_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_put_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_symlinks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stale_tmp_cleaned, setup, teardown),
		cmocka_unit_test(test_http_readonly),
	};
	return cmocka_run_group_tests_name("storage", tests, NULL, NULL);
}
