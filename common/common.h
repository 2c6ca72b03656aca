/*
 * common/common.h - the small helpers every module shares.
 *
 * Conventions (see ../shared/STYLE.md):
 *  - functions return 0 or more on success and -errno on failure;
 *  - the detail of a failure goes into a caller-provided struct err, and the
 *    first error recorded wins;
 *  - library code never prints to stdout; it logs through log_*() whose sink
 *    the CLI chooses;
 *  - _free() functions accept NULL; ownership moves only through TAKE_PTR /
 *    TAKE_FD;
 *  - cleanup attributes are never relied upon in a child after fork().
 */
#ifndef UPAAS_COMMON_H
#define UPAAS_COMMON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

/* ---------------------------------------------------------------- cleanup */

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _unused_ __attribute__((unused))
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static inline void freep(void *p) { free(*(void **)p); }
static inline void closep(int *fd) { if (*fd >= 0) close(*fd); }
static inline void fclosep(FILE **f) { if (*f) fclose(*f); }
#define _cleanup_free_ _cleanup_(freep)
#define _cleanup_close_ _cleanup_(closep)
#define _cleanup_fclose_ _cleanup_(fclosep)

/* Moves ownership out of a cleanup variable. */
#define TAKE_PTR(p) ({ __typeof__(p) _tp = (p); (p) = NULL; _tp; })
#define TAKE_FD(fd) ({ int _tfd = (fd); (fd) = -1; _tfd; })

/* Aborts on allocation failure: upaas has no useful way to go on without
 * memory, and every caller checking NULL would hide real errors. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t m);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) _printf_(1, 2);

/* ---------------------------------------------------------------- buffers */

/*
 * A growable byte buffer, never NULL and always NUL-terminated.
 * max is the largest length the buffer may reach (0: BUF_DEFAULT_MAX);
 * appends past it fail with -E2BIG and leave the buffer unchanged.
 */
struct buf {
	char *p;
	size_t len;
	size_t cap;
	size_t max;
};
#define BUF_DEFAULT_MAX ((size_t)1 << 30)
extern char buf_slop[1];
#define BUF_INIT { .p = buf_slop, .len = 0, .cap = 0, .max = 0 }

void buf_init(struct buf *b, size_t max);
void buf_free(struct buf *b);
void buf_reset(struct buf *b);               /* len = 0, keeps memory */
int buf_grow(struct buf *b, size_t extra);   /* room for extra more bytes */
int buf_add(struct buf *b, const void *p, size_t n);
int buf_adds(struct buf *b, const char *s);
int buf_addch(struct buf *b, char c);
int buf_addf(struct buf *b, const char *fmt, ...) _printf_(2, 3);
int buf_vaddf(struct buf *b, const char *fmt, va_list ap);
void buf_setlen(struct buf *b, size_t len);  /* len <= current len */
void buf_rtrim(struct buf *b);               /* drops trailing whitespace */
char *buf_detach(struct buf *b);             /* caller frees; b is reset */
/* Reads fd to EOF (or b->max); -E2BIG when the data is longer than max. */
int buf_read_fd(struct buf *b, int fd);
/* Reads a whole file, at most max bytes (0: BUF_DEFAULT_MAX). */
int buf_read_file(struct buf *b, const char *path, size_t max);
/*
 * Appends n bytes of untrusted text (app output, metadata, an S3 error body)
 * made safe for a terminal (common/term.c): newline, tab, printable ASCII
 * and valid UTF-8 (U+00A0 up) as they are; every other byte (ESC of CSI and
 * OSC sequences, BEL, CR, DEL, C1 controls, bytes that are not UTF-8) as
 * \xHH. For what upaas prints, never for what it stores (logs keep the bytes).
 */
void buf_add_safe(struct buf *b, const void *p, size_t n);
/* fputs() of buf_add_safe(s). */
int fputs_safe(const char *s, FILE *f);
static inline void buf_freep(struct buf *b) { buf_free(b); }
#define _cleanup_buf_ _cleanup_(buf_freep)

/* ----------------------------------------------------------- string lists */

