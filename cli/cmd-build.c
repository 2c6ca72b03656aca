/*
 * cli/cmd-build.c - upaas build [OPTIONS] SOURCE
 */
#include <errno.h>
#include <getopt.h>
#include <string.h>
#include <sys/stat.h>

#include <json-c/json.h>

#include "builder/builder.h"
#include "package/package.h"
#include "cli/cli.h"

/*
 * HOOK for the app registry (queue issue): resolves a registered app name
 * to its repository URL and branch. Weak: while no registry is linked in,
 * a SOURCE that is neither a path nor a URL is an unknown app.
 */
int app_registry_lookup(const struct config *c, const char *name, struct buf *ret_url,
			struct buf *ret_branch, struct err *e) __attribute__((weak));

static void usage(FILE *out)
{
	fputs("usage: upaas build [OPTIONS] SOURCE\n"
	      "\n"
	      "Builds a package of the app in SOURCE (a git URL, a local git repository,\n"
	      "or a registered app name): incremental on top of the app's current\n"
	      "package, or fresh from the base image. Prints the new package id.\n"
	      "\n"
	      "Options:\n"
	      "  --fresh                    start from the base image\n"
	      "  --interpreter-version V    interpreter version (fuzzy: 3 matches 3.11)\n"
	      "  --ref REF                  branch, tag or commit (default: the default branch)\n"
	      "  --app NAME                 app name (default: SOURCE's basename without .git)\n"
	      "  --json                     print the result and the manifest as JSON\n"
	      "  -v, --verbose              show the output of every step\n"
	      "  -h, --help                 this help\n",
	      out);
}

static bool looks_like_source(const char *s)
{
	struct stat st;
	if (strstr(s, "://") || strchr(s, '/') || (strchr(s, '@') && strchr(s, ':')))
		return true;
	return stat(s, &st) == 0;
}

static void print_json(struct cli *c, const struct build_result *res, const struct err *e)
{
	json_object *o = json_object_new_object();
	if (res->id) {
		json_object_object_add(o, "app", json_object_new_string(res->app));
		json_object_object_add(o, "id", json_object_new_string(res->id));
		json_object_object_add(o, "commit", json_object_new_string(res->commit));
		json_object_object_add(o, "fresh", json_object_new_boolean(res->fresh));
		json_object_object_add(o, "base_reason", json_object_new_string(res->base_reason));
		json_object_object_add(o, "sha256", json_object_new_string(res->sha256));
		json_object_object_add(o, "size", json_object_new_int64((int64_t)res->size));
		struct package_info p = { 0 };
		_cleanup_err_ struct err me = ERR_INIT;
		if (package_load(c->storage, res->app, res->id, &p, &me) >= 0) {
			json_object *m = json_tokener_parse(p.json);
			if (m)
				json_object_object_add(o, "manifest", m);
			package_info_free(&p);
		}
	} else {
		json_object_object_add(o, "error", json_object_new_string(err_msg(e)));
		if (res->failed_step)
			json_object_object_add(o, "failed_step",
					       json_object_new_string(res->failed_step));
	}
	puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
					    JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
}

int cmd_build(struct cli *c, int argc, char **argv)
{
	enum { O_FRESH = 256, O_IVER, O_REF, O_APP, O_JSON };
	static const struct option opts[] = {
		{ "fresh", no_argument, NULL, O_FRESH },
		{ "interpreter-version", required_argument, NULL, O_IVER },
		{ "ref", required_argument, NULL, O_REF },
		{ "app", required_argument, NULL, O_APP },
		{ "json", no_argument, NULL, O_JSON },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct build_opts bo = { .log_fd = -1 };
	bool json = false;
	int o;

	while ((o = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
		switch (o) {
		case O_FRESH: bo.fresh = true; break;
		case O_IVER: bo.interp_version = optarg; break;
		case O_REF: bo.ref = optarg; break;
		case O_APP: bo.app = optarg; break;
		case O_JSON: json = true; break;
		case 'v': bo.tee = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind + 1 != argc) {
		usage(stderr);
		return 2;
	}
	if (c->verbose)
		bo.tee = true;
	bo.source = argv[optind];

	struct storage *s;
	if (cli_config(c) < 0 || cli_storage(c, &s) < 0)
		return 1;

	_cleanup_err_ struct err e = ERR_INIT;
	_cleanup_buf_ struct buf url = BUF_INIT;
	_cleanup_buf_ struct buf branch = BUF_INIT;
	if (!looks_like_source(bo.source)) {
		/* a registered app name */
		if (!app_registry_lookup) {
			err_set(&e, -ENOENT, "unknown app '%s' (not a path or git URL, and no app "
				"registry is available)", bo.source);
			return cli_fail(&e, NULL);
		}
		if (app_registry_lookup(&c->cfg, bo.source, &url, &branch, &e) < 0) {
			if (e.code == -ENOENT) {
				err_clear(&e);
				err_set(&e, -ENOENT, "unknown app '%s': not a path or git URL, and "
					"not registered (see 'upaas app add')", bo.source);
			}
			return cli_fail(&e, "unknown app");
		}
		if (!bo.app)
			bo.app = bo.source;
		if (!bo.ref && branch.len)
			bo.ref = branch.p;
		bo.source = url.p;
	}

	struct build_result res = { 0 };
	int r = build_run(&c->cfg, s, &bo, &res, &e);
	if (json)
		print_json(c, &res, &e);
	if (r < 0) {
		cli_fail(&e, "build failed");
		build_result_free(&res);
		return 1;
	}
	if (!json) {
		char sz[32];
		fmt_bytes(res.size, sz);
		if (!c->quiet)
			fprintf(stderr, "upaas: built %s/%s: %s package (%s), %s, commit %.12s\n",
				res.app, res.id, res.fresh ? "fresh" : "incremental",
				res.base_reason, sz, res.commit);
		printf("%s\n", res.id);
	}
	build_result_free(&res);
	return 0;
}
