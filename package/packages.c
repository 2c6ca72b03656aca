/*
 * package/packages.c - stored packages: load a manifest, the current id,
 * list, prune. Layers are package/layers.c. See package.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "package/package.h"

int package_load(struct storage *s, const struct sign_trust *t, const char *app, const char *id,
		 struct package_info *ret, struct err *e)
{
	char keyid[SIGN_KEYID_LEN + 1] = "";

	if (!app_name_ok(app))
		return err_set(e, -EINVAL, "invalid app name '%s'", app);
	if (!package_id_ok(id))
		return err_set(e, -EINVAL, "invalid package id '%s'", id);
	_cleanup_free_ char *key = storage_key_package(app, id, "json");
	_cleanup_buf_ struct buf text = BUF_INIT;
	/* the signature before anything of the manifest is read */
	int r = signed_get(s, t, key, &text, PACKAGE_MANIFEST_MAX, keyid, e);
	if (r == -ENOENT) {
		err_clear(e);
		return err_set(e, -ENOENT, "no package '%s' of app '%s'", id, app);
	}
	if (r == -E2BIG) {
		err_clear(e);
		return err_set(e, -EBADMSG, "manifest '%s' is larger than %zu bytes", key,
			       PACKAGE_MANIFEST_MAX);
	}
	if (r < 0)
		return r;
	struct package_info p = { 0 };
	r = package_manifest_parse(&p, text.p, app, id, e);
	if (r < 0)
		return err_prefix(e, "bad manifest '%s'", key);
	p.signer = keyid[0] ? xstrdup(keyid) : NULL;
	*ret = p;
	return 0;
}

int package_current(struct storage *s, const struct sign_trust *t, const char *app,
		    struct buf *ret_id, struct err *e)
{
	struct package_current c = { 0 };
	int r = package_current_read(s, t, app, &c, e);
	if (r < 0)
		return r;
	if (!package_id_ok(c.id)) {
		_cleanup_free_ char *key = storage_key_current(app);
		package_current_free(&c);
		return err_set(e, -EINVAL, "'%s' holds a bad package id", key);
	}
	buf_reset(ret_id);
	buf_adds(ret_id, c.id);
	package_current_free(&c);
	return 0;
}

int package_sbom(struct storage *s, const struct package_info *p, struct sbom *ret,
		 struct err *e)
{
	_cleanup_buf_ struct buf text = BUF_INIT;
	char hex[65];

	if (!p->sbom.key)
		return err_set(e, -ENOENT, "package %s/%s has no bill of materials (built before "
			       "upaas recorded one)", p->app, p->id);
	/* bounded by the signed size, checked against the signed digest */
	int r = storage_get_buf(s, p->sbom.key, &text, (size_t)p->sbom.size, e);
	if (r == -E2BIG) {
		err_clear(e);
		return err_set(e, -EBADMSG, "'%s' is larger than the %llu bytes of the manifest",
			       p->sbom.key, (unsigned long long)p->sbom.size);
	}
	if (r < 0)
		return r;
	sha256_hex(text.p, text.len, hex);
	if (text.len != p->sbom.size || strcmp(hex, p->sbom.sha256))
		return err_set(e, -EBADMSG, "'%s' does not match the sha256 and size of the "
			       "manifest of %s/%s", p->sbom.key, p->app, p->id);
	return sbom_parse(ret, text.p, e) < 0 ? err_prefix(e, "'%s'", p->sbom.key) : 0;
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
		/* <id>.json, not <id>.sbom.json */
		if (n > 5 && !strcmp(k + n - 5, ".json") && !strchr(k, '/') &&
		    !(n > 10 && !strcmp(k + n - 10, ".sbom.json")))
			strv_push_take(ids, xstrndup(k, n - 5));
	}
	strv_sort(ids);   /* ids sort by time */
	return 0;
}

/* ------------------------------------------------------------ prune */

/*
 * The logs of builds that made no package (failed, cancelled) are kept
 * like packages: the newest keep of them; the older ones are deleted.
 * packages: the ids that have a manifest (their logs go with them).
 */
static int prune_failed_logs(struct storage *s, const char *app, int keep,
			     const struct strv *packages, struct err *e)
{
	_cleanup_free_ char *prefix = xasprintf("logs/%s/", app);
	_cleanup_strv_ struct strv keys = STRV_INIT, failed = STRV_INIT;
	int r = storage_list_keys(s, prefix, &keys, e);
	if (r < 0)
		return err_prefix(e, "cannot list the logs of '%s'", app);
	size_t plen = strlen(prefix);
	for (size_t i = 0; i < keys.n; i++) {
		const char *k = keys.v[i];
		if (!strncmp(k, prefix, plen))
			k += plen;
		size_t n = strlen(k);
		if (n <= 4 || strcmp(k + n - 4, ".log") || strchr(k, '/'))
			continue;
		_cleanup_free_ char *id = xstrndup(k, n - 4);
		if (package_id_ok(id) && !strv_contains(packages, id))
			strv_push(&failed, id);
	}
	strv_sort(&failed);   /* ids sort by time */
	for (size_t i = 0; i + (size_t)keep < failed.n; i++) {
		_cleanup_free_ char *lkey = storage_key_log(app, failed.v[i]);
		r = storage_delete(s, lkey, e);
		if (r < 0)
			return err_prefix(e, "cannot prune the log '%s'", lkey);
	}
	return 0;
}

struct listing {
	struct strv keys;
	struct kvlist mtimes;   /* key -> decimal mtime */
};

static int listing_cb(void *data, const char *key, const struct storage_stat *st)
{
	struct listing *l = data;
	_cleanup_free_ char *t = xasprintf("%lld", (long long)st->mtime);

	strv_push(&l->keys, key);
	kvlist_set(&l->mtimes, key, t);
	return 0;
}

