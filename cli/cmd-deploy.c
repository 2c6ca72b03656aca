/*
 * cli/cmd-deploy.c - the host commands: deploy, rollback, undeploy, status,
 * watch, exec.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <string.h>

#include <json-c/json.h>

#include "cli/cli.h"
#include "serve/serve.h"
#include "deploy/deploy.h"

static void print_result(const char *app, const struct deploy_result *r, bool json)
{
	if (json) {
		struct json_object *j = deploy_result_json(app, r);
		printf("%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY |
							      JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(j);
		return;
	}
	if (r->noop) {
		printf("app '%s' is already at %s (use --force to deploy it again)\n", app, r->id);
		return;
	}
	if (r->reverted) {
		printf("app '%s': %s of %s failed after the switch; switched back to %s\n", app,
		       deploy_op_name(r->op), r->id, r->previous ? r->previous : "nothing");
		return;
	}
	printf("app '%s': %s %s (%s, switch %.3f ms, total %.1f s)\n", app,
	       deploy_op_name(r->op) , r->id,
	       r->fetched ? "fetched and verified" : "existing revision",
	       r->switch_us / 1000.0, r->total_ms / 1000.0);
}

static int deploy_help(FILE *out)
{
	fprintf(out,
		"usage: upaas deploy APP [--package ID] [--root DIR] [--force] [--no-wait] [--json]\n"
		"\n"
		"Fetches a package of APP (default: the one apps/APP/current names), verifies\n"
		"its size and sha256, extracts it into a new revision, links the shared dirs,\n"
		"runs the pre-deploy hooks, switches 'current' atomically, runs the post-deploy\n"
		"hooks (a failure switches back), records the history and prunes.\n"
		"\n"
		"  -p, --package ID  deploy this package instead of the current one\n"
		"  -r, --root DIR    deploy root (default: deploy.root of the config)\n"
		"  -f, --force       deploy even when ID is already current\n"
		"      --no-wait     fail at once when another deploy of APP runs\n"
		"      --json        print the result as JSON\n"
		"  -h, --help        this help\n");
	return out == stdout ? 0 : 2;
}

int cmd_deploy(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "package", required_argument, NULL, 'p' },
		{ "root", required_argument, NULL, 'r' },
		{ "force", no_argument, NULL, 'f' },
		{ "no-wait", no_argument, NULL, 'W' },
		{ "json", no_argument, NULL, 'J' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct deploy_opts o = { .tee = !c->quiet };
	bool json = false;
	int opt;

	while ((opt = getopt_long(argc, argv, "p:r:fh", opts, NULL)) != -1) {
		switch (opt) {
		case 'p': o.package_id = optarg; break;
		case 'r': o.root = optarg; break;
		case 'f': o.force = true; break;
		case 'W': o.no_wait = true; break;
		case 'J': json = true; break;
		case 'h': return deploy_help(stdout);
		default: return deploy_help(stderr);
		}
	}
	if (optind + 1 != argc)
		return cli_usage("usage: upaas deploy APP [--package ID] [--root DIR] [--force] "
				 "[--no-wait] [--json]");
	const char *app = argv[optind];
	struct storage *s;
	if (cli_config(c) < 0 || cli_storage(c, &s) < 0)
		return 1;

	_cleanup_err_ struct err e = ERR_INIT;
	struct deploy_result r;
	int rc = deploy_run(&c->cfg, s, app, &o, &r, &e);
	notify_deploy(&c->cfg, app, &r, rc, &e);
	if (r.id && (rc >= 0 || r.reverted))
		print_result(app, &r, json);
	deploy_result_free(&r);
	return rc < 0 ? cli_fail(&e, "deploy failed") : 0;
}

int cmd_rollback(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "to", required_argument, NULL, 't' },
		{ "root", required_argument, NULL, 'r' },
		{ "no-wait", no_argument, NULL, 'W' },
		{ "json", no_argument, NULL, 'J' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct deploy_opts o = { .tee = !c->quiet };
	const char *to = NULL;
	bool json = false;
	int opt;

	while ((opt = getopt_long(argc, argv, "t:r:h", opts, NULL)) != -1) {
		switch (opt) {
		case 't': to = optarg; break;
		case 'r': o.root = optarg; break;
		case 'W': o.no_wait = true; break;
		case 'J': json = true; break;
		case 'h':
			printf("usage: upaas rollback APP [--to ID] [--root DIR] [--no-wait] [--json]\n"
			       "\n"
			       "Switches APP back to its previous revision (or to ID), fetching the\n"
			       "package again when its revision was pruned. Hooks see the operation\n"
			       "'rollback'.\n"
			       "\n"
			       "  -t, --to ID       the package to go back to (default: the previous)\n"
			       "  -r, --root DIR    deploy root (default: deploy.root of the config)\n"
			       "      --no-wait     fail at once when another deploy of APP runs\n"
			       "      --json        print the result as JSON\n"
			       "  -h, --help        this help\n");
			return 0;
		default:
			return cli_usage("see 'upaas rollback --help'");
		}
	}
	if (optind + 1 != argc)
		return cli_usage("usage: upaas rollback APP [--to ID] [--root DIR] [--no-wait]");
	const char *app = argv[optind];
	struct storage *s;
	if (cli_config(c) < 0 || cli_storage(c, &s) < 0)
		return 1;

	_cleanup_err_ struct err e = ERR_INIT;
	struct deploy_result r;
	int rc = deploy_rollback(&c->cfg, s, app, to, &o, &r, &e);
	notify_deploy(&c->cfg, app, &r, rc, &e);
	if (r.id && (rc >= 0 || r.reverted))
		print_result(app, &r, json);
	deploy_result_free(&r);
	return rc < 0 ? cli_fail(&e, "rollback failed") : 0;
}

int cmd_undeploy(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "purge", no_argument, NULL, 'P' },
		{ "root", required_argument, NULL, 'r' },
		{ "no-wait", no_argument, NULL, 'W' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct deploy_opts o = { .tee = !c->quiet };
	bool purge = false;
	int opt;

	while ((opt = getopt_long(argc, argv, "r:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'P': purge = true; break;
		case 'r': o.root = optarg; break;
		case 'W': o.no_wait = true; break;
		case 'h':
			printf("usage: upaas undeploy APP [--purge] [--root DIR] [--no-wait]\n"
			       "\n"
			       "Takes APP off this host: runs the pre-undeploy hooks (a failure\n"
			       "aborts), removes 'current', runs the post-undeploy hooks, removes\n"
			       "every revision. Shared data and history stay unless --purge.\n"
			       "\n"
			       "      --purge       also remove shared data, history and log\n"
			       "                    (operation 'uninstall')\n"
			       "  -r, --root DIR    deploy root (default: deploy.root of the config)\n"
			       "      --no-wait     fail at once when another deploy of APP runs\n"
			       "  -h, --help        this help\n");
			return 0;
		default:
			return cli_usage("see 'upaas undeploy --help'");
		}
	}
	if (optind + 1 != argc)
		return cli_usage("usage: upaas undeploy APP [--purge] [--root DIR] [--no-wait]");
	const char *app = argv[optind];
	if (cli_config(c) < 0)
		return 1;

	_cleanup_err_ struct err e = ERR_INIT;
	struct deploy_result r;
	int rc = deploy_undeploy(&c->cfg, app, &o, purge, &r, &e);
	notify_deploy(&c->cfg, app, &r, rc, &e);
	if (rc >= 0)
		printf("app '%s': %s%s%s\n", app, deploy_op_name(r.op), r.id ? " of " : "",
		       r.id ? r.id : "");
	deploy_result_free(&r);
	return rc < 0 ? cli_fail(&e, "undeploy failed") : 0;
}

static void print_status(const struct deploy_status *st, size_t max_history)
{
	printf("app:       %s\n", st->app);
	printf("current:   %s\n", st->current ? st->current : "(none)");
	if (st->commit && *st->commit)
		printf("commit:    %s\n", st->commit);
	printf("previous:  %s\n", st->previous ? st->previous : "(none)");
	printf("revisions:");
	for (size_t i = 0; i < st->revisions.n; i++)
		printf(" %s", st->revisions.v[i]);
	printf("%s\n", st->revisions.n ? "" : " (none)");
	for (size_t i = 0; i < st->failed.n; i++)
		printf("failed:    %s (kept for inspection)\n", st->failed.v[i]);
	if (st->watch_failed)
		printf("watch:     %s failed, not retried until a newer package appears\n",
		       st->watch_failed);
	if (st->n_history)
		printf("history:\n");
	size_t from = st->n_history > max_history ? st->n_history - max_history : 0;
	for (size_t i = from; i < st->n_history; i++) {
		_cleanup_buf_ struct buf line = BUF_INIT;
		deploy_hist_format(&st->history[i], &line);
		printf("  %s", line.p);
	}
}

int cmd_status(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "root", required_argument, NULL, 'r' },
		{ "json", no_argument, NULL, 'J' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *root = NULL;
	bool json = false;
	int opt;

	while ((opt = getopt_long(argc, argv, "r:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'r': root = optarg; break;
		case 'J': json = true; break;
		case 'h':
			printf("usage: upaas status [APP] [--root DIR] [--json]\n"
			       "\n"
			       "Shows the current and previous revisions, the kept revisions and the\n"
			       "history of APP, or of every app deployed under the root.\n"
			       "\n"
			       "  -r, --root DIR    deploy root (default: deploy.root of the config)\n"
			       "      --json        print JSON (an object for APP, else an array)\n"
			       "  -h, --help        this help\n");
			return 0;
		default:
			return cli_usage("see 'upaas status --help'");
		}
	}
	if (argc - optind > 1)
		return cli_usage("usage: upaas status [APP] [--root DIR] [--json]");
	if (cli_config(c) < 0)
		return 1;
	if (!root)
		root = c->cfg.deploy.root;

	_cleanup_err_ struct err e = ERR_INIT;
	_cleanup_strv_ struct strv apps = STRV_INIT;
	bool one = optind < argc;
	if (one)
		strv_push(&apps, argv[optind]);
	else if (deploy_list_apps(root, &apps, &e) < 0)
		return cli_fail(&e, NULL);

	_cleanup_buf_ struct buf out = BUF_INIT;
	if (json && !one)
		buf_adds(&out, "[");
	for (size_t i = 0; i < apps.n; i++) {
		struct deploy_status st;
		if (deploy_status_read(root, apps.v[i], &st, &e) < 0)
			return cli_fail(&e, NULL);
		if (json) {
			if (i)
				buf_adds(&out, ",\n");
			deploy_status_json(&st, &out);
		} else {
			if (i)
				printf("\n");
			print_status(&st, one ? 20 : 3);
		}
		deploy_status_free(&st);
	}
	if (json) {
		if (!one)
			buf_adds(&out, "]");
		printf("%s\n", out.p);
	} else if (!apps.n) {
		printf("no apps deployed under '%s'\n", root);
	}
	return 0;
}

static volatile int watch_stop;

static void on_stop(int sig)
{
	(void)sig;
	watch_stop = 1;
}

/* Each deploy of `upaas watch` sends its event (serve.notify.urls). */
static void watch_deployed(void *data, const char *app, const struct deploy_result *r, int rc,
			   const struct err *e)
{
	notify_deploy(data, app, r, rc, e);
}

