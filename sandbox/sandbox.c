/*
 * sandbox/sandbox.c - runs one command in a root directory, contained.
 *
 * Process layout (proc_start() forks the first child):
 *
 *   upaas ── intermediate ─┬─ init (PID 1 of a new PID namespace) = the command
 *                          └─ pasta (same PID namespace; runs with network only)
 *
 * The intermediate (sb_child_setup, run by proc in its child, in a session
 * and with a session keyring of its own) joins the run's cgroup, makes the
 * network's namespaces when the run has network, unshares the PID namespace
 * and forks init. init unshares the mount, UTS, IPC, cgroup (and, without
 * network, network) namespaces, sets the root up as host root, and only then
 * makes its user namespace; the intermediate, still host root, writes its
 * uid and gid maps. So every namespace but the user namespace is owned by
 * the host's user namespace (the network's by one of pasta's): root inside
 * holds capabilities in its own user namespace only, which gives it power
 * over files of the mapped range and nothing else. init then drops to the
 * command's ids, loads the seccomp filter last, and execs the command.
 *
 * The intermediate waits and exits with init's status. Both get SIGKILL
 * when their parent dies (PR_SET_PDEATHSIG), and both are in proc's process
 * group, so a timeout (kill of the group) or the death of upaas kills init,
 * and with it the whole PID namespace, pasta included. Every mount lives in
 * the new mount namespace, which goes away with its last process: nothing
 * mounted here outlives the command. The cgroup is emptied (cgroup.kill, or
 * freeze and kill) and removed by sandbox_run() afterwards.
 *
 * Everything the children need is prepared before fork (struct sb_child):
 * after fork they only make system calls and never allocate. A failure in
 * init (or the intermediate) before exec is written as a struct sb_report to
 * a close-on-exec pipe that sandbox_run() reads once the command is over,
 * so the caller gets "sandbox: mount '/proc': ..." instead of a bare exit
 * status 127.
 *
 * Mount targets inside root are opened with openat2(RESOLVE_IN_ROOT), so a
 * symlink in the tree resolves inside the tree and never reaches the host,
 * and mounts are made onto /proc/self/fd/N of that fd.
 *
 * Mounts: root bound onto itself, /proc (with /proc/sys and friends
 * read-only and the leaky files masked, as systemd-nspawn and Docker do), a
 * tmpfs /dev owned by root inside (host nodes bound in, a new devpts, tmpfs
 * shm), /sys read-only when root has it (firmware tables masked), the host's
 * resolv.conf read-only, then sb->binds (not recursive: submounts of a
 * bound host path are not carried in). Then pivot_root (chroot where that
 * is impossible), hostname, lo up, rlimits, the user namespace, the
 * privilege drop and the filter.
 *
 * What mountinfo shows inside: the mounts above, with their sources and
 * options. The root mount's "root" field is the root's path within its file
 * system: "/" for a workspace (an overlay of its own), the host path for a
 * plain directory. An overlay's options are the paths it was mounted with.
 *
 * The tree itself: mount point directories that are missing (proc, dev,
 * bind targets) are created (owned by root inside) and stay. A missing
 * /usr/sbin/policy-rc.d, a missing (or symlinked) /etc/resolv.conf and
 * missing file bind targets are created for the command and removed again
 * (the symlink restored) afterwards, unless upaas is killed before it can
 * do that. Two sandboxes at once on the same root would share (and remove)
 * one policy-rc.d: each build has its own workspace, so that does not
 * happen.
 */
#define UPAAS_SANDBOX_INTERNAL
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <grp.h>
#include <sys/capability.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#include "sandbox/sandbox-int.h"

#define SB_POLICY_RC_D "usr/sbin/policy-rc.d"
#define SB_POLICY_RC_D_TEXT "#!/bin/sh\n# written by upaas: no daemons start during a build\nexit 101\n"
#define SB_RESOLV "etc/resolv.conf"
/* How long init waits for pasta to configure the namespace. */
#define SB_NET_TIMEOUT_MS 10000

/* The host ids of root inside, for what upaas creates in the tree; -1: none */
struct sb_owner {
	uid_t uid;
	gid_t gid;
};

/* ------------------------------------------------------- inside the root */

/* ------------------------------------------------------- inside the root */

/* Opens rel (relative to rootfd) as if rootfd were "/": ".." and absolute
 * symlinks never leave the tree. */
static int root_open(int rootfd, const char *rel, int flags)
{
	struct open_how how = {
		.flags = (uint64_t)(flags | O_CLOEXEC),
		.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
	};
	while (*rel == '/')
		rel++;
	if (!*rel)
		rel = ".";
	long fd = syscall(SYS_openat2, rootfd, rel, &how, sizeof(how));
	return fd < 0 ? -errno : (int)fd;
}

/* mkdir -p of rel inside rootfd, never following a symlink out of it;
 * what it creates belongs to own (when set). */
static int root_mkdir_p(int rootfd, const char *rel, mode_t mode, const struct sb_owner *own)
{
	_cleanup_free_ char *p = xstrdup(rel);
	size_t len = strlen(p);
	for (size_t i = 0; i <= len; i++) {
		if (p[i] != '/' && p[i] != '\0')
			continue;
		if (i == 0 || p[i - 1] == '/')
			continue;
		char c = p[i];
		p[i] = '\0';
		int fd = root_open(rootfd, p, O_PATH | O_DIRECTORY);
		if (fd == -ENOENT) {
			char *slash = strrchr(p, '/');
			const char *base = slash ? slash + 1 : p;
			if (slash)
				*slash = '\0';
			int pfd = root_open(rootfd, slash ? p : ".", O_PATH | O_DIRECTORY);
			if (slash)
				*slash = '/';
			if (pfd < 0)
				return pfd;
			int r = 0;
			if (mkdirat(pfd, base, mode) == 0) {
				if (own && own->uid != (uid_t)-1 &&
				    fchownat(pfd, base, own->uid, own->gid, AT_SYMLINK_NOFOLLOW) < 0)
					r = -errno;
			} else if (errno != EEXIST) {
				r = -errno;
			}
			close(pfd);
			if (r < 0)
				return r;
			fd = root_open(rootfd, p, O_PATH | O_DIRECTORY);
		}
		if (fd < 0)
			return fd;
		close(fd);
		p[i] = c;
	}
	return 0;
}

/* Splits rel into its parent directory (opened, O_PATH) and base name. */
static int root_open_parent(int rootfd, const char *rel, const struct sb_owner *create,
			    const char **ret_base)
{
	_cleanup_free_ char *dir = xstrdup(rel);
	char *slash = strrchr(dir, '/');
	*ret_base = slash ? rel + (slash - dir) + 1 : rel;
	if (slash)
		*slash = '\0';
	else
		dir[0] = '\0';
	if (create && dir[0]) {
		int r = root_mkdir_p(rootfd, dir, 0755, create);
		if (r < 0)
			return r;
	}
	return root_open(rootfd, dir, O_PATH | O_DIRECTORY);
}

/* ------------------------------------------------ files made for the run */

/* A file sandbox_run() created in the tree, removed after the command. */
struct sb_made {
	char *rel;
	dev_t dev;
	ino_t ino;
	off_t size;             /* removed only while it still has this size */
	char *old_link;         /* a symlink it replaced, restored afterwards */
};

struct sb_made_list {
	struct sb_made *v;
	size_t n;
};

/*
 * Makes sure rel is a regular file: creates it with content when missing,
 * and, with replace_link, replaces a symlink (remembered in made) by one.
 * Anything else already there is left alone.
 */
