/*
 * deploy/deploy.h - the host side: fetch a package, verify it, extract it
 * into a revision, link the shared dirs, run the hooks, switch `current`
 * atomically, record history, prune; plus rollback, undeploy, status, the
 * watch loop and `upaas exec`.
 *
 * Layout of one app under the deploy root (DESIGN.md, "Deploy layout"):
 *
 *   <root>/<app>/revisions/<id>/         the package's root filesystem: an
 *                                        overlayfs mount of its layers'
 *                                        trees, or an extracted tree
 *                                        (deploy.materialize, overlay.c)
 *   <root>/<app>/trees/<sha256>.<policy>/ one verified layer, extracted once
 *                                        (overlayfs's upper format)
 *   <root>/<app>/overlay/<id>/           a mounted revision's upper and
 *                                        work dirs, and its list of trees
 *   <root>/<app>/revisions/<id>.tmp/     an extract in progress (removed by
 *                                        the next deploy when left behind)
 *   <root>/<app>/revisions/<id>.failed/  a revision whose pre-deploy hooks
 *                                        failed, kept until the next deploy
 *   <root>/<app>/revisions/.trash-*      taken away (pruned, undeployed, a
 *                                        leftover), deleted by deploy_sweep()
 *   <root>/<app>/manifests/<id>.json     the package manifest of a revision
 *   <root>/<app>/manifests/<id>.complete its completion marker: written last
 *                                        by an extract, removed first by a
 *                                        removal; without it the revision is
 *                                        never reused, but extracted again
 *   <root>/.trash-<app>.*                an app purged, deleted by deploy_sweep()
 *   <root>/<app>/shared/<dir>/           persistent data
 *   <root>/<app>/current                 symlink "revisions/<id>", switched
 *                                        with rename(2)
 *   <root>/<app>/history                 one line per deploy/rollback/undeploy
 *   <root>/<app>/deploy.log              timestamped log, hook output
 *   <root>/<app>/.lock                   flock() held by a deploy
 *   <root>/<app>/.failed                 package id whose deploy failed (watch)
 *
 * A shared dir <dir> replaces <revision>/<app_home>/<dir> with a relative
 * symlink "../../…/shared/<dir>" that resolves to <root>/<app>/shared/<dir>
 * on the host, and to /shared/<dir> inside the revision's chroot (where
 * `upaas exec` binds <root>/<app>/shared at /shared).
 *
 * Invariant: `current` only ever names a revision that was completely
 * extracted from a verified blob and synced, and a revision is switched to
 * only while its completion marker says so; a killed deploy, prune or
 * undeploy leaves at most *.tmp and trash, which the next command removes.
 *
 * Library code: nothing here prints; progress goes through log_*().
 */
#ifndef UPAAS_DEPLOY_H
#define UPAAS_DEPLOY_H

#include <time.h>

#include "common/common.h"
#include "config/config.h"
#include "storage/storage.h"

/* ============================================================== deploy */

enum deploy_op {
	DEPLOY_OP_INSTALL,         /* first deploy of the app on this host */
	DEPLOY_OP_UPGRADE,         /* over an existing revision */
	DEPLOY_OP_ROLLBACK,
	DEPLOY_OP_UNDEPLOY,
	DEPLOY_OP_UNINSTALL,       /* undeploy --purge */
};
const char *deploy_op_name(enum deploy_op op);

struct deploy_opts {
	const char *root;          /* NULL: config deploy.root */
	const char *package_id;    /* NULL: the id in apps/<app>/current */
	bool force;                /* redeploy even when id is current */
	bool no_wait;              /* fail at once when the app is locked */
	bool tee;                  /* hook output also to stderr */
	bool rollback;             /* operation "rollback" instead of install/upgrade */
	bool no_report;            /* no host report: the caller writes it (watch) */
};

struct deploy_result {
	char *id;                  /* the package deployed (or attempted) */
	char *previous;            /* the id current named before; NULL: none */
	enum deploy_op op;
	bool noop;                 /* already current, nothing done */
	bool fetched;              /* false: an existing revision was reused */
	bool reverted;             /* post-deploy failed: switched back */
	uint64_t switch_us;        /* symlink + rename + fsync of the switch */
	uint64_t fetch_ms, extract_ms, total_ms;
	uint64_t fetched_bytes;    /* bytes of the layers fetched */
	size_t fetched_layers;
	size_t kept_layers;        /* layers the host kept for another revision */
};

