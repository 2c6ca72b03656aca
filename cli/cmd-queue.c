/*
 * cli/cmd-queue.c - upaas queue: add, list, show, log, cancel, retry.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/stat.h>

#include <json-c/json.h>

#include "cli/cli.h"
#include "queue/queue.h"

enum { O_FRESH = CLI_LONG, O_REF, O_STATE, O_APP, O_LIMIT, O_JSON, O_WAIT };

/* "12.3s", "-" when a time is missing. */
static void fmt_duration(int64_t from, int64_t to, char out[32])
{
	if (!from || !to || to < from)
		snprintf(out, 32, "-");
	else if (to - from < 60000)
		snprintf(out, 32, "%.1fs", (double)(to - from) / 1000.0);
	else
		snprintf(out, 32, "%lldm%02llds", (long long)((to - from) / 60000),
			 (long long)((to - from) / 1000 % 60));
}

static void fmt_time(int64_t ms, char out[32])
{
	if (!ms)
		snprintf(out, 32, "-");
	else
		time_iso8601(ms / 1000, out);
}

/* -------------------------------------------------------------- commands */

static int q_add(struct cli *c, const struct cli_args *a)
{
	bool fresh = cli_flag(a, O_FRESH);
	_cleanup_queue_ struct queue *q = NULL;
	if (cli_queue(c, &q) < 0)
		return 1;
	_cleanup_err_ struct err e = ERR_INIT;
	_cleanup_free_ char *id = NULL;
	bool coalesced = false;
	int r = queue_add(q, a->argv[0], cli_arg(a, O_REF), fresh, &id, &coalesced, &e);
	if (r < 0)
		return cli_fail(&e, "cannot queue the build");
	puts(id);
	if (coalesced && !c->quiet)
		fprintf(stderr, "upaas: joined the queued build %s%s\n", id,
			fresh ? " (now fresh)" : "");
	return 0;
}

static int q_list(struct cli *c, const struct cli_args *a)
{
	const char *state = cli_arg(a, O_STATE), *limit = cli_arg(a, O_LIMIT);
	struct queue_filter f = { .app = cli_arg(a, O_APP), .state = -1 };
	if (state) {
		enum build_state st;
		if (build_state_parse(state, &st) < 0)
			return cli_usage("unknown state '%s'", state);
		f.state = (int)st;
	}
	if (limit) {
		int64_t n;
		if (parse_int64(limit, 1, 1000000, &n) < 0)
			return cli_usage("--limit: want a number from 1 to 1000000");
		f.limit = (size_t)n;
	}
	_cleanup_queue_ struct queue *q = NULL;
	if (cli_queue(c, &q) < 0)
		return 1;
	_cleanup_err_ struct err e = ERR_INIT;
	struct queue_build *v = NULL;
	size_t n = 0;
	int r = queue_list(q, &f, &v, &n, &e);
	if (r < 0)
		return cli_fail(&e, "cannot list builds");
	if (cli_flag(a, O_JSON)) {
		struct json_object *arr = json_object_new_array();
		for (size_t i = 0; i < n; i++)
			json_object_array_add(arr, queue_build_json(&v[i]));
		cli_json_print(arr);
	} else {
		printf("%-26s %-20s %-9s %-8s %-19s %-20s %s\n", "ID", "APP", "STATE", "TOOK",
		       "WORKER", "QUEUED", "PACKAGE/ERROR");
		for (size_t i = 0; i < n; i++) {
			const struct queue_build *b = &v[i];
			char took[32], queued[32];
			fmt_duration(b->started_at, b->finished_at, took);
			fmt_time(b->queued_at, queued);
			const char *what = b->package_id ? b->package_id : b->error ? b->error : "";
			printf("%-26s %-20s %-9s %-8s %-19s %-20s %s\n", b->id, b->app,
			       build_state_name(b->state), took, b->worker ? b->worker : "-", queued,
			       what);
		}
	}
	queue_builds_free(v, n);
	return 0;
}

static int q_show(struct cli *c, const struct cli_args *a)
{
	_cleanup_queue_ struct queue *q = NULL;
	if (cli_queue(c, &q) < 0)
		return 1;
	_cleanup_err_ struct err e = ERR_INIT;
	_cleanup_(queue_build_clear) struct queue_build b = { 0 };
	int r = queue_get(q, a->argv[0], &b, &e);
	if (r < 0)
		return cli_fail(&e, "no such build");
	_cleanup_free_ char *log = queue_log_path(&c->cfg, b.id);
	if (cli_flag(a, O_JSON)) {
		struct json_object *j = queue_build_json(&b);
		json_object_object_add(j, "log", json_object_new_string(log));
		cli_json_print(j);
		return 0;
	}
	char t[32];
	printf("id:          %s\n", b.id);
	printf("app:         %s\n", b.app);
	printf("ref:         %s\n", b.ref ? b.ref : "(the app's branch)");
	printf("fresh:       %s\n", b.fresh ? "yes" : "no");
	printf("state:       %s%s\n", build_state_name(b.state),
	       b.cancel_requested && b.state == BUILD_RUNNING ? " (cancel requested)" : "");
	printf("attempts:    %d\n", b.attempts);
	printf("worker:      %s\n", b.worker ? b.worker : "-");
	fmt_time(b.queued_at, t);
	printf("queued:      %s\n", t);
	fmt_time(b.started_at, t);
	printf("started:     %s\n", t);
	fmt_time(b.finished_at, t);
	printf("finished:    %s\n", t);
	fmt_duration(b.queued_at, b.started_at, t);
	printf("waited:      %s\n", t);
	fmt_duration(b.started_at, b.finished_at, t);
	printf("took:        %s\n", t);
	if (b.package_id)
		printf("package:     %s\n", b.package_id);
	if (b.error)
		printf("error:       %s\n", b.error);
	printf("log:         %s\n", log);
	return 0;
}

