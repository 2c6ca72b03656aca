/*
 * builder/build.c - one build of an app (build_run), in stages:
 *
 *   fetch      the app's bare mirror, REF -> commit, .upaas.cfg at it
 *   base       fresh (the base image) or incremental (the current package),
 *              and why; the plan (config + metadata)
 *   workspace  overlay over the cached root of the base (rootcache.c): an
 *              unpacked copy, or the previous build's layers over one
 *   steps      actions_run(): system ... finalize in the sandbox
 *   pack       what packing excludes is deleted in the overlay (so the
 *              merged view is what gets packed), then pack_tree() streamed
 *              into the storage upload of the blob
 *   publish    the bill of materials, the manifest's signature, the manifest,
 *              then apps/<app>/current (signed, its sequence one more than
 *              the verified previous one), then the log
 *
 * What the build takes from storage is verified first: the current pointer
 * and the parent's manifest against signing.trusted, the base image's
 * manifest too (images/), and every blob against the size and sha256 of
 * its verified manifest while it streams (rootfs/rootcache.c).
 *
 * After a successful build the overlay is unmounted and its upper dir kept
 * in the root cache as the layer of the new package, so the next
 * incremental build stacks it instead of unpacking the package.
 *
 * The whole build runs in a private mount namespace and holds its app's
 * lock in the work dir (rootfs/workdir.c), so builds of one app never
 * overlap, and a work dir whose build is gone (the lock is free) is swept.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include <json-c/json.h>

#include "actions/actions.h"
#include "archive/archive.h"
#include "builder/builder.h"
#include "builder/build-int.h"
#include "images/images.h"
#include "package/package.h"
#include "rootfs/rootfs.h"
#include "sandbox/sandbox.h"

#define METADATA_FILE ".upaas.cfg"
#define METADATA_MAX ((size_t)1 << 20)
#define LOG_TAIL_LINES 20
#define LOG_TAIL_BYTES ((off_t)256 << 10)  /* where the last lines are looked for */
#define LOG_TAIL_LINE_MAX 1000                 /* bytes of one of them shown */

/* The only global state: which signal interrupted the build. */
static volatile sig_atomic_t build_signal;

static void on_signal(int sig)
{
	build_signal = sig;
	proc_cancelled = 1;   /* every running child (sandbox, git) is killed */
}

enum stage { ST_FETCH, ST_BASE, ST_WORKSPACE, ST_STEPS, ST_PACK, ST_PUBLISH, ST__COUNT };
static const char *const stage_names[ST__COUNT] = {
	"fetch", "base", "workspace", "steps", "pack", "publish",
};

struct build {
	const struct config *c;
	struct storage *s;
	const struct build_opts *o;
	char *app;
	char *id;
	char *dir;                  /* <workdir>/<app>-<id> */
	char *log_path;
	int log_fd;
	int lock_fd;                /* the app's build lock; its note names the
				     * package while it has no manifest */
	off_t log_sent;             /* bytes of the log copied to o->log_fd */
	struct buf url, mirror, commit, refname, cfgtext;
	int64_t commit_time;
	struct git_modules modules; /* submodules of the commit, recursively */
	struct metadata meta;
	bool have_meta;
	bool meta_invalid;          /* the failure is the metadata's */
	struct plan plan;
	bool have_plan;
	struct image_info image;
	bool have_image;
	struct strv image_pkgs;     /* names of the image's packages */
	struct strv os_installed;   /* the plan's packages the tree has, after the steps */
	struct package_info parent;
	bool have_parent;
	bool fresh;
	struct buf reason;
	struct strv lowers;         /* the workspace's lower dirs, top first */
	const char *lower_sha;      /* sha256 of the root they make up */
	bool unpacked;              /* the base was fetched and unpacked */
	bool no_layer;              /* the upper dir is not worth keeping */
	struct workspace ws;
	struct git_tree tree;       /* the commit's tracked tree */
	struct git_tree old_tree;   /* the base package's (incremental) */
	struct git_modules old_modules;
	const char **mirrors;       /* the repositories of tree's blobs (src) */
	size_t n_mirrors;
	struct checkout_index index;    /* of the base package's checkout */
	struct checkout_index co_out;   /* of this build's */
	bool restarted;             /* fresh after an incremental checkout failed */
	struct actions_ctx ax;
	bool ran_steps;
	struct pack_result pack;
	struct package_layer layer;   /* the layer the pack stored (key NULL: none) */
	bool squash;                /* the new layer is full, replacing the chain */
	bool delta;                 /* the new layer is a delta over the parent's */
	struct sign_trust trust;    /* signing.trusted */
	struct sign_key *key;       /* signing.key, NULL: the package goes unsigned */
	uint64_t prev_seq;          /* sequence of the verified previous current */
	struct buf sbom;            /* the bill of materials (upaas JSON) */
	double stage_s[ST__COUNT];
	bool stage_done[ST__COUNT];
	uint64_t t_start;
};

/* ------------------------------------------------------------ logging */

static void blog(struct build *b, const char *fmt, ...) _printf_(2, 3);
static void blog(struct build *b, const char *fmt, ...)
{
	_cleanup_buf_ struct buf m = BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	buf_vaddf(&m, fmt, ap);
	va_end(ap);
	if (b->log_fd >= 0)
		log_line_fd(b->log_fd, m.p, m.len);
}

/* Copies what the log gained since last time to the caller's log_fd. */
static void log_forward(struct build *b)
{
	if (b->o->log_fd < 0 || b->log_fd < 0)
		return;
	char chunk[16384];
	for (;;) {
		ssize_t n = pread(b->log_fd, chunk, sizeof(chunk), b->log_sent);
		if (n <= 0)
			break;
		if (fs_write_all(b->o->log_fd, chunk, (size_t)n) < 0)
			break;
		b->log_sent += n;
	}
}

/* Appends the last lines of the build log (without timestamps) to e: read
 * from the end, whatever the log's size. */
static void err_add_log_tail(struct build *b, struct err *e)
{
	_cleanup_buf_ struct buf all = BUF_INIT;
	struct stat st;
	if (b->log_fd < 0 || fstat(b->log_fd, &st) < 0 || st.st_size <= 0)
		return;
	off_t from = st.st_size > LOG_TAIL_BYTES ? st.st_size - LOG_TAIL_BYTES : 0;
	size_t want = (size_t)(st.st_size - from);
	if (buf_grow(&all, want) < 0)
		return;
	ssize_t got = pread(b->log_fd, all.p, want, from);
	if (got <= 0)
		return;
	all.len = (size_t)got;
	all.p[all.len] = '\0';
	/* a NUL in the output would end the text early: show it as a space */
	for (size_t i = 0; i < all.len; i++)
		if (!all.p[i])
			all.p[i] = ' ';
	buf_rtrim(&all);
	const char *text = all.p;
	if (from > 0) {
		/* the window starts inside a line: not shown */
		const char *nl = strchr(text, '\n');
		text = nl ? nl + 1 : text + strlen(text);
	}
	size_t start = strlen(text);
	int lines = 0;
	while (start > 0 && lines < LOG_TAIL_LINES) {
		start--;
		if (text[start] == '\n')
			lines++;
	}
	if (text[start] == '\n')
		start++;
	buf_adds(&e->msg, "\nlast lines of the build log:");
	for (const char *p = text + start; *p;) {
		size_t n = strcspn(p, "\n");
		/* "2026-11-20T21:45:00.123Z " */
		size_t skip = (n >= 25 && p[23] == 'Z' && p[24] == ' ') ? 25 : 0;
		size_t show = n - skip > LOG_TAIL_LINE_MAX ? LOG_TAIL_LINE_MAX : n - skip;
		buf_adds(&e->msg, "\n  | ");
		buf_add(&e->msg, p + skip, show);
		if (show < n - skip)
			buf_adds(&e->msg, "...");
		p += n;
		if (*p)
			p++;
	}
}

static void stage_end(struct build *b, enum stage st, uint64_t t0)
{
	b->stage_s[st] = (double)(now_ms() - t0) / 1000.0;
	b->stage_done[st] = true;
	blog(b, "stage %s: %.2f s", stage_names[st], b->stage_s[st]);
	log_forward(b);
}

static int check_cancel(struct err *e)
{
	if (!proc_cancelled)
		return 0;
	return err_set(e, -ECANCELED, "build interrupted%s%s",
		       build_signal ? " by " : "",
		       build_signal == SIGTERM ? "SIGTERM" : build_signal == SIGINT ? "SIGINT" : "");
}

/* ------------------------------------------------------------ stages */

