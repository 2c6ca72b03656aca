/*
 * cli/cmd-storage.c - upaas storage: check the configured handler, list,
 * and move single objects in and out (admin tools, handy in tests).
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>

#include <json-c/json.h>

#include "cli/cli.h"
#include "package/package.h"

enum { O_JSON = CLI_LONG, O_KEY, O_IF_NONE_MATCH, O_ETAG, O_FORCE };

struct opts {
	bool json;
	bool lng;
	bool force;
	const char *key;
};

/* ------------------------------------------------------------------ check */

struct check {
	bool json;
	int failed;
	struct json_object *stages;
	struct json_object *uploads;
	int found;     /* incomplete uploads seen by check_uploads */
};

/* Reports one stage: status is "ok", "FAILED" or "skipped". */
static void stage(struct check *k, const char *name, const char *status, const char *fmt, ...)
	_printf_(4, 5);
static void stage(struct check *k, const char *name, const char *status, const char *fmt, ...)
{
	_cleanup_buf_ struct buf why = BUF_INIT;
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		buf_vaddf(&why, fmt, ap);
		va_end(ap);
	}
	if (!strcmp(status, "FAILED"))
		k->failed++;
	if (k->json) {
		struct json_object *o = json_object_new_object();
		json_object_object_add(o, "stage", json_object_new_string(name));
		json_object_object_add(o, "status", json_object_new_string(status));
		if (why.len)
			json_object_object_add(o, "detail", json_object_new_string(why.p));
		json_object_array_add(k->stages, o);
		return;
	}
	printf("%-10s %s%s%s%s\n", name, status, why.len ? " (" : "", why.p, why.len ? ")" : "");
	fflush(stdout);
}

#define CHECK_LIST_MAX 1000

static int count_cb(void *data, const char *key, const struct storage_stat *st)
{
	size_t *n = data;
	if (++*n >= CHECK_LIST_MAX)
		return -ECANCELED;
	return 0;
}

struct hash_ctx {
	struct sha256 h;
	uint64_t n;
};

static int hash_sink(void *data, const void *p, size_t n)
{
	struct hash_ctx *hc = data;
	sha256_update(&hc->h, p, n);
	hc->n += n;
	return 0;
}

static void check_list(struct check *k, struct storage *s)
{
	_cleanup_err_ struct err e = ERR_INIT;
	size_t n = 0;
	int r = storage_list(s, "", count_cb, &n, &e);
	if (r == -ECANCELED)
		stage(k, "list", "ok", "%d+ objects", CHECK_LIST_MAX);
	else if (r < 0)
		stage(k, "list", "FAILED", "%s", err_msg(&e));
	else
		stage(k, "list", "ok", "%zu object%s", n, n == 1 ? "" : "s");
}

static void check_write(struct check *k, struct storage *s)
{
	_cleanup_err_ struct err e = ERR_INIT;
	_cleanup_free_ char *id = id_new();
	_cleanup_free_ char *key = xasprintf("upaas-check/%s", id);
	/* more than one transfer block, and not a round size */
	size_t len = 256 * 1024 + 17;
	_cleanup_free_ char *data = xmalloc(len);
	for (size_t off = 0; off < len;) {
		ssize_t got = getrandom(data + off, len - off, 0);
		if (got <= 0) {
			for (; off < len; off++)
				data[off] = (char)(off * 31 + 7);
			break;
		}
		off += (size_t)got;
	}

	int r = storage_put_buf(s, key, data, len, &e);
	if (r < 0) {
		stage(k, "write", "FAILED", "%s", err_msg(&e));
		stage(k, "read", "skipped", "nothing was written");
		stage(k, "stat", "skipped", "nothing was written");
		stage(k, "delete", "skipped", "nothing was written");
		return;
	}
	stage(k, "write", "ok", "%s, %zu bytes", key, len);

	_cleanup_buf_ struct buf back = BUF_INIT;
	err_clear(&e);
	r = storage_get_buf(s, key, &back, len + 1, &e);
	if (r < 0)
		stage(k, "read", "FAILED", "%s", err_msg(&e));
	else if (back.len != len || memcmp(back.p, data, len))
		stage(k, "read", "FAILED", "read back %zu bytes that differ from the %zu written",
		      back.len, len);
	else
		stage(k, "read", "ok", "%zu bytes match", len);

	struct storage_stat st;
	err_clear(&e);
	r = storage_stat(s, key, &st, &e);
	if (r < 0)
		stage(k, "stat", "FAILED", "%s", err_msg(&e));
	else if (st.size != len)
		stage(k, "stat", "FAILED", "size %llu, want %zu", (unsigned long long)st.size, len);
	else
		stage(k, "stat", "ok", "%llu bytes", (unsigned long long)st.size);

	if (storage_caps(s) & STORAGE_CAP_LIST) {
		_cleanup_strv_ struct strv keys = STRV_INIT;
		err_clear(&e);
		r = storage_list_keys(s, "upaas-check/", &keys, &e);
		if (r < 0)
			stage(k, "list new", "FAILED", "%s", err_msg(&e));
		else if (!strv_contains(&keys, key))
			stage(k, "list new", "FAILED", "'%s' is not listed", key);
		else
			stage(k, "list new", "ok", NULL);
	}

	err_clear(&e);
	r = storage_delete(s, key, &e);
	if (r < 0) {
		stage(k, "delete", "FAILED", "%s", err_msg(&e));
		return;
	}
	err_clear(&e);
	r = storage_stat(s, key, &st, &e);
	if (r == -ENOENT)
		stage(k, "delete", "ok", NULL);
	else if (r < 0)
		stage(k, "delete", "FAILED", "stat after delete: %s", err_msg(&e));
	else
		stage(k, "delete", "FAILED", "'%s' is still there after delete", key);
}

