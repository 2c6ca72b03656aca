/*
 * tests/unit/test-layer.c - layers (upaas-package(5)) for real: changes made
 * through a real overlayfs, packed from its upper dir with pack_layer(),
 * applied onto the tree below (UNPACK_APPLY) and unpacked in overlay format
 * (UNPACK_UPPER) and stacked again, each compared entry by entry with the
 * overlay's merged view; and hostile layers that try to escape the tree
 * through the whiteouts, the opaque marker, symlinks of the layers below and
 * hard links.
 *
 * Runs as root (overlayfs, mknod, trusted.* xattrs), in a mount namespace of
 * its own; skipped otherwise.
 */
#include "unit.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include "archive/archive.h"

#define CLAMP 1700000000

struct fx {
	char *top;
	char *lower, *upper, *work, *merged;   /* the overlay the changes go through */
	char *base_tar, *layer_tar;
};

static bool can_run;

static char *at(const char *dir, const char *rel) { return path_join(dir, rel); }

static void put(const char *dir, const char *rel, const char *text, mode_t mode)
{
	_cleanup_free_ char *p = at(dir, rel);
	assert_int_equal(fs_write_atomic(p, text, strlen(text), mode), 0);
}

static void mkd(const char *dir, const char *rel)
{
	_cleanup_free_ char *p = at(dir, rel);
	assert_int_equal(fs_mkdir_p(p, 0755), 0);
}

static void sh(const char *cmd)
{
	assert_int_equal(system(cmd), 0);
}

static int sink_fd(void *data, const void *p, size_t n)
{
	return fs_write_all(*(int *)data, p, n);
}

static int pack_to(const char *root, const char *lower, bool layer, const char *file,
		   struct pack_result *res)
{
	struct pack_opts o = { .level = 3, .threads = 1, .mtime_clamp = CLAMP, .layer = true };
	_cleanup_err_ struct err e = ERR_INIT;
	int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int r;

	assert_true(fd >= 0);
	r = layer ? pack_layer(root, lower, &o, sink_fd, &fd, res, &e)
		  : pack_tree(root, &o, sink_fd, &fd, res, &e);
	if (r < 0)
		print_error("pack: %s\n", err_msg(&e));
	close(fd);
	return r;
}

static int unpack(const char *file, const char *dest, enum unpack_mode mode, struct err *e)
{
	struct unpack_opts o = { .mode = mode, .name = file };
	_cleanup_close_ int fd = open(file, O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	return unpack_fd(fd, dest, &o, NULL, e);
}

/* One line per entry below root: path, type, mode, owner, size, a digest of
 * the data or the link target, the xattrs (overlay's left out). */
static void snap_dir(int dfd, const char *rel, struct strv *out)
{
	DIR *d = fdopendir(dfd);
	struct dirent *de;

	assert_non_null(d);
	while ((de = readdir(d))) {
		_cleanup_free_ char *p = NULL;
		_cleanup_buf_ struct buf line = BUF_INIT;
		char xl[4096], hex[4096] = "-";
		struct stat st;
		ssize_t n;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		p = *rel ? xasprintf("%s/%s", rel, de->d_name) : xstrdup(de->d_name);
		assert_int_equal(fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW), 0);
		if (S_ISREG(st.st_mode)) {
			_cleanup_buf_ struct buf data = BUF_INIT;
			int fd = openat(dirfd(d), de->d_name, O_RDONLY | O_CLOEXEC);
			assert_true(fd >= 0);
			assert_true(buf_read_fd(&data, fd) >= 0);
			close(fd);
			sha256_hex(data.p, data.len, hex);
		} else if (S_ISLNK(st.st_mode)) {
			char t[4096];
			n = readlinkat(dirfd(d), de->d_name, t, sizeof(t) - 1);
			assert_true(n >= 0);
			t[n] = 0;
			snprintf(hex, sizeof(hex), "%s", t);
		}
		buf_addf(&line, "%s %o %u:%u %lld %s", p, st.st_mode, st.st_uid, st.st_gid,
			 S_ISDIR(st.st_mode) ? 0LL : (long long)st.st_size, hex);
		_cleanup_free_ char *full = xasprintf("/proc/self/fd/%d/%s", dirfd(d), de->d_name);
		n = llistxattr(full, xl, sizeof(xl));
		for (ssize_t i = 0; i > -1 && i < n; i += (ssize_t)strlen(xl + i) + 1)
			if (strncmp(xl + i, "trusted.overlay.", 16))
				buf_addf(&line, " %s", xl + i);
		strv_push(out, line.p);
		if (S_ISDIR(st.st_mode)) {
			int fd = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
			assert_true(fd >= 0);
			snap_dir(fd, p, out);
		}
	}
	closedir(d);
}

