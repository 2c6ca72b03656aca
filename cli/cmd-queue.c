/*
 * cli/cmd-queue.c - upaas queue: add, list, show, log, cancel, retry.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <string.h>
#include <sys/stat.h>

#include <json-c/json.h>

#include "cli/cli.h"
#include "queue/queue.h"

static void queue_help(FILE *out)
{
	fputs("usage: upaas queue COMMAND [OPTIONS] [ARGS...]\n"
	      "\n"
	      "Commands:\n"
	      "  add [--fresh] [--ref REF] APP   queue a build of a registered app; prints\n"
	      "                                  its id. A queued build of the same app and\n"
	      "                                  ref takes the request in (--fresh makes it\n"
	      "                                  fresh)\n"
	      "  list [--state S] [--app A] [--limit N] [--json]\n"
	      "                                  builds, newest first\n"
	      "  show [--json] ID                one build\n"
	      "  log [-f] ID                     the build's log; -f follows it until the\n"
	      "                                  build ends\n"
	      "  cancel [--wait] ID              cancel a queued build, or stop a running one\n"
	      "  retry ID                        queue a finished build again; prints the id\n"
	      "\n"
	      "Options:\n"
	      "  --fresh        add: build from the base image, not the current package\n"
	      "  --ref REF      add: branch, tag or commit (default: the app's branch)\n"
	      "  --state S      list: queued, running, succeeded, failed or cancelled\n"
	      "  --app A        list: only this app's builds\n"
	      "  --limit N      list: at most N builds\n"
	      "  --json         list, show: machine-readable output\n"
	      "  -f, --follow   log: follow the log while the build runs\n"
	      "  --wait         cancel: wait until the build has stopped\n"
	      "  -h, --help     this help\n",
	      out);
}

struct qopts {
	bool fresh;
	const char *ref;
	int state;
	const char *app;
	int64_t limit;
	bool json;
	bool follow;
	bool wait;
};

enum { O_FRESH = 256, O_REF, O_STATE, O_APP, O_LIMIT, O_JSON, O_WAIT };

/* Parses the options of a sub-command (argv[0] is its name); returns -1 to
 * go on, else the exit status. */
