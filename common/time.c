/* common/time.c - clocks, ISO 8601, time-sortable ids, number helpers. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "common/common.h"

uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int64_t now_unix(void)
{
	return (int64_t)time(NULL);
}

void time_iso8601(int64_t t, char out[32])
{
	time_t tt = (time_t)t;
	struct tm tm;
	gmtime_r(&tt, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int time_parse_iso8601(const char *s, int64_t *ret)
{
	struct tm tm = { 0 };
	const char *end = s ? strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm) : NULL;
	if (!end || *end)
		return -EINVAL;
	*ret = (int64_t)timegm(&tm);
	return 0;
}

char *id_new(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	char stamp[32];
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	uint32_t rnd = 0;
	if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
		rnd = (uint32_t)ts.tv_nsec ^ (uint32_t)getpid();
	/* fixed-width hex milliseconds keep ids of one second in order */
	return xasprintf("%s-%03x%04x", stamp, (unsigned)(ts.tv_nsec / 1000000), rnd & 0xffff);
}

bool id_ok(const char *s)
{
	static const char pat[] = "ddddddddTddddddZ-hhhhhhh";
	if (!s || strlen(s) != sizeof(pat) - 1)
		return false;
	for (size_t i = 0; pat[i]; i++) {
		char c = s[i];
		bool ok = pat[i] == 'd' ? (c >= '0' && c <= '9')
			: pat[i] == 'h' ? ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))
			: c == pat[i];
		if (!ok)
			return false;
	}
	return true;
}

int parse_int64(const char *s, int64_t min, int64_t max, int64_t *ret)
{
	if (!s || !*s)
		return -EINVAL;
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (*end || end == s)
		return -EINVAL;
	if (errno == ERANGE || v < min || v > max)
		return -ERANGE;
	*ret = v;
	return 0;
}

void fmt_bytes(uint64_t n, char out[32])
{
	static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)n;
	size_t u = 0;
	while (v >= 1024 && u + 1 < ARRAY_SIZE(unit)) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(out, 32, "%llu B", (unsigned long long)n);
	else
		snprintf(out, 32, "%.1f %s", v, unit[u]);
}
