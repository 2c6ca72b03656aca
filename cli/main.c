/*
 * cli/main.c - upaas: the top-level command table, global options,
 * --version, and the state every command shares (config, storage).
 */
#include <errno.h>
#include <string.h>

#include <json-c/json.h>

#include "archive/archive.h"
#include "cli/cli.h"
#include "package/package.h"
#include "queue/queue.h"

static void cli_log_sink(enum log_level lvl, const char *msg, void *data)
{
	static const char *const prefix[] = { "error: ", "warning: ", "", "debug: " };
	if (progress_enabled)
		fputs("\r\033[K", stderr);
	/* messages may quote what apps, metadata or storage said */
	fprintf(stderr, "upaas: %s", prefix[lvl]);
	fputs_safe(msg, stderr);
	fputc('\n', stderr);
}

static void quiet_log_sink(enum log_level lvl, const char *msg, void *data)
{
}

int cli_config(struct cli *c)
{
	if (c->cfg_loaded)
		return 0;
	struct diags d = DIAGS_INIT;
	int r = config_load(&c->cfg, c->config_path, &d);
	if (r >= 0 && d.n == 0 && c->completing && !c->cfg.file)
		r = -ENOENT;   /* no config file: no dynamic words */
	if (r < 0 || d.n > 0) {
		if (!c->completing) {
			_cleanup_buf_ struct buf out = BUF_INIT;
			diags_format(&d, &out);
			fputs(out.p, stderr);
		}
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
			if (!c->completing)
				cli_fail(&e, "cannot open storage");
			return r;
		}
	}
	*ret = c->storage;
	return 0;
}

int cli_trust(struct cli *c, const struct sign_trust **ret)
{
	if (!c->trust) {
		_cleanup_err_ struct err e = ERR_INIT;
		int r = cli_config(c);
		if (r < 0)
			return r;
		struct sign_trust *t = xcalloc(1, sizeof(*t));
		r = sign_trust_config(t, &c->cfg, &e);
		if (r < 0) {
			free(t);
			if (!c->completing)
				cli_fail(&e, "cannot load the trusted keys");
			return r;
		}
		c->trust = t;
	}
	*ret = c->trust;
	return 0;
}

int cli_queue(struct cli *c, struct queue **ret)
{
	_cleanup_err_ struct err e = ERR_INIT;
	int r = cli_config(c);
	if (r < 0)
		return r;
	r = queue_open(ret, &c->cfg, &e);
	if (r < 0)
		cli_fail(&e, "cannot open the queue");
	return r;
}

void cli_queue_closep(struct queue **q)
{
	queue_close(*q);
}

void cli_json_print(struct json_object *o)
{
	puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
						      JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
}

