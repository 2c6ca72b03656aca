/*
 * package/sbom.c - the bill of materials of a root tree: Debian packages from
 * var/lib/dpkg/status, npm packages from package-lock.json files, Python
 * packages from *.dist-info/METADATA; written as upaas's own JSON (stored
 * with the package), SPDX 2.3 JSON and CycloneDX 1.5 JSON.
 *
 * The tree is an app's: data. The walk never follows a symlink (every open
 * is O_NOFOLLOW, relative to a directory fd), never leaves the root's file
 * system, and is bounded in depth, entries and file sizes.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <json-c/json.h>

#include "package/package.h"

#define WALK_DEPTH_MAX 48
#define WALK_ENTRIES_MAX 2000000
#define DPKG_STATUS_MAX ((size_t)64 << 20)
#define LOCKFILE_MAX ((size_t)32 << 20)
#define METADATA_MAX ((size_t)256 << 10)
#define OS_RELEASE_MAX ((size_t)16 << 10)
#define ITEMS_MAX 200000
#define FIELD_MAX 256             /* a name or a version */
#define NPM_DEPTH_MAX 64

static const char *const kind_names[] = { [SBOM_DEB] = "deb", [SBOM_NPM] = "npm",
					  [SBOM_PYPI] = "pypi" };

const char *sbom_kind_name(enum sbom_kind k)
{
	return (unsigned)k < ARRAY_SIZE(kind_names) ? kind_names[k] : "?";
}

void sbom_free(struct sbom *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++) {
		free(s->v[i].name);
		free(s->v[i].version);
		free(s->v[i].arch);
	}
	free(s->v);
	free(s->distro);
	free(s->distro_version);
	*s = (struct sbom){ 0 };
}

/* A name or version as found in the tree: printable ASCII or UTF-8, no
 * control characters, no spaces, bounded. */
static bool field_ok(const char *s, size_t n)
{
	if (!n || n > FIELD_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= ' ' || s[i] == 0x7f)
			return false;
	return true;
}

static int item_add(struct sbom *s, enum sbom_kind kind, const char *name, size_t name_n,
		    const char *version, size_t version_n, const char *arch, size_t arch_n)
{
	if (!field_ok(name, name_n) || !field_ok(version, version_n) ||
	    (arch && !field_ok(arch, arch_n)))
		return 0;   /* not a usable entry: skipped */
	if (s->n >= ITEMS_MAX)
		return -E2BIG;
	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 64;
		s->v = xrealloc(s->v, s->cap * sizeof(*s->v));
	}
	s->v[s->n++] = (struct sbom_item){
		.kind = kind,
		.name = xstrndup(name, name_n),
		.version = xstrndup(version, version_n),
		.arch = arch ? xstrndup(arch, arch_n) : NULL,
	};
	return 0;
}

static int item_cmp(const void *a, const void *b)
{
	const struct sbom_item *x = a, *y = b;
	int r;
	if (x->kind != y->kind)
		return (int)x->kind - (int)y->kind;
	if ((r = strcmp(x->name, y->name)))
		return r;
	if ((r = strcmp(x->version, y->version)))
		return r;
	return strcmp(x->arch ? x->arch : "", y->arch ? y->arch : "");
}

/* Sorts and drops duplicates: the same package found twice is one. */
static void items_unique(struct sbom *s)
{
	if (!s->n)
		return;
	qsort(s->v, s->n, sizeof(*s->v), item_cmp);
	size_t out = 1;
	for (size_t i = 1; i < s->n; i++) {
		if (!item_cmp(&s->v[i], &s->v[out - 1])) {
			free(s->v[i].name);
			free(s->v[i].version);
			free(s->v[i].arch);
			continue;
		}
		s->v[out++] = s->v[i];
	}
	s->n = out;
}

/* Reads name (a regular file, no symlink) below dirfd, at most max bytes.
 * -ENOENT when absent, -E2BIG when larger, -EINVAL when not a file. */
