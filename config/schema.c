/*
 * config/schema.c - the walker that applies a field table to a libconfig
 * group, and the writer that shows a table back in libconfig syntax.
 */
#define UPAAS_CONFIG_INTERNAL
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <string.h>

#include "config/config-int.h"

#define AT(base, off, type) ((type *)((char *)(base) + (off)))
#define CAT(base, off, type) ((const type *)((const char *)(base) + (off)))

/* ---------------------------------------------------------------- helpers */

void schema_path(const config_setting_t *s, struct buf *out)
{
	const config_setting_t *parent = config_setting_parent(s);

	if (!parent)
		return;   /* the root */
	if (config_setting_parent(parent)) {
		schema_path(parent, out);
		if (config_setting_name(s))
			buf_addch(out, '.');
	}
	if (config_setting_name(s))
		buf_adds(out, config_setting_name(s));
	else
		buf_addf(out, "[%d]", config_setting_index(s));
}

void schema_diag(struct schema_ctx *x, const config_setting_t *s, const char *fmt, ...)
{
	_cleanup_buf_ struct buf msg = BUF_INIT;
	va_list ap;
	const char *file = config_setting_source_file(s);

	schema_path(s, &msg);
	if (msg.len)
		buf_adds(&msg, ": ");
	va_start(ap, fmt);
	buf_vaddf(&msg, fmt, ap);
	va_end(ap);
	diags_add(x->d, file ? file : x->file, (int)config_setting_source_line(s), "%s", msg.p);
}

const char *schema_type_name(int type)
{
	switch (type) {
	case CONFIG_TYPE_GROUP: return "a group";
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64: return "an integer";
	case CONFIG_TYPE_FLOAT: return "a float";
	case CONFIG_TYPE_STRING: return "a string";
	case CONFIG_TYPE_BOOL: return "a boolean";
	case CONFIG_TYPE_ARRAY: return "an array";
	case CONFIG_TYPE_LIST: return "a list";
	default: return "nothing";
	}
}

void schema_syntax_error(const config_t *cf, const char *file, struct diags *d)
{
	const char *f = config_error_file(cf);
	const char *text = config_error_text(cf);

	diags_add(d, f ? f : file, config_error_line(cf), "%s", text ? text : "cannot parse");
}

static void expected(struct schema_ctx *x, const config_setting_t *s, const char *what)
{
	schema_diag(x, s, "expected %s, got %s", what, schema_type_name(config_setting_type(s)));
}

static bool is_int(const config_setting_t *s)
{
	int t = config_setting_type(s);
	return t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64;
}

static void range_diag(struct schema_ctx *x, const config_setting_t *s,
		       const struct field *f, int64_t v)
{
	if (f->max == INT64_MAX || (f->type == F_INT && f->max == INT_MAX))
		schema_diag(x, s, "must be at least %" PRId64 ", got %" PRId64, f->min, v);
	else
		schema_diag(x, s, "must be between %" PRId64 " and %" PRId64 ", got %" PRId64,
			    f->min, f->max, v);
}

/* Reads a string setting through f->ok; NULL (reported) when invalid. */
static const char *get_string(struct schema_ctx *x, const config_setting_t *s,
			      const struct field *f)
{
	if (config_setting_type(s) != CONFIG_TYPE_STRING) {
		expected(x, s, "a string");
		return NULL;
	}
	const char *v = config_setting_get_string(s);
	if (f->ok && !f->ok(v)) {
		/* a message shows no secret, not even a mistyped one */
		_cleanup_free_ char *shown = f->url ? url_redacted(v) : NULL;
		if (!*v)
			schema_diag(x, s, "must not be empty");
		else if (f->secret)
			schema_diag(x, s, "is not %s", f->what ? f->what : "valid");
		else
			schema_diag(x, s, "'%s' is not %s", shown ? shown : v,
				    f->what ? f->what : "valid");
		return NULL;
	}
	return v;
}

/* A string or a list/array of strings, each through f->ok. Returns false
 * (after reporting every bad element) when any element is invalid. */