static int stale_cb(void *data, const struct storage_stale *u)
{
	struct check *k = data;
	char size[32];

	k->found++;
	if (k->json) {
		struct json_object *o = json_object_new_object();
		json_object_object_add(o, "key", json_object_new_string(u->key));
		json_object_object_add(o, "id", json_new_str(u->id));
		json_object_object_add(o, "started", json_object_new_int64(u->started));
		json_object_object_add(o, "idle", json_object_new_int64(u->idle));
		json_object_object_add(o, "size", json_object_new_int64((int64_t)u->size));
		json_object_object_add(o, "removed", json_object_new_boolean(u->removed));
		json_object_object_add(o, "error", json_new_str(u->error));
		json_object_array_add(k->uploads, o);
		return 0;
	}
	fmt_bytes(u->size, size);
	printf("  incomplete upload of '%s'%s%s%s, %s, idle %lld s: %s\n", u->key,
	       u->id ? " (upload id '" : "", u->id ? u->id : "", u->id ? "')" : "", size,
	       (long long)u->idle,
	       u->removed ? "removed" : u->error ? u->error : "left (it may still be running)");
	return 0;
}

/* Lists what unfinished uploads left and removes the dead ones (all with
 * force). */
static void check_uploads(struct check *k, struct storage *s, bool force)
{
	_cleanup_err_ struct err e = ERR_INIT;
	int r = storage_sweep_uploads(s, force ? 0 : STORAGE_UPLOAD_GRACE, stale_cb, k, &e);
	if (r < 0)
		stage(k, "uploads", "FAILED", "%s", err_msg(&e));
	else
		stage(k, "uploads", "ok", "%d incomplete upload%s, %d removed", k->found,
		      k->found == 1 ? "" : "s", r);
}

/* For read-only handlers: a missing key must read as "not found", which
 * shows that the server answers and errors map correctly. */
static void check_read_missing(struct check *k, struct storage *s)
{
	_cleanup_err_ struct err e = ERR_INIT;
	_cleanup_free_ char *id = id_new();
	_cleanup_free_ char *key = xasprintf("upaas-check/%s-missing", id);
	struct storage_stat st;
	int r = storage_stat(s, key, &st, &e);
	if (r == -ENOENT)
		stage(k, "read", "ok", "a missing object reads as not found");
	else if (r < 0)
		stage(k, "read", "FAILED", "%s", err_msg(&e));
	else
		stage(k, "read", "FAILED", "'%s' exists, but was never written", key);
}

