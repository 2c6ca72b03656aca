/*
 * deploy/fleet.c - the fleet view: which host runs what, against each
 * app's current package (deploy.h, "fleet"). `upaas fleet status` prints
 * it, the web API serves its JSON.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "deploy/deploy-int.h"

/* Bounds of one view: what a listing of hosts/ may make us read. */
#define FLEET_MAX_OBJECTS 100000

void fleet_view_init(struct fleet_view *v, int64_t now, int64_t silent_after)
{
	memset(v, 0, sizeof(*v));
	v->now = now;
	v->silent_after = silent_after > 0 ? silent_after : FLEET_SILENT_AFTER_DEFAULT;
}

void fleet_view_free(struct fleet_view *v)
{
	if (!v)
		return;
	for (size_t i = 0; i < v->n_apps; i++) {
		struct fleet_app *a = &v->apps[i];
		for (size_t k = 0; k < a->n_cells; k++)
			host_report_free(&a->cells[k].rep);
		free(a->cells);
		free(a->app);
		free(a->current);
	}
	free(v->apps);
	for (size_t i = 0; i < v->n_hosts; i++) {
		free(v->hosts[i].host);
		free(v->hosts[i].version);
	}
	free(v->hosts);
	memset(v, 0, sizeof(*v));
}

static struct fleet_app *app_get(struct fleet_view *v, const char *app)
{
	for (size_t i = 0; i < v->n_apps; i++)
		if (!strcmp(v->apps[i].app, app))
			return &v->apps[i];
	v->apps = xrealloc(v->apps, (v->n_apps + 1) * sizeof(*v->apps));
	struct fleet_app *a = &v->apps[v->n_apps++];
	*a = (struct fleet_app){ .app = xstrdup(app), .current_known = true };
	return a;
}

static struct fleet_host *host_get(struct fleet_view *v, const char *host)
{
	for (size_t i = 0; i < v->n_hosts; i++)
		if (!strcmp(v->hosts[i].host, host))
			return &v->hosts[i];
	v->hosts = xrealloc(v->hosts, (v->n_hosts + 1) * sizeof(*v->hosts));
	struct fleet_host *h = &v->hosts[v->n_hosts++];
	*h = (struct fleet_host){ .host = xstrdup(host) };
	return h;
}

void fleet_view_add_report(struct fleet_view *v, struct host_report *r)
{
	struct fleet_app *a = app_get(v, r->app);
	/* one report per host and app: a second one (it cannot come from a
	 * listing) replaces the first */
	for (size_t i = 0; i < a->n_cells; i++) {
		if (!strcmp(a->cells[i].rep.host, r->host)) {
			host_report_free(&a->cells[i].rep);
			a->cells[i].rep = *r;
			memset(r, 0, sizeof(*r));
			return;
		}
	}
	a->cells = xrealloc(a->cells, (a->n_cells + 1) * sizeof(*a->cells));
	a->cells[a->n_cells++] = (struct fleet_cell){ .rep = *r };
	memset(r, 0, sizeof(*r));
}

void fleet_view_add_beat(struct fleet_view *v, const struct host_beat *b)
{
	struct fleet_host *h = host_get(v, b->host);
	h->watching = true;
	if (b->time > h->seen)
		h->seen = b->time;
	h->interval = b->interval;
	if (b->version) {
		free(h->version);
		h->version = xstrdup(b->version);
	}
}

void fleet_view_set_current(struct fleet_view *v, const char *app, const char *id, bool known)
{
	struct fleet_app *a = app_get(v, app);
	free(a->current);
	a->current = id ? xstrdup(id) : NULL;
	a->current_known = known;
}

static int app_cmp(const void *x, const void *y)
{
	return strcmp(((const struct fleet_app *)x)->app, ((const struct fleet_app *)y)->app);
}

static int cell_cmp(const void *x, const void *y)
{
	return strcmp(((const struct fleet_cell *)x)->rep.host,
		      ((const struct fleet_cell *)y)->rep.host);
}

static int host_cmp(const void *x, const void *y)
{
	return strcmp(((const struct fleet_host *)x)->host, ((const struct fleet_host *)y)->host);
}

static bool undeployed(const struct host_report *r)
{
	return r->operation && (!strcmp(r->operation, "undeploy") ||
				!strcmp(r->operation, "uninstall"));
}

