/*
 * builder/build-int.h - private to builder/: the app's bare mirror under
 * <paths.cache>/git/<app>.git, its submodules, the trees and blobs of a
 * commit (git.c), and the checkout that writes them (checkout.c).
 */
#ifndef UPAAS_BUILD_INT_H
#define UPAAS_BUILD_INT_H

#ifndef UPAAS_BUILDER_H
#error "include builder/builder.h first"
#endif

/* A git URL as given, or a local path made absolute (it must exist). */
int git_source_url(const char *source, struct buf *ret_url, struct err *e);
/* The app name a source implies: its basename without ".git". */
int git_source_app(const char *source, struct buf *ret_app, struct err *e);
/*
 * Creates (git clone --mirror) or updates (git fetch --prune) the app's
 * mirror under a per-app flock; with update_head, HEAD follows the remote's
 * default branch. ret_mirror receives the mirror's path. url carries no
 * credentials: user and pass (may be NULL) reach git through an askpass
 * (common/askpass.c), never its argv, its environment or the mirror's
 * config.
 */
int git_mirror_update(const struct config *c, const char *app, const char *url,
		      const char *user, const char *pass, bool update_head, int log_fd,
		      struct buf *ret_mirror, struct err *e);
/* Resolves ref (NULL: HEAD, the default branch) to a commit id; ret_refname
 * receives the full ref name when there is one (else the ref as given). */
int git_resolve(const char *mirror, const char *ref, struct buf *ret_commit,
		struct buf *ret_refname, struct err *e);
/* The content of path at commit (-ENOENT when the commit has no such file). */
int git_show_file(const char *mirror, const char *commit, const char *path, struct buf *out,
		  size_t max, struct err *e);
/* The committer time of commit (unix seconds). */
int git_commit_time(const char *mirror, const char *commit, int64_t *ret, struct err *e);
/*
 * The submodules of commit, recursively, each fetched into a bare mirror of
 * its own under <paths.cache>/git/modules/ (one per URL, under a flock,
 * fetched only when it lacks the recorded commit). A relative URL is
 * resolved against its superproject's URL (url: the app's); every URL is
 * checked before git sees it (module_url_check in git.c): no option, no
 * remote helper, only http(s), git and ssh, and a local path only inside
 * git.local_paths. A gitlink without a URL in .gitmodules stays an empty
 * directory, as with git (a warning in the log). Paths are relative to the
 * app's checkout, parents before their submodules. Without fetch (the tree
 * of an earlier build) nothing is fetched: a submodule whose mirror lacks
 * its commit is -ESTALE.
 */
struct git_module {
	char *path;
	char *url;
	char *mirror;
	char *commit;
};
struct git_modules {
	struct git_module *v;
	size_t n;
};
#define GIT_MODULES_INIT { NULL, 0 }
int git_modules_resolve(const struct config *c, const char *mirror, const char *commit,
			const char *url, bool fetch, int log_fd, struct git_modules *ret,
			struct err *e);
/* true when the repository at git_dir has commit (a commit id). */
bool git_has_commit(const char *git_dir, const char *commit);
void git_modules_free(struct git_modules *m);

/*
 * The tracked tree of a commit: every file and symlink of `git ls-tree -r`,
 * those of each submodule of mods in place of its gitlink (with its
 * directory), sorted by path. A gitlink without a submodule stays an entry
 * of mode 0160000: an empty directory. src says which repository holds the
 * blob: 0 the app's mirror, i + 1 mods->v[i].mirror.
 */
struct git_entry {
	char *path;                 /* relative to the app's directory */
	unsigned mode;              /* 0100644, 0100755, 0120000 or 0160000 */
	char oid[65];
	unsigned src;
};
struct git_tree {
	struct git_entry *v;
	size_t n, cap;
};
#define GIT_TREE_INIT { NULL, 0, 0 }
int git_tree_list(const char *mirror, const char *commit, const struct git_modules *mods,
		  struct git_tree *ret, struct err *e);
void git_tree_free(struct git_tree *t);

/*
 * Blobs of one repository through one `git cat-file --batch`: start ->
 * blob ... -> end. git_batch_blob() streams the content of oid to sink
 * (its size in *ret_size); -ENOENT when the repository has no such blob.
 */
struct git_batch {
	struct proc p;
	int in, out;
	bool started;
	size_t start, len;
	char buf[65536];
};
#define GIT_BATCH_INIT { .p = PROC_INIT, .in = -1, .out = -1 }
int git_batch_start(struct git_batch *b, const char *mirror, struct err *e);
int git_batch_blob(struct git_batch *b, const char *oid, sink_fn sink, void *data,
		   uint64_t *ret_size, struct err *e);
void git_batch_end(struct git_batch *b);

/*
 * The checkout (builder/checkout.c): makes apps.home in root exactly tree,
 * from the host side, writing only what differs from old (the base
 * package's tree; NULL: a fresh build). index (may be NULL or empty) holds
 * the stat of each file the base's checkout wrote or checked: a file whose
 * stat still matches is taken as unchanged, any other is checked against
 * its blob id. What the checkout makes belongs to uid/gid (ids on disk),
 * files get mtime. out receives the index of this checkout, st what it did.
 * Returns 0 or -errno with the path in e.
 */
struct checkout_rec {
	char *path;
	char oid[65];
	uint64_t size;
	int64_t mtime_ns, ctime_ns;
	mode_t mode;
	uid_t uid;
	gid_t gid;
};
struct checkout_index {
	struct checkout_rec *v;     /* sorted by path */
	size_t n, cap;
	char *base;                 /* the package it belongs to (blob sha256) */
};
#define CHECKOUT_INDEX_INIT { NULL, 0, 0, NULL }
struct checkout_stats {
	unsigned written, kept, hashed, repaired, removed;
	unsigned dirs_made, dirs_fixed, dirs_removed;
};
struct checkout {
	const char *root;
	const char *home;
	uid_t uid;
	gid_t gid;
	int64_t mtime;
	const struct git_tree *tree;
	const struct git_tree *old;
	const struct checkout_index *index;
	const char *const *mirrors;     /* src -> bare repository */
	size_t n_mirrors;
	struct checkout_index out;
	struct checkout_stats st;
};
int checkout_apply(struct checkout *co, struct err *e);
/* The index file of a checkout: -ESTALE when it is another package's (base,
 * the blob sha256), -ENOENT when missing. */
int checkout_index_load(const char *path, const char *base, struct checkout_index *ret);
int checkout_index_save(const struct checkout_index *ix, const char *base, const char *path,
			struct err *e);
void checkout_index_free(struct checkout_index *ix);


#endif
