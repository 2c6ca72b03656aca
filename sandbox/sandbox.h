/*
 * sandbox/sandbox.h - run one command contained: namespaces (user, mount,
 * PID, UTS, IPC, cgroup, network), the mounts of a minimal root, a seccomp
 * filter, cgroup limits, rlimits, a timeout that kills the whole tree, and
 * the one privilege drop of upaas (sandbox/sandbox.c).
 *
 * Every command an app influences (build steps, app deploy hooks, `upaas
 * exec`) runs through sandbox_run(). Host-side commands that must drop to
 * an unprivileged user without a root of their own use sandbox_drop_hook()
 * as their proc child_setup, so that there is one privilege drop.
 *
 * What "contained" means (DESIGN.md, "Sandbox contract"):
 *  - root inside is an unprivileged id outside: the command runs in a user
 *    namespace whose ids map to a range of host ids no user has (the
 *    subordinate ids of the `upaas` system user, sandbox.* in upaas.cfg(5));
 *    it holds no capability in the host's user namespace, and every other
 *    namespace it is in is owned by the host's (or, for the network, by a
 *    user namespace of its own), so root inside cannot mount, change the
 *    hostname, the routes or the firewall;
 *  - /proc with /proc/sys and friends read-only and the files that leak the
 *    kernel's state masked (systemd-nspawn's and Docker's lists); a minimal
 *    /dev with its own devpts; no host terminal (a new session, no
 *    controlling terminal) and no host keyring (a new session keyring);
 *  - a seccomp filter refusing what reaches beyond the sandbox (Docker's
 *    default profile as the anchor: kexec, modules, bpf, perf, userfaultfd,
 *    keyrings, the mount family, new namespaces, ptrace, TIOCSTI, ...);
 *  - a cgroup per run with pids, memory and CPU weight limits; what is left
 *    when the command ends is killed;
 *  - a network namespace: only lo, or (network=true) user-mode networking
 *    through pasta that reaches the outside but not the host's loopback,
 *    the host's own addresses or link-local 169.254.0.0/16.
 */
#ifndef UPAAS_SANDBOX_H
#define UPAAS_SANDBOX_H

#include "common/common.h"

/* The PATH of every command upaas starts in a root or as a hook. */
#define SANDBOX_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* How many ids the build range holds: inside 0..65535. */
#define SANDBOX_RANGE_SIZE 65536u
/* The range used when sandbox.user has none and none is configured: well
 * above the ids of users and of the usual subordinate ranges. */
#define SANDBOX_FALLBACK_BASE 0x10000000u

/* One extent of a uid or gid map: inside..inside+count-1 inside the
 * sandbox are outside..outside+count-1 on the host. */
struct sandbox_idmap {
	uint32_t inside;
	uint32_t outside;
	uint32_t count;
};
#define SANDBOX_IDMAP_MAX 4

/* The host ids of the sandbox (sandbox_range_get()). */
struct sandbox_range {
	uid_t uid_base;          /* inside uid 0 */
	gid_t gid_base;
	uid_t helper_uid;        /* pasta's user: sandbox.user itself, or nobody */
	gid_t helper_gid;
	bool fallback;           /* the built-in default range */
};

struct sandbox_bind {
	const char *host;        /* host path */
	const char *target;      /* path inside root (created if missing) */
	bool writable;
};

