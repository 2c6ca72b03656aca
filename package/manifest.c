/*
 * builder/manifest.c - the package manifest (packages/<app>/<id>.json):
 * written by the build, read back by the package commands, the next
 * incremental build and deploy. The format is documented in builder.h.
 */
#include <errno.h>
#include <string.h>

#include <json-c/json.h>

#include "package/package.h"

static void steps_free(struct package_step *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].name);
		free(v[i].status);
	}
	free(v);
}

void package_info_free(struct package_info *p)
{
	if (!p)
		return;
	free(p->app);
	free(p->id);
	free(p->parent);
	free(p->base.kind);
	free(p->base.name);
	free(p->base.sha256);
	free(p->base.reason);
	free(p->image.name);
	free(p->image.sha256);
	free(p->repo.url);
	free(p->repo.ref);
	free(p->repo.commit);
	free(p->interp.type);
	free(p->interp.version);
	free(p->blob.key);
	strv_free(&p->os_packages);
	free(p->metadata_sha256);
	free(p->app_home);
	strv_free(&p->deploy.shared);
	strv_free(&p->deploy.hooks_pre);
	strv_free(&p->deploy.hooks_post);
	free(p->builder);
	steps_free(p->steps, p->n_steps);
	steps_free(p->stages, p->n_stages);
	free(p->created);
	free(p->json);
	memset(p, 0, sizeof(*p));
}

/* ------------------------------------------------------------- writing */

static json_object *jsteps(const struct package_step *v, size_t n)
{
	json_object *a = json_object_new_array();
	for (size_t i = 0; i < n; i++) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "name", json_new_str(v[i].name));
		/* milliseconds are enough, and keep the text stable */
		char t[32];
		snprintf(t, sizeof(t), "%.3f", v[i].seconds);
		json_object_object_add(o, "seconds", json_object_new_double_s(v[i].seconds, t));
		json_object_object_add(o, "status", json_new_str(v[i].status ? v[i].status : "ok"));
		json_object_array_add(a, o);
	}
	return a;
}

void package_manifest_json(const struct package_info *p, struct buf *out)
{
	json_object *o = json_object_new_object(), *x;

	json_object_object_add(o, "format", json_object_new_int(1));
	json_object_object_add(o, "app", json_new_str(p->app));
	json_object_object_add(o, "id", json_new_str(p->id));
	json_object_object_add(o, "parent", json_new_str(p->parent));
	json_object_object_add(o, "fresh", json_object_new_boolean(p->fresh));

	x = json_object_new_object();
	json_object_object_add(x, "kind", json_new_str(p->base.kind));
	json_object_object_add(x, "name", json_new_str(p->base.name));
	json_object_object_add(x, "sha256", json_new_str(p->base.sha256));
	json_object_object_add(x, "reason", json_new_str(p->base.reason));
	json_object_object_add(o, "base", x);

	x = json_object_new_object();
	json_object_object_add(x, "name", json_new_str(p->image.name));
	json_object_object_add(x, "sha256", json_new_str(p->image.sha256));
	json_object_object_add(o, "image", x);

	x = json_object_new_object();
	json_object_object_add(x, "url", json_new_str(p->repo.url));
	json_object_object_add(x, "ref", json_new_str(p->repo.ref));
	json_object_object_add(x, "commit", json_new_str(p->repo.commit));
	json_object_object_add(x, "commit_time", json_object_new_int64(p->repo.commit_time));
	json_object_object_add(o, "repository", x);

	x = json_object_new_object();
	json_object_object_add(x, "type", json_new_str(p->interp.type));
	json_object_object_add(x, "version", json_new_str(p->interp.version));
	json_object_object_add(o, "interpreter", x);

	x = json_object_new_object();
	json_object_object_add(x, "key", json_new_str(p->blob.key));
	json_object_object_add(x, "sha256", json_new_str(p->blob.sha256));
	json_object_object_add(x, "size", json_object_new_int64((int64_t)p->blob.size));
	json_object_object_add(x, "compression", json_new_str("zstd"));
	json_object_object_add(x, "format", json_new_str("pax"));
	json_object_object_add(o, "blob", x);

	/* room for layered packages: today the blob is the only layer */
	json_object *layers = json_object_new_array();
	x = json_object_new_object();
	json_object_object_add(x, "key", json_new_str(p->blob.key));
	json_object_object_add(x, "sha256", json_new_str(p->blob.sha256));
	json_object_object_add(x, "size", json_object_new_int64((int64_t)p->blob.size));
	json_object_array_add(layers, x);
	json_object_object_add(o, "layers", layers);

	json_object_object_add(o, "os_packages", json_new_strv(&p->os_packages));
	json_object_object_add(o, "metadata_sha256", json_new_str(p->metadata_sha256));
	json_object_object_add(o, "app_home", json_new_str(p->app_home));
	json_object_object_add(o, "uid", json_object_new_int64(p->uid));
	json_object_object_add(o, "gid", json_object_new_int64(p->gid));
	json_object_object_add(o, "keep_git", json_object_new_boolean(p->keep_git));

	x = json_object_new_object();
	json_object_object_add(x, "shared", json_new_strv(&p->deploy.shared));
	json_object *h = json_object_new_object();
	json_object_object_add(h, "pre", json_new_strv(&p->deploy.hooks_pre));
	json_object_object_add(h, "post", json_new_strv(&p->deploy.hooks_post));
	json_object_object_add(x, "hooks", h);
	json_object_object_add(x, "keep", json_object_new_int(p->deploy.keep));
	json_object_object_add(o, "deploy", x);

	json_object_object_add(o, "builder", json_new_str(p->builder));
	json_object_object_add(o, "steps", jsteps(p->steps, p->n_steps));
	json_object_object_add(o, "stages", jsteps(p->stages, p->n_stages));
	json_object_object_add(o, "created", json_new_str(p->created));

	json_to_buf(o, out);
	json_object_put(o);
}

