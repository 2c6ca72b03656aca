/*
 * config/metadata.c - the app metadata (.upaas.cfg at the repository root).
 *
 * The text comes from the app's repository, so it is untrusted: its size is
 * capped, @include is refused (it would read files of the build host), and
 * every name that reaches a command line or a path is validated here; the
 * builder checks paths again when it writes them.
 */
#define UPAAS_CONFIG_INTERNAL
#include <errno.h>
#include <string.h>

#include "config/config-int.h"

#define METADATA_MAX ((size_t)1 << 20)
#define MOFF(field) offsetof(struct metadata, field)

static void check_type(struct schema_ctx *x, const config_setting_t *s, void *base)
{
	struct metadata *m = base;
	const struct config *c = x->cfg;

	if (!c)
		return;
	for (size_t i = 0; i < c->interpreters.n_types; i++)
		if (!strcmp(c->interpreters.types[i].name, m->interp_type))
			return;
	_cleanup_buf_ struct buf known = BUF_INIT;
	for (size_t i = 0; i < c->interpreters.n_types; i++)
		buf_addf(&known, "%s%s", i ? ", " : "", c->interpreters.types[i].name);
	schema_diag(x, s, "unknown interpreter type '%s' (configured: %s)", m->interp_type,
		    known.len ? known.p : "none");
}

/* files = ( { path = "/etc/app.conf"; content = "..."; }, ... ); */
struct file_entry {
	char *path;
	char *content;
};

static bool ok_file_path(const char *s)
{
	return ok_abs_path(s) && strcmp(s, "/");
}

static const struct field file_fields[] = {
	{ FIELD("path", F_STR, offsetof(struct file_entry, path)), .ok = ok_file_path,
	  .what = "an absolute path inside the chroot without '.' or '..' components" },
	{ FIELD("content", F_STR, offsetof(struct file_entry, content)) },
	FIELD_END,
};

static void parse_files(struct schema_ctx *x, const config_setting_t *s, void *base)
{
	struct metadata *m = base;

	if (config_setting_type(s) != CONFIG_TYPE_LIST) {
		schema_diag(x, s, "expected a list of groups ( { path = \"/etc/x\"; "
			    "content = \"...\"; }, ... ), got %s",
			    schema_type_name(config_setting_type(s)));
		return;
	}
	for (int i = 0; i < config_setting_length(s); i++) {
		const config_setting_t *e = config_setting_get_elem(s, i);
		if (!config_setting_is_group(e)) {
			schema_diag(x, e, "expected a group { path = \"/etc/x\"; content = \"...\"; }, got %s",
				    schema_type_name(config_setting_type(e)));
			continue;
		}
		struct file_entry fe = { 0 };
		schema_group(x, e, file_fields, &fe);
		if (!config_setting_get_member(e, "path"))
			schema_diag(x, e, "missing 'path'");
		if (!config_setting_get_member(e, "content"))
			schema_diag(x, e, "missing 'content'");
		if (fe.path && fe.content) {
			if (kvlist_get(&m->files, fe.path))
				schema_diag(x, e, "file '%s' is defined twice", fe.path);
			else
				kvlist_set(&m->files, fe.path, fe.content);
		}
		free(fe.path);
		free(fe.content);
	}
}

static const char rel_what[] = "a relative path inside the app without '.' or '..' components";

static const struct field interpreter_fields[] = {
	{ FIELD("type", F_STR, MOFF(interp_type)), .ok = ok_name,
	  .what = "an interpreter type name ([a-z][a-z0-9_-]*)", .check = check_type },
	{ FIELD("versions", F_STRV, MOFF(interp_versions)), .ok = ok_version,
	  .what = "a version ([0-9A-Za-z][0-9A-Za-z.+~_-]*)" },
	FIELD_END,
};

static const struct field os_fields[] = {
	{ FIELD("packages", F_STRV, MOFF(os_packages)), .ok = ok_package,
	  .what = "a valid Debian package name ([a-z0-9][a-z0-9+.-]+)" },
	FIELD_END,
};

static const struct field repository_fields[] = {
	{ FIELD("clone", F_ACTION, MOFF(repo_clone)) },
	{ FIELD("update", F_ACTION, MOFF(repo_update)) },
	FIELD_END,
};

static const struct field hooks_fields[] = {
	{ FIELD("pre", F_STRV, MOFF(deploy.hooks_pre)), .ok = ok_rel_path, .what = rel_what },
	{ FIELD("post", F_STRV, MOFF(deploy.hooks_post)), .ok = ok_rel_path, .what = rel_what },
	FIELD_END,
};

