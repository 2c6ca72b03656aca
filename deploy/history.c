/*
 * deploy/history.c - the history file, the status of an app, and which
 * revisions pruning removes.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <json-c/json.h>

#include "deploy/deploy-int.h"

void deploy_hist_format(const struct deploy_hist *h, struct buf *out)
{
	char t[32];
	time_iso8601(h->time, t);
	buf_addf(out, "%s %s %s %s %s\n", t, h->op, h->id, h->result,
		 h->previous && *h->previous ? h->previous : "-");
}

int deploy_hist_parse(const char *line, struct deploy_hist *h)
{
	char *f[5];
	size_t n = 0;
	_cleanup_free_ char *copy = xstrdup(line);

	/* fields are separated by single spaces; none may be empty */
	for (char *s = copy; s;) {
		char *sp = strchr(s, ' ');
		if (sp)
			*sp = '\0';
		if (!*s || n == 5)
			return -EINVAL;
		f[n++] = s;
		s = sp ? sp + 1 : NULL;
	}
	if (n < 4)
		return -EINVAL;
	int64_t t;
	if (time_parse_iso8601(f[0], &t) < 0)
		return -EINVAL;
	h->time = t;
	h->op = xstrdup(f[1]);
	h->id = xstrdup(f[2]);
	h->result = xstrdup(f[3]);
	h->previous = xstrdup(n == 5 ? f[4] : "-");
	return 0;
}

void deploy_hist_free(struct deploy_hist *h)
{
	if (!h)
		return;
	free(h->op);
	free(h->id);
	free(h->result);
	free(h->previous);
	memset(h, 0, sizeof(*h));
}

static bool hist_is_switch(const struct deploy_hist *h)
{
	return !strcmp(h->result, "ok") &&
	       (!strcmp(h->op, "install") || !strcmp(h->op, "upgrade") ||
		!strcmp(h->op, "rollback") || !strcmp(h->op, "switch-back"));
}

char *deploy_hist_previous(const struct deploy_hist *h, size_t n, const char *current)
{
	for (size_t i = n; i-- > 0;) {
		/* an undeploy ends the line of revisions */
		if (!strcmp(h[i].op, "undeploy") || !strcmp(h[i].op, "uninstall"))
			return NULL;
		if (hist_is_switch(&h[i]) && (!current || strcmp(h[i].id, current)) &&
		    package_id_ok(h[i].id))
			return xstrdup(h[i].id);
	}
	return NULL;
}

