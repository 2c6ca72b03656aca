/*
 * cli/cmd-deploy.c - the host commands: deploy, rollback, undeploy, status,
 * watch, exec, remount.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>

#include <json-c/json.h>

#include "cli/cli.h"
#include "deploy/deploy.h"
#include "serve/serve.h"

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

enum { O_NO_WAIT = CLI_LONG, O_JSON, O_PURGE, O_ONCE, O_AS_ROOT, O_INTERVAL, O_JITTER };

/* After the report: deletes what the command put in the trash. */
static void sweep(struct cli *c, const char *root, const char *app)
{
	_cleanup_err_ struct err e = ERR_INIT;

	if (proc_cancelled)
		return;   /* the next command sweeps */
	if (deploy_sweep(&c->cfg, root, app, &e) < 0)
		log_warn("%s", err_msg(&e));
}

static int deploy_cmd(struct cli *c, const struct cli_args *a)
{
	/* SIGTERM/SIGINT from the start: the current step is finished or
	 * undone, then the command fails with "interrupted" */
	proc_cancel_on_signals();
	struct deploy_opts o = { .tee = !c->quiet };
	bool json = cli_flag(a, O_JSON);

	o.package_id = cli_arg(a, 'p');
	o.root = cli_arg(a, 'r');
	o.force = cli_flag(a, 'f');
	o.no_wait = cli_flag(a, O_NO_WAIT);
	const char *app = a->argv[0];
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
	rc = rc < 0 ? cli_fail(&e, "deploy failed") : 0;
	fflush(stdout);
	sweep(c, o.root, app);
	return rc;
}

static int rollback_cmd(struct cli *c, const struct cli_args *a)
{
	/* SIGTERM/SIGINT from the start: the current step is finished or
	 * undone, then the command fails with "interrupted" */
	proc_cancel_on_signals();
	struct deploy_opts o = { .tee = !c->quiet };
	const char *to = cli_arg(a, 't');
	bool json = cli_flag(a, O_JSON);

	o.root = cli_arg(a, 'r');
	o.no_wait = cli_flag(a, O_NO_WAIT);
	const char *app = a->argv[0];
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
	rc = rc < 0 ? cli_fail(&e, "rollback failed") : 0;
	fflush(stdout);
	sweep(c, o.root, app);
	return rc;
}

