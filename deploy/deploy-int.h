/*
 * deploy/deploy-int.h - shared between the files of deploy/ only.
 */
#ifndef UPAAS_DEPLOY_INT_H
#define UPAAS_DEPLOY_INT_H

#include "deploy/deploy.h"
#include "sandbox/sandbox.h"
#include "package/package.h"
#include "archive/archive.h"

/* The paths of one app under the deploy root (see deploy.h). */
struct app_paths {
	char *root;
	char *app;
	char *dir;            /* <root>/<app> */
	char *revisions;
	char *manifests;
	char *shared;
	char *current;
	char *current_tmp;    /* .current.tmp: the new link before rename */
	char *history;
	char *log;
	char *lock;
	char *failed_marker;  /* .failed (watch) */
	char *sequence;       /* the highest current sequence seen */
};
void app_paths_init(struct app_paths *p, const char *root, const char *app);
void app_paths_free(struct app_paths *p);
char *app_revision_path(const struct app_paths *p, const char *id);   /* caller frees */
char *app_manifest_path(const struct app_paths *p, const char *id);
/* manifests/<id>.complete: the completion marker of revisions/<id>. */
char *app_marker_path(const struct app_paths *p, const char *id);

/* Trash: what a removal took away from readers by a rename, to be deleted
 * later (deploy_sweep): revisions/.trash-<id>.<random>/ and, for a purged
 * app, <root>/.trash-<app>.<random>/. No id or app name starts with '.'. */
#define TRASH_PREFIX ".trash-"
/* <root>/<app>/layers: the verified layers of the revisions on the host
 * (fetched from storage that is not local), so that a deploy fetches only
 * those it lacks; those no revision lists go with deploy_sweep(). */
#define KEPT_LAYERS "layers"

/* ------------------------------------------- overlay revisions (overlay.c) */

/*
 * With deploy.materialize "overlay" (or "auto" where overlayfs mounts), a
 * revision is an overlayfs mount at revisions/<id> of its layers' trees,
 * each verified layer extracted once into <app>/trees/<sha256>.<policy>
 * (UNPACK_UPPER), with the revision's own upper and work dirs and the list
 * of its trees in <app>/overlay/<id>/ (see overlay.c). A tree exists under
 * its name only whole and synced; those no revision lists go with
 * deploy_sweep().
 */
#define LAYER_TREES "trees"
#define OVERLAY_STATE "overlay"

char *overlay_state_path(const struct app_paths *p, const char *name);
/* "<sha256>.<8 hex of the policy>": the tree of a layer under a policy. */
char *layer_tree_name(const char *sha256, const struct unpack_policy *pol);
bool layer_tree_name_ok(const char *name);
/* true when path is the root of a mount (statx STATX_ATTR_MOUNT_ROOT). */
bool path_is_mount_root(const char *path);
/* Unmounts whatever is mounted at path (detached when busy); 0 when
 * nothing is. Never follows a symlink. */
int revision_umount(const char *path, struct err *e);
/* Reads overlay/<name>/lowers: 1 with the trees (bottom first), 0 when name
 * is no overlay revision. */
int overlay_lowers_read(const struct app_paths *p, const char *name, struct strv *trees,
			bool *ret_nosuid, struct err *e);
/* Mounts the overlay revision name at revisions/<name> unless it is
 * mounted: 1 mounted now, 0 nothing to do (mounted, or no overlay). */
int revision_mount(const struct app_paths *p, const char *name, struct err *e);
/* Creates overlay/<name> (must not exist) for trees and mounts it at
 * revisions/<name> (created when missing). */
int revision_mount_new(const struct app_paths *p, const char *name, const struct strv *trees,
		       bool nosuid, struct err *e);
/* 0 when an overlay mounts in dir (a scratch mount, removed). */
int overlay_probe(const char *dir, struct err *e);

