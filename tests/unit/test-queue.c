/*
 * tests/unit/test-queue.c - the queue's generic layer against real
 * backends: SQLite in a temp file always, PostgreSQL when
 * UPAAS_TEST_PG_URL names a server (tests/pg.sh start prints one; the
 * tests drop and recreate the queue's tables there). The clock is fixed so
 * leases expire on demand.
 */
#define UPAAS_QUEUE_INTERNAL 1
#include <errno.h>
#include <string.h>
#include <sys/wait.h>

#include "tests/unit/unit.h"
#include "queue/queue-int.h"

struct backend {
	const char *name;
	char *url;
	char *dir;
};

static struct backend sqlite_be = { "sqlite", NULL, NULL };
static struct backend pg_be = { "postgresql", NULL, NULL };

struct t {
	struct backend *be;
	struct queue *q;
	int64_t now;
};

static int64_t fake_clock(void *data)
{
	return ((struct t *)data)->now;
}

static void drop_tables(struct queue *q)
{
	struct err e = ERR_INIT;
	q->ops->query(q, "DROP TABLE IF EXISTS builds", NULL, 0, NULL, NULL, &e);
	q->ops->query(q, "DROP TABLE IF EXISTS tokens", NULL, 0, NULL, NULL, &e);
	q->ops->query(q, "DROP TABLE IF EXISTS hook_deliveries", NULL, 0, NULL, NULL, &e);
	q->ops->query(q, "DROP TABLE IF EXISTS notify_outbox", NULL, 0, NULL, NULL, &e);
	q->ops->query(q, "DROP TABLE IF EXISTS apps", NULL, 0, NULL, NULL, &e);
	q->ops->query(q, "DROP TABLE IF EXISTS schema_version", NULL, 0, NULL, NULL, &e);
	err_free(&e);
}

static int setup(void **state)
{
	struct backend *be = *state;
	if (!be->url) {
		*state = NULL;   /* the test skips itself */
		return 0;
	}
	struct t *t = xcalloc(1, sizeof(*t));
	struct err e = ERR_INIT;
	t->be = be;
	t->now = 1700000000000;
	if (be == &pg_be) {
		/* A clean schema: open once, drop, reopen to migrate. */
		struct queue *q = NULL;
		if (queue_open_url(&q, be->url, 10, &e) == 0) {
			drop_tables(q);
			queue_close(q);
		}
		err_clear(&e);
	} else {
		const char *path = be->url + strlen("sqlite://");
		_cleanup_free_ char *wal = xasprintf("%s-wal", path);
		_cleanup_free_ char *shm = xasprintf("%s-shm", path);
		unlink(path);
		unlink(wal);
		unlink(shm);
	}
	int r = queue_open_url(&t->q, be->url, 10, &e);
	if (r < 0)
		fprintf(stderr, "# open %s: %s\n", be->url, err_msg(&e));
	err_free(&e);
	if (r < 0) {
		free(t);
		return -1;
	}
	queue_set_clock(t->q, fake_clock, t);
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct t *t = *state;
	if (t && t->q) {
		queue_close(t->q);
		free(t);
	}
	return 0;
}

#define T_BEGIN                                                         \
	struct t *t = *state;                                           \
	if (!t || !t->q)                                                \
		skip();                                                 \
	struct queue *q = t->q;                                         \
	struct err e = ERR_INIT;                                        \
	(void)q