/* "<dir><id><ext>" -> id (caller frees), NULL when key is not of that shape. */
static char *key_id(const char *key, const char *dir, const char *ext)
{
	size_t dl = strlen(dir), el = strlen(ext), kl = strlen(key);

	if (kl <= dl + el || strncmp(key, dir, dl) || strcmp(key + kl - el, ext) ||
	    memchr(key + dl, '/', kl - dl - el))
		return NULL;
	return xstrndup(key + dl, kl - dl - el);
}

/* Deletes the manifest (then its signature), bill of materials and log of
 * app/id, then its tombstone. Its layers (a first-edition package's blob
 * too) go with layers_gc() once no other package lists them. */
static int prune_one(struct storage *s, const char *app, const char *id, struct err *e)
{
	_cleanup_free_ char *mkey = storage_key_package(app, id, "json");
	_cleanup_free_ char *skey = storage_key_package(app, id, "sbom.json");
	_cleanup_free_ char *lkey = storage_key_log(app, id);
	_cleanup_free_ char *tkey = storage_key_package(app, id, "pruned");
	/* the manifest is the commit marker: once it is gone, the package is
	 * gone; the tombstone says the rest is garbage, whatever its age */
	int r = signed_delete(s, mkey, e);

	if (r >= 0)
		crash_point("package.prune.after-manifest");
	if (r >= 0)
		r = storage_delete(s, skey, e);
	if (r >= 0)
		crash_point("package.prune.after-bill");
	if (r >= 0)
		r = storage_delete(s, lkey, e);
	if (r >= 0)
		r = storage_delete(s, tkey, e);
	return r;
}

/*
 * Deletes what no manifest of app names any more: what a prune that died
 * left (its tombstone packages/<app>/<id>.pruned says so: at once), and
 * bills of materials and signatures without a manifest (a build that died
 * between its layer and its manifest on a host that builds the app no more)
 * once they are PACKAGE_ORPHAN_GRACE_S old: a younger one may be that of a
 * build on another host, between its layer and its manifest right now.
 * Blobs and layers are layers_gc()'s: a first-edition blob may be the
 * bottom layer of a later package. A log without a manifest is that of a
 * build that made no package: prune_failed_logs() keeps the newest of them.
 */
static int prune_orphans(struct storage *s, const char *app, struct err *e)
{
	_cleanup_free_ char *pdir = xasprintf("packages/%s/", app);
	struct listing l = { STRV_INIT, KVLIST_INIT };
	int64_t now = now_unix();
	int r = storage_list(s, pdir, listing_cb, &l, e);

	for (size_t i = 0; r >= 0 && i < l.keys.n; i++) {
		const char *k = l.keys.v[i];
		_cleanup_free_ char *dead = key_id(k, pdir, ".pruned");
		/* what a package has besides its manifest and its layers: its
		 * bill of materials, the manifest's signature (written before
		 * the manifest); its log goes with the manifest (prune_one()) */
		_cleanup_free_ char *id = NULL;
		int64_t mtime = 0;

		if (dead && package_id_ok(dead)) {
			r = prune_one(s, app, dead, e);
			if (r >= 0)
				log_info("finished the pruning of %s/%s", app, dead);
			continue;
		}
		id = key_id(k, pdir, ".sbom.json");
		if (!id)
			id = key_id(k, pdir, ".json.sig");
		if (!id || !package_id_ok(id))
			continue;
		_cleanup_free_ char *mkey = storage_key_package(app, id, "json");
		if (strv_contains(&l.keys, mkey))
			continue;
		parse_int64(kvlist_get(&l.mtimes, k), INT64_MIN, INT64_MAX, &mtime);
		if (now - mtime < PACKAGE_ORPHAN_GRACE_S)
			continue;
		r = storage_delete(s, k, e);
		if (r >= 0)
			log_info("deleted '%s', which no package manifest names", k);
	}
	strv_free(&l.keys);
	kvlist_free(&l.mtimes);
	return r < 0 ? err_prefix(e, "cannot delete what no manifest of '%s' names", app) : 0;
}

int packages_prune(struct storage *s, const struct sign_trust *t, const char *app, int keep,
		   struct strv *ret_removed, struct err *e)
{
	_cleanup_strv_ struct strv ids = STRV_INIT;
	_cleanup_buf_ struct buf cur = BUF_INIT;
	int r;

	if (keep < 1)
		keep = 1;
	r = packages_list(s, app, &ids, e);
	if (r < 0)
		return r;
	r = package_current(s, t, app, &cur, e);
	if (r == -ENOENT) {
		err_clear(e);
	} else if (r < 0) {
		/* without knowing current, deleting anything could remove it */
		return err_prefix(e, "not pruning '%s'", app);
	}
	r = prune_failed_logs(s, app, keep, &ids, e);
	if (r < 0)
		return r;
	if (ids.n <= (size_t)keep)
		return prune_orphans(s, app, e);
	for (size_t i = 0; i + (size_t)keep < ids.n; i++) {
		const char *id = ids.v[i];
		if (cur.len && !strcmp(id, cur.p))
			continue;
		/* a tombstone first: a prune that dies halfway leaves it, and
		 * the next prune finishes the job at once */
		_cleanup_free_ char *tkey = storage_key_package(app, id, "pruned");
		r = storage_put_buf(s, tkey, "", 0, e);
		if (r >= 0)
			crash_point("package.prune.after-tombstone");
		if (r >= 0)
			r = prune_one(s, app, id, e);
		if (r < 0)
			return err_prefix(e, "cannot prune %s/%s", app, id);
		if (ret_removed)
			strv_push(ret_removed, id);
	}
	return prune_orphans(s, app, e);
}
