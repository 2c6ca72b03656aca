/*
 * config/config.h - the admin config (/etc/upaas/upaas.cfg), the app
 * metadata (.upaas.cfg) and the rules that merge them into a build plan.
 *
 * Both files are libconfig. Loading fills typed structs in which every field
 * has a default, so upaas runs with no admin config at all. Validation
 * reports every problem as "file:line: message" into a list of diagnostics.
 */
#ifndef UPAAS_CONFIG_H
#define UPAAS_CONFIG_H

#include "common/common.h"

#define UPAAS_DEFAULT_CONFIG UPAAS_CONFIG_FILE

/* The build steps, in the order they run. */
enum step {
	STEP_SYSTEM,
	STEP_PACKAGES,
	STEP_INTERPRETER,
	STEP_CHECKOUT,
	STEP_FILES,
	STEP_BEFORE,
	STEP_MAIN,
	STEP_AFTER,
	STEP_FINALIZE,
	STEP__COUNT
};
const char *step_name(enum step s);   /* "system", "os packages", ... */

/* An action: shell commands written by the admin or the app, each run with
 * /bin/sh -ec inside the sandbox. defined=false: not set at this level. */
struct action {
	bool defined;
	struct strv commands;
};

/* The actions a level of the config may define (system/finalize/interpreter
 * only at admin level). Indexed by enum step; checkout/packages/files unused. */
struct actions {
	struct action a[STEP__COUNT];
};

struct cfg_interp_version {
	char *version;              /* "3.11", or "any" for the type's any block */
	struct strv packages;
	struct kvlist env;
	struct actions actions;
	int line;
};

struct cfg_interp_type {
	char *name;                 /* "python", "nodejs" */
	struct cfg_interp_version any;
	struct cfg_interp_version *versions;
	size_t n_versions;
	int line;
};

struct cfg_storage {
	char *handler;              /* "local" (default), "s3", "http" */
	/* local */
	char *path;                 /* default: <paths.state>/storage */
	/* s3 */
	char *endpoint;             /* "https://s3.amazonaws.com", "http://127.0.0.1:7480" */
	char *region;               /* default "us-east-1" */
	char *bucket;
	char *prefix;               /* prepended to every key, "" by default */
	bool path_style;
	char *access_key;           /* or AWS_ACCESS_KEY_ID */
	char *secret_key;           /* secret; or secret_key_file, AWS_SECRET_ACCESS_KEY */
	char *secret_key_file;
	char *session_token;        /* secret; or AWS_SESSION_TOKEN */
	int64_t multipart_threshold;/* bytes, default 16 MiB */
	int64_t part_size;          /* bytes, >= 5 MiB, default 16 MiB */
	int parallel;               /* parts in flight, default 4 */
	int retries;                /* per request, default 4 */
	bool unsigned_payload;
	/* a request that moves no byte for timeout seconds fails (and is
	 * retried); the whole transfer has no deadline; 0: no stall limit */
	int timeout;                /* seconds, default 60 */
	int connect_timeout;        /* seconds, default 10 */
	/* http */
	char *url;                  /* its userinfo (user:password@) is a secret */
	struct strv redirect_hosts; /* hosts besides url's own a redirect may go to */
};