static void snap(const char *root, struct strv *out)
{
	int fd = open(root, O_RDONLY | O_DIRECTORY);

	assert_true(fd >= 0);
	snap_dir(fd, "", out);
	strv_sort(out);
}

static void assert_same(const struct strv *a, const struct strv *b, const char *what)
{
	size_t i = 0, j = 0;
	bool same = a->n == b->n;

	for (; i < a->n && j < b->n; i++, j++)
		if (strcmp(a->v[i], b->v[j])) {
			print_error("%s: '%s' != '%s'\n", what, a->v[i], b->v[j]);
			same = false;
			break;
		}
	if (a->n != b->n)
		print_error("%s: %zu entries, %zu expected\n", what, b->n, a->n);
	assert_true(same);
}

static void list_entries(const char *file, struct strv *names)
{
	struct archive *a = archive_read_new();
	struct archive_entry *ae;

	archive_read_support_filter_all(a);
	archive_read_support_format_all(a);
	assert_int_equal(archive_read_open_filename(a, file, 65536), ARCHIVE_OK);
	/* a UTF-8 name that the C locale cannot show is a warning */
	for (int r; (r = archive_read_next_header(a, &ae)) == ARCHIVE_OK || r == ARCHIVE_WARN;)
		strv_push(names, archive_entry_pathname(ae));
	archive_read_free(a);
}

static void ovl_mount(const char *lowers, const char *upper, const char *work, const char *on)
{
	_cleanup_free_ char *opts = upper
		? xasprintf("lowerdir=%s,upperdir=%s,workdir=%s,redirect_dir=off,metacopy=off",
			    lowers, upper, work)
		: xasprintf("lowerdir=%s", lowers);
	assert_int_equal(mkdir(on, 0755) == 0 || errno == EEXIST, 1);
	if (mount("overlay", on, "overlay", upper ? 0 : MS_RDONLY, opts) < 0) {
		print_error("mount overlay %s: %s\n", opts, strerror(errno));
		fail();
	}
}

static int setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));
	char tmpl[] = "/var/tmp/upaas-test-layer.XXXXXX";

	if (!can_run)
		skip();
	assert_non_null(mkdtemp(tmpl));
	f->top = xstrdup(tmpl);
	f->lower = at(f->top, "lower");
	f->upper = at(f->top, "upper");
	f->work = at(f->top, "work");
	f->merged = at(f->top, "merged");
	f->base_tar = at(f->top, "base.tar.zst");
	f->layer_tar = at(f->top, "layer.tar.zst");
	mkd(f->top, "upper");
	mkd(f->top, "work");

	/* the layers below: a tree as a previous build left it */
	mkd(f->lower, "etc");
	put(f->lower, "etc/keep", "unchanged\n", 0644);
	put(f->lower, "etc/touched", "copied up, not changed\n", 0644);
	put(f->lower, "etc/mode", "mode only\n", 0644);
	put(f->lower, "etc/content", "old content\n", 0644);
	put(f->lower, "etc/deleted", "gone soon\n", 0644);
	put(f->lower, "etc/renamed", "moves\n", 0644);
	put(f->lower, "f2d", "a file that becomes a directory\n", 0644);
	mkd(f->lower, "d2f/sub");
	put(f->lower, "d2f/sub/x", "a directory that becomes a file\n", 0644);
	mkd(f->lower, "gone/deep/er");
	put(f->lower, "gone/deep/er/f", "the build's directory, removed\n", 0644);
	mkd(f->lower, "opaque");
	put(f->lower, "opaque/old", "hidden by an opaque directory\n", 0644);
	mkd(f->lower, "home/app");
	put(f->lower, "home/app/app.py", "print(1)\n", 0644);
	{
		_cleanup_free_ char *s = at(f->lower, "link"), *o = at(f->lower, "etc/owned");
		assert_int_equal(symlink("etc/keep", s), 0);
		put(f->lower, "etc/owned", "owned\n", 0640);
		assert_int_equal(chown(o, 1000, 1000), 0);
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	_cleanup_err_ struct err e = ERR_INIT;

	if (!f)
		return 0;
	umount2(f->merged, MNT_DETACH);
	assert_int_equal(fs_rm_rf(f->top, &e), 0);
	free(f->top);
	free(f->lower);
	free(f->upper);
	free(f->work);
	free(f->merged);
	free(f->base_tar);
	free(f->layer_tar);
	free(f);
	return 0;
}

