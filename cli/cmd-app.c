/*
 * cli/cmd-app.c - upaas app: register, list, show and remove apps.
 */
#include <errno.h>
#include <string.h>

#include <json-c/json.h>

#include "package/package.h"
#include "cli/cli.h"
#include "queue/queue.h"

#define SHOW_BUILDS 5

enum { O_REPO = CLI_LONG, O_BRANCH, O_REPLACE, O_NEW_SECRET, O_JSON };

static struct json_object *jstr(const char *s)
{
	return s ? json_object_new_string(s) : NULL;
}

static int a_add(struct cli *c, const struct cli_args *a)
{
	if (!cli_arg(a, O_REPO))
		return cli_usage("usage: upaas app add NAME --repo URL [--branch B] [--replace] "
				 "[--new-secret]");
	_cleanup_err_ struct err e = ERR_INIT;
	_cleanup_buf_ struct buf repo = BUF_INIT;
	const char *url = cli_arg(a, O_REPO);
	/* "-": the URL from standard input, so that credentials in it never
	 * show on a command line */
	if (!strcmp(url, "-")) {
		buf_init(&repo, 8192);
		int rr = buf_read_fd(&repo, STDIN_FILENO);
		buf_rtrim(&repo);
		if (rr < 0 || !repo.len || strchr(repo.p, '\n')) {
			explicit_bzero(repo.p, repo.len);
			return cli_usage("app add: --repo - reads one URL from standard input");
		}
		url = repo.p;
	}
	_cleanup_queue_ struct queue *q = NULL;
	if (cli_queue(c, &q) < 0)
		return 1;
	int r = queue_app_add(q, a->argv[0], url, cli_arg(a, O_BRANCH), cli_flag(a, O_REPLACE),
			      &e);
	explicit_bzero(repo.p, repo.len);
	if (r >= 0 && cli_flag(a, O_NEW_SECRET))
		r = queue_app_new_secret(q, a->argv[0], &e);
	if (r < 0)
		return cli_fail(&e, "cannot register the app");
	return 0;
}

static int a_list(struct cli *c, const struct cli_args *a)
{
	_cleanup_queue_ struct queue *q = NULL;
	if (cli_queue(c, &q) < 0)
		return 1;
	_cleanup_err_ struct err e = ERR_INIT;
	struct queue_app *v = NULL;
	size_t n = 0;
	int r = queue_app_list(q, &v, &n, &e);
	if (r < 0)
		return cli_fail(&e, "cannot list apps");
	if (cli_flag(a, O_JSON)) {
		struct json_object *arr = json_object_new_array();
		for (size_t i = 0; i < n; i++)
			json_object_array_add(arr, queue_app_json(&v[i], false));
		cli_json_print(arr);
	} else {
		printf("%-24s %-16s %s\n", "NAME", "BRANCH", "REPOSITORY");
		for (size_t i = 0; i < n; i++) {
			_cleanup_free_ char *repo = url_redacted(v[i].repo);
			printf("%-24s %-16s %s\n", v[i].name, v[i].branch ? v[i].branch : "(default)",
			       repo);
		}
	}
	queue_apps_free(v, n);
	return 0;
}