static void check_read_key(struct check *k, struct storage *s, const char *key)
{
	_cleanup_err_ struct err e = ERR_INIT;
	struct storage_stat st;
	int r = storage_stat(s, key, &st, &e);
	if (r < 0) {
		stage(k, "read key", "FAILED", "%s", err_msg(&e));
		return;
	}
	struct hash_ctx hc = { .n = 0 };
	if (sha256_init(&hc.h) < 0) {
		stage(k, "read key", "FAILED", "cannot start sha256");
		return;
	}
	r = storage_get(s, key, hash_sink, &hc, &e);
	char hex[65];
	sha256_final(&hc.h, hex);
	if (r < 0)
		stage(k, "read key", "FAILED", "%s", err_msg(&e));
	else if (st.size && st.size != hc.n)
		stage(k, "read key", "FAILED", "'%s': read %llu bytes, stat says %llu", key,
		      (unsigned long long)hc.n, (unsigned long long)st.size);
	else
		stage(k, "read key", "ok", "%s, %llu bytes, sha256 %s", key,
		      (unsigned long long)hc.n, hex);
}

static int storage_check(struct cli *c, const struct cli_args *a)
{
	struct opts o = { .json = cli_flag(a, O_JSON), .key = cli_arg(a, O_KEY),
			  .force = cli_flag(a, O_FORCE) };
	if (o.key && !storage_key_ok(o.key))
		return cli_usage("invalid storage key '%s'", o.key);

	struct storage *s;
	if (cli_storage(c, &s) < 0)
		return 1;

	_cleanup_json_ struct json_object *stages = o.json ? json_object_new_array() : NULL;
	_cleanup_json_ struct json_object *uploads = o.json ? json_object_new_array() : NULL;
	struct check k = { .json = o.json, .stages = stages, .uploads = uploads };
	unsigned caps = storage_caps(s);
	if (!o.json)
		printf("storage: handler '%s' at '%s'\n", storage_name(s), storage_where(s));

	if (caps & STORAGE_CAP_LIST)
		check_list(&k, s);
	else
		stage(&k, "list", "skipped", "handler '%s' cannot list", storage_name(s));
	if (caps & STORAGE_CAP_WRITE) {
		check_write(&k, s);
		check_uploads(&k, s, o.force);
	} else {
		stage(&k, "write", "skipped", "handler '%s' is read-only", storage_name(s));
		check_read_missing(&k, s);
	}
	if (o.key)
		check_read_key(&k, s, o.key);

	if (o.json) {
		struct json_object *out = json_object_new_object();
		json_object_object_add(out, "handler", json_object_new_string(storage_name(s)));
		json_object_object_add(out, "where", json_object_new_string(storage_where(s)));
		json_object_object_add(out, "ok", json_object_new_boolean(k.failed == 0));
		json_object_object_add(out, "stages", TAKE_PTR(stages));
		json_object_object_add(out, "uploads", TAKE_PTR(uploads));
		cli_json_print(out);
	} else {
		printf("%s\n", k.failed ? "storage check FAILED" : "storage check ok");
	}
	return k.failed ? 1 : 0;
}

/* --------------------------------------------------------------------- ls */

struct ls_ctx {
	bool lng;
	struct json_object *arr;
};

static int ls_cb(void *data, const char *key, const struct storage_stat *st)
{
	struct ls_ctx *l = data;
	if (l->arr) {
		struct json_object *o = json_object_new_object();
		json_object_object_add(o, "key", json_object_new_string(key));
		json_object_object_add(o, "size", json_object_new_int64((int64_t)st->size));
		json_object_object_add(o, "mtime", json_object_new_int64(st->mtime));
		json_object_array_add(l->arr, o);
	} else if (l->lng) {
		char when[32] = "-";
		if (st->mtime)
			time_iso8601(st->mtime, when);
		printf("%12llu  %-20s  %s\n", (unsigned long long)st->size, when, key);
	} else {
		puts(key);
	}
	return 0;
}

static int storage_ls(struct cli *c, const struct cli_args *a)
{
	struct opts o = { .json = cli_flag(a, O_JSON), .lng = cli_flag(a, 'l') };
	const char *prefix = a->argc ? a->argv[0] : "";

	struct storage *s;
	if (cli_storage(c, &s) < 0)
		return 1;
	_cleanup_err_ struct err e = ERR_INIT;
	_cleanup_json_ struct json_object *arr = o.json ? json_object_new_array() : NULL;
	struct ls_ctx l = { .lng = o.lng, .arr = arr };
	int r = storage_list(s, prefix, ls_cb, &l, &e);
	if (r < 0)
		return cli_fail(&e, "cannot list storage");
	if (o.json)
		cli_json_print(TAKE_PTR(arr));
	return 0;
}

