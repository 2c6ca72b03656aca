/*
 * deploy/report.c - host reports: what a deploy host runs, written to
 * hosts/<host>/<app>.json, and its heartbeat hosts/<host>/_host.json
 * (deploy.h, "host reports").
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "deploy/deploy-int.h"

void host_report_free(struct host_report *r)
{
	if (!r)
		return;
	free(r->host);
	free(r->app);
	free(r->current);
	free(r->previous);
	strv_free(&r->revisions);
	free(r->operation);
	free(r->package);
	free(r->error);
	free(r->version);
	memset(r, 0, sizeof(*r));
}

void host_beat_free(struct host_beat *b)
{
	if (!b)
		return;
	free(b->host);
	free(b->version);
	kvlist_free(&b->apps);
	memset(b, 0, sizeof(*b));
}

/* ------------------------------------------------------------- host name */

int deploy_host_name(const struct config *c, char **ret, struct err *e)
{
	if (c && c->deploy.host_name && *c->deploy.host_name) {
		if (!app_name_ok(c->deploy.host_name))
			return err_set(e, -EINVAL, "deploy.host_name '%s' is not a valid host name "
				       "([a-z0-9][a-z0-9._-]*, at most 63)", c->deploy.host_name);
		*ret = xstrdup(c->deploy.host_name);
		return 0;
	}
	char name[256] = "";
	if (gethostname(name, sizeof(name) - 1) < 0)
		return err_set_errno(e, -errno, "cannot read the host name");
	for (char *p = name; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	if (!app_name_ok(name))
		return err_set(e, -EINVAL, "the host name '%s' cannot name a storage key: set "
			       "deploy.host_name", name);
	*ret = xstrdup(name);
	return 0;
}

/* ------------------------------------------------------------------ JSON */

static struct json_object *time_json(int64_t t)
{
	char iso[32];
	time_iso8601(t, iso);
	return json_object_new_string(iso);
}

void host_report_json(const struct host_report *r, struct buf *out)
{
	_cleanup_json_ struct json_object *o = json_object_new_object();
	json_object_object_add(o, "format", json_object_new_int(1));
	json_object_object_add(o, "host", json_new_str(r->host));
	json_object_object_add(o, "app", json_new_str(r->app));
	json_object_object_add(o, "current", json_new_str(r->current));
	json_object_object_add(o, "previous", json_new_str(r->previous));
	json_object_object_add(o, "revisions", json_new_strv(&r->revisions));
	json_object_object_add(o, "operation", json_new_str(r->operation));
	json_object_object_add(o, "package", json_new_str(r->package));
	json_object_object_add(o, "result", json_object_new_string(r->failed ? "failed" : "ok"));
	json_object_object_add(o, "error", json_new_str(r->error));
	json_object_object_add(o, "time", time_json(r->time));
	json_object_object_add(o, "upaas_version", json_new_str(r->version));
	json_to_buf(o, out);
}

void host_beat_json(const struct host_beat *b, struct buf *out)
{
	_cleanup_json_ struct json_object *o = json_object_new_object();
	json_object_object_add(o, "format", json_object_new_int(1));
	json_object_object_add(o, "host", json_new_str(b->host));
	json_object_object_add(o, "time", time_json(b->time));
	json_object_object_add(o, "upaas_version", json_new_str(b->version));
	json_object_object_add(o, "interval", json_object_new_int64(b->interval));
	struct json_object *apps = json_object_new_object();
	for (size_t i = 0; i < b->apps.n; i++)
		json_object_object_add(apps, b->apps.v[i].key,
				       json_new_str(*b->apps.v[i].val ? b->apps.v[i].val : NULL));
	json_object_object_add(o, "apps", apps);
	json_to_buf(o, out);
}

/* Strings read from a report: bounded and free of control characters
 * (they end up in terminals and web pages). */
#define FIELD_MAX 4096

static bool text_ok(const char *s)
{
	size_t n = 0;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++, n++)
		if (*p < 0x20 || *p == 0x7f || n >= FIELD_MAX)
			return false;
	return true;
}

/* A string or null field: -EINVAL for another type or bad text. */
static int get_opt_str(struct json_object *o, const char *key, bool (*ok)(const char *),
		       char **ret, struct err *e)
{
	struct json_object *v;
	*ret = NULL;
	if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null))
		return 0;
	if (!json_object_is_type(v, json_type_string))
		return err_set(e, -EINVAL, "report: '%s' is not a string", key);
	const char *s = json_object_get_string(v);
	if (!text_ok(s) || (ok && !ok(s)))
		return err_set(e, -EINVAL, "report: invalid '%s'", key);
	*ret = xstrdup(s);
	return 0;
}

static int get_req_str(struct json_object *o, const char *key, bool (*ok)(const char *),
		       char **ret, struct err *e)
{
	int r = get_opt_str(o, key, ok, ret, e);
	if (r == 0 && !*ret)
		return err_set(e, -EINVAL, "report: '%s' is missing", key);
	return r;
}