#define OK(expr) do { int _r = (expr); \
	if (_r < 0) fail_msg("%s: %d %s", #expr, _r, err_msg(&e)); } while (0)

static void add_app(struct queue *q, const char *name)
{
	struct err e = ERR_INIT;
	_cleanup_free_ char *repo = xasprintf("/srv/git/%s.git", name);
	OK(queue_app_add(q, name, repo, NULL, false, &e));
	err_free(&e);
}

static char *enqueue(struct queue *q, const char *app, const char *ref, bool fresh,
		     bool *coalesced)
{
	struct err e = ERR_INIT;
	char *id = NULL;
	bool c = false;
	OK(queue_add(q, app, ref, fresh, &id, &c, &e));
	if (coalesced)
		*coalesced = c;
	err_free(&e);
	return id;
}

/* --------------------------------------------------------------- tests */

static void test_open_url(void **state)
{
	T_BEGIN;
	struct queue *q2 = NULL;
	assert_int_equal(queue_open_url(&q2, "mysql://x", 0, &e), -EPROTONOSUPPORT);
	err_clear(&e);
	assert_int_equal(queue_open_url(&q2, "sqlite://relative.db", 0, &e), -EINVAL);
	err_clear(&e);
	assert_int_equal(queue_open_url(&q2, "", 0, &e), -EINVAL);
	err_clear(&e);
	assert_string_equal(queue_backend(q), t->be->name);
	assert_int_equal(queue_schema_version(q, &e), 8);
	/* Reopening an up-to-date schema changes nothing. */
	OK(queue_open_url(&q2, t->be->url, 0, &e));
	assert_int_equal(queue_schema_version(q2, &e), 8);
	assert_int_equal(queue_lease_seconds(q2), 60);
	queue_close(q2);
	err_free(&e);
}

static void test_apps(void **state)
{
	T_BEGIN;
	OK(queue_app_add(q, "web", "https://git.example/web.git", "main", false, &e));
	assert_int_equal(queue_app_add(q, "web", "x", NULL, false, &e), -EEXIST);
	err_clear(&e);
	assert_int_equal(queue_app_add(q, "Bad/Name", "x", NULL, false, &e), -EINVAL);
	err_clear(&e);
	assert_int_equal(queue_app_add(q, "norepo", "", NULL, false, &e), -EINVAL);
	err_clear(&e);
	OK(queue_app_add(q, "api", "/srv/api", "", false, &e));

	struct queue_app a = { 0 };
	OK(queue_app_get(q, "web", &a, &e));
	assert_string_equal(a.repo, "https://git.example/web.git");
	assert_string_equal(a.branch, "main");
	assert_int_equal(a.created, t->now);
	queue_app_clear(&a);
	OK(queue_app_add(q, "web", "https://git.example/web2.git", NULL, true, &e));
	OK(queue_app_get(q, "web", &a, &e));
	assert_string_equal(a.repo, "https://git.example/web2.git");
	assert_null(a.branch);
	queue_app_clear(&a);
	assert_int_equal(queue_app_get(q, "nope", &a, &e), -ENOENT);
	err_clear(&e);

	struct queue_app *v = NULL;
	size_t n = 0;
	OK(queue_app_list(q, &v, &n, &e));
	assert_int_equal(n, 2);
	assert_string_equal(v[0].name, "api");
	assert_string_equal(v[1].name, "web");
	assert_null(v[0].branch);
	queue_apps_free(v, n);

	/* rm cancels queued builds, refuses while one runs */
	_cleanup_free_ char *id = enqueue(q, "api", NULL, false, NULL);
	struct queue_build b = { 0 };
	assert_int_equal(queue_claim(q, "w1:1", &b, &e), 1);
	assert_string_equal(b.id, id);
	_cleanup_free_ char *id2 = enqueue(q, "api", NULL, false, NULL);
	assert_int_equal(queue_app_remove(q, "api", &e), -EBUSY);
	err_clear(&e);
	OK(queue_finish(q, &b, BUILD_SUCCEEDED, "pkg1", NULL, &e));
	queue_build_clear(&b);
	OK(queue_app_remove(q, "api", &e));
	OK(queue_get(q, id2, &b, &e));
	assert_int_equal(b.state, BUILD_CANCELLED);
	queue_build_clear(&b);
	assert_int_equal(queue_app_remove(q, "api", &e), -ENOENT);
	err_clear(&e);
	assert_int_equal(queue_app_get(q, "api", &a, &e), -ENOENT);
	err_free(&e);
}

static void test_coalesce(void **state)
{
	T_BEGIN;
	add_app(q, "web");
	add_app(q, "api");
	char *id = NULL;
	assert_int_equal(queue_add(q, "ghost", NULL, false, &id, NULL, &e), -ENOENT);
	err_clear(&e);

	bool c = true;
	_cleanup_free_ char *a = enqueue(q, "web", NULL, false, &c);
	assert_false(c);
	t->now += 5;
	_cleanup_free_ char *b = enqueue(q, "web", NULL, false, &c);
	assert_true(c);
	assert_string_equal(a, b);
	_cleanup_free_ char *d = enqueue(q, "web", "", false, &c);   /* "" = default */
	assert_true(c);
	assert_string_equal(a, d);

	struct queue_build got = { 0 };
	OK(queue_get(q, a, &got, &e));
	assert_false(got.fresh);
	assert_null(got.ref);
	assert_int_equal(got.state, BUILD_QUEUED);
	assert_int_equal(got.queued_at, t->now - 5);
	queue_build_clear(&got);

	/* --fresh upgrades the queued build */
	_cleanup_free_ char *f = enqueue(q, "web", NULL, true, &c);
	assert_true(c);
	assert_string_equal(a, f);
	OK(queue_get(q, a, &got, &e));
	assert_true(got.fresh);
	queue_build_clear(&got);

	/* another ref, another app: new builds */
	_cleanup_free_ char *r1 = enqueue(q, "web", "v2", false, &c);
	assert_false(c);
	assert_string_not_equal(r1, a);
	_cleanup_free_ char *r2 = enqueue(q, "web", "v2", false, &c);
	assert_true(c);
	assert_string_equal(r1, r2);
	_cleanup_free_ char *o = enqueue(q, "api", NULL, false, &c);
	assert_false(c);

	/* once running, a request queues a new build */
	OK(queue_claim(q, "w1:1", &got, &e));
	assert_string_equal(got.id, a);
	_cleanup_free_ char *n = enqueue(q, "web", NULL, false, &c);
	assert_false(c);
	assert_string_not_equal(n, a);
	queue_build_clear(&got);

	struct queue_build *v = NULL;
	size_t cnt = 0;
	struct queue_filter fl = { .app = "web", .state = -1 };
	OK(queue_list(q, &fl, &v, &cnt, &e));
	assert_int_equal(cnt, 3);
	queue_builds_free(v, cnt);
	fl = (struct queue_filter){ .app = NULL, .state = BUILD_QUEUED, .limit = 2 };
	OK(queue_list(q, &fl, &v, &cnt, &e));
	assert_int_equal(cnt, 2);
	for (size_t i = 0; i < cnt; i++)
		assert_int_equal(v[i].state, BUILD_QUEUED);
	queue_builds_free(v, cnt);
	err_free(&e);
}

static void test_claim_rules(void **state)
{
	T_BEGIN;
	add_app(q, "a");
	add_app(q, "b");
	_cleanup_free_ char *a1 = enqueue(q, "a", NULL, false, NULL);
	t->now += 1;
	_cleanup_free_ char *a2 = enqueue(q, "a", "other", false, NULL);
	t->now += 1;
	_cleanup_free_ char *b1 = enqueue(q, "b", NULL, false, NULL);

	struct queue_build x = { 0 }, y = { 0 }, z = { 0 };
	assert_int_equal(queue_has_work(q, &e), 1);
	assert_int_equal(queue_claim(q, "w1:1", &x, &e), 1);
	assert_string_equal(x.id, a1);            /* oldest first */
	assert_int_equal(x.state, BUILD_RUNNING);
	assert_int_equal(x.attempts, 1);
	assert_int_equal(x.started_at, t->now);
	assert_int_equal(x.lease_until, t->now + 10000);
	assert_string_equal(x.worker, "w1:1");
	/* a2 waits for a1: same app */
	assert_int_equal(queue_claim(q, "w2:2", &y, &e), 1);
	assert_string_equal(y.id, b1);
	assert_int_equal(queue_claim(q, "w3:3", &z, &e), 0);
	assert_int_equal(queue_has_work(q, &e), 0);   /* a2 waits for a1 */

	OK(queue_renew(q, &x, &e));
	t->now += 1000;
	OK(queue_finish(q, &x, BUILD_FAILED, NULL, "step main: exit 1", &e));
	assert_int_equal(queue_finish(q, &x, BUILD_SUCCEEDED, "p", NULL, &e), -ESTALE);
	err_clear(&e);
	assert_int_equal(queue_renew(q, &x, &e), -ESTALE);
	err_clear(&e);

	assert_int_equal(queue_claim(q, "w3:3", &z, &e), 1);
	assert_string_equal(z.id, a2);
	assert_string_equal(z.ref, "other");
	assert_int_equal(queue_has_work(q, &e), 0);

	/* requeue on stop: the attempt does not count */
	OK(queue_finish(q, &z, BUILD_QUEUED, NULL, "worker stopped", &e));
	queue_build_clear(&z);
	OK(queue_get(q, a2, &z, &e));
	assert_int_equal(z.state, BUILD_QUEUED);
	assert_int_equal(z.attempts, 0);
	queue_build_clear(&z);

	struct queue_build got = { 0 };
	OK(queue_get(q, a1, &got, &e));
	assert_int_equal(got.state, BUILD_FAILED);
	assert_string_equal(got.error, "step main: exit 1");
	assert_int_equal(got.finished_at, t->now);
	queue_build_clear(&got);
	queue_build_clear(&x);
	queue_build_clear(&y);
	err_free(&e);
}

static void test_lease_expiry(void **state)
{
	T_BEGIN;
	add_app(q, "a");
	_cleanup_free_ char *id = enqueue(q, "a", NULL, false, NULL);
	struct queue_build x = { 0 }, y = { 0 };
	assert_int_equal(queue_claim(q, "dead:1", &x, &e), 1);
	t->now += 9999;
	assert_int_equal(queue_claim(q, "w2:2", &y, &e), 0);   /* lease still live */
	assert_int_equal(queue_has_work(q, &e), 0);
	t->now += 2;
	assert_int_equal(queue_has_work(q, &e), 1);
	assert_int_equal(queue_claim(q, "w2:2", &y, &e), 1);   /* requeued and taken */
	assert_string_equal(y.id, id);
	assert_int_equal(y.attempts, 2);
	assert_string_equal(y.worker, "w2:2");
	/* The dead worker cannot renew or finish it any more. */
	assert_int_equal(queue_renew(q, &x, &e), -ESTALE);
	err_clear(&e);
	assert_int_equal(queue_cancel_pending(q, &x, &e), -ESTALE);
	err_clear(&e);
	assert_int_equal(queue_finish(q, &x, BUILD_SUCCEEDED, "p", NULL, &e), -ESTALE);
	err_clear(&e);
	assert_int_equal(queue_cancel_pending(q, &y, &e), 0);
	OK(queue_finish(q, &y, BUILD_SUCCEEDED, "pkg-1", NULL, &e));
	queue_build_clear(&y);
	OK(queue_get(q, id, &y, &e));
	assert_int_equal(y.state, BUILD_SUCCEEDED);
	assert_string_equal(y.package_id, "pkg-1");
	assert_null(y.error);
	queue_build_clear(&y);
	queue_build_clear(&x);

	/* After QUEUE_MAX_ATTEMPTS lost leases the build fails. */
	_cleanup_free_ char *id2 = enqueue(q, "a", NULL, false, NULL);
	for (int i = 0; i < QUEUE_MAX_ATTEMPTS; i++) {
		assert_int_equal(queue_claim(q, "dying:1", &x, &e), 1);
		assert_string_equal(x.id, id2);
		assert_int_equal(x.attempts, i + 1);
		queue_build_clear(&x);
		t->now += 20000;
	}
	assert_int_equal(queue_claim(q, "w:1", &x, &e), 0);
	OK(queue_get(q, id2, &x, &e));
	assert_int_equal(x.state, BUILD_FAILED);
	assert_non_null(strstr(x.error, "lost 3 times"));
	queue_build_clear(&x);

	/* A lost build whose cancel was requested ends cancelled. */
	_cleanup_free_ char *id3 = enqueue(q, "a", NULL, false, NULL);
	assert_int_equal(queue_claim(q, "dying:1", &x, &e), 1);
	assert_int_equal(queue_cancel(q, id3, &e), 1);
	t->now += 20000;
	assert_int_equal(queue_expire(q, &e), 1);
	queue_build_clear(&x);
	OK(queue_get(q, id3, &x, &e));
	assert_int_equal(x.state, BUILD_CANCELLED);
	queue_build_clear(&x);
	err_free(&e);
}

static void test_cancel_retry(void **state)
{
	T_BEGIN;
	add_app(q, "a");
	add_app(q, "b");
	_cleanup_free_ char *qa = enqueue(q, "a", NULL, true, NULL);
	_cleanup_free_ char *qb = enqueue(q, "b", "v1", false, NULL);
	assert_int_equal(queue_cancel(q, qa, &e), 0);           /* queued: at once */
	struct queue_build x = { 0 };
	OK(queue_get(q, qa, &x, &e));
	assert_int_equal(x.state, BUILD_CANCELLED);
	queue_build_clear(&x);
	assert_int_equal(queue_cancel(q, qa, &e), -EINVAL);
	err_clear(&e);
	assert_int_equal(queue_cancel(q, "nope", &e), -ENOENT);
	err_clear(&e);

	assert_int_equal(queue_claim(q, "w:1", &x, &e), 1);
	assert_string_equal(x.id, qb);
	assert_int_equal(queue_cancel_pending(q, &x, &e), 0);
	assert_int_equal(queue_cancel(q, qb, &e), 1);           /* running: requested */
	assert_int_equal(queue_cancel_pending(q, &x, &e), 1);
	char *retry = NULL;
	assert_int_equal(queue_retry(q, qb, &retry, &e), -EINVAL);   /* still running */
	err_clear(&e);
	OK(queue_finish(q, &x, BUILD_CANCELLED, NULL, "cancelled on request", &e));
	queue_build_clear(&x);

	OK(queue_retry(q, qb, &retry, &e));
	assert_string_not_equal(retry, qb);
	OK(queue_get(q, retry, &x, &e));
	assert_string_equal(x.app, "b");
	assert_string_equal(x.ref, "v1");
	assert_false(x.fresh);
	assert_int_equal(x.state, BUILD_QUEUED);
	queue_build_clear(&x);
	char *again = NULL;
	OK(queue_retry(q, qa, &again, &e));                      /* keeps fresh */
	OK(queue_get(q, again, &x, &e));
	assert_true(x.fresh);
	queue_build_clear(&x);
	free(again);
	free(retry);
	err_free(&e);
}

/*
 * Several processes claim concurrently from their own connections: every
 * build is claimed exactly once, and one app's builds never overlap.
 */
#define RACE_PROCS 4
#define RACE_APPS 6
#define RACE_BUILDS 3

static void test_concurrent_claims(void **state)
{
	T_BEGIN;
	char name[16];
	for (int a = 0; a < RACE_APPS; a++) {
		snprintf(name, sizeof(name), "app%d", a);
		add_app(q, name);
		for (int i = 0; i < RACE_BUILDS; i++) {
			_cleanup_free_ char *ref = xasprintf("r%d", i);
			free(enqueue(q, name, ref, false, NULL));
		}
	}
	fflush(NULL);
	pid_t pids[RACE_PROCS];
	for (int p = 0; p < RACE_PROCS; p++) {
		pids[p] = fork();
		assert_true(pids[p] >= 0);
		if (pids[p] > 0)
			continue;
		/* The child: its own connection and the real clock. */
		struct queue *cq = NULL;
		struct err ce = ERR_INIT;
		if (queue_open_url(&cq, t->be->url, 30, &ce) < 0)
			_exit(10);
		_cleanup_free_ char *me = xasprintf("w:%d", p);
		int idle = 0;
		while (idle < 200) {
			struct queue_build b = { 0 };
			int r = queue_claim(cq, me, &b, &ce);
			if (r < 0)
				_exit(11);
			if (r == 0) {
				if (queue_has_work(cq, &ce) == 0)
					break;
				idle++;
				usleep(2000);
				continue;
			}
			usleep(3000);   /* "building" */
			if (queue_finish(cq, &b, BUILD_SUCCEEDED, me, NULL, &ce) < 0)
				_exit(12);
			queue_build_clear(&b);
		}
		queue_close(cq);
		_exit(0);
	}
	for (int p = 0; p < RACE_PROCS; p++) {
		int st;
		assert_int_equal(waitpid(pids[p], &st, 0), pids[p]);
		assert_true(WIFEXITED(st));
		assert_int_equal(WEXITSTATUS(st), 0);
	}
	struct queue_build *v = NULL;
	size_t n = 0;
	struct queue_filter f = QUEUE_FILTER_INIT;
	OK(queue_list(q, &f, &v, &n, &e));
	assert_int_equal(n, RACE_APPS * RACE_BUILDS);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(v[i].state, BUILD_SUCCEEDED);
		assert_int_equal(v[i].attempts, 1);   /* exactly once */
		for (size_t j = 0; j < n; j++) {
			if (i == j || strcmp(v[i].app, v[j].app))
				continue;
			/* no overlap: one ends before the other starts */
			bool apart = v[i].finished_at <= v[j].started_at ||
				     v[j].finished_at <= v[i].started_at;
			if (!apart)
				fail_msg("%s and %s of %s overlap", v[i].id, v[j].id, v[i].app);
		}
	}
	queue_builds_free(v, n);
	err_free(&e);
}

