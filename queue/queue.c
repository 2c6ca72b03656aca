/*
 * queue/queue.c - the generic layer of the queue: backend choice by URL
 * scheme, the schema and its migrations, and every operation written once
 * in SQL that both SQLite and PostgreSQL run ($N placeholders, BIGINT unix
 * milliseconds, 0/1 integers for booleans).
 */
#define UPAAS_QUEUE_INTERNAL 1
#include <errno.h>
#include <string.h>
#include <time.h>

#include "package/package.h"
#include "queue/queue-int.h"

static const struct queue_ops *const backends[] = {
	&queue_sqlite_ops,
	&queue_pg_ops,
	NULL,
};

/*
 * The schema, one statement per entry; schema_version holds how many have
 * run. Append only: never edit an entry that has shipped.
 */
static const char *const migrations[] = {
	"CREATE TABLE apps ("
	" name TEXT PRIMARY KEY,"
	" repo TEXT NOT NULL,"
	" branch TEXT,"
	" created BIGINT NOT NULL)",
	"CREATE TABLE builds ("
	" id TEXT PRIMARY KEY,"
	" app TEXT NOT NULL,"
	" ref TEXT,"
	" fresh INTEGER NOT NULL DEFAULT 0,"
	" state TEXT NOT NULL DEFAULT 'queued' CHECK (state IN"
	"  ('queued', 'running', 'succeeded', 'failed', 'cancelled')),"
	" worker TEXT,"
	" lease_until BIGINT,"
	" attempts INTEGER NOT NULL DEFAULT 0,"
	" package_id TEXT,"
	" error TEXT,"
	" queued_at BIGINT NOT NULL,"
	" started_at BIGINT,"
	" finished_at BIGINT,"
	" cancel_requested INTEGER NOT NULL DEFAULT 0)",
	"CREATE INDEX builds_state ON builds (state, app)",
	"CREATE INDEX builds_app ON builds (app, queued_at)",
	/* 5-8: upaas serve: webhook secrets, API tokens, webhook deliveries
	 * seen (replays), the notification outbox */
	"ALTER TABLE apps ADD COLUMN webhook_secret TEXT",
	"CREATE TABLE tokens ("
	" name TEXT PRIMARY KEY,"
	" scope TEXT NOT NULL CHECK (scope IN ('read', 'build', 'admin')),"
	" hash TEXT NOT NULL UNIQUE,"
	" created BIGINT NOT NULL,"
	" last_used BIGINT)",
	"CREATE TABLE hook_deliveries ("
	" id TEXT PRIMARY KEY,"
	" received BIGINT NOT NULL)",
	"CREATE TABLE notify_outbox ("
	" id TEXT PRIMARY KEY,"
	" url TEXT NOT NULL,"
	" kind TEXT NOT NULL,"
	" body TEXT NOT NULL,"
	" attempts INTEGER NOT NULL DEFAULT 0,"
	" created BIGINT NOT NULL,"
	" next_at BIGINT NOT NULL)",
};

#define BUILD_COLS "id, app, ref, fresh, state, worker, lease_until, attempts, package_id," \
	" error, queued_at, started_at, finished_at, cancel_requested"

static const char *const state_names[BUILD__STATE_COUNT] = {
	[BUILD_QUEUED] = "queued",
	[BUILD_RUNNING] = "running",
	[BUILD_SUCCEEDED] = "succeeded",
	[BUILD_FAILED] = "failed",
	[BUILD_CANCELLED] = "cancelled",
};

bool build_state_final(enum build_state s)
{
	return s == BUILD_SUCCEEDED || s == BUILD_FAILED || s == BUILD_CANCELLED;
}

const char *build_state_name(enum build_state s)
{
	return s < BUILD__STATE_COUNT ? state_names[s] : "unknown";
}

int build_state_parse(const char *name, enum build_state *ret)
{
	for (int i = 0; i < BUILD__STATE_COUNT; i++)
		if (name && !strcmp(name, state_names[i])) {
			*ret = (enum build_state)i;
			return 0;
		}
	return -EINVAL;
}