static int read_at(int dirfd, const char *name, size_t max, struct buf *out)
{
	_cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	struct stat st;
	if (fd < 0)
		return errno == ELOOP ? -EINVAL : -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	if ((uint64_t)st.st_size > max)
		return -E2BIG;
	buf_init(out, max);
	return buf_read_fd(out, fd);
}

/* Opens the directory at the relative path rel below dirfd, one component
 * at a time, never through a symlink. */
static int open_dir_below(int dirfd, const char *rel)
{
	_cleanup_free_ char *copy = xstrdup(rel);
	int fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 3);
	char *save = NULL;
	for (char *c = strtok_r(copy, "/", &save); c && fd >= 0; c = strtok_r(NULL, "/", &save)) {
		int next = openat(fd, c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		int saved = errno;
		close(fd);
		errno = saved;
		fd = next;
	}
	return fd < 0 ? -errno : fd;
}

/* ------------------------------------------------------------------ dpkg */

/* The value of "Field: value" when line is that field (case-insensitive
 * name, as deb822 says); NULL otherwise. */
static const char *field_value(const char *line, size_t n, const char *field, size_t *ret_n)
{
	size_t fl = strlen(field);
	if (n <= fl || strncasecmp(line, field, fl) || line[fl] != ':')
		return NULL;
	const char *v = line + fl + 1;
	const char *end = line + n;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
		end--;
	*ret_n = (size_t)(end - v);
	return v;
}

/* "install ok installed", "hold ok installed": the third word. */
static bool status_installed(const char *v, size_t n)
{
	static const char w[] = "installed";
	size_t wl = sizeof(w) - 1;
	int words = 0;
	for (size_t i = 0; i < n;) {
		while (i < n && v[i] == ' ')
			i++;
		size_t start = i;
		while (i < n && v[i] != ' ')
			i++;
		if (i > start && ++words == 3)
			return i - start == wl && !strncmp(v + start, w, wl);
	}
	return false;
}

int sbom_parse_dpkg_status(struct sbom *s, const char *text, size_t len)
{
	const char *pkg = NULL, *ver = NULL, *arch = NULL;
	size_t pkg_n = 0, ver_n = 0, arch_n = 0;
	bool installed = false;
	int r = 0;

	for (size_t off = 0; off <= len && r >= 0;) {
		const char *line = text + off;
		const char *nl = memchr(line, '\n', len - off);
		size_t n = nl ? (size_t)(nl - line) : len - off;
		off += n + 1;
		bool blank = true;
		for (size_t i = 0; i < n; i++)
			blank &= line[i] == ' ' || line[i] == '\t' || line[i] == '\r';
		if (blank) {
			/* the end of a paragraph: one package */
			if (pkg && ver && installed)
				r = item_add(s, SBOM_DEB, pkg, pkg_n, ver, ver_n, arch, arch_n);
			pkg = ver = arch = NULL;
			installed = false;
			if (!nl)
				break;
			continue;
		}
		if (line[0] == ' ' || line[0] == '\t')
			continue;   /* continuation of a multi-line field */
		const char *v;
		size_t vn;
		if ((v = field_value(line, n, "Package", &vn))) {
			pkg = v;
			pkg_n = vn;
		} else if ((v = field_value(line, n, "Version", &vn))) {
			ver = v;
			ver_n = vn;
		} else if ((v = field_value(line, n, "Architecture", &vn))) {
			arch = v;
			arch_n = vn;
		} else if ((v = field_value(line, n, "Status", &vn))) {
			installed = status_installed(v, vn);
		}
		if (!nl && pkg && ver && installed)
			r = item_add(s, SBOM_DEB, pkg, pkg_n, ver, ver_n, arch, arch_n);
	}
	return r;
}

/* ------------------------------------------------------------------- npm */