static bool get_strings(struct schema_ctx *x, const config_setting_t *s,
			const struct field *f, struct strv *out)
{
	int t = config_setting_type(s);
	bool good = true;

	if (t == CONFIG_TYPE_STRING) {
		const char *v = get_string(x, s, f);
		if (!v)
			return false;
		strv_push(out, v);
		return true;
	}
	if (t != CONFIG_TYPE_ARRAY && t != CONFIG_TYPE_LIST) {
		expected(x, s, "a string or a list of strings");
		return false;
	}
	for (int i = 0; i < config_setting_length(s); i++) {
		const config_setting_t *e = config_setting_get_elem(s, i);
		const char *v = get_string(x, e, f);
		if (v)
			strv_push(out, v);
		else
			good = false;
	}
	return good;
}

static void parse_action(struct schema_ctx *x, const config_setting_t *s,
			 const struct field *f, struct action *a)
{
	struct strv cmds = STRV_INIT;
	struct field cf = *f;

	/* an empty command is almost certainly a mistake; an empty list is
	 * allowed: it defines the action as "nothing" and so disables an
	 * action defined at an earlier level */
	cf.ok = ok_nonblank;
	if (!get_strings(x, s, &cf, &cmds)) {
		strv_free(&cmds);
		return;
	}
	action_free(a);
	a->defined = true;
	a->commands = cmds;
}

/* Where each action may be defined, for the "may not be defined here" message. */
static const char *action_where(enum step st)
{
	switch (st) {
	case STEP_SYSTEM:
	case STEP_FINALIZE:
		return "only in the admin config's interpreters.actions";
	case STEP_INTERPRETER:
		return "only in the admin config, per interpreter type or version "
		       "(interpreters.TYPE.any.actions, interpreters.TYPE.versions[N].actions)";
	default:
		return "";
	}
}

static void parse_actions(struct schema_ctx *x, const config_setting_t *s,
			  const struct field *f, struct actions *acts)
{
	if (!config_setting_is_group(s)) {
		expected(x, s, "a group");
		return;
	}
	for (int i = 0; i < config_setting_length(s); i++) {
		const config_setting_t *e = config_setting_get_elem(s, i);
		const char *key = config_setting_name(e);
		int st = action_from_key(key);
		if (st < 0) {
			schema_diag(x, e, "unknown action '%s' (known: system, interpreter, "
				    "before, main, after, finalize)", key);
			continue;
		}
		if (!(f->mask & STEP_BIT(st))) {
			schema_diag(x, e, "action '%s' may not be defined here (%s)",
				    key, action_where((enum step)st));
			continue;
		}
		parse_action(x, e, f, &acts->a[st]);
	}
}

static void parse_env(struct schema_ctx *x, const config_setting_t *s, struct kvlist *env)
{
	if (!config_setting_is_group(s)) {
		expected(x, s, "a group");
		return;
	}
	for (int i = 0; i < config_setting_length(s); i++) {
		const config_setting_t *e = config_setting_get_elem(s, i);
		const char *key = config_setting_name(e);
		if (!ok_env_name(key)) {
			schema_diag(x, e, "'%s' is not a valid environment variable name "
				    "([A-Za-z_][A-Za-z0-9_]*)", key);
			continue;
		}
		if (config_setting_type(e) != CONFIG_TYPE_STRING) {
			expected(x, e, "a string (quote the value)");
			continue;
		}
		kvlist_set(env, key, config_setting_get_string(e));
	}
}

/* ----------------------------------------------------------------- walker */

