/*
 * common/proc.c - the one way upaas runs a child process.
 *
 * Everything the child needs (argv, envp) is built before fork, so the
 * child only calls async-signal-safe functions up to exec. A failed exec is
 * reported over a close-on-exec pipe. The child leads its own process group
 * (or, with new_session, its own session and keyring) and gets SIGKILL when
 * upaas dies, so a timeout or a cancel can kill the
 * whole tree with one kill(-pgid).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <linux/close_range.h>
#include <linux/keyctl.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#include "common/common.h"

extern char **environ;

volatile sig_atomic_t proc_cancelled;
static volatile sig_atomic_t cancel_signal;

static void on_cancel_signal(int sig)
{
	if (!cancel_signal)
		cancel_signal = sig;
	proc_cancelled = 1;
}

void proc_cancel_on_signals(void)
{
	struct sigaction sa = { .sa_handler = on_cancel_signal, .sa_flags = SA_RESTART };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
}

int proc_cancel_signal(void)
{
	return cancel_signal;
}

int proc_check_cancel(struct err *e)
{
	if (!proc_cancelled)
		return 0;
	return err_set(e, -ECANCELED, "interrupted%s", cancel_signal == SIGTERM ? " by SIGTERM"
					: cancel_signal == SIGINT ? " by SIGINT" : "");
}
static int child_status_fd = -1;

int proc_child_status_fd(void)
{
	return child_status_fd;
}

void proc_child_report(int neg_errno)
{
	int v = neg_errno;
	if (child_status_fd >= 0) {
		ssize_t w = write(child_status_fd, &v, sizeof(v));
		(void)w;
	}
}

void proc_describe(const struct proc *p, struct buf *out)
{
	size_t start = out->len;
	for (size_t i = 0; i < p->argv.n; i++) {
		if (i)
			buf_addch(out, ' ');
		buf_adds(out, p->argv.v[i]);
		if (out->len - start > 200) {
			buf_setlen(out, start + 200);
			buf_adds(out, "...");
			break;
		}
	}
}

static int set_cloexec_pipe(int fds[2])
{
	return pipe2(fds, O_CLOEXEC) < 0 ? -errno : 0;
}

/*
 * In the child, for pid_namespace: unshare the PID namespace and fork; the
 * new process (PID 1 there) returns to exec the command, and this one stays
 * outside as its waiter and exits with its status. Each dies with its parent
 * (PDEATHSIG), and when PID 1 of a namespace dies the kernel kills the rest.
 */
static void child_pid_namespace(void)
{
	int alive[2];
	if (unshare(CLONE_NEWPID) < 0 || pipe2(alive, O_CLOEXEC) < 0) {
		proc_child_report(-errno);
		_exit(127);
	}
	pid_t pid = fork();
	if (pid < 0) {
		proc_child_report(-errno);
		_exit(127);
	}
	if (pid == 0) {
		/* the waiter's death before the prctl shows as EOF on alive */
		close(alive[1]);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		struct pollfd pfd = { .fd = alive[0], .events = POLLIN };
		if (poll(&pfd, 1, 0) != 0)
			_exit(127);
		close(alive[0]);
		return;
	}
	/* the waiter never execs: the status pipe must see EOF at the exec */
	close(alive[0]);
	close(child_status_fd);
	child_status_fd = -1;
	int status;
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			_exit(127);
	}
	if (WIFSIGNALED(status))
		_exit(128 + WTERMSIG(status));
	_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 255);
}

