/*
 * cli/cmd-package.c - upaas package list|show|verify|get|url|prune
 */
#include <errno.h>
#include <getopt.h>
#include <string.h>

#include <json-c/json.h>

#include "builder/builder.h"
#include "cli/cli.h"
#include "serve/serve.h"

static void usage(FILE *out)
{
	fputs("usage: upaas package COMMAND [OPTIONS] ARGS\n"
	      "\n"
	      "Commands:\n"
	      "  list [--json] APP              the app's packages, oldest first (* = current)\n"
	      "  show [--json] APP ID           a package's manifest (ID may be 'current')\n"
	      "  verify APP ID                  download the blob, check size and sha256\n"
	      "  get APP ID FILE                download, verify, then move into FILE\n"
	      "  url [--expires S] APP ID       a URL to download the blob (default 3600 s)\n"
	      "  prune [--keep N] [APP]         keep the newest N packages (default\n"
	      "                                 apps.keep_packages) and the current one\n"
	      "\n"
	      "Options:\n"
	      "  --json        JSON output (list, show)\n"
	      "  --expires S   lifetime of the URL in seconds (url)\n"
	      "  --keep N      packages to keep per app (prune)\n"
	      "  -h, --help    this help\n",
	      out);
}

struct pargs {
	bool json;
	int64_t expires;
	int64_t keep;
	int n;
	char **v;
};

/* Parses the options of a subcommand; returns 0, or the exit status. */
static int parse(int argc, char **argv, struct pargs *a)
{
	enum { O_JSON = 256, O_EXPIRES, O_KEEP };
	static const struct option opts[] = {
		{ "json", no_argument, NULL, O_JSON },
		{ "expires", required_argument, NULL, O_EXPIRES },
		{ "keep", required_argument, NULL, O_KEEP },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int o;
	a->expires = 3600;
	a->keep = -1;
	optind = 0;   /* full reset; argv[0] is the subcommand */
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case O_JSON: a->json = true; break;
		case O_EXPIRES:
			if (parse_int64(optarg, 1, 7 * 24 * 3600, &a->expires) < 0)
				return cli_usage("package: --expires wants seconds (1..604800), not '%s'",
						 optarg);
			break;
		case O_KEEP:
			if (parse_int64(optarg, 1, 100000, &a->keep) < 0)
				return cli_usage("package: --keep wants a number >= 1, not '%s'", optarg);
			break;
		case 'h': usage(stdout); return -1;
		default: usage(stderr); return 2;
		}
	}
	a->n = argc - optind;
	a->v = argv + optind;
	return 0;
}

/* Resolves "current" to the current id. */
static int resolve_id(struct storage *s, const char *app, const char *id, struct buf *out,
		      struct err *e)
{
	if (strcmp(id, "current")) {
		buf_reset(out);
		return buf_adds(out, id);
	}
	int r = package_current(s, app, out, e);
	if (r == -ENOENT) {
		err_clear(e);
		return err_set(e, r, "app '%s' has no current package", app);
	}
	return r;
}

static void print_json_obj(json_object *o)
{
	puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
					    JSON_C_TO_STRING_NOSLASHESCAPE));
}

static int do_list(struct cli *c, struct storage *s, struct pargs *a)
{
	if (a->n != 1)
		return cli_usage("usage: upaas package list [--json] APP");
	const char *app = a->v[0];
	_cleanup_err_ struct err e = ERR_INIT;
	_cleanup_strv_ struct strv ids = STRV_INIT;
	_cleanup_buf_ struct buf cur = BUF_INIT;

	if (packages_list(s, app, &ids, &e) < 0)
		return cli_fail(&e, NULL);
	if (package_current(s, app, &cur, &e) < 0)
		err_clear(&e);
	json_object *arr = a->json ? json_object_new_array() : NULL;
	if (!a->json && ids.n)
		printf("  %-26s %-11s %-12s %-10s %s\n", "ID", "KIND", "COMMIT", "SIZE", "CREATED");
	for (size_t i = 0; i < ids.n; i++) {
		struct package_info p = { 0 };
		err_clear(&e);
		bool ok = package_load(s, app, ids.v[i], &p, &e) >= 0;
		bool is_cur = cur.len && !strcmp(cur.p, ids.v[i]);
		if (a->json) {
			json_object *o = ok ? package_json(&p, is_cur) : NULL;
			if (!o) {
				o = json_object_new_object();
				json_object_object_add(o, "id", json_object_new_string(ids.v[i]));
				json_object_object_add(o, "error", json_object_new_string(err_msg(&e)));
				json_object_object_add(o, "current", json_object_new_boolean(is_cur));
			}
			json_object_array_add(arr, o);
		} else if (ok) {
			char sz[32];
			fmt_bytes(p.blob.size, sz);
			printf("%c %-26s %-11s %-12.12s %-10s %s\n", is_cur ? '*' : ' ', p.id,
			       p.fresh ? "fresh" : "incremental", p.repo.commit ? p.repo.commit : "-",
			       sz, p.created ? p.created : "-");
		} else {
			printf("%c %-26s unreadable: %s\n", is_cur ? '*' : ' ', ids.v[i], err_msg(&e));
		}
		package_info_free(&p);
	}
	if (a->json) {
		print_json_obj(arr);
		json_object_put(arr);
	}
	return 0;
}