static int npm_v1_deps(struct sbom *s, json_object *deps, int depth)
{
	if (!deps || !json_object_is_type(deps, json_type_object) || depth > NPM_DEPTH_MAX)
		return 0;
	json_object_object_foreach(deps, name, v) {
		const char *ver = json_get_str(v, "version");
		int r;
		/* bundled or linked entries carry a path or URL, not a version */
		if (ver && strncmp(ver, "file:", 5) && !strstr(ver, "://")) {
			r = item_add(s, SBOM_NPM, name, strlen(name), ver, strlen(ver), NULL, 0);
			if (r < 0)
				return r;
		}
		r = npm_v1_deps(s, json_get_obj(v, "dependencies"), depth + 1);
		if (r < 0)
			return r;
	}
	return 0;
}

int sbom_parse_npm_lock(struct sbom *s, const char *text)
{
	_cleanup_err_ struct err e = ERR_INIT;
	_cleanup_json_ json_object *o = NULL;

	if (json_parse_object(text, &o, &e) < 0)
		return 0;   /* not a lockfile we can read: nothing from it */
	json_object *pkgs = json_get_obj(o, "packages");
	if (!pkgs)   /* lockfileVersion 1 */
		return npm_v1_deps(s, json_get_obj(o, "dependencies"), 0);
	/* lockfileVersion 2 and 3: "node_modules/a/node_modules/@s/b": {...} */
	json_object_object_foreach(pkgs, path, v) {
		const char *nm = NULL;
		for (const char *p = strstr(path, "node_modules/"); p;
		     p = strstr(p + 1, "node_modules/"))
			nm = p;
		if (!nm || !json_object_is_type(v, json_type_object))
			continue;   /* the project itself, a workspace */
		json_object *link;
		if (json_object_object_get_ex(v, "link", &link) && json_object_get_boolean(link))
			continue;
		const char *name = json_get_str(v, "name");
		if (!name)
			name = nm + strlen("node_modules/");
		const char *ver = json_get_str(v, "version");
		if (!ver)
			continue;
		int r = item_add(s, SBOM_NPM, name, strlen(name), ver, strlen(ver), NULL, 0);
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---------------------------------------------------------------- python */

int sbom_parse_python_metadata(struct sbom *s, const char *text, size_t len)
{
	const char *name = NULL, *ver = NULL;
	size_t name_n = 0, ver_n = 0;

	/* the header ends at the first empty line; the description may follow */
	for (size_t off = 0; off < len;) {
		const char *line = text + off;
		const char *nl = memchr(line, '\n', len - off);
		size_t n = nl ? (size_t)(nl - line) : len - off;
		off += n + 1;
		if (!n || (n == 1 && line[0] == '\r'))
			break;
		const char *v;
		size_t vn;
		if (!name && (v = field_value(line, n, "Name", &vn))) {
			name = v;
			name_n = vn;
		} else if (!ver && (v = field_value(line, n, "Version", &vn))) {
			ver = v;
			ver_n = vn;
		}
	}
	if (!name || !ver)
		return 0;
	return item_add(s, SBOM_PYPI, name, name_n, ver, ver_n, NULL, 0);
}

/* ------------------------------------------------------------------ walk */

struct walk {
	struct sbom *s;
	dev_t dev;
	size_t entries;
};

static bool has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && !strcmp(s + n - m, suffix);
}

static int scan_lockfile(struct walk *w, int dirfd, const char *name)
{
	_cleanup_buf_ struct buf b = BUF_INIT;
	int r = read_at(dirfd, name, LOCKFILE_MAX, &b);
	if (r == -E2BIG)
		log_warn("SBOM: '%s' skipped: larger than %zu MiB", name, LOCKFILE_MAX >> 20);
	if (r < 0)
		return 0;
	return sbom_parse_npm_lock(w->s, b.p);
}

static int scan_dist_info(struct walk *w, int dirfd, const char *name)
{
	_cleanup_buf_ struct buf b = BUF_INIT;
	_cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return 0;
	int r = read_at(fd, "METADATA", METADATA_MAX, &b);
	if (r == -E2BIG) {
		/* the header is at the top: read what fits */
		_cleanup_close_ int mfd = openat(fd, "METADATA", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		struct stat st;
		if (mfd < 0 || fstat(mfd, &st) < 0 || !S_ISREG(st.st_mode))
			return 0;
		buf_init(&b, METADATA_MAX);
		r = buf_read_fd(&b, mfd);
		if (r == -E2BIG)
			r = 0;
	}
	if (r < 0)
		return 0;
	return sbom_parse_python_metadata(w->s, b.p, b.len);
}

static int walk_dir(struct walk *w, int dirfd, int depth)
{
	if (depth > WALK_DEPTH_MAX)
		return 0;
	int fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 3);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return 0;   /* unreadable: nothing from it */
	}
	int r = 0;
	struct dirent *de;
	while (r >= 0 && (de = readdir(d))) {
		const char *name = de->d_name;
		if (!strcmp(name, ".") || !strcmp(name, ".."))
			continue;
		if (++w->entries > WALK_ENTRIES_MAX) {
			w->s->truncated = true;
			r = -E2BIG;
			break;
		}
		/* the kernel's and the devices' trees of a root are no packages */
		if (depth == 0 && (!strcmp(name, "proc") || !strcmp(name, "sys") ||
				   !strcmp(name, "dev")))
			continue;
		struct stat st;
		if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (S_ISREG(st.st_mode)) {
			if (!strcmp(name, "package-lock.json"))
				r = scan_lockfile(w, dirfd, name);
			continue;
		}
		if (!S_ISDIR(st.st_mode) || st.st_dev != w->dev)
			continue;   /* symlinks, devices, other file systems */
		if (has_suffix(name, ".dist-info")) {
			r = scan_dist_info(w, dirfd, name);
			continue;
		}
		_cleanup_close_ int sub = openat(dirfd, name,
						 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub < 0)
			continue;
		if (!strcmp(name, "node_modules")) {
			/* npm's record of what it installed there; the thousands of
			 * directories below hold nothing more for the bill */
			r = scan_lockfile(w, sub, ".package-lock.json");
			continue;
		}
		r = walk_dir(w, sub, depth + 1);
	}
	closedir(d);
	return r;
}