static int parse_opts(int argc, char **argv, struct qopts *o)
{
	static const struct option longopts[] = {
		{ "fresh", no_argument, NULL, O_FRESH },
		{ "ref", required_argument, NULL, O_REF },
		{ "state", required_argument, NULL, O_STATE },
		{ "app", required_argument, NULL, O_APP },
		{ "limit", required_argument, NULL, O_LIMIT },
		{ "json", no_argument, NULL, O_JSON },
		{ "follow", no_argument, NULL, 'f' },
		{ "wait", no_argument, NULL, O_WAIT },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;
	optind = 0;
	while ((ch = getopt_long(argc, argv, "fh", longopts, NULL)) != -1) {
		switch (ch) {
		case O_FRESH: o->fresh = true; break;
		case O_REF: o->ref = optarg; break;
		case O_STATE: {
			enum build_state st;
			if (build_state_parse(optarg, &st) < 0)
				return cli_usage("unknown state '%s'", optarg);
			o->state = (int)st;
			break;
		}
		case O_APP: o->app = optarg; break;
		case O_LIMIT:
			if (parse_int64(optarg, 1, 1000000, &o->limit) < 0)
				return cli_usage("--limit: want a number from 1 to 1000000");
			break;
		case O_JSON: o->json = true; break;
		case 'f': o->follow = true; break;
		case O_WAIT: o->wait = true; break;
		case 'h': queue_help(stdout); return 0;
		default: queue_help(stderr); return 2;
		}
	}
	return -1;
}

static void json_print(struct json_object *o)
{
	puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
						      JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
}

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

static int open_queue(struct cli *c, struct queue **q)
{
	_cleanup_err_ struct err e = ERR_INIT;
	int r = cli_config(c);
	if (r < 0)
		return r;
	r = queue_open(q, &c->cfg, &e);
	if (r < 0)
		cli_fail(&e, "cannot open the queue");
	return r;
}

static void queue_closep(struct queue **q)
{
	queue_close(*q);
}
#define _cleanup_queue_ _cleanup_(queue_closep)

/* -------------------------------------------------------------- commands */

static int q_add(struct cli *c, struct queue *q, const struct qopts *o, int argc, char **argv)
{
	if (argc - optind != 1)
		return cli_usage("usage: upaas queue add [--fresh] [--ref REF] APP");
	_cleanup_err_ struct err e = ERR_INIT;
	_cleanup_free_ char *id = NULL;
	bool coalesced = false;
	int r = queue_add(q, argv[optind], o->ref, o->fresh, &id, &coalesced, &e);
	if (r < 0)
		return cli_fail(&e, "cannot queue the build");
	puts(id);
	if (coalesced && !c->quiet)
		fprintf(stderr, "upaas: joined the queued build %s%s\n", id,
			o->fresh ? " (now fresh)" : "");
	return 0;
}

static int q_list(struct cli *c, struct queue *q, const struct qopts *o, int argc, char **argv)
{
	if (argc != optind)
		return cli_usage("usage: upaas queue list [--state S] [--app A] [--limit N] [--json]");
	_cleanup_err_ struct err e = ERR_INIT;
	struct queue_filter f = { .app = o->app, .state = o->state, .limit = (size_t)o->limit };
	struct queue_build *v = NULL;
	size_t n = 0;
	int r = queue_list(q, &f, &v, &n, &e);
	if (r < 0)
		return cli_fail(&e, "cannot list builds");
	if (o->json) {
		struct json_object *a = json_object_new_array();
		for (size_t i = 0; i < n; i++)
			json_object_array_add(a, queue_build_json(&v[i]));
		json_print(a);
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

static int q_show(struct cli *c, struct queue *q, const struct qopts *o, int argc, char **argv)
{
	if (argc - optind != 1)
		return cli_usage("usage: upaas queue show [--json] ID");
	_cleanup_err_ struct err e = ERR_INIT;
	_cleanup_(queue_build_clear) struct queue_build b = { 0 };
	int r = queue_get(q, argv[optind], &b, &e);
	if (r < 0)
		return cli_fail(&e, "no such build");
	_cleanup_free_ char *log = queue_log_path(&c->cfg, b.id);
	if (o->json) {
		struct json_object *j = queue_build_json(&b);
		json_object_object_add(j, "log", json_object_new_string(log));
		json_print(j);
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

static int copy_out(int fd)
{
	char b[65536];
	ssize_t n;
	int total = 0;
	while ((n = read(fd, b, sizeof(b))) > 0) {
		if (fs_write_all(STDOUT_FILENO, b, (size_t)n) < 0)
			return -EPIPE;
		total += (int)n;
	}
	return total;
}

static int q_log(struct cli *c, struct queue *q, const struct qopts *o, int argc, char **argv)
{
	if (argc - optind != 1)
		return cli_usage("usage: upaas queue log [-f] ID");
	_cleanup_err_ struct err e = ERR_INIT;
	_cleanup_(queue_build_clear) struct queue_build b = { 0 };
	int r = queue_get(q, argv[optind], &b, &e);
	if (r < 0)
		return cli_fail(&e, "no such build");
	_cleanup_free_ char *path = queue_log_path(&c->cfg, b.id);
	_cleanup_close_ int fd = -1;
	for (;;) {
		if (fd < 0)
			fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd >= 0 && copy_out(fd) < 0)
			return 1;
		if (!o->follow || build_state_final(b.state))
			break;
		poll(NULL, 0, 200);
		queue_build_clear(&b);
		err_clear(&e);
		r = queue_get(q, argv[optind], &b, &e);
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
	fs_write_all(STDOUT_FILENO, out.p, out.len);
	return 0;
}

static int q_cancel(struct cli *c, struct queue *q, const struct qopts *o, int argc, char **argv)
{
	if (argc - optind != 1)
		return cli_usage("usage: upaas queue cancel [--wait] ID");
	const char *id = argv[optind];
	_cleanup_err_ struct err e = ERR_INIT;
	int r = queue_cancel(q, id, &e);
	if (r < 0)
		return cli_fail(&e, "cannot cancel");
	if (r == 0) {
		printf("%s cancelled\n", id);
		return 0;
	}
	if (!o->wait) {
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

static int q_retry(struct cli *c, struct queue *q, const struct qopts *o, int argc, char **argv)
{
	if (argc - optind != 1)
		return cli_usage("usage: upaas queue retry ID");
	_cleanup_err_ struct err e = ERR_INIT;
	_cleanup_free_ char *id = NULL;
	int r = queue_retry(q, argv[optind], &id, &e);
	if (r < 0)
		return cli_fail(&e, "cannot retry");
	puts(id);
	return 0;
}

static const struct {
	const char *name;
	int (*fn)(struct cli *c, struct queue *q, const struct qopts *o, int argc, char **argv);
} subs[] = {
	{ "add", q_add },
	{ "list", q_list },
	{ "ls", q_list },
	{ "show", q_show },
	{ "log", q_log },
	{ "cancel", q_cancel },
	{ "retry", q_retry },
};

int cmd_queue(struct cli *c, int argc, char **argv)
{
	if (argc < 2 || cli_is_help(argv[1])) {
		queue_help(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	for (size_t i = 0; i < ARRAY_SIZE(subs); i++) {
		if (strcmp(argv[1], subs[i].name))
			continue;
		struct qopts o = { .state = -1 };
		int r = parse_opts(argc - 1, argv + 1, &o);
		if (r >= 0)
			return r;
		_cleanup_queue_ struct queue *q = NULL;
		if (open_queue(c, &q) < 0)
			return 1;
		return subs[i].fn(c, q, &o, argc - 1, argv + 1);
	}
	return cli_usage("unknown queue command '%s' (see upaas queue --help)", argv[1]);
}
