/*
 * sandbox/cgroup.c - a cgroup per sandbox run: pids, memory and CPU weight
 * limits, and a way to kill everything the run left.
 *
 * Whichever hierarchy the host has:
 *  - cgroup v2 (a stock Debian 12): <mount>/upaas/run-PID-N. The parent is
 *    at the top of the hierarchy, as Docker's cgroupfs driver does: v2 lets
 *    a cgroup hand controllers to children only when it holds no process,
 *    and upaas's own cgroup holds upaas. Limits: pids.max, memory.max (no
 *    swap, the whole group killed on OOM), cpu.weight; cgroup.kill empties
 *    it.
 *  - cgroup v1 (pids and memory mounted separately): upaas/run-PID-N below
 *    upaas's own cgroup of each controller, so that limits set on upaas
 *    still bind what it runs. Limits: pids.max, memory.limit_in_bytes (and
 *    memsw), cpu.shares; the freezer, when mounted, stops the run while it
 *    is killed.
 * Without either (a container without cgroup access) upaas warns once and
 * the rlimits are all there is.
 *
 * Every process of the run is in the cgroup from its start, pasta included:
 * on v2 init and pasta are born there (clone3 with CLONE_INTO_CGROUP); on
 * v1 the sandbox's intermediate process moves itself in before it forks
 * them, writing 0 to each hierarchy's tasks file. Both ways avoid what a
 * write of a pid to cgroup.procs costs: the kernel's global lock of
 * thread groups, which waits for a grace period of RCU (10 ms or more).
 */
#define UPAAS_SANDBOX_INTERNAL
#include <dirent.h>
#include <errno.h>
#include <linux/sched.h>
#include <sched.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>

#include "sandbox/sandbox-int.h"

/* What the host has, found once per process. */
static struct sb_cg_layout hier;
static bool probed;

static void closedirp(DIR **d)
{
	if (*d)
		closedir(*d);
}

static const char *const v1_controllers[] = { "pids", "memory", "cpu", "freezer" };

static bool has_word(const char *list, const char *word, char sep)
{
	size_t n = strlen(word);
	for (const char *p = list; p && *p; ) {
		const char *end = strchrnul(p, sep);
		if ((size_t)(end - p) == n && !strncmp(p, word, n))
			return true;
		p = *end ? end + 1 : end;
	}
	return false;
}

/* The cgroup path in the hierarchy that has controller ctl ("" for the v2
 * line "0::path"), from the text of /proc/self/cgroup. */
static char *own_path(const char *self_cgroup, const char *ctl)
{
	for (const char *line = self_cgroup; *line; ) {
		const char *nl = strchrnul(line, '\n');
		const char *c1 = strchr(line, ':');
		const char *c2 = c1 && c1 < nl ? strchr(c1 + 1, ':') : NULL;
		if (c2 && c2 < nl) {
			_cleanup_free_ char *ctls = xstrndup(c1 + 1, (size_t)(c2 - c1 - 1));
			if (*ctl ? has_word(ctls, ctl, ',') : (!*ctls && !strncmp(line, "0:", 2)))
				return xstrndup(c2 + 1, (size_t)(nl - c2 - 1));
		}
		line = *nl ? nl + 1 : nl;
	}
	return NULL;
}

/* The v2 mount point, and the v1 mount point and mount root of each
 * controller of v1_controllers, from the text of /proc/self/mountinfo. */
