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
	/* Who the app runs as is this host's decision (apps.uid, apps.gid,
	 * apps.home), never the manifest's; the reader has refused uid and
	 * gid 0 already. A package built for another home would find its
	 * files elsewhere: refused rather than run from the wrong place. */
	const char *home = c && c->apps.home ? c->apps.home : "/home/app";
	if (p.app_home && strcmp(p.app_home, home)) {
		r = err_set(e, -EINVAL, "manifest: app_home '%s' is not this host's apps.home '%s'",
			    p.app_home, home);
		package_info_free(&p);
		return r;
	}
	free(p.app_home);
	p.app_home = xstrdup(home);
	p.uid = c ? c->apps.uid : 1000;
	p.gid = c ? c->apps.gid : 1000;
	*ret = p;
	return 0;
}

int deploy_current_read(struct storage *s, const struct sign_trust *t, const char *app,
			const char *seen_path, struct package_current *ret, struct err *e)
{
	struct package_current c = { 0 };
	_cleanup_free_ char *key = storage_key_current(app);
	int r = package_current_read(s, t, app, &c, e);
	if (r == -ENOENT) {
		err_clear(e);
		return err_set(e, r, "app '%s' has no current package in %s ('%s')", app,
			       storage_where(s), key);
	}
	if (r < 0)
		return r;
	if (!package_id_ok(c.id)) {
		package_current_free(&c);
		return err_set(e, -EINVAL, "'%s' names an invalid package id", key);
	}
	if (seen_path) {
		/* TUF's rollback protection: the pointer's sequence only grows */
		_cleanup_buf_ struct buf b = BUF_INIT;
		int64_t seen = 0;
		r = buf_read_file(&b, seen_path, 64);
		if (r >= 0) {
			buf_rtrim(&b);
			if (parse_int64(b.p, 0, INT64_MAX, &seen) < 0) {
				package_current_free(&c);
				return err_set(e, -EUCLEAN, "'%s' is not a sequence number", seen_path);
			}
		} else if (r != -ENOENT) {
			package_current_free(&c);
			return err_set_errno(e, r, "cannot read '%s'", seen_path);
		}
		if (c.sequence < (uint64_t)seen) {
			r = err_set(e, -ESTALE, "'%s' has sequence %llu, lower than the %lld this host "
				    "has seen: refusing it (an old pointer put back?)", key,
				    (unsigned long long)c.sequence, (long long)seen);
			package_current_free(&c);
			return r;
		}
		if (c.sequence > (uint64_t)seen) {
			_cleanup_free_ char *text = xasprintf("%llu\n", (unsigned long long)c.sequence);
			r = fs_write_atomic(seen_path, text, strlen(text), 0644);
			if (r < 0) {
				package_current_free(&c);
				return err_set_errno(e, r, "cannot write '%s'", seen_path);
			}
		}
	}
	*ret = c;
	return 0;
}