/* The changes of one build, made through the overlay. */
static void change(const char *m)
{
	_cleanup_free_ char *cmd = xasprintf(
		"set -e; cd '%s'; touch etc/touched; chmod 600 etc/mode;"
		"echo new content > etc/content; rm etc/deleted; mv etc/renamed etc/moved;"
		"rm f2d; mkdir f2d; echo in > f2d/in;"
		"rm -r d2f; echo was a dir > d2f;"
		"rm -r gone; ln -sfn etc/content link;"
		"rm -r opaque; mkdir opaque; echo new > opaque/new;"
		"printf 'unicode\\n' > home/app/$(printf '\\303\\251t\\303\\251 \\342\\230\\203.txt');"
		"mkdir -p home/app/new/dir; echo x > home/app/new/dir/x;"
		"touch home/app/app.py; chown 1000:1000 home/app/app.py; chown 0:0 home/app/app.py",
		m);
	sh(cmd);
}

static void test_layer_round_trip(void **state)
{
	struct fx *f = *state;
	_cleanup_strv_ struct strv want = STRV_INIT, got = STRV_INIT, names = STRV_INIT;
	_cleanup_free_ char *flat = at(f->top, "flat"), *up2 = at(f->top, "up2");
	_cleanup_free_ char *base2 = at(f->top, "base2"), *m2 = at(f->top, "m2");
	_cleanup_err_ struct err e = ERR_INIT;
	struct pack_result res;

	ovl_mount(f->lower, f->upper, f->work, f->merged);
	change(f->merged);
	snap(f->merged, &want);
	assert_int_equal(umount2(f->merged, 0), 0);

	assert_int_equal(pack_to(f->lower, NULL, false, f->base_tar, &res), 0);
	assert_int_equal(pack_to(f->upper, f->lower, true, f->layer_tar, &res), 0);
	list_entries(f->layer_tar, &names);
	for (size_t i = 0; i < names.n; i++)
		print_message("#   %s\n", names.v[i]);
	/* what did not change is not in the layer */
	assert_false(strv_contains(&names, "etc/touched"));
	assert_false(strv_contains(&names, "home/app/app.py"));
	assert_false(strv_contains(&names, "etc/keep"));
	assert_true(res.unchanged >= 2);
	/* deletions are whiteouts, a replaced directory is opaque */
	assert_true(strv_contains(&names, "etc/.wh.deleted"));
	assert_true(strv_contains(&names, "etc/.wh.renamed"));
	assert_true(strv_contains(&names, ".wh.gone"));
	assert_true(strv_contains(&names, "opaque/.wh..wh..opq"));
	assert_true(strv_contains(&names, "etc/moved"));
	assert_true(strv_contains(&names, "d2f"));

	/* applied onto the tree below: the merged view */
	assert_int_equal(unpack(f->base_tar, flat, UNPACK_PLAIN, &e), 0);
	assert_int_equal(unpack(f->layer_tar, flat, UNPACK_APPLY, &e), 0);
	snap(flat, &got);
	assert_same(&want, &got, "applied");

	/* in overlay format, stacked again */
	strv_free(&got);
	assert_int_equal(unpack(f->base_tar, base2, UNPACK_PLAIN, &e), 0);
	assert_int_equal(unpack(f->layer_tar, up2, UNPACK_UPPER, &e), 0);
	_cleanup_free_ char *lowers = xasprintf("%s:%s", up2, base2);
	ovl_mount(lowers, NULL, NULL, m2);
	snap(m2, &got);
	assert_int_equal(umount2(m2, 0), 0);
	assert_same(&want, &got, "stacked");

	/* the same change gives the same layer */
	struct pack_result again;
	_cleanup_free_ char *other = at(f->top, "again.tar.zst");
	assert_int_equal(pack_to(f->upper, f->lower, true, other, &again), 0);
	assert_string_equal(res.sha256, again.sha256);
}

