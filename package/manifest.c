/*
 * package/manifest.c - the package manifest (packages/<app>/<id>.json):
 * written by the build, read back by the package commands, the next
 * incremental build and deploy, all with the one strict reader below. The
 * format is documented in package.h.
 */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
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
	for (size_t i = 0; i < p->n_layers; i++) {
		free(p->layers[i].key);
		free(p->layers[i].kind);
	}
	free(p->layers);
	strv_free(&p->os_packages);
	free(p->metadata_sha256);
	free(p->app_home);
	strv_free(&p->deploy.shared);
	strv_free(&p->deploy.hooks_pre);
	strv_free(&p->deploy.hooks_post);
	free(p->builder);
	free(p->upaas_version);
	free(p->key_id);
	free(p->sbom.key);
	free(p->signer);
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

	json_object_object_add(o, "format", json_object_new_int(PACKAGE_FORMAT));
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

	/* the layers, bottom first (upaas-package(5)) */
	json_object *layers = json_object_new_array();
	for (size_t i = 0; i < p->n_layers; i++) {
		const struct package_layer *l = &p->layers[i];
		x = json_object_new_object();
		json_object_object_add(x, "sha256", json_new_str(l->sha256));
		json_object_object_add(x, "size", json_object_new_int64((int64_t)l->size));
		json_object_object_add(x, "kind", json_new_str(l->kind ? l->kind
							      : i ? "delta" : "full"));
		json_object_object_add(x, "key", json_new_str(l->key));
		json_object_array_add(layers, x);
	}
	json_object_object_add(o, "layers", layers);

	json_object_object_add(o, "os_packages", json_new_strv(&p->os_packages));
	json_object_object_add(o, "metadata_sha256", json_new_str(p->metadata_sha256));
	json_object_object_add(o, "app_home", json_new_str(p->app_home));
	/* -1 (unknown) is written as null, as absent strings are */
	json_object_object_add(o, "uid", p->uid < 0 ? NULL : json_object_new_int64(p->uid));
	json_object_object_add(o, "gid", p->gid < 0 ? NULL : json_object_new_int64(p->gid));
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
	json_object_object_add(o, "upaas_version", json_new_str(p->upaas_version));
	json_object_object_add(o, "key_id", json_new_str(p->key_id));
	if (p->sbom.key) {
		x = json_object_new_object();
		json_object_object_add(x, "key", json_new_str(p->sbom.key));
		json_object_object_add(x, "sha256", json_new_str(p->sbom.sha256));
		json_object_object_add(x, "size", json_object_new_int64((int64_t)p->sbom.size));
		json_object_object_add(o, "sbom", x);
	} else {
		json_object_object_add(o, "sbom", NULL);
	}
	json_object_object_add(o, "steps", jsteps(p->steps, p->n_steps));
	json_object_object_add(o, "stages", jsteps(p->stages, p->n_stages));
	json_object_object_add(o, "created", json_new_str(p->created));

	json_to_buf(o, out);
	json_object_put(o);
}

/* ------------------------------------------------------------- reading */

/*
 * The one reader. A manifest comes from storage and is data: the JSON is
 * walked with a table of the fields this edition knows. A known field that
 * is present must have its type and pass its check; null counts as absent;
 * required fields must be there; unknown fields are ignored, so that a
 * newer builder may add some. Every string and list is bounded.
 */

#define TEXT_MAX 4096           /* bytes of any string */
#define LIST_MAX 256            /* entries of a list (steps, paths, layers) */
#define PACKAGES_MAX 4096       /* os_packages: the line's packages only grow */
#define NOSTORE ((size_t)-1)    /* checked, not kept */

