/* tests/unit/test-common.c - buffers, lists, errors, child processes. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "common/common.h"
#include "tests/unit/unit.h"

static void test_buf_basic(void **state)
{
	struct buf b = BUF_INIT;
	assert_string_equal(b.p, "");
	assert_int_equal(buf_adds(&b, "abc"), 0);
	assert_int_equal(buf_addf(&b, "-%d-%s", 42, "x"), 0);
	assert_string_equal(b.p, "abc-42-x");
	assert_int_equal(b.len, 8);
	buf_setlen(&b, 3);
	assert_string_equal(b.p, "abc");
	char *d = buf_detach(&b);
	assert_string_equal(d, "abc");
	assert_string_equal(b.p, "");
	free(d);
	buf_free(&b);
}

/* Text for a terminal: controls become \xHH, UTF-8 stays, bytes stay in
 * order and nothing is lost. */
static void test_buf_add_safe(void **state)
{
	static const struct { const char *in; size_t n; const char *out; } cases[] = {
		{ "plain text\twith tab\n", 0, "plain text\twith tab\n" },
		{ "\x1b[2J\x1b[H", 0, "\\x1b[2J\\x1b[H" },                    /* clear screen */
		{ "\x1b]0;owned\x07", 0, "\\x1b]0;owned\\x07" },               /* window title */
		{ "a\rb\x7f", 0, "a\\x0db\\x7f" },
		{ "caf\xc3\xa9 \xe6\x97\xa5 \xf0\x9f\x98\x80", 0, "caf\xc3\xa9 \xe6\x97\xa5 \xf0\x9f\x98\x80" },
		{ "\xc2\x9b" "2J", 0, "\\xc2\\x9b2J" },                        /* C1 CSI in UTF-8 */
		{ "\x9b" "2J", 0, "\\x9b2J" },                                 /* 8-bit CSI */
		{ "\xff\xc3", 0, "\\xff\\xc3" },                               /* not UTF-8, cut */
		{ "\xed\xa0\x80", 0, "\\xed\\xa0\\x80" },                      /* a surrogate */
		{ "nul\0after", 9, "nul\\x00after" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		_cleanup_buf_ struct buf b = BUF_INIT;
		size_t n = cases[i].n ? cases[i].n : strlen(cases[i].in);
		buf_add_safe(&b, cases[i].in, n);
		assert_string_equal(b.p, cases[i].out);
	}
	(void)state;
}

/* git's blob ids, as `git hash-object` gives them */
static void test_hash_git_blob(void **state)
{
	char hex[65];
	int p[2];

	for (int sha256 = 0; sha256 < 2; sha256++) {
		assert_int_equal(pipe(p), 0);
		assert_int_equal(fs_write_all(p[1], "hello\n", 6), 0);
		close(p[1]);
		assert_int_equal(hash_git_blob(p[0], 6, sha256, hex), 0);
		close(p[0]);
		assert_string_equal(hex, sha256 ? "2cf8d83d9ee29543b34a87727421fdecb7e3f3a183d337639025de576db9ebb4"
					      : "ce013625030ba8dba906f756967f9e9ca394464a");
	}
	/* fewer bytes than the size said */
	assert_int_equal(pipe(p), 0);
	assert_int_equal(fs_write_all(p[1], "hi", 2), 0);
	close(p[1]);
	assert_int_equal(hash_git_blob(p[0], 6, false, hex), -EIO);
	close(p[0]);
	(void)state;
}

static void test_buf_max(void **state)
{
	struct buf b;
	buf_init(&b, 4);
	assert_int_equal(buf_adds(&b, "abcd"), 0);
	assert_int_equal(buf_adds(&b, "e"), -E2BIG);
	assert_string_equal(b.p, "abcd");
	buf_free(&b);
}

static void test_buf_read_file_bounded(void **state)
{
	char path[] = "/tmp/upaas-unit-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(fs_write_all(fd, "0123456789", 10), 0);
	close(fd);
	struct buf b = BUF_INIT;
	assert_int_equal(buf_read_file(&b, path, 10), 0);
	assert_string_equal(b.p, "0123456789");
	buf_reset(&b);
	assert_int_equal(buf_read_file(&b, path, 5), -E2BIG);
	buf_free(&b);
	unlink(path);
}

static void test_strv_kv(void **state)
{
	struct strv s = STRV_INIT;
	assert_non_null(strv_array(&s));
	assert_null(strv_array(&s)[0]);
	strv_push(&s, "b");
	strv_pushf(&s, "%s", "a");
	strv_sort(&s);
	assert_string_equal(s.v[0], "a");
	assert_null(s.v[2]);
	strv_setenv(&s, "X", "1");
	strv_setenv(&s, "X", "2");
	assert_int_equal(s.n, 3);
	assert_string_equal(s.v[2], "X=2");
	strv_free(&s);

	struct kvlist l = KVLIST_INIT, m = KVLIST_INIT;
	kvlist_set(&l, "A", "1");
	kvlist_set(&l, "B", "1");
	kvlist_set(&m, "B", "2");
	kvlist_merge(&l, &m);
	assert_string_equal(kvlist_get(&l, "B"), "2");
	assert_string_equal(kvlist_get(&l, "A"), "1");
	assert_null(kvlist_get(&l, "C"));
	kvlist_free(&l);
	kvlist_free(&m);
}

static void test_err_first_wins(void **state)
{
	struct err e = ERR_INIT;
	assert_int_equal(err_set(&e, -ENOENT, "first %s", "one"), -ENOENT);
	assert_int_equal(err_set(&e, -EIO, "second"), -EIO);
	assert_int_equal(e.code, -ENOENT);
	err_prefix(&e, "ctx");
	assert_string_equal(err_msg(&e), "ctx: first one");
	err_free(&e);
	assert_int_equal(err_set(NULL, -EINVAL, "x"), -EINVAL);
}

static void test_proc_exit_codes(void **state)
{
	struct err e = ERR_INIT;
	struct proc p = PROC_INIT;
	strv_push(&p.argv, "sh");
	strv_push(&p.argv, "-c");
	strv_push(&p.argv, "exit 3");
	assert_int_equal(proc_run(&p, &e), 3);
	proc_free(&p);

	struct proc q = PROC_INIT;
	strv_push(&q.argv, "sh");
	strv_push(&q.argv, "-c");
	strv_push(&q.argv, "kill -9 $$");
	assert_int_equal(proc_run(&q, &e), 128 + 9);
	proc_free(&q);
	err_free(&e);
}

static void test_proc_exec_failure(void **state)
{
	struct err e = ERR_INIT;
	struct proc p = PROC_INIT;
	strv_push(&p.argv, "/nonexistent/upaas-no-such-binary");
	assert_int_equal(proc_run(&p, &e), -ENOENT);
	assert_non_null(strstr(err_msg(&e), "cannot run '/nonexistent/upaas-no-such-binary'"));
	proc_free(&p);
	err_free(&e);
}

static void test_proc_capture_argv_not_shell(void **state)
{
	struct err e = ERR_INIT;
	struct buf out = BUF_INIT;
	struct proc p = PROC_INIT;
	strv_push(&p.argv, "printf");
	strv_push(&p.argv, "%s");
	strv_push(&p.argv, "a; echo injected");
	p.capture = &out;
	assert_int_equal(proc_run(&p, &e), 0);
	assert_string_equal(out.p, "a; echo injected");
	proc_free(&p);
	buf_free(&out);
	err_free(&e);
}

static void test_proc_timeout_kills_tree(void **state)
{
	struct err e = ERR_INIT;
	struct proc p = PROC_INIT;
	char marker[64];
	snprintf(marker, sizeof(marker), "sleep %d", 1000 + (int)(getpid() % 1000));
	strv_push(&p.argv, "sh");
	strv_push(&p.argv, "-c");
	strv_pushf(&p.argv, "%s & %s", marker, marker);
	p.timeout_ms = 300;
	uint64_t t0 = now_ms();
	assert_int_equal(proc_run(&p, &e), -ETIMEDOUT);
	assert_true(now_ms() - t0 < 5000);
	assert_non_null(strstr(err_msg(&e), "timed out after 1 s"));
	proc_free(&p);
	err_free(&e);
	/* no sleeper of ours is left */
	struct proc chk = PROC_INIT;
	strv_push(&chk.argv, "pgrep");
	strv_push(&chk.argv, "-f");
	strv_push(&chk.argv, marker);
	usleep(100000);
	assert_int_equal(proc_run(&chk, NULL), 1);
	proc_free(&chk);
}

static void test_proc_pid_namespace(void **state)
{
	struct err e = ERR_INIT;
	struct buf out = BUF_INIT;
	struct proc p = PROC_INIT;
	strv_push(&p.argv, "sh");
	strv_push(&p.argv, "-c");
	strv_push(&p.argv, "echo $$; exit 7");
	p.capture = &out;
	p.pid_namespace = true;
	assert_int_equal(proc_run(&p, &e), 7);
	assert_string_equal(out.p, "1\n");    /* PID 1 of its own namespace */
	proc_free(&p);

	struct proc q = PROC_INIT;
	strv_push(&q.argv, "/nonexistent/upaas-no-such-binary");
	q.pid_namespace = true;
	assert_int_equal(proc_run(&q, &e), -ENOENT);
	proc_free(&q);
	buf_free(&out);
	err_free(&e);
}

/* new_session: the child leads a session of its own, without a
 * controlling terminal (the keyring is hostile.sh's business) */
static void test_proc_new_session(void **state)
{
	struct err e = ERR_INIT;
	struct buf out = BUF_INIT;
	struct proc p = PROC_INIT;
	strv_push(&p.argv, "sh");
	strv_push(&p.argv, "-c");
	/* fields 6 and 7 of stat: session, controlling terminal */
	strv_push(&p.argv, "read -r pid _ _ _ _ sid tty _ </proc/self/stat; "
		  "[ \"$pid\" = \"$$\" ] && echo $((sid - $$)) $tty");
	p.capture = &out;
	p.new_session = true;
	assert_int_equal(proc_run(&p, &e), 0);
	assert_string_equal(out.p, "0 0\n");
	proc_free(&p);

	/* a timeout still kills the whole tree (the session's group) */
	struct proc q = PROC_INIT;
	strv_push(&q.argv, "sh");
	strv_push(&q.argv, "-c");
	strv_push(&q.argv, "sleep 30 & sleep 31");
	q.new_session = true;
	q.timeout_ms = 300;
	assert_int_equal(proc_run(&q, &e), -ETIMEDOUT);
	proc_free(&q);
	buf_free(&out);
	err_free(&e);
}

static void test_proc_log_lines(void **state)
{
	char path[] = "/tmp/upaas-unit-log-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	struct proc p = PROC_INIT;
	strv_push(&p.argv, "sh");
	strv_push(&p.argv, "-c");
	strv_push(&p.argv, "echo one; echo two >&2; printf three");
	p.log_fd = fd;
	assert_int_equal(proc_run(&p, NULL), 0);
	proc_free(&p);
	close(fd);
	struct buf b = BUF_INIT;
	assert_int_equal(buf_read_file(&b, path, 0), 0);
	/* three timestamped lines */
	int lines = 0;
	for (size_t i = 0; i < b.len; i++)
		lines += b.p[i] == '\n';
	assert_int_equal(lines, 3);
	assert_non_null(strstr(b.p, "Z one\n"));
	assert_non_null(strstr(b.p, "Z two\n"));
	assert_non_null(strstr(b.p, "Z three\n"));
	assert_true(b.p[4] == '-' && b.p[10] == 'T');
	buf_free(&b);
	unlink(path);
}

static void test_fs_atomic_and_paths(void **state)
{
	char dir[] = "/tmp/upaas-unit-dir-XXXXXX";
	assert_non_null(mkdtemp(dir));
	_cleanup_free_ char *deep = path_join(dir, "a/b/c");
	assert_int_equal(fs_mkdir_p(deep, 0755), 0);
	_cleanup_free_ char *f = path_join(deep, "file");
	assert_int_equal(fs_write_atomic(f, "hello", 5, 0640), 0);
	struct stat st;
	assert_int_equal(stat(f, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	char hex[65];
	uint64_t size;
	assert_int_equal(sha256_file(f, hex, &size, NULL), 0);
	assert_int_equal(size, 5);
	assert_string_equal(hex, "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
	_cleanup_free_ char *j = path_join("/", "/x");
	assert_string_equal(j, "/x");
	_cleanup_free_ char *k = path_join("a/", "b");
	assert_string_equal(k, "a/b");
	assert_true(path_component_ok("x.y"));
	assert_false(path_component_ok(".."));
	assert_false(path_component_ok("a/b"));
	assert_false(path_component_ok(""));
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

static void test_ids_sort_by_time(void **state)
{
	_cleanup_free_ char *a = id_new();
	usleep(2000);
	_cleanup_free_ char *b = id_new();
	assert_int_equal(strlen(a), strlen("20261120T214500Z-3f9a2c1"));
	assert_true(id_ok(a));
	assert_true(strcmp(a, b) < 0);   /* ordered within one second too */
	assert_false(id_ok("20261120T214500Z-3f9a2cg"));
	assert_false(id_ok("20261120T214500Z-3f9a2c"));
	assert_false(id_ok("../etc"));
	int64_t v;
	assert_int_equal(parse_int64("42", 0, 100, &v), 0);
	assert_int_equal(v, 42);
	assert_int_equal(parse_int64("4x", 0, 100, &v), -EINVAL);
	assert_int_equal(parse_int64("101", 0, 100, &v), -ERANGE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_buf_basic),
		cmocka_unit_test(test_buf_max),
		cmocka_unit_test(test_buf_add_safe),
		cmocka_unit_test(test_hash_git_blob),
		cmocka_unit_test(test_buf_read_file_bounded),
		cmocka_unit_test(test_strv_kv),
		cmocka_unit_test(test_err_first_wins),
		cmocka_unit_test(test_proc_exit_codes),
		cmocka_unit_test(test_proc_exec_failure),
		cmocka_unit_test(test_proc_capture_argv_not_shell),
		cmocka_unit_test(test_proc_timeout_kills_tree),
		cmocka_unit_test(test_proc_pid_namespace),
		cmocka_unit_test(test_proc_new_session),
		cmocka_unit_test(test_proc_log_lines),
		cmocka_unit_test(test_fs_atomic_and_paths),
		cmocka_unit_test(test_ids_sort_by_time),
	};
	return cmocka_run_group_tests_name("common", tests, NULL, NULL);
}
