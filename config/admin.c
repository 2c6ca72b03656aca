/*
 * config/admin.c - the admin config (/etc/upaas/upaas.cfg): defaults, the
 * schema table, loading, validation, showing, and the S3 secrets.
 */
#define UPAAS_CONFIG_INTERNAL
#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <libgen.h>
#include <limits.h>
#include <string.h>

#include "config/config-int.h"

#define MIB ((int64_t)1 << 20)
#define GIB ((int64_t)1 << 30)
#define OFF(field) offsetof(struct config, field)
#define VOFF(field) offsetof(struct cfg_interp_version, field)

/* ------------------------------------------------------------- validators */

static bool ok_tool(const char *s)
{
	return !strcmp(s, "auto") || !strcmp(s, "mmdebstrap") || !strcmp(s, "debootstrap");
}

static bool ok_handler(const char *s)
{
	return !strcmp(s, "local") || !strcmp(s, "s3") || !strcmp(s, "http");
}

static bool has_prefix(const char *s, const char *prefix)
{
	return !strncmp(s, prefix, strlen(prefix));
}

static bool ok_http_url(const char *s)
{
	const char *rest = has_prefix(s, "http://") ? s + 7 :
			   has_prefix(s, "https://") ? s + 8 : NULL;
	return rest && *rest && *rest != '/' && !strpbrk(s, " \t\n\"'");
}

static bool ok_mirror(const char *s)
{
	return ok_http_url(s) || (has_prefix(s, "file://") && ok_abs_path(s + 7));
}

static bool ok_abs_path_or_empty(const char *s)
{
	return !*s || ok_abs_path(s);
}

static bool ok_queue_url(const char *s)
{
	if (has_prefix(s, "sqlite://"))
		return ok_abs_path(s + 9) && strcmp(s + 9, "/");
	return has_prefix(s, "postgresql://") || has_prefix(s, "postgres://");
}

/* An IPv4 or IPv6 address (no brackets). */
static bool ok_ip(const char *s)
{
	unsigned char a[16];
	return inet_pton(AF_INET, s, a) == 1 || inet_pton(AF_INET6, s, a) == 1;
}

/* HOST:PORT with an IPv4 address, [IPv6]:PORT, or *:PORT (every address). */
static bool ok_listen(const char *s)
{
	const char *colon = strrchr(s, ':');
	if (!colon || colon == s)
		return false;
	int64_t port;
	if (parse_int64(colon + 1, 1, 65535, &port) < 0)
		return false;
	_cleanup_free_ char *host = xstrndup(s, (size_t)(colon - s));
	size_t n = strlen(host);
	if (!strcmp(host, "*"))
		return true;
	if (host[0] == '[' && n > 2 && host[n - 1] == ']') {
		host[n - 1] = '\0';
		unsigned char a[16];
		return inet_pton(AF_INET6, host + 1, a) == 1;
	}
	unsigned char a[4];
	return inet_pton(AF_INET, host, a) == 1;
}

/* An address or ADDRESS/BITS. */
static bool ok_cidr(const char *s)
{
	const char *slash = strchr(s, '/');
	if (!slash)
		return ok_ip(s);
	_cleanup_free_ char *addr = xstrndup(s, (size_t)(slash - s));
	int64_t bits;
	unsigned char a[16];
	if (inet_pton(AF_INET, addr, a) == 1)
		return parse_int64(slash + 1, 0, 32, &bits) == 0;
	return inet_pton(AF_INET6, addr, a) == 1 && parse_int64(slash + 1, 0, 128, &bits) == 0;
}

static bool ok_bucket(const char *s)
{
	size_t n = strlen(s);
	if (n < 3 || n > 63)
		return false;
	for (const char *p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '.' || *p == '-'))
			return false;
	return s[0] != '.' && s[0] != '-';
}

/* "" or a relative key prefix without "." / ".." components ("a/b/"). */
static bool ok_prefix(const char *s)
{
	if (!*s)
		return true;
	_cleanup_free_ char *t = xstrdup(s);
	size_t n = strlen(t);
	if (t[n - 1] == '/')
		t[n - 1] = '\0';
	return ok_rel_path(t);
}

/* A host name or address as a URL has it, without port or userinfo. */
static bool ok_host(const char *s)
{
	if (!*s || strlen(s) > 253)
		return false;
	for (const char *p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '.' || *p == '-' || *p == ':' ||
		      *p == '[' || *p == ']'))
			return false;
	return true;
}

/* An xattr name of the trusted or security namespace, or a prefix of
 * one ending in '*'. */
static bool ok_xattr(const char *s)
{
	size_t n = strlen(s);
	if ((strncmp(s, "trusted.", 8) && strncmp(s, "security.", 9)) || n > 255)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= ' ' || (s[i] == '*' && i != n - 1))
			return false;
	return true;
}

/* A user name as adduser accepts it. */
static bool ok_user(const char *s)
{
	if (!*s || strlen(s) > 32 || !((*s >= 'a' && *s <= 'z') || *s == '_'))
		return false;
	for (const char *p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'))
			return false;
	return true;
}

/* A TCP port, 1..65535, in decimal. */
static bool ok_port(const char *s)
{
	int64_t v;
	return parse_int64(s, 1, 65535, &v) == 0;
}

static bool ok_materialize(const char *s)
{
	return !strcmp(s, "auto") || !strcmp(s, "overlay") || !strcmp(s, "extract");
}

/* Five cron fields of [0-9*,/-] and names (mon, tue, jan). */
static bool ok_schedule(const char *s)
{
	int fields = 0;
	for (const char *p = s; *p;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p)
			break;
		fields++;
		for (; *p && *p != ' ' && *p != '\t'; p++)
			if (!strchr("0123456789*,/-", *p) && !(*p >= 'a' && *p <= 'z') &&
			    !(*p >= 'A' && *p <= 'Z'))
				return false;
	}
	return fields == 5;
}