/* ---------------------------------------------------------- get, put, rm */

static int fd_sink(void *data, const void *p, size_t n)
{
	return fs_write_all(*(int *)data, p, n);
}

/* get --if-none-match / --etag into a file: a temp file next to it,
 * renamed over it only when the object came. */
static int get_file_if(struct storage *s, const char *key, const char *file, const char *etag,
		       struct buf *tag, struct err *e)
{
	_cleanup_free_ char *tmp = xasprintf("%s.tmp-XXXXXX", file);
	_cleanup_close_ int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return err_set_errno(e, -errno, "cannot create a temporary file next to '%s'", file);
	int r = storage_get_if(s, key, etag, tag, fd_sink, &fd, e);
	if (r < 0 && !e->code)
		err_set(e, r, "cannot write '%s': %s", tmp, strerror(-r));
	if (r == 0 && fchmod(fd, 0644) < 0)
		r = err_set_errno(e, -errno, "cannot chmod '%s'", tmp);
	if (r == 0 && rename(tmp, file) < 0)
		r = err_set_errno(e, -errno, "cannot rename '%s' to '%s'", tmp, file);
	if (r != 0)
		unlink(tmp);
	return r;
}

static int storage_getcmd(struct cli *c, const struct cli_args *a)
{
	const char *key = a->argv[0], *file = a->argv[1];
	const char *etag = cli_arg(a, O_IF_NONE_MATCH);
	bool print_etag = cli_flag(a, O_ETAG);

	/* SIGTERM/SIGINT: nothing stays behind (no temp file, no multipart
	 * upload), exit 1 "interrupted" */
	proc_cancel_on_signals();

	struct storage *s;
	if (cli_storage(c, &s) < 0)
		return 1;
	_cleanup_err_ struct err e = ERR_INIT;
	_cleanup_buf_ struct buf tag = BUF_INIT;
	storage_set_progress(s, "download");
	int r;
	if (!strcmp(file, "-")) {
		int fd = STDOUT_FILENO;
		r = storage_get_if(s, key, etag, &tag, fd_sink, &fd, &e);
		if (r < 0 && !e.code)
			err_set(&e, r, "cannot write to stdout: %s", strerror(-r));
	} else if (etag || print_etag) {
		r = get_file_if(s, key, file, etag, &tag, &e);
	} else {
		r = storage_get_file(s, key, file, NULL, NULL, &e);
	}
	if (r < 0)
		return cli_fail(&e, "download failed");
	if (r == STORAGE_NOT_MODIFIED) {
		fprintf(stderr, "upaas: '%s' is not modified\n", key);
		return 0;
	}
	if (print_etag)
		fprintf(stderr, "etag: %s\n", tag.p);
	return 0;
}

static int storage_putcmd(struct cli *c, const struct cli_args *a)
{
	const char *file = a->argv[0], *key = a->argv[1];

	/* SIGTERM/SIGINT: nothing stays behind (no temp file, no multipart
	 * upload), exit 1 "interrupted" */
	proc_cancel_on_signals();

	struct storage *s;
	if (cli_storage(c, &s) < 0)
		return 1;
	_cleanup_err_ struct err e = ERR_INIT;
	storage_set_progress(s, "upload");
	int r = !strcmp(file, "-") ? storage_put_fd(s, key, STDIN_FILENO, &e)
				   : storage_put_file(s, key, file, &e);
	return r < 0 ? cli_fail(&e, "upload failed") : 0;
}

static int storage_rm(struct cli *c, const struct cli_args *a)
{
	struct storage *s;
	if (cli_storage(c, &s) < 0)
		return 1;
	int rc = 0;
	for (int i = 0; i < a->argc; i++) {
		_cleanup_err_ struct err e = ERR_INIT;
		if (storage_delete(s, a->argv[i], &e) < 0)
			rc = cli_fail(&e, "delete failed");
	}
	return rc;
}

/* --------------------------------------------------------------------- du */

static void du_line(const char *name, const struct app_usage *u)
{
	char st[32], sh[32], li[32], ot[32];

	fmt_bytes(u->stored, st);
	fmt_bytes(u->shared, sh);
	fmt_bytes(u->listed, li);
	fmt_bytes(u->other, ot);
	printf("%-24s %8zu %7zu %11s %11s %12s %10s\n", name, u->packages, u->layers, st, sh,
	       li, ot);
}

