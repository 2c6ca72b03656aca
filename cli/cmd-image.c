/*
 * cli/cmd-image.c - upaas image: create, list, show, remove base OS images,
 * and run a command in a throwaway copy of one.
 */
#include <errno.h>
#include <string.h>

#include <json-c/json.h>

#include "cli/cli.h"
#include "package/package.h"
#include "images/images.h"

enum { O_JSON = CLI_LONG };

struct image_opts {
	bool force;
	bool json;
	bool network;
	bool user;
	int64_t timeout;
};

static void print_info(const struct image_info *i)
{
	char created[32], size[32];

	time_iso8601(i->created, created);
	fmt_bytes(i->size, size);
	printf("name:     %s\n", i->name);
	printf("sha256:   %s\n", i->sha256);
	printf("size:     %s (%llu bytes)\n", size, (unsigned long long)i->size);
	printf("created:  %s\n", created);
}

/* ----------------------------------------------------------------- create */

static int image_cmd_create(struct cli *c, const struct cli_args *a)
{
	struct image_opts o = { .force = cli_flag(a, 'f') };
	_cleanup_err_ struct err e = ERR_INIT;
	_cleanup_free_ char *def = NULL;
	_cleanup_buf_ struct buf reason = BUF_INIT;
	struct image_info i = { 0 };
	struct storage *s;
	const char *name;
	int64_t start;
	int r;

	const struct sign_trust *t;
	if (cli_storage(c, &s) < 0 || cli_trust(c, &t) < 0)
		return 1;
	name = a->argc ? a->argv[0] : (def = image_default_name(&c->cfg));

	if (!o.force && image_load(s, t, name, &i, &e) == 0) {
		if (!image_needs_rebuild(&c->cfg, &i, &reason)) {
			char created[32];

			time_iso8601(i.created, created);
			printf("image '%s' is up to date (created %s)\n", name, created);
			print_info(&i);
			image_info_free(&i);
			return 0;
		}
		log_info("rebuilding image '%s': %s", name, reason.p);
	}
	image_info_free(&i);
	err_clear(&e);
	start = now_unix();
	r = image_ensure(&c->cfg, s, name, o.force, &i, &e);
	if (r < 0)
		return cli_fail(&e, "cannot create the image");
	if (i.created < start) {
		char created[32];

		time_iso8601(i.created, created);
		printf("image '%s' is up to date (created %s)\n", name, created);
	} else {
		printf("image '%s' created\n", name);
	}
	print_info(&i);
	image_info_free(&i);
	return 0;
}

/* ------------------------------------------------------------- list, show */

