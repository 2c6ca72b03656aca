/*
 * cli/cmd-key.c - upaas key generate|show|sign|verify: the ed25519 keys that
 * sign packages (package/sign.c does the work; this file reads the parsed
 * options and prints).
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include <json-c/json.h>

#include "package/package.h"
#include "cli/cli.h"

#define SIGNED_FILE_MAX ((size_t)64 << 20)

struct kargs {
	const char *out, *priv, *pub, *key, *output, *sig;
	bool json;
	int n;
	char **v;
};

/* ------------------------------------------------------------ generate */

static int key_generate(struct cli *c, const struct kargs *a)
{
	_cleanup_err_ struct err e = ERR_INIT;
	_cleanup_free_ char *priv = NULL, *pub = NULL;
	char id[SIGN_KEYID_LEN + 1] = "";
	int r;

	if (a->out && (a->priv || a->pub))
		return cli_usage("key generate: --out DIR or --private/--public, not both");
	if (!a->priv != !a->pub)
		return cli_usage("key generate: --private and --public go together");

	if (a->priv) {
		r = sign_key_generate(a->priv, a->pub, id, &e);
		priv = xstrdup(a->priv);
		pub = xstrdup(a->pub);
	} else {
		/* named after the key id, so that a new key never takes the
		 * place of the one it rotates out */
		const char *dir = a->out ? a->out : ".";
		if (fs_mkdir_p(dir, 0700) < 0) {
			err_set_errno(&e, -errno, "cannot create '%s'", dir);
			return cli_fail(&e, NULL);
		}
		_cleanup_free_ char *tp = path_join(dir, ".upaas-new.key");
		_cleanup_free_ char *tq = path_join(dir, ".upaas-new.pub");
		r = sign_key_generate(tp, tq, id, &e);
		if (r >= 0) {
			_cleanup_free_ char *np = xasprintf("upaas-%s.key", id);
			_cleanup_free_ char *nq = xasprintf("upaas-%s.pub", id);
			priv = path_join(dir, np);
			pub = path_join(dir, nq);
			/* link(2) never replaces an existing name */
			if (link(tp, priv) < 0 || link(tq, pub) < 0) {
				r = err_set_errno(&e, -errno, "cannot name the key '%s'", priv);
				unlink(priv);
			}
			unlink(tp);
			unlink(tq);
			fs_fsync_parent(priv);
		}
	}
	if (r < 0)
		return cli_fail(&e, NULL);
	if (a->json) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "id", json_object_new_string(id));
		json_object_object_add(o, "private", json_object_new_string(priv));
		json_object_object_add(o, "public", json_object_new_string(pub));
		cli_json_print(o);
	} else if (!c->quiet) {
		printf("key id       %s\n", id);
		printf("private key  %s (builders: signing.key)\n", priv);
		printf("public key   %s (every host: signing.trusted)\n", pub);
	}
	return 0;
}

/* ---------------------------------------------------------------- show */

static int show_one(json_object *list, const char *path, const char *role, struct err *e)
{
	struct sign_key *k = NULL;
	_cleanup_buf_ struct buf pem = BUF_INIT;
	int r = sign_key_load(path, &k, e);

	if (r >= 0)
		r = sign_key_public_pem(k, &pem, e);
	if (r < 0) {
		sign_key_free(k);
		return r;
	}
	if (list) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "id", json_object_new_string(sign_key_id(k)));
		json_object_object_add(o, "file", json_object_new_string(path));
		json_object_object_add(o, "kind", json_object_new_string(
			sign_key_is_private(k) ? "private" : "public"));
		json_object_object_add(o, "role", role ? json_object_new_string(role) : NULL);
		json_object_object_add(o, "public_key", json_object_new_string(pem.p));
		json_object_array_add(list, o);
	} else {
		printf("key id  %s\n", sign_key_id(k));
		printf("file    %s (%s key%s%s)\n", path, sign_key_is_private(k) ? "private" : "public",
		       role ? ", " : "", role ? role : "");
		fputs(pem.p, stdout);
	}
	sign_key_free(k);
	return 0;
}

