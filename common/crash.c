/*
 * common/crash.c - crash points: a test-only switch that makes upaas kill
 * itself with SIGKILL at a named point, so that a test can show that every
 * state a crash can leave behind is one the next command copes with.
 *
 * Compiled in only with `configure --enable-crash-points` (what
 * `./quickstart test` builds); elsewhere crash_point() is an empty inline
 * and crash_init() only refuses the variables below, so a production binary
 * can never be made to crash by its environment.
 *
 *   UPAAS_CRASH_POINT=NAME   SIGKILL at the hit of NAME ...
 *   UPAAS_CRASH_COUNT=N      ... the Nth one (default 1)
 *   UPAAS_CRASH_POINT=list   print every point, one a line, and exit 0
 *   UPAAS_CRASH_TRACE=FILE   append the name of every point hit to FILE
 *                            (how a test learns which points a command
 *                            passes, so that it walks exactly those)
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>

#include "common/common.h"

#ifdef UPAAS_CRASH_POINTS

/*
 * Every point, in no particular order. crash_point() of a name missing
 * here aborts (in crash builds), so the list stays complete and a test
 * that walks it walks them all.
 */
static const char *const crash_points[] = {
	/* storage/local.c: an upload's commit, a delete */
	"storage.local.before-rename",
	"storage.local.after-rename",
	"storage.local.after-unlink",
	/* storage/s3.c: every part is stored, CompleteMultipartUpload not sent */
	"storage.s3.before-complete",
	/* builder/build.c: publication (layer, manifest, current) */
	"build.after-layer",
	"build.after-manifest",
	"build.after-current",
	/* images/images.c: publication of an image, removal */
	"image.after-blob",
	"image.after-manifest",
	"image.remove.after-manifest",
	/* package/packages.c: pruning of one package */
	"package.prune.after-tombstone",
	"package.prune.after-manifest",
	"package.prune.after-bill",
	/* package/layers.c: the collection of layers no package lists */
	"layers.gc.after-delete",
	/* rootfs/rootcache.c: an unpacked copy, a layer and its record, trim */
	"rootcache.before-publish",
	"rootcache.after-publish",
	"rootcache.layer.after-record",
	"rootcache.layer.after-rename",
	"rootcache.remove.after-rename",
	/* deploy/deploy.c: extract, switch, retire (prune, undeploy), sweep */
	"deploy.after-extract",
	"deploy.before-extract-rename",
	"deploy.after-extract-rename",
	"deploy.after-marker",
	"deploy.before-switch",
	"deploy.after-switch",
	"deploy.prune.before-retire",
	"deploy.retire.after-marker",
	"deploy.retire.after-manifest",
	"deploy.retire.after-rename",
	"deploy.sweep.after-remove",
	"undeploy.after-current",
	"undeploy.after-retire",
	"undeploy.after-purge-rename",
	NULL,
};

static bool crash_known(const char *name)
{
	for (size_t i = 0; crash_points[i]; i++)
		if (!strcmp(crash_points[i], name))
			return true;
	return false;
}

static const char *crash_want;    /* NULL: no point armed */
static int64_t crash_left;        /* hits of crash_want before the kill */
static const char *crash_trace;

void crash_init(void)
{
	const char *want = getenv("UPAAS_CRASH_POINT");
	const char *count = getenv("UPAAS_CRASH_COUNT");

	crash_trace = getenv("UPAAS_CRASH_TRACE");
	if (crash_trace && !*crash_trace)
		crash_trace = NULL;
	if (!want || !*want)
		return;
	if (!strcmp(want, "list")) {
		for (size_t i = 0; crash_points[i]; i++)
			printf("%s\n", crash_points[i]);
		fflush(stdout);
		exit(0);
	}
	if (!crash_known(want)) {
		fprintf(stderr, "upaas: UPAAS_CRASH_POINT names no crash point: '%s' "
			"(UPAAS_CRASH_POINT=list lists them)\n", want);
		exit(2);
	}
	crash_left = 1;
	if (count && *count && parse_int64(count, 1, INT64_MAX, &crash_left) < 0) {
		fprintf(stderr, "upaas: UPAAS_CRASH_COUNT is not a positive number: '%s'\n",
			count);
		exit(2);
	}
	crash_want = want;
}

void crash_point(const char *name)
{
	if (!crash_known(name)) {
		fprintf(stderr, "upaas: crash point '%s' is missing from common/crash.c\n", name);
		abort();
	}
	if (crash_trace) {
		int fd = open(crash_trace, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);

		if (fd >= 0) {
			_cleanup_free_ char *line = xasprintf("%s\n", name);

			/* one write(2) per line: O_APPEND keeps lines whole */
			(void)!write(fd, line, strlen(line));
			close(fd);
		}
	}
	if (crash_want && !strcmp(crash_want, name) && --crash_left == 0) {
		/* as kill -9 from outside: no handler, no flush, no cleanup */
		kill(getpid(), SIGKILL);
		for (;;)
			pause();
	}
}

#else

void crash_init(void)
{
	const char *want = getenv("UPAAS_CRASH_POINT");

	if (want && *want) {
		fprintf(stderr, "upaas: UPAAS_CRASH_POINT is set, but this build has no crash "
			"points (configure --enable-crash-points)\n");
		exit(2);
	}
}

#endif
