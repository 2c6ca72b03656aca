/*
 * serve/notify.c - outgoing notifications: signed JSON events POSTed to
 * serve.notify.urls.
 *
 * Build events go through the queue's outbox (queue/outbox.c): the worker
 * writes them in the transaction that ends the build, so a build never
 * waits for a receiver and a crash loses nothing. `upaas serve` delivers
 * them from one background thread: it claims due events (hidden from
 * other servers for a while), POSTs each with a timeout, deletes the
 * delivered ones and retries the others later (5 s, 10 s, 20 s ... up to
 * 10 min apart, serve.notify.retries times, then gives up and logs it).
 *
 * Deploy events happen on deploy hosts, which may have no queue: a
 * detached process sends them (notify_deploy()).
 *
 * Headers of every event: Content-Type: application/json,
 * X-Upaas-Event: <kind>, X-Upaas-Delivery: <id>, and, when
 * serve.notify.secret is set, X-Upaas-Signature-256: sha256=<hex
 * HMAC-SHA256 of the body under the secret>.
 */
#define UPAAS_SERVE_INTERNAL 1
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "serve/serve-int.h"

#define CLAIM_MAX 16
#define IDLE_WAIT_MS 1000
#define RETRY_FIRST_S 5
#define RETRY_MAX_S 600
/* A detached deploy sender: attempts per URL and its whole life. */
#define DEPLOY_ATTEMPTS 3
#define DEPLOY_LIFE_MAX_S 300

void notify_sign(const char *key, const void *body, size_t n, char hex[65])
{
	static const char digits[] = "0123456789abcdef";
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	HMAC(EVP_sha256(), key, (int)strlen(key), body, n, mac, &len);
	for (unsigned i = 0; i < 32 && i < len; i++) {
		hex[2 * i] = digits[mac[i] >> 4];
		hex[2 * i + 1] = digits[mac[i] & 15];
	}
	hex[64] = '\0';
	explicit_bzero(mac, sizeof(mac));
}

static size_t discard(char *p, size_t size, size_t n, void *data)
{
	return size * n;
}

/* POSTs body to url; 0 on a 2xx answer, else -errno with the reason. */
static int post_event(CURL *h, const char *url, const char *kind, const char *id,
		      const char *body, const char *secret, int timeout_s, struct err *e)
{
	struct curl_slist *hdr = NULL;
	hdr = curl_slist_append(hdr, "Content-Type: application/json");
	hdr = curl_slist_append(hdr, "Expect:");
	_cleanup_free_ char *k = xasprintf("X-Upaas-Event: %s", kind);
	_cleanup_free_ char *d = xasprintf("X-Upaas-Delivery: %s", id);
	hdr = curl_slist_append(hdr, k);
	hdr = curl_slist_append(hdr, d);
	_cleanup_free_ char *sig = NULL;
	if (secret) {
		char hex[65];
		notify_sign(secret, body, strlen(body), hex);
		sig = xasprintf("X-Upaas-Signature-256: sha256=%s", hex);
		hdr = curl_slist_append(hdr, sig);
	}
	curl_easy_reset(h);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "upaas/" PACKAGE_VERSION);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)timeout_s);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, (long)(timeout_s < 5 ? timeout_s : 5));
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
	CURLcode cc = curl_easy_perform(h);
	long code = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	curl_slist_free_all(hdr);
	if (cc != CURLE_OK)
		return err_set(e, -EIO, "%s", curl_easy_strerror(cc));
	if (code < 200 || code > 299)
		return err_set(e, -EPROTO, "HTTP %ld", code);
	return 0;
}

/* ------------------------------------------------------ the outbox thread */

/* Sleeps up to ms, or until the server stops. */
static void nap(struct server *s, int ms)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (long)(ms % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&s->stop_lock);
	if (!s->stopping)
		pthread_cond_timedwait(&s->stop_cond, &s->stop_lock, &until);
	pthread_mutex_unlock(&s->stop_lock);
}

static void deliver(struct server *s, struct queue *q, CURL *h, const struct queue_event *ev)
{
	const struct config *c = s->c;
	_cleanup_err_ struct err e = ERR_INIT;
	int r = post_event(h, ev->url, ev->kind, ev->id, ev->body, c->serve.notify.secret,
			   c->serve.notify.timeout, &e);
	_cleanup_err_ struct err qe = ERR_INIT;
	if (r >= 0) {
		log_info("notified %s of %s (%s)", ev->url, ev->kind, ev->id);
		r = queue_outbox_done(q, ev->id, &qe);
	} else if (ev->attempts >= c->serve.notify.retries) {
		log_warn("giving up notifying %s of %s (%s) after %d attempts: %s", ev->url,
			 ev->kind, ev->id, ev->attempts + 1, err_msg(&e));
		r = queue_outbox_done(q, ev->id, &qe);
	} else {
		int64_t delay = RETRY_FIRST_S;
		for (int i = 0; i < ev->attempts && delay < RETRY_MAX_S; i++)
			delay *= 2;
		if (delay > RETRY_MAX_S)
			delay = RETRY_MAX_S;
		log_warn("cannot notify %s of %s (%s): %s; again in %lld s", ev->url, ev->kind,
			 ev->id, err_msg(&e), (long long)delay);
		r = queue_outbox_retry(q, ev->id, queue_now(q) + delay * 1000, &qe);
	}
	if (r < 0)
		log_warn("notification outbox: %s", err_msg(&qe));
}

