/*
 * tests/unit/test-index.c - apps/_index (package/index.c): the document
 * both ways, its signature, the merge rules, what the reader refuses,
 * conditional reads, updates under a lock, and a rebuild from the
 * currents, on a local storage in a temp dir.
 */
#include "tests/unit/unit.h"

#include <errno.h>
#include <string.h>

#include "package/package.h"

#define A1 "20260101T000000Z-0001"
#define A2 "20260102T000000Z-0002"

struct fx {
	char root[64];
	struct storage *s;
	struct sign_key *k;          /* private */
	struct sign_trust t;         /* its public half */
	struct sign_trust other;     /* another key */
};

static int setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));
	struct err e = ERR_INIT;
	snprintf(f->root, sizeof(f->root), "/tmp/test-index.XXXXXX");
	assert_non_null(mkdtemp(f->root));
	_cleanup_free_ char *priv = path_join(f->root, "k.key"), *pub = path_join(f->root, "k.pub");
	_cleanup_free_ char *opriv = path_join(f->root, "o.key"), *opub = path_join(f->root, "o.pub");
	assert_int_equal(sign_key_generate(priv, pub, NULL, &e), 0);
	assert_int_equal(sign_key_generate(opriv, opub, NULL, &e), 0);
	assert_int_equal(sign_key_load_private(priv, &f->k, &e), 0);
	struct sign_key *kp, *op;
	assert_int_equal(sign_key_load_public(pub, &kp, &e), 0);
	assert_int_equal(sign_key_load_public(opub, &op, &e), 0);
	f->t = (struct sign_trust)SIGN_TRUST_INIT;
	f->other = (struct sign_trust)SIGN_TRUST_INIT;
	sign_trust_add(&f->t, kp);
	sign_trust_add(&f->other, op);
	_cleanup_free_ char *st = path_join(f->root, "storage");
	struct cfg_storage cfg = { .handler = "local", .path = st };
	assert_int_equal(storage_open(&f->s, &cfg, f->root, &e), 0);
	err_free(&e);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	struct err e = ERR_INIT;
	storage_close(f->s);
	sign_key_free(f->k);
	sign_trust_free(&f->t);
	sign_trust_free(&f->other);
	fs_rm_rf(f->root, &e);
	err_free(&e);
	free(f);
	return 0;
}

static void test_set_and_json(void **state)
{
	(void)state;
	struct package_index x = { 0 };
	assert_int_equal(package_index_set(&x, "web", A1, 3), 1);
	assert_int_equal(package_index_set(&x, "api", A1, 1), 1);
	/* an older or the same sequence changes nothing; a newer one does */
	assert_int_equal(package_index_set(&x, "web", A2, 2), 0);
	assert_int_equal(package_index_set(&x, "web", A1, 3), 0);
	assert_int_equal(package_index_set(&x, "web", A2, 4), 1);
	assert_int_equal(x.n, 2);
	assert_string_equal(x.v[0].app, "api");   /* sorted */
	const struct package_index_entry *en = package_index_find(&x, "web");
	assert_non_null(en);
	assert_string_equal(en->id, A2);
	assert_int_equal(en->sequence, 4);
	assert_null(package_index_find(&x, "nope"));

	_cleanup_buf_ struct buf doc = BUF_INIT;
	package_index_json(&x, &doc);
	struct sign_trust allow = { .allow_unsigned = true };
	struct package_index back;
	struct err e = ERR_INIT;
	assert_int_equal(package_index_parse(&allow, doc.p, doc.len, &back, &e), 1);
	assert_int_equal(back.n, 2);
	assert_string_equal(back.v[1].id, A2);
	assert_string_equal(back.keyid, "");
	package_index_free(&back);
	/* unsigned and not allowed: refused */
	struct sign_trust strict = SIGN_TRUST_INIT;
	assert_int_equal(package_index_parse(&strict, doc.p, doc.len, &back, &e), -ENOKEY);
	package_index_free(&x);
	err_free(&e);
}