void fleet_view_compute(struct fleet_view *v)
{
	/* every host that reports: seen is the latest word from it */
	for (size_t i = 0; i < v->n_apps; i++) {
		struct fleet_app *a = &v->apps[i];
		for (size_t k = 0; k < a->n_cells; k++) {
			const struct host_report *r = &a->cells[k].rep;
			struct fleet_host *h = host_get(v, r->host);
			if (r->time > h->seen)
				h->seen = r->time;
			if (!h->version && r->version)
				h->version = xstrdup(r->version);
			h->n_apps++;
		}
	}
	for (size_t i = 0; i < v->n_hosts; i++) {
		struct fleet_host *h = &v->hosts[i];
		h->silent = h->watching && v->now - h->seen > v->silent_after;
	}
	if (v->n_hosts)
		qsort(v->hosts, v->n_hosts, sizeof(*v->hosts), host_cmp);
	if (v->n_apps)
		qsort(v->apps, v->n_apps, sizeof(*v->apps), app_cmp);

	v->n_drift = 0;
	for (size_t i = 0; i < v->n_apps; i++) {
		struct fleet_app *a = &v->apps[i];
		if (a->n_cells)
			qsort(a->cells, a->n_cells, sizeof(*a->cells), cell_cmp);
		for (size_t k = 0; k < a->n_cells; k++) {
			struct fleet_cell *c = &a->cells[k];
			const struct host_report *r = &c->rep;
			struct fleet_host key = { .host = r->host };
			const struct fleet_host *h = v->n_hosts ?
				bsearch(&key, v->hosts, v->n_hosts, sizeof(*v->hosts), host_cmp) : NULL;
			c->seen = h ? h->seen : r->time;
			c->marks = 0;
			if (r->failed)
				c->marks |= FLEET_FAILED;
			if (h && h->silent)
				c->marks |= FLEET_SILENT;
			/* running nothing of the app is behind too, unless the
			 * host took it off on purpose (undeploy) */
			if (a->current && (r->current ? strcmp(a->current, r->current) != 0
						      : !undeployed(r)))
				c->marks |= FLEET_BEHIND;
			if (c->marks)
				v->n_drift++;
		}
	}
}

const char *fleet_cell_state(const struct fleet_view *v, const struct fleet_app *a,
			     const struct fleet_cell *c)
{
	(void)v;
	if (c->marks & FLEET_FAILED)
		return "failed";
	if (c->marks & FLEET_BEHIND)
		return "behind";
	if (c->marks & FLEET_SILENT)
		return "silent";
	if (!c->rep.current)
		return undeployed(&c->rep) ? "undeployed" : "none";
	if (!a->current)
		return a->current_known ? "no-current" : "unknown";
	return "current";
}

static struct json_object *time_json(int64_t t)
{
	char iso[32];
	if (t <= 0)
		return NULL;
	time_iso8601(t, iso);
	return json_object_new_string(iso);
}

