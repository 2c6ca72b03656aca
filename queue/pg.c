/*
 * queue/pg.c - the PostgreSQL backend, for builder hosts that share one
 * queue. queue.url ("postgresql://..." or "postgres://...") goes to
 * PQconnectdb as is. Claims lock the rows they look at with
 * SELECT ... FOR UPDATE SKIP LOCKED, so concurrent claims never wait on each
 * other; a new build wakes idle workers through LISTEN/NOTIFY.
 *
 * The only file that includes libpq-fe.h.
 */
#define UPAAS_QUEUE_INTERNAL 1
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <string.h>

#include <libpq-fe.h>

#include "queue/queue-int.h"

#define PG_CHANNEL "upaas_queue"

struct pg_priv {
	PGconn *conn;
	bool listening;
	bool in_tx;
};

static struct pg_priv *P(struct queue *q) { return q->priv; }

static void pg_clearp(PGresult **r)
{
	if (*r)
		PQclear(*r);
}
#define _cleanup_pgresult_ _cleanup_(pg_clearp)

/* CREATE TABLE IF NOT EXISTS and friends send notices: not for the user. */
static void pg_notice(void *arg, const char *message) {}

/* The error of conn or res, without libpq's trailing newline. */
static int pg_fail(struct queue *q, PGresult *res, struct err *e, const char *what)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *msg = res ? PQresultErrorMessage(res) : PQerrorMessage(P(q)->conn);
	int code = -EIO;
	if (state) {
		if (!strcmp(state, "23505"))
			code = -EEXIST;
		else if (!strcmp(state, "40001") || !strcmp(state, "40P01") ||
			 !strcmp(state, "55P03"))
			code = -EAGAIN;
		else if (!strncmp(state, "28", 2) || !strcmp(state, "42501"))
			code = -EACCES;
		else if (!strncmp(state, "22", 2) || !strncmp(state, "23", 2))
			code = -EINVAL;
	}
	size_t n = msg ? strlen(msg) : 0;
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
		n--;
	return err_set(e, code, "postgresql: %s: %.*s", what, (int)n, msg ? msg : "");
}

static int pg_open(struct queue *q, const char *url, struct err *e)
{
	struct pg_priv *p = P(q);
	if (q->existing) {
		/* a quick look: do not hang on a host that does not answer; a
		 * connect_timeout in the URL wins (later keywords override) */
		static const char *const keys[] = { "connect_timeout", "dbname", NULL };
		const char *const vals[] = { "2", url, NULL };
		p->conn = PQconnectdbParams(keys, vals, 1);
	} else {
		p->conn = PQconnectdb(url);
	}
	if (!p->conn)
		return err_set(e, -ENOMEM, "postgresql: out of memory");
	if (PQstatus(p->conn) != CONNECTION_OK)
		return pg_fail(q, NULL, e, "cannot connect");
	PQsetNoticeProcessor(p->conn, pg_notice, NULL);
	return 0;
}

static void pg_close(struct queue *q)
{
	struct pg_priv *p = P(q);
	if (p->conn)
		PQfinish(p->conn);
	p->conn = NULL;
}

/* Reconnects a broken connection (server restart) outside a transaction. */
static int pg_check(struct queue *q, struct err *e)
{
	struct pg_priv *p = P(q);
	if (PQstatus(p->conn) == CONNECTION_OK)
		return 0;
	if (p->in_tx)
		return pg_fail(q, NULL, e, "connection lost");
	PQreset(p->conn);
	if (PQstatus(p->conn) != CONNECTION_OK)
		return pg_fail(q, NULL, e, "cannot reconnect");
	p->listening = false;
	return 0;
}

static int pg_simple(struct queue *q, const char *sql, struct err *e)
{
	_cleanup_pgresult_ PGresult *res = PQexec(P(q)->conn, sql);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		return pg_fail(q, res, e, sql);
	return 0;
}

static int pg_begin(struct queue *q, struct err *e)
{
	int r = pg_check(q, e);
	if (r < 0)
		return r;
	r = pg_simple(q, "BEGIN", e);
	if (r >= 0)
		P(q)->in_tx = true;
	return r;
}

static int pg_commit(struct queue *q, struct err *e)
{
	P(q)->in_tx = false;
	return pg_simple(q, "COMMIT", e);
}

static void pg_rollback(struct queue *q)
{
	struct pg_priv *p = P(q);
	if (!p->in_tx)
		return;
	p->in_tx = false;
	PGresult *res = PQexec(p->conn, "ROLLBACK");
	PQclear(res);
}