/* ------------------------------------------------------------ plumbing */

static int64_t real_clock(void *data)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t queue_now(struct queue *q)
{
	return q->clock(q->clock_data);
}

void queue_set_clock(struct queue *q, int64_t (*fn)(void *data), void *data)
{
	q->clock = fn ? fn : real_clock;
	q->clock_data = fn ? data : NULL;
}

const char *queue_backend(const struct queue *q)
{
	return q->ops->name;
}

void queue_backend_names(struct strv *ret)
{
	for (size_t i = 0; backends[i]; i++)
		strv_push(ret, backends[i]->name);
}

int queue_lease_seconds(const struct queue *q)
{
	return q->lease_seconds;
}

int queue_sql_exec(struct queue *q, const char *sql, const struct qv *p, size_t n, struct err *e)
{
	return q->ops->query(q, sql, p, n, NULL, NULL, e);
}

int queue_sql_rows(struct queue *q, const char *sql, const struct qv *p, size_t n,
		  queue_row_fn row, void *data, struct err *e)
{
	return q->ops->query(q, sql, p, n, row, data, e);
}

/* Row callback: the first column of the first row as an int64 (-1: none). */
int queue_row_int(void *data, int ncols, const char *const *v)
{
	int64_t *ret = data;
	if (*ret == -1 && ncols > 0 && v[0] && parse_int64(v[0], INT64_MIN, INT64_MAX, ret) < 0)
		*ret = -1;
	return 0;
}

/* Row callback: the first column of the first row as a string. */
int queue_row_str(void *data, int ncols, const char *const *v)
{
	char **ret = data;
	if (!*ret && ncols > 0 && v[0])
		*ret = xstrdup(v[0]);
	return 0;
}

int64_t queue_col_int(const char *s)
{
	int64_t v = 0;
	if (s && parse_int64(s, INT64_MIN, INT64_MAX, &v) < 0)
		v = 0;
	return v;
}

