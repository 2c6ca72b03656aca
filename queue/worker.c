/*
 * queue/worker.c - `upaas worker`: claims queued builds and runs each in a
 * forked child that calls build_run().
 *
 * The parent is a single-threaded event loop over a self-pipe that the
 * signal handlers (SIGTERM, SIGINT, SIGCHLD) write to, and the queue's
 * wait (PostgreSQL: LISTEN/NOTIFY; SQLite: a short poll). Per running
 * build it renews the lease every lease_seconds/3, looks for a requested
 * cancel, and records the outcome when the child exits. Only the parent
 * talks to the database; a child never touches the parent's connection
 * and leaves through _exit().
 *
 * A child dies with its worker (PR_SET_PDEATHSIG): when a worker is killed
 * with SIGKILL its builds stop too, so an expired lease really means that
 * nothing runs the build any more and it may be requeued.
 */
#define UPAAS_QUEUE_INTERNAL 1
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "builder/builder.h"
#include "package/package.h"
#include "rootfs/rootfs.h"
#include "queue/queue-int.h"

#define CANCEL_CHECK_MS 250
#define RESULT_MAX 8192

/* Why a job's child was signalled. */
enum job_stop { STOP_NONE, STOP_CANCEL, STOP_LOST, STOP_SHUTDOWN };

struct job {
	struct queue_build b;
	pid_t pid;
	int result_fd;           /* read end of the child's result pipe */
	int log_fd;
	struct buf result;
	uint64_t next_renew;     /* monotonic ms */
	uint64_t lease_end;      /* monotonic ms by which the lease runs out */
	uint64_t next_cancel_check;
	uint64_t kill_at;        /* SIGKILL when still running then; 0: not yet */
	uint64_t started_us;     /* monotonic, when its child was started */
	enum job_stop stop;
};

/*
 * Where a worker's time goes: in calls to the queue (claim, lease renewals,
 * cancel checks, finish, ...; not the idle waits) and in builds (each from
 * its fork to its end). Logged after each build (debug) and when the worker
 * stops (info), so that the queue's share can be measured (bench/fleet.sh).
 */
struct worker_stats {
	uint64_t queue_us;
	uint64_t queue_calls;
	uint64_t build_us;
	uint64_t builds;
};

struct worker {
	const struct config *c;
	struct storage *s;
	const struct worker_opts *o;
	struct queue *q;
	char *id;                /* host:pid */
	struct job *jobs;        /* o->concurrency slots, pid 0: free */
	int n_jobs;
	bool stopping;
	uint64_t stop_deadline;
	struct worker_stats st;
};

static uint64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Evaluates a queue call, adding its time to w's stats. */
#define QCALL(w, call) ({                                               \
	uint64_t qc_t0_ = mono_us();                                     \
	__typeof__(call) qc_r_ = (call);                                 \
	(w)->st.queue_us += mono_us() - qc_t0_;                          \
	(w)->st.queue_calls++;                                           \
	qc_r_;                                                           \
})

static void stats_line(const struct worker *w, struct buf *out)
{
	double build_s = (double)w->st.build_us / 1e6, queue_s = (double)w->st.queue_us / 1e6;
	buf_addf(out, "%llu build%s, %.2f s building, %.3f s in %llu queue calls (%.2f%% of the "
		 "building time)", (unsigned long long)w->st.builds, w->st.builds == 1 ? "" : "s",
		 build_s, queue_s, (unsigned long long)w->st.queue_calls,
		 build_s > 0 ? 100.0 * queue_s / build_s : 0.0);
}

static int sig_pipe[2] = { -1, -1 };
static volatile sig_atomic_t got_stop;

static void on_signal(int sig)
{
	int saved = errno;
	if (sig == SIGTERM || sig == SIGINT)
		got_stop = 1;
	if (sig_pipe[1] >= 0) {
		char ch = 0;
		ssize_t n = write(sig_pipe[1], &ch, 1);
		(void)n;
	}
	errno = saved;
}

