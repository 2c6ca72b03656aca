/*
 * package/layers.c - the layers of packages in storage: storing one under
 * its content address, fetching and verifying one, materializing a package
 * (its layers applied in order) as a tree or one flat tarball, and what the
 * layers cost (accounting and collection). See package.h and
 * upaas-package(5).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <string.h>
#include <sys/stat.h>

#include "archive/archive.h"
#include "package/package.h"

#define BLOCK ((size_t)1 << 20)

/* "layer 3f9a2c1b5d7e of package app/id ('layers/...')", for messages. */
static void layer_name(const struct package_info *p, size_t i, struct buf *out)
{
	buf_addf(out, "layer %.12s (%zu of %zu) of package %s/%s ('%s')", p->layers[i].sha256,
		 i + 1, p->n_layers, p->app, p->id, p->layers[i].key);
}

static int layer_fail(const struct package_info *p, size_t i, struct err *e)
{
	_cleanup_buf_ struct buf n = BUF_INIT;

	layer_name(p, i, &n);
	return err_prefix(e, "%s", n.p);
}

/* A temporary file in dir that nobody else can open: O_TMPFILE, or a
 * named one unlinked at once. */
static int tmpfile_in(const char *dir, struct err *e)
{
	int fd = open(dir, O_RDWR | O_TMPFILE | O_CLOEXEC, 0600);

	if (fd >= 0)
		return fd;
	_cleanup_free_ char *t = path_join(dir, ".upaas-layer.XXXXXX");
	fd = mkostemp(t, O_CLOEXEC);
	if (fd < 0)
		return err_set_errno(e, -errno, "cannot create a temporary file in '%s'", dir);
	unlink(t);
	return fd;
}

/* ------------------------------------------------------------ fetch */

struct vsink {
	struct sha256 h;
	uint64_t size, max;
	int fd;                 /* -1: verify only */
	int err;
};

static int vsink_write(void *data, const void *p, size_t n)
{
	struct vsink *v = data;

	if (v->size + n > v->max)
		return -EFBIG;
	v->size += n;
	sha256_update(&v->h, p, n);
	if (v->fd >= 0) {
		int r = fs_write_all(v->fd, p, n);
		if (r < 0)
			v->err = r;
		return r;
	}
	return 0;
}

/* Checks what the sink saw against layer l. */
static int vsink_check(struct vsink *v, const struct package_layer *l, struct err *e)
{
	char hex[65];

	sha256_final(&v->h, hex);
	if (v->size != l->size)
		return err_set(e, -EBADMSG, "corrupt: %llu bytes, the manifest says %llu",
			       (unsigned long long)v->size, (unsigned long long)l->size);
	if (strcmp(hex, l->sha256))
		return err_set(e, -EBADMSG, "corrupt: sha256 %s, the manifest says %s", hex,
			       l->sha256);
	return 0;
}

/* Reads fd to its end into the hash, at most max bytes (-EFBIG past). */
static int hash_fd(int fd, struct vsink *v)
{
	_cleanup_free_ char *block = xmalloc(BLOCK);

	for (;;) {
		ssize_t n = read(fd, block, BLOCK);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return 0;
		int r = vsink_write(v, block, (size_t)n);
		if (r < 0)
			return r;
	}
}