/* commands.install must expand the package names somewhere. */
static void check_install(struct schema_ctx *x, const config_setting_t *s, void *base)
{
	struct config *c = base;
	if (!strv_contains(&c->commands.install, "{packages}"))
		schema_diag(x, s, "the install command needs an element \"{packages}\" "
			    "(where the package names go)");
	else if (!strcmp(c->commands.install.v[0], "{packages}"))
		schema_diag(x, s, "the install command must start with the program to run");
}

static void check_argv(struct schema_ctx *x, const config_setting_t *s, void *base)
{
	struct config *c = base;
	if (c->commands.update.n && !strcmp(c->commands.update.v[0], "{packages}"))
		schema_diag(x, s, "the update command must start with the program to run");
}

/* commands.unmark, like install, must name the packages; it may be empty
 * (packages no longer asked for then stay as they are). */
static void check_unmark(struct schema_ctx *x, const config_setting_t *s, void *base)
{
	struct config *c = base;
	if (!c->commands.unmark.n)
		return;
	if (!strv_contains(&c->commands.unmark, "{packages}"))
		schema_diag(x, s, "the unmark command needs an element \"{packages}\" "
			    "(where the package names go)");
	else if (!strcmp(c->commands.unmark.v[0], "{packages}"))
		schema_diag(x, s, "the unmark command must start with the program to run");
}

static void check_autoremove(struct schema_ctx *x, const config_setting_t *s, void *base)
{
	struct config *c = base;
	if (strv_contains(&c->commands.autoremove, "{packages}"))
		schema_diag(x, s, "the autoremove command takes no \"{packages}\"");
}

static void check_storage(struct schema_ctx *x, const config_setting_t *s, void *base)
{
	struct config *c = base;
	struct cfg_storage *st = &c->storage;

	if (!strcmp(st->handler, "s3") && !st->bucket)
		schema_diag(x, s, "the s3 handler needs 'bucket'");
	if (!strcmp(st->handler, "http") && !st->url)
		schema_diag(x, s, "the http handler needs 'url'");
	/* a part_size above the default threshold raises it, unless it was set */
	if (st->multipart_threshold < st->part_size &&
	    !config_setting_get_member(s, "multipart_threshold"))
		st->multipart_threshold = st->part_size;
	if (st->multipart_threshold < st->part_size)
		schema_diag(x, s, "multipart_threshold (%lld) must be at least part_size (%lld)",
			    (long long)st->multipart_threshold, (long long)st->part_size);
	if (st->secret_key && st->secret_key_file)
		schema_diag(x, s, "set either secret_key or secret_key_file, not both");
}

/* -------------------------------------------------------- interpreters */

static const struct field version_fields[] = {
	{ FIELD("version", F_STR, VOFF(version)), .ok = ok_version,
	  .what = "a version ([0-9A-Za-z][0-9A-Za-z.+~_-]*)" },
	{ FIELD("packages", F_STRV, VOFF(packages)), .ok = ok_package,
	  .what = "a valid Debian package name ([a-z0-9][a-z0-9+.-]+)" },
	{ FIELD("env", F_ENV, VOFF(env)) },
	{ FIELD("actions", F_ACTIONS, VOFF(actions)), .mask = ACTIONS_INTERP },
	FIELD_END,
};

/* The any block has no version of its own. */
static const struct field *any_fields = version_fields + 1;

static struct cfg_interp_type *type_add(struct config *c, const char *name, int line)
{
	c->interpreters.types = xrealloc(c->interpreters.types,
		(c->interpreters.n_types + 1) * sizeof(*c->interpreters.types));
	struct cfg_interp_type *t = &c->interpreters.types[c->interpreters.n_types++];
	*t = (struct cfg_interp_type){ .name = xstrdup(name), .line = line };
	t->any.version = xstrdup("any");
	t->any.line = line;
	return t;
}

static void parse_versions(struct schema_ctx *x, const config_setting_t *s,
			   struct cfg_interp_type *t)
{
	if (config_setting_type(s) != CONFIG_TYPE_LIST) {
		schema_diag(x, s, "expected a list of groups ( { version = \"...\"; ... }, ... ), got %s",
			    schema_type_name(config_setting_type(s)));
		return;
	}
	for (int i = 0; i < config_setting_length(s); i++) {
		const config_setting_t *e = config_setting_get_elem(s, i);
		if (!config_setting_is_group(e)) {
			schema_diag(x, e, "expected a group { version = \"...\"; ... }, got %s",
				    schema_type_name(config_setting_type(e)));
			continue;
		}
		struct cfg_interp_version v = { .line = (int)config_setting_source_line(e) };
		schema_group(x, e, version_fields, &v);
		bool dup = false;
		for (size_t j = 0; v.version && j < t->n_versions; j++)
			dup |= !strcmp(t->versions[j].version, v.version);
		if (!v.version && !config_setting_get_member(e, "version"))
			schema_diag(x, e, "missing 'version'");
		else if (dup)
			schema_diag(x, e, "version '%s' is defined twice", v.version);
		if (!v.version || dup) {
			interp_version_free(&v);
			continue;
		}
		t->versions = xrealloc(t->versions, (t->n_versions + 1) * sizeof(*t->versions));
		t->versions[t->n_versions++] = v;
	}
}

