/*
 * queue/json.c - the JSON objects of apps and builds, shared by the CLI's
 * --json output and the HTTP API of `upaas serve`.
 */
#define UPAAS_QUEUE_INTERNAL 1
#include <string.h>

#include <json-c/json.h>

#include "queue/queue-int.h"

static struct json_object *jstr(const char *s)
{
	return s ? json_object_new_string(s) : NULL;
}

/* Adds name (ISO 8601) and name_ms (unix ms); both null when ms is 0. */
static void add_time(struct json_object *o, const char *name, int64_t ms)
{
	_cleanup_free_ char *name_ms = xasprintf("%s_ms", name);
	if (!ms) {
		json_object_object_add(o, name, NULL);
		json_object_object_add(o, name_ms, NULL);
		return;
	}
	char t[32];
	time_iso8601(ms / 1000, t);
	json_object_object_add(o, name, json_object_new_string(t));
	json_object_object_add(o, name_ms, json_object_new_int64(ms));
}

struct json_object *queue_app_json(const struct queue_app *a, bool with_secret)
{
	struct json_object *o = json_object_new_object();
	char t[32];
	time_iso8601(a->created / 1000, t);
	json_object_object_add(o, "name", jstr(a->name));
	/* the registry keeps the URL as given; what is shown has no credentials */
	_cleanup_free_ char *repo = a->repo ? url_redacted(a->repo) : NULL;
	json_object_object_add(o, "repo", jstr(repo));
	json_object_object_add(o, "branch", jstr(a->branch));
	json_object_object_add(o, "created", json_object_new_string(t));
	if (with_secret)
		json_object_object_add(o, "webhook_secret", jstr(a->webhook_secret));
	return o;
}

struct json_object *queue_build_json(const struct queue_build *b)
{
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "id", jstr(b->id));
	json_object_object_add(o, "app", jstr(b->app));
	json_object_object_add(o, "ref", jstr(b->ref));
	json_object_object_add(o, "fresh", json_object_new_boolean(b->fresh));
	json_object_object_add(o, "state", jstr(build_state_name(b->state)));
	json_object_object_add(o, "worker", jstr(b->worker));
	json_object_object_add(o, "attempts", json_object_new_int(b->attempts));
	json_object_object_add(o, "package_id", jstr(b->package_id));
	json_object_object_add(o, "error", jstr(b->error));
	json_object_object_add(o, "cancel_requested", json_object_new_boolean(b->cancel_requested));
	add_time(o, "queued_at", b->queued_at);
	add_time(o, "started_at", b->started_at);
	add_time(o, "finished_at", b->finished_at);
	add_time(o, "lease_until", b->lease_until);
	return o;
}
