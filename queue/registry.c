/*
 * queue/registry.c - the registered apps (name -> repository, branch), and
 * the lookup `upaas build NAME` uses.
 */
#define UPAAS_QUEUE_INTERNAL 1
#include <errno.h>
#include <string.h>

#include "queue/queue-int.h"

#define APP_COLS "name, repo, branch, created, webhook_secret"

/* ------------------------------------------------------------- registry */

void queue_app_clear(struct queue_app *a)
{
	if (!a)
		return;
	free(a->name);
	free(a->repo);
	free(a->branch);
	if (a->webhook_secret)
		explicit_bzero(a->webhook_secret, strlen(a->webhook_secret));
	free(a->webhook_secret);
	memset(a, 0, sizeof(*a));
}

void queue_apps_free(struct queue_app *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		queue_app_clear(&v[i]);
	free(v);
}

struct app_rows {
	struct queue_app *v;
	size_t n;
};

static int row_app(void *data, int ncols, const char *const *v)
{
	struct app_rows *a = data;
	if (ncols < 5)
		return -EIO;
	a->v = xrealloc(a->v, (a->n + 1) * sizeof(*a->v));
	a->v[a->n++] = (struct queue_app){
		.name = queue_col_str(v[0]), .repo = queue_col_str(v[1]), .branch = queue_col_str(v[2]),
		.created = queue_col_int(v[3]), .webhook_secret = queue_col_str(v[4]),
	};
	return 0;
}

int queue_app_add(struct queue *q, const char *name, const char *repo, const char *branch,
		  bool replace, struct err *e)
{
	if (!name || !app_name_ok(name))
		return err_set(e, -EINVAL, "invalid app name '%s'", name ? name : "");
	if (!repo || !*repo)
		return err_set(e, -EINVAL, "app '%s': a repository is required", name);
	if (branch && !*branch)
		branch = NULL;
	char secret[65];
	int r = queue_random_hex(secret);
	if (r < 0)
		return err_set(e, r, "cannot make a webhook secret: %s", strerror(-r));
	struct qv p[] = { QV_S(name), QV_S(repo), QV_S(branch), QV_I(queue_now(q)), QV_T(secret) };
	r = queue_sql_exec(q, "INSERT INTO apps (name, repo, branch, created, webhook_secret)"
			   " VALUES ($1, $2, $3, $4, $5)", p, 5, e);
	if (r == -EEXIST && replace) {
		err_clear(e);
		/* an app registered before webhooks gets its first secret */
		struct qv u[] = { p[0], p[1], p[2], p[4] };
		r = queue_sql_exec(q, "UPDATE apps SET repo = $2, branch = $3,"
				   " webhook_secret = COALESCE(webhook_secret, $4) WHERE name = $1",
				   u, 4, e);
	} else if (r == -EEXIST) {
		err_clear(e);
		return err_set(e, -EEXIST, "app '%s' is registered already", name);
	}
	explicit_bzero(secret, sizeof(secret));
	return r < 0 ? r : 0;
}

int queue_app_new_secret(struct queue *q, const char *name, struct err *e)
{
	char secret[65];
	int r = queue_random_hex(secret);
	if (r < 0)
		return err_set(e, r, "cannot make a webhook secret: %s", strerror(-r));
	struct qv p[] = { QV_S(name), QV_T(secret) };
	r = queue_sql_exec(q, "UPDATE apps SET webhook_secret = $2 WHERE name = $1", p, 2, e);
	explicit_bzero(secret, sizeof(secret));
	if (r == 0)
		return err_set(e, -ENOENT, "app '%s' is not registered", name);
	return r < 0 ? r : 0;
}

int queue_app_get(struct queue *q, const char *name, struct queue_app *ret, struct err *e)
{
	struct app_rows a = { 0 };
	struct qv p[] = { QV_S(name) };
	int r = queue_sql_rows(q, "SELECT " APP_COLS " FROM apps WHERE name = $1", p, 1, row_app, &a, e);
	if (r >= 0 && a.n == 0)
		r = err_set(e, -ENOENT, "app '%s' is not registered", name);
	if (r < 0) {
		queue_apps_free(a.v, a.n);
		return r;
	}
	*ret = a.v[0];
	free(a.v);
	return 0;
}

int queue_app_list(struct queue *q, struct queue_app **ret, size_t *ret_n, struct err *e)
{
	struct app_rows a = { 0 };
	int r = queue_sql_rows(q, "SELECT " APP_COLS " FROM apps ORDER BY name", NULL, 0, row_app, &a, e);
	if (r < 0) {
		queue_apps_free(a.v, a.n);
		return r;
	}
	*ret = a.v;
	*ret_n = a.n;
	return 0;
}

struct build_ids {
	struct strv v;
};

static int row_id(void *data, int ncols, const char *const *v)
{
	struct build_ids *ids = data;
	if (ncols > 0 && v[0])
		strv_push(&ids->v, v[0]);
	return 0;
}

static int app_remove_tx(struct queue *q, void *data, struct err *e)
{
	const char *name = data;
	struct qv p[] = { QV_S(name), QV_I(queue_now(q)) };
	_cleanup_free_ char *found = NULL;
	_cleanup_free_ char *sql = xasprintf("SELECT name FROM apps WHERE name = $1%s",
					     q->ops->for_update);
	int r = queue_sql_rows(q, sql, p, 1, queue_row_str, &found, e);
	if (r < 0)
		return r;
	if (!found)
		return err_set(e, -ENOENT, "app '%s' is not registered", name);
	int64_t running = -1;
	r = queue_sql_rows(q, "SELECT count(*) FROM builds WHERE app = $1 AND state = 'running'", p, 1,
		   queue_row_int, &running, e);
	if (r < 0)
		return r;
	if (running > 0)
		return err_set(e, -EBUSY, "app '%s' has a running build: cancel it first", name);
	struct build_ids ids = { STRV_INIT };
	if (q->notify_urls.n)
		r = queue_sql_rows(q, "SELECT id FROM builds WHERE app = $1 AND state = 'queued'", p, 1,
				   row_id, &ids, e);
	if (r >= 0)
		r = queue_sql_exec(q, "UPDATE builds SET state = 'cancelled', finished_at = $2,"
			   " error = 'app removed' WHERE app = $1 AND state = 'queued'", p, 2, e);
	for (size_t i = 0; r >= 0 && i < ids.v.n; i++)
		r = queue_outbox_build_event(q, ids.v.v[i], e);
	strv_free(&ids.v);
	if (r >= 0)
		r = queue_sql_exec(q, "DELETE FROM apps WHERE name = $1", p, 1, e);
	return r < 0 ? r : 0;
}

int queue_app_remove(struct queue *q, const char *name, struct err *e)
{
	return queue_sql_tx(q, app_remove_tx, (void *)name, e);
}

int app_registry_lookup(const struct config *c, const char *name, struct buf *ret_url,
			struct buf *ret_branch, struct err *e)
{
	struct queue *q = NULL;
	int r = queue_open(&q, c, e);
	if (r < 0)
		return r;
	struct queue_app a = { 0 };
	r = queue_app_get(q, name, &a, e);
	queue_close(q);
	if (r < 0)
		return r;
	buf_reset(ret_url);
	buf_reset(ret_branch);
	r = buf_adds(ret_url, a.repo);
	if (r >= 0 && a.branch)
		r = buf_adds(ret_branch, a.branch);
	queue_app_clear(&a);
	return r < 0 ? err_set(e, r, "app '%s': repository url too long", name) : 0;
}