static void test_signed(void **state)
{
	struct fx *f = *state;
	struct package_index x = { 0 }, back;
	struct err e = ERR_INIT;
	package_index_set(&x, "web", A1, 1);
	_cleanup_buf_ struct buf doc = BUF_INIT, text = BUF_INIT;
	package_index_json(&x, &doc);
	assert_int_equal(signed_text_format(f->k, doc.p, doc.len, &text, &e), 0);
	assert_int_equal(strncmp(text.p, "ed25519 ", 8), 0);
	assert_int_equal(package_index_parse(&f->t, text.p, text.len, &back, &e), 0);
	assert_string_equal(back.keyid, sign_key_id(f->k));
	package_index_free(&back);
	/* another key's trust: refused */
	assert_int_equal(package_index_parse(&f->other, text.p, text.len, &back, &e), -EKEYREJECTED);
	/* one byte changed: refused */
	char *p = strstr(text.p, A1);
	p[strlen(A1) - 1] = '9';
	err_clear(&e);
	assert_int_equal(package_index_parse(&f->t, text.p, text.len, &back, &e), -EBADMSG);
	package_index_free(&x);
	err_free(&e);
}

static void test_refused(void **state)
{
	(void)state;
	struct sign_trust allow = { .allow_unsigned = true };
	static const char *const bad[] = {
		"{\"format\":2,\"kind\":\"index\",\"apps\":{}}",
		"{\"format\":1,\"kind\":\"current\",\"apps\":{}}",
		"{\"format\":1,\"kind\":\"index\"}",
		"{\"format\":1,\"kind\":\"index\",\"apps\":{\"../x\":{\"id\":\"a\",\"sequence\":1}}}",
		"{\"format\":1,\"kind\":\"index\",\"apps\":{\"x\":{\"id\":\"a/b\",\"sequence\":1}}}",
		"{\"format\":1,\"kind\":\"index\",\"apps\":{\"x\":{\"id\":\"a\",\"sequence\":-1}}}",
		"{\"format\":1,\"kind\":\"index\",\"apps\":{\"x\":{\"id\":\"a\"}}}",
		"{\"format\":1,\"kind\":\"index\",\"created\":\"now\",\"apps\":{}}",
		"ed25519 zz\n{}",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct package_index x;
		struct err e = ERR_INIT;
		int r = package_index_parse(&allow, bad[i], strlen(bad[i]), &x, &e);
		if (r >= 0)
			fail_msg("case %zu accepted", i);
		err_free(&e);
	}
}

static int count_lock(void *data, bool acquire, struct err *e)
{
	int *held = data;
	(void)e;
	if (acquire) {
		assert_int_equal(*held, 0);
		*held = 1;
	} else {
		assert_int_equal(*held, 1);
		*held = 0;
	}
	return 0;
}

static int refuse_lock(void *data, bool acquire, struct err *e)
{
	(void)data;
	return acquire ? err_set(e, -EIO, "no lock today") : 0;
}

