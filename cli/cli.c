/*
 * cli/cli.c - the one option parser and dispatcher of upaas, the help
 * generator and the completion walker, all three driven by the command
 * tables (struct cli_cmd, cli/cli.h).
 */
#include <errno.h>
#include <string.h>
#include <sys/param.h>

#include "cli/cli.h"

/* Every command takes -h/--help; a table may define its own to change the text. */
static const struct cli_opt help_opt = { "help", 'h', NULL, "this help", NULL };

/* ------------------------------------------------------------ lookups */

/* The i-th option of cmd, the implicit --help last; NULL past the end. */
static const struct cli_opt *opt_at(const struct cli_cmd *cmd, size_t i)
{
	bool own_help = false;
	size_t n = 0;

	for (const struct cli_opt *o = cmd->opts; o && o->name; o++, n++) {
		if (n == i)
			return o;
		own_help |= !strcmp(o->name, "help");
	}
	return i == n && !own_help ? &help_opt : NULL;
}

static bool opt_is_help(const struct cli_opt *o)
{
	return !strcmp(o->name, "help");
}

const struct cli_opt *cli_opt_named(const struct cli_cmd *cmd, const char *name)
{
	const struct cli_opt *o;

	for (size_t i = 0; (o = opt_at(cmd, i)); i++)
		if (!strcmp(o->name, name))
			return o;
	return NULL;
}

/* The long option name[0..len) of cmd: an exact match, else the one option
 * it is a prefix of (as getopt_long); NULL when none or several. */
static const struct cli_opt *find_long(const struct cli_cmd *cmd, const char *name, size_t len,
				       bool *ret_ambiguous)
{
	const struct cli_opt *o, *found = NULL;
	size_t matches = 0;

	*ret_ambiguous = false;
	for (size_t i = 0; (o = opt_at(cmd, i)); i++) {
		if (strncmp(o->name, name, len))
			continue;
		if (strlen(o->name) == len)
			return o;
		found = o;
		matches++;
	}
	*ret_ambiguous = matches > 1;
	return matches == 1 ? found : NULL;
}

static const struct cli_opt *find_short(const struct cli_cmd *cmd, char ch)
{
	const struct cli_opt *o;

	for (size_t i = 0; (o = opt_at(cmd, i)); i++)
		if (o->key < CLI_LONG && o->key == (unsigned char)ch)
			return o;
	return NULL;
}

static bool cmd_is(const struct cli_cmd *cmd, const char *name)
{
	if (!strcmp(cmd->name, name))
		return true;
	for (const char *const *al = cmd->aliases; al && *al; al++)
		if (!strcmp(*al, name))
			return true;
	return false;
}

static const struct cli_cmd *find_sub(const struct cli_cmd *group, const char *name)
{
	for (const struct cli_cmd *const *s = group->subs; s && *s; s++)
		if (cmd_is(*s, name))
			return *s;
	return NULL;
}

size_t cli_count(const struct cli_args *a, int key)
{
	size_t n = 0;

	for (size_t i = 0; i < a->n; i++)
		n += a->v[i].key == key;
	return n;
}

const char *cli_arg(const struct cli_args *a, int key)
{
	for (size_t i = a->n; i > 0; i--)
		if (a->v[i - 1].key == key)
			return a->v[i - 1].arg;
	return NULL;
}

static void args_init(struct cli_args *a, const struct cli_cmd *cmd, const char *path, int argc)
{
	*a = (struct cli_args){ .cmd = cmd, .path = path, .tail = -1 };
	a->argv = xcalloc((size_t)argc + 1, sizeof(*a->argv));
	a->v = xcalloc((size_t)argc + 1, sizeof(*a->v));
}

static void args_free(struct cli_args *a)
{
	free(a->argv);
	free(a->v);
}

static void args_push(struct cli_args *a, int key, const char *arg)
{
	a->v[a->n++] = (struct cli_optval){ .key = key, .arg = arg };
}

