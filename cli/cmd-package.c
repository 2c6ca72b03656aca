/*
 * cli/cmd-package.c - upaas package list|show|verify|get|url|sbom|prune
 *
 * Every manifest is read through package_load(), which checks its signature
 * against signing.trusted before anything of it is used.
 */
#include <errno.h>
#include <string.h>

#include <json-c/json.h>

#include "package/package.h"
#include "cli/cli.h"
#include "queue/queue.h"
#include "serve/serve.h"

enum { O_JSON = CLI_LONG, O_EXPIRES, O_KEEP, O_FORMAT, O_REBUILD };

/* The operands of a package command, and the keys it trusts. */
struct pargs {
	int n;
	char **v;
	const struct sign_trust *t;
};
/* Resolves "current" to the current id. */
static int resolve_id(struct storage *s, const struct sign_trust *t, const char *app,
		      const char *id, struct buf *out, struct err *e)
{
	if (strcmp(id, "current")) {
		buf_reset(out);
		return buf_adds(out, id);
	}
	int r = package_current(s, t, app, out, e);
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

/* A package of the index, or NULL. */
static const struct indexed_package *index_find(const struct package_catalog *x, const char *app,
						const char *id)
{
	for (size_t i = 0; i < x->n; i++)
		if (!strcmp(x->v[i].app, app) && !strcmp(x->v[i].id, id))
			return &x->v[i];
	return NULL;
}

static int do_list(struct cli *c, struct storage *s, struct pargs *a, bool json)
{
	const char *app = a->v[0];
	_cleanup_err_ struct err e = ERR_INIT;
	_cleanup_strv_ struct strv ids = STRV_INIT;
	_cleanup_buf_ struct buf cur = BUF_INIT;
	struct package_catalog x = { 0 };

	if (!app_name_ok(app)) {
		err_set(&e, -EINVAL, "invalid app name '%s'", app);
		return cli_fail(&e, NULL);
	}
	if (packages_list(s, app, &ids, &e) < 0)
		return cli_fail(&e, NULL);
	if (package_current(s, a->t, app, &cur, &e) < 0) {
		if (e.code != -ENOENT)
			log_warn("%s", err_msg(&e));
		err_clear(&e);
	}
	/* every app's manifests: a layer counts with the package that lists
	 * it first (what is shown is each package's verified manifest) */
	if (package_catalog_load(s, &x, &e) < 0)
		return cli_fail(&e, NULL);
	json_object *arr = json ? json_object_new_array() : NULL;
	if (!json && ids.n)
		printf("  %-26s %-11s %-12s %6s %10s %10s %s\n", "ID", "KIND", "COMMIT", "LAYERS",
		       "OWN", "TOTAL", "CREATED");
	for (size_t i = 0; i < ids.n; i++) {
		const struct indexed_package *ip = index_find(&x, app, ids.v[i]);
		struct package_info pv = { 0 };
		err_clear(&e);
		bool ok = package_load(s, a->t, app, ids.v[i], &pv, &e) >= 0;
		bool is_cur = cur.len && !strcmp(cur.p, ids.v[i]);
		const struct package_info *p = ok ? &pv : NULL;
		uint64_t own = p && ip ? package_own_size(&x, ip) : 0, total = p ? package_size(p) : 0;
		const char *why = err_msg(&e);

		if (json) {
			json_object *o = p ? package_json(p, is_cur) : NULL;
			if (!o) {
				o = json_object_new_object();
				json_object_object_add(o, "id", json_object_new_string(ids.v[i]));
				json_object_object_add(o, "error", json_object_new_string(why));
				json_object_object_add(o, "current", json_object_new_boolean(is_cur));
			} else {
				json_object_object_add(o, "own_size", json_object_new_int64((int64_t)own));
				json_object_object_add(o, "total_size", json_object_new_int64((int64_t)total));
			}
			json_object_array_add(arr, o);
		} else if (p) {
			char so[32], st[32];
			fmt_bytes(own, so);
			fmt_bytes(total, st);
			printf("%c %-26s %-11s %-12.12s %6zu %10s %10s %s\n", is_cur ? '*' : ' ', p->id,
			       p->fresh ? "fresh" : "incremental", p->repo.commit ? p->repo.commit : "-",
			       p->n_layers, so, st, p->created ? p->created : "-");
		} else {
			printf("%c %-26s unreadable: %s\n", is_cur ? '*' : ' ', ids.v[i], why);
		}
		package_info_free(&pv);
	}
	package_catalog_free(&x);
	if (json) {
		print_json_obj(arr);
		json_object_put(arr);
	}
	return 0;
}

static int load_arg(struct storage *s, struct pargs *a, struct package_info *p, struct err *e)
{
	_cleanup_buf_ struct buf id = BUF_INIT;
	int r = resolve_id(s, a->t, a->v[0], a->v[1], &id, e);
	if (r < 0)
		return r;
	return package_load(s, a->t, a->v[0], id.p, p, e);
}

static int do_show(struct cli *c, struct storage *s, struct pargs *a, bool json)
{
	_cleanup_err_ struct err e = ERR_INIT;
	struct package_info p = { 0 };
	if (load_arg(s, a, &p, &e) < 0)
		return cli_fail(&e, NULL);
	if (json) {
		fputs(p.json, stdout);
		package_info_free(&p);
		return 0;
	}
	char sz[32], when[32] = "";
	fmt_bytes(package_size(&p), sz);
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
	printf("size         %s (%llu bytes in %zu layer%s)\n", sz,
	       (unsigned long long)package_size(&p), p.n_layers, p.n_layers == 1 ? "" : "s");
	printf("layers       bottom first\n");
	for (size_t i = 0; i < p.n_layers; i++) {
		char ls[32];
		fmt_bytes(p.layers[i].size, ls);
		printf("  %-5s %10s  %s\n", p.layers[i].kind, ls, p.layers[i].key);
	}
	printf("os packages  ");
	for (size_t i = 0; i < p.os_packages.n; i++)
		printf("%s%s", i ? " " : "", p.os_packages.v[i]);
	printf("\nbuilder      %s (upaas %s)\n", p.builder ? p.builder : "?",
	       p.upaas_version ? p.upaas_version : "?");
	printf("signed by    %s\n", p.signer ? p.signer : "nobody (unsigned, allowed by "
	       "signing.allow_unsigned)");
	printf("sbom         %s\n", p.sbom.key ? p.sbom.key : "(none)");
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
	/* SIGTERM/SIGINT: the temp file goes, exit 1 "interrupted" */
	proc_cancel_on_signals();
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
			fprintf(stderr, "upaas: %s/%s written to '%s' (%zu layer%s)\n", p.app, p.id,
				a->v[2], p.n_layers, p.n_layers == 1 ? "" : "s");
		else
			for (size_t i = 0; i < p.n_layers; i++)
				printf("ok %s/%s layer %zu sha256 %s size %llu\n", p.app, p.id, i + 1,
				       p.layers[i].sha256, (unsigned long long)p.layers[i].size);
	}
	package_info_free(&p);
	return 0;
}