static void parse_type(struct schema_ctx *x, const config_setting_t *s, struct config *c)
{
	const char *name = config_setting_name(s);

	if (!ok_name(name)) {
		schema_diag(x, s, "'%s' is not a valid interpreter type name ([a-z][a-z0-9_-]*)", name);
		return;
	}
	if (!config_setting_is_group(s)) {
		schema_diag(x, s, "expected a group (an interpreter type), got %s",
			    schema_type_name(config_setting_type(s)));
		return;
	}
	struct cfg_interp_type *t = type_add(c, name, (int)config_setting_source_line(s));
	for (int i = 0; i < config_setting_length(s); i++) {
		const config_setting_t *e = config_setting_get_elem(s, i);
		const char *key = config_setting_name(e);
		if (!strcmp(key, "any")) {
			t->any.line = (int)config_setting_source_line(e);
			if (config_setting_is_group(e))
				schema_group(x, e, any_fields, &t->any);
			else
				schema_diag(x, e, "expected a group, got %s",
					    schema_type_name(config_setting_type(e)));
		} else if (!strcmp(key, "versions")) {
			parse_versions(x, e, t);
		} else {
			schema_diag(x, e, "unknown setting '%s' (an interpreter type has "
				    "'any' and 'versions')", key);
		}
	}
}

static const struct field interp_global_fields[] = {
	{ FIELD("env", F_ENV, OFF(interpreters.env)) },
	{ FIELD("actions", F_ACTIONS, OFF(interpreters.actions)), .mask = ACTIONS_GLOBAL },
	FIELD_END,
};

static void interpreters_clear(struct config *c)
{
	kvlist_free(&c->interpreters.env);
	actions_free(&c->interpreters.actions);
	for (size_t i = 0; i < c->interpreters.n_types; i++)
		interp_type_free(&c->interpreters.types[i]);
	free(c->interpreters.types);
	c->interpreters.types = NULL;
	c->interpreters.n_types = 0;
}

/* The interpreters group replaces the built-in one as a whole. */
static void parse_interpreters(struct schema_ctx *x, const config_setting_t *s, void *base)
{
	struct config *c = base;

	if (!config_setting_is_group(s)) {
		schema_diag(x, s, "expected a group, got %s", schema_type_name(config_setting_type(s)));
		return;
	}
	interpreters_clear(c);
	for (int i = 0; i < config_setting_length(s); i++) {
		const config_setting_t *e = config_setting_get_elem(s, i);
		const char *key = config_setting_name(e);
		if (!strcmp(key, "env"))
			schema_field(x, e, &interp_global_fields[0], c);
		else if (!strcmp(key, "actions"))
			schema_field(x, e, &interp_global_fields[1], c);
		else
			parse_type(x, e, c);
	}
}

static void show_version_body(const struct cfg_interp_version *v, struct buf *out, int indent)
{
	if (v->packages.n) {
		show_indent(out, indent);
		buf_adds(out, "packages = ");
		show_strv(out, &v->packages);
		buf_adds(out, ";\n");
	}
	if (v->env.n) {
		show_indent(out, indent);
		buf_adds(out, "env = ");
		show_env(out, &v->env, indent);
		buf_adds(out, ";\n");
	}
	for (int st = 0; st < STEP__COUNT; st++) {
		if (!v->actions.a[st].defined)
			continue;
		show_indent(out, indent);
		buf_adds(out, "actions = ");
		show_actions(out, &v->actions, indent);
		buf_adds(out, ";\n");
		break;
	}
}

static void show_interpreters(const void *base, struct buf *out, int indent)
{
	const struct config *c = base;

	show_indent(out, indent);
	buf_adds(out, "interpreters = {\n");
	show_indent(out, indent + 1);
	buf_adds(out, "env = ");
	show_env(out, &c->interpreters.env, indent + 1);
	buf_adds(out, ";\n");
	show_indent(out, indent + 1);
	buf_adds(out, "actions = ");
	show_actions(out, &c->interpreters.actions, indent + 1);
	buf_adds(out, ";\n");
	for (size_t i = 0; i < c->interpreters.n_types; i++) {
		const struct cfg_interp_type *t = &c->interpreters.types[i];
		show_indent(out, indent + 1);
		buf_addf(out, "%s = {\n", t->name);
		show_indent(out, indent + 2);
		buf_adds(out, "any = {\n");
		show_version_body(&t->any, out, indent + 3);
		show_indent(out, indent + 2);
		buf_adds(out, "};\n");
		show_indent(out, indent + 2);
		buf_adds(out, "versions = (");
		for (size_t j = 0; j < t->n_versions; j++) {
			buf_adds(out, j ? ",\n" : "\n");
			show_indent(out, indent + 3);
			buf_adds(out, "{\n");
			show_indent(out, indent + 4);
			buf_adds(out, "version = ");
			show_string(out, t->versions[j].version);
			buf_adds(out, ";\n");
			show_version_body(&t->versions[j], out, indent + 4);
			show_indent(out, indent + 3);
			buf_adds(out, "}");
		}
		if (t->n_versions) {
			buf_adds(out, "\n");
			show_indent(out, indent + 2);
		}
		buf_adds(out, ");\n");
		show_indent(out, indent + 1);
		buf_adds(out, "};\n");
	}
	show_indent(out, indent);
	buf_adds(out, "};\n");
}

/* ------------------------------------------------------------------ schema */

static const char pkg_what[] = "a valid Debian package name ([a-z0-9][a-z0-9+.-]+)";
static const char abs_what[] = "an absolute path";

static const struct field paths_fields[] = {
	{ FIELD("workdir", F_STR, OFF(paths.workdir)), .ok = ok_abs_path, .what = abs_what },
	{ FIELD("cache", F_STR, OFF(paths.cache)), .ok = ok_abs_path, .what = abs_what },
	{ FIELD("state", F_STR, OFF(paths.state)), .ok = ok_abs_path, .what = abs_what },
	FIELD_END,
};

