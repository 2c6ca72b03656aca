/*
 * sandbox/sandbox-int.h - private to sandbox/: the pieces sandbox.c puts
 * together. Each has a parent side (runs in upaas before fork, allocates,
 * reports through struct err) and, where it has one, a child side (runs
 * after fork: system calls only, no allocation, returns -errno and names
 * what failed in *what).
 */
#ifndef UPAAS_SANDBOX_INT_H
#define UPAAS_SANDBOX_INT_H

#ifndef UPAAS_SANDBOX_INTERNAL
#error "sandbox/sandbox-int.h is private to the sandbox module"
#endif

#include <linux/filter.h>

#include "sandbox/sandbox.h"

/* Appends s to a fixed buffer (no allocation after fork). */
void sb_str_add(char *dst, size_t cap, const char *s);
/* Appends the decimal digits of v (no allocation after fork). */
void sb_str_addu(char *dst, size_t cap, unsigned long v);
/* Writes s to /proc/PID/FILE (a uid_map, a gid_map): 0 or -errno, -EIO
 * for a short write. No allocation after fork. */
int sb_write_proc(pid_t pid, const char *file, const char *s);

/* ------------------------------------------------------- ids (ids.c) */

/*
 * The first range of at least `need` ids of user (by name, or by uid as a
 * number) in a subuid/subgid file. 0 and *ret_base, -ENOENT when there is
 * none, -errno when the file cannot be read.
 */
int sb_subid_lookup(const char *file, const char *user, uid_t uid, uint32_t need,
		    uint32_t *ret_base);
/* The ids of user (pasta runs as them); nobody's when there is no such
 * user. */
void sb_helper_ids(const char *user, uid_t *ret_uid, gid_t *ret_gid);
/* "0 100000 65536\n..." for /proc/PID/uid_map; -EINVAL when empty. */
int sb_map_text(const struct sandbox_idmap *m, size_t n, char *out, size_t cap);

/* --------------------------------------------------- seccomp (seccomp.c) */

/*
 * The filters of every sandbox, compiled once per distinct extra list and
 * kept for the life of the process: libseccomp's (the deny list: EPERM, or
 * ENOSYS for clone3, so that glibc falls back to clone, whose flags the
 * filter can see; another architecture kills) and a small one written by
 * hand for what libseccomp cannot say (personality values, x32).
 */
struct sb_filters {
	struct sock_fprog prog[2];
};
int sb_seccomp_get(const struct strv *extra, const struct sb_filters **ret, struct err *e);
/* Child side: loads the filters (no_new_privs must be set). */
int sb_seccomp_load(const struct sb_filters *f, const char **what);

/* ---------------------------------------------------- cgroups (cgroup.c) */

#define SB_CG_MAX 4

/* The cgroup of one run, in whichever hierarchy the host has. */
struct sb_cgroup {
	int version;                /* 0: none (no usable hierarchy), 1 or 2 */
	size_t n;                   /* v2: 1; v1: one per controller */
	char *dir[SB_CG_MAX];
	const char *ctl[SB_CG_MAX]; /* v1: "pids", "memory", "cpu", "freezer" */
	int procs_fd[SB_CG_MAX];    /* v1: tasks; v2: cgroup.procs; for the child */
	int dir_fd;                 /* v2: the run's dir, for CLONE_INTO_CGROUP */
	int64_t pids_max;
	int64_t memory_max;
};
#define SB_CGROUP_INIT { .procs_fd = { -1, -1, -1, -1 }, .dir_fd = -1 }

/* The hierarchies of the host: v2 when its mount has the pids and memory
 * controllers, else v1 when pids and memory are mounted, else none. */
struct sb_cg_layout {
	int version;                /* 0, 1 or 2 */
	char *v2;                   /* mount point of the v2 hierarchy */
	char *v1[SB_CG_MAX];        /* v1: upaas's own cgroup dir per controller */
	const char *v1_ctl[SB_CG_MAX];
	size_t n_v1;
};
/* From the texts of /proc/self/mountinfo, /proc/self/cgroup and the v2
 * mount's cgroup.controllers (NULL when there is none). */
void sb_cgroup_layout(const char *mountinfo, const char *self_cgroup, const char *v2_controllers,
		      struct sb_cg_layout *out);
