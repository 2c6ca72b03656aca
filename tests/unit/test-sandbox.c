/*
 * tests/unit/test-sandbox.c - the sandbox's pieces that need no root: the
 * subordinate id lookup, the maps, the cgroup layouts of a v2, a hybrid and
 * a containerised host, the cgroup files written and read (v2 and v1 in a
 * directory of the test's own), and the seccomp filters, loaded for real in
 * a child.
 */
#define UPAAS_SANDBOX_INTERNAL
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "sandbox/sandbox-int.h"
#include "tests/unit/unit.h"

static char *tmpdir(void)
{
	char tmpl[] = "/tmp/upaas-unit-sb-XXXXXX";
	assert_non_null(mkdtemp(tmpl));
	return xstrdup(tmpl);
}

static void put(const char *dir, const char *name, const char *text)
{
	_cleanup_free_ char *p = path_join(dir, name);
	assert_int_equal(fs_write_atomic(p, text, strlen(text), 0644), 0);
}

static char *get(const char *dir, const char *name)
{
	_cleanup_free_ char *p = path_join(dir, name);
	struct buf b = BUF_INIT;
	assert_int_equal(buf_read_file(&b, p, 4096), 0);
	return buf_detach(&b);
}

static void rm_dir(const char *dir)
{
	struct err e = ERR_INIT;
	assert_int_equal(fs_rm_rf(dir, &e), 0);
	err_free(&e);
}

static void test_subid_lookup(void **state)
{
	_cleanup_free_ char *d = tmpdir();
	put(d, "subuid",
	    "alice:100000:65536\n"
	    "upaas:165536:65535\n"          /* too small */
	    "bad line\n"
	    "upaas:x:65536\n"
	    "998:231072:65536\n"            /* by uid */
	    "upaas:4294901760:65536\n"      /* would reach (uid_t)-1 */
	    "upaas:300000:70000\n");
	_cleanup_free_ char *f = path_join(d, "subuid");
	uint32_t base = 0;
	assert_int_equal(sb_subid_lookup(f, "upaas", 998, 65536, &base), 0);
	assert_int_equal(base, 231072);
	assert_int_equal(sb_subid_lookup(f, "upaas", (uid_t)-1, 65536, &base), 0);
	assert_int_equal(base, 300000);
	assert_int_equal(sb_subid_lookup(f, "alice", (uid_t)-1, 65536, &base), 0);
	assert_int_equal(base, 100000);
	assert_int_equal(sb_subid_lookup(f, "bob", 1234, 65536, &base), -ENOENT);
	assert_int_equal(sb_subid_lookup(f, "alice", (uid_t)-1, 65537, &base), -ENOENT);
	_cleanup_free_ char *missing = path_join(d, "nope");
	assert_int_equal(sb_subid_lookup(missing, "upaas", 0, 65536, &base), -ENOENT);
	rm_dir(d);
}

static void test_maps(void **state)
{
	struct sandbox sb = SANDBOX_INIT;
	struct sandbox_range r = { .uid_base = 200000, .gid_base = 300000, .helper_uid = 998,
				   .helper_gid = 997 };
	sandbox_map_range(&sb, &r);
	char text[128];
	assert_int_equal(sb_map_text(sb.uid_map, sb.n_uid_map, text, sizeof(text)), 0);
	assert_string_equal(text, "0 200000 65536\n");
	assert_int_equal(sandbox_host_uid(&sb, 0), 200000);
	assert_int_equal(sandbox_host_uid(&sb, 1000), 201000);
	assert_int_equal(sandbox_host_gid(&sb, 65535), 365535);
	assert_int_equal(sandbox_host_uid(&sb, 65536), -1);
	assert_int_equal(sb.helper_uid, 998);

	/* a deploy's map: root to one id of the range, the app to itself */
	struct sandbox d = SANDBOX_INIT;
	assert_int_equal(sandbox_map_id(&d, 0, 200000, 0, 300000), 0);
	assert_int_equal(sandbox_map_id(&d, 1000, 1000, 1001, 1001), 0);
	assert_int_equal(sb_map_text(d.gid_map, d.n_gid_map, text, sizeof(text)), 0);
	assert_string_equal(text, "0 300000 1\n1001 1001 1\n");
	assert_int_equal(sandbox_host_uid(&d, 1000), 1000);
	assert_int_equal(sandbox_host_uid(&d, 1), -1);
	assert_int_equal(sandbox_host_gid(&d, 1001), 1001);
	assert_int_equal(sandbox_map_id(&d, 2, 2, 2, 2), 0);
	assert_int_equal(sandbox_map_id(&d, 3, 3, 3, 3), 0);
	assert_int_equal(sandbox_map_id(&d, 4, 4, 4, 4), -E2BIG);
	assert_int_equal(sb_map_text(d.uid_map, 0, text, sizeof(text)), -EINVAL);
	assert_int_equal(sb_map_text(d.uid_map, d.n_uid_map, text, 8), -E2BIG);
}