/* ------------------------------------------------------------- parser */

static void cli_help(const struct cli_cmd *cmd, const char *path, FILE *out);

/*
 * Parses the words of one command level (argv[0..argc), the words after
 * its name) into a. A group stops at its first operand, the name of its
 * sub-command: *ret_sub is its index (argc when there is none). Returns -1
 * to go on, 0 after printing the help, 2 after a usage error.
 */
static int parse(const struct cli_cmd *cmd, const char *path, int argc, char **argv,
		 struct cli_args *a, int *ret_sub)
{
	bool dashdash = cmd->flags & CLI_RAW;

	args_init(a, cmd, path, argc);
	*ret_sub = argc;
	for (int i = 0; i < argc; i++) {
		const char *w = argv[i];

		if (!dashdash && !strcmp(w, "--")) {
			dashdash = true;
			continue;
		}
		if (dashdash || w[0] != '-' || !w[1]) {
			if (cmd->subs) {
				*ret_sub = i;
				return -1;
			}
			a->argv[a->argc++] = argv[i];
			if ((cmd->flags & CLI_TAIL) && a->argc == cmd->max_args) {
				/* the rest is a command line: untouched */
				a->tail = a->argc;
				while (++i < argc)
					a->argv[a->argc++] = argv[i];
			}
			continue;
		}
		if (w[1] == '-') {
			const char *name = w + 2, *eq = strchr(name, '=');
			size_t len = eq ? (size_t)(eq - name) : strlen(name);
			const char *arg = NULL;
			bool ambiguous;
			const struct cli_opt *o = find_long(cmd, name, len, &ambiguous);

			if (!o)
				return cli_usage("%s option '--%.*s' (see '%s --help')",
						 ambiguous ? "ambiguous" : "unknown", (int)len, name, path);
			if (opt_is_help(o)) {
				cli_help(cmd, path, stdout);
				return 0;
			}
			if (o->arg && eq)
				arg = eq + 1;
			else if (o->arg && i + 1 < argc)
				arg = argv[++i];
			else if (o->arg)
				return cli_usage("option '--%s' needs an argument %s (see '%s --help')",
						 o->name, o->arg, path);
			else if (eq)
				return cli_usage("option '--%s' takes no argument (see '%s --help')",
						 o->name, path);
			args_push(a, o->key, arg);
			continue;
		}
		for (const char *p = w + 1; *p; p++) {
			const struct cli_opt *o = find_short(cmd, *p);

			if (!o)
				return cli_usage("unknown option '-%c' (see '%s --help')", *p, path);
			if (opt_is_help(o)) {
				cli_help(cmd, path, stdout);
				return 0;
			}
			if (!o->arg) {
				args_push(a, o->key, NULL);
				continue;
			}
			if (p[1])
				args_push(a, o->key, p + 1);
			else if (i + 1 < argc)
				args_push(a, o->key, argv[++i]);
			else
				return cli_usage("option '-%c' needs an argument %s (see '%s --help')",
						 *p, o->arg, path);
			break;
		}
	}
	if (a->tail < 0)
		a->tail = a->argc;
	if (cmd->subs)
		return -1;
	if (a->tail < cmd->min_args || (cmd->max_args >= 0 && a->tail > cmd->max_args))
		return cli_usage("usage: %s %s", path, cmd->usage);
	return -1;
}

/* Parses one level and runs it, or descends into the sub-command. */
static int run_level(struct cli *c, const struct cli_cmd *cmd, struct buf *path, int argc,
		     char **argv)
{
	_cleanup_(args_free) struct cli_args a = { 0 };
	const struct cli_cmd *sub;
	int i, r;

	r = parse(cmd, path->p, argc, argv, &a, &i);
	if (r >= 0)
		return r;
	if (!cmd->subs)
		return cmd->run(c, &a);
	if (cmd->run && (r = cmd->run(c, &a)) >= 0)
		return r;
	if (i >= argc) {
		cli_help(cmd, path->p, stderr);
		return 2;
	}
	sub = find_sub(cmd, argv[i]);
	if (!sub)
		return cli_usage("unknown command '%s' (see '%s --help')", argv[i], path->p);
	buf_addf(path, " %s", sub->name);
	return run_level(c, sub, path, argc - i - 1, argv + i + 1);
}

