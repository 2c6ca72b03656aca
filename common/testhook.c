/*
 * common/testhook.c - test_pause(): a command waits at a named point while
 * a test does something else meanwhile (common.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <time.h>

#include "common/common.h"

#define PAUSE_MAX_MS (10 * 60 * 1000)

void test_pause(const char *point)
{
	const char *v = getenv("UPAAS_TEST_PAUSE");
	const char *colon = v ? strchr(v, ':') : NULL;
	struct timespec tick = { 0, 50 * 1000 * 1000 };
	uint64_t t0;
	int fd;

	if (!colon || (size_t)(colon - v) != strlen(point) || strncmp(v, point, strlen(point)) ||
	    colon[1] != '/')
		return;
	fd = open(colon + 1, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	close(fd);
	log_debug("paused at '%s' until '%s' is removed", point, colon + 1);
	t0 = now_ms();
	while (access(colon + 1, F_OK) == 0 && now_ms() - t0 < PAUSE_MAX_MS && !proc_cancelled)
		nanosleep(&tick, NULL);
}