static int key_show(struct cli *c, const struct kargs *a)
{
	_cleanup_err_ struct err e = ERR_INIT;
	json_object *list = a->json ? json_object_new_array() : NULL;
	int rc = 0;

	if (a->n == 1) {
		if (show_one(list, a->v[0], NULL, &e) < 0)
			rc = cli_fail(&e, NULL);
	} else if (cli_config(c) < 0) {
		rc = 1;
	} else {
		const struct config *cfg = &c->cfg;
		/* what sign_key_config()/sign_trust_config() use: the configured
		 * keys, else this host's own pair under <state>/keys */
		_cleanup_free_ char *dpriv = xasprintf("%s/keys/" SIGN_DEFAULT_PRIVATE, cfg->paths.state);
		_cleanup_free_ char *dpub = xasprintf("%s/keys/" SIGN_DEFAULT_PUBLIC, cfg->paths.state);
		const char *priv = cfg->signing.key ? cfg->signing.key
			: access(dpriv, F_OK) == 0 ? dpriv : NULL;
		struct strv trusted = STRV_INIT;
		if (cfg->signing.trusted.n)
			strv_copy(&trusted, &cfg->signing.trusted);
		else if (access(dpub, F_OK) == 0)
			strv_push(&trusted, dpub);
		if (!priv && !trusted.n) {
			json_object_put(list);
			err_set(&e, -ENOENT, "no signing.key and no signing.trusted keys configured, and "
				"no key of this host in '%s/keys' yet: name a key FILE", cfg->paths.state);
			return cli_fail(&e, NULL);
		}
		if (priv && show_one(list, priv, "signing.key", &e) < 0)
			rc = cli_fail(&e, NULL);
		for (size_t i = 0; i < trusted.n; i++) {
			err_clear(&e);
			if (!list && (i || priv))
				putchar('\n');
			if (show_one(list, trusted.v[i], "signing.trusted", &e) < 0)
				rc = cli_fail(&e, NULL);
		}
		strv_free(&trusted);
	}
	if (list)
		cli_json_print(list);
	return rc;
}

/* ------------------------------------------------------- sign, verify */

static int read_signed_file(const char *path, struct buf *out, struct err *e)
{
	int r = buf_read_file(out, path, SIGNED_FILE_MAX);
	if (r == -E2BIG)
		return err_set(e, r, "'%s' is larger than %zu MiB", path, SIGNED_FILE_MAX >> 20);
	if (r < 0)
		return err_set_errno(e, r, "cannot read '%s'", path);
	return 0;
}

static int key_sign(struct cli *c, const struct kargs *a)
{
	_cleanup_err_ struct err e = ERR_INIT;
	_cleanup_buf_ struct buf data = BUF_INIT, sig = BUF_INIT;
	struct sign_key *k = NULL;

	const char *keyfile = a->key;
	if (!keyfile) {
		if (cli_config(c) < 0)
			return 1;
		keyfile = c->cfg.signing.key;
		if (!keyfile) {
			err_set(&e, -ENOENT, "no signing.key configured: name one with --key FILE");
			return cli_fail(&e, NULL);
		}
	}
	_cleanup_free_ char *out = a->output ? xstrdup(a->output) : xasprintf("%s.sig", a->v[0]);
	int r = sign_key_load_private(keyfile, &k, &e);
	if (r >= 0)
		r = read_signed_file(a->v[0], &data, &e);
	if (r >= 0)
		r = sign_bytes(k, data.p, data.len, &sig, &e);
	if (r >= 0 && (r = fs_write_atomic(out, sig.p, sig.len, 0644)) < 0)
		err_set_errno(&e, r, "cannot write '%s'", out);
	if (r >= 0 && !c->quiet)
		printf("%s: signed by key %s\n", out, sign_key_id(k));
	sign_key_free(k);
	return r < 0 ? cli_fail(&e, NULL) : 0;
}

static int key_verify(struct cli *c, const struct kargs *a)
{
	_cleanup_err_ struct err e = ERR_INIT;
	_cleanup_buf_ struct buf data = BUF_INIT, sig = BUF_INIT;
	struct sign_trust t = SIGN_TRUST_INIT;
	char id[SIGN_KEYID_LEN + 1] = "";

	if (cli_config(c) < 0)
		return 1;
	_cleanup_free_ char *sigpath = a->sig ? xstrdup(a->sig) : xasprintf("%s.sig", a->v[0]);
	int r = sign_trust_load(&t, &c->cfg.signing.trusted, false, &e);
	if (r >= 0)
		r = read_signed_file(a->v[0], &data, &e);
	if (r >= 0) {
		r = buf_read_file(&sig, sigpath, 4096);
		if (r < 0)
			err_set_errno(&e, r, "cannot read signature '%s'", sigpath);
	}
	if (r >= 0)
		r = sign_verify(&t, a->v[0], data.p, data.len, sig.p, sig.len, id, &e);
	sign_trust_free(&t);
	if (r < 0)
		return cli_fail(&e, NULL);
	if (!c->quiet)
		printf("%s: good signature by trusted key %s\n", a->v[0], id);
	return 0;
}

/* ------------------------------------------------------------- tables */

