/*
 * deploy/manifest.c - the package manifest fields deploy relies on, checked
 * before anything is fetched: a manifest comes from storage and is data.
 */
#include <errno.h>
#include <string.h>

#include <json-c/json.h>

#include "deploy/deploy.h"

static bool has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);
	return n >= k && !strcmp(s + n - k, suffix);
}

bool deploy_id_ok(const char *id)
{
	size_t n = id ? strlen(id) : 0;
	if (n == 0 || n > 128)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = id[i];
		bool alnum = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
			     (ch >= '0' && ch <= '9');
		if (!alnum && (i == 0 || (ch != '.' && ch != '_' && ch != '-')))
			return false;
	}
	return !has_suffix(id, ".tmp") && !has_suffix(id, ".failed");
}


/* Reads an optional array of relative paths into out. */
static int jpaths(struct json_object *o, const char *key, const char *what, struct strv *out,
		  struct err *e)
{
	struct json_object *a;
	if (!o || !json_object_object_get_ex(o, key, &a) || json_object_is_type(a, json_type_null))
		return 0;
	if (!json_object_is_type(a, json_type_array))
		return err_set(e, -EINVAL, "manifest: %s is not a list", what);
	size_t n = json_object_array_length(a);
	if (n > 256)
		return err_set(e, -EINVAL, "manifest: %s has too many entries", what);
	for (size_t i = 0; i < n; i++) {
		struct json_object *v = json_object_array_get_idx(a, i);
		const char *p = json_object_is_type(v, json_type_string) ? json_object_get_string(v)
									    : NULL;
		if (!path_rel_ok(p))
			return err_set(e, -EINVAL, "manifest: %s entry '%s' is not a safe relative path",
				       what, p ? p : "(not a string)");
		strv_push(out, p);
	}
	return 0;
}

int deploy_manifest_parse(struct deploy_manifest *m, const char *text, const char *app,
			  const char *id, const struct config *c, struct err *e)
{
	struct deploy_manifest out = { .shared = STRV_INIT, .hooks_pre = STRV_INIT,
				       .hooks_post = STRV_INIT };
	_cleanup_json_ struct json_object *j = json_tokener_parse(text);
	int r;

	if (!j || !json_object_is_type(j, json_type_object))
		return err_set(e, -EINVAL, "manifest is not a JSON object");

	const char *japp = json_get_str(j, "app"), *jid = json_get_str(j, "id");
	if (!japp || !app_name_ok(japp))
		return err_set(e, -EINVAL, "manifest: missing or invalid app name");
	if (app && strcmp(app, japp))
		return err_set(e, -EINVAL, "manifest is for app '%s', not '%s'", japp, app);
	if (!jid || !deploy_id_ok(jid))
		return err_set(e, -EINVAL, "manifest: missing or invalid package id");
	if (id && strcmp(id, jid))
		return err_set(e, -EINVAL, "manifest is for package '%s', not '%s'", jid, id);

	struct json_object *blob = json_get_obj(j, "blob");
	const char *key = json_get_str(blob, "key"), *sha = json_get_str(blob, "sha256");
	int64_t size;
	if (!key || !storage_key_ok(key))
		return err_set(e, -EINVAL, "manifest: missing or invalid blob key");
	if (!hex64_ok(sha))
		return err_set(e, -EINVAL, "manifest: missing or invalid blob sha256");
	if (!json_get_int(blob, "size", &size) || size < 0)
		return err_set(e, -EINVAL, "manifest: missing or invalid blob size");

	const char *home = json_get_str(j, "app_home");
	if (!home)
		home = c && c->apps.home ? c->apps.home : "/home/app";
	if (!path_abs_ok(home, true))
		return err_set(e, -EINVAL, "manifest: app_home '%s' is not a safe absolute path", home);

	int64_t uid = c ? c->apps.uid : 1000, gid = c ? c->apps.gid : 1000;
	json_get_int(j, "uid", &uid);
	json_get_int(j, "gid", &gid);
	if (uid < 0 || uid > 0x7fffffff || gid < 0 || gid > 0x7fffffff)
		return err_set(e, -EINVAL, "manifest: invalid uid/gid");

	struct json_object *dep = json_get_obj(j, "deploy");
	struct json_object *hooks = json_get_obj(dep, "hooks");
	int64_t keep = 0;
	if (dep && json_get_int(dep, "keep", &keep) && (keep < 0 || keep > 1000))
		return err_set(e, -EINVAL, "manifest: deploy.keep %lld is out of range",
			       (long long)keep);

	out.app = xstrdup(japp);
	out.id = xstrdup(jid);
	out.blob_key = xstrdup(key);
	memcpy(out.sha256, sha, 65);
	out.size = (uint64_t)size;
	out.app_home = xstrdup(home);
	out.uid = uid;
	out.gid = gid;
	out.keep = (int)keep;
	const char *commit = json_get_str(json_get_obj(j, "repository"), "commit");
	out.commit = xstrdup(commit ? commit : "");
	if ((r = jpaths(dep, "shared", "deploy.shared", &out.shared, e)) < 0 ||
	    (r = jpaths(hooks, "pre", "deploy.hooks.pre", &out.hooks_pre, e)) < 0 ||
	    (r = jpaths(hooks, "post", "deploy.hooks.post", &out.hooks_post, e)) < 0) {
		deploy_manifest_free(&out);
		return r;
	}
	*m = out;
	return 0;
}

void deploy_manifest_free(struct deploy_manifest *m)
{
	if (!m)
		return;
	free(m->app);
	free(m->id);
	free(m->commit);
	free(m->blob_key);
	free(m->app_home);
	strv_free(&m->shared);
	strv_free(&m->hooks_pre);
	strv_free(&m->hooks_post);
	memset(m, 0, sizeof(*m));
}