int cli_main(struct cli *c, const struct cli_cmd *root, int argc, char **argv)
{
	_cleanup_buf_ struct buf path = BUF_INIT;

	buf_adds(&path, root->name);
	return run_level(c, root, &path, argc - 1, argv + 1);
}

/* --------------------------------------------------------------- help */

#define HELP_COL_MAX 26

/* "-p, --package ID" or "    --no-wait" */
static void opt_left(const struct cli_opt *o, struct buf *out)
{
	if (o->key < CLI_LONG)
		buf_addf(out, "-%c, ", o->key);
	else
		buf_adds(out, "    ");
	buf_addf(out, "--%s", o->name);
	if (o->arg)
		buf_addf(out, " %s", o->arg);
}

/* Prints "  left  text" with text at column col (on the next line when
 * left is wider), every line of text indented to col. */
static void print_row(FILE *out, const char *left, const char *text, int col)
{
	int w = fprintf(out, "  %s", left);

	if (w + 2 > col) {
		fputc('\n', out);
		w = 0;
	}
	fprintf(out, "%*s", col - w, "");
	for (const char *p = text; *p; p++) {
		fputc(*p, out);
		if (*p == '\n' && p[1])
			fprintf(out, "%*s", col, "");
	}
	fputc('\n', out);
}

/* The visible sub-commands of group that have an option named name, as
 * "list, show: " (empty when all of them have it). */
static void opt_users(const struct cli_cmd *group, const char *name, struct buf *out)
{
	size_t all = 0, users = 0;

	for (const struct cli_cmd *const *s = group->subs; *s; s++) {
		if ((*s)->flags & CLI_HIDDEN)
			continue;
		all++;
		if (!cli_opt_named(*s, name))
			continue;
		buf_addf(out, "%s%s", users++ ? ", " : "", (*s)->name);
	}
	if (users == all)
		buf_reset(out);
	else
		buf_adds(out, ": ");
}

/* Adds o to the rows of the options section, unless one of its name is there. */
static void add_opt_row(const struct cli_cmd *group, const struct cli_opt *o, struct strv *names,
			struct strv *lefts, struct strv *texts)
{
	_cleanup_buf_ struct buf left = BUF_INIT;
	_cleanup_buf_ struct buf text = BUF_INIT;

	if (strv_contains(names, o->name))
		return;
	opt_left(o, &left);
	if (group)
		opt_users(group, o->name, &text);
	buf_adds(&text, o->help);
	strv_push(names, o->name);
	strv_push_take(lefts, buf_detach(&left));
	strv_push_take(texts, buf_detach(&text));
}

/* The options of cmd, then those of its visible sub-commands (unless
 * CLI_BRIEF), each once; --help last. */
static void print_opts(const struct cli_cmd *cmd, FILE *out)
{
	_cleanup_strv_ struct strv names = STRV_INIT;
	_cleanup_strv_ struct strv lefts = STRV_INIT;
	_cleanup_strv_ struct strv texts = STRV_INIT;
	const struct cli_opt *o, *help = NULL;
	int col = 0;

	for (size_t i = 0; (o = opt_at(cmd, i)); i++) {
		if (opt_is_help(o))
			help = o;
		else
			add_opt_row(NULL, o, &names, &lefts, &texts);
	}
	for (const struct cli_cmd *const *s = cmd->subs; s && *s && !(cmd->flags & CLI_BRIEF); s++) {
		if ((*s)->flags & CLI_HIDDEN)
			continue;
		for (size_t i = 0; (o = opt_at(*s, i)); i++)
			if (!opt_is_help(o))
				add_opt_row(cmd, o, &names, &lefts, &texts);
	}
	add_opt_row(NULL, help, &names, &lefts, &texts);
	for (size_t i = 0; i < lefts.n; i++)
		col = MAX(col, (int)strlen(lefts.v[i]) + 4);
	col = MIN(col, HELP_COL_MAX);
	fputs("\nOptions:\n", out);
	for (size_t i = 0; i < lefts.n; i++)
		print_row(out, lefts.v[i], texts.v[i], col);
}

