/*
 * cli/cli.h - private to cli/: the shared state of one upaas invocation and
 * the entry point of each command group (cli/cmd-*.c).
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
	struct storage *storage;   /* opened on demand */
};

/* Loads the admin config once. On any problem prints every "file:line:
 * message" and returns -EINVAL; the command then exits 1. */
int cli_config(struct cli *c);
/* Opens the configured storage handler once (after cli_config). */
int cli_storage(struct cli *c, struct storage **ret);
/* Prints "upaas: <message>" for e (or fallback) and returns the exit status (1). */
int cli_fail(const struct err *e, const char *fallback);
/* Prints "upaas: usage: ..." style message and returns 2. */
int cli_usage(const char *fmt, ...) _printf_(1, 2);
/* true when arg is "-h" or "--help". */
bool cli_is_help(const char *arg);

/*
 * Each command group: argv[0] is the group name ("image"). Returns the exit
 * status. Declared weak so that the dispatcher works while a group's file is
 * not linked in yet.
 */
#define CLI_CMD(name) int name(struct cli *c, int argc, char **argv) __attribute__((weak))
CLI_CMD(cmd_config);
CLI_CMD(cmd_image);
CLI_CMD(cmd_storage);
CLI_CMD(cmd_package);
CLI_CMD(cmd_build);
CLI_CMD(cmd_app);
CLI_CMD(cmd_queue);
CLI_CMD(cmd_worker);
CLI_CMD(cmd_deploy);
CLI_CMD(cmd_rollback);
CLI_CMD(cmd_undeploy);
CLI_CMD(cmd_status);
CLI_CMD(cmd_watch);
CLI_CMD(cmd_exec);
CLI_CMD(cmd_key);

#endif