static void parse_mounts(const char *mountinfo, char **v2, char *v1_mnt[], char *v1_root[])
{
	_cleanup_free_ char *mi = xstrdup(mountinfo);
	for (char *line = mi; *line; ) {
		char *nl = strchrnul(line, '\n');
		char save = *nl;
		*nl = '\0';
		/* id parent maj:min root mountpoint opts [optional...] - fstype source superopts */
		char *f[6] = { NULL };
		char *p = line;
		for (int i = 0; i < 6 && p; i++) {
			f[i] = p;
			p = strchr(p, ' ');
			if (p)
				*p++ = '\0';
		}
		/* the optional fields end at a lone "-" */
		char *dash = !p ? NULL : !strncmp(p, "- ", 2) ? p : strstr(p, " - ");
		if (dash && *dash == ' ')
			dash++;
		if (dash && f[4]) {
			char *fstype = dash + 2;
			char *src = strchr(fstype, ' ');
			char *super = src ? strchr(src + 1, ' ') : NULL;
			if (src)
				*src = '\0';
			if (!strcmp(fstype, "cgroup2") && !*v2)
				*v2 = xstrdup(f[4]);
			else if (!strcmp(fstype, "cgroup") && super)
				for (size_t i = 0; i < ARRAY_SIZE(v1_controllers); i++)
					if (!v1_mnt[i] && has_word(super + 1, v1_controllers[i], ',')) {
						v1_mnt[i] = xstrdup(f[4]);
						v1_root[i] = xstrdup(f[3]);
					}
		}
		*nl = save;
		line = *nl ? nl + 1 : nl;
	}
}

char *sb_cgroup_v2_mount(const char *mountinfo)
{
	char *v2 = NULL, *mnt[SB_CG_MAX] = { NULL }, *root[SB_CG_MAX] = { NULL };
	parse_mounts(mountinfo, &v2, mnt, root);
	for (size_t i = 0; i < SB_CG_MAX; i++) {
		free(mnt[i]);
		free(root[i]);
	}
	return v2;
}

void sb_cgroup_layout(const char *mountinfo, const char *self_cgroup, const char *v2_controllers,
		      struct sb_cg_layout *out)
{
	char *v1_mnt[SB_CG_MAX] = { NULL }, *v1_root[SB_CG_MAX] = { NULL };
	*out = (struct sb_cg_layout){ 0 };
	parse_mounts(mountinfo, &out->v2, v1_mnt, v1_root);

	/* v2 only when it really has the controllers (on a hybrid host the
	 * v2 mount holds none of them) */
	if (out->v2 && v2_controllers && has_word(v2_controllers, "pids", ' ') &&
	    has_word(v2_controllers, "memory", ' '))
		out->version = 2;
	if (!out->version && v1_mnt[0] && v1_mnt[1]) {
		for (size_t i = 0; i < ARRAY_SIZE(v1_controllers); i++) {
			if (!v1_mnt[i])
				continue;
			_cleanup_free_ char *own = own_path(self_cgroup, v1_controllers[i]);
			const char *rel = own ? own : "/";
			/* the path is from the hierarchy's root; the mount may
			 * show only a part of it (in a container) */
			size_t rl = strlen(v1_root[i]);
			if (strcmp(v1_root[i], "/") && !strncmp(rel, v1_root[i], rl))
				rel += rl;
			while (*rel == '/')
				rel++;
			out->v1[out->n_v1] = *rel ? path_join(v1_mnt[i], rel) : xstrdup(v1_mnt[i]);
			out->v1_ctl[out->n_v1++] = v1_controllers[i];
		}
		out->version = 1;
	}
	for (size_t i = 0; i < SB_CG_MAX; i++) {
		free(v1_mnt[i]);
		free(v1_root[i]);
	}
}

void sb_cgroup_layout_free(struct sb_cg_layout *l)
{
	free(l->v2);
	for (size_t i = 0; i < l->n_v1; i++)
		free(l->v1[i]);
	*l = (struct sb_cg_layout){ 0 };
}

static void probe(void)
{
	probed = true;
	_cleanup_buf_ struct buf mi = BUF_INIT, self = BUF_INIT, ctl = BUF_INIT;
	if (buf_read_file(&mi, "/proc/self/mountinfo", 1 << 22) < 0 ||
	    buf_read_file(&self, "/proc/self/cgroup", 1 << 16) < 0)
		return;
	_cleanup_free_ char *v2 = sb_cgroup_v2_mount(mi.p);
	_cleanup_free_ char *f = v2 ? path_join(v2, "cgroup.controllers") : NULL;
	bool have_ctl = f && buf_read_file(&ctl, f, 4096) == 0;
	if (have_ctl)
		buf_rtrim(&ctl);
	sb_cgroup_layout(mi.p, self.p, have_ctl ? ctl.p : NULL, &hier);
}

