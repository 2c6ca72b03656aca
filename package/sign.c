/*
 * package/sign.c - ed25519 keys and signatures (OpenSSL EVP): key pairs as
 * PEM files, the trusted set, detached signatures of stored objects
 * ("<key>.sig") and the signed current pointer. The formats are those of
 * upaas-package(5); the API is documented in package.h.
 *
 * A signature covers the exact bytes of the object, nothing else, so that
 * `openssl pkeyutl -verify -rawin` checks it with the public key alone. What
 * binds an object to its place in storage is its own content: every signed
 * document names what it is (app, id, name), and the readers compare that
 * with the key they asked for.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <json-c/json.h>

#include "package/package.h"

#define KEY_FILE_MAX 16384          /* a PEM key is ~120 bytes */
#define SIG_TEXT_MAX 4096           /* a signature line is 114 bytes */
#define SIG_LINES_MAX 8
#define SIG_RAW_LEN 64              /* ed25519 */
#define SIG_B64_LEN 88              /* base64 of 64 bytes, with "==" */
#define CURRENT_MAX 4096

struct sign_key {
	EVP_PKEY *pkey;
	bool private;
	char id[SIGN_KEYID_LEN + 1];
	char *path;                     /* where it was loaded from, or NULL */
};

static void evp_pkey_freep(EVP_PKEY **p)
{
	EVP_PKEY_free(*p);
}
#define _cleanup_pkey_ _cleanup_(evp_pkey_freep)

static void bio_freep(BIO **b)
{
	BIO_free(*b);
}
#define _cleanup_bio_ _cleanup_(bio_freep)

static void md_ctx_freep(EVP_MD_CTX **c)
{
	EVP_MD_CTX_free(*c);
}
#define _cleanup_md_ctx_ _cleanup_(md_ctx_freep)

/* The text of OpenSSL's last error (and clears its queue), for messages. */
static const char *ssl_error(void)
{
	static __thread char text[256];
	unsigned long code = ERR_get_error();
	ERR_clear_error();
	if (!code)
		return "unknown OpenSSL error";
	ERR_error_string_n(code, text, sizeof(text));
	return text;
}

/* Never prompts for a passphrase: upaas keys are not encrypted, and a
 * prompt on a build host would hang a worker. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf; (void)size; (void)rwflag; (void)u;
	return -1;
}

/* ---------------------------------------------------------------- keys */

/* The key id: the first 16 hex digits of sha256 over the raw 32-byte
 * public key. */
static int key_id(EVP_PKEY *pkey, char id[SIGN_KEYID_LEN + 1])
{
	unsigned char raw[32];
	size_t n = sizeof(raw);
	char hex[65];

	if (EVP_PKEY_get_raw_public_key(pkey, raw, &n) != 1 || n != sizeof(raw))
		return -EINVAL;
	sha256_hex(raw, n, hex);
	memcpy(id, hex, SIGN_KEYID_LEN);
	id[SIGN_KEYID_LEN] = '\0';
	return 0;
}

static struct sign_key *key_new(EVP_PKEY *pkey, bool private, const char *path)
{
	struct sign_key *k = xcalloc(1, sizeof(*k));
	k->pkey = pkey;
	k->private = private;
	k->path = path ? xstrdup(path) : NULL;
	if (key_id(pkey, k->id) < 0) {
		k->pkey = NULL;
		free(k->path);
		free(k);
		return NULL;
	}
	return k;
}

void sign_key_free(struct sign_key *k)
{
	if (!k)
		return;
	EVP_PKEY_free(k->pkey);   /* OpenSSL wipes ed25519 private keys */
	free(k->path);
	free(k);
}

const char *sign_key_id(const struct sign_key *k)
{
	return k->id;
}

bool sign_key_is_private(const struct sign_key *k)
{
	return k->private;
}

const char *sign_key_path(const struct sign_key *k)
{
	return k->path;
}

