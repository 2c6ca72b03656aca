/* common/progress.c - one status line on a terminal, rate-limited. */
#include "common/common.h"

bool progress_enabled;

static void progress_draw(struct progress *p, bool final)
{
	char done[32], rate[32], total[32];
	uint64_t ms = now_ms() - p->start_ms;
	fmt_bytes(p->done, done);
	fmt_bytes(ms ? p->done * 1000 / ms : 0, rate);
	if (p->total) {
		fmt_bytes(p->total, total);
		fprintf(stderr, "\r\033[K%s  %s / %s (%u%%)  %s/s", p->stage, done, total,
			(unsigned)(p->done * 100 / p->total), rate);
	} else {
		fprintf(stderr, "\r\033[K%s  %s  %s/s", p->stage, done, rate);
	}
	if (final)
		fprintf(stderr, "  %.1f s\n", (double)ms / 1000);
	fflush(stderr);
}

void progress_begin(struct progress *p, const char *stage, uint64_t total)
{
	p->stage = stage ? stage : "";
	p->done = 0;
	p->total = total;
	p->start_ms = p->last_ms = now_ms();
	p->active = progress_enabled;
}

void progress_add(struct progress *p, uint64_t n)
{
	p->done += n;
	if (!p->active)
		return;
	uint64_t t = now_ms();
	if (t - p->last_ms < 100)
		return;
	p->last_ms = t;
	progress_draw(p, false);
}

void progress_end(struct progress *p)
{
	if (p->active)
		progress_draw(p, true);
	p->active = false;
}
