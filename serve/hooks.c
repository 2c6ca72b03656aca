/*
 * serve/hooks.c - git push webhooks: /hooks/github, /hooks/gitlab and
 * /hooks/gitea (Gitea and Forgejo), each optionally followed by /APP.
 *
 * A request is believed only when it is signed with the app's webhook
 * secret (GitHub: X-Hub-Signature-256, HMAC-SHA256 of the raw body;
 * GitLab: X-Gitlab-Token, the secret itself; Gitea: X-Gitea-Signature,
 * the hex HMAC-SHA256). Without /APP the apps are those whose registered
 * repository is one of the payload's repository URLs, and the signature
 * must verify with the secret of each app that is acted on. With /APP, the
 * payload's repository must be the app's.
 *
 * A push to the app's branch (its registered branch, or the repository's
 * default one) queues a build of exactly the pushed commit, coalescing as
 * `queue add` does. Other events, branches, tags and branch deletions are
 * acknowledged (200) and ignored. The delivery id is remembered in the
 * queue in the same transaction: the same delivery again is refused (409).
 *
 * Statuses: 202 queued, 200 ignored, 400 malformed, 401 bad or missing
 * signature, 403 repository mismatch, 404 no such app, 409 replay.
 */
#define UPAAS_SERVE_INTERNAL 1
#include <ctype.h>
#include <errno.h>
#include <string.h>

#include <openssl/crypto.h>

#include "serve/serve-int.h"

enum forge { FORGE_GITHUB, FORGE_GITLAB, FORGE_GITEA };

struct forge_info {
	const char *name;
	/* headers, first found wins */
	const char *event[3];
	const char *delivery[3];
	const char *signature[3];
	const char *push_event;  /* the event header's value of a push */
};

static const struct forge_info forges[] = {
	[FORGE_GITHUB] = { "github", { "X-GitHub-Event" }, { "X-GitHub-Delivery" },
			   { "X-Hub-Signature-256" }, "push" },
	[FORGE_GITLAB] = { "gitlab", { "X-Gitlab-Event" },
			   { "X-Gitlab-Event-UUID", "Idempotency-Key" }, { "X-Gitlab-Token" },
			   "Push Hook" },
	[FORGE_GITEA] = { "gitea", { "X-Gitea-Event", "X-Forgejo-Event", "X-Gogs-Event" },
			  { "X-Gitea-Delivery", "X-Forgejo-Delivery", "X-Gogs-Delivery" },
			  { "X-Gitea-Signature", "X-Forgejo-Signature", "X-Hub-Signature-256" },
			  "push" },
};

static const char *header_of(struct req *r, const char *const *names)
{
	for (size_t i = 0; i < 3 && names[i]; i++) {
		const char *v = req_header(r, names[i]);
		if (v && *v)
			return v;
	}
	return NULL;
}

/* ----------------------------------------------------------- repo URLs */

void repo_url_norm(const char *url, struct buf *out)
{
	buf_reset(out);
	while (*url == ' ' || *url == '\t')
		url++;
	const char *p = url;
	bool host_form = false;
	if (!strncmp(p, "file://", 7)) {
		p += 7;
	} else if (strstr(p, "://")) {
		p = strstr(p, "://") + 3;
		host_form = true;
	} else if (*p != '/' && strchr(p, ':') &&
		   (!strchr(p, '/') || strchr(p, ':') < strchr(p, '/'))) {
		host_form = true;   /* scp-like: user@host:path */
	}
	if (host_form) {
		size_t hostlen = strcspn(p, "/:");
		const char *at = memchr(p, '@', strcspn(p, "/"));
		if (at) {
			p = at + 1;
			hostlen = strcspn(p, "/:");
		}
		for (size_t i = 0; i < hostlen; i++)
			buf_addch(out, (char)tolower((unsigned char)p[i]));
		p += hostlen;
		if (*p == ':') {   /* a port, or scp's separator */
			p++;
			size_t digits = strspn(p, "0123456789");
			if (digits && (p[digits] == '/' || !p[digits]))
				p += digits;
		}
		if (*p != '/')
			buf_addch(out, '/');
		for (; *p && *p != '?' && *p != '#'; p++)
			buf_addch(out, (char)tolower((unsigned char)*p));
	} else {
		buf_adds(out, p);
	}
	/* no trailing slashes, no ".git" */
	for (;;) {
		if (out->len > 1 && out->p[out->len - 1] == '/')
			buf_setlen(out, out->len - 1);
		else if (out->len > 4 && !strcmp(out->p + out->len - 4, ".git"))
			buf_setlen(out, out->len - 4);
		else
			break;
	}
}

