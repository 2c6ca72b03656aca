/*
 * common/json.c - the json-c helpers every module shares: one strict parse,
 * typed getters that never take one type for another, and one way to write.
 */
#include <errno.h>
#include <string.h>

#include <json-c/json.h>

#include "common/common.h"

void json_putp(struct json_object **o)
{
	if (*o)
		json_object_put(*o);
}

int json_parse_object(const char *text, struct json_object **ret, struct err *e)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *o;
	enum json_tokener_error je;
	size_t len = strlen(text);

	if (!tok)
		return err_set(e, -ENOMEM, "out of memory");
	o = json_tokener_parse_ex(tok, text, (int)len);
	je = json_tokener_get_error(tok);
	/* trailing text after the object (other than white space) is refused */
	if (o && je == json_tokener_success) {
		size_t off = json_tokener_get_parse_end(tok);
		if (strspn(text + off, " \t\r\n") != len - off)
			je = json_tokener_error_parse_unexpected;
	}
	json_tokener_free(tok);
	if (!o || je != json_tokener_success || !json_object_is_type(o, json_type_object)) {
		if (o)
			json_object_put(o);
		return err_set(e, -EINVAL, "not a JSON object: %s",
			       je != json_tokener_success ? json_tokener_error_desc(je) : "wrong type");
	}
	*ret = o;
	return 0;
}

void json_to_buf(struct json_object *o, struct buf *out)
{
	buf_adds(out, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
						     JSON_C_TO_STRING_SPACED |
						     JSON_C_TO_STRING_NOSLASHESCAPE));
	buf_addch(out, '\n');
}

const char *json_get_str(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

struct json_object *json_get_obj(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_object))
		return NULL;
	return v;
}

bool json_get_int(struct json_object *o, const char *key, int64_t *ret)
{
	struct json_object *v;

	if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
		return false;
	*ret = json_object_get_int64(v);
	return true;
}

struct json_object *json_new_str(const char *s)
{
	return s ? json_object_new_string(s) : NULL;
}

struct json_object *json_new_strv(const struct strv *v)
{
	struct json_object *a = json_object_new_array();

	for (size_t i = 0; i < v->n; i++)
		json_object_array_add(a, json_object_new_string(v->v[i]));
	return a;
}