static void *notifier_main(void *data)
{
	struct server *s = data;
	struct queue *q = NULL;
	CURL *h = curl_easy_init();
	int errors = 0;
	while (!s->stopping) {
		_cleanup_err_ struct err e = ERR_INIT;
		if (!q && queue_open(&q, s->c, &e) < 0) {
			if (errors++ % 60 == 0)
				log_warn("notifications: %s", err_msg(&e));
			nap(s, IDLE_WAIT_MS);
			continue;
		}
		struct queue_event *v = NULL;
		size_t n = 0;
		int64_t hold = ((int64_t)s->c->serve.notify.timeout + 30) * 1000 * CLAIM_MAX;
		if (queue_outbox_claim(q, CLAIM_MAX, hold, &v, &n, &e) < 0) {
			if (errors++ % 60 == 0)
				log_warn("notifications: %s", err_msg(&e));
			nap(s, IDLE_WAIT_MS);
			continue;
		}
		errors = 0;
		for (size_t i = 0; i < n; i++)
			deliver(s, q, h, &v[i]);
		queue_events_free(v, n);
		if (n < CLAIM_MAX)
			nap(s, IDLE_WAIT_MS);
	}
	curl_easy_cleanup(h);
	queue_close(q);
	return NULL;
}

int notifier_start(struct server *s, struct err *e)
{
	if (!s->c->serve.notify.urls.n)
		return 0;   /* nothing to deliver to: the outbox stays empty */
	int r = pthread_create(&s->notifier, NULL, notifier_main, s);
	if (r)
		return err_set(e, -r, "cannot start the notification thread: %s", strerror(r));
	s->notifier_started = true;
	return 0;
}

void notifier_stop(struct server *s)
{
	if (!s->notifier_started)
		return;
	pthread_mutex_lock(&s->stop_lock);
	s->stopping = 1;
	pthread_cond_broadcast(&s->stop_cond);
	pthread_mutex_unlock(&s->stop_lock);
	pthread_join(s->notifier, NULL);
	s->notifier_started = false;
}

/* -------------------------------------------------- deploy events */

/* In the detached grandchild: posts to every URL, then _exit(). No
 * cleanup attributes here. */
static _Noreturn void deploy_sender(const struct config *c, const char *kind, const char *id,
				    const char *body)
{
	int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (fd >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
	}
	closefrom(3);
	/* whatever the receivers do, this process is gone by then */
	unsigned life = (unsigned)((c->serve.notify.timeout + 3) * DEPLOY_ATTEMPTS *
				   (int)c->serve.notify.urls.n);
	alarm(life < DEPLOY_LIFE_MAX_S ? life : DEPLOY_LIFE_MAX_S);
	CURL *h = curl_easy_init();
	for (size_t i = 0; h && i < c->serve.notify.urls.n; i++) {
		for (int a = 0; a < DEPLOY_ATTEMPTS; a++) {
			struct err e = ERR_INIT;
			int r = post_event(h, c->serve.notify.urls.v[i], kind, id, body,
					   c->serve.notify.secret, c->serve.notify.timeout, &e);
			err_free(&e);
			if (r >= 0)
				break;
			sleep((unsigned)(1 + 2 * a));
		}
	}
	_exit(0);
}

void notify_deploy(const struct config *c, const char *app, const struct deploy_result *r,
		   int rc, const struct err *e)
{
	if (!c->serve.notify.urls.n || (rc >= 0 && r->noop))
		return;
	const char *kind = rc < 0 ? "deploy.failed" : "deploy";
	char host[256] = "localhost";
	gethostname(host, sizeof(host) - 1);
	char t[32];
	time_iso8601(now_unix(), t);
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "event", json_object_new_string(kind));
	json_object_object_add(o, "time", json_object_new_string(t));
	json_object_object_add(o, "host", json_object_new_string(host));
	json_object_object_add(o, "deploy", deploy_result_json(app, r));
	json_object_object_add(o, "error", rc < 0 && e && e->code
					   ? json_object_new_string(err_msg(e)) : NULL);
	char *body = xstrdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
								 JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	char *id = id_new();
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid == 0) {
		/* its own session, and orphaned at once: never the caller's */
		setsid();
		if (fork() != 0)
			_exit(0);
		deploy_sender(c, kind, id, body);
	}
	if (pid > 0) {
		int status;
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		log_debug("%s event of '%s' sent in the background", kind, app);
	} else {
		log_warn("cannot send the %s event of '%s': fork: %s", kind, app, strerror(errno));
	}
	free(id);
	free(body);
}
