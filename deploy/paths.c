/*
 * deploy/paths.c - the names of things under <root>/<app> (deploy.h).
 */
#include <string.h>

#include "deploy/deploy-int.h"

const char *deploy_op_name(enum deploy_op op)
{
	static const char *const names[] = { "install", "upgrade", "rollback", "undeploy",
					     "uninstall" };
	return (size_t)op < ARRAY_SIZE(names) ? names[op] : "?";
}

void app_paths_init(struct app_paths *p, const char *root, const char *app)
{
	p->root = xstrdup(root);
	p->app = xstrdup(app);
	p->dir = path_join(root, app);
	p->revisions = path_join(p->dir, "revisions");
	p->manifests = path_join(p->dir, "manifests");
	p->shared = path_join(p->dir, "shared");
	p->current = path_join(p->dir, "current");
	p->current_tmp = path_join(p->dir, ".current.tmp");
	p->history = path_join(p->dir, "history");
	p->log = path_join(p->dir, "deploy.log");
	p->lock = path_join(p->dir, ".lock");
	p->failed_marker = path_join(p->dir, ".failed");
	p->sequence = path_join(p->dir, "sequence");
}

void app_paths_free(struct app_paths *p)
{
	char **f[] = { &p->root, &p->app, &p->dir, &p->revisions, &p->manifests, &p->shared,
		       &p->current, &p->current_tmp, &p->history, &p->log, &p->lock,
		       &p->failed_marker, &p->sequence };
	for (size_t i = 0; i < ARRAY_SIZE(f); i++) {
		free(*f[i]);
		*f[i] = NULL;
	}
}

char *app_revision_path(const struct app_paths *p, const char *id)
{
	return path_join(p->revisions, id);
}

char *app_manifest_path(const struct app_paths *p, const char *id)
{
	return xasprintf("%s/%s.json", p->manifests, id);
}

char *app_marker_path(const struct app_paths *p, const char *id)
{
	return xasprintf("%s/%s.complete", p->manifests, id);
}

void deploy_result_free(struct deploy_result *r)
{
	if (!r)
		return;
	free(r->id);
	free(r->previous);
	memset(r, 0, sizeof(*r));
}
