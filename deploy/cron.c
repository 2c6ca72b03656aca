/*
 * deploy/cron.c - 5-field cron schedules for `upaas watch`.
 */
#include <errno.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "deploy/deploy.h"

struct field {
	const char *name;
	int min, max;
	const char *const *names;   /* names[i] is value min + i */
};

static const char *const month_names[] = { "jan", "feb", "mar", "apr", "may", "jun", "jul",
					   "aug", "sep", "oct", "nov", "dec", NULL };
static const char *const dow_names[] = { "sun", "mon", "tue", "wed", "thu", "fri", "sat",
					 NULL };

static const struct field fields[5] = {
	{ "minute", 0, 59, NULL },
	{ "hour", 0, 23, NULL },
	{ "day of month", 1, 31, NULL },
	{ "month", 1, 12, month_names },
	{ "day of week", 0, 7, dow_names },
};

/* A number or a name of the field; *s advances past it. */
static int parse_value(const struct field *f, const char **s, int *ret)
{
	const char *p = *s;
	if (*p >= '0' && *p <= '9') {
		int v = 0;
		while (*p >= '0' && *p <= '9') {
			v = v * 10 + (*p - '0');
			if (v > 1000)
				return -ERANGE;
			p++;
		}
		if (v < f->min || v > f->max)
			return -ERANGE;
		*ret = v;
		*s = p;
		return 0;
	}
	for (size_t i = 0; f->names && f->names[i]; i++)
		if (!strncasecmp(p, f->names[i], 3)) {
			*ret = f->min + (int)i;
			*s = p + 3;
			return 0;
		}
	return -EINVAL;
}

/* One field: comma list of "*", "a", "a-b", each with an optional "/n". */
static int parse_field(const struct field *f, const char *text, uint64_t *ret_bits,
		       bool *ret_star)
{
	uint64_t bits = 0;
	const char *s = text;
	/* as Vixie cron: a field starting with a star ("*" or a star step) is unrestricted
	 * for the day-of-month/day-of-week rule */
	bool star = text[0] == '*';

	for (;;) {
		int lo, hi, step = 1, r;
		bool item_star = false;
		if (*s == '*') {
			lo = f->min;
			hi = f->max;
			item_star = true;
			s++;
		} else {
			if ((r = parse_value(f, &s, &lo)) < 0)
				return r;
			hi = lo;
			if (*s == '-') {
				s++;
				if ((r = parse_value(f, &s, &hi)) < 0)
					return r;
				if (hi < lo)
					return -EINVAL;
			}
		}
		if (*s == '/') {
			s++;
			if (*s < '0' || *s > '9')
				return -EINVAL;
			step = 0;
			while (*s >= '0' && *s <= '9') {
				step = step * 10 + (*s - '0');
				if (step > 1000)
					return -ERANGE;
				s++;
			}
			if (step < 1)
				return -EINVAL;
			/* "a/n" means from a to the end of the range */
			if (!item_star && hi == lo)
				hi = f->max;
		}
		for (int v = lo; v <= hi; v += step)
			bits |= (uint64_t)1 << v;
		if (*s == ',') {
			s++;
			continue;
		}
		if (*s)
			return -EINVAL;
		break;
	}
	*ret_bits = bits;
	*ret_star = star;
	return 0;
}

static const struct {
	const char *name;
	const char *spec;
} macros[] = {
	{ "@hourly", "0 * * * *" },
	{ "@daily", "0 0 * * *" },
	{ "@midnight", "0 0 * * *" },
	{ "@weekly", "0 0 * * 0" },
	{ "@monthly", "0 0 1 * *" },
	{ "@yearly", "0 0 1 1 *" },
	{ "@annually", "0 0 1 1 *" },
};

int cron_parse(struct cron *c, const char *spec, struct err *e)
{
	const char *orig = spec;
	while (*spec == ' ' || *spec == '\t')
		spec++;
	if (*spec == '@') {
		for (size_t i = 0; i < ARRAY_SIZE(macros); i++)
			if (!strcmp(spec, macros[i].name))
				return cron_parse(c, macros[i].spec, e);
		return err_set(e, -EINVAL, "schedule '%s': unknown macro", orig);
	}

	struct cron out = { 0 };
	const char *s = spec;
	for (int i = 0; i < 5; i++) {
		while (*s == ' ' || *s == '\t')
			s++;
		size_t n = strcspn(s, " \t");
		if (n == 0)
			return err_set(e, -EINVAL, "schedule '%s': expected 5 fields", orig);
		_cleanup_free_ char *text = xstrndup(s, n);
		s += n;
		uint64_t bits;
		bool star;
		int r = parse_field(&fields[i], text, &bits, &star);
		if (r < 0)
			return err_set(e, -EINVAL, "schedule '%s': bad %s field '%s'", orig,
				       fields[i].name, text);
		switch (i) {
		case 0: out.minute = bits; break;
		case 1: out.hour = (uint32_t)bits; break;
		case 2: out.dom = (uint32_t)bits; out.dom_star = star; break;
		case 3: out.month = (uint16_t)bits; break;
		case 4:
			/* 7 is Sunday as well */
			if (bits & (1u << 7))
				bits = (bits & 0x7f) | 1u;
			out.dow = (uint8_t)bits;
			out.dow_star = star;
			break;
		}
	}
	while (*s == ' ' || *s == '\t')
		s++;
	if (*s)
		return err_set(e, -EINVAL, "schedule '%s': expected 5 fields", orig);
	*c = out;
	return 0;
}

static bool day_match(const struct cron *c, const struct tm *tm)
{
	bool dom = c->dom & (1u << tm->tm_mday);
	bool dow = c->dow & (1u << tm->tm_wday);
	/* cron(8): with both day fields restricted, either may match */
	if (!c->dom_star && !c->dow_star)
		return dom || dow;
	return dom && dow;
}

bool cron_match(const struct cron *c, const struct tm *tm)
{
	return (c->minute & ((uint64_t)1 << tm->tm_min)) && (c->hour & (1u << tm->tm_hour)) &&
	       (c->month & (1u << (tm->tm_mon + 1))) && day_match(c, tm);
}

int cron_next(const struct cron *c, time_t after, time_t *ret)
{
	struct tm tm;
	time_t t = after - (after % 60 + 60) % 60 + 60;   /* next whole minute */
	time_t limit = after + (time_t)5 * 366 * 86400;

	/* Skips a month, day or hour at a time when that field cannot match,
	 * so the loop is short even for rare schedules. mktime() normalizes
	 * the overflowing field and handles DST. */
	while (t <= limit) {
		localtime_r(&t, &tm);
		if (!(c->month & (1u << (tm.tm_mon + 1)))) {
			tm.tm_mon++;
			tm.tm_mday = 1;
			tm.tm_hour = 0;
			tm.tm_min = 0;
		} else if (!day_match(c, &tm)) {
			tm.tm_mday++;
			tm.tm_hour = 0;
			tm.tm_min = 0;
		} else if (!(c->hour & (1u << tm.tm_hour))) {
			tm.tm_hour++;
			tm.tm_min = 0;
		} else if (!(c->minute & ((uint64_t)1 << tm.tm_min))) {
			tm.tm_min++;
		} else {
			*ret = t;
			return 0;
		}
		tm.tm_sec = 0;
		tm.tm_isdst = -1;
		time_t nt = mktime(&tm);
		/* a DST gap can map back to the same instant: always move on */
		t = nt > t ? nt : t + 60;
	}
	return -ERANGE;
}