/*
 * Named locks: a second connection (another process) waits until the
 * first releases the lock, or until the first goes away; a bad name and an
 * unlock of nothing.
 */
static void test_named_lock(void **state)
{
	T_BEGIN;
	/* the child is forked before the lock is taken: a lock file's
	 * descriptor inherited through fork() would be the parent's lock */
	int p[2], go[2];
	assert_int_equal(pipe(p), 0);
	assert_int_equal(pipe(go), 0);
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct queue *cq = NULL;
		struct err ce = ERR_INIT;
		char c;
		close(go[1]);
		if (read(go[0], &c, 1) != 1)
			_exit(9);
		if (queue_open_url(&cq, t->be->url, 30, &ce) < 0)
			_exit(10);
		uint64_t t0 = now_ms();
		if (queue_lock(cq, "index", &ce) < 0)
			_exit(11);
		uint64_t waited = now_ms() - t0;
		if (write(p[1], &waited, sizeof(waited)) != sizeof(waited))
			_exit(12);
		queue_unlock(cq, "index", &ce);
		queue_close(cq);
		_exit(0);
	}
	close(p[1]);
	close(go[0]);
	OK(queue_lock(q, "index", &e));
	assert_int_equal(write(go[1], "g", 1), 1);
	close(go[1]);
	usleep(400 * 1000);
	OK(queue_unlock(q, "index", &e));
	uint64_t waited = 0;
	assert_int_equal(read(p[0], &waited, sizeof(waited)), sizeof(waited));
	close(p[0]);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	if (waited < 250)
		fail_msg("the second holder waited %llu ms, not until the first released it",
			 (unsigned long long)waited);
	/* a process that dies with the lock releases it */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct queue *cq = NULL;
		struct err ce = ERR_INIT;
		if (queue_open_url(&cq, t->be->url, 30, &ce) < 0 || queue_lock(cq, "index", &ce) < 0)
			_exit(10);
		_exit(0);   /* no unlock, no close */
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_int_equal(WEXITSTATUS(st), 0);
	OK(queue_lock(q, "index", &e));
	OK(queue_unlock(q, "index", &e));
	assert_int_equal(queue_lock(q, "Bad Name", &e), -EINVAL);
	err_free(&e);
}