static struct json_object *du_json(const char *app, const struct app_usage *u)
{
	struct json_object *o = json_object_new_object();
	if (app)
		json_object_object_add(o, "app", json_object_new_string(app));
	json_object_object_add(o, "packages", json_object_new_int64((int64_t)u->packages));
	json_object_object_add(o, "unreadable", json_object_new_int64((int64_t)u->unreadable));
	json_object_object_add(o, "layers", json_object_new_int64((int64_t)u->layers));
	json_object_object_add(o, "missing_layers", json_object_new_int64((int64_t)u->missing));
	json_object_object_add(o, "stored", json_object_new_int64((int64_t)u->stored));
	json_object_object_add(o, "shared", json_object_new_int64((int64_t)u->shared));
	json_object_object_add(o, "listed", json_object_new_int64((int64_t)u->listed));
	json_object_object_add(o, "other", json_object_new_int64((int64_t)u->other));
	return o;
}

static int storage_du(struct cli *c, const struct cli_args *a)
{
	bool json = cli_flag(a, O_JSON);
	_cleanup_err_ struct err e = ERR_INIT;
	_cleanup_strv_ struct strv apps = STRV_INIT;
	struct package_catalog x = { 0 };
	struct app_usage total = { 0 };
	uint64_t unlisted = 0, listed_bytes = 0;
	size_t n_unlisted = 0;
	struct storage *s;

	if (a->argc && !app_name_ok(a->argv[0])) {
		err_set(&e, -EINVAL, "invalid app name '%s'", a->argv[0]);
		return cli_fail(&e, NULL);
	}
	if (cli_storage(c, &s) < 0)
		return 1;
	if (package_catalog_load(s, &x, &e) < 0)
		return cli_fail(&e, "cannot read the storage");
	for (size_t i = 0; i < x.n; i++)
		if (!strv_contains(&apps, x.v[i].app))
			strv_push(&apps, x.v[i].app);
	if (a->argc) {
		if (!strv_contains(&apps, a->argv[0])) {
			package_catalog_free(&x);
			err_set(&e, -ENOENT, "app '%s' has no package in %s", a->argv[0],
				storage_where(s));
			return cli_fail(&e, NULL);
		}
		strv_free(&apps);
		strv_push(&apps, a->argv[0]);
	}
	/* the layers nobody lists: what layers_gc() will take */
	_cleanup_strv_ struct strv keys = STRV_INIT;
	for (size_t i = 0; i < x.n; i++)
		for (size_t k = 0; k < x.v[i].keys.n; k++)
			if (!strv_contains(&keys, x.v[i].keys.v[k]))
				strv_push(&keys, x.v[i].keys.v[k]);
	for (size_t i = 0; i < x.n_objects; i++) {
		if (strncmp(x.objects[i].key, "layers/", 7))
			continue;
		if (strv_contains(&keys, x.objects[i].key)) {
			listed_bytes += x.objects[i].st.size;
		} else {
			n_unlisted++;
			unlisted += x.objects[i].st.size;
		}
	}

	struct json_object *arr = json ? json_object_new_array() : NULL;
	if (!json)
		printf("%-24s %8s %7s %11s %11s %12s %10s\n", "APP", "PACKAGES", "LAYERS", "STORED",
		       "SHARED", "FULL COPIES", "OTHER");
	for (size_t i = 0; i < apps.n; i++) {
		struct app_usage u;
		package_usage(&x, apps.v[i], &u);
		total.packages += u.packages;
		total.layers += u.layers;
		total.stored += u.stored;
		total.listed += u.listed;
		total.other += u.other;
		if (json)
			json_object_array_add(arr, du_json(apps.v[i], &u));
		else
			du_line(apps.v[i], &u);
	}
	if (json) {
		struct json_object *o = json_object_new_object();
		json_object_object_add(o, "apps", arr);
		json_object_object_add(o, "unlisted_layers", json_object_new_int64((int64_t)n_unlisted));
		json_object_object_add(o, "unlisted_bytes", json_object_new_int64((int64_t)unlisted));
		json_object_object_add(o, "layer_bytes",
				       json_object_new_int64((int64_t)(listed_bytes + unlisted)));
		cli_json_print(o);
	} else if (!a->argc) {
		char u[32], l[32];
		fmt_bytes(unlisted, u);
		fmt_bytes(listed_bytes + unlisted, l);
		printf("layers: %s in all, of which %s in %zu layer%s no package lists\n", l, u,
		       n_unlisted, n_unlisted == 1 ? "" : "s");
	}
	package_catalog_free(&x);
	return 0;
}