int cli_fail(const struct err *e, const char *fallback)
{
	const char *m = e && e->code ? err_msg(e) : fallback;
	if (progress_enabled)
		fputs("\r\033[K", stderr);
	fputs("upaas: error: ", stderr);
	fputs_safe(m && *m ? m : "failed", stderr);
	fputc('\n', stderr);
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

/* ------------------------------------------------------------ version */

static void join(struct buf *out, const char *key, const struct strv *v)
{
	buf_addf(out, " %s=", key);
	for (size_t i = 0; i < v->n; i++)
		buf_addf(out, "%s%s", i ? "," : "", v->v[i]);
	if (!v->n)
		buf_adds(out, "none");
}

/* "upaas VERSION" and what this binary was built with, read from the
 * handler and backend tables and from configure's config.h. */
static void print_version(void)
{
	_cleanup_strv_ struct strv handlers = STRV_INIT;
	_cleanup_strv_ struct strv backends = STRV_INIT;
	_cleanup_strv_ struct strv filters = STRV_INIT;
	_cleanup_buf_ struct buf line = BUF_INIT;

	storage_handler_names(&handlers);
	queue_backend_names(&backends);
	archive_filter_names(&filters);
	buf_adds(&line, "features:");
	join(&line, "storage", &handlers);
	join(&line, "queue", &backends);
	join(&line, "archive", &filters);
#ifdef UPAAS_SANITIZERS
	buf_adds(&line, " sanitizers=" UPAAS_SANITIZERS);
#endif
	buf_addf(&line, " config=%s", UPAAS_DEFAULT_CONFIG);
	printf("%s %s\n%s\n", PACKAGE_NAME, PACKAGE_VERSION, line.p);
}

/* ---------------------------------------------------------- the table */

static const struct cli_cmd root;

static int complete_run(struct cli *c, const struct cli_args *a)
{
	log_set_sink(quiet_log_sink, NULL);
	progress_enabled = false;
	return cli_complete(c, &root, a->argc, a->argv);
}

static const struct cli_cmd cmd_complete = {
	.name = "__complete",
	.summary = "print the completions of the last word (for shell completion)",
	.usage = "[WORDS...]",
	.max_args = -1,
	.flags = CLI_HIDDEN | CLI_RAW,
	.run = complete_run,
};

/* The global options; returns -1 to go on to the command. */
static int root_run(struct cli *c, const struct cli_args *a)
{
	c->config_path = cli_arg(a, 'c');
	c->quiet = cli_flag(a, 'q');
	c->verbose = (int)cli_count(a, 'v');
	if (cli_flag(a, 'V')) {
		print_version();
		return 0;
	}
	if (c->quiet)
		log_max_level = LOG_WARN;
	else if (c->verbose)
		log_max_level = c->verbose > 1 ? LOG_DEBUG : LOG_INFO;
	progress_enabled = !c->quiet && isatty(STDERR_FILENO);
	return -1;
}

static const struct cli_opt root_opts[] = {
	{ "config", 'c', "FILE", "admin config (default $UPAAS_CONFIG, else " UPAAS_DEFAULT_CONFIG ")",
	  cli_values_file },
	{ "quiet", 'q', NULL, "no progress, warnings and errors only", NULL },
	{ "verbose", 'v', NULL, "more detail (repeat for debug)", NULL },
	{ "help", 'h', NULL, "this help; 'upaas COMMAND --help' for a command", NULL },
	{ "version", 'V', NULL, "print the version and the features built in", NULL },
	{ NULL },
};

static const struct cli_cmd root = {
	.name = "upaas",
	.usage = "[-c FILE] [-q] [-v] COMMAND [ARGS...]",
	.summary = "a chroot build farm",
	.help = "A chroot build farm: builds app repositories into self-contained packages\n"
		"and deploys them atomically. Options of a command may come before or after\n"
		"its operands; '--' ends the options.",
	.footer = "See upaas(1), upaas.cfg(5) and upaas-metadata(5).",
	.opts = root_opts,
	.flags = CLI_BRIEF,
	.run = root_run,
	.subs = (const struct cli_cmd *const[]){
		&cmd_build, &cmd_package, &cmd_image, &cmd_app, &cmd_queue, &cmd_worker,
		&cmd_serve, &cmd_token,
		&cmd_deploy, &cmd_rollback, &cmd_undeploy, &cmd_status, &cmd_watch, &cmd_exec,
		&cmd_remount, &cmd_fleet,
		&cmd_storage, &cmd_config, &cmd_key, &cmd_complete, NULL,
	},
};

/*
 * The credentials of a URL on the command line (upaas app add --repo
 * https://user:token@host/...) are hidden from ps: each such argument is
 * copied, and its userinfo in the original memory, which is what
 * /proc/<pid>/cmdline shows, is overwritten with '*'. Returns the copies.
 */
static char **argv_hide_secrets(int argc, char **argv)
{
	char **v = xcalloc((size_t)argc + 1, sizeof(*v));
	for (int i = 0; i < argc; i++) {
		char *a = argv[i], *auth = strstr(a, "://");
		v[i] = a;
		if (!auth || i == 0)
			continue;
		auth += 3;
		char *at = NULL;
		for (char *p = auth; *p && !strchr("/?#", *p); p++)
			if (*p == '@')
				at = p;
		if (!at || at == auth)
			continue;
		v[i] = xstrdup(a);
		memset(auth, '*', (size_t)(at - auth));
	}
	return v;
}

int main(int argc, char **argv)
{
	struct cli c = { 0 };

	/* git's askpass for the credentials of a source URL (common/askpass.c) */
	int asked = askpass_main(argc, argv);
	if (asked >= 0)
		return asked;
	log_set_sink(cli_log_sink, NULL);
	crash_init();
	char **orig = argv;
	argv = argv_hide_secrets(argc, argv);
	int rc = cli_main(&c, &root, argc, argv);
	/* the copies argv_hide_secrets made, and its array (for LeakSanitizer) */
	for (int i = 0; i < argc; i++)
		if (argv[i] != orig[i])
			free(argv[i]);
	free(argv);
	if (c.storage) {
		/* what the command cost the storage (-vv; the fleet bench reads it) */
		struct storage_counters sc;
		_cleanup_buf_ struct buf line = BUF_INIT;
		storage_get_counters(c.storage, &sc);
		storage_counters_format(&sc, &line);
		log_debug("storage: %s", line.p);
		storage_close(c.storage);
	}
	if (c.trust) {
		sign_trust_free(c.trust);
		free(c.trust);
	}
	if (c.cfg_loaded)
		config_free(&c.cfg);
	fflush(stdout);
	return rc;
}