static int stage_fetch(struct build *b, struct err *e)
{
	_cleanup_buf_ struct buf full = BUF_INIT;
	_cleanup_free_ char *bare = NULL;
	char *user = NULL, *pass = NULL;
	int r = git_source_url(b->o->source, &full, e);
	if (r < 0)
		return r;
	/* credentials of the URL go to git's askpass; the URL without them is
	 * what the log, the mirror and the manifest see */
	r = url_split_userinfo(full.p, &bare, &user, &pass);
	explicit_bzero(full.p, full.len);
	if (r < 0)
		return err_set(e, r, "the source URL has a bad %%-escape in its credentials");
	buf_reset(&b->url);
	buf_adds(&b->url, bare);
	blog(b, "fetching %s%s", b->url.p, user || pass ? " (with credentials)" : "");
	r = git_mirror_update(b->c, b->app, b->url.p, user, pass, !b->o->ref, b->log_fd,
			      &b->mirror, e);
	secret_free(user);
	secret_free(pass);
	if (r < 0)
		return r;
	r = git_resolve(b->mirror.p, b->o->ref, &b->commit, &b->refname, e);
	if (r < 0)
		return err_prefix(e, "'%s'", b->url.p);
	r = git_commit_time(b->mirror.p, b->commit.p, &b->commit_time, e);
	if (r < 0)
		return r;
	blog(b, "%s is commit %s", b->refname.p, b->commit.p);
	r = git_show_file(b->mirror.p, b->commit.p, METADATA_FILE, &b->cfgtext, METADATA_MAX, e);
	if (r == -ENOENT || r == -E2BIG)
		b->meta_invalid = true;   /* the repository's problem: no log tail */
	if (r == -ENOENT)
		return err_set(e, -ENOENT, "no %s in '%s' at %.12s", METADATA_FILE, b->url.p,
			       b->commit.p);
	if (r == -E2BIG)
		return err_prefix(e, "app metadata at %.12s", b->commit.p);
	if (r < 0)
		return r;

	struct diags d = DIAGS_INIT;
	_cleanup_free_ char *file = xasprintf("%s:%s", b->url.p, METADATA_FILE);
	r = metadata_parse(&b->meta, file, b->cfgtext.p, b->c, &d);
	b->have_meta = true;
	if (r < 0 || d.n) {
		_cleanup_buf_ struct buf msg = BUF_INIT;
		b->meta_invalid = true;
		diags_format(&d, &msg);
		buf_rtrim(&msg);
		diags_free(&d);
		return err_set(e, r < 0 ? r : -EINVAL, "invalid metadata at %.12s:\n%s",
			       b->commit.p, msg.p);
	}
	diags_free(&d);
	/* submodules are fetched with the app: a URL that cannot be used
	 * fails the build here, before any step */
	r = git_modules_resolve(b->c, b->mirror.p, b->commit.p, b->url.p, true, b->log_fd,
				&b->modules, e);
	if (r < 0)
		return r;
	if (b->modules.n)
		blog(b, "%zu submodule%s fetched", b->modules.n, b->modules.n == 1 ? "" : "s");
	return 0;
}

/* The names of the image's packages, from its manifest's "packages"
 * ("name=version" or "name:arch=version"). */
static void image_package_names(const struct image_info *i, struct strv *out)
{
	_cleanup_json_ struct json_object *o = NULL;
	_cleanup_err_ struct err ig = ERR_INIT;
	struct json_object *a;

	if (!i->manifest_json || json_parse_object(i->manifest_json, &o, &ig) < 0 ||
	    !json_object_object_get_ex(o, "packages", &a) || !json_object_is_type(a, json_type_array))
		return;
	for (size_t k = 0; k < json_object_array_length(a); k++) {
		const char *v = json_object_get_string(json_object_array_get_idx(a, k));
		if (v)
			strv_push_take(out, xstrndup(v, strcspn(v, ":=")));
	}
}

static void set_reason(struct build *b, const char *fmt, ...) _printf_(2, 3);
static void set_reason(struct build *b, const char *fmt, ...)
{
	va_list ap;
	b->fresh = true;
	if (b->reason.len)
		return;   /* the first reason found is the one that counts */
	va_start(ap, fmt);
	buf_vaddf(&b->reason, fmt, ap);
	va_end(ap);
}

static int stage_base(struct build *b, struct err *e)
{
	const struct build_opts *o = b->o;
	_cleanup_buf_ struct buf cur = BUF_INIT;
	_cleanup_free_ char *img_name = image_default_name(b->c);
	int r;

	if (o->fresh)
		set_reason(b, "requested (--fresh)");

	/* The new pointer's sequence is the verified previous one's plus one:
	 * a pointer that fails its signature stops the build here, rather
	 * than be replaced by one whose sequence the hosts may refuse. */
	struct package_current pc = { 0 };
	r = package_current_read(b->s, &b->trust, b->app, &pc, e);
	if (r == -ENOENT) {
		err_clear(e);
		set_reason(b, "first build of '%s'", b->app);
	} else if (r < 0) {
		return err_prefix(e, "the current package of '%s'", b->app);
	} else {
		b->prev_seq = pc.sequence;
		buf_adds(&cur, pc.id);
		blog(b, "current: %s, sequence %llu, %s%s", pc.id, (unsigned long long)pc.sequence,
		     pc.keyid[0] ? "signed by key " : "unsigned", pc.keyid);
	}
	package_current_free(&pc);
	if (cur.len && !b->fresh) {
		r = package_load(b->s, &b->trust, b->app, cur.p, &b->parent, e);
		/* a parent that fails its signature is an error, not a reason
		 * to start over */
		if (r < 0 && r != -ENOENT && r != -EINVAL)
			return err_prefix(e, "the parent package");
		if (r < 0) {
			set_reason(b, "the previous package '%s' is missing or unreadable: %s",
				   cur.p, err_msg(e));
			err_clear(e);
		} else {
			b->have_parent = true;
		}
	}

	r = image_ensure(b->c, b->s, img_name, false, &b->image, e);
	if (r < 0)
		return err_prefix(e, "base image '%s'", img_name);
	b->have_image = true;
	image_package_names(&b->image, &b->image_pkgs);

	if (b->have_parent && !b->fresh) {
		const struct package_info *p = &b->parent;
		if (!p->image.sha256 || strcmp(p->image.sha256, b->image.sha256))
			set_reason(b, "the base image '%s' changed since package '%s'",
				   b->image.name, p->id);
		else if (!p->interp.type || strcmp(p->interp.type, b->meta.interp_type))
			set_reason(b, "the interpreter type changed from '%s' to '%s'",
				   p->interp.type ? p->interp.type : "?", b->meta.interp_type);
		else if (o->interp_version && p->interp.version &&
			 !version_match(o->interp_version, p->interp.version))
			set_reason(b, "interpreter version '%s' requested, package '%s' has %s",
				   o->interp_version, p->id, p->interp.version);
	}

	bool incremental = b->have_parent && !b->fresh;
	r = plan_make(&b->plan, b->c, &b->meta, incremental ? b->parent.interp.version : NULL,
		      o->interp_version, e);
	b->have_plan = r >= 0;
	if (r < 0)
		return r;

	if (incremental) {
		/* the parent's layers, each from the cache or fetched (verified) */
		struct rootcache_layer *rl = xcalloc(b->parent.n_layers, sizeof(*rl));
		for (size_t i = 0; i < b->parent.n_layers; i++)
			rl[i] = (struct rootcache_layer){ b->parent.layers[i].key,
							  b->parent.layers[i].sha256,
							  b->parent.layers[i].size };
		r = rootcache_get_layers(b->c, b->s, rl, b->parent.n_layers, &b->lowers, e);
		free(rl);
		if (r >= 0) {
			b->unpacked = r > 0;
			b->lower_sha = b->parent.layers[b->parent.n_layers - 1].sha256;
		} else {
			if (r == -ECANCELED || proc_cancelled)
				return r;
			set_reason(b, "the previous package '%s' is unusable: %s", b->parent.id,
				   err_msg(e));
			err_clear(e);
			incremental = false;
			/* the interpreter version was chosen for the parent */
			plan_free(&b->plan);
			b->have_plan = false;
			r = plan_make(&b->plan, b->c, &b->meta, NULL, o->interp_version, e);
			if (r < 0)
				return r;
			b->have_plan = true;
		}
	}
	if (!incremental) {
		b->fresh = true;
		r = rootcache_get(b->c, b->s, b->image.key, b->image.sha256, b->image.size,
				  &b->lowers, e);
		if (r < 0)
			return err_prefix(e, "base image '%s'", b->image.name);
		b->unpacked = r > 0;
		b->lower_sha = b->image.sha256;
		blog(b, "base: image %s (%.12s), fresh: %s", b->image.name, b->image.sha256,
		     b->reason.p);
	} else {
		buf_adds(&b->reason, "the current package");
		blog(b, "base: package %s (%.12s, %zu layer%s), incremental", b->parent.id,
		     b->lower_sha, b->parent.n_layers, b->parent.n_layers == 1 ? "" : "s");
	}
	if (b->unpacked)
		blog(b, "root: fetched and unpacked layers up to %.12s into the cache", b->lower_sha);
	else
		blog(b, "root: %zu cached lower layer%s, nothing unpacked", b->lowers.n,
		     b->lowers.n == 1 ? "" : "s");
	blog(b, "interpreter: %s %s", b->plan.interp_type,
	     b->plan.interp_version ? b->plan.interp_version : "(any)");
	return 0;
}