/*
 * Deploys app (steps of issue 6, in order): lock -> manifest -> fetch +
 * verify (size, sha256) -> extract (secure) into revisions/<id>.tmp ->
 * rename -> shared links -> pre-deploy hooks -> switch -> post-deploy hooks
 * -> history -> prune -> host report (once the package id is known, also
 * after a failure). Returns 0 (also for a no-op) or -errno; after
 * failed post-deploy hooks `current` is switched back, ret->reverted is set
 * and the hook's error is returned. ret is filled as far as the deploy got
 * (free it with deploy_result_free either way).
 */
int deploy_run(const struct config *c, struct storage *s, const char *app,
	       const struct deploy_opts *o, struct deploy_result *ret, struct err *e);

/*
 * Switches back to to_id, or (NULL) to the previous revision from the
 * history; refetches the package when its revision was pruned. The hooks
 * see the operation "rollback".
 */
int deploy_rollback(const struct config *c, struct storage *s, const char *app, const char *to_id,
		    const struct deploy_opts *o, struct deploy_result *ret, struct err *e);

/*
 * Takes app off this host: pre-undeploy hooks (failure aborts) -> remove
 * current -> post-undeploy hooks -> remove revisions and manifests. purge
 * ("uninstall") also removes shared data, history and logs: the whole
 * <root>/<app>. -ENOENT when nothing is deployed. s (may be NULL) is where
 * the host report goes.
 */
int deploy_undeploy(const struct config *c, struct storage *s, const char *app,
		    const struct deploy_opts *o, bool purge, struct deploy_result *ret,
		    struct err *e);

void deploy_result_free(struct deploy_result *r);

/*
 * Deletes what removals put in the trash (see above): revisions pruned by a
 * deploy or taken off by an undeploy, apps purged. The commands call it
 * after they have reported their result, watch between rounds, so that
 * deleting 100,000 files never delays a switch or its report. Takes each
 * app's lock without waiting (a deploy holding it sweeps after itself).
 * app NULL: every app under root (NULL: deploy.root). Returns the number of
 * trees deleted, or -errno.
 */
int deploy_sweep(const struct config *c, const char *root, const char *app, struct err *e);

/*
 * Mounts again the overlay revisions (deploy.materialize) that are whole but
 * not mounted, as after a reboot: of app, or (NULL) of every app under
 * root (NULL: deploy.root); `upaas remount`, run at boot by the
 * upaas-remount unit. A deploy, a rollback and `upaas exec` mount what they
 * use themselves. Each app's lock is waited for. failed gets "<app>/<id>"
 * of the revisions that did not mount (a warning says why). Returns the
 * number mounted, or -errno.
 */
int deploy_remount(const struct config *c, const char *root, const char *app,
		   struct strv *failed, struct err *e);

/* Apps deployed under root: directories with a valid app name that hold
 * `current` or `history`, sorted. */
int deploy_list_apps(const char *root, struct strv *apps, struct err *e);

/* ============================================================== status */

struct deploy_hist {
	int64_t time;
	char *op;                  /* "install", ..., or "switch-back" */
	char *id;
	char *result;              /* "ok" or "failed:<stage>" */
	char *previous;            /* "-" when none */
};

/* One history line: "2026-11-20T21:45:00Z upgrade ID ok PREVIOUS\n". */
void deploy_hist_format(const struct deploy_hist *h, struct buf *out);
/* Parses one line (without newline). -EINVAL when malformed. */
int deploy_hist_parse(const char *line, struct deploy_hist *h);
void deploy_hist_free(struct deploy_hist *h);

/*
 * The previous revision by the history: the id of the latest successful
 * deploy/rollback line whose id differs from current; NULL when none.
 */
char *deploy_hist_previous(const struct deploy_hist *h, size_t n, const char *current);

struct deploy_status {
	char *app;
	char *current;             /* NULL: not deployed */
	char *previous;            /* NULL: none */
	char *commit;              /* of current, NULL when unknown */
	struct strv revisions;     /* complete revisions, sorted */
	struct strv failed;        /* revisions kept as <id>.failed */
	char *watch_failed;        /* id in .failed, NULL when none */
	struct deploy_hist *history;
	size_t n_history;
};
int deploy_status_read(const char *root, const char *app, struct deploy_status *ret,
		       struct err *e);