static int ensure_file(int rootfd, const char *rel, const char *content, mode_t mode,
		       bool replace_link, const struct sb_owner *own, struct sb_made_list *made,
		       struct err *e)
{
	const char *base;
	_cleanup_close_ int pfd = root_open_parent(rootfd, rel, own, &base);
	if (pfd < 0)
		return err_set_errno(e, pfd, "sandbox: cannot open the directory of '/%s'", rel);
	struct stat st;
	_cleanup_free_ char *old_link = NULL;
	if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		if (!S_ISLNK(st.st_mode) || !replace_link)
			return 0;
		/* some file systems report 0 as a symlink's size */
		size_t cap = (st.st_size > 4096 ? (size_t)st.st_size : 4096) + 1;
		old_link = xmalloc(cap);
		ssize_t n = readlinkat(pfd, base, old_link, cap);
		if (n < 0 || (size_t)n >= cap)
			return err_set(e, -EIO, "sandbox: cannot read the symlink '/%s'", rel);
		old_link[n] = '\0';
		if (unlinkat(pfd, base, 0) < 0)
			return err_set_errno(e, -errno, "sandbox: cannot replace the symlink '/%s'", rel);
	} else if (errno != ENOENT) {
		return err_set_errno(e, -errno, "sandbox: cannot stat '/%s'", rel);
	}
	/* O_PATH fds do not take O_CREAT: reopen the parent for real */
	_cleanup_close_ int dfd = openat(pfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return err_set_errno(e, -errno, "sandbox: cannot open the directory of '/%s'", rel);
	_cleanup_close_ int fd = openat(dfd, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
					mode);
	if (fd < 0)
		return err_set_errno(e, -errno, "sandbox: cannot create '/%s'", rel);
	size_t len = strlen(content);
	int r = fs_write_all(fd, content, len);
	if (r == 0 && fchmod(fd, mode) < 0)
		r = -errno;
	if (r == 0 && own->uid != (uid_t)-1 && fchown(fd, own->uid, own->gid) < 0)
		r = -errno;
	if (r == 0 && fstat(fd, &st) < 0)
		r = -errno;
	if (r < 0) {
		unlinkat(dfd, base, 0);
		return err_set_errno(e, r, "sandbox: cannot write '/%s'", rel);
	}
	made->v = xrealloc(made->v, (made->n + 1) * sizeof(*made->v));
	made->v[made->n++] = (struct sb_made){ xstrdup(rel), st.st_dev, st.st_ino, (off_t)len,
					       TAKE_PTR(old_link) };
	return 0;
}