int sign_key_public_pem(const struct sign_key *k, struct buf *out, struct err *e)
{
	_cleanup_bio_ BIO *bio = BIO_new(BIO_s_mem());
	char *p;

	if (!bio || PEM_write_bio_PUBKEY(bio, k->pkey) != 1)
		return err_set(e, -EIO, "cannot write the public key: %s", ssl_error());
	long n = BIO_get_mem_data(bio, &p);
	if (n <= 0)
		return err_set(e, -EIO, "cannot write the public key");
	return buf_add(out, p, (size_t)n);
}

/* Writes data to a new file path (O_EXCL: never over an existing file or
 * through a symlink), created with mode from the start and fsynced; removes
 * it again on failure. */
static int write_new_file(const char *path, const void *data, size_t n, mode_t mode,
			  struct err *e)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0) {
		if (errno == EEXIST)
			return err_set(e, -EEXIST, "'%s' already exists (not overwriting a key)",
				       path);
		return err_set_errno(e, -errno, "cannot create '%s'", path);
	}
	/* the umask may have taken bits away; it can never have added any */
	int r = fchmod(fd, mode) < 0 ? -errno : 0;
	if (r == 0)
		r = fs_write_all(fd, data, n);
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r < 0) {
		unlink(path);
		return err_set_errno(e, r, "cannot write '%s'", path);
	}
	fs_fsync_parent(path);
	return 0;
}

int sign_key_generate(const char *priv_path, const char *pub_path,
		      char ret_id[SIGN_KEYID_LEN + 1], struct err *e)
{
	_cleanup_pkey_ EVP_PKEY *pkey = NULL;
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
	int r;

	if (!ctx || EVP_PKEY_keygen_init(ctx) != 1 || EVP_PKEY_keygen(ctx, &pkey) != 1) {
		EVP_PKEY_CTX_free(ctx);
		return err_set(e, -EIO, "cannot generate an ed25519 key: %s", ssl_error());
	}
	EVP_PKEY_CTX_free(ctx);

	/* the private key goes through secure memory, wiped when freed */
	_cleanup_bio_ BIO *priv = BIO_new(BIO_s_secmem());
	_cleanup_bio_ BIO *pub = BIO_new(BIO_s_mem());
	char *pp, *qp;
	if (!priv || !pub || PEM_write_bio_PrivateKey(priv, pkey, NULL, NULL, 0, NULL, NULL) != 1 ||
	    PEM_write_bio_PUBKEY(pub, pkey) != 1)
		return err_set(e, -EIO, "cannot write the key pair: %s", ssl_error());
	long pn = BIO_get_mem_data(priv, &pp);
	long qn = BIO_get_mem_data(pub, &qp);
	if (pn <= 0 || qn <= 0)
		return err_set(e, -EIO, "cannot write the key pair");

	/* both names must be free before anything is written */
	struct stat st;
	if (lstat(priv_path, &st) == 0)
		return err_set(e, -EEXIST, "'%s' already exists (not overwriting a key)", priv_path);
	if (lstat(pub_path, &st) == 0)
		return err_set(e, -EEXIST, "'%s' already exists (not overwriting a key)", pub_path);
	r = write_new_file(priv_path, pp, (size_t)pn, 0600, e);
	if (r < 0)
		return r;
	r = write_new_file(pub_path, qp, (size_t)qn, 0644, e);
	if (r < 0) {
		unlink(priv_path);
		return r;
	}
	if (ret_id && key_id(pkey, ret_id) < 0)
		ret_id[0] = '\0';
	return 0;
}

/* Reads a key file without following a symlink: a regular file of at most
 * KEY_FILE_MAX bytes; ret_st is the fstat of what was read. */
static int key_file_read(const char *path, struct buf *out, struct stat *ret_st, struct err *e)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);

	if (fd < 0) {
		if (errno == ELOOP)
			return err_set(e, -ELOOP, "key file '%s' is a symbolic link", path);
		return err_set_errno(e, -errno, "cannot open key file '%s'", path);
	}
	if (fstat(fd, ret_st) < 0)
		return err_set_errno(e, -errno, "cannot stat key file '%s'", path);
	if (!S_ISREG(ret_st->st_mode))
		return err_set(e, -EINVAL, "key file '%s' is not a regular file", path);
	buf_init(out, KEY_FILE_MAX);
	int r = buf_read_fd(out, fd);
	if (r == -E2BIG)
		return err_set(e, r, "key file '%s' is larger than %d bytes", path, KEY_FILE_MAX);
	if (r < 0)
		return err_set_errno(e, r, "cannot read key file '%s'", path);
	return 0;
}

