/*
 * cli/cmd-app.c - upaas app: register, list, show and remove apps.
 */
#include <errno.h>
#include <getopt.h>
#include <string.h>

#include <json-c/json.h>

#include "builder/builder.h"
#include "cli/cli.h"
#include "queue/queue.h"

#define SHOW_BUILDS 5

static void app_help(FILE *out)
{
	fputs("usage: upaas app COMMAND [OPTIONS] [ARGS...]\n"
	      "\n"
	      "Commands:\n"
	      "  add NAME --repo URL [--branch B] [--replace] [--new-secret]\n"
	      "                       register an app: its git repository and branch\n"
	      "                       (default: the remote's default branch) and a\n"
	      "                       random webhook secret ('app show --json')\n"
	      "  list [--json]        the registered apps\n"
	      "  show [--json] NAME   an app: repository, current package, last builds\n"
	      "  rm NAME              unregister an app and cancel its queued builds;\n"
	      "                       its packages and build history stay\n"
	      "\n"
	      "Options:\n"
	      "  --repo URL     add: git URL or path of the app's repository\n"
	      "  --branch B     add: the branch to build\n"
	      "  --replace      add: update an app that is registered already\n"
	      "  --new-secret   add: give the app a new webhook secret (the old one\n"
	      "                 stops working)\n"
	      "  --json         list, show: machine-readable output\n"
	      "  -h, --help     this help\n"
	      "\n"
	      "After 'app add', 'upaas build NAME' and 'upaas queue add NAME' build it.\n",
	      out);
}

struct aopts {
	const char *repo;
	const char *branch;
	bool replace;
	bool new_secret;
	bool json;
};

enum { O_REPO = 256, O_BRANCH, O_REPLACE, O_NEW_SECRET, O_JSON };

static int parse_opts(int argc, char **argv, struct aopts *o)
{
	static const struct option longopts[] = {
		{ "repo", required_argument, NULL, O_REPO },
		{ "branch", required_argument, NULL, O_BRANCH },
		{ "replace", no_argument, NULL, O_REPLACE },
		{ "new-secret", no_argument, NULL, O_NEW_SECRET },
		{ "json", no_argument, NULL, O_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;
	optind = 0;
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
		case O_REPO: o->repo = optarg; break;
		case O_BRANCH: o->branch = optarg; break;
		case O_REPLACE: o->replace = true; break;
		case O_NEW_SECRET: o->new_secret = true; break;
		case O_JSON: o->json = true; break;
		case 'h': app_help(stdout); return 0;
		default: app_help(stderr); return 2;
		}
	}
	return -1;
}

static void json_print(struct json_object *o)
{
	puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
						      JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
}

static struct json_object *jstr(const char *s)
{
	return s ? json_object_new_string(s) : NULL;
}

static void queue_closep(struct queue **q)
{
	queue_close(*q);
}

static int a_add(struct cli *c, struct queue *q, const struct aopts *o, int argc, char **argv)
{
	if (argc - optind != 1 || !o->repo)
		return cli_usage("usage: upaas app add NAME --repo URL [--branch B] [--replace] "
				 "[--new-secret]");
	_cleanup_err_ struct err e = ERR_INIT;
	int r = queue_app_add(q, argv[optind], o->repo, o->branch, o->replace, &e);
	if (r >= 0 && o->new_secret)
		r = queue_app_new_secret(q, argv[optind], &e);
	if (r < 0)
		return cli_fail(&e, "cannot register the app");
	return 0;
}

static int a_list(struct cli *c, struct queue *q, const struct aopts *o, int argc, char **argv)
{
	if (argc != optind)
		return cli_usage("usage: upaas app list [--json]");
	_cleanup_err_ struct err e = ERR_INIT;
	struct queue_app *v = NULL;
	size_t n = 0;
	int r = queue_app_list(q, &v, &n, &e);
	if (r < 0)
		return cli_fail(&e, "cannot list apps");
	if (o->json) {
		struct json_object *a = json_object_new_array();
		for (size_t i = 0; i < n; i++)
			json_object_array_add(a, queue_app_json(&v[i], false));
		json_print(a);
	} else {
		printf("%-24s %-16s %s\n", "NAME", "BRANCH", "REPOSITORY");
		for (size_t i = 0; i < n; i++)
			printf("%-24s %-16s %s\n", v[i].name, v[i].branch ? v[i].branch : "(default)",
			       v[i].repo);
	}
	queue_apps_free(v, n);
	return 0;
}