struct config {
	char *file;                 /* the file loaded, NULL when none */
	struct {
		char *workdir;          /* /var/lib/upaas/work */
		char *cache;            /* /var/cache/upaas */
		char *state;            /* /var/lib/upaas */
	} paths;
	struct {
		char *tool;             /* "auto", "mmdebstrap", "debootstrap" */
		char *distribution;     /* "bookworm" */
		char *mirror;           /* NULL: the host's own apt mirror */
		char *variant;          /* "minbase" */
		char *arch;             /* NULL: the host's */
		struct strv components; /* ["main"] */
		struct strv packages;   /* extra packages: ["ca-certificates", ...] */
		int max_age_days;       /* 30 */
		int timeout;            /* seconds, 1800 */
	} bootstrap;
	struct {
		int timeout;            /* seconds per step, 3600 */
		/* argv template of the package install; the element "{packages}"
		 * expands to one argv element per package name */
		struct strv install;
		struct strv update;     /* argv run before install: apt-get update */
		/* argv template that marks packages no longer asked for as
		 * installed automatically ("{packages}" as in install), so
		 * that autoremove purges them unless another package needs
		 * them; empty: they stay */
		struct strv unmark;
		struct strv autoremove; /* argv after unmark: apt-get autoremove --purge */
		/* the host's CA bundle, bound read-only over the same path in
		 * the chroot for steps with network (a proxy's CA); "" = none */
		char *ca_bundle;
	} commands;
	struct cfg_storage storage;
	struct {
		char *url;              /* "sqlite://<state>/upaas.db" */
		int lease_seconds;      /* 60 */
	} queue;
	struct {
		int64_t uid;            /* 1000 */
		int64_t gid;            /* 1000 */
		char *user;             /* "app" */
		char *home;             /* "/home/app" */
		int keep_packages;      /* 5 */
		int64_t layer_grace;    /* seconds an unlisted layer is kept, 3600 */
	} apps;
	struct {
		int64_t nofile;         /* RLIMIT_NOFILE, 65536 */
		int64_t nproc;          /* RLIMIT_NPROC for app steps, 4096 */
		int64_t pids;           /* cgroup pids.max of a sandbox run, 4096; 0 = none */
		int64_t memory;         /* cgroup memory limit of a run, 4 GiB; 0 = none */
		int cpu_weight;         /* cgroup CPU weight of a run, 1..10000, 100 */
		int64_t address_space;  /* RLIMIT_AS bytes, 0 = unlimited */
		int64_t fsize;          /* RLIMIT_FSIZE bytes, 0 = unlimited */
		int64_t unpacked_cache; /* bytes kept in the unpacked-base cache, 8 GiB */
		int64_t log_bytes;      /* a stored build log at most, 16 MiB */
	} limits;
	struct {
		/* directories a submodule URL that is a local path (or file://)
		 * must be inside; empty: no local submodule URL */
		struct strv local_paths;
	} git;
	struct {
		char *user;             /* "upaas": whose subordinate ids the sandbox maps to */
		int64_t uid_base;       /* 0: from user's /etc/subuid */
		int64_t gid_base;       /* 0: from user's /etc/subgid (uid_base when that is set) */
		struct strv seccomp_deny; /* system calls refused on top of the built-in list */
		char *pasta;            /* "/usr/bin/pasta" */
	} sandbox;
	struct {
		int level;              /* zstd level, 3 */
		int threads;            /* 0 = number of cores */
		int max_layers;         /* layers a package may list, 8 */
		double squash_ratio;    /* deltas over the bottom layer's size, 0.5 */
	} pack;
	struct {
		char *root;             /* /srv/upaas */
		char *hooks_dir;        /* /etc/upaas/hooks */
		int hook_timeout;       /* seconds, 300 */
		bool hooks_as_root;     /* app hooks run as root (default false) */
		int keep;               /* revisions kept, 5 */
		char *schedule;         /* watch schedule, "* * * * *" */
		int interval;           /* watch: seconds between rounds; 0 = schedule */
		int jitter;             /* watch: up to this many seconds late per round, 15 */
		char *host_name;        /* in host reports; NULL = gethostname() */
		bool report;            /* write host reports (default true) */
		/* extraction keeps setuid/setgid, devices, capabilities and
		 * every xattr (default false: they are dropped) */
		bool allow_privileged_files;
		struct strv allow_xattrs;   /* trusted.* / security.* names kept */
		struct strv loopback_ports; /* host loopback ports deployed apps may reach */
		/* how a revision is made from its layers: "overlay" (an overlayfs
		 * mount of the layers' trees), "extract" (every layer into one
		 * tree), "auto" (overlay where it mounts; NULL = "auto") */
		char *materialize;
	} deploy;
	struct {
		char *key;              /* the builder's private key file; NULL: unsigned */
		struct strv trusted;    /* public key files trusted to sign */
		bool allow_unsigned;    /* accept unsigned objects, with a warning */
	} signing;
	struct {
		char *listen;           /* "127.0.0.1:7373", "[::1]:7373" */
		char *tls_cert;         /* PEM files; both or neither */
		char *tls_key;
		/* addresses or CIDRs whose X-Forwarded-* headers are believed */
		struct strv trusted_proxies;
		bool anonymous_read;    /* read endpoints without a token */
		char *web_dir;          /* the dashboard's files, $(datadir)/upaas/web */
		struct {
			int64_t max_body;   /* bytes of a request body, 1 MiB */
			int connections;    /* at once, 256 */
			int rate;           /* requests per second per client address, 50 */
			int burst;          /* requests a client may send at once, 200 */
			int timeout;        /* seconds a silent connection lives, 30 */
		} limits;
		struct {
			struct strv urls;   /* POSTed a signed JSON event */
			char *secret;       /* HMAC-SHA256 key of the signature (secret) */
			int timeout;        /* seconds per attempt, 10 */
			int retries;        /* attempts after the first, 8 */
		} notify;
	} serve;
	struct {
		struct kvlist env;
		struct actions actions;     /* system, finalize, before/main/after */
		struct cfg_interp_type *types;
		size_t n_types;
	} interpreters;
};