/*
 * A private key must not be readable or writable by group or others and
 * must belong to the caller (or root), as ssh requires of its keys. A
 * public key must not be writable by group or others: whoever can write it
 * decides what is trusted.
 */
static int key_mode_check(const char *path, const struct stat *st, bool private, struct err *e)
{
	unsigned mode = (unsigned)(st->st_mode & 07777);

	if (private && (st->st_mode & 077))
		return err_set(e, -EACCES, "private key '%s' is accessible by group or others "
			       "(mode %04o): chmod 600 it", path, mode);
	if (private && st->st_uid != geteuid() && st->st_uid != 0)
		return err_set(e, -EACCES, "private key '%s' belongs to uid %u, not to uid %u "
			       "or root", path, (unsigned)st->st_uid, (unsigned)geteuid());
	if (!private && (st->st_mode & 022))
		return err_set(e, -EACCES, "public key '%s' is writable by group or others "
			       "(mode %04o)", path, mode);
	return 0;
}

static void buf_wipe(struct buf *b)
{
	if (b->cap)
		explicit_bzero(b->p, b->cap);
	buf_free(b);
}

static bool pem_is_private(const struct buf *text)
{
	return strstr(text->p, "PRIVATE KEY-----") != NULL;
}

/* Parses PEM text as a private key (PKCS#8) or a public key
 * (SubjectPublicKeyInfo), whichever it holds. */
static int key_parse(const struct buf *text, const char *path, struct sign_key **ret,
		     struct err *e)
{
	_cleanup_pkey_ EVP_PKEY *pkey = NULL;
	_cleanup_bio_ BIO *bio = BIO_new_mem_buf(text->p, (int)text->len);
	bool private = pem_is_private(text);

	if (!bio)
		return err_set(e, -ENOMEM, "cannot read '%s'", path);
	if (private)
		pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
	else
		pkey = PEM_read_bio_PUBKEY(bio, NULL, no_passphrase, NULL);
	if (!pkey)
		return err_set(e, -EINVAL, "'%s' is not %s: %s", path,
			       private ? "an unencrypted PEM private key" : "a PEM public key",
			       ssl_error());
	if (EVP_PKEY_id(pkey) != EVP_PKEY_ED25519)
		return err_set(e, -EINVAL, "'%s' is not an ed25519 key", path);
	struct sign_key *k = key_new(pkey, private, path);
	if (!k)
		return err_set(e, -EINVAL, "'%s': cannot read the public half of the key", path);
	pkey = NULL;   /* owned by k */
	*ret = k;
	return 0;
}

/* Loads path; want: 1 a private key, 0 a public key, -1 either. */
static int key_load(const char *path, int want, struct sign_key **ret, struct err *e)
{
	struct buf text = BUF_INIT;
	struct stat st;
	int r = key_file_read(path, &text, &st, e);

	if (r >= 0) {
		bool private = pem_is_private(&text);
		if (want == 1 && !private)
			r = err_set(e, -EINVAL, "'%s' is not a PEM private key", path);
		else if (want == 0 && private)
			r = err_set(e, -EINVAL, "'%s' holds a private key: trust its public key "
				    "('upaas key show' prints it)", path);
		else
			r = key_mode_check(path, &st, private, e);
		if (r >= 0)
			r = key_parse(&text, path, ret, e);
	}
	buf_wipe(&text);
	return r;
}

int sign_key_load_private(const char *path, struct sign_key **ret, struct err *e)
{
	return key_load(path, 1, ret, e);
}

int sign_key_load_public(const char *path, struct sign_key **ret, struct err *e)
{
	return key_load(path, 0, ret, e);
}

int sign_key_load(const char *path, struct sign_key **ret, struct err *e)
{
	return key_load(path, -1, ret, e);
}

/* ----------------------------------------------------------- trust */

void sign_trust_add(struct sign_trust *t, struct sign_key *k)
{
	t->keys = xrealloc(t->keys, (t->n + 1) * sizeof(*t->keys));
	t->keys[t->n++] = k;
}