enum ftype {
	FT_STR,                 /* char *, checked by ok() */
	FT_SHA,                 /* char[65], 64 lowercase hex digits */
	FT_I64,                 /* int64_t in [min, max] */
	FT_U64,                 /* uint64_t in [min, max] */
	FT_INT,                 /* int in [min, max] */
	FT_NUM,                 /* double (integer or not) in [min, max] */
	FT_BOOL,
	FT_STRV,                /* struct strv of at most max strings, each ok() */
	FT_OBJ,                 /* the fields sub, filled into the same base */
	FT_OBJV,                /* list of at most max objects of elem bytes (sub) */
};

struct field {
	const char *name;
	enum ftype type;
	size_t off;             /* into the struct filled; NOSTORE: check only */
	size_t off_n;           /* FT_OBJV: the size_t count */
	size_t elem;            /* FT_OBJV: size of one object */
	bool required;
	int64_t min, max;       /* numbers; lists: max entries */
	bool (*ok)(const char *s);
	const char *what;       /* what ok() accepts, for the message */
	const struct field *sub;
};

static bool commit_ok(const char *s)
{
	size_t n = strlen(s);
	if (n != 40 && n != 64)
		return false;
	return strspn(s, "0123456789abcdef") == n;
}

static bool kind_ok(const char *s)
{
	return !strcmp(s, "image") || !strcmp(s, "package");
}

static bool home_ok(const char *s)
{
	return path_abs_ok(s, true);
}

static bool time_ok(const char *s)
{
	int64_t t;
	return time_parse_iso8601(s, &t) == 0;
}

#define F(n, t, o) .name = (n), .type = (t), .off = (o)
#define PI(m) offsetof(struct package_info, m)
#define PS(m) offsetof(struct package_step, m)

/* The blob of a first-edition manifest (format 1): its one layer. */
struct blob {
	char *key;
	char sha256[65];
	uint64_t size;
};
#define PB(m) offsetof(struct blob, m)
#define PL(m) offsetof(struct package_layer, m)

static bool layer_kind_ok(const char *s)
{
	return !strcmp(s, "full") || !strcmp(s, "delta");
}

static const struct field step_fields[] = {
	{ F("name", FT_STR, PS(name)), .required = true },
	{ F("seconds", FT_NUM, PS(seconds)), .min = 0, .max = INT64_MAX },
	{ F("status", FT_STR, PS(status)) },
	{ 0 },
};

static const struct field layer_fields[] = {
	{ F("key", FT_STR, PL(key)), .required = true, .ok = storage_key_ok,
	  .what = "a storage key" },
	{ F("sha256", FT_SHA, PL(sha256)), .required = true },
	{ F("size", FT_U64, PL(size)), .required = true, .min = 0, .max = INT64_MAX },
	{ F("kind", FT_STR, PL(kind)), .ok = layer_kind_ok, .what = "\"full\" or \"delta\"" },
	{ 0 },
};

static const struct field base_fields[] = {
	{ F("kind", FT_STR, PI(base.kind)), .ok = kind_ok, .what = "\"image\" or \"package\"" },
	{ F("name", FT_STR, PI(base.name)) },
	{ F("sha256", FT_STR, PI(base.sha256)), .ok = hex64_ok, .what = "a sha256" },
	{ F("reason", FT_STR, PI(base.reason)) },
	{ 0 },
};

static const struct field image_fields[] = {
	{ F("name", FT_STR, PI(image.name)) },
	{ F("sha256", FT_STR, PI(image.sha256)), .ok = hex64_ok, .what = "a sha256" },
	{ 0 },
};

static const struct field repo_fields[] = {
	{ F("url", FT_STR, PI(repo.url)) },
	{ F("ref", FT_STR, PI(repo.ref)) },
	{ F("commit", FT_STR, PI(repo.commit)), .ok = commit_ok,
	  .what = "a commit id (40 or 64 lowercase hex digits)" },
	{ F("commit_time", FT_I64, PI(repo.commit_time)), .min = INT64_MIN, .max = INT64_MAX },
	{ 0 },
};

static const struct field interp_fields[] = {
	{ F("type", FT_STR, PI(interp.type)) },
	{ F("version", FT_STR, PI(interp.version)) },
	{ 0 },
};

