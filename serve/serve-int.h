/*
 * serve/serve-int.h - private to serve/: the server's shared state, the
 * request, the database pool, replies and the handlers of each file.
 *
 * Threads: libmicrohttpd's internal polling thread accepts, and each
 * connection gets its own thread (bounded by serve.limits.connections), so
 * a handler may block (a live log follows its file) without holding up
 * anyone else. Shared state is the pool (mutex + condvar), the rate table
 * (mutex) and read-only config.
 */
#ifndef UPAAS_SERVE_INT_H
#define UPAAS_SERVE_INT_H

#ifndef UPAAS_SERVE_INTERNAL
#error "serve-int.h is private to the serve module: include serve/serve.h"
#endif

#include <netinet/in.h>
#include <pthread.h>

#include <microhttpd.h>
#include <json-c/json.h>

#include "package/package.h"
#include "queue/queue.h"
#include "serve/serve.h"
#include "storage/storage.h"

/* ------------------------------------------------------------ the pool */

/* Queue connections, opened on demand up to max, each lent to one thread
 * at a time. */
struct pool {
	pthread_mutex_t lock;
	pthread_cond_t freed;
	const struct config *c;
	struct queue **idle;
	size_t n_idle;
	size_t open;             /* lent + idle */
	size_t max;
};
int pool_init(struct pool *p, const struct config *c, size_t max, struct err *e);
void pool_destroy(struct pool *p);
/* Borrows a connection, waiting up to 10 s when all are lent (-EBUSY). */
int pool_get(struct pool *p, struct queue **ret, struct err *e);
void pool_put(struct pool *p, struct queue *q);

/* ------------------------------------------------------- address ranges */

struct cidr {
	int family;              /* AF_INET or AF_INET6 */
	unsigned char addr[16];
	int bits;
};
int cidr_parse(const char *s, struct cidr *ret);
bool cidr_match(const struct cidr *v, size_t n, int family, const unsigned char *addr);

/* -------------------------------------------------------------- server */

#define RATE_SLOTS 4096

struct rate_slot {
	char ip[48];
	double tokens;
	uint64_t last_ms;
};

struct server {
	const struct config *c;
	struct sign_trust trust;   /* signing.trusted: packages shown are verified */
	struct MHD_Daemon *d;
	MHD_socket lsock;        /* after quiescing */
	struct pool pool;
	char *web_dir;
	int web_fd;              /* O_PATH of web_dir, -1 when missing */
	struct cidr *proxies;
	size_t n_proxies;
	pthread_mutex_t rate_lock;
	struct rate_slot *rate;  /* RATE_SLOTS */
	volatile int stopping;   /* set on SIGTERM: live streams end */
	pthread_t notifier;
	bool notifier_started;
	pthread_mutex_t stop_lock;
	pthread_cond_t stop_cond;
};

/* One request, from its first call to its completion. */
struct req {
	struct server *srv;
	struct MHD_Connection *conn;
	const char *method;
	const char *url;
	char ip[48];             /* the client: the peer, or X-Forwarded-For
				  * when the peer is a trusted proxy */
	bool forwarded_https;
	struct buf body;
	bool body_too_large;
	bool replied;
	uint64_t start_ms;
	unsigned status;
	/* auth */
	bool authed;             /* a valid token, or anonymous read */
	char *token_name;
	enum token_scope scope;
};

/* ------------------------------------------------------------- replies */

/* Queues a reply and records its status. Headers common to every reply
 * (nosniff, no referrer, frame denial) are added here. */
enum MHD_Result reply(struct req *r, unsigned status, struct MHD_Response *resp);
/* JSON reply; takes o. */
enum MHD_Result reply_json(struct req *r, unsigned status, struct json_object *o);
/* {"error": "..."} */
enum MHD_Result reply_error(struct req *r, unsigned status, const char *fmt, ...)
	_printf_(3, 4);
/* Maps -errno to a status: -ENOENT 404, -EEXIST/-EBUSY 409, -EINVAL 400,
 * -EACCES 403, -E2BIG 413, else 500; the message is err_msg(e). */
enum MHD_Result reply_err(struct req *r, int code, const struct err *e);
/* Parses the request body as a JSON object; NULL after a 400 reply. */
struct json_object *req_json_body(struct req *r);
const char *req_header(struct req *r, const char *name);
const char *req_arg(struct req *r, const char *name);

/* ------------------------------------------------------------ handlers */

/* api.c: /api/v1/... ; path is below /api/v1 */
enum MHD_Result api_handle(struct req *r, const char *path);
/* hooks.c: /hooks/FORGE[/APP] */
enum MHD_Result hooks_handle(struct req *r, const char *path);
/* static.c: the dashboard's files */
enum MHD_Result static_handle(struct req *r, const char *path);

/* hooks.c: a repository URL reduced to host/path or a local path, for
 * comparing a registered repo with a forge's URLs. */
void repo_url_norm(const char *url, struct buf *out);

/* notify.c: the outbox's delivery thread */
int notifier_start(struct server *s, struct err *e);
void notifier_stop(struct server *s);

#endif
