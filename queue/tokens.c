/*
 * queue/tokens.c - API tokens (stored as sha256, compared in constant
 * time) and the webhook delivery ids that `upaas serve` remembers to refuse
 * replays.
 */
#define UPAAS_QUEUE_INTERNAL 1
#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include <openssl/crypto.h>

#include "queue/queue-int.h"

#define TOKEN_PREFIX "upaas_"
/* Writes of last_used at most this often per token. */
#define LAST_USED_EVERY_MS 60000

static const char *const scope_names[] = {
	[TOKEN_READ] = "read",
	[TOKEN_BUILD] = "build",
	[TOKEN_ADMIN] = "admin",
};

const char *token_scope_name(enum token_scope s)
{
	return (size_t)s < ARRAY_SIZE(scope_names) ? scope_names[s] : "unknown";
}

int token_scope_parse(const char *name, enum token_scope *ret)
{
	for (size_t i = 0; i < ARRAY_SIZE(scope_names); i++)
		if (name && !strcmp(name, scope_names[i])) {
			*ret = (enum token_scope)i;
			return 0;
		}
	return -EINVAL;
}

int queue_random_hex(char out[65])
{
	static const char digits[] = "0123456789abcdef";
	unsigned char b[32];
	size_t got = 0;
	while (got < sizeof(b)) {
		ssize_t n = getrandom(b + got, sizeof(b) - got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		got += (size_t)n;
	}
	for (size_t i = 0; i < sizeof(b); i++) {
		out[2 * i] = digits[b[i] >> 4];
		out[2 * i + 1] = digits[b[i] & 15];
	}
	out[64] = '\0';
	explicit_bzero(b, sizeof(b));
	return 0;
}

void queue_token_clear(struct queue_token *t)
{
	if (!t)
		return;
	free(t->name);
	memset(t, 0, sizeof(*t));
}

void queue_tokens_free(struct queue_token *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		queue_token_clear(&v[i]);
	free(v);
}

int queue_token_add(struct queue *q, const char *name, enum token_scope scope,
		    char **ret_token, struct err *e)
{
	if (!name || !app_name_ok(name))
		return err_set(e, -EINVAL, "invalid token name '%s' (want [a-z0-9][a-z0-9._-]*)",
			       name ? name : "");
	char rnd[65], hash[65];
	int r = queue_random_hex(rnd);
	if (r < 0)
		return err_set(e, r, "cannot make a token: %s", strerror(-r));
	char *token = xasprintf(TOKEN_PREFIX "%s", rnd);
	explicit_bzero(rnd, sizeof(rnd));
	sha256_hex(token, strlen(token), hash);
	struct qv p[] = { QV_S(name), QV_S(token_scope_name(scope)), QV_T(hash),
			  QV_I(queue_now(q)) };
	r = queue_sql_exec(q, "INSERT INTO tokens (name, scope, hash, created) VALUES ($1, $2, $3, $4)",
			   p, 4, e);
	if (r == -EEXIST) {
		err_clear(e);
		r = err_set(e, -EEXIST, "token '%s' exists already", name);
	}
	if (r < 0) {
		explicit_bzero(token, strlen(token));
		free(token);
		return r;
	}
	*ret_token = token;
	return 0;
}

struct token_rows {
	struct queue_token *v;
	size_t n;
	struct strv hashes;     /* for verify */
};

static int row_token(void *data, int ncols, const char *const *v)
{
	struct token_rows *t = data;
	if (ncols < 5)
		return -EIO;
	enum token_scope sc = TOKEN_READ;
	token_scope_parse(v[1], &sc);
	t->v = xrealloc(t->v, (t->n + 1) * sizeof(*t->v));
	t->v[t->n++] = (struct queue_token){
		.name = queue_col_str(v[0]), .scope = sc, .created = queue_col_int(v[3]),
		.last_used = queue_col_int(v[4]),
	};
	strv_push(&t->hashes, v[2] ? v[2] : "");
	return 0;
}

static int token_rows(struct queue *q, struct token_rows *t, struct err *e)
{
	*t = (struct token_rows){ .hashes = STRV_INIT };
	int r = queue_sql_rows(q, "SELECT name, scope, hash, created, last_used FROM tokens"
			       " ORDER BY name", NULL, 0, row_token, t, e);
	if (r < 0) {
		queue_tokens_free(t->v, t->n);
		strv_free(&t->hashes);
	}
	return r;
}

int queue_token_list(struct queue *q, struct queue_token **ret, size_t *ret_n, struct err *e)
{
	struct token_rows t;
	int r = token_rows(q, &t, e);
	if (r < 0)
		return r;
	strv_free(&t.hashes);
	*ret = t.v;
	*ret_n = t.n;
	return 0;
}

int queue_token_remove(struct queue *q, const char *name, struct err *e)
{
	struct qv p[] = { QV_S(name) };
	int r = queue_sql_exec(q, "DELETE FROM tokens WHERE name = $1", p, 1, e);
	if (r == 0)
		return err_set(e, -ENOENT, "no token '%s'", name);
	return r < 0 ? r : 0;
}

int queue_token_verify(struct queue *q, const char *token, struct queue_token *ret,
		       struct err *e)
{
	char hash[65];
	sha256_hex(token, strlen(token), hash);
	struct token_rows t;
	int r = token_rows(q, &t, e);
	if (r < 0)
		return r;
	/* Every stored hash is compared, whatever matched before: the time
	 * taken says nothing about which token, if any, matched. */
	ssize_t found = -1;
	for (size_t i = 0; i < t.n; i++) {
		bool same = strlen(t.hashes.v[i]) == 64 &&
			    CRYPTO_memcmp(t.hashes.v[i], hash, 64) == 0;
		if (same)
			found = (ssize_t)i;
	}
	strv_free(&t.hashes);
	if (found < 0) {
		queue_tokens_free(t.v, t.n);
		return err_set(e, -EACCES, "unknown token");
	}
	*ret = t.v[found];
	t.v[found] = (struct queue_token){ 0 };
	queue_tokens_free(t.v, t.n);

	int64_t now = queue_now(q);
	if (ret->last_used < now - LAST_USED_EVERY_MS) {
		_cleanup_err_ struct err ignored = ERR_INIT;
		struct qv p[] = { QV_S(ret->name), QV_I(now) };
		if (queue_sql_exec(q, "UPDATE tokens SET last_used = $2 WHERE name = $1", p, 2,
				   &ignored) >= 0)
			ret->last_used = now;
	}
	return 0;
}

/* ----------------------------------------------------- webhook deliveries */

int queue_delivery_record(struct queue *q, const char *delivery, struct err *e)
{
	if (!delivery || !*delivery || strlen(delivery) > 200)
		return err_set(e, -EINVAL, "a webhook delivery id of 1 to 200 characters is needed");
	int64_t now = queue_now(q);
	struct qv p[] = { QV_S(delivery), QV_I(now) };
	int r = queue_sql_exec(q, "INSERT INTO hook_deliveries (id, received) VALUES ($1, $2)",
			       p, 2, e);
	if (r == -EEXIST) {
		err_clear(e);
		return err_set(e, -EEXIST, "webhook delivery '%s' was received already", delivery);
	}
	if (r < 0)
		return r;
	struct qv old[] = { QV_I(now - QUEUE_DELIVERY_KEEP_MS) };
	r = queue_sql_exec(q, "DELETE FROM hook_deliveries WHERE received < $1", old, 1, e);
	return r < 0 ? r : 0;
}