static const struct field blob_fields[] = {
	{ F("key", FT_STR, PB(key)), .required = true, .ok = storage_key_ok,
	  .what = "a storage key" },
	{ F("sha256", FT_SHA, PB(sha256)), .required = true },
	{ F("size", FT_U64, PB(size)), .required = true, .min = 0, .max = INT64_MAX },
	{ F("compression", FT_STR, NOSTORE) },
	{ F("format", FT_STR, NOSTORE) },
	{ 0 },
};

static bool key_id_ok(const char *s)
{
	return strlen(s) == 16 && strspn(s, "0123456789abcdef") == 16;
}

static const struct field sbom_fields[] = {
	{ F("key", FT_STR, PI(sbom.key)), .required = true, .ok = storage_key_ok,
	  .what = "a storage key" },
	{ F("sha256", FT_SHA, PI(sbom.sha256)), .required = true },
	{ F("size", FT_U64, PI(sbom.size)), .required = true, .min = 0, .max = INT64_MAX },
	{ 0 },
};

static const struct field hooks_fields[] = {
	{ F("pre", FT_STRV, PI(deploy.hooks_pre)), .max = LIST_MAX, .ok = path_rel_ok,
	  .what = "a safe relative path" },
	{ F("post", FT_STRV, PI(deploy.hooks_post)), .max = LIST_MAX, .ok = path_rel_ok,
	  .what = "a safe relative path" },
	{ 0 },
};

static const struct field deploy_fields[] = {
	{ F("shared", FT_STRV, PI(deploy.shared)), .max = LIST_MAX, .ok = path_rel_ok,
	  .what = "a safe relative path" },
	{ F("hooks", FT_OBJ, 0), .sub = hooks_fields },
	{ F("keep", FT_INT, PI(deploy.keep)), .min = 0, .max = METADATA_KEEP_MAX },
	{ 0 },
};

static const struct field manifest_fields[] = {
	{ F("format", FT_INT, PI(format)), .required = true, .min = 1, .max = PACKAGE_FORMAT,
	  .what = "1 or 2, the formats this upaas reads" },
	{ F("app", FT_STR, PI(app)), .required = true, .ok = app_name_ok,
	  .what = "a valid app name" },
	{ F("id", FT_STR, PI(id)), .required = true, .ok = package_id_ok,
	  .what = "a valid package id" },
	{ F("parent", FT_STR, PI(parent)), .ok = package_id_ok, .what = "a valid package id" },
	{ F("fresh", FT_BOOL, PI(fresh)) },
	{ F("base", FT_OBJ, 0), .sub = base_fields },
	{ F("image", FT_OBJ, 0), .sub = image_fields },
	{ F("repository", FT_OBJ, 0), .sub = repo_fields },
	{ F("interpreter", FT_OBJ, 0), .sub = interp_fields },
	{ F("layers", FT_OBJV, PI(layers)), .off_n = PI(n_layers),
	  .elem = sizeof(struct package_layer), .max = PACKAGE_LAYERS_MAX, .sub = layer_fields },
	{ F("os_packages", FT_STRV, PI(os_packages)), .max = PACKAGES_MAX, .ok = package_name_ok,
	  .what = "a valid Debian package name" },
	{ F("metadata_sha256", FT_STR, PI(metadata_sha256)), .ok = hex64_ok, .what = "a sha256" },
	{ F("app_home", FT_STR, PI(app_home)), .ok = home_ok, .what = "a safe absolute path" },
	{ F("uid", FT_I64, PI(uid)), .min = APPS_ID_MIN, .max = APPS_ID_MAX },
	{ F("gid", FT_I64, PI(gid)), .min = APPS_ID_MIN, .max = APPS_ID_MAX },
	{ F("keep_git", FT_BOOL, PI(keep_git)) },
	{ F("deploy", FT_OBJ, 0), .sub = deploy_fields },
	{ F("builder", FT_STR, PI(builder)) },
	{ F("upaas_version", FT_STR, PI(upaas_version)) },
	{ F("key_id", FT_STR, PI(key_id)), .ok = key_id_ok, .what = "a key id (16 hex digits)" },
	{ F("sbom", FT_OBJ, 0), .sub = sbom_fields },
	{ F("steps", FT_OBJV, PI(steps)), .off_n = PI(n_steps),
	  .elem = sizeof(struct package_step), .max = LIST_MAX, .sub = step_fields },
	{ F("stages", FT_OBJV, PI(stages)), .off_n = PI(n_stages),
	  .elem = sizeof(struct package_step), .max = LIST_MAX, .sub = step_fields },
	{ F("created", FT_STR, PI(created)), .ok = time_ok,
	  .what = "a time like 2026-11-20T21:45:00Z" },
	{ 0 },
};