/* The verified bytes of layer i: see package.h. */
static int layer_open_impl(struct storage *s, const struct package_info *p, size_t i,
			   const char *tmpdir, struct err *e)
{
	const struct package_layer *l = &p->layers[i];
	struct vsink v = { .max = l->size, .fd = -1 };
	_cleanup_close_ int fd = -1;
	int r;

	if ((r = sha256_init(&v.h)) < 0)
		return err_set(e, r, "cannot start sha256");
	if (storage_caps(s) & STORAGE_CAP_FD) {
		/* local storage: read in place, hashed first (nothing unverified
		 * reaches the extractor), no copy, no fsync */
		fd = storage_open_fd(s, l->key, e);
		if (fd < 0) {
			sha256_free(&v.h);
			if (fd == -ENOENT) {
				err_clear(e);
				return err_set(e, -ENOENT, "missing from storage");
			}
			return fd;
		}
		r = hash_fd(fd, &v);
		if (r < 0 && r != -EFBIG) {
			sha256_free(&v.h);
			return err_set_errno(e, r, "cannot read it");
		}
	} else {
		/* elsewhere: streamed into a private temporary file, verified
		 * on the way and bounded by the size the manifest gives */
		fd = v.fd = tmpfile_in(tmpdir, e);
		if (fd < 0) {
			sha256_free(&v.h);
			return fd;
		}
		r = storage_get(s, l->key, vsink_write, &v, e);
		if (r == -ENOENT) {
			sha256_free(&v.h);
			err_clear(e);
			return err_set(e, -ENOENT, "missing from storage");
		}
		if (r < 0 && r != -EFBIG) {
			sha256_free(&v.h);
			if (v.err)
				return err_set_errno(e, v.err, "cannot write a temporary file in '%s'",
					       tmpdir);
			return r;
		}
	}
	if (r == -EFBIG) {
		sha256_free(&v.h);
		err_clear(e);
		return err_set(e, -EBADMSG, "corrupt: larger than the %llu bytes of the manifest",
			       (unsigned long long)l->size);
	}
	if ((r = vsink_check(&v, l, e)) < 0)
		return r;
	if (lseek(fd, 0, SEEK_SET) < 0)
		return err_set_errno(e, -errno, "cannot read it");
	return TAKE_FD(fd);
}

int layer_open(struct storage *s, const struct package_info *p, size_t i, const char *tmpdir,
	       struct err *e)
{
	int r = layer_open_impl(s, p, i, tmpdir, e);

	return r < 0 ? layer_fail(p, i, e) : r;
}

/* Opens the kept copy of layer i at path and hashes it: the fd (at offset
 * 0) when it is whole, -ENOENT when there is none, -EBADMSG when it is not
 * the layer (e says why). */
static int kept_open(const char *path, const struct package_layer *l, struct err *e)
{
	struct vsink v = { .max = l->size, .fd = -1 };
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
	struct stat st;
	int r;

	if (fd < 0)
		return errno == ENOENT ? -ENOENT : err_set_errno(e, -errno, "cannot open '%s'", path);
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return err_set(e, -EBADMSG, "'%s' is not a regular file", path);
	if ((r = sha256_init(&v.h)) < 0)
		return err_set(e, r, "cannot start sha256");
	r = hash_fd(fd, &v);
	if (r == -EFBIG) {
		sha256_free(&v.h);
		return err_set(e, -EBADMSG, "larger than the %llu bytes of the manifest",
			       (unsigned long long)l->size);
	}
	if (r < 0) {
		sha256_free(&v.h);
		return err_set_errno(e, r, "cannot read '%s'", path);
	}
	if ((r = vsink_check(&v, l, e)) < 0)
		return r;
	if (lseek(fd, 0, SEEK_SET) < 0)
		return err_set_errno(e, -errno, "cannot read '%s'", path);
	return TAKE_FD(fd);
}

int layer_open_kept(struct storage *s, const struct package_info *p, size_t i, const char *kept,
		    bool *ret_fetched, struct err *e)
{
	const struct package_layer *l = &p->layers[i];
	_cleanup_free_ char *path = NULL;
	int fd;

	*ret_fetched = true;
	if (!kept || (storage_caps(s) & STORAGE_CAP_FD))
		return layer_open(s, p, i, kept, e);
	path = xasprintf("%s/%s.tar.zst", kept, l->sha256);
	{
		_cleanup_err_ struct err ke = ERR_INIT;
		fd = kept_open(path, l, &ke);
		if (fd >= 0) {
			*ret_fetched = false;
			return fd;
		}
		if (fd != -ENOENT) {
			log_warn("the kept copy '%s' of layer %.12s is unusable (%s): fetching it again",
				 path, l->sha256, err_msg(&ke));
			unlink(path);
		}
	}
	fd = layer_open(s, p, i, kept, e);
	if (fd < 0)
		return fd;
	/* verified: named at once (the private file has no name yet; one with
	 * a name, from mkostemp, has none any more and stays unkept) */
	_cleanup_free_ char *proc = xasprintf("/proc/self/fd/%d", fd);
	if (linkat(AT_FDCWD, proc, AT_FDCWD, path, AT_SYMLINK_FOLLOW) < 0 && errno != EEXIST)
		log_debug("cannot keep layer %.12s as '%s': %s", l->sha256, path, strerror(errno));
	return fd;
}