void sb_cgroup_layout_free(struct sb_cg_layout *l);
/* The v2 mount point in a mountinfo text, or NULL. */
char *sb_cgroup_v2_mount(const char *mountinfo);
/* Writes sb's limits into a run cgroup's dir (ctl: the v1 controller, ""
 * for v2); 0 or -errno. */
int sb_cgroup_limits(int version, const char *dir, const char *ctl, const struct sandbox *sb);

/*
 * Creates the run's cgroup with sb's limits below upaas's parent (v2:
 * <hierarchy>/upaas; v1: upaas below upaas's own cgroup of each
 * controller) and opens its cgroup.procs. Without a usable hierarchy it
 * warns once and leaves cg->version 0 (rlimits still apply). Also removes
 * what runs of dead upaas processes left.
 */
int sb_cgroup_create(struct sb_cgroup *cg, const struct sandbox *sb, struct err *e);
/* Child side, v1: moves the calling (single-threaded) process into the
 * cgroup, before it forks the run's processes; v2: nothing. */
int sb_cgroup_join(const struct sb_cgroup *cg, const char **what);
/*
 * Child side: forks a child that is in the cgroup from its first
 * instruction (v2: clone3 with CLONE_INTO_CGROUP; v1: after
 * sb_cgroup_join()). *ret_placed false when the caller must move it with
 * sb_cgroup_attach() (a kernel without clone3). Returns what fork() does.
 */
pid_t sb_cgroup_fork(const struct sb_cgroup *cg, bool *ret_placed);
/* Child side: moves process pid (0: the caller) into the cgroup. */
int sb_cgroup_attach(const struct sb_cgroup *cg, pid_t pid, const char **what);
/*
 * After a failed command: -EAGAIN or -ENOMEM with "'cmd' exceeded
 * limits.pids (N)" / "'cmd' ran out of memory: limits.memory N" in e when
 * the cgroup hit a limit, else 0.
 */
int sb_cgroup_verdict(const struct sb_cgroup *cg, const char *cmd, struct err *e);
/* Kills whatever is left in the cgroup, removes it, frees cg. */
void sb_cgroup_destroy(struct sb_cgroup *cg);

/* ---------------------------------------------------- network (net.c) */

/* A run's user-mode network, prepared before fork. */
struct sb_net {
	struct strv argv;           /* pasta's, the namespace fds as N and M */
	char **argv_v;
	uid_t uid;                  /* pasta's user, root of the netns's userns */
	gid_t gid;
	char uid_map[40];
	char gid_map[40];
	/* rtnetlink messages: unreachable routes for link-local and the
	 * host's own addresses, sent by init in the new namespace */
	unsigned char *routes;
	size_t routes_len;
	size_t n_routes;
	bool want4, want6;          /* default routes pasta will add */
	/* when the host's resolver is on its loopback: the resolv.conf of the
	 * run, naming the address pasta forwards to it (--dns-forward) */
	char *resolv_text;
	int userns_fd;              /* numbers pasta gets them as */
	int netns_fd;
};
#define SB_NET_INIT { .argv = STRV_INIT, .userns_fd = -1, .netns_fd = -1 }

int sb_net_prepare(struct sb_net *n, const struct sandbox *sb, struct err *e);
void sb_net_free(struct sb_net *n);
/*
 * Child side, in the intermediate: makes the network's user namespace
 * (root = n->uid) and network namespace, returns fds of both.
 */
int sb_net_make(const struct sb_net *n, int *ret_userns, int *ret_netns, const char **what);
/* Child side: starts pasta on them (in the caller's PID namespace for
 * its children, so that it dies with init; forked with sb_cgroup_fork());
 * returns its pid once it has exec'd. */
int sb_net_start(const struct sb_net *n, int userns_fd, int netns_fd, const struct sb_cgroup *cg,
		 bool *ret_placed, const char **what);
/* Child side, in the new netns as host root: the unreachable routes. */
int sb_net_routes(const struct sb_net *n, const char **what);
/* Child side: waits until pasta has configured the namespace. */
int sb_net_wait(const struct sb_net *n, int timeout_ms, const char **what);
/* Child side: brings lo up. */
int sb_net_lo_up(const char **what);

#endif
