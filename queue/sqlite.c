/*
 * queue/sqlite.c - the SQLite backend: one database file under the state
 * dir, in WAL mode so that readers never block the writer, shared by every
 * worker process of the host. Write transactions start with BEGIN IMMEDIATE,
 * which takes the write lock up front: a claim can then never race another
 * claim, and busy_timeout makes the others wait for it instead of failing.
 *
 * The only file that includes sqlite3.h.
 */
#define UPAAS_QUEUE_INTERNAL 1
#include <errno.h>
#include <poll.h>
#include <string.h>

#include <sqlite3.h>

#include "queue/queue-int.h"

#define SQLITE_BUSY_MS 30000

struct sqlite_priv {
	sqlite3 *db;
	char *path;
	int lock_fd;             /* a named lock held (sqlite_lock), or -1 */
};

static struct sqlite_priv *P(struct queue *q) { return q->priv; }

/* Maps a SQLite result code to -errno. */
static int sqlite_errno(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_CONSTRAINT:
		return (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE)
			       ? -EEXIST : -EINVAL;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_READONLY:
		return -EROFS;
	case SQLITE_CANTOPEN:
		return -ENOENT;
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return -EACCES;
	case SQLITE_FULL:
		return -ENOSPC;
	default:
		return -EIO;
	}
}

static int sqlite_fail(struct queue *q, int rc, struct err *e, const char *what)
{
	return err_set(e, sqlite_errno(rc), "sqlite '%s': %s: %s", P(q)->path, what,
		       P(q)->db ? sqlite3_errmsg(P(q)->db) : sqlite3_errstr(rc));
}

/* Accepts sqlite:///abs/path, sqlite:/abs/path and /abs/path. */
static int sqlite_path(const char *url, char **ret, struct err *e)
{
	const char *p = url;
	if (!strncmp(p, "sqlite://", 9))
		p += 9;
	else if (!strncmp(p, "sqlite:", 7))
		p += 7;
	if (p[0] != '/' || strstr(p, "?"))
		return err_set(e, -EINVAL,
			       "queue url '%s': want sqlite:///absolute/path/to/file.db", url);
	*ret = xstrdup(p);
	return 0;
}

static int sqlite_exec(struct queue *q, const char *sql, struct err *e)
{
	char *msg = NULL;
	int rc = sqlite3_exec(P(q)->db, sql, NULL, NULL, &msg);
	if (rc != SQLITE_OK) {
		int r = err_set(e, sqlite_errno(rc), "sqlite '%s': %s: %s", P(q)->path, sql,
				msg ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		return r;
	}
	return 0;
}

static int sqlite_open(struct queue *q, const char *url, struct err *e)
{
	struct sqlite_priv *p = P(q);
	p->lock_fd = -1;
	int r = sqlite_path(url, &p->path, e);
	if (r < 0)
		return r;
	_cleanup_free_ char *dir = xstrdup(p->path);
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir && !q->existing) {
		*slash = '\0';
		r = fs_mkdir_p(dir, 0755);
		if (r < 0)
			return err_set_errno(e, r, "cannot create '%s'", dir);
	}
	int rc = sqlite3_open_v2(p->path, &p->db,
				 SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX |
				 (q->existing ? 0 : SQLITE_OPEN_CREATE), NULL);
	if (rc != SQLITE_OK)
		return sqlite_fail(q, rc, e, "cannot open");
	sqlite3_extended_result_codes(p->db, 1);
	/* busy_timeout first: switching to WAL needs a lock another process
	 * may hold for a moment. */
	sqlite3_busy_timeout(p->db, SQLITE_BUSY_MS);
	if (q->existing)
		return 0;   /* a quick look: change no setting of the file */
	/* WAL: readers (queue list, log -f) never block claims. synchronous=
	 * NORMAL is safe in WAL mode (no corruption; a power cut may lose the
	 * last commits, which leases and requeues tolerate). */
	r = sqlite_exec(q, "PRAGMA journal_mode=WAL", e);
	if (r >= 0)
		r = sqlite_exec(q, "PRAGMA synchronous=NORMAL", e);
	if (r >= 0)
		r = sqlite_exec(q, "PRAGMA foreign_keys=ON", e);
	return r;
}

/* One host (the database is a file): flock() of <db>.<name>.lock, which
 * a killed process releases. One named lock at a time. */
