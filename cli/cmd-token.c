/*
 * cli/cmd-token.c - upaas token: API tokens of `upaas serve`.
 */
#include <errno.h>
#include <getopt.h>
#include <string.h>

#include <json-c/json.h>

#include "cli/cli.h"
#include "queue/queue.h"

static void token_help(FILE *out)
{
	fputs("usage: upaas token COMMAND [OPTIONS] [ARGS...]\n"
	      "\n"
	      "Commands:\n"
	      "  add NAME [--scope S]   make a token for the HTTP API of 'upaas serve';\n"
	      "                         it is printed once, alone on the last line, and\n"
	      "                         only its hash is kept\n"
	      "  list [--json]          the tokens: name, scope, created, last used\n"
	      "  rm NAME                revoke a token\n"
	      "\n"
	      "Options:\n"
	      "  --scope S      add: read (look), build (also queue, cancel, retry) or\n"
	      "                 admin (also add and remove apps); default read\n"
	      "  --json         list: machine-readable output\n"
	      "  -h, --help     this help\n"
	      "\n"
	      "Clients send the token as 'Authorization: Bearer TOKEN'.\n",
	      out);
}

struct topts {
	enum token_scope scope;
	bool json;
};

enum { O_SCOPE = 256, O_JSON };

static int parse_opts(int argc, char **argv, struct topts *o)
{
	static const struct option longopts[] = {
		{ "scope", required_argument, NULL, O_SCOPE },
		{ "json", no_argument, NULL, O_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;
	optind = 0;
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
		case O_SCOPE:
			if (token_scope_parse(optarg, &o->scope) < 0)
				return cli_usage("--scope: want read, build or admin, not '%s'", optarg);
			break;
		case O_JSON: o->json = true; break;
		case 'h': token_help(stdout); return 0;
		default: token_help(stderr); return 2;
		}
	}
	return -1;
}

static void fmt_ms(int64_t ms, char out[32])
{
	if (ms)
		time_iso8601(ms / 1000, out);
	else
		snprintf(out, 32, "-");
}

static int t_add(struct queue *q, const struct topts *o, int argc, char **argv)
{
	if (argc - optind != 1)
		return cli_usage("usage: upaas token add NAME [--scope read|build|admin]");
	_cleanup_err_ struct err e = ERR_INIT;
	char *token = NULL;
	int r = queue_token_add(q, argv[optind], o->scope, &token, &e);
	if (r < 0)
		return cli_fail(&e, "cannot make the token");
	fprintf(stderr, "upaas: token '%s' (scope %s); it is shown only now:\n", argv[optind],
		token_scope_name(o->scope));
	printf("%s\n", token);
	explicit_bzero(token, strlen(token));
	free(token);
	return 0;
}

static int t_list(struct queue *q, const struct topts *o, int argc, char **argv)
{
	if (argc != optind)
		return cli_usage("usage: upaas token list [--json]");
	_cleanup_err_ struct err e = ERR_INIT;
	struct queue_token *v = NULL;
	size_t n = 0;
	int r = queue_token_list(q, &v, &n, &e);
	if (r < 0)
		return cli_fail(&e, "cannot list tokens");
	if (o->json) {
		struct json_object *a = json_object_new_array();
		for (size_t i = 0; i < n; i++) {
			struct json_object *t = json_object_new_object();
			char c[32], u[32];
			fmt_ms(v[i].created, c);
			fmt_ms(v[i].last_used, u);
			json_object_object_add(t, "name", json_object_new_string(v[i].name));
			json_object_object_add(t, "scope",
					       json_object_new_string(token_scope_name(v[i].scope)));
			json_object_object_add(t, "created", json_object_new_string(c));
			json_object_object_add(t, "last_used",
					       v[i].last_used ? json_object_new_string(u) : NULL);
			json_object_array_add(a, t);
		}
		puts(json_object_to_json_string_ext(a, JSON_C_TO_STRING_PRETTY |
							       JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(a);
	} else {
		printf("%-24s %-6s %-20s %s\n", "NAME", "SCOPE", "CREATED", "LAST USED");
		for (size_t i = 0; i < n; i++) {
			char c[32], u[32];
			fmt_ms(v[i].created, c);
			fmt_ms(v[i].last_used, u);
			printf("%-24s %-6s %-20s %s\n", v[i].name, token_scope_name(v[i].scope), c, u);
		}
	}
	queue_tokens_free(v, n);
	return 0;
}

static int t_rm(struct queue *q, const struct topts *o, int argc, char **argv)
{
	if (argc - optind != 1)
		return cli_usage("usage: upaas token rm NAME");
	_cleanup_err_ struct err e = ERR_INIT;
	int r = queue_token_remove(q, argv[optind], &e);
	if (r < 0)
		return cli_fail(&e, "cannot revoke the token");
	return 0;
}

static void queue_closep(struct queue **q)
{
	queue_close(*q);
}

static const struct {
	const char *name;
	int (*fn)(struct queue *q, const struct topts *o, int argc, char **argv);
} subs[] = {
	{ "add", t_add },
	{ "list", t_list },
	{ "ls", t_list },
	{ "rm", t_rm },
	{ "remove", t_rm },
};

int cmd_token(struct cli *c, int argc, char **argv)
{
	if (argc < 2 || cli_is_help(argv[1])) {
		token_help(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	for (size_t i = 0; i < ARRAY_SIZE(subs); i++) {
		if (strcmp(argv[1], subs[i].name))
			continue;
		struct topts o = { .scope = TOKEN_READ };
		int r = parse_opts(argc - 1, argv + 1, &o);
		if (r >= 0)
			return r;
		if (cli_config(c) < 0)
			return 1;
		_cleanup_err_ struct err e = ERR_INIT;
		_cleanup_(queue_closep) struct queue *q = NULL;
		r = queue_open(&q, &c->cfg, &e);
		if (r < 0)
			return cli_fail(&e, "cannot open the queue");
		return subs[i].fn(q, &o, argc - 1, argv + 1);
	}
	return cli_usage("unknown token command '%s' (see upaas token --help)", argv[1]);
}
