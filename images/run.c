/*
 * images/run.c - `image run`: one command in a throwaway overlay over the
 * cached root of a base image, contained by the sandbox.
 *
 * Order: the image (the default one is created on first use) -> its cached
 * root (rootfs/rootcache.c) -> a private mount namespace -> sweep what dead
 * runs left -> take run-<id>.lock -> workspace run-<id> -> sandbox_run ->
 * destroy the workspace -> drop the lock (rootfs/workdir.c).
 */
#include <errno.h>
#include <string.h>

#include "actions/actions.h"
#include "images/images.h"
#include "package/package.h"
#include "rootfs/rootfs.h"
#include "sandbox/sandbox.h"

/* The default image is made on first use; another name must exist, so that
 * a typo does not bootstrap a new image. */
static int image_for_run(const struct config *c, struct storage *s, const char *name,
			 struct image_info *ret, struct err *e)
{
	_cleanup_free_ char *def = image_default_name(c);
	int r;

	if (strcmp(name, def)) {
		struct image_info probe = { 0 };
		_cleanup_trust_ struct sign_trust t = SIGN_TRUST_INIT;

		r = sign_trust_config(&t, c, e);
		if (r < 0)
			return r;
		r = image_load(s, &t, name, &probe, e);
		image_info_free(&probe);
		if (r == -ENOENT) {
			err_clear(e);
			return err_set(e, r, "no image '%s' (create it with 'upaas image create %s')",
				       name, name);
		}
		if (r < 0)
			return r;
	}
	return image_ensure(c, s, name, false, ret, e);
}

int image_run(const struct config *c, struct storage *s, const struct image_run_opts *o,
	      struct err *e)
{
	struct image_info i = { 0 };
	struct workspace w = WORKSPACE_INIT;
	struct sandbox sb = SANDBOX_INIT;
	_cleanup_strv_ struct strv lowers = STRV_INIT;
	_cleanup_free_ char *id = NULL, *dir = NULL;
	_cleanup_err_ struct err e2 = ERR_INIT;
	int lock, r;

	if (!o->argv || !o->argv[0])
		return err_set(e, -EINVAL, "image run: no command");
	r = image_for_run(c, s, o->name, &i, e);
	if (r < 0)
		return r;
	r = rootcache_get(c, s, i.key, i.sha256, i.size, &lowers, e);
	image_info_free(&i);
	if (r < 0)
		return r;
	r = sandbox_private_mounts(e);
	if (r < 0)
		return r;
	workdir_sweep(c, -1);

	id = id_new();
	dir = workdir_run_dir(c, id);
	lock = workdir_lock_run(c, id, e);
	if (lock < 0)
		return lock;
	r = workspace_create(&w, c, dir, &lowers, e);
	if (r < 0) {
		workdir_unlock_run(c, id, lock);
		workspace_free(&w);
		return r;
	}

	sb.root = w.root;
	for (char *const *a = o->argv; *a; a++)
		strv_push(&sb.argv, *a);
	strv_push(&sb.env, "PATH=" SANDBOX_DEFAULT_PATH);
	strv_pushf(&sb.env, "HOME=%s", o->as_user ? c->apps.home : "/root");
	strv_push(&sb.env, "LANG=C.UTF-8");
	if (o->term)
		strv_pushf(&sb.env, "TERM=%s", o->term);
	sb.network = o->network;
	sb.drop_privs = o->as_user;
	sb.uid = (uid_t)c->apps.uid;
	sb.gid = (gid_t)c->apps.gid;
	sb.timeout_ms = o->timeout_s * 1000u;
	sb.stdin_fd = o->stdin_fd;
	struct sandbox_policy pol;
	actions_sandbox_policy(c, &pol);
	sandbox_apply_policy(&sb, &pol);
	r = sandbox_run(&sb, e);
	sandbox_free(&sb);

	if (workspace_destroy(&w, &e2) < 0) {
		/* the lock file stays: the next sweep removes the workspace */
		log_warn("%s", err_msg(&e2));
		close(lock);
	} else {
		workdir_unlock_run(c, id, lock);
	}
	workspace_free(&w);
	return r;
}
