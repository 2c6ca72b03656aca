/*
 * queue/queue-int.h - the backend interface of the queue, private to the
 * queue module's .c files (curl vtls style: one const struct of function
 * pointers per backend, the size of its private state, and capability bits).
 *
 * The generic layer (queue.c) writes all SQL once, with $1, $2, ...
 * placeholders; a backend prepares and runs one statement at a time and
 * hands back rows as text. The few dialect differences are data in the
 * ops struct (for_update, skip_locked) or optional hooks.
 */
#ifndef UPAAS_QUEUE_INT_H
#define UPAAS_QUEUE_INT_H

#ifndef UPAAS_QUEUE_INTERNAL
#error "queue-int.h is private to the queue module: include queue/queue.h"
#endif

#include "queue/queue.h"

/* A statement parameter. */
enum qv_type { QV_NULL, QV_TEXT, QV_INT };
struct qv {
	enum qv_type type;
	const char *s;
	int64_t i;
};
#define QV_S(str) ((struct qv){ (str) ? QV_TEXT : QV_NULL, (str), 0 })
#define QV_T(str) ((struct qv){ QV_TEXT, (str), 0 })   /* str never NULL */
#define QV_I(n) ((struct qv){ QV_INT, NULL, (int64_t)(n) })

/* Called per result row; vals[i] is NULL for SQL NULL. < 0 stops the query
 * and is returned. */
typedef int (*queue_row_fn)(void *data, int ncols, const char *const *vals);

/* Capability bits */
#define QUEUE_CAP_NOTIFY (1u << 0)   /* wait() wakes up on notify() */

struct queue_ops {
	const char *name;                /* "sqlite" */
	const char *const *schemes;      /* URL prefixes, NULL-terminated */
	size_t priv_size;                /* zeroed, at q->priv */
	unsigned caps;
	/* Appended to a SELECT that locks the rows it returns ("" for SQLite,
	 * whose write transactions are serialised already). */
	const char *for_update;
	/* The same, but rows locked by others are skipped. */
	const char *skip_locked;

	/* Connects; url is the whole queue.url. */
	int (*open)(struct queue *q, const char *url, struct err *e);
	void (*close)(struct queue *q);
	/* Starts a transaction that will write (SQLite: BEGIN IMMEDIATE). */
	int (*begin)(struct queue *q, struct err *e);
	int (*commit)(struct queue *q, struct err *e);
	void (*rollback)(struct queue *q);
	/* Runs one statement; returns the rows changed (>= 0) for writes,
	 * 0 for reads, or -errno (-EEXIST for a unique violation). */
	int (*query)(struct queue *q, const char *sql, const struct qv *params, size_t n,
		     queue_row_fn row, void *data, struct err *e);
	/* Optional: serialises concurrent migrations; called in a transaction. */
	int (*migrate_lock)(struct queue *q, struct err *e);
	/* Optional: wake waiters of other connections (in a transaction:
	 * delivered at commit). */
	void (*notify)(struct queue *q);
	/* Optional: waits up to timeout_ms for a notification or fd; returns
	 * 1 when fd is readable, else 0. NULL: poll(fd) only. */
	int (*wait)(struct queue *q, int fd, int timeout_ms, struct err *e);
	/* Takes (acquire) or releases the named lock key, held by this
	 * connection until released or closed (queue_lock()). */
	int (*lock)(struct queue *q, const char *name, int64_t key, bool acquire,
		    struct err *e);
};

struct queue {
	const struct queue_ops *ops;
	void *priv;
	int lease_seconds;
	int64_t (*clock)(void *data);
	void *clock_data;
	bool existing;             /* queue_open_existing(): create and migrate nothing */
	struct strv notify_urls;   /* where build-end events go */
};

extern const struct queue_ops queue_sqlite_ops;
extern const struct queue_ops queue_pg_ops;

/* Helpers of the generic layer (queue.c) for the other generic files. */
int queue_sql_exec(struct queue *q, const char *sql, const struct qv *p, size_t n, struct err *e);
int queue_sql_rows(struct queue *q, const char *sql, const struct qv *p, size_t n,
		   queue_row_fn row, void *data, struct err *e);
/* Runs fn in a write transaction; rolls back when it fails. */
int queue_sql_tx(struct queue *q, int (*fn)(struct queue *q, void *data, struct err *e),
		 void *data, struct err *e);
/* Row callbacks: the first column of the first row as int64 (data: an
 * int64_t preset to -1) or as a string (data: a char * preset to NULL). */
int queue_row_int(void *data, int ncols, const char *const *v);
int queue_row_str(void *data, int ncols, const char *const *v);
int64_t queue_col_int(const char *s);      /* NULL or junk: 0 */
/* Inside a transaction: writes the "build.<state>" event of build id to
 * the outbox when notify URLs are set (outbox.c). */
int queue_outbox_build_event(struct queue *q, const char *id, struct err *e);
/* 32 random bytes as 64 hex digits + NUL (tokens.c). */
int queue_random_hex(char out[65]);
char *queue_col_str(const char *s);        /* NULL stays NULL */

#endif