int sign_trust_load(struct sign_trust *t, const struct strv *files, bool allow_unsigned,
		    struct err *e)
{
	*t = (struct sign_trust){ .allow_unsigned = allow_unsigned };
	for (size_t i = 0; i < files->n; i++) {
		struct sign_key *k;
		int r = sign_key_load_public(files->v[i], &k, e);
		if (r < 0) {
			sign_trust_free(t);
			return err_prefix(e, "signing.trusted");
		}
		sign_trust_add(t, k);
	}
	return 0;
}

/* <paths.state>/keys/NAME: the key pair a builder makes itself when
 * signing.key is not set, and the public key trusted when signing.trusted
 * is not set (caller frees). */
static char *default_key_path(const struct config *c, const char *name)
{
	return xasprintf("%s/keys/%s", c->paths.state, name);
}

int sign_trust_config(struct sign_trust *t, const struct config *c, struct err *e)
{
	if (c->signing.trusted.n)
		return sign_trust_load(t, &c->signing.trusted, c->signing.allow_unsigned, e);
	/* nothing configured: this host's own key, when it has made one */
	_cleanup_strv_ struct strv files = STRV_INIT;
	_cleanup_free_ char *pub = default_key_path(c, SIGN_DEFAULT_PUBLIC);
	if (access(pub, F_OK) == 0)
		strv_push(&files, pub);
	return sign_trust_load(t, &files, c->signing.allow_unsigned, e);
}

int sign_key_config(const struct config *c, struct sign_key **ret, struct err *e)
{
	*ret = NULL;
	_cleanup_free_ char *def = c->signing.key ? NULL : default_key_path(c, SIGN_DEFAULT_PRIVATE);
	if (def && access(def, F_OK) < 0)
		return 0;
	int r = sign_key_load_private(def ? def : c->signing.key, ret, e);
	return r < 0 ? err_prefix(e, "signing.key") : 1;
}

int sign_key_config_make(const struct config *c, struct sign_key **ret, struct err *e)
{
	int r = sign_key_config(c, ret, e);
	if (r != 0 || c->signing.key || c->signing.allow_unsigned)
		return r;
	_cleanup_free_ char *dir = xasprintf("%s/keys", c->paths.state);
	_cleanup_free_ char *priv = default_key_path(c, SIGN_DEFAULT_PRIVATE);
	_cleanup_free_ char *pub = default_key_path(c, SIGN_DEFAULT_PUBLIC);
	char id[SIGN_KEYID_LEN + 1];
	r = fs_mkdir_p(dir, 0700);
	if (r < 0)
		return err_set_errno(e, r, "cannot create '%s'", dir);
	r = sign_key_generate(priv, pub, id, e);
	if (r == -EEXIST) {
		/* another builder of this host made it meanwhile */
		err_clear(e);
	} else if (r < 0) {
		return err_prefix(e, "making this host's signing key");
	} else {
		log_info("made this host's signing key %s in '%s': deploy hosts run its packages "
			 "once they trust '%s' (signing.trusted, by default that same path)", id, priv,
			 pub);
	}
	return sign_key_config(c, ret, e);
}

void sign_trust_free(struct sign_trust *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n; i++)
		sign_key_free(t->keys[i]);
	free(t->keys);
	t->keys = NULL;
	t->n = 0;
}

/* ------------------------------------------------------- signatures */

int sign_bytes(const struct sign_key *k, const void *p, size_t n, struct buf *out,
	       struct err *e)
{
	_cleanup_md_ctx_ EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char sig[SIG_RAW_LEN];
	size_t siglen = sizeof(sig);
	unsigned char b64[SIG_B64_LEN + 1];

	if (!k->private)
		return err_set(e, -EINVAL, "key %s is a public key: cannot sign with it", k->id);
	/* ed25519 signs the message itself: no digest, one shot */
	if (!ctx || EVP_DigestSignInit(ctx, NULL, NULL, NULL, k->pkey) != 1 ||
	    EVP_DigestSign(ctx, sig, &siglen, p, n) != 1 || siglen != SIG_RAW_LEN)
		return err_set(e, -EIO, "cannot sign with key %s: %s", k->id, ssl_error());
	if (EVP_EncodeBlock(b64, sig, SIG_RAW_LEN) != SIG_B64_LEN)
		return err_set(e, -EIO, "cannot encode the signature");
	return buf_addf(out, "ed25519 %s %s\n", k->id, (const char *)b64);
}