/* A NULL-terminated, growable list of owned strings (argv, env, names). */
struct strv {
	char **v;
	size_t n;
	size_t cap;
};
#define STRV_INIT { NULL, 0, 0 }
void strv_push(struct strv *s, const char *str);       /* copies str */
void strv_push_take(struct strv *s, char *str);        /* takes str */
void strv_pushf(struct strv *s, const char *fmt, ...) _printf_(2, 3);
void strv_extend(struct strv *s, const struct strv *from);
void strv_free(struct strv *s);
bool strv_contains(const struct strv *s, const char *str);
void strv_copy(struct strv *dst, const struct strv *src);
void strv_sort(struct strv *s);
/* Returns v, or a static empty NULL-terminated list when nothing was pushed. */
char **strv_array(const struct strv *s);
/* Sets NAME=VALUE in an environment list, replacing an earlier NAME. */
void strv_setenv(struct strv *env, const char *name, const char *value);
static inline void strv_freep(struct strv *s) { strv_free(s); }
#define _cleanup_strv_ _cleanup_(strv_freep)

/* An ordered list of key/value pairs (env, files). Later set() replaces. */
struct kv {
	char *key;
	char *val;
};
struct kvlist {
	struct kv *v;
	size_t n;
	size_t cap;
};
#define KVLIST_INIT { NULL, 0, 0 }
void kvlist_set(struct kvlist *l, const char *key, const char *val);
const char *kvlist_get(const struct kvlist *l, const char *key);
void kvlist_merge(struct kvlist *dst, const struct kvlist *src);
void kvlist_copy(struct kvlist *dst, const struct kvlist *src);
void kvlist_free(struct kvlist *l);

/* ----------------------------------------------------------------- errors */

/*
 * The detail of a failure. The first err_set() wins: later calls only
 * return their code, so the root cause is what the user sees.
 */
struct err {
	int code;        /* -errno, 0 when no error was recorded */
	struct buf msg;
};
#define ERR_INIT { 0, BUF_INIT }
/* Records "message" unless an error is already set; returns code (< 0). */
int err_set(struct err *e, int code, const char *fmt, ...) _printf_(3, 4);
int err_setv(struct err *e, int code, const char *fmt, va_list ap);
/* The same, with ": " and the text of the errno of code appended (git's
 * error_errno, systemd's %m): err_set_errno(e, -errno, "cannot open '%s'", p). */
int err_set_errno(struct err *e, int code, const char *fmt, ...) _printf_(3, 4);
/* Prepends "context: " to the recorded message; returns e->code. */
int err_prefix(struct err *e, const char *fmt, ...) _printf_(2, 3);
const char *err_msg(const struct err *e);   /* never NULL */
void err_clear(struct err *e);
void err_free(struct err *e);
static inline void err_freep(struct err *e) { err_free(e); }
#define _cleanup_err_ _cleanup_(err_freep)

/* ---------------------------------------------------------------- logging */

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };
/* Messages at or below this level reach the sink (default LOG_INFO). */
extern enum log_level log_max_level;
/* The sink; the default writes "upaas: message" to stderr. */
typedef void (*log_sink_fn)(enum log_level lvl, const char *msg, void *data);
void log_set_sink(log_sink_fn fn, void *data);
void log_msg(enum log_level lvl, const char *fmt, ...) _printf_(2, 3);
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

/* --------------------------------------------------------------- progress */

/*
 * Progress of a long operation on a terminal: "stage  12.3 MiB  45 MiB/s".
 * Silent unless stderr is a terminal (or progress_force is set). Updates are
 * rate-limited, so calling progress_add() per block is cheap.
 */
struct progress {
	const char *stage;
	uint64_t done;
	uint64_t total;      /* 0 when unknown */
	uint64_t start_ms;
	uint64_t last_ms;
	bool active;
};
extern bool progress_enabled;   /* set by the CLI: isatty(2) && !--quiet */
void progress_begin(struct progress *p, const char *stage, uint64_t total);
void progress_add(struct progress *p, uint64_t n);
void progress_end(struct progress *p);