static void drain_fd(int fd)
{
	char b[64];
	while (read(fd, b, sizeof(b)) > 0)
		;
}

/* Appends a line to the build's log, as the build's own lines are. */
static void job_log(struct job *j, const char *fmt, ...) _printf_(2, 3);
static void job_log(struct job *j, const char *fmt, ...)
{
	if (j->log_fd < 0)
		return;
	_cleanup_buf_ struct buf b = BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	buf_adds(&b, "upaas worker: ");
	buf_vaddf(&b, fmt, ap);
	va_end(ap);
	log_line_fd(j->log_fd, b.p, b.len);
}

static void job_release(struct worker *w, struct job *j)
{
	if (j->result_fd >= 0)
		close(j->result_fd);
	if (j->log_fd >= 0)
		close(j->log_fd);
	queue_build_clear(&j->b);
	buf_free(&j->result);
	*j = (struct job){ .pid = 0, .result_fd = -1, .log_fd = -1, .result = BUF_INIT };
	w->n_jobs--;
}

/* ---------------------------------------------------------- the child */

/*
 * In the child, after fork: runs the build and writes one line to fd,
 * "ok\t<package id>" or "error\t<message>". Never returns. No cleanup
 * attributes here: the child leaves through _exit().
 */
static _Noreturn void child_main(struct worker *w, struct job *j, const char *repo,
				 const char *ref, int fd, pid_t parent)
{
	/* Die with the worker: a build whose worker is gone must not go on,
	 * or it would run twice once its lease expires. SIGTERM lets
	 * build_run() clean up; the sandbox's own children follow it. */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != parent)
		_exit(1);
	setpgid(0, 0);
	struct sigaction sa = { .sa_handler = SIG_DFL };
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGCHLD, &sa, NULL);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	close(sig_pipe[0]);
	close(sig_pipe[1]);

	struct err e = ERR_INIT;
	struct storage *s = NULL;
	struct build_result res = { 0 };
	int r = storage_open(&s, &w->c->storage, w->c->paths.state, &e);
	if (r >= 0) {
		/* the index lock on a connection of its own: the parent's is
		 * not the child's to use */
		struct queue_index_lock il;
		struct package_index_lock pil;
		queue_index_lock_init(&il, w->c, &pil);
		struct build_opts bo = {
			.source = repo,
			.app = j->b.app,
			.ref = ref,
			.fresh = j->b.fresh,
			.build_id = j->b.id,
			.log_fd = j->log_fd,
			.tee = false,
			.index_lock = &pil,
		};
		r = build_run(w->c, s, &bo, &res, &e);
		queue_index_lock_close(&il);
	}
	struct buf out = BUF_INIT;
	if (r >= 0) {
		buf_addf(&out, "ok\t%s\n", res.id ? res.id : j->b.id);
	} else {
		buf_adds(&out, "error\t");
		if (res.failed_step)
			buf_addf(&out, "step %s: ", res.failed_step);
		buf_adds(&out, e.code ? err_msg(&e) : strerror(-r));
		buf_addch(&out, '\n');
	}
	fs_write_all(fd, out.p, out.len < RESULT_MAX ? out.len : RESULT_MAX);
	_exit(r >= 0 ? 0 : 1);
}

/* ---------------------------------------------------------- the parent */

static int job_open_log(struct worker *w, struct job *j, struct err *e)
{
	_cleanup_free_ char *path = queue_log_path(w->c, j->b.id);
	_cleanup_free_ char *dir = path_join(w->c->paths.state, "logs");
	int r = fs_mkdir_p(dir, 0755);
	if (r < 0)
		return err_set_errno(e, r, "cannot create '%s'", dir);
	j->log_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0640);
	if (j->log_fd < 0)
		return err_set_errno(e, -errno, "cannot open '%s'", path);
	return 0;
}

