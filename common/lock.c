/* common/lock.c - advisory whole-file locks. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>

#include "common/common.h"

int lock_file(const char *path, bool wait, struct err *e)
{
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return err_set_errno(e, -errno, "cannot open lock '%s'", path);
	for (;;) {
		if (flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB)) == 0)
			return fd;
		int r = -errno;
		if (r == -EINTR && wait)
			continue;
		close(fd);
		if (r == -EWOULDBLOCK)
			return err_set(e, r, "'%s' is locked by another process", path);
		return err_set_errno(e, r, "cannot lock '%s'", path);
	}
}
