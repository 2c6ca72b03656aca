/*
 * cli/cli.h - private to cli/: the shared state of one upaas invocation, the
 * command tables, and the one parser and dispatcher (cli/cli.c) that read
 * them.
 *
 * Every command and sub-command is a `static const struct cli_cmd`: its
 * name, aliases, a summary, the usage line, its options, how many
 * operands it takes and its handler. The parser checks argv against the
 * table and fills a struct cli_args that the handler reads; --help, the
 * top-level command list and the shell completion (`upaas __complete`) are
 * generated from the same tables, so none of them can drift from the
 * parser.
 *
 * Parsing is GNU style: options may come before, between or after the
 * operands; "--" ends the options (every later word is an operand). A
 * group (a command with sub-commands) takes only its own options before the
 * sub-command's name. A command with CLI_TAIL takes its options before its
 * operands only: the words after its last operand are a command line,
 * passed through untouched. Unknown options, missing option arguments and
 * a wrong number of operands are usage errors: "upaas: ..." on stderr and
 * exit status 2.
 */
#ifndef UPAAS_CLI_H
#define UPAAS_CLI_H

#include "common/common.h"
#include "config/config.h"
#include "storage/storage.h"

struct cli {
	const char *config_path;   /* -c FILE, or NULL */
	struct config cfg;
	bool cfg_loaded;
	bool quiet;                /* -q */
	int verbose;               /* -v count */
	bool completing;           /* upaas __complete: print nothing, need a config file */
	struct storage *storage;   /* opened on demand */
	struct sign_trust *trust;  /* loaded on demand (signing.trusted) */
};

/* Loads the admin config once. On any problem prints every "file:line:
 * message" and returns -EINVAL; the command then exits 1. While completing
 * it prints nothing, and fails when there is no config file at all. */
int cli_config(struct cli *c);
/* Opens the configured storage handler once (after cli_config). */
int cli_storage(struct cli *c, struct storage **ret);
/* Loads the trusted public keys once (signing.trusted, allow_unsigned);
 * prints the problem and returns -errno when a key file is bad. */
struct sign_trust;
int cli_trust(struct cli *c, const struct sign_trust **ret);
/* Opens the build queue of the config; prints why not and returns -errno.
 * Close it with queue_close(), or declare it _cleanup_queue_. */
struct queue;
int cli_queue(struct cli *c, struct queue **ret);
void cli_queue_closep(struct queue **q);
#define _cleanup_queue_ _cleanup_(cli_queue_closep)
/* Prints o as pretty JSON on stdout (slashes as they are) and puts it. */
struct json_object;
void cli_json_print(struct json_object *o);
/* Prints "upaas: <message>" for e (or fallback) and returns the exit status (1). */
int cli_fail(const struct err *e, const char *fallback);
/* Prints "upaas: usage: ..." style message and returns 2. */
int cli_usage(const char *fmt, ...) _printf_(1, 2);

/* ------------------------------------------------------------- tables */

struct cli_args;

/*
 * Completion of an operand or an option's argument: pushes the candidate
 * words to out (unfiltered; the caller keeps those that start with the
 * word being completed). a holds what was parsed so far (a->argv: the
 * operands before the one completed). Must be fast and silent: on any
 * problem it pushes nothing. cli_values_file and cli_values_dir ask the
 * shell to complete a path.
 */
typedef void cli_values_fn(struct cli *c, const struct cli_args *a, struct strv *out);

struct cli_opt {
	const char *name;          /* long name, without "--"; NULL ends a table */
	int key;                   /* its short letter, or CLI_LONG + n when it has none */
	const char *arg;           /* the argument's name ("FILE"), or NULL for a flag */
	const char *help;          /* '\n' starts another line */
	cli_values_fn *values;     /* completion of the argument, or NULL */
};
/* Keys of long-only options start here (above every letter). */
#define CLI_LONG 256

enum {
	CLI_TAIL = 1 << 0,         /* after max_args operands, the rest is a command line */
	CLI_HIDDEN = 1 << 1,       /* not in help or completion */
	CLI_RAW = 1 << 2,          /* every word is an operand, even "--help" */
	CLI_BRIEF = 1 << 3,        /* a group whose help lists its sub-commands by name
				    * only, and not their options */
};

