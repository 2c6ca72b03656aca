/* common/buf.c - the growable, bounded, always NUL-terminated buffer. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>

#include "common/common.h"

char buf_slop[1];

static size_t buf_max(const struct buf *b)
{
	return b->max ? b->max : BUF_DEFAULT_MAX;
}

void buf_init(struct buf *b, size_t max)
{
	b->p = buf_slop;
	b->len = b->cap = 0;
	b->max = max;
}

void buf_free(struct buf *b)
{
	if (b->cap)
		free(b->p);
	b->p = buf_slop;
	b->len = b->cap = 0;
}

void buf_reset(struct buf *b)
{
	b->len = 0;
	b->p[0] = '\0';
	if (!b->cap)
		buf_slop[0] = '\0';
}

int buf_grow(struct buf *b, size_t extra)
{
	if (extra > buf_max(b) || b->len > buf_max(b) - extra)
		return -E2BIG;
	size_t need = b->len + extra + 1;
	if (need <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap = cap * 2;
	if (b->cap) {
		b->p = xrealloc(b->p, cap);
	} else {
		b->p = xmalloc(cap);
		b->p[0] = '\0';
	}
	b->cap = cap;
	return 0;
}

int buf_add(struct buf *b, const void *p, size_t n)
{
	int r = buf_grow(b, n);
	if (r < 0)
		return r;
	if (n)
		memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

int buf_adds(struct buf *b, const char *s)
{
	return buf_add(b, s, strlen(s));
}

int buf_addch(struct buf *b, char c)
{
	return buf_add(b, &c, 1);
}

int buf_vaddf(struct buf *b, const char *fmt, va_list ap)
{
	va_list cp;
	va_copy(cp, ap);
	char small[1];
	int n = vsnprintf(small, sizeof(small), fmt, cp);
	va_end(cp);
	if (n < 0)
		return -EINVAL;
	int r = buf_grow(b, (size_t)n);
	if (r < 0)
		return r;
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return 0;
}

int buf_addf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = buf_vaddf(b, fmt, ap);
	va_end(ap);
	return r;
}

void buf_setlen(struct buf *b, size_t len)
{
	if (len > b->len)
		return;
	b->len = len;
	if (b->cap)
		b->p[len] = '\0';
}

void buf_rtrim(struct buf *b)
{
	while (b->len && strchr(" \t\r\n", b->p[b->len - 1]))
		b->len--;
	if (b->cap)
		b->p[b->len] = '\0';
}

char *buf_detach(struct buf *b)
{
	char *p = b->cap ? b->p : xstrdup("");
	b->p = buf_slop;
	b->len = b->cap = 0;
	return p;
}

int buf_read_fd(struct buf *b, int fd)
{
	for (;;) {
		size_t room = buf_max(b) - b->len;
		if (room == 0) {
			/* full: fine only if the data ends exactly here */
			char c;
			ssize_t n;
			do
				n = read(fd, &c, 1);
			while (n < 0 && errno == EINTR);
			return n == 0 ? 0 : -E2BIG;
		}
		size_t chunk = room < 65536 ? room : 65536;
		int r = buf_grow(b, chunk);
		if (r < 0)
			return r;
		ssize_t n = read(fd, b->p + b->len, chunk);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return 0;
		b->len += (size_t)n;
		b->p[b->len] = '\0';
	}
}

int buf_read_file(struct buf *b, const char *path, size_t max)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	size_t old = b->max;
	if (max)
		b->max = b->len + max;
	int r = buf_read_fd(b, fd);
	b->max = old;
	close(fd);
	return r;
}
