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

int lock_note_set(int fd, const char *text)
{
	size_t n = text ? strlen(text) : 0;

	if (ftruncate(fd, 0) < 0)
		return -errno;
	if (n) {
		ssize_t w = pwrite(fd, text, n, 0);

		if (w < 0)
			return -errno;
		if ((size_t)w != n)
			return -EIO;
	}
	/* a note must not be lost by a crash that keeps what it describes */
	if (fdatasync(fd) < 0)
		return -errno;
	return 0;
}

int lock_note_get(int fd, struct buf *out, size_t max)
{
	_cleanup_free_ char *p = xmalloc(max + 1);
	ssize_t n = pread(fd, p, max, 0);

	if (n < 0)
		return -errno;
	buf_reset(out);
	return buf_add(out, p, (size_t)n);
}
