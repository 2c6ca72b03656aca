/*
 * tests/unit/test-sign.c - ed25519 keys and signatures: key files and their
 * permissions, sign/verify round trips, tampering, untrusted keys, key
 * rotation, signed objects in a local storage, the signed current pointer.
 */
#include "tests/unit/unit.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "package/package.h"

struct fx {
	char *dir;
	char *old_priv, *old_pub, *new_priv, *new_pub;
	struct sign_key *old_key, *new_key;   /* private */
	struct storage *s;
};

static char *in(struct fx *f, const char *name)
{
	return path_join(f->dir, name);
}

static struct sign_key *load_priv(const char *path)
{
	_cleanup_err_ struct err e = ERR_INIT;
	struct sign_key *k = NULL;
	if (sign_key_load_private(path, &k, &e) < 0)
		fail_msg("load '%s': %s", path, err_msg(&e));
	return k;
}

static struct sign_key *load_pub(const char *path)
{
	_cleanup_err_ struct err e = ERR_INIT;
	struct sign_key *k = NULL;
	if (sign_key_load_public(path, &k, &e) < 0)
		fail_msg("load '%s': %s", path, err_msg(&e));
	return k;
}

static int setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));
	char tmpl[] = "/tmp/test-sign.XXXXXX";
	_cleanup_err_ struct err e = ERR_INIT;

	if (!mkdtemp(tmpl))
		return -1;
	f->dir = xstrdup(tmpl);
	f->old_priv = in(f, "old.key");
	f->old_pub = in(f, "old.pub");
	f->new_priv = in(f, "new.key");
	f->new_pub = in(f, "new.pub");
	if (sign_key_generate(f->old_priv, f->old_pub, NULL, &e) < 0 ||
	    sign_key_generate(f->new_priv, f->new_pub, NULL, &e) < 0) {
		fprintf(stderr, "generate: %s\n", err_msg(&e));
		return -1;
	}
	f->old_key = load_priv(f->old_priv);
	f->new_key = load_priv(f->new_priv);
	_cleanup_free_ char *root = in(f, "storage");
	struct cfg_storage cfg = { .handler = "local", .path = root };
	if (storage_open(&f->s, &cfg, NULL, &e) < 0) {
		fprintf(stderr, "storage: %s\n", err_msg(&e));
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	_cleanup_err_ struct err e = ERR_INIT;
	storage_close(f->s);
	sign_key_free(f->old_key);
	sign_key_free(f->new_key);
	fs_rm_rf(f->dir, &e);
	free(f->old_priv);
	free(f->old_pub);
	free(f->new_priv);
	free(f->new_pub);
	free(f->dir);
	free(f);
	return 0;
}

/* A trust set of the public key files given (NULL-terminated). */
static void trust(struct sign_trust *t, bool allow_unsigned, ...)
{
	va_list ap;
	*t = (struct sign_trust)SIGN_TRUST_INIT;
	t->allow_unsigned = allow_unsigned;
	va_start(ap, allow_unsigned);
	for (const char *p; (p = va_arg(ap, const char *));)
		sign_trust_add(t, load_pub(p));
	va_end(ap);
}

/* ------------------------------------------------------------ key files */