/* Writes a value to dir/file. */
static int cg_write(const char *dir, const char *file, const char *value)
{
	_cleanup_free_ char *p = path_join(dir, file);
	_cleanup_close_ int fd = open(p, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	ssize_t n = write(fd, value, strlen(value));
	return n < 0 ? -errno : 0;
}

/* "key N" of a flat keyed file (memory.events, pids.events); -1 if absent. */
static int64_t cg_key(const char *dir, const char *file, const char *key)
{
	_cleanup_free_ char *p = path_join(dir, file);
	_cleanup_buf_ struct buf b = BUF_INIT;
	if (buf_read_file(&b, p, 1 << 16) < 0)
		return -1;
	size_t kl = strlen(key);
	for (char *line = b.p; *line; ) {
		char *nl = strchrnul(line, '\n');
		if (!strncmp(line, key, kl) && line[kl] == ' ') {
			*nl = '\0';
			int64_t v;
			return parse_int64(line + kl + 1, 0, INT64_MAX, &v) == 0 ? v : -1;
		}
		line = *nl ? nl + 1 : nl;
	}
	return -1;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* Kills every process listed in dir/cgroup.procs; returns how many. */
static int kill_listed(const char *dir)
{
	_cleanup_free_ char *p = path_join(dir, "cgroup.procs");
	_cleanup_buf_ struct buf b = BUF_INIT;
	if (buf_read_file(&b, p, 1 << 22) < 0)
		return 0;
	int n = 0;
	for (char *line = b.p; *line; ) {
		char *nl = strchrnul(line, '\n');
		char save = *nl;
		*nl = '\0';
		int64_t pid;
		if (parse_int64(line, 1, INT32_MAX, &pid) == 0 && kill((pid_t)pid, SIGKILL) == 0)
			n++;
		*nl = save;
		line = *nl ? nl + 1 : nl;
	}
	return n;
}

static bool populated(const char *dir, int version)
{
	if (version == 2)
		return cg_key(dir, "cgroup.events", "populated") > 0;
	_cleanup_free_ char *p = path_join(dir, "cgroup.procs");
	_cleanup_buf_ struct buf b = BUF_INIT;
	return buf_read_file(&b, p, 4096) == 0 && b.len > 0;
}

/* Empties and removes one run cgroup (all its controllers' dirs). */
static void cg_remove(int version, char *const *dirs, const char *const *ctls, size_t n)
{
	bool busy = false;
	for (size_t i = 0; i < n; i++)
		busy |= populated(dirs[i], version);
	if (busy && version == 2) {
		/* 5.14+: the kernel kills the whole group, forks in flight too */
		if (cg_write(dirs[0], "cgroup.kill", "1") < 0)
			kill_listed(dirs[0]);
	} else if (busy) {
		const char *freezer = NULL;
		for (size_t i = 0; i < n; i++)
			if (!strcmp(ctls[i], "freezer"))
				freezer = dirs[i];
		/* frozen, nothing forks while we kill */
		if (freezer && cg_write(freezer, "freezer.state", "FROZEN") == 0)
			for (int k = 0; k < 100; k++) {
				_cleanup_free_ char *p = path_join(freezer, "freezer.state");
				_cleanup_buf_ struct buf b = BUF_INIT;
				if (buf_read_file(&b, p, 64) == 0 && !strncmp(b.p, "FROZEN", 6))
					break;
				sleep_ms(1);
			}
		for (size_t i = 0; i < n; i++)
			kill_listed(dirs[i]);
		if (freezer)
			cg_write(freezer, "freezer.state", "THAWED");
	}
	/* A killed task leaves its cgroup only once it has finished exiting
	 * (a large address space or an OOM kill under a busy host take a
	 * while) and the kernel offlines a v1 memory group after its tasks:
	 * until then rmdir says EBUSY. Wait for it, up to 10 s a group. */
	for (size_t i = 0; i < n; i++) {
		int err = EBUSY;
		for (int k = 0; k < 1000; k++) {
			if (!populated(dirs[i], version)) {
				err = rmdir(dirs[i]) < 0 ? errno : 0;
				if (err != EBUSY)
					break;
			} else if (version == 1 && k % 10 == 9) {
				kill_listed(dirs[i]);
			}
			sleep_ms(k < 100 ? 2 : 10);
		}
		if (err && err != ENOENT)
			log_warn("sandbox: cannot remove the cgroup '%s': %s", dirs[i], strerror(err));
	}
}

/* The parent of the run cgroups for each of the host's dirs. */
static char *parent_dir(size_t i)
{
	return path_join(hier.version == 2 ? hier.v2 : hier.v1[i], "upaas");
}

/* Removes the run cgroups of upaas processes that are gone (killed before
 * they could clean up). Once per process, before its first run: one named
 * after our own pid is a dead process's that had the pid before us (pids
 * are reused), and would be in our way. */
static void sweep(void)
{
	static bool done;
	if (done)
		return;
	done = true;
	size_t n = hier.version == 2 ? 1 : hier.n_v1;
	_cleanup_strv_ struct strv dead = STRV_INIT;
	/* every hierarchy: a removal cut short may have left a run's group
	 * in some of them only */
	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ char *parent = parent_dir(i);
		_cleanup_(closedirp) DIR *d = opendir(parent);
		struct dirent *de;
		while (d && (de = readdir(d))) {
			int64_t pid;
			char *dash = strrchr(de->d_name, '-');
			if (strncmp(de->d_name, "run-", 4) || !dash || strv_contains(&dead, de->d_name))
				continue;
			_cleanup_free_ char *pids = xstrndup(de->d_name + 4,
							     (size_t)(dash - de->d_name - 4));
			if (parse_int64(pids, 1, INT32_MAX, &pid) < 0)
				continue;
			if ((pid_t)pid != getpid() && (kill((pid_t)pid, 0) == 0 || errno != ESRCH))
				continue;
			strv_push(&dead, de->d_name);
		}
	}
	for (size_t k = 0; k < dead.n; k++) {
		char *dirs[SB_CG_MAX];
		for (size_t i = 0; i < n; i++) {
			_cleanup_free_ char *parent = parent_dir(i);
			dirs[i] = path_join(parent, dead.v[k]);
		}
		cg_remove(hier.version, dirs, hier.v1_ctl, n);
		for (size_t i = 0; i < n; i++)
			free(dirs[i]);
	}
}

static void fmt_limit(int64_t v, char *out, size_t cap)
{
	if (v % ((int64_t)1 << 30) == 0)
		snprintf(out, cap, "%" PRId64 " GiB", v >> 30);
	else if (v % ((int64_t)1 << 20) == 0)
		snprintf(out, cap, "%" PRId64 " MiB", v >> 20);
	else
		snprintf(out, cap, "%" PRId64 " bytes", v);
}

int sb_cgroup_limits(int version, const char *dir, const char *ctl, const struct sandbox *sb)
{
	char v[32];
	int r = 0;
	bool v2 = version == 2;
	if (sb->pids_max > 0 && (v2 || !strcmp(ctl, "pids"))) {
		snprintf(v, sizeof(v), "%" PRId64, sb->pids_max);
		if ((r = cg_write(dir, "pids.max", v)) < 0)
			return r;
	}
	if (sb->memory_max > 0 && (v2 || !strcmp(ctl, "memory"))) {
		snprintf(v, sizeof(v), "%" PRId64, sb->memory_max);
		if ((r = cg_write(dir, v2 ? "memory.max" : "memory.limit_in_bytes", v)) < 0)
			return r;
		/* swap would only make a hog slower to stop (the files are
		 * missing without swap accounting); an OOM kill takes the whole
		 * run down, not one victim that the run may shrug off */
		if (v2) {
			cg_write(dir, "memory.swap.max", "0");
			cg_write(dir, "memory.oom.group", "1");
		} else {
			cg_write(dir, "memory.memsw.limit_in_bytes", v);
		}
	}
	if (sb->cpu_weight > 0 && v2) {
		/* without the cpu controller enabled there is no weight */
		snprintf(v, sizeof(v), "%d", sb->cpu_weight);
		cg_write(dir, "cpu.weight", v);
	} else if (sb->cpu_weight > 0 && !strcmp(ctl, "cpu")) {
		/* v1 shares: 1024 is the default, as weight 100 */
		int shares = sb->cpu_weight * 1024 / 100;
		snprintf(v, sizeof(v), "%d", shares < 2 ? 2 : shares);
		r = cg_write(dir, "cpu.shares", v);
	}
	return r;
}

/* Makes the parent (v2: hands it the controllers) and the run's dir. */
static int make_dir(size_t i, const char *name, char **ret, struct err *e)
{
	_cleanup_free_ char *parent = parent_dir(i);
	_cleanup_free_ char *dir = path_join(parent, name);
	for (int attempt = 0; ; attempt++) {
		if (mkdir(parent, 0755) < 0 && errno != EEXIST)
			return err_set_errno(e, -errno, "sandbox: cannot create the cgroup '%s'", parent);
		if (hier.version == 2) {
			/* the root has them already on a systemd host; cpu is
			 * optional (weights only) */
			cg_write(hier.v2, "cgroup.subtree_control", "+pids +memory");
			cg_write(hier.v2, "cgroup.subtree_control", "+cpu");
			int r = cg_write(parent, "cgroup.subtree_control", "+pids +memory");
			if (r < 0)
				return err_set_errno(e, r, "sandbox: cannot enable the pids and memory "
						     "controllers in '%s'", parent);
			cg_write(parent, "cgroup.subtree_control", "+cpu");
		}
		if (mkdir(dir, 0755) == 0)
			break;
		/* another run just removed the (v1) parent: once more */
		if (errno != ENOENT || attempt > 3)
			return err_set_errno(e, -errno, "sandbox: cannot create the cgroup '%s'", dir);
	}
	*ret = TAKE_PTR(dir);
	return 0;
}

int sb_cgroup_create(struct sb_cgroup *cg, const struct sandbox *sb, struct err *e)
{
	static unsigned seq;
	static bool warned;
	if (!probed)
		probe();
	if (!hier.version) {
		if (!warned)
			log_warn("sandbox: no usable cgroup hierarchy (neither v2 with the pids and "
				 "memory controllers nor v1 pids and memory): runs have no pids or "
				 "memory limit");
		warned = true;
		return 0;
	}
	sweep();
	_cleanup_free_ char *name = xasprintf("run-%ld-%u", (long)getpid(), seq++);
	size_t n = hier.version == 2 ? 1 : hier.n_v1;
	cg->version = hier.version;
	cg->pids_max = sb->pids_max;
	cg->memory_max = sb->memory_max;
	for (size_t i = 0; i < n; i++) {
		/* v1: every hierarchy joined costs the join a migration; the
		 * cpu one is only worth it for a weight that is not everyone's */
		if (hier.version == 1 && !strcmp(hier.v1_ctl[i], "cpu") &&
		    (sb->cpu_weight <= 0 || sb->cpu_weight == 100))
			continue;
		int r = make_dir(i, name, &cg->dir[cg->n], e);
		if (r < 0)
			return r;
		cg->ctl[cg->n++] = hier.version == 2 ? "" : hier.v1_ctl[i];
	}

	for (size_t i = 0; i < cg->n; i++) {
		int r = sb_cgroup_limits(cg->version, cg->dir[i], cg->ctl[i], sb);
		if (r < 0)
			return err_set_errno(e, r, "sandbox: cannot set the limits of the cgroup '%s'",
					     cg->dir[i]);
	}
	for (size_t i = 0; i < cg->n; i++) {
		_cleanup_free_ char *p = path_join(cg->dir[i], cg->version == 1 ? "tasks" : "cgroup.procs");
		cg->procs_fd[i] = open(p, O_WRONLY | O_CLOEXEC);
		if (cg->procs_fd[i] < 0)
			return err_set_errno(e, -errno, "sandbox: cannot open '%s'", p);
	}
	if (cg->version == 2) {
		cg->dir_fd = open(cg->dir[0], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (cg->dir_fd < 0)
			return err_set_errno(e, -errno, "sandbox: cannot open '%s'", cg->dir[0]);
	}
	return 0;
}

int sb_cgroup_join(const struct sb_cgroup *cg, const char **what)
{
	*what = "join the run's cgroup";
	if (cg->version != 1)
		return 0;
	/* "0" to tasks moves the calling thread only: the kernel skips its
	 * global lock (and its wait for RCU) for that. We are the only
	 * thread of this process. */
	for (size_t i = 0; i < cg->n; i++)
		if (write(cg->procs_fd[i], "0", 1) < 0)
			return -errno;
	return 0;
}

pid_t sb_cgroup_fork(const struct sb_cgroup *cg, bool *ret_placed)
{
	/* v1: the caller joined; none: nowhere to go */
	*ret_placed = cg->version != 2;
	if (cg->version == 2 && cg->dir_fd >= 0) {
		struct clone_args args = {
			.flags = CLONE_INTO_CGROUP,
			.exit_signal = SIGCHLD,
			.cgroup = (uint64_t)cg->dir_fd,
		};
		long pid = syscall(SYS_clone3, &args, sizeof(args));
		if (pid >= 0) {
			*ret_placed = true;
			return (pid_t)pid;
		}
		/* before 5.7: fork, then move */
		if (errno != ENOSYS && errno != E2BIG && errno != EINVAL)
			return -1;
	}
	return fork();
}

int sb_cgroup_attach(const struct sb_cgroup *cg, pid_t pid, const char **what)
{
	char v[24] = "";
	sb_str_addu(v, sizeof(v), (unsigned long)pid);
	*what = "move the run into its cgroup";
	for (size_t i = 0; i < cg->n; i++)
		if (write(cg->procs_fd[i], v, strlen(v)) < 0)
			return -errno;
	return 0;
}

int sb_cgroup_verdict(const struct sb_cgroup *cg, const char *cmd, struct err *e)
{
	for (size_t i = 0; i < cg->n; i++) {
		bool all = cg->version == 2;
		if (cg->pids_max > 0 && (all || !strcmp(cg->ctl[i], "pids")) &&
		    cg_key(cg->dir[i], "pids.events", "max") > 0)
			return err_set(e, -EAGAIN, "'%s' exceeded limits.pids (%" PRId64 ")", cmd,
				       cg->pids_max);
	}
	for (size_t i = 0; i < cg->n; i++) {
		bool all = cg->version == 2;
		if (cg->memory_max > 0 && (all || !strcmp(cg->ctl[i], "memory")) &&
		    cg_key(cg->dir[i], all ? "memory.events" : "memory.oom_control", "oom_kill") > 0) {
			char lim[48];
			fmt_limit(cg->memory_max, lim, sizeof(lim));
			return err_set(e, -ENOMEM, "'%s' ran out of memory: limits.memory %s", cmd, lim);
		}
	}
	return 0;
}

void sb_cgroup_destroy(struct sb_cgroup *cg)
{
	for (size_t i = 0; i < cg->n; i++)
		if (cg->procs_fd[i] >= 0)
			close(cg->procs_fd[i]);
	if (cg->dir_fd >= 0)
		close(cg->dir_fd);
	if (cg->n)
		cg_remove(cg->version, cg->dir, cg->ctl, cg->n);
	/* v1 parents sit in upaas's own cgroup, which its owner may want to
	 * remove: leave no empty parent behind (another run's mkdir retries) */
	for (size_t i = 0; cg->version == 1 && i < cg->n; i++) {
		char *slash = strrchr(cg->dir[i], '/');
		if (slash) {
			*slash = '\0';
			rmdir(cg->dir[i]);
		}
	}
	for (size_t i = 0; i < cg->n; i++)
		free(cg->dir[i]);
	*cg = (struct sb_cgroup)SB_CGROUP_INIT;
}