static void test_secrets_tokens(void **state)
{
	T_BEGIN;
	/* every app gets its own secret; --replace keeps it, rotating changes it */
	OK(queue_app_add(q, "web", "/srv/web", NULL, false, &e));
	OK(queue_app_add(q, "api", "/srv/api", NULL, false, &e));
	struct queue_app a = { 0 }, b = { 0 };
	OK(queue_app_get(q, "web", &a, &e));
	OK(queue_app_get(q, "api", &b, &e));
	assert_non_null(a.webhook_secret);
	assert_int_equal(strlen(a.webhook_secret), 64);
	assert_string_not_equal(a.webhook_secret, b.webhook_secret);
	_cleanup_free_ char *first = xstrdup(a.webhook_secret);
	queue_app_clear(&a);
	OK(queue_app_add(q, "web", "/srv/web2", NULL, true, &e));
	OK(queue_app_get(q, "web", &a, &e));
	assert_string_equal(a.webhook_secret, first);
	queue_app_clear(&a);
	OK(queue_app_new_secret(q, "web", &e));
	OK(queue_app_get(q, "web", &a, &e));
	assert_string_not_equal(a.webhook_secret, first);
	queue_app_clear(&a);
	queue_app_clear(&b);
	assert_int_equal(queue_app_new_secret(q, "nope", &e), -ENOENT);
	err_clear(&e);

	/* tokens: shown once, stored hashed, verified, scoped, revoked */
	char *tok = NULL, *tok2 = NULL;
	OK(queue_token_add(q, "ci", TOKEN_BUILD, &tok, &e));
	assert_true(!strncmp(tok, "upaas_", 6) && strlen(tok) == 70);
	assert_int_equal(queue_token_add(q, "ci", TOKEN_READ, &tok2, &e), -EEXIST);
	err_clear(&e);
	assert_int_equal(queue_token_add(q, "Bad Name", TOKEN_READ, &tok2, &e), -EINVAL);
	err_clear(&e);
	OK(queue_token_add(q, "viewer", TOKEN_READ, &tok2, &e));
	struct queue_token tk = { 0 };
	OK(queue_token_verify(q, tok, &tk, &e));
	assert_string_equal(tk.name, "ci");
	assert_int_equal(tk.scope, TOKEN_BUILD);
	assert_int_equal(tk.last_used, t->now);
	queue_token_clear(&tk);
	OK(queue_token_verify(q, tok2, &tk, &e));
	assert_int_equal(tk.scope, TOKEN_READ);
	queue_token_clear(&tk);
	tok[10] ^= 1;
	assert_int_equal(queue_token_verify(q, tok, &tk, &e), -EACCES);
	err_clear(&e);
	tok[10] ^= 1;
	int64_t n = -1;
	assert_int_equal(queue_sql_rows(q, "SELECT count(*) FROM tokens WHERE hash LIKE 'upaas_%'",
					NULL, 0, queue_row_int, &n, &e), 0);
	assert_int_equal(n, 0);   /* never the token itself */
	struct queue_token *v = NULL;
	size_t nv = 0;
	OK(queue_token_list(q, &v, &nv, &e));
	assert_int_equal(nv, 2);
	assert_string_equal(v[0].name, "ci");
	queue_tokens_free(v, nv);
	OK(queue_token_remove(q, "ci", &e));
	assert_int_equal(queue_token_remove(q, "ci", &e), -ENOENT);
	err_clear(&e);
	assert_int_equal(queue_token_verify(q, tok, &tk, &e), -EACCES);
	err_clear(&e);
	free(tok);
	free(tok2);
	err_free(&e);
}

