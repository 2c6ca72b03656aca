/*
 * images/images.c - base OS images: bootstrap (mmdebstrap or debootstrap),
 * pack, store with a manifest; load, check freshness, list, remove.
 *
 * Creation order: probe the mirror -> bootstrap into a temp dir under
 * paths.workdir -> read the installed package set -> pack straight into a
 * storage upload of a NEW blob, images/<name>/<creation id>.tar.zst ->
 * commit -> the manifest images/<name>.json, replaced atomically (the
 * commit marker) -> the previous blob is deleted. Nothing reaches storage
 * before the bootstrap succeeded, a failed pack aborts the upload, and a
 * blob is never overwritten, so a reader (on any host) sees the old
 * manifest with the old blob or the new with the new, never a mix; a crash
 * between two steps leaves at worst a blob no manifest names, which the
 * next creation or removal of the image deletes once it is an hour old
 * (younger ones may belong to a creation running on another host).
 * First-edition images keep their blob at images/<name>.tar.zst, which
 * their manifest names; they load as before and are replaced the same way.
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>

#include "archive/archive.h"
#include "images/images.h"
#include "package/package.h"
#include "rootfs/rootfs.h"
#include "sandbox/sandbox.h"

#define UPAAS_IMAGES_INTERNAL
#include "images/mirror.h"

#define MANIFEST_MAX_BYTES (16u << 20)
#define RELEASE_MAX_BYTES (8u << 20)
#define STATUS_MAX_BYTES (64u << 20)
#define PROBE_TIMEOUT_S 60L
/* A blob no manifest names is garbage once this old (seconds). */
#define ORPHAN_GRACE_S 3600


void image_info_free(struct image_info *i)
{
	if (!i)
		return;
	free(i->name);
	free(i->key);
	free(i->cache_key);
	free(i->distribution);
	free(i->arch);
	free(i->tool);
	free(i->manifest_json);
	memset(i, 0, sizeof(*i));
}

/* [A-Za-z0-9][A-Za-z0-9._-]*, at most 100 characters. */
static bool image_name_ok(const char *n)
{
	size_t i;

	if (!n || !((n[0] >= 'a' && n[0] <= 'z') || (n[0] >= 'A' && n[0] <= 'Z') ||
		    (n[0] >= '0' && n[0] <= '9')))
		return false;
	for (i = 0; n[i]; i++) {
		char ch = n[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-'))
			return false;
	}
	return i <= 100;
}

static int check_name(const char *name, struct err *e)
{
	if (!image_name_ok(name))
		return err_set(e, -EINVAL, "invalid image name '%s' (letters, digits, '.', '_', '-')",
			       name ? name : "");
	return 0;
}

/* The Debian architecture: bootstrap.arch, else dpkg's, else from uname. */
static char *image_arch(const struct config *c)
{
	static const struct { const char *machine, *arch; } map[] = {
		{ "x86_64", "amd64" }, { "aarch64", "arm64" }, { "i686", "i386" },
		{ "armv7l", "armhf" }, { "ppc64le", "ppc64el" }, { "s390x", "s390x" },
		{ "riscv64", "riscv64" },
	};
	struct proc p = PROC_INIT;
	_cleanup_buf_ struct buf out = BUF_INIT;
	_cleanup_err_ struct err e = ERR_INIT;
	struct utsname u;

	if (c->bootstrap.arch && *c->bootstrap.arch)
		return xstrdup(c->bootstrap.arch);
	buf_init(&out, 256);
	strv_push(&p.argv, "dpkg");
	strv_push(&p.argv, "--print-architecture");
	p.capture = &out;
	p.stderr_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (proc_run(&p, &e) == 0) {
		buf_rtrim(&out);
		if (out.len) {
			if (p.stderr_fd >= 0)
				close(p.stderr_fd);
			proc_free(&p);
			return buf_detach(&out);
		}
	}
	if (p.stderr_fd >= 0)
		close(p.stderr_fd);
	proc_free(&p);
	if (uname(&u) == 0)
		for (size_t i = 0; i < ARRAY_SIZE(map); i++)
			if (!strcmp(u.machine, map[i].machine))
				return xstrdup(map[i].arch);
	return xstrdup("amd64");
}

char *image_default_name(const struct config *c)
{
	_cleanup_free_ char *arch = image_arch(c);

	return xasprintf("%s-%s-%s", c->bootstrap.distribution, c->bootstrap.variant, arch);
}

int image_mirror(const struct config *c, struct buf *out, struct err *e)
{
	if (c->bootstrap.mirror && *c->bootstrap.mirror) {
		buf_reset(out);
		buf_adds(out, c->bootstrap.mirror);
		return 0;
	}
	mirror_detect("/", c->bootstrap.distribution, out);
	return 0;
}

/* The sha256 of the inputs an image is made from. */
static void image_cache_key(const struct config *c, const char *mirror, const char *arch,
			    char hex[65])
{
	_cleanup_buf_ struct buf t = BUF_INIT;
	_cleanup_strv_ struct strv pk = STRV_INIT;

	strv_copy(&pk, &c->bootstrap.packages);
	strv_sort(&pk);
	buf_addf(&t, "upaas-image-key 1\ndistribution=%s\nvariant=%s\narch=%s\ncomponents=",
		 c->bootstrap.distribution, c->bootstrap.variant, arch);
	for (size_t i = 0; i < c->bootstrap.components.n; i++)
		buf_addf(&t, "%s%s", i ? "," : "", c->bootstrap.components.v[i]);
	buf_adds(&t, "\npackages=");
	for (size_t i = 0; i < pk.n; i++)
		buf_addf(&t, "%s%s", i ? "," : "", pk.v[i]);
	/* the mirror without its credentials: a digest of a password is no
	 * place for it either */
	_cleanup_free_ char *bare = url_redacted(mirror);
	buf_addf(&t, "\nmirror=%s\n", bare);
	sha256_hex(t.p, t.len, hex);
}

/* -------------------------------------------------------- mirror probe */

static size_t probe_write(char *p, size_t size, size_t n, void *data)
{
	struct buf *b = data;

	if (buf_add(b, p, size * n) < 0)
		return 0;
	return size * n;
}

/* Value of "Field: value" in deb822 text (first paragraph), or NULL. */
static char *deb822_field(const char *text, const char *field)
{
	size_t fl = strlen(field);

	for (const char *l = text; *l;) {
		const char *end = strchrnul(l, '\n');

		if (end == l)
			break;
		if ((size_t)(end - l) > fl && !strncasecmp(l, field, fl) && l[fl] == ':') {
			const char *v = l + fl + 1;

			while (v < end && (*v == ' ' || *v == '\t'))
				v++;
			while (end > v && (end[-1] == ' ' || end[-1] == '\r'))
				end--;
			return xstrndup(v, (size_t)(end - v));
		}
		l = *end ? end + 1 : end;
	}
	return NULL;
}

/*
 * Fetches <mirror>/dists/<dist>/Release, so that a mirror that does not
 * answer fails in seconds with its name in the message (and not after a
 * long bootstrap with apt's words). Returns the Release text in out.
 */
static int mirror_probe(const char *mirror, const char *dist, struct buf *out, struct err *e)
{
	_cleanup_free_ char *url = xasprintf("%s/dists/%s/Release", mirror, dist);
	/* what messages show: a mirror's credentials stay out of them */
	_cleanup_free_ char *shown = url_redacted(mirror);
	_cleanup_free_ char *shown_url = url_redacted(url);
	char cerr[CURL_ERROR_SIZE] = "";
	CURL *h;
	CURLcode rc;
	long code = 0;

	buf_init(out, RELEASE_MAX_BYTES);
	if (!strncmp(mirror, "file:", 5)) {
		const char *p = url + 5;

		while (p[0] == '/' && p[1] == '/')
			p++;
		if (buf_read_file(out, p, RELEASE_MAX_BYTES) < 0)
			return err_set(e, -EHOSTUNREACH, "mirror '%s' does not answer: cannot read '%s'",
				       mirror, p);
		return 0;
	}
	h = curl_easy_init();
	if (!h)
		return err_set(e, -ENOMEM, "cannot initialise libcurl");
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(h, CURLOPT_MAXREDIRS, 5L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 20L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, PROBE_TIMEOUT_S);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, probe_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, out);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "upaas/" PACKAGE_VERSION);
	rc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_cleanup(h);
	if (rc != CURLE_OK)
		return err_set(e, -EHOSTUNREACH, "mirror '%s' does not answer: %s", shown,
			       cerr[0] ? cerr : curl_easy_strerror(rc));
	if (code == 404)
		return err_set(e, -ENOENT, "mirror '%s' has no distribution '%s' (GET '%s': 404)",
			       shown, dist, shown_url);
	if (code >= 400)
		return err_set(e, -EIO, "mirror '%s' answers HTTP %ld for '%s'", shown, code,
			       shown_url);
	return 0;
}