/* ID and VERSION_ID of the tree's os-release, for package URLs. */
static void scan_os_release(struct sbom *s, int rootfd)
{
	static const char *const where[][2] = { { "usr/lib", "os-release" },
						{ "etc", "os-release" } };
	_cleanup_buf_ struct buf b = BUF_INIT;
	int r = -ENOENT;
	for (size_t i = 0; i < ARRAY_SIZE(where) && r < 0; i++) {
		_cleanup_close_ int d = open_dir_below(rootfd, where[i][0]);
		if (d >= 0)
			r = read_at(d, where[i][1], OS_RELEASE_MAX, &b);
	}
	if (r < 0)
		return;
	for (const char *line = b.p; *line;) {
		size_t n = strcspn(line, "\n");
		const char *v = NULL;
		char **dst = NULL;
		if (n > 3 && !strncmp(line, "ID=", 3)) {
			v = line + 3;
			dst = &s->distro;
		} else if (n > 11 && !strncmp(line, "VERSION_ID=", 11)) {
			v = line + 11;
			dst = &s->distro_version;
		}
		if (dst && !*dst) {
			size_t vn = n - (size_t)(v - line);
			if (vn >= 2 && (*v == '"' || *v == '\'') && v[vn - 1] == *v) {
				v++;
				vn -= 2;
			}
			bool ok = vn && vn <= 64;
			for (size_t i = 0; ok && i < vn; i++)
				ok = (v[i] >= 'a' && v[i] <= 'z') || (v[i] >= '0' && v[i] <= '9') ||
				     v[i] == '.' || v[i] == '-' || v[i] == '_';
			if (ok)
				*dst = xstrndup(v, vn);
		}
		line += n + (line[n] == '\n');
	}
}

