/*
 * queue/queue.h - the app registry, the build queue and its history, and
 * the worker that runs queued builds.
 *
 * Backends (queue/queue-int.h) are picked by the scheme of queue.url:
 *   sqlite:///var/lib/upaas/upaas.db   (also sqlite:/abs/path or /abs/path)
 *   postgresql://user@host/db, postgres://...   (libpq conninfo URI)
 * Both hold the same schema, which upaas creates and migrates itself on
 * open (a schema_version table and a list of migrations).
 *
 * Lifecycle: queue_open() -> queue_app_* / queue_add / queue_list / ... ->
 * queue_close(). One struct queue is one connection: do not share it
 * between threads, and never use it in a child after fork().
 *
 * A build moves queued -> running -> succeeded | failed | cancelled.
 * A running build holds a lease (worker, lease_until) that its worker renews
 * every lease_seconds/3. A claim first requeues running builds whose lease
 * has expired (their worker died), so a build whose worker vanished runs
 * again elsewhere; after QUEUE_MAX_ATTEMPTS expired runs it fails instead.
 * A claim never hands out a build of an app that has a running build, so
 * builds of one app never run at once, across every worker and host.
 *
 * Times are unix milliseconds from the clock of the process that writes
 * them: hosts sharing a PostgreSQL queue need synchronised clocks (NTP).
 *
 * Every function returns 0 or more on success and -errno on failure with
 * the detail in e: -ENOENT (no such app/build), -EEXIST (app registered),
 * -EBUSY (app has a running build), -ESTALE (the lease is no longer ours),
 * -EINVAL (bad input or state), -EIO (database).
 */
#ifndef UPAAS_QUEUE_H
#define UPAAS_QUEUE_H

#include "common/common.h"
#include "config/config.h"
#include "storage/storage.h"

/* A build whose lease expired this many times fails instead of requeueing. */
#define QUEUE_MAX_ATTEMPTS 3

struct queue;
struct json_object;

/* Opens the queue of the config (queue.url, queue.lease_seconds); creates
 * the database file's directory and migrates the schema. A queue opened
 * from a config with serve.notify.urls writes a notification for each
 * of them into the outbox when a build ends (see the outbox section). */
int queue_open(struct queue **ret, const struct config *c, struct err *e);
/* The same from a URL; lease_seconds <= 0 means 60. */
int queue_open_url(struct queue **ret, const char *url, int lease_seconds, struct err *e);
/* As queue_open(), for a quick look that must change nothing (shell
 * completion): creates no file or directory (-ENOENT when the SQLite file
 * is missing), migrates nothing, and gives up connecting to PostgreSQL
 * after 2 seconds. */
int queue_open_existing(struct queue **ret, const struct config *c, struct err *e);
void queue_close(struct queue *q);
/* "sqlite" or "postgresql". */
const char *queue_backend(const struct queue *q);
/* Pushes the names of the backends built into this binary. */
void queue_backend_names(struct strv *ret);
/* The schema version after migration. */
int queue_schema_version(struct queue *q, struct err *e);
/* Replaces the clock (unix ms) for tests; fn NULL restores the real one. */
void queue_set_clock(struct queue *q, int64_t (*fn)(void *data), void *data);
/* The current time of q's clock, unix ms. */
int64_t queue_now(struct queue *q);

/* ------------------------------------------------------------- registry */

struct queue_app {
	char *name;
	char *repo;
	char *branch;           /* NULL: the remote's default branch */
	int64_t created;        /* unix ms */
	char *webhook_secret;   /* verifies its git webhooks; NULL for an app
				 * registered before webhooks (rotate it) */
};
void queue_app_clear(struct queue_app *a);
void queue_apps_free(struct queue_app *v, size_t n);

/* Registers an app (-EEXIST when registered, unless replace is true, in
 * which case repo and branch are updated). The name must be app_name_ok().
 * A new app gets a random webhook secret; a replaced one keeps its own. */
int queue_app_add(struct queue *q, const char *name, const char *repo, const char *branch,
		  bool replace, struct err *e);
