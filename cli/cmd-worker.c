/*
 * cli/cmd-worker.c - upaas worker: run queued builds.
 */
#include <errno.h>
#include <string.h>

#include "cli/cli.h"
#include "queue/queue.h"

enum { O_ONCE = CLI_LONG, O_POLL, O_NOOP, O_GRACE };

static int worker_cmd(struct cli *c, const struct cli_args *a)
{
	struct worker_opts o = WORKER_OPTS_INIT;
	const char *arg;
	int64_t v;

	if ((arg = cli_arg(a, 'j'))) {
		if (parse_int64(arg, 1, 1024, &v) < 0)
			return cli_usage("--concurrency: want a number from 1 to 1024");
		o.concurrency = (int)v;
	}
	o.once = cli_flag(a, O_ONCE);
	if ((arg = cli_arg(a, O_POLL))) {
		if (parse_int64(arg, 1, 60000, &v) < 0)
			return cli_usage("--poll-ms: want a number from 1 to 60000");
		o.poll_ms = (int)v;
	}
	o.noop_builds = cli_flag(a, O_NOOP);
	if ((arg = cli_arg(a, O_GRACE))) {
		if (parse_int64(arg, 1, 86400, &v) < 0)
			return cli_usage("--stop-grace: want a number from 1 to 86400");
		o.stop_grace_s = (int)v;
	}
	struct storage *s = NULL;
	if (cli_config(c) < 0 || cli_storage(c, &s) < 0)
		return 1;
	_cleanup_err_ struct err e = ERR_INIT;
	int r = worker_run(&c->cfg, s, &o, &e);
	if (r < 0)
		return cli_fail(&e, "worker failed");
	return 0;
}

const struct cli_cmd cmd_worker = {
	.name = "worker",
	.summary = "run queued builds",
	.usage = "[--concurrency N] [--once] [--poll-ms MS] [--stop-grace S] [--noop-builds]",
	.help = "Takes queued builds and runs them with the build pipeline, up to N at once,\n"
		"never two builds of one app at once (across every worker that shares the\n"
		"queue). Each running build holds a lease the worker renews; if the worker\n"
		"dies, the build is queued again once its lease (queue.lease_seconds) expires.\n"
		"On SIGTERM or SIGINT it stops taking builds, stops its running builds, queues\n"
		"them again and exits 0. Build logs go to <paths.state>/logs/<id>.log\n"
		"('upaas queue log -f ID').",
	.opts = (const struct cli_opt[]){
		{ "concurrency", 'j', "N", "builds at once (default 1)", NULL },
		{ "once", O_ONCE, NULL, "exit when no build is left to take and none runs", NULL },
		{ "poll-ms", O_POLL, "MS", "how often an idle worker looks for work, in ms\n"
		  "(default 50; PostgreSQL also wakes it up at once\n"
		  "through LISTEN/NOTIFY)", NULL },
		{ "stop-grace", O_GRACE, "S", "on stop or cancel, seconds a build gets to clean up\n"
		  "after SIGTERM before SIGKILL (default 60)", NULL },
		{ "noop-builds", O_NOOP, NULL, "benchmarking aid, not for production: mark each\n"
		  "claimed build succeeded at once without building, to\n"
		  "measure the queue's own overhead (bench/queue.sh)", NULL },
		{ NULL },
	},
	.run = worker_cmd,
};