/* Appends the status as one JSON object. */
void deploy_status_json(const struct deploy_status *st, struct buf *out);
void deploy_status_free(struct deploy_status *st);

/*
 * Which revisions to prune: from ids (any order) keeps current, previous
 * and the newest others (ids sort by time) until keep are kept; everything
 * else goes into remove (sorted). keep < 1 counts as 1.
 */
void deploy_prune_select(const struct strv *ids, const char *current, const char *previous,
			 int keep, struct strv *remove);

/* ======================================================== host reports */

/*
 * What a deploy host runs, told to storage so that `upaas fleet status` and
 * the web API can show the whole fleet (DESIGN.md, storage layout):
 *
 *   hosts/<host>/<app>.json   one app on one host, written after every
 *                             deploy, rollback, undeploy and failed deploy
 *                             (deploy_run, deploy_rollback, deploy_undeploy
 *                             write it themselves when deploy.report is on),
 *                             and by `upaas watch` when it starts and when a
 *                             write failed before
 *   hosts/<host>/_host.json   the host's heartbeat: `upaas watch` rewrites
 *                             it at most once a minute, so that an idle
 *                             watcher costs one write a minute whatever the
 *                             number of apps ("_" starts no app name)
 *
 * <host> is deploy.host_name, else gethostname() in lower case; it must be
 * a valid app name (it becomes a storage key). Reports are information, not
 * trust: nothing deploys from them, and a report that cannot be written is
 * a warning, never a failed deploy.
 *
 * Report JSON: { "format": 1, "host", "app", "current" (id or null),
 * "previous", "revisions": [..], "operation" (install, upgrade, rollback,
 * undeploy, uninstall, switch-back), "package" (the id it was about),
 * "result" ("ok" or "failed"), "error" (null or the message), "time"
 * (ISO 8601 UTC), "upaas_version" }.
 * Heartbeat JSON: { "format": 1, "host", "time", "upaas_version",
 * "interval" (seconds between the watcher's rounds), "apps": { app: id } }.
 */
#define HOST_REPORT_MAX ((size_t)64 << 10)
#define HOST_BEAT_KEY "_host.json"

struct host_report {
	char *host;
	char *app;
	char *current;             /* NULL: nothing deployed */
	char *previous;            /* NULL: none */
	struct strv revisions;     /* complete revisions kept, sorted */
	char *operation;           /* NULL: no operation recorded yet */
	char *package;             /* NULL: none */
	bool failed;               /* the last operation failed */
	char *error;               /* NULL unless failed (may be NULL then too) */
	int64_t time;              /* unix seconds */
	char *version;             /* upaas version of the host */
};
void host_report_free(struct host_report *r);
void host_report_json(const struct host_report *r, struct buf *out);
/* Parses a report as stored; -EINVAL (detail in e) for anything that is not
 * a well-formed report (reports come from storage: data, not trust). */
int host_report_parse(const char *text, struct host_report *ret, struct err *e);

/*
 * The report of app under root, from the local state alone: current,
 * previous and revisions as `upaas status` shows them, the last operation
 * and its result from the history ("failed at <stage>" as the error). An
 * app that has no directory under root is reported as not deployed.
 */
int host_report_local(const char *host, const char *root, const char *app,
		      struct host_report *ret, struct err *e);
/* Writes r to hosts/<host>/<app>.json. */
int host_report_put(struct storage *s, const struct host_report *r, struct err *e);

struct host_beat {
	char *host;
	int64_t time;
	char *version;
	int64_t interval;          /* seconds, 0 when unknown */
	struct kvlist apps;        /* app -> current id ("" when none) */
};
void host_beat_free(struct host_beat *b);
void host_beat_json(const struct host_beat *b, struct buf *out);
int host_beat_parse(const char *text, struct host_beat *ret, struct err *e);
/* Writes b to hosts/<host>/_host.json. */
int host_beat_put(struct storage *s, const struct host_beat *b, struct err *e);

/* The name this host reports as: deploy.host_name, else gethostname() in
 * lower case. -EINVAL when it is not a valid app name. */
int deploy_host_name(const struct config *c, char **ret, struct err *e);

/* ================================================================ fleet */