/* In the child: only async-signal-safe calls from here to exec. */
static _Noreturn void child_exec(struct proc *p, char **argv, char **envp, int out_w, int cap_w,
				 int status_w)
{
	child_status_fd = status_w;
	if (p->new_session) {
		/* a session of our own leads a process group of our own too,
		 * so kill(-pid) still reaches the whole tree */
		if (setsid() < 0)
			goto fail;
		/* a new anonymous session keyring replaces upaas's; a kernel
		 * without keyrings has nothing to reach */
		if (syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, NULL) < 0 && errno != ENOSYS)
			goto fail;
	} else {
		setpgid(0, 0);
	}
	prctl(PR_SET_PDEATHSIG, SIGKILL);

	sigset_t all;
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	signal(SIGPIPE, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGCHLD, SIG_DFL);

	int in = p->stdin_fd;
	if (in < 0)
		in = open("/dev/null", O_RDONLY);
	int out = cap_w >= 0 ? cap_w : out_w >= 0 ? out_w : p->stdout_fd;
	int err = out_w >= 0 ? out_w : p->stderr_fd;
	if (in >= 0 && in != 0 && dup2(in, 0) < 0)
		goto fail;
	if (out >= 0 && out != 1 && dup2(out, 1) < 0)
		goto fail;
	if (err >= 0 && err != 2 && dup2(err, 2) < 0)
		goto fail;
	/* Only 0, 1 and 2 reach the command: upaas may have inherited
	 * descriptors (make's jobserver pipes, say) that a tool like apt
	 * would trip over. dup2 above cleared FD_CLOEXEC on 0-2 only. */
	if (syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
		for (int fd = 3; fd < 4096; fd++)
			fcntl(fd, F_SETFD, FD_CLOEXEC);
	}
	if (p->cwd && chdir(p->cwd) < 0)
		goto fail;
	if (p->pid_namespace && !p->child_setup)
		child_pid_namespace();
	if (p->child_setup) {
		int r = p->child_setup(p->child_data);
		if (r < 0) {
			proc_child_report(r);
			_exit(127);
		}
	}
	execvpe(argv[0], argv, envp);
fail:
	proc_child_report(-errno);
	_exit(127);
}

int proc_start(struct proc *p, struct err *e)
{
	int out[2] = { -1, -1 }, cap[2] = { -1, -1 }, st[2] = { -1, -1 };
	int r;

	if (p->argv.n == 0)
		return err_set(e, -EINVAL, "no command to run");
	if ((r = set_cloexec_pipe(st)) < 0)
		return err_set_errno(e, r, "cannot create pipe");
	if (p->log_fd >= 0 && (r = set_cloexec_pipe(out)) < 0)
		goto fail_pipe;
	if (p->capture && (r = set_cloexec_pipe(cap)) < 0)
		goto fail_pipe;

	char **argv = strv_array(&p->argv);
	char **envp = (p->env_set || p->env.n) ? strv_array(&p->env) : environ;

	pid_t pid = fork();
	if (pid < 0) {
		r = -errno;
		goto fail_pipe;
	}
	if (pid == 0) {
		close(st[0]);
		if (out[0] >= 0)
			close(out[0]);
		if (cap[0] >= 0)
			close(cap[0]);
		child_exec(p, argv, envp, out[1], cap[1], st[1]);
	}
	/* also in the child: whoever runs first; not with new_session, where
	 * a group of its own would make the child's setsid() fail */
	if (!p->new_session)
		setpgid(pid, pid);
	p->pid = pid;
	p->timed_out = false;
	p->start_ms = now_ms();
	close(st[1]);
	if (out[1] >= 0)
		close(out[1]);
	if (cap[1] >= 0)
		close(cap[1]);
	p->out_pipe = out[0];
	p->cap_pipe = cap[0];
	p->status_pipe = st[0];
	p->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);

	if (!p->child_setup) {
		/* exec happens at once: wait for the verdict here */
		int v = 0;
		ssize_t n;
		do
			n = read(st[0], &v, sizeof(v));
		while (n < 0 && errno == EINTR);
		close(st[0]);
		p->status_pipe = -1;
		if (n == (ssize_t)sizeof(v) && v < 0) {
			_cleanup_buf_ struct buf d = BUF_INIT;
			proc_describe(p, &d);
			proc_finish(p, NULL);
			return err_set_errno(e, v, "cannot run '%s'", d.p);
		}
	}
	return 0;

fail_pipe:
	for (int i = 0; i < 2; i++) {
		if (out[i] >= 0)
			close(out[i]);
		if (cap[i] >= 0)
			close(cap[i]);
		if (st[i] >= 0)
			close(st[i]);
	}
	return err_set_errno(e, r, "cannot start child");
}

