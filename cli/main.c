/*
 * cli/main.c - upaas: global options and the command dispatcher.
 */
#include <errno.h>
#include <getopt.h>
#include <string.h>

#include "cli/cli.h"

struct command {
	const char *name;
	int (*fn)(struct cli *c, int argc, char **argv);
	const char *summary;
};

static const struct command commands[] = {
	{ "build", cmd_build, "build an app package (incremental unless --fresh)" },
	{ "package", cmd_package, "list, show, verify, fetch or prune packages" },
	{ "image", cmd_image, "create, list, show, remove base OS images; run a command in one" },
	{ "app", cmd_app, "register, list, show or remove apps" },
	{ "queue", cmd_queue, "add, list, show, follow, cancel or retry queued builds" },
	{ "worker", cmd_worker, "run queued builds" },
	{ "deploy", cmd_deploy, "fetch, verify and switch an app to a package" },
	{ "rollback", cmd_rollback, "switch an app back to an earlier revision" },
	{ "undeploy", cmd_undeploy, "take an app off this host" },
	{ "status", cmd_status, "show deployed revisions and history" },
	{ "watch", cmd_watch, "deploy new packages as they appear" },
	{ "exec", cmd_exec, "run a command in an app's current revision" },
	{ "storage", cmd_storage, "check the storage handler, list objects" },
	{ "config", cmd_config, "check or show the admin config" },
	{ "key", cmd_key, "generate or show signing keys; sign or verify a file" },
	{ NULL, NULL, NULL },
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: upaas [-c FILE] [-q] [-v] COMMAND [ARGS...]\n"
		"\n"
		"A chroot build farm: builds app repositories into self-contained packages\n"
		"and deploys them atomically.\n"
		"\n"
		"Options:\n"
		"  -c, --config FILE  admin config (default $UPAAS_CONFIG, else %s)\n"
		"  -q, --quiet        no progress, warnings and errors only\n"
		"  -v, --verbose      more detail (repeat for debug)\n"
		"  -h, --help         this help; 'upaas COMMAND --help' for a command\n"
		"  -V, --version      print the version\n"
		"\n"
		"Commands:\n",
		UPAAS_DEFAULT_CONFIG);
	for (const struct command *cmd = commands; cmd->name; cmd++)
		if (cmd->fn)
			fprintf(out, "  %-10s %s\n", cmd->name, cmd->summary);
	fprintf(out, "\nSee upaas(1), upaas.cfg(5) and upaas-metadata(5).\n");
}

static void cli_log_sink(enum log_level lvl, const char *msg, void *data)
{
	static const char *const prefix[] = { "error: ", "warning: ", "", "debug: " };
	if (progress_enabled)
		fputs("\r\033[K", stderr);
	fprintf(stderr, "upaas: %s%s\n", prefix[lvl], msg);
}

int cli_config(struct cli *c)
{
	if (c->cfg_loaded)
		return 0;
	struct diags d = DIAGS_INIT;
	int r = config_load(&c->cfg, c->config_path, &d);
	if (r < 0 || d.n > 0) {
		_cleanup_buf_ struct buf out = BUF_INIT;
		diags_format(&d, &out);
		fputs(out.p, stderr);
		diags_free(&d);
		config_free(&c->cfg);
		return r < 0 ? r : -EINVAL;
	}
	diags_free(&d);
	c->cfg_loaded = true;
	return 0;
}

int cli_storage(struct cli *c, struct storage **ret)
{
	if (!c->storage) {
		_cleanup_err_ struct err e = ERR_INIT;
		int r = cli_config(c);
		if (r < 0)
			return r;
		r = config_storage_secrets(&c->cfg.storage, &e);
		if (r >= 0)
			r = storage_open(&c->storage, &c->cfg.storage, c->cfg.paths.state, &e);
		if (r < 0) {
			cli_fail(&e, "cannot open storage");
			return r;
		}
	}
	*ret = c->storage;
	return 0;
}

int cli_fail(const struct err *e, const char *fallback)
{
	const char *m = e && e->code ? err_msg(e) : fallback;
	if (progress_enabled)
		fputs("\r\033[K", stderr);
	fprintf(stderr, "upaas: error: %s\n", m && *m ? m : "failed");
	return 1;
}

int cli_usage(const char *fmt, ...)
{
	va_list ap;
	fputs("upaas: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 2;
}

bool cli_is_help(const char *arg)
{
	return arg && (!strcmp(arg, "-h") || !strcmp(arg, "--help"));
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct cli c = { 0 };
	int o;

	/* git's askpass for the credentials of a source URL (common/askpass.c) */
	int asked = askpass_main(argc, argv);
	if (asked >= 0)
		return asked;
	log_set_sink(cli_log_sink, NULL);
	while ((o = getopt_long(argc, argv, "+c:qvhV", opts, NULL)) != -1) {
		switch (o) {
		case 'c': c.config_path = optarg; break;
		case 'q': c.quiet = true; break;
		case 'v': c.verbose++; break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("upaas %s\n", PACKAGE_VERSION); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	if (c.quiet)
		log_max_level = LOG_WARN;
	else if (c.verbose)
		log_max_level = c.verbose > 1 ? LOG_DEBUG : LOG_INFO;
	progress_enabled = !c.quiet && isatty(STDERR_FILENO);

	const char *name = argv[optind];
	for (const struct command *cmd = commands; cmd->name; cmd++) {
		if (strcmp(cmd->name, name) || !cmd->fn)
			continue;
		/* each command group sees argv starting at its own name, and
		 * parses it with getopt_long from a fresh start (optind = 0) */
		int sub_argc = argc - optind;
		char **sub_argv = argv + optind;
		optind = 0;
		int rc = cmd->fn(&c, sub_argc, sub_argv);
		if (c.storage)
			storage_close(c.storage);
		if (c.cfg_loaded)
			config_free(&c.cfg);
		fflush(stdout);
		return rc;
	}
	return cli_usage("unknown command '%s' (see 'upaas --help')", name);
}