static int load_arg(struct storage *s, struct pargs *a, struct package_info *p, struct err *e)
{
	_cleanup_buf_ struct buf id = BUF_INIT;
	int r = resolve_id(s, a->v[0], a->v[1], &id, e);
	if (r < 0)
		return r;
	return package_load(s, a->v[0], id.p, p, e);
}

static int do_show(struct cli *c, struct storage *s, struct pargs *a)
{
	if (a->n != 2)
		return cli_usage("usage: upaas package show [--json] APP ID");
	_cleanup_err_ struct err e = ERR_INIT;
	struct package_info p = { 0 };
	if (load_arg(s, a, &p, &e) < 0)
		return cli_fail(&e, NULL);
	if (a->json) {
		fputs(p.json, stdout);
		package_info_free(&p);
		return 0;
	}
	char sz[32], when[32] = "";
	fmt_bytes(p.blob.size, sz);
	if (p.repo.commit_time)
		time_iso8601(p.repo.commit_time, when);
	printf("package      %s/%s\n", p.app, p.id);
	printf("parent       %s\n", p.parent ? p.parent : "(none)");
	printf("kind         %s: %s\n", p.fresh ? "fresh" : "incremental",
	       p.base.reason ? p.base.reason : "");
	printf("base         %s %s (%.12s)\n", p.base.kind ? p.base.kind : "?",
	       p.base.name ? p.base.name : "?", p.base.sha256 ? p.base.sha256 : "");
	printf("image        %s (%.12s)\n", p.image.name ? p.image.name : "?",
	       p.image.sha256 ? p.image.sha256 : "");
	printf("repository   %s\n", p.repo.url ? p.repo.url : "?");
	printf("commit       %s (%s, %s)\n", p.repo.commit ? p.repo.commit : "?",
	       p.repo.ref ? p.repo.ref : "?", when);
	printf("interpreter  %s %s\n", p.interp.type ? p.interp.type : "?",
	       p.interp.version ? p.interp.version : "");
	printf("blob         %s\n", p.blob.key);
	printf("size         %s (%llu bytes)\n", sz, (unsigned long long)p.blob.size);
	printf("sha256       %s\n", p.blob.sha256);
	printf("os packages  ");
	for (size_t i = 0; i < p.os_packages.n; i++)
		printf("%s%s", i ? " " : "", p.os_packages.v[i]);
	printf("\nbuilder      %s\n", p.builder ? p.builder : "?");
	printf("created      %s\n", p.created ? p.created : "?");
	printf("steps\n");
	for (size_t i = 0; i < p.n_steps; i++)
		printf("  %-12s %-8s %8.2f s\n", p.steps[i].name, p.steps[i].status,
		       p.steps[i].seconds);
	if (p.n_stages) {
		printf("stages\n");
		for (size_t i = 0; i < p.n_stages; i++)
			printf("  %-12s %8.2f s\n", p.stages[i].name, p.stages[i].seconds);
	}
	package_info_free(&p);
	return 0;
}