/* Gives an app a new random webhook secret (the old one stops working). */
int queue_app_new_secret(struct queue *q, const char *name, struct err *e);
int queue_app_get(struct queue *q, const char *name, struct queue_app *ret, struct err *e);
/* Every app, by name. The caller frees with queue_apps_free(). */
int queue_app_list(struct queue *q, struct queue_app **ret, size_t *ret_n, struct err *e);
/* Unregisters an app and cancels its queued builds; its history stays.
 * -EBUSY while a build of it runs. */
int queue_app_remove(struct queue *q, const char *name, struct err *e);

/*
 * For `upaas build NAME`: the repository URL and branch (empty when the
 * remote's default) of a registered app; -ENOENT when it is not registered.
 * Opens and closes the configured queue.
 */
int app_registry_lookup(const struct config *c, const char *name, struct buf *ret_url,
			struct buf *ret_branch, struct err *e);

/* --------------------------------------------------------------- builds */

enum build_state {
	BUILD_QUEUED,
	BUILD_RUNNING,
	BUILD_SUCCEEDED,
	BUILD_FAILED,
	BUILD_CANCELLED,
	BUILD__STATE_COUNT
};
const char *build_state_name(enum build_state s);
/* -EINVAL for an unknown name. */
int build_state_parse(const char *name, enum build_state *ret);

struct queue_build {
	char *id;               /* id_new(): sorts by time */
	char *app;
	char *ref;              /* NULL: the app's branch */
	bool fresh;
	enum build_state state;
	char *worker;           /* "host:pid" of the worker that ran it last */
	int64_t lease_until;    /* unix ms, 0 when none */
	int attempts;           /* times a worker started it */
	char *package_id;       /* set when succeeded */
	char *error;            /* set when failed or cancelled */
	int64_t queued_at;      /* unix ms */
	int64_t started_at;     /* 0 when never started */
	int64_t finished_at;    /* 0 when not finished */
	bool cancel_requested;
};
void queue_build_clear(struct queue_build *b);
void queue_builds_free(struct queue_build *v, size_t n);

/*
 * Queues a build of a registered app (-ENOENT otherwise). When the app
 * already has a queued build for the same ref, the request coalesces into
 * it (ret_coalesced = true; fresh upgrades it to fresh). ret_id receives the
 * build id (caller frees). ref NULL or "": the app's branch.
 */
int queue_add(struct queue *q, const char *app, const char *ref, bool fresh, char **ret_id,
	      bool *ret_coalesced, struct err *e);
int queue_get(struct queue *q, const char *id, struct queue_build *ret, struct err *e);

struct queue_filter {
	const char *app;        /* NULL: every app */
	int state;              /* an enum build_state, or -1 for any */
	size_t limit;           /* 0: no limit; newest first */
};
#define QUEUE_FILTER_INIT { NULL, -1, 0 }
/* Builds matching f, newest first. The caller frees with queue_builds_free(). */
int queue_list(struct queue *q, const struct queue_filter *f, struct queue_build **ret,
	       size_t *ret_n, struct err *e);

/*
 * Cancels a build. A queued build is cancelled at once (returns 0); for a
 * running one the cancel is requested and its worker stops it (returns 1).
 * -EINVAL when it has finished already.
 */
int queue_cancel(struct queue *q, const char *id, struct err *e);
/* Queues the build again as a new build (same app, ref, fresh; coalescing
 * applies). -EINVAL while it is queued or running. */
int queue_retry(struct queue *q, const char *id, char **ret_id, struct err *e);

/* ------------------------------------------------------- worker's side */

/*
 * Claims the oldest queued build whose app has no running build, after
 * requeueing expired leases. On success it is running under worker's
 * lease; returns 1 and fills ret, or 0 when nothing can be claimed now.
 */
int queue_claim(struct queue *q, const char *worker, struct queue_build *ret, struct err *e);
/* true (1) when a claim could find work: a queued build of an app that
 * runs none, or an expired lease. A cheap read (no write lock) to call
 * before queue_claim() when polling. */
int queue_has_work(struct queue *q, struct err *e);
/* Requeues (or fails, after QUEUE_MAX_ATTEMPTS) running builds whose lease
 * expired; returns how many changed. queue_claim() calls it. */