/* Completion of operands 0..CLI_VALUES_MAX-1; later operands use the last. */
#define CLI_VALUES_MAX 4

struct cli_cmd {
	const char *name;
	const char *const *aliases;        /* NULL-terminated, or NULL */
	const char *summary;               /* for command lists; '\n' breaks its lines */
	const char *usage;                 /* what follows "upaas <command>" */
	const char *help;                  /* paragraphs after the usage line, or NULL */
	const char *footer;                /* a closing paragraph, or NULL */
	const struct cli_opt *opts;        /* ends with { NULL }; -h/--help is implicit */
	int min_args, max_args;            /* operands; max_args -1: no limit */
	unsigned flags;                    /* CLI_* */
	cli_values_fn *values[CLI_VALUES_MAX];
	/* A command: runs it and returns the exit status. A group: optional,
	 * runs before its sub-command with the group's own options; returns -1
	 * to go on, else the exit status. */
	int (*run)(struct cli *c, const struct cli_args *a);
	const struct cli_cmd *const *subs; /* a group's sub-commands, NULL-terminated */
};

/* One option as given: key from the table, arg its argument or NULL. */
struct cli_optval {
	int key;
	const char *arg;
};

/* What the parser found for one command; valid while the handler runs. */
struct cli_args {
	const struct cli_cmd *cmd;
	const char *path;          /* "image run": the command as typed, for messages */
	int argc;                  /* the operands, then a CLI_TAIL command's tail */
	char **argv;               /* NULL-terminated */
	int tail;                  /* CLI_TAIL: index of the tail in argv (== argc: none) */
	size_t n;                  /* the options, in the order given */
	struct cli_optval *v;
};

/* How many times the option key was given. */
size_t cli_count(const struct cli_args *a, int key);
static inline bool cli_flag(const struct cli_args *a, int key) { return cli_count(a, key) > 0; }
/* The argument of the last key given, or NULL. */
const char *cli_arg(const struct cli_args *a, int key);
/* The option named name in cmd's table, or NULL. */
const struct cli_opt *cli_opt_named(const struct cli_cmd *cmd, const char *name);

/* Parses argv (argv[0] is the program) against root and runs the command
 * it names; returns the exit status. */
int cli_main(struct cli *c, const struct cli_cmd *root, int argc, char **argv);
/* upaas __complete WORDS...: prints the candidates for the last word. */
int cli_complete(struct cli *c, const struct cli_cmd *root, int argc, char **argv);

cli_values_fn cli_values_file;
cli_values_fn cli_values_dir;

/* ------------------------------------------------------------ commands */

/* The command groups, each in its cli/cmd-*.c. */
extern const struct cli_cmd cmd_build;
extern const struct cli_cmd cmd_package;
extern const struct cli_cmd cmd_image;
extern const struct cli_cmd cmd_app;
extern const struct cli_cmd cmd_queue;
extern const struct cli_cmd cmd_worker;
extern const struct cli_cmd cmd_serve;
extern const struct cli_cmd cmd_token;
extern const struct cli_cmd cmd_deploy;
extern const struct cli_cmd cmd_rollback;
extern const struct cli_cmd cmd_undeploy;
extern const struct cli_cmd cmd_status;
extern const struct cli_cmd cmd_watch;
extern const struct cli_cmd cmd_exec;
extern const struct cli_cmd cmd_remount;
extern const struct cli_cmd cmd_fleet;
extern const struct cli_cmd cmd_storage;
extern const struct cli_cmd cmd_config;
extern const struct cli_cmd cmd_key;

/* Completion of the values each group knows. */
cli_values_fn cli_values_apps;      /* registered and deployed apps (cmd-app.c) */
cli_values_fn cli_values_deployed;  /* apps deployed under the root (cmd-deploy.c) */
cli_values_fn cli_values_packages;  /* package ids of the app in operand 0 (cmd-package.c) */
cli_values_fn cli_values_images;    /* stored images (cmd-image.c) */
cli_values_fn cli_values_builds;    /* build ids (cmd-queue.c) */
cli_values_fn cli_values_states;    /* build states (cmd-queue.c) */

#endif
