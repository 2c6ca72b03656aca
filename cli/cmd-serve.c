/*
 * cli/cmd-serve.c - upaas serve: the HTTP API, git webhooks and the web
 * dashboard (serve/serve.h does it all).
 */
#include <errno.h>
#include <getopt.h>
#include <string.h>

#include "cli/cli.h"
#include "serve/serve.h"

static void serve_help(FILE *out)
{
	fputs("usage: upaas serve [--listen ADDRESS:PORT] [--web-dir DIR]\n"
	      "\n"
	      "Serves the JSON API (/api/v1/...), the git webhooks (/hooks/github,\n"
	      "/hooks/gitlab, /hooks/gitea) and the web dashboard (/) on the queue of\n"
	      "the admin config, and delivers outgoing notifications. Runs until\n"
	      "SIGTERM or SIGINT.\n"
	      "\n"
	      "Options:\n"
	      "  --listen A:P   address and port (default serve.listen, 127.0.0.1:7373)\n"
	      "  --web-dir DIR  the dashboard's files (default serve.web_dir)\n"
	      "  -h, --help     this help\n"
	      "\n"
	      "Tokens: 'upaas token add NAME --scope read|build|admin'. Webhook secrets:\n"
	      "'upaas app show --json NAME'.\n",
	      out);
}

int cmd_serve(struct cli *c, int argc, char **argv)
{
	enum { O_LISTEN = 256, O_WEB_DIR };
	static const struct option longopts[] = {
		{ "listen", required_argument, NULL, O_LISTEN },
		{ "web-dir", required_argument, NULL, O_WEB_DIR },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct serve_opts o = { 0 };
	int ch;
	optind = 0;
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
		case O_LISTEN: o.listen = optarg; break;
		case O_WEB_DIR: o.web_dir = optarg; break;
		case 'h': serve_help(stdout); return 0;
		default: serve_help(stderr); return 2;
		}
	}
	if (optind != argc)
		return cli_usage("usage: upaas serve [--listen ADDRESS:PORT] [--web-dir DIR]");
	if (cli_config(c) < 0)
		return 1;
	_cleanup_err_ struct err e = ERR_INIT;
	int r = config_storage_secrets(&c->cfg.storage, &e);
	if (r >= 0)
		r = serve_run(&c->cfg, &o, &e);
	return r < 0 ? cli_fail(&e, "upaas serve failed") : 0;
}
