/*
 * deploy/manifest.c - the package manifest as deploy sees it: read with the
 * one reader (package/manifest.c), plus what this host decides when the
 * manifest is silent.
 */
#include <errno.h>
#include <string.h>

#include "deploy/deploy-int.h"

int deploy_manifest_read(struct package_info *ret, const char *text, const char *app,
			 const char *id, const struct config *c, struct err *e)
{
	struct package_info p;
	int r = package_manifest_parse(&p, text, app, id, e);
	if (r < 0)
		return r;
	if (!p.app_home)
		p.app_home = xstrdup(c && c->apps.home ? c->apps.home : "/home/app");
	if (p.uid < 0)
		p.uid = c ? c->apps.uid : 1000;
	if (p.gid < 0)
		p.gid = c ? c->apps.gid : 1000;
	*ret = p;
	return 0;
}