static void print_subs(const struct cli_cmd *cmd, FILE *out)
{
	bool brief = cmd->flags & CLI_BRIEF;

	fputs("\nCommands:\n", out);
	for (const struct cli_cmd *const *s = cmd->subs; *s; s++) {
		_cleanup_buf_ struct buf left = BUF_INIT;

		if ((*s)->flags & CLI_HIDDEN)
			continue;
		buf_adds(&left, (*s)->name);
		for (const char *const *al = (*s)->aliases; al && *al; al++)
			buf_addf(&left, "|%s", *al);
		if (!brief && (*s)->usage)
			buf_addf(&left, " %s", (*s)->usage);
		print_row(out, left.p, (*s)->summary, brief ? 13 : 30);
	}
}

/* Prints a summary (a lower-case fragment wrapped for a list) as a
 * sentence: capitalised, re-wrapped at 76 columns, with a full stop. */
static void print_sentence(FILE *out, const char *text)
{
	_cleanup_buf_ struct buf line = BUF_INIT;
	const char *p = text;

	while (*p) {
		size_t n = strcspn(p, " \n");
		if (line.len && line.len + 1 + n > 76) {
			fprintf(out, "%s\n", line.p);
			buf_reset(&line);
		}
		if (line.len)
			buf_addch(&line, ' ');
		buf_add(&line, p, n);
		p += n;
		p += strspn(p, " \n");
	}
	fprintf(out, "%s.\n", line.p);
}

/* Prints the help of cmd ("upaas image run" is path) to out: generated
 * from its table, every option listed. */
static void cli_help(const struct cli_cmd *cmd, const char *path, FILE *out)
{
	fprintf(out, "usage: %s%s%s\n\n", path, cmd->usage ? " " : "",
		cmd->usage ? cmd->usage : "");
	if (cmd->help) {
		fprintf(out, "%s\n", cmd->help);
	} else {
		_cleanup_free_ char *text = xstrdup(cmd->summary);
		if (*text >= 'a' && *text <= 'z')
			*text = (char)(*text - 'a' + 'A');
		print_sentence(out, text);
	}
	if (cmd->aliases && *cmd->aliases) {
		int stem = (int)(strlen(path) - strlen(cmd->name));
		fputs("\nAlso:", out);
		for (const char *const *al = cmd->aliases; *al; al++)
			fprintf(out, " '%.*s%s'", stem, path, *al);
		fputc('\n', out);
	}
	if (cmd->subs)
		print_subs(cmd, out);
	print_opts(cmd, out);
	if (cmd->footer)
		fprintf(out, "\n%s\n", cmd->footer);
}

/* --------------------------------------------------------- completion */

void cli_values_file(struct cli *c, const struct cli_args *a, struct strv *out)
{
	strv_push(out, "@file");
}

void cli_values_dir(struct cli *c, const struct cli_args *a, struct strv *out)
{
	strv_push(out, "@dir");
}

static void list_opts(const struct cli_cmd *cmd, struct strv *out)
{
	const struct cli_opt *o;

	for (size_t i = 0; (o = opt_at(cmd, i)); i++)
		strv_pushf(out, "--%s", o->name);
}

static void list_subs(const struct cli_cmd *cmd, struct strv *out)
{
	for (const struct cli_cmd *const *s = cmd->subs; *s; s++) {
		if ((*s)->flags & CLI_HIDDEN)
			continue;
		strv_push(out, (*s)->name);
		for (const char *const *al = (*s)->aliases; al && *al; al++)
			strv_push(out, *al);
	}
}