static int get_time(struct json_object *o, const char *key, int64_t *ret, struct err *e)
{
	const char *t = json_get_str(o, key);
	if (!t || time_parse_iso8601(t, ret) < 0)
		return err_set(e, -EINVAL, "report: '%s' is not an ISO 8601 UTC time", key);
	return 0;
}

static bool op_ok(const char *s)
{
	static const char *const ops[] = { "install", "upgrade", "rollback", "undeploy",
					   "uninstall", "switch-back" };
	for (size_t i = 0; i < ARRAY_SIZE(ops); i++)
		if (!strcmp(s, ops[i]))
			return true;
	return false;
}

static int check_format(struct json_object *o, struct err *e)
{
	int64_t f;
	if (!json_get_int(o, "format", &f) || f != 1)
		return err_set(e, -EINVAL, "report: 'format' is not 1");
	return 0;
}

int host_report_parse(const char *text, struct host_report *ret, struct err *e)
{
	_cleanup_json_ struct json_object *o = NULL;
	struct host_report r = { .revisions = STRV_INIT };
	int rc;

	if (strlen(text) > HOST_REPORT_MAX)
		return err_set(e, -EINVAL, "report: larger than %zu bytes", HOST_REPORT_MAX);
	if ((rc = json_parse_object(text, &o, e)) < 0)
		return rc;
	const char *result = json_get_str(o, "result");
	struct json_object *revs;
	if ((rc = check_format(o, e)) < 0 ||
	    (rc = get_req_str(o, "host", app_name_ok, &r.host, e)) < 0 ||
	    (rc = get_req_str(o, "app", app_name_ok, &r.app, e)) < 0 ||
	    (rc = get_opt_str(o, "current", package_id_ok, &r.current, e)) < 0 ||
	    (rc = get_opt_str(o, "previous", package_id_ok, &r.previous, e)) < 0 ||
	    (rc = get_opt_str(o, "operation", op_ok, &r.operation, e)) < 0 ||
	    (rc = get_opt_str(o, "package", package_id_ok, &r.package, e)) < 0 ||
	    (rc = get_opt_str(o, "error", NULL, &r.error, e)) < 0 ||
	    (rc = get_opt_str(o, "upaas_version", NULL, &r.version, e)) < 0 ||
	    (rc = get_time(o, "time", &r.time, e)) < 0)
		goto fail;
	if (!result || (strcmp(result, "ok") && strcmp(result, "failed"))) {
		rc = err_set(e, -EINVAL, "report: 'result' is not \"ok\" or \"failed\"");
		goto fail;
	}
	r.failed = !strcmp(result, "failed");
	if (json_object_object_get_ex(o, "revisions", &revs) &&
	    !json_object_is_type(revs, json_type_null)) {
		if (!json_object_is_type(revs, json_type_array) ||
		    json_object_array_length(revs) > 1024) {
			rc = err_set(e, -EINVAL, "report: 'revisions' is not a list of ids");
			goto fail;
		}
		for (size_t i = 0; i < json_object_array_length(revs); i++) {
			struct json_object *v = json_object_array_get_idx(revs, i);
			if (!json_object_is_type(v, json_type_string) ||
			    !package_id_ok(json_object_get_string(v))) {
				rc = err_set(e, -EINVAL, "report: 'revisions' is not a list of ids");
				goto fail;
			}
			strv_push(&r.revisions, json_object_get_string(v));
		}
	}
	*ret = r;
	return 0;
fail:
	host_report_free(&r);
	return rc;
}

int host_beat_parse(const char *text, struct host_beat *ret, struct err *e)
{
	_cleanup_json_ struct json_object *o = NULL;
	struct host_beat b = { .apps = KVLIST_INIT };
	int rc;

	if (strlen(text) > HOST_REPORT_MAX)
		return err_set(e, -EINVAL, "heartbeat: larger than %zu bytes", HOST_REPORT_MAX);
	if ((rc = json_parse_object(text, &o, e)) < 0)
		return rc;
	if ((rc = check_format(o, e)) < 0 ||
	    (rc = get_req_str(o, "host", app_name_ok, &b.host, e)) < 0 ||
	    (rc = get_opt_str(o, "upaas_version", NULL, &b.version, e)) < 0 ||
	    (rc = get_time(o, "time", &b.time, e)) < 0)
		goto fail;
	if (!json_get_int(o, "interval", &b.interval) || b.interval < 0)
		b.interval = 0;
	struct json_object *apps = json_get_obj(o, "apps");
	if (apps) {
		size_t n = 0;
		json_object_object_foreach(apps, k, v) {
			const char *id = json_object_is_type(v, json_type_string)
					 ? json_object_get_string(v) : "";
			if (++n > 100000 || !app_name_ok(k) || (*id && !package_id_ok(id))) {
				rc = err_set(e, -EINVAL, "heartbeat: invalid 'apps'");
				goto fail;
			}
			kvlist_set(&b.apps, k, id);
		}
	}
	*ret = b;
	return 0;
fail:
	host_beat_free(&b);
	return rc;
}