static void test_generate(void **state)
{
	struct fx *f = *state;
	_cleanup_err_ struct err e = ERR_INIT;
	struct stat st;
	char id[SIGN_KEYID_LEN + 1];

	assert_int_equal(stat(f->old_priv, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(stat(f->old_pub, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0644);
	assert_int_equal(strlen(sign_key_id(f->old_key)), SIGN_KEYID_LEN);
	assert_string_not_equal(sign_key_id(f->old_key), sign_key_id(f->new_key));
	assert_true(sign_key_is_private(f->old_key));

	/* the public file has the private key's id */
	struct sign_key *pub = load_pub(f->old_pub);
	assert_string_equal(sign_key_id(pub), sign_key_id(f->old_key));
	assert_false(sign_key_is_private(pub));
	_cleanup_buf_ struct buf pem = BUF_INIT;
	assert_int_equal(sign_key_public_pem(pub, &pem, &e), 0);
	assert_non_null(strstr(pem.p, "-----BEGIN PUBLIC KEY-----"));
	sign_key_free(pub);

	/* never over an existing file, never through a symlink */
	_cleanup_free_ char *other = in(f, "other.pub");
	assert_int_equal(sign_key_generate(f->old_priv, other, id, &e), -EEXIST);
	assert_int_equal(access(other, F_OK), -1);
	err_clear(&e);
	_cleanup_free_ char *link = in(f, "link.key");
	_cleanup_free_ char *target = in(f, "target");
	assert_int_equal(symlink(target, link), 0);
	assert_int_equal(sign_key_generate(link, other, id, &e), -EEXIST);
	assert_int_equal(access(target, F_OK), -1);
	err_clear(&e);

	/* a fresh pair, with its id */
	_cleanup_free_ char *p3 = in(f, "third.key");
	_cleanup_free_ char *q3 = in(f, "third.pub");
	mode_t old = umask(0);
	assert_int_equal(sign_key_generate(p3, q3, id, &e), 0);
	umask(old);
	assert_int_equal(stat(p3, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);   /* even with umask 0 */
	struct sign_key *k3 = load_priv(p3);
	assert_string_equal(id, sign_key_id(k3));
	sign_key_free(k3);
}

static void test_key_permissions(void **state)
{
	struct fx *f = *state;
	_cleanup_err_ struct err e = ERR_INIT;
	struct sign_key *k = NULL;

	assert_int_equal(chmod(f->old_priv, 0640), 0);
	assert_int_equal(sign_key_load_private(f->old_priv, &k, &e), -EACCES);
	assert_non_null(strstr(err_msg(&e), "group or others"));
	err_clear(&e);
	assert_int_equal(chmod(f->old_priv, 0604), 0);
	assert_int_equal(sign_key_load(f->old_priv, &k, &e), -EACCES);
	err_clear(&e);
	assert_int_equal(chmod(f->old_priv, 0400), 0);
	assert_int_equal(sign_key_load_private(f->old_priv, &k, &e), 0);
	sign_key_free(k);
	assert_int_equal(chmod(f->old_priv, 0600), 0);

	/* a symlink to a good key is refused */
	_cleanup_free_ char *link = in(f, "link.key");
	assert_int_equal(symlink(f->old_priv, link), 0);
	assert_int_equal(sign_key_load_private(link, &k, &e), -ELOOP);
	err_clear(&e);

	/* a trusted key anyone may rewrite trusts anyone */
	assert_int_equal(chmod(f->old_pub, 0666), 0);
	assert_int_equal(sign_key_load_public(f->old_pub, &k, &e), -EACCES);
	err_clear(&e);
	assert_int_equal(chmod(f->old_pub, 0644), 0);

	/* a private key is not a trusted key, and the reverse */
	assert_int_equal(sign_key_load_public(f->old_priv, &k, &e), -EINVAL);
	assert_non_null(strstr(err_msg(&e), "private key"));
	err_clear(&e);
	assert_int_equal(sign_key_load_private(f->old_pub, &k, &e), -EINVAL);
	err_clear(&e);

	/* junk, and a key of another type */
	_cleanup_free_ char *junk = in(f, "junk.pub");
	assert_int_equal(fs_write_atomic(junk, "hello\n", 6, 0644), 0);
	assert_int_equal(sign_key_load_public(junk, &k, &e), -EINVAL);
	err_clear(&e);
	_cleanup_free_ char *ec = in(f, "ec.pub");
	EVP_PKEY *eck = EVP_EC_gen("P-256");
	FILE *out = fopen(ec, "we");
	assert_non_null(eck);
	assert_non_null(out);
	assert_int_equal(PEM_write_PUBKEY(out, eck), 1);
	fclose(out);
	EVP_PKEY_free(eck);
	assert_int_equal(sign_key_load_public(ec, &k, &e), -EINVAL);
	assert_non_null(strstr(err_msg(&e), "not an ed25519 key"));
	err_clear(&e);

	/* a trust list with one bad file fails as a whole */
	struct sign_trust t;
	_cleanup_strv_ struct strv files = STRV_INIT;
	strv_push(&files, f->old_pub);
	strv_push(&files, junk);
	assert_int_equal(sign_trust_load(&t, &files, false, &e), -EINVAL);
	assert_non_null(strstr(err_msg(&e), "signing.trusted"));
	assert_int_equal(t.n, 0);
}

/* --------------------------------------------------------- signatures */

static void test_roundtrip(void **state)
{
	struct fx *f = *state;
	_cleanup_err_ struct err e = ERR_INIT;
	_cleanup_buf_ struct buf sig = BUF_INIT;
	static const char msg[] = "{\"format\": 1, \"app\": \"flask\"}\n";
	char id[SIGN_KEYID_LEN + 1] = "";
	struct sign_trust t;

	assert_int_equal(sign_bytes(f->old_key, msg, strlen(msg), &sig, &e), 0);
	assert_int_equal(sig.len, 8 + 16 + 1 + 88 + 1);
	assert_true(!strncmp(sig.p, "ed25519 ", 8));
	assert_true(!strncmp(sig.p + 8, sign_key_id(f->old_key), 16));

	trust(&t, false, f->old_pub, NULL);
	assert_int_equal(sign_verify(&t, "obj", msg, strlen(msg), sig.p, sig.len, id, &e), 0);
	assert_string_equal(id, sign_key_id(f->old_key));

	/* every single changed byte of the message is caught */
	_cleanup_free_ char *copy = xstrdup(msg);
	for (size_t i = 0; i < strlen(msg); i++) {
		copy[i] ^= 1;
		assert_int_equal(sign_verify(&t, "obj", copy, strlen(msg), sig.p, sig.len, NULL,
					     &e), -EBADMSG);
		err_clear(&e);
		copy[i] ^= 1;
	}
	/* a byte more or less */
	assert_int_equal(sign_verify(&t, "obj", msg, strlen(msg) - 1, sig.p, sig.len, NULL, &e),
			 -EBADMSG);
	assert_non_null(strstr(err_msg(&e), "'obj' does not match its signature by key"));
	err_clear(&e);

	/* a changed signature is caught (base64 digit 10 is inside the data) */
	_cleanup_free_ char *bad = xstrdup(sig.p);
	bad[8 + 17 + 10] = bad[8 + 17 + 10] == 'A' ? 'B' : 'A';
	assert_int_equal(sign_verify(&t, "obj", msg, strlen(msg), bad, sig.len, NULL, &e),
			 -EBADMSG);
	err_clear(&e);

	/* a public key cannot sign */
	assert_int_equal(sign_bytes(t.keys[0], msg, 3, &sig, &e), -EINVAL);
	err_clear(&e);
	sign_trust_free(&t);
}

static void test_untrusted_and_malformed(void **state)
{
	struct fx *f = *state;
	_cleanup_err_ struct err e = ERR_INIT;
	_cleanup_buf_ struct buf sig = BUF_INIT;
	static const char msg[] = "payload";
	struct sign_trust t;

	assert_int_equal(sign_bytes(f->new_key, msg, 7, &sig, &e), 0);
	trust(&t, true, f->old_pub, NULL);
	/* allow_unsigned never lets a foreign signature through */
	assert_int_equal(sign_verify(&t, "obj", msg, 7, sig.p, sig.len, NULL, &e), -EKEYREJECTED);
	assert_non_null(strstr(err_msg(&e), "not trusted"));
	assert_non_null(strstr(err_msg(&e), sign_key_id(f->new_key)));
	err_clear(&e);
	sign_trust_free(&t);

	/* nothing trusted at all */
	trust(&t, false, NULL);
	assert_int_equal(sign_verify(&t, "obj", msg, 7, sig.p, sig.len, NULL, &e), -EKEYREJECTED);
	assert_non_null(strstr(err_msg(&e), "no key is trusted"));
	err_clear(&e);
	sign_trust_free(&t);

	/* a forged key id does not help: the trusted key's material decides */
	trust(&t, false, f->old_pub, NULL);
	_cleanup_free_ char *forged = xstrdup(sig.p);
	memcpy(forged + 8, sign_key_id(f->old_key), 16);
	assert_int_equal(sign_verify(&t, "obj", msg, 7, forged, strlen(forged), NULL, &e),
			 -EBADMSG);
	err_clear(&e);

	static const char *const malformed[] = {
		"",
		"\n",
		"ed25519 0123\n",
		"rsa 0123456789abcdef AAAA\n",
		/* no final newline */
		"ed25519 0123456789abcdef "
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==",
		/* bad base64 */
		"ed25519 0123456789abcdef "
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA*==\n",
		/* upper-case id */
		"ed25519 0123456789ABCDEF "
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==\n",
	};
	for (size_t i = 0; i < ARRAY_SIZE(malformed); i++) {
		assert_int_equal(sign_verify(&t, "obj", msg, 7, malformed[i], strlen(malformed[i]),
					     NULL, &e), -EBADMSG);
		assert_non_null(strstr(err_msg(&e), "malformed"));
		err_clear(&e);
	}
	/* trailing junk after good lines */
	_cleanup_buf_ struct buf good = BUF_INIT;
	assert_int_equal(sign_bytes(f->old_key, msg, 7, &good, &e), 0);
	buf_adds(&good, "junk\n");
	assert_int_equal(sign_verify(&t, "obj", msg, 7, good.p, good.len, NULL, &e), -EBADMSG);
	err_clear(&e);
	sign_trust_free(&t);
}

/* Rotation: the builder signs with the new key while hosts trust both;
 * once the old key is dropped, what only it signed is refused. */
static void test_rotation(void **state)
{
	struct fx *f = *state;
	_cleanup_err_ struct err e = ERR_INIT;
	_cleanup_buf_ struct buf by_old = BUF_INIT, by_new = BUF_INIT, both = BUF_INIT;
	static const char msg[] = "manifest";
	char id[SIGN_KEYID_LEN + 1];
	struct sign_trust t;

	assert_int_equal(sign_bytes(f->old_key, msg, 8, &by_old, &e), 0);
	assert_int_equal(sign_bytes(f->new_key, msg, 8, &by_new, &e), 0);
	buf_add(&both, by_old.p, by_old.len);
	buf_add(&both, by_new.p, by_new.len);

	trust(&t, false, f->old_pub, f->new_pub, NULL);
	assert_int_equal(sign_verify(&t, "m", msg, 8, by_old.p, by_old.len, id, &e), 0);
	assert_string_equal(id, sign_key_id(f->old_key));
	assert_int_equal(sign_verify(&t, "m", msg, 8, by_new.p, by_new.len, id, &e), 0);
	assert_string_equal(id, sign_key_id(f->new_key));
	sign_trust_free(&t);

	trust(&t, false, f->new_pub, NULL);
	assert_int_equal(sign_verify(&t, "m", msg, 8, by_old.p, by_old.len, NULL, &e),
			 -EKEYREJECTED);
	err_clear(&e);
	assert_int_equal(sign_verify(&t, "m", msg, 8, by_new.p, by_new.len, NULL, &e), 0);
	/* an object signed by both keys passes on the one trusted */
	assert_int_equal(sign_verify(&t, "m", msg, 8, both.p, both.len, id, &e), 0);
	assert_string_equal(id, sign_key_id(f->new_key));
	sign_trust_free(&t);

	/* sign_trust_load from files */
	_cleanup_strv_ struct strv files = STRV_INIT;
	strv_push(&files, f->new_pub);
	strv_push(&files, f->old_pub);
	assert_int_equal(sign_trust_load(&t, &files, false, &e), 0);
	assert_int_equal(t.n, 2);
	assert_int_equal(sign_verify(&t, "m", msg, 8, by_old.p, by_old.len, NULL, &e), 0);
	sign_trust_free(&t);
}

/* ------------------------------------------------------ signed objects */

static void test_signed_objects(void **state)
{
	struct fx *f = *state;
	_cleanup_err_ struct err e = ERR_INIT;
	_cleanup_buf_ struct buf got = BUF_INIT;
	static const char key[] = "packages/flask/20261120T214500Z-3f9a2c1.json";
	static const char doc[] = "{ \"format\": 1 }\n";
	char id[SIGN_KEYID_LEN + 1];
	struct sign_trust t, lax;

	trust(&t, false, f->old_pub, NULL);
	trust(&lax, true, f->old_pub, NULL);
	assert_int_equal(signed_put(f->s, f->old_key, key, doc, strlen(doc), &e), 0);
	assert_int_equal(signed_get(f->s, &t, key, &got, 4096, id, &e), 0);
	assert_string_equal(got.p, doc);
	assert_string_equal(id, sign_key_id(f->old_key));

	/* the signature is a detached "<key>.sig" */
	_cleanup_free_ char *skey = sign_sig_key(key);
	assert_string_equal(skey, "packages/flask/20261120T214500Z-3f9a2c1.json.sig");
	_cleanup_buf_ struct buf sig = BUF_INIT;
	assert_int_equal(storage_get_buf(f->s, skey, &sig, 4096, &e), 0);
	assert_int_equal(sign_verify(&t, key, doc, strlen(doc), sig.p, sig.len, NULL, &e), 0);

	/* one byte changed in storage */
	static const char edited[] = "{ \"format\": 2 }\n";
	assert_int_equal(storage_put_buf(f->s, key, edited, strlen(edited), &e), 0);
	buf_reset(&got);
	assert_int_equal(signed_get(f->s, &lax, key, &got, 4096, id, &e), -EBADMSG);
	assert_int_equal(got.len, 0);
	assert_non_null(strstr(err_msg(&e), key));
	err_clear(&e);

	/* the signature removed: refused, unless unsigned objects are allowed */
	assert_int_equal(storage_delete(f->s, skey, &e), 0);
	assert_int_equal(signed_get(f->s, &t, key, &got, 4096, id, &e), -ENOKEY);
	assert_non_null(strstr(err_msg(&e), "is not signed"));
	err_clear(&e);
	assert_int_equal(signed_get(f->s, &lax, key, &got, 4096, id, &e), 1);
	assert_string_equal(got.p, edited);
	assert_string_equal(id, "");

	/* signed by a key that is not trusted */
	assert_int_equal(signed_put(f->s, f->new_key, key, doc, strlen(doc), &e), 0);
	assert_int_equal(signed_get(f->s, &lax, key, &got, 4096, id, &e), -EKEYREJECTED);
	err_clear(&e);

	/* a missing object is -ENOENT, and its signature alone changes nothing */
	assert_int_equal(signed_get(f->s, &t, "packages/flask/none.json", &got, 4096, id, &e),
			 -ENOENT);
	err_clear(&e);
	assert_int_equal(signed_delete(f->s, key, &e), 0);
	assert_int_equal(storage_get_buf(f->s, skey, &sig, 4096, &e), -ENOENT);
	err_clear(&e);
	sign_trust_free(&t);
	sign_trust_free(&lax);
}

/* ------------------------------------------------------------- current */

static void test_current(void **state)
{
	struct fx *f = *state;
	_cleanup_err_ struct err e = ERR_INIT;
	_cleanup_buf_ struct buf text = BUF_INIT;
	struct package_current c = {
		.app = "flask", .id = "20261120T214500Z-3f9a2c1", .sequence = 7,
		.created = "2026-11-20T21:45:00Z", .builder = "builder1",
	};
	struct package_current got;
	struct sign_trust t, lax;

	trust(&t, false, f->old_pub, NULL);
	trust(&lax, true, f->old_pub, NULL);

	assert_int_equal(package_current_write(f->s, f->old_key, &c, &e), 0);
	assert_int_equal(package_current_read(f->s, &t, "flask", &got, &e), 0);
	assert_string_equal(got.id, c.id);
	assert_int_equal(got.sequence, 7);
	assert_string_equal(got.created, c.created);
	assert_string_equal(got.builder, "builder1");
	assert_string_equal(got.keyid, sign_key_id(f->old_key));
	package_current_free(&got);

	/* the signature line, then the document it covers */
	assert_int_equal(storage_get_buf(f->s, "apps/flask/current", &text, 4096, &e), 0);
	const char *doc = strchr(text.p, '\n') + 1;
	assert_true(doc[0] == '{');
	assert_non_null(strstr(doc, "\"sequence\": 7"));

	/* a replayed sequence cannot be made up: editing it breaks the signature */
	_cleanup_buf_ struct buf edited = BUF_INIT;
	buf_adds(&edited, text.p);
	char *seq = strstr(edited.p, "\"sequence\": 7");
	seq[12] = '9';
	assert_int_equal(package_current_parse(&lax, "flask", edited.p, edited.len, &got, &e),
			 -EBADMSG);
	err_clear(&e);

	/* another app's current does not pass for this one's */
	assert_int_equal(package_current_parse(&t, "django", text.p, text.len, &got, &e),
			 -EINVAL);
	assert_non_null(strstr(err_msg(&e), "another app"));
	err_clear(&e);

	/* signed by a key that is not trusted */
	buf_reset(&text);
	assert_int_equal(package_current_format(f->new_key, &c, &text, &e), 0);
	assert_int_equal(package_current_parse(&lax, "flask", text.p, text.len, &got, &e),
			 -EKEYREJECTED);
	err_clear(&e);

	/* unsigned: refused, or accepted with the admin's allow_unsigned */
	buf_reset(&text);
	assert_int_equal(package_current_format(NULL, &c, &text, &e), 0);
	assert_int_equal(package_current_parse(&t, "flask", text.p, text.len, &got, &e), -ENOKEY);
	err_clear(&e);
	assert_int_equal(package_current_parse(&lax, "flask", text.p, text.len, &got, &e), 1);
	assert_int_equal(got.sequence, 7);
	assert_string_equal(got.keyid, "");
	package_current_free(&got);

	/* the first edition's "<id>\n" */
	static const char old[] = "20261001T000000Z-0000000\n";
	assert_int_equal(package_current_parse(&t, "flask", old, strlen(old), &got, &e), -ENOKEY);
	err_clear(&e);
	assert_int_equal(package_current_parse(&lax, "flask", old, strlen(old), &got, &e), 1);
	assert_string_equal(got.id, "20261001T000000Z-0000000");
	assert_int_equal(got.sequence, 0);
	package_current_free(&got);
	static const char *const bad[] = { "../x\n", "\n", "a b\n", "{ \"format\": 1 }\n" };
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		assert_int_equal(package_current_parse(&lax, "flask", bad[i], strlen(bad[i]), &got,
						       &e), -EINVAL);
		err_clear(&e);
	}

	/* a sequence starts at 1 */
	c.sequence = 0;
	assert_int_equal(package_current_write(f->s, f->old_key, &c, &e), -EINVAL);
	err_clear(&e);
	sign_trust_free(&t);
	sign_trust_free(&lax);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_generate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_key_permissions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_untrusted_and_malformed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rotation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_signed_objects, setup, teardown),
		cmocka_unit_test_setup_teardown(test_current, setup, teardown),
	};
	log_max_level = LOG_ERROR;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