/* Every URL-ish string field of the payload's repository and project. */
static void payload_urls(struct json_object *payload, struct strv *urls)
{
	static const char *const objs[] = { "repository", "project" };
	for (size_t i = 0; i < ARRAY_SIZE(objs); i++) {
		struct json_object *o = NULL;
		if (!json_object_object_get_ex(payload, objs[i], &o) ||
		    !json_object_is_type(o, json_type_object))
			continue;
		json_object_object_foreach(o, key, val) {
			size_t n = strlen(key);
			bool urlish = !strcmp(key, "url") || !strcmp(key, "homepage") ||
				      (n > 4 && !strcmp(key + n - 4, "_url"));
			if (urlish && json_object_is_type(val, json_type_string)) {
				_cleanup_buf_ struct buf norm = BUF_INIT;
				repo_url_norm(json_object_get_string(val), &norm);
				if (norm.len && !strv_contains(urls, norm.p))
					strv_push(urls, norm.p);
			}
		}
	}
}

static bool repo_matches(const char *repo, const struct strv *urls)
{
	_cleanup_buf_ struct buf norm = BUF_INIT;
	repo_url_norm(repo, &norm);
	return norm.len && strv_contains(urls, norm.p);
}

/* ----------------------------------------------------------- signatures */

static int unhex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)tolower((unsigned char)c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* true when the request is signed with secret, compared in constant time. */
static bool signature_ok(enum forge f, const char *sig, const char *secret, const struct buf *body)
{
	if (!sig || !secret || !*secret)
		return false;
	if (f == FORGE_GITLAB) {
		/* the token itself: compare hashes, so that lengths leak nothing */
		char a[65], b[65];
		sha256_hex(sig, strlen(sig), a);
		sha256_hex(secret, strlen(secret), b);
		return CRYPTO_memcmp(a, b, 64) == 0;
	}
	if (!strncmp(sig, "sha256=", 7))
		sig += 7;
	if (strlen(sig) != 64)
		return false;
	unsigned char want[32];
	for (size_t i = 0; i < 32; i++) {
		int hi = unhex(sig[2 * i]), lo = unhex(sig[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return false;
		want[i] = (unsigned char)(hi << 4 | lo);
	}
	char hex[65];
	notify_sign(secret, body->p, body->len, hex);
	unsigned char got[32];
	for (size_t i = 0; i < 32; i++)
		got[i] = (unsigned char)(unhex(hex[2 * i]) << 4 | unhex(hex[2 * i + 1]));
	return CRYPTO_memcmp(want, got, 32) == 0;
}

/* ------------------------------------------------------------- payload */

static const char *jget_str(struct json_object *o, const char *a, const char *b)
{
	struct json_object *v = NULL;
	if (!json_object_object_get_ex(o, a, &v))
		return NULL;
	if (b && (!json_object_is_type(v, json_type_object) || !json_object_object_get_ex(v, b, &v)))
		return NULL;
	return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

/* %XX and + decoding of one form value. */
static char *form_decode(const char *s, size_t n)
{
	struct buf b = BUF_INIT;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '+') {
			buf_addch(&b, ' ');
		} else if (s[i] == '%' && i + 2 < n && unhex(s[i + 1]) >= 0 &&
			   unhex(s[i + 2]) >= 0) {
			buf_addch(&b, (char)(unhex(s[i + 1]) << 4 | unhex(s[i + 2])));
			i += 2;
		} else {
			buf_addch(&b, s[i]);
		}
	}
	return buf_detach(&b);
}

/* The payload: the body, or GitHub's form-encoded payload=...; NULL when
 * it is not a JSON object. */
static struct json_object *parse_payload(struct req *r)
{
	const char *ct = req_header(r, MHD_HTTP_HEADER_CONTENT_TYPE);
	_cleanup_free_ char *form = NULL;
	const char *text = r->body.p;
	size_t n = r->body.len;
	if (ct && !strncasecmp(ct, "application/x-www-form-urlencoded", 33)) {
		const char *p = r->body.p;
		while (p && strncmp(p, "payload=", 8)) {
			p = strchr(p, '&');
			if (p)
				p++;
		}
		if (!p)
			return NULL;
		p += 8;
		form = form_decode(p, strcspn(p, "&"));
		text = form;
		n = strlen(form);
	}
	struct json_tokener *tok = json_tokener_new_ex(64);
	struct json_object *o = json_tokener_parse_ex(tok, text, (int)n);
	bool whole = json_tokener_get_error(tok) == json_tokener_success &&
		     tok->char_offset == (int)n;
	json_tokener_free(tok);
	if (!o || !whole || !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

static bool all_zero(const char *sha)
{
	return sha && strspn(sha, "0") == strlen(sha);
}

/* --------------------------------------------------------------- handler */

struct hook {
	struct req *r;
	enum forge forge;
	const char *event;
	const char *delivery;
	const char *sig;
	struct json_object *payload;
	struct strv urls;
	struct queue *q;
	struct err e;
};

static enum MHD_Result ignored(struct hook *h, const char *fmt, ...) _printf_(2, 3);
static enum MHD_Result ignored(struct hook *h, const char *fmt, ...)
{
	_cleanup_free_ char *key = xasprintf("%s:%s", forges[h->forge].name, h->delivery);
	int rc = queue_delivery_record(h->q, key, &h->e);
	if (rc == -EEXIST)
		return reply_error(h->r, MHD_HTTP_CONFLICT, "delivery '%s' was received already: "
				   "a replay", h->delivery);
	if (rc < 0)
		return reply_err(h->r, rc, &h->e);
	_cleanup_buf_ struct buf why = BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	buf_vaddf(&why, fmt, ap);
	va_end(ap);
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "ignored", json_object_new_string(why.p));
	return reply_json(h->r, MHD_HTTP_OK, o);
}

/* Acts on the verified apps v[0..n): queues the pushed commit for those
 * whose branch was pushed. */
static enum MHD_Result act(struct hook *h, struct queue_app *v, size_t n)
{
	struct forge_info const *fi = &forges[h->forge];
	if (strcmp(h->event, fi->push_event))
		return ignored(h, "event '%s' is not a push", h->event);
	const char *ref = jget_str(h->payload, "ref", NULL);
	const char *after = jget_str(h->payload, "after", NULL);
	if (!ref || !after)
		return reply_error(h->r, MHD_HTTP_BAD_REQUEST, "a push payload has 'ref' and 'after'");
	if (strncmp(ref, "refs/heads/", 11))
		return ignored(h, "'%s' is not a branch", ref);
	if (all_zero(after))
		return ignored(h, "branch '%s' was deleted", ref + 11);
	if (strlen(after) < 7 || strlen(after) > 64 || strspn(after, "0123456789abcdef") != strlen(after))
		return reply_error(h->r, MHD_HTTP_BAD_REQUEST, "'after' is not a commit id");
	const char *branch = ref + 11;
	const char *dflt = jget_str(h->payload, "repository", "default_branch");
	if (!dflt)
		dflt = jget_str(h->payload, "project", "default_branch");

	struct json_object *queued = json_object_new_array();
	_cleanup_buf_ struct buf others = BUF_INIT;
	for (size_t i = 0; i < n; i++) {
		const char *want = v[i].branch ? v[i].branch : dflt;
		if (!want || strcmp(want, branch)) {
			buf_addf(&others, "%s%s builds '%s'", others.len ? ", " : "", v[i].name,
				 want ? want : "(unknown default branch)");
			continue;
		}
		_cleanup_free_ char *key = xasprintf("%s:%s:%s", fi->name, h->delivery, v[i].name);
		_cleanup_free_ char *id = NULL;
		bool coalesced = false;
		int rc = queue_add_delivery(h->q, key, v[i].name, after, false, &id, &coalesced, &h->e);
		if (rc == -EEXIST) {
			json_object_put(queued);
			return reply_error(h->r, MHD_HTTP_CONFLICT, "delivery '%s' was received "
					   "already: a replay", h->delivery);
		}
		if (rc < 0) {
			json_object_put(queued);
			return reply_err(h->r, rc, &h->e);
		}
		log_info("%s push to %s of %s: build %s%s", fi->name, branch, v[i].name, id,
			 coalesced ? " (joined a queued build)" : "");
		struct json_object *o = json_object_new_object();
		json_object_object_add(o, "app", json_object_new_string(v[i].name));
		json_object_object_add(o, "id", json_object_new_string(id));
		json_object_object_add(o, "commit", json_object_new_string(after));
		json_object_object_add(o, "coalesced", json_object_new_boolean(coalesced));
		json_object_array_add(queued, o);
	}
	if (json_object_array_length(queued) == 0) {
		json_object_put(queued);
		return ignored(h, "push to '%s': %s", branch, others.p);
	}
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "queued", queued);
	return reply_json(h->r, MHD_HTTP_ACCEPTED, o);
}

static enum MHD_Result hook_run(struct hook *h, const char *app)
{
	struct req *r = h->r;
	if (!h->delivery)
		return reply_error(r, MHD_HTTP_BAD_REQUEST, "no delivery id header (%s)",
				   forges[h->forge].delivery[0]);
	if (!h->event)
		return reply_error(r, MHD_HTTP_BAD_REQUEST, "no event header (%s)",
				   forges[h->forge].event[0]);
	if (!h->sig)
		return reply_error(r, MHD_HTTP_UNAUTHORIZED, "unsigned: the webhook needs the "
				   "app's secret (%s)", forges[h->forge].signature[0]);

	struct queue_app *v = NULL;
	size_t n = 0;
	enum MHD_Result ret;
	if (app) {
		/* one app: check the signature before looking at the payload */
		v = xcalloc(1, sizeof(*v));
		int rc = queue_app_get(h->q, app, v, &h->e);
		if (rc < 0) {
			free(v);
			return reply_err(r, rc, &h->e);
		}
		n = 1;
		if (!signature_ok(h->forge, h->sig, v[0].webhook_secret, &r->body)) {
			queue_apps_free(v, n);
			return reply_error(r, MHD_HTTP_UNAUTHORIZED, "bad signature for app '%s'", app);
		}
		h->payload = parse_payload(r);
		if (!h->payload) {
			queue_apps_free(v, n);
			return reply_error(r, MHD_HTTP_BAD_REQUEST, "the payload is not a JSON object");
		}
		payload_urls(h->payload, &h->urls);
		if (!repo_matches(v[0].repo, &h->urls)) {
			queue_apps_free(v, n);
			return reply_error(r, MHD_HTTP_FORBIDDEN, "the payload's repository is not "
					   "the one of app '%s'", app);
		}
	} else {
		/* the apps of the payload's repository that the signature is for */
		h->payload = parse_payload(r);
		if (!h->payload)
			return reply_error(r, MHD_HTTP_BAD_REQUEST, "the payload is not a JSON object");
		payload_urls(h->payload, &h->urls);
		struct queue_app *all = NULL;
		size_t n_all = 0;
		int rc = queue_app_list(h->q, &all, &n_all, &h->e);
		if (rc < 0)
			return reply_err(r, rc, &h->e);
		size_t matched = 0;
		v = xcalloc(n_all ? n_all : 1, sizeof(*v));
		for (size_t i = 0; i < n_all; i++) {
			if (!repo_matches(all[i].repo, &h->urls))
				continue;
			matched++;
			if (signature_ok(h->forge, h->sig, all[i].webhook_secret, &r->body)) {
				v[n++] = all[i];
				all[i] = (struct queue_app){ 0 };
			}
		}
		queue_apps_free(all, n_all);
		if (!matched) {
			free(v);
			return reply_error(r, MHD_HTTP_NOT_FOUND, "no app is registered for this "
					   "repository");
		}
		if (!n) {
			free(v);
			return reply_error(r, MHD_HTTP_UNAUTHORIZED, "bad signature");
		}
	}
	ret = act(h, v, n);
	queue_apps_free(v, n);
	return ret;
}

enum MHD_Result hooks_handle(struct req *r, const char *path)
{
	if (strcmp(r->method, "POST"))
		return reply_error(r, MHD_HTTP_METHOD_NOT_ALLOWED, "webhooks are POSTed");
	path++;   /* the '/' */
	size_t n = strcspn(path, "/");
	int f = -1;
	for (size_t i = 0; i < ARRAY_SIZE(forges); i++)
		if (strlen(forges[i].name) == n && !strncmp(path, forges[i].name, n))
			f = (int)i;
	if (!strncmp(path, "forgejo", n) && n == 7)
		f = FORGE_GITEA;
	const char *app = path[n] == '/' && path[n + 1] ? path + n + 1 : NULL;
	if (f < 0 || (app && !app_name_ok(app)))
		return reply_error(r, MHD_HTTP_NOT_FOUND, "no webhook '%s' (github, gitlab, gitea, "
				   "each optionally followed by /APP)", r->url);
	struct hook h = { .r = r, .forge = (enum forge)f, .urls = STRV_INIT, .e = ERR_INIT };
	h.event = header_of(r, forges[f].event);
	h.delivery = header_of(r, forges[f].delivery);
	h.sig = header_of(r, forges[f].signature);
	int rc = pool_get(&r->srv->pool, &h.q, &h.e);
	enum MHD_Result ret = rc < 0 ? reply_err(r, rc == -EBUSY ? -EIO : rc, &h.e)
				     : hook_run(&h, app);
	pool_put(&r->srv->pool, h.q);
	json_object_put(h.payload);
	strv_free(&h.urls);
	err_free(&h.e);
	return ret;
}