static int a_show(struct cli *c, struct queue *q, const struct aopts *o, int argc, char **argv)
{
	if (argc - optind != 1)
		return cli_usage("usage: upaas app show [--json] NAME");
	const char *name = argv[optind];
	_cleanup_err_ struct err e = ERR_INIT;
	_cleanup_(queue_app_clear) struct queue_app a = { 0 };
	int r = queue_app_get(q, name, &a, &e);
	if (r < 0)
		return cli_fail(&e, "no such app");
	/* The current package: best effort, storage may be unreachable. */
	_cleanup_buf_ struct buf current = BUF_INIT;
	struct storage *s = NULL;
	if (cli_storage(c, &s) >= 0) {
		_cleanup_err_ struct err se = ERR_INIT;
		if (package_current(s, name, &current, &se) < 0)
			buf_reset(&current);
	}
	struct queue_filter f = { .app = name, .state = -1, .limit = SHOW_BUILDS };
	struct queue_build *v = NULL;
	size_t n = 0;
	r = queue_list(q, &f, &v, &n, &e);
	if (r < 0)
		return cli_fail(&e, "cannot list builds");
	if (o->json) {
		struct json_object *j = queue_app_json(&a, true);
		json_object_object_add(j, "current", current.len ? jstr(current.p) : NULL);
		struct json_object *builds = json_object_new_array();
		for (size_t i = 0; i < n; i++)
			json_object_array_add(builds, queue_build_json(&v[i]));
		json_object_object_add(j, "builds", builds);
		json_print(j);
	} else {
		char t[32];
		time_iso8601(a.created / 1000, t);
		printf("name:        %s\n", a.name);
		printf("repository:  %s\n", a.repo);
		printf("branch:      %s\n", a.branch ? a.branch : "(the remote's default)");
		printf("registered:  %s\n", t);
		printf("webhooks:    %s\n", a.webhook_secret ? "secret set ('app show --json' shows it)"
			: "no secret yet ('app add --replace --new-secret' makes one)");
		printf("current:     %s\n", current.len ? current.p : "-");
		printf("builds:%s\n", n ? "" : "      none");
		for (size_t i = 0; i < n; i++)
			printf("  %-26s %-9s %s\n", v[i].id, build_state_name(v[i].state),
			       v[i].package_id ? v[i].package_id : v[i].error ? v[i].error : "");
	}
	queue_builds_free(v, n);
	return 0;
}

static int a_rm(struct cli *c, struct queue *q, const struct aopts *o, int argc, char **argv)
{
	if (argc - optind != 1)
		return cli_usage("usage: upaas app rm NAME");
	_cleanup_err_ struct err e = ERR_INIT;
	int r = queue_app_remove(q, argv[optind], &e);
	if (r < 0)
		return cli_fail(&e, "cannot remove the app");
	return 0;
}

static const struct {
	const char *name;
	int (*fn)(struct cli *c, struct queue *q, const struct aopts *o, int argc, char **argv);
} subs[] = {
	{ "add", a_add },
	{ "list", a_list },
	{ "ls", a_list },
	{ "show", a_show },
	{ "rm", a_rm },
	{ "remove", a_rm },
};

int cmd_app(struct cli *c, int argc, char **argv)
{
	if (argc < 2 || cli_is_help(argv[1])) {
		app_help(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	for (size_t i = 0; i < ARRAY_SIZE(subs); i++) {
		if (strcmp(argv[1], subs[i].name))
			continue;
		struct aopts o = { 0 };
		int r = parse_opts(argc - 1, argv + 1, &o);
		if (r >= 0)
			return r;
		r = cli_config(c);
		if (r < 0)
			return 1;
		_cleanup_err_ struct err e = ERR_INIT;
		_cleanup_(queue_closep) struct queue *q = NULL;
		r = queue_open(&q, &c->cfg, &e);
		if (r < 0)
			return cli_fail(&e, "cannot open the queue");
		return subs[i].fn(c, q, &o, argc - 1, argv + 1);
	}
	return cli_usage("unknown app command '%s' (see upaas app --help)", argv[1]);
}
