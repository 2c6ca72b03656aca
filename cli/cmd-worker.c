/*
 * cli/cmd-worker.c - upaas worker: run queued builds.
 */
#include <errno.h>
#include <getopt.h>
#include <string.h>

#include "cli/cli.h"
#include "queue/queue.h"

static void worker_help(FILE *out)
{
	fputs("usage: upaas worker [--concurrency N] [--once] [--poll-ms MS] [--stop-grace S]\n"
	      "                    [--noop-builds]\n"
	      "\n"
	      "Takes queued builds and runs them with the build pipeline, up to N at once,\n"
	      "never two builds of one app at once (across every worker that shares the\n"
	      "queue). Each running build holds a lease the worker renews; if the worker\n"
	      "dies, the build is queued again once its lease (queue.lease_seconds) expires.\n"
	      "On SIGTERM or SIGINT it stops taking builds, stops its running builds, queues\n"
	      "them again and exits 0. Build logs go to <paths.state>/logs/<id>.log\n"
	      "('upaas queue log -f ID').\n"
	      "\n"
	      "Options:\n"
	      "  -j, --concurrency N  builds at once (default 1)\n"
	      "  --once               exit when no build is left to take and none runs\n"
	      "  --poll-ms MS         how often an idle worker looks for work, in ms\n"
	      "                       (default 50; PostgreSQL also wakes it up at once\n"
	      "                       through LISTEN/NOTIFY)\n"
	      "  --stop-grace S       on stop or cancel, seconds a build gets to clean up\n"
	      "                       after SIGTERM before SIGKILL (default 60)\n"
	      "  --noop-builds        benchmarking aid, not for production: mark each\n"
	      "                       claimed build succeeded at once without building, to\n"
	      "                       measure the queue's own overhead (bench/queue.sh)\n"
	      "  -h, --help           this help\n",
	      out);
}

enum { O_ONCE = 256, O_POLL, O_NOOP, O_GRACE };

int cmd_worker(struct cli *c, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "concurrency", required_argument, NULL, 'j' },
		{ "once", no_argument, NULL, O_ONCE },
		{ "poll-ms", required_argument, NULL, O_POLL },
		{ "noop-builds", no_argument, NULL, O_NOOP },
		{ "stop-grace", required_argument, NULL, O_GRACE },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct worker_opts o = WORKER_OPTS_INIT;
	int64_t v;
	int ch;
	while ((ch = getopt_long(argc, argv, "j:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'j':
			if (parse_int64(optarg, 1, 1024, &v) < 0)
				return cli_usage("--concurrency: want a number from 1 to 1024");
			o.concurrency = (int)v;
			break;
		case O_ONCE: o.once = true; break;
		case O_POLL:
			if (parse_int64(optarg, 1, 60000, &v) < 0)
				return cli_usage("--poll-ms: want a number from 1 to 60000");
			o.poll_ms = (int)v;
			break;
		case O_NOOP: o.noop_builds = true; break;
		case O_GRACE:
			if (parse_int64(optarg, 1, 86400, &v) < 0)
				return cli_usage("--stop-grace: want a number from 1 to 86400");
			o.stop_grace_s = (int)v;
			break;
		case 'h': worker_help(stdout); return 0;
		default: worker_help(stderr); return 2;
		}
	}
	if (optind != argc)
		return cli_usage("worker takes no arguments (see upaas worker --help)");
	struct storage *s = NULL;
	if (cli_config(c) < 0 || cli_storage(c, &s) < 0)
		return 1;
	_cleanup_err_ struct err e = ERR_INIT;
	int r = worker_run(&c->cfg, s, &o, &e);
	if (r < 0)
		return cli_fail(&e, "worker failed");
	return 0;
}