/* Writes log text to stdout: on a terminal made safe (the log holds the
 * app's raw output), else byte for byte. */
static int write_log(const char *p, size_t n)
{
	if (!isatty(STDOUT_FILENO))
		return fs_write_all(STDOUT_FILENO, p, n);
	_cleanup_buf_ struct buf b = BUF_INIT;
	buf_add_safe(&b, p, n);
	return fs_write_all(STDOUT_FILENO, b.p, b.len);
}

/* Copies what fd has to stdout, whole lines at a time on a terminal (a
 * UTF-8 character split between two reads stays whole). */
static int copy_out(int fd)
{
	char b[65536];
	ssize_t n;
	size_t have = 0;
	int total = 0;
	while ((n = read(fd, b + have, sizeof(b) - have)) > 0) {
		have += (size_t)n;
		char *nl = memrchr(b, '\n', have);
		size_t out = nl && have < sizeof(b) ? (size_t)(nl - b + 1) : have;
		if (write_log(b, out) < 0)
			return -EPIPE;
		memmove(b, b + out, have - out);
		have -= out;
		total += (int)n;
	}
	if (have && write_log(b, have) < 0)
		return -EPIPE;
	return total;
}

static int q_log(struct cli *c, const struct cli_args *a)
{
	_cleanup_queue_ struct queue *q = NULL;
	if (cli_queue(c, &q) < 0)
		return 1;
	_cleanup_err_ struct err e = ERR_INIT;
	_cleanup_(queue_build_clear) struct queue_build b = { 0 };
	int r = queue_get(q, a->argv[0], &b, &e);
	if (r < 0)
		return cli_fail(&e, "no such build");
	_cleanup_free_ char *path = queue_log_path(&c->cfg, b.id);
	_cleanup_close_ int fd = -1;
	for (;;) {
		if (fd < 0)
			fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd >= 0 && copy_out(fd) < 0)
			return 1;
		if (!cli_flag(a, 'f') || build_state_final(b.state))
			break;
		poll(NULL, 0, 200);
		queue_build_clear(&b);
		err_clear(&e);
		r = queue_get(q, a->argv[0], &b, &e);
		if (r < 0)
			return cli_fail(&e, "cannot read the build");
		/* The final lines are written before the state: drain once more. */
		if (build_state_final(b.state) && fd >= 0) {
			copy_out(fd);
			break;
		}
	}
	if (fd >= 0)
		return 0;
	/* Not on this host: the build's log in storage, once it finished. */
	struct storage *s = NULL;
	if (!build_state_final(b.state) || cli_storage(c, &s) < 0) {
		fprintf(stderr, "upaas: no log for build %s on this host\n", b.id);
		return 1;
	}
	_cleanup_free_ char *key = storage_key_log(b.app, b.id);
	_cleanup_buf_ struct buf out = BUF_INIT;
	err_clear(&e);
	r = storage_get_buf(s, key, &out, 64u << 20, &e);
	if (r < 0)
		return cli_fail(&e, "no log for this build");
	write_log(out.p, out.len);
	return 0;
}

static int q_cancel(struct cli *c, const struct cli_args *a)
{
	const char *id = a->argv[0];
	_cleanup_queue_ struct queue *q = NULL;
	if (cli_queue(c, &q) < 0)
		return 1;

	_cleanup_err_ struct err e = ERR_INIT;
	int r = queue_cancel(q, id, &e);
	if (r < 0)
		return cli_fail(&e, "cannot cancel");
	if (r == 0) {
		printf("%s cancelled\n", id);
		return 0;
	}
	if (!cli_flag(a, O_WAIT)) {
		printf("%s: cancel requested\n", id);
		return 0;
	}
	for (;;) {
		_cleanup_(queue_build_clear) struct queue_build b = { 0 };
		err_clear(&e);
		r = queue_get(q, id, &b, &e);
		if (r < 0)
			return cli_fail(&e, "cannot read the build");
		if (build_state_final(b.state)) {
			printf("%s %s\n", id, build_state_name(b.state));
			return b.state == BUILD_CANCELLED ? 0 : 1;
		}
		poll(NULL, 0, 100);
	}
}