static const struct field bootstrap_fields[] = {
	{ FIELD("tool", F_STR, OFF(bootstrap.tool)), .ok = ok_tool,
	  .what = "a bootstrap tool (auto, mmdebstrap or debootstrap)" },
	{ FIELD("distribution", F_STR, OFF(bootstrap.distribution)), .ok = ok_word,
	  .what = "a distribution name (bookworm)" },
	{ FIELD("mirror", F_STR, OFF(bootstrap.mirror)), .ok = ok_mirror, .url = true,
	  .what = "an http://, https:// or file:/// URL", .unset = "the host's apt mirror" },
	{ FIELD("variant", F_STR, OFF(bootstrap.variant)), .ok = ok_word,
	  .what = "a variant name (minbase)" },
	{ FIELD("arch", F_STR, OFF(bootstrap.arch)), .ok = ok_word,
	  .what = "an architecture name (amd64)", .unset = "the host's architecture" },
	{ FIELD("components", F_STRV, OFF(bootstrap.components)), .ok = ok_word,
	  .what = "a component name (main)" },
	{ FIELD("packages", F_STRV, OFF(bootstrap.packages)), .ok = ok_package, .what = pkg_what },
	{ FIELD("max_age_days", F_INT, OFF(bootstrap.max_age_days)), RANGE(0, 36500) },
	{ FIELD("timeout", F_INT, OFF(bootstrap.timeout)), RANGE(0, INT_MAX) },
	FIELD_END,
};

static const struct field commands_fields[] = {
	{ FIELD("timeout", F_INT, OFF(commands.timeout)), RANGE(0, INT_MAX) },
	{ FIELD("install", F_STRV, OFF(commands.install)), .ok = ok_nonblank, .check = check_install },
	{ FIELD("update", F_STRV, OFF(commands.update)), .ok = ok_nonblank, .check = check_argv },
	{ FIELD("unmark", F_STRV, OFF(commands.unmark)), .ok = ok_nonblank, .check = check_unmark },
	{ FIELD("autoremove", F_STRV, OFF(commands.autoremove)), .ok = ok_nonblank,
	  .check = check_autoremove },
	{ FIELD("ca_bundle", F_STR, OFF(commands.ca_bundle)), .ok = ok_abs_path_or_empty,
	  .what = "an absolute path, or \"\" for none" },
	FIELD_END,
};

#define SOFF(field) OFF(storage.field)
static const struct field storage_fields[] = {
	{ FIELD("handler", F_STR, SOFF(handler)), .ok = ok_handler,
	  .what = "a storage handler (local, s3 or http)" },
	{ FIELD("path", F_STR, SOFF(path)), .ok = ok_abs_path, .what = abs_what },
	{ FIELD("endpoint", F_STR, SOFF(endpoint)), .ok = ok_http_url, .url = true,
	  .what = "an http:// or https:// URL" },
	{ FIELD("region", F_STR, SOFF(region)), .ok = ok_word, .what = "a region name (us-east-1)" },
	{ FIELD("bucket", F_STR, SOFF(bucket)), .ok = ok_bucket,
	  .what = "a bucket name ([a-z0-9.-], 3 to 63 characters)" },
	{ FIELD("prefix", F_STR, SOFF(prefix)), .ok = ok_prefix,
	  .what = "a relative key prefix without '.' or '..' components" },
	{ FIELD("path_style", F_BOOL, SOFF(path_style)) },
	{ FIELD("access_key", F_STR, SOFF(access_key)), .ok = ok_nonblank,
	  .unset = "$AWS_ACCESS_KEY_ID" },
	{ FIELD("secret_key", F_STR, SOFF(secret_key)), .ok = ok_nonblank, .secret = true,
	  .unset = "secret_key_file or $AWS_SECRET_ACCESS_KEY" },
	{ FIELD("secret_key_file", F_STR, SOFF(secret_key_file)), .ok = ok_abs_path, .what = abs_what },
	{ FIELD("session_token", F_STR, SOFF(session_token)), .ok = ok_nonblank, .secret = true,
	  .unset = "$AWS_SESSION_TOKEN" },
	{ FIELD("multipart_threshold", F_SIZE, SOFF(multipart_threshold)), RANGE(5 * MIB, 5 * 1024 * GIB) },
	{ FIELD("part_size", F_SIZE, SOFF(part_size)), RANGE(5 * MIB, 5 * GIB) },
	{ FIELD("parallel", F_INT, SOFF(parallel)), RANGE(1, 64) },
	{ FIELD("retries", F_INT, SOFF(retries)), RANGE(0, 20) },
	{ FIELD("unsigned_payload", F_BOOL, SOFF(unsigned_payload)) },
	{ FIELD("timeout", F_INT, SOFF(timeout)), RANGE(0, INT_MAX) },
	{ FIELD("connect_timeout", F_INT, SOFF(connect_timeout)), RANGE(1, INT_MAX) },
	{ FIELD("url", F_STR, SOFF(url)), .ok = ok_http_url, .url = true,
	  .what = "an http:// or https:// URL" },
	{ FIELD("redirect_hosts", F_STRV, SOFF(redirect_hosts)), .ok = ok_host,
	  .what = "a host name (cdn.example.com)" },
	FIELD_END,
};

static const struct field queue_fields[] = {
	{ FIELD("url", F_STR, OFF(queue.url)), .ok = ok_queue_url, .url = true,
	  .what = "a queue URL (sqlite:///ABSOLUTE/PATH, postgresql://... or postgres://...)" },
	{ FIELD("lease_seconds", F_INT, OFF(queue.lease_seconds)), RANGE(1, INT_MAX) },
	FIELD_END,
};