char *queue_col_str(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

/* Runs fn in a write transaction; rolls back when it fails. */
int queue_sql_tx(struct queue *q, int (*fn)(struct queue *q, void *data, struct err *e),
		void *data, struct err *e)
{
	int r = q->ops->begin(q, e);
	if (r < 0)
		return r;
	r = fn(q, data, e);
	if (r < 0) {
		q->ops->rollback(q);
		return r;
	}
	int c = q->ops->commit(q, e);
	if (c < 0) {
		q->ops->rollback(q);
		return c;
	}
	return r;
}

/* ----------------------------------------------------------- migration */

static int migrate_tx(struct queue *q, void *data, struct err *e)
{
	int r = 0;
	if (q->ops->migrate_lock)
		r = q->ops->migrate_lock(q, e);
	if (r >= 0)
		r = queue_sql_exec(q, "CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)",
			   NULL, 0, e);
	if (r < 0)
		return r;
	int64_t v = -1;
	r = queue_sql_rows(q, "SELECT version FROM schema_version", NULL, 0, queue_row_int, &v, e);
	if (r < 0)
		return r;
	if (v < 0) {
		r = queue_sql_exec(q, "INSERT INTO schema_version (version) VALUES (0)", NULL, 0, e);
		if (r < 0)
			return r;
		v = 0;
	}
	if (v > (int64_t)ARRAY_SIZE(migrations))
		return err_set(e, -EPROTONOSUPPORT,
			       "queue schema version %lld is newer than this upaas knows (%zu)",
			       (long long)v, ARRAY_SIZE(migrations));
	for (size_t i = (size_t)v; i < ARRAY_SIZE(migrations); i++) {
		r = queue_sql_exec(q, migrations[i], NULL, 0, e);
		if (r < 0)
			return err_prefix(e, "queue schema migration %zu", i + 1);
	}
	struct qv p[] = { QV_I(ARRAY_SIZE(migrations)) };
	r = queue_sql_exec(q, "UPDATE schema_version SET version = $1", p, 1, e);
	return r < 0 ? r : 0;
}

static int queue_migrate(struct queue *q, struct err *e)
{
	/* The common case, without taking a write lock: up to date. */
	_cleanup_err_ struct err ignored = ERR_INIT;
	int64_t v = -1;
	int r = queue_sql_rows(q, "SELECT version FROM schema_version", NULL, 0, queue_row_int,
			       &v, &ignored);
	if (r >= 0 && v == (int64_t)ARRAY_SIZE(migrations))
		return 0;
	return queue_sql_tx(q, migrate_tx, NULL, e);
}

int queue_schema_version(struct queue *q, struct err *e)
{
	int64_t v = -1;
	int r = queue_sql_rows(q, "SELECT version FROM schema_version", NULL, 0, queue_row_int, &v, e);
	return r < 0 ? r : (int)v;
}

/* ---------------------------------------------------------------- open */

static const struct queue_ops *backend_for(const char *url)
{
	for (size_t i = 0; backends[i]; i++)
		for (const char *const *s = backends[i]->schemes; *s; s++)
			if (!strncmp(url, *s, strlen(*s)))
				return backends[i];
	return NULL;
}

static int open_url(struct queue **ret, const char *url, int lease_seconds, bool existing,
		    struct err *e)
{
	if (!url || !*url)
		return err_set(e, -EINVAL, "queue url is not set");
	const struct queue_ops *ops = backend_for(url);
	if (!ops)
		return err_set(e, -EPROTONOSUPPORT,
			       "queue url: unknown scheme (want sqlite:///path or postgresql://...)");
	struct queue *q = xcalloc(1, sizeof(*q));
	q->ops = ops;
	q->priv = xcalloc(1, ops->priv_size);
	q->lease_seconds = lease_seconds > 0 ? lease_seconds : 60;
	q->clock = real_clock;
	q->existing = existing;
	int r = ops->open(q, url, e);
	if (r >= 0 && !existing)
		r = queue_migrate(q, e);
	if (r < 0) {
		queue_close(q);
		return r;
	}
	*ret = q;
	return 0;
}

int queue_open_url(struct queue **ret, const char *url, int lease_seconds, struct err *e)
{
	return open_url(ret, url, lease_seconds, false, e);
}

/* queue.url, else the SQLite file in paths.state (caller frees). */
static char *config_url(const struct config *c)
{
	if (c->queue.url && *c->queue.url)
		return xstrdup(c->queue.url);
	return xasprintf("sqlite://%s/upaas.db", c->paths.state);
}

int queue_open(struct queue **ret, const struct config *c, struct err *e)
{
	_cleanup_free_ char *url = config_url(c);
	int r = open_url(ret, url, c->queue.lease_seconds, false, e);
	if (r >= 0)
		queue_set_notify(*ret, &c->serve.notify.urls);
	return r;
}

int queue_open_existing(struct queue **ret, const struct config *c, struct err *e)
{
	_cleanup_free_ char *url = config_url(c);
	return open_url(ret, url, c->queue.lease_seconds, true, e);
}

void queue_close(struct queue *q)
{
	if (!q)
		return;
	q->ops->close(q);
	strv_free(&q->notify_urls);
	free(q->priv);
	free(q);
}

/* --------------------------------------------------------------- builds */

void queue_build_clear(struct queue_build *b)
{
	if (!b)
		return;
	free(b->id);
	free(b->app);
	free(b->ref);
	free(b->worker);
	free(b->package_id);
	free(b->error);
	memset(b, 0, sizeof(*b));
}

void queue_builds_free(struct queue_build *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		queue_build_clear(&v[i]);
	free(v);
}

struct build_rows {
	struct queue_build *v;
	size_t n;
};

static int row_build(void *data, int ncols, const char *const *v)
{
	struct build_rows *b = data;
	if (ncols < 14)
		return -EIO;
	enum build_state st = BUILD_FAILED;
	build_state_parse(v[4], &st);
	b->v = xrealloc(b->v, (b->n + 1) * sizeof(*b->v));
	b->v[b->n++] = (struct queue_build){
		.id = queue_col_str(v[0]), .app = queue_col_str(v[1]), .ref = queue_col_str(v[2]),
		.fresh = queue_col_int(v[3]) != 0, .state = st, .worker = queue_col_str(v[5]),
		.lease_until = queue_col_int(v[6]), .attempts = (int)queue_col_int(v[7]),
		.package_id = queue_col_str(v[8]), .error = queue_col_str(v[9]),
		.queued_at = queue_col_int(v[10]), .started_at = queue_col_int(v[11]),
		.finished_at = queue_col_int(v[12]), .cancel_requested = queue_col_int(v[13]) != 0,
	};
	return 0;
}

/* One build by id into ret; -ENOENT when there is none. */
static int build_get(struct queue *q, const char *id, const char *suffix, struct queue_build *ret,
		     struct err *e)
{
	struct build_rows b = { 0 };
	struct qv p[] = { QV_S(id) };
	_cleanup_free_ char *sql = xasprintf("SELECT " BUILD_COLS " FROM builds WHERE id = $1%s",
					     suffix);
	int r = queue_sql_rows(q, sql, p, 1, row_build, &b, e);
	if (r >= 0 && b.n == 0)
		r = err_set(e, -ENOENT, "no build '%s'", id);
	if (r < 0) {
		queue_builds_free(b.v, b.n);
		return r;
	}
	*ret = b.v[0];
	for (size_t i = 1; i < b.n; i++)
		queue_build_clear(&b.v[i]);
	free(b.v);
	return 0;
}

int queue_get(struct queue *q, const char *id, struct queue_build *ret, struct err *e)
{
	return build_get(q, id, "", ret, e);
}

int queue_list(struct queue *q, const struct queue_filter *f, struct queue_build **ret,
	       size_t *ret_n, struct err *e)
{
	_cleanup_buf_ struct buf sql = BUF_INIT;
	struct qv p[2];
	size_t n = 0;
	buf_adds(&sql, "SELECT " BUILD_COLS " FROM builds WHERE 1 = 1");
	if (f && f->app) {
		p[n++] = QV_S(f->app);
		buf_addf(&sql, " AND app = $%zu", n);
	}
	if (f && f->state >= 0 && f->state < BUILD__STATE_COUNT) {
		p[n++] = QV_S(build_state_name((enum build_state)f->state));
		buf_addf(&sql, " AND state = $%zu", n);
	}
	buf_adds(&sql, " ORDER BY queued_at DESC, id DESC");
	if (f && f->limit)
		buf_addf(&sql, " LIMIT %zu", f->limit);
	struct build_rows b = { 0 };
	int r = queue_sql_rows(q, sql.p, p, n, row_build, &b, e);
	if (r < 0) {
		queue_builds_free(b.v, b.n);
		return r;
	}
	*ret = b.v;
	*ret_n = b.n;
	return 0;
}

struct add_ctx {
	const char *delivery;    /* NULL: none to record */
	const char *app;
	const char *ref;
	bool fresh;
	char *id;
	bool coalesced;
};

static int add_tx(struct queue *q, void *data, struct err *e)
{
	struct add_ctx *a = data;
	if (a->delivery) {
		int r = queue_delivery_record(q, a->delivery, e);
		if (r < 0)
			return r;
	}
	/* Locking the app's row serialises concurrent adds of one app (PG);
	 * SQLite's write transaction does that already. */
	_cleanup_free_ char *sql = xasprintf("SELECT name FROM apps WHERE name = $1%s",
					     q->ops->for_update);
	_cleanup_free_ char *found = NULL;
	struct qv p[] = { QV_S(a->app), QV_S(a->ref) };
	int r = queue_sql_rows(q, sql, p, 1, queue_row_str, &found, e);
	if (r < 0)
		return r;
	if (!found)
		return err_set(e, -ENOENT, "app '%s' is not registered", a->app);
	free(sql);
	sql = xasprintf("SELECT id FROM builds WHERE app = $1 AND state = 'queued' AND %s"
			" ORDER BY queued_at LIMIT 1%s",
			a->ref ? "ref = $2" : "ref IS NULL", q->ops->for_update);
	r = queue_sql_rows(q, sql, p, a->ref ? 2 : 1, queue_row_str, &a->id, e);
	if (r < 0)
		return r;
	if (a->id) {
		a->coalesced = true;
		if (!a->fresh)
			return 0;
		struct qv u[] = { QV_S(a->id) };
		r = queue_sql_exec(q, "UPDATE builds SET fresh = 1 WHERE id = $1", u, 1, e);
		return r < 0 ? r : 0;
	}
	a->id = id_new();
	struct qv ins[] = { QV_S(a->id), QV_S(a->app), QV_S(a->ref), QV_I(a->fresh),
			    QV_I(queue_now(q)) };
	r = queue_sql_exec(q, "INSERT INTO builds (id, app, ref, fresh, state, queued_at)"
		   " VALUES ($1, $2, $3, $4, 'queued', $5)", ins, 5, e);
	if (r < 0)
		return r;
	if (q->ops->notify)
		q->ops->notify(q);
	return 0;
}

int queue_add_delivery(struct queue *q, const char *delivery, const char *app, const char *ref,
		       bool fresh, char **ret_id, bool *ret_coalesced, struct err *e)
{
	struct add_ctx a = { .delivery = delivery, .app = app, .ref = ref && *ref ? ref : NULL,
			     .fresh = fresh };
	int r = queue_sql_tx(q, add_tx, &a, e);
	if (r < 0) {
		free(a.id);
		return r;
	}
	if (ret_coalesced)
		*ret_coalesced = a.coalesced;
	if (ret_id)
		*ret_id = a.id;
	else
		free(a.id);
	return 0;
}

int queue_add(struct queue *q, const char *app, const char *ref, bool fresh, char **ret_id,
	      bool *ret_coalesced, struct err *e)
{
	return queue_add_delivery(q, NULL, app, ref, fresh, ret_id, ret_coalesced, e);
}

static int cancel_tx(struct queue *q, void *data, struct err *e)
{
	const char *id = data;
	_cleanup_(queue_build_clear) struct queue_build b = { 0 };
	int r = build_get(q, id, q->ops->for_update, &b, e);
	if (r < 0)
		return r;
	struct qv p[] = { QV_S(id), QV_I(queue_now(q)) };
	switch (b.state) {
	case BUILD_QUEUED:
		r = queue_sql_exec(q, "UPDATE builds SET state = 'cancelled', finished_at = $2,"
			   " error = 'cancelled' WHERE id = $1", p, 2, e);
		if (r >= 0)
			r = queue_outbox_build_event(q, id, e);
		return r < 0 ? r : 0;
	case BUILD_RUNNING:
		r = queue_sql_exec(q, "UPDATE builds SET cancel_requested = 1 WHERE id = $1", p, 1, e);
		return r < 0 ? r : 1;
	default:
		return err_set(e, -EINVAL, "build '%s' has %s already", id,
			       build_state_name(b.state));
	}
}

int queue_cancel(struct queue *q, const char *id, struct err *e)
{
	return queue_sql_tx(q, cancel_tx, (void *)id, e);
}

int queue_retry(struct queue *q, const char *id, char **ret_id, struct err *e)
{
	_cleanup_(queue_build_clear) struct queue_build b = { 0 };
	int r = queue_get(q, id, &b, e);
	if (r < 0)
		return r;
	if (b.state == BUILD_QUEUED || b.state == BUILD_RUNNING)
		return err_set(e, -EINVAL, "build '%s' is %s", id, build_state_name(b.state));
	return queue_add(q, b.app, b.ref, b.fresh, ret_id, NULL, e);
}

/* ------------------------------------------------------- worker's side */

int queue_has_work(struct queue *q, struct err *e)
{
	int64_t n = -1;
	struct qv p[] = { QV_I(queue_now(q)) };
	int r = queue_sql_rows(q, "SELECT count(*) FROM builds b WHERE"
			       " (b.state = 'queued' AND NOT EXISTS (SELECT 1 FROM builds r"
			       "  WHERE r.app = b.app AND r.state = 'running'))"
			       " OR (b.state = 'running' AND b.lease_until < $1)",
			       p, 1, queue_row_int, &n, e);
	return r < 0 ? r : n > 0;
}

/* Collects the first column of each row into a strv. */
static int row_strv(void *data, int ncols, const char *const *v)
{
	if (ncols > 0 && v[0])
		strv_push(data, v[0]);
	return 0;
}

static int expire_tx(struct queue *q, void *data, struct err *e)
{
	struct qv p[] = { QV_I(queue_now(q)), QV_I(QUEUE_MAX_ATTEMPTS) };
	int total = 0;
	/* the builds this ends (cancelled or failed): their events */
	_cleanup_strv_ struct strv ended = STRV_INIT;
	int r = 0;
	if (q->notify_urls.n)
		r = queue_sql_rows(q, "SELECT id FROM builds WHERE state = 'running' AND lease_until < $1"
				   " AND (cancel_requested <> 0 OR attempts >= $2)", p, 2, row_strv,
				   &ended, e);
	if (r < 0)
		return r;
	r = queue_sql_exec(q, "UPDATE builds SET state = 'cancelled', finished_at = $1,"
			       " lease_until = NULL, error = 'cancelled (its worker was lost)'"
			       " WHERE state = 'running' AND lease_until < $1 AND cancel_requested <> 0",
			       p, 1, e);
	if (r < 0)
		return r;
	total += r;
	r = queue_sql_exec(q, "UPDATE builds SET state = 'failed', finished_at = $1, lease_until = NULL,"
		   " error = 'its worker was lost ' || CAST(attempts AS TEXT) || ' times'"
		   " WHERE state = 'running' AND lease_until < $1 AND attempts >= $2", p, 2, e);
	if (r < 0)
		return r;
	total += r;
	r = queue_sql_exec(q, "UPDATE builds SET state = 'queued', lease_until = NULL,"
		   " error = 'lease of ' || COALESCE(worker, '?') || ' expired: requeued'"
		   " WHERE state = 'running' AND lease_until < $1", p, 1, e);
	if (r < 0)
		return r;
	total += r;
	for (size_t i = 0; i < ended.n; i++) {
		r = queue_outbox_build_event(q, ended.v[i], e);
		if (r < 0)
			return r;
	}
	if (total > 0 && q->ops->notify)
		q->ops->notify(q);
	return total;
}

int queue_expire(struct queue *q, struct err *e)
{
	return queue_sql_tx(q, expire_tx, NULL, e);
}

struct claim_ctx {
	const char *worker;
	struct queue_build b;
	bool found;
};

struct cand_rows {
	struct strv ids;
	struct strv apps;
};

static int row_cand(void *data, int ncols, const char *const *v)
{
	struct cand_rows *c = data;
	if (ncols < 2 || !v[0] || !v[1])
		return -EIO;
	strv_push(&c->ids, v[0]);
	strv_push(&c->apps, v[1]);
	return 0;
}

static int claim_tx(struct queue *q, void *data, struct err *e)
{
	struct claim_ctx *c = data;
	_cleanup_strv_ struct strv ids = STRV_INIT;
	_cleanup_strv_ struct strv apps = STRV_INIT;
	struct cand_rows cand = { STRV_INIT, STRV_INIT };
	/* Oldest first; no app that runs a build already. SKIP LOCKED (PG)
	 * passes over builds that another claim is looking at. */
	_cleanup_free_ char *sql = xasprintf(
		"SELECT b.id, b.app FROM builds b WHERE b.state = 'queued' AND NOT EXISTS"
		" (SELECT 1 FROM builds r WHERE r.app = b.app AND r.state = 'running')"
		" ORDER BY b.queued_at, b.id LIMIT 16%s", q->ops->skip_locked);
	int r = queue_sql_rows(q, sql, NULL, 0, row_cand, &cand, e);
	ids = cand.ids;
	apps = cand.apps;
	if (r < 0)
		return r;
	_cleanup_free_ char *lock_sql = xasprintf("SELECT name FROM apps WHERE name = $1%s",
						  q->ops->skip_locked);
	for (size_t i = 0; i < ids.n; i++) {
		/* Two claims may pick two queued builds of one app at once:
		 * the app's row lock lets one through, and the other sees its
		 * running build once it has the lock. */
		_cleanup_free_ char *locked = NULL;
		struct qv pa[] = { QV_S(apps.v[i]) };
		r = queue_sql_rows(q, lock_sql, pa, 1, queue_row_str, &locked, e);
		if (r < 0)
			return r;
		if (!locked)
			continue;
		int64_t running = -1;
		r = queue_sql_rows(q, "SELECT count(*) FROM builds WHERE app = $1 AND state = 'running'",
			   pa, 1, queue_row_int, &running, e);
		if (r < 0)
			return r;
		if (running != 0)
			continue;
		int64_t now = queue_now(q);
		struct qv p[] = { QV_S(ids.v[i]), QV_S(c->worker),
				  QV_I(now + (int64_t)q->lease_seconds * 1000), QV_I(now) };
		r = queue_sql_exec(q, "UPDATE builds SET state = 'running', worker = $2, lease_until = $3,"
			   " started_at = $4, finished_at = NULL, attempts = attempts + 1,"
			   " error = NULL, package_id = NULL"
			   " WHERE id = $1 AND state = 'queued'", p, 4, e);
		if (r < 0)
			return r;
		if (r == 0)
			continue;
		r = build_get(q, ids.v[i], "", &c->b, e);
		if (r < 0)
			return r;
		c->found = true;
		return 1;
	}
	return 0;
}

int queue_claim(struct queue *q, const char *worker, struct queue_build *ret, struct err *e)
{
	int r = queue_expire(q, e);
	if (r < 0)
		return r;
	struct claim_ctx c = { .worker = worker };
	r = queue_sql_tx(q, claim_tx, &c, e);
	if (r < 0 || !c.found) {
		queue_build_clear(&c.b);
		return r < 0 ? r : 0;
	}
	*ret = c.b;
	return 1;
}

int queue_renew(struct queue *q, const struct queue_build *b, struct err *e)
{
	struct qv p[] = { QV_S(b->id), QV_S(b->worker), QV_I(b->attempts),
			  QV_I(queue_now(q) + (int64_t)q->lease_seconds * 1000) };
	int r = queue_sql_exec(q, "UPDATE builds SET lease_until = $4 WHERE id = $1 AND state = 'running'"
		       " AND worker = $2 AND attempts = $3", p, 4, e);
	if (r == 0)
		return err_set(e, -ESTALE, "build '%s': the lease of '%s' was lost", b->id,
			       b->worker);
	return r < 0 ? r : 0;
}

int queue_cancel_pending(struct queue *q, const struct queue_build *b, struct err *e)
{
	_cleanup_(queue_build_clear) struct queue_build now = { 0 };
	int r = queue_get(q, b->id, &now, e);
	if (r < 0)
		return r;
	if (now.state != BUILD_RUNNING || !now.worker || strcmp(now.worker, b->worker) ||
	    now.attempts != b->attempts)
		return err_set(e, -ESTALE, "build '%s': the lease of '%s' was lost", b->id,
			       b->worker);
	return now.cancel_requested ? 1 : 0;
}

struct finish_ctx {
	const struct queue_build *b;
	enum build_state state;
	const char *package_id;
	const char *error;
};

static int finish_tx(struct queue *q, void *data, struct err *e)
{
	struct finish_ctx *f = data;
	const struct queue_build *b = f->b;
	enum build_state state = f->state;
	const char *package_id = f->package_id, *error = f->error;
	struct qv p[] = { QV_S(b->id), QV_S(b->worker), QV_I(b->attempts),
			  QV_S(build_state_name(state)), QV_S(package_id), QV_S(error),
			  QV_I(queue_now(q)) };
	int r;
	if (state == BUILD_QUEUED) {
		/* PostgreSQL wants every parameter used: a list of its own. */
		struct qv rq[] = { p[0], p[1], p[2], QV_S(error) };
		r = queue_sql_exec(q, "UPDATE builds SET state = 'queued', lease_until = NULL,"
			   " attempts = attempts - 1, started_at = NULL, error = $4"
			   " WHERE id = $1 AND state = 'running' AND worker = $2 AND attempts = $3",
			   rq, 4, e);
	} else if (state == BUILD_RUNNING)
		return err_set(e, -EINVAL, "build '%s': cannot finish as running", b->id);
	else
		r = queue_sql_exec(q, "UPDATE builds SET state = $4, package_id = $5, error = $6,"
			   " finished_at = $7, lease_until = NULL"
			   " WHERE id = $1 AND state = 'running' AND worker = $2 AND attempts = $3",
			   p, 7, e);
	if (r == 0)
		return err_set(e, -ESTALE, "build '%s': the lease of '%s' was lost", b->id,
			       b->worker);
	if (r < 0)
		return r;
	if (state != BUILD_QUEUED) {
		r = queue_outbox_build_event(q, b->id, e);
		if (r < 0)
			return r;
	}
	/* The app is free again: wake workers that may claim its next build. */
	if (q->ops->notify)
		q->ops->notify(q);
	return 0;
}

int queue_finish(struct queue *q, const struct queue_build *b, enum build_state state,
		 const char *package_id, const char *error, struct err *e)
{
	if (state == BUILD_RUNNING)
		return err_set(e, -EINVAL, "build '%s': cannot finish as running", b->id);
	struct finish_ctx f = { b, state, package_id, error };
	int r = queue_sql_tx(q, finish_tx, &f, e);
	return r < 0 ? r : 0;
}

int queue_wait(struct queue *q, int fd, int timeout_ms, struct err *e)
{
	return q->ops->wait(q, fd, timeout_ms, e);
}

/* The key of a named lock: FNV-1a of the name, in the range of a bigint,
 * away from the schema's own lock. */
static int64_t lock_key(const char *name)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		h = (h ^ *p) * 0x100000001b3ull;
	return (int64_t)(h >> 1);
}

