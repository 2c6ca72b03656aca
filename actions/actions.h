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
 *   os packages   admin commands.*      root      on       when the tree lacks
 *                                                          a package of the
 *                                                          plan, or has one the
 *                                                          plan no longer asks
 *                                                          for
 *   interpreter   admin                 root      on       fresh packages only
 *   checkout      upaas (builder, from  app's     off      every build (on for
 *                 the host) / metadata  files             the app's own
 *                 repository.clone/update                  clone/update)
 *   files         metadata              root      off      every build
 *   before/main/after  admin < metadata app       on       every build
 *   finalize      admin                 root      off      every build
 *
 * "runs as" and "network" are struct step_def (actions_step_def()), the
 * table the runner follows. Every command runs inside the workspace root
 * through sandbox_run(), by argv; the commands of an action run as
 * /bin/sh -ec COMMAND. Data (package names, file paths, the commit) is
 * passed as argv elements or on stdin, never interpolated into shell text.
 * Nothing of the app runs on the host: the checkout step runs the
 * builder's checkout (struct actions_checkout), which writes the commit's
 * files from the host side; the app's own clone/update commands and
 * keep_git see the app's mirror read-only inside the root.
 *
 * Lifecycle: fill a struct actions_ctx -> actions_run() -> read ctx->steps.
 */
#ifndef UPAAS_ACTIONS_H
#define UPAAS_ACTIONS_H

#include <signal.h>

#include "common/common.h"
#include "config/config.h"
#include "sandbox/sandbox.h"

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

/*
 * One step of the policy. run returns 0 (ok), 1 (skipped) or -errno; it may
 * turn the network on for the app's own repository.clone/update commands
 * when network_custom.
 */
struct run;                     /* private to actions/steps.c */
struct step_def {
	enum step step;
	bool network;           /* reaches the outside (else only loopback) */
	bool as_app;            /* apps.uid/gid, no capability; else root inside */
	bool network_custom;    /* network for the app's own clone/update */
	int (*run)(struct run *rn, struct err *e);
};
/* The policy of step s (read-only), or NULL for no such step. */
const struct step_def *actions_step_def(enum step s);

/*
 * The checkout: the builder makes it on the host (builder/checkout.c writes
 * the commit's tree into the root through openat2, never through a program
 * of the tree) and hands it over as a callback, which the step runs at its
 * place in the order; unless the app's own clone/update commands run
 * (actions_custom_checkout()).
 */
struct actions_checkout {
	int (*apply)(void *data, struct err *e);   /* NULL: none */
	void *data;
	bool keep_git;              /* a .git at the commit (metadata keep_git) */
};
/* The app's own repository.clone (fresh) or repository.update (incremental)
 * action when its metadata defines one, else NULL. */
const struct action *actions_custom_checkout(const struct metadata *m, bool fresh);

struct actions_ctx {
	const struct config *cfg;
	const struct plan *plan;
	const struct metadata *meta;
	const char *root;           /* the writable root of the build */
	const char *tmpdir;         /* host directory outside root, for stdin files */
	const char *mirror;         /* the app's bare mirror on the host, bound
				     * read-only for clone/update/keep_git */
	const char *source;         /* the repository URL, for UPAAS_REPOSITORY_URL */
	const char *app;
	const char *build_id;
	const char *commit;
	bool fresh;
	/* os packages the base package was asked for and had (incremental;
	 * its manifest's list); those the plan no longer asks for are let
	 * go of (unmark + autoremove); NULL: none */
	const struct strv *installed;
	/* the base image's packages (names), never let go of; NULL: none */
	const struct strv *image_packages;
	int64_t commit_time;        /* SOURCE_DATE_EPOCH of every command */
	struct actions_checkout checkout;
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

/*
 * The names among names that the tree at root has installed, by its dpkg
 * status (/var/lib/dpkg/status, read inside root: a symlink never leads
 * out), sorted, appended to ret. A tree without the file has none.
 */
#define DPKG_STATUS "var/lib/dpkg/status"
#define DPKG_STATUS_MAX ((size_t)64 << 20)
int actions_installed(const char *root, const struct strv *names, struct strv *ret,
		      struct err *e);

/* Checks a metadata file path: absolute, no "." / ".." / empty component. */
bool actions_file_path_ok(const char *path);

/*
 * The sandbox policy of the admin config (sandbox.*, limits.*), for every
 * caller of sandbox_run(): build steps, `upaas image run`, deploy hooks and
 * `upaas exec`. Points into c, which must outlive it.
 */
void actions_sandbox_policy(const struct config *c, struct sandbox_policy *ret);

#endif