/* Records b's outcome; a lost lease is only logged (the build is someone
 * else's now). */
static void job_record(struct worker *w, struct job *j, enum build_state st,
		       const char *package_id, const char *error)
{
	_cleanup_err_ struct err e = ERR_INIT;
	if (j->stop == STOP_LOST) {
		job_log(j, "the lease was lost; the build was stopped");
		log_warn("build '%s' of '%s': lease lost, stopped", j->b.id, j->b.app);
		return;
	}
	if (st == BUILD_QUEUED)
		job_log(j, "worker stopping: build %s requeued", j->b.id);
	else
		job_log(j, "build %s %s%s%s", j->b.id, build_state_name(st), error ? ": " : "",
			error ? error : "");
	int r = QCALL(w, queue_finish(w->q, &j->b, st, package_id, error, &e));
	if (r < 0)
		log_warn("build '%s': cannot record its end: %s", j->b.id, err_msg(&e));
	else
		log_info("build %s of %s %s%s%s", j->b.id, j->b.app, build_state_name(st),
			 error ? ": " : "", error ? error : "");
	if (r >= 0 && st == BUILD_SUCCEEDED && w->c->apps.keep_packages > 0 && w->s) {
		_cleanup_err_ struct err pe = ERR_INIT;
		_cleanup_strv_ struct strv removed = STRV_INIT;
		_cleanup_trust_ struct sign_trust t = SIGN_TRUST_INIT;
		struct gc_result gc = { STRV_INIT, 0 };
		r = sign_trust_config(&t, w->c, &pe);
		if (r >= 0)
			r = packages_prune(w->s, &t, j->b.app, w->c->apps.keep_packages, &removed,
					   &pe);
		if (r >= 0)
			r = layers_gc(w->s, w->c->apps.layer_grace, &gc, &pe);
		if (r < 0)
			log_warn("app '%s': cannot prune packages: %s", j->b.app, err_msg(&pe));
		for (size_t i = 0; i < removed.n; i++)
			job_log(j, "pruned package %s", removed.v[i]);
		for (size_t i = 0; i < gc.removed.n; i++)
			job_log(j, "removed %s", gc.removed.v[i]);
		strv_free(&gc.removed);
	}
}

static void job_read_result(struct job *j)
{
	char b[1024];
	ssize_t n;
	while (j->result.len < RESULT_MAX && (n = read(j->result_fd, b, sizeof(b))) > 0)
		buf_add(&j->result, b, (size_t)n);
}

/* The child has exited with status: record what it means. */
static void job_done(struct worker *w, struct job *j, int status)
{
	if (j->started_us) {
		w->st.build_us += mono_us() - j->started_us;
		w->st.builds++;
	}
	job_read_result(j);
	buf_rtrim(&j->result);
	const char *res = j->result.p;
	if (!strncmp(res, "ok\t", 3)) {
		job_record(w, j, BUILD_SUCCEEDED, res + 3, NULL);
	} else if (j->stop == STOP_CANCEL) {
		job_record(w, j, BUILD_CANCELLED, NULL, "cancelled on request");
	} else if (j->stop == STOP_SHUTDOWN) {
		job_record(w, j, BUILD_QUEUED, NULL, "its worker stopped: requeued");
	} else if (!strncmp(res, "error\t", 6)) {
		job_record(w, j, BUILD_FAILED, NULL, res + 6);
	} else {
		_cleanup_free_ char *why = WIFSIGNALED(status)
			? xasprintf("the build process was killed by signal %d", WTERMSIG(status))
			: xasprintf("the build process exited with status %d", WEXITSTATUS(status));
		job_record(w, j, BUILD_FAILED, NULL, why);
	}
	job_release(w, j);
	_cleanup_buf_ struct buf line = BUF_INIT;
	stats_line(w, &line);
	log_debug("worker %s: %s", w->id, line.p);
}