/* Records the option o given with arg; -c FILE of the root names the
 * config that dynamic values come from. */
static void complete_opt(struct cli *c, const struct cli_cmd *root, struct cli_args *a,
			 const struct cli_opt *o, const char *arg)
{
	args_push(a, o->key, arg);
	if (a->cmd == root && o->key == 'c' && arg)
		c->config_path = arg;
}

/*
 * Walks the words as the parser would, tolerating every error, and prints
 * the candidates for the last word: sub-commands, options (when the word
 * starts with '-'), or the values of the operand or option argument it
 * stands for. "@file" and "@dir" ask the shell to complete a path.
 */
int cli_complete(struct cli *c, const struct cli_cmd *root, int argc, char **argv)
{
	_cleanup_(args_free) struct cli_args a = { 0 };
	_cleanup_strv_ struct strv out = STRV_INIT;
	_cleanup_strv_ struct strv printed = STRV_INIT;
	const struct cli_cmd *cmd = root;
	const struct cli_opt *pending = NULL;
	const char *cur = argc > 0 ? argv[argc - 1] : "";
	bool dashdash = false, tail = false;
	bool ambiguous;

	c->completing = true;
	args_init(&a, root, root->name, argc);
	for (int i = 0; i < argc - 1; i++) {
		const char *w = argv[i];

		if (pending) {
			complete_opt(c, root, &a, pending, w);
			pending = NULL;
		} else if (tail) {
			continue;
		} else if (!dashdash && !strcmp(w, "--")) {
			dashdash = true;
		} else if (!dashdash && w[0] == '-' && w[1] == '-') {
			const char *eq = strchr(w + 2, '=');
			const struct cli_opt *o = find_long(cmd, w + 2,
							    eq ? (size_t)(eq - w - 2) : strlen(w + 2),
							    &ambiguous);
			if (o && o->arg && !eq)
				pending = o;
			else if (o)
				complete_opt(c, root, &a, o, eq ? eq + 1 : NULL);
		} else if (!dashdash && w[0] == '-' && w[1]) {
			for (const char *p = w + 1; *p; p++) {
				const struct cli_opt *o = find_short(cmd, *p);
				if (!o)
					break;
				if (o->arg && !p[1])
					pending = o;
				else
					complete_opt(c, root, &a, o, o->arg ? p + 1 : NULL);
				if (o->arg)
					break;
			}
		} else if (cmd->subs) {
			const struct cli_cmd *sub = find_sub(cmd, w);
			if (!sub || (sub->flags & CLI_RAW))
				return 0;
			cmd = sub;
			a.cmd = cmd;
			a.n = 0;
			dashdash = false;
		} else {
			a.argv[a.argc++] = argv[i];
			tail = (cmd->flags & CLI_TAIL) && a.argc == cmd->max_args;
		}
	}

	if (pending) {
		if (pending->values)
			pending->values(c, &a, &out);
	} else if (tail) {
		/* a command line of its own */
	} else if (!dashdash && cur[0] == '-') {
		list_opts(cmd, &out);
	} else if (cmd->subs) {
		list_subs(cmd, &out);
	} else if (cmd->max_args < 0 || a.argc < cmd->max_args) {
		cli_values_fn *fn = cmd->values[MIN(a.argc, CLI_VALUES_MAX - 1)];
		if (fn)
			fn(c, &a, &out);
	} else if (!dashdash) {
		/* every operand is there: only options are left */
		list_opts(cmd, &out);
	}

	for (size_t i = 0; i < out.n; i++) {
		const char *w = out.v[i];
		if (strv_contains(&printed, w))
			continue;
		if (*w != '@' && strncmp(w, cur, strlen(cur)))
			continue;
		puts(w);
		strv_push(&printed, w);
	}
	return 0;
}