static int image_cmd_list(struct cli *c, const struct cli_args *a)
{
	struct image_opts o = { .json = cli_flag(a, O_JSON) };
	_cleanup_err_ struct err e = ERR_INIT;
	_cleanup_strv_ struct strv names = STRV_INIT;
	struct json_object *arr = NULL;
	struct storage *s;
	int rc = 0;

	const struct sign_trust *t;
	if (cli_storage(c, &s) < 0 || cli_trust(c, &t) < 0)
		return 1;
	if (image_list(s, &names, &e) < 0)
		return cli_fail(&e, "cannot list images");
	if (o.json)
		arr = json_object_new_array();
	else if (names.n)
		printf("%-32s %-20s %10s  %s\n", "NAME", "CREATED", "SIZE", "SHA256");
	for (size_t n = 0; n < names.n; n++) {
		struct image_info i = { 0 };
		_cleanup_err_ struct err e2 = ERR_INIT;

		if (image_load(s, t, names.v[n], &i, &e2) < 0) {
			log_warn("%s", err_msg(&e2));
			rc = 1;
			continue;
		}
		if (arr) {
			struct json_object *m = json_tokener_parse(i.manifest_json);

			if (m)
				json_object_array_add(arr, m);
		} else {
			char created[32], size[32];

			time_iso8601(i.created, created);
			fmt_bytes(i.size, size);
			printf("%-32s %-20s %10s  %.12s\n", i.name, created, size, i.sha256);
		}
		image_info_free(&i);
	}
	if (arr) {
		puts(json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PRETTY |
						    JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(arr);
	}
	return rc;
}

static int image_cmd_show(struct cli *c, const struct cli_args *a)
{
	struct image_opts o = { .json = cli_flag(a, O_JSON) };
	_cleanup_err_ struct err e = ERR_INIT;
	_cleanup_buf_ struct buf reason = BUF_INIT;
	struct image_info i = { 0 };
	struct json_object *m, *v;
	struct storage *s;

	const struct sign_trust *t;
	if (cli_storage(c, &s) < 0 || cli_trust(c, &t) < 0)
		return 1;
	if (image_load(s, t, a->argv[0], &i, &e) < 0)
		return cli_fail(&e, "cannot load the image");
	if (o.json) {
		fputs(i.manifest_json, stdout);
		if (!*i.manifest_json || i.manifest_json[strlen(i.manifest_json) - 1] != '\n')
			putchar('\n');
		image_info_free(&i);
		return 0;
	}
	print_info(&i);
	m = json_tokener_parse(i.manifest_json);
	if (m) {
		static const char *const keys[] = { "distribution", "suite", "codename", "arch",
						    "variant", "mirror", "tool", "cache_key" };

		for (size_t k = 0; k < ARRAY_SIZE(keys); k++)
			if (json_object_object_get_ex(m, keys[k], &v) && v)
				printf("%s:%*s%s\n", keys[k], (int)(strlen(keys[k]) < 9 ? 9 - strlen(keys[k]) : 1),
				       "", json_object_get_string(v));
		if (json_object_object_get_ex(m, "components", &v) && v)
			printf("components: %s\n", json_object_to_json_string(v));
		if (json_object_object_get_ex(m, "extra_packages", &v) && v)
			printf("extra:    %s\n", json_object_to_json_string(v));
		if (json_object_object_get_ex(m, "packages", &v) &&
		    json_object_is_type(v, json_type_array))
			printf("packages: %zu installed\n", json_object_array_length(v));
		json_object_put(m);
	}
	printf("fresh:    %s\n", image_needs_rebuild(&c->cfg, &i, &reason) ? "no" : "yes");
	if (reason.len)
		printf("rebuild:  %s\n", reason.p);
	image_info_free(&i);
	return 0;
}

/* --------------------------------------------------------------------- rm */

static int image_cmd_rm(struct cli *c, const struct cli_args *a)
{
	_cleanup_err_ struct err e = ERR_INIT;
	struct storage *s;

	if (cli_storage(c, &s) < 0)
		return 1;
	if (image_remove(&c->cfg, s, a->argv[0], &e) < 0)
		return cli_fail(&e, "cannot remove the image");
	printf("image '%s' removed\n", a->argv[0]);
	return 0;
}

/* -------------------------------------------------------------------- run */

/* Runs cmd in a throwaway copy of image name (images/run.c). */
static int run_in_image(struct cli *c, const struct image_opts *o, const char *name,
			char **cmd, int ncmd, struct err *e)
{
	struct image_run_opts ro = {
		.name = name,
		.argv = cmd,
		.network = o->network,
		.as_user = o->user,
		.timeout_s = (unsigned)o->timeout,
		.stdin_fd = STDIN_FILENO,
		.term = getenv("TERM"),
	};
	struct storage *s;

	(void)ncmd;   /* cmd is NULL-terminated: the tail of the parsed argv */
	if (cli_storage(c, &s) < 0)
		return -EINVAL;
	return image_run(&c->cfg, s, &ro, e);
}

static int image_cmd_run(struct cli *c, const struct cli_args *a)
{
	struct image_opts o = { .network = cli_flag(a, 'n'), .user = cli_flag(a, 'u') };
	_cleanup_err_ struct err e = ERR_INIT;
	const char *name, *timeout = cli_arg(a, 't');
	int i = a->tail, r;

	if (timeout && parse_int64(timeout, 1, 7 * 86400, &o.timeout) < 0)
		return cli_usage("invalid --timeout '%s' (seconds, 1..604800)", timeout);
	name = a->argv[0];
	if (i < a->argc && !strcmp(a->argv[i], "--"))
		i++;
	if (i >= a->argc)
		return cli_usage("image run: no command (upaas image run NAME -- CMD...)");
	if (cli_config(c) < 0)
		return 1;
	fflush(stdout);
	r = run_in_image(c, &o, name, a->argv + i, a->argc - i, &e);
	if (r == -ETIMEDOUT) {
		cli_fail(&e, "timed out");
		return 124;
	}
	if (r < 0)
		return cli_fail(&e, "cannot run the command");
	return r;
}

/* -------------------------------------------------------------- table */

void cli_values_images(struct cli *c, const struct cli_args *a, struct strv *out)
{
	_cleanup_err_ struct err e = ERR_INIT;
	struct storage *s;

	if (cli_storage(c, &s) >= 0)
		image_list(s, out, &e);
}

static const struct cli_opt json_opt[] = {
	{ "json", O_JSON, NULL, "machine-readable output", NULL },
	{ NULL },
};

static const struct cli_cmd image_create_cmd = {
	.name = "create",
	.summary = "bootstrap, pack and store the base image NAME\n"
		   "(default <distribution>-<variant>-<arch>); an image\n"
		   "that is up to date is reused unless --force",
	.usage = "[--force] [NAME]",
	.opts = (const struct cli_opt[]){
		{ "force", 'f', NULL, "rebuild even when the stored image is up to date", NULL },
		{ NULL },
	},
	.max_args = 1,
	.values = { cli_values_images },
	.run = image_cmd_create,
};

static const struct cli_cmd image_list_cmd = {
	.name = "list",
	.aliases = (const char *const[]){ "ls", NULL },
	.summary = "list the stored images",
	.usage = "[--json]",
	.opts = json_opt,
	.run = image_cmd_list,
};

static const struct cli_cmd image_show_cmd = {
	.name = "show",
	.summary = "show an image's manifest",
	.usage = "[--json] NAME",
	.opts = json_opt,
	.min_args = 1,
	.max_args = 1,
	.values = { cli_values_images },
	.run = image_cmd_show,
};

static const struct cli_cmd image_rm_cmd = {
	.name = "rm",
	.aliases = (const char *const[]){ "remove", NULL },
	.summary = "remove an image (manifest first, then the blob)",
	.usage = "NAME",
	.min_args = 1,
	.max_args = 1,
	.values = { cli_values_images },
	.run = image_cmd_rm,
};

static const struct cli_cmd image_run_cmd = {
	.name = "run",
	.summary = "run CMD in a throwaway copy of the image (the\n"
		   "default image is created first when missing);\n"
		   "the image never changes.\n"
		   "Exits with CMD's status (128+N when killed by\n"
		   "signal N, 124 on timeout, 1 when upaas fails)",
	.usage = "[--network] [--user] [--timeout S] NAME -- CMD [ARGS...]",
	.help = "Runs CMD in a throwaway copy of the image NAME (the default image is\n"
		"created first when missing); the image never changes. Options come before\n"
		"NAME: every word after NAME is the command line. Exits with CMD's status\n"
		"(128+N when killed by signal N, 124 on timeout, 1 when upaas fails).",
	.opts = (const struct cli_opt[]){
		{ "network", 'n', NULL, "a network of its own through pasta (default: only loopback)", NULL },
		{ "user", 'u', NULL, "as apps.uid/apps.gid with every capability dropped\n"
		  "(default: root inside the sandbox)", NULL },
		{ "timeout", 't', "S", "kill the command and its children after S seconds", NULL },
		{ NULL },
	},
	.min_args = 1,
	.max_args = 1,
	.flags = CLI_TAIL,
	.values = { cli_values_images },
	.run = image_cmd_run,
};

const struct cli_cmd cmd_image = {
	.name = "image",
	.summary = "create, list, show, remove base OS images; run a command in one",
	.usage = "COMMAND [ARGS...]",
	.help = "The base OS images that fresh builds start from.",
	.subs = (const struct cli_cmd *const[]){
		&image_create_cmd, &image_list_cmd, &image_show_cmd, &image_rm_cmd, &image_run_cmd, NULL,
	},
};
