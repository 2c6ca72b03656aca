/* tests/unit/test-saferm.c - fs_rm_rf: symlinks, read-only and deep trees. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "common/common.h"
#include "tests/unit/unit.h"

/* A fresh scratch directory per test, removed with rm -rf semantics by the
 * test itself (fs_rm_rf is what is under test). */
static int setup(void **state)
{
	char tmpl[] = "/tmp/upaas-saferm-XXXXXX";
	char *d = mkdtemp(tmpl);
	assert_non_null(d);
	*state = xstrdup(d);
	return 0;
}

static int teardown(void **state)
{
	char *d = *state;
	struct err e = ERR_INIT;
	/* the outside targets live here too; by now the tests have checked
	 * them, and fs_rm_rf is the only remover we trust with symlinks */
	assert_int_equal(fs_rm_rf(d, &e), 0);
	err_free(&e);
	free(d);
	return 0;
}

static void write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(fs_write_all(fd, text, strlen(text)), 0);
	close(fd);
}

static bool exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

static char *j(const char *a, const char *b)
{
	return path_join(a, b);
}

/* Files, dirs, and symlinks to a file and a directory outside the tree:
 * the tree goes, the targets stay. */
static void test_tree_with_symlinks_out(void **state)
{
	const char *d = *state;
	_cleanup_free_ char *out = j(d, "outside"), *outf = j(d, "outside/keep.txt"),
			    *tree = j(d, "tree"), *sub = j(d, "tree/a/b/c"),
			    *f1 = j(d, "tree/a/file"), *f2 = j(d, "tree/a/b/c/deep"),
			    *l1 = j(d, "tree/a/link-dir"), *l2 = j(d, "tree/a/b/link-file"),
			    *l3 = j(d, "tree/dangling"), *fifo = j(d, "tree/a/fifo");
	assert_int_equal(fs_mkdir_p(out, 0755), 0);
	write_file(outf, "keep");
	assert_int_equal(fs_mkdir_p(sub, 0755), 0);
	write_file(f1, "x");
	write_file(f2, "y");
	assert_int_equal(symlink(out, l1), 0);
	assert_int_equal(symlink(outf, l2), 0);
	assert_int_equal(symlink("/nonexistent/upaas", l3), 0);
	assert_int_equal(mkfifo(fifo, 0600), 0);

	struct err e = ERR_INIT;
	assert_int_equal(fs_rm_rf(tree, &e), 0);
	assert_int_equal(e.code, 0);
	assert_false(exists(tree));
	assert_true(exists(out));
	assert_true(exists(outf));
	_cleanup_buf_ struct buf b = BUF_INIT;
	assert_int_equal(buf_read_file(&b, outf, 0), 0);
	assert_string_equal(b.p, "keep");
	err_free(&e);
}

/* The top path itself a symlink (with and without a trailing slash): the
 * link goes, the directory it points to keeps its contents. */
static void test_top_is_symlink(void **state)
{
	const char *d = *state;
	_cleanup_free_ char *target = j(d, "target"), *tf = j(d, "target/f"),
			    *link = j(d, "link"), *link_slash = xasprintf("%s/link/", d);
	assert_int_equal(fs_mkdir_p(target, 0755), 0);
	write_file(tf, "data");

	struct err e = ERR_INIT;
	assert_int_equal(symlink(target, link), 0);
	assert_int_equal(fs_rm_rf(link_slash, &e), 0);
	assert_false(exists(link));
	assert_true(exists(tf));

	assert_int_equal(symlink(target, link), 0);
	assert_int_equal(fs_rm_rf(link, &e), 0);
	assert_false(exists(link));
	assert_true(exists(tf));
	err_free(&e);
}

static void test_missing_and_file(void **state)
{
	const char *d = *state;
	_cleanup_free_ char *missing = j(d, "no/such/thing"), *file = j(d, "plain");
	struct err e = ERR_INIT;
	assert_int_equal(fs_rm_rf(missing, &e), 0);
	write_file(file, "z");
	assert_int_equal(fs_rm_rf(file, &e), 0);
	assert_false(exists(file));
	assert_int_equal(e.code, 0);
	assert_int_equal(fs_rm_rf("", &e), -EINVAL);
	err_free(&e);
}