int sbom_scan(struct sbom *ret, const char *root, struct err *e)
{
	struct sbom s = { 0 };
	struct stat st;
	_cleanup_close_ int rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int r;

	if (rootfd < 0)
		return err_set_errno(e, -errno, "cannot open '%s'", root);
	if (fstat(rootfd, &st) < 0)
		return err_set_errno(e, -errno, "cannot stat '%s'", root);

	scan_os_release(&s, rootfd);
	{
		_cleanup_buf_ struct buf b = BUF_INIT;
		_cleanup_close_ int d = open_dir_below(rootfd, "var/lib/dpkg");
		r = d >= 0 ? read_at(d, "status", DPKG_STATUS_MAX, &b) : -ENOENT;
		if (r >= 0)
			r = sbom_parse_dpkg_status(&s, b.p, b.len);
		else if (r == -ENOENT)
			r = 0;   /* a tree without dpkg: no Debian packages */
		if (r < 0) {
			sbom_free(&s);
			return err_set_errno(e, r, "cannot read the dpkg status of '%s'", root);
		}
	}
	struct walk w = { .s = &s, .dev = st.st_dev };
	r = walk_dir(&w, rootfd, 0);
	if (r == -E2BIG) {
		s.truncated = true;
		log_warn("SBOM of '%s' is incomplete: more than %d entries or %d packages",
			 root, WALK_ENTRIES_MAX, ITEMS_MAX);
	} else if (r < 0) {
		sbom_free(&s);
		return err_set_errno(e, r, "cannot scan '%s'", root);
	}
	items_unique(&s);
	*ret = s;
	return 0;
}

/* ----------------------------------------------------- upaas's own JSON */

void sbom_json(const struct sbom *s, struct buf *out)
{
	json_object *o = json_object_new_object();
	json_object *a = json_object_new_array();
	json_object_object_add(o, "format", json_object_new_int(1));
	json_object_object_add(o, "distro", json_new_str(s->distro));
	json_object_object_add(o, "distro_version", json_new_str(s->distro_version));
	json_object_object_add(o, "complete", json_object_new_boolean(!s->truncated));
	for (size_t i = 0; i < s->n; i++) {
		json_object *c = json_object_new_object();
		json_object_object_add(c, "type", json_object_new_string(sbom_kind_name(s->v[i].kind)));
		json_object_object_add(c, "name", json_new_str(s->v[i].name));
		json_object_object_add(c, "version", json_new_str(s->v[i].version));
		if (s->v[i].arch)
			json_object_object_add(c, "arch", json_new_str(s->v[i].arch));
		json_object_array_add(a, c);
	}
	json_object_object_add(o, "components", a);
	json_to_buf(o, out);
	json_object_put(o);
}

