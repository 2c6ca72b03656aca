/*
 * package/index.c - apps/_index: one small signed object that changes
 * whenever an app's current changes (package.h, "the index").
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "package/package.h"

/* The most apps an index lists (a bound on what a reader takes). */
#define INDEX_APPS_MAX 100000

void package_index_free(struct package_index *x)
{
	if (!x)
		return;
	for (size_t i = 0; i < x->n; i++) {
		free(x->v[i].app);
		free(x->v[i].id);
	}
	free(x->v);
	free(x->created);
	memset(x, 0, sizeof(*x));
}

static int entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct package_index_entry *)a)->app,
		      ((const struct package_index_entry *)b)->app);
}

const struct package_index_entry *package_index_find(const struct package_index *x,
						     const char *app)
{
	struct package_index_entry k = { .app = (char *)app };
	return x->n ? bsearch(&k, x->v, x->n, sizeof(*x->v), entry_cmp) : NULL;
}

int package_index_set(struct package_index *x, const char *app, const char *id,
		      uint64_t sequence)
{
	struct package_index_entry *cur = (struct package_index_entry *)package_index_find(x, app);
	if (cur) {
		if (cur->sequence > sequence || (cur->sequence == sequence && !strcmp(cur->id, id)))
			return 0;
		free(cur->id);
		cur->id = xstrdup(id);
		cur->sequence = sequence;
		return 1;
	}
	x->v = xrealloc(x->v, (x->n + 1) * sizeof(*x->v));
	x->v[x->n++] = (struct package_index_entry){ .app = xstrdup(app), .id = xstrdup(id),
						     .sequence = sequence };
	qsort(x->v, x->n, sizeof(*x->v), entry_cmp);
	return 1;
}

void package_index_json(const struct package_index *x, struct buf *out)
{
	_cleanup_json_ struct json_object *o = json_object_new_object();
	struct json_object *apps = json_object_new_object();
	json_object_object_add(o, "format", json_object_new_int(1));
	json_object_object_add(o, "kind", json_object_new_string("index"));
	json_object_object_add(o, "created", json_new_str(x->created));
	for (size_t i = 0; i < x->n; i++) {
		struct json_object *a = json_object_new_object();
		json_object_object_add(a, "id", json_object_new_string(x->v[i].id));
		json_object_object_add(a, "sequence", json_object_new_int64((int64_t)x->v[i].sequence));
		json_object_object_add(apps, x->v[i].app, a);
	}
	json_object_object_add(o, "apps", apps);
	json_to_buf(o, out);
}

int package_index_parse(const struct sign_trust *t, const char *text, size_t len,
			struct package_index *ret, struct err *e)
{
	_cleanup_json_ struct json_object *o = NULL;
	struct package_index x = { 0 };
	size_t doc = 0;
	int64_t format = 0, t0;

	if (len > PACKAGE_INDEX_MAX)
		return err_set(e, -EBADMSG, "'%s' is larger than %zu bytes", PACKAGE_INDEX_KEY,
			       PACKAGE_INDEX_MAX);
	int signed_r = signed_text_verify(t, PACKAGE_INDEX_KEY, text, len, &doc, x.keyid, e);
	if (signed_r < 0)
		return signed_r;
	_cleanup_free_ char *body = xstrndup(text + doc, len - doc);
	if (json_parse_object(body, &o, e) < 0)
		return err_prefix(e, "'%s'", PACKAGE_INDEX_KEY);
	const char *kind = json_get_str(o, "kind");
	const char *created = json_get_str(o, "created");
	struct json_object *apps = json_get_obj(o, "apps");
	if (!json_get_int(o, "format", &format) || format != 1)
		return err_set(e, -EINVAL, "'%s': unknown format", PACKAGE_INDEX_KEY);
	if (!kind || strcmp(kind, "index"))
		return err_set(e, -EINVAL, "'%s' is not an index (\"kind\")", PACKAGE_INDEX_KEY);
	if (created && time_parse_iso8601(created, &t0) < 0)
		return err_set(e, -EINVAL, "'%s': \"created\" is not an ISO 8601 UTC time",
			       PACKAGE_INDEX_KEY);
	if (!apps)
		return err_set(e, -EINVAL, "'%s' lists no apps", PACKAGE_INDEX_KEY);
	size_t n = 0;
	json_object_object_foreach(apps, app, v) {
		const char *id = json_get_str(v, "id");
		int64_t seq = -1;
		if (++n > INDEX_APPS_MAX || !app_name_ok(app) || !id || !package_id_ok(id) ||
		    !json_get_int(v, "sequence", &seq) || seq < 0) {
			package_index_free(&x);
			return err_set(e, -EINVAL, "'%s': a bad entry ('%.64s')", PACKAGE_INDEX_KEY,
				       app);
		}
		x.v = xrealloc(x.v, (x.n + 1) * sizeof(*x.v));
		x.v[x.n++] = (struct package_index_entry){ .app = xstrdup(app), .id = xstrdup(id),
							   .sequence = (uint64_t)seq };
	}
	if (x.n)
		qsort(x.v, x.n, sizeof(*x.v), entry_cmp);
	x.created = created ? xstrdup(created) : NULL;
	*ret = x;
	return signed_r;
}

