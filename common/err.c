/* common/err.c - the first error wins. */
#include <errno.h>
#include <string.h>

#include "common/common.h"

int err_setv(struct err *e, int code, const char *fmt, va_list ap)
{
	if (code >= 0)
		code = -EIO;
	if (!e || e->code)
		return code;
	e->code = code;
	buf_reset(&e->msg);
	buf_vaddf(&e->msg, fmt, ap);
	return code;
}

int err_set(struct err *e, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = err_setv(e, code, fmt, ap);
	va_end(ap);
	return r;
}

int err_set_errno(struct err *e, int code, const char *fmt, ...)
{
	va_list ap;
	if (code >= 0)
		code = -EIO;
	if (!e || e->code)
		return code;
	va_start(ap, fmt);
	err_setv(e, code, fmt, ap);
	va_end(ap);
	buf_adds(&e->msg, ": ");
	buf_adds(&e->msg, strerror(-code));
	return code;
}

int err_prefix(struct err *e, const char *fmt, ...)
{
	if (!e || !e->code)
		return e ? e->code : 0;
	struct buf b = BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	buf_vaddf(&b, fmt, ap);
	va_end(ap);
	buf_adds(&b, ": ");
	buf_add(&b, e->msg.p, e->msg.len);
	buf_free(&e->msg);
	e->msg = b;
	return e->code;
}

const char *err_msg(const struct err *e)
{
	if (!e || !e->code)
		return "";
	if (e->msg.len)
		return e->msg.p;
	return strerror(-e->code);
}

void err_clear(struct err *e)
{
	if (!e)
		return;
	e->code = 0;
	buf_reset(&e->msg);
}

void err_free(struct err *e)
{
	if (!e)
		return;
	buf_free(&e->msg);
	e->code = 0;
}