/* Removes what ensure_file() made, if it is still what it made. */
static void made_undo(int rootfd, struct sb_made_list *made)
{
	for (size_t i = made->n; i-- > 0; ) {
		struct sb_made *m = &made->v[i];
		const char *base;
		int pfd = rootfd >= 0 ? root_open_parent(rootfd, m->rel, NULL, &base) : -1;
		if (pfd >= 0) {
			int dfd = openat(pfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			struct stat st;
			if (dfd >= 0 && fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
			    S_ISREG(st.st_mode) && st.st_dev == m->dev && st.st_ino == m->ino &&
			    st.st_size == m->size && unlinkat(dfd, base, 0) == 0 && m->old_link &&
			    symlinkat(m->old_link, dfd, base) < 0)
				log_warn("sandbox: cannot restore the symlink '/%s': %s", m->rel,
					 strerror(errno));
			if (dfd >= 0)
				close(dfd);
			close(pfd);
		}
		free(m->rel);
		free(m->old_link);
	}
	free(made->v);
	made->v = NULL;
	made->n = 0;
}

/* ----------------------------------------------------------- child data */

/* What init (or the intermediate) reports when it fails before exec. */
struct sb_report {
	int err;                /* errno; SB_NO_ERRNO: what says it all (EIO) */
	char what[248];         /* "mount '/proc'" */
};
#define SB_NO_ERRNO (-1)

struct sb_bind_prep {
	const char *host;
	char *target;           /* relative to root */
	bool dir;
	bool writable;
};

/* When each phase of the last run ended (CLOCK_MONOTONIC, ns): a shared
 * page the children write into, for sandbox_last_timing(). */
enum {
	SB_T_ENTRY,             /* sandbox_run() called */
	SB_T_FORK,              /* everything prepared, proc_start() */
	SB_T_NETNS,             /* intermediate: network namespaces made */
	SB_T_PASTA,             /* intermediate: pasta started */
	SB_T_CGROUP,            /* intermediate: init and pasta in the cgroup */
	SB_T_INIT,              /* init: running */
	SB_T_MOUNTS,            /* init: in the new root */
	SB_T_NETWORK,           /* init: pasta has configured the network */
	SB_T_USERNS,            /* init: in the user namespace, ids dropped */
	SB_T_EXEC,              /* init: filter loaded, about to exec */
	SB_T__COUNT,
};
static uint64_t *sb_times;

static void mark(int which)
{
	struct timespec ts;
	if (sb_times && clock_gettime(CLOCK_MONOTONIC, &ts) == 0)
		sb_times[which] = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Everything the children use, built before fork. */
struct sb_child {
	const struct sandbox *sb;
	const char *root;       /* canonical */
	const char *cwd;
	const char *hostname;
	char **argv;
	char **env;
	struct strv exec_paths; /* where argv[0] may be, in PATH order */
	struct sb_bind_prep *binds;
	size_t n_binds;
	bool resolv;            /* bind the host's resolv.conf */
	char resolv_src[32];    /* what: the host's, or pasta's DNS forwarder's */
	bool sys;               /* root has /sys */
	pid_t parent;           /* upaas */
	int report_fd;          /* write end of the sb_report pipe */
	/* the user namespace */
	char uid_map[160];
	char gid_map[160];
	struct sb_owner own;    /* host ids of root inside */
	char dev_opts[96];      /* tmpfs /dev, /dev/shm, devpts: owned inside */
	char shm_opts[96];
	char pts_opts[96];
	const struct sb_filters *filters;
	const struct sb_cgroup *cg;
	const struct sb_net *net;   /* NULL: no network */
};

/* "/proc/self/fd/N" without snprintf. */
static const char *fd_path(char out[32], int fd)
{
	out[0] = '\0';
	sb_str_add(out, 32, "/proc/self/fd/");
	sb_str_addu(out, 32, (unsigned long)fd);
	return out;
}

/* Reports "what 'path'" and errno to sandbox_run(), without dying. */
static void child_report(const struct sb_child *c, int err, const char *what, const char *path)
{
	struct sb_report rep = { .err = err ? err : EIO };
	sb_str_add(rep.what, sizeof(rep.what), what);
	if (path) {
		sb_str_add(rep.what, sizeof(rep.what), " '");
		sb_str_add(rep.what, sizeof(rep.what), path);
		sb_str_add(rep.what, sizeof(rep.what), "'");
	}
	ssize_t w = write(c->report_fd, &rep, sizeof(rep));
	(void)w;
}

/* Reports "what 'path'" and errno to sandbox_run(), then dies. */
static _Noreturn void child_fail(const struct sb_child *c, int err, const char *what,
				 const char *path)
{
	child_report(c, err, what, path);
	proc_child_report(-(err ? err : EIO));
	_exit(127);
}

/* ------------------------------------------------------------- mounting */

enum {
	SB_M_DIR = 1 << 0,       /* the target is a directory (else a file) */
	SB_M_FATAL = 1 << 1,     /* failure aborts the command */
	SB_M_RO = 1 << 2,        /* bind: remount read-only */
	SB_M_OPTIONAL = 1 << 3,  /* a missing target is fine */
};

/* Opens a mount target inside the (bind-mounted) root; never a symlink. */
static int target_open(int rootfd, const char *rel, bool dir)
{
	int fd = root_open(rootfd, rel, O_PATH | O_NOFOLLOW | (dir ? O_DIRECTORY : 0));
	if (fd < 0)
		return fd;
	struct stat st;
	if (fstat(fd, &st) < 0 || S_ISLNK(st.st_mode) || S_ISDIR(st.st_mode) != dir) {
		close(fd);
		return dir ? -ENOTDIR : -EISDIR;
	}
	return fd;
}

/* Makes the mount on rel read-only: reopened, so that the fd names the
 * new mount's root and not what it covers. */
static int remount_ro(int rootfd, const char *rel, unsigned opts)
{
	char fdp[32];
	int fd = target_open(rootfd, rel, opts & SB_M_DIR);
	if (fd < 0)
		return fd;
	int r = mount(NULL, fd_path(fdp, fd), NULL,
		      MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) < 0 ? -errno : 0;
	close(fd);
	return r;
}

/* mount() onto rel inside root; returns 0 or -errno. src NULL: rel itself
 * (a bind of a path onto itself, to make it read-only). */
static int mount_in(int rootfd, const char *src, const char *rel, const char *type,
		    unsigned long flags, const char *data, unsigned opts)
{
	char fdp[32];
	int fd = target_open(rootfd, rel, opts & SB_M_DIR);
	if (fd < 0)
		return fd == -ENOENT && (opts & SB_M_OPTIONAL) ? 0 : fd;
	const char *p = fd_path(fdp, fd);
	int r = mount(src ? src : p, p, type, flags, data) < 0 ? -errno : 0;
	close(fd);
	if (r < 0 || !(opts & SB_M_RO) || (flags & MS_RDONLY))
		return r;
	return remount_ro(rootfd, rel, opts);
}

/* The file systems of every sandbox, as systemd's nspawn keeps them. */
static const struct sb_mount {
	const char *src, *target, *type;
	const char *display;
	unsigned long flags;
	const char *data;
	unsigned opts;
} sb_mounts[] = {
	{ "proc", "proc", "proc", "/proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, SB_M_DIR | SB_M_FATAL },
	/* tmpfs /dev: data from sb_child.dev_opts */
	{ "tmpfs", "dev", "tmpfs", "/dev", MS_NOSUID | MS_NOEXEC, NULL, SB_M_DIR | SB_M_FATAL },
	/* read-only, for package scripts that look at it; optional */
	{ "sysfs", "sys", "sysfs", "/sys", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, SB_M_DIR },
};

/*
 * What /proc and /sys must not give away (systemd-nspawn's and Docker's
 * lists). Read-only: the kernel's knobs (/proc/sys: core_pattern,
 * modprobe, ...; sysrq). Masked files (the host's /dev/null over them,
 * read-only): kernel memory, keys, the host's timers and tasks. Masked
 * directories (an empty read-only tmpfs): hardware and firmware. The user
 * namespace already denies writes to root-owned files of /proc and /sys;
 * this holds even if it did not. Missing entries are skipped.
 */
static const char *const sb_proc_ro[] = {
	"proc/sys", "proc/sysrq-trigger", "proc/irq", "proc/bus", "proc/fs", "proc/apm",
};
static const char *const sb_proc_mask_files[] = {
	"proc/kcore", "proc/kallsyms", "proc/keys", "proc/key-users", "proc/timer_list",
	"proc/timer_stats", "proc/sched_debug", "proc/latency_stats",
};
static const char *const sb_mask_dirs[] = {
	"proc/acpi", "proc/asound", "proc/scsi", "proc/driver",
	"sys/firmware", "sys/devices/virtual/powercap", "sys/kernel/security",
};

static void child_masks(const struct sb_child *c, int rootfd)
{
	struct stat st;
	for (size_t i = 0; i < ARRAY_SIZE(sb_proc_ro); i++) {
		const char *rel = sb_proc_ro[i];
		int fd = root_open(rootfd, rel, O_PATH | O_NOFOLLOW);
		if (fd == -ENOENT)
			continue;
		if (fd < 0 || fstat(fd, &st) < 0)
			child_fail(c, fd < 0 ? -fd : errno, "open", rel);
		close(fd);
		unsigned opts = SB_M_RO | (S_ISDIR(st.st_mode) ? SB_M_DIR : 0);
		int r = mount_in(rootfd, NULL, rel, NULL, MS_BIND | MS_REC, NULL, opts);
		if (r < 0)
			child_fail(c, -r, "make read-only", rel);
	}
	for (size_t i = 0; i < ARRAY_SIZE(sb_proc_mask_files); i++) {
		int r = mount_in(rootfd, "/dev/null", sb_proc_mask_files[i], NULL, MS_BIND, NULL,
				 SB_M_RO | SB_M_OPTIONAL);
		if (r < 0)
			child_fail(c, -r, "mask", sb_proc_mask_files[i]);
	}
	for (size_t i = 0; i < ARRAY_SIZE(sb_mask_dirs); i++) {
		if (!strncmp(sb_mask_dirs[i], "sys/", 4) && !c->sys)
			continue;
		int r = mount_in(rootfd, "tmpfs", sb_mask_dirs[i], "tmpfs",
				 MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0555,size=4k",
				 SB_M_DIR | SB_M_OPTIONAL);
		if (r < 0)
			child_fail(c, -r, "mask", sb_mask_dirs[i]);
	}
}

/* The device nodes of /dev, bound from the host (mknod is refused in a
 * user namespace and keeps the host's major/minor numbers). /dev/tty is
 * the caller's controlling terminal, and the command has none (a new
 * session): it names a terminal only once the command makes one of its
 * own devpts its controlling terminal. Root inside owns none of them: a
 * chmod or chown is refused. */
static const char *const sb_devices[] = { "null", "zero", "full", "random", "urandom", "tty" };

static const struct { const char *target, *name; } sb_dev_links[] = {
	{ "pts/ptmx", "ptmx" },
	{ "/proc/self/fd", "fd" },
	{ "/proc/self/fd/0", "stdin" },
	{ "/proc/self/fd/1", "stdout" },
	{ "/proc/self/fd/2", "stderr" },
};

/* Fills the fresh tmpfs /dev. */
static void child_dev(const struct sb_child *c, int rootfd)
{
	char fdp[32];
	int devfd = target_open(rootfd, "dev", true);
	if (devfd < 0)
		child_fail(c, -devfd, "open", "/dev");
	for (size_t i = 0; i < ARRAY_SIZE(sb_devices); i++) {
		const char *name = sb_devices[i];
		char host[32] = "/dev/";
		sb_str_add(host, sizeof(host), name);
		int fd = openat(devfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
		if (fd < 0)
			child_fail(c, errno, "create", host);
		if (mount(host, fd_path(fdp, fd), NULL, MS_BIND, NULL) < 0)
			child_fail(c, errno, "bind", host);
		close(fd);
	}
	/* a devpts of our own: the host's terminals stay out of reach */
	if (mkdirat(devfd, "pts", 0755) < 0)
		child_fail(c, errno, "mkdir", "/dev/pts");
	int fd = openat(devfd, "pts", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || mount("devpts", fd_path(fdp, fd), "devpts", MS_NOSUID | MS_NOEXEC,
			    c->pts_opts) < 0)
		child_fail(c, errno, "mount", "/dev/pts");
	close(fd);
	for (size_t i = 0; i < ARRAY_SIZE(sb_dev_links); i++) {
		if (symlinkat(sb_dev_links[i].target, devfd, sb_dev_links[i].name) < 0)
			child_fail(c, errno, "symlink in", "/dev");
		/* root's inside, as the tmpfs is */
		if (c->own.uid != (uid_t)-1 &&
		    fchownat(devfd, sb_dev_links[i].name, c->own.uid, c->own.gid,
			     AT_SYMLINK_NOFOLLOW) < 0)
			child_fail(c, errno, "chown in", "/dev");
	}
	if (mkdirat(devfd, "shm", 01777) < 0)
		child_fail(c, errno, "mkdir", "/dev/shm");
	fd = openat(devfd, "shm", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || mount("tmpfs", fd_path(fdp, fd), "tmpfs", MS_NOSUID | MS_NODEV,
			    c->shm_opts) < 0)
		child_fail(c, errno, "mount", "/dev/shm");
	close(fd);
	close(devfd);
}

/* Builds the tree under root; returns an O_PATH fd of root's new mount. */
static int child_mounts(const struct sb_child *c)
{
	/* root must be a mount point of its own: for pivot_root, and so
	 * that everything below belongs to this namespace's tree */
	if (mount(c->root, c->root, NULL, MS_BIND | MS_REC, NULL) < 0)
		child_fail(c, errno, "bind", c->root);
	/* opened after the bind: the fd must name the new mount */
	int rootfd = open(c->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		child_fail(c, errno, "open", c->root);

	for (size_t i = 0; i < ARRAY_SIZE(sb_mounts); i++) {
		const struct sb_mount *m = &sb_mounts[i];
		if (!strcmp(m->target, "sys") && !c->sys)
			continue;
		const char *data = !strcmp(m->target, "dev") ? c->dev_opts : m->data;
		int r = mount_in(rootfd, m->src, m->target, m->type, m->flags, data, m->opts);
		if (r < 0 && (m->opts & SB_M_FATAL))
			child_fail(c, -r, "mount", m->display);
	}
	child_masks(c, rootfd);
	child_dev(c, rootfd);
	if (c->resolv) {
		int r = mount_in(rootfd, c->resolv_src, SB_RESOLV, NULL, MS_BIND, NULL, SB_M_RO);
		if (r < 0)
			child_fail(c, -r, "bind", "/" SB_RESOLV);
		if (strcmp(c->resolv_src, "/etc/resolv.conf"))
			unlink(c->resolv_src);
	}
	for (size_t i = 0; i < c->n_binds; i++) {
		const struct sb_bind_prep *b = &c->binds[i];
		int r = mount_in(rootfd, b->host, b->target, NULL, MS_BIND, NULL,
				 (b->dir ? SB_M_DIR : 0) | (b->writable ? 0 : SB_M_RO));
		if (r < 0)
			child_fail(c, -r, "bind", b->host);
	}
	return rootfd;
}

/* Enters root for good: pivot_root, so the host's tree is not even below
 * "/" any more; plain chroot where pivot_root cannot work (initramfs, where
 * the user namespace is then refused: chrooted processes may not make one). */
static void child_enter_root(const struct sb_child *c, int rootfd)
{
	if (fchdir(rootfd) < 0)
		child_fail(c, errno, "chdir", c->root);
	if (syscall(SYS_pivot_root, ".", ".") == 0) {
		/* the old root is now stacked on the new one: detach it */
		if (umount2(".", MNT_DETACH) < 0)
			child_fail(c, errno, "detach the old root", NULL);
	} else if (errno != EINVAL || chroot(".") < 0) {
		child_fail(c, errno, "enter", c->root);
	}
	if (chdir("/") < 0)
		child_fail(c, errno, "chdir", "/");
	close(rootfd);
}

static void child_rlimits(const struct sb_child *c)
{
	const struct { int res; int64_t v; const char *name; } lim[] = {
		{ RLIMIT_NOFILE, c->sb->rlimit_nofile, "RLIMIT_NOFILE" },
		{ RLIMIT_NPROC, c->sb->rlimit_nproc, "RLIMIT_NPROC" },
		{ RLIMIT_AS, c->sb->rlimit_as, "RLIMIT_AS" },
		{ RLIMIT_FSIZE, c->sb->rlimit_fsize, "RLIMIT_FSIZE" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(lim); i++) {
		if (lim[i].v <= 0)
			continue;
		struct rlimit rl = { (rlim_t)lim[i].v, (rlim_t)lim[i].v }, cur;
		if (setrlimit(lim[i].res, &rl) == 0)
			continue;
		/* Without CAP_SYS_RESOURCE (some containers) a limit cannot be
		 * raised above the hard limit we inherited: lowering is what
		 * matters, so clamp to it rather than fail. */
		if (errno == EPERM && getrlimit(lim[i].res, &cur) == 0 &&
		    cur.rlim_max != RLIM_INFINITY && rl.rlim_max > cur.rlim_max) {
			rl.rlim_cur = rl.rlim_max = cur.rlim_max;
			if (setrlimit(lim[i].res, &rl) == 0)
				continue;
		}
		child_fail(c, errno, "setrlimit", lim[i].name);
	}
}

/* ----------------------------------------------------------- privileges */

/*
 * Capabilities root steps never need (apt, dpkg, useradd, the admin's
 * commands work on files), and that reach beyond the sandbox. In the user
 * namespace they would act on namespaces the host owns, where they are
 * refused anyway; dropping them keeps it so should one slip.
 */
static const int sb_root_drop_caps[] = {
	CAP_SYS_MODULE, CAP_SYS_BOOT, CAP_SYS_TIME, CAP_SYS_RAWIO, CAP_MAC_ADMIN,
	CAP_MAC_OVERRIDE, CAP_SYSLOG, CAP_WAKE_ALARM, CAP_BLOCK_SUSPEND, CAP_AUDIT_CONTROL,
	CAP_SYS_ADMIN, CAP_MKNOD, CAP_DAC_READ_SEARCH, CAP_NET_ADMIN, CAP_NET_RAW,
	CAP_SYS_PTRACE, CAP_SYS_RESOURCE, CAP_LINUX_IMMUTABLE, CAP_AUDIT_WRITE,
	CAP_AUDIT_READ, CAP_BPF, CAP_PERFMON, CAP_IPC_OWNER,
};

/*
 * The one privilege drop of upaas: becomes uid/gid with no capability at
 * all, in phases (as bubblewrap does), each read back: a privilege that
 * silently stayed is worse than a failure. Runs in a child after fork, so
 * it only makes system calls. Returns 0, or -errno with *what naming the
 * phase that failed. Works on the host and in a user namespace alike (ids
 * are those of the caller's namespace).
 */
static int drop_privs(uid_t uid, gid_t gid, const char **what)
{
	/* Phase 1, still root: clear the ambient set and the bounding set
	 * while we hold CAP_SETPCAP, which dropping needs; afterwards no exec
	 * can regain a capability */
	*what = "clear the ambient capabilities";
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		return -errno;
	*what = "drop a capability from the bounding set";
	for (int cap = 0; cap < 64; cap++) {
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == 0)
			continue;
		if (errno == EINVAL)
			break;       /* past the kernel's last capability */
		return -errno;
	}

	/* Phase 2: groups first, then gid, then uid: after setresuid we
	 * could no longer change the others */
	*what = "setgroups";
	if (setgroups(1, &gid) < 0)
		return -errno;
	*what = "setresgid";
	if (setresgid(gid, gid, gid) < 0)
		return -errno;
	*what = "setresuid";
	if (setresuid(uid, uid, uid) < 0)
		return -errno;
	uid_t ru, eu, su;
	gid_t rg, eg, sg, groups[2];
	*what = "verify the uid";
	if (getresuid(&ru, &eu, &su) < 0 || ru != uid || eu != uid || su != uid)
		return -EPERM;
	*what = "verify the gid";
	if (getresgid(&rg, &eg, &sg) < 0 || rg != gid || eg != gid || sg != gid)
		return -EPERM;
	*what = "verify the supplementary groups";
	if (getgroups(2, groups) != 1 || groups[0] != gid)
		return -EPERM;

	/* Phase 3: on the host the uid change already emptied permitted and
	 * effective (no SECBIT_KEEP_CAPS); in a user namespace entered as an
	 * unmapped id it did not. Clear them all explicitly, inheritable too */
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2];
	memset(data, 0, sizeof(data));
	*what = "clear the capability sets";
	if (capset(&hdr, data) < 0)
		return -errno;

	/* Phase 4: no exec can grant privileges again (setuid bits, file
	 * capabilities) */
	*what = "set no_new_privs";
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -errno;

	/* Phase 5: read it all back */
	*what = "verify that no capability is left";
	if (capget(&hdr, data) < 0)
		return -errno;
	for (int i = 0; i < 2; i++)
		if (data[i].effective || data[i].permitted || data[i].inheritable)
			return -EPERM;
	for (int cap = 0; cap < 64; cap++) {
		int b = prctl(PR_CAPBSET_READ, cap, 0, 0, 0);
		if (b < 0)
			break;
		if (b > 0 || prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, cap, 0, 0) > 0)
			return -EPERM;
	}
	*what = "verify no_new_privs";
	if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
		return -EPERM;
	*what = "verify that root cannot be regained";
	if (uid != 0 && setresuid(0, 0, 0) == 0)
		return -EPERM;
	return 0;
}

int sandbox_drop_hook(void *data)
{
	const struct sandbox_drop *d = data;
	const char *what;
	int r = drop_privs(d->uid, d->gid, &what);

	if (r < 0)
		return r;
	/* changing the credentials cleared the parent death signal: set it
	 * again, then make sure upaas did not die in between */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
		return -errno;
	if (getppid() != d->parent)
		return -ESRCH;
	return 0;
}

/*
 * Root steps: uid and gid 0 of the user namespace (the range's first ids on
 * the host), with the capabilities of that namespace only, minus the few
 * that act on the machine rather than on the tree; no_new_privs. Read back.
 */
static int become_root(const char **what)
{
	gid_t zero = 0;
	*what = "setgroups";
	if (setgroups(1, &zero) < 0)
		return -errno;
	*what = "setresgid";
	if (setresgid(0, 0, 0) < 0)
		return -errno;
	*what = "setresuid";
	if (setresuid(0, 0, 0) < 0)
		return -errno;
	uid_t ru, eu, su;
	gid_t rg, eg, sg;
	*what = "verify the ids";
	if (getresuid(&ru, &eu, &su) < 0 || ru || eu || su ||
	    getresgid(&rg, &eg, &sg) < 0 || rg || eg || sg)
		return -EPERM;
	*what = "drop a capability from the bounding set";
	for (size_t i = 0; i < ARRAY_SIZE(sb_root_drop_caps); i++)
		if (prctl(PR_CAPBSET_DROP, sb_root_drop_caps[i], 0, 0, 0) < 0 && errno != EINVAL)
			return -errno;
	*what = "clear the ambient capabilities";
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		return -errno;
	*what = "set no_new_privs";
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -errno;
	*what = "verify the bounding set";
	for (size_t i = 0; i < ARRAY_SIZE(sb_root_drop_caps); i++)
		if (prctl(PR_CAPBSET_READ, sb_root_drop_caps[i], 0, 0, 0) > 0)
			return -EPERM;
	return 0;
}

/* execve along the prepared PATH candidates, as execvp would. */
static _Noreturn void child_exec(const struct sb_child *c)
{
	int err = ENOENT;
	for (size_t i = 0; i < c->exec_paths.n; i++) {
		execve(c->exec_paths.v[i], c->argv, c->env);
		if (errno == EACCES)
			err = EACCES;
		else if (errno != ENOENT && errno != ENOTDIR) {
			err = errno;
			break;
		}
	}
	child_fail(c, err, "exec", c->argv[0]);
}

/* ------------------------------------------------------------------ init */

/* What a service manager or a terminal sends to stop or poke a service:
 * passed on to the command (sb->init) by upaas, the intermediate and init. */
static const int sb_fwd_signals[] = { SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 };

/* Where the handlers of upaas and of the intermediate pass them; one that
 * came before there was anyone to pass it to waits in sb_fwd_pending. */
static volatile pid_t sb_fwd_pid;
static volatile sig_atomic_t sb_fwd_pending;

static void sb_fwd_handler(int sig)
{
	int saved = errno;
	if (sb_fwd_pid > 0)
		kill(sb_fwd_pid, sig);
	else
		sb_fwd_pending = sig;
	errno = saved;
}

static void sb_noop_handler(int sig)
{
	(void)sig;
}

/* Sets handler for every signal of sb_fwd_signals (old: may be NULL). */
static void sb_fwd_install(void (*handler)(int), struct sigaction *old)
{
	struct sigaction sa = { .sa_handler = handler };
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < ARRAY_SIZE(sb_fwd_signals); i++)
		sigaction(sb_fwd_signals[i], &sa, old ? &old[i] : NULL);
}

/*
 * With sb->init, PID 1 of the namespace stays a minimal init and the
 * command runs as its child, as tini does. Returns only in the child, which
 * goes on to exec the command. init passes each signal of sb_fwd_signals
 * on to the command, reaps whatever becomes its child (the orphans of the
 * namespace come to PID 1), and once the command is gone exits with its
 * status (128+N when a signal N killed it); its end ends the namespace.
 * Runs after the filter and the drop: init holds nothing the command has
 * not.
 */
static void child_become_init(const struct sb_child *c)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	for (size_t i = 0; i < ARRAY_SIZE(sb_fwd_signals); i++)
		sigaddset(&set, sb_fwd_signals[i]);
	/* a signal from outside reaches a namespace's init only when init
	 * handles it: a handler, and the signal blocked for sigwaitinfo */
	sb_fwd_install(sb_noop_handler, NULL);
	struct sigaction chld = { .sa_handler = sb_noop_handler };
	sigemptyset(&chld.sa_mask);
	sigaction(SIGCHLD, &chld, NULL);
	sigprocmask(SIG_BLOCK, &set, NULL);
	pid_t pid = fork();
	if (pid < 0)
		child_fail(c, errno, "fork the command", NULL);
	if (pid == 0) {
		struct sigaction dfl = { .sa_handler = SIG_DFL };
		sigemptyset(&dfl.sa_mask);
		for (size_t i = 0; i < ARRAY_SIZE(sb_fwd_signals); i++)
			sigaction(sb_fwd_signals[i], &dfl, NULL);
		sigaction(SIGCHLD, &dfl, NULL);
		sigprocmask(SIG_UNBLOCK, &set, NULL);
		return;
	}
	/* init never execs: the command reports its own exec (proc's status
	 * pipe, the report pipe); init keeps only stdin, stdout and stderr */
	syscall(SYS_close_range, 3U, ~0U, 0U);
	for (;;) {
		siginfo_t si;
		int sig = sigwaitinfo(&set, &si);
		if (sig < 0)
			continue;
		if (sig != SIGCHLD) {
			kill(pid, sig);
			continue;
		}
		int st;
		pid_t w;
		while ((w = waitpid(-1, &st, WNOHANG)) > 0)
			if (w == pid)
				_exit(WIFSIGNALED(st) ? 128 + WTERMSIG(st)
						      : WIFEXITED(st) ? WEXITSTATUS(st) : 255);
	}
}

/* The pipes between init and the intermediate. */
struct sb_init_fds {
	int alive;              /* EOF: the intermediate died */
	int up;                 /* init -> intermediate: "my user namespace exists" */
	int down;               /* intermediate -> init: "its maps are written" */
	int netns;              /* the network's namespace, or -1 */
};

/* Dies when the intermediate has (its end of alive shows EOF). */
static void check_alive(const struct sb_init_fds *f)
{
	struct pollfd pfd = { .fd = f->alive, .events = POLLIN };
	if (poll(&pfd, 1, 0) != 0)
		_exit(127);
}

/* PID 1 of the new PID namespace: builds the root, then becomes the command. */
static _Noreturn void child_init(const struct sb_child *c, const struct sb_init_fds *f)
{
	const char *what;
	int r;

	mark(SB_T_INIT);
	/* Phase 1: die with the intermediate, and through it with upaas.
	 * The intermediate is outside our PID namespace (getppid() is 0
	 * here), so its death before the prctl shows as EOF on alive. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
		child_fail(c, errno, "set the parent death signal", NULL);
	check_alive(f);
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			signal(sig, SIG_DFL);

	/* Phase 2: the namespaces, made by host root so that the host owns
	 * them: root inside will have no capability over them. The network
	 * one exists already when the run has network: join it. */
	int flags = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWCGROUP;
	if (!c->net)
		flags |= CLONE_NEWNET;
	if (unshare(flags) < 0)
		child_fail(c, errno, "unshare the namespaces", NULL);
	if (c->net) {
		if (setns(f->netns, CLONE_NEWNET) < 0)
			child_fail(c, errno, "join the network namespace", NULL);
		close(f->netns);
		/* before pasta connects anything: no way to the host's own
		 * addresses nor to link-local */
		if ((r = sb_net_routes(c->net, &what)) < 0)
			child_fail(c, -r, what, NULL);
	}
	if ((r = sb_net_lo_up(&what)) < 0)
		child_fail(c, -r, what, NULL);

	/* Phase 3: before anything is mounted, stop every propagation to and
	 * from the host; then the root, and into it */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		child_fail(c, errno, "make the mounts private", NULL);
	int rootfd = child_mounts(c);
	if (sethostname(c->hostname, strlen(c->hostname)) < 0)
		child_fail(c, errno, "sethostname", c->hostname);
	child_enter_root(c, rootfd);
	mark(SB_T_MOUNTS);

	/* Phase 4: pasta has been setting the network up meanwhile */
	if (c->net && (r = sb_net_wait(c->net, SB_NET_TIMEOUT_MS, &what)) < 0)
		child_fail(c, -r, what, NULL);
	mark(SB_T_NETWORK);

	/* Phase 5: rlimits, while host root can still raise a hard limit */
	child_rlimits(c);

	/* Phase 6: the user namespace; the intermediate, host root in the
	 * parent namespace, writes its maps. From here on we hold
	 * capabilities in this namespace only. */
	if (unshare(CLONE_NEWUSER) < 0)
		child_fail(c, errno, "unshare the user namespace", NULL);
	char byte = 'u';
	if (write(f->up, &byte, 1) != 1)
		child_fail(c, errno, "signal the intermediate", NULL);
	ssize_t k;
	while ((k = read(f->down, &byte, 1)) < 0 && errno == EINTR)
		;
	if (k != 1)
		_exit(127);      /* the intermediate reported why */
	close(f->up);
	close(f->down);

	/* Phase 7: the command's ids inside */
	r = c->sb->drop_privs ? drop_privs(c->sb->uid, c->sb->gid, &what) : become_root(&what);
	if (r < 0)
		child_fail(c, -r, what, NULL);
	if (chdir(c->cwd) < 0)
		child_fail(c, errno, "chdir", c->cwd);
	/* changing the credentials cleared the parent death signal: set it
	 * again, then make sure the intermediate did not die in between */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
		child_fail(c, errno, "set the parent death signal", NULL);
	check_alive(f);
	close(f->alive);
	mark(SB_T_USERNS);

	/* no fd of upaas (databases, sockets, other pipes) reaches the
	 * command: everything above stderr closes on exec */
	if (syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
		for (int fd = 3; fd < 65536; fd++)
			fcntl(fd, F_SETFD, FD_CLOEXEC);
	}
	/* Phase 8, last: the filter (no_new_privs is set) */
	if ((r = sb_seccomp_load(c->filters, &what)) < 0)
		child_fail(c, -r, what, NULL);
	if (c->sb->init)
		child_become_init(c);
	mark(SB_T_EXEC);
	child_exec(c);
}

/*
 * Waits until init has something to say on up (its user namespace exists,
 * or it died), watching pasta meanwhile: pasta failing before init is
 * ready is reported as such (its own message is in the log), instead of
 * init timing out on a network that never comes. -EIO when pasta died.
 */
static int wait_up_or_pasta(const struct sb_child *c, int up, pid_t pasta)
{
	int pfd = (int)syscall(SYS_pidfd_open, pasta, 0);
	if (pfd < 0)
		return 0;         /* before 5.3: init's timeout will do */
	for (;;) {
		struct pollfd p[2] = { { .fd = up, .events = POLLIN }, { .fd = pfd, .events = POLLIN } };
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[0].revents)
			break;
		if (p[1].revents) {
			int st = 0;
			waitpid(pasta, &st, 0);
			char what[64] = "start the network: pasta exited with status ";
			sb_str_addu(what, sizeof(what), WIFEXITED(st) ? (unsigned long)WEXITSTATUS(st)
								  : 128ul + (unsigned long)WTERMSIG(st));
			child_report(c, SB_NO_ERRNO, what, NULL);
			close(pfd);
			return -EIO;
		}
	}
	close(pfd);
	return 0;
}

