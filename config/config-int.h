/*
 * config/config-int.h - private to config/: the table-driven schema that
 * both the admin config and the app metadata are read (and shown) through.
 *
 * A schema is a NULL-terminated array of struct field. Each entry names a
 * libconfig setting, its type, where its value lives (an offset into the
 * struct being filled, the "base") and how it is validated. One walker
 * applies a table to a libconfig group; every problem becomes a diagnostic
 * "file:line: path: message" and the walk goes on, so the user sees all of
 * them at once.
 */
#ifndef UPAAS_CONFIG_INT_H
#define UPAAS_CONFIG_INT_H

#ifndef UPAAS_CONFIG_INTERNAL
#error "config/config-int.h is private to the config module"
#endif

#include <libconfig.h>

#include "config/config.h"

/* State of one walk. */
struct schema_ctx {
	const char *file;           /* for messages when libconfig has none */
	struct diags *d;
	const struct config *cfg;   /* metadata: the admin config, may be NULL */
};

enum ftype {
	F_STR,       /* string; ok() validates it */
	F_BOOL,
	F_INT,       /* int in [min,max] */
	F_INT64,     /* int64_t in [min,max] */
	F_SIZE,      /* int64_t bytes: an integer or a string "16M", "8GiB" */
	F_STRV,      /* a string or a list of strings; ok() per element */
	F_ACTION,    /* a string or a list of strings -> struct action */
	F_ENV,       /* group NAME = "value" -> struct kvlist */
	F_ACTIONS,   /* group of actions -> struct actions; mask: allowed steps */
	F_GROUP,     /* nested group, sub = its table (same base) */
	F_CUSTOM,    /* parse() and show() do it all */
};

struct field {
	const char *name;
	enum ftype type;
	size_t off;                 /* into base */
	int64_t min, max;           /* F_INT, F_INT64, F_SIZE */
	bool (*ok)(const char *s);  /* F_STR, F_STRV elements */
	const char *what;           /* "an absolute path": "must be <what>" */
	const struct field *sub;    /* F_GROUP */
	unsigned mask;              /* F_ACTIONS: 1u << STEP_x allowed */
	bool secret;                /* config_show prints "********" */
	bool url;                   /* a URL: config_show and messages hide its userinfo */
	const char *unset;          /* config_show comment when NULL */
	/* F_CUSTOM: parses s into base */
	void (*parse)(struct schema_ctx *x, const config_setting_t *s, void *base);
	/* F_CUSTOM: prints "name = value;" lines at indent */
	void (*show)(const void *base, struct buf *out, int indent);
	/* optional, after a successful parse of this setting */
	void (*check)(struct schema_ctx *x, const config_setting_t *s, void *base);
};

/* Table entries are written with designated initializers only. */
#define FIELD(n, t, o) .name = (n), .type = (t), .off = (o)
#define RANGE(a, b) .min = (a), .max = (b)
#define FIELD_END { .name = NULL }

#define STEP_BIT(s) (1u << (s))
#define ACTIONS_GLOBAL (STEP_BIT(STEP_SYSTEM) | STEP_BIT(STEP_FINALIZE) | \
	STEP_BIT(STEP_BEFORE) | STEP_BIT(STEP_MAIN) | STEP_BIT(STEP_AFTER))
#define ACTIONS_INTERP (STEP_BIT(STEP_INTERPRETER) | STEP_BIT(STEP_BEFORE) | \
	STEP_BIT(STEP_MAIN) | STEP_BIT(STEP_AFTER))
#define ACTIONS_APP (STEP_BIT(STEP_BEFORE) | STEP_BIT(STEP_MAIN) | STEP_BIT(STEP_AFTER))

/* Applies table to every member of group g (unknown names are reported). */
void schema_group(struct schema_ctx *x, const config_setting_t *g,
		  const struct field *table, void *base);
/* Applies one field to setting s. */
void schema_field(struct schema_ctx *x, const config_setting_t *s,
		  const struct field *f, void *base);
/* Reports "path: message" at s's file and line. */
void schema_diag(struct schema_ctx *x, const config_setting_t *s,
		 const char *fmt, ...) _printf_(3, 4);
/* The dotted path of s: "interpreters.python.versions.[0].env". */
void schema_path(const config_setting_t *s, struct buf *out);
/* The user-facing name of a libconfig type: "an integer", "a group". */
const char *schema_type_name(int type);
/* Reads a syntax error of cf into d. */
void schema_syntax_error(const config_t *cf, const char *file, struct diags *d);

/* Writes the fields of table from base in libconfig syntax. */
void schema_show(const struct field *table, const void *base, struct buf *out, int indent);
void show_indent(struct buf *out, int indent);
void show_string(struct buf *out, const char *s);       /* quoted, escaped */
void show_strv(struct buf *out, const struct strv *v);  /* [ "a", "b" ] */
void show_env(struct buf *out, const struct kvlist *env, int indent);
void show_actions(struct buf *out, const struct actions *a, int indent);

/* Action names as written in the files (NULL for steps that have none). */
const char *action_key(enum step s);
int action_from_key(const char *key);   /* enum step, or -1 */

/* Frees the contents of an interpreter type / version / actions. */
void interp_version_free(struct cfg_interp_version *v);
void interp_type_free(struct cfg_interp_type *t);
void actions_free(struct actions *a);
void action_free(struct action *a);
void action_copy(struct action *dst, const struct action *src);

/* Validators shared by both schemas (config/names.c). */
bool ok_abs_path(const char *s);        /* /x, no "..", no "//" */
bool ok_rel_path(const char *s);        /* x/y, no "..", no "." */
bool ok_word(const char *s);            /* [A-Za-z0-9][A-Za-z0-9._+-]* */
bool ok_name(const char *s);            /* [a-z][a-z0-9_-]* */
bool ok_env_name(const char *s);        /* [A-Za-z_][A-Za-z0-9_]* */
bool ok_version(const char *s);         /* [0-9A-Za-z][0-9A-Za-z.+~_-]* */
bool ok_nonblank(const char *s);        /* not empty or only whitespace */
bool ok_package(const char *s);         /* package_name_ok */
/* Parses "123", "16M", "16MiB", "8G", "1T" (binary units); -EINVAL/-ERANGE. */
int parse_size(const char *s, int64_t *ret);

#endif
