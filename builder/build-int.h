/*
 * builder/build-int.h - private to build.c and git.c: the app's bare
 * mirror under <paths.cache>/git/<app>.git.
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
/* `git archive --format=tar` of commit (a commit id) written to fd. */
int git_archive_to_fd(const char *mirror, const char *commit, int fd, int log_fd, struct err *e);
/*
 * The paths that commit to deleted since commit from, NUL-separated (git
 * diff -z --diff-filter=D), into ret (at most GIT_DELETED_MAX bytes). Both
 * must be commit ids (40 or 64 lowercase hex): -EINVAL before git runs.
 */
#define GIT_DELETED_MAX ((size_t)64 << 20)
int git_deleted_files(const char *mirror, const char *from, const char *to, int log_fd,
		      struct buf *ret, struct err *e);

#endif