/*
 * proc's child_setup: runs in the child of proc_start(), which is already
 * in a session and keyring of its own. Never returns on success: it becomes
 * the intermediate and _exit()s with init's status.
 */
static int sb_child_setup(void *data)
{
	const struct sb_child *c = data;
	const char *what;
	int r;

	/* Phase 1: die with upaas (proc set PDEATHSIG too: make sure upaas
	 * did not die before it took effect) */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 || getppid() != c->parent)
		_exit(127);

	/* Phase 2 (cgroup v1): into the run's cgroup, before anything forks */
	if ((r = sb_cgroup_join(c->cg, &what)) < 0)
		child_fail(c, -r, what, NULL);

	/* Phase 3: the network's namespaces, owned by pasta's user (before the
	 * PID namespace: the maker must not become its init) */
	int userns_fd = -1, netns_fd = -1;
	if (c->net && (r = sb_net_make(c->net, &userns_fd, &netns_fd, &what)) < 0)
		child_fail(c, -r, what, NULL);
	mark(SB_T_NETNS);

	/* Phase 4: the PID namespace applies to our next children: init
	 * first, so that it is PID 1; born in the run's cgroup */
	if (unshare(CLONE_NEWPID) < 0)
		child_fail(c, errno, "unshare the PID namespace", NULL);
	int alive[2], up[2], down[2];
	if (pipe2(alive, O_CLOEXEC) < 0 || pipe2(up, O_CLOEXEC) < 0 || pipe2(down, O_CLOEXEC) < 0)
		child_fail(c, errno, "pipe", NULL);
	bool init_placed = false, pasta_placed = true;
	pid_t pid = sb_cgroup_fork(c->cg, &init_placed);
	if (pid < 0)
		child_fail(c, errno, "fork", NULL);
	if (pid == 0) {
		close(alive[1]);
		close(up[0]);
		close(down[1]);
		if (userns_fd >= 0)
			close(userns_fd);
		struct sb_init_fds f = { alive[0], up[1], down[0], netns_fd };
		child_init(c, &f);
	}
	close(alive[0]);
	close(up[1]);
	close(down[0]);
	/* proc's status pipe must see EOF once init has exec'd */
	close(proc_child_status_fd());
	/* with an init: what upaas passes on goes on to it (no SA_RESTART:
	 * the wait below sees EINTR and waits again) */
	if (c->sb->init) {
		sb_fwd_pid = pid;
		sb_fwd_install(sb_fwd_handler, NULL);
	}

	/* Phase 5: pasta, in init's PID namespace, so that it dies with it */
	pid_t pasta = -1;
	bool ok = true;
	if (c->net) {
		pasta = sb_net_start(c->net, userns_fd, netns_fd, c->cg, &pasta_placed, &what);
		close(userns_fd);
		close(netns_fd);
		if (pasta < 0) {
			child_report(c, -pasta, what, c->net->argv_v[0]);
			ok = false;
		}
	}

	mark(SB_T_PASTA);

	/* Phase 6: a kernel without clone3 (before 5.7, cgroup v2): move
	 * them in now. init cannot exec before phase 7, so nothing of the
	 * command runs outside the cgroup. */
	if (ok && !init_placed && (r = sb_cgroup_attach(c->cg, pid, &what)) < 0) {
		child_report(c, -r, what, NULL);
		ok = false;
	}
	if (ok && pasta > 0 && !pasta_placed && (r = sb_cgroup_attach(c->cg, pasta, &what)) < 0) {
		child_report(c, -r, what, NULL);
		ok = false;
	}
	mark(SB_T_CGROUP);
	if (!ok)
		kill(pid, SIGKILL);

	/* Phase 7: init's user namespace: root there is the range's first id
	 * (the map lets setgroups be: apt and dpkg drop to their users) */
	char byte;
	ssize_t k = 0;
	if (ok && pasta > 0 && (r = wait_up_or_pasta(c, up[0], pasta)) < 0) {
		kill(pid, SIGKILL);
		ok = false;
	}
	while (ok && (k = read(up[0], &byte, 1)) < 0 && errno == EINTR)
		;
	if (ok && k == 1) {
		if ((r = sb_write_proc(pid, "uid_map", c->uid_map)) < 0)
			child_report(c, -r, "write the uid map of", c->root);
		else if ((r = sb_write_proc(pid, "gid_map", c->gid_map)) < 0)
			child_report(c, -r, "write the gid map of", c->root);
		if (r < 0 || write(down[1], &byte, 1) != 1)
			kill(pid, SIGKILL);
	}

	/* Phase 8: keep only the alive pipe (init's death watch) and wait.
	 * pasta is our child too and keeps init from finishing its exit
	 * until we reap it: wait for any child */
	close(up[0]);
	close(down[1]);
	int keep = alive[1];
	if (keep > 3)
		syscall(SYS_close_range, 3U, (unsigned)keep - 1, 0U);
	syscall(SYS_close_range, (unsigned)keep + 1, ~0U, 0U);

	int status = 0;
	for (;;) {
		int st;
		pid_t w = waitpid(-1, &st, 0);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (w == pid)
			status = st;
	}
	if (WIFSIGNALED(status))
		_exit(128 + WTERMSIG(status));
	_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 255);
}