int layer_unpack(struct storage *s, const struct package_info *p, size_t i, const char *dest,
		 enum unpack_mode mode, const char *tmpdir, struct progress *progress,
		 struct err *e)
{
	_cleanup_buf_ struct buf name = BUF_INIT;
	_cleanup_close_ int fd = layer_open(s, p, i, tmpdir, e);

	if (fd < 0)
		return fd;
	buf_addf(&name, "layer %.12s of %s/%s", p->layers[i].sha256, p->app, p->id);
	/* verified again while it is read: a file changed in place between
	 * the check and the read cannot slip through */
	struct unpack_opts o = { .mode = mode, .name = name.p, .sha256 = p->layers[i].sha256,
				 .size = p->layers[i].size, .progress = progress };
	return unpack_fd(fd, dest, &o, NULL, e);
}

int package_unpack(struct storage *s, const struct package_info *p, const char *dest,
		   const char *tmpdir, struct progress *progress, struct err *e)
{
	for (size_t i = 0; i < p->n_layers; i++) {
		int r = layer_unpack(s, p, i, dest, i ? UNPACK_APPLY : UNPACK_PLAIN, tmpdir, progress,
				     e);
		if (r < 0)
			return r;
	}
	return 0;
}

int package_verify_layers(struct storage *s, const struct package_info *p, struct err *e)
{
	for (size_t i = 0; i < p->n_layers; i++) {
		const struct package_layer *l = &p->layers[i];
		struct vsink v = { .max = l->size, .fd = -1 };
		int r;

		if ((r = sha256_init(&v.h)) < 0)
			return err_set(e, r, "cannot start sha256");
		r = storage_get(s, l->key, vsink_write, &v, e);
		if (r == -ENOENT) {
			err_clear(e);
			r = err_set(e, -ENOENT, "missing from storage");
		} else if (r == -EFBIG) {
			err_clear(e);
			r = err_set(e, -EBADMSG, "corrupt: larger than the %llu bytes of the "
				    "manifest", (unsigned long long)l->size);
		}
		if (r < 0) {
			sha256_free(&v.h);
			return layer_fail(p, i, e);
		}
		if (vsink_check(&v, l, e) < 0)
			return layer_fail(p, i, e);
	}
	return 0;
}

/* Writes the verified bytes of the one layer to fd. */
static int copy_layer(struct storage *s, const struct package_info *p, int out, const char *tmpdir,
		      struct err *e)
{
	_cleanup_close_ int fd = layer_open(s, p, 0, tmpdir, e);
	_cleanup_free_ char *block = NULL;

	if (fd < 0)
		return fd;
	block = xmalloc(BLOCK);
	for (;;) {
		ssize_t n = read(fd, block, BLOCK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return err_set_errno(e, -errno, "cannot read layer %.12s", p->layers[0].sha256);
		if (n == 0)
			return 0;
		int r = fs_write_all(out, block, (size_t)n);
		if (r < 0)
			return r;
	}
}

static int sink_fd(void *data, const void *p, size_t n)
{
	return fs_write_all(*(int *)data, p, n);
}

int package_fetch(struct storage *s, const struct package_info *p, const char *path,
		  struct err *e)
{
	if (!path)
		return package_verify_layers(s, p, e);

	/* the temporaries live next to path, so that rename() is atomic */
	_cleanup_free_ char *dircopy = xstrdup(path);
	const char *dir = dirname(dircopy);
	_cleanup_free_ char *tmp = xasprintf("%s.tmp.XXXXXX", path);
	_cleanup_free_ char *tree = NULL;
	int fd = mkostemp(tmp, O_CLOEXEC), r;