/* ----------------------------------------------------------- local state */

int host_report_local(const char *host, const char *root, const char *app,
		      struct host_report *ret, struct err *e)
{
	struct host_report r = { .host = xstrdup(host), .app = xstrdup(app),
				 .revisions = STRV_INIT, .time = now_unix(),
				 .version = xstrdup(PACKAGE_VERSION) };
	struct deploy_status st;
	_cleanup_err_ struct err se = ERR_INIT;

	if (!app_name_ok(app)) {
		host_report_free(&r);
		return err_set(e, -EINVAL, "invalid app name '%s'", app);
	}
	int rc = deploy_status_read(root, app, &st, &se);
	if (rc == -ENOENT) {
		/* purged, or never deployed here */
		*ret = r;
		return 0;
	}
	if (rc < 0) {
		host_report_free(&r);
		return err_set(e, rc, "%s", err_msg(&se));
	}
	r.current = st.current ? xstrdup(st.current) : NULL;
	r.previous = st.previous ? xstrdup(st.previous) : NULL;
	strv_copy(&r.revisions, &st.revisions);
	if (st.n_history) {
		const struct deploy_hist *h = &st.history[st.n_history - 1];
		r.operation = op_ok(h->op) ? xstrdup(h->op) : NULL;
		r.package = package_id_ok(h->id) ? xstrdup(h->id) : NULL;
		if (strcmp(h->result, "ok")) {
			const char *colon = strchr(h->result, ':');
			r.failed = true;
			r.error = colon ? xasprintf("failed at %s", colon + 1) : xstrdup("failed");
		}
	}
	/* watch keeps a package it could not deploy in .failed even when a
	 * later local act (a rollback) succeeded: the host still drifts */
	if (st.watch_failed && !r.failed) {
		r.failed = true;
		free(r.package);
		r.package = xstrdup(st.watch_failed);
		r.error = xasprintf("the deploy of %s failed", st.watch_failed);
	}
	deploy_status_free(&st);
	*ret = r;
	return 0;
}

/* ------------------------------------------------------------ to storage */

static int put_json(struct storage *s, const char *key, const struct buf *text,
		    struct err *e)
{
	int r = storage_put_buf(s, key, text->p, text->len, e);
	if (r < 0)
		return err_prefix(e, "cannot write the host report '%s'", key);
	return 0;
}

int host_report_put(struct storage *s, const struct host_report *r, struct err *e)
{
	_cleanup_buf_ struct buf text = BUF_INIT;
	_cleanup_free_ char *key = xasprintf("hosts/%s/%s.json", r->host, r->app);
	host_report_json(r, &text);
	return put_json(s, key, &text, e);
}

int host_beat_put(struct storage *s, const struct host_beat *b, struct err *e)
{
	_cleanup_buf_ struct buf text = BUF_INIT;
	_cleanup_free_ char *key = xasprintf("hosts/%s/" HOST_BEAT_KEY, b->host);
	host_beat_json(b, &text);
	return put_json(s, key, &text, e);
}

/* A message as a report holds it: one line, bounded. */
static char *report_text(const char *msg)
{
	size_t n = strnlen(msg, 1000);
	char *t = xstrndup(msg, n);
	for (char *p = t; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	return t;
}

/*
 * After an operation on app (deploy.c): the local state, with the
 * operation's own error message when it failed. Never fails the operation:
 * a report that cannot be written is a warning. Returns 0 when written.
 */
int deploy_report_after(const struct config *c, struct storage *s, const char *root,
			const char *app, const char *op, const char *id, int rc,
			const struct err *oe)
{
	_cleanup_err_ struct err e = ERR_INIT;
	_cleanup_free_ char *host = NULL;
	struct host_report r;

	if (!s || !c->deploy.report || !(storage_caps(s) & STORAGE_CAP_WRITE))
		return 0;
	if (deploy_host_name(c, &host, &e) < 0 ||
	    host_report_local(host, root, app, &r, &e) < 0) {
		log_warn("no host report for app '%s': %s", app, err_msg(&e));
		return -EINVAL;
	}
	if (op && op_ok(op)) {
		free(r.operation);
		r.operation = xstrdup(op);
	}
	if (id && package_id_ok(id)) {
		free(r.package);
		r.package = xstrdup(id);
	}
	if (rc < 0) {
		r.failed = true;
		free(r.error);
		r.error = report_text(oe && oe->code ? err_msg(oe) : "failed");
	} else if (op) {
		/* this operation succeeded: an older failure is history */
		r.failed = false;
		free(r.error);
		r.error = NULL;
	}
	int ret = host_report_put(s, &r, &e);
	if (ret < 0)
		log_warn("%s", err_msg(&e));
	else
		log_debug("reported app '%s' as host '%s'", app, host);
	host_report_free(&r);
	return ret;
}