static void test_deliveries_outbox(void **state)
{
	T_BEGIN;
	OK(queue_app_add(q, "web", "/srv/web", NULL, false, &e));
	/* a delivery and its build in one transaction; a replay is refused
	 * and queues nothing */
	char *id = NULL;
	OK(queue_add_delivery(q, "github:d1", "web", "abc123", false, &id, NULL, &e));
	assert_int_equal(queue_add_delivery(q, "github:d1", "web", "def456", false, NULL, NULL, &e),
			 -EEXIST);
	err_clear(&e);
	struct queue_build *v = NULL;
	size_t n = 0;
	struct queue_filter f = QUEUE_FILTER_INIT;
	OK(queue_list(q, &f, &v, &n, &e));
	assert_int_equal(n, 1);
	assert_string_equal(v[0].ref, "abc123");
	queue_builds_free(v, n);
	/* an unknown app: the delivery is not recorded either */
	assert_int_equal(queue_add_delivery(q, "github:d2", "nope", NULL, false, NULL, NULL, &e),
			 -ENOENT);
	err_clear(&e);
	OK(queue_delivery_record(q, "github:d2", &e));
	assert_int_equal(queue_delivery_record(q, "github:d2", &e), -EEXIST);
	err_clear(&e);
	/* forgotten after a week */
	t->now += QUEUE_DELIVERY_KEEP_MS + 1000;
	OK(queue_delivery_record(q, "github:d3", &e));
	OK(queue_delivery_record(q, "github:d1", &e));

	/* no URLs: no events; with two URLs, two events per build end */
	struct queue_build b = { 0 };
	assert_int_equal(queue_claim(q, "w:1", &b, &e), 1);
	OK(queue_finish(q, &b, BUILD_FAILED, NULL, "boom", &e));
	queue_build_clear(&b);
	assert_int_equal(queue_outbox_count(q, &e), 0);
	struct strv urls = STRV_INIT;
	strv_push(&urls, "http://127.0.0.1:1/a");
	strv_push(&urls, "http://127.0.0.1:1/b");
	queue_set_notify(q, &urls);
	strv_free(&urls);
	_cleanup_free_ char *id2 = enqueue(q, "web", NULL, false, NULL);
	assert_int_equal(queue_claim(q, "w:1", &b, &e), 1);
	OK(queue_finish(q, &b, BUILD_SUCCEEDED, "pkg", NULL, &e));
	queue_build_clear(&b);
	t->now += 1;
	_cleanup_free_ char *id3 = enqueue(q, "web", NULL, false, NULL);
	OK(queue_cancel(q, id3, &e));
	assert_int_equal(queue_outbox_count(q, &e), 4);

	struct queue_event *ev = NULL;
	size_t nev = 0;
	OK(queue_outbox_claim(q, 10, 60000, &ev, &nev, &e));
	assert_int_equal(nev, 4);
	assert_string_equal(ev[0].kind, "build.succeeded");
	assert_non_null(strstr(ev[0].body, id2));
	assert_string_equal(ev[3].kind, "build.cancelled");
	/* claimed events are held */
	struct queue_event *ev2 = NULL;
	size_t nev2 = 9;
	OK(queue_outbox_claim(q, 10, 60000, &ev2, &nev2, &e));
	assert_int_equal(nev2, 0);
	queue_events_free(ev2, nev2);
	OK(queue_outbox_done(q, ev[0].id, &e));
	OK(queue_outbox_retry(q, ev[1].id, t->now + 5000, &e));
	assert_int_equal(queue_outbox_count(q, &e), 3);
	t->now += 6000;
	OK(queue_outbox_claim(q, 10, 60000, &ev2, &nev2, &e));
	assert_int_equal(nev2, 1);
	assert_string_equal(ev2[0].id, ev[1].id);
	assert_int_equal(ev2[0].attempts, 1);
	queue_events_free(ev2, nev2);
	queue_events_free(ev, nev);

	/* a build ended by a lost lease (cancel requested) is an event too */
	_cleanup_free_ char *id4 = enqueue(q, "web", "x4", false, NULL);
	assert_int_equal(queue_claim(q, "w:2", &b, &e), 1);
	assert_string_equal(b.id, id4);
	assert_int_equal(queue_cancel(q, id4, &e), 1);
	queue_build_clear(&b);
	t->now += 11000;
	assert_int_equal(queue_expire(q, &e), 1);
	assert_int_equal(queue_outbox_count(q, &e), 5);   /* 3 + one per URL */
	t->now += 600000;
	OK(queue_outbox_claim(q, 10, 60000, &ev, &nev, &e));
	assert_int_equal(nev, 5);
	assert_string_equal(ev[4].kind, "build.cancelled");
	assert_non_null(strstr(ev[4].body, id4));
	queue_events_free(ev, nev);

	/* bounded: the oldest go (each drop is logged: not here) */
	enum log_level saved = log_max_level;
	log_max_level = LOG_ERROR;
	for (int i = 0; i < QUEUE_OUTBOX_MAX; i++) {
		t->now += 1;
		OK(queue_outbox_add(q, "test", "{}", &e));
	}
	log_max_level = saved;
	assert_int_equal(queue_outbox_count(q, &e), QUEUE_OUTBOX_MAX);
	free(id);
	err_free(&e);
}

