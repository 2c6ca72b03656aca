/*
 * serve/serve.h - `upaas serve`: the HTTP API, the git webhooks, the web
 * dashboard and the delivery of outgoing notifications; and the
 * notifications a deploy host sends itself.
 *
 * Lifecycle: serve_run() blocks until SIGTERM or SIGINT, then stops
 * accepting, lets running requests finish (a few seconds at most; live
 * log streams are ended), stops the server and returns 0.
 *
 * The state is the queue (queue.url): the server keeps nothing that a
 * SIGKILL could lose. Every request thread borrows a queue connection from
 * a small pool; one struct queue is never used by two threads at once.
 */
#ifndef UPAAS_SERVE_H
#define UPAAS_SERVE_H

#include "common/common.h"
#include "config/config.h"
#include "deploy/deploy.h"
#include "package/package.h"

struct json_object;

struct serve_opts {
	const char *listen;        /* NULL: serve.listen */
	const char *web_dir;       /* NULL: serve.web_dir */
};

/*
 * Runs the server of config c (storage secrets resolved) until SIGTERM or
 * SIGINT, which it blocks in every thread and waits for itself. Logs
 * "listening on URL" once it accepts connections. Returns 0 after a clean
 * stop or -errno (cannot listen, cannot open the queue, bad TLS files).
 */
int serve_run(const struct config *c, const struct serve_opts *o, struct err *e);

/* ------------------------------------------------------------ JSON */

/* A package as `upaas package list --json` prints it: the manifest plus
 * "current" (caller puts). NULL when p->json is not JSON. */
struct json_object *package_json(const struct package_info *p, bool is_current);
/* A deploy result as `upaas deploy --json` prints it. */
struct json_object *deploy_result_json(const char *app, const struct deploy_result *r);

/* ----------------------------------------------------- notifications */

/*
 * Sends the event of a deploy, rollback or undeploy on this host (rc is
 * its result, e its error) to serve.notify.urls, signed like every event
 * (X-Upaas-Signature-256). A deploy host may have no queue, so this does
 * not use the outbox: a detached process (double fork, own session) posts
 * it with retries and exits within a fixed time, whatever the receivers
 * do; the caller never waits for it. Nothing happens without URLs.
 */
void notify_deploy(const struct config *c, const char *app, const struct deploy_result *r,
		   int rc, const struct err *e);

/* HMAC-SHA256 of body under key as 64 hex digits + NUL. */
void notify_sign(const char *key, const void *body, size_t n, char hex[65]);

#endif