int cmd_watch(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "schedule", required_argument, NULL, 's' },
		{ "once", no_argument, NULL, '1' },
		{ "force", no_argument, NULL, 'f' },
		{ "root", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct watch_opts o = { .tee = !c->quiet, .stop = &watch_stop };
	int opt;

	while ((opt = getopt_long(argc, argv, "s:fr:h", opts, NULL)) != -1) {
		switch (opt) {
		case 's': o.schedule = optarg; break;
		case '1': o.once = true; break;
		case 'f': o.force = true; break;
		case 'r': o.root = optarg; break;
		case 'h':
			printf("usage: upaas watch [--schedule CRON] [--once] [--force] [--root DIR] [APP...]\n"
			       "\n"
			       "Polls storage for a changed apps/APP/current and deploys it, for each\n"
			       "APP (default: every app deployed under the root). A package whose\n"
			       "deploy failed is not retried until a newer one appears. SIGTERM and\n"
			       "SIGINT stop it between deploys.\n"
			       "\n"
			       "  -s, --schedule CRON  5-field cron schedule (default: deploy.schedule,\n"
			       "                       \"* * * * *\": every minute)\n"
			       "      --once           one round, then exit (1 when a deploy failed)\n"
			       "  -f, --force          retry packages that failed before\n"
			       "  -r, --root DIR       deploy root (default: deploy.root of the config)\n"
			       "  -h, --help           this help\n");
			return 0;
		default:
			return cli_usage("see 'upaas watch --help'");
		}
	}
	_cleanup_strv_ struct strv apps = STRV_INIT;
	for (int i = optind; i < argc; i++) {
		if (!app_name_ok(argv[i]))
			return cli_usage("invalid app name '%s'", argv[i]);
		strv_push(&apps, argv[i]);
	}
	o.apps = &apps;
	o.on_deploy = watch_deployed;
	o.on_deploy_data = &c->cfg;
	struct storage *s;
	if (cli_config(c) < 0 || cli_storage(c, &s) < 0)
		return 1;

	struct sigaction sa = { .sa_handler = on_stop };
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	_cleanup_err_ struct err e = ERR_INIT;
	int r = deploy_watch(&c->cfg, s, &o, &e);
	if (r < 0)
		return cli_fail(&e, "watch failed");
	return 0;
}