enum { O_OUT = CLI_LONG, O_PRIVATE, O_PUBLIC, O_KEY, O_OUTPUT, O_SIG };

/* The options as the actions above read them. */
static struct kargs kargs_of(const struct cli_args *a)
{
	return (struct kargs){
		.out = cli_arg(a, O_OUT), .priv = cli_arg(a, O_PRIVATE),
		.pub = cli_arg(a, O_PUBLIC), .key = cli_arg(a, O_KEY),
		.output = cli_arg(a, O_OUTPUT), .sig = cli_arg(a, O_SIG),
		.json = cli_flag(a, 'j'), .n = a->argc, .v = a->argv,
	};
}

static int generate_run(struct cli *c, const struct cli_args *a)
{
	struct kargs k = kargs_of(a);
	return key_generate(c, &k);
}

static int show_run(struct cli *c, const struct cli_args *a)
{
	struct kargs k = kargs_of(a);
	return key_show(c, &k);
}

static int sign_run(struct cli *c, const struct cli_args *a)
{
	struct kargs k = kargs_of(a);
	return key_sign(c, &k);
}

static int verify_run(struct cli *c, const struct cli_args *a)
{
	struct kargs k = kargs_of(a);
	return key_verify(c, &k);
}

static const struct cli_opt json_opt[] = {
	{ "json", 'j', NULL, "machine-readable output", NULL },
	{ NULL },
};

static const struct cli_cmd key_generate_sub = {
	.name = "generate",
	.summary = "make an ed25519 key pair",
	.usage = "[--out DIR | --private FILE --public FILE] [--json]",
	.help = "Makes an ed25519 key pair: DIR/upaas-KEYID.key (mode 0600) and\n"
		"DIR/upaas-KEYID.pub (default DIR: the current directory). Never\n"
		"overwrites a file. The private key goes in signing.key of the builders,\n"
		"the public key in signing.trusted of every host.",
	.opts = (const struct cli_opt[]){
		{ "out", O_OUT, "DIR", "where the pair is written", cli_values_dir },
		{ "private", O_PRIVATE, "FILE", "the private key file to write", cli_values_file },
		{ "public", O_PUBLIC, "FILE", "the public key file to write", cli_values_file },
		{ "json", 'j', NULL, "machine-readable output", NULL },
		{ NULL },
	},
	.run = generate_run,
};

static const struct cli_cmd key_show_sub = {
	.name = "show",
	.summary = "print a public key and its id",
	.usage = "[--json] [FILE]",
	.help = "Prints the key id and the public key (PEM) of FILE, a private or a public\n"
		"key; without FILE, those of signing.key and every signing.trusted key.",
	.opts = json_opt,
	.max_args = 1,
	.values = { cli_values_file },
	.run = show_run,
};

static const struct cli_cmd key_sign_sub = {
	.name = "sign",
	.summary = "sign a file (FILE.sig)",
	.usage = "[--key FILE] [--output SIG] FILE",
	.help = "Writes FILE.sig (or SIG): a detached signature of FILE by signing.key\n"
		"(or --key), in the format of upaas-package(5).",
	.opts = (const struct cli_opt[]){
		{ "key", O_KEY, "FILE", "the private key (default signing.key)", cli_values_file },
		{ "output", O_OUTPUT, "SIG", "where the signature goes (default FILE.sig)",
		  cli_values_file },
		{ NULL },
	},
	.min_args = 1,
	.max_args = 1,
	.values = { cli_values_file },
	.run = sign_run,
};

static const struct cli_cmd key_verify_sub = {
	.name = "verify",
	.summary = "check a file's signature against the trusted keys",
	.usage = "[--sig SIG] FILE",
	.help = "Checks FILE.sig (or SIG) against the signing.trusted keys; exits 1 with\n"
		"the reason otherwise.",
	.opts = (const struct cli_opt[]){
		{ "sig", O_SIG, "SIG", "the signature (default FILE.sig)", cli_values_file },
		{ NULL },
	},
	.min_args = 1,
	.max_args = 1,
	.values = { cli_values_file },
	.run = verify_run,
};

const struct cli_cmd cmd_key = {
	.name = "key",
	.summary = "generate or show signing keys; sign or verify a file",
	.usage = "COMMAND [OPTIONS] [ARGS...]",
	.help = "The ed25519 keys that sign packages, image manifests and current pointers.",
	.footer = "See upaas-package(5) for the formats, upaas.cfg(5) for the signing group.",
	.subs = (const struct cli_cmd *const[]){ &key_generate_sub, &key_show_sub, &key_sign_sub,
						 &key_verify_sub, NULL },
};