void schema_field(struct schema_ctx *x, const config_setting_t *s,
		  const struct field *f, void *base)
{
	int64_t v = 0;
	int t = config_setting_type(s);

	switch (f->type) {
	case F_STR: {
		const char *str = get_string(x, s, f);
		if (!str)
			return;
		char **dst = AT(base, f->off, char *);
		free(*dst);
		*dst = xstrdup(str);
		break;
	}
	case F_BOOL:
		if (t != CONFIG_TYPE_BOOL) {
			expected(x, s, "a boolean (true or false)");
			return;
		}
		*AT(base, f->off, bool) = config_setting_get_bool(s);
		break;
	case F_INT:
	case F_INT64:
	case F_SIZE:
		if (is_int(s)) {
			v = config_setting_get_int64(s);
		} else if (f->type == F_SIZE && t == CONFIG_TYPE_STRING) {
			const char *str = config_setting_get_string(s);
			if (parse_size(str, &v) < 0) {
				schema_diag(x, s, "'%s' is not a size (a number with an optional "
					    "K, M, G or T suffix)", str);
				return;
			}
		} else {
			expected(x, s, f->type == F_SIZE ? "an integer or a size string" : "an integer");
			return;
		}
		if (v < f->min || v > f->max) {
			range_diag(x, s, f, v);
			return;
		}
		if (f->type == F_INT)
			*AT(base, f->off, int) = (int)v;
		else
			*AT(base, f->off, int64_t) = v;
		break;
	case F_STRV: {
		struct strv tmp = STRV_INIT;
		if (!get_strings(x, s, f, &tmp)) {
			strv_free(&tmp);
			return;
		}
		struct strv *dst = AT(base, f->off, struct strv);
		strv_free(dst);
		*dst = tmp;
		break;
	}
	case F_ACTION:
		parse_action(x, s, f, AT(base, f->off, struct action));
		break;
	case F_ENV:
		parse_env(x, s, AT(base, f->off, struct kvlist));
		break;
	case F_ACTIONS:
		parse_actions(x, s, f, AT(base, f->off, struct actions));
		break;
	case F_GROUP:
		if (!config_setting_is_group(s)) {
			expected(x, s, "a group");
			return;
		}
		schema_group(x, s, f->sub, base);
		break;
	case F_CUSTOM:
		f->parse(x, s, base);
		return;
	}
	if (f->check)
		f->check(x, s, base);
}

void schema_group(struct schema_ctx *x, const config_setting_t *g,
		  const struct field *table, void *base)
{
	for (int i = 0; i < config_setting_length(g); i++) {
		const config_setting_t *s = config_setting_get_elem(g, i);
		const char *name = config_setting_name(s);
		const struct field *f = table;

		while (f->name && strcmp(f->name, name))
			f++;
		if (!f->name) {
			schema_diag(x, s, "unknown setting '%s'", name);
			continue;
		}
		schema_field(x, s, f, base);
	}
}

/* ------------------------------------------------------------------- show */

void show_indent(struct buf *out, int indent)
{
	for (int i = 0; i < indent; i++)
		buf_adds(out, "  ");
}

void show_string(struct buf *out, const char *s)
{
	buf_addch(out, '"');
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		switch (*p) {
		case '"': buf_adds(out, "\\\""); break;
		case '\\': buf_adds(out, "\\\\"); break;
		case '\n': buf_adds(out, "\\n"); break;
		case '\t': buf_adds(out, "\\t"); break;
		case '\r': buf_adds(out, "\\r"); break;
		case '\f': buf_adds(out, "\\f"); break;
		default:
			if (*p < 0x20 || *p == 0x7f)
				buf_addf(out, "\\x%02x", *p);
			else
				buf_addch(out, (char)*p);
		}
	}
	buf_addch(out, '"');
}

void show_strv(struct buf *out, const struct strv *v)
{
	buf_adds(out, "[");
	for (size_t i = 0; i < v->n; i++) {
		buf_adds(out, i ? ", " : " ");
		show_string(out, v->v[i]);
	}
	buf_adds(out, v->n ? " ]" : "]");
}

void show_env(struct buf *out, const struct kvlist *env, int indent)
{
	buf_adds(out, "{\n");
	for (size_t i = 0; i < env->n; i++) {
		show_indent(out, indent + 1);
		buf_addf(out, "%s = ", env->v[i].key);
		show_string(out, env->v[i].val);
		buf_adds(out, ";\n");
	}
	show_indent(out, indent);
	buf_adds(out, "}");
}