static void job_signal(struct job *j, enum job_stop why, int grace_s)
{
	if (j->stop == STOP_NONE || why == STOP_LOST)
		j->stop = why;
	if (!j->kill_at) {
		kill(j->pid, SIGTERM);
		j->kill_at = now_ms() + (uint64_t)grace_s * 1000;
	}
}

static struct job *free_slot(struct worker *w)
{
	for (int i = 0; i < w->o->concurrency; i++)
		if (w->jobs[i].pid == 0)
			return &w->jobs[i];
	return NULL;
}

/* Starts the claimed build b (taken over) in a child; on failure records
 * the build as failed. */
static void job_start(struct worker *w, struct queue_build *b)
{
	struct job *j = free_slot(w);
	*j = (struct job){ .b = *b, .pid = -1, .result_fd = -1, .log_fd = -1,
			   .result = BUF_INIT };
	memset(b, 0, sizeof(*b));
	w->n_jobs++;
	uint64_t now = now_ms();
	j->next_renew = now + (uint64_t)queue_lease_seconds(w->q) * 1000 / 3;
	j->lease_end = now + (uint64_t)queue_lease_seconds(w->q) * 1000;
	j->next_cancel_check = now + CANCEL_CHECK_MS;

	if (w->o->noop_builds) {
		job_record(w, j, BUILD_SUCCEEDED, NULL, NULL);
		job_release(w, j);
		return;
	}

	_cleanup_err_ struct err e = ERR_INIT;
	struct queue_app app = { 0 };
	int r = job_open_log(w, j, &e);
	if (r >= 0)
		r = QCALL(w, queue_app_get(w->q, j->b.app, &app, &e));
	if (r < 0) {
		job_record(w, j, BUILD_FAILED, NULL, err_msg(&e));
		job_release(w, j);
		return;
	}
	const char *ref = j->b.ref ? j->b.ref : app.branch;
	job_log(j, "%s runs build %s of %s (attempt %d%s%s%s)", w->id, j->b.id, j->b.app,
		j->b.attempts, j->b.fresh ? ", fresh" : "", ref ? ", ref " : "", ref ? ref : "");
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0) {
		queue_app_clear(&app);
		job_record(w, j, BUILD_FAILED, NULL, "cannot create a pipe");
		job_release(w, j);
		return;
	}
	pid_t parent = getpid();
	j->started_us = mono_us();
	pid_t pid = fork();
	if (pid == 0) {
		close(p[0]);
		child_main(w, j, app.repo, ref, p[1], parent);
	}
	int saved = errno;
	close(p[1]);
	queue_app_clear(&app);
	if (pid < 0) {
		close(p[0]);
		_cleanup_free_ char *why = xasprintf("cannot fork: %s", strerror(saved));
		job_record(w, j, BUILD_FAILED, NULL, why);
		job_release(w, j);
		return;
	}
	fcntl(p[0], F_SETFL, O_NONBLOCK);
	j->pid = pid;
	j->result_fd = p[0];
	log_info("build %s of %s started (pid %d)", j->b.id, j->b.app, (int)pid);
}

/* Reaps exited children. */
static void jobs_reap(struct worker *w)
{
	for (int i = 0; i < w->o->concurrency; i++) {
		struct job *j = &w->jobs[i];
		if (j->pid <= 0)
			continue;
		/* Read while it runs too, so a full pipe never blocks it. */
		job_read_result(j);
		int status;
		pid_t r = waitpid(j->pid, &status, WNOHANG);
		if (r == j->pid)
			job_done(w, j, status);
	}
}

