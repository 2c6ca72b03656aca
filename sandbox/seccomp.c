/*
 * sandbox/seccomp.c - the seccomp filters of every sandbox.
 *
 * Default allow, with a deny list in the spirit of Docker's default profile:
 * what a build or an app has no business doing and what reaches beyond the
 * sandbox (the kernel, other processes, the host's mounts, clocks, keys and
 * terminals). Most of it the user namespace already refuses (no capability
 * in the host's namespace); the filter also shuts the kernel's attack
 * surface that an unprivileged process can reach (bpf, userfaultfd,
 * io_uring, keyrings, new user namespaces).
 *
 * The filters are built in upaas (libseccomp allocates) and exported as
 * BPF once per process; the child only loads them, last, after every
 * privilege phase and with no_new_privs set.
 *
 * Only the native architecture is allowed: a system call of another ABI
 * (i386 on x86_64, x32) kills the process, so no rule can be dodged through
 * a compat entry point.
 */
#define UPAAS_SANDBOX_INTERNAL
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <stddef.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sched.h>

#include "sandbox/sandbox-int.h"

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif
#define X32_SYSCALL_BIT 0x40000000u

/* Refused with EPERM; names missing on this architecture are skipped. */
static const char *const sb_deny[] = {
	/* the kernel itself: modules, kexec, reboot, swap, accounting */
	"init_module", "finit_module", "delete_module", "create_module", "query_module",
	"get_kernel_syms", "kexec_load", "kexec_file_load", "reboot", "swapon", "swapoff",
	"acct", "syslog", "lookup_dcookie", "nfsservctl", "uselib", "ustat", "sysfs", "_sysctl",
	"vm86", "vm86old", "iopl", "ioperm", "quotactl", "quotactl_fd", "vhangup",
	/* unprivileged attack surface with a record of kernel bugs */
	"bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter",
	"io_uring_register",
	/* the host's keys (upaas's session keyring is gone too) */
	"keyctl", "add_key", "request_key",
	/* the mount family: the sandbox's mounts are upaas's business */
	"mount", "umount", "umount2", "pivot_root", "move_mount", "open_tree", "fsopen",
	"fsmount", "fsconfig", "fspick", "mount_setattr",
	/* other namespaces and other processes */
	"setns", "ptrace", "process_vm_readv", "process_vm_writev", "process_madvise",
	"pidfd_getfd", "kcmp",
	/* the host's clocks */
	"settimeofday", "stime", "clock_settime", "clock_adjtime", "adjtimex",
	/* files by handle reach past the root */
	"open_by_handle_at", "name_to_handle_at",
};

/* Namespace flags of clone and unshare: a new user namespace first of
 * all (root there is where most kernel bugs are reached from). */
static const uint64_t sb_ns_flags[] = {
	CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWUTS, CLONE_NEWIPC,
	CLONE_NEWCGROUP, CLONE_NEWTIME,
};

/* ioctls refused on every fd: pushing input into a terminal (TIOCSTI) and
 * the Linux console's grab bag (TIOCLINUX). */
static const unsigned long sb_deny_ioctl[] = { TIOCSTI, TIOCLINUX };

static struct {
	char *key;
	struct sb_filters f;
} cache;

static void ctx_releasep(scmp_filter_ctx *c)
{
	if (*c)
		seccomp_release(*c);
}

static int deny_name(scmp_filter_ctx ctx, const char *name, bool must_exist, struct err *e)
{
	int nr = seccomp_syscall_resolve_name(name);
	if (nr == __NR_SCMP_ERROR) {
		if (!must_exist)
			return 0;
		return err_set(e, -EINVAL, "sandbox.seccomp_deny: unknown system call '%s'", name);
	}
	if (nr < 0)   /* a pseudo number: not a call of this architecture */
		return 0;
	int r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
	/* -EEXIST: listed twice (built in and by the admin) */
	if (r < 0 && r != -EEXIST)
		return err_set_errno(e, r, "sandbox: cannot add a seccomp rule for '%s'", name);
	return 0;
}