static void test_no_change(void **state)
{
	struct fx *f = *state;
	struct pack_result res;
	_cleanup_strv_ struct strv names = STRV_INIT;

	ovl_mount(f->lower, f->upper, f->work, f->merged);
	_cleanup_free_ char *cmd = xasprintf("set -e; cd '%s'; touch etc/keep home/app/app.py;"
					     "chmod 644 etc/mode", f->merged);
	sh(cmd);
	assert_int_equal(umount2(f->merged, 0), 0);
	assert_int_equal(pack_to(f->upper, f->lower, true, f->layer_tar, &res), 0);
	list_entries(f->layer_tar, &names);
	assert_int_equal(names.n, 0);
	assert_int_equal(res.entries, 0);
}

static void test_reserved_name(void **state)
{
	struct fx *f = *state;
	struct pack_result res;

	put(f->lower, "etc/.wh.sneaky", "x", 0644);
	assert_int_equal(pack_to(f->lower, NULL, false, f->base_tar, &res), -EINVAL);
}

/* ------------------------------------------------------------- hostile */

struct ev {
	const char *path;
	char type;          /* f file, d dir, l symlink, h hard link */
	const char *target;
};

static void write_layer(const char *file, const struct ev *ev, size_t n)
{
	struct archive *a = archive_write_new();
	struct archive_entry *ae = archive_entry_new();

	archive_write_set_format_pax_restricted(a);
	assert_int_equal(archive_write_open_filename(a, file), ARCHIVE_OK);
	for (size_t i = 0; i < n; i++) {
		archive_entry_clear(ae);
		archive_entry_set_pathname(ae, ev[i].path);
		archive_entry_set_mtime(ae, CLAMP, 0);
		archive_entry_set_filetype(ae, ev[i].type == 'd' ? AE_IFDIR
					   : ev[i].type == 'l' ? AE_IFLNK : AE_IFREG);
		archive_entry_set_perm(ae, ev[i].type == 'd' ? 0755 : 0644);
		if (ev[i].type == 'l')
			archive_entry_set_symlink(ae, ev[i].target);
		if (ev[i].type == 'h')
			archive_entry_set_hardlink(ae, ev[i].target);
		if (ev[i].type == 'f')
			archive_entry_set_size(ae, 4);
		if (ev[i].type == 'x') {
			archive_entry_set_size(ae, 4);
			archive_entry_xattr_add_entry(ae, "trusted.overlay.redirect", "/etc", 4);
		}
		assert_int_equal(archive_write_header(a, ae), ARCHIVE_OK);
		if (ev[i].type == 'f' || ev[i].type == 'x')
			assert_int_equal(archive_write_data(a, "evil", 4), 4);
	}
	archive_entry_free(ae);
	assert_int_equal(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
}

static void test_hostile_layers(void **state)
{
	struct fx *f = *state;
	_cleanup_free_ char *outside = at(f->top, "outside");
	_cleanup_free_ char *evil = at(f->top, "evil.tar");
	_cleanup_free_ char *tree = at(f->top, "tree");
	_cleanup_free_ char *secret = at(outside, "secret");
	_cleanup_free_ char *planted = at(outside, "x");
	struct ev via_lower_link[] = { { "out/x", 'f', NULL } };
	struct ev wh_via_link[] = { { "out/.wh.secret", 'f', NULL } };
	struct ev opq_via_link[] = { { "out/.wh..wh..opq", 'f', NULL } };
	struct ev wh_dotdot[] = { { "etc/.wh...", 'f', NULL } };
	struct ev wh_dot[] = { { ".wh..", 'f', NULL } };
	struct ev dotdot[] = { { "etc/../../outside/x", 'f', NULL } };
	struct ev hl_lower[] = { { "etc/h", 'h', "etc/keep" } };
	struct ev hl_out[] = { { "etc/h", 'h', "out/secret" } };
	struct ev hl_abs[] = { { "etc/h", 'h', "/etc/passwd" } };
	struct ev link_then[] = { { "new", 'l', "../outside" }, { "new/x", 'f', NULL } };
	struct ev both[] = { { "etc/keep", 'f', NULL }, { "etc/.wh.keep", 'f', NULL } };
	struct {
		const char *name;
		struct ev *ev;
		size_t n;
		int modes;      /* 1: APPLY, 2: UPPER, 3: both */
	} cases[] = {
		{ "a file through a symlink of the layers below", via_lower_link, 1, 1 },
		{ "a whiteout through a symlink", wh_via_link, 1, 1 },
		{ "an opaque marker through a symlink", opq_via_link, 1, 1 },
		{ "a whiteout of '..'", wh_dotdot, 1, 3 },
		{ "a whiteout of '.'", wh_dot, 1, 3 },
		{ "a path with '..'", dotdot, 1, 3 },
		{ "a hard link to a file of the layers below", hl_lower, 1, 3 },
		{ "a hard link through a symlink", hl_out, 1, 1 },
		{ "a hard link to an absolute path", hl_abs, 1, 3 },
		{ "a file through a symlink of the same layer", link_then, 2, 3 },
		{ "an entry and its whiteout", both, 2, 3 },
	};
	struct stat st;

	assert_int_equal(mkdir(outside, 0755), 0);
	put(outside, "secret", "s", 0600);
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		for (int mode = 1; mode <= 2; mode++) {
			_cleanup_err_ struct err e = ERR_INIT, e2 = ERR_INIT;
			_cleanup_free_ char *link = at(tree, "out");
			int r;

			if (!(cases[i].modes & mode))
				continue;
			assert_int_equal(fs_rm_rf(tree, &e2), 0);
			if (mode == 1) {
				/* the tree below: the fixture, with a symlink out */
				_cleanup_free_ char *cmd = xasprintf("cp -a '%s' '%s'", f->lower, tree);
				sh(cmd);
				assert_int_equal(symlink(outside, link), 0);
			}
			write_layer(evil, cases[i].ev, cases[i].n);
			r = unpack(evil, tree, mode == 1 ? UNPACK_APPLY : UNPACK_UPPER, &e);
			print_message("# %s (%s): %d %s\n", cases[i].name,
				      mode == 1 ? "apply" : "upper", r, err_msg(&e));
			assert_true(r < 0);
			assert_non_null(strstr(err_msg(&e), evil));
			assert_int_equal(stat(secret, &st), 0);
			assert_int_equal(st.st_nlink, 1);
			assert_int_equal(lstat(planted, &st), -1);
		}
	}
	/* overlay's own xattrs never come from an archive */
	{
		_cleanup_err_ struct err e = ERR_INIT, e2 = ERR_INIT;
		_cleanup_free_ char *p = at(tree, "r");
		struct ev redirect[] = { { "r", 'x', NULL } };
		char v[16];

		assert_int_equal(fs_rm_rf(tree, &e2), 0);
		write_layer(evil, redirect, 1);
		assert_int_equal(unpack(evil, tree, UNPACK_UPPER, &e), 0);
		assert_int_equal(lgetxattr(p, "trusted.overlay.redirect", v, sizeof(v)), -1);
	}
}

