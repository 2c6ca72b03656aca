/*
 * actions/actions.h - the ordered build steps of one build, who defines
 * each, the build environment, per-step logs, timeouts and timings.
 *
 *   step          defined by            runs as   network  when
 *   system        admin (+ app user)    root      on       every build (the
 *                                                          app user/home are
 *                                                          ensured first);
 *                                                          the admin action on
 *                                                          fresh packages only
 *   os packages   admin commands.*      root      on       fresh, or when the
 *                                                          plan adds packages
 *   interpreter   admin                 root      on       fresh packages only
 *   checkout      upaas / metadata      app       off      every build (on for
 *                 repository.clone/update                   clone/update/keep_git)
 *   files         metadata              root      off      every build
 *   before/main/after  admin < metadata app       on       every build
 *   finalize      admin                 root      off      every build
 *
 * Every command runs inside the workspace root through sandbox_run(), by
 * argv; the commands of an action run as /bin/sh -ec COMMAND. Data (package
 * names, file paths, the commit) is passed as argv elements or on stdin,
 * never interpolated into shell text.
 *
 * Lifecycle: fill a struct actions_ctx -> actions_run() -> read ctx->steps.
 */
#ifndef UPAAS_ACTIONS_H
#define UPAAS_ACTIONS_H

#include <signal.h>

#include "common/common.h"
#include "config/config.h"

enum step_status {
	STEP_NOT_RUN,
	STEP_OK,
	STEP_SKIPPED,
	STEP_FAILED,
};
const char *step_status_name(enum step_status s);   /* "not run", "ok", ... */

struct step_record {
	enum step_status status;
	double seconds;
	int exit_status;            /* of the failed command, -errno, or 0 */
};

struct actions_ctx {
	const struct config *cfg;
	const struct plan *plan;
	const struct metadata *meta;
	const char *root;           /* the writable root of the build */
	const char *tmpdir;         /* host directory outside root, for stdin files */
	const char *mirror;         /* the app's bare mirror on the host */
	const char *source;         /* the repository URL, for UPAAS_REPOSITORY_URL */
	const char *app;
	const char *build_id;
	const char *commit;
	const char *parent_commit;  /* commit of the base package; NULL when fresh */
	bool fresh;
	/* os packages the base package already has (incremental); NULL: none */
	const struct strv *installed;
	int log_fd;                 /* the build log */
	int log_fd2;                /* > 0: a live copy of the log (the caller's) */
	bool tee;                   /* command output also to stderr */
	/* Results */
	struct step_record steps[STEP__COUNT];
	int failed;                 /* the failed enum step, -1 when none */
};

/*
 * Runs every step in order; stops at the first failure with
 * "step 'NAME' failed: ..." in e (the caller adds the log tail).
 * Returns 0, or -errno (-ECANCELED after SIGTERM/SIGINT, -ETIMEDOUT).
 */
int actions_run(struct actions_ctx *ctx, struct err *e);

/* The environment of a command of the build. as_app: the merged env of the
 * plan and the app's HOME; else (root steps) only the admin config's env
 * (interpreters.env < type.any.env < version.env), never the metadata's. */
void actions_env(const struct actions_ctx *ctx, bool as_app, struct strv *env);

/* Checks a metadata file path: absolute, no "." / ".." / empty component. */
bool actions_file_path_ok(const char *path);

#endif