static const struct field deploy_fields[] = {
	{ FIELD("shared", F_STRV, MOFF(deploy.shared)), .ok = ok_rel_path, .what = rel_what },
	{ FIELD("hooks", F_GROUP, 0), .sub = hooks_fields },
	{ FIELD("keep", F_INT, MOFF(deploy.keep)), RANGE(0, METADATA_KEEP_MAX) },
	FIELD_END,
};

static const struct field git_fields[] = {
	{ FIELD("keep", F_BOOL, MOFF(keep_git)) },
	FIELD_END,
};

static const struct field metadata_fields[] = {
	{ FIELD("interpreter", F_GROUP, 0), .sub = interpreter_fields },
	{ FIELD("os", F_GROUP, 0), .sub = os_fields },
	{ FIELD("env", F_ENV, MOFF(env)) },
	{ FIELD("repository", F_GROUP, 0), .sub = repository_fields },
	{ FIELD("actions", F_ACTIONS, MOFF(actions)), .mask = ACTIONS_APP },
	{ FIELD("files", F_CUSTOM, 0), .parse = parse_files },
	{ FIELD("deploy", F_GROUP, 0), .sub = deploy_fields },
	{ FIELD("git", F_GROUP, 0), .sub = git_fields },
	FIELD_END,
};

/* libconfig would open any file of the build host named by @include; the
 * lexer only honours it at the start of a line. */
static bool find_include(const char *text, int *ret_line)
{
	int line = 1;
	for (const char *p = text; *p; line++) {
		p += strspn(p, " \t");
		if (!strncmp(p, "@include", 8)) {
			*ret_line = line;
			return true;
		}
		p = strchrnul(p, '\n');
		if (*p)
			p++;
	}
	return false;
}

int metadata_parse(struct metadata *m, const char *file, const char *text,
		   const struct config *c, struct diags *d)
{
	size_t before = d->n;
	int line;
	config_t cf;

	*m = (struct metadata){ .file = xstrdup(file) };
	if (strlen(text) > METADATA_MAX) {
		diags_add(d, file, 0, "%zu bytes: app metadata may be at most %zu bytes (1 MiB)",
			  strlen(text), METADATA_MAX);
		return -EINVAL;
	}
	if (find_include(text, &line)) {
		diags_add(d, file, line, "@include is not allowed in app metadata");
		return -EINVAL;
	}
	config_init(&cf);
	if (!config_read_string(&cf, text)) {
		schema_syntax_error(&cf, file, d);
		config_destroy(&cf);
		return -EINVAL;
	}
	struct schema_ctx x = { .file = file, .d = d, .cfg = c };
	schema_group(&x, config_root_setting(&cf), metadata_fields, m);
	if (!m->interp_type) {
		const config_setting_t *g = config_lookup(&cf, "interpreter");
		if (!g)
			diags_add(d, file, 0, "missing required group 'interpreter' "
				  "(interpreter = { type = \"python\"; };)");
		else if (!config_setting_get_member(g, "type"))
			schema_diag(&x, g, "missing required setting 'type'");
	}
	config_destroy(&cf);
	return d->n > before ? -EINVAL : 0;
}

int metadata_load(struct metadata *m, const char *path, const struct config *c,
		  struct diags *d)
{
	_cleanup_buf_ struct buf b = BUF_INIT;
	int r = buf_read_file(&b, path, METADATA_MAX);

	if (r < 0) {
		*m = (struct metadata){ .file = xstrdup(path) };
		if (r == -E2BIG)
			diags_add(d, path, 0, "larger than app metadata may be: at most %zu "
				  "bytes (1 MiB)", METADATA_MAX);
		else
			diags_add(d, path, 0, "cannot read: %s", strerror(-r));
		return -EINVAL;
	}
	if (memchr(b.p, '\0', b.len)) {
		*m = (struct metadata){ .file = xstrdup(path) };
		diags_add(d, path, 0, "contains a NUL byte");
		return -EINVAL;
	}
	return metadata_parse(m, path, b.p, c, d);
}

void metadata_free(struct metadata *m)
{
	if (!m)
		return;
	free(m->file);
	free(m->interp_type);
	strv_free(&m->interp_versions);
	strv_free(&m->os_packages);
	kvlist_free(&m->env);
	action_free(&m->repo_clone);
	action_free(&m->repo_update);
	actions_free(&m->actions);
	kvlist_free(&m->files);
	strv_free(&m->deploy.shared);
	strv_free(&m->deploy.hooks_pre);
	strv_free(&m->deploy.hooks_post);
	*m = (struct metadata){ 0 };
}