/* ------------------------------------------------------------- reading */

static char *jdup(json_object *o, const char *k)
{
	const char *s = json_get_str(o, k);
	return s ? xstrdup(s) : NULL;
}

static int64_t jint(json_object *o, const char *k, int64_t def)
{
	json_object *v;
	if (!o || !json_object_object_get_ex(o, k, &v))
		return def;
	if (!json_object_is_type(v, json_type_int) && !json_object_is_type(v, json_type_double))
		return def;
	return json_object_get_int64(v);
}

static void jget_strv(json_object *o, const char *k, struct strv *out)
{
	json_object *v;
	if (!o || !json_object_object_get_ex(o, k, &v) || !json_object_is_type(v, json_type_array))
		return;
	for (size_t i = 0; i < json_object_array_length(v); i++) {
		json_object *s = json_object_array_get_idx(v, i);
		if (json_object_is_type(s, json_type_string))
			strv_push(out, json_object_get_string(s));
	}
}

static void jget_steps(json_object *o, const char *k, struct package_step **ret, size_t *ret_n)
{
	json_object *v;
	if (!o || !json_object_object_get_ex(o, k, &v) || !json_object_is_type(v, json_type_array))
		return;
	size_t n = json_object_array_length(v);
	struct package_step *s = xcalloc(n ? n : 1, sizeof(*s));
	for (size_t i = 0; i < n; i++) {
		json_object *x = json_object_array_get_idx(v, i), *sec;
		s[i].name = jdup(x, "name");
		s[i].status = jdup(x, "status");
		if (json_object_object_get_ex(x, "seconds", &sec))
			s[i].seconds = json_object_get_double(sec);
	}
	*ret = s;
	*ret_n = n;
}

int package_manifest_parse(struct package_info *ret, const char *text, struct err *e)
{
	struct json_tokener *tok = json_tokener_new();
	json_object *o = json_tokener_parse_ex(tok, text, (int)strlen(text));
	enum json_tokener_error je = json_tokener_get_error(tok);
	json_tokener_free(tok);
	if (!o || je != json_tokener_success || !json_object_is_type(o, json_type_object)) {
		if (o)
			json_object_put(o);
		return err_set(e, -EINVAL, "not a JSON object: %s",
			       je != json_tokener_success ? json_tokener_error_desc(je) : "wrong type");
	}

	struct package_info p = { 0 };
	json_object *x;
	int r = 0;

	if (jint(o, "format", 0) != 1)
		r = err_set(e, -EINVAL, "unknown manifest format %lld", (long long)jint(o, "format", 0));
	p.app = jdup(o, "app");
	p.id = jdup(o, "id");
	p.parent = jdup(o, "parent");
	p.fresh = json_object_object_get_ex(o, "fresh", &x) && json_object_get_boolean(x);
	x = json_get_obj(o, "base");
	p.base.kind = jdup(x, "kind");
	p.base.name = jdup(x, "name");
	p.base.sha256 = jdup(x, "sha256");
	p.base.reason = jdup(x, "reason");
	x = json_get_obj(o, "image");
	p.image.name = jdup(x, "name");
	p.image.sha256 = jdup(x, "sha256");
	x = json_get_obj(o, "repository");
	p.repo.url = jdup(x, "url");
	p.repo.ref = jdup(x, "ref");
	p.repo.commit = jdup(x, "commit");
	p.repo.commit_time = jint(x, "commit_time", 0);
	x = json_get_obj(o, "interpreter");
	p.interp.type = jdup(x, "type");
	p.interp.version = jdup(x, "version");
	x = json_get_obj(o, "blob");
	p.blob.key = jdup(x, "key");
	const char *sha = json_get_str(x, "sha256");
	if (hex64_ok(sha))
		memcpy(p.blob.sha256, sha, 65);
	int64_t size = jint(x, "size", -1);
	p.blob.size = size > 0 ? (uint64_t)size : 0;
	jget_strv(o, "os_packages", &p.os_packages);
	p.metadata_sha256 = jdup(o, "metadata_sha256");
	p.app_home = jdup(o, "app_home");
	p.uid = jint(o, "uid", -1);
	p.gid = jint(o, "gid", -1);
	p.keep_git = json_object_object_get_ex(o, "keep_git", &x) && json_object_get_boolean(x);
	x = json_get_obj(o, "deploy");
	jget_strv(x, "shared", &p.deploy.shared);
	jget_strv(json_get_obj(x, "hooks"), "pre", &p.deploy.hooks_pre);
	jget_strv(json_get_obj(x, "hooks"), "post", &p.deploy.hooks_post);
	p.deploy.keep = (int)jint(x, "keep", 0);
	p.builder = jdup(o, "builder");
	jget_steps(o, "steps", &p.steps, &p.n_steps);
	jget_steps(o, "stages", &p.stages, &p.n_stages);
	p.created = jdup(o, "created");
	json_object_put(o);

	if (r >= 0 && (!p.app || !p.id))
		r = err_set(e, -EINVAL, "manifest lacks \"app\" or \"id\"");
	if (r >= 0 && (!p.blob.key || !p.blob.sha256[0] || size < 0))
		r = err_set(e, -EINVAL, "manifest lacks a valid \"blob\" (key, sha256, size)");
	if (r >= 0 && !storage_key_ok(p.blob.key))
		r = err_set(e, -EINVAL, "manifest names a bad blob key '%s'", p.blob.key);
	if (r < 0) {
		package_info_free(&p);
		return r;
	}
	p.json = xstrdup(text);
	*ret = p;
	return 0;
}