int sbom_parse(struct sbom *ret, const char *text, struct err *e)
{
	_cleanup_json_ json_object *o = NULL;
	struct sbom s = { 0 };
	int64_t format;
	json_object *a, *x;

	if (json_parse_object(text, &o, e) < 0)
		return err_prefix(e, "SBOM");
	if (!json_get_int(o, "format", &format) || format != 1)
		return err_set(e, -EINVAL, "SBOM: unknown format");
	if (!json_object_object_get_ex(o, "components", &a) ||
	    !json_object_is_type(a, json_type_array))
		return err_set(e, -EINVAL, "SBOM: no \"components\" list");
	const char *d = json_get_str(o, "distro"), *dv = json_get_str(o, "distro_version");
	s.distro = d ? xstrdup(d) : NULL;
	s.distro_version = dv ? xstrdup(dv) : NULL;
	s.truncated = json_object_object_get_ex(o, "complete", &x) && !json_object_get_boolean(x);
	for (size_t i = 0; i < json_object_array_length(a); i++) {
		json_object *c = json_object_array_get_idx(a, i);
		const char *type = json_get_str(c, "type"), *name = json_get_str(c, "name");
		const char *ver = json_get_str(c, "version"), *arch = json_get_str(c, "arch");
		int kind = -1;
		for (size_t k = 0; type && k < ARRAY_SIZE(kind_names); k++)
			if (!strcmp(type, kind_names[k]))
				kind = (int)k;
		if (kind < 0 || !name || !ver || !field_ok(name, strlen(name)) ||
		    !field_ok(ver, strlen(ver)) || (arch && !field_ok(arch, strlen(arch)))) {
			sbom_free(&s);
			return err_set(e, -EINVAL, "SBOM: component %zu is not valid", i);
		}
		if (item_add(&s, (enum sbom_kind)kind, name, strlen(name), ver, strlen(ver), arch,
			     arch ? strlen(arch) : 0) < 0) {
			sbom_free(&s);
			return err_set(e, -E2BIG, "SBOM: more than %d components", ITEMS_MAX);
		}
	}
	*ret = s;
	return 0;
}

/* --------------------------------------------------- standard formats */

/* Percent-encodes s for a package URL (purl): everything but
 * [A-Za-z0-9.-_~] (so ':' of a Debian epoch becomes %3A, '+' %2B). */
static void purl_enc(struct buf *out, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
		    *p == '.' || *p == '-' || *p == '_' || *p == '~') {
			buf_addch(out, (char)*p);
		} else {
			buf_addch(out, '%');
			buf_addch(out, hex[*p >> 4]);
			buf_addch(out, hex[*p & 15]);
		}
	}
}

void sbom_purl(const struct sbom *s, const struct sbom_item *it, struct buf *out)
{
	buf_adds(out, "pkg:");
	switch (it->kind) {
	case SBOM_DEB:
		buf_adds(out, "deb/");
		purl_enc(out, s->distro ? s->distro : "debian");
		buf_addch(out, '/');
		purl_enc(out, it->name);
		break;
	case SBOM_NPM: {
		buf_adds(out, "npm/");
		const char *slash = it->name[0] == '@' ? strchr(it->name, '/') : NULL;
		if (slash) {
			/* @scope/name: the scope is the namespace */
			_cleanup_free_ char *scope = xstrndup(it->name, (size_t)(slash - it->name));
			purl_enc(out, scope);
			buf_addch(out, '/');
			purl_enc(out, slash + 1);
		} else {
			purl_enc(out, it->name);
		}
		break;
	}
	case SBOM_PYPI: {
		/* PyPI names are case-insensitive and '_' is '-' */
		_cleanup_free_ char *n = xstrdup(it->name);
		for (char *p = n; *p; p++)
			*p = *p == '_' ? '-' : (*p >= 'A' && *p <= 'Z') ? (char)(*p - 'A' + 'a') : *p;
		buf_adds(out, "pypi/");
		purl_enc(out, n);
		break;
	}
	}
	buf_addch(out, '@');
	purl_enc(out, it->version);
	if (it->kind == SBOM_DEB) {
		char sep = '?';
		if (it->arch) {
			buf_addf(out, "%carch=", sep);
			purl_enc(out, it->arch);
			sep = '&';
		}
		if (s->distro && s->distro_version) {
			buf_addf(out, "%cdistro=", sep);
			purl_enc(out, s->distro);
			buf_addch(out, '-');
			purl_enc(out, s->distro_version);
		}
	}
}

/* A UUID (version 5 style, from sha256) over the subject and the items, so
 * that the same package always gets the same document id. */
