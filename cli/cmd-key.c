/*
 * cli/cmd-key.c - upaas key generate|show|sign|verify: the ed25519 keys that
 * sign packages (package/sign.c does the work; this file parses argv and
 * prints).
 */
#include <errno.h>
#include <getopt.h>
#include <string.h>
#include <sys/stat.h>

#include <json-c/json.h>

#include "package/package.h"
#include "cli/cli.h"

#define SIGNED_FILE_MAX ((size_t)64 << 20)

static void usage(FILE *out)
{
	fputs("usage: upaas key generate [--out DIR | --private FILE --public FILE] [--json]\n"
	      "       upaas key show [--json] [FILE]\n"
	      "       upaas key sign [--key FILE] [--output SIG] FILE\n"
	      "       upaas key verify [--sig SIG] FILE\n"
	      "\n"
	      "generate  makes an ed25519 key pair: DIR/upaas-KEYID.key (mode 0600) and\n"
	      "          DIR/upaas-KEYID.pub (default DIR: the current directory); never\n"
	      "          overwrites a file\n"
	      "show      prints the public key (PEM) and key id of FILE (a private or a\n"
	      "          public key); without FILE, signing.key and every signing.trusted key\n"
	      "sign      writes FILE.sig: a signature of FILE by signing.key (or --key)\n"
	      "verify    checks FILE.sig (or --sig) against the signing.trusted keys\n"
	      "\n"
	      "Options:\n"
	      "  --out DIR         where generate writes the pair\n"
	      "  --private FILE    the private key file generate writes\n"
	      "  --public FILE     the public key file generate writes\n"
	      "  --key FILE        the private key sign uses (default signing.key)\n"
	      "  --output SIG      where sign writes the signature (default FILE.sig)\n"
	      "  --sig SIG         the signature verify reads (default FILE.sig)\n"
	      "  --json            JSON output (generate, show)\n"
	      "  -h, --help        this help\n"
	      "\n"
	      "See upaas-package(5) for the formats, upaas.cfg(5) for the signing group.\n",
	      out);
}

struct kargs {
	const char *out, *priv, *pub, *key, *output, *sig;
	bool json;
	int n;
	char **v;
};

static int parse(int argc, char **argv, struct kargs *a)
{
	enum { O_OUT = 256, O_PRIVATE, O_PUBLIC, O_KEY, O_OUTPUT, O_SIG, O_JSON };
	static const struct option opts[] = {
		{ "out", required_argument, NULL, O_OUT },
		{ "private", required_argument, NULL, O_PRIVATE },
		{ "public", required_argument, NULL, O_PUBLIC },
		{ "key", required_argument, NULL, O_KEY },
		{ "output", required_argument, NULL, O_OUTPUT },
		{ "sig", required_argument, NULL, O_SIG },
		{ "json", no_argument, NULL, O_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int o;
	optind = 0;
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case O_OUT: a->out = optarg; break;
		case O_PRIVATE: a->priv = optarg; break;
		case O_PUBLIC: a->pub = optarg; break;
		case O_KEY: a->key = optarg; break;
		case O_OUTPUT: a->output = optarg; break;
		case O_SIG: a->sig = optarg; break;
		case O_JSON: a->json = true; break;
		case 'h': usage(stdout); return -1;
		default: usage(stderr); return 2;
		}
	}
	a->n = argc - optind;
	a->v = argv + optind;
	return 0;
}

static void print_json(json_object *o)
{
	puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
					    JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
}

/* ------------------------------------------------------------ generate */

static int key_generate(struct cli *c, const struct kargs *a)
{
	_cleanup_err_ struct err e = ERR_INIT;
	_cleanup_free_ char *priv = NULL, *pub = NULL;
	char id[SIGN_KEYID_LEN + 1] = "";
	int r;

	if (a->n || a->key || a->output || a->sig)
		return cli_usage("key generate: takes only --out DIR, or --private FILE "
				 "--public FILE (see 'upaas key --help')");
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
		print_json(o);
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

	if (a->n > 1 || a->out || a->priv || a->pub || a->key || a->output || a->sig) {
		json_object_put(list);
		return cli_usage("key show: takes [--json] [FILE] (see 'upaas key --help')");
	}
	if (a->n == 1) {
		if (show_one(list, a->v[0], NULL, &e) < 0)
			rc = cli_fail(&e, NULL);
	} else if (cli_config(c) < 0) {
		rc = 1;
	} else {
		const struct config *cfg = &c->cfg;
		if (!cfg->signing.key && !cfg->signing.trusted.n) {
			json_object_put(list);
			err_set(&e, -ENOENT, "no signing.key and no signing.trusted keys configured: "
				"name a key FILE");
			return cli_fail(&e, NULL);
		}
		if (cfg->signing.key && show_one(list, cfg->signing.key, "signing.key", &e) < 0)
			rc = cli_fail(&e, NULL);
		for (size_t i = 0; i < cfg->signing.trusted.n; i++) {
			err_clear(&e);
			if (!list && (i || cfg->signing.key))
				putchar('\n');
			if (show_one(list, cfg->signing.trusted.v[i], "signing.trusted", &e) < 0)
				rc = cli_fail(&e, NULL);
		}
	}
	if (list)
		print_json(list);
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

	if (a->n != 1 || a->out || a->priv || a->pub || a->sig)
		return cli_usage("key sign: takes [--key FILE] [--output SIG] FILE");
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

	if (a->n != 1 || a->out || a->priv || a->pub || a->key || a->output)
		return cli_usage("key verify: takes [--sig SIG] FILE");
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

int cmd_key(struct cli *c, int argc, char **argv)
{
	if (argc < 2 || cli_is_help(argv[1])) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	const char *sub = argv[1];
	struct kargs a = { 0 };
	int r = parse(argc - 1, argv + 1, &a);
	if (r)
		return r < 0 ? 0 : r;
	if (!strcmp(sub, "generate"))
		return key_generate(c, &a);
	if (!strcmp(sub, "show"))
		return key_show(c, &a);
	if (!strcmp(sub, "sign"))
		return key_sign(c, &a);
	if (!strcmp(sub, "verify"))
		return key_verify(c, &a);
	usage(stderr);
	return cli_usage("key: unknown command '%s'", sub);
}