int queue_expire(struct queue *q, struct err *e);
/* Extends b's lease to now + lease_seconds. -ESTALE when b is no longer
 * running under this worker and attempt (the lease was lost). */
int queue_renew(struct queue *q, const struct queue_build *b, struct err *e);
/* 1 when a cancel was requested for b, 0 when not; -ESTALE as above. */
int queue_cancel_pending(struct queue *q, const struct queue_build *b, struct err *e);
/*
 * Records the end of b's run: state succeeded (package_id), failed or
 * cancelled (error), or queued again (the worker stopped before it
 * finished; the attempt is not counted). -ESTALE when the lease was lost.
 */
int queue_finish(struct queue *q, const struct queue_build *b, enum build_state state,
		 const char *package_id, const char *error, struct err *e);
/*
 * Waits up to timeout_ms for a change that may make work available (PG:
 * LISTEN/NOTIFY) or for fd (may be -1) to become readable; returns 1 when
 * fd is readable, else 0.
 */
int queue_wait(struct queue *q, int fd, int timeout_ms, struct err *e);

/*
 * Named locks ([a-z0-9-], at most 64) that serialise a short critical
 * section across every worker and host of the queue, such as the writers
 * of apps/_index (package.h): PostgreSQL: a session advisory lock;
 * SQLite (one host): flock() of <database>.<name>.lock. queue_lock() waits
 * until the lock is free; it is held until queue_unlock() or until the
 * connection closes (a killed process releases it). One at a time.
 */
int queue_lock(struct queue *q, const char *name, struct err *e);
int queue_unlock(struct queue *q, const char *name, struct err *e);
/*
 * The index lock of package.h on the queue of c, opened on first use
 * (its own connection: in a worker's build process, the parent's must not
 * be shared; with no queue database at all, a host building on its own,
 * no lock). queue_index_lock_close() closes that connection.
 */
struct package_index_lock;
struct queue_index_lock {
	const struct config *c;
	struct queue *q;
};
void queue_index_lock_init(struct queue_index_lock *l, const struct config *c,
			   struct package_index_lock *ret);
void queue_index_lock_close(struct queue_index_lock *l);
/* The lease duration in seconds. */
int queue_lease_seconds(const struct queue *q);

/* ---------------------------------------------------------------- worker */

struct worker_opts {
	int concurrency;        /* builds at once, >= 1 */
	bool once;              /* exit when nothing is left to claim */
	int poll_ms;            /* idle poll interval, default 50 */
	bool noop_builds;       /* benchmarking aid: mark claims succeeded at once */
	int stop_grace_s;       /* SIGTERM -> SIGKILL of builds on stop, default 60 */
};
#define WORKER_OPTS_INIT { 1, false, 50, false, 60 }

/*
 * Runs queued builds until SIGTERM/SIGINT (or, with once, until nothing is
 * left to claim). Each build runs in a forked child that calls build_run()
 * with the queue's id, logging to <state>/logs/<id>.log; the worker renews
 * leases, stops builds whose cancel was requested or whose lease was lost,
 * records the outcome and prunes old packages (apps.keep_packages) after a
 * success. On SIGTERM it stops claiming, sends SIGTERM to its builds, waits
 * for them and requeues them. At start it removes this host's leftover
 * work dirs of builds that no longer run. s is used for pruning in the
 * worker; each build opens its own storage from c (secrets resolved).
 * Installs handlers for SIGTERM, SIGINT and SIGCHLD.
 */
int worker_run(const struct config *c, struct storage *s, const struct worker_opts *o,
	       struct err *e);

/* The path of a build's log: <state>/logs/<id>.log (caller frees). */
char *queue_log_path(const struct config *c, const char *id);

/* ----------------------------------------------------------------- JSON */

/*
 * The objects `upaas app` and `upaas queue` print with --json, and that
 * the HTTP API of `upaas serve` returns (json-c objects, caller puts).
 * Times are ISO 8601 plus the same name with _ms in unix ms; missing
 * values are null.
 */
