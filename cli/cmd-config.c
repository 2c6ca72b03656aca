/*
 * cli/cmd-config.c - upaas config check|show: validate the admin config or
 * an app's metadata, and print the effective configuration.
 */
#include <errno.h>
#include <string.h>

#include <json-c/json.h>
#include <libconfig.h>

#include "actions/actions.h"
#include "cli/cli.h"
#include "sandbox/sandbox.h"

/* ---------------------------------------------------------------- JSON */

static struct json_object *setting_to_json(const config_setting_t *s)
{
	switch (config_setting_type(s)) {
	case CONFIG_TYPE_GROUP: {
		struct json_object *o = json_object_new_object();
		for (int i = 0; i < config_setting_length(s); i++) {
			const config_setting_t *e = config_setting_get_elem(s, i);
			json_object_object_add(o, config_setting_name(e), setting_to_json(e));
		}
		return o;
	}
	case CONFIG_TYPE_ARRAY:
	case CONFIG_TYPE_LIST: {
		struct json_object *a = json_object_new_array();
		for (int i = 0; i < config_setting_length(s); i++)
			json_object_array_add(a, setting_to_json(config_setting_get_elem(s, i)));
		return a;
	}
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64:
		return json_object_new_int64(config_setting_get_int64(s));
	case CONFIG_TYPE_FLOAT:
		return json_object_new_double(config_setting_get_float(s));
	case CONFIG_TYPE_BOOL:
		return json_object_new_boolean(config_setting_get_bool(s));
	case CONFIG_TYPE_STRING:
		return json_object_new_string(config_setting_get_string(s));
	default:
		return NULL;
	}
}

static struct json_object *diags_to_json(const char *file, const struct diags *d)
{
	struct json_object *o = json_object_new_object();
	struct json_object *list = json_object_new_array();

	json_object_object_add(o, "file", file ? json_object_new_string(file) : NULL);
	json_object_object_add(o, "ok", json_object_new_boolean(d->n == 0));
	for (size_t i = 0; i < d->n; i++) {
		struct json_object *p = json_object_new_object();
		json_object_object_add(p, "file", json_object_new_string(d->v[i].file));
		json_object_object_add(p, "line", json_object_new_int(d->v[i].line));
		json_object_object_add(p, "message", json_object_new_string(d->v[i].msg));
		json_object_array_add(list, p);
	}
	json_object_object_add(o, "problems", list);
	return o;
}

/* ------------------------------------------------------------- commands */

/* Prints the outcome of a check; returns the exit status. */
static int check_report(const char *what, const struct diags *d, bool json)
{
	if (json) {
		cli_json_print(diags_to_json(what, d));
	} else if (d->n) {
		_cleanup_buf_ struct buf out = BUF_INIT;
		diags_format(d, &out);
		fputs_safe(out.p, stderr);   /* may quote an app's metadata */
	} else {
		printf("%s: ok\n", what);
	}
	return d->n ? 1 : 0;
}

static int config_check(struct cli *c, const char *file, const char *metadata, bool json)
{
	struct config cfg;
	struct diags d = DIAGS_INIT;
	int rc;

	/* load directly rather than through cli_config(): every problem is
	 * reported, and a broken admin config is the result, not an error */
	config_load(&cfg, file ? file : c->config_path, &d);
	if (!d.n) {
		/* what only the sandbox knows: the system call names */
		struct sandbox_policy pol;
		_cleanup_err_ struct err e = ERR_INIT;
		actions_sandbox_policy(&cfg, &pol);
		if (sandbox_check_policy(&pol, &e) < 0)
			diags_add(&d, cfg.file ? cfg.file : "(built-in defaults)", 0, "%s", err_msg(&e));
	}
	if (metadata && !d.n) {
		struct metadata m;
		metadata_load(&m, metadata, &cfg, &d);
		metadata_free(&m);
		rc = check_report(metadata, &d, json);
	} else {
		rc = check_report(cfg.file ? cfg.file : "(built-in defaults)", &d, json);
	}
	diags_free(&d);
	config_free(&cfg);
	return rc;
}

static int config_show_cmd(struct cli *c, bool json)
{
	_cleanup_buf_ struct buf out = BUF_INIT;
	int r = cli_config(c);

	if (r < 0)
		return 1;
	config_show(&c->cfg, &out);
	if (!json) {
		fputs(out.p, stdout);
		return 0;
	}
	/* JSON from the same text: one writer, and the secrets stay masked */
	config_t cf;
	config_init(&cf);
	if (!config_read_string(&cf, out.p)) {
		fprintf(stderr, "upaas: error: cannot convert the config to JSON: line %d: %s\n",
			config_error_line(&cf), config_error_text(&cf));
		config_destroy(&cf);
		return 1;
	}
	struct json_object *o = setting_to_json(config_root_setting(&cf));
	json_object_object_add(o, "file", c->cfg.file ? json_object_new_string(c->cfg.file) : NULL);
	cli_json_print(o);
	config_destroy(&cf);
	return 0;
}

static int config_check_run(struct cli *c, const struct cli_args *a)
{
	return config_check(c, a->argc ? a->argv[0] : NULL, cli_arg(a, 'm'), cli_flag(a, 'j'));
}

static int config_show_run(struct cli *c, const struct cli_args *a)
{
	return config_show_cmd(c, cli_flag(a, 'j'));
}

static const struct cli_cmd config_check_sub = {
	.name = "check",
	.summary = "validate the admin config or an app's metadata",
	.usage = "[--json] [--metadata FILE] [FILE]",
	.help = "Validates the admin config (FILE, else -c, $UPAAS_CONFIG or the default\n"
		UPAAS_DEFAULT_CONFIG "), or with --metadata an app's .upaas.cfg against\n"
		"it, and prints every problem as 'file:line: message'; exits 0 when it is\n"
		"fine, 1 otherwise.",
	.opts = (const struct cli_opt[]){
		{ "metadata", 'm', "FILE", "check an app's .upaas.cfg against the admin config",
		  cli_values_file },
		{ "json", 'j', NULL, "machine-readable output", NULL },
		{ NULL },
	},
	.max_args = 1,
	.values = { cli_values_file },
	.run = config_check_run,
};

static const struct cli_cmd config_show_sub = {
	.name = "show",
	.summary = "print the effective admin config",
	.usage = "[--json]",
	.help = "Prints the effective admin config (defaults included) in libconfig syntax;\n"
		"secrets are shown as \"********\".",
	.opts = (const struct cli_opt[]){
		{ "json", 'j', NULL, "machine-readable output", NULL },
		{ NULL },
	},
	.run = config_show_run,
};

const struct cli_cmd cmd_config = {
	.name = "config",
	.summary = "check or show the admin config",
	.usage = "COMMAND [OPTIONS] [ARGS...]",
	.help = "Checks or shows the admin config.",
	.footer = "See upaas.cfg(5) and upaas-metadata(5).",
	.subs = (const struct cli_cmd *const[]){ &config_check_sub, &config_show_sub, NULL },
};
