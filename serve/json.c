/*
 * serve/json.c - JSON objects shared by the CLI's --json output and the
 * HTTP API: packages and deploy results.
 */
#define UPAAS_SERVE_INTERNAL 1
#include <string.h>

#include "serve/serve-int.h"

struct json_object *package_json(const struct package_info *p, bool is_current)
{
	struct json_object *o = p->json ? json_tokener_parse(p->json) : NULL;
	if (!o)
		return NULL;
	if (!json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return NULL;
	}
	json_object_object_add(o, "current", json_object_new_boolean(is_current));
	json_object_object_add(o, "total_size", json_object_new_int64((int64_t)package_size(p)));
	return o;
}

struct json_object *deploy_result_json(const char *app, const struct deploy_result *r)
{
	struct json_object *j = json_object_new_object();
	json_object_object_add(j, "app", json_object_new_string(app));
	json_object_object_add(j, "id", r->id ? json_object_new_string(r->id) : NULL);
	json_object_object_add(j, "previous", r->previous ? json_object_new_string(r->previous) : NULL);
	json_object_object_add(j, "operation", json_object_new_string(deploy_op_name(r->op)));
	json_object_object_add(j, "noop", json_object_new_boolean(r->noop));
	json_object_object_add(j, "fetched", json_object_new_boolean(r->fetched));
	json_object_object_add(j, "reverted", json_object_new_boolean(r->reverted));
	json_object_object_add(j, "switch_us", json_object_new_int64((int64_t)r->switch_us));
	json_object_object_add(j, "fetch_ms", json_object_new_int64((int64_t)r->fetch_ms));
	json_object_object_add(j, "extract_ms", json_object_new_int64((int64_t)r->extract_ms));
	json_object_object_add(j, "total_ms", json_object_new_int64((int64_t)r->total_ms));
	json_object_object_add(j, "fetched_bytes", json_object_new_int64((int64_t)r->fetched_bytes));
	json_object_object_add(j, "fetched_layers",
			       json_object_new_int64((int64_t)r->fetched_layers));
	json_object_object_add(j, "kept_layers", json_object_new_int64((int64_t)r->kept_layers));
	return j;
}