/* -------------------------------------------------------------- table */

static const struct cli_cmd storage_check_cmd = {
	.name = "check",
	.summary = "list, write, read back, stat and delete a probe\n"
		   "object; remove what dead uploads left; exit 1 when a stage fails",
	.usage = "[--json] [--key KEY] [--force]",
	.opts = (const struct cli_opt[]){
		{ "json", O_JSON, NULL, "machine-readable output", NULL },
		{ "key", O_KEY, "KEY", "also read this existing object (for read-only handlers)", NULL },
		{ "force", O_FORCE, NULL, "abort every incomplete S3 multipart upload, not only those\n"
		  "idle for an hour (a running upload then fails)", NULL },
		{ NULL },
	},
	.run = storage_check,
};

static const struct cli_cmd storage_ls_cmd = {
	.name = "ls",
	.summary = "list the keys under PREFIX, in lexical order",
	.usage = "[--json] [-l] [PREFIX]",
	.opts = (const struct cli_opt[]){
		{ "json", O_JSON, NULL, "machine-readable output", NULL },
		{ "long", 'l', NULL, "also show size and modification time", NULL },
		{ NULL },
	},
	.max_args = 1,
	.run = storage_ls,
};

static const struct cli_cmd storage_du_cmd = {
	.name = "du",
	.summary = "what each app costs in storage, each layer\ncounted once",
	.usage = "[--json] [APP]",
	.help = "STORED: the bytes of the layers the app's packages list, each counted once;\n"
		"SHARED: of those, layers that other apps list too; FULL COPIES: the sum of\n"
		"every package's total, what full copies would cost; OTHER: manifests and\n"
		"logs.",
	.opts = (const struct cli_opt[]){
		{ "json", O_JSON, NULL, "machine-readable output", NULL },
		{ NULL },
	},
	.max_args = 1,
	.values = { cli_values_apps },
	.run = storage_du,
};

static const struct cli_cmd storage_get_cmd = {
	.name = "get",
	.summary = "download an object to FILE ('-': stdout)",
	.usage = "[--if-none-match ETAG] [--etag] KEY FILE",
	.help = "Downloads KEY. With --if-none-match, an object whose ETag is still ETAG\n"
		"is not downloaded: FILE stays as it was and 'not modified' is said on\n"
		"stderr (exit status 0). --etag prints the object's ETag on stderr.",
	.opts = (const struct cli_opt[]){
		{ "if-none-match", O_IF_NONE_MATCH, "ETAG", "download only when the object's ETag differs",
		  NULL },
		{ "etag", O_ETAG, NULL, "print the ETag (\"etag: ...\") on stderr", NULL },
		{ NULL },
	},
	.min_args = 2,
	.max_args = 2,
	.values = { NULL, cli_values_file },
	.run = storage_getcmd,
};

static const struct cli_cmd storage_put_cmd = {
	.name = "put",
	.summary = "upload FILE ('-': stdin) as KEY",
	.usage = "FILE KEY",
	.min_args = 2,
	.max_args = 2,
	.values = { cli_values_file },
	.run = storage_putcmd,
};

static const struct cli_cmd storage_rm_cmd = {
	.name = "rm",
	.summary = "delete objects (a missing key is fine)",
	.usage = "KEY...",
	.min_args = 1,
	.max_args = -1,
	.run = storage_rm,
};

const struct cli_cmd cmd_storage = {
	.name = "storage",
	.summary = "check the storage handler, list objects",
	.usage = "COMMAND [ARGS...]",
	.help = "Checks the configured storage handler, and moves single objects in and out.",
	.subs = (const struct cli_cmd *const[]){
		&storage_check_cmd, &storage_ls_cmd, &storage_du_cmd, &storage_get_cmd,
		&storage_put_cmd,
		&storage_rm_cmd, NULL,
	},
};