static void doc_uuid(const struct sbom *s, const struct sbom_subject *subj, char out[37])
{
	struct sha256 h;
	char hex[65];
	if (sha256_init(&h) < 0) {
		snprintf(out, 37, "00000000-0000-5000-8000-000000000000");
		return;
	}
	sha256_update(&h, subj->name, strlen(subj->name) + 1);
	sha256_update(&h, subj->version, strlen(subj->version) + 1);
	for (size_t i = 0; i < s->n; i++) {
		sha256_update(&h, s->v[i].name, strlen(s->v[i].name) + 1);
		sha256_update(&h, s->v[i].version, strlen(s->v[i].version) + 1);
	}
	sha256_final(&h, hex);
	/* version 5 and the RFC 4122 variant: 8-4-4-4-12 */
	snprintf(out, 37, "%.8s-%.4s-5%.3s-%c%.3s-%.12s", hex, hex + 8, hex + 13,
		 "89ab"[hex[16] % 4], hex + 17, hex + 20);
}

static const char *subject_created(const struct sbom_subject *subj, char buf[32])
{
	if (subj->created)
		return subj->created;
	time_iso8601(now_unix(), buf);
	return buf;
}

void sbom_spdx(const struct sbom *s, const struct sbom_subject *subj, struct buf *out)
{
	json_object *o = json_object_new_object(), *pkgs = json_object_new_array();
	json_object *rels = json_object_new_array(), *x, *ci, *refs, *ref;
	char uuid[37], tbuf[32];
	_cleanup_buf_ struct buf b = BUF_INIT;

	doc_uuid(s, subj, uuid);
	json_object_object_add(o, "spdxVersion", json_object_new_string("SPDX-2.3"));
	json_object_object_add(o, "dataLicense", json_object_new_string("CC0-1.0"));
	json_object_object_add(o, "SPDXID", json_object_new_string("SPDXRef-DOCUMENT"));
	buf_addf(&b, "%s-%s", subj->name, subj->version);
	json_object_object_add(o, "name", json_object_new_string(b.p));
	buf_reset(&b);
	/* a unique URI; upaas publishes nothing there */
	buf_addf(&b, "https://spdx.org/spdxdocs/upaas-%s-%s", subj->name, uuid);
	json_object_object_add(o, "documentNamespace", json_object_new_string(b.p));
	ci = json_object_new_object();
	json_object_object_add(ci, "created", json_object_new_string(subject_created(subj, tbuf)));
	x = json_object_new_array();
	buf_reset(&b);
	buf_addf(&b, "Tool: upaas-%s", subj->tool_version ? subj->tool_version : "unknown");
	json_object_array_add(x, json_object_new_string(b.p));
	json_object_object_add(ci, "creators", x);
	json_object_object_add(o, "creationInfo", ci);

	/* the package itself, then what it contains */
	x = json_object_new_object();
	json_object_object_add(x, "name", json_object_new_string(subj->name));
	json_object_object_add(x, "SPDXID", json_object_new_string("SPDXRef-Package-root"));
	json_object_object_add(x, "versionInfo", json_object_new_string(subj->version));
	json_object_object_add(x, "downloadLocation", json_object_new_string("NOASSERTION"));
	json_object_object_add(x, "filesAnalyzed", json_object_new_boolean(false));
	json_object_object_add(x, "primaryPackagePurpose", json_object_new_string("APPLICATION"));
	json_object_array_add(pkgs, x);
	x = json_object_new_object();
	json_object_object_add(x, "spdxElementId", json_object_new_string("SPDXRef-DOCUMENT"));
	json_object_object_add(x, "relationshipType", json_object_new_string("DESCRIBES"));
	json_object_object_add(x, "relatedSpdxElement", json_object_new_string("SPDXRef-Package-root"));
	json_object_array_add(rels, x);

	for (size_t i = 0; i < s->n; i++) {
		const struct sbom_item *it = &s->v[i];
		char id[64];
		snprintf(id, sizeof(id), "SPDXRef-Package-%s-%zu", sbom_kind_name(it->kind), i + 1);
		x = json_object_new_object();
		json_object_object_add(x, "name", json_object_new_string(it->name));
		json_object_object_add(x, "SPDXID", json_object_new_string(id));
		json_object_object_add(x, "versionInfo", json_object_new_string(it->version));
		json_object_object_add(x, "downloadLocation", json_object_new_string("NOASSERTION"));
		json_object_object_add(x, "filesAnalyzed", json_object_new_boolean(false));
		refs = json_object_new_array();
		ref = json_object_new_object();
		buf_reset(&b);
		sbom_purl(s, it, &b);
		json_object_object_add(ref, "referenceCategory", json_object_new_string("PACKAGE-MANAGER"));
		json_object_object_add(ref, "referenceType", json_object_new_string("purl"));
		json_object_object_add(ref, "referenceLocator", json_object_new_string(b.p));
		json_object_array_add(refs, ref);
		json_object_object_add(x, "externalRefs", refs);
		json_object_array_add(pkgs, x);
		x = json_object_new_object();
		json_object_object_add(x, "spdxElementId", json_object_new_string("SPDXRef-Package-root"));
		json_object_object_add(x, "relationshipType", json_object_new_string("CONTAINS"));
		json_object_object_add(x, "relatedSpdxElement", json_object_new_string(id));
		json_object_array_add(rels, x);
	}
	json_object_object_add(o, "packages", pkgs);
	json_object_object_add(o, "relationships", rels);
	json_to_buf(o, out);
	json_object_put(o);
}