struct sig_line {
	char id[SIGN_KEYID_LEN + 1];
	unsigned char sig[SIG_RAW_LEN];
};

static bool b64_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '+' || c == '/';
}

static bool hex16_ok(const char *s)
{
	for (int i = 0; i < SIGN_KEYID_LEN; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/* Parses one line "ed25519 <16 hex> <88 base64>" (without its newline). */
static bool sig_line_parse(const char *s, size_t n, struct sig_line *ret)
{
	static const char algo[] = "ed25519 ";
	const size_t want = sizeof(algo) - 1 + SIGN_KEYID_LEN + 1 + SIG_B64_LEN;

	if (n != want || strncmp(s, algo, sizeof(algo) - 1))
		return false;
	s += sizeof(algo) - 1;
	if (!hex16_ok(s) || s[SIGN_KEYID_LEN] != ' ')
		return false;
	memcpy(ret->id, s, SIGN_KEYID_LEN);
	ret->id[SIGN_KEYID_LEN] = '\0';
	s += SIGN_KEYID_LEN + 1;
	for (int i = 0; i < SIG_B64_LEN - 2; i++)
		if (!b64_char(s[i]))
			return false;
	if (s[SIG_B64_LEN - 2] != '=' || s[SIG_B64_LEN - 1] != '=')
		return false;
	unsigned char raw[SIG_RAW_LEN + 3];
	/* EVP_DecodeBlock counts the two padding bytes as zeros */
	if (EVP_DecodeBlock(raw, (const unsigned char *)s, SIG_B64_LEN) != SIG_RAW_LEN + 2)
		return false;
	memcpy(ret->sig, raw, SIG_RAW_LEN);
	return true;
}

/*
 * Splits the leading signature lines off text: lines that start with
 * "ed25519 ". Returns how many were parsed into v (at most SIG_LINES_MAX),
 * -EBADMSG when one is malformed; *ret_rest points past them.
 */
static int sig_lines_parse(const char *text, size_t len, struct sig_line *v, size_t *ret_used)
{
	size_t n = 0, off = 0;

	while (off < len && !strncmp(text + off, "ed25519 ", 8)) {
		const char *nl = memchr(text + off, '\n', len - off);
		if (!nl || n == SIG_LINES_MAX)
			return -EBADMSG;
		if (!sig_line_parse(text + off, (size_t)(nl - (text + off)), &v[n]))
			return -EBADMSG;
		n++;
		off = (size_t)(nl - text) + 1;
	}
	*ret_used = off;
	return (int)n;
}

static bool verify_one(const struct sign_key *k, const struct sig_line *l, const void *p,
		       size_t n)
{
	_cleanup_md_ctx_ EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	bool ok = ctx && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, k->pkey) == 1 &&
		  EVP_DigestVerify(ctx, l->sig, SIG_RAW_LEN, p, n) == 1;
	ERR_clear_error();
	return ok;
}

/* Verifies the parsed lines against t: the first line made by a trusted
 * key that checks out wins. */
static int verify_lines(const struct sign_trust *t, const char *what, const struct sig_line *v,
			size_t nl, const void *p, size_t n, char ret_id[SIGN_KEYID_LEN + 1],
			struct err *e)
{
	const char *mismatch = NULL;

	for (size_t i = 0; i < nl; i++) {
		for (size_t j = 0; j < t->n; j++) {
			/* the id only picks the key; the key material decides */
			if (strcmp(t->keys[j]->id, v[i].id))
				continue;
			if (verify_one(t->keys[j], &v[i], p, n)) {
				if (ret_id)
					memcpy(ret_id, v[i].id, SIGN_KEYID_LEN + 1);
				return 0;
			}
			mismatch = v[i].id;
		}
	}
	if (mismatch)
		return err_set(e, -EBADMSG, "'%s' does not match its signature by key %s "
			       "(changed after it was signed)", what, mismatch);
	if (!t->n)
		return err_set(e, -EKEYREJECTED, "'%s' is signed by key %s, but no key is "
			       "trusted (set signing.trusted)", what, v[0].id);
	return err_set(e, -EKEYREJECTED, "'%s' is signed by key %s, which is not trusted "
		       "(signing.trusted)", what, v[0].id);
}

int sign_verify(const struct sign_trust *t, const char *what, const void *p, size_t n,
		const char *sig, size_t sig_len, char ret_id[SIGN_KEYID_LEN + 1], struct err *e)
{
	struct sig_line v[SIG_LINES_MAX];
	size_t used;
	int nl = sig_lines_parse(sig, sig_len, v, &used);

	if (nl < 0 || (size_t)used != sig_len || nl == 0)
		return err_set(e, -EBADMSG, "'%s' has a malformed signature (want lines "
			       "\"ed25519 KEYID BASE64\")", what);
	return verify_lines(t, what, v, (size_t)nl, p, n, ret_id, e);
}

/* ------------------------------------------------- signed objects */

char *sign_sig_key(const char *key)
{
	return xasprintf("%s.sig", key);
}

/* The first lines (at most max) of signature text, whole lines only. */
static size_t sig_head(const struct buf *b, size_t max)
{
	size_t off = 0;

	for (size_t lines = 0; lines < max && off < b->len; lines++) {
		const char *nl = memchr(b->p + off, '\n', b->len - off);
		if (!nl)
			break;
		off = (size_t)(nl - b->p) + 1;
	}
	return off;
}

int signed_put(struct storage *s, const struct sign_key *k, const char *key, const void *p,
	       size_t n, struct err *e)
{
	if (!k)
		return storage_put_buf(s, key, p, n, e);

	_cleanup_buf_ struct buf sig = BUF_INIT;
	_cleanup_buf_ struct buf old = BUF_INIT;
	_cleanup_err_ struct err oe = ERR_INIT;
	_cleanup_free_ char *skey = sign_sig_key(key);
	int r = sign_bytes(k, p, n, &sig, e);
	if (r < 0)
		return r;
	size_t mine = sig.len;
	/* An object replaced in place (an image manifest) is two puts: while
	 * the old object may still be read (or stay, if we die), its old
	 * signature lines must still be there. So the new line goes first
	 * next to the old ones, then the object, then the new line alone;
	 * whatever a crash or a reader meets in between checks out. */
	if (storage_get_buf(s, skey, &old, SIG_TEXT_MAX, &oe) == 0 && old.len)
		buf_add(&sig, old.p, sig_head(&old, SIG_LINES_MAX - 1));
	/* the signature first: the object is the commit marker, and a reader
	 * that finds it must find its signature too */
	r = storage_put_buf(s, skey, sig.p, sig.len, e);
	if (r < 0)
		return r;
	r = storage_put_buf(s, key, p, n, e);
	if (r < 0 || sig.len == mine)
		return r;
	err_clear(&oe);
	if (storage_put_buf(s, skey, sig.p, mine, &oe) < 0)
		log_warn("%s (the old signature lines stay next to the new one)", err_msg(&oe));
	return 0;
}

/* The refusal of an unsigned object, or the warning that lets it through. */
static int unsigned_object(const struct sign_trust *t, const char *what, struct err *e)
{
	if (!t->allow_unsigned)
		return err_set(e, -ENOKEY, "'%s' is not signed: refusing it (signing.allow_unsigned "
			       "accepts unsigned objects)", what);
	log_warn("'%s' is not signed: using it because signing.allow_unsigned is set", what);
	return 1;
}

/* One read of key and its signature, and the check. */
static int signed_get_once(struct storage *s, const struct sign_trust *t, const char *key,
			   struct buf *data, size_t max, char ret_id[SIGN_KEYID_LEN + 1],
			   struct err *e)
{
	_cleanup_buf_ struct buf sig = BUF_INIT;
	_cleanup_free_ char *skey = sign_sig_key(key);
	int r;

	/* the object first: it exists only once its signature does */
	buf_reset(data);
	r = storage_get_buf(s, key, data, max, e);
	if (r < 0)
		return r;
	r = storage_get_buf(s, skey, &sig, SIG_TEXT_MAX, e);
	if (r == -ENOENT) {
		err_clear(e);
		if (ret_id)
			ret_id[0] = '\0';
		return unsigned_object(t, key, e);
	}
	if (r < 0)
		return err_prefix(e, "cannot read the signature of '%s'", key);
	return sign_verify(t, key, data->p, data->len, sig.p, sig.len, ret_id, e);
}

int signed_get(struct storage *s, const struct sign_trust *t, const char *key, struct buf *out,
	       size_t max, char ret_id[SIGN_KEYID_LEN + 1], struct err *e)
{
	_cleanup_buf_ struct buf data = BUF_INIT;
	int r;

	/* An object that is replaced in place (an image manifest) may be read
	 * between the writer's two puts: the new signature over the old bytes.
	 * A mismatch is read again before it is called one. */
	for (int attempt = 0;; attempt++) {
		r = signed_get_once(s, t, key, &data, max, ret_id, e);
		if (r != -EBADMSG || attempt == 2)
			break;
		err_clear(e);
		usleep(250 * 1000);
	}
	if (r < 0)
		return r;
	buf_reset(out);
	if (buf_add(out, data.p, data.len) < 0)
		return err_set(e, -E2BIG, "'%s' is too large", key);
	return r;
}

int signed_delete(struct storage *s, const char *key, struct err *e)
{
	_cleanup_free_ char *skey = sign_sig_key(key);
	/* the object first (the commit marker), then what only it used */
	int r = storage_delete(s, key, e);
	if (r >= 0)
		r = storage_delete(s, skey, e);
	return r;
}

/* --------------------------------------------------------- current */

void package_current_free(struct package_current *c)
{
	if (!c)
		return;
	free(c->app);
	free(c->id);
	free(c->created);
	free(c->builder);
	*c = (struct package_current){ 0 };
}

void package_current_json(const struct package_current *c, struct buf *out)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "format", json_object_new_int(1));
	json_object_object_add(o, "kind", json_object_new_string("current"));
	json_object_object_add(o, "app", json_new_str(c->app));
	json_object_object_add(o, "id", json_new_str(c->id));
	json_object_object_add(o, "sequence", json_object_new_int64((int64_t)c->sequence));
	json_object_object_add(o, "created", json_new_str(c->created));
	json_object_object_add(o, "builder", json_new_str(c->builder));
	json_to_buf(o, out);
	json_object_put(o);
}

