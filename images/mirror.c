/*
 * images/mirror.c - the host's apt mirror, as the default bootstrap mirror.
 *
 * Reads the one-line format of sources.list and the deb822 format of
 * *.sources the way apt does (sources.list first, then sources.list.d in
 * name order), keeping only "deb" entries with a URI scheme a bootstrap
 * tool can use.
 */
#include <ctype.h>
#include <dirent.h>
#include <string.h>
#include <strings.h>

#define UPAAS_IMAGES_INTERNAL
#include "images/mirror.h"

#define SOURCES_MAX_BYTES (1u << 20)

void apt_sources_free(struct apt_sources *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].uri);
		strv_free(&l->v[i].suites);
	}
	free(l->v);
	l->v = NULL;
	l->n = l->cap = 0;
}

static bool uri_usable(const char *uri)
{
	static const char *const schemes[] = { "http://", "https://", "ftp://", "file:/" };

	for (size_t i = 0; i < ARRAY_SIZE(schemes); i++)
		if (!strncmp(uri, schemes[i], strlen(schemes[i])))
			return true;
	return false;
}

/* Adds one source; takes nothing, copies uri and suites. */
static void sources_add(struct apt_sources *l, const char *uri, size_t ulen,
			const struct strv *suites)
{
	struct apt_source *s;

	while (ulen > 1 && uri[ulen - 1] == '/' && uri[ulen - 2] != '/')
		ulen--;
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 8;
		l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
	}
	s = &l->v[l->n++];
	s->uri = xstrndup(uri, ulen);
	s->suites = (struct strv)STRV_INIT;
	strv_copy(&s->suites, suites);
	if (!uri_usable(s->uri)) {
		free(s->uri);
		strv_free(&s->suites);
		l->n--;
	}
}

/* Splits s[0..n) at whitespace into words. */
static void split_words(const char *s, size_t n, struct strv *out)
{
	size_t i = 0;

	while (i < n) {
		size_t j;

		while (i < n && isspace((unsigned char)s[i]))
			i++;
		j = i;
		while (j < n && !isspace((unsigned char)s[j]))
			j++;
		if (j > i)
			strv_push_take(out, xstrndup(s + i, j - i));
		i = j;
	}
}

void apt_sources_parse_list(struct apt_sources *l, const char *text)
{
	const char *line = text;

	while (*line) {
		const char *end = strchrnul(line, '\n');
		const char *hash = memchr(line, '#', (size_t)(end - line));
		_cleanup_strv_ struct strv w = STRV_INIT;
		_cleanup_strv_ struct strv suites = STRV_INIT;
		size_t i = 1;

		split_words(line, (size_t)((hash ? hash : end) - line), &w);
		line = *end ? end + 1 : end;
		if (w.n < 3 || strcmp(w.v[0], "deb"))
			continue;
		/* options: "[arch=amd64 signed-by=...]", possibly spread over words */
		if (w.v[i][0] == '[') {
			while (i < w.n && !strchr(w.v[i], ']'))
				i++;
			i++;
		}
		if (i + 1 >= w.n)
			continue;
		strv_push(&suites, w.v[i + 1]);
		sources_add(l, w.v[i], strlen(w.v[i]), &suites);
	}
}

/* One deb822 paragraph being read. */
struct para {
	struct strv types;
	struct strv uris;
	struct strv suites;
	bool disabled;
	struct strv *field;     /* the field continuation lines extend */
};

static void para_flush(struct apt_sources *l, struct para *p)
{
	if (!p->disabled && strv_contains(&p->types, "deb"))
		for (size_t i = 0; i < p->uris.n; i++)
			sources_add(l, p->uris.v[i], strlen(p->uris.v[i]), &p->suites);
	strv_free(&p->types);
	strv_free(&p->uris);
	strv_free(&p->suites);
	p->disabled = false;
	p->field = NULL;
}