/* ------------------------------------------------------------------ time */

uint64_t now_ms(void);            /* CLOCK_MONOTONIC */
int64_t now_unix(void);           /* wall clock, seconds */
/* Formats t (UTC) as 2026-11-20T21:45:00Z. */
void time_iso8601(int64_t t, char out[32]);
/* Parses 2026-11-20T21:45:00Z (the whole string) as UTC; -EINVAL. */
int time_parse_iso8601(const char *s, int64_t *ret);
/* A new id that sorts by time to the millisecond: 20261120T214500Z-3e7a2c1
 * (the second, then 3 hex digits of milliseconds and 4 random hex digits). */
char *id_new(void);
/* true when s has the shape of an id_new() id. */
bool id_ok(const char *s);

/* --------------------------------------------------------------- hashing */

/* SHA-256 over a stream; hex is 64 lowercase digits + NUL. */
struct sha256 {
	void *ctx;   /* EVP_MD_CTX */
};
int sha256_init(struct sha256 *h);
void sha256_update(struct sha256 *h, const void *p, size_t n);
void sha256_final(struct sha256 *h, char hex[65]);   /* also frees ctx */
void sha256_free(struct sha256 *h);                  /* without final */
void sha256_hex(const void *p, size_t n, char hex[65]);
/* git's object id of a blob: the SHA-1 (SHA-256 with sha256) of
 * "blob <size>" NUL and the size bytes read from fd (-EIO when it has
 * fewer); hex gets 40 (64) digits. */
int hash_git_blob(int fd, uint64_t size, bool sha256, char hex[65]);
/* Hashes a whole file; ret_size may be NULL. */
int sha256_file(const char *path, char hex[65], uint64_t *ret_size, struct err *e);

/* ------------------------------------------------------ child processes */

/*
 * One child process, run by argv, never through a shell built from data.
 * Lifecycle (as git's run-command): PROC_INIT -> fill in -> proc_start()
 * -> proc_finish(); or proc_run() for both.
 *
 * env and argv are built before fork. A failed exec is reported back over a
 * close-on-exec pipe as -errno from proc_start() (or, when a child_setup hook
 * is set, from proc_finish()). The child gets its own
 * process group (its own session with new_session); on timeout the whole group is killed with SIGKILL (and the
 * setup hook may put it in a PID namespace, where killing its init kills all).
 *
 * Output: by default the child inherits stdout/stderr. With log_fd >= 0 its
 * stdout and stderr are read through a pipe and written to log_fd as lines
 * prefixed by a timestamp (and to log_fd2 too, when set); with tee also
 * copied to stderr.
 * With capture != NULL, stdout is collected into it (bounded by capture->max).
 */
struct proc {
	struct strv argv;
	struct strv env;            /* empty: inherit the parent's environment */
	bool env_set;               /* true: use env even when it is empty */
	const char *cwd;
	int stdin_fd;               /* -1: /dev/null */
	int stdout_fd;              /* -1: inherit (unless log_fd/capture) */
	int stderr_fd;              /* -1: inherit (unless log_fd) */
	int log_fd;                 /* -1: none */
	int log_fd2;                /* -1: none; a second copy of the log lines */
	bool tee;                   /* with log_fd: also copy to stderr */
	struct buf *capture;        /* stdout into this buffer */
	unsigned timeout_ms;        /* 0: none */
	/* Run the command as PID 1 of a new PID namespace, so that whatever
	 * it starts dies with it, even when upaas is killed with SIGKILL
	 * (mmdebstrap's apt and dpkg). Not with child_setup. */
	bool pid_namespace;
	/* Start a new session (setsid: no controlling terminal, so no way to
	 * the terminal upaas was started from) and join a new anonymous
	 * session keyring (so no way to upaas's keys), before child_setup
	 * and exec: for every child that runs something upaas does not
	 * fully trust (git, hooks, the sandbox). */
	bool new_session;
	/* Called in the child after fork, before exec; returns 0 or -errno.
	 * It may also replace the exec entirely (and must then _exit()). */
	int (*child_setup)(void *data);
	void *child_data;
	/* Set by proc_start / proc_finish */
	pid_t pid;
	bool timed_out;
	int out_pipe;
	int cap_pipe;
	int status_pipe;
	int pidfd;
	uint64_t start_ms;
	struct buf partial;         /* an unfinished output line */
};
#define PROC_INIT { .argv = STRV_INIT, .env = STRV_INIT, .stdin_fd = -1, \
	.stdout_fd = -1, .stderr_fd = -1, .log_fd = -1, .log_fd2 = -1, .pid = -1, \
	.out_pipe = -1, .cap_pipe = -1, .status_pipe = -1, .pidfd = -1, \
	.partial = BUF_INIT }

