/*
 * tests/unit/test-fleet.c - host reports and the fleet view (deploy/report.c,
 * deploy/fleet.c): the report and heartbeat JSON both ways, what the strict
 * readers refuse, the report of a deploy root built by hand, the host name,
 * and the marks of the view (behind, failed, silent) with their JSON.
 */
#include "tests/unit/unit.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "deploy/deploy-int.h"
#include "package/package.h"

#define T0 1790000000   /* 2026-09-21T14:13:20Z */

static struct host_report mk_report(const char *host, const char *app, const char *cur,
				    bool failed, int64_t t)
{
	struct host_report r = { .host = xstrdup(host), .app = xstrdup(app),
				 .current = cur ? xstrdup(cur) : NULL, .revisions = STRV_INIT,
				 .operation = xstrdup(cur ? "upgrade" : "undeploy"),
				 .package = cur ? xstrdup(cur) : NULL, .failed = failed,
				 .error = failed ? xstrdup("failed at fetch") : NULL, .time = t,
				 .version = xstrdup("9.9") };
	if (cur)
		strv_push(&r.revisions, cur);
	return r;
}

/* ------------------------------------------------------------- reports */

static void test_report_roundtrip(void **state)
{
	(void)state;
	struct host_report r = mk_report("web-1", "shop", "20260101T000000Z-0001", true, T0);
	r.previous = xstrdup("20251231T000000Z-0002");
	strv_push(&r.revisions, "20251231T000000Z-0002");
	_cleanup_buf_ struct buf text = BUF_INIT;
	host_report_json(&r, &text);

	struct host_report back;
	struct err e = ERR_INIT;
	assert_int_equal(host_report_parse(text.p, &back, &e), 0);
	assert_string_equal(back.host, "web-1");
	assert_string_equal(back.app, "shop");
	assert_string_equal(back.current, "20260101T000000Z-0001");
	assert_string_equal(back.previous, "20251231T000000Z-0002");
	assert_int_equal(back.revisions.n, 2);
	assert_string_equal(back.operation, "upgrade");
	assert_true(back.failed);
	assert_string_equal(back.error, "failed at fetch");
	assert_int_equal(back.time, T0);
	assert_string_equal(back.version, "9.9");

	/* the text is stable: the same report gives the same bytes */
	_cleanup_buf_ struct buf again = BUF_INIT;
	host_report_json(&back, &again);
	assert_string_equal(text.p, again.p);

	/* fields a report leaves out are null */
	_cleanup_json_ struct json_object *o = NULL;
	struct host_report bare = mk_report("h", "a", NULL, false, T0);
	_cleanup_buf_ struct buf bt = BUF_INIT;
	host_report_json(&bare, &bt);
	assert_int_equal(json_parse_object(bt.p, &o, &e), 0);
	assert_null(json_get_str(o, "current"));
	assert_string_equal(json_get_str(o, "result"), "ok");
	assert_string_equal(json_get_str(o, "time"), "2026-09-21T14:13:20Z");
	host_report_free(&bare);
	host_report_free(&back);
	host_report_free(&r);
	err_free(&e);
}

