/*
 * config/plan.c - the merge rules of DESIGN.md: which interpreter version a
 * build uses, and the env, packages and actions it runs with.
 */
#define UPAAS_CONFIG_INTERNAL
#include <errno.h>
#include <string.h>

#include "config/config-int.h"

static const struct cfg_interp_type *type_find(const struct config *c, const char *name)
{
	for (size_t i = 0; name && i < c->interpreters.n_types; i++)
		if (!strcmp(c->interpreters.types[i].name, name))
			return &c->interpreters.types[i];
	return NULL;
}

static bool matches_any(const struct strv *patterns, const char *v)
{
	for (size_t i = 0; i < patterns->n; i++)
		if (version_match(patterns->v[i], v))
			return true;
	return false;
}

/* The highest configured version that pattern matches, NULL if none. */
static const struct cfg_interp_version *best_match(const struct cfg_interp_type *t,
						   const char *pattern)
{
	const struct cfg_interp_version *best = NULL;
	for (size_t i = 0; i < t->n_versions; i++)
		if (version_match(pattern, t->versions[i].version) &&
		    (!best || version_cmp(t->versions[i].version, best->version) > 0))
			best = &t->versions[i];
	return best;
}

/*
 * Picks the version. keep wins when it is still configured and still asked
 * for (an app that moved from "3.9" to "3.11" must not stay on 3.9 because
 * an incremental build started from a 3.9 package); then the candidates in
 * order, each taking the highest configured version it matches; without
 * candidates the highest configured version.
 * ret_v is NULL when the type has no versions list (only its any block).
 */
static int choose_version(const struct cfg_interp_type *t, const struct strv *cands,
			  const char *keep, const struct cfg_interp_version **ret_v,
			  char **ret_name, struct err *e)
{
	bool keep_ok = keep && *keep && (!cands->n || matches_any(cands, keep));

	if (!t->n_versions) {
		*ret_v = NULL;
		*ret_name = xstrdup(keep_ok ? keep : cands->n ? cands->v[0] : "");
		return 0;
	}
	for (size_t i = 0; keep_ok && i < t->n_versions; i++) {
		if (!strcmp(t->versions[i].version, keep)) {
			*ret_v = &t->versions[i];
			*ret_name = xstrdup(keep);
			return 0;
		}
	}
	const struct cfg_interp_version *best = NULL;
	if (!cands->n)
		best = best_match(t, "");
	for (size_t i = 0; !best && i < cands->n; i++)
		best = best_match(t, cands->v[i]);
	if (best) {
		*ret_v = best;
		*ret_name = xstrdup(best->version);
		return 0;
	}
	_cleanup_buf_ struct buf want = BUF_INIT, have = BUF_INIT;
	for (size_t i = 0; i < cands->n; i++)
		buf_addf(&want, "%s'%s'", i ? ", " : "", cands->v[i]);
	for (size_t i = 0; i < t->n_versions; i++)
		buf_addf(&have, "%s%s", i ? ", " : "", t->versions[i].version);
	return err_set(e, -EINVAL, "no configured %s version matches %s (configured: %s)",
		       t->name, want.p, have.p);
}

/* Copies src over dst when src is defined at this level. */
static void action_override(struct action *dst, const struct action *src)
{
	if (src->defined)
		action_copy(dst, src);
}

static void strv_uniq_sorted(struct strv *v)
{
	size_t w = 0;
	strv_sort(v);
	for (size_t i = 0; i < v->n; i++) {
		if (w && !strcmp(v->v[w - 1], v->v[i])) {
			free(v->v[i]);
			continue;
		}
		v->v[w++] = v->v[i];
	}
	v->n = w;
	if (v->v)
		v->v[w] = NULL;
}

int plan_make(struct plan *p, const struct config *c, const struct metadata *m,
	      const char *keep_version, const char *want_version, struct err *e)
{
	const struct cfg_interp_type *t = type_find(c, m->interp_type);
	const struct cfg_interp_version *v = NULL;
	struct plan r = { 0 };
	_cleanup_strv_ struct strv cands = STRV_INIT;

	if (!t) {
		_cleanup_buf_ struct buf have = BUF_INIT;
		for (size_t i = 0; i < c->interpreters.n_types; i++)
			buf_addf(&have, "%s%s", i ? ", " : "", c->interpreters.types[i].name);
		return err_set(e, -EINVAL, "interpreter type '%s' is not configured (configured: %s)",
			       m->interp_type ? m->interp_type : "(none)",
			       have.len ? have.p : "none");
	}
	if (want_version && *want_version)
		strv_push(&cands, want_version);
	else
		strv_copy(&cands, &m->interp_versions);
	int rc = choose_version(t, &cands, keep_version, &v, &r.interp_version, e);
	if (rc < 0)
		return rc;
	r.interp_type = xstrdup(t->name);

	/* env: later wins */
	kvlist_merge(&r.env, &c->interpreters.env);
	kvlist_merge(&r.env, &t->any.env);
	if (v)
		kvlist_merge(&r.env, &v->env);
	kvlist_merge(&r.env, &m->env);

	/* packages: the union */
	strv_extend(&r.packages, &t->any.packages);
	if (v)
		strv_extend(&r.packages, &v->packages);
	strv_extend(&r.packages, &m->os_packages);
	strv_uniq_sorted(&r.packages);

	/* actions: each level that defines one replaces the earlier one; the
	 * levels that may not define an action are skipped here too, so a
	 * hand-made struct cannot smuggle one in */
	static const enum step global_only[] = { STEP_SYSTEM, STEP_FINALIZE };
	for (size_t i = 0; i < ARRAY_SIZE(global_only); i++)
		action_override(&r.actions[global_only[i]], &c->interpreters.actions.a[global_only[i]]);
	action_override(&r.actions[STEP_INTERPRETER], &t->any.actions.a[STEP_INTERPRETER]);
	if (v)
		action_override(&r.actions[STEP_INTERPRETER], &v->actions.a[STEP_INTERPRETER]);
	static const enum step app_steps[] = { STEP_BEFORE, STEP_MAIN, STEP_AFTER };
	for (size_t i = 0; i < ARRAY_SIZE(app_steps); i++) {
		enum step st = app_steps[i];
		action_override(&r.actions[st], &c->interpreters.actions.a[st]);
		action_override(&r.actions[st], &t->any.actions.a[st]);
		if (v)
			action_override(&r.actions[st], &v->actions.a[st]);
		action_override(&r.actions[st], &m->actions.a[st]);
	}
	*p = r;
	return 0;
}

void plan_free(struct plan *p)
{
	if (!p)
		return;
	free(p->interp_type);
	free(p->interp_version);
	strv_free(&p->packages);
	kvlist_free(&p->env);
	for (int i = 0; i < STEP__COUNT; i++)
		action_free(&p->actions[i]);
	*p = (struct plan){ 0 };
}
