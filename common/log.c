/* common/log.c - leveled messages through a sink the CLI chooses. */
#include "common/common.h"

enum log_level log_max_level = LOG_INFO;

static void default_sink(enum log_level lvl, const char *msg, void *data)
{
	static const char *const prefix[] = { "error: ", "warning: ", "", "debug: " };
	fprintf(stderr, "upaas: %s", prefix[lvl]);
	fputs_safe(msg, stderr);
	fputc('\n', stderr);
}

static log_sink_fn log_sink = default_sink;
static void *sink_data;

void log_set_sink(log_sink_fn fn, void *data)
{
	log_sink = fn ? fn : default_sink;
	sink_data = data;
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
	if (lvl > log_max_level)
		return;
	struct buf b = BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	buf_vaddf(&b, fmt, ap);
	va_end(ap);
	log_sink(lvl, b.p, sink_data);
	buf_free(&b);
}