/* A stock Debian 12: the unified hierarchy, upaas in a service. */
static const char mi_v2[] =
	"22 28 0:20 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw\n"
	"26 22 0:24 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 "
	"rw,nsdelegate,memory_recursiveprot\n"
	"28 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw,errors=remount-ro\n";

/* A hybrid host: v1 controllers, an empty v2 mount. */
static const char mi_hybrid[] =
	"30 25 0:26 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
	"31 30 0:27 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu,cpuacct\n"
	"32 30 0:28 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
	"33 30 0:29 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer\n"
	"34 30 0:30 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids\n"
	"35 30 0:31 / /sys/fs/cgroup/unified rw,relatime shared:5 - cgroup2 cgroup2 rw\n";
static const char cg_hybrid[] =
	"9:name=systemd:/\n8:pids:/\n6:freezer:/\n4:memory:/jobs/7ba8\n1:cpu,cpuacct:/\n0::/\n";

/* v1 in a container: each mount shows only the container's subtree. */
static const char mi_container[] =
	"40 39 0:33 /docker/abc /sys/fs/cgroup/pids ro,nosuid - cgroup cgroup rw,pids\n"
	"41 39 0:34 /docker/abc /sys/fs/cgroup/memory ro,nosuid - cgroup cgroup rw,memory\n";
static const char cg_container[] = "5:pids:/docker/abc/sub\n4:memory:/docker/abc\n";

static void test_cgroup_layout(void **state)
{
	struct sb_cg_layout l;
	sb_cgroup_layout(mi_v2, "0::/system.slice/upaas-worker.service\n",
			 "cpuset cpu io memory hugetlb pids rdma misc", &l);
	assert_int_equal(l.version, 2);
	assert_string_equal(l.v2, "/sys/fs/cgroup");
	sb_cgroup_layout_free(&l);

	/* v2 without the controllers is no v2 for us; nor is anything */
	sb_cgroup_layout(mi_v2, "0::/\n", "cpu io", &l);
	assert_int_equal(l.version, 0);
	sb_cgroup_layout_free(&l);

	_cleanup_free_ char *v2 = sb_cgroup_v2_mount(mi_hybrid);
	assert_string_equal(v2, "/sys/fs/cgroup/unified");
	sb_cgroup_layout(mi_hybrid, cg_hybrid, "hugetlb", &l);
	assert_int_equal(l.version, 1);
	assert_int_equal(l.n_v1, 4);
	assert_string_equal(l.v1_ctl[0], "pids");
	assert_string_equal(l.v1[0], "/sys/fs/cgroup/pids");
	assert_string_equal(l.v1_ctl[1], "memory");
	assert_string_equal(l.v1[1], "/sys/fs/cgroup/memory/jobs/7ba8");
	assert_string_equal(l.v1_ctl[2], "cpu");
	assert_string_equal(l.v1[2], "/sys/fs/cgroup/cpu");
	assert_string_equal(l.v1_ctl[3], "freezer");
	sb_cgroup_layout_free(&l);

	sb_cgroup_layout(mi_container, cg_container, NULL, &l);
	assert_int_equal(l.version, 1);
	assert_int_equal(l.n_v1, 2);
	assert_string_equal(l.v1[0], "/sys/fs/cgroup/pids/sub");
	assert_string_equal(l.v1[1], "/sys/fs/cgroup/memory");
	sb_cgroup_layout_free(&l);

	sb_cgroup_layout("28 1 254:1 / / rw - ext4 /dev/vda1 rw\n", "", NULL, &l);
	assert_int_equal(l.version, 0);
	sb_cgroup_layout_free(&l);
}