static struct json_object *cell_json(const struct fleet_view *v, const struct fleet_app *a,
				     const struct fleet_cell *c)
{
	const struct host_report *r = &c->rep;
	struct json_object *o = json_object_new_object();
	struct json_object *marks = json_object_new_array();
	static const struct { unsigned bit; const char *name; } names[] = {
		{ FLEET_BEHIND, "behind" }, { FLEET_FAILED, "failed" }, { FLEET_SILENT, "silent" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (c->marks & names[i].bit)
			json_object_array_add(marks, json_object_new_string(names[i].name));
	json_object_object_add(o, "host", json_new_str(r->host));
	json_object_object_add(o, "state", json_object_new_string(fleet_cell_state(v, a, c)));
	json_object_object_add(o, "drift", json_object_new_boolean(c->marks != 0));
	json_object_object_add(o, "marks", marks);
	json_object_object_add(o, "runs", json_new_str(r->current));
	json_object_object_add(o, "previous", json_new_str(r->previous));
	json_object_object_add(o, "revisions", json_new_strv(&r->revisions));
	json_object_object_add(o, "operation", json_new_str(r->operation));
	json_object_object_add(o, "package", json_new_str(r->package));
	json_object_object_add(o, "result", json_object_new_string(r->failed ? "failed" : "ok"));
	json_object_object_add(o, "error", json_new_str(r->error));
	json_object_object_add(o, "time", time_json(r->time));
	json_object_object_add(o, "seen", time_json(c->seen));
	json_object_object_add(o, "seconds_since_seen",
			       json_object_new_int64(v->now > c->seen ? v->now - c->seen : 0));
	json_object_object_add(o, "upaas_version", json_new_str(r->version));
	return o;
}

void fleet_view_json(const struct fleet_view *v, struct buf *out)
{
	_cleanup_json_ struct json_object *o = fleet_view_to_json(v);
	json_to_buf(o, out);
}

struct json_object *fleet_view_to_json(const struct fleet_view *v)
{
	struct json_object *o = json_object_new_object();
	struct json_object *apps = json_object_new_array();
	struct json_object *hosts = json_object_new_array();

	for (size_t i = 0; i < v->n_apps; i++) {
		const struct fleet_app *a = &v->apps[i];
		struct json_object *ao = json_object_new_object();
		struct json_object *cells = json_object_new_array();
		size_t drift = 0;
		for (size_t k = 0; k < a->n_cells; k++) {
			json_object_array_add(cells, cell_json(v, a, &a->cells[k]));
			drift += a->cells[k].marks != 0;
		}
		json_object_object_add(ao, "app", json_object_new_string(a->app));
		json_object_object_add(ao, "current", json_new_str(a->current));
		json_object_object_add(ao, "current_known", json_object_new_boolean(a->current_known));
		json_object_object_add(ao, "drift", json_object_new_int64((int64_t)drift));
		json_object_object_add(ao, "hosts", cells);
		json_object_array_add(apps, ao);
	}
	for (size_t i = 0; i < v->n_hosts; i++) {
		const struct fleet_host *h = &v->hosts[i];
		struct json_object *ho = json_object_new_object();
		json_object_object_add(ho, "host", json_object_new_string(h->host));
		json_object_object_add(ho, "seen", time_json(h->seen));
		json_object_object_add(ho, "seconds_since_seen",
				       json_object_new_int64(v->now > h->seen ? v->now - h->seen : 0));
		json_object_object_add(ho, "watching", json_object_new_boolean(h->watching));
		json_object_object_add(ho, "interval", json_object_new_int64(h->interval));
		json_object_object_add(ho, "silent", json_object_new_boolean(h->silent));
		json_object_object_add(ho, "apps", json_object_new_int64((int64_t)h->n_apps));
		json_object_object_add(ho, "upaas_version", json_new_str(h->version));
		json_object_array_add(hosts, ho);
	}
	json_object_object_add(o, "time", time_json(v->now));
	json_object_object_add(o, "silent_after", json_object_new_int64(v->silent_after));
	json_object_object_add(o, "drift", json_object_new_int64((int64_t)v->n_drift));
	json_object_object_add(o, "unreadable", json_object_new_int64((int64_t)v->n_unreadable));
	json_object_object_add(o, "apps", apps);
	json_object_object_add(o, "hosts", hosts);
	return o;
}

/* ------------------------------------------------------------ from storage */

/*
 * What earlier reads saw: the text of each object under hosts/ with the
 * size and time the listing gave for it (an object whose listing entry did
 * not change is not read again), and each app's current with its ETag (read
 * again only when it changed). Sorted by key.
 */
struct fleet_obj {
	char *key;
	uint64_t size;
	int64_t mtime;
	char *text;
	bool seen;                 /* in the latest listing */
};
struct fleet_cur {
	char *app;
	char *etag;
	char *id;
};
struct fleet_cache {
	struct fleet_obj *objs;
	size_t n_objs;
	struct fleet_cur *curs;
	size_t n_curs;
	uint64_t reads, reused;    /* for tests and the curious: objects read / not */
};

struct fleet_cache *fleet_cache_new(void)
{
	return xcalloc(1, sizeof(struct fleet_cache));
}

void fleet_cache_free(struct fleet_cache *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n_objs; i++) {
		free(c->objs[i].key);
		free(c->objs[i].text);
	}
	for (size_t i = 0; i < c->n_curs; i++) {
		free(c->curs[i].app);
		free(c->curs[i].etag);
		free(c->curs[i].id);
	}
	free(c->objs);
	free(c->curs);
	free(c);
}

void fleet_cache_stats(const struct fleet_cache *c, uint64_t *reads, uint64_t *reused)
{
	*reads = c->reads;
	*reused = c->reused;
}

static int obj_cmp(const void *a, const void *b)
{
	return strcmp(((const struct fleet_obj *)a)->key, ((const struct fleet_obj *)b)->key);
}

static struct fleet_obj *cache_find(struct fleet_cache *c, const char *key)
{
	struct fleet_obj k = { .key = (char *)key };
	return c->n_objs ? bsearch(&k, c->objs, c->n_objs, sizeof(*c->objs), obj_cmp) : NULL;
}

/* Splits "hosts/<host>/<name>" into host and name; false otherwise. */
static bool split_key(const char *key, char **host, char **name)
{
	const char *p = key + strlen("hosts/");
	const char *slash = strchr(p, '/');
	if (strncmp(key, "hosts/", 6) || !slash || strchr(slash + 1, '/'))
		return false;
	*host = xstrndup(p, (size_t)(slash - p));
	*name = xstrdup(slash + 1);
	return app_name_ok(*host);
}

/* One listing entry worth reading: a report (of app, when given) or a
 * heartbeat. */
static bool wanted(const char *key, const char *app)
{
	_cleanup_free_ char *host = NULL, *name = NULL;
	if (!split_key(key, &host, &name))
		return false;
	if (!strcmp(name, HOST_BEAT_KEY))
		return true;
	size_t n = strlen(name);
	if (n < 6 || strcmp(name + n - 5, ".json"))
		return false;
	return !app || (n - 5 == strlen(app) && !strncmp(name, app, n - 5));
}

struct list_ctx {
	const char *app;
	struct fleet_obj *v;
	size_t n, cap;
};

static int list_cb(void *data, const char *key, const struct storage_stat *st)
{
	struct list_ctx *l = data;
	if (!wanted(key, l->app))
		return 0;
	if (l->n == FLEET_MAX_OBJECTS)
		return -E2BIG;
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 64;
		l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
	}
	l->v[l->n++] = (struct fleet_obj){ .key = xstrdup(key), .size = st->size,
					   .mtime = st->mtime };
	return 0;
}

