/*
 * cli/cmd-fleet.c - upaas fleet: what every deploy host runs, from the
 * reports they write to storage (deploy/fleet.c computes the view).
 */
#include <errno.h>
#include <string.h>

#include "cli/cli.h"
#include "deploy/deploy.h"

enum { O_JSON = CLI_LONG, O_SILENT_AFTER };

/* "12 s ago", "3 min ago", "2 h ago", "4 d ago" */
static void ago(int64_t now, int64_t t, struct buf *out)
{
	int64_t d = now > t ? now - t : 0;
	if (t <= 0)
		buf_adds(out, "never");
	else if (d < 120)
		buf_addf(out, "%lld s ago", (long long)d);
	else if (d < 7200)
		buf_addf(out, "%lld min ago", (long long)(d / 60));
	else if (d < 172800)
		buf_addf(out, "%lld h ago", (long long)(d / 3600));
	else
		buf_addf(out, "%lld d ago", (long long)(d / 86400));
}

static size_t max_z(size_t a, size_t b)
{
	return a > b ? a : b;
}

static void print_view(const struct fleet_view *v)
{
	size_t wa = 3, wc = 7, wh = 4, wr = 4;
	size_t n_cells = 0, n_current = 0;
	size_t by_mark[3] = { 0 };

	for (size_t i = 0; i < v->n_apps; i++) {
		const struct fleet_app *a = &v->apps[i];
		wa = max_z(wa, strlen(a->app));
		wc = max_z(wc, a->current ? strlen(a->current) : 1);
		for (size_t k = 0; k < a->n_cells; k++) {
			const struct fleet_cell *c = &a->cells[k];
			wh = max_z(wh, strlen(c->rep.host));
			wr = max_z(wr, c->rep.current ? strlen(c->rep.current) : 1);
		}
	}
	if (!v->n_apps) {
		printf("no deploy host has reported yet (hosts/ in storage is empty)\n");
		return;
	}
	printf("%-*s  %-*s  %-*s  %-*s  %-10s  %s\n", (int)wa, "APP", (int)wc, "CURRENT", (int)wh,
	       "HOST", (int)wr, "RUNS", "STATE", "SEEN");
	for (size_t i = 0; i < v->n_apps; i++) {
		const struct fleet_app *a = &v->apps[i];
		const char *cur = a->current ? a->current : a->current_known ? "-" : "?";
		if (!a->n_cells)
			printf("%-*s  %-*s  (no host reports it)\n", (int)wa, a->app, (int)wc, cur);
		for (size_t k = 0; k < a->n_cells; k++) {
			const struct fleet_cell *c = &a->cells[k];
			_cleanup_buf_ struct buf seen = BUF_INIT;
			ago(v->now, c->seen, &seen);
			printf("%-*s  %-*s  %-*s  %-*s  %-10s  %s\n", (int)wa, k ? "" : a->app,
			       (int)wc, k ? "" : cur, (int)wh, c->rep.host, (int)wr,
			       c->rep.current ? c->rep.current : "-", fleet_cell_state(v, a, c),
			       seen.p);
			n_cells++;
			n_current += !c->marks && c->rep.current && a->current &&
				     !strcmp(c->rep.current, a->current);
			by_mark[0] += !!(c->marks & FLEET_BEHIND);
			by_mark[1] += !!(c->marks & FLEET_FAILED);
			by_mark[2] += !!(c->marks & FLEET_SILENT);
		}
	}
	/* the errors of failed hosts, after the table */
	for (size_t i = 0; i < v->n_apps; i++)
		for (size_t k = 0; k < v->apps[i].n_cells; k++) {
			const struct fleet_cell *c = &v->apps[i].cells[k];
			if (c->marks & FLEET_FAILED)
				printf("%s on %s: %s%s%s\n", v->apps[i].app, c->rep.host,
				       c->rep.operation ? c->rep.operation : "deploy",
				       c->rep.package ? " of " : "", c->rep.package ? c->rep.package : "");
		}
	for (size_t i = 0; i < v->n_apps; i++)
		for (size_t k = 0; k < v->apps[i].n_cells; k++) {
			const struct fleet_cell *c = &v->apps[i].cells[k];
			if ((c->marks & FLEET_FAILED) && c->rep.error)
				printf("  %s\n", c->rep.error);
		}
	printf("%zu host%s, %zu app%s: %zu current, %zu drifting (%zu behind, %zu failed, "
	       "%zu silent for more than %lld s)\n",
	       v->n_hosts, v->n_hosts == 1 ? "" : "s", v->n_apps, v->n_apps == 1 ? "" : "s",
	       n_current, v->n_drift, by_mark[0], by_mark[1], by_mark[2],
	       (long long)v->silent_after);
	if (v->n_unreadable)
		printf("%zu report%s could not be read (see the warnings)\n", v->n_unreadable,
		       v->n_unreadable == 1 ? "" : "s");
}