/* A Release file's Date ("Sat, 09 Nov 2024 10:19:56 UTC", RFC 2822, UTC
 * or +0000) as unix seconds. */
static int release_date_parse(const char *s, int64_t *ret)
{
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	const char *end = strptime(s, "%a, %d %b %Y %H:%M:%S", &tm);
	if (!end)
		return -EINVAL;
	while (*end == ' ')
		end++;
	if (*end && strcmp(end, "UTC") && strcmp(end, "GMT") && strcmp(end, "+0000") &&
	    strcmp(end, "Z"))
		return -EINVAL;
	time_t t = timegm(&tm);
	if (t <= 0)
		return -EINVAL;
	*ret = (int64_t)t;
	return 0;
}

/* ------------------------------------------------------------ bootstrap */

/* The full path of prog in $PATH (or the usual sbin dirs), or NULL. */
static char *find_in_path(const char *prog)
{
	const char *path = getenv("PATH");
	_cleanup_free_ char *all = xasprintf("%s:/usr/sbin:/usr/bin:/sbin:/bin",
					     path && *path ? path : "");

	for (char *p = all; *p;) {
		char *end = strchrnul(p, ':');
		bool last = !*end;
		char *cand;

		*end = 0;
		if (*p) {
			cand = path_join(p, prog);
			if (access(cand, X_OK) == 0)
				return cand;
			free(cand);
		}
		if (last)
			break;
		p = end + 1;
	}
	return NULL;
}