static void test_update_read(void **state)
{
	struct fx *f = *state;
	struct err e = ERR_INIT;
	struct package_index x;
	_cleanup_buf_ struct buf etag = BUF_INIT, etag2 = BUF_INIT;
	int held = 0;
	struct package_index_lock lock = { count_lock, &held };

	assert_int_equal(package_index_read(f->s, &f->t, NULL, &etag, &x, &e), -ENOENT);
	err_clear(&e);
	struct package_current c1 = { .app = "web", .id = A1, .sequence = 1 };
	struct package_current c2 = { .app = "api", .id = A1, .sequence = 7 };
	assert_int_equal(package_index_update(f->s, f->k, &f->t, &c1, &lock, &e), 0);
	assert_int_equal(package_index_update(f->s, f->k, &f->t, &c2, &lock, &e), 0);
	assert_int_equal(held, 0);
	assert_int_equal(package_index_read(f->s, &f->t, NULL, &etag, &x, &e), 0);
	assert_int_equal(x.n, 2);
	package_index_free(&x);
	/* unchanged: not modified */
	assert_int_equal(package_index_read(f->s, &f->t, etag.p, &etag2, &x, &e),
			 STORAGE_NOT_MODIFIED);
	/* an older current of web (a late writer) does not go back */
	struct package_current old = { .app = "web", .id = A2, .sequence = 0 };
	assert_int_equal(package_index_update(f->s, f->k, &f->t, &old, NULL, &e), 0);
	assert_int_equal(package_index_read(f->s, &f->t, etag.p, &etag2, &x, &e),
			 STORAGE_NOT_MODIFIED);
	/* a newer one does, and the ETag changes */
	struct package_current c3 = { .app = "web", .id = A2, .sequence = 2 };
	assert_int_equal(package_index_update(f->s, f->k, &f->t, &c3, &lock, &e), 0);
	assert_int_equal(package_index_read(f->s, &f->t, etag.p, &etag2, &x, &e), 0);
	assert_string_equal(package_index_find(&x, "web")->id, A2);
	assert_string_not_equal(etag.p, etag2.p);
	package_index_free(&x);
	/* a lock that cannot be had: nothing written */
	struct package_index_lock no = { refuse_lock, NULL };
	struct package_current c4 = { .app = "web", .id = A1, .sequence = 9 };
	assert_int_equal(package_index_update(f->s, f->k, &f->t, &c4, &no, &e), -EIO);
	assert_non_null(strstr(err_msg(&e), "no lock today"));
	err_clear(&e);
	assert_int_equal(package_index_read(f->s, &f->t, etag2.p, NULL, &x, &e),
			 STORAGE_NOT_MODIFIED);
	/* an index signed by a key this writer does not trust is started again */
	assert_int_equal(package_index_update(f->s, f->k, &f->other, &c4, NULL, &e), 0);
	assert_int_equal(package_index_read(f->s, &f->t, NULL, NULL, &x, &e), 0);
	assert_int_equal(x.n, 1);
	assert_string_equal(x.v[0].app, "web");
	package_index_free(&x);
	err_free(&e);
}

static void test_rebuild(void **state)
{
	struct fx *f = *state;
	struct err e = ERR_INIT;
	static const char *const apps[] = { "a", "b", "c" };
	for (size_t i = 0; i < ARRAY_SIZE(apps); i++) {
		struct package_current c = { .app = (char *)apps[i], .id = A1, .sequence = i + 1 };
		assert_int_equal(package_current_write(f->s, i == 2 ? NULL : f->k, &c, &e), 0);
	}
	/* noise: not currents */
	assert_int_equal(storage_put_buf(f->s, "apps/a/other", "x", 1, &e), 0);
	assert_int_equal(storage_put_buf(f->s, "apps/_index.bak", "x", 1, &e), 0);
	struct package_index x;
	int held = 0;
	struct package_index_lock lock = { count_lock, &held };
	/* c is unsigned: left out, with a warning */
	assert_int_equal(package_index_rebuild(f->s, f->k, &f->t, &lock, &x, &e), 0);
	assert_int_equal(x.n, 2);
	assert_string_equal(x.v[1].app, "b");
	assert_int_equal(x.v[1].sequence, 2);
	package_index_free(&x);
	assert_int_equal(package_index_read(f->s, &f->t, NULL, NULL, &x, &e), 0);
	assert_int_equal(x.n, 2);
	package_index_free(&x);
	err_free(&e);
}

int main(void)
{
	log_max_level = LOG_ERROR;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_set_and_json),
		cmocka_unit_test_setup_teardown(test_signed, setup, teardown),
		cmocka_unit_test(test_refused),
		cmocka_unit_test_setup_teardown(test_update_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rebuild, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
