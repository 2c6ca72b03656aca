/*
 * builder/builder.h - one build of an app (builder/build.c, builder/git.c):
 * fetch the app into a bare mirror -> resolve ref -> read .upaas.cfg ->
 * pick the base (image or current package) -> workspace -> steps in the
 * sandbox -> pack -> upload blob, manifest (package/package.h), current, log.
 */
#ifndef UPAAS_BUILDER_H
#define UPAAS_BUILDER_H

#include "common/common.h"
#include "config/config.h"
#include "storage/storage.h"

struct package_index_lock;

struct build_opts {
	const char *source;        /* git URL or local repository path */
	const char *app;           /* app name; NULL: derived from source */
	const char *ref;           /* NULL: the remote's default branch */
	bool fresh;
	const char *interp_version;
	const char *build_id;      /* NULL: a new id */
	int log_fd;                /* -1: none besides the stored log */
	bool tee;                  /* step output also to stderr */
	/* serialises the writers of apps/_index (package.h); NULL: none */
	const struct package_index_lock *index_lock;
};
struct build_result {
	char *app;
	char *id;
	char *commit;
	bool fresh;
	char *base_reason;
	char sha256[65];           /* of the package's top layer */
	uint64_t size;             /* bytes of the layer the build stored */
	const char *layer;         /* "full", "delta" or "none" (nothing changed) */
	char *failed_step;         /* set when a step failed */
};
int build_run(const struct config *c, struct storage *s, const struct build_opts *o,
	      struct build_result *ret, struct err *e);
void build_result_free(struct build_result *r);

#endif