/* Renews due leases, looks for cancels, escalates to SIGKILL. */
static void jobs_tend(struct worker *w)
{
	uint64_t now = now_ms();
	for (int i = 0; i < w->o->concurrency; i++) {
		struct job *j = &w->jobs[i];
		if (j->pid <= 0)
			continue;
		if (j->kill_at && now >= j->kill_at) {
			kill(j->pid, SIGKILL);
			j->kill_at = now + 3600 * 1000;
		}
		_cleanup_err_ struct err e = ERR_INIT;
		if (now >= j->next_renew) {
			int r = QCALL(w, queue_renew(w->q, &j->b, &e));
			if (r == -ESTALE) {
				job_log(j, "%s", err_msg(&e));
				job_signal(j, STOP_LOST, 5);
			} else if (r < 0) {
				/* A database hiccup: try again soon. But once the
				 * lease is about to run out, another worker may
				 * take the build over: stop it before that, or it
				 * would run twice. */
				uint64_t margin = (uint64_t)queue_lease_seconds(w->q) * 1000 / 3;
				uint64_t t = now_ms();   /* the renew may have blocked */
				log_warn("%s", err_msg(&e));
				j->next_renew = t + 1000;
				if (j->stop != STOP_LOST && t + margin >= j->lease_end) {
					uint64_t left = j->lease_end > t ? j->lease_end - t : 0;
					job_log(j, "cannot renew the lease before it runs out (%s): "
						"stopping the build", err_msg(&e));
					/* SIGTERM now, SIGKILL halfway to the end */
					uint64_t kill_at = t + left / 2;
					j->stop = STOP_LOST;
					if (!j->kill_at)
						kill(j->pid, SIGTERM);
					if (!j->kill_at || j->kill_at > kill_at)
						j->kill_at = kill_at;
				}
				continue;
			}
			/* the new lease counts from before the renew was sent */
			j->lease_end = now + (uint64_t)queue_lease_seconds(w->q) * 1000;
			j->next_renew = now + (uint64_t)queue_lease_seconds(w->q) * 1000 / 3;
		}
		if (j->stop == STOP_NONE && now >= j->next_cancel_check) {
			err_clear(&e);
			int r = QCALL(w, queue_cancel_pending(w->q, &j->b, &e));
			if (r == 1) {
				job_log(j, "cancel requested: stopping the build");
				job_signal(j, STOP_CANCEL, w->o->stop_grace_s);
			} else if (r == -ESTALE) {
				job_log(j, "%s", err_msg(&e));
				job_signal(j, STOP_LOST, 5);
			}
			j->next_cancel_check = now + CANCEL_CHECK_MS;
		}
	}
}

/* ------------------------------------------------------- leftovers */

/*
 * Removes this host's leftovers of builds, image runs and image creations
 * that no longer run: a worker or build killed with SIGKILL leaves its
 * <workdir>/<app>-<id> behind (its mounts died with its mount namespace).
 * rootfs/workdir.c decides, by the owners' locks, what is dead.
 */
static void cleanup_leftovers(struct worker *w)
{
	_cleanup_err_ struct err e = ERR_INIT;
	int n = w->s ? storage_sweep_uploads(w->s, STORAGE_UPLOAD_GRACE, NULL, NULL, &e) : 0;

	/* what dead uploads left in storage */
	if (n < 0)
		log_warn("%s", err_msg(&e));
	else if (n > 0)
		log_info("removed %d incomplete upload%s from storage", n, n == 1 ? "" : "s");
	rootcache_sweep(w->c);
	n = workdir_sweep(w->c, -1);

	if (n < 0)
		log_warn("cannot read the work dir '%s': %s", w->c->paths.workdir, strerror(-n));
	else if (n > 0)
		log_info("removed %d leftover%s from the work dir '%s'", n, n == 1 ? "" : "s",
			 w->c->paths.workdir);
}

/* ----------------------------------------------------------- the loop */