/* --------------------------------------------------------------- parent */

/* Where argv[0] may be: itself when it has a '/', else each PATH entry. */
static void exec_candidates(const struct sandbox *sb, struct strv *out)
{
	const char *cmd = sb->argv.v[0];
	if (strchr(cmd, '/')) {
		strv_push(out, cmd);
		return;
	}
	const char *path = NULL;
	for (size_t i = 0; i < sb->env.n; i++)
		if (!strncmp(sb->env.v[i], "PATH=", 5))
			path = sb->env.v[i] + 5;
	if (!path)
		path = SANDBOX_DEFAULT_PATH;
	for (const char *s = path; ; ) {
		const char *end = strchrnul(s, ':');
		/* an empty entry would mean the cwd: not looked at */
		if (end > s && *s == '/')
			strv_pushf(out, "%.*s/%s", (int)(end - s), s, cmd);
		if (!*end)
			break;
		s = end + 1;
	}
}

/* Mount point directories, bind targets and the files made for the run. */
static int prepare_tree(const struct sandbox *sb, int rootfd, struct sb_child *c,
			struct sb_made_list *made, struct err *e)
{
	static const char *const dirs[] = { "proc", "dev" };
	const struct sb_owner *own = &c->own;
	for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
		int r = root_mkdir_p(rootfd, dirs[i], 0755, own);
		if (r < 0)
			return err_set_errno(e, r, "sandbox: cannot create '/%s' in '%s'", dirs[i],
				       c->root);
	}
	int fd = root_open(rootfd, "sys", O_PATH | O_DIRECTORY | O_NOFOLLOW);
	if (fd >= 0) {
		c->sys = true;
		close(fd);
	}

	int r = ensure_file(rootfd, SB_POLICY_RC_D, SB_POLICY_RC_D_TEXT, 0755, false, own, made, e);
	if (r < 0)
		return r;
	struct stat st;
	if (c->resolv_src[0] || (stat("/etc/resolv.conf", &st) == 0 && S_ISREG(st.st_mode))) {
		/* a symlink in the tree (to a resolver's runtime file) is
		 * replaced for the run: mounting onto it would follow it */
		r = ensure_file(rootfd, SB_RESOLV, "", 0644, true, own, made, e);
		if (r < 0)
			return r;
		if (!c->resolv_src[0])
			snprintf(c->resolv_src, sizeof(c->resolv_src), "/etc/resolv.conf");
		c->resolv = true;
	}

	c->binds = xcalloc(sb->n_binds ? sb->n_binds : 1, sizeof(*c->binds));
	for (size_t i = 0; i < sb->n_binds; i++) {
		const struct sandbox_bind *b = &sb->binds[i];
		struct sb_bind_prep *p = &c->binds[c->n_binds++];
		p->host = b->host;
		p->writable = b->writable;
		const char *t = b->target ? b->target : b->host;
		while (*t == '/')
			t++;
		p->target = xstrdup(t);
		if (!*t)
			return err_set(e, -EINVAL, "sandbox: cannot bind '%s' over the root", b->host);
		if (stat(b->host, &st) < 0)
			return err_set_errno(e, -errno, "sandbox: cannot bind '%s'", b->host);
		p->dir = S_ISDIR(st.st_mode);
		r = p->dir ? root_mkdir_p(rootfd, t, 0755, own)
			   : ensure_file(rootfd, t, "", 0644, false, own, made, e);
		if (r < 0)
			return err_set_errno(e, r, "sandbox: cannot create the bind target '/%s'", t);
	}
	return 0;
}

