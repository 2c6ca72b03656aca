/*
 * sandbox/sandbox.c - runs one command in a root directory, in namespaces.
 *
 * Process layout (proc_start() forks the first child):
 *
 *   upaas ── intermediate ── init (PID 1 of a new PID namespace) = the command
 *
 * The intermediate (sb_child_setup, run by proc in its child) unshares the
 * mount, UTS, IPC, PID (and network) namespaces, makes every mount private
 * and forks init. init sets the root up, switches into it and execs the
 * command. The intermediate waits and exits with init's status. Both get
 * SIGKILL when their parent dies (PR_SET_PDEATHSIG), and both are in proc's
 * process group, so a timeout (kill of the group) or the death of upaas
 * kills init, and with it the whole PID namespace. Every mount lives in the
 * new mount namespace, which goes away with its last process: nothing
 * mounted here outlives the command.
 *
 * Everything the children need is prepared before fork (struct sb_child):
 * after fork they only make system calls and never allocate. A failure in
 * init before exec is written as a struct sb_report to a close-on-exec pipe
 * that sandbox_run() reads once the command is over, so the caller gets
 * "sandbox: mount '/proc': ..." instead of a bare exit status 127.
 *
 * Mount targets inside root are opened with openat2(RESOLVE_IN_ROOT), so a
 * symlink in the tree resolves inside the tree and never reaches the host,
 * and mounts are made onto /proc/self/fd/N of that fd.
 *
 * Mounts: root bound onto itself, /proc, a tmpfs /dev (host nodes bound in,
 * a new devpts, tmpfs shm), /sys read-only when root has it, the host's
 * resolv.conf read-only, then sb->binds (not recursive: submounts of a
 * bound host path are not carried in). Then pivot_root (chroot where that
 * is impossible), hostname, lo up, rlimits, and the privilege drop.
 *
 * The tree itself: mount point directories that are missing (proc, dev,
 * bind targets) are created and stay. A missing /usr/sbin/policy-rc.d, a
 * missing (or symlinked) /etc/resolv.conf and missing file bind targets are
 * created for the command and removed again (the symlink restored)
 * afterwards, unless upaas is killed before it can do that. Two sandboxes
 * at once on the same root would share (and remove) one policy-rc.d: each
 * build has its own workspace, so that does not happen.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <grp.h>
#include <sys/capability.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "sandbox/sandbox.h"

#define SB_POLICY_RC_D "usr/sbin/policy-rc.d"
#define SB_POLICY_RC_D_TEXT "#!/bin/sh\n# written by upaas: no daemons start during a build\nexit 101\n"
#define SB_RESOLV "etc/resolv.conf"

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

/* mkdir -p of rel inside rootfd, never following a symlink out of it. */
static int root_mkdir_p(int rootfd, const char *rel, mode_t mode)
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
			int r = mkdirat(pfd, base, mode) < 0 && errno != EEXIST ? -errno : 0;
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
static int root_open_parent(int rootfd, const char *rel, bool create, const char **ret_base)
{
	_cleanup_free_ char *dir = xstrdup(rel);
	char *slash = strrchr(dir, '/');
	*ret_base = slash ? rel + (slash - dir) + 1 : rel;
	if (slash)
		*slash = '\0';
	else
		dir[0] = '\0';
	if (create && dir[0]) {
		int r = root_mkdir_p(rootfd, dir, 0755);
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
		       bool replace_link, struct sb_made_list *made, struct err *e)
{
	const char *base;
	_cleanup_close_ int pfd = root_open_parent(rootfd, rel, true, &base);
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
		int pfd = rootfd >= 0 ? root_open_parent(rootfd, m->rel, false, &base) : -1;
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

/* What init reports when it fails before exec. */
struct sb_report {
	int err;                /* errno */
	char what[248];         /* "mount '/proc'" */
};

struct sb_bind_prep {
	const char *host;
	char *target;           /* relative to root */
	bool dir;
	bool writable;
};

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
	bool sys;               /* root has /sys */
	pid_t parent;           /* upaas */
	int report_fd;          /* write end of the sb_report pipe */
};

/* Appends s to a fixed buffer (no allocation after fork). */
static void str_add(char *dst, size_t cap, const char *s)
{
	size_t n = strlen(dst);
	while (*s && n + 1 < cap)
		dst[n++] = *s++;
	dst[n] = '\0';
}

/* "/proc/self/fd/N" without snprintf. */
static const char *fd_path(char out[32], int fd)
{
	char digits[16];
	int n = 0;
	unsigned v = (unsigned)fd;
	do {
		digits[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v && n < (int)sizeof(digits));
	out[0] = '\0';
	str_add(out, 32, "/proc/self/fd/");
	size_t len = strlen(out);
	while (n > 0)
		out[len++] = digits[--n];
	out[len] = '\0';
	return out;
}

/* Reports "what 'path'" and errno to sandbox_run(), then dies. */
static _Noreturn void child_fail(const struct sb_child *c, int err, const char *what,
				 const char *path)
{
	struct sb_report rep = { .err = err ? err : EIO };
	str_add(rep.what, sizeof(rep.what), what);
	if (path) {
		str_add(rep.what, sizeof(rep.what), " '");
		str_add(rep.what, sizeof(rep.what), path);
		str_add(rep.what, sizeof(rep.what), "'");
	}
	ssize_t w = write(c->report_fd, &rep, sizeof(rep));
	(void)w;
	proc_child_report(-rep.err);
	_exit(127);
}

/* ------------------------------------------------------------- mounting */

enum {
	SB_M_DIR = 1 << 0,       /* the target is a directory (else a file) */
	SB_M_FATAL = 1 << 1,     /* failure aborts the command */
	SB_M_RO = 1 << 2,        /* bind: remount read-only */
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

/* mount() onto rel inside root; returns 0 or -errno. */
static int mount_in(int rootfd, const char *src, const char *rel, const char *type,
		    unsigned long flags, const char *data, unsigned opts)
{
	char fdp[32];
	int fd = target_open(rootfd, rel, opts & SB_M_DIR);
	if (fd < 0)
		return fd;
	int r = mount(src, fd_path(fdp, fd), type, flags, data) < 0 ? -errno : 0;
	close(fd);
	if (r < 0 || !(opts & SB_M_RO))
		return r;
	/* read-only needs a remount of the new mount: reopen the target, so
	 * that the fd names the mount's root and not what it covers */
	fd = target_open(rootfd, rel, opts & SB_M_DIR);
	if (fd < 0)
		return fd;
	r = mount(NULL, fd_path(fdp, fd), NULL,
		  MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) < 0 ? -errno : 0;
	close(fd);
	return r;
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
	{ "tmpfs", "dev", "tmpfs", "/dev", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0755,size=1m",
	  SB_M_DIR | SB_M_FATAL },
	/* read-only, for package scripts that look at it; optional */
	{ "sysfs", "sys", "sysfs", "/sys", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, SB_M_DIR },
};

/* The device nodes of /dev, bound from the host (works where mknod would
 * be refused and keeps the host's major/minor numbers). */
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
		str_add(host, sizeof(host), name);
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
			    "newinstance,ptmxmode=0666,mode=0620,gid=5") < 0)
		child_fail(c, errno, "mount", "/dev/pts");
	close(fd);
	for (size_t i = 0; i < ARRAY_SIZE(sb_dev_links); i++)
		if (symlinkat(sb_dev_links[i].target, devfd, sb_dev_links[i].name) < 0)
			child_fail(c, errno, "symlink in", "/dev");
	if (mkdirat(devfd, "shm", 01777) < 0)
		child_fail(c, errno, "mkdir", "/dev/shm");
	fd = openat(devfd, "shm", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || mount("tmpfs", fd_path(fdp, fd), "tmpfs", MS_NOSUID | MS_NODEV,
			    "mode=1777,size=64m") < 0)
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
		int r = mount_in(rootfd, m->src, m->target, m->type, m->flags, m->data, m->opts);
		if (r < 0 && (m->opts & SB_M_FATAL))
			child_fail(c, -r, "mount", m->display);
	}
	child_dev(c, rootfd);
	if (c->resolv) {
		int r = mount_in(rootfd, "/etc/resolv.conf", SB_RESOLV, NULL, MS_BIND, NULL, SB_M_RO);
		if (r < 0)
			child_fail(c, -r, "bind", "/" SB_RESOLV);
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
 * "/" any more; plain chroot where pivot_root cannot work (initramfs). */
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

/* Brings lo up in the new network namespace (it starts down). */
static void child_loopback(const struct sb_child *c)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		child_fail(c, errno, "socket", NULL);
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	memcpy(ifr.ifr_name, "lo", 3);
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		child_fail(c, errno, "get the flags of", "lo");
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
		child_fail(c, errno, "bring up", "lo");
	close(s);
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

/*
 * Capabilities root steps never need (apt, dpkg, useradd, the admin's
 * commands work on files), and that reach beyond the sandbox: mounting
 * (SYS_ADMIN) or making device nodes (MKNOD) would reach the host's disks,
 * open_by_handle_at (DAC_READ_SEARCH) the host's files, and network steps
 * share the host's network namespace (NET_ADMIN, NET_RAW). What the app
 * writes (its files, its packages' scripts) runs in later root steps, so root
 * in the sandbox must not be root on the host.
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
 * phase that failed.
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

	/* Phase 3: the uid change already emptied permitted and effective
	 * (no SECBIT_KEEP_CAPS); clear them all explicitly, inheritable too */
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

static void child_drop_privs(const struct sb_child *c)
{
	const char *what = NULL;
	int r = drop_privs(c->sb->uid, c->sb->gid, &what);

	if (r < 0)
		child_fail(c, -r, what, NULL);
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

/* Root steps stay root, without the few capabilities that act on the
 * machine rather than on the tree. */
static void child_trim_root(const struct sb_child *c)
{
	for (size_t i = 0; i < ARRAY_SIZE(sb_root_drop_caps); i++)
		if (prctl(PR_CAPBSET_DROP, sb_root_drop_caps[i], 0, 0, 0) < 0 && errno != EINVAL)
			child_fail(c, errno, "drop a capability from the bounding set", NULL);
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

/* PID 1 of the new PID namespace: builds the root, then becomes the command. */
static _Noreturn void child_init(const struct sb_child *c, int alive_fd)
{
	/* Die with the intermediate, and through it with upaas. The
	 * intermediate is outside our PID namespace (getppid() is 0 here),
	 * so its death before the prctl shows as EOF on alive_fd. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
		child_fail(c, errno, "set the parent death signal", NULL);
	struct pollfd pfd = { .fd = alive_fd, .events = POLLIN };
	if (poll(&pfd, 1, 0) != 0)
		_exit(127);

	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			signal(sig, SIG_DFL);

	int rootfd = child_mounts(c);
	if (sethostname(c->hostname, strlen(c->hostname)) < 0)
		child_fail(c, errno, "sethostname", c->hostname);
	if (!c->sb->network)
		child_loopback(c);
	child_enter_root(c, rootfd);
	if (chdir(c->cwd) < 0)
		child_fail(c, errno, "chdir", c->cwd);
	child_rlimits(c);
	if (c->sb->drop_privs) {
		child_drop_privs(c);
		/* changing the credentials cleared the parent death signal:
		 * set it again, then make sure the intermediate did not die in
		 * between (its death shows as EOF on alive_fd) */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
			child_fail(c, errno, "set the parent death signal", NULL);
		if (poll(&pfd, 1, 0) != 0)
			_exit(127);
	} else {
		child_trim_root(c);
	}
	close(alive_fd);
	/* no fd of upaas (databases, sockets, other pipes) reaches the
	 * command: everything above stderr closes on exec */
	if (syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
		for (int fd = 3; fd < 65536; fd++)
			fcntl(fd, F_SETFD, FD_CLOEXEC);
	}
	child_exec(c);
}

/*
 * proc's child_setup: runs in the child of proc_start(). Never returns on
 * success: it becomes the intermediate and _exit()s with init's status.
 */
static int sb_child_setup(void *data)
{
	const struct sb_child *c = data;

	/* Phase 1: die with upaas (proc set PDEATHSIG too: make sure upaas
	 * did not die before it took effect) */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 || getppid() != c->parent)
		_exit(127);

	/* Phase 2: the namespaces; the PID namespace applies to our next child */
	int flags = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID;
	if (!c->sb->network)
		flags |= CLONE_NEWNET;
	if (unshare(flags) < 0)
		child_fail(c, errno, "unshare the namespaces", NULL);

	/* Phase 3: before anything is mounted, stop every propagation to and
	 * from the host */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		child_fail(c, errno, "make the mounts private", NULL);

	int alive[2];
	if (pipe2(alive, O_CLOEXEC) < 0)
		child_fail(c, errno, "pipe", NULL);
	pid_t pid = fork();
	if (pid < 0)
		child_fail(c, errno, "fork", NULL);
	if (pid == 0) {
		close(alive[1]);
		child_init(c, alive[0]);
	}
	close(alive[0]);

	/* Phase 4: the intermediate keeps no fd but the alive pipe: proc's
	 * status pipe must see EOF once init has exec'd, and the report
	 * pipe belongs to init */
	int keep = alive[1];
	if (keep > 3)
		syscall(SYS_close_range, 3U, (unsigned)keep - 1, 0U);
	syscall(SYS_close_range, (unsigned)keep + 1, ~0U, 0U);

	int status;
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			_exit(127);
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
	for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
		int r = root_mkdir_p(rootfd, dirs[i], 0755);
		if (r < 0)
			return err_set_errno(e, r, "sandbox: cannot create '/%s' in '%s'", dirs[i],
				       c->root);
	}
	int fd = root_open(rootfd, "sys", O_PATH | O_DIRECTORY | O_NOFOLLOW);
	if (fd >= 0) {
		c->sys = true;
		close(fd);
	}

	int r = ensure_file(rootfd, SB_POLICY_RC_D, SB_POLICY_RC_D_TEXT, 0755, false, made, e);
	if (r < 0)
		return r;
	struct stat st;
	if (stat("/etc/resolv.conf", &st) == 0 && S_ISREG(st.st_mode)) {
		/* a symlink in the tree (to a resolver's runtime file) is
		 * replaced for the run: mounting onto it would follow it */
		r = ensure_file(rootfd, SB_RESOLV, "", 0644, true, made, e);
		if (r < 0)
			return r;
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
		r = p->dir ? root_mkdir_p(rootfd, t, 0755)
			   : ensure_file(rootfd, t, "", 0644, false, made, e);
		if (r < 0)
			return err_set_errno(e, r, "sandbox: cannot create the bind target '/%s'", t);
	}
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
	p.child_setup = sb_child_setup;
	p.child_data = c;
	int r = proc_start(&p, &pe);
	close(rep[1]);
	c->report_fd = -1;
	if (r >= 0)
		r = proc_finish(&p, &pe);
	proc_free(&p);

	/* init's own account of a failure before exec, if there is one; its
	 * writers are gone (dead or exec'd), so this read does not wait */
	struct sb_report report;
	fcntl(rep[0], F_SETFL, O_NONBLOCK);
	ssize_t n = read(rep[0], &report, sizeof(report));
	close(rep[0]);
	if (n == (ssize_t)sizeof(report)) {
		report.what[sizeof(report.what) - 1] = '\0';
		return err_set_errno(e, -report.err, "sandbox: cannot %s", report.what);
	}
	if (r < 0)
		err_set(e, r, "%s", err_msg(&pe));
	return r;
}

int sandbox_run(const struct sandbox *sb, struct err *e)
{
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
	};
	struct sb_made_list made = { NULL, 0 };
	int r = prepare_tree(sb, rootfd, &c, &made, e);
	if (r >= 0) {
		exec_candidates(sb, &c.exec_paths);
		r = sb_spawn(sb, &c, e);
	}
	made_undo(rootfd, &made);
	child_data_free(&c);
	return r;
}

void sandbox_free(struct sandbox *sb)
{
	if (!sb)
		return;
	strv_free(&sb->argv);
	strv_free(&sb->env);
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