static int undeploy_cmd(struct cli *c, const struct cli_args *a)
{
	/* SIGTERM/SIGINT from the start: the current step is finished or
	 * undone, then the command fails with "interrupted" */
	proc_cancel_on_signals();
	struct deploy_opts o = { .tee = !c->quiet };
	bool purge = cli_flag(a, O_PURGE);

	o.root = cli_arg(a, 'r');
	o.no_wait = cli_flag(a, O_NO_WAIT);
	const char *app = a->argv[0];
	if (cli_config(c) < 0)
		return 1;

	_cleanup_err_ struct err e = ERR_INIT;
	/* the host report goes to storage; storage being out of reach must
	 * not keep an app on the host */
	struct storage *s = NULL;
	if (c->cfg.deploy.report) {
		_cleanup_err_ struct err se = ERR_INIT;
		if (config_storage_secrets(&c->cfg.storage, &se) < 0 ||
		    storage_open(&s, &c->cfg.storage, c->cfg.paths.state, &se) < 0) {
			log_warn("no host report: %s", err_msg(&se));
			s = NULL;
		}
	}
	struct deploy_result r;
	int rc = deploy_undeploy(&c->cfg, s, app, &o, purge, &r, &e);
	storage_close(s);
	notify_deploy(&c->cfg, app, &r, rc, &e);
	if (rc >= 0)
		printf("app '%s': %s%s%s\n", app, deploy_op_name(r.op), r.id ? " of " : "",
		       r.id ? r.id : "");
	deploy_result_free(&r);
	rc = rc < 0 ? cli_fail(&e, "undeploy failed") : 0;
	fflush(stdout);
	sweep(c, o.root, purge ? NULL : app);
	return rc;
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

static int status_cmd(struct cli *c, const struct cli_args *a)
{
	const char *root = cli_arg(a, 'r');
	bool json = cli_flag(a, O_JSON);

	if (cli_config(c) < 0)
		return 1;
	if (!root)
		root = c->cfg.deploy.root;

	_cleanup_err_ struct err e = ERR_INIT;
	_cleanup_strv_ struct strv apps = STRV_INIT;
	bool one = a->argc > 0;
	if (one)
		strv_push(&apps, a->argv[0]);
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

static int remount_cmd(struct cli *c, const struct cli_args *a)
{
	const char *app = a->argc ? a->argv[0] : NULL;
	bool json = cli_flag(a, O_JSON);

	if (app && !app_name_ok(app))
		return cli_usage("invalid app name '%s'", app);
	if (cli_config(c) < 0)
		return 1;
	_cleanup_err_ struct err e = ERR_INIT;
	_cleanup_strv_ struct strv failed = STRV_INIT;
	int n = deploy_remount(&c->cfg, cli_arg(a, 'r'), app, &failed, &e);
	if (n < 0)
		return cli_fail(&e, "remount failed");
	if (json) {
		_cleanup_buf_ struct buf out = BUF_INIT;
		_cleanup_json_ struct json_object *j = json_object_new_object();
		json_object_object_add(j, "mounted", json_object_new_int(n));
		json_object_object_add(j, "failed", json_new_strv(&failed));
		json_to_buf(j, &out);
		fputs(out.p, stdout);
	} else if (!c->quiet) {
		printf("mounted %d revision%s again\n", n, n == 1 ? "" : "s");
	}
	for (size_t i = 0; i < failed.n && !json; i++)
		fprintf(stderr, "upaas: revision %s did not mount\n", failed.v[i]);
	return failed.n ? 1 : 0;
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

static int watch_cmd(struct cli *c, const struct cli_args *a)
{
	struct watch_opts o = { .tee = !c->quiet, .stop = &watch_stop };

	o.schedule = cli_arg(a, 's');
	o.once = cli_flag(a, O_ONCE);
	o.jitter = -1;
	const char *iv = cli_arg(a, O_INTERVAL), *ji = cli_arg(a, O_JITTER);
	int64_t n;
	if (iv) {
		if (parse_int64(iv, 1, 86400, &n) < 0)
			return cli_usage("--interval wants seconds (1 to 86400), not '%s'", iv);
		if (o.schedule)
			return cli_usage("--interval and --schedule exclude each other");
		o.interval = (int)n;
	}
	if (ji) {
		if (parse_int64(ji, 0, 3600, &n) < 0)
			return cli_usage("--jitter wants seconds (0 to 3600), not '%s'", ji);
		o.jitter = (int)n;
	}
	o.force = cli_flag(a, 'f');
	o.root = cli_arg(a, 'r');
	_cleanup_strv_ struct strv apps = STRV_INIT;
	for (int i = 0; i < a->argc; i++) {
		if (!app_name_ok(a->argv[i]))
			return cli_usage("invalid app name '%s'", a->argv[i]);
		strv_push(&apps, a->argv[i]);
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

static int exec_cmd(struct cli *c, const struct cli_args *a)
{
	struct deploy_exec_opts o = { .argv = STRV_INIT, .env = KVLIST_INIT };
	int k = 0, rc;

	o.root = cli_arg(a, 'r');
	o.cwd = cli_arg(a, 'C');
	o.as_root = cli_flag(a, O_AS_ROOT);
	for (size_t i = 0; i < a->n; i++) {
		if (a->v[i].key != 'e')
			continue;
		const char *eq = strchr(a->v[i].arg, '=');
		if (!eq || eq == a->v[i].arg) {
			rc = cli_usage("--env wants NAME=VALUE, not '%s'", a->v[i].arg);
			goto out;
		}
		_cleanup_free_ char *name = xstrndup(a->v[i].arg, (size_t)(eq - a->v[i].arg));
		kvlist_set(&o.env, name, eq + 1);
	}
	/* options may come before or after APP; everything after "--" is CMD */
	const char *app = a->argv[k++];
	if (k < a->argc && !strcmp(a->argv[k], "--"))
		k++;
	if (k >= a->argc) {
		rc = cli_usage("upaas exec: no command given (upaas exec APP -- CMD...)");
		goto out;
	}
	for (int i = k; i < a->argc; i++)
		strv_push(&o.argv, a->argv[i]);
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

/* -------------------------------------------------------------- table */

/* The apps deployed under the root (--root if given, else deploy.root). */
void cli_values_deployed(struct cli *c, const struct cli_args *a, struct strv *out)
{
	_cleanup_err_ struct err e = ERR_INIT;
	const struct cli_opt *root = cli_opt_named(a->cmd, "root");
	const char *dir = root ? cli_arg(a, root->key) : NULL;

	if (!dir && cli_config(c) < 0)
		return;
	deploy_list_apps(dir ? dir : c->cfg.deploy.root, out, &e);
}

#define ROOT_OPT { "root", 'r', "DIR", "deploy root (default: deploy.root of the config)", \
		   cli_values_dir }
#define NO_WAIT_OPT { "no-wait", O_NO_WAIT, NULL, "fail at once when another deploy of APP runs", NULL }

const struct cli_cmd cmd_deploy = {
	.name = "deploy",
	.summary = "fetch, verify and switch an app to a package",
	.usage = "APP [--package ID] [--root DIR] [--force] [--no-wait] [--json]",
	.help = "Fetches a package of APP (default: the one apps/APP/current names), verifies\n"
		"its size and sha256, extracts it into a new revision, links the shared dirs,\n"
		"runs the pre-deploy hooks, switches 'current' atomically, runs the post-deploy\n"
		"hooks (a failure switches back), records the history and prunes.",
	.opts = (const struct cli_opt[]){
		{ "package", 'p', "ID", "deploy this package instead of the current one",
		  cli_values_packages },
		ROOT_OPT,
		{ "force", 'f', NULL, "deploy even when ID is already current", NULL },
		NO_WAIT_OPT,
		{ "json", O_JSON, NULL, "print the result as JSON", NULL },
		{ NULL },
	},
	.min_args = 1,
	.max_args = 1,
	.values = { cli_values_apps },
	.run = deploy_cmd,
};

const struct cli_cmd cmd_rollback = {
	.name = "rollback",
	.summary = "switch an app back to an earlier revision",
	.usage = "APP [--to ID] [--root DIR] [--no-wait] [--json]",
	.help = "Switches APP back to its previous revision (or to ID), fetching the\n"
		"package again when its revision was pruned. Hooks see the operation\n"
		"'rollback'.",
	.opts = (const struct cli_opt[]){
		{ "to", 't', "ID", "the package to go back to (default: the previous)",
		  cli_values_packages },
		ROOT_OPT,
		NO_WAIT_OPT,
		{ "json", O_JSON, NULL, "print the result as JSON", NULL },
		{ NULL },
	},
	.min_args = 1,
	.max_args = 1,
	.values = { cli_values_deployed },
	.run = rollback_cmd,
};

const struct cli_cmd cmd_undeploy = {
	.name = "undeploy",
	.summary = "take an app off this host",
	.usage = "APP [--purge] [--root DIR] [--no-wait]",
	.help = "Takes APP off this host: runs the pre-undeploy hooks (a failure\n"
		"aborts), removes 'current', runs the post-undeploy hooks, removes\n"
		"every revision. Shared data and history stay unless --purge.",
	.opts = (const struct cli_opt[]){
		{ "purge", O_PURGE, NULL, "also remove shared data, history and log\n"
		  "(operation 'uninstall')", NULL },
		ROOT_OPT,
		NO_WAIT_OPT,
		{ NULL },
	},
	.min_args = 1,
	.max_args = 1,
	.values = { cli_values_deployed },
	.run = undeploy_cmd,
};

const struct cli_cmd cmd_status = {
	.name = "status",
	.summary = "show deployed revisions and history",
	.usage = "[APP] [--root DIR] [--json]",
	.help = "Shows the current and previous revisions, the kept revisions and the\n"
		"history of APP, or of every app deployed under the root.",
	.opts = (const struct cli_opt[]){
		ROOT_OPT,
		{ "json", O_JSON, NULL, "print JSON (an object for APP, else an array)", NULL },
		{ NULL },
	},
	.max_args = 1,
	.values = { cli_values_deployed },
	.run = status_cmd,
};

const struct cli_cmd cmd_remount = {
	.name = "remount",
	.summary = "mount the overlay revisions again after a reboot",
	.usage = "[APP] [--root DIR] [--json]",
	.help = "Mounts again the overlay-mounted revisions (deploy.materialize) of APP,\n"
		"or of every app deployed under the root, that are whole but not mounted,\n"
		"as after a reboot; the upaas-remount unit runs it at boot, before the\n"
		"apps start. A deploy, a rollback and exec mount what they use\n"
		"themselves. Exits 1 when a revision did not mount.",
	.opts = (const struct cli_opt[]){
		ROOT_OPT,
		{ "json", O_JSON, NULL, "print JSON: { \"mounted\": N, \"failed\": [\"APP/ID\", ...] }",
		  NULL },
		{ NULL },
	},
	.max_args = 1,
	.values = { cli_values_deployed },
	.run = remount_cmd,
};

const struct cli_cmd cmd_watch = {
	.name = "watch",
	.summary = "deploy new packages as they appear",
	.usage = "[--schedule CRON | --interval SECONDS] [--jitter SECONDS] [--once] [--force]\n"
		 "[--root DIR] [APP...]",
	.help = "Polls storage for a changed apps/APP/current and deploys it, for each\n"
		"APP (default: every app deployed under the root). A round reads\n"
		"apps/_index (see 'upaas package index') with a conditional GET: an idle\n"
		"round costs one request and no download whatever the number of apps,\n"
		"and only a changed app's current is read (each current is read in the\n"
		"first round, every 60th, and when there is no index); each round starts\n"
		"up to the jitter late, at random. A package whose deploy failed is not retried\n"
		"until a newer one appears. Writes this host's reports to storage\n"
		"(hosts/HOST/, see 'upaas fleet status'). SIGTERM and SIGINT stop it\n"
		"between deploys.",
	.opts = (const struct cli_opt[]){
		{ "schedule", 's', "CRON", "5-field cron schedule (default: deploy.schedule,\n"
		  "\"* * * * *\": every minute)", NULL },
		{ "interval", O_INTERVAL, "SECONDS", "a round every SECONDS instead of a schedule\n"
		  "(default: deploy.interval)", NULL },
		{ "jitter", O_JITTER, "SECONDS", "start each round up to SECONDS late, at random\n"
		  "(default: deploy.jitter, 15)", NULL },
		{ "once", O_ONCE, NULL, "one round, then exit (1 when a deploy failed)", NULL },
		{ "force", 'f', NULL, "retry packages that failed before", NULL },
		ROOT_OPT,
		{ NULL },
	},
	.max_args = -1,
	.values = { cli_values_deployed, cli_values_deployed, cli_values_deployed,
		    cli_values_deployed },
	.run = watch_cmd,
};

const struct cli_cmd cmd_exec = {
	.name = "exec",
	.summary = "run a command in an app's current revision",
	.usage = "[--root DIR] [--cwd DIR] [--env NAME=VALUE]... APP -- CMD [ARGS...]",
	.help = "Runs CMD in the sandbox, chrooted into the current revision of APP, as\n"
		"the app user, with the network, no timeout, and stdin/stdout/stderr\n"
		"inherited; the shared dirs are at /shared. Exits with CMD's status.",
	.opts = (const struct cli_opt[]){
		ROOT_OPT,
		{ "cwd", 'C', "DIR", "working directory inside the revision\n"
		  "(default: the app's home)", NULL },
		{ "env", 'e', "NAME=VALUE", "add to the environment (repeatable)", NULL },
		{ "as-root", O_AS_ROOT, NULL, "run as root (still without the host's view)", NULL },
		{ NULL },
	},
	.min_args = 1,
	.max_args = -1,
	.values = { cli_values_deployed },
	.run = exec_cmd,
};
