/*
 * sandbox/sandbox.h - run one command contained: the namespaces, the mounts
 * of a minimal root, rlimits, a timeout that kills the whole tree, and the
 * one privilege drop of upaas (sandbox/sandbox.c).
 *
 * Every command an app influences (build steps, app deploy hooks, `upaas
 * exec`) runs through sandbox_run(). Host-side commands that must drop to
 * an unprivileged user without a root of their own use sandbox_drop_hook()
 * as their proc child_setup, so that there is one privilege drop.
 */
#ifndef UPAAS_SANDBOX_H
#define UPAAS_SANDBOX_H

#include "common/common.h"

/* The PATH of every command upaas starts in a root or as a hook. */
#define SANDBOX_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/*
 * Runs one command inside root with its own mount, PID, UTS and IPC
 * namespaces (and a network namespace with only lo unless network=true):
 * mounts made private first, a private /proc, a minimal /dev (null, zero,
 * full, random, urandom, tty, a new devpts, tmpfs shm), the host's
 * resolv.conf bound read-only, a policy-rc.d that keeps daemons from starting,
 * rlimits, a wall-clock timeout that kills the whole tree, and optionally the
 * uid/gid of an unprivileged user with every capability dropped and
 * no_new_privs. Output goes to log_fd as timestamped lines (tee: also stderr).
 *
 * Nothing mounted for the command outlives it, even when upaas is killed
 * with SIGKILL: mounts live in the command's own mount namespace, and the
 * command's init gets SIGKILL when upaas dies (PR_SET_PDEATHSIG).
 *
 * Returns the exit status, 128+signal, or -errno; -ETIMEDOUT on timeout
 * with "'CMD' timed out after N s" in e.
 */
struct sandbox_bind {
	const char *host;        /* host path */
	const char *target;      /* path inside root (created if missing) */
	bool writable;
};

struct sandbox {
	const char *root;        /* directory to chroot into */
	struct strv argv;
	struct strv env;         /* the whole environment of the command */
	const char *cwd;         /* inside root; NULL: "/" */
	const char *hostname;    /* NULL: "upaas" */
	bool network;            /* false: private network namespace */
	bool drop_privs;         /* run as uid/gid with no capabilities */
	uid_t uid;
	gid_t gid;
	unsigned timeout_ms;     /* 0: none */
	int log_fd;              /* -1: inherit stdout/stderr */
	int log_fd2;             /* -1: none; a live copy of the log lines */
	bool tee;
	struct buf *capture;     /* stdout into this buffer, if set */
	int stdin_fd;            /* -1: /dev/null */
	const struct sandbox_bind *binds;
	size_t n_binds;
	/* rlimits (the callers' limits.* of the admin config); 0 = leave as
	 * is. Without CAP_SYS_RESOURCE a limit above the inherited hard limit
	 * is clamped to it (lowering is what matters). */
	int64_t rlimit_nofile;
	int64_t rlimit_nproc;
	int64_t rlimit_as;
	int64_t rlimit_fsize;
};
#define SANDBOX_INIT { .argv = STRV_INIT, .env = STRV_INIT, .log_fd = -1, .log_fd2 = -1, \
	.stdin_fd = -1 }

int sandbox_run(const struct sandbox *sb, struct err *e);
void sandbox_free(struct sandbox *sb);    /* frees argv and env */

/*
 * Moves the calling process into a private mount namespace (unshare +
 * MS_REC|MS_PRIVATE on /), so that every mount it makes afterwards (the
 * workspace overlay) disappears with the process, even on SIGKILL.
 * Idempotent. Call it before any workspace_create().
 */
int sandbox_private_mounts(struct err *e);

/*
 * A proc child_setup hook (common.h) that drops the child to uid/gid with
 * no capability and no_new_privs, reading every change back, before exec:
 * for commands that run on the host as an unprivileged user. data points
 * at a struct sandbox_drop, which must outlive proc_start().
 */
struct sandbox_drop {
	uid_t uid;
	gid_t gid;
	pid_t parent;           /* getpid() of upaas: the child dies with it */
};
int sandbox_drop_hook(void *data);

#endif