static const char *type_want(enum ftype t)
{
	switch (t) {
	case FT_STR: case FT_SHA: return "a string";
	case FT_I64: case FT_U64: case FT_INT: return "an integer";
	case FT_NUM: return "a number";
	case FT_BOOL: return "true or false";
	case FT_STRV: return "a list of strings";
	case FT_OBJ: return "an object";
	case FT_OBJV: return "a list of objects";
	}
	return "?";
}

static const char *type_got(struct json_object *v)
{
	switch (json_object_get_type(v)) {
	case json_type_null: return "null";
	case json_type_boolean: return "a boolean";
	case json_type_double: return "a floating-point number";
	case json_type_int: return "an integer";
	case json_type_object: return "an object";
	case json_type_array: return "a list";
	case json_type_string: return "a string";
	}
	return "?";
}

static int wrong_type(const char *name, enum ftype t, struct json_object *v, struct err *e)
{
	return err_set(e, -EINVAL, "manifest: %s is %s, not %s", name, type_got(v), type_want(t));
}

/* v as a string of at most max bytes without NUL or control characters. */
static int get_text(const char *name, struct json_object *v, const char **ret, struct err *e)
{
	if (!json_object_is_type(v, json_type_string))
		return wrong_type(name, FT_STR, v, e);
	const char *s = json_object_get_string(v);
	size_t n = (size_t)json_object_get_string_len(v);
	if (n > TEXT_MAX)
		return err_set(e, -EINVAL, "manifest: %s is longer than %d bytes", name, TEXT_MAX);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return err_set(e, -EINVAL, "manifest: %s holds a control character", name);
	*ret = s;
	return 0;
}

/* The start of an untrusted (but checked) string, for a message. */
static const char *shown(const char *s, char out[72])
{
	size_t n = strlen(s);
	snprintf(out, 72, "%.64s%s", s, n > 64 ? "..." : "");
	return out;
}

static int bad_value(const char *name, const char *s, const char *what, struct err *e)
{
	char b[72];
	return err_set(e, -EINVAL, "manifest: %s '%s' is not %s", name, shown(s, b), what);
}

static int read_fields(struct json_object *o, const char *prefix, const struct field *fields,
		       void *base, struct err *e);

