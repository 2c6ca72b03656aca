/*
 * queue/outbox.c - the notification outbox: events written in the
 * transaction that causes them (a build's end), delivered later by
 * `upaas serve` (serve/notify.c), so that a slow or dead receiver never
 * holds up a build, and a crash loses no event.
 */
#define UPAAS_QUEUE_INTERNAL 1
#include <errno.h>
#include <string.h>

#include <json-c/json.h>

#include "queue/queue-int.h"

#define EVENT_COLS "id, url, kind, body, attempts, created"

void queue_set_notify(struct queue *q, const struct strv *urls)
{
	strv_free(&q->notify_urls);
	if (urls)
		strv_copy(&q->notify_urls, urls);
}

void queue_events_free(struct queue_event *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].id);
		free(v[i].url);
		free(v[i].kind);
		free(v[i].body);
	}
	free(v);
}

/* Drops the oldest rows beyond QUEUE_OUTBOX_MAX. */
static int outbox_trim(struct queue *q, struct err *e)
{
	struct qv p[] = { QV_I(QUEUE_OUTBOX_MAX - 1) };
	int r = queue_sql_exec(q, "DELETE FROM notify_outbox WHERE id < (SELECT id FROM notify_outbox"
			       " ORDER BY id DESC LIMIT 1 OFFSET $1)", p, 1, e);
	if (r > 0)
		log_warn("notification outbox full: dropped the %d oldest event(s)", r);
	return r < 0 ? r : 0;
}

int queue_outbox_add(struct queue *q, const char *kind, const char *body, struct err *e)
{
	int64_t now = queue_now(q);
	for (size_t i = 0; i < q->notify_urls.n; i++) {
		/* id_new() has 16 random bits per millisecond: not enough for
		 * a burst of events, so 32 more */
		char rnd[65];
		int r = queue_random_hex(rnd);
		if (r < 0)
			return err_set(e, r, "cannot make an event id: %s", strerror(-r));
		_cleanup_free_ char *base = id_new();
		_cleanup_free_ char *id = xasprintf("%s-%.8s", base, rnd);
		struct qv p[] = { QV_S(id), QV_S(q->notify_urls.v[i]), QV_S(kind), QV_S(body),
				  QV_I(now) };
		r = queue_sql_exec(q, "INSERT INTO notify_outbox (id, url, kind, body, created,"
				       " next_at) VALUES ($1, $2, $3, $4, $5, $5)", p, 5, e);
		if (r < 0)
			return r;
	}
	return q->notify_urls.n ? outbox_trim(q, e) : 0;
}

int queue_outbox_build_event(struct queue *q, const char *id, struct err *e)
{
	if (!q->notify_urls.n)
		return 0;
	struct queue_build b = { 0 };
	int r = queue_get(q, id, &b, e);
	if (r < 0)
		return r;
	_cleanup_free_ char *kind = xasprintf("build.%s", build_state_name(b.state));
	char t[32];
	time_iso8601(queue_now(q) / 1000, t);
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "event", json_object_new_string(kind));
	json_object_object_add(o, "time", json_object_new_string(t));
	json_object_object_add(o, "build", queue_build_json(&b));
	queue_build_clear(&b);
	r = queue_outbox_add(q, kind, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
								    JSON_C_TO_STRING_NOSLASHESCAPE), e);
	json_object_put(o);
	return r;
}

struct event_rows {
	struct queue_event *v;
	size_t n;
};

static int row_event(void *data, int ncols, const char *const *v)
{
	struct event_rows *ev = data;
	if (ncols < 6)
		return -EIO;
	ev->v = xrealloc(ev->v, (ev->n + 1) * sizeof(*ev->v));
	ev->v[ev->n++] = (struct queue_event){
		.id = queue_col_str(v[0]), .url = queue_col_str(v[1]), .kind = queue_col_str(v[2]),
		.body = queue_col_str(v[3]), .attempts = (int)queue_col_int(v[4]),
		.created = queue_col_int(v[5]),
	};
	return 0;
}

struct claim_ctx {
	size_t max;
	int64_t hold_ms;
	struct event_rows rows;
};

static int claim_tx(struct queue *q, void *data, struct err *e)
{
	struct claim_ctx *c = data;
	int64_t now = queue_now(q);
	_cleanup_free_ char *sql = xasprintf("SELECT " EVENT_COLS " FROM notify_outbox WHERE"
					     " next_at <= $1 ORDER BY created, id LIMIT %zu%s", c->max,
					     q->ops->skip_locked);
	struct qv p[] = { QV_I(now) };
	int r = queue_sql_rows(q, sql, p, 1, row_event, &c->rows, e);
	for (size_t i = 0; r >= 0 && i < c->rows.n; i++) {
		struct qv u[] = { QV_S(c->rows.v[i].id), QV_I(now + c->hold_ms) };
		r = queue_sql_exec(q, "UPDATE notify_outbox SET next_at = $2 WHERE id = $1", u, 2, e);
	}
	return r < 0 ? r : 0;
}

int queue_outbox_claim(struct queue *q, size_t max, int64_t hold_ms, struct queue_event **ret,
		       size_t *ret_n, struct err *e)
{
	struct claim_ctx c = { .max = max ? max : 1, .hold_ms = hold_ms };
	int r = queue_sql_tx(q, claim_tx, &c, e);
	if (r < 0) {
		queue_events_free(c.rows.v, c.rows.n);
		return r;
	}
	*ret = c.rows.v;
	*ret_n = c.rows.n;
	return 0;
}

int queue_outbox_done(struct queue *q, const char *id, struct err *e)
{
	struct qv p[] = { QV_S(id) };
	int r = queue_sql_exec(q, "DELETE FROM notify_outbox WHERE id = $1", p, 1, e);
	return r < 0 ? r : 0;
}

int queue_outbox_retry(struct queue *q, const char *id, int64_t retry_at, struct err *e)
{
	struct qv p[] = { QV_S(id), QV_I(retry_at) };
	int r = queue_sql_exec(q, "UPDATE notify_outbox SET next_at = $2, attempts = attempts + 1"
			       " WHERE id = $1", p, 2, e);
	return r < 0 ? r : 0;
}

int queue_outbox_count(struct queue *q, struct err *e)
{
	int64_t n = -1;
	int r = queue_sql_rows(q, "SELECT count(*) FROM notify_outbox", NULL, 0, queue_row_int, &n, e);
	return r < 0 ? r : (int)n;
}