int package_index_read(struct storage *s, const struct sign_trust *t, const char *etag,
		       struct buf *ret_etag, struct package_index *ret, struct err *e)
{
	_cleanup_buf_ struct buf text = BUF_INIT;
	int r = storage_get_buf_if(s, PACKAGE_INDEX_KEY, etag, ret_etag, &text, PACKAGE_INDEX_MAX,
				   e);
	if (r == -E2BIG) {
		err_clear(e);
		return err_set(e, -EBADMSG, "'%s' is larger than %zu bytes", PACKAGE_INDEX_KEY,
			       PACKAGE_INDEX_MAX);
	}
	if (r != 0)
		return r;
	r = package_index_parse(t, text.p, text.len, ret, e);
	return r < 0 ? r : 0;
}

static int index_write(struct storage *s, const struct sign_key *k, struct package_index *x,
		       struct err *e)
{
	_cleanup_buf_ struct buf doc = BUF_INIT, text = BUF_INIT;
	char created[32];
	time_iso8601(now_unix(), created);
	free(x->created);
	x->created = xstrdup(created);
	package_index_json(x, &doc);
	int r = signed_text_format(k, doc.p, doc.len, &text, e);
	if (r < 0)
		return r;
	/* one object, replaced whole: its signature travels inside it */
	return storage_put_buf(s, PACKAGE_INDEX_KEY, text.p, text.len, e);
}

/* The index as it is in storage, or an empty one when it is missing or
 * cannot be used (said once: its apps then go unlisted until their next
 * current, and watchers look at those one by one meanwhile). */
static int index_load(struct storage *s, const struct sign_trust *t, struct package_index *x,
		      struct err *e)
{
	_cleanup_err_ struct err re = ERR_INIT;
	int r = package_index_read(s, t, NULL, NULL, x, &re);
	if (r == -ENOENT) {
		memset(x, 0, sizeof(*x));
		return 0;
	}
	if (r == -EIO || r == -EACCES || r == -ETIMEDOUT)
		return err_set(e, r, "%s", err_msg(&re));   /* storage trouble: try later */
	if (r < 0) {
		log_warn("%s: starting a new index", err_msg(&re));
		memset(x, 0, sizeof(*x));
	}
	return 0;
}

static int lock_take(const struct package_index_lock *l, bool acquire, struct err *e)
{
	return l && l->lock ? l->lock(l->data, acquire, e) : 0;
}

int package_index_update(struct storage *s, const struct sign_key *k, const struct sign_trust *t,
			 const struct package_current *cur, const struct package_index_lock *lock,
			 struct err *e)
{
	struct package_index x = { 0 };
	int r = lock_take(lock, true, e);
	if (r < 0)
		return err_prefix(e, "cannot lock '%s'", PACKAGE_INDEX_KEY);
	r = index_load(s, t, &x, e);
	if (r >= 0 && package_index_set(&x, cur->app, cur->id, cur->sequence))
		r = index_write(s, k, &x, e);
	package_index_free(&x);
	_cleanup_err_ struct err ue = ERR_INIT;
	if (lock_take(lock, false, &ue) < 0)
		log_warn("cannot unlock '%s': %s", PACKAGE_INDEX_KEY, err_msg(&ue));
	return r < 0 ? r : 0;
}

static int current_key_cb(void *data, const char *key, const struct storage_stat *st)
{
	size_t n = strlen(key);
	/* apps/<app>/current */
	if (strncmp(key, "apps/", 5) || n < 5 + 1 + 8 || strcmp(key + n - 8, "/current"))
		return 0;
	_cleanup_free_ char *app = xstrndup(key + 5, n - 5 - 8);
	if (app_name_ok(app))
		strv_push(data, app);
	return 0;
}

int package_index_rebuild(struct storage *s, const struct sign_key *k,
			  const struct sign_trust *t, const struct package_index_lock *lock,
			  struct package_index *ret, struct err *e)
{
	_cleanup_strv_ struct strv apps = STRV_INIT;
	struct package_index x = { 0 };
	int r = lock_take(lock, true, e);
	if (r < 0)
		return err_prefix(e, "cannot lock '%s'", PACKAGE_INDEX_KEY);
	r = storage_list(s, "apps/", current_key_cb, &apps, e);
	for (size_t i = 0; r >= 0 && i < apps.n; i++) {
		struct package_current c = { 0 };
		_cleanup_err_ struct err ce = ERR_INIT;
		int cr = package_current_read(s, t, apps.v[i], &c, &ce);
		if (cr == -ENOENT)
			continue;
		if (cr < 0) {
			/* not listed: watchers look at it by itself */
			log_warn("%s: left out of the index", err_msg(&ce));
			continue;
		}
		if (package_id_ok(c.id))
			package_index_set(&x, c.app, c.id, c.sequence);
		package_current_free(&c);
	}
	if (r >= 0)
		r = index_write(s, k, &x, e);
	_cleanup_err_ struct err ue = ERR_INIT;
	if (lock_take(lock, false, &ue) < 0)
		log_warn("cannot unlock '%s': %s", PACKAGE_INDEX_KEY, err_msg(&ue));
	if (r < 0) {
		package_index_free(&x);
		return r;
	}
	if (ret)
		*ret = x;
	else
		package_index_free(&x);
	return 0;
}