/* One present, non-null field: checked, then stored at base + f->off. */
static int read_value(struct json_object *v, const char *name, const struct field *f,
		      void *base, struct err *e)
{
	char *at = f->off == NOSTORE ? NULL : (char *)base + f->off;
	const char *s;
	int r;

	switch (f->type) {
	case FT_STR:
		if ((r = get_text(name, v, &s, e)) < 0)
			return r;
		if (f->ok && !f->ok(s))
			return bad_value(name, s, f->what, e);
		if (at)
			*(char **)at = xstrdup(s);
		return 0;
	case FT_SHA:
		if ((r = get_text(name, v, &s, e)) < 0)
			return r;
		if (!hex64_ok(s))
			return bad_value(name, s, "a sha256 (64 lowercase hex digits)", e);
		if (at)
			memcpy(at, s, 65);
		return 0;
	case FT_I64: case FT_U64: case FT_INT: {
		if (!json_object_is_type(v, json_type_int))
			return wrong_type(name, f->type, v, e);
		int64_t n = json_object_get_int64(v);
		if (n < f->min || n > f->max) {
			if (f->what)
				return err_set(e, -EINVAL, "manifest: %s %lld is not %s", name,
					       (long long)n, f->what);
			return err_set(e, -EINVAL, "manifest: %s %lld is out of range [%lld, %lld]",
				       name, (long long)n, (long long)f->min, (long long)f->max);
		}
		if (at && f->type == FT_I64)
			*(int64_t *)at = n;
		else if (at && f->type == FT_U64)
			*(uint64_t *)at = (uint64_t)n;
		else if (at)
			*(int *)at = (int)n;
		return 0;
	}
	case FT_NUM: {
		if (!json_object_is_type(v, json_type_int) && !json_object_is_type(v, json_type_double))
			return wrong_type(name, f->type, v, e);
		double d = json_object_get_double(v);
		if (!isfinite(d) || d < (double)f->min || d > (double)f->max)
			return err_set(e, -EINVAL, "manifest: %s %g is out of range", name, d);
		if (at)
			*(double *)at = d;
		return 0;
	}
	case FT_BOOL:
		if (!json_object_is_type(v, json_type_boolean))
			return wrong_type(name, f->type, v, e);
		if (at)
			*(bool *)at = json_object_get_boolean(v);
		return 0;
	case FT_OBJ:
		if (!json_object_is_type(v, json_type_object))
			return wrong_type(name, f->type, v, e);
		return read_fields(v, name, f->sub, base, e);
	case FT_STRV: case FT_OBJV:
		break;
	}

	/* lists */
	if (!json_object_is_type(v, json_type_array))
		return wrong_type(name, f->type, v, e);
	size_t n = json_object_array_length(v);
	if (n > (size_t)f->max)
		return err_set(e, -EINVAL, "manifest: %s has %zu entries, more than %lld", name, n,
			       (long long)f->max);
	if (f->type == FT_STRV) {
		for (size_t i = 0; i < n; i++) {
			_cleanup_free_ char *item = xasprintf("%s[%zu]", name, i);
			if ((r = get_text(item, json_object_array_get_idx(v, i), &s, e)) < 0)
				return r;
			if (f->ok && !f->ok(s)) {
				char b[72];
				return err_set(e, -EINVAL, "manifest: %s entry '%s' is not %s", name,
					       shown(s, b), f->what);
			}
			if (at)
				strv_push((struct strv *)at, s);
		}
		return 0;
	}
	/* FT_OBJV: stored (with its count) before it is filled, so that a
	 * failure half-way is freed with the rest */
	char *objs = xcalloc(n ? n : 1, f->elem);
	if (at) {
		*(void **)at = objs;
		*(size_t *)((char *)base + f->off_n) = n;
	}
	r = 0;
	for (size_t i = 0; i < n && r >= 0; i++) {
		_cleanup_free_ char *item = xasprintf("%s[%zu]", name, i);
		struct json_object *x = json_object_array_get_idx(v, i);
		if (!json_object_is_type(x, json_type_object))
			r = err_set(e, -EINVAL, "manifest: %s is %s, not an object", item, type_got(x));
		else
			r = read_fields(x, item, f->sub, objs + i * f->elem, e);
	}
	if (!at) {
		/* checked only: free what the strings of each object hold */
		for (size_t i = 0; i < n; i++)
			for (const struct field *g = f->sub; g->name; g++)
				if (g->type == FT_STR && g->off != NOSTORE)
					free(*(char **)(objs + i * f->elem + g->off));
		free(objs);
	}
	return r;
}