/* Lists hosts/ and brings the cache up to date with it: objects whose
 * listing entry changed (or that are new) are read, objects gone are
 * dropped. */
static int cache_refresh(struct storage *s, struct fleet_cache *c, const char *app,
			 struct err *e)
{
	struct list_ctx l = { .app = app };
	int r = storage_list(s, "hosts/", list_cb, &l, e);
	if (r == -E2BIG)
		r = err_set(e, r, "more than %d host reports under 'hosts/'", FLEET_MAX_OBJECTS);
	if (r < 0) {
		for (size_t i = 0; i < l.n; i++)
			free(l.v[i].key);
		free(l.v);
		return r;
	}
	if (l.n)
		qsort(l.v, l.n, sizeof(*l.v), obj_cmp);
	for (size_t i = 0; i < l.n; i++) {
		struct fleet_obj *o = &l.v[i];
		struct fleet_obj *old = cache_find(c, o->key);
		/* a listing's time has a resolution of a second: an entry
		 * from this very second may still change unseen */
		if (old && old->text && old->size == o->size && old->mtime == o->mtime &&
		    o->mtime > 0 && o->mtime < now_unix()) {
			o->text = TAKE_PTR(old->text);
			c->reused++;
			continue;
		}
		_cleanup_buf_ struct buf text = BUF_INIT;
		_cleanup_err_ struct err re = ERR_INIT;
		r = storage_get_buf(s, o->key, &text, HOST_REPORT_MAX, &re);
		c->reads++;
		if (r == -ENOENT)
			continue;   /* gone since the listing: text stays NULL */
		if (r < 0) {
			/* storage failing: nothing half-read is kept */
			for (size_t k = 0; k < l.n; k++) {
				free(l.v[k].key);
				free(l.v[k].text);
			}
			free(l.v);
			return err_set(e, r, "%s", err_msg(&re));
		}
		o->text = buf_detach(&text);
	}
	for (size_t i = 0; i < c->n_objs; i++) {
		free(c->objs[i].key);
		free(c->objs[i].text);
	}
	free(c->objs);
	c->objs = l.v;
	c->n_objs = l.n;
	return 0;
}

/* The current of app, verified against t, read again only when its ETag
 * changed. */