static int q_retry(struct cli *c, const struct cli_args *a)
{
	_cleanup_queue_ struct queue *q = NULL;
	if (cli_queue(c, &q) < 0)
		return 1;
	_cleanup_err_ struct err e = ERR_INIT;
	_cleanup_free_ char *id = NULL;
	int r = queue_retry(q, a->argv[0], &id, &e);
	if (r < 0)
		return cli_fail(&e, "cannot retry");
	puts(id);
	return 0;
}

/* ---------------------------------------------------------- the table */

/* The ids of the newest builds. */
void cli_values_builds(struct cli *c, const struct cli_args *a, struct strv *out)
{
	_cleanup_err_ struct err e = ERR_INIT;
	_cleanup_queue_ struct queue *q = NULL;
	struct queue_filter f = { .state = -1, .limit = 200 };
	struct queue_build *v = NULL;
	size_t n = 0;

	if (cli_config(c) < 0 || queue_open_existing(&q, &c->cfg, &e) < 0 ||
	    queue_list(q, &f, &v, &n, &e) < 0)
		return;
	for (size_t i = 0; i < n; i++)
		strv_push(out, v[i].id);
	queue_builds_free(v, n);
}

void cli_values_states(struct cli *c, const struct cli_args *a, struct strv *out)
{
	for (int i = 0; i < BUILD__STATE_COUNT; i++)
		strv_push(out, build_state_name((enum build_state)i));
}

static const struct cli_opt json_opt[] = {
	{ "json", O_JSON, NULL, "machine-readable output", NULL },
	{ NULL },
};

static const struct cli_cmd queue_add_cmd = {
	.name = "add",
	.summary = "queue a build of a registered app; prints\n"
		   "its id. A queued build of the same app and\n"
		   "ref takes the request in (--fresh makes it\n"
		   "fresh)",
	.usage = "[--fresh] [--ref REF] APP",
	.opts = (const struct cli_opt[]){
		{ "fresh", O_FRESH, NULL, "build from the base image, not the current package", NULL },
		{ "ref", O_REF, "REF", "branch, tag or commit (default: the app's branch)", NULL },
		{ NULL },
	},
	.min_args = 1,
	.max_args = 1,
	.values = { cli_values_apps },
	.run = q_add,
};

static const struct cli_cmd queue_list_cmd = {
	.name = "list",
	.aliases = (const char *const[]){ "ls", NULL },
	.summary = "builds, newest first",
	.usage = "[--state S] [--app A] [--limit N] [--json]",
	.opts = (const struct cli_opt[]){
		{ "state", O_STATE, "S", "queued, running, succeeded, failed or cancelled",
		  cli_values_states },
		{ "app", O_APP, "A", "only this app's builds", cli_values_apps },
		{ "limit", O_LIMIT, "N", "at most N builds", NULL },
		{ "json", O_JSON, NULL, "machine-readable output", NULL },
		{ NULL },
	},
	.run = q_list,
};

static const struct cli_cmd queue_show_cmd = {
	.name = "show",
	.summary = "one build",
	.usage = "[--json] ID",
	.opts = json_opt,
	.min_args = 1,
	.max_args = 1,
	.values = { cli_values_builds },
	.run = q_show,
};

static const struct cli_cmd queue_log_cmd = {
	.name = "log",
	.summary = "the build's log; -f follows it until the build ends",
	.usage = "[-f] ID",
	.opts = (const struct cli_opt[]){
		{ "follow", 'f', NULL, "follow the log while the build runs", NULL },
		{ NULL },
	},
	.min_args = 1,
	.max_args = 1,
	.values = { cli_values_builds },
	.run = q_log,
};

static const struct cli_cmd queue_cancel_cmd = {
	.name = "cancel",
	.summary = "cancel a queued build, or stop a running one",
	.usage = "[--wait] ID",
	.opts = (const struct cli_opt[]){
		{ "wait", O_WAIT, NULL, "wait until the build has stopped", NULL },
		{ NULL },
	},
	.min_args = 1,
	.max_args = 1,
	.values = { cli_values_builds },
	.run = q_cancel,
};

static const struct cli_cmd queue_retry_cmd = {
	.name = "retry",
	.summary = "queue a finished build again; prints the id",
	.usage = "ID",
	.min_args = 1,
	.max_args = 1,
	.values = { cli_values_builds },
	.run = q_retry,
};

const struct cli_cmd cmd_queue = {
	.name = "queue",
	.summary = "add, list, show, follow, cancel or retry queued builds",
	.usage = "COMMAND [OPTIONS] [ARGS...]",
	.help = "The build queue that 'upaas worker' takes builds from.",
	.subs = (const struct cli_cmd *const[]){
		&queue_add_cmd, &queue_list_cmd, &queue_show_cmd, &queue_log_cmd,
		&queue_cancel_cmd, &queue_retry_cmd, NULL,
	},
};