void show_actions(struct buf *out, const struct actions *a, int indent)
{
	buf_adds(out, "{\n");
	for (int st = 0; st < STEP__COUNT; st++) {
		if (!a->a[st].defined || !action_key((enum step)st))
			continue;
		show_indent(out, indent + 1);
		buf_addf(out, "%s = ", action_key((enum step)st));
		show_strv(out, &a->a[st].commands);
		buf_adds(out, ";\n");
	}
	show_indent(out, indent);
	buf_adds(out, "}");
}

static void show_int64(struct buf *out, int64_t v)
{
	/* libconfig reads integers outside int's range only with the L suffix */
	if (v > INT_MAX || v < INT_MIN)
		buf_addf(out, "%" PRId64 "L", v);
	else
		buf_addf(out, "%" PRId64, v);
}

void schema_show(const struct field *table, const void *base, struct buf *out, int indent)
{
	for (const struct field *f = table; f->name; f++) {
		if (f->type == F_CUSTOM) {
			if (f->show)
				f->show(base, out, indent);
			continue;
		}
		if (f->type == F_STR && !*CAT(base, f->off, char *)) {
			show_indent(out, indent);
			buf_addf(out, "# %s: not set%s%s\n", f->name,
				 f->unset ? ", " : "", f->unset ? f->unset : "");
			continue;
		}
		if (f->type == F_ACTION && !CAT(base, f->off, struct action)->defined) {
			show_indent(out, indent);
			buf_addf(out, "# %s: not set\n", f->name);
			continue;
		}
		show_indent(out, indent);
		buf_addf(out, "%s = ", f->name);
		switch (f->type) {
		case F_STR:
			if (f->secret) {
				buf_adds(out, "\"********\"");
			} else if (f->url) {
				_cleanup_free_ char *u = url_redacted(*CAT(base, f->off, char *));
				show_string(out, u);
			} else {
				show_string(out, *CAT(base, f->off, char *));
			}
			break;
		case F_BOOL:
			buf_adds(out, *CAT(base, f->off, bool) ? "true" : "false");
			break;
		case F_INT:
			buf_addf(out, "%d", *CAT(base, f->off, int));
			break;
		case F_INT64:
		case F_SIZE:
			show_int64(out, *CAT(base, f->off, int64_t));
			break;
		case F_STRV:
			if (f->url) {
				const struct strv *v = CAT(base, f->off, struct strv);
				struct strv shown = STRV_INIT;
				for (size_t i = 0; i < v->n; i++)
					strv_push_take(&shown, url_redacted(v->v[i]));
				show_strv(out, &shown);
				strv_free(&shown);
			} else {
				show_strv(out, CAT(base, f->off, struct strv));
			}
			break;
		case F_ACTION:
			show_strv(out, &CAT(base, f->off, struct action)->commands);
			break;
		case F_ENV:
			show_env(out, CAT(base, f->off, struct kvlist), indent);
			break;
		case F_ACTIONS:
			show_actions(out, CAT(base, f->off, struct actions), indent);
			break;
		case F_GROUP:
			buf_adds(out, "{\n");
			schema_show(f->sub, base, out, indent + 1);
			show_indent(out, indent);
			buf_adds(out, "}");
			break;
		case F_CUSTOM:
			break;
		}
		buf_adds(out, ";\n");
	}
}

/* ---------------------------------------------------------------- freeing */

void action_free(struct action *a)
{
	strv_free(&a->commands);
	a->defined = false;
}

void action_copy(struct action *dst, const struct action *src)
{
	action_free(dst);
	dst->defined = src->defined;
	strv_copy(&dst->commands, &src->commands);
}

void actions_free(struct actions *a)
{
	for (int i = 0; i < STEP__COUNT; i++)
		action_free(&a->a[i]);
}

void interp_version_free(struct cfg_interp_version *v)
{
	free(v->version);
	strv_free(&v->packages);
	kvlist_free(&v->env);
	actions_free(&v->actions);
	*v = (struct cfg_interp_version){ 0 };
}

void interp_type_free(struct cfg_interp_type *t)
{
	free(t->name);
	interp_version_free(&t->any);
	for (size_t i = 0; i < t->n_versions; i++)
		interp_version_free(&t->versions[i]);
	free(t->versions);
	*t = (struct cfg_interp_type){ 0 };
}
