/*
 * config/names.c - diagnostics, step names, and the small validators of
 * names, paths and versions that both schemas share.
 */
#define UPAAS_CONFIG_INTERNAL
#include <ctype.h>
#include <errno.h>
#include <string.h>

#include "config/config-int.h"

/* ------------------------------------------------------------ diagnostics */

void diags_add(struct diags *d, const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	struct buf msg = BUF_INIT;

	va_start(ap, fmt);
	buf_vaddf(&msg, fmt, ap);
	va_end(ap);
	if (d->n == d->cap) {
		d->cap = d->cap ? d->cap * 2 : 8;
		d->v = xrealloc(d->v, d->cap * sizeof(*d->v));
	}
	d->v[d->n++] = (struct diag){
		.file = xstrdup(file ? file : "(config)"),
		.line = line,
		.msg = buf_detach(&msg),
	};
	buf_free(&msg);
}

void diags_format(const struct diags *d, struct buf *out)
{
	for (size_t i = 0; i < d->n; i++) {
		if (d->v[i].line > 0)
			buf_addf(out, "%s:%d: %s\n", d->v[i].file, d->v[i].line, d->v[i].msg);
		else
			buf_addf(out, "%s: %s\n", d->v[i].file, d->v[i].msg);
	}
}

void diags_free(struct diags *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n; i++) {
		free(d->v[i].file);
		free(d->v[i].msg);
	}
	free(d->v);
	*d = (struct diags)DIAGS_INIT;
}

/* ------------------------------------------------------------------ steps */

static const struct {
	const char *name;   /* for logs and messages */
	const char *key;    /* in the files; NULL: no action of that name */
} steps[STEP__COUNT] = {
	[STEP_SYSTEM] = { "system", "system" },
	[STEP_PACKAGES] = { "os packages", NULL },
	[STEP_INTERPRETER] = { "interpreter", "interpreter" },
	[STEP_CHECKOUT] = { "checkout", NULL },
	[STEP_FILES] = { "files", NULL },
	[STEP_BEFORE] = { "before", "before" },
	[STEP_MAIN] = { "main", "main" },
	[STEP_AFTER] = { "after", "after" },
	[STEP_FINALIZE] = { "finalize", "finalize" },
};

const char *step_name(enum step s)
{
	return (unsigned)s < STEP__COUNT ? steps[s].name : "unknown";
}

const char *action_key(enum step s)
{
	return (unsigned)s < STEP__COUNT ? steps[s].key : NULL;
}

int action_from_key(const char *key)
{
	for (int i = 0; i < STEP__COUNT; i++)
		if (steps[i].key && !strcmp(steps[i].key, key))
			return i;
	return -1;
}

/* ------------------------------------------------------------- validators */

static bool is_lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* Debian policy 5.6.1: at least two characters, [a-z0-9][a-z0-9+.-]+. That
 * leaves no room for shell metacharacters or option-like names ("-x"). */
bool package_name_ok(const char *name)
{
	if (!name || !is_lower_alnum(name[0]) || !name[1] || strlen(name) > 128)
		return false;
	for (const char *p = name + 1; *p; p++)
		if (!is_lower_alnum(*p) && *p != '+' && *p != '.' && *p != '-')
			return false;
	return true;
}

bool ok_package(const char *s)
{
	return package_name_ok(s);
}

bool app_name_ok(const char *name)
{
	if (!name || !is_lower_alnum(name[0]) || strlen(name) > 63)
		return false;
	for (const char *p = name + 1; *p; p++)
		if (!is_lower_alnum(*p) && *p != '.' && *p != '_' && *p != '-')
			return false;
	return true;
}

/* Checks the components of a '/'-separated path: none empty, "." or "..". */
static bool components_ok(const char *s)
{
	for (const char *p = s; *p;) {
		const char *e = strchrnul(p, '/');
		size_t n = (size_t)(e - p);
		if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			return false;
		p = *e ? e + 1 : e;
		if (*e && !*p)
			return false;   /* trailing slash */
	}
	return true;
}

bool ok_abs_path(const char *s)
{
	if (!s || s[0] != '/')
		return false;
	if (!s[1])
		return true;
	return components_ok(s + 1) && strlen(s) < 4096;
}

bool ok_rel_path(const char *s)
{
	return s && s[0] && s[0] != '/' && components_ok(s) && strlen(s) < 4096;
}