static int fleet_status(struct cli *c, const struct cli_args *a)
{
	const char *app = a->argc ? a->argv[0] : NULL;
	const char *sa = cli_arg(a, O_SILENT_AFTER);
	int64_t silent_after = FLEET_SILENT_AFTER_DEFAULT;

	if (app && !app_name_ok(app))
		return cli_usage("invalid app name '%s'", app);
	if (sa && parse_int64(sa, 1, 365LL * 86400, &silent_after) < 0)
		return cli_usage("--silent-after wants seconds, not '%s'", sa);
	struct storage *s;
	const struct sign_trust *t;
	if (cli_config(c) < 0 || cli_storage(c, &s) < 0 || cli_trust(c, &t) < 0)
		return 1;

	_cleanup_err_ struct err e = ERR_INIT;
	struct fleet_view v;
	if (fleet_view_read(s, t, app, silent_after, NULL, &v, &e) < 0)
		return cli_fail(&e, "cannot read the fleet view");
	if (cli_flag(a, O_JSON)) {
		_cleanup_buf_ struct buf out = BUF_INIT;
		fleet_view_json(&v, &out);
		fputs(out.p, stdout);
	} else {
		print_view(&v);
	}
	int rc = v.n_drift ? 1 : 0;
	fleet_view_free(&v);
	return rc;
}

static int fleet_forget(struct cli *c, const struct cli_args *a)
{
	const char *host = a->argv[0];
	if (!app_name_ok(host))
		return cli_usage("invalid host name '%s'", host);
	struct storage *s;
	if (cli_config(c) < 0 || cli_storage(c, &s) < 0)
		return 1;
	_cleanup_err_ struct err e = ERR_INIT;
	_cleanup_strv_ struct strv keys = STRV_INIT;
	_cleanup_free_ char *prefix = xasprintf("hosts/%s/", host);
	if (storage_list_keys(s, prefix, &keys, &e) < 0)
		return cli_fail(&e, NULL);
	for (size_t i = 0; i < keys.n; i++)
		if (storage_delete(s, keys.v[i], &e) < 0)
			return cli_fail(&e, NULL);
	printf("forgot host '%s' (%zu report%s)\n", host, keys.n, keys.n == 1 ? "" : "s");
	return 0;
}

static const struct cli_cmd fleet_status_cmd = {
	.name = "status",
	.summary = "which host runs what, against each app's current",
	.usage = "[APP] [--silent-after SECONDS] [--json]",
	.help = "Reads the reports deploy hosts write to storage (hosts/HOST/APP.json and\n"
		"their heartbeats) and shows, per app and host, the revision the host runs.\n"
		"A host is marked behind when it runs something else than the app's\n"
		"current, failed when its last operation on the app failed, silent when it\n"
		"watches and was not heard of for SECONDS (default 300). Exit status 1 when\n"
		"any host is marked (drift), for monitoring.",
	.opts = (const struct cli_opt[]){
		{ "silent-after", O_SILENT_AFTER, "SECONDS", "a watching host not heard of for\n"
		  "this long is silent (default 300)", NULL },
		{ "json", O_JSON, NULL, "print the view as JSON (what GET /api/v1/hosts serves)",
		  NULL },
		{ NULL },
	},
	.max_args = 1,
	.values = { cli_values_apps },
	.run = fleet_status,
};

static const struct cli_cmd fleet_forget_cmd = {
	.name = "forget",
	.summary = "remove the reports of a host that left the fleet",
	.usage = "HOST",
	.min_args = 1,
	.max_args = 1,
	.run = fleet_forget,
};

const struct cli_cmd cmd_fleet = {
	.name = "fleet",
	.summary = "what every deploy host runs (host reports)",
	.usage = "COMMAND [ARGS...]",
	.help = "The fleet view, from the reports deploy hosts write to storage.",
	.subs = (const struct cli_cmd *const[]){
		&fleet_status_cmd, &fleet_forget_cmd, NULL,
	},
};