static int stage_workspace(struct build *b, struct err *e)
{
	_cleanup_free_ char *wsdir = path_join(b->dir, "ws");
	int r = workspace_create(&b->ws, b->c, wsdir, &b->lowers, e);

	/* layers that cannot be stacked (after a config change, say) must not
	 * break every later build: fall back to a full copy of the parent */
	if (r < 0 && b->lowers.n > 1 && !b->fresh && b->parent.n_layers == 1 && !proc_cancelled) {
		const struct package_layer *pl = &b->parent.layers[0];
		blog(b, "%s; unpacking %.12s instead", err_msg(e), pl->sha256);
		err_clear(e);
		r = rootcache_get_full(b->c, b->s, pl->key, pl->sha256, pl->size, &b->lowers, e);
		if (r >= 0)
			r = workspace_create(&b->ws, b->c, wsdir, &b->lowers, e);
	}
	return r;
}

/* Where the checkout index of the app's latest build is kept. */
static char *index_path(const struct build *b)
{
	return xasprintf("%s/checkout/%s.index", b->c->paths.cache, b->app);
}

/*
 * What the checkout needs, made here on the host before the steps: the
 * commit's tracked tree and, for an incremental build, the base package's
 * (its commit and submodules, from the mirrors, nothing fetched) and the
 * index its checkout left. A base whose tree cannot be listed (its commit
 * is gone after a force push and a gc, a submodule's mirror lost it) is
 * -ESTALE: the build starts again fresh. Nothing when the app's own
 * clone/update commands do the checkout.
 */
static int make_checkout(struct build *b, struct err *e)
{
	if (actions_custom_checkout(&b->meta, b->fresh))
		return 0;
	git_tree_free(&b->tree);
	int r = git_tree_list(b->mirror.p, b->commit.p, &b->modules, &b->tree, e);
	if (r < 0)
		return r;
	free(b->mirrors);
	b->n_mirrors = b->modules.n + 1;
	b->mirrors = xcalloc(b->n_mirrors, sizeof(*b->mirrors));
	b->mirrors[0] = b->mirror.p;
	for (size_t i = 0; i < b->modules.n; i++)
		b->mirrors[i + 1] = b->modules.v[i].mirror;
	if (b->fresh)
		return 0;

	const char *pc = b->parent.repo.commit;
	_cleanup_err_ struct err ge = ERR_INIT;
	/* from a stored manifest: a commit id before it goes near git */
	size_t pl = pc ? strlen(pc) : 0;
	if ((pl != 40 && pl != 64) || strspn(pc, "0123456789abcdef") != pl)
		return err_set(e, -ESTALE, "the base package's commit is not a commit id");
	if (!git_has_commit(b->mirror.p, pc))
		return err_set(e, -ESTALE, "the commit of package '%s' (%.12s) is not in the "
			       "repository any more", b->parent.id, pc ? pc : "none");
	r = git_modules_resolve(b->c, b->mirror.p, pc, b->url.p, false, -1, &b->old_modules, &ge);
	if (r >= 0)
		r = git_tree_list(b->mirror.p, pc, &b->old_modules, &b->old_tree, &ge);
	if (r < 0)
		return err_set(e, -ESTALE, "the tree of package '%s' cannot be listed: %s",
			       b->parent.id, err_msg(&ge));
	_cleanup_free_ char *ip = index_path(b);
	/* the index is that of the package's top layer (a build that changed
	 * nothing lists its parent's, and leaves the same tree) */
	r = checkout_index_load(ip, b->parent.layers[b->parent.n_layers - 1].sha256, &b->index);
	if (r < 0)
		blog(b, "checkout: no index of package %s (%s): every unchanged file is checked "
		     "by its content", b->parent.id, strerror(-r));
	return 0;
}

/* The checkout step's work (struct actions_checkout): the commit's tree
 * written into the root by builder/checkout.c, as the app's files. */
static int do_checkout(void *data, struct err *e)
{
	struct build *b = data;
	uint64_t t0 = now_ms();
	/* the root belongs to the sandbox's range: the app's files are the
	 * app's ids inside it */
	struct sandbox_range ids;
	rootfs_range(b->c, &ids);
	struct checkout co = {
		.root = b->ws.root,
		.home = b->c->apps.home,
		.uid = ids.uid_base + (uid_t)b->c->apps.uid,
		.gid = ids.gid_base + (gid_t)b->c->apps.gid,
		.mtime = b->commit_time,
		.tree = &b->tree,
		.old = b->fresh ? NULL : &b->old_tree,
		.index = b->fresh ? NULL : &b->index,
		.mirrors = b->mirrors,
		.n_mirrors = b->n_mirrors,
		.out = CHECKOUT_INDEX_INIT,
	};
	int r = checkout_apply(&co, e);
	const struct checkout_stats *st = &co.st;
	blog(b, "checkout: %zu entries: %u written, %u kept (%u checked by content), %u repaired, "
	     "%u removed; directories: %u made, %u fixed, %u removed; %.2f s", b->tree.n,
	     st->written, st->kept, st->hashed, st->repaired, st->removed, st->dirs_made,
	     st->dirs_fixed, st->dirs_removed, (double)(now_ms() - t0) / 1000.0);
	checkout_index_free(&b->co_out);
	b->co_out = co.out;
	/* what the base package left cannot be made the commit's: a fresh
	 * build can (build_stages starts again) */
	if (r < 0 && !b->fresh && r != -ECANCELED && !proc_cancelled)
		return err_set(e, -ESTALE, "%s", err_msg(e));
	return r;
}

static int stage_steps(struct build *b, struct err *e)
{
	struct actions_ctx *x = &b->ax;
	int r = make_checkout(b, e);

	if (r < 0)
		return r;
	*x = (struct actions_ctx){
		.cfg = b->c,
		.plan = &b->plan,
		.meta = &b->meta,
		.root = b->ws.root,
		.tmpdir = b->dir,
		.mirror = b->mirror.p,
		.source = b->url.p,
		.app = b->app,
		.build_id = b->id,
		.commit = b->commit.p,
		.fresh = b->fresh,
		.installed = b->fresh ? NULL : &b->parent.os_packages,
		.image_packages = &b->image_pkgs,
		.commit_time = b->commit_time,
		.checkout = {
			.apply = do_checkout,
			.data = b,
			.keep_git = b->meta.keep_git,
		},
		.log_fd = b->log_fd,
		.log_fd2 = b->o->log_fd,
		.tee = b->o->tee,
	};
	b->ran_steps = true;
	/* the steps write their lines to the caller's log_fd live (queue log
	 * -f): send what came before, and do not send the steps' lines twice */
	log_forward(b);
	r = actions_run(x, e);
	if (b->o->log_fd >= 0 && b->log_fd >= 0) {
		off_t end = lseek(b->log_fd, 0, SEEK_END);
		if (end > b->log_sent)
			b->log_sent = end;
	}
	if (r < 0)
		return r;
	/* what the manifest lists: the plan's packages the tree has now */
	r = actions_installed(b->ws.root, &b->plan.packages, &b->os_installed, e);
	return r < 0 ? err_prefix(e, "listing the installed packages") : 0;
}

#define EXCLUDE_MAX 32

/* What packing leaves out (pack_tree patterns); *git_dir is freed by the
 * caller. /proc and /sys stay as empty dirs: a root without them cannot be
 * entered again (the next build, deploy's exec). What records the time of
 * a run (image_time_records) is left out too: two builds of one commit give
 * the same package. */