static int read_fields(struct json_object *o, const char *prefix, const struct field *fields,
		       void *base, struct err *e)
{
	for (const struct field *f = fields; f->name; f++) {
		_cleanup_free_ char *name = *prefix ? xasprintf("%s.%s", prefix, f->name)
						    : xstrdup(f->name);
		struct json_object *v = NULL;
		if (!json_object_object_get_ex(o, f->name, &v) || !v) {
			if (f->required)
				return err_set(e, -EINVAL, "manifest: %s is missing", name);
			continue;
		}
		int r = read_value(v, name, f, base, e);
		if (r < 0)
			return r;
	}
	return 0;
}

/* The key a layer may have: its content address, or (the bottom layer
 * only) the blob of a first-edition package of the same app. */
static bool layer_key_ok(const struct package_info *p, size_t i)
{
	const struct package_layer *l = &p->layers[i];
	_cleanup_free_ char *cas = storage_key_layer(l->sha256);
	_cleanup_free_ char *prefix = xasprintf("packages/%s/", p->app);
	size_t n = strlen(l->key), k = strlen(prefix);

	if (!strcmp(l->key, cas))
		return true;
	if (i || n <= k + 8 || strncmp(l->key, prefix, k) || strcmp(l->key + n - 8, ".tar.zst"))
		return false;
	_cleanup_free_ char *id = xstrndup(l->key + k, n - k - 8);
	return package_id_ok(id);
}

/*
 * The layers of p: a first-edition manifest (format 1) has one, its blob;
 * a layered one (format 2) lists them, bottom first, the bottom one full
 * and the others deltas, each once, each under its content address (or the
 * bottom one under a first-edition blob's key).
 */
static int layers_check(struct json_object *o, struct package_info *p, struct err *e)
{
	if (p->format == 1) {
		struct json_object *v = NULL;
		struct blob b = { 0 };
		int r;

		/* the first edition wrote "layers": [ the blob ]; the blob says it */
		for (size_t i = 0; i < p->n_layers; i++) {
			free(p->layers[i].key);
			free(p->layers[i].kind);
		}
		free(p->layers);
		p->layers = NULL;
		p->n_layers = 0;
		if (!json_object_object_get_ex(o, "blob", &v) || !v)
			return err_set(e, -EINVAL, "manifest: blob is missing");
		if (!json_object_is_type(v, json_type_object))
			return wrong_type("blob", FT_OBJ, v, e);
		r = read_fields(v, "blob", blob_fields, &b, e);
		if (r < 0) {
			free(b.key);
			return r;
		}
		p->layers = xcalloc(1, sizeof(*p->layers));
		p->n_layers = 1;
		p->layers[0] = (struct package_layer){ .key = b.key, .size = b.size,
						       .kind = xstrdup("full") };
		memcpy(p->layers[0].sha256, b.sha256, sizeof(b.sha256));
		return 0;
	}
	if (!p->n_layers)
		return err_set(e, -EINVAL, "manifest: layers is %s",
			       p->layers ? "empty" : "missing");
	for (size_t i = 0; i < p->n_layers; i++) {
		struct package_layer *l = &p->layers[i];
		const char *want = i ? "delta" : "full";

		if (!l->kind)
			l->kind = xstrdup(want);
		if (strcmp(l->kind, want))
			return err_set(e, -EINVAL, "manifest: layers[%zu].kind is '%s', not '%s' (the "
				       "bottom layer is full, the others are deltas)", i, l->kind, want);
		if (!layer_key_ok(p, i))
			return err_set(e, -EINVAL, "manifest: layers[%zu].key '%.128s%s' is not "
				       "layers/<its sha256>.tar.zst", i, l->key,
				       strlen(l->key) > 128 ? "..." : "");
		for (size_t k = 0; k < i; k++)
			if (!strcmp(p->layers[k].sha256, l->sha256))
				return err_set(e, -EINVAL, "manifest: layers[%zu] and layers[%zu] are the "
					       "same layer", k, i);
	}
	return 0;
}