static const struct field apps_fields[] = {
	{ FIELD("uid", F_INT64, OFF(apps.uid)), RANGE(APPS_ID_MIN, APPS_ID_MAX) },
	{ FIELD("gid", F_INT64, OFF(apps.gid)), RANGE(APPS_ID_MIN, APPS_ID_MAX) },
	{ FIELD("user", F_STR, OFF(apps.user)), .ok = ok_user,
	  .what = "a user name ([a-z_][a-z0-9_-]*)" },
	{ FIELD("home", F_STR, OFF(apps.home)), .ok = ok_abs_path, .what = abs_what },
	{ FIELD("keep_packages", F_INT, OFF(apps.keep_packages)), RANGE(1, 100000) },
	{ FIELD("layer_grace", F_INT64, OFF(apps.layer_grace)), RANGE(0, INT64_MAX) },
	FIELD_END,
};

static const struct field limits_fields[] = {
	{ FIELD("nofile", F_INT64, OFF(limits.nofile)), RANGE(16, 1 << 24) },
	{ FIELD("nproc", F_INT64, OFF(limits.nproc)), RANGE(1, 1 << 22) },
	{ FIELD("pids", F_INT64, OFF(limits.pids)), RANGE(0, 1 << 22) },
	{ FIELD("memory", F_SIZE, OFF(limits.memory)), RANGE(0, INT64_MAX) },
	{ FIELD("cpu_weight", F_INT, OFF(limits.cpu_weight)), RANGE(1, 10000) },
	{ FIELD("address_space", F_SIZE, OFF(limits.address_space)), RANGE(0, INT64_MAX) },
	{ FIELD("fsize", F_SIZE, OFF(limits.fsize)), RANGE(0, INT64_MAX) },
	{ FIELD("unpacked_cache", F_SIZE, OFF(limits.unpacked_cache)), RANGE(0, INT64_MAX) },
	{ FIELD("log_bytes", F_SIZE, OFF(limits.log_bytes)), RANGE(64 * 1024, INT64_MAX) },
	FIELD_END,
};

static const struct field git_fields[] = {
	{ FIELD("local_paths", F_STRV, OFF(git.local_paths)), .ok = ok_abs_path, .what = abs_what },
	FIELD_END,
};

/* The first id of a range of 65536 that is no user's and not root's. */
#define ID_BASE_RANGE RANGE(0, (int64_t)UINT32_MAX - 65536)