	if (fd < 0)
		return err_set_errno(e, -errno, "cannot create '%s'", tmp);
	if (p->n_layers == 1) {
		/* one layer is the flat tarball already */
		r = copy_layer(s, p, fd, dir, e);
	} else {
		/* several: applied in order into a tree, packed again; mtimes as
		 * the layers give them */
		struct pack_opts o = { .level = 3, .mtime_clamp = -1 };
		struct pack_result res;

		tree = xasprintf("%s.tree.XXXXXX", path);
		if (!mkdtemp(tree)) {
			r = err_set_errno(e, -errno, "cannot create '%s'", tree);
			free(tree);
			tree = NULL;
		} else {
			r = package_unpack(s, p, tree, dir, NULL, e);
			if (r >= 0)
				r = pack_tree(tree, &o, sink_fd, &fd, &res, e);
		}
	}
	if (r >= 0 && (fchmod(fd, 0644) < 0 || fsync(fd) < 0))
		r = err_set_errno(e, -errno, "cannot write '%s'", tmp);
	if (close(fd) < 0 && r >= 0)
		r = err_set_errno(e, -errno, "cannot write '%s'", tmp);
	if (r >= 0 && rename(tmp, path) < 0)
		r = err_set_errno(e, -errno, "cannot rename '%s' to '%s'", tmp, path);
	if (r < 0)
		unlink(tmp);
	if (tree) {
		_cleanup_err_ struct err e2 = ERR_INIT;
		if (fs_rm_rf(tree, &e2) < 0)
			log_warn("%s", err_msg(&e2));
	}
	return r < 0 ? r : 0;
}

/* ------------------------------------------------------------ store */

/* The sink of a layer's upload: the storage upload, committed under the
 * content address the pack result holds by then. */
struct cas_sink {
	struct sink up;
	const struct pack_result *res;
	bool skip_empty;
	struct err *e;
};

static int cas_write(void *data, const void *p, size_t n, struct err *e)
{
	struct cas_sink *c = data;
	return c->up.write(c->up.data, p, n, e);
}

static int cas_commit(void *data, struct err *e)
{
	struct cas_sink *c = data;
	_cleanup_free_ char *key = storage_key_layer(c->res->sha256);

	if (c->skip_empty && !c->res->entries) {
		c->up.abort(c->up.data);
		return 1;   /* nothing changed: nothing stored */
	}
	return storage_upload_commit_as(c->up.data, key, e);
}

static void cas_abort(void *data)
{
	struct cas_sink *c = data;
	c->up.abort(c->up.data);
}

static void tmp_key(struct buf *out)
{
	_cleanup_free_ char *id = id_new();
	buf_addf(out, "layers/upload-%s.tar.zst", id);
}

int layer_store(struct storage *s, const struct layer_store_opts *o, struct package_layer *ret,
		struct pack_result *ret_pack, struct err *e)
{
	_cleanup_buf_ struct buf up = BUF_INIT;
	struct pack_result res = { 0 };
	int r;