static int pick_tool(const struct config *c, char **ret_name, struct err *e)
{
	const char *t = c->bootstrap.tool && *c->bootstrap.tool ? c->bootstrap.tool : "auto";
	_cleanup_free_ char *found = NULL;

	if (!strcmp(t, "auto")) {
		if ((found = find_in_path("mmdebstrap"))) {
			*ret_name = xstrdup("mmdebstrap");
			return 0;
		}
		if ((found = find_in_path("debootstrap"))) {
			*ret_name = xstrdup("debootstrap");
			return 0;
		}
		return err_set(e, -ENOENT, "neither mmdebstrap nor debootstrap is installed "
			       "(apt-get install mmdebstrap)");
	}
	if (strcmp(t, "mmdebstrap") && strcmp(t, "debootstrap"))
		return err_set(e, -EINVAL, "unknown bootstrap tool '%s'", t);
	found = find_in_path(t);
	if (!found)
		return err_set(e, -ENOENT, "bootstrap tool '%s' is not installed (apt-get install %s)",
			       t, t);
	*ret_name = xstrdup(t);
	return 0;
}

static void join_list(struct buf *b, const struct strv *l)
{
	for (size_t i = 0; i < l->n; i++)
		buf_addf(b, "%s%s", i ? "," : "", l->v[i]);
}

static void bootstrap_argv(const struct config *c, const char *tool, const char *arch,
			   const char *mirror, const char *root, struct strv *argv)
{
	_cleanup_buf_ struct buf comps = BUF_INIT, pk = BUF_INIT;

	join_list(&comps, &c->bootstrap.components);
	join_list(&pk, &c->bootstrap.packages);
	strv_push(argv, tool);
	if (!strcmp(tool, "mmdebstrap")) {
		strv_pushf(argv, "--variant=%s", c->bootstrap.variant);
		strv_push(argv, "--mode=root");
		strv_push(argv, "--format=directory");
		strv_pushf(argv, "--architectures=%s", arch);
		/* a mirror that drops a connection now and then is normal */
		strv_push(argv, "--aptopt=Acquire::Retries \"3\"");
	} else {
		strv_pushf(argv, "--variant=%s", c->bootstrap.variant);
		strv_pushf(argv, "--arch=%s", arch);
	}
	if (comps.len)
		strv_pushf(argv, "--components=%s", comps.p);
	if (pk.len)
		strv_pushf(argv, "--include=%s", pk.p);
	strv_push(argv, c->bootstrap.distribution);
	strv_push(argv, root);
	strv_push(argv, mirror);
}

/* Drops the timestamp that log_line_fd puts in front of a line. */
static const char *skip_stamp(const char *l, const char *end)
{
	const char *sp = memchr(l, ' ', (size_t)(end - l));

	if (sp && sp - l >= 20 && l[4] == '-' && l[10] == 'T')
		return sp + 1;
	return l;
}

/* The first error line ("E: ...") of a bootstrap log, else its last line,
 * without the timestamp and at most 300 bytes. */
static char *log_summary(const char *path)
{
	_cleanup_buf_ struct buf t = BUF_INIT;
	const char *last = NULL, *last_end = NULL;

	if (buf_read_file(&t, path, 16u << 20) < 0)
		return xstrdup("");
	buf_rtrim(&t);
	for (const char *l = t.p; *l;) {
		const char *end = strchrnul(l, '\n');
		const char *text = skip_stamp(l, end);

		if (end - text > 3 && !strncmp(text, "E: ", 3))
			return xstrndup(text, (size_t)(end - text) > 300 ? 300 : (size_t)(end - text));
		if (end > text) {
			last = text;
			last_end = end;
		}
		l = *end ? end + 1 : end;
	}
	if (!last)
		return xstrdup("");
	return xstrndup(last, (size_t)(last_end - last) > 300 ? 300 : (size_t)(last_end - last));
}

static int bootstrap_run(const struct config *c, const char *tool, const char *arch,
			 const char *mirror, const char *root, const char *logpath, int64_t epoch,
			 struct err *e)
{
	struct proc p = PROC_INIT;
	_cleanup_close_ int logfd = -1;
	_cleanup_buf_ struct buf what = BUF_INIT;
	struct progress prog = { 0 };
	int r;

	logfd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (logfd < 0)
		return err_set_errno(e, -errno, "cannot create '%s'", logpath);
	bootstrap_argv(c, tool, arch, mirror, root, &p.argv);
	if (epoch > 0) {
		/* the same mirror state gives the same image (mmdebstrap and
		 * dpkg clamp times to it, shadow records it) */
		extern char **environ;
		char t[24];
		for (char **v = environ; *v; v++)
			strv_push(&p.env, *v);
		snprintf(t, sizeof(t), "%lld", (long long)epoch);
		strv_setenv(&p.env, "SOURCE_DATE_EPOCH", t);
		p.env_set = true;
	}
	p.log_fd = logfd;
	/* apt and dpkg die with the tool, even when upaas is killed */
	p.pid_namespace = true;
	p.timeout_ms = c->bootstrap.timeout > 0 ? (unsigned)c->bootstrap.timeout * 1000u : 0;
	log_debug("bootstrap: %s", p.argv.v[0]);
	_cleanup_free_ char *shown = url_redacted(mirror);
	progress_begin(&prog, tool, 0);
	r = proc_run(&p, e);
	progress_end(&prog);
	proc_describe(&p, &what);
	proc_free(&p);
	if (r == -ETIMEDOUT)
		return err_prefix(e, "bootstrapping from mirror '%s' (log '%s')", shown, logpath);
	if (r < 0)
		return err_prefix(e, "bootstrapping from mirror '%s'", shown);
	if (r > 0) {
		_cleanup_free_ char *last = log_summary(logpath);

		return err_set(e, -EIO, "%s from mirror '%s' failed with status %d: %s (log '%s')",
			       tool, shown, r, last, logpath);
	}
	return 0;
}