static void test_verify_stream(void **state)
{
	struct fx *f = *state;
	_cleanup_free_ char *dest = at(f->top, "v");
	_cleanup_err_ struct err e = ERR_INIT, e2 = ERR_INIT;
	struct pack_result res;
	char bad[65];

	assert_int_equal(pack_to(f->lower, NULL, false, f->base_tar, &res), 0);
	for (int k = 0; k < 3; k++) {
		struct unpack_opts o = { .mode = UNPACK_PLAIN, .name = "layer",
					 .sha256 = res.sha256, .size = res.size };
		_cleanup_close_ int fd = open(f->base_tar, O_RDONLY | O_CLOEXEC);
		int r;

		memcpy(bad, res.sha256, sizeof(bad));
		bad[0] = bad[0] == '0' ? '1' : '0';
		if (k == 1)
			o.sha256 = bad;
		if (k == 2)
			o.size = res.size - 1;
		assert_int_equal(fs_rm_rf(dest, &e2), 0);
		err_clear(&e);
		r = unpack_fd(fd, dest, &o, NULL, &e);
		print_message("# verify %d: %d %s\n", k, r, err_msg(&e));
		assert_int_equal(r, k == 0 ? 0 : -EBADMSG);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_layer_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_change, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reserved_name, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hostile_layers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_verify_stream, setup, teardown),
	};

	/* a mount namespace of our own: nothing mounted outlives the test */
	can_run = geteuid() == 0 && unshare(CLONE_NEWNS) == 0 &&
		  mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0;
	return cmocka_run_group_tests_name("layer", tests, NULL, NULL);
}