/*
 * Set from a signal handler (SIGTERM/SIGINT) to make every proc_finish()
 * kill its child's process group and return -ECANCELED.
 */
extern volatile sig_atomic_t proc_cancelled;
/*
 * Makes SIGTERM and SIGINT cancel what runs (for the commands that must
 * finish or undo their current step, clean up and exit 1 "interrupted"):
 * the handler sets proc_cancelled and records the first signal. Long loops
 * (transfers, unpacking, packing) check proc_cancelled and stop with
 * -ECANCELED; cleanup steps that must run anyway do not check it.
 */
void proc_cancel_on_signals(void);
/* The signal that cancelled (SIGTERM, SIGINT), 0 when none was caught. */
int proc_cancel_signal(void);
/* 0, or when cancelled -ECANCELED with "interrupted by SIGTERM" in e. */
int proc_check_cancel(struct err *e);

/*
 * For child_setup hooks that fork (the sandbox): in the child, the write end
 * of the pipe that reports a failed exec to the parent. A process that will
 * not exec must close it (the parent treats EOF as "started"); a process that
 * fails before exec calls proc_child_report(-errno) and _exit(127).
 */
int proc_child_status_fd(void);
void proc_child_report(int neg_errno);
int proc_start(struct proc *p, struct err *e);
/*
 * Waits for the child (and the timeout), streaming output. Returns the exit
 * code, 128+signal when killed by a signal, or -errno. On timeout it returns
 * -ETIMEDOUT and records "'cmd' timed out after N s" in e.
 */
int proc_finish(struct proc *p, struct err *e);
int proc_run(struct proc *p, struct err *e);
/* Kills the child's process group (SIGKILL) if it is still running. */
void proc_kill(struct proc *p);
void proc_free(struct proc *p);
/* Describes argv for messages: 'git fetch origin' (shortened to ~200). */
void proc_describe(const struct proc *p, struct buf *out);

/* Writes a timestamped log line "2026-11-20T21:45:00.123Z text\n" to fd. */
void log_line_fd(int fd, const char *text, size_t n);

/* ------------------------------------------------------------- sinks */

/* A consumer of a byte stream: returns 0, or -errno to stop the producer
 * (which then returns that value). */
typedef int (*sink_fn)(void *data, const void *p, size_t n);

/*
 * Where a producer writes one whole object (a storage upload, a file):
 * write() any number of times, then exactly one of commit() (the object
 * becomes visible; frees the sink's state whatever it returns) or abort()
 * (nothing stays behind).
 */
struct sink {
	int (*write)(void *data, const void *p, size_t n, struct err *e);
	int (*commit)(void *data, struct err *e);
	void (*abort)(void *data);
	void *data;
};

/* ------------------------------------------------------------- files */

/* mkdir -p; existing directories are fine. */
int fs_mkdir_p(const char *path, mode_t mode);
/* Writes data to path atomically: temp file in the same dir, fsync, rename,
 * fsync of the directory. A reader sees the old or the new content only. */
int fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode);
/* Writes all of n bytes, retrying on EINTR/short writes. */
int fs_write_all(int fd, const void *p, size_t n);
/* Joins two path pieces with exactly one '/'. Caller frees. */
char *path_join(const char *a, const char *b);
/* true when name is a safe single path component (no '/', not . or ..). */
bool path_component_ok(const char *name);
/* true for a relative path of safe components, no empty component, no
 * control character, at most 1024 bytes: "data", "var/uploads". */