static int pg_query(struct queue *q, const char *sql, const struct qv *params, size_t n,
		    queue_row_fn row, void *data, struct err *e)
{
	int r = pg_check(q, e);
	if (r < 0)
		return r;
	const char **vals = n ? xcalloc(n, sizeof(*vals)) : NULL;
	char (*nums)[24] = n ? xcalloc(n, sizeof(*nums)) : NULL;
	for (size_t i = 0; i < n; i++) {
		if (params[i].type == QV_TEXT) {
			vals[i] = params[i].s;
		} else if (params[i].type == QV_INT) {
			snprintf(nums[i], sizeof(nums[i]), "%" PRId64, params[i].i);
			vals[i] = nums[i];
		}
	}
	_cleanup_pgresult_ PGresult *res =
		PQexecParams(P(q)->conn, sql, (int)n, NULL, vals, NULL, NULL, 0);
	free(vals);
	free(nums);
	switch (PQresultStatus(res)) {
	case PGRES_COMMAND_OK: {
		const char *t = PQcmdTuples(res);
		int64_t changed = 0;
		if (t && *t && parse_int64(t, 0, INT32_MAX, &changed) < 0)
			changed = 0;
		return (int)changed;
	}
	case PGRES_TUPLES_OK:
		break;
	default:
		return pg_fail(q, res, e, "query failed");
	}
	int rows = PQntuples(res), ncols = PQnfields(res);
	if (!row || ncols == 0)
		return 0;
	const char **cols = xcalloc((size_t)ncols, sizeof(*cols));
	for (int i = 0; i < rows && r >= 0; i++) {
		for (int j = 0; j < ncols; j++)
			cols[j] = PQgetisnull(res, i, j) ? NULL : PQgetvalue(res, i, j);
		r = row(data, ncols, cols);
	}
	free(cols);
	return r < 0 ? r : 0;
}

/* Concurrent first opens would race on CREATE TABLE: one at a time. */
static int pg_migrate_lock(struct queue *q, struct err *e)
{
	_cleanup_pgresult_ PGresult *res =
		PQexec(P(q)->conn, "SELECT pg_advisory_xact_lock(7500112971)");
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		return pg_fail(q, res, e, "cannot lock the schema");
	return 0;
}

/* A session advisory lock: released by pg_advisory_unlock or when the
 * connection ends (a killed builder's lock goes with it). */
static int pg_lock(struct queue *q, const char *name, int64_t key, bool acquire, struct err *e)
{
	char num[32];
	snprintf(num, sizeof(num), "%" PRId64, key);
	const char *vals[1] = { num };
	_cleanup_pgresult_ PGresult *res =
		PQexecParams(P(q)->conn, acquire ? "SELECT pg_advisory_lock($1::bigint)"
						 : "SELECT pg_advisory_unlock($1::bigint)",
			     1, NULL, vals, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		return pg_fail(q, res, e, acquire ? "cannot take a lock" : "cannot release a lock");
	(void)name;
	return 0;
}

static void pg_notify(struct queue *q)
{
	PGresult *res = PQexec(P(q)->conn, "NOTIFY " PG_CHANNEL);
	PQclear(res);
}

/* Drops pending notifications; returns how many there were. */
static int pg_drain(PGconn *conn)
{
	int n = 0;
	PGnotify *nf;
	while ((nf = PQnotifies(conn))) {
		PQfreemem(nf);
		n++;
	}
	return n;
}

static int pg_wait(struct queue *q, int fd, int timeout_ms, struct err *e)
{
	struct pg_priv *p = P(q);
	int r = pg_check(q, e);
	if (r < 0)
		return r;
	if (!p->listening) {
		r = pg_simple(q, "LISTEN " PG_CHANNEL, e);
		if (r < 0)
			return r;
		p->listening = true;
	}
	PQconsumeInput(p->conn);
	if (pg_drain(p->conn) > 0)
		return 0;
	struct pollfd pfd[2] = {
		{ .fd = PQsocket(p->conn), .events = POLLIN },
		{ .fd = fd, .events = POLLIN },
	};
	r = poll(pfd, fd >= 0 ? 2 : 1, timeout_ms);
	if (r < 0 && errno != EINTR)
		return err_set_errno(e, -errno, "poll");
	if (r > 0 && pfd[0].revents) {
		PQconsumeInput(p->conn);
		pg_drain(p->conn);
	}
	return fd >= 0 && r > 0 && (pfd[1].revents & POLLIN) ? 1 : 0;
}

static const char *const pg_schemes[] = { "postgresql://", "postgres://", NULL };

const struct queue_ops queue_pg_ops = {
	.name = "postgresql",
	.schemes = pg_schemes,
	.priv_size = sizeof(struct pg_priv),
	.caps = QUEUE_CAP_NOTIFY,
	.for_update = " FOR UPDATE",
	.skip_locked = " FOR UPDATE SKIP LOCKED",
	.open = pg_open,
	.close = pg_close,
	.begin = pg_begin,
	.commit = pg_commit,
	.rollback = pg_rollback,
	.query = pg_query,
	.migrate_lock = pg_migrate_lock,
	.notify = pg_notify,
	.wait = pg_wait,
	.lock = pg_lock,
};