static void test_report_refused(void **state)
{
	(void)state;
	static const struct {
		const char *json;
		const char *why;
	} bad[] = {
		{ "[]", "not a JSON object" },
		{ "{\"format\":2,\"host\":\"h\",\"app\":\"a\",\"result\":\"ok\",\"time\":\"2026-01-01T00:00:00Z\"}",
		  "'format'" },
		{ "{\"format\":1,\"host\":\"H!\",\"app\":\"a\",\"result\":\"ok\",\"time\":\"2026-01-01T00:00:00Z\"}",
		  "'host'" },
		{ "{\"format\":1,\"app\":\"a\",\"result\":\"ok\",\"time\":\"2026-01-01T00:00:00Z\"}",
		  "'host' is missing" },
		{ "{\"format\":1,\"host\":\"h\",\"app\":\"../a\",\"result\":\"ok\",\"time\":\"2026-01-01T00:00:00Z\"}",
		  "'app'" },
		{ "{\"format\":1,\"host\":\"h\",\"app\":\"a\",\"current\":\"x/../y\",\"result\":\"ok\",\"time\":\"2026-01-01T00:00:00Z\"}",
		  "'current'" },
		{ "{\"format\":1,\"host\":\"h\",\"app\":\"a\",\"current\":7,\"result\":\"ok\",\"time\":\"2026-01-01T00:00:00Z\"}",
		  "not a string" },
		{ "{\"format\":1,\"host\":\"h\",\"app\":\"a\",\"result\":\"maybe\",\"time\":\"2026-01-01T00:00:00Z\"}",
		  "'result'" },
		{ "{\"format\":1,\"host\":\"h\",\"app\":\"a\",\"result\":\"ok\",\"time\":\"yesterday\"}",
		  "'time'" },
		{ "{\"format\":1,\"host\":\"h\",\"app\":\"a\",\"result\":\"failed\",\"error\":\"a\\u001b[31mred\",\"time\":\"2026-01-01T00:00:00Z\"}",
		  "'error'" },
		{ "{\"format\":1,\"host\":\"h\",\"app\":\"a\",\"operation\":\"rm -rf\",\"result\":\"ok\",\"time\":\"2026-01-01T00:00:00Z\"}",
		  "'operation'" },
		{ "{\"format\":1,\"host\":\"h\",\"app\":\"a\",\"revisions\":[\"ok\",\"..\"],\"result\":\"ok\",\"time\":\"2026-01-01T00:00:00Z\"}",
		  "'revisions'" },
		{ "{\"format\":1,\"host\":\"h\",\"app\":\"a\",\"result\":\"ok\",\"time\":\"2026-01-01T00:00:00Z\"} x",
		  "not a JSON object" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct host_report r;
		struct err e = ERR_INIT;
		int rc = host_report_parse(bad[i].json, &r, &e);
		if (rc != -EINVAL || !strstr(err_msg(&e), bad[i].why))
			fail_msg("case %zu: rc %d, '%s', want -EINVAL and '%s'", i, rc, err_msg(&e),
				 bad[i].why);
		err_free(&e);
	}
	/* the smallest good one */
	struct host_report r;
	struct err e = ERR_INIT;
	assert_int_equal(host_report_parse("{\"format\":1,\"host\":\"h\",\"app\":\"a\",\"result\":"
					   "\"ok\",\"time\":\"2026-01-01T00:00:00Z\",\"new\":1}",
					   &r, &e), 0);
	assert_null(r.current);
	assert_false(r.failed);
	host_report_free(&r);
}

static void test_beat_roundtrip(void **state)
{
	(void)state;
	struct host_beat b = { .host = xstrdup("web-2"), .time = T0, .version = xstrdup("1.0"),
			       .interval = 60, .apps = KVLIST_INIT };
	kvlist_set(&b.apps, "shop", "20260101T000000Z-0001");
	kvlist_set(&b.apps, "blog", "");
	_cleanup_buf_ struct buf text = BUF_INIT;
	host_beat_json(&b, &text);
	struct host_beat back;
	struct err e = ERR_INIT;
	assert_int_equal(host_beat_parse(text.p, &back, &e), 0);
	assert_string_equal(back.host, "web-2");
	assert_int_equal(back.time, T0);
	assert_int_equal(back.interval, 60);
	assert_string_equal(kvlist_get(&back.apps, "shop"), "20260101T000000Z-0001");
	assert_string_equal(kvlist_get(&back.apps, "blog"), "");
	host_beat_free(&back);
	assert_int_equal(host_beat_parse("{\"format\":1,\"host\":\"h\",\"time\":\"2026-01-01T00:00:00Z\","
					 "\"apps\":{\"../x\":\"a\"}}", &back, &e), -EINVAL);
	err_free(&e);
	host_beat_free(&b);
}

/* ---------------------------------------------------- the local report */

static void write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static void test_report_local(void **state)
{
	(void)state;
	char root[] = "/tmp/test-fleet.XXXXXX";
	assert_non_null(mkdtemp(root));
	_cleanup_free_ char *a = path_join(root, "shop");
	_cleanup_free_ char *revs = path_join(a, "revisions");
	assert_int_equal(fs_mkdir_p(revs, 0755), 0);
	static const char *const ids[] = { "20260101T000000Z-0001", "20260102T000000Z-0002",
					   "20260103T000000Z-0003.failed", "x.tmp" };
	for (size_t i = 0; i < ARRAY_SIZE(ids); i++) {
		_cleanup_free_ char *d = path_join(revs, ids[i]);
		assert_int_equal(mkdir(d, 0755), 0);
	}
	_cleanup_free_ char *cur = path_join(a, "current");
	assert_int_equal(symlink("revisions/20260102T000000Z-0002", cur), 0);
	_cleanup_free_ char *hist = path_join(a, "history");
	write_file(hist, "2026-01-01T00:00:00Z install 20260101T000000Z-0001 ok -\n"
			 "2026-01-02T00:00:00Z upgrade 20260102T000000Z-0002 ok 20260101T000000Z-0001\n"
			 "2026-01-03T00:00:00Z upgrade 20260103T000000Z-0003 failed:pre-deploy "
			 "20260102T000000Z-0002\n");

	struct host_report r;
	struct err e = ERR_INIT;
	assert_int_equal(host_report_local("web-1", root, "shop", &r, &e), 0);
	assert_string_equal(r.current, "20260102T000000Z-0002");
	assert_string_equal(r.previous, "20260101T000000Z-0001");
	assert_int_equal(r.revisions.n, 2);
	assert_string_equal(r.operation, "upgrade");
	assert_string_equal(r.package, "20260103T000000Z-0003");
	assert_true(r.failed);
	assert_string_equal(r.error, "failed at pre-deploy");
	assert_string_equal(r.version, PACKAGE_VERSION);
	host_report_free(&r);

	/* an app that is not there: reported as not deployed */
	assert_int_equal(host_report_local("web-1", root, "gone", &r, &e), 0);
	assert_null(r.current);
	assert_null(r.operation);
	assert_false(r.failed);
	host_report_free(&r);
	assert_int_equal(host_report_local("web-1", root, "../x", &r, &e), -EINVAL);

	assert_int_equal(fs_rm_rf(root, &e), 0);
	err_free(&e);
}

static void test_host_name(void **state)
{
	(void)state;
	struct config c;
	struct err e = ERR_INIT;
	char *name = NULL;
	config_defaults(&c);
	free(c.deploy.host_name);
	c.deploy.host_name = xstrdup("web-7.dc1");
	assert_int_equal(deploy_host_name(&c, &name, &e), 0);
	assert_string_equal(name, "web-7.dc1");
	free(name);
	free(c.deploy.host_name);
	c.deploy.host_name = xstrdup("Web/7");
	assert_int_equal(deploy_host_name(&c, &name, &e), -EINVAL);
	assert_non_null(strstr(err_msg(&e), "deploy.host_name"));
	err_clear(&e);
	free(c.deploy.host_name);
	c.deploy.host_name = NULL;
	/* gethostname(), in lower case */
	char want[256] = "";
	assert_int_equal(gethostname(want, sizeof(want) - 1), 0);
	for (char *p = want; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	if (app_name_ok(want)) {
		assert_int_equal(deploy_host_name(&c, &name, &e), 0);
		assert_string_equal(name, want);
		free(name);
	}
	config_free(&c);
	err_free(&e);
}

/* --------------------------------------------------------------- the view */

static const struct fleet_cell *cell(const struct fleet_view *v, const char *app,
				     const char *host)
{
	for (size_t i = 0; i < v->n_apps; i++)
		if (!strcmp(v->apps[i].app, app))
			for (size_t k = 0; k < v->apps[i].n_cells; k++)
				if (!strcmp(v->apps[i].cells[k].rep.host, host))
					return &v->apps[i].cells[k];
	fail_msg("no cell %s/%s", app, host);
	return NULL;
}

static const char *state_of(const struct fleet_view *v, const char *app, const char *host)
{
	for (size_t i = 0; i < v->n_apps; i++)
		if (!strcmp(v->apps[i].app, app))
			return fleet_cell_state(v, &v->apps[i], cell(v, app, host));
	return NULL;
}

static void add(struct fleet_view *v, const char *host, const char *app, const char *cur,
		bool failed, int64_t t)
{
	struct host_report r = mk_report(host, app, cur, failed, t);
	fleet_view_add_report(v, &r);
	host_report_free(&r);   /* emptied by add: a no-op */
}

static void beat(struct fleet_view *v, const char *host, int64_t t)
{
	struct host_beat b = { .host = xstrdup(host), .time = t, .version = xstrdup("9.9"),
			       .interval = 60, .apps = KVLIST_INIT };
	fleet_view_add_beat(v, &b);
	host_beat_free(&b);
}

#define A1 "20260101T000000Z-0001"
#define A2 "20260102T000000Z-0002"

static void test_view_marks(void **state)
{
	(void)state;
	struct fleet_view v;
	const int64_t now = T0 + 10000;
	fleet_view_init(&v, now, 300);
	/* shop: web1 current, web2 behind, web3 failed (and behind), web4
	 * silent (watching, 301 s quiet); blog: web1 undeployed it, web2 runs
	 * it without a current in storage; web5 deploys by hand long ago:
	 * never silent */
	add(&v, "web2", "shop", A1, false, now - 5);
	add(&v, "web1", "shop", A2, false, now - 5);
	add(&v, "web3", "shop", A1, true, now - 5);
	add(&v, "web4", "shop", A2, false, now - 400);
	add(&v, "web5", "shop", A2, false, now - 86400);
	add(&v, "web1", "blog", NULL, false, now - 5);
	add(&v, "web2", "blog", A1, false, now - 5);
	/* news: web1 watches it but has deployed nothing yet: behind; web2
	 * undeployed it: not */
	struct host_report fresh = mk_report("web1", "news", NULL, false, now - 5);
	free(fresh.operation);
	fresh.operation = NULL;
	fleet_view_add_report(&v, &fresh);
	add(&v, "web2", "news", NULL, false, now - 5);
	fleet_view_set_current(&v, "news", A1, true);
	beat(&v, "web1", now - 30);
	beat(&v, "web2", now - 30);
	beat(&v, "web3", now - 299);
	beat(&v, "web4", now - 301);
	fleet_view_set_current(&v, "shop", A2, true);
	fleet_view_set_current(&v, "blog", NULL, true);
	fleet_view_compute(&v);

	assert_int_equal(v.n_apps, 3);
	assert_string_equal(v.apps[0].app, "blog");   /* sorted */
	assert_string_equal(state_of(&v, "news", "web1"), "behind");
	assert_string_equal(state_of(&v, "news", "web2"), "undeployed");
	assert_int_equal(v.n_hosts, 5);
	assert_string_equal(v.hosts[0].host, "web1");
	assert_string_equal(state_of(&v, "shop", "web1"), "current");
	assert_string_equal(state_of(&v, "shop", "web2"), "behind");
	assert_string_equal(state_of(&v, "shop", "web3"), "failed");
	assert_int_equal(cell(&v, "shop", "web3")->marks, FLEET_FAILED | FLEET_BEHIND);
	assert_string_equal(state_of(&v, "shop", "web4"), "silent");
	assert_int_equal(cell(&v, "shop", "web4")->marks, FLEET_SILENT);
	assert_string_equal(state_of(&v, "shop", "web5"), "current");
	assert_string_equal(state_of(&v, "blog", "web1"), "undeployed");
	assert_string_equal(state_of(&v, "blog", "web2"), "no-current");
	/* seen: the heartbeat when it is the latest word, else the report */
	assert_int_equal(cell(&v, "shop", "web1")->seen, now - 5);
	assert_int_equal(cell(&v, "shop", "web3")->seen, now - 5);
	assert_int_equal(cell(&v, "shop", "web4")->seen, now - 301);
	assert_int_equal(v.n_drift, 4);

	_cleanup_buf_ struct buf text = BUF_INIT;
	fleet_view_json(&v, &text);
	_cleanup_json_ struct json_object *o = NULL;
	struct err e = ERR_INIT;
	assert_int_equal(json_parse_object(text.p, &o, &e), 0);
	int64_t n;
	assert_true(json_get_int(o, "drift", &n));
	assert_int_equal(n, 4);
	assert_true(json_get_int(o, "silent_after", &n));
	assert_int_equal(n, 300);
	struct json_object *apps, *hosts;
	assert_true(json_object_object_get_ex(o, "apps", &apps));
	assert_true(json_object_object_get_ex(o, "hosts", &hosts));
	assert_int_equal(json_object_array_length(hosts), 5);
	struct json_object *shop = json_object_array_get_idx(apps, 2);
	assert_string_equal(json_get_str(shop, "current"), A2);
	assert_true(json_get_int(shop, "drift", &n));
	assert_int_equal(n, 3);
	struct json_object *cells;
	assert_true(json_object_object_get_ex(shop, "hosts", &cells));
	struct json_object *w3 = json_object_array_get_idx(cells, 2);
	assert_string_equal(json_get_str(w3, "host"), "web3");
	assert_string_equal(json_get_str(w3, "state"), "failed");
	assert_string_equal(json_get_str(w3, "runs"), A1);
	assert_string_equal(json_get_str(w3, "error"), "failed at fetch");
	struct json_object *marks;
	assert_true(json_object_object_get_ex(w3, "marks", &marks));
	assert_string_equal(json_object_to_json_string(marks), "[ \"behind\", \"failed\" ]");
	struct json_object *h4 = json_object_array_get_idx(hosts, 3);
	assert_string_equal(json_get_str(h4, "host"), "web4");
	assert_true(json_object_get_boolean(json_object_object_get(h4, "silent")));
	assert_true(json_get_int(h4, "seconds_since_seen", &n));
	assert_int_equal(n, 301);
	struct json_object *h5 = json_object_array_get_idx(hosts, 4);
	assert_false(json_object_get_boolean(json_object_object_get(h5, "watching")));
	fleet_view_free(&v);
	err_free(&e);
}

static void test_view_converged(void **state)
{
	(void)state;
	struct fleet_view v;
	fleet_view_init(&v, T0, 0);
	assert_int_equal(v.silent_after, FLEET_SILENT_AFTER_DEFAULT);
	/* an empty view: no drift */
	fleet_view_compute(&v);
	assert_int_equal(v.n_drift, 0);
	static const char *const hosts[] = { "d1", "d2", "d3", "d4", "d5", "d6" };
	static const char *const apps[] = { "a1", "a2", "a3" };
	for (size_t h = 0; h < ARRAY_SIZE(hosts); h++) {
		beat(&v, hosts[h], T0 - 10);
		for (size_t a = 0; a < ARRAY_SIZE(apps); a++)
			add(&v, hosts[h], apps[a], A2, false, T0 - 100);
	}
	for (size_t a = 0; a < ARRAY_SIZE(apps); a++)
		fleet_view_set_current(&v, apps[a], A2, true);
	/* a second report of the same host and app replaces the first */
	add(&v, "d1", "a1", A2, false, T0 - 1);
	fleet_view_compute(&v);
	assert_int_equal(v.n_drift, 0);
	assert_int_equal(v.apps[0].n_cells, 6);
	assert_int_equal(v.hosts[0].n_apps, 3);
	assert_int_equal(v.hosts[0].seen, T0 - 1);
	/* the current moves on: every host is behind until it reports */
	fleet_view_set_current(&v, "a3", A1, true);
	fleet_view_compute(&v);
	assert_int_equal(v.n_drift, 6);
	fleet_view_free(&v);
}

/* ------------------------------------------------------ from storage */

static void age(const char *root, const char *key)
{
	_cleanup_free_ char *path = path_join(root, key);
	struct timespec ts[2] = { { T0, 0 }, { T0, 0 } };
	assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
}

static void test_view_read(void **state)
{
	(void)state;
	char root[] = "/tmp/test-fleet-st.XXXXXX";
	assert_non_null(mkdtemp(root));
	struct cfg_storage cfg = { .handler = "local", .path = root };
	struct storage *s;
	struct err e = ERR_INIT;
	assert_int_equal(storage_open(&s, &cfg, root, &e), 0);

	/* two hosts, two apps; app b's current is A1, app a has none */
	static const char *const hosts[] = { "h1", "h2" };
	for (size_t i = 0; i < 2; i++) {
		struct host_report r = mk_report(hosts[i], "a", A1, false, now_unix());
		assert_int_equal(host_report_put(s, &r, &e), 0);
		host_report_free(&r);
		r = mk_report(hosts[i], "b", i ? A2 : A1, false, now_unix());
		assert_int_equal(host_report_put(s, &r, &e), 0);
		host_report_free(&r);
	}
	struct host_beat b = { .host = xstrdup("h1"), .time = now_unix(),
			       .version = xstrdup("9.9"), .apps = KVLIST_INIT };
	assert_int_equal(host_beat_put(s, &b, &e), 0);
	host_beat_free(&b);
	/* b's current, signed by a key the view trusts */
	_cleanup_free_ char *priv = path_join(root, "k.key"), *pub = path_join(root, "k.pub");
	assert_int_equal(sign_key_generate(priv, pub, NULL, &e), 0);
	struct sign_key *k, *kp;
	assert_int_equal(sign_key_load_private(priv, &k, &e), 0);
	assert_int_equal(sign_key_load_public(pub, &kp, &e), 0);
	struct sign_trust t = SIGN_TRUST_INIT;
	sign_trust_add(&t, kp);
	struct package_current pc = { .app = "b", .id = A1, .sequence = 1 };
	assert_int_equal(package_current_write(s, k, &pc, &e), 0);
	sign_key_free(k);
	/* noise: another host's report under the wrong name, junk, a key
	 * deeper down */
	struct host_report w = mk_report("h3", "a", A1, false, now_unix());
	_cleanup_buf_ struct buf wt = BUF_INIT;
	host_report_json(&w, &wt);
	host_report_free(&w);
	assert_int_equal(storage_put_buf(s, "hosts/h2/c.json", wt.p, wt.len, &e), 0);
	assert_int_equal(storage_put_buf(s, "hosts/h2/d.json", "{", 1, &e), 0);
	assert_int_equal(storage_put_buf(s, "hosts/h2/x/a.json", wt.p, wt.len, &e), 0);

	struct fleet_cache *c = fleet_cache_new();
	struct fleet_view v;
	assert_int_equal(fleet_view_read(s, &t, NULL, 300, c, &v, &e), 0);
	assert_int_equal(v.n_apps, 2);
	assert_int_equal(v.n_hosts, 2);
	assert_int_equal(v.n_unreadable, 2);
	assert_null(v.apps[0].current);
	assert_string_equal(v.apps[1].current, A1);
	assert_string_equal(fleet_cell_state(&v, &v.apps[1], &v.apps[1].cells[1]), "behind");
	assert_int_equal(v.n_drift, 1);
	assert_true(v.hosts[0].watching);
	fleet_view_free(&v);
	uint64_t reads, reused;
	fleet_cache_stats(c, &reads, &reused);
	assert_int_equal(reads, 9);   /* 7 objects, 2 currents (a has none) */
	assert_int_equal(reused, 0);

	/* nothing changed (and the listing's times are in the past): only
	 * the listing, a conditional read of b's current, and a's (a
	 * missing object has no ETag) */
	static const char *const keys[] = { "hosts/h1/a.json", "hosts/h1/b.json", "hosts/h2/a.json",
					    "hosts/h2/b.json", "hosts/h1/_host.json",
					    "hosts/h2/c.json", "hosts/h2/d.json" };
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
		age(root, keys[i]);
	assert_int_equal(fleet_view_read(s, &t, NULL, 300, c, &v, &e), 0);
	fleet_view_free(&v);
	assert_int_equal(fleet_view_read(s, &t, NULL, 300, c, &v, &e), 0);
	fleet_view_free(&v);
	fleet_cache_stats(c, &reads, &reused);
	assert_int_equal(reads, 9 + 7 + 1 + 1);   /* the aged objects once, a's current */
	assert_int_equal(reused, 1 + 7 + 1);      /* b's current, then every object */

	/* h2 catches up: its report is read again, the rest is not */
	struct host_report r = mk_report("h2", "b", A1, false, now_unix());
	assert_int_equal(host_report_put(s, &r, &e), 0);
	host_report_free(&r);
	assert_int_equal(fleet_view_read(s, &t, NULL, 300, c, &v, &e), 0);
	assert_int_equal(v.n_drift, 0);
	fleet_view_free(&v);
	fleet_cache_stats(c, &reads, &reused);
	assert_int_equal(reads, 18 + 1 + 1);
	/* one app only: a view of b, the cache unharmed */
	assert_int_equal(fleet_view_read(s, &t, "b", 300, c, &v, &e), 0);
	assert_int_equal(v.n_apps, 1);
	assert_int_equal(v.apps[0].n_cells, 2);
	fleet_view_free(&v);
	assert_int_equal(fleet_view_read(s, &t, "nothing", 300, NULL, &v, &e), 0);
	assert_int_equal(v.n_apps, 1);
	assert_int_equal(v.apps[0].n_cells, 0);
	fleet_view_free(&v);

	/* a current no trusted key signed: unknown, with a warning */
	struct sign_trust none = SIGN_TRUST_INIT;
	assert_int_equal(fleet_view_read(s, &none, "b", 300, NULL, &v, &e), 0);
	assert_false(v.apps[0].current_known);
	assert_string_equal(fleet_cell_state(&v, &v.apps[0], &v.apps[0].cells[0]), "unknown");
	fleet_view_free(&v);

	sign_trust_free(&t);
	fleet_cache_free(c);
	storage_close(s);
	assert_int_equal(fs_rm_rf(root, &e), 0);
	err_free(&e);
}

int main(void)
{
	setenv("TZ", "UTC", 1);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_report_roundtrip),
		cmocka_unit_test(test_report_refused),
		cmocka_unit_test(test_beat_roundtrip),
		cmocka_unit_test(test_report_local),
		cmocka_unit_test(test_host_name),
		cmocka_unit_test(test_view_marks),
		cmocka_unit_test(test_view_converged),
		cmocka_unit_test(test_view_read),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
