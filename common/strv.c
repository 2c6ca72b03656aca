/* common/strv.c - owned string lists and key/value lists. */
#include <string.h>

#include "common/common.h"

static char *strv_empty[1];

static void strv_reserve(struct strv *s, size_t more)
{
	if (s->n + more + 1 <= s->cap)
		return;
	size_t cap = s->cap ? s->cap : 8;
	while (cap < s->n + more + 1)
		cap *= 2;
	s->v = xrealloc(s->v, cap * sizeof(*s->v));
	s->cap = cap;
}

void strv_push_take(struct strv *s, char *str)
{
	strv_reserve(s, 1);
	s->v[s->n++] = str;
	s->v[s->n] = NULL;
}

void strv_push(struct strv *s, const char *str)
{
	strv_push_take(s, xstrdup(str));
}

void strv_pushf(struct strv *s, const char *fmt, ...)
{
	va_list ap;
	char *p;
	va_start(ap, fmt);
	if (vasprintf(&p, fmt, ap) < 0)
		p = xstrdup("");
	va_end(ap);
	strv_push_take(s, p);
}

void strv_extend(struct strv *s, const struct strv *from)
{
	for (size_t i = 0; i < from->n; i++)
		strv_push(s, from->v[i]);
}

void strv_free(struct strv *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	s->v = NULL;
	s->n = s->cap = 0;
}

bool strv_contains(const struct strv *s, const char *str)
{
	for (size_t i = 0; i < s->n; i++)
		if (!strcmp(s->v[i], str))
			return true;
	return false;
}

void strv_copy(struct strv *dst, const struct strv *src)
{
	strv_free(dst);
	strv_extend(dst, src);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void strv_sort(struct strv *s)
{
	if (s->n > 1)
		qsort(s->v, s->n, sizeof(*s->v), cmp_str);
}

char **strv_array(const struct strv *s)
{
	return s->v ? s->v : strv_empty;
}

void strv_setenv(struct strv *env, const char *name, const char *value)
{
	size_t nl = strlen(name);
	char *entry = xasprintf("%s=%s", name, value);
	for (size_t i = 0; i < env->n; i++) {
		if (!strncmp(env->v[i], name, nl) && env->v[i][nl] == '=') {
			free(env->v[i]);
			env->v[i] = entry;
			return;
		}
	}
	strv_push_take(env, entry);
}

void kvlist_set(struct kvlist *l, const char *key, const char *val)
{
	for (size_t i = 0; i < l->n; i++) {
		if (!strcmp(l->v[i].key, key)) {
			free(l->v[i].val);
			l->v[i].val = xstrdup(val);
			return;
		}
	}
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 8;
		l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
	}
	l->v[l->n].key = xstrdup(key);
	l->v[l->n].val = xstrdup(val);
	l->n++;
}

const char *kvlist_get(const struct kvlist *l, const char *key)
{
	for (size_t i = 0; i < l->n; i++)
		if (!strcmp(l->v[i].key, key))
			return l->v[i].val;
	return NULL;
}

void kvlist_merge(struct kvlist *dst, const struct kvlist *src)
{
	for (size_t i = 0; i < src->n; i++)
		kvlist_set(dst, src->v[i].key, src->v[i].val);
}

void kvlist_copy(struct kvlist *dst, const struct kvlist *src)
{
	kvlist_free(dst);
	kvlist_merge(dst, src);
}

void kvlist_free(struct kvlist *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].key);
		free(l->v[i].val);
	}
	free(l->v);
	l->v = NULL;
	l->n = l->cap = 0;
}
