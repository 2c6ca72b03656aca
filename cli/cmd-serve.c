/*
 * cli/cmd-serve.c - upaas serve: the HTTP API, git webhooks and the web
 * dashboard (serve/serve.h does it all).
 */
#include <errno.h>
#include <string.h>

#include "cli/cli.h"
#include "serve/serve.h"

enum { O_LISTEN = CLI_LONG, O_WEB_DIR };

static int serve_cmd(struct cli *c, const struct cli_args *a)
{
	struct serve_opts o = { 0 };

	o.listen = cli_arg(a, O_LISTEN);
	o.web_dir = cli_arg(a, O_WEB_DIR);
	if (cli_config(c) < 0)
		return 1;
	_cleanup_err_ struct err e = ERR_INIT;
	int r = config_storage_secrets(&c->cfg.storage, &e);
	if (r >= 0)
		r = serve_run(&c->cfg, &o, &e);
	return r < 0 ? cli_fail(&e, "upaas serve failed") : 0;
}

const struct cli_cmd cmd_serve = {
	.name = "serve",
	.summary = "HTTP API, git webhooks and the web dashboard",
	.usage = "[--listen ADDR:PORT] [--web-dir DIR]",
	.help = "Serves the JSON API (/api/v1/...), the git webhooks (/hooks/github,\n"
		"/hooks/gitlab, /hooks/gitea) and the web dashboard (/) on the queue of\n"
		"the admin config, and delivers outgoing notifications. Runs until\n"
		"SIGTERM or SIGINT.",
	.footer = "Tokens: 'upaas token add NAME --scope read|build|admin'. Webhook secrets:\n"
		  "'upaas app show --json NAME'.",
	.opts = (const struct cli_opt[]){
		{ "listen", O_LISTEN, "ADDR:PORT", "the address and port to listen on\n"
		  "(default serve.listen, 127.0.0.1:7373)", NULL },
		{ "web-dir", O_WEB_DIR, "DIR", "the dashboard's files (default serve.web_dir)",
		  cli_values_dir },
		{ NULL },
	},
	.run = serve_cmd,
};
