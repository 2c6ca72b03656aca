/*
 * package/packages.c - stored packages: load a manifest, the current id,
 * list, prune. Layers are package/layers.c. See package.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "package/package.h"

int package_load(struct storage *s, const char *app, const char *id, struct package_info *ret,
		 struct err *e)
{
	if (!app_name_ok(app))
		return err_set(e, -EINVAL, "invalid app name '%s'", app);
	if (!package_id_ok(id))
		return err_set(e, -EINVAL, "invalid package id '%s'", id);
	_cleanup_free_ char *key = storage_key_package(app, id, "json");
	_cleanup_buf_ struct buf text = BUF_INIT;
	int r = storage_get_buf(s, key, &text, PACKAGE_MANIFEST_MAX, e);
	if (r == -ENOENT) {
		err_clear(e);
		return err_set(e, -ENOENT, "no package '%s' of app '%s'", id, app);
	}
	if (r < 0)
		return r;
	struct package_info p = { 0 };
	r = package_manifest_parse(&p, text.p, app, id, e);
	if (r < 0)
		return err_prefix(e, "bad manifest '%s'", key);
	*ret = p;
	return 0;
}

int package_current(struct storage *s, const char *app, struct buf *ret_id, struct err *e)
{
	_cleanup_free_ char *key = storage_key_current(app);
	_cleanup_buf_ struct buf b = BUF_INIT;
	int r = storage_get_buf(s, key, &b, 256, e);
	if (r < 0)
		return r;
	buf_rtrim(&b);
	if (!package_id_ok(b.p))
		return err_set(e, -EINVAL, "'%s' holds a bad package id", key);
	buf_reset(ret_id);
	buf_adds(ret_id, b.p);
	return 0;
}

int packages_list(struct storage *s, const char *app, struct strv *ids, struct err *e)
{
	if (!app_name_ok(app))
		return err_set(e, -EINVAL, "invalid app name '%s'", app);
	_cleanup_free_ char *prefix = xasprintf("packages/%s/", app);
	_cleanup_strv_ struct strv keys = STRV_INIT;
	int r = storage_list_keys(s, prefix, &keys, e);
	if (r < 0)
		return r;
	size_t plen = strlen(prefix);
	for (size_t i = 0; i < keys.n; i++) {
		const char *k = keys.v[i];
		/* storage_list_keys may give full keys or names below prefix */
		if (!strncmp(k, prefix, plen))
			k += plen;
		size_t n = strlen(k);
		if (n > 5 && !strcmp(k + n - 5, ".json") && !strchr(k, '/'))
			strv_push_take(ids, xstrndup(k, n - 5));
	}
	strv_sort(ids);   /* ids sort by time */
	return 0;
}

/* ------------------------------------------------------------ prune */

int packages_prune(struct storage *s, const char *app, int keep, struct strv *ret_removed,
		   struct err *e)
{
	_cleanup_strv_ struct strv ids = STRV_INIT;
	_cleanup_buf_ struct buf cur = BUF_INIT;
	int r;

	if (keep < 1)
		keep = 1;
	r = packages_list(s, app, &ids, e);
	if (r < 0)
		return r;
	r = package_current(s, app, &cur, e);
	if (r == -ENOENT) {
		err_clear(e);
	} else if (r < 0) {
		/* without knowing current, deleting anything could remove it */
		return err_prefix(e, "not pruning '%s'", app);
	}
	if (ids.n <= (size_t)keep)
		return 0;
	for (size_t i = 0; i + (size_t)keep < ids.n; i++) {
		const char *id = ids.v[i];
		if (cur.len && !strcmp(id, cur.p))
			continue;
		/* the manifest is the commit marker: once it is gone, the package
		 * is gone; its layers (a first-edition package's blob too) go
		 * with layers_gc() once no other package lists them */
		_cleanup_free_ char *mkey = storage_key_package(app, id, "json");
		_cleanup_free_ char *lkey = storage_key_log(app, id);
		r = storage_delete(s, mkey, e);
		if (r >= 0)
			r = storage_delete(s, lkey, e);
		if (r < 0)
			return err_prefix(e, "cannot prune %s/%s", app, id);
		if (ret_removed)
			strv_push(ret_removed, id);
	}
	return 0;
}