/*
 * Reads a package manifest (package_manifest_parse: the one strict reader)
 * that must be the one of app/id (each may be NULL), and fills in what the
 * manifest leaves to the host: app_home, uid and gid come from the config
 * when the manifest has none (c may be NULL: /home/app, 1000).
 */
int deploy_manifest_read(struct package_info *ret, const char *text, const char *app,
			 const char *id, const struct config *c, struct err *e);

/*
 * Reads apps/<app>/current and verifies it against t (package_current_read);
 * with seen_path (the app's <dir>/sequence, may be NULL) also refuses a
 * sequence lower than the highest one recorded there (-ESTALE: an old
 * pointer put back), and records a higher one (atomically).
 */
int deploy_current_read(struct storage *s, const struct sign_trust *t, const char *app,
			const char *seen_path, struct package_current *ret, struct err *e);

/* Reads the history file; a missing file is an empty history. */
int deploy_hist_read(const char *path, struct deploy_hist **ret, size_t *ret_n, struct err *e);
void deploy_hist_free_all(struct deploy_hist *h, size_t n);
/* Appends one line and fsyncs. */
int deploy_hist_append(const char *path, const struct deploy_hist *h, struct err *e);

/* Lists revisions/: complete ids, "<id>.failed" and "*.tmp" names (each may
 * be NULL). A missing dir is empty. */
int deploy_revisions_list(const char *revdir, struct strv *complete, struct strv *failed,
			  struct strv *tmp, struct err *e);
/* The id `current` points at, NULL when missing or not "revisions/<id>". */
char *deploy_current_id(const char *current_link);

/* One hook event of a deploy. */
struct hook_run {
	const struct config *cfg;
	const char *event;                  /* "pre-deploy", ... */
	const struct package_info *m;       /* app hooks from here (deploy_manifest_read);
					     * NULL: none */
	const struct hook_vars *vars;
	const char *tmpdir;                 /* where the argv[2] JSON files go */
	int log_fd;
	bool tee;
};
/*
 * Runs the admin hooks <hooks_dir>/<event>.d/ (name order) and the app's
 * hooks of the event: for "pre-*" events admin hooks first, for "post-*"
 * events the app's first, so that the admin's hooks wrap the app's.
 * Stops at the first failure: -EIO (or -ETIMEDOUT) with the detail in e.
 */
int hooks_run(const struct hook_run *h, struct err *e);

/*
 * The sandbox of the app on this host (app deploy hooks, upaas exec),
 * chrooted into rev: as the app user of this host's config (apps.uid/gid,
 * never the manifest's), mapped to the same ids on the host, so that the
 * app's files are its own; root inside is the sandbox range's first id,
 * which owns nothing here, so the package's root-owned files read as
 * nobody's. <root>/<app>/shared is bound at /shared when it exists;
 * network through pasta, reaching the host's loopback only on the admin's
 * deploy.loopback_ports. The caller adds argv, env, cwd, binds and output.
 */
struct app_sandbox {
	struct sandbox sb;
	struct sandbox_policy pol;
	struct sandbox_bind binds[4];
	char *ports;
};
int app_sandbox_init(struct app_sandbox *a, const struct config *c, const char *rev,
		     const char *shared, bool as_root, struct err *e);
/* Adds a bind (at most 4 in all). */
void app_sandbox_bind(struct app_sandbox *a, const char *host, const char *target, bool rw);
void app_sandbox_free(struct app_sandbox *a);

/*
 * Writes the host report of app after operation op on package id (each may
 * be NULL) that returned rc, with oe's message when it failed (report.c).
 * Does nothing without a storage that takes writes or with deploy.report
 * off; a failure to write is a warning. Returns 0 when nothing failed.
 */
int deploy_report_after(const struct config *c, struct storage *s, const char *root,
			const char *app, const char *op, const char *id, int rc,
			const struct err *oe);

/* Writes "text" as a timestamped line to the deploy log (fd may be -1). */
void deploy_log(int fd, const char *fmt, ...) _printf_(2, 3);

#endif