/* One problem found while loading: "file:line: message". */
struct diag {
	char *file;
	int line;                   /* 0 when unknown */
	char *msg;
};
struct diags {
	struct diag *v;
	size_t n;
	size_t cap;
};
#define DIAGS_INIT { NULL, 0, 0 }
void diags_add(struct diags *d, const char *file, int line, const char *fmt, ...) _printf_(4, 5);
/* Appends "file:line: msg\n" per problem. */
void diags_format(const struct diags *d, struct buf *out);
void diags_free(struct diags *d);

/* Fills every field with its built-in default. */
void config_defaults(struct config *c);
/*
 * Loads path over the defaults. path NULL: $UPAAS_CONFIG, else
 * UPAAS_DEFAULT_CONFIG when it exists, else defaults only.
 * Every problem goes to d; returns -EINVAL when there was any (c is then
 * still fully allocated and must be freed).
 */
int config_load(struct config *c, const char *path, struct diags *d);
void config_free(struct config *c);
/* Writes the effective config in libconfig syntax, secrets as "********". */
void config_show(const struct config *c, struct buf *out);
/* Resolves the S3 secrets from the file / environment, if not set inline. */
int config_storage_secrets(struct cfg_storage *s, struct err *e);

/* ---------------------------------------------------------------- metadata */

struct metadata {
	char *file;                 /* for messages: "<repo>/.upaas.cfg" */
	char *interp_type;          /* required */
	struct strv interp_versions;/* preference list, fuzzy; may be empty */
	struct strv os_packages;
	struct kvlist env;
	struct action repo_clone;   /* optional, run in the chroot */
	struct action repo_update;
	struct actions actions;     /* before, main, after only */
	struct kvlist files;        /* absolute path in chroot -> content */
	bool keep_git;              /* keep the app's .git in the package */
	struct {
		struct strv shared;     /* relative dirs linked to <root>/<app>/shared */
		struct strv hooks_pre;  /* paths inside the app dir, run in order */
		struct strv hooks_post;
		int keep;               /* revisions to keep, 0 = admin default */
	} deploy;
};

/* Parses metadata text (file is used in messages). Problems go to d;
 * -EINVAL when there was any. The config is needed to check interpreter types. */
int metadata_parse(struct metadata *m, const char *file, const char *text,
		   const struct config *c, struct diags *d);
int metadata_load(struct metadata *m, const char *path, const struct config *c,
		  struct diags *d);
void metadata_free(struct metadata *m);

/* The range of apps.uid and apps.gid (admin config), and the largest
 * deploy.keep of the app metadata; package manifests are held to them too. */
#define APPS_ID_MIN 1
#define APPS_ID_MAX 65535      /* an id of the sandbox's range (0..65535) */
#define METADATA_KEEP_MAX 100000

/* true when name is a valid Debian package name (no shell metacharacters). */
bool package_name_ok(const char *name);
/* true when name is a valid app name: [a-z0-9][a-z0-9._-]{0,62} */
bool app_name_ok(const char *name);

/* ------------------------------------------------------------- the plan */

/* What one build runs: the result of the merge rules of DESIGN.md. */
struct plan {
	char *interp_type;
	char *interp_version;
	struct strv packages;       /* union, sorted, unique */
	struct kvlist env;          /* interpreters.env < type.any < version < metadata */
	struct action actions[STEP__COUNT];   /* resolved; undefined = nothing to run */
};

/*
 * Merges admin config and metadata.
 * keep_version: the version of the package an incremental build starts from
 * (NULL for fresh); it wins when it is still configured.
 * want_version: --interpreter-version (fuzzy), NULL for the metadata's list.
 * Version choice: each candidate is a fuzzy prefix ("3" matches "3.11"); the
 * highest configured version matching the first candidate that matches wins.
 */
int plan_make(struct plan *p, const struct config *c, const struct metadata *m,
	      const char *keep_version, const char *want_version, struct err *e);
void plan_free(struct plan *p);

/* Compares version strings numerically by dotted components ("3.9" < "3.11"). */
int version_cmp(const char *a, const char *b);
/* true when v matches the fuzzy prefix pattern ("3" matches "3.11", not "31"). */
bool version_match(const char *pattern, const char *v);

#endif