static int cache_current(struct storage *s, const struct sign_trust *t, struct fleet_cache *c,
			 const char *app, struct buf *ret_id, struct err *e)
{
	struct fleet_cur *cur = NULL;
	for (size_t i = 0; i < c->n_curs; i++)
		if (!strcmp(c->curs[i].app, app))
			cur = &c->curs[i];
	if (!cur) {
		c->curs = xrealloc(c->curs, (c->n_curs + 1) * sizeof(*c->curs));
		cur = &c->curs[c->n_curs++];
		*cur = (struct fleet_cur){ .app = xstrdup(app) };
	}
	_cleanup_free_ char *key = storage_key_current(app);
	_cleanup_buf_ struct buf text = BUF_INIT, etag = BUF_INIT;
	struct package_current pc = { 0 };
	int r = storage_get_buf_if(s, key, cur->id ? cur->etag : NULL, &etag, &text,
				   PACKAGE_CURRENT_MAX, e);
	if (r == STORAGE_NOT_MODIFIED) {
		c->reused++;
		buf_reset(ret_id);
		buf_adds(ret_id, cur->id);
		return 0;
	}
	c->reads++;
	free(cur->etag);
	free(cur->id);
	cur->etag = cur->id = NULL;
	if (r < 0)
		return r;
	if ((r = package_current_parse(t, app, text.p, text.len, &pc, e)) < 0)
		return r;
	if (!package_id_ok(pc.id)) {
		package_current_free(&pc);
		return err_set(e, -EINVAL, "'%s' holds a bad package id", key);
	}
	if (etag.len) {
		cur->etag = xstrdup(etag.p);
		cur->id = xstrdup(pc.id);
	}
	buf_reset(ret_id);
	buf_adds(ret_id, pc.id);
	package_current_free(&pc);
	return 0;
}

int fleet_view_read(struct storage *s, const struct sign_trust *t, const char *app,
		    int64_t silent_after, struct fleet_cache *cache, struct fleet_view *ret,
		    struct err *e)
{
	struct fleet_view v;
	struct fleet_cache *own = NULL;
	int r;

	if (app && !app_name_ok(app))
		return err_set(e, -EINVAL, "invalid app name '%s'", app);
	if (!(storage_caps(s) & STORAGE_CAP_LIST))
		return err_set(e, -EOPNOTSUPP, "the fleet view lists hosts/ in storage, which "
			       "storage handler '%s' cannot do", storage_name(s));
	if (!cache)
		cache = own = fleet_cache_new();
	/* a cache lists everything, whatever one call wants to see */
	if ((r = cache_refresh(s, cache, own ? app : NULL, e)) < 0) {
		fleet_cache_free(own);
		return r;
	}
	fleet_view_init(&v, now_unix(), silent_after);
	for (size_t i = 0; i < cache->n_objs; i++) {
		const struct fleet_obj *o = &cache->objs[i];
		_cleanup_free_ char *host = NULL, *name = NULL;
		_cleanup_err_ struct err re = ERR_INIT;
		if (!o->text || !wanted(o->key, app) || !split_key(o->key, &host, &name))
			continue;
		if (!strcmp(name, HOST_BEAT_KEY)) {
			struct host_beat b;
			if (host_beat_parse(o->text, &b, &re) < 0 || strcmp(b.host, host)) {
				if (!re.code)
					host_beat_free(&b);
				log_warn("'%s': %s", o->key, re.code ? err_msg(&re) :
					 "the heartbeat of another host");
				v.n_unreadable++;
				continue;
			}
			fleet_view_add_beat(&v, &b);
			host_beat_free(&b);
			continue;
		}
		struct host_report rep;
		_cleanup_free_ char *app_name = xstrndup(name, strlen(name) - 5);
		if (host_report_parse(o->text, &rep, &re) < 0 || strcmp(rep.host, host) ||
		    strcmp(rep.app, app_name)) {
			if (!re.code)
				host_report_free(&rep);
			log_warn("'%s': %s", o->key, re.code ? err_msg(&re) :
				 "a report of another host or app");
			v.n_unreadable++;
			continue;
		}
		fleet_view_add_report(&v, &rep);
	}
	if (app)
		app_get(&v, app);

	/* the current of each app seen */
	for (size_t i = 0; i < v.n_apps; i++) {
		_cleanup_buf_ struct buf id = BUF_INIT;
		_cleanup_err_ struct err ce = ERR_INIT;
		r = cache_current(s, t, cache, v.apps[i].app, &id, &ce);
		if (r == -ENOENT) {
			fleet_view_set_current(&v, v.apps[i].app, NULL, true);
		} else if (r < 0) {
			log_warn("app '%s': %s", v.apps[i].app, err_msg(&ce));
			fleet_view_set_current(&v, v.apps[i].app, NULL, false);
		} else {
			fleet_view_set_current(&v, v.apps[i].app, id.p, true);
		}
	}
	fleet_cache_free(own);
	fleet_view_compute(&v);
	*ret = v;
	return 0;
}