static bool lock_name_ok(const char *name)
{
	size_t n = name ? strlen(name) : 0;
	if (!n || n > 64)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') ||
		      name[i] == '-'))
			return false;
	return true;
}

int queue_lock(struct queue *q, const char *name, struct err *e)
{
	if (!lock_name_ok(name))
		return err_set(e, -EINVAL, "invalid lock name '%s'", name ? name : "");
	if (!q->ops->lock)
		return err_set(e, -EOPNOTSUPP, "the %s queue has no locks", q->ops->name);
	return q->ops->lock(q, name, lock_key(name), true, e);
}

static int index_lock_fn(void *data, bool acquire, struct err *e)
{
	struct queue_index_lock *l = data;
	if (!l->q) {
		if (!acquire)
			return 0;
		/* no queue database at all: a host building on its own */
		_cleanup_err_ struct err oe = ERR_INIT;
		int r = queue_open_existing(&l->q, l->c, &oe);
		if (r == -ENOENT)
			return 0;
		if (r < 0)
			return err_set(e, r, "%s", err_msg(&oe));
	}
	return acquire ? queue_lock(l->q, "index", e) : queue_unlock(l->q, "index", e);
}

void queue_index_lock_init(struct queue_index_lock *l, const struct config *c,
			   struct package_index_lock *ret)
{
	l->c = c;
	l->q = NULL;
	ret->lock = index_lock_fn;
	ret->data = l;
}

void queue_index_lock_close(struct queue_index_lock *l)
{
	if (l->q)
		queue_close(l->q);
	l->q = NULL;
}

int queue_unlock(struct queue *q, const char *name, struct err *e)
{
	if (!lock_name_ok(name))
		return err_set(e, -EINVAL, "invalid lock name '%s'", name ? name : "");
	if (!q->ops->lock)
		return err_set(e, -EOPNOTSUPP, "the %s queue has no locks", q->ops->name);
	return q->ops->lock(q, name, lock_key(name), false, e);
}

char *queue_log_path(const struct config *c, const char *id)
{
	_cleanup_free_ char *dir = path_join(c->paths.state, "logs");
	_cleanup_free_ char *name = xasprintf("%s.log", id);
	return path_join(dir, name);
}