/*
 * The fleet view: every app × host pair that hosts report, against the
 * app's current package in storage. Built from hosts/ and apps/<app>/current
 * by fleet_view_read(); the pure part (fleet_view_add_*, fleet_view_compute,
 * fleet_view_json) is what `upaas fleet status --json` prints and what the
 * web API's /api/v1/hosts serves.
 *
 * A pair is marked
 *   behind      the host runs something else than the app's current, or
 *               nothing while the app has one (a watcher that has not
 *               deployed it yet; not a host that undeployed it);
 *   failed      the host's last operation on the app failed;
 *   silent      the host watches (it has a heartbeat) and has not been heard
 *               of for longer than silent_after seconds;
 * and drifts when any mark is set. A host that undeployed the app, or an
 * app without a current in storage, drifts only when failed or silent.
 */
enum {
	FLEET_BEHIND = 1u << 0,
	FLEET_FAILED = 1u << 1,
	FLEET_SILENT = 1u << 2,
};

struct fleet_cell {
	struct host_report rep;
	int64_t seen;              /* the host's last sign of life, unix s */
	unsigned marks;            /* FLEET_* (fleet_view_compute) */
};
struct fleet_app {
	char *app;
	char *current;             /* NULL: none in storage (or unknown) */
	bool current_known;        /* false: apps/<app>/current could not be read */
	struct fleet_cell *cells;  /* by host name */
	size_t n_cells;
};
struct fleet_host {
	char *host;
	int64_t seen;              /* latest of its heartbeat and reports */
	bool watching;             /* it has a heartbeat */
	int64_t interval;          /* from the heartbeat */
	char *version;
	bool silent;
	size_t n_apps;
};
struct fleet_view {
	int64_t now;               /* unix s */
	int64_t silent_after;      /* seconds */
	struct fleet_app *apps;    /* by name */
	size_t n_apps;
	struct fleet_host *hosts;  /* by name */
	size_t n_hosts;
	size_t n_drift;            /* pairs with a mark (fleet_view_compute) */
	size_t n_unreadable;       /* reports that could not be read or parsed */
};
#define FLEET_SILENT_AFTER_DEFAULT 300

/* An empty view as of now with the given threshold (<= 0: the default). */
void fleet_view_init(struct fleet_view *v, int64_t now, int64_t silent_after);
void fleet_view_free(struct fleet_view *v);
/* Adds one report (taken: *r is emptied), one heartbeat (copied), the
 * current of an app (known: false when it could not be read). */
void fleet_view_add_report(struct fleet_view *v, struct host_report *r);
void fleet_view_add_beat(struct fleet_view *v, const struct host_beat *b);
void fleet_view_set_current(struct fleet_view *v, const char *app, const char *id, bool known);
/* Sorts, links hosts and cells, sets the marks and the counts. */
void fleet_view_compute(struct fleet_view *v);
/* The state of a cell for tables, the worst first: "failed", "behind",
 * "silent", then "undeployed" (taken off the host), "none" (nothing
 * deployed, the app has no current either), "no-current" (the app has no
 * current in storage), "unknown" (it could not be read), "current". */
const char *fleet_cell_state(const struct fleet_view *v, const struct fleet_app *a,
			     const struct fleet_cell *c);
/* The view as one JSON object (see upaas(1), fleet status --json): as
 * text, or as a json-c object (the caller puts it). */
void fleet_view_json(const struct fleet_view *v, struct buf *out);
struct json_object;
struct json_object *fleet_view_to_json(const struct fleet_view *v);

/*
 * What earlier fleet_view_read() calls saw, so that a long-running reader
 * (upaas serve) pays for what changed only: a report whose listing entry
 * (size, time) did not change is not read again, a current is read with a
 * conditional GET. Not shared between threads without a lock.
 */
struct fleet_cache;
struct sign_trust;
struct fleet_cache *fleet_cache_new(void);
void fleet_cache_free(struct fleet_cache *c);
/* Objects read and objects reused (unchanged) so far. */
void fleet_cache_stats(const struct fleet_cache *c, uint64_t *reads, uint64_t *reused);

/*
 * Reads hosts/ (one listing, a GET per report and heartbeat) and the
 * current of each app seen (app: only that app), verified against t (one
 * that cannot be verified counts as unknown, with a warning), then computes
 * the view. cache (may be NULL) is what earlier calls saw.
 */
int fleet_view_read(struct storage *s, const struct sign_trust *t, const char *app,
		    int64_t silent_after, struct fleet_cache *cache, struct fleet_view *ret,
		    struct err *e);