#define BOTH(f) \
	{ "sqlite: " #f, f, setup, teardown, &sqlite_be }, \
	{ "postgresql: " #f, f, setup, teardown, &pg_be }

int main(void)
{
	char tmpl[] = "/tmp/upaas-test-queue.XXXXXX";
	sqlite_be.dir = mkdtemp(tmpl);
	if (!sqlite_be.dir)
		return 1;
	sqlite_be.url = xasprintf("sqlite://%s/queue.db", sqlite_be.dir);
	const char *pg = getenv("UPAAS_TEST_PG_URL");
	if (pg && *pg)
		pg_be.url = xstrdup(pg);

	const struct CMUnitTest tests[] = {
		BOTH(test_open_url),
		BOTH(test_apps),
		BOTH(test_coalesce),
		BOTH(test_claim_rules),
		BOTH(test_lease_expiry),
		BOTH(test_cancel_retry),
		BOTH(test_concurrent_claims),
		BOTH(test_named_lock),
		BOTH(test_secrets_tokens),
		BOTH(test_deliveries_outbox),
	};
	/* Without a server the PostgreSQL half is left out rather than
	 * skipped: cmocka reports a skip as "not ok", which TAP counts as a
	 * failure. */
	struct CMUnitTest run[ARRAY_SIZE(tests)];
	size_t n = 0;
	for (size_t i = 0; i < ARRAY_SIZE(tests); i++)
		if (tests[i].initial_state != &pg_be || pg_be.url)
			run[n++] = tests[i];
	if (!pg_be.url)
		printf("# postgresql: not tested (set UPAAS_TEST_PG_URL, see tests/pg.sh)\n");
	int r = _cmocka_run_group_tests("queue", run, n, NULL, NULL);
	struct err e = ERR_INIT;
	fs_rm_rf(sqlite_be.dir, &e);
	err_free(&e);
	free(sqlite_be.url);
	free(pg_be.url);
	return r;
}