/* libseccomp's filter, exported as BPF into a buffer of our own. */
static int build_main(const struct strv *extra, struct sock_fprog *out, struct err *e)
{
	_cleanup_(ctx_releasep) scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	if (!ctx)
		return err_set(e, -ENOMEM, "sandbox: cannot create a seccomp filter");
	int r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
	/* upaas sets no_new_privs itself, in its phase */
	if (r == 0)
		r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
	if (r < 0)
		return err_set_errno(e, r, "sandbox: cannot set up the seccomp filter");

	for (size_t i = 0; i < ARRAY_SIZE(sb_deny); i++)
		if ((r = deny_name(ctx, sb_deny[i], false, e)) < 0)
			return r;
	for (size_t i = 0; extra && i < extra->n; i++)
		if ((r = deny_name(ctx, extra->v[i], true, e)) < 0)
			return r;

	/* new namespaces: refused whichever flag asks for one (one rule per
	 * flag: libseccomp compares an argument once per rule) */
	for (size_t i = 0; i < ARRAY_SIZE(sb_ns_flags); i++) {
		uint64_t fl = sb_ns_flags[i];
		r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(unshare), 1,
				     SCMP_A0(SCMP_CMP_MASKED_EQ, fl, fl));
		if (r == 0)
			r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
					     SCMP_A0(SCMP_CMP_MASKED_EQ, fl, fl));
		if (r < 0)
			return err_set_errno(e, r, "sandbox: cannot add the seccomp namespace rules");
	}
	/* clone3 passes its flags in memory, out of the filter's sight: ENOSYS
	 * makes glibc fall back to clone */
	r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
	if (r < 0)
		return err_set_errno(e, r, "sandbox: cannot add the seccomp rule for 'clone3'");
	/* the request is an unsigned int: compare the low 32 bits only, so
	 * that garbage in the upper half does not slip past */
	for (size_t i = 0; i < ARRAY_SIZE(sb_deny_ioctl); i++) {
		r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(ioctl), 1,
				     SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, sb_deny_ioctl[i]));
		if (r < 0)
			return err_set_errno(e, r, "sandbox: cannot add the seccomp ioctl rules");
	}

	/* libseccomp 2.5 exports to an fd only */
	_cleanup_close_ int fd = memfd_create("upaas-seccomp", MFD_CLOEXEC);
	if (fd < 0)
		return err_set_errno(e, -errno, "sandbox: memfd_create");
	r = seccomp_export_bpf(ctx, fd);
	if (r < 0)
		return err_set_errno(e, r, "sandbox: cannot export the seccomp filter");
	off_t size = lseek(fd, 0, SEEK_END);
	if (size <= 0 || size % (off_t)sizeof(struct sock_filter) ||
	    size / (off_t)sizeof(struct sock_filter) > BPF_MAXINSNS)
		return err_set(e, -EINVAL, "sandbox: the seccomp filter has a bad size (%lld)",
			       (long long)size);
	struct sock_filter *insns = xmalloc((size_t)size);
	if (pread(fd, insns, (size_t)size, 0) != (ssize_t)size) {
		free(insns);
		return err_set_errno(e, -EIO, "sandbox: cannot read the seccomp filter back");
	}
	out->filter = insns;
	out->len = (unsigned short)(size / (off_t)sizeof(struct sock_filter));
	return 0;
}

#define LD_ABS(k) BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (k))
#define JEQ(k, t, f) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (k), (t), (f))
#define JGE(k, t, f) BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, (k), (t), (f))
#define RET(k) BPF_STMT(BPF_RET | BPF_K, (k))

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define ARG0_LO offsetof(struct seccomp_data, args[0])
#define ARG0_HI (offsetof(struct seccomp_data, args[0]) + 4)
#else
#define ARG0_LO (offsetof(struct seccomp_data, args[0]) + 4)
#define ARG0_HI offsetof(struct seccomp_data, args[0])
#endif

/*
 * The hand-written filter: personality() only with the values Docker
 * allows (Linux, 32-bit Linux, UNAME26, both, and the query 0xffffffff):
 * the others turn ASLR off or make data executable. libseccomp cannot say
 * "none of these values" (one comparison per argument and rule). On x86_64
 * it also kills an x32 call outright, whatever libseccomp makes of it.
 */
static int build_extra(struct sock_fprog *out, struct err *e)
{
	uint32_t arch = seccomp_arch_native();
	int nr = seccomp_syscall_resolve_name("personality");
	if (nr < 0)
		return err_set(e, -EINVAL, "sandbox: no personality system call on this architecture");
	bool x86_64 = arch == SCMP_ARCH_X86_64;
	struct sock_filter f[] = {
		/* 0 */ LD_ABS(offsetof(struct seccomp_data, arch)),
		/* 1 */ JEQ(arch, 0, 13),                       /* other arch: the main filter */
		/* 2 */ LD_ABS(offsetof(struct seccomp_data, nr)),
		/* 3 */ JGE(x86_64 ? X32_SYSCALL_BIT : 0xffffffffu, 0, 1),
		/* 4 */ RET(SECCOMP_RET_KILL_PROCESS),
		/* 5 */ JEQ((uint32_t)nr, 0, 9),
		/* 6 */ LD_ABS(ARG0_HI),
		/* 7 */ JEQ(0, 0, 6),
		/* 8 */ LD_ABS(ARG0_LO),
		/* 9 */ JEQ(0x0, 5, 0),
		/* 10 */ JEQ(0x8, 4, 0),
		/* 11 */ JEQ(0x20000, 3, 0),
		/* 12 */ JEQ(0x20008, 2, 0),
		/* 13 */ JEQ(0xffffffffu, 1, 0),
		/* 14 */ RET(SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
		/* 15 */ RET(SECCOMP_RET_ALLOW),
	};
	out->filter = xmalloc(sizeof(f));
	memcpy(out->filter, f, sizeof(f));
	out->len = ARRAY_SIZE(f);
	return 0;
}

int sb_seccomp_get(const struct strv *extra, const struct sb_filters **ret, struct err *e)
{
	_cleanup_buf_ struct buf key = BUF_INIT;
	for (size_t i = 0; extra && i < extra->n; i++)
		buf_addf(&key, "%s,", extra->v[i]);
	if (cache.key && !strcmp(cache.key, key.p)) {
		*ret = &cache.f;
		return 0;
	}
	struct sb_filters f = { 0 };
	int r = build_main(extra, &f.prog[0], e);
	if (r < 0)
		return r;
	r = build_extra(&f.prog[1], e);
	if (r < 0) {
		free(f.prog[0].filter);
		return r;
	}
	for (int i = 0; i < 2; i++)
		free(cache.f.prog[i].filter);
	free(cache.key);
	cache.key = buf_detach(&key);
	cache.f = f;
	*ret = &cache.f;
	return 0;
}

int sb_seccomp_load(const struct sb_filters *f, const char **what)
{
	*what = "load the seccomp filter";
	for (int i = 0; i < 2; i++)
		if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &f->prog[i]) < 0)
			return -errno;
	*what = "verify the seccomp filter";
	if (prctl(PR_GET_SECCOMP, 0, 0, 0, 0) != 2)
		return -EPERM;
	return 0;
}
