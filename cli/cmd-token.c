/*
 * cli/cmd-token.c - upaas token: API tokens of `upaas serve`.
 */
#include <errno.h>
#include <string.h>

#include <json-c/json.h>

#include "cli/cli.h"
#include "queue/queue.h"

enum { O_SCOPE = CLI_LONG, O_JSON };

static void fmt_ms(int64_t ms, char out[32])
{
	if (ms)
		time_iso8601(ms / 1000, out);
	else
		snprintf(out, 32, "-");
}

static int t_add(struct cli *c, const struct cli_args *a)
{
	enum token_scope scope = TOKEN_READ;
	const char *arg = cli_arg(a, O_SCOPE);
	if (arg && token_scope_parse(arg, &scope) < 0)
		return cli_usage("--scope: want read, build or admin, not '%s'", arg);
	_cleanup_queue_ struct queue *q = NULL;
	if (cli_queue(c, &q) < 0)
		return 1;
	_cleanup_err_ struct err e = ERR_INIT;
	char *token = NULL;
	int r = queue_token_add(q, a->argv[0], scope, &token, &e);
	if (r < 0)
		return cli_fail(&e, "cannot make the token");
	fprintf(stderr, "upaas: token '%s' (scope %s); it is shown only now:\n", a->argv[0],
		token_scope_name(scope));
	printf("%s\n", token);
	explicit_bzero(token, strlen(token));
	free(token);
	return 0;
}

static int t_list(struct cli *c, const struct cli_args *a)
{
	_cleanup_queue_ struct queue *q = NULL;
	if (cli_queue(c, &q) < 0)
		return 1;
	_cleanup_err_ struct err e = ERR_INIT;
	struct queue_token *v = NULL;
	size_t n = 0;
	int r = queue_token_list(q, &v, &n, &e);
	if (r < 0)
		return cli_fail(&e, "cannot list tokens");
	if (cli_flag(a, O_JSON)) {
		struct json_object *arr = json_object_new_array();
		for (size_t i = 0; i < n; i++) {
			struct json_object *t = json_object_new_object();
			char cr[32], u[32];
			fmt_ms(v[i].created, cr);
			fmt_ms(v[i].last_used, u);
			json_object_object_add(t, "name", json_object_new_string(v[i].name));
			json_object_object_add(t, "scope",
					       json_object_new_string(token_scope_name(v[i].scope)));
			json_object_object_add(t, "created", json_object_new_string(cr));
			json_object_object_add(t, "last_used",
					       v[i].last_used ? json_object_new_string(u) : NULL);
			json_object_array_add(arr, t);
		}
		puts(json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PRETTY |
							 JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(arr);
	} else {
		printf("%-24s %-6s %-20s %s\n", "NAME", "SCOPE", "CREATED", "LAST USED");
		for (size_t i = 0; i < n; i++) {
			char cr[32], u[32];
			fmt_ms(v[i].created, cr);
			fmt_ms(v[i].last_used, u);
			printf("%-24s %-6s %-20s %s\n", v[i].name, token_scope_name(v[i].scope), cr,
			       u);
		}
	}
	queue_tokens_free(v, n);
	return 0;
}

static int t_rm(struct cli *c, const struct cli_args *a)
{
	_cleanup_queue_ struct queue *q = NULL;
	if (cli_queue(c, &q) < 0)
		return 1;
	_cleanup_err_ struct err e = ERR_INIT;
	int r = queue_token_remove(q, a->argv[0], &e);
	if (r < 0)
		return cli_fail(&e, "cannot revoke the token");
	return 0;
}

/* The names of the tokens (never the tokens: only their hashes are kept). */
static void values_tokens(struct cli *c, const struct cli_args *a, struct strv *out)
{
	_cleanup_err_ struct err e = ERR_INIT;
	_cleanup_queue_ struct queue *q = NULL;
	struct queue_token *v = NULL;
	size_t n = 0;

	if (cli_config(c) < 0 || queue_open_existing(&q, &c->cfg, &e) < 0 ||
	    queue_token_list(q, &v, &n, &e) < 0)
		return;
	for (size_t i = 0; i < n; i++)
		strv_push(out, v[i].name);
	queue_tokens_free(v, n);
}

static void values_scopes(struct cli *c, const struct cli_args *a, struct strv *out)
{
	for (int s = TOKEN_READ; s <= TOKEN_ADMIN; s++)
		strv_push(out, token_scope_name((enum token_scope)s));
}

static const struct cli_cmd token_add = {
	.name = "add",
	.summary = "make a token for the HTTP API of 'upaas serve':\n"
		   "printed once, only its hash is kept",
	.usage = "NAME [--scope read|build|admin]",
	.help = "Makes an API token NAME for 'upaas serve'. The token is printed once, alone\n"
		"on the last line of stdout; only its hash is kept. Clients send it as\n"
		"'Authorization: Bearer TOKEN'.",
	.opts = (const struct cli_opt[]){
		{ "scope", O_SCOPE, "S", "read (look), build (also queue, cancel, retry) or\n"
		  "admin (also add and remove apps); default read", values_scopes },
		{ NULL },
	},
	.min_args = 1,
	.max_args = 1,
	.run = t_add,
};

static const struct cli_cmd token_list = {
	.name = "list",
	.aliases = (const char *const[]){ "ls", NULL },
	.summary = "the tokens: name, scope, created, last used",
	.usage = "[--json]",
	.opts = (const struct cli_opt[]){
		{ "json", O_JSON, NULL, "machine-readable output", NULL },
		{ NULL },
	},
	.run = t_list,
};

static const struct cli_cmd token_rm = {
	.name = "rm",
	.aliases = (const char *const[]){ "remove", NULL },
	.summary = "revoke a token",
	.usage = "NAME",
	.min_args = 1,
	.max_args = 1,
	.values = { values_tokens },
	.run = t_rm,
};

const struct cli_cmd cmd_token = {
	.name = "token",
	.summary = "add, list or revoke API tokens of 'upaas serve'",
	.usage = "COMMAND [OPTIONS] [ARGS...]",
	.help = "The API tokens of 'upaas serve', kept hashed in the queue.",
	.footer = "Clients send the token as 'Authorization: Bearer TOKEN'.",
	.subs = (const struct cli_cmd *const[]){ &token_add, &token_list, &token_rm, NULL },
};