/* The values of field ("key", "sha256") of every layer and of a first
 * edition's blob, each once, read leniently (collection must see what a
 * manifest the strict reader refuses still lists). */
static int manifest_layer_field(const char *text, const char *field, struct strv *ret,
				struct err *e)
{
	_cleanup_json_ struct json_object *o = NULL;
	struct json_object *v = NULL, *k = NULL;

	if (strlen(text) > PACKAGE_MANIFEST_MAX || json_parse_object(text, &o, e) < 0) {
		err_clear(e);
		return err_set(e, -EBADMSG, "not a JSON object of at most %zu bytes",
			       PACKAGE_MANIFEST_MAX);
	}
	if (json_object_object_get_ex(o, "layers", &v) && json_object_is_type(v, json_type_array))
		for (size_t i = 0; i < json_object_array_length(v); i++) {
			struct json_object *l = json_object_array_get_idx(v, i);
			if (json_object_is_type(l, json_type_object) &&
			    json_object_object_get_ex(l, field, &k) &&
			    json_object_is_type(k, json_type_string) &&
			    !strv_contains(ret, json_object_get_string(k)))
				strv_push(ret, json_object_get_string(k));
		}
	if (json_object_object_get_ex(o, "blob", &v) && json_object_is_type(v, json_type_object) &&
	    json_object_object_get_ex(v, field, &k) && json_object_is_type(k, json_type_string) &&
	    !strv_contains(ret, json_object_get_string(k)))
		strv_push(ret, json_object_get_string(k));
	return 0;
}

int package_manifest_keys(const char *text, struct strv *ret, struct err *e)
{
	return manifest_layer_field(text, "key", ret, e);
}

int package_manifest_shas(const char *text, struct strv *ret, struct err *e)
{
	return manifest_layer_field(text, "sha256", ret, e);
}

uint64_t package_size(const struct package_info *p)
{
	uint64_t n = 0;

	for (size_t i = 0; i < p->n_layers; i++)
		n += p->layers[i].size;
	return n;
}

int package_manifest_parse(struct package_info *ret, const char *text, const char *app,
			   const char *id, struct err *e)
{
	_cleanup_json_ struct json_object *o = NULL;
	struct package_info p = { .uid = -1, .gid = -1 };
	size_t len = strlen(text);
	int r;

	if (len > PACKAGE_MANIFEST_MAX)
		return err_set(e, -EINVAL, "manifest: larger than %zu bytes", PACKAGE_MANIFEST_MAX);
	if ((r = json_parse_object(text, &o, e)) < 0)
		return err_prefix(e, "manifest");
	r = read_fields(o, "", manifest_fields, &p, e);
	if (r >= 0)
		r = layers_check(o, &p, e);
	if (r >= 0 && app && strcmp(p.app, app))
		r = err_set(e, -EINVAL, "manifest is for app '%s', not '%s'", p.app, app);
	if (r >= 0 && id && strcmp(p.id, id))
		r = err_set(e, -EINVAL, "manifest is for package '%s', not '%s'", p.id, id);
	if (r < 0) {
		package_info_free(&p);
		return r;
	}
	/* the writer writes "ok" for a step without a status */
	for (size_t i = 0; i < p.n_steps; i++)
		if (!p.steps[i].status)
			p.steps[i].status = xstrdup("ok");
	for (size_t i = 0; i < p.n_stages; i++)
		if (!p.stages[i].status)
			p.stages[i].status = xstrdup("ok");
	p.json = xstrdup(text);
	*ret = p;
	return 0;
}

/* ------------------------------------------------------------- ids */

static bool has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);
	return n >= k && !strcmp(s + n - k, suffix);
}

bool package_id_ok(const char *id)
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
	/* the names deploy gives to revisions in the making and failed ones */
	return !has_suffix(id, ".tmp") && !has_suffix(id, ".failed");
}