/*
 * The user namespace of the run: sb's maps, else 0..65535 to the default
 * range; the ids the command runs as must be mapped. Fills the map texts,
 * the owner of what upaas creates in the tree and the mount options that
 * make /dev root's inside.
 */
static int prepare_ids(const struct sandbox *sb, struct sb_child *c, uid_t *ret_helper_uid,
		       gid_t *ret_helper_gid, struct err *e)
{
	struct sandbox m = { 0 };
	memcpy(m.uid_map, sb->uid_map, sizeof(m.uid_map));
	memcpy(m.gid_map, sb->gid_map, sizeof(m.gid_map));
	m.n_uid_map = sb->n_uid_map;
	m.n_gid_map = sb->n_gid_map;
	m.helper_uid = sb->helper_uid;
	m.helper_gid = sb->helper_gid;
	if (!m.n_uid_map && !m.n_gid_map) {
		struct sandbox_range r;
		sandbox_range_get(NULL, &r);
		sandbox_map_range(&m, &r);
		if (!sb->helper_uid) {
			m.helper_uid = r.helper_uid;
			m.helper_gid = r.helper_gid;
		}
	}
	if (!m.helper_uid)
		sb_helper_ids("upaas", &m.helper_uid, &m.helper_gid);
	if (m.n_uid_map > SANDBOX_IDMAP_MAX || m.n_gid_map > SANDBOX_IDMAP_MAX ||
	    sb_map_text(m.uid_map, m.n_uid_map, c->uid_map, sizeof(c->uid_map)) < 0 ||
	    sb_map_text(m.gid_map, m.n_gid_map, c->gid_map, sizeof(c->gid_map)) < 0)
		return err_set(e, -EINVAL, "sandbox: invalid uid or gid map");
	/* root, and pasta's user (it owns the network's namespace), are never
	 * anyone's inside */
	for (size_t i = 0; i < m.n_uid_map; i++) {
		const struct sandbox_idmap *x = &m.uid_map[i];
		if (x->outside == 0)
			return err_set(e, -EPERM, "sandbox: refusing to map host uid 0 into a sandbox");
		if (m.helper_uid >= x->outside && m.helper_uid - x->outside < x->count)
			return err_set(e, -EPERM, "sandbox: refusing to map host uid %u (pasta's) "
				       "into a sandbox", (unsigned)m.helper_uid);
	}
	for (size_t i = 0; i < m.n_gid_map; i++)
		if (m.gid_map[i].outside == 0)
			return err_set(e, -EPERM, "sandbox: refusing to map host gid 0 into a sandbox");
	uid_t uid = sb->drop_privs ? sb->uid : 0;
	gid_t gid = sb->drop_privs ? sb->gid : 0;
	if (sandbox_host_uid(&m, uid) < 0 || sandbox_host_gid(&m, gid) < 0)
		return err_set(e, -EINVAL, "sandbox: uid %u or gid %u is not mapped into the sandbox",
			       (unsigned)uid, (unsigned)gid);

	int64_t ru = sandbox_host_uid(&m, 0), rg = sandbox_host_gid(&m, 0);
	int64_t tty = sandbox_host_gid(&m, 5);
	c->own.uid = ru >= 0 && rg >= 0 ? (uid_t)ru : (uid_t)-1;
	c->own.gid = ru >= 0 && rg >= 0 ? (gid_t)rg : (gid_t)-1;
	if (c->own.uid != (uid_t)-1) {
		snprintf(c->dev_opts, sizeof(c->dev_opts), "mode=0755,size=1m,uid=%u,gid=%u",
			 (unsigned)c->own.uid, (unsigned)c->own.gid);
		snprintf(c->shm_opts, sizeof(c->shm_opts), "mode=1777,size=64m,uid=%u,gid=%u",
			 (unsigned)c->own.uid, (unsigned)c->own.gid);
	} else {
		snprintf(c->dev_opts, sizeof(c->dev_opts), "mode=0755,size=1m");
		snprintf(c->shm_opts, sizeof(c->shm_opts), "mode=1777,size=64m");
	}
	/* the tty group inside, when it is mapped */
	snprintf(c->pts_opts, sizeof(c->pts_opts), "newinstance,ptmxmode=0666,mode=0620");
	if (tty >= 0)
		snprintf(c->pts_opts + strlen(c->pts_opts), sizeof(c->pts_opts) - strlen(c->pts_opts),
			 ",gid=%u", (unsigned)tty);
	*ret_helper_uid = m.helper_uid;
	*ret_helper_gid = m.helper_gid;
	return 0;
}