void sbom_cyclonedx(const struct sbom *s, const struct sbom_subject *subj, struct buf *out)
{
	json_object *o = json_object_new_object(), *md = json_object_new_object();
	json_object *comps = json_object_new_array(), *x, *tools, *tc;
	char uuid[37], tbuf[32];
	_cleanup_buf_ struct buf b = BUF_INIT;

	doc_uuid(s, subj, uuid);
	json_object_object_add(o, "bomFormat", json_object_new_string("CycloneDX"));
	json_object_object_add(o, "specVersion", json_object_new_string("1.5"));
	buf_addf(&b, "urn:uuid:%s", uuid);
	json_object_object_add(o, "serialNumber", json_object_new_string(b.p));
	json_object_object_add(o, "version", json_object_new_int(1));

	json_object_object_add(md, "timestamp", json_object_new_string(subject_created(subj, tbuf)));
	tools = json_object_new_object();
	tc = json_object_new_array();
	x = json_object_new_object();
	json_object_object_add(x, "type", json_object_new_string("application"));
	json_object_object_add(x, "name", json_object_new_string("upaas"));
	if (subj->tool_version)
		json_object_object_add(x, "version", json_object_new_string(subj->tool_version));
	json_object_array_add(tc, x);
	json_object_object_add(tools, "components", tc);
	json_object_object_add(md, "tools", tools);
	x = json_object_new_object();
	json_object_object_add(x, "type", json_object_new_string("application"));
	json_object_object_add(x, "bom-ref", json_object_new_string("root"));
	json_object_object_add(x, "name", json_object_new_string(subj->name));
	json_object_object_add(x, "version", json_object_new_string(subj->version));
	json_object_object_add(md, "component", x);
	json_object_object_add(o, "metadata", md);

	for (size_t i = 0; i < s->n; i++) {
		const struct sbom_item *it = &s->v[i];
		buf_reset(&b);
		sbom_purl(s, it, &b);
		char ref[64];
		snprintf(ref, sizeof(ref), "%s-%zu", sbom_kind_name(it->kind), i + 1);
		x = json_object_new_object();
		json_object_object_add(x, "type", json_object_new_string("library"));
		json_object_object_add(x, "bom-ref", json_object_new_string(ref));
		json_object_object_add(x, "name", json_object_new_string(it->name));
		json_object_object_add(x, "version", json_object_new_string(it->version));
		json_object_object_add(x, "purl", json_object_new_string(b.p));
		json_object_array_add(comps, x);
	}
	json_object_object_add(o, "components", comps);
	json_to_buf(o, out);
	json_object_put(o);
}