static int do_url(struct cli *c, struct storage *s, struct pargs *a, int64_t expires)
{
	_cleanup_err_ struct err e = ERR_INIT;
	_cleanup_buf_ struct buf url = BUF_INIT;
	struct package_info p = { 0 };
	if (load_arg(s, a, &p, &e) < 0)
		return cli_fail(&e, NULL);
	/* a URL gives one object: a package of several layers has none */
	int r = p.n_layers == 1 ? storage_presign(s, p.layers[0].key, (unsigned)expires, &url, &e)
		: err_set(&e, -EOPNOTSUPP, "package %s/%s has %zu layers, no single object to "
			  "download; use 'upaas package get'", p.app, p.id, p.n_layers);
	if (r == -EOPNOTSUPP && p.n_layers == 1) {
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

static int do_prune(struct cli *c, struct storage *s, struct pargs *a, int64_t keep_opt)
{
	_cleanup_err_ struct err e = ERR_INIT;
	_cleanup_strv_ struct strv apps = STRV_INIT;
	struct gc_result gc = { STRV_INIT, 0 };
	int keep = keep_opt > 0 ? (int)keep_opt : c->cfg.apps.keep_packages;
	int rc = 0;

	if (a->n == 1)
		strv_push(&apps, a->v[0]);
	else if (all_apps(s, &apps, &e) < 0)
		return cli_fail(&e, NULL);
	for (size_t i = 0; i < apps.n; i++) {
		_cleanup_strv_ struct strv removed = STRV_INIT;
		err_clear(&e);
		if (packages_prune(s, a->t, apps.v[i], keep, &removed, &e) < 0) {
			rc = cli_fail(&e, NULL);
			continue;
		}
		for (size_t k = 0; k < removed.n; k++)
			if (!c->quiet)
				printf("removed %s/%s\n", apps.v[i], removed.v[k]);
	}
	/* then the layers no package lists any more, once for all apps */
	err_clear(&e);
	if (layers_gc(s, c->cfg.apps.layer_grace, &gc, &e) < 0)
		rc = cli_fail(&e, NULL);
	for (size_t k = 0; k < gc.removed.n; k++)
		if (!c->quiet)
			printf("removed %s\n", gc.removed.v[k]);
	strv_free(&gc.removed);
	/* and what dead uploads left (S3 multipart uploads idle for an hour) */
	err_clear(&e);
	int n = storage_sweep_uploads(s, STORAGE_UPLOAD_GRACE, NULL, NULL, &e);
	if (n < 0)
		rc = cli_fail(&e, NULL);
	else if (n > 0 && !c->quiet)
		printf("aborted %d incomplete upload%s\n", n, n == 1 ? "" : "s");
	return rc;
}

/* The package's bill of materials, in a standard format. */
static int do_sbom(struct cli *c, struct storage *s, struct pargs *a, const char *format)
{
	_cleanup_err_ struct err e = ERR_INIT;
	_cleanup_buf_ struct buf out = BUF_INIT;
	struct package_info p = { 0 };
	struct sbom b = { 0 };
	(void)c;

	if (strcmp(format, "spdx") && strcmp(format, "cyclonedx") && strcmp(format, "upaas"))
		return cli_usage("package sbom: --format is spdx, cyclonedx or upaas, not '%s'",
				 format);
	int r = load_arg(s, a, &p, &e);
	if (r >= 0)
		r = package_sbom(s, &p, &b, &e);
	if (r < 0) {
		package_info_free(&p);
		return cli_fail(&e, NULL);
	}
	struct sbom_subject subj = { .name = p.app, .version = p.id, .created = p.created,
				     .tool_version = p.upaas_version ? p.upaas_version
								     : PACKAGE_VERSION };
	if (!strcmp(format, "spdx"))
		sbom_spdx(&b, &subj, &out);
	else if (!strcmp(format, "cyclonedx"))
		sbom_cyclonedx(&b, &subj, &out);
	else
		sbom_json(&b, &out);
	fputs(out.p, stdout);
	sbom_free(&b);
	package_info_free(&p);
	return 0;
}

/* ---------------------------------------------------------- the table */

/* Opens the storage and loads the trusted keys for a package command;
 * fills p with its operands. */
static int open_storage(struct cli *c, const struct cli_args *a, struct storage **s,
			struct pargs *p)
{
	p->n = a->argc;
	p->v = a->argv;
	return cli_config(c) < 0 || cli_storage(c, s) < 0 || cli_trust(c, &p->t) < 0 ? -EINVAL
										    : 0;
}

static int list_run(struct cli *c, const struct cli_args *a)
{
	struct storage *s;
	struct pargs p;
	if (open_storage(c, a, &s, &p) < 0)
		return 1;
	return do_list(c, s, &p, cli_flag(a, O_JSON));
}

static int show_run(struct cli *c, const struct cli_args *a)
{
	struct storage *s;
	struct pargs p;
	if (open_storage(c, a, &s, &p) < 0)
		return 1;
	return do_show(c, s, &p, cli_flag(a, O_JSON));
}

static int verify_run(struct cli *c, const struct cli_args *a)
{
	struct storage *s;
	struct pargs p;
	if (open_storage(c, a, &s, &p) < 0)
		return 1;
	return do_fetch(c, s, &p, false);
}

static int get_run(struct cli *c, const struct cli_args *a)
{
	struct storage *s;
	struct pargs p;
	if (open_storage(c, a, &s, &p) < 0)
		return 1;
	return do_fetch(c, s, &p, true);
}

static int url_run(struct cli *c, const struct cli_args *a)
{
	const char *arg = cli_arg(a, O_EXPIRES);
	int64_t expires = 3600;
	struct storage *s;
	struct pargs p;
	if (arg && parse_int64(arg, 1, 7 * 24 * 3600, &expires) < 0)
		return cli_usage("package: --expires wants seconds (1..604800), not '%s'", arg);
	if (open_storage(c, a, &s, &p) < 0)
		return 1;
	return do_url(c, s, &p, expires);
}

static int prune_run(struct cli *c, const struct cli_args *a)
{
	const char *arg = cli_arg(a, O_KEEP);
	int64_t keep = -1;
	struct storage *s;
	struct pargs p;
	if (arg && parse_int64(arg, 1, 100000, &keep) < 0)
		return cli_usage("package: --keep wants a number >= 1, not '%s'", arg);
	if (open_storage(c, a, &s, &p) < 0)
		return 1;
	return do_prune(c, s, &p, keep);
}

static int sbom_run(struct cli *c, const struct cli_args *a)
{
	const char *format = cli_arg(a, O_FORMAT);
	struct storage *s;
	struct pargs p;
	if (open_storage(c, a, &s, &p) < 0)
		return 1;
	return do_sbom(c, s, &p, format ? format : "spdx");
}

/* The package ids of the app in operand 0, and "current". */
void cli_values_packages(struct cli *c, const struct cli_args *a, struct strv *out)
{
	_cleanup_err_ struct err e = ERR_INIT;
	struct storage *s;

	if (a->argc < 1 || !app_name_ok(a->argv[0]) || cli_storage(c, &s) < 0)
		return;
	if (packages_list(s, a->argv[0], out, &e) >= 0)
		strv_push(out, "current");
}

static const struct cli_opt json_opt[] = {
	{ "json", O_JSON, NULL, "JSON output", NULL },
	{ NULL },
};

static const struct cli_cmd package_list = {
	.name = "list",
	.summary = "the app's packages, oldest first (* = current)",
	.usage = "[--json] APP",
	.opts = json_opt,
	.min_args = 1,
	.max_args = 1,
	.values = { cli_values_apps },
	.run = list_run,
};

static const struct cli_cmd package_show = {
	.name = "show",
	.summary = "a package's manifest (ID may be 'current')",
	.usage = "[--json] APP ID",
	.opts = json_opt,
	.min_args = 2,
	.max_args = 2,
	.values = { cli_values_apps, cli_values_packages },
	.run = show_run,
};

static const struct cli_cmd package_verify = {
	.name = "verify",
	.summary = "download every layer, check size and sha256",
	.usage = "APP ID",
	.min_args = 2,
	.max_args = 2,
	.values = { cli_values_apps, cli_values_packages },
	.run = verify_run,
};

static const struct cli_cmd package_get = {
	.name = "get",
	.summary = "the whole root as one tarball into FILE\n(verified)",
	.usage = "APP ID FILE",
	.min_args = 3,
	.max_args = 3,
	.values = { cli_values_apps, cli_values_packages, cli_values_file },
	.run = get_run,
};

static const struct cli_cmd package_url = {
	.name = "url",
	.summary = "a URL to download a one-layer package\n(default 3600 s)",
	.usage = "[--expires S] APP ID",
	.opts = (const struct cli_opt[]){
		{ "expires", O_EXPIRES, "S", "lifetime of the URL in seconds", NULL },
		{ NULL },
	},
	.min_args = 2,
	.max_args = 2,
	.values = { cli_values_apps, cli_values_packages },
	.run = url_run,
};

static void values_sbom_formats(struct cli *c, const struct cli_args *a, struct strv *out)
{
	(void)c;
	(void)a;
	strv_push(out, "spdx");
	strv_push(out, "cyclonedx");
	strv_push(out, "upaas");
}

static const struct cli_cmd package_sbom_cmd = {
	.name = "sbom",
	.summary = "the bill of materials (SPDX 2.3 or CycloneDX 1.5 JSON)",
	.usage = "[--format spdx|cyclonedx|upaas] APP ID",
	.help = "Prints the package's bill of materials: every Debian package of its tree\n"
		"with its version, and the npm and Python packages found in it. The bill\n"
		"is checked against the sha256 and size of the signed manifest first.",
	.opts = (const struct cli_opt[]){
		{ "format", O_FORMAT, "FORMAT", "spdx (default), cyclonedx or upaas (stored form)",
		  values_sbom_formats },
		{ NULL },
	},
	.min_args = 2,
	.max_args = 2,
	.values = { cli_values_apps, cli_values_packages },
	.run = sbom_run,
};

static void index_print(const struct package_index *x, bool json)
{
	if (json) {
		_cleanup_buf_ struct buf out = BUF_INIT;
		package_index_json(x, &out);
		fputs(out.p, stdout);
		return;
	}
	for (size_t i = 0; i < x->n; i++)
		printf("%-24s %-28s %llu\n", x->v[i].app, x->v[i].id,
		       (unsigned long long)x->v[i].sequence);
	printf("%zu app%s, %s%s%s%s\n", x->n, x->n == 1 ? "" : "s",
	       x->keyid[0] ? "signed by key " : "unsigned", x->keyid, x->created ? ", made " : "",
	       x->created ? x->created : "");
}

static int index_run(struct cli *c, const struct cli_args *a)
{
	struct storage *s;
	struct pargs p;
	if (open_storage(c, a, &s, &p) < 0)
		return 1;
	_cleanup_err_ struct err e = ERR_INIT;
	struct package_index x = { 0 };
	if (cli_flag(a, O_REBUILD)) {
		_cleanup_sign_key_ struct sign_key *k = NULL;
		if (sign_key_config(&c->cfg, &k, &e) < 0)
			return cli_fail(&e, NULL);
		if (!k)
			log_warn("no signing.key: the index is unsigned (hosts refuse it unless "
				 "signing.allow_unsigned, and read each app's current instead)");
		struct queue_index_lock il;
		struct package_index_lock pil;
		queue_index_lock_init(&il, &c->cfg, &pil);
		int r = package_index_rebuild(s, k, p.t, &pil, &x, &e);
		queue_index_lock_close(&il);
		if (r < 0)
			return cli_fail(&e, "cannot rebuild the index");
	} else {
		int r = package_index_read(s, p.t, NULL, NULL, &x, &e);
		if (r == -ENOENT) {
			err_clear(&e);
			err_set(&e, r, "no '%s' in %s (builds write it; --rebuild makes it)",
				PACKAGE_INDEX_KEY, storage_where(s));
		}
		if (r < 0)
			return cli_fail(&e, NULL);
	}
	index_print(&x, cli_flag(a, O_JSON));
	package_index_free(&x);
	return 0;
}

static const struct cli_cmd package_index_cmd = {
	.name = "index",
	.summary = "show apps/_index (what watchers poll), or make it again",
	.usage = "[--rebuild] [--json]",
	.help = "Shows apps/_index, verified: each app's current package and sequence, as\n"
		"builders record them after they write a current, so that an idle\n"
		"'upaas watch' reads one object whatever the number of apps. --rebuild\n"
		"makes it again from every apps/APP/current (signed with signing.key),\n"
		"under the queue's lock of its writers.",
	.opts = (const struct cli_opt[]){
		{ "rebuild", O_REBUILD, NULL, "make it again from every app's current", NULL },
		{ "json", O_JSON, NULL, "print the document as JSON", NULL },
		{ NULL },
	},
	.run = index_run,
};

static const struct cli_cmd package_prune = {
	.name = "prune",
	.summary = "keep the newest N packages (default\n"
		   "apps.keep_packages) and the current one",
	.usage = "[--keep N] [APP]",
	.opts = (const struct cli_opt[]){
		{ "keep", O_KEEP, "N", "packages to keep per app", NULL },
		{ NULL },
	},
	.max_args = 1,
	.values = { cli_values_apps },
	.run = prune_run,
};

const struct cli_cmd cmd_package = {
	.name = "package",
	.summary = "list, show, verify, fetch, describe (sbom) or prune packages",
	.usage = "COMMAND [OPTIONS] ARGS",
	.help = "The packages of an app in storage.",
	.subs = (const struct cli_cmd *const[]){
		&package_list, &package_show, &package_verify, &package_get, &package_url,
		&package_sbom_cmd, &package_index_cmd, &package_prune, NULL,
	},
};