void log_line_fd(int fd, const char *text, size_t n)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	char stamp[48];
	size_t k = strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(stamp + k, sizeof(stamp) - k, ".%03ldZ ", ts.tv_nsec / 1000000);
	struct buf b = BUF_INIT;
	buf_adds(&b, stamp);
	buf_add(&b, text, n);
	buf_addch(&b, '\n');
	fs_write_all(fd, b.p, b.len);
	buf_free(&b);
}

/* Splits output into lines for the log; final=true flushes the rest. */
/* One line of a child's output: to the log(s) as it is; with tee also to
 * stderr, made safe for a terminal (the child is untrusted). */
static void output_line(struct proc *p, const char *line, size_t n)
{
	log_line_fd(p->log_fd, line, n);
	if (p->log_fd2 >= 0)
		log_line_fd(p->log_fd2, line, n);
	if (p->tee) {
		struct buf b = BUF_INIT;
		buf_add_safe(&b, line, n);
		buf_addch(&b, '\n');
		fs_write_all(STDERR_FILENO, b.p, b.len);
		buf_free(&b);
	}
}

static void log_output(struct proc *p, const char *data, size_t n, bool final)
{
	buf_add(&p->partial, data, n);
	size_t start = 0;
	for (size_t i = 0; i < p->partial.len; i++) {
		if (p->partial.p[i] != '\n')
			continue;
		output_line(p, p->partial.p + start, i - start);
		start = i + 1;
	}
	/* a very long line without newline is flushed in pieces */
	if ((final && start < p->partial.len) || p->partial.len - start > 65536) {
		output_line(p, p->partial.p + start, p->partial.len - start);
		start = p->partial.len;
	}
	if (start) {
		memmove(p->partial.p, p->partial.p + start, p->partial.len - start);
		buf_setlen(&p->partial, p->partial.len - start);
	}
}

/* Reads what is available from one pipe; returns false at EOF/error. */
static bool drain(struct proc *p, int *fd, bool capture, struct err *e, int *cap_err)
{
	char chunk[16384];
	ssize_t n = read(*fd, chunk, sizeof(chunk));
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return true;
	if (n <= 0) {
		if (!capture && p->log_fd >= 0)
			log_output(p, "", 0, true);
		close(*fd);
		*fd = -1;
		return false;
	}
	if (capture) {
		if (!*cap_err && buf_add(p->capture, chunk, (size_t)n) < 0)
			*cap_err = -E2BIG;
	} else {
		log_output(p, chunk, (size_t)n, false);
	}
	return true;
}

void proc_kill(struct proc *p)
{
	if (p->pid <= 0)
		return;
	kill(-p->pid, SIGKILL);
	kill(p->pid, SIGKILL);
}

static int wait_status(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return 255;
}