/* A package id as the builder makes them (id_new()) and as a revision
 * name: [A-Za-z0-9][A-Za-z0-9_-]*, at most 128. */
static bool id_shape_ok(const char *id)
{
	size_t n = id ? strlen(id) : 0;
	if (!n || n > 128)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = id[i];
		bool alnum = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
		if (!alnum && (i == 0 || (c != '_' && c != '-')))
			return false;
	}
	return true;
}

/* Parses the document part of a current (JSON), checking it names app. */
static int current_doc_parse(const char *key, const char *app, const char *text,
			     struct package_current *ret, struct err *e)
{
	_cleanup_json_ struct json_object *o = NULL;
	int64_t format = 0, seq = -1;

	if (json_parse_object(text, &o, e) < 0)
		return err_prefix(e, "'%s'", key);
	const char *kind = json_get_str(o, "kind");
	const char *a = json_get_str(o, "app");
	const char *id = json_get_str(o, "id");
	const char *created = json_get_str(o, "created");
	const char *builder = json_get_str(o, "builder");
	int64_t t;
	if (!json_get_int(o, "format", &format) || format != 1)
		return err_set(e, -EINVAL, "'%s': unknown format", key);
	if (!kind || strcmp(kind, "current"))
		return err_set(e, -EINVAL, "'%s' is not a current pointer (\"kind\")", key);
	if (!a || strcmp(a, app))
		return err_set(e, -EINVAL, "'%s' names another app ('%s')", key, a ? a : "");
	if (!id_shape_ok(id))
		return err_set(e, -EINVAL, "'%s' holds a bad package id", key);
	if (!json_get_int(o, "sequence", &seq) || seq < 1)
		return err_set(e, -EINVAL, "'%s' lacks a sequence number (an integer >= 1)", key);
	if (created && time_parse_iso8601(created, &t) < 0)
		return err_set(e, -EINVAL, "'%s': \"created\" is not an ISO 8601 UTC time", key);
	ret->app = xstrdup(a);
	ret->id = xstrdup(id);
	ret->sequence = (uint64_t)seq;
	ret->created = created ? xstrdup(created) : NULL;
	ret->builder = builder ? xstrdup(builder) : NULL;
	return 0;
}