static int worker_loop(struct worker *w, struct err *e)
{
	int idle_errors = 0;
	for (;;) {
		drain_fd(sig_pipe[0]);
		jobs_reap(w);
		if (got_stop && !w->stopping) {
			w->stopping = true;
			log_info("worker %s stopping: %d build(s) to stop", w->id, w->n_jobs);
			for (int i = 0; i < w->o->concurrency; i++)
				if (w->jobs[i].pid > 0)
					job_signal(&w->jobs[i], STOP_SHUTDOWN, w->o->stop_grace_s);
		}
		if (w->stopping && w->n_jobs == 0)
			return 0;
		jobs_tend(w);

		bool claimed = false, nothing = true;
		if (!w->stopping && w->n_jobs < w->o->concurrency) {
			_cleanup_err_ struct err ce = ERR_INIT;
			int r = QCALL(w, queue_has_work(w->q, &ce));
			if (r > 0) {
				struct queue_build b = { 0 };
				r = QCALL(w, queue_claim(w->q, w->id, &b, &ce));
				if (r > 0) {
					job_start(w, &b);
					claimed = true;
				}
			}
			if (r < 0) {
				if (++idle_errors == 1 || idle_errors % 100 == 0)
					log_warn("cannot claim: %s", err_msg(&ce));
				nothing = false;
			} else {
				idle_errors = 0;
			}
		}
		if (claimed)
			continue;
		if (w->o->once && nothing && w->n_jobs == 0 && !w->stopping)
			return 0;
		int timeout = w->o->poll_ms;
		if (w->n_jobs > 0 && timeout > CANCEL_CHECK_MS / 2)
			timeout = CANCEL_CHECK_MS / 2;
		int r = queue_wait(w->q, sig_pipe[0], timeout, e);
		if (r < 0) {
			log_warn("%s", err_msg(e));
			err_clear(e);
			usleep((useconds_t)timeout * 1000);
		}
	}
}

int worker_run(const struct config *c, struct storage *s, const struct worker_opts *o,
	       struct err *e)
{
	if (o->concurrency < 1 || o->concurrency > 1024)
		return err_set(e, -EINVAL, "concurrency must be 1..1024");
	struct worker w = { .c = c, .s = s, .o = o };
	int r = queue_open(&w.q, c, e);
	if (r < 0)
		return r;
	_cleanup_free_ char *host = xcalloc(1, 256);
	if (gethostname(host, 255) < 0)
		snprintf(host, 256, "localhost");
	w.id = xasprintf("%s:%d", host, (int)getpid());
	w.jobs = xcalloc((size_t)o->concurrency, sizeof(*w.jobs));
	for (int i = 0; i < o->concurrency; i++)
		w.jobs[i] = (struct job){ .pid = 0, .result_fd = -1, .log_fd = -1, .result = BUF_INIT };

	if (pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
		r = err_set_errno(e, -errno, "pipe");
		queue_close(w.q);
		free(w.jobs);
		free(w.id);
		return r;
	}
	got_stop = 0;
	struct sigaction sa = { .sa_handler = on_signal, .sa_flags = SA_RESTART };
	sigemptyset(&sa.sa_mask);
	struct sigaction old_term, old_int, old_chld;
	sigaction(SIGTERM, &sa, &old_term);
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGCHLD, &sa, &old_chld);

	cleanup_leftovers(&w);
	log_info("worker %s on %s queue, %d at once", w.id, queue_backend(w.q), o->concurrency);
	r = worker_loop(&w, e);
	/* Never leave a child behind, whatever the loop returned. */
	for (int i = 0; i < o->concurrency; i++)
		if (w.jobs[i].pid > 0) {
			kill(w.jobs[i].pid, SIGKILL);
			int status;
			waitpid(w.jobs[i].pid, &status, 0);
			job_done(&w, &w.jobs[i], status);
		}

	{
		_cleanup_buf_ struct buf line = BUF_INIT;
		stats_line(&w, &line);
		log_info("worker %s stopped: %s", w.id, line.p);
	}
	sigaction(SIGTERM, &old_term, NULL);
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGCHLD, &old_chld, NULL);
	close(sig_pipe[0]);
	close(sig_pipe[1]);
	sig_pipe[0] = sig_pipe[1] = -1;
	queue_close(w.q);
	free(w.jobs);
	free(w.id);
	return r;
}