static void child_data_free(struct sb_child *c)
{
	strv_free(&c->exec_paths);
	for (size_t i = 0; i < c->n_binds; i++)
		free(c->binds[i].target);
	free(c->binds);
}

/* Runs the prepared command through proc; reads init's report afterwards. */
static int sb_spawn(const struct sandbox *sb, struct sb_child *c, struct err *e)
{
	int rep[2];
	if (pipe2(rep, O_CLOEXEC) < 0)
		return err_set_errno(e, -errno, "sandbox: pipe");
	c->report_fd = rep[1];

	struct proc p = PROC_INIT;
	_cleanup_err_ struct err pe = ERR_INIT;
	strv_copy(&p.argv, &sb->argv);   /* for proc's messages */
	strv_copy(&p.env, &sb->env);
	p.env_set = true;
	p.stdin_fd = sb->stdin_fd;
	p.log_fd = sb->log_fd;
	p.log_fd2 = sb->log_fd >= 0 ? sb->log_fd2 : -1;
	p.tee = sb->tee;
	p.capture = sb->capture;
	p.timeout_ms = sb->timeout_ms;
	p.new_session = true;
	p.child_setup = sb_child_setup;
	p.child_data = c;
	/* with an init, the signals that stop a service go on to it instead
	 * of ending upaas (installed first: no moment where they kill it) */
	struct sigaction old[ARRAY_SIZE(sb_fwd_signals)];
	if (sb->init) {
		sb_fwd_pid = 0;
		sb_fwd_pending = 0;
		sb_fwd_install(sb_fwd_handler, old);
	}
	mark(SB_T_FORK);
	int r = proc_start(&p, &pe);
	close(rep[1]);
	c->report_fd = -1;
	if (r >= 0 && sb->init) {
		sb_fwd_pid = p.pid;
		if (sb_fwd_pending)
			kill(p.pid, sb_fwd_pending);
	}
	if (r >= 0)
		r = proc_finish(&p, &pe);
	if (sb->init) {
		sb_fwd_pid = 0;
		for (size_t i = 0; i < ARRAY_SIZE(sb_fwd_signals); i++)
			sigaction(sb_fwd_signals[i], &old[i], NULL);
	}

	/* init's own account of a failure before exec, if there is one; its
	 * writers are gone (dead or exec'd), so this read does not wait */
	struct sb_report report;
	fcntl(rep[0], F_SETFL, O_NONBLOCK);
	ssize_t n = read(rep[0], &report, sizeof(report));
	close(rep[0]);
	if (n == (ssize_t)sizeof(report)) {
		report.what[sizeof(report.what) - 1] = '\0';
		if (report.err == SB_NO_ERRNO)
			r = err_set(e, -EIO, "sandbox: cannot %s", report.what);
		else
			r = err_set_errno(e, -report.err, "sandbox: cannot %s", report.what);
	} else if (r > 0 && c->cg->version) {
		/* a command that failed while its cgroup hit a limit */
		_cleanup_buf_ struct buf d = BUF_INIT;
		proc_describe(&p, &d);
		int v = sb_cgroup_verdict(c->cg, d.p, e);
		if (v < 0)
			r = v;
	} else if (r < 0) {
		err_set(e, r, "%s", err_msg(&pe));
	}
	proc_free(&p);
	return r;
}