static int do_fetch(struct cli *c, struct storage *s, struct pargs *a, bool get)
{
	if (a->n != (get ? 3 : 2))
		return cli_usage(get ? "usage: upaas package get APP ID FILE"
				     : "usage: upaas package verify APP ID");
	_cleanup_err_ struct err e = ERR_INIT;
	struct package_info p = { 0 };
	if (load_arg(s, a, &p, &e) < 0)
		return cli_fail(&e, NULL);
	storage_set_progress(s, get ? "downloading" : "verifying");
	int r = package_fetch(s, &p, get ? a->v[2] : NULL, &e);
	storage_set_progress(s, NULL);
	if (r < 0) {
		package_info_free(&p);
		return cli_fail(&e, NULL);
	}
	if (!c->quiet) {
		if (get)
			fprintf(stderr, "upaas: %s/%s written to '%s' (sha256 %s)\n", p.app, p.id,
				a->v[2], p.blob.sha256);
		else
			printf("ok %s/%s sha256 %s size %llu\n", p.app, p.id, p.blob.sha256,
			       (unsigned long long)p.blob.size);
	}
	package_info_free(&p);
	return 0;
}

static int do_url(struct cli *c, struct storage *s, struct pargs *a)
{
	if (a->n != 2)
		return cli_usage("usage: upaas package url [--expires S] APP ID");
	_cleanup_err_ struct err e = ERR_INIT;
	_cleanup_buf_ struct buf url = BUF_INIT;
	struct package_info p = { 0 };
	if (load_arg(s, a, &p, &e) < 0)
		return cli_fail(&e, NULL);
	int r = storage_presign(s, p.blob.key, (unsigned)a->expires, &url, &e);
	if (r == -EOPNOTSUPP) {
		err_clear(&e);
		err_set(&e, r, "the '%s' storage handler cannot make download URLs; use "
			"'upaas package get' instead", storage_name(s));
	}
	package_info_free(&p);
	if (r < 0)
		return cli_fail(&e, NULL);
	printf("%s\n", url.p);
	return 0;
}

/* The apps that have packages: packages/<app>/... */
static int all_apps(struct storage *s, struct strv *apps, struct err *e)
{
	_cleanup_strv_ struct strv keys = STRV_INIT;
	int r = storage_list_keys(s, "packages/", &keys, e);
	if (r < 0)
		return r;
	for (size_t i = 0; i < keys.n; i++) {
		const char *k = keys.v[i];
		if (!strncmp(k, "packages/", 9))
			k += 9;
		size_t n = strcspn(k, "/");
		if (!k[n])
			continue;
		_cleanup_free_ char *app = xstrndup(k, n);
		if (app_name_ok(app) && !strv_contains(apps, app))
			strv_push(apps, app);
	}
	return 0;
}

static int do_prune(struct cli *c, struct storage *s, struct pargs *a)
{
	if (a->n > 1)
		return cli_usage("usage: upaas package prune [--keep N] [APP]");
	_cleanup_err_ struct err e = ERR_INIT;
	_cleanup_strv_ struct strv apps = STRV_INIT;
	int keep = a->keep > 0 ? (int)a->keep : c->cfg.apps.keep_packages;
	int rc = 0;

	if (a->n == 1)
		strv_push(&apps, a->v[0]);
	else if (all_apps(s, &apps, &e) < 0)
		return cli_fail(&e, NULL);
	for (size_t i = 0; i < apps.n; i++) {
		_cleanup_strv_ struct strv removed = STRV_INIT;
		err_clear(&e);
		if (packages_prune(s, apps.v[i], keep, &removed, &e) < 0) {
			rc = cli_fail(&e, NULL);
			continue;
		}
		for (size_t k = 0; k < removed.n; k++)
			if (!c->quiet)
				printf("removed %s/%s\n", apps.v[i], removed.v[k]);
	}
	return rc;
}

int cmd_package(struct cli *c, int argc, char **argv)
{
	if (argc < 2 || cli_is_help(argv[1])) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	const char *sub = argv[1];
	struct pargs a = { 0 };
	int r = parse(argc - 1, argv + 1, &a);
	if (r)
		return r < 0 ? 0 : r;

	struct storage *s;
	if (cli_config(c) < 0 || cli_storage(c, &s) < 0)
		return 1;
	if (!strcmp(sub, "list"))
		return do_list(c, s, &a);
	if (!strcmp(sub, "show"))
		return do_show(c, s, &a);
	if (!strcmp(sub, "verify"))
		return do_fetch(c, s, &a, false);
	if (!strcmp(sub, "get"))
		return do_fetch(c, s, &a, true);
	if (!strcmp(sub, "url"))
		return do_url(c, s, &a);
	if (!strcmp(sub, "prune"))
		return do_prune(c, s, &a);
	usage(stderr);
	return cli_usage("package: unknown command '%s'", sub);
}