static void test_cgroup_v2_files(void **state)
{
	_cleanup_free_ char *d = tmpdir();
	/* the interface files exist in a real cgroup; writes never create */
	static const char *const files[] = { "pids.max", "memory.max", "memory.swap.max",
					     "memory.oom.group", "cpu.weight" };
	for (size_t i = 0; i < ARRAY_SIZE(files); i++)
		put(d, files[i], "");
	struct sandbox sb = SANDBOX_INIT;
	sb.pids_max = 512;
	sb.memory_max = (int64_t)2 << 30;
	sb.cpu_weight = 50;
	assert_int_equal(sb_cgroup_limits(2, d, "", &sb), 0);
	const char *want[] = { "512", "2147483648", "0", "1", "50" };
	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		_cleanup_free_ char *v = get(d, files[i]);
		assert_string_equal(v, want[i]);
	}

	/* the verdict after a failed command */
	struct sb_cgroup cg = SB_CGROUP_INIT;
	cg.version = 2;
	cg.n = 1;
	cg.dir[0] = d;
	cg.ctl[0] = "";
	cg.pids_max = 512;
	cg.memory_max = sb.memory_max;
	put(d, "pids.events", "max 0\n");
	put(d, "memory.events", "low 0\nhigh 0\nmax 12\noom 1\noom_kill 0\n");
	struct err e = ERR_INIT;
	assert_int_equal(sb_cgroup_verdict(&cg, "make", &e), 0);
	put(d, "memory.events", "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 1\n");
	assert_int_equal(sb_cgroup_verdict(&cg, "make", &e), -ENOMEM);
	assert_string_equal(err_msg(&e), "'make' ran out of memory: limits.memory 2 GiB");
	err_clear(&e);
	put(d, "pids.events", "max 7\n");
	assert_int_equal(sb_cgroup_verdict(&cg, "sh -c :", &e), -EAGAIN);
	assert_string_equal(err_msg(&e), "'sh -c :' exceeded limits.pids (512)");
	err_free(&e);
	rm_dir(d);
}

static void test_cgroup_v1_files(void **state)
{
	_cleanup_free_ char *pids = tmpdir(), *mem = tmpdir(), *cpu = tmpdir();
	put(pids, "pids.max", "");
	put(mem, "memory.limit_in_bytes", "");
	put(cpu, "cpu.shares", "");
	struct sandbox sb = SANDBOX_INIT;
	sb.pids_max = 64;
	sb.memory_max = 100 << 20;
	sb.cpu_weight = 200;
	assert_int_equal(sb_cgroup_limits(1, pids, "pids", &sb), 0);
	assert_int_equal(sb_cgroup_limits(1, mem, "memory", &sb), 0);
	assert_int_equal(sb_cgroup_limits(1, cpu, "cpu", &sb), 0);
	_cleanup_free_ char *p = get(pids, "pids.max"), *m = get(mem, "memory.limit_in_bytes"),
			    *c = get(cpu, "cpu.shares");
	assert_string_equal(p, "64");
	assert_string_equal(m, "104857600");
	assert_string_equal(c, "2048");
	/* a controller's file missing is an error: a limit must not be lost */
	_cleanup_free_ char *empty = tmpdir();
	assert_int_equal(sb_cgroup_limits(1, empty, "pids", &sb), -ENOENT);

	struct sb_cgroup cg = SB_CGROUP_INIT;
	cg.version = 1;
	cg.n = 2;
	cg.dir[0] = pids;
	cg.ctl[0] = "pids";
	cg.dir[1] = mem;
	cg.ctl[1] = "memory";
	cg.pids_max = 64;
	cg.memory_max = 100 << 20;
	put(pids, "pids.events", "max 0\n");
	put(mem, "memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n");
	struct err e = ERR_INIT;
	assert_int_equal(sb_cgroup_verdict(&cg, "perl", &e), -ENOMEM);
	assert_string_equal(err_msg(&e), "'perl' ran out of memory: limits.memory 100 MiB");
	err_free(&e);
	rm_dir(pids);
	rm_dir(mem);
	rm_dir(cpu);
	rm_dir(empty);
}

/* clone3 with CLONE_INTO_CGROUP on whatever v2 hierarchy the host has
 * (on a hybrid host, the empty one: the controllers do not matter); needs
 * root, skipped without. */