static void exclude_list(struct build *b, const char *exclude[EXCLUDE_MAX], char **git_dir)
{
	size_t n = 0;

	exclude[n++] = "proc/*";
	exclude[n++] = "sys/*";
	exclude[n++] = "dev/*";
	exclude[n++] = "tmp/*";
	exclude[n++] = "var/tmp/*";
	exclude[n++] = "var/lib/apt/lists/*";
	exclude[n++] = "var/cache/apt/*";
	exclude[n++] = "run/*";
	for (size_t i = 0; image_time_records[i] && n + 2 < EXCLUDE_MAX; i++)
		exclude[n++] = image_time_records[i];
	*git_dir = NULL;
	if (!b->meta.keep_git) {
		*git_dir = path_join(b->c->apps.home + (b->c->apps.home[0] == '/'), ".git");
		exclude[n++] = *git_dir;
	}
	exclude[n] = NULL;
}

/*
 * Deletes what one exclude pattern names below root ("dir" or "dir/" "*"):
 * through the overlay, so that deleting what a lower layer has leaves a
 * whiteout in upper. Every parent component must be a real directory (a
 * symlink there means nothing below it is packed either: nothing to do),
 * and fs_rm_rf never follows a symlink or crosses a mount. Nothing runs in
 * the root any more, so the tree cannot change under the walk.
 */
static int tidy_one(const char *root, const char *pat, struct err *e)
{
	size_t len = strlen(pat);
	bool contents = len >= 2 && !strcmp(pat + len - 2, "/*");
	_cleanup_free_ char *rel = xstrndup(pat, contents ? len - 2 : len);
	_cleanup_free_ char *path = xstrdup(root);
	struct stat st;
	DIR *d;

	for (char *c = rel, *next; c && *c; c = next) {
		next = strchr(c, '/');
		if (next)
			*next++ = '\0';
		if (!path_component_ok(c))
			return err_set(e, -EINVAL, "invalid exclude pattern '%s'", pat);
		char *p = path_join(path, c);
		free(path);
		path = p;
		if (lstat(path, &st) < 0)
			return errno == ENOENT ? 0 : err_set_errno(e, -errno, "cannot stat '%s'", path);
		if (!next && !contents)
			return fs_rm_rf(path, e);
		if (!S_ISDIR(st.st_mode))
			return 0;
	}
	d = opendir(path);
	if (!d)
		return err_set_errno(e, -errno, "cannot open '%s'", path);
	_cleanup_strv_ struct strv names = STRV_INIT;
	for (struct dirent *de; (de = readdir(d));)
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			strv_push(&names, de->d_name);
	closedir(d);
	for (size_t i = 0; i < names.n; i++) {
		_cleanup_free_ char *p = path_join(path, names.v[i]);
		int r = fs_rm_rf(p, e);

		if (r < 0)
			return r;
	}
	return 0;
}

/* Makes the overlay's merged view what is packed, for keeping its upper
 * dir as a layer; a failure only costs the layer. */
static void tidy_for_layer(struct build *b, const char *const *exclude)
{
	uint64_t t0 = now_ms();

	if (!b->ws.overlay || !b->ws.mounted) {
		b->no_layer = true;
		return;
	}
	for (size_t i = 0; exclude[i]; i++) {
		_cleanup_err_ struct err e = ERR_INIT;

		if (tidy_one(b->ws.root, exclude[i], &e) < 0) {
			blog(b, "no layer for the next build: %s", err_msg(&e));
			b->no_layer = true;
			return;
		}
	}
	blog(b, "excluded paths deleted in the overlay in %.2f s",
	     (double)(now_ms() - t0) / 1000.0);
}

/*
 * Whether the changes in upper (an overlay upper dir over lower) can touch
 * the bill of materials: what it lists is found in var/lib/dpkg, in
 * package-lock.json files, node_modules and *.dist-info directories. A
 * deleted directory or an opaque one might hold any of them. Conservative:
 * true when unsure.
 */
static bool sbom_name(const char *name)
{
	size_t n = strlen(name);
	return !strcmp(name, "package-lock.json") || !strcmp(name, ".package-lock.json") ||
	       !strcmp(name, "node_modules") || !strcmp(name, "METADATA") ||
	       (n > 10 && !strcmp(name + n - 10, ".dist-info"));
}