static int a_show(struct cli *c, const struct cli_args *args)
{
	const char *name = args->argv[0];
	_cleanup_queue_ struct queue *q = NULL;
	if (cli_queue(c, &q) < 0)
		return 1;
	_cleanup_err_ struct err e = ERR_INIT;
	_cleanup_(queue_app_clear) struct queue_app a = { 0 };
	int r = queue_app_get(q, name, &a, &e);
	if (r < 0)
		return cli_fail(&e, "no such app");
	/* The current package: best effort, storage may be unreachable. */
	_cleanup_buf_ struct buf current = BUF_INIT;
	struct storage *s = NULL;
	const struct sign_trust *trust = NULL;
	if (cli_storage(c, &s) >= 0 && cli_trust(c, &trust) >= 0) {
		_cleanup_err_ struct err se = ERR_INIT;
		if (package_current(s, trust, name, &current, &se) < 0)
			buf_reset(&current);
	}
	struct queue_filter f = { .app = name, .state = -1, .limit = SHOW_BUILDS };
	struct queue_build *v = NULL;
	size_t n = 0;
	r = queue_list(q, &f, &v, &n, &e);
	if (r < 0)
		return cli_fail(&e, "cannot list builds");
	if (cli_flag(args, O_JSON)) {
		struct json_object *j = queue_app_json(&a, true);
		json_object_object_add(j, "current", current.len ? jstr(current.p) : NULL);
		struct json_object *builds = json_object_new_array();
		for (size_t i = 0; i < n; i++)
			json_object_array_add(builds, queue_build_json(&v[i]));
		json_object_object_add(j, "builds", builds);
		cli_json_print(j);
	} else {
		char t[32];
		time_iso8601(a.created / 1000, t);
		printf("name:        %s\n", a.name);
		_cleanup_free_ char *repo = url_redacted(a.repo);
		printf("repository:  %s\n", repo);
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

static int a_rm(struct cli *c, const struct cli_args *a)
{
	_cleanup_queue_ struct queue *q = NULL;
	if (cli_queue(c, &q) < 0)
		return 1;
	_cleanup_err_ struct err e = ERR_INIT;
	int r = queue_app_remove(q, a->argv[0], &e);
	if (r < 0)
		return cli_fail(&e, "cannot remove the app");
	return 0;
}

/* The registered apps, and those deployed on this host. */
void cli_values_apps(struct cli *c, const struct cli_args *a, struct strv *out)
{
	_cleanup_err_ struct err e = ERR_INIT;
	_cleanup_queue_ struct queue *q = NULL;
	struct queue_app *v = NULL;
	size_t n = 0;

	cli_values_deployed(c, a, out);
	if (cli_config(c) < 0 || queue_open_existing(&q, &c->cfg, &e) < 0 ||
	    queue_app_list(q, &v, &n, &e) < 0)
		return;
	for (size_t i = 0; i < n; i++)
		strv_push(out, v[i].name);
	queue_apps_free(v, n);
}

static const struct cli_opt json_opt[] = {
	{ "json", O_JSON, NULL, "machine-readable output", NULL },
	{ NULL },
};

static const struct cli_cmd app_add = {
	.name = "add",
	.summary = "register an app: its git repository and branch",
	.usage = "NAME --repo URL [--branch B] [--replace] [--new-secret]",
	.help = "Registers an app: its git repository and the branch to build (default: the\n"
		"remote's default branch), and a random webhook secret for its git\n"
		"webhooks ('app show --json' prints it as webhook_secret). After 'app add',\n"
		"'upaas build NAME' and 'upaas queue add NAME' build it. Credentials in the\n"
		"URL (https://user:token@host/...) are handed to git through its askpass\n"
		"and never shown; '--repo -' reads the URL from standard input, so that\n"
		"they do not show on the command line either.",
	.opts = (const struct cli_opt[]){
		{ "repo", O_REPO, "URL", "git URL or path of the app's repository ('-': read it\n"
		  "from standard input)", cli_values_dir },
		{ "branch", O_BRANCH, "B", "the branch to build", NULL },
		{ "replace", O_REPLACE, NULL, "update an app that is registered already", NULL },
		{ "new-secret", O_NEW_SECRET, NULL, "give the app a new webhook secret (the old one\n"
		  "stops working)", NULL },
		{ NULL },
	},
	.min_args = 1,
	.max_args = 1,
	.run = a_add,
};

static const struct cli_cmd app_list = {
	.name = "list",
	.aliases = (const char *const[]){ "ls", NULL },
	.summary = "the registered apps",
	.usage = "[--json]",
	.opts = json_opt,
	.run = a_list,
};

static const struct cli_cmd app_show = {
	.name = "show",
	.summary = "an app: repository, current package, last builds",
	.help = "Shows an app: its repository and branch, when it was registered, its\n"
		"current package (read from storage) and its last builds. With --json\n"
		"it also prints webhook_secret, the secret of the app's git webhooks\n"
		"(see 'upaas serve --help').",
	.usage = "[--json] NAME",
	.opts = json_opt,
	.min_args = 1,
	.max_args = 1,
	.values = { cli_values_apps },
	.run = a_show,
};

static const struct cli_cmd app_rm = {
	.name = "rm",
	.aliases = (const char *const[]){ "remove", NULL },
	.summary = "unregister an app and cancel its queued builds;\n"
		   "its packages and build history stay",
	.usage = "NAME",
	.min_args = 1,
	.max_args = 1,
	.values = { cli_values_apps },
	.run = a_rm,
};

const struct cli_cmd cmd_app = {
	.name = "app",
	.summary = "register, list, show or remove apps",
	.usage = "COMMAND [OPTIONS] [ARGS...]",
	.help = "The app registry: the apps the build queue knows, by name.",
	.footer = "After 'app add', 'upaas build NAME' and 'upaas queue add NAME' build it.",
	.subs = (const struct cli_cmd *const[]){ &app_add, &app_list, &app_show, &app_rm, NULL },
};
