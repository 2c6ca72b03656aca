/*
 * cli/cmd-build.c - upaas build [OPTIONS] SOURCE
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include <json-c/json.h>

#include "builder/builder.h"
#include "package/package.h"
#include "cli/cli.h"
#include "queue/queue.h"

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
		json_object_object_add(o, "layer", json_object_new_string(res->layer ? res->layer
									      : "none"));
		struct package_info p = { 0 };
		_cleanup_err_ struct err me = ERR_INIT;
		const struct sign_trust *t = NULL;
		if (cli_trust(c, &t) >= 0 &&
		    package_load(c->storage, t, res->app, res->id, &p, &me) >= 0) {
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

enum { O_FRESH = CLI_LONG, O_IVER, O_REF, O_APP, O_JSON };

/* SOURCE: a registered app, or a local repository */
static void build_sources(struct cli *c, const struct cli_args *a, struct strv *out)
{
	cli_values_apps(c, a, out);
	cli_values_dir(c, a, out);
}

static int build_cmd(struct cli *c, const struct cli_args *a)
{
	struct build_opts bo = { .log_fd = -1 };
	bool json = cli_flag(a, O_JSON);

	bo.fresh = cli_flag(a, O_FRESH);
	bo.interp_version = cli_arg(a, O_IVER);
	bo.ref = cli_arg(a, O_REF);
	bo.app = cli_arg(a, O_APP);
	bo.tee = cli_flag(a, 'v');
	if (c->verbose)
		bo.tee = true;
	bo.source = a->argv[0];

	struct storage *s;
	if (cli_config(c) < 0 || cli_storage(c, &s) < 0)
		return 1;

	_cleanup_err_ struct err e = ERR_INIT;
	_cleanup_buf_ struct buf url = BUF_INIT;
	_cleanup_buf_ struct buf branch = BUF_INIT;
	if (!looks_like_source(bo.source)) {
		/* a registered app name */
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

	/* the builders of one queue update apps/_index one at a time */
	struct queue_index_lock il;
	struct package_index_lock pil;
	queue_index_lock_init(&il, &c->cfg, &pil);
	bo.index_lock = &pil;
	struct build_result res = { 0 };
	int r = build_run(&c->cfg, s, &bo, &res, &e);
	queue_index_lock_close(&il);
	if (json)
		print_json(c, &res, &e);
	if (r < 0) {
		cli_fail(&e, "build failed");
		build_result_free(&res);
		return 1;
	}
	/* the same retention as the worker's: apps.keep_packages per app,
	 * then the layers no package lists any more */
	if (c->cfg.apps.keep_packages > 0) {
		_cleanup_err_ struct err pe = ERR_INIT;
		_cleanup_strv_ struct strv removed = STRV_INIT;
		struct gc_result gc = { STRV_INIT, 0 };
		const struct sign_trust *t = NULL;
		if (cli_trust(c, &t) < 0 ||
		    packages_prune(s, t, res.app, c->cfg.apps.keep_packages, &removed, &pe) < 0 ||
		    layers_gc(s, c->cfg.apps.layer_grace, &gc, &pe) < 0)
			log_warn("app '%s': cannot prune packages: %s", res.app, err_msg(&pe));
		for (size_t i = 0; i < removed.n; i++)
			log_info("pruned package %s/%s", res.app, removed.v[i]);
		strv_free(&gc.removed);
	}
	if (!json) {
		char sz[32];
		fmt_bytes(res.size, sz);
		if (!c->quiet)
			fprintf(stderr, "upaas: built %s/%s: %s package (%s), %s%s, commit %.12s\n",
				res.app, res.id, res.fresh ? "fresh" : "incremental",
				res.base_reason,
				!res.layer || !strcmp(res.layer, "none") ? "no new layer"
				: !strcmp(res.layer, "delta") ? "a delta layer of " : "a full layer of ",
				!res.layer || !strcmp(res.layer, "none") ? "" : sz, res.commit);
		printf("%s\n", res.id);
	}
	build_result_free(&res);
	return 0;
}

const struct cli_cmd cmd_build = {
	.name = "build",
	.summary = "build an app package (incremental unless --fresh)",
	.usage = "[OPTIONS] SOURCE",
	.help = "Builds a package of the app in SOURCE (a git URL, a local git repository,\n"
		"or a registered app name): incremental on top of the app's current\n"
		"package, or fresh from the base image. Prints the new package id.",
	.opts = (const struct cli_opt[]){
		{ "fresh", O_FRESH, NULL, "start from the base image", NULL },
		{ "interpreter-version", O_IVER, "V", "interpreter version (fuzzy: 3 matches 3.11)", NULL },
		{ "ref", O_REF, "REF", "branch, tag or commit (default: the default branch)", NULL },
		{ "app", O_APP, "NAME", "app name (default: SOURCE's basename without .git)",
		  cli_values_apps },
		{ "json", O_JSON, NULL, "print the result and the manifest as JSON", NULL },
		{ "verbose", 'v', NULL, "show the output of every step", NULL },
		{ NULL },
	},
	.min_args = 1,
	.max_args = 1,
	.values = { build_sources },
	.run = build_cmd,
};