/*
 * Runs one command inside root: mounts made private first, a private
 * /proc, a minimal /dev (null, zero, full, random, urandom, tty, a new
 * devpts, tmpfs shm), the host's resolv.conf bound read-only, a policy-rc.d
 * that keeps daemons from starting, rlimits, cgroup limits, a wall-clock
 * timeout that kills the whole tree; as uid 0 of the user namespace with a
 * few capabilities (those that act on the machine) gone from the bounding
 * set, or as uid/gid with every capability dropped; no_new_privs and the
 * seccomp filter in both cases. Output goes to log_fd as timestamped lines
 * (tee: also stderr).
 *
 * Nothing mounted or started for the command outlives it, even when upaas
 * is killed with SIGKILL: mounts live in the command's own mount namespace,
 * processes in its PID namespace, whose init gets SIGKILL when upaas dies
 * (PR_SET_PDEATHSIG); the cgroup is emptied and removed afterwards.
 *
 * Returns the exit status, 128+signal, or -errno; -ETIMEDOUT on timeout
 * with "'CMD' timed out after N s" in e. A command that failed while its
 * cgroup hit a limit returns -EAGAIN ("'CMD' exceeded limits.pids (N)") or
 * -ENOMEM ("'CMD' ran out of memory: limits.memory 2 GiB").
 */
struct sandbox {
	const char *root;        /* directory to chroot into */
	struct strv argv;
	struct strv env;         /* the whole environment of the command */
	const char *cwd;         /* inside root; NULL: "/" */
	const char *hostname;    /* NULL: "upaas" */
	bool network;            /* false: a network namespace with only lo */
	bool drop_privs;         /* run as uid/gid with no capabilities */
	/* PID 1 of the namespace is a minimal init and the command its child:
	 * SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 sent to upaas
	 * during sandbox_run() go on to the command, orphans are reaped, the
	 * status is the command's (`upaas exec`: a service stops gracefully) */
	bool init;
	uid_t uid;               /* inside ids */
	gid_t gid;
	unsigned timeout_ms;     /* 0: none */
	int log_fd;              /* -1: inherit stdout/stderr */
	int log_fd2;             /* -1: none; a live copy of the log lines */
	bool tee;
	struct buf *capture;     /* stdout into this buffer, if set */
	int stdin_fd;            /* -1: /dev/null */
	const struct sandbox_bind *binds;
	size_t n_binds;
	/* rlimits; 0 = leave as is. */
	int64_t rlimit_nofile;
	int64_t rlimit_nproc;
	int64_t rlimit_as;
	int64_t rlimit_fsize;
	/* cgroup limits; 0 = none */
	int64_t pids_max;
	int64_t memory_max;      /* bytes */
	int cpu_weight;          /* 1..10000 (100: as everything else) */
	/*
	 * The user namespace: uid_map/gid_map, at most SANDBOX_IDMAP_MAX
	 * extents each. When both are empty: 0..65535 to the default range
	 * (sandbox_range_get(NULL)); sandbox_apply_policy() sets the policy's.
	 * uid/gid (and root) must be mapped.
	 */
	struct sandbox_idmap uid_map[SANDBOX_IDMAP_MAX];
	struct sandbox_idmap gid_map[SANDBOX_IDMAP_MAX];
	size_t n_uid_map;
	size_t n_gid_map;
	uid_t helper_uid;        /* pasta's user; 0: from the range */
	gid_t helper_gid;
	/* system calls refused on top of the built-in list (names) */
	const struct strv *seccomp_deny;
	const char *pasta;       /* NULL: SANDBOX_PASTA */
	/* with network: the TCP and UDP ports the command listens on are
	 * published on the host's addresses (a service: upaas exec) */
	bool publish_ports;
	/* with network: ports of the host's loopback the command may reach
	 * ("5432,6379", pasta's -T; a database of the app), NULL: none */
	const char *loopback_ports;
	/* no cgroup of its own: stays in upaas's (a service's, whose unit
	 * limits and stops it); the PID namespace still takes everything the
	 * command started down with it */
	bool no_cgroup;
};
#define SANDBOX_INIT { .argv = STRV_INIT, .env = STRV_INIT, .log_fd = -1, .log_fd2 = -1, \
	.stdin_fd = -1 }
#define SANDBOX_PASTA "/usr/bin/pasta"

int sandbox_run(const struct sandbox *sb, struct err *e);
void sandbox_free(struct sandbox *sb);    /* frees argv and env */