static int sqlite_lock(struct queue *q, const char *name, int64_t key, bool acquire,
		       struct err *e)
{
	struct sqlite_priv *p = P(q);
	(void)key;
	if (!acquire) {
		if (p->lock_fd >= 0)
			close(p->lock_fd);
		p->lock_fd = -1;
		return 0;
	}
	if (p->lock_fd >= 0)
		return err_set(e, -EDEADLK, "a lock of '%s' is held already", p->path);
	_cleanup_free_ char *path = xasprintf("%s.%s.lock", p->path, name);
	int fd = lock_file(path, true, e);
	if (fd < 0)
		return fd;
	p->lock_fd = fd;
	return 0;
}

static void sqlite_close(struct queue *q)
{
	struct sqlite_priv *p = P(q);
	if (p->lock_fd >= 0)
		close(p->lock_fd);
	p->lock_fd = -1;
	if (p->db)
		sqlite3_close_v2(p->db);
	p->db = NULL;
	free(p->path);
	p->path = NULL;
}

static int sqlite_begin(struct queue *q, struct err *e)
{
	return sqlite_exec(q, "BEGIN IMMEDIATE", e);
}

static int sqlite_commit(struct queue *q, struct err *e)
{
	return sqlite_exec(q, "COMMIT", e);
}

static void sqlite_rollback(struct queue *q)
{
	if (!sqlite3_get_autocommit(P(q)->db))
		sqlite3_exec(P(q)->db, "ROLLBACK", NULL, NULL, NULL);
}

/* Rewrites $N placeholders as ?N, which SQLite binds by number; text in
 * quotes is copied as is. */
static char *sqlite_sql(const char *sql)
{
	struct buf b = BUF_INIT;
	bool quoted = false;
	for (const char *s = sql; *s; s++) {
		if (*s == '\'')
			quoted = !quoted;
		buf_addch(&b, !quoted && *s == '$' && s[1] >= '0' && s[1] <= '9' ? '?' : *s);
	}
	return buf_detach(&b);
}

static void stmt_finalizep(sqlite3_stmt **s)
{
	if (*s)
		sqlite3_finalize(*s);
}

static int sqlite_query(struct queue *q, const char *sql, const struct qv *params, size_t n,
			queue_row_fn row, void *data, struct err *e)
{
	sqlite3 *db = P(q)->db;
	_cleanup_free_ char *text = sqlite_sql(sql);
	_cleanup_(stmt_finalizep) sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db, text, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return sqlite_fail(q, rc, e, "cannot prepare statement");
	for (size_t i = 0; i < n; i++) {
		int idx = (int)i + 1;
		switch (params[i].type) {
		case QV_NULL: rc = sqlite3_bind_null(st, idx); break;
		case QV_TEXT: rc = sqlite3_bind_text(st, idx, params[i].s, -1, SQLITE_STATIC); break;
		case QV_INT: rc = sqlite3_bind_int64(st, idx, params[i].i); break;
		}
		if (rc != SQLITE_OK)
			return sqlite_fail(q, rc, e, "cannot bind");
	}
	int ncols = sqlite3_column_count(st);
	const char **vals = ncols > 0 ? xcalloc((size_t)ncols, sizeof(*vals)) : NULL;
	int r = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (!row)
			continue;
		for (int i = 0; i < ncols; i++)
			vals[i] = (const char *)sqlite3_column_text(st, i);
		r = row(data, ncols, vals);
		if (r < 0)
			break;
	}
	free(vals);
	if (r < 0)
		return r;
	if (rc != SQLITE_DONE)
		return sqlite_fail(q, rc, e, "query failed");
	return ncols > 0 ? 0 : sqlite3_changes(db);
}

/* No notifications: waits on fd only; the worker polls. */
static int sqlite_wait(struct queue *q, int fd, int timeout_ms, struct err *e)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	int r = poll(&pfd, fd >= 0 ? 1 : 0, timeout_ms);
	if (r < 0 && errno != EINTR)
		return err_set_errno(e, -errno, "poll");
	return r > 0 ? 1 : 0;
}

static const char *const sqlite_schemes[] = { "sqlite:", "/", NULL };

const struct queue_ops queue_sqlite_ops = {
	.name = "sqlite",
	.schemes = sqlite_schemes,
	.priv_size = sizeof(struct sqlite_priv),
	.caps = 0,
	.for_update = "",
	.skip_locked = "",
	.open = sqlite_open,
	.close = sqlite_close,
	.begin = sqlite_begin,
	.commit = sqlite_commit,
	.rollback = sqlite_rollback,
	.query = sqlite_query,
	.migrate_lock = NULL,
	.notify = NULL,
	.wait = sqlite_wait,
	.lock = sqlite_lock,
};