int deploy_hist_read(const char *path, struct deploy_hist **ret, size_t *ret_n, struct err *e)
{
	_cleanup_buf_ struct buf b = BUF_INIT;
	struct deploy_hist *v = NULL;
	size_t n = 0, cap = 0;

	/* a line per deploy: 64 MiB is centuries of deploys */
	int r = buf_read_file(&b, path, (size_t)64 << 20);
	if (r == -ENOENT) {
		*ret = NULL;
		*ret_n = 0;
		return 0;
	}
	if (r < 0)
		return err_set_errno(e, r, "cannot read '%s'", path);
	char *s = b.p;
	while (*s) {
		char *nl = strchr(s, '\n');
		if (nl)
			*nl = '\0';
		struct deploy_hist h;
		if (*s && deploy_hist_parse(s, &h) == 0) {
			if (n == cap) {
				cap = cap ? cap * 2 : 16;
				v = xrealloc(v, cap * sizeof(*v));
			}
			v[n++] = h;
		}
		if (!nl)
			break;
		s = nl + 1;
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

void deploy_hist_free_all(struct deploy_hist *h, size_t n)
{
	for (size_t i = 0; i < n; i++)
		deploy_hist_free(&h[i]);
	free(h);
}

int deploy_hist_append(const char *path, const struct deploy_hist *h, struct err *e)
{
	_cleanup_buf_ struct buf line = BUF_INIT;
	deploy_hist_format(h, &line);
	_cleanup_close_ int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
				      0644);
	if (fd < 0)
		return err_set_errno(e, -errno, "cannot open '%s'", path);
	int r = fs_write_all(fd, line.p, line.len);
	if (r >= 0 && fsync(fd) < 0)
		r = -errno;
	if (r < 0)
		return err_set_errno(e, r, "cannot write '%s'", path);
	return 0;
}

/* ---------------------------------------------------------------- prune */

static int cmp_desc(const void *a, const void *b)
{
	return -strcmp(*(char *const *)a, *(char *const *)b);
}

void deploy_prune_select(const struct strv *ids, const char *current, const char *previous,
			 int keep, struct strv *remove)
{
	_cleanup_strv_ struct strv sorted = STRV_INIT;
	strv_copy(&sorted, ids);
	if (sorted.n)
		qsort(sorted.v, sorted.n, sizeof(char *), cmp_desc);
	if (keep < 1)
		keep = 1;

	/* current and previous are kept first; newest others fill up to keep */
	size_t kept = 0;
	for (size_t i = 0; i < sorted.n; i++)
		if ((current && !strcmp(sorted.v[i], current)) ||
		    (previous && !strcmp(sorted.v[i], previous)))
			kept++;
	_cleanup_strv_ struct strv out = STRV_INIT;
	for (size_t i = 0; i < sorted.n; i++) {
		const char *id = sorted.v[i];
		if ((current && !strcmp(id, current)) || (previous && !strcmp(id, previous)))
			continue;
		if (kept < (size_t)keep) {
			kept++;
			continue;
		}
		strv_push(&out, id);
	}
	strv_sort(&out);
	strv_extend(remove, &out);
}

/* --------------------------------------------------------------- status */

int deploy_revisions_list(const char *revdir, struct strv *complete, struct strv *failed,
			  struct strv *tmp, struct err *e)
{
	DIR *d = opendir(revdir);
	if (!d) {
		if (errno == ENOENT)
			return 0;
		return err_set_errno(e, -errno, "cannot read '%s'", revdir);
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		const char *name = de->d_name;
		if (!strcmp(name, ".") || !strcmp(name, ".."))
			continue;
		size_t n = strlen(name);
		if (n > 4 && !strcmp(name + n - 4, ".tmp")) {
			if (tmp)
				strv_push(tmp, name);
			continue;
		}
		if (n > 7 && !strcmp(name + n - 7, ".failed")) {
			if (failed)
				strv_push(failed, name);
			continue;
		}
		struct stat st;
		if (!package_id_ok(name) || fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISDIR(st.st_mode))
			continue;
		if (complete)
			strv_push(complete, name);
	}
	closedir(d);
	if (complete)
		strv_sort(complete);
	if (failed)
		strv_sort(failed);
	if (tmp)
		strv_sort(tmp);
	return 0;
}

char *deploy_current_id(const char *current_link)
{
	_cleanup_buf_ struct buf b = BUF_INIT;
	buf_init(&b, 4096);
	if (buf_grow(&b, 1024) < 0)
		return NULL;
	ssize_t n = readlink(current_link, b.p, b.cap - 1);
	if (n < 0 || (size_t)n >= b.cap - 1)
		return NULL;
	b.p[n] = '\0';
	const char *pfx = "revisions/";
	if (strncmp(b.p, pfx, strlen(pfx)) || !package_id_ok(b.p + strlen(pfx)))
		return NULL;
	return xstrdup(b.p + strlen(pfx));
}

int deploy_status_read(const char *root, const char *app, struct deploy_status *ret,
		       struct err *e)
{
	if (!app_name_ok(app))
		return err_set(e, -EINVAL, "invalid app name '%s'", app);
	struct app_paths p;
	app_paths_init(&p, root, app);
	struct deploy_status st = { .app = xstrdup(app), .revisions = STRV_INIT,
				    .failed = STRV_INIT };
	int r;

	struct stat sb;
	if (lstat(p.dir, &sb) < 0) {
		r = err_set(e, -errno, "app '%s' is not deployed under '%s'", app, root);
		goto fail;
	}
	st.current = deploy_current_id(p.current);
	if ((r = deploy_revisions_list(p.revisions, &st.revisions, &st.failed, NULL, e)) < 0)
		goto fail;
	if ((r = deploy_hist_read(p.history, &st.history, &st.n_history, e)) < 0)
		goto fail;
	st.previous = deploy_hist_previous(st.history, st.n_history, st.current);
	if (st.current) {
		_cleanup_free_ char *mpath = app_manifest_path(&p, st.current);
		_cleanup_buf_ struct buf text = BUF_INIT;
		if (buf_read_file(&text, mpath, PACKAGE_MANIFEST_MAX) >= 0) {
			struct package_info m;
			_cleanup_err_ struct err ign = ERR_INIT;
			if (deploy_manifest_read(&m, text.p, app, st.current, NULL, &ign) == 0) {
				st.commit = xstrdup(m.repo.commit ? m.repo.commit : "");
				package_info_free(&m);
			}
		}
	}
	{
		_cleanup_buf_ struct buf f = BUF_INIT;
		if (buf_read_file(&f, p.failed_marker, 4096) >= 0) {
			buf_rtrim(&f);
			if (package_id_ok(f.p))
				st.watch_failed = xstrdup(f.p);
		}
	}
	app_paths_free(&p);
	*ret = st;
	return 0;
fail:
	app_paths_free(&p);
	deploy_status_free(&st);
	return r;
}

void deploy_status_json(const struct deploy_status *st, struct buf *out)
{
	struct json_object *j = json_object_new_object();
	json_object_object_add(j, "app", json_object_new_string(st->app));
	json_object_object_add(j, "current", json_new_str(st->current));
	json_object_object_add(j, "previous", json_new_str(st->previous));
	json_object_object_add(j, "commit", json_new_str(st->commit));
	json_object_object_add(j, "revisions", json_new_strv(&st->revisions));
	json_object_object_add(j, "failed_revisions", json_new_strv(&st->failed));
	json_object_object_add(j, "watch_failed", json_new_str(st->watch_failed));
	struct json_object *h = json_object_new_array();
	for (size_t i = 0; i < st->n_history; i++) {
		const struct deploy_hist *e = &st->history[i];
		struct json_object *o = json_object_new_object();
		char t[32];
		time_iso8601(e->time, t);
		json_object_object_add(o, "time", json_object_new_string(t));
		json_object_object_add(o, "operation", json_object_new_string(e->op));
		json_object_object_add(o, "id", json_object_new_string(e->id));
		json_object_object_add(o, "result", json_object_new_string(e->result));
		json_object_object_add(o, "previous",
				       json_new_str(strcmp(e->previous, "-") ? e->previous : NULL));
		json_object_array_add(h, o);
	}
	json_object_object_add(j, "history", h);
	json_to_buf(j, out);
	buf_rtrim(out);   /* callers join objects: no newline of our own */
	json_object_put(j);
}

void deploy_status_free(struct deploy_status *st)
{
	if (!st)
		return;
	free(st->app);
	free(st->current);
	free(st->previous);
	free(st->commit);
	free(st->watch_failed);
	strv_free(&st->revisions);
	strv_free(&st->failed);
	deploy_hist_free_all(st->history, st->n_history);
	memset(st, 0, sizeof(*st));
}