	if (storage_caps(s) & STORAGE_CAP_COMMIT_AS) {
		/* straight into storage, named at the end: an object that is
		 * there already is replaced by the same bytes, which makes it
		 * young again (the grace of layers_gc) */
		struct cas_sink c = { .res = &res, .skip_empty = o->skip_empty, .e = e };
		struct sink out = { cas_write, cas_commit, cas_abort, &c };

		tmp_key(&up);
		r = storage_upload_sink(s, up.p, 0, &c.up, e);
		if (r < 0)
			return r;
		r = o->upper ? pack_layer_to_storage(o->root, o->lower, &o->pack, &out, &res, e)
			     : pack_to_storage(o->root, &o->pack, &out, &res, e);
		if (r < 0)
			return r;
		if (r > 0) {
			if (ret_pack)
				*ret_pack = res;
			return 1;
		}
	} else {
		/* packed into a private file first: the key is its sha256 */
		_cleanup_close_ int fd = tmpfile_in(o->tmpdir, e);
		_cleanup_free_ char *key = NULL;
		struct storage_stat st;

		if (fd < 0)
			return fd;
		r = o->upper ? pack_layer(o->root, o->lower, &o->pack, sink_fd, &fd, &res, e)
			     : pack_tree(o->root, &o->pack, sink_fd, &fd, &res, e);
		if (r < 0)
			return r;
		if (proc_cancelled)
			return proc_check_cancel(e);
		if (o->skip_empty && !res.entries) {
			if (ret_pack)
				*ret_pack = res;
			return 1;
		}
		key = storage_key_layer(res.sha256);
		r = storage_stat(s, key, &st, e);
		/* there already, and young enough not to be collected before
		 * the manifest lists it: nothing to upload */
		bool skip = r >= 0 && st.size == res.size && o->grace > 0 && st.mtime > 0 &&
			    now_unix() - st.mtime < o->grace / 2;
		err_clear(e);
		if (!skip) {
			if (lseek(fd, 0, SEEK_SET) < 0)
				return err_set_errno(e, -errno, "cannot read the packed layer");
			r = storage_put_fd(s, key, fd, e);
			if (r < 0)
				return r;
		}
	}
	if (ret) {
		ret->key = storage_key_layer(res.sha256);
		memcpy(ret->sha256, res.sha256, sizeof(ret->sha256));
		ret->size = res.size;
		ret->kind = xstrdup(o->upper ? "delta" : "full");
	}
	if (ret_pack)
		*ret_pack = res;
	return 0;
}

int package_layers_check(struct storage *s, const struct package_info *p, struct err *e)
{
	for (size_t i = 0; i < p->n_layers; i++) {
		struct storage_stat st;
		int r = storage_stat(s, p->layers[i].key, &st, e);

		if (r == -ENOENT) {
			err_clear(e);
			err_set(e, r, "missing from storage");
		} else if (r >= 0 && st.size != p->layers[i].size) {
			r = err_set(e, -EBADMSG, "corrupt: %llu bytes, the manifest says %llu",
				    (unsigned long long)st.size,
				    (unsigned long long)p->layers[i].size);
		}
		if (r < 0)
			return layer_fail(p, i, e);
	}
	return 0;
}

/* ------------------------------------------------------- accounting */

void package_catalog_free(struct package_catalog *x)
{
	for (size_t i = 0; i < x->n; i++) {
		free(x->v[i].app);
		free(x->v[i].id);
		free(x->v[i].error);
		strv_free(&x->v[i].keys);
		package_info_free(&x->v[i].info);
	}
	free(x->v);
	for (size_t i = 0; i < x->n_objects; i++)
		free(x->objects[i].key);
	free(x->objects);
	memset(x, 0, sizeof(*x));
}

static int obj_cb(void *data, const char *key, const struct storage_stat *st)
{
	struct package_catalog *x = data;

	if (x->n_objects % 64 == 0)
		x->objects = xrealloc(x->objects, (x->n_objects + 64) * sizeof(*x->objects));
	x->objects[x->n_objects++] = (struct stored_object){ .key = xstrdup(key), .st = *st };
	return 0;
}

static int cmp_obj(const void *a, const void *b)
{
	return strcmp(((const struct stored_object *)a)->key, ((const struct stored_object *)b)->key);
}

const struct stored_object *package_catalog_object(const struct package_catalog *x, const char *key)
{
	struct stored_object k = { .key = (char *)key };

	if (!x->n_objects)
		return NULL;
	return bsearch(&k, x->objects, x->n_objects, sizeof(k), cmp_obj);
}

/*
 * Reads one manifest for the index: the strict reader for the package
 * (ip->ok), and whatever it lists as a layer for the collection (ip->keys),
 * also when the strict reader refuses it for another reason: a manifest is
 * taken to list a key as long as its JSON names it.
 */
static int index_read(struct storage *s, struct indexed_package *ip, struct err *e)
{
	_cleanup_free_ char *key = storage_key_package(ip->app, ip->id, "json");
	_cleanup_buf_ struct buf text = BUF_INIT;
	_cleanup_err_ struct err pe = ERR_INIT;
	int r = storage_get_buf(s, key, &text, PACKAGE_MANIFEST_MAX, e);

	if (r < 0)
		return r;
	r = package_manifest_keys(text.p, &ip->keys, e);
	if (r < 0)
		return err_prefix(e, "'%s'", key);
	if (package_manifest_parse(&ip->info, text.p, ip->app, ip->id, &pe) >= 0)
		ip->ok = true;
	return 0;
}

int package_catalog_load(struct storage *s, struct package_catalog *ret, struct err *e)
{
	struct package_catalog x = { 0 };
	int r;

	/* every object under packages/ and layers/, with its size and mtime */
	if ((r = storage_list(s, "packages/", obj_cb, &x, e)) < 0 ||
	    (r = storage_list(s, "layers/", obj_cb, &x, e)) < 0 ||
	    (r = storage_list(s, "logs/", obj_cb, &x, e)) < 0) {
		package_catalog_free(&x);
		return r;
	}
	if (x.n_objects)
		qsort(x.objects, x.n_objects, sizeof(*x.objects), cmp_obj);
	for (size_t i = 0; i < x.n_objects; i++) {
		const char *k = x.objects[i].key + strlen("packages/");
		const char *slash = strchr(k, '/');
		size_t n = strlen(k);

		/* <id>.json, not <id>.sbom.json */
		if (strncmp(x.objects[i].key, "packages/", 9) || !slash || n < 6 ||
		    strcmp(k + n - 5, ".json") || strchr(slash + 1, '/') ||
		    (n > 10 && !strcmp(k + n - 10, ".sbom.json")))
			continue;
		_cleanup_free_ char *app = xstrndup(k, (size_t)(slash - k));
		_cleanup_free_ char *id = xstrndup(slash + 1, strlen(slash + 1) - 5);
		if (!app_name_ok(app) || !package_id_ok(id))
			continue;
		if (x.n % 32 == 0)
			x.v = xrealloc(x.v, (x.n + 32) * sizeof(*x.v));
		struct indexed_package *ip = &x.v[x.n++];
		_cleanup_err_ struct err le = ERR_INIT;
		*ip = (struct indexed_package){ .app = TAKE_PTR(app), .id = TAKE_PTR(id) };
		r = index_read(s, ip, &le);
		if (r == -ENOENT)
			ip->gone = true;     /* removed meanwhile */
		else if (r < 0)
			ip->error = xstrdup(err_msg(&le));
	}
	*ret = x;
	return 0;
}

/* true when a manifest of the index lists key; *other_app (may be NULL)
 * set when one of another app than app does. */
static bool listed(const struct package_catalog *x, const char *key, const char *app,
		   bool *other_app)
{
	bool found = false;

	for (size_t i = 0; i < x->n; i++) {
		if (!strv_contains(&x->v[i].keys, key))
			continue;
		found = true;
		if (other_app && app && strcmp(x->v[i].app, app))
			*other_app = true;
	}
	return found;
}

/* The index entry that first (oldest first, ids sort by time) lists key
 * among the packages of app. */
static const struct indexed_package *first_lister(const struct package_catalog *x, const char *app,
						  const char *key)
{
	for (size_t i = 0; i < x->n; i++) {
		if (!x->v[i].ok || strcmp(x->v[i].app, app))
			continue;
		for (size_t k = 0; k < x->v[i].info.n_layers; k++)
			if (!strcmp(x->v[i].info.layers[k].key, key))
				return &x->v[i];
	}
	return NULL;
}

uint64_t package_own_size(const struct package_catalog *x, const struct indexed_package *ip)
{
	uint64_t n = 0;

	for (size_t k = 0; k < ip->info.n_layers; k++)
		if (first_lister(x, ip->app, ip->info.layers[k].key) == ip)
			n += ip->info.layers[k].size;
	return n;
}

int package_usage(const struct package_catalog *x, const char *app, struct app_usage *ret)
{
	_cleanup_strv_ struct strv seen = STRV_INIT;
	_cleanup_free_ char *logs = xasprintf("logs/%s/", app);
	_cleanup_free_ char *pkgs = xasprintf("packages/%s/", app);

	memset(ret, 0, sizeof(*ret));
	for (size_t i = 0; i < x->n; i++) {
		if (strcmp(x->v[i].app, app) || x->v[i].gone)
			continue;
		ret->packages++;
		if (!x->v[i].ok) {
			ret->unreadable++;
			continue;
		}
		/* (an unreadable manifest still holds its layers in storage:
		 * they count with the app whose packages list them readably) */
		ret->listed += package_size(&x->v[i].info);
		for (size_t k = 0; k < x->v[i].info.n_layers; k++) {
			const struct package_layer *l = &x->v[i].info.layers[k];
			const struct stored_object *o;
			bool other = false;

			if (strv_contains(&seen, l->key))
				continue;
			strv_push(&seen, l->key);
			ret->layers++;
			o = package_catalog_object(x, l->key);
			if (!o) {
				ret->missing++;
				continue;
			}
			ret->stored += o->st.size;
			listed(x, l->key, app, &other);
			if (other)
				ret->shared += o->st.size;
		}
	}
	/* the app's own small objects: manifests, signatures, logs */
	for (size_t i = 0; i < x->n_objects; i++) {
		const char *k = x->objects[i].key;
		if (!strncmp(k, logs, strlen(logs)) ||
		    (!strncmp(k, pkgs, strlen(pkgs)) && !strv_contains(&seen, k)))
			ret->other += x->objects[i].st.size;
	}
	return 0;
}

/* ------------------------------------------------------- collection */

/* true for a key a package may list as a layer: layers/<sha>.tar.zst, or
 * packages/<app>/<id>.tar.zst (a first-edition blob). */
static bool layer_like(const char *key)
{
	size_t n = strlen(key);

	if (n < 8 || strcmp(key + n - 8, ".tar.zst"))
		return false;
	if (!strncmp(key, "layers/", 7))
		return !strchr(key + 7, '/');
	if (strncmp(key, "packages/", 9))
		return false;
	const char *slash = strchr(key + 9, '/');
	return slash && !strchr(slash + 1, '/');
}

int layers_gc(struct storage *s, int64_t grace, struct gc_result *ret, struct err *e)
{
	struct package_catalog x = { 0 };
	int64_t now = now_unix();
	int r = package_catalog_load(s, &x, e);

	if (r < 0)
		return r;
	for (size_t i = 0; i < x.n; i++)
		if (x.v[i].error) {
			/* what it lists is unknown: keep everything */
			r = err_set(e, -EBADMSG, "not collecting layers: the manifest of %s/%s is "
				    "not JSON: %s", x.v[i].app, x.v[i].id, x.v[i].error);
			package_catalog_free(&x);
			return r;
		}
	for (size_t i = 0; i < x.n_objects && r >= 0; i++) {
		const struct stored_object *o = &x.objects[i];
		size_t n = strlen(o->key);

		if (!layer_like(o->key) || listed(&x, o->key, NULL, NULL))
			continue;
		/* a first-edition blob whose manifest is still there is its
		 * package's, whatever the listing said */
		if (!strncmp(o->key, "packages/", 9)) {
			_cleanup_free_ char *m = xasprintf("%.*s.json", (int)(n - 8), o->key);
			if (package_catalog_object(&x, m))
				continue;
		}
		/* young: a build may have stored it and not listed it yet */
		if (o->st.mtime <= 0 || now - o->st.mtime < grace)
			continue;
		r = storage_delete(s, o->key, e);
		if (r < 0)
			break;
		crash_point("layers.gc.after-delete");
		log_info("removed layer '%s' (no package lists it)", o->key);
		if (ret) {
			strv_push(&ret->removed, o->key);
			ret->bytes += o->st.size;
		}
	}
	package_catalog_free(&x);
	return r < 0 ? r : 0;
}