int proc_finish(struct proc *p, struct err *e)
{
	if (p->pid <= 0)
		return err_set(e, -ECHILD, "no child to wait for");
	uint64_t deadline = p->timeout_ms ? p->start_ms + p->timeout_ms : 0;
	bool exited = false, cancelled = false;
	int status = 0, cap_err = 0, exec_err = 0;

	while (!exited) {
		struct pollfd fds[4];
		int nf = 0, i_out = -1, i_cap = -1, i_st = -1, i_pid = -1;
		if (p->out_pipe >= 0)
			fds[i_out = nf++] = (struct pollfd){ .fd = p->out_pipe, .events = POLLIN };
		if (p->cap_pipe >= 0)
			fds[i_cap = nf++] = (struct pollfd){ .fd = p->cap_pipe, .events = POLLIN };
		if (p->status_pipe >= 0)
			fds[i_st = nf++] = (struct pollfd){ .fd = p->status_pipe, .events = POLLIN };
		if (p->pidfd >= 0)
			fds[i_pid = nf++] = (struct pollfd){ .fd = p->pidfd, .events = POLLIN };

		int wait_ms = 200;   /* also the latency of noticing a cancel */
		if (deadline) {
			uint64_t t = now_ms();
			if (t >= deadline && !p->timed_out) {
				p->timed_out = true;
				proc_kill(p);
			} else if (!p->timed_out && deadline - t < (uint64_t)wait_ms) {
				wait_ms = (int)(deadline - t);
			}
		}
		if (proc_cancelled && !cancelled) {
			cancelled = true;
			proc_kill(p);
		}
		if (p->pidfd < 0)
			wait_ms = wait_ms > 50 ? 50 : wait_ms;
		int n = poll(fds, (nfds_t)nf, wait_ms);
		if (n < 0 && errno != EINTR)
			break;
		if (n > 0) {
			if (i_out >= 0 && fds[i_out].revents)
				drain(p, &p->out_pipe, false, e, &cap_err);
			if (i_cap >= 0 && fds[i_cap].revents)
				drain(p, &p->cap_pipe, true, e, &cap_err);
			if (i_st >= 0 && fds[i_st].revents) {
				int v = 0;
				ssize_t k = read(p->status_pipe, &v, sizeof(v));
				if (k == (ssize_t)sizeof(v) && v < 0)
					exec_err = v;
				if (k <= 0 || k == (ssize_t)sizeof(v)) {
					close(p->status_pipe);
					p->status_pipe = -1;
				}
			}
		}
		pid_t w = waitpid(p->pid, &status, WNOHANG);
		if (w == p->pid)
			exited = true;
		else if (w < 0 && errno == ECHILD)
			break;
	}
	/* what is left in the pipes now; a daemon holding them is not waited for */
	for (int k = 0; k < 64 && (p->out_pipe >= 0 || p->cap_pipe >= 0); k++) {
		struct pollfd fds[2];
		int nf = 0;
		if (p->out_pipe >= 0)
			fds[nf++] = (struct pollfd){ .fd = p->out_pipe, .events = POLLIN };
		if (p->cap_pipe >= 0)
			fds[nf++] = (struct pollfd){ .fd = p->cap_pipe, .events = POLLIN };
		if (poll(fds, (nfds_t)nf, 0) <= 0)
			break;
		for (int i = 0; i < nf; i++) {
			if (!fds[i].revents)
				continue;
			if (fds[i].fd == p->out_pipe)
				drain(p, &p->out_pipe, false, e, &cap_err);
			else
				drain(p, &p->cap_pipe, true, e, &cap_err);
		}
	}
	if (p->out_pipe >= 0 && p->log_fd >= 0)
		log_output(p, "", 0, true);
	if (p->status_pipe >= 0) {
		int v = 0;
		if (read(p->status_pipe, &v, sizeof(v)) == (ssize_t)sizeof(v) && v < 0)
			exec_err = v;
	}
	/* the process group may outlive its leader (a daemonised child) */
	kill(-p->pid, SIGKILL);

	_cleanup_buf_ struct buf d = BUF_INIT;
	proc_describe(p, &d);
	uint64_t ran_ms = now_ms() - p->start_ms;
	p->pid = -1;
	for (int *fds[] = { &p->out_pipe, &p->cap_pipe, &p->status_pipe, &p->pidfd }, **f = fds;
	     f < fds + 4; f++) {
		if (**f >= 0)
			close(**f);
		**f = -1;
	}
	if (!exited)
		return err_set(e, -ECHILD, "lost track of '%s'", d.p);
	if (exec_err)
		return err_set_errno(e, exec_err, "cannot run '%s'", d.p);
	if (p->timed_out)
		return err_set(e, -ETIMEDOUT, "'%s' timed out after %u s", d.p,
			       (p->timeout_ms + 999) / 1000);
	if (cancelled)
		return err_set(e, -ECANCELED, "'%s' was cancelled after %.1f s", d.p,
			       (double)ran_ms / 1000);
	if (cap_err)
		return err_set(e, cap_err, "output of '%s' is too large", d.p);
	return wait_status(status);
}

int proc_run(struct proc *p, struct err *e)
{
	int r = proc_start(p, e);
	if (r < 0)
		return r;
	return proc_finish(p, e);
}

void proc_free(struct proc *p)
{
	if (p->pid > 0) {
		proc_kill(p);
		waitpid(p->pid, NULL, 0);
		p->pid = -1;
	}
	strv_free(&p->argv);
	strv_free(&p->env);
	buf_free(&p->partial);
	for (int *fds[] = { &p->out_pipe, &p->cap_pipe, &p->status_pipe, &p->pidfd }, **f = fds;
	     f < fds + 4; f++) {
		if (**f >= 0)
			close(**f);
		**f = -1;
	}
}