int cmd_exec(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "root", required_argument, NULL, 'r' },
		{ "cwd", required_argument, NULL, 'C' },
		{ "env", required_argument, NULL, 'e' },
		{ "as-root", no_argument, NULL, 'R' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct deploy_exec_opts o = { .argv = STRV_INIT, .env = KVLIST_INIT };
	int opt, rc;

	/* options may come before or after APP; everything after "--" is CMD */
	while ((opt = getopt_long(argc, argv, "r:C:e:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'r': o.root = optarg; break;
		case 'C': o.cwd = optarg; break;
		case 'e': {
			const char *eq = strchr(optarg, '=');
			if (!eq || eq == optarg) {
				rc = cli_usage("--env wants NAME=VALUE, not '%s'", optarg);
				goto out;
			}
			_cleanup_free_ char *name = xstrndup(optarg, (size_t)(eq - optarg));
			kvlist_set(&o.env, name, eq + 1);
			break;
		}
		case 'R': o.as_root = true; break;
		case 'h':
			printf("usage: upaas exec [--root DIR] [--cwd DIR] [--env NAME=VALUE]... APP -- CMD [ARGS...]\n"
			       "\n"
			       "Runs CMD in the sandbox, chrooted into the current revision of APP, as\n"
			       "the app user, with the network, no timeout, and stdin/stdout/stderr\n"
			       "inherited; the shared dirs are at /shared. Exits with CMD's status.\n"
			       "\n"
			       "  -r, --root DIR        deploy root (default: deploy.root of the config)\n"
			       "  -C, --cwd DIR         working directory inside the revision\n"
			       "                        (default: the app's home)\n"
			       "  -e, --env NAME=VALUE  add to the environment (repeatable)\n"
			       "      --as-root         run as root (still without the host's view)\n"
			       "  -h, --help            this help\n");
			rc = 0;
			goto out;
		default:
			rc = cli_usage("see 'upaas exec --help'");
			goto out;
		}
	}
	if (optind >= argc) {
		rc = cli_usage("usage: upaas exec APP -- CMD [ARGS...]");
		goto out;
	}
	const char *app = argv[optind++];
	if (optind < argc && !strcmp(argv[optind], "--"))
		optind++;
	if (optind >= argc) {
		rc = cli_usage("upaas exec: no command given (upaas exec APP -- CMD...)");
		goto out;
	}
	for (int i = optind; i < argc; i++)
		strv_push(&o.argv, argv[i]);
	if (cli_config(c) < 0) {
		rc = 1;
		goto out;
	}
	fflush(stdout);
	{
		_cleanup_err_ struct err e = ERR_INIT;
		int r = deploy_exec(&c->cfg, app, &o, &e);
		rc = r < 0 ? cli_fail(&e, "exec failed") : r;
	}
out:
	strv_free(&o.argv);
	kvlist_free(&o.env);
	return rc;
}