/* A bootstrap that fails (not one that times out) is tried once more from
 * an empty root: a transient mirror or apt hiccup should not cost an image. */
static int bootstrap_run_retry(const struct config *c, const char *tool, const char *arch,
			       const char *mirror, const char *root, const char *logpath,
			       int64_t epoch, struct err *e)
{
	_cleanup_err_ struct err first = ERR_INIT;
	int r = bootstrap_run(c, tool, arch, mirror, root, logpath, epoch, &first);
	if (r != -EIO) {
		if (r < 0)
			err_set(e, r, "%s", err_msg(&first));
		return r;
	}
	log_warn("%s; trying once more", err_msg(&first));
	if ((r = fs_rm_rf(root, e)) < 0)
		return r;
	return bootstrap_run(c, tool, arch, mirror, root, logpath, epoch, e);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "install ok installed" (and "hold ok installed"): the package is there. */
static bool has_installed_status(const char *st)
{
	size_t n = strlen(st);

	return n >= 10 && !strcmp(st + n - 10, " installed");
}

/* The installed package set ("name=version"), from the image's dpkg status. */
static int read_packages(const char *root, const char *arch, struct strv *out, struct err *e)
{
	_cleanup_free_ char *status = path_join(root, "var/lib/dpkg/status");
	_cleanup_buf_ struct buf t = BUF_INIT;
	const char *para = NULL;
	int r;

	r = buf_read_file(&t, status, STATUS_MAX_BYTES);
	if (r < 0)
		return err_set_errno(e, r, "cannot read '%s'", status);
	para = t.p;
	while (para && *para) {
		const char *sep = strstr(para, "\n\n");
		_cleanup_free_ char *text = sep ? xstrndup(para, (size_t)(sep - para + 1))
						: xstrdup(para);
		_cleanup_free_ char *pkg = deb822_field(text, "Package");
		_cleanup_free_ char *ver = deb822_field(text, "Version");
		_cleanup_free_ char *st = deb822_field(text, "Status");
		_cleanup_free_ char *pa = deb822_field(text, "Architecture");

		if (pkg && ver && st && has_installed_status(st)) {
			if (pa && strcmp(pa, "all") && strcmp(pa, arch))
				strv_pushf(out, "%s:%s=%s", pkg, pa, ver);
			else
				strv_pushf(out, "%s=%s", pkg, ver);
		}
		para = sep ? sep + 2 : NULL;
		while (para && *para == '\n')
			para++;
	}
	if (out->n > 1)
		qsort(out->v, out->n, sizeof(char *), cmp_str);
	if (!out->n)
		return err_set(e, -EBADMSG, "'%s' lists no installed package", status);
	return 0;
}

/* ------------------------------------------------------------- storing */

const char *const image_time_records[] = {
	"var/log/dpkg.log", "var/log/alternatives.log", "var/log/apt/*", "var/log/bootstrap.log",
	"var/cache/ldconfig/aux-cache", "var/cache/debconf/*-old", "var/lib/dpkg/*-old", NULL,
};

/* Paths excluded from an image: runtime mount points keep only themselves
 * (and image_time_records). */
static const char *const image_excludes[] = {
	"proc/*", "sys/*", "tmp/*", "var/tmp/*", "run/*",
	"var/cache/apt/archives/*.deb", "var/cache/apt/*.bin", NULL,
};
#define IMAGE_EXCLUDE_MAX 32

/* Packs root straight into images/<name>.tar.zst; nothing is visible under
 * the key unless everything succeeded. */
static int image_store_blob(const struct config *c, struct storage *s, const char *root,
			    const char *key, int64_t epoch, struct pack_result *res, struct err *e)
{
	const char *exclude[IMAGE_EXCLUDE_MAX];
	size_t n = 0;
	for (size_t i = 0; image_excludes[i] && n + 1 < IMAGE_EXCLUDE_MAX; i++)
		exclude[n++] = image_excludes[i];
	for (size_t i = 0; image_time_records[i] && n + 1 < IMAGE_EXCLUDE_MAX; i++)
		exclude[n++] = image_time_records[i];
	exclude[n] = NULL;
	struct pack_opts o = {
		.level = c->pack.level,
		.threads = c->pack.threads,
		.mtime_clamp = epoch > 0 ? epoch : -1,
		.exclude = exclude,
	};
	struct sink out;
	int r = storage_upload_sink(s, key, 0, &out, e);

	if (r < 0)
		return r;
	return pack_to_storage(root, &o, &out, res, e);
}

/* The inputs and results of one creation, for the manifest. */
struct image_made {
	const char *name;
	const char *key;
	const char *tool;
	const char *arch;
	const char *mirror;
	const char *suite;
	const char *codename;
	const char *cache_key;
	struct strv packages;
	struct pack_result pack;
	int64_t created;
	int64_t epoch;          /* SOURCE_DATE_EPOCH: the Release file's Date */
};

static char *manifest_text(const struct config *c, const struct image_made *m)
{
	_cleanup_json_ struct json_object *o = json_object_new_object();
	char created[32];

	time_iso8601(m->created, created);
	json_object_object_add(o, "format", json_object_new_int(1));
	json_object_object_add(o, "name", json_new_str(m->name));
	json_object_object_add(o, "distribution", json_new_str(c->bootstrap.distribution));
	json_object_object_add(o, "suite", json_new_str(m->suite));
	json_object_object_add(o, "codename", json_new_str(m->codename));
	json_object_object_add(o, "arch", json_new_str(m->arch));
	json_object_object_add(o, "variant", json_new_str(c->bootstrap.variant));
	json_object_object_add(o, "components", json_new_strv(&c->bootstrap.components));
	_cleanup_free_ char *mirror = url_redacted(m->mirror);
	json_object_object_add(o, "mirror", json_new_str(mirror));
	json_object_object_add(o, "packages", json_new_strv(&m->packages));
	json_object_object_add(o, "extra_packages", json_new_strv(&c->bootstrap.packages));
	json_object_object_add(o, "tool", json_new_str(m->tool));
	json_object_object_add(o, "cache_key", json_new_str(m->cache_key));
	json_object_object_add(o, "key", json_new_str(m->key));
	json_object_object_add(o, "sha256", json_new_str(m->pack.sha256));
	json_object_object_add(o, "size", json_object_new_int64((int64_t)m->pack.size));
	json_object_object_add(o, "entries", json_object_new_int64((int64_t)m->pack.entries));
	json_object_object_add(o, "compression", json_new_str("zstd"));
	json_object_object_add(o, "archive_format", json_new_str("pax"));
	json_object_object_add(o, "created", json_new_str(created));
	if (m->epoch > 0)
		json_object_object_add(o, "source_date_epoch", json_object_new_int64(m->epoch));
	_cleanup_buf_ struct buf out = BUF_INIT;
	json_to_buf(o, &out);
	return buf_detach(&out);
}

/* Fills i from manifest text; -EBADMSG naming key when a field is wrong. */
static int manifest_parse(const char *key, const char *text, struct image_info *i,
			  struct err *e)
{
	_cleanup_json_ struct json_object *o = NULL;
	_cleanup_err_ struct err je = ERR_INIT;
	const char *name, *blob, *sha, *created;
	int64_t t, size;

	if (json_parse_object(text, &o, &je) < 0)
		return err_set(e, -EBADMSG, "image manifest '%s': %s", key, err_msg(&je));
	name = json_get_str(o, "name");
	blob = json_get_str(o, "key");
	sha = json_get_str(o, "sha256");
	created = json_get_str(o, "created");
	if (!name || !blob || !sha || !hex64_ok(sha) || !storage_key_ok(blob))
		return err_set(e, -EBADMSG, "image manifest '%s' lacks a valid name, key or sha256",
			       key);
	if (!json_get_int(o, "size", &size) || size < 0)
		return err_set(e, -EBADMSG, "image manifest '%s' lacks a valid size", key);
	if (!created || time_parse_iso8601(created, &t) < 0)
		return err_set(e, -EBADMSG, "image manifest '%s' lacks a valid created time", key);
	i->size = (uint64_t)size;
	i->created = t;
	i->name = xstrdup(name);
	i->key = xstrdup(blob);
	memcpy(i->sha256, sha, 65);
	i->cache_key = xstrdup(json_get_str(o, "cache_key") ?: "");
	i->distribution = xstrdup(json_get_str(o, "distribution") ?: "");
	i->arch = xstrdup(json_get_str(o, "arch") ?: "");
	i->tool = xstrdup(json_get_str(o, "tool") ?: "");
	i->manifest_json = xstrdup(text);
	return 0;
}

int image_load(struct storage *s, const struct sign_trust *t, const char *name,
	       struct image_info *ret, struct err *e)
{
	_cleanup_free_ char *key = NULL;
	_cleanup_buf_ struct buf text = BUF_INIT;
	struct image_info i = { 0 };
	int r;

	r = check_name(name, e);
	if (r < 0)
		return r;
	key = storage_key_image(name, "json");
	/* nothing of the manifest is read before its signature checks out */
	r = signed_get(s, t, key, &text, MANIFEST_MAX_BYTES, NULL, e);
	if (r == -ENOENT) {
		err_clear(e);
		return err_set(e, -ENOENT, "no image '%s' in %s", name, storage_where(s));
	}
	if (r < 0)
		return r;
	r = manifest_parse(key, text.p, &i, e);
	if (r >= 0 && strcmp(i.name, name))
		r = err_set(e, -EBADMSG, "image manifest '%s' is the one of image '%s'", key, i.name);
	if (r < 0) {
		image_info_free(&i);
		return r;
	}
	*ret = i;
	return 0;
}

bool image_needs_rebuild(const struct config *c, const struct image_info *i, struct buf *reason)
{
	_cleanup_buf_ struct buf mirror = BUF_INIT;
	_cleanup_err_ struct err e = ERR_INIT;
	_cleanup_free_ char *arch = image_arch(c);
	char key[65];
	int64_t age = now_unix() - i->created;

	if (image_mirror(c, &mirror, &e) < 0) {
		if (reason)
			buf_addf(reason, "no mirror: %s", err_msg(&e));
		return true;
	}
	image_cache_key(c, mirror.p, arch, key);
	if (!i->cache_key || strcmp(i->cache_key, key)) {
		if (reason)
			buf_adds(reason, "the config's bootstrap inputs changed");
		return true;
	}
	if (c->bootstrap.max_age_days > 0 && age > (int64_t)c->bootstrap.max_age_days * 86400) {
		if (reason)
			buf_addf(reason, "older than %d days", c->bootstrap.max_age_days);
		return true;
	}
	return false;
}

/*
 * The blob key the stored manifest of image name names, read without
 * checking its signature: it only says which blob a removal may delete,
 * and image_blob_key_ok() bounds that to the image's own keys. -ENOENT
 * when there is no manifest.
 */
static int image_manifest_key(struct storage *s, const char *name, char **ret)
{
	_cleanup_free_ char *mkey = storage_key_image(name, "json");
	_cleanup_buf_ struct buf text = BUF_INIT;
	_cleanup_err_ struct err e = ERR_INIT;
	_cleanup_json_ struct json_object *o = NULL;
	int r = storage_get_buf(s, mkey, &text, MANIFEST_MAX_BYTES, &e);

	if (r < 0)
		return r;
	if (json_parse_object(text.p, &o, &e) < 0 || !json_get_str(o, "key"))
		return -EBADMSG;
	*ret = xstrdup(json_get_str(o, "key"));
	return 0;
}

/* true when key may be the blob of image name: images/<name>.tar.zst (first
 * edition) or images/<name>/<id>.tar.zst. Only such keys are ever deleted
 * on a manifest's word. */
static bool image_blob_key_ok(const char *name, const char *key)
{
	_cleanup_free_ char *old = storage_key_image(name, "tar.zst");
	_cleanup_free_ char *dir = xasprintf("images/%s/", name);
	size_t dl = strlen(dir), kl = strlen(key);

	if (!strcmp(key, old))
		return true;
	return !strncmp(key, dir, dl) && kl > dl + 8 && !strchr(key + dl, '/') &&
	       !strcmp(key + kl - 8, ".tar.zst");
}

/*
 * Deletes the blobs of image name that no manifest names (a creation that
 * died between its blob and its manifest, or before it deleted the blob it
 * replaced), once they are ORPHAN_GRACE_S old: a younger one may be the
 * blob of a creation running on another host, whose manifest is not
 * written yet. keep is the blob the manifest names (NULL: none).
 */
static void image_collect_orphans(struct storage *s, const char *name, const char *keep)
{
	_cleanup_free_ char *dir = xasprintf("images/%s/", name);
	_cleanup_free_ char *old = storage_key_image(name, "tar.zst");
	_cleanup_strv_ struct strv keys = STRV_INIT;
	_cleanup_err_ struct err e = ERR_INIT;
	int64_t now = now_unix();

	if (!(storage_caps(s) & STORAGE_CAP_LIST) || storage_list_keys(s, dir, &keys, &e) < 0)
		return;
	strv_push(&keys, old);
	for (size_t i = 0; i < keys.n; i++) {
		struct storage_stat st;

		if ((keep && !strcmp(keys.v[i], keep)) || !image_blob_key_ok(name, keys.v[i]))
			continue;
		err_clear(&e);
		if (storage_stat(s, keys.v[i], &st, &e) < 0 || now - st.mtime < ORPHAN_GRACE_S)
			continue;
		err_clear(&e);
		if (storage_delete(s, keys.v[i], &e) < 0)
			log_warn("cannot delete '%s', a blob no image manifest names: %s",
				 keys.v[i], err_msg(&e));
		else
			log_info("deleted '%s', a blob no image manifest names", keys.v[i]);
	}
}

/*
 * The publication record of a creation, next to the image's lock: the blob
 * keys it may leave behind if it dies (its new blob, then also the blob it
 * replaces), written before each step that can leave one, removed once the
 * creation is over. The next creation of the image on this host (under the
 * same lock) reads it and deletes whichever of them the manifest does not
 * name: what a kill -9 leaves is gone after the next command, not after
 * ORPHAN_GRACE_S.
 */
static char *publish_record(const struct config *c, const char *name)
{
	return xasprintf("%s/images/%s.publish", c->paths.cache, name);
}

static void publish_record_write(const struct config *c, const char *name, const char *new_key,
				 const char *old_key)
{
	_cleanup_free_ char *path = publish_record(c, name);
	_cleanup_free_ char *dir = path_join(c->paths.cache, "images");
	_cleanup_free_ char *text = xasprintf("%s\n%s%s", new_key, old_key ? old_key : "",
					      old_key ? "\n" : "");
	int r = fs_mkdir_p(dir, 0700);

	if (r >= 0)
		r = fs_write_atomic(path, text, strlen(text), 0600);
	if (r < 0)
		log_warn("cannot write '%s': %s", path, strerror(-r));
}

static void publish_record_done(const struct config *c, const char *name)
{
	_cleanup_free_ char *path = publish_record(c, name);

	if (unlink(path) < 0 && errno != ENOENT)
		log_warn("cannot remove '%s': %s", path, strerror(errno));
}

/* Deletes what a dead creation of name on this host left (see above); the
 * caller holds the image's lock. */
static void publish_recover(const struct config *c, struct storage *s, const char *name)
{
	_cleanup_free_ char *path = publish_record(c, name);
	_cleanup_buf_ struct buf text = BUF_INIT;
	_cleanup_err_ struct err e = ERR_INIT;
	_cleanup_free_ char *cur = NULL;
	bool clean = true;
	int r;

	if (buf_read_file(&text, path, 64 * 1024) < 0)
		return;
	r = image_manifest_key(s, name, &cur);
	if (r < 0 && r != -ENOENT)
		return;   /* cannot tell which blob is live: keep both, try next time */
	if (r == -ENOENT) {
		/* a removal that died between the manifest and its signature */
		_cleanup_free_ char *mkey = storage_key_image(name, "json");
		_cleanup_free_ char *skey = sign_sig_key(mkey);
		if (storage_delete(s, skey, &e) < 0)
			clean = false;
		err_clear(&e);
	}
	for (char *line = text.p, *nl; *line; line = nl + 1) {
		nl = strchrnul(line, '\n');
		bool last = !*nl;

		*nl = '\0';
		if (*line && image_blob_key_ok(name, line) && (!cur || strcmp(cur, line))) {
			err_clear(&e);
			if (storage_delete(s, line, &e) < 0) {
				log_warn("cannot delete '%s', left by a creation of image '%s' that "
					 "died: %s", line, name, err_msg(&e));
				clean = false;
			} else {
				log_info("deleted '%s', left by a creation of image '%s' that died",
					 line, name);
			}
		}
		if (last)
			break;
	}
	if (clean)
		publish_record_done(c, name);
}

/*
 * Makes the stored blob m->key the image: the manifest replaces the old one
 * in one put (a reader sees either), then the old blob is deleted. On
 * failure the new blob goes, and the old image stays as it was.
 */
static int image_publish(const struct config *c, struct storage *s, const struct sign_key *k,
			 const char *name, struct image_made *m, struct err *e)
{
	_cleanup_free_ char *manifest = NULL, *old = NULL;
	_cleanup_free_ char *mkey = storage_key_image(name, "json");
	_cleanup_err_ struct err e2 = ERR_INIT;
	int r;

	/* the blob the current manifest names, to delete once replaced */
	if (image_manifest_key(s, name, &old) < 0 || !image_blob_key_ok(name, old)) {
		free(old);
		old = NULL;
	}
	if (old)
		publish_record_write(c, name, m->key, old);
	m->created = now_unix();
	manifest = manifest_text(c, m);
	/* its signature first (with the old one's kept until the manifest is
	 * replaced: signed_put), the manifest is the commit marker */
	r = signed_put(s, k, mkey, manifest, strlen(manifest), e);
	if (r < 0) {
		/* no manifest: the blob is garbage, and must not outlive it */
		storage_delete(s, m->key, &e2);
		return err_prefix(e, "storing the manifest of image '%s'", name);
	}
	crash_point("image.after-manifest");
	if (old && strcmp(old, m->key) && storage_delete(s, old, &e2) < 0)
		log_warn("cannot delete '%s', the blob of the image replaced: %s", old,
			 err_msg(&e2));
	image_collect_orphans(s, name, m->key);
	return 0;
}

/* Bootstraps into tmp/root and stores; tmp is removed by the caller. */
static int image_build(const struct config *c, struct storage *s, const struct sign_key *k,
		       const char *name, const char *tmp, struct image_made *m, struct err *e)
{
	_cleanup_free_ char *root = path_join(tmp, "root");
	_cleanup_free_ char *logpath = NULL;
	_cleanup_buf_ struct buf release = BUF_INIT;
	_cleanup_free_ char *suite = NULL, *codename = NULL;
	int r;

	r = mirror_probe(m->mirror, c->bootstrap.distribution, &release, e);
	if (r < 0)
		return r;
	suite = deb822_field(release.p, "Suite");
	codename = deb822_field(release.p, "Codename");
	m->suite = suite ? suite : c->bootstrap.distribution;
	m->codename = codename ? codename : c->bootstrap.distribution;

	/* the mirror state's time: the Release file's Date */
	_cleanup_free_ char *date = deb822_field(release.p, "Date");
	int64_t epoch = 0;
	if (!date || release_date_parse(date, &epoch) < 0)
		epoch = 0;
	m->epoch = epoch;
	if (!epoch)
		log_warn("mirror '%s': no usable Date in its Release file: the image will not be "
			 "reproducible", m->mirror);
	logpath = xasprintf("%s.log", tmp);
	r = bootstrap_run_retry(c, m->tool, m->arch, m->mirror, root, logpath, epoch, e);
	if (r < 0)
		return r;
	unlink(logpath);
	r = read_packages(root, m->arch, &m->packages, e);
	if (r < 0)
		return r;
	r = image_store_blob(c, s, root, m->key, epoch, &m->pack, e);
	if (r < 0)
		return err_prefix(e, "storing image '%s'", name);
	crash_point("image.after-blob");
	return image_publish(c, s, k, name, m, e);
}

/* Bootstraps, packs and stores the image (always); the caller holds the
 * image's lock (workdir_lock_image), which guards the temp dir. */
static int image_create(const struct config *c, struct storage *s, const char *name,
			struct image_info *ret, struct err *e)
{
	_cleanup_free_ char *tool = NULL, *arch = NULL, *key = NULL, *tmp = NULL;
	_cleanup_buf_ struct buf mirror = BUF_INIT;
	_cleanup_err_ struct err e2 = ERR_INIT;
	struct image_made m = { .packages = STRV_INIT };
	struct sign_trust t = SIGN_TRUST_INIT;
	struct sign_key *k = NULL;
	char cache_key[65];
	int r;

	/* a key that cannot sign fails now, not after the bootstrap */
	r = sign_key_config_make(c, &k, e);
	if (r < 0)
		return r;
	if (!k && !c->signing.allow_unsigned)
		return err_set(e, -ENOKEY, "signing.key is not set: make a key pair with 'upaas key "
			       "generate' (or set signing.allow_unsigned to make unsigned images)");
	if (!k)
		log_warn("signing.key is not set: image '%s' is stored unsigned", name);
	sign_key_free(k);
	r = pick_tool(c, &tool, e);
	if (r < 0)
		return r;
	r = image_mirror(c, &mirror, e);
	if (r < 0)
		return r;
	arch = image_arch(c);
	/* a new key for every creation: a blob is never overwritten */
	_cleanup_free_ char *id = id_new();
	key = xasprintf("images/%s/%s.tar.zst", name, id);
	image_cache_key(c, mirror.p, arch, cache_key);
	m.name = name;
	m.key = key;
	m.tool = tool;
	m.arch = arch;
	m.mirror = mirror.p;
	m.cache_key = cache_key;

	/* mmdebstrap mounts /proc, /sys, /dev inside the target: in a private
	 * mount namespace those mounts die with us, whatever happens. */
	r = sandbox_private_mounts(e);
	if (r < 0)
		return r;
	r = workdir_image_mkdtemp(c, name, &tmp, e);
	if (r < 0)
		return r;
	/* what a creation that died here left goes first; then this one's
	 * blob is recorded before it exists */
	publish_recover(c, s, name);
	publish_record_write(c, name, key, NULL);
	r = sign_key_config(c, &k, e);
	if (r >= 0)
		r = image_build(c, s, k, name, tmp, &m, e);
	sign_key_free(k);
	if (r < 0) {
		/* the upload was aborted or the blob deleted: look once more */
		publish_recover(c, s, name);
	} else {
		publish_record_done(c, name);
	}
	strv_free(&m.packages);
	if (fs_rm_rf(tmp, &e2) < 0)
		log_warn("cannot remove '%s': %s", tmp, err_msg(&e2));
	if (r < 0)
		return r;
	r = sign_trust_config(&t, c, e);
	if (r >= 0)
		r = image_load(s, &t, name, ret, e);
	sign_trust_free(&t);
	return r;
}

int image_ensure(const struct config *c, struct storage *s, const char *name, bool force,
		 struct image_info *ret, struct err *e)
{
	_cleanup_free_ char *def = NULL;
	_cleanup_close_ int lfd = -1;
	struct image_info i = { 0 };
	_cleanup_trust_ struct sign_trust t = SIGN_TRUST_INIT;
	int r;

	if (!name)
		name = def = image_default_name(c);
	r = check_name(name, e);
	if (r < 0)
		return r;
	r = sign_trust_config(&t, c, e);
	if (r < 0)
		return r;
	if (!force) {
		r = image_load(s, &t, name, &i, e);
		if (r == 0 && !image_needs_rebuild(c, &i, NULL)) {
			*ret = i;
			return 0;
		}
		image_info_free(&i);
		/* a manifest that fails its signature is not replaced behind the
		 * admin's back: the build stops and says why ('image create
		 * --force' makes a new one) */
		if (r < 0 && r != -ENOENT)
			return r;
		err_clear(e);
	}
	/* one creator per image on this host; a waiter reuses its result */
	lfd = workdir_lock_image(c, name, e);
	if (lfd < 0)
		return lfd;
	if (!force && image_load(s, &t, name, &i, e) == 0 && !image_needs_rebuild(c, &i, NULL)) {
		*ret = i;
		return 0;
	}
	image_info_free(&i);
	err_clear(e);
	/* with the image's lock held, its image-<name>.* dirs are dead
	 * creations' (kill -9) */
	workdir_sweep(c, lfd);
	return image_create(c, s, name, ret, e);
}

int image_list(struct storage *s, struct strv *names, struct err *e)
{
	_cleanup_strv_ struct strv keys = STRV_INIT;
	int r;

	r = storage_list_keys(s, "images/", &keys, e);
	if (r < 0)
		return r;
	for (size_t i = 0; i < keys.n; i++) {
		const char *k = keys.v[i] + strlen("images/");
		size_t n = strlen(k);

		if (strncmp(keys.v[i], "images/", 7) || n <= 5 || strcmp(k + n - 5, ".json"))
			continue;
		strv_push_take(names, xstrndup(k, n - 5));
	}
	return 0;
}

int image_remove(const struct config *c, struct storage *s, const char *name, struct err *e)
{
	_cleanup_free_ char *mkey = NULL, *bkey = NULL;
	_cleanup_close_ int lfd = -1;
	struct storage_stat st;
	int r;

	r = check_name(name, e);
	if (r < 0)
		return r;
	lfd = workdir_lock_image(c, name, e);
	if (lfd < 0)
		return lfd;
	/* a removal or creation that died here left blobs: they go first;
	 * with the lock held, its creations' work dirs are dead too */
	workdir_sweep(c, lfd);
	publish_recover(c, s, name);
	mkey = storage_key_image(name, "json");
	r = storage_stat(s, mkey, &st, e);
	if (r == -ENOENT) {
		err_clear(e);
		return err_set(e, -ENOENT, "no image '%s' in %s", name, storage_where(s));
	}
	if (r < 0)
		return r;
	/* the blob the manifest names (a damaged manifest names none: the
	 * first edition's key, and the orphan sweep, still apply) */
	if (image_manifest_key(s, name, &bkey) < 0 || !image_blob_key_ok(name, bkey)) {
		free(bkey);
		bkey = storage_key_image(name, "tar.zst");
	}
	/* the manifest is the commit marker: it goes first, then its
	 * signature; the record says which blob is left to delete if we die
	 * before it */
	publish_record_write(c, name, bkey, NULL);
	r = signed_delete(s, mkey, e);
	if (r < 0) {
		publish_record_done(c, name);
		return r;
	}
	crash_point("image.remove.after-manifest");
	r = storage_delete(s, bkey, e);
	if (r < 0)
		return r;
	publish_record_done(c, name);
	image_collect_orphans(s, name, NULL);
	return 0;
}