static void test_cgroup_fork_v2(void **state)
{
	_cleanup_buf_ struct buf mi = BUF_INIT;
	assert_int_equal(buf_read_file(&mi, "/proc/self/mountinfo", 1 << 22), 0);
	_cleanup_free_ char *v2 = sb_cgroup_v2_mount(mi.p);
	_cleanup_free_ char *dir = v2 ? xasprintf("%s/upaas-unit-%ld", v2, (long)getpid()) : NULL;
	if (!dir || geteuid() != 0 || mkdir(dir, 0755) < 0)
		skip();
	struct sb_cgroup cg = SB_CGROUP_INIT;
	cg.version = 2;
	cg.n = 1;
	cg.dir[0] = dir;
	cg.dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(cg.dir_fd >= 0);
	bool placed;
	pid_t pid = sb_cgroup_fork(&cg, &placed);
	assert_true(pid >= 0);
	if (pid == 0) {
		/* born there: "0::/upaas-unit-PID" */
		struct buf b = BUF_INIT;
		char want[64];
		snprintf(want, sizeof(want), "0::/upaas-unit-%ld\n", (long)getppid());
		_exit(buf_read_file(&b, "/proc/self/cgroup", 4096) == 0 && strstr(b.p, want) ? 0 : 1);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(placed);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(cg.dir_fd);
	assert_int_equal(rmdir(dir), 0);
}

/* In a child: loads the filters, then reports what each probe got. */
static int probe_filters(const struct sb_filters *f)
{
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return 1;
	const char *what;
	if (sb_seccomp_load(f, &what) < 0)
		return 2;
	if (getpid() <= 0)
		return 3;
	errno = 0;
	if (syscall(SYS_personality, 0x0040000) != -1 || errno != EPERM)   /* ADDR_NO_RANDOMIZE */
		return 4;
	if (syscall(SYS_personality, 0xffffffffUL) < 0)                    /* the query */
		return 5;
	if (syscall(SYS_personality, 0x100000000UL) != -1 || errno != EPERM)  /* upper bits */
		return 6;
	if (unshare(CLONE_NEWUSER) != -1 || errno != EPERM)
		return 7;
	if (unshare(CLONE_NEWNET | CLONE_FILES) != -1 || errno != EPERM)
		return 8;
	if (unshare(CLONE_FILES) < 0)
		return 9;
	if (syscall(SYS_clone3, NULL, 0) != -1 || errno != ENOSYS)
		return 10;
	char c = 'x';
	if (ioctl(0, TIOCSTI, &c) != -1 || errno != EPERM)
		return 11;
	if (syscall(SYS_ioctl, 0, 0xabcd00000000UL | TIOCSTI, &c) != -1 || errno != EPERM)
		return 12;
	if (syscall(SYS_keyctl, 0, 0, 0, 0, 0) != -1 || errno != EPERM)
		return 13;
	if (syscall(SYS_ptrace, 0, 0, 0, 0) != -1 || errno != EPERM)
		return 14;
	if (syscall(SYS_bpf, 0, 0, 0) != -1 || errno != EPERM)
		return 15;
	if (syscall(SYS_getuid) < 0)
		return 16;
	return 0;
}

static void test_seccomp(void **state)
{
	const struct sb_filters *f, *f2;
	struct err e = ERR_INIT;
	assert_int_equal(sb_seccomp_get(NULL, &f, &e), 0);
	assert_true(f->prog[0].len > 10 && f->prog[1].len > 10);
	/* cached */
	assert_int_equal(sb_seccomp_get(NULL, &f2, &e), 0);
	assert_ptr_equal(f, f2);

	struct strv extra = STRV_INIT;
	strv_push(&extra, "mount");       /* built in already */
	strv_push(&extra, "getcpu");
	assert_int_equal(sb_seccomp_get(&extra, &f, &e), 0);
	strv_push(&extra, "no_such_call");
	assert_int_equal(sb_seccomp_get(&extra, &f2, &e), -EINVAL);
	assert_string_equal(err_msg(&e), "sandbox.seccomp_deny: unknown system call 'no_such_call'");
	err_free(&e);
	strv_free(&extra);

	assert_int_equal(sb_seccomp_get(NULL, &f, &e), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(probe_filters(f));
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_subid_lookup),
		cmocka_unit_test(test_maps),
		cmocka_unit_test(test_cgroup_layout),
		cmocka_unit_test(test_cgroup_v2_files),
		cmocka_unit_test(test_cgroup_v1_files),
		cmocka_unit_test(test_cgroup_fork_v2),
		cmocka_unit_test(test_seccomp),
	};
	return cmocka_run_group_tests_name("sandbox", tests, NULL, NULL);
}