int sandbox_run(const struct sandbox *sb, struct err *e)
{
	if (!sb_times) {
		void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		sb_times = p == MAP_FAILED ? NULL : p;
	}
	if (sb_times)
		memset(sb_times, 0, SB_T__COUNT * sizeof(*sb_times));
	mark(SB_T_ENTRY);

	if (!sb->root || !sb->argv.n)
		return err_set(e, -EINVAL, "sandbox: no root or no command");
	_cleanup_free_ char *root = realpath(sb->root, NULL);
	if (!root)
		return err_set_errno(e, -errno, "sandbox: cannot use '%s'", sb->root);
	if (!strcmp(root, "/"))
		return err_set(e, -EINVAL, "sandbox: refusing to use '/' as the root");
	_cleanup_close_ int rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		return err_set_errno(e, -errno, "sandbox: cannot open '%s'", root);

	struct sb_cgroup cg = SB_CGROUP_INIT;
	struct sb_net net = SB_NET_INIT;
	struct sb_child c = {
		.sb = sb,
		.root = root,
		.cwd = sb->cwd ? sb->cwd : "/",
		.hostname = sb->hostname ? sb->hostname : "upaas",
		.argv = strv_array(&sb->argv),
		.env = strv_array(&sb->env),
		.exec_paths = STRV_INIT,
		.parent = getpid(),
		.report_fd = -1,
		.cg = &cg,
	};
	struct sb_made_list made = { NULL, 0 };
	uid_t helper_uid = 0;
	gid_t helper_gid = 0;
	char resolv_tmp[] = "/tmp/upaas-resolv-XXXXXX";
	bool resolv_made = false;
	int r = prepare_ids(sb, &c, &helper_uid, &helper_gid, e);
	if (r >= 0 && sb->network) {
		struct sandbox s = *sb;
		s.helper_uid = helper_uid;
		s.helper_gid = helper_gid;
		r = sb_net_prepare(&net, &s, e);
		c.net = &net;
	}
	if (r >= 0 && net.resolv_text) {
		/* the host's resolver is on its loopback: the run asks pasta's
		 * forwarder instead, named in a resolv.conf of its own; init
		 * unlinks it once bound (a path: an fd would name a mount of
		 * the host's namespace, which cannot be bound in init's) */
		int fd = mkostemp(resolv_tmp, O_CLOEXEC);
		resolv_made = fd >= 0;
		if (fd < 0 || fchmod(fd, 0644) < 0 ||
		    fs_write_all(fd, net.resolv_text, strlen(net.resolv_text)) < 0)
			r = err_set_errno(e, -errno, "sandbox: cannot write a resolv.conf for the run");
		else
			snprintf(c.resolv_src, sizeof(c.resolv_src), "%s", resolv_tmp);
		if (fd >= 0)
			close(fd);
	}
	if (r >= 0)
		r = prepare_tree(sb, rootfd, &c, &made, e);
	if (r >= 0)
		r = sb_seccomp_get(sb->seccomp_deny, &c.filters, e);
	if (r >= 0 && !sb->no_cgroup)
		r = sb_cgroup_create(&cg, sb, e);
	if (r >= 0) {
		exec_candidates(sb, &c.exec_paths);
		r = sb_spawn(sb, &c, e);
	}
	sb_cgroup_destroy(&cg);
	if (resolv_made)
		unlink(resolv_tmp);
	sb_net_free(&net);
	made_undo(rootfd, &made);
	child_data_free(&c);
	return r;
}

void sandbox_last_timing(struct sandbox_timing *t)
{
	*t = (struct sandbox_timing){ 0 };
	if (!sb_times || !sb_times[SB_T_EXEC])
		return;
	const uint64_t *v = sb_times;
#define US(a, b) (v[b] && v[a] && v[b] >= v[a] ? (v[b] - v[a]) / 1000 : 0)
	t->total_us = US(SB_T_ENTRY, SB_T_EXEC);
	t->prepare_us = US(SB_T_ENTRY, SB_T_FORK);
	t->netns_us = US(SB_T_FORK, SB_T_NETNS);
	t->pasta_us = US(SB_T_NETNS, SB_T_PASTA);
	t->cgroup_us = US(SB_T_PASTA, SB_T_CGROUP);
	t->mounts_us = US(SB_T_INIT, SB_T_MOUNTS);
	t->network_us = US(SB_T_MOUNTS, SB_T_NETWORK);
	t->userns_us = US(SB_T_NETWORK, SB_T_USERNS);
	t->seccomp_us = US(SB_T_USERNS, SB_T_EXEC);
#undef US
}

void sandbox_free(struct sandbox *sb)
{
	if (!sb)
		return;
	strv_free(&sb->argv);
	strv_free(&sb->env);
}

int sandbox_check_policy(const struct sandbox_policy *p, struct err *e)
{
	const struct sb_filters *f;
	return sb_seccomp_get(p->seccomp_deny, &f, e);
}

void sandbox_apply_policy(struct sandbox *sb, const struct sandbox_policy *p)
{
	sb->rlimit_nofile = p->nofile;
	sb->rlimit_nproc = p->nproc;
	sb->rlimit_as = p->address_space;
	sb->rlimit_fsize = p->fsize;
	sb->pids_max = p->pids;
	sb->memory_max = p->memory;
	sb->cpu_weight = p->cpu_weight;
	struct sandbox_range r;
	sandbox_range_get(p, &r);
	sandbox_map_range(sb, &r);
	sb->seccomp_deny = p->seccomp_deny;
	sb->pasta = p->pasta;
}

int sandbox_write_file(const char *root, const char *path, const void *data, size_t len,
		       mode_t mode, uid_t uid, gid_t gid, struct err *e)
{
	_cleanup_close_ int rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		return err_set_errno(e, -errno, "cannot open '%s'", root);
	const char *rel = path;
	while (*rel == '/')
		rel++;
	if (!*rel)
		return err_set(e, -EISDIR, "cannot write '%s': it is the root", path);
	const struct sb_owner own = { uid, gid };
	const char *base;
	_cleanup_close_ int pfd = root_open_parent(rootfd, rel, &own, &base);
	if (pfd < 0)
		return err_set_errno(e, pfd, "cannot make the directory of '%s'", path);
	_cleanup_close_ int dfd = openat(pfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return err_set_errno(e, -errno, "cannot open the directory of '%s'", path);
	struct stat st;
	if (fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode))
		return err_set(e, -EISDIR, "cannot write '%s': it is a directory", path);

	/* a new file beside it, complete before it takes the name */
	char tmp[64];
	int fd = -1;
	for (int i = 0; i < 16 && fd < 0; i++) {
		snprintf(tmp, sizeof(tmp), ".upaas-new-%ld-%d-%d", (long)getpid(), i, rand());
		fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0 && errno != EEXIST)
			return err_set_errno(e, -errno, "cannot write '%s'", path);
	}
	if (fd < 0)
		return err_set(e, -EEXIST, "cannot write '%s': no temporary name free", path);
	int r = fs_write_all(fd, data, len);
	if (r == 0 && fchown(fd, uid, gid) < 0)
		r = -errno;
	if (r == 0 && fchmod(fd, mode) < 0)
		r = -errno;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && renameat(dfd, tmp, dfd, base) < 0)
		r = -errno;
	if (r < 0) {
		unlinkat(dfd, tmp, 0);
		return err_set_errno(e, r, "cannot write '%s'", path);
	}
	return 0;
}

int sandbox_private_mounts(struct err *e)
{
	static bool done;
	if (done)
		return 0;
	/* a mount namespace of our own, then no propagation back to the
	 * host: the workspace's mounts die with this process */
	if (unshare(CLONE_NEWNS) < 0)
		return err_set_errno(e, -errno, "cannot unshare the mount namespace");
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return err_set_errno(e, -errno, "cannot make the mounts private");
	done = true;
	return 0;
}