/* =============================================================== hooks */

/* The context every hook receives (argv[2] JSON, UPAAS_* environment). */
struct hook_vars {
	const char *app;
	const char *package_id;
	const char *commit;
	const char *revision_dir;
	const char *previous_revision_dir;   /* "" when none */
	const char *shared_dir;
	const char *data_dir;                /* <revision_dir><app_home> */
	const char *root;
	const char *hostname;
	const char *operation;
	const char *event;                   /* "pre-deploy", ... */
	int64_t time;
};

/* The JSON object of argv[2]. */
void hook_vars_json(const struct hook_vars *v, struct buf *out);
/* Sets UPAAS_APP, UPAAS_PACKAGE_ID, ... plus CURRENT_CONFIG (revision_dir)
 * and PREVIOUS_CONFIG (previous_revision_dir) in env. */
void hook_vars_env(const struct hook_vars *v, struct strv *env);

/* ================================================================ cron */

/*
 * A 5-field cron schedule: minute hour day-of-month month day-of-week, each
 * "*", a number, a range "a-b", a step "* /n" or "a-b/n" or "a/n", or a
 * comma list of those; month and weekday also take names (jan, mon); weekday
 * 7 is Sunday. Macros: @hourly @daily @midnight @weekly @monthly @yearly
 * @annually. As in cron, when both day fields are restricted a day matches
 * either of them.
 */
struct cron {
	uint64_t minute;           /* bit per value */
	uint32_t hour;
	uint32_t dom;              /* bits 1..31 */
	uint16_t month;            /* bits 1..12 */
	uint8_t dow;               /* bits 0..6 */
	bool dom_star, dow_star;
};
int cron_parse(struct cron *c, const char *spec, struct err *e);
bool cron_match(const struct cron *c, const struct tm *tm);
/* The first whole minute strictly after `after` (local time) that matches;
 * -ERANGE when none within 5 years ("0 0 30 2 *"). */
int cron_next(const struct cron *c, time_t after, time_t *ret);

/* =============================================================== watch */

struct watch_opts {
	const char *root;          /* NULL: config deploy.root */
	const char *schedule;      /* NULL: config deploy.schedule (or interval) */
	int interval;              /* seconds between rounds; 0: config deploy.interval,
				    * unless schedule is set */
	int jitter;                /* up to this many seconds late per round;
				    * -1: config deploy.jitter */
	bool once;
	bool force;                /* retry packages that failed before */
	bool tee;
	const struct strv *apps;   /* NULL or empty: every deployed app */
	volatile int *stop;        /* set (by a signal handler) to stop */
	/* Optional: called after each deploy that ran (rc: its result). */
	void (*on_deploy)(void *data, const char *app, const struct deploy_result *r, int rc,
			  const struct err *e);
	void *on_deploy_data;
};

/*
 * Polls apps/<app>/current of each app on the schedule, or every interval
 * seconds (once with o->once), each round up to jitter seconds late, and
 * deploys a changed package. Each current is read with a conditional GET
 * (storage_get_if): an unchanged one costs no download. A failed package
 * id is written to <root>/<app>/.failed and skipped until another id
 * appears (or force). Keeps the host reports up to date (deploy.report):
 * an app's report after each deploy, at the first round and after a
 * failed write; the heartbeat at most once a minute. Logs (debug) what
 * each round cost the storage since the start. Returns 0, or -EIO when a
 * deploy of the last round failed (once), or -errno for a bad schedule.
 * Stops between deploys when *stop is set.
 */
int deploy_watch(const struct config *c, struct storage *s, const struct watch_opts *o,
		 struct err *e);

/* ================================================================ exec */

struct deploy_exec_opts {
	const char *root;          /* NULL: config deploy.root */
	struct strv argv;
	const char *cwd;           /* inside the revision; NULL: app_home */
	struct kvlist env;         /* extra environment */
	bool as_root;              /* run as root instead of the app user */
};

/*
 * Runs argv in the sandbox (sandbox/sandbox.h) chrooted into the current
 * revision of app, as the app's uid/gid, with network, no timeout, stdio
 * inherited, <root>/<app>/shared bound at /shared. Returns the command's exit status
 * (128+signal) or -errno.
 */
int deploy_exec(const struct config *c, const char *app, const struct deploy_exec_opts *o,
		struct err *e);

#endif