int package_current_parse(const struct sign_trust *t, const char *app, const char *text,
			  size_t len, struct package_current *ret, struct err *e)
{
	_cleanup_free_ char *key = storage_key_current(app);
	struct package_current c = { 0 };
	struct sig_line v[SIG_LINES_MAX];
	size_t used = 0;
	int r, signed_r;

	if (memchr(text, '\0', len))
		return err_set(e, -EINVAL, "'%s' holds a NUL byte", key);
	int nl = sig_lines_parse(text, len, v, &used);
	if (nl < 0)
		return err_set(e, -EBADMSG, "'%s' has a malformed signature line", key);
	const char *doc = text + used;
	size_t doc_len = len - used;

	if (nl > 0) {
		r = verify_lines(t, key, v, (size_t)nl, doc, doc_len, c.keyid, e);
		if (r < 0)
			return r;
		signed_r = 0;
	} else {
		signed_r = unsigned_object(t, key, e);
		if (signed_r < 0)
			return signed_r;
	}

	if (doc_len && doc[0] == '{') {
		r = current_doc_parse(key, app, doc, &c, e);
		if (r < 0) {
			package_current_free(&c);
			return r;
		}
	} else if (nl == 0) {
		/* the first edition: "<id>\n", sequence 0 */
		_cleanup_free_ char *id = xstrndup(doc, doc_len);
		size_t n = strlen(id);
		while (n && (id[n - 1] == '\n' || id[n - 1] == ' ' || id[n - 1] == '\r'))
			id[--n] = '\0';
		if (!id_shape_ok(id))
			return err_set(e, -EINVAL, "'%s' holds a bad package id", key);
		c.app = xstrdup(app);
		c.id = TAKE_PTR(id);
	} else {
		return err_set(e, -EINVAL, "'%s': a signed current must be a JSON document", key);
	}
	*ret = c;
	return signed_r;
}