struct json_object *queue_app_json(const struct queue_app *a, bool with_secret);
struct json_object *queue_build_json(const struct queue_build *b);
/* true for succeeded, failed and cancelled. */
bool build_state_final(enum build_state s);

/* ------------------------------------------------------------ API tokens */

/*
 * Tokens of the HTTP API (`upaas token add NAME --scope S`). A token is 32
 * random bytes, shown once as "upaas_" and 64 hex digits; only its
 * sha256 is stored. Scopes nest: read < build < admin.
 */
enum token_scope { TOKEN_READ, TOKEN_BUILD, TOKEN_ADMIN };
const char *token_scope_name(enum token_scope s);
int token_scope_parse(const char *name, enum token_scope *ret);   /* -EINVAL */

struct queue_token {
	char *name;
	enum token_scope scope;
	int64_t created;        /* unix ms */
	int64_t last_used;      /* unix ms, 0 when never (updated once a minute) */
};
void queue_token_clear(struct queue_token *t);
void queue_tokens_free(struct queue_token *v, size_t n);
/* Makes a token NAME (app_name_ok() rules); ret_token receives the token
 * (caller frees, after explicit_bzero). -EEXIST when NAME exists. */
int queue_token_add(struct queue *q, const char *name, enum token_scope scope,
		    char **ret_token, struct err *e);
int queue_token_list(struct queue *q, struct queue_token **ret, size_t *ret_n, struct err *e);
/* -ENOENT when there is no such token. */
int queue_token_remove(struct queue *q, const char *name, struct err *e);
/* Finds the token whose hash is token's, comparing every stored hash in
 * constant time; -EACCES when none matches. */
int queue_token_verify(struct queue *q, const char *token, struct queue_token *ret,
		       struct err *e);

/* ------------------------------------------------------ webhook deliveries */

/* Delivery ids are remembered this long (a replay within it is refused). */
#define QUEUE_DELIVERY_KEEP_MS ((int64_t)7 * 24 * 3600 * 1000)
/* Records the delivery id of a webhook; -EEXIST when it was seen before
 * (a replay). Forgets ids older than QUEUE_DELIVERY_KEEP_MS. */
int queue_delivery_record(struct queue *q, const char *delivery, struct err *e);
/* queue_add() and queue_delivery_record() in one transaction: either
 * both happen or neither. */
int queue_add_delivery(struct queue *q, const char *delivery, const char *app, const char *ref,
		       bool fresh, char **ret_id, bool *ret_coalesced, struct err *e);

/* ---------------------------------------------------------------- outbox */

/*
 * Outgoing notifications (a durable outbox). When a build ends (succeeded,
 * failed, cancelled) the queue writes one row per configured URL in the
 * transaction that ends it; `upaas serve` claims due rows, POSTs them and
 * deletes them, or retries later. At most QUEUE_OUTBOX_MAX rows are kept:
 * the oldest go first.
 */
#define QUEUE_OUTBOX_MAX 1000
struct queue_event {
	char *id;
	char *url;
	char *kind;             /* "build.succeeded", "deploy", ... */
	char *body;             /* the JSON to POST */
	int attempts;           /* failed tries so far */
	int64_t created;        /* unix ms */
};
void queue_events_free(struct queue_event *v, size_t n);
/* The URLs that new events go to (copied); queue_open() sets those of
 * serve.notify.urls. */
void queue_set_notify(struct queue *q, const struct strv *urls);
/* Adds an event for each notify URL (nothing when there is none). */
int queue_outbox_add(struct queue *q, const char *kind, const char *body, struct err *e);
/* Claims up to max due events, hidden from other claims for hold_ms. */
int queue_outbox_claim(struct queue *q, size_t max, int64_t hold_ms, struct queue_event **ret,
		       size_t *ret_n, struct err *e);
/* Delivered: removes it. */
int queue_outbox_done(struct queue *q, const char *id, struct err *e);
/* Failed: due again at retry_at (unix ms) with attempts + 1. */
int queue_outbox_retry(struct queue *q, const char *id, int64_t retry_at, struct err *e);
/* Rows in the outbox. */
int queue_outbox_count(struct queue *q, struct err *e);

#endif