/* Read-only directories, unreadable ones too. */
static void make_ro_tree(const char *d)
{
	_cleanup_free_ char *a = j(d, "ro/a"), *f = j(d, "ro/a/f"), *g = j(d, "ro/g"),
			    *n = j(d, "ro/noread"), *nf = j(d, "ro/noread/f"), *ro = j(d, "ro");
	assert_int_equal(fs_mkdir_p(a, 0755), 0);
	assert_int_equal(fs_mkdir_p(n, 0755), 0);
	write_file(f, "1");
	write_file(g, "2");
	write_file(nf, "3");
	assert_int_equal(chmod(a, 0500), 0);
	assert_int_equal(chmod(n, 0000), 0);
	assert_int_equal(chmod(ro, 0500), 0);
}

static void test_read_only_dirs(void **state)
{
	const char *d = *state;
	_cleanup_free_ char *ro = j(d, "ro");
	make_ro_tree(d);
	struct err e = ERR_INIT;
	assert_int_equal(fs_rm_rf(ro, &e), 0);
	assert_false(exists(ro));
	err_free(&e);
}

/* The same as an unprivileged user, where the modes really bite (root
 * passes them anyway): in a child that drops to nobody. */
static void test_read_only_dirs_unprivileged(void **state)
{
	if (geteuid() != 0) {
		test_read_only_dirs(state);
		return;
	}
	const char *d = *state;
	_cleanup_free_ char *ro = j(d, "ro");
	assert_int_equal(chmod(d, 0777), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (setgid(65534) < 0 || setuid(65534) < 0)
			_exit(3);
		make_ro_tree(d);
		struct err e = ERR_INIT;
		int r = fs_rm_rf(ro, &e);
		if (r < 0)
			fprintf(stderr, "# %s\n", err_msg(&e));
		_exit(r < 0 ? 1 : exists(ro) ? 2 : 0);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_false(exists(ro));
}

/* Deeper than the fds the walk keeps open, and longer than PATH_MAX. */
static void test_deep_tree(void **state)
{
	const char *d = *state;
	_cleanup_free_ char *deep = j(d, "deep");
	const char *name = "a-rather-long-directory-name-to-pass-path-max-soon";
	assert_int_equal(mkdir(deep, 0755), 0);
	int fd = open(deep, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);
	for (int i = 0; i < 300; i++) {
		assert_int_equal(mkdirat(fd, name, 0755), 0);
		int f = openat(fd, "file", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
		assert_true(f >= 0);
		close(f);
		assert_int_equal(symlinkat("..", fd, "up"), 0);
		int next = openat(fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		assert_true(next >= 0);
		close(fd);
		fd = next;
	}
	close(fd);
	struct err e = ERR_INIT;
	int r = fs_rm_rf(deep, &e);
	if (r < 0)
		fprintf(stderr, "# %s\n", err_msg(&e));
	assert_int_equal(r, 0);
	assert_false(exists(deep));
	err_free(&e);
}

/* Wide directories: many entries and subdirectories in one. */
static void test_wide_tree(void **state)
{
	const char *d = *state;
	_cleanup_free_ char *wide = j(d, "wide");
	assert_int_equal(mkdir(wide, 0755), 0);
	for (int i = 0; i < 500; i++) {
		_cleanup_free_ char *p = xasprintf("%s/d%03d/e", wide, i);
		_cleanup_free_ char *f = xasprintf("%s/f%03d", wide, i);
		assert_int_equal(fs_mkdir_p(p, 0755), 0);
		write_file(f, "w");
	}
	struct err e = ERR_INIT;
	assert_int_equal(fs_rm_rf(wide, &e), 0);
	assert_false(exists(wide));
	err_free(&e);
}

static void test_mounts_below(void **state)
{
	const char *d = *state;
	assert_true(fs_has_mounts_below("/proc"));
	assert_true(fs_has_mounts_below("/"));
	assert_false(fs_has_mounts_below(d));
	assert_false(fs_has_mounts_below("/nonexistent/upaas"));
	/* a mount point is refused before anything is touched */
	struct err e = ERR_INIT;
	assert_int_equal(fs_rm_rf("/proc", &e), -EBUSY);
	assert_non_null(strstr(err_msg(&e), "refusing to remove '/proc'"));
	err_free(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_tree_with_symlinks_out, setup, teardown),
		cmocka_unit_test_setup_teardown(test_top_is_symlink, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_and_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_only_dirs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_only_dirs_unprivileged, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deep_tree, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wide_tree, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mounts_below, setup, teardown),
	};
	return cmocka_run_group_tests_name("saferm", tests, NULL, NULL);
}