void apt_sources_parse_deb822(struct apt_sources *l, const char *text)
{
	struct para p = { STRV_INIT, STRV_INIT, STRV_INIT, false, NULL };
	const char *line = text;

	while (*line) {
		const char *end = strchrnul(line, '\n');
		size_t n = (size_t)(end - line);
		const char *colon;
		size_t k;

		if (n && line[0] == '#') {
			/* a comment line; it does not end the paragraph */
		} else if (n && (line[0] == ' ' || line[0] == '\t')) {
			size_t i = 0;

			while (i < n && isspace((unsigned char)line[i]))
				i++;
			if (i == n)
				para_flush(l, &p);              /* whitespace-only: blank */
			else if (p.field)
				split_words(line, n, p.field);
		} else if (n == 0 || (n == 1 && line[0] == '\r')) {
			para_flush(l, &p);
		} else if ((colon = memchr(line, ':', n))) {
			k = (size_t)(colon - line);
			p.field = NULL;
			if (k == 5 && !strncasecmp(line, "Types", 5))
				p.field = &p.types;
			else if (k == 4 && !strncasecmp(line, "URIs", 4))
				p.field = &p.uris;
			else if (k == 6 && !strncasecmp(line, "Suites", 6))
				p.field = &p.suites;
			else if (k == 7 && !strncasecmp(line, "Enabled", 7)) {
				_cleanup_strv_ struct strv v = STRV_INIT;

				split_words(colon + 1, n - k - 1, &v);
				p.disabled = v.n && (!strcasecmp(v.v[0], "no") ||
						     !strcasecmp(v.v[0], "false"));
			}
			if (p.field)
				split_words(colon + 1, n - k - 1, p.field);
		}
		line = *end ? end + 1 : end;
	}
	para_flush(l, &p);
}

static bool has_suffix(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);

	return a >= b && !strcmp(s + a - b, suffix);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void apt_sources_read(struct apt_sources *l, const char *root)
{
	_cleanup_free_ char *list = xasprintf("%s/etc/apt/sources.list", root);
	_cleanup_free_ char *dir = xasprintf("%s/etc/apt/sources.list.d", root);
	_cleanup_strv_ struct strv names = STRV_INIT;
	_cleanup_buf_ struct buf text = BUF_INIT;
	DIR *d;

	if (buf_read_file(&text, list, SOURCES_MAX_BYTES) >= 0)
		apt_sources_parse_list(l, text.p);
	d = opendir(dir);
	if (!d)
		return;
	for (struct dirent *de; (de = readdir(d));)
		if (de->d_name[0] != '.' &&
		    (has_suffix(de->d_name, ".list") || has_suffix(de->d_name, ".sources")))
			strv_push(&names, de->d_name);
	closedir(d);
	if (names.n > 1)
		qsort(names.v, names.n, sizeof(char *), cmp_str);
	for (size_t i = 0; i < names.n; i++) {
		_cleanup_free_ char *p = path_join(dir, names.v[i]);

		buf_reset(&text);
		if (buf_read_file(&text, p, SOURCES_MAX_BYTES) < 0)
			continue;
		if (has_suffix(names.v[i], ".list"))
			apt_sources_parse_list(l, text.p);
		else
			apt_sources_parse_deb822(l, text.p);
	}
}

static bool source_is_security(const struct apt_source *s)
{
	if (strstr(s->uri, "security"))
		return true;
	for (size_t i = 0; i < s->suites.n; i++)
		if (has_suffix(s->suites.v[i], "-security") || has_suffix(s->suites.v[i], "/updates"))
			return true;
	return false;
}

void apt_sources_pick(const struct apt_sources *l, const char *distribution, struct buf *out)
{
	const char *pick = NULL;

	for (size_t i = 0; i < l->n && !pick; i++)
		if (distribution && strv_contains(&l->v[i].suites, distribution))
			pick = l->v[i].uri;
	for (size_t i = 0; i < l->n && !pick; i++)
		if (!source_is_security(&l->v[i]))
			pick = l->v[i].uri;
	buf_reset(out);
	buf_adds(out, pick ? pick : MIRROR_FALLBACK);
}

void mirror_detect(const char *root, const char *distribution, struct buf *out)
{
	struct apt_sources l = APT_SOURCES_INIT;

	apt_sources_read(&l, root);
	apt_sources_pick(&l, distribution, out);
	apt_sources_free(&l);
}