int package_current_read(struct storage *s, const struct sign_trust *t, const char *app,
			 struct package_current *ret, struct err *e)
{
	if (!app_name_ok(app))
		return err_set(e, -EINVAL, "invalid app name '%s'", app);
	_cleanup_free_ char *key = storage_key_current(app);
	_cleanup_buf_ struct buf b = BUF_INIT;
	int r = storage_get_buf(s, key, &b, CURRENT_MAX, e);
	if (r == -E2BIG) {
		err_clear(e);
		return err_set(e, -EBADMSG, "'%s' is larger than %d bytes", key, CURRENT_MAX);
	}
	if (r < 0)
		return r;
	return package_current_parse(t, app, b.p, b.len, ret, e);
}

int package_current_format(const struct sign_key *k, const struct package_current *c,
			   struct buf *out, struct err *e)
{
	_cleanup_buf_ struct buf doc = BUF_INIT;

	package_current_json(c, &doc);
	if (k) {
		int r = sign_bytes(k, doc.p, doc.len, out, e);
		if (r < 0)
			return r;
	}
	return buf_add(out, doc.p, doc.len);
}

int package_current_write(struct storage *s, const struct sign_key *k,
			  const struct package_current *c, struct err *e)
{
	_cleanup_free_ char *key = storage_key_current(c->app);
	_cleanup_buf_ struct buf text = BUF_INIT;

	if (c->sequence < 1)
		return err_set(e, -EINVAL, "'%s': the sequence number starts at 1", key);
	int r = package_current_format(k, c, &text, e);
	if (r < 0)
		return r;
	/* one object, replaced whole: its signature travels inside it */
	return storage_put_buf(s, key, text.p, text.len, e);
}