/*
 * Where the last sandbox_run() of this process spent its setup, from the
 * call to the exec of the command (microseconds; 0 when it did not get
 * that far). In upaas: the preparation (tree, filter, cgroup dirs). In the
 * intermediate: the fork and the network's namespaces, starting pasta,
 * moving the run into its cgroup (v1). In init, meanwhile: the mounts,
 * waiting for pasta's network, the user namespace and the drop, the
 * filter. For measurements and debug logs.
 */
struct sandbox_timing {
	uint64_t total_us;
	uint64_t prepare_us;
	uint64_t netns_us;
	uint64_t pasta_us;
	uint64_t cgroup_us;
	uint64_t mounts_us;
	uint64_t network_us;
	uint64_t userns_us;
	uint64_t seccomp_us;
};
void sandbox_last_timing(struct sandbox_timing *t);

/*
 * What the admin config says about every sandbox (sandbox.* and limits.* of
 * upaas.cfg(5)), as plain values: the callers fill it from the config
 * (actions_sandbox_policy()); sandbox/ never reads the config.
 */
struct sandbox_policy {
	const char *user;                /* sandbox.user; NULL: "upaas" */
	int64_t uid_base;                /* 0: user's subordinate ids */
	int64_t gid_base;                /* 0: uid_base, or user's subordinate ids */
	const struct strv *seccomp_deny; /* may be NULL */
	const char *pasta;               /* NULL: SANDBOX_PASTA */
	int64_t pids;                    /* cgroup limits, 0: none */
	int64_t memory;
	int cpu_weight;
	int64_t nofile;                  /* rlimits, 0: leave as is */
	int64_t nproc;
	int64_t address_space;
	int64_t fsize;
};

/*
 * Fills sb from the policy: rlimits and cgroup limits, the user namespace
 * of a build (0..65535 to the sandbox range), the extra seccomp denials and
 * pasta. p's strings and list must outlive sb.
 */
void sandbox_apply_policy(struct sandbox *sb, const struct sandbox_policy *p);

/* What the config check can tell before a command runs: the extra seccomp
 * denials name system calls of this machine. -EINVAL with the detail. */
int sandbox_check_policy(const struct sandbox_policy *p, struct err *e);

/*
 * The host ids of the sandbox: the policy's uid_base/gid_base when set,
 * else the first range of at least 65536 ids of its user in /etc/subuid and
 * /etc/subgid, else SANDBOX_FALLBACK_BASE (with a warning, once per
 * process). p may be NULL: the defaults. Resolved once per process (per
 * distinct setting).
 */
void sandbox_range_get(const struct sandbox_policy *p, struct sandbox_range *ret);
/* Maps inside 0..65535 to the range (a build's map). */
void sandbox_map_range(struct sandbox *sb, const struct sandbox_range *r);
/* Adds one id to the maps: inside uid/gid -> host uid/gid. -E2BIG when
 * the maps are full. */
int sandbox_map_id(struct sandbox *sb, uid_t inside_uid, uid_t host_uid, gid_t inside_gid,
		   gid_t host_gid);
/* The host id of an inside id under the maps; -1 when unmapped. */
int64_t sandbox_host_uid(const struct sandbox *sb, uid_t inside);
int64_t sandbox_host_gid(const struct sandbox *sb, gid_t inside);

/*
 * Writes a file into root from the host side (the files of the app
 * metadata): path is absolute inside root and resolved with root as "/"
 * (openat2 with RESOLVE_IN_ROOT: a symlink on the way resolves inside the
 * tree, ".." stops at its top, so nothing outside root is ever reached);
 * missing directories are made (0755); the file is a new one (mode)
 * renamed over path, so a symlink or hard link there is replaced, never
 * written through; a directory there is an error. What it makes belongs to
 * uid/gid (host ids). No program of the tree runs.
 */
int sandbox_write_file(const char *root, const char *path, const void *data, size_t len,
		       mode_t mode, uid_t uid, gid_t gid, struct err *e);

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