static bool ok_syscall_name(const char *s)
{
	if (!*s || strlen(s) > 64)
		return false;
	for (const char *p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
			return false;
	return true;
}

/* A base must leave the ids of users (below 65536) alone. */
static void check_sandbox(struct schema_ctx *x, const config_setting_t *s, void *base)
{
	struct config *c = base;
	if (c->sandbox.uid_base && c->sandbox.uid_base < 65536)
		schema_diag(x, s, "uid_base must be 0 (from /etc/subuid) or at least 65536, got %lld",
			    (long long)c->sandbox.uid_base);
	if (c->sandbox.gid_base && c->sandbox.gid_base < 65536)
		schema_diag(x, s, "gid_base must be 0 (from /etc/subgid) or at least 65536, got %lld",
			    (long long)c->sandbox.gid_base);
}

static const struct field sandbox_fields[] = {
	{ FIELD("user", F_STR, OFF(sandbox.user)), .ok = ok_user,
	  .what = "a user name ([a-z_][a-z0-9_-]*)" },
	{ FIELD("uid_base", F_INT64, OFF(sandbox.uid_base)), ID_BASE_RANGE },
	{ FIELD("gid_base", F_INT64, OFF(sandbox.gid_base)), ID_BASE_RANGE },
	{ FIELD("seccomp_deny", F_STRV, OFF(sandbox.seccomp_deny)), .ok = ok_syscall_name,
	  .what = "a system call name ([a-z0-9_]+)" },
	{ FIELD("pasta", F_STR, OFF(sandbox.pasta)), .ok = ok_abs_path, .what = abs_what },
	FIELD_END,
};

/* pack.squash_ratio: a number (0.5, or 1) in [0, 1000] */
static void parse_squash_ratio(struct schema_ctx *x, const config_setting_t *s, void *base)
{
	struct config *c = base;
	int t = config_setting_type(s);
	double v;

	if (t == CONFIG_TYPE_FLOAT)
		v = config_setting_get_float(s);
	else if (t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64)
		v = (double)config_setting_get_int64(s);
	else {
		schema_diag(x, s, "squash_ratio must be a number (0.5, 1)");
		return;
	}
	if (!(v >= 0 && v <= 1000)) {
		schema_diag(x, s, "squash_ratio must be between 0 and 1000");
		return;
	}
	c->pack.squash_ratio = v;
}

static void show_squash_ratio(const void *base, struct buf *out, int indent)
{
	const struct config *c = base;

	show_indent(out, indent);
	buf_addf(out, "squash_ratio = %g%s;\n", c->pack.squash_ratio,
		 c->pack.squash_ratio == (double)(int64_t)c->pack.squash_ratio ? ".0" : "");
}

static const struct field pack_fields[] = {
	{ FIELD("level", F_INT, OFF(pack.level)), RANGE(1, 19) },
	{ FIELD("threads", F_INT, OFF(pack.threads)), RANGE(0, 256) },
	{ FIELD("max_layers", F_INT, OFF(pack.max_layers)), RANGE(1, 32) },
	{ FIELD("squash_ratio", F_CUSTOM, 0), .parse = parse_squash_ratio,
	  .show = show_squash_ratio },
	FIELD_END,
};

static const struct field deploy_fields[] = {
	{ FIELD("root", F_STR, OFF(deploy.root)), .ok = ok_abs_path, .what = abs_what },
	{ FIELD("hooks_dir", F_STR, OFF(deploy.hooks_dir)), .ok = ok_abs_path, .what = abs_what },
	{ FIELD("hook_timeout", F_INT, OFF(deploy.hook_timeout)), RANGE(0, INT_MAX) },
	{ FIELD("hooks_as_root", F_BOOL, OFF(deploy.hooks_as_root)) },
	{ FIELD("keep", F_INT, OFF(deploy.keep)), RANGE(1, 100000) },
	{ FIELD("allow_privileged_files", F_BOOL, OFF(deploy.allow_privileged_files)) },
	{ FIELD("materialize", F_STR, OFF(deploy.materialize)), .ok = ok_materialize,
	  .what = "\"auto\", \"overlay\" or \"extract\"" },
	{ FIELD("allow_xattrs", F_STRV, OFF(deploy.allow_xattrs)), .ok = ok_xattr,
	  .what = "an xattr name (security.selinux) or a prefix ending in '*'" },
	{ FIELD("schedule", F_STR, OFF(deploy.schedule)), .ok = ok_schedule,
	  .what = "a cron schedule of five fields (\"*/5 * * * *\")" },
	{ FIELD("interval", F_INT, OFF(deploy.interval)), RANGE(0, 86400) },
	{ FIELD("jitter", F_INT, OFF(deploy.jitter)), RANGE(0, 3600) },
	{ FIELD("host_name", F_STR, OFF(deploy.host_name)), .ok = app_name_ok,
	  .what = "a host name that can name a storage key ([a-z0-9][a-z0-9._-]*, at most 63)" },
	{ FIELD("report", F_BOOL, OFF(deploy.report)) },
	{ FIELD("loopback_ports", F_STRV, OFF(deploy.loopback_ports)), .ok = ok_port,
	  .what = "a TCP port (1..65535)" },
	FIELD_END,
};

/* The signing group: keys, what is trusted (upaas-package(5)). */
static void check_signing(struct schema_ctx *x, const config_setting_t *s, void *base)
{
	struct config *c = base;
	for (size_t i = 0; c->signing.key && i < c->signing.trusted.n; i++)
		if (!strcmp(c->signing.key, c->signing.trusted.v[i]))
			schema_diag(x, s, "'%s' is the private key: trust its public key file",
				    c->signing.key);
}

static const struct field signing_fields[] = {
	{ FIELD("key", F_STR, OFF(signing.key)), .ok = ok_abs_path, .what = abs_what,
	  .unset = "builds are not signed" },
	{ FIELD("trusted", F_STRV, OFF(signing.trusted)), .ok = ok_abs_path, .what = abs_what },
	{ FIELD("allow_unsigned", F_BOOL, OFF(signing.allow_unsigned)) },
	FIELD_END,
};

static void check_serve(struct schema_ctx *x, const config_setting_t *s, void *base)
{
	struct config *c = base;
	if (!c->serve.tls_cert != !c->serve.tls_key)
		schema_diag(x, s, "set both tls_cert and tls_key, or neither");
}

static const struct field serve_limits_fields[] = {
	{ FIELD("max_body", F_SIZE, OFF(serve.limits.max_body)), RANGE(1024, 1024 * MIB) },
	{ FIELD("connections", F_INT, OFF(serve.limits.connections)), RANGE(4, 65536) },
	{ FIELD("rate", F_INT, OFF(serve.limits.rate)), RANGE(1, 1000000) },
	{ FIELD("burst", F_INT, OFF(serve.limits.burst)), RANGE(1, 1000000) },
	{ FIELD("timeout", F_INT, OFF(serve.limits.timeout)), RANGE(1, 3600) },
	FIELD_END,
};

static const struct field serve_notify_fields[] = {
	{ FIELD("urls", F_STRV, OFF(serve.notify.urls)), .ok = ok_http_url, .url = true,
	  .what = "an http:// or https:// URL" },
	{ FIELD("secret", F_STR, OFF(serve.notify.secret)), .ok = ok_nonblank, .secret = true,
	  .unset = "events are not signed" },
	{ FIELD("timeout", F_INT, OFF(serve.notify.timeout)), RANGE(1, 300) },
	{ FIELD("retries", F_INT, OFF(serve.notify.retries)), RANGE(0, 100) },
	FIELD_END,
};

static const struct field serve_fields[] = {
	{ FIELD("listen", F_STR, OFF(serve.listen)), .ok = ok_listen,
	  .what = "ADDRESS:PORT ([IPv6]:PORT, *:PORT for every address)" },
	{ FIELD("tls_cert", F_STR, OFF(serve.tls_cert)), .ok = ok_abs_path, .what = abs_what,
	  .unset = "plain HTTP" },
	{ FIELD("tls_key", F_STR, OFF(serve.tls_key)), .ok = ok_abs_path, .what = abs_what },
	{ FIELD("trusted_proxies", F_STRV, OFF(serve.trusted_proxies)), .ok = ok_cidr,
	  .what = "an IP address or CIDR (10.0.0.0/8)" },
	{ FIELD("anonymous_read", F_BOOL, OFF(serve.anonymous_read)) },
	{ FIELD("web_dir", F_STR, OFF(serve.web_dir)), .ok = ok_abs_path, .what = abs_what },
	{ FIELD("limits", F_GROUP, 0), .sub = serve_limits_fields },
	{ FIELD("notify", F_GROUP, 0), .sub = serve_notify_fields },
	FIELD_END,
};

static const struct field admin_fields[] = {
	{ FIELD("paths", F_GROUP, 0), .sub = paths_fields },
	{ FIELD("bootstrap", F_GROUP, 0), .sub = bootstrap_fields },
	{ FIELD("commands", F_GROUP, 0), .sub = commands_fields },
	{ FIELD("storage", F_GROUP, 0), .sub = storage_fields, .check = check_storage },
	{ FIELD("signing", F_GROUP, 0), .sub = signing_fields, .check = check_signing },
	{ FIELD("queue", F_GROUP, 0), .sub = queue_fields },
	{ FIELD("apps", F_GROUP, 0), .sub = apps_fields },
	{ FIELD("limits", F_GROUP, 0), .sub = limits_fields },
	{ FIELD("git", F_GROUP, 0), .sub = git_fields },
	{ FIELD("sandbox", F_GROUP, 0), .sub = sandbox_fields, .check = check_sandbox },
	{ FIELD("pack", F_GROUP, 0), .sub = pack_fields },
	{ FIELD("deploy", F_GROUP, 0), .sub = deploy_fields },
	{ FIELD("serve", F_GROUP, 0), .sub = serve_fields, .check = check_serve },
	{ FIELD("interpreters", F_CUSTOM, 0), .parse = parse_interpreters, .show = show_interpreters },
	FIELD_END,
};

/* ---------------------------------------------------------------- defaults */

/* Debian's own interpreters, so that upaas builds python and nodejs apps
 * with no admin config at all. Parsed through the same schema. */
static const char builtin_interpreters[] =
	"interpreters = {\n"
	"  python = { any = { packages = [ \"python3\", \"python3-venv\", \"python3-pip\" ]; }; };\n"
	"  nodejs = { any = { packages = [ \"nodejs\", \"npm\" ]; }; };\n"
	"};\n";

static void strv_set(struct strv *v, const char *const *items)
{
	strv_free(v);
	for (; *items; items++)
		strv_push(v, *items);
}

static void derived_defaults(struct config *c, bool storage_path, bool queue_url)
{
	if (!storage_path) {
		free(c->storage.path);
		c->storage.path = path_join(c->paths.state, "storage");
	}
	if (!queue_url) {
		free(c->queue.url);
		_cleanup_free_ char *db = path_join(c->paths.state, "upaas.db");
		c->queue.url = xasprintf("sqlite://%s", db);
	}
}

void config_defaults(struct config *c)
{
	*c = (struct config){ 0 };
	c->paths.workdir = xstrdup("/var/lib/upaas/work");
	c->paths.cache = xstrdup("/var/cache/upaas");
	c->paths.state = xstrdup("/var/lib/upaas");

	c->bootstrap.tool = xstrdup("auto");
	c->bootstrap.distribution = xstrdup("bookworm");
	c->bootstrap.variant = xstrdup("minbase");
	strv_set(&c->bootstrap.components, (const char *const[]){ "main", NULL });
	strv_set(&c->bootstrap.packages, (const char *const[]){ "ca-certificates", NULL });
	c->bootstrap.max_age_days = 30;
	c->bootstrap.timeout = 1800;

	c->commands.timeout = 3600;
	strv_set(&c->commands.install, (const char *const[]){
		"apt-get", "install", "-y", "--no-install-recommends", "{packages}", NULL });
	strv_set(&c->commands.update, (const char *const[]){ "apt-get", "update", NULL });
	strv_set(&c->commands.unmark, (const char *const[]){
		"apt-mark", "auto", "{packages}", NULL });
	strv_set(&c->commands.autoremove, (const char *const[]){
		"apt-get", "autoremove", "--purge", "-y", NULL });
	c->commands.ca_bundle = xstrdup("/etc/ssl/certs/ca-certificates.crt");

	c->storage.handler = xstrdup("local");
	c->storage.endpoint = xstrdup("https://s3.amazonaws.com");
	c->storage.region = xstrdup("us-east-1");
	c->storage.prefix = xstrdup("");
	c->storage.multipart_threshold = 16 * MIB;
	c->storage.part_size = 16 * MIB;
	c->storage.parallel = 4;
	c->storage.retries = 4;
	c->storage.timeout = 60;
	c->storage.connect_timeout = 10;

	c->queue.lease_seconds = 60;

	c->apps.uid = 1000;
	c->apps.gid = 1000;
	c->apps.user = xstrdup("app");
	c->apps.home = xstrdup("/home/app");
	c->apps.keep_packages = 5;
	c->apps.layer_grace = 3600;

	c->limits.nofile = 65536;
	c->limits.nproc = 4096;
	c->limits.pids = 4096;
	c->limits.memory = 4 * GIB;
	c->limits.cpu_weight = 100;

	c->sandbox.user = xstrdup("upaas");
	c->sandbox.pasta = xstrdup("/usr/bin/pasta");
	c->limits.unpacked_cache = 8 * GIB;
	c->limits.log_bytes = 16 * MIB;

	c->pack.level = 3;
	c->pack.max_layers = 8;
	c->pack.squash_ratio = 0.5;

	c->deploy.root = xstrdup("/srv/upaas");
	c->deploy.hooks_dir = xstrdup("/etc/upaas/hooks");
	c->deploy.hook_timeout = 300;
	c->deploy.keep = 5;
	c->deploy.materialize = xstrdup("auto");
	c->deploy.schedule = xstrdup("* * * * *");
	c->deploy.jitter = 15;
	c->deploy.report = true;

	c->serve.listen = xstrdup("127.0.0.1:7373");
	c->serve.web_dir = xstrdup(UPAAS_WEB_DIR);
	c->serve.limits.max_body = MIB;
	c->serve.limits.connections = 256;
	c->serve.limits.rate = 50;
	c->serve.limits.burst = 200;
	c->serve.limits.timeout = 30;
	c->serve.notify.timeout = 10;
	c->serve.notify.retries = 8;

	derived_defaults(c, false, false);

	config_t cf;
	struct diags d = DIAGS_INIT;
	struct schema_ctx x = { .file = "(built-in)", .d = &d };
	config_init(&cf);
	if (config_read_string(&cf, builtin_interpreters))
		schema_group(&x, config_root_setting(&cf), admin_fields, c);
	config_destroy(&cf);
	/* the built-in text is fixed: a problem here is a bug */
	if (d.n)
		log_error("built-in interpreters: %s", d.v[0].msg);
	diags_free(&d);
}

/* ------------------------------------------------------------------ load */

int config_load(struct config *c, const char *path, struct diags *d)
{
	size_t before = d->n;
	config_t cf;

	config_defaults(c);
	if (!path) {
		const char *env = getenv("UPAAS_CONFIG");
		if (env && *env)
			path = env;
		else if (access(UPAAS_DEFAULT_CONFIG, F_OK) == 0)
			path = UPAAS_DEFAULT_CONFIG;
		else
			return 0;
	}
	c->file = xstrdup(path);

	/* open it ourselves: libconfig says only "file I/O error" */
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	if (!f) {
		diags_add(d, path, 0, "cannot read: %s", strerror(errno));
		return -EINVAL;
	}

	config_init(&cf);
	/* relative @include paths are relative to the config's directory */
	_cleanup_free_ char *dir_copy = xstrdup(path);
	config_set_include_dir(&cf, dirname(dir_copy));
	if (!config_read(&cf, f)) {
		schema_syntax_error(&cf, path, d);
		config_destroy(&cf);
		return -EINVAL;
	}

	struct schema_ctx x = { .file = path, .d = d };
	const config_setting_t *root = config_root_setting(&cf);
	schema_group(&x, root, admin_fields, c);
	derived_defaults(c, config_lookup(&cf, "storage.path") != NULL,
			 config_lookup(&cf, "queue.url") != NULL);
	config_destroy(&cf);
	return d->n > before ? -EINVAL : 0;
}

static void free_secret(char **p)
{
	if (*p)
		explicit_bzero(*p, strlen(*p));
	free(*p);
	*p = NULL;
}

void config_free(struct config *c)
{
	if (!c)
		return;
	free(c->file);
	free(c->paths.workdir);
	free(c->paths.cache);
	free(c->paths.state);
	free(c->bootstrap.tool);
	free(c->bootstrap.distribution);
	free(c->bootstrap.mirror);
	free(c->bootstrap.variant);
	free(c->bootstrap.arch);
	strv_free(&c->bootstrap.components);
	strv_free(&c->bootstrap.packages);
	strv_free(&c->commands.install);
	strv_free(&c->commands.update);
	strv_free(&c->commands.unmark);
	strv_free(&c->commands.autoremove);
	strv_free(&c->git.local_paths);
	free(c->commands.ca_bundle);
	struct cfg_storage *s = &c->storage;
	free(s->handler);
	free(s->path);
	free(s->endpoint);
	free(s->region);
	free(s->bucket);
	free(s->prefix);
	free(s->access_key);
	free_secret(&s->secret_key);
	free(s->secret_key_file);
	free_secret(&s->session_token);
	free(s->url);
	strv_free(&s->redirect_hosts);
	free(c->signing.key);
	strv_free(&c->signing.trusted);
	free(c->queue.url);
	free(c->apps.user);
	free(c->apps.home);
	free(c->sandbox.user);
	strv_free(&c->sandbox.seccomp_deny);
	free(c->sandbox.pasta);
	free(c->deploy.root);
	free(c->deploy.hooks_dir);
	free(c->deploy.schedule);
	free(c->deploy.host_name);
	free(c->deploy.materialize);
	strv_free(&c->deploy.loopback_ports);
	free(c->serve.listen);
	free(c->serve.tls_cert);
	free(c->serve.tls_key);
	strv_free(&c->serve.trusted_proxies);
	free(c->serve.web_dir);
	strv_free(&c->serve.notify.urls);
	free_secret(&c->serve.notify.secret);
	strv_free(&c->deploy.allow_xattrs);
	interpreters_clear(c);
	*c = (struct config){ 0 };
}

void config_show(const struct config *c, struct buf *out)
{
	buf_addf(out, "# upaas effective configuration (%s)\n",
		 c->file ? c->file : "built-in defaults, no config file");
	schema_show(admin_fields, c, out, 0);
}

/* ----------------------------------------------------------------- secrets */

static void secret_from_env(char **dst, const char *name)
{
	const char *v = getenv(name);
	if (!*dst && v && *v)
		*dst = xstrdup(v);
}

int config_storage_secrets(struct cfg_storage *s, struct err *e)
{
	if (!s->secret_key && s->secret_key_file) {
		_cleanup_buf_ struct buf b = BUF_INIT;
		int r = buf_read_file(&b, s->secret_key_file, 4096);
		if (r < 0)
			return err_set(e, r, "cannot read secret key file '%s': %s",
				       s->secret_key_file, r == -E2BIG ? "too long" : strerror(-r));
		buf_rtrim(&b);
		size_t skip = strspn(b.p, " \t\r\n");
		if (!b.p[skip]) {
			explicit_bzero(b.p, b.len);
			return err_set(e, -EINVAL, "secret key file '%s' is empty", s->secret_key_file);
		}
		s->secret_key = xstrdup(b.p + skip);
		explicit_bzero(b.p, b.len);
	}
	secret_from_env(&s->access_key, "AWS_ACCESS_KEY_ID");
	secret_from_env(&s->secret_key, "AWS_SECRET_ACCESS_KEY");
	secret_from_env(&s->session_token, "AWS_SESSION_TOKEN");
	return 0;
}