bool ok_word(const char *s)
{
	if (!s || !isalnum((unsigned char)s[0]))
		return false;
	for (const char *p = s; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr("._+-", *p))
			return false;
	return strlen(s) <= 128;
}

bool ok_name(const char *s)
{
	if (!s || !(s[0] >= 'a' && s[0] <= 'z'))
		return false;
	for (const char *p = s; *p; p++)
		if (!is_lower_alnum(*p) && *p != '_' && *p != '-')
			return false;
	return strlen(s) <= 64;
}

bool ok_env_name(const char *s)
{
	if (!s || !(isalpha((unsigned char)s[0]) || s[0] == '_'))
		return false;
	for (const char *p = s; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '_')
			return false;
	return true;
}

bool ok_version(const char *s)
{
	if (!s || !isalnum((unsigned char)s[0]) || strlen(s) > 64)
		return false;
	for (const char *p = s; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr(".+~_-", *p))
			return false;
	return true;
}

bool ok_nonblank(const char *s)
{
	for (; s && *s; s++)
		if (!isspace((unsigned char)*s))
			return true;
	return false;
}

int parse_size(const char *s, int64_t *ret)
{
	static const struct { const char *suffix; int shift; } units[] = {
		{ "", 0 }, { "B", 0 },
		{ "K", 10 }, { "KiB", 10 }, { "k", 10 },
		{ "M", 20 }, { "MiB", 20 },
		{ "G", 30 }, { "GiB", 30 },
		{ "T", 40 }, { "TiB", 40 },
	};
	const char *p = s;
	uint64_t v = 0;

	if (!isdigit((unsigned char)*p))
		return -EINVAL;
	for (; isdigit((unsigned char)*p); p++) {
		if (v > (uint64_t)INT64_MAX / 10)
			return -ERANGE;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	while (*p == ' ')
		p++;
	for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
		if (strcmp(p, units[i].suffix))
			continue;
		if (v > ((uint64_t)INT64_MAX >> units[i].shift))
			return -ERANGE;
		*ret = (int64_t)(v << units[i].shift);
		return 0;
	}
	return -EINVAL;
}

/* --------------------------------------------------------------- versions */

/* Compares one dotted component: the number first, then the rest, where a
 * component with a suffix ("12rc1") sorts before the plain one ("12"). */
static int component_cmp(const char *a, size_t an, const char *b, size_t bn)
{
	size_t ai = 0, bi = 0;

	while (ai < an && a[ai] == '0' && ai + 1 < an && isdigit((unsigned char)a[ai + 1]))
		ai++;
	while (bi < bn && b[bi] == '0' && bi + 1 < bn && isdigit((unsigned char)b[bi + 1]))
		bi++;
	size_t ad = ai, bd = bi;
	while (ad < an && isdigit((unsigned char)a[ad]))
		ad++;
	while (bd < bn && isdigit((unsigned char)b[bd]))
		bd++;
	/* numbers without leading zeros: longer is bigger, else lexical */
	if (ad - ai != bd - bi)
		return ad - ai < bd - bi ? -1 : 1;
	int r = memcmp(a + ai, b + bi, ad - ai);
	if (r)
		return r < 0 ? -1 : 1;
	size_t ar = an - ad, br = bn - bd;
	if (!ar || !br)
		return ar == br ? 0 : (ar ? -1 : 1);
	r = memcmp(a + ad, b + bd, ar < br ? ar : br);
	if (r)
		return r < 0 ? -1 : 1;
	return ar == br ? 0 : (ar < br ? -1 : 1);
}

int version_cmp(const char *a, const char *b)
{
	a = a ? a : "";
	b = b ? b : "";
	while (*a || *b) {
		if (!*a)
			return -1;   /* "3.11" < "3.11.2" */
		if (!*b)
			return 1;
		const char *ae = strchrnul(a, '.'), *be = strchrnul(b, '.');
		int r = component_cmp(a, (size_t)(ae - a), b, (size_t)(be - b));
		if (r)
			return r;
		a = *ae ? ae + 1 : ae;
		b = *be ? be + 1 : be;
	}
	return 0;
}

bool version_match(const char *pattern, const char *v)
{
	if (!pattern || !*pattern || !strcmp(pattern, "*"))
		return true;
	if (!v)
		return false;
	size_t n = strlen(pattern);
	return !strncmp(pattern, v, n) && (v[n] == '\0' || v[n] == '.');
}