bool path_rel_ok(const char *p);
/* true for "/" followed by path_rel_ok() (or "/" alone when root_ok). */
bool path_abs_ok(const char *p, bool root_ok);
/* true when s is 64 lowercase hex digits (a sha256). */
bool hex64_ok(const char *s);
/* fsyncs the directory that contains path. */
int fs_fsync_parent(const char *path);
/* Opens rel below the directory rootfd as if rootfd were "/"
 * (openat2 RESOLVE_IN_ROOT): "..", absolute symlinks and magic links never
 * leave the tree. Returns the fd (O_CLOEXEC added) or -errno. */
int fs_open_in_root(int rootfd, const char *rel, int flags);
/* Reads the regular file rel of the tree at root (fs_open_in_root), at
 * most max bytes (-E2BIG past it); -EINVAL when it is not a regular file. */
int fs_read_in_root(const char *root, const char *rel, struct buf *out, size_t max);

/*
 * Safe recursive removal (common/saferm.c). Removes path and everything
 * below it without ever following a symlink or crossing into another mount.
 * Refuses (-EBUSY) before removing anything when a mount point exists at or
 * below path (as listed in /proc/self/mountinfo). A missing path is success.
 */
int fs_rm_rf(const char *path, struct err *e);
/*
 * The same for the entry name of the directory dfd (a directory and what it
 * holds, anything else unlinked), for callers that walk a tree by fds and
 * have no path to check in mountinfo: a mount point at name is refused
 * (-EBUSY), one below it or another file system stops the walk. display
 * names it in messages. A missing name is success.
 */
int fs_rm_rf_at(int dfd, const char *name, const char *display, struct err *e);
/* true when something is mounted at or below path. */
bool fs_has_mounts_below(const char *path);

/* ----------------------------------------------------------- locks */

/* flock()s path (created 0600). With wait=false returns -EWOULDBLOCK when
 * held elsewhere. Returns the fd that holds the lock (close to release). */
int lock_file(const char *path, bool wait, struct err *e);
/*
 * The note of a lock file: what its holder is in the middle of and must be
 * finished or undone if the holder dies (a blob uploaded whose manifest is
 * not written yet). The holder writes it (synced) before the step and
 * clears it (text NULL) after; the next holder reads it, does what it says
 * and clears it. fd is the one lock_file() returned.
 */
int lock_note_set(int fd, const char *text);
/* Reads the note (empty when none), at most max bytes. */
int lock_note_get(int fd, struct buf *out, size_t max);

/* ----------------------------------------------------------- crash points */

/*
 * Test builds only (configure --enable-crash-points, common/crash.c):
 * crash_point("deploy.after-switch") kills the process with SIGKILL when
 * UPAAS_CRASH_POINT names that point (at its UPAAS_CRASH_COUNT-th hit).
 * Put one before and after every step whose interruption leaves a state
 * the next command must cope with (a rename, the unlink of a final name,
 * between a blob and its manifest), and add its name to the table in
 * common/crash.c. crash_init() reads the variables once, from main();
 * UPAAS_CRASH_POINT=list prints every point and exits. In other builds
 * crash_point() is empty and crash_init() refuses the variables.
 */
void crash_init(void);
#ifdef UPAAS_CRASH_POINTS
void crash_point(const char *name);
#else
static inline void crash_point(const char *name) { (void)name; }
#endif

/* ------------------------------------------------------------ test hooks */

/*
 * For tests that need a command stopped at a known point while something
 * else runs (a prune in the middle of a build): with
 * UPAAS_TEST_PAUSE=<point>:<file> in the environment, test_pause(<point>)
 * creates <file> and waits until the test removes it (at most ten
 * minutes). Does nothing otherwise.
 */
void test_pause(const char *point);

/* ----------------------------------------------------------- JSON */

/* json-c helpers (common/json.c); getters return NULL/false when the key
 * is missing or of another type, so that data read from outside never
 * crashes and never passes for something it is not. */