static bool upper_touches_sbom(int dfd, int lfd, const char *rel, unsigned depth)
{
	DIR *d = fdopendir(dfd);
	bool hit = false;

	if (!d) {
		close(dfd);
		return true;
	}
	if (depth > 64)
		hit = true;
	for (struct dirent *de; !hit && (de = readdir(d));) {
		const char *n = de->d_name;
		struct stat st, ls;
		char v[2];

		if (!strcmp(n, ".") || !strcmp(n, ".."))
			continue;
		if (fstatat(dirfd(d), n, &st, AT_SYMLINK_NOFOLLOW) < 0 || sbom_name(n)) {
			hit = true;
			break;
		}
		_cleanup_free_ char *p = *rel ? xasprintf("%s/%s", rel, n) : xstrdup(n);
		if (!strcmp(p, "var/lib/dpkg")) {
			hit = true;
			break;
		}
		bool whiteout = S_ISCHR(st.st_mode) && st.st_rdev == 0;
		/* a deleted or replaced directory may have held anything */
		if (whiteout || !S_ISDIR(st.st_mode)) {
			if (lfd >= 0 && fstatat(lfd, n, &ls, AT_SYMLINK_NOFOLLOW) == 0 &&
			    S_ISDIR(ls.st_mode))
				hit = true;
			continue;
		}
		int cfd = openat(dirfd(d), n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (cfd < 0) {
			hit = true;
			break;
		}
		if (fgetxattr(cfd, "trusted.overlay.opaque", v, sizeof(v)) > 0) {
			close(cfd);
			hit = true;
			break;
		}
		int clfd = lfd >= 0 ? openat(lfd, n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
				    : -1;
		hit = upper_touches_sbom(cfd, clfd, p, depth + 1);
		if (clfd >= 0)
			close(clfd);
	}
	closedir(d);
	return hit;
}

/*
 * The bill of materials of the tree about to be packed: the parent's, when
 * the delta cannot have changed it (an O(change) build does not walk the
 * whole root for it), else a scan of the root.
 */
static int make_sbom(struct build *b, const char *lower, struct err *e)
{
	uint64_t t0 = now_ms();
	struct sbom bill = { 0 };
	int r;

	if (b->delta && b->ws.upper) {
		int ufd = open(b->ws.upper, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		int lfd = lower ? open(lower, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
		bool touched = ufd < 0 || upper_touches_sbom(ufd, lfd, "", 0);
		if (lfd >= 0)
			close(lfd);
		_cleanup_err_ struct err pe = ERR_INIT;
		if (!touched && package_sbom(b->s, &b->parent, &bill, &pe) >= 0) {
			buf_reset(&b->sbom);
			sbom_json(&bill, &b->sbom);
			sbom_free(&bill);
			blog(b, "bill of materials: the parent's (the changes touch no package "
			     "database) in %.2f s", (double)(now_ms() - t0) / 1000.0);
			return 0;
		}
		sbom_free(&bill);
	}
	r = sbom_scan(&bill, b->ws.root, e);
	if (r < 0)
		return err_prefix(e, "the bill of materials");
	buf_reset(&b->sbom);
	sbom_json(&bill, &b->sbom);
	blog(b, "bill of materials: %zu packages%s in %.2f s", bill.n,
	     bill.truncated ? " (incomplete: the tree is past the bounds)" : "",
	     (double)(now_ms() - t0) / 1000.0);
	sbom_free(&bill);
	return 0;
}

/* Mounts the merged view of the lowers (read-only) at dir/lower, when there
 * are several: what a delta is compared with. Returns its path. */
static int lower_view(struct build *b, char **ret, struct err *e)
{
	_cleanup_buf_ struct buf opts = BUF_INIT;
	_cleanup_free_ char *at = path_join(b->dir, "lower");

	if (b->lowers.n == 1) {
		*ret = xstrdup(b->lowers.v[0]);
		return 0;
	}
	buf_adds(&opts, "lowerdir=");
	for (size_t i = 0; i < b->lowers.n; i++) {
		if (strpbrk(b->lowers.v[i], ":,\\"))
			return err_set(e, -EINVAL, "cannot stack '%s'", b->lowers.v[i]);
		buf_addf(&opts, "%s%s", i ? ":" : "", b->lowers.v[i]);
	}
	if (mkdir(at, 0700) < 0 && errno != EEXIST)
		return err_set_errno(e, -errno, "cannot create '%s'", at);
	if (mount("overlay", at, "overlay", MS_RDONLY | MS_NOSUID | MS_NODEV, opts.p) < 0)
		return err_set_errno(e, -errno, "cannot mount the layers below at '%s'", at);
	*ret = TAKE_PTR(at);
	return 1;
}

/*
 * Packs the new layer: a full root for a fresh build, or when the chain is
 * squashed (more than pack.max_layers layers, or deltas larger than
 * pack.squash_ratio times the bottom layer); else a delta, what this build
 * changed in the overlay over the parent's layers. A delta of no entry
 * (nothing changed) is not stored: the package lists its parent's layers.
 */
static int stage_pack(struct build *b, struct err *e)
{
	_cleanup_free_ char *git_dir = NULL, *lower = NULL;
	const char *exclude[EXCLUDE_MAX];
	int r, mounted = 0;

	exclude_list(b, exclude, &git_dir);
	tidy_for_layer(b, exclude);

	if (!b->fresh) {
		const struct package_info *p = &b->parent;
		uint64_t deltas = package_size(p) - p->layers[0].size;
		if (p->n_layers + 1 > (size_t)b->c->pack.max_layers) {
			b->squash = true;
			blog(b, "squash: %zu layers would be more than pack.max_layers (%d)",
			     p->n_layers + 1, b->c->pack.max_layers);
		} else if ((double)deltas > b->c->pack.squash_ratio * (double)p->layers[0].size) {
			b->squash = true;
			blog(b, "squash: the deltas (%llu bytes) outweigh pack.squash_ratio (%g) of "
			     "the bottom layer (%llu bytes)", (unsigned long long)deltas,
			     b->c->pack.squash_ratio, (unsigned long long)p->layers[0].size);
		} else if (!b->ws.overlay || !b->ws.upper || b->no_layer) {
			b->squash = true;
			blog(b, "a full layer: this workspace has no overlay upper dir");
		} else {
			b->delta = true;
		}
	}
	if (b->delta) {
		mounted = lower_view(b, &lower, e);
		if (mounted < 0)
			return mounted;
	}
	r = make_sbom(b, lower, e);

	/* the root belongs to the sandbox's range: the package holds the ids
	 * inside (root's files root's, the app's the app's) */
	struct sandbox_range ids;
	rootfs_range(b->c, &ids);
	struct layer_store_opts lo = {
		.root = b->delta ? b->ws.upper : b->ws.root,
		.lower = lower,
		.upper = b->delta,
		.pack = {
			.level = b->c->pack.level,
			.threads = b->c->pack.threads,
			.mtime_clamp = b->commit_time,
			.exclude = exclude,
			.layer = true,
			.uid_offset = ids.uid_base,
			.gid_offset = ids.gid_base,
		},
		.tmpdir = b->dir,
		.grace = b->c->apps.layer_grace,
		.skip_empty = b->delta,
	};
	/* the note says which package has stored things without its manifest:
	 * if this build dies before the manifest, the next build of the app
	 * deletes its bill of materials and signature (its layer is content
	 * addressed and may be listed by another package: layers_gc()) */
	_cleanup_free_ char *note = xasprintf("package %s\n", b->id);
	if (r >= 0 && (r = lock_note_set(b->lock_fd, note)) < 0)
		err_set_errno(e, r, "cannot write the note of the build lock of '%s'", b->app);
	if (r >= 0) {
		blog(b, "packing a %s layer into %s/layers/", b->delta ? "delta" : "full",
		     storage_where(b->s));
		r = layer_store(b->s, &lo, &b->layer, &b->pack, e);
	}
	if (mounted > 0 && umount2(lower, MNT_DETACH) < 0)
		log_warn("cannot unmount '%s': %s", lower, strerror(errno));
	if (r < 0) {
		if (r == -ECANCELED && !e->code)
			check_cancel(e);
		return err_prefix(e, "packing the root into a layer");
	}
	char sz[32];
	fmt_bytes(b->pack.size, sz);
	if (r > 0) {
		blog(b, "nothing changed (%llu entries left out as unchanged): the package lists "
		     "its parent's layers", (unsigned long long)b->pack.unchanged);
		return 0;
	}
	if (b->delta)
		blog(b, "packed a delta of %llu entries (%llu whiteouts, %llu unchanged left out), "
		     "%s, sha256 %s: '%s'", (unsigned long long)b->pack.entries,
		     (unsigned long long)b->pack.whiteouts, (unsigned long long)b->pack.unchanged, sz,
		     b->pack.sha256, b->layer.key);
	else
		blog(b, "packed %llu entries, %s, sha256 %s: '%s'",
		     (unsigned long long)b->pack.entries, sz, b->pack.sha256, b->layer.key);
	return 0;
}

static void steps_into(struct package_step **ret, size_t *ret_n, size_t n, const char *const *names,
		       const double *secs, const char *const *status)
{
	struct package_step *v = xcalloc(n ? n : 1, sizeof(*v));
	for (size_t i = 0; i < n; i++) {
		v[i].name = xstrdup(names[i]);
		v[i].seconds = secs[i];
		v[i].status = xstrdup(status ? status[i] : "ok");
	}
	*ret = v;
	*ret_n = n;
}

static void make_manifest(struct build *b, struct package_info *p)
{
	char host[256] = "";
	char created[32];

	p->app = xstrdup(b->app);
	p->id = xstrdup(b->id);
	p->parent = b->fresh ? NULL : xstrdup(b->parent.id);
	p->fresh = b->fresh;
	p->base.kind = xstrdup(b->fresh ? "image" : "package");
	p->base.name = xstrdup(b->fresh ? b->image.name : b->parent.id);
	p->base.sha256 = xstrdup(b->fresh ? b->image.sha256
				 : b->parent.layers[b->parent.n_layers - 1].sha256);
	p->base.reason = xstrdup(b->reason.p);
	p->image.name = xstrdup(b->image.name);
	p->image.sha256 = xstrdup(b->image.sha256);
	p->repo.url = xstrdup(b->url.p);
	p->repo.ref = xstrdup(b->refname.p);
	p->repo.commit = xstrdup(b->commit.p);
	p->repo.commit_time = b->commit_time;
	p->interp.type = xstrdup(b->plan.interp_type);
	p->interp.version = b->plan.interp_version ? xstrdup(b->plan.interp_version) : NULL;
	/* the layers: the parent's and the delta, or the parent's alone (no
	 * change), or the new full one */
	p->format = PACKAGE_FORMAT;
	size_t keep = b->delta ? b->parent.n_layers : 0;
	p->n_layers = keep + (b->layer.key ? 1 : 0);
	p->layers = xcalloc(p->n_layers, sizeof(*p->layers));
	for (size_t i = 0; i < keep; i++) {
		const struct package_layer *l = &b->parent.layers[i];
		p->layers[i] = (struct package_layer){ .key = xstrdup(l->key), .size = l->size,
						       .kind = xstrdup(i ? "delta" : "full") };
		memcpy(p->layers[i].sha256, l->sha256, sizeof(l->sha256));
	}
	if (b->layer.key) {
		struct package_layer *l = &p->layers[keep];
		*l = (struct package_layer){ .key = xstrdup(b->layer.key), .size = b->layer.size,
					     .kind = xstrdup(keep ? "delta" : "full") };
		memcpy(l->sha256, b->layer.sha256, sizeof(l->sha256));
	}
	strv_copy(&p->os_packages, &b->os_installed);
	char hex[65];
	sha256_hex(b->cfgtext.p, b->cfgtext.len, hex);
	p->metadata_sha256 = xstrdup(hex);
	p->app_home = xstrdup(b->c->apps.home);
	p->uid = b->c->apps.uid;
	p->gid = b->c->apps.gid;
	p->keep_git = b->meta.keep_git;
	strv_copy(&p->deploy.shared, &b->meta.deploy.shared);
	strv_copy(&p->deploy.hooks_pre, &b->meta.deploy.hooks_pre);
	strv_copy(&p->deploy.hooks_post, &b->meta.deploy.hooks_post);
	p->deploy.keep = b->meta.deploy.keep;
	gethostname(host, sizeof(host) - 1);
	p->builder = xstrdup(host);
	/* provenance: the builder above, the image line above, and */
	p->upaas_version = xstrdup(PACKAGE_VERSION);
	p->key_id = b->key ? xstrdup(sign_key_id(b->key)) : NULL;
	p->sbom.key = storage_key_package(b->app, b->id, "sbom.json");
	sha256_hex(b->sbom.p, b->sbom.len, p->sbom.sha256);
	p->sbom.size = b->sbom.len;

	const char *names[STEP__COUNT], *status[STEP__COUNT];
	double secs[STEP__COUNT];
	for (int s = 0; s < STEP__COUNT; s++) {
		names[s] = step_name((enum step)s);
		secs[s] = b->ax.steps[s].seconds;
		status[s] = step_status_name(b->ax.steps[s].status);
	}
	steps_into(&p->steps, &p->n_steps, STEP__COUNT, names, secs, status);

	const char *snames[ST__COUNT + 1];
	double ssecs[ST__COUNT + 1];
	size_t n = 0;
	for (int s = 0; s < ST__COUNT; s++) {
		if (!b->stage_done[s])
			continue;
		snames[n] = stage_names[s];
		ssecs[n++] = b->stage_s[s];
	}
	steps_into(&p->stages, &p->n_stages, n, snames, ssecs, NULL);
	time_iso8601(now_unix(), created);
	p->created = xstrdup(created);
}

/*
 * The bill of materials, the manifest's signature, the manifest (the
 * commit marker), then current, then the log. Right before the manifest,
 * every layer it lists is checked to be in storage (a prune that ran
 * meanwhile must not leave a manifest listing a missing layer). A failure
 * before current is written takes back what was written; the layers stay
 * (another package may list them) until layers_gc() finds them unlisted.
 */
static int stage_publish(struct build *b, struct err *e)
{
	_cleanup_free_ char *mkey = storage_key_package(b->app, b->id, "json");
	_cleanup_free_ char *skey = storage_key_package(b->app, b->id, "sbom.json");
	_cleanup_free_ char *ckey = storage_key_current(b->app);
	_cleanup_buf_ struct buf json = BUF_INIT;
	_cleanup_err_ struct err ig = ERR_INIT;
	struct package_info p = { 0 };
	char created[32];
	int r;

	make_manifest(b, &p);
	package_manifest_json(&p, &json);
	test_pause("build.before-manifest");
	crash_point("build.after-layer");
	r = check_cancel(e);
	if (r >= 0 && (r = package_layers_check(b->s, &p, e)) < 0)
		err_prefix(e, "before writing the manifest");
	package_info_free(&p);
	if (r >= 0)
		r = check_cancel(e);
	if (r >= 0)
		r = storage_put_buf(b->s, skey, b->sbom.p, b->sbom.len, e);
	if (r < 0)
		return err_prefix(e, "storing the bill of materials '%s'", skey);
	r = check_cancel(e);
	if (r >= 0)
		r = signed_put(b->s, b->key, mkey, json.p, json.len, e);
	if (r < 0) {
		signed_delete(b->s, mkey, &ig);
		storage_delete(b->s, skey, &ig);
		return err_prefix(e, "storing the manifest '%s'", mkey);
	}
	crash_point("build.after-manifest");
	/* the package exists now: a crash leaves it, not an orphan blob */
	lock_note_set(b->lock_fd, NULL);
	blog(b, "manifest %s%s%s", mkey, b->key ? " signed by key " : " (unsigned: no signing.key)",
	     b->key ? sign_key_id(b->key) : "");

	char host[256] = "";
	gethostname(host, sizeof(host) - 1);
	time_iso8601(now_unix(), created);
	struct package_current cur = { .app = b->app, .id = b->id, .sequence = b->prev_seq + 1,
				       .created = created, .builder = host };
	r = check_cancel(e);
	if (r >= 0)
		r = package_current_write(b->s, b->key, &cur, e);
	if (r < 0) {
		/* a write that failed may have reached the server (a timeout
		 * after the write): current must never name a deleted package */
		struct package_current now = { 0 };
		if (package_current_read(b->s, &b->trust, b->app, &now, &ig) >= 0 &&
		    !strcmp(now.id, b->id)) {
			package_current_free(&now);
			blog(b, "'%s' was written after all: %s", ckey, err_msg(e));
			err_clear(e);
			return 0;
		}
		package_current_free(&now);
		signed_delete(b->s, mkey, &ig);
		storage_delete(b->s, skey, &ig);
		return err_prefix(e, "storing '%s'", ckey);
	}
	blog(b, "current: %s, sequence %llu", b->id, (unsigned long long)cur.sequence);
	crash_point("build.after-current");

	/* the index tells watchers which current changed; the package is
	 * published whatever happens to it (a watcher that misses an entry
	 * reads that app's current itself) */
	_cleanup_err_ struct err ie = ERR_INIT;
	if (package_index_update(b->s, b->key, &b->trust, &cur, b->o->index_lock, &ie) < 0) {
		log_warn("cannot update '%s': %s", PACKAGE_INDEX_KEY, err_msg(&ie));
		blog(b, "cannot update '%s': %s", PACKAGE_INDEX_KEY, err_msg(&ie));
	} else {
		blog(b, "index: %s at sequence %llu", b->app, (unsigned long long)cur.sequence);
	}
	return 0;
}

/*
 * Copies the log to out_fd bounded to max bytes: its head and its tail, cut
 * at line ends, with a line "... N bytes cut ..." in between. size is the
 * log's size (> max).
 */
static int log_bounded_copy(int in_fd, off_t size, off_t max, int out_fd)
{
	char marker[64];
	_cleanup_free_ char *blk = xmalloc(max);
	/* the head: half of it, up to its last line end */
	off_t head = max / 2;
	ssize_t n = pread(in_fd, blk, (size_t)head, 0);
	if (n < head)
		return n < 0 ? -errno : -EIO;
	char *nl = memrchr(blk, '\n', (size_t)head);
	if (nl)
		head = nl - blk + 1;
	int r = fs_write_all(out_fd, blk, (size_t)head);
	/* the tail: the rest of max, from its first line start */
	off_t tail = max - head - (off_t)sizeof(marker);
	off_t from = size - tail;
	n = pread(in_fd, blk, (size_t)tail, from);
	if (n < tail)
		return n < 0 ? -errno : -EIO;
	nl = memchr(blk, '\n', (size_t)tail);
	off_t skip = nl ? nl - blk + 1 : 0;
	snprintf(marker, sizeof(marker), "... %lld bytes cut ...\n",
		 (long long)(from + skip - head));
	if (r >= 0)
		r = fs_write_all(out_fd, marker, strlen(marker));
	if (r >= 0)
		r = fs_write_all(out_fd, blk + skip, (size_t)(tail - skip));
	return r;
}

/*
 * A build of this app that died between its layer and its manifest left
 * its package id in the note of the app's lock (which we hold now): its
 * bill of materials and the manifest's signature are deleted unless the
 * manifest made it after all. Its layer stays: it is content addressed,
 * another package may list it, and layers_gc() takes it once it is old and
 * no package lists it. Storage that cannot be reached leaves the note for
 * the next build.
 */
static void build_recover(struct build *b)
{
	_cleanup_buf_ struct buf note = BUF_INIT;
	_cleanup_err_ struct err e = ERR_INIT;
	static const char prefix[] = "package ";
	struct storage_stat st;

	if (lock_note_get(b->lock_fd, &note, 4096) < 0 || !note.len)
		return;
	buf_rtrim(&note);
	const char *pid = note.p + strlen(prefix);
	if (strncmp(note.p, prefix, strlen(prefix)) || !package_id_ok(pid)) {
		log_warn("ignoring the note '%s' of the build lock of '%s'", note.p, b->app);
		lock_note_set(b->lock_fd, NULL);
		return;
	}
	_cleanup_free_ char *mkey = storage_key_package(b->app, pid, "json");
	_cleanup_free_ char *skey = storage_key_package(b->app, pid, "sbom.json");
	_cleanup_free_ char *sig = sign_sig_key(mkey);
	int r = storage_stat(b->s, mkey, &st, &e);
	if (r == -ENOENT) {
		/* what it stored before its manifest: the bill of materials
		 * and the manifest's signature */
		err_clear(&e);
		r = storage_delete(b->s, skey, &e);
		if (r == 0)
			r = storage_delete(b->s, sig, &e);
		if (r == 0)
			blog(b, "deleted what the build %s, which died before its manifest, stored "
			     "besides its layer", pid);
	}
	if (r < 0) {
		log_warn("cannot clean up after a dead build of '%s': %s", b->app, err_msg(&e));
		return;
	}
	lock_note_set(b->lock_fd, NULL);
}

/*
 * Stores the build log as logs/<app>/<id>.log, at most limits.log_bytes
 * (log_bounded_copy()); the log in the work dir keeps everything. Last,
 * after the package or the failure: a problem here is only a warning.
 */
static void publish_log(struct build *b)
{
	_cleanup_free_ char *lkey = storage_key_log(b->app, b->id);
	_cleanup_err_ struct err e = ERR_INIT;
	struct stat st;
	off_t max = (off_t)b->c->limits.log_bytes;
	const char *path = b->log_path;
	_cleanup_free_ char *cut = NULL;
	int r = 0;

	if (b->log_fd < 0 || fstat(b->log_fd, &st) < 0)
		return;
	if (max > 0 && st.st_size > max) {
		cut = path_join(b->dir, "build.log.stored");
		_cleanup_close_ int fd = open(cut, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		r = fd < 0 ? -errno : log_bounded_copy(b->log_fd, st.st_size, max, fd);
		if (r < 0) {
			log_warn("cannot cut the build log to %lld bytes: %s", (long long)max,
				 strerror(-r));
			return;
		}
		path = cut;
	}
	/* a cancelled build keeps its log too: the signal that cancelled the
	 * build does not cancel this upload (another one does) */
	bool cancelled = proc_cancelled;
	proc_cancelled = 0;
	if (storage_put_file(b->s, lkey, path, &e) < 0)
		log_warn("cannot store the build log '%s': %s", lkey, err_msg(&e));
	if (cancelled)
		proc_cancelled = 1;
}

/*
 * After a successful build: the root cache gets the new layer, so that the
 * next incremental build stacks it instead of fetching it. A delta (or the
 * full layer of a fresh build) is the overlay's upper dir, moved into the
 * cache over the chain it was written on; a squashed layer replaces the
 * chain, so it is unpacked from storage as a full copy (the O(root) step
 * of a squash build, instead of a longer chain for every later build). Then
 * the app's entries that no longer serve its chain go (rootcache_retire).
 * Failures cost only that: the next build fetches what it lacks.
 */
/*
 * After a squash the next build stacks the full copy unpacked from storage
 * into the root cache (entry), whose files have their own times: the index
 * of this build's checkout takes their stat from there, so that the next
 * build still knows its unchanged files by their stat.
 */
static void index_restat(struct build *b, const char *entry)
{
	const char *home = b->c->apps.home + (b->c->apps.home[0] == '/');
	_cleanup_free_ char *dir = path_join(entry, home);
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	size_t n = 0;

	for (size_t i = 0; dfd >= 0 && i < b->co_out.n; i++) {
		struct checkout_rec *r = &b->co_out.v[i];
		struct stat st;
		/* inside the tree whatever symlink the build made; gone: the
		 * next build checks it by its content */
		_cleanup_close_ int fd = fs_open_in_root(dfd, r->path, O_PATH | O_NOFOLLOW);
		if (fd < 0 || fstat(fd, &st) < 0) {
			r->size = UINT64_MAX;
			continue;
		}
		r->size = (uint64_t)st.st_size;
		r->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
		r->ctime_ns = (int64_t)st.st_ctim.tv_sec * 1000000000 + st.st_ctim.tv_nsec;
		r->mode = st.st_mode;
		r->uid = st.st_uid;
		r->gid = st.st_gid;
		n++;
	}
	blog(b, "checkout index: %zu of %zu files as unpacked into the root cache", n,
	     b->co_out.n);
}

static void keep_layer(struct build *b)
{
	_cleanup_err_ struct err e = ERR_INIT;
	_cleanup_strv_ struct strv chain = STRV_INIT;
	uint64_t t0 = now_ms();
	int r = 0;

	if (!b->layer.key) {
		/* no new layer: the parent's chain is the package's */
	} else if (b->squash) {
		struct rootcache_layer l = { b->layer.key, b->layer.sha256, b->layer.size };
		r = workspace_destroy(&b->ws, &e);
		if (r >= 0)
			r = rootcache_get_layers(b->c, b->s, &l, 1, &chain, &e);
		if (r < 0)
			blog(b, "the squashed layer is not in the root cache: %s", err_msg(&e));
		else
			blog(b, "squashed layer %.12s unpacked into the root cache in %.2f s",
			     b->layer.sha256, (double)(now_ms() - t0) / 1000.0);
		if (r >= 0 && chain.n == 1)
			index_restat(b, chain.v[0]);
	} else if (!b->no_layer && b->ws.overlay && b->ws.upper && b->lower_sha &&
		   strcmp(b->lower_sha, b->layer.sha256)) {
		r = workspace_unmount(&b->ws, &e);
		if (r >= 0)
			r = rootcache_put_layer(b->c, b->layer.sha256, b->lower_sha, b->ws.upper, &e);
		if (r < 0)
			blog(b, "no layer kept for the next build: %s", err_msg(&e));
		else
			blog(b, "layer %.12s over %.12s kept in the root cache in %.2f s",
			     b->layer.sha256, b->lower_sha, (double)(now_ms() - t0) / 1000.0);
	}
	/* the entries the app's next build stacks; those of its last chain
	 * that this one replaced go (not the image: other lines start there) */
	err_clear(&e);
	const char *top = b->layer.key ? b->layer.sha256 : b->lower_sha;
	if (top && rootcache_retire(b->c, b->app, top, b->image.sha256, &e) < 0)
		log_warn("root cache: %s", err_msg(&e));
}

/* Keeps the index of this build's checkout for the next incremental build
 * (only the latest build's, per app); a failure costs only content checks. */
static void save_index(struct build *b)
{
	_cleanup_err_ struct err e = ERR_INIT;
	_cleanup_free_ char *dir = path_join(b->c->paths.cache, "checkout");
	_cleanup_free_ char *ip = index_path(b);
	if ((!b->co_out.n && !b->tree.n) || (!b->layer.key && !b->parent.n_layers))
		return;
	int r = fs_mkdir_p(dir, 0700);
	if (r < 0)
		err_set_errno(&e, r, "cannot create '%s'", dir);
	else
		r = checkout_index_save(&b->co_out, b->layer.key ? b->layer.sha256
					: b->parent.layers[b->parent.n_layers - 1].sha256, ip, &e);
	if (r < 0)
		blog(b, "no checkout index for the next build: %s", err_msg(&e));
}

/* ------------------------------------------------------------ the build */

static void build_free(struct build *b)
{
	if (b->ws.dir) {
		_cleanup_err_ struct err e = ERR_INIT;
		if (workspace_destroy(&b->ws, &e) < 0)
			log_warn("%s", err_msg(&e));
	}
	workspace_free(&b->ws);
	if (b->log_fd >= 0)
		close(b->log_fd);
	git_tree_free(&b->tree);
	git_tree_free(&b->old_tree);
	git_modules_free(&b->old_modules);
	free(b->mirrors);
	checkout_index_free(&b->index);
	checkout_index_free(&b->co_out);
	if (b->dir) {
		_cleanup_err_ struct err e = ERR_INIT;
		if (fs_rm_rf(b->dir, &e) < 0)
			log_warn("cannot remove the work dir: %s", err_msg(&e));
	}
	free(b->app);
	free(b->id);
	free(b->dir);
	free(b->layer.key);
	free(b->layer.kind);
	free(b->log_path);
	buf_free(&b->url);
	buf_free(&b->mirror);
	buf_free(&b->commit);
	buf_free(&b->refname);
	buf_free(&b->cfgtext);
	git_modules_free(&b->modules);
	strv_free(&b->image_pkgs);
	strv_free(&b->os_installed);
	buf_free(&b->reason);
	strv_free(&b->lowers);
	if (b->have_meta)
		metadata_free(&b->meta);
	if (b->have_plan)
		plan_free(&b->plan);
	if (b->have_image)
		image_info_free(&b->image);
	package_info_free(&b->parent);
	sign_trust_free(&b->trust);
	sign_key_free(b->key);
	buf_free(&b->sbom);
}

/*
 * The incremental build's checkout could not make the base package's tree
 * the commit's (-ESTALE, the reason in e): the build starts again from the
 * base image, once, on a new workspace, and the manifest's base reason says
 * why.
 */
static int restart_fresh(struct build *b, struct err *e)
{
	_cleanup_err_ struct err we = ERR_INIT;
	buf_reset(&b->reason);
	buf_addf(&b->reason, "the checkout over package '%s' failed: %s", b->parent.id, err_msg(e));
	err_clear(e);
	blog(b, "falling back to a fresh build: %s", b->reason.p);
	log_warn("falling back to a fresh build: %s", b->reason.p);
	b->fresh = true;
	b->restarted = true;
	if (workspace_destroy(&b->ws, &we) < 0)
		return err_set(e, we.code, "%s", err_msg(&we));
	free(b->ws.dir);
	free(b->ws.root);
	free(b->ws.upper);
	b->ws = (struct workspace)WORKSPACE_INIT;
	strv_free(&b->lowers);
	strv_free(&b->os_installed);
	git_tree_free(&b->old_tree);
	checkout_index_free(&b->index);
	/* the interpreter version was chosen for the base package */
	if (b->have_plan)
		plan_free(&b->plan);
	b->have_plan = false;
	int r = plan_make(&b->plan, b->c, &b->meta, NULL, b->o->interp_version, e);
	if (r < 0)
		return r;
	b->have_plan = true;
	r = rootcache_get(b->c, b->s, b->image.key, b->image.sha256, b->image.size, &b->lowers, e);
	if (r < 0)
		return err_prefix(e, "base image '%s'", b->image.name);
	b->unpacked = r > 0;
	b->lower_sha = b->image.sha256;
	return 0;
}

static int build_stages(struct build *b, struct err *e)
{
	static int (*const fns[ST__COUNT])(struct build *, struct err *) = {
		stage_fetch, stage_base, stage_workspace, stage_steps, stage_pack, stage_publish,
	};
	for (int s = 0; s < ST__COUNT; s++) {
		uint64_t t0 = now_ms();
		int r = check_cancel(e);
		if (r >= 0)
			r = fns[s](b, e);
		if (r == -ESTALE && s == ST_STEPS && !b->fresh && !b->restarted && !proc_cancelled) {
			r = restart_fresh(b, e);
			if (r >= 0) {
				s = ST_WORKSPACE - 1;   /* a new workspace, the steps again */
				continue;
			}
		}
		if (r < 0) {
			if (proc_cancelled && r != -ECANCELED) {
				err_clear(e);
				r = check_cancel(e);
			}
			return r;
		}
		stage_end(b, (enum stage)s, t0);
	}
	return 0;
}

int build_run(const struct config *c, struct storage *s, const struct build_opts *o,
	      struct build_result *ret, struct err *e)
{
	struct build b = { .c = c, .s = s, .o = o, .log_fd = -1, .lock_fd = -1, .tree = GIT_TREE_INIT,
			   .old_tree = GIT_TREE_INIT, .old_modules = GIT_MODULES_INIT,
			   .index = CHECKOUT_INDEX_INIT, .co_out = CHECKOUT_INDEX_INIT, .url = BUF_INIT,
			   .mirror = BUF_INIT, .commit = BUF_INIT, .refname = BUF_INIT,
			   .cfgtext = BUF_INIT, .reason = BUF_INIT, .lowers = STRV_INIT,
			   .modules = GIT_MODULES_INIT, .image_pkgs = STRV_INIT,
			   .os_installed = STRV_INIT, .sbom = BUF_INIT };
	struct sigaction sa = { .sa_handler = on_signal, .sa_flags = SA_RESTART }, old_term,
			 old_int;
	_cleanup_close_ int lock = -1;
	int r;

	b.t_start = now_ms();
	if (o->app) {
		if (!app_name_ok(o->app))
			return err_set(e, -EINVAL, "invalid app name '%s'", o->app);
		b.app = xstrdup(o->app);
	} else {
		/* from the URL or the canonical path: `upaas build .` is the
		 * directory's name */
		_cleanup_buf_ struct buf name = BUF_INIT, url = BUF_INIT;
		r = git_source_url(o->source, &url, e);
		if (r >= 0)
			r = git_source_app(url.p, &name, e);
		explicit_bzero(url.p, url.len);   /* it may hold credentials */
		if (r < 0)
			return r;
		b.app = buf_detach(&name);
	}
	/* an id_new() id (which package_id_ok() accepts): the work dir's
	 * <app>-<id> names are unambiguous only with that shape */
	if (o->build_id && !id_ok(o->build_id)) {
		free(b.app);
		return err_set(e, -EINVAL, "invalid build id '%s'", o->build_id);
	}
	b.id = o->build_id ? xstrdup(o->build_id) : id_new();
	/* keys first: a bad key file fails the build before it starts */
	r = sign_trust_config(&b.trust, c, e);
	if (r >= 0)
		r = sign_key_config_make(c, &b.key, e);
	if (r < 0) {
		build_free(&b);
		return r;
	}
	if (!b.key && !c->signing.allow_unsigned) {
		/* it would be refused, by this builder's next build too */
		build_free(&b);
		return err_set(e, -ENOKEY, "signing.key is not set: make a key pair with 'upaas key "
			       "generate' (or set signing.allow_unsigned to build unsigned packages)");
	}
	if (!b.key)
		log_warn("signing.key is not set: package %s of %s will be unsigned", b.id, b.app);

	build_signal = 0;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, &old_term);
	sigaction(SIGINT, &sa, &old_int);

	/* the overlay (and every mount of the build) lives and dies with
	 * this process's private mount namespace */
	r = sandbox_private_mounts(e);
	if (r < 0)
		goto out;
	lock = workdir_lock_build(c, b.app, e);
	if (lock < 0) {
		r = lock;
		goto out;
	}
	/* with the app's lock held, its <app>-<id> dirs are dead builds', and
	 * so is a blob its note names */
	workdir_sweep(c, lock);
	b.lock_fd = lock;
	build_recover(&b);
	b.dir = workdir_build_dir(c, b.app, b.id);
	if (mkdir(b.dir, 0700) < 0) {
		r = err_set_errno(e, -errno, "cannot create '%s'", b.dir);
		free(b.dir);
		b.dir = NULL;
		goto out;
	}
	b.log_path = path_join(b.dir, "build.log");
	b.log_fd = open(b.log_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_APPEND, 0600);
	if (b.log_fd < 0) {
		r = err_set_errno(e, -errno, "cannot create '%s'", b.log_path);
		goto out;
	}
	{
		_cleanup_free_ char *shown = url_redacted(o->source);
		blog(&b, "upaas build %s of app %s from %s", b.id, b.app, shown);
	}

	r = build_stages(&b, e);
	if (r < 0) {
		if (b.ran_steps && b.ax.failed >= 0 && ret)
			ret->failed_step = xstrdup(step_name((enum step)b.ax.failed));
		/* cancelled between the pack and the manifest: the bill of
		 * materials must not stay behind without one; a layer stays, as
		 * it is content addressed and another package may list it
		 * (layers_gc() removes it once it is old and no package lists it) */
		if (b.stage_done[ST_PACK] && !b.stage_done[ST_PUBLISH]) {
			_cleanup_free_ char *skey = storage_key_package(b.app, b.id, "sbom.json");
			_cleanup_err_ struct err ig = ERR_INIT;
			if (storage_delete(s, skey, &ig) == 0)
				lock_note_set(lock, NULL);
		} else {
			/* the upload was aborted, or the package published */
			lock_note_set(lock, NULL);
		}
		blog(&b, "build failed: %s", err_msg(e));
		/* the tail says why; a cancel or a metadata problem (its
		 * message has file:line) needs none */
		if (r != -ECANCELED && !b.meta_invalid)
			err_add_log_tail(&b, e);
		log_forward(&b);
		/* failed and cancelled builds keep their log too */
		publish_log(&b);
		goto out;
	}
	keep_layer(&b);
	save_index(&b);
	blog(&b, "build %s of %s done in %.2f s: %s package, %s", b.id, b.app,
	     (double)(now_ms() - b.t_start) / 1000.0, b.fresh ? "fresh" : "incremental",
	     !b.layer.key ? "no new layer" : b.squash ? "squashed into a full layer"
	     : b.delta ? "a new delta layer" : "a full layer");
	log_forward(&b);
	publish_log(&b);

	if (ret) {
		ret->app = xstrdup(b.app);
		ret->id = xstrdup(b.id);
		ret->commit = xstrdup(b.commit.p);
		ret->fresh = b.fresh;
		ret->base_reason = xstrdup(b.reason.p);
		/* the package's top layer, and what this build stored */
		const char *top = b.layer.key ? b.layer.sha256
				  : b.parent.layers[b.parent.n_layers - 1].sha256;
		memcpy(ret->sha256, top, sizeof(ret->sha256));
		ret->size = b.layer.key ? b.layer.size : 0;
		ret->layer = b.layer.key ? (b.delta ? "delta" : "full") : "none";
	}
	r = 0;
out:
	build_free(&b);
	sigaction(SIGTERM, &old_term, NULL);
	sigaction(SIGINT, &old_int, NULL);
	return r;
}

void build_result_free(struct build_result *r)
{
	if (!r)
		return;
	free(r->app);
	free(r->id);
	free(r->commit);
	free(r->base_reason);
	free(r->failed_step);
	memset(r, 0, sizeof(*r));
}