struct json_object;
void json_putp(struct json_object **o);
#define _cleanup_json_ _cleanup_(json_putp)
/* Parses text as exactly one JSON object (-EINVAL with the reason). */
int json_parse_object(const char *text, struct json_object **ret, struct err *e);
/* The pretty text of o, with a final newline, appended to out. */
void json_to_buf(struct json_object *o, struct buf *out);
const char *json_get_str(struct json_object *o, const char *key);
struct json_object *json_get_obj(struct json_object *o, const char *key);
/* Integers only (not doubles, not strings). */
bool json_get_int(struct json_object *o, const char *key, int64_t *ret);
/* A string, or JSON null for NULL. */
struct json_object *json_new_str(const char *s);
struct json_object *json_new_strv(const struct strv *v);

/* ----------------------------------------------------------- URLs */

/* Copies url to out with its userinfo ("user:password@", "token@") shown as
 * "********@" and the values of secret-looking query parameters (password,
 * secret, token, ...) as "********": what may be shown, logged or put in a
 * manifest. Text that is not a "scheme://" URL is copied as it is. */
void url_redact(const char *url, struct buf *out);
/* The same as a new string (caller frees). */
char *url_redacted(const char *url);
/* Splits the userinfo off url: ret_bare gets the URL without it, ret_user
 * and ret_pass its percent-decoded parts (NULL when absent; free them with
 * secret_free()). Returns 1 when url had a userinfo, 0 when not, -EINVAL
 * for a bad %-escape. */
int url_split_userinfo(const char *url, char **ret_bare, char **ret_user, char **ret_pass);
/* Wipes and frees a secret string; accepts NULL. */
void secret_free(char *s);
/*
 * The apt_auth.conf(5) entry for a mirror URL with a userinfo: out gets
 * "machine SCHEME://HOST[:PORT]/PATH login USER password PASS\n" (wipe it
 * after use) and ret_bare the URL without the userinfo. Returns 1 with
 * an entry, 0 when url has no userinfo (out untouched), -EINVAL when a
 * part cannot be written in that format (white space, a bad %-escape).
 */
int url_apt_auth(const char *url, struct buf *out, char **ret_bare);
/* Where a tree's apt finds the mirror's credentials while upaas runs it
 * (the bootstrap, the root steps with network); never packed. */
#define APT_MIRROR_AUTH "/etc/apt/auth.conf.d/upaas-mirror.conf"

/*
 * Credentials for a child without argv, environment or a file on disk
 * (common/askpass.c): a sealed memfd that only that child inherits, and the
 * upaas binary as its GIT_ASKPASS program, which reads the memfd back.
 * Lifecycle: askpass_open() -> askpass_env(&proc.env) and
 * proc.child_setup = askpass_child_setup, child_data = &a -> proc_run()
 * -> askpass_close(). main() calls askpass_main() first.
 */
struct askpass {
	int fd;                     /* the memfd, close-on-exec */
	char exe[4096];             /* /proc/self/exe */
};
int askpass_open(struct askpass *a, const char *user, const char *pass, struct err *e);
/* Sets GIT_ASKPASS, SSH_ASKPASS, UPAAS_ASKPASS_FD and GIT_TERMINAL_PROMPT=0. */
void askpass_env(const struct askpass *a, struct strv *env);
/* A proc child_setup hook: lets the child inherit the memfd. */
int askpass_child_setup(void *data);
void askpass_close(struct askpass *a);
/* When upaas runs as an askpass (UPAAS_ASKPASS_FD set, one argument, the
 * prompt): answers "Username..." or "Password..." on stdout and returns the
 * exit status; otherwise -1. */
int askpass_main(int argc, char **argv);

/* ----------------------------------------------------------- numbers */

/* Parses a whole decimal integer in [min,max]; -EINVAL / -ERANGE. */
int parse_int64(const char *s, int64_t min, int64_t max, int64_t *ret);
/* Formats a byte count as "12.3 MiB". */
void fmt_bytes(uint64_t n, char out[32]);

#endif
