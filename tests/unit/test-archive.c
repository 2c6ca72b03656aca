/*
 * tests/unit/test-archive.c - pack_tree / unpack_file round trips, order,
 * determinism, excludes, and extraction that tries to escape its target.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <time.h>

#include "archive/archive.h"
#include "rootfs/rootfs.h"

#define CLAMP 1700000000
#define FUTURE 4102444800LL   /* 2100-01-01 */

/* security.capability for cap_net_raw=ep (VFS_CAP_REVISION_2) */
static const unsigned char cap_net_raw[20] = {
	0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
};

struct fx {
	char *top;      /* temp dir holding src/, out/, archives */
	char *src;
	char *out;
	char *tar;
	bool root;
	bool have_caps; /* security.capability could be set on src */
};

static char *cat(const char *a, const char *b) { return path_join(a, b); }

static void put(const char *dir, const char *rel, const char *text)
{
	_cleanup_free_ char *p = cat(dir, rel);
	assert_int_equal(fs_write_atomic(p, text, strlen(text), 0644), 0);
}

static void mkd(const char *dir, const char *rel)
{
	_cleanup_free_ char *p = cat(dir, rel);
	assert_int_equal(fs_mkdir_p(p, 0755), 0);
}

static int sink_fd(void *data, const void *p, size_t n)
{
	return fs_write_all(*(int *)data, p, n);
}

static int setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));
	char tmpl[] = "/var/tmp/upaas-test-archive.XXXXXX";
	struct timespec ts[2] = { { 0, UTIME_OMIT }, { FUTURE, 0 } };
	_cleanup_free_ char *p = NULL, *q = NULL;

	assert_non_null(mkdtemp(tmpl));
	f->top = xstrdup(tmpl);
	f->src = cat(f->top, "src");
	f->out = cat(f->top, "out");
	f->tar = cat(f->top, "a.tar.zst");
	f->root = geteuid() == 0;

	mkd(f->src, "etc");
	mkd(f->src, "proc/self");
	mkd(f->src, "dev/pts");
	mkd(f->src, "tmp/sub");
	mkd(f->src, "usr/bin");
	put(f->src, "etc/a", "hello\n");
	put(f->src, "etc/b", "world\n");
	put(f->src, "proc/self/status", "x");
	put(f->src, "dev/console-ish", "x");
	put(f->src, "tmp/junk", "x");
	put(f->src, "tmp/sub/more", "x");
	put(f->src, "usr/bin/ping", "#!/bin/sh\n");
	put(f->src, "etc.d", "sorts between etc and etc/a by strcmp\n");

	p = cat(f->src, "etc/a");
	q = cat(f->src, "etc/a-link");
	assert_int_equal(link(p, q), 0);
	free(q);
	q = cat(f->src, "lnk");
	assert_int_equal(symlink("etc/a", q), 0);
	assert_int_equal(setxattr(p, "user.upaas", "v1", 2, 0), 0);
	free(q);
	q = cat(f->src, "usr/bin/ping");
	f->have_caps = f->root && setxattr(q, "security.capability", cap_net_raw,
					    sizeof(cap_net_raw), 0) == 0;
	free(q);
	q = cat(f->src, "etc/b");
	assert_int_equal(utimensat(AT_FDCWD, q, ts, 0), 0);
	if (f->root) {
		free(q);
		q = cat(f->src, "dev/null");
		assert_int_equal(mknod(q, S_IFCHR | 0666, makedev(1, 3)), 0);
		free(q);
		q = cat(f->src, "etc/owned");
		assert_int_equal(fs_write_atomic(q, "o", 1, 0640), 0);
		assert_int_equal(chown(q, 1234, 2345), 0);
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	_cleanup_err_ struct err e = ERR_INIT;

	assert_int_equal(fs_rm_rf(f->top, &e), 0);
	free(f->top);
	free(f->src);
	free(f->out);
	free(f->tar);
	free(f);
	return 0;
}

static int pack_to(const char *root, const char *file, const char *const *exclude,
		   struct pack_result *res)
{
	struct pack_opts o = { .level = 3, .threads = 2, .mtime_clamp = CLAMP,
			       .exclude = exclude };
	_cleanup_err_ struct err e = ERR_INIT;
	int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int r;

	assert_true(fd >= 0);
	r = pack_tree(root, &o, sink_fd, &fd, res, &e);
	if (r < 0)
		print_error("pack_tree: %s\n", err_msg(&e));
	close(fd);
	return r;
}

/* Lists the entry names of an archive file, in order. */
static void list_entries(const char *file, struct strv *names)
{
	struct archive *a = archive_read_new();
	struct archive_entry *ae;

	archive_read_support_filter_all(a);
	archive_read_support_format_all(a);
	assert_int_equal(archive_read_open_filename(a, file, 65536), ARCHIVE_OK);
	while (archive_read_next_header(a, &ae) == ARCHIVE_OK)
		strv_push(names, archive_entry_pathname(ae));
	archive_read_free(a);
}

static const char *const excludes[] = { "proc", "dev/*", "/tmp/*", NULL };

static void test_round_trip(void **state)
{
	struct fx *f = *state;
	struct pack_result res;
	_cleanup_err_ struct err e = ERR_INIT;
	_cleanup_free_ char *a = cat(f->out, "etc/a"), *al = cat(f->out, "etc/a-link");
	_cleanup_free_ char *l = cat(f->out, "lnk"), *b = cat(f->out, "etc/b");
	char v[64], hex[65], t[64];
	struct stat sa, sl;
	uint64_t size;
	ssize_t n;

	assert_int_equal(pack_to(f->src, f->tar, excludes, &res), 0);
	assert_int_equal(sha256_file(f->tar, hex, &size, &e), 0);
	assert_string_equal(hex, res.sha256);
	assert_int_equal(size, res.size);

	assert_int_equal(unpack_file(f->tar, f->out, true, NULL, &e), 0);
	assert_int_equal(stat(a, &sa), 0);
	assert_int_equal(stat(al, &sl), 0);
	assert_int_equal(sa.st_ino, sl.st_ino);            /* hard link kept */
	assert_int_equal(sa.st_nlink, 2);
	n = readlink(l, t, sizeof(t) - 1);
	assert_int_equal(n, 5);
	t[n] = 0;
	assert_string_equal(t, "etc/a");
	n = getxattr(a, "user.upaas", v, sizeof(v));
	assert_int_equal(n, 2);
	assert_memory_equal(v, "v1", 2);
	assert_int_equal(stat(b, &sa), 0);
	assert_int_equal(sa.st_mtim.tv_sec, CLAMP);         /* clamped */
	assert_int_equal(sa.st_mode & 07777, 0644);

	if (f->have_caps) {
		_cleanup_free_ char *ping = cat(f->out, "usr/bin/ping");
		unsigned char c[64];

		n = getxattr(ping, "security.capability", c, sizeof(c));
		assert_int_equal(n, sizeof(cap_net_raw));
		assert_memory_equal(c, cap_net_raw, sizeof(cap_net_raw));
	}
	if (f->root) {
		_cleanup_free_ char *dn = cat(f->out, "dev/null"), *o = cat(f->out, "etc/owned");

		/* dev/ * is excluded: dev stays, its contents go */
		assert_int_equal(lstat(dn, &sa), -1);
		assert_int_equal(stat(o, &sa), 0);
		assert_int_equal(sa.st_uid, 1234);
		assert_int_equal(sa.st_gid, 2345);
		assert_int_equal(sa.st_mode & 07777, 0640);
	}
}

/* A root for the sandbox: unpacked with the range's offsets, the ids and
 * file capabilities are shifted; packed with them, shifted back. */
#define UOFF 200000u
#define GOFF 300000u

static void test_shifted_round_trip(void **state)
{
	struct fx *f = *state;
	struct pack_result res;
	_cleanup_err_ struct err e = ERR_INIT;
	struct stat st;

	if (!f->root)
		skip();
	assert_int_equal(pack_to(f->src, f->tar, excludes, &res), 0);
	assert_int_equal(unpack_file_shifted(f->tar, f->out, UOFF, GOFF, NULL, &e), 0);
	_cleanup_free_ char *o = cat(f->out, "etc/owned"), *l = cat(f->out, "lnk");
	_cleanup_free_ char *a = cat(f->out, "etc/a"), *ping = cat(f->out, "usr/bin/ping");
	assert_int_equal(stat(o, &st), 0);
	assert_int_equal(st.st_uid, UOFF + 1234);
	assert_int_equal(st.st_gid, GOFF + 2345);
	assert_int_equal(st.st_mode & 07777, 0640);
	assert_int_equal(lstat(l, &st), 0);                  /* the link itself */
	assert_int_equal(st.st_uid, UOFF);
	assert_int_equal(stat(a, &st), 0);
	assert_int_equal(st.st_uid, UOFF);
	assert_int_equal(stat(f->out, &st), 0);              /* the root: root's inside */
	assert_int_equal(st.st_uid, UOFF);
	assert_int_equal(st.st_gid, GOFF);
	if (f->have_caps) {
		unsigned char c[64];
		ssize_t n = getxattr(ping, "security.capability", c, sizeof(c));
		assert_int_equal(n, 24);                     /* v3, for root inside */
		assert_int_equal(c[3], 0x03);
		assert_memory_equal(c + 4, cap_net_raw + 4, 16);
		assert_int_equal(c[20] | c[21] << 8 | c[22] << 16 | (unsigned)c[23] << 24, UOFF);
	}

	/* packed with the offsets: the archive of the original again */
	_cleanup_free_ char *tar2 = cat(f->top, "b.tar.zst"), *back = cat(f->top, "back");
	struct pack_opts po = { .level = 3, .mtime_clamp = CLAMP, .uid_offset = UOFF,
				.gid_offset = GOFF };
	int fd = open(tar2, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(pack_tree(f->out, &po, sink_fd, &fd, &res, &e), 0);
	close(fd);
	assert_int_equal(unpack_file(tar2, back, true, NULL, &e), 0);
	_cleanup_free_ char *o2 = cat(back, "etc/owned"), *p2 = cat(back, "usr/bin/ping");
	assert_int_equal(stat(o2, &st), 0);
	assert_int_equal(st.st_uid, 1234);
	assert_int_equal(st.st_gid, 2345);
	if (f->have_caps) {
		unsigned char c[64];
		ssize_t n = getxattr(p2, "security.capability", c, sizeof(c));
		assert_int_equal(n, sizeof(cap_net_raw));
		assert_memory_equal(c, cap_net_raw, sizeof(cap_net_raw));
	}

	/* an owner outside the range is an error naming the file */
	assert_int_equal(chown(o, 1000, 1000), 0);
	fd = open(tar2, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(pack_tree(f->out, &po, sink_fd, &fd, &res, &e), -EPERM);
	close(fd);
	assert_non_null(strstr(err_msg(&e), "'etc/owned' is owned by 1000:1000, outside the sandbox's ids"));
	err_clear(&e);

	/* an archive with an id beyond the range cannot be shifted */
	_cleanup_free_ char *big = cat(f->top, "big"), *bigout = cat(f->top, "bigout");
	mkd(big, "x");
	_cleanup_free_ char *bx = cat(big, "x");
	assert_int_equal(chown(bx, 70000, 0), 0);
	assert_int_equal(pack_to(big, f->tar, NULL, &res), 0);
	assert_int_equal(unpack_file_shifted(f->tar, bigout, UOFF, GOFF, NULL, &e), -EPERM);
	assert_non_null(strstr(err_msg(&e), "entry 'x': is owned by 70000:0, beyond the sandbox's"));
}

static void test_device_node(void **state)
{
	struct fx *f = *state;
	struct pack_result res;
	_cleanup_err_ struct err e = ERR_INIT;
	_cleanup_free_ char *dn = cat(f->out, "dev/null");
	struct stat st;

	if (!f->root)
		skip();
	assert_int_equal(pack_to(f->src, f->tar, NULL, &res), 0);
	assert_int_equal(unpack_file(f->tar, f->out, false, NULL, &e), 0);
	assert_int_equal(lstat(dn, &st), 0);
	assert_true(S_ISCHR(st.st_mode));
	assert_int_equal(major(st.st_rdev), 1);
	assert_int_equal(minor(st.st_rdev), 3);
}

static void test_order_and_excludes(void **state)
{
	struct fx *f = *state;
	struct pack_result res;
	_cleanup_strv_ struct strv got = STRV_INIT;
	_cleanup_strv_ struct strv want = STRV_INIT;
	static const char *const base[] = {
		"dev/", "etc/", "etc/a", "etc/a-link", "etc/b", NULL };

	assert_int_equal(pack_to(f->src, f->tar, excludes, &res), 0);
	list_entries(f->tar, &got);
	for (const char *const *p = base; *p; p++)
		strv_push(&want, *p);
	if (f->root)
		strv_push(&want, "etc/owned");
	strv_push(&want, "etc.d");
	strv_push(&want, "lnk");
	strv_push(&want, "tmp/");
	strv_push(&want, "usr/");
	strv_push(&want, "usr/bin/");
	strv_push(&want, "usr/bin/ping");
	assert_int_equal(got.n, want.n);
	for (size_t i = 0; i < want.n; i++)
		assert_string_equal(got.v[i], want.v[i]);
	assert_int_equal(res.entries, want.n);
}

static void test_deterministic(void **state)
{
	struct fx *f = *state;
	struct pack_result r1, r2;
	_cleanup_free_ char *other = cat(f->top, "b.tar.zst");
	_cleanup_free_ char *p = cat(f->src, "etc/a");

	assert_int_equal(pack_to(f->src, f->tar, excludes, &r1), 0);
	/* reading the tree changes atimes; packing again must not notice */
	assert_int_equal(pack_to(f->src, other, excludes, &r2), 0);
	assert_string_equal(r1.sha256, r2.sha256);
	assert_int_equal(r1.size, r2.size);
	/* and a content change does change the hash */
	put(f->src, "etc/b", "changed\n");
	assert_int_equal(pack_to(f->src, other, excludes, &r2), 0);
	assert_string_not_equal(r1.sha256, r2.sha256);
}

/* ------------------------------------------------------- hostile archives */

struct evil {
	const char *path;
	char type;          /* 'f' file, 'l' symlink, 'h' hard link, 'd' dir */
	const char *target;
};

static void write_evil(const char *file, const struct evil *ev, size_t n)
{
	struct archive *a = archive_write_new();
	struct archive_entry *ae = archive_entry_new();

	archive_write_set_format_pax_restricted(a);
	assert_int_equal(archive_write_open_filename(a, file), ARCHIVE_OK);
	for (size_t i = 0; i < n; i++) {
		archive_entry_clear(ae);
		archive_entry_set_pathname(ae, ev[i].path);
		archive_entry_set_mtime(ae, CLAMP, 0);
		switch (ev[i].type) {
		case 'f':
			archive_entry_set_filetype(ae, AE_IFREG);
			archive_entry_set_perm(ae, 0644);
			archive_entry_set_size(ae, 4);
			break;
		case 'd':
			archive_entry_set_filetype(ae, AE_IFDIR);
			archive_entry_set_perm(ae, 0755);
			break;
		case 'l':
			archive_entry_set_filetype(ae, AE_IFLNK);
			archive_entry_set_perm(ae, 0777);
			archive_entry_set_symlink(ae, ev[i].target);
			break;
		case 'h':
			archive_entry_set_filetype(ae, AE_IFREG);
			archive_entry_set_perm(ae, 0644);
			archive_entry_set_hardlink(ae, ev[i].target);
			break;
		}
		assert_int_equal(archive_write_header(a, ae), ARCHIVE_OK);
		if (ev[i].type == 'f')
			assert_int_equal(archive_write_data(a, "evil", 4), 4);
	}
	archive_entry_free(ae);
	assert_int_equal(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
}

static void test_secure(void **state)
{
	struct fx *f = *state;
	_cleanup_free_ char *outside = cat(f->top, "outside");
	_cleanup_free_ char *evil = cat(f->top, "evil.tar");
	_cleanup_free_ char *escaped = cat(f->top, "x");
	_cleanup_free_ char *through = cat(outside, "x");
	_cleanup_free_ char *abs = xasprintf("%s/abs", f->top);
	_cleanup_free_ char *hl = NULL;
	struct evil dotdot[] = { { "ok", 'f', NULL }, { "../x", 'f', NULL } };
	struct evil deep[] = { { "a/b/../../../x", 'f', NULL } };
	struct evil absolute[] = { { abs, 'f', NULL } };
	struct evil via_link[] = { { "l", 'l', outside }, { "l/x", 'f', NULL } };
	struct evil rel_link[] = { { "d", 'd', NULL }, { "d/l", 'l', "../../outside" },
				   { "d/l/x", 'f', NULL } };
	struct evil hard[] = { { "h", 'h', "../outside/secret" } };
	struct stat st;
	struct {
		const char *name;
		struct evil *ev;
		size_t n;
		const char *victim;
	} cases[] = {
		{ "dotdot", dotdot, ARRAY_SIZE(dotdot), escaped },
		{ "deep dotdot", deep, ARRAY_SIZE(deep), escaped },
		{ "absolute", absolute, ARRAY_SIZE(absolute), abs },
		{ "through symlink", via_link, ARRAY_SIZE(via_link), through },
		{ "through relative symlink", rel_link, ARRAY_SIZE(rel_link), through },
		{ "hard link out", hard, ARRAY_SIZE(hard), NULL },
	};

	assert_int_equal(mkdir(outside, 0755), 0);
	hl = cat(outside, "secret");
	put(outside, "secret", "s");
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		_cleanup_err_ struct err e = ERR_INIT;
		_cleanup_err_ struct err e2 = ERR_INIT;
		_cleanup_free_ char *dest = xasprintf("%s/dest%zu", f->top, i);
		int r;

		write_evil(evil, cases[i].ev, cases[i].n);
		r = unpack_file(evil, dest, true, NULL, &e);
		print_message("# %s: %d %s\n", cases[i].name, r, err_msg(&e));
		assert_true(r < 0);
		/* the message names the archive */
		assert_non_null(strstr(err_msg(&e), evil));
		if (cases[i].victim)
			assert_int_equal(lstat(cases[i].victim, &st), -1);
		assert_int_equal(fs_rm_rf(dest, &e2), 0);
	}
	/* the secret was not replaced or linked */
	assert_int_equal(stat(hl, &st), 0);
	assert_int_equal(st.st_nlink, 1);
}

static void test_not_empty(void **state)
{
	struct fx *f = *state;
	_cleanup_err_ struct err e = ERR_INIT;
	struct pack_result res;

	assert_int_equal(pack_to(f->src, f->tar, excludes, &res), 0);
	/* src is not empty: refused before anything is written */
	assert_int_equal(unpack_file(f->tar, f->src, false, NULL, &e), -EEXIST);
}

static void test_missing_root(void **state)
{
	struct fx *f = *state;
	_cleanup_err_ struct err e = ERR_INIT;
	_cleanup_free_ char *nope = cat(f->top, "nope");
	struct pack_opts o = { .level = 3, .mtime_clamp = -1 };
	struct pack_result res;
	int fd = -1;

	assert_int_equal(pack_tree(nope, &o, sink_fd, &fd, &res, &e), -ENOENT);
	assert_non_null(strstr(err_msg(&e), nope));
}

/* The decompressed tar stream of an archive file (libarchive's raw format). */
static void raw_tar(const char *file, struct buf *out)
{
	struct archive *a = archive_read_new();
	struct archive_entry *ae;
	char blk[65536];
	ssize_t n;

	archive_read_support_filter_all(a);
	archive_read_support_format_raw(a);
	assert_int_equal(archive_read_open_filename(a, file, 65536), ARCHIVE_OK);
	assert_int_equal(archive_read_next_header(a, &ae), ARCHIVE_OK);
	while ((n = archive_read_data(a, blk, sizeof(blk))) > 0)
		assert_int_equal(buf_add(out, blk, (size_t)n), 0);
	archive_read_free(a);
}

static size_t count_str(const struct buf *b, const char *s)
{
	size_t n = 0, l = strlen(s);

	for (const char *p = b->p; (p = memmem(p, b->len - (size_t)(p - b->p), s, l)); p += l)
		n++;
	return n;
}

/* UTF-8 names (NFC and NFD) are written as UTF-8, untouched; a name that
 * is not UTF-8 gets hdrcharset=BINARY on its own entry and keeps its bytes;
 * all of them come back byte for byte. */
static void test_names(void **state)
{
	struct fx *f = *state;
	static const char *const names[] = {
		"caf\xc3\xa9.txt",              /* NFC */
		"cafe\xcc\x81-nfd.txt",         /* NFD: e + combining acute */
		"\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",
		"latin1-\xe9.txt",              /* not UTF-8 */
	};
	struct pack_result res;
	_cleanup_err_ struct err e = ERR_INIT;
	_cleanup_buf_ struct buf raw = BUF_INIT;
	struct stat st;

	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		put(f->src, names[i], "x");
	_cleanup_free_ char *ln = cat(f->src, "link-\xc3\xa9");
	assert_int_equal(symlink("caf\xc3\xa9.txt", ln), 0);
	assert_int_equal(pack_to(f->src, f->tar, excludes, &res), 0);
	raw_tar(f->tar, &raw);
	assert_int_equal(count_str(&raw, "hdrcharset"), 1);
	assert_int_equal(count_str(&raw, "hdrcharset=BINARY"), 1);
	assert_int_equal(count_str(&raw, "path=cafe\xcc\x81-nfd.txt\n"), 1);
	assert_int_equal(unpack_file(f->tar, f->out, true, NULL, &e), 0);
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		_cleanup_free_ char *p = cat(f->out, names[i]);
		assert_int_equal(lstat(p, &st), 0);
	}
	_cleanup_free_ char *ol = cat(f->out, "link-\xc3\xa9");
	char t[64];
	ssize_t n = readlink(ol, t, sizeof(t) - 1);
	assert_int_equal(n, 9);
	assert_memory_equal(t, "caf\xc3\xa9.txt", 9);
}

static int failing_sink(void *data, const void *p, size_t n)
{
	(void)data; (void)p; (void)n;
	return -ENOSPC;
}

static void test_sink_error(void **state)
{
	struct fx *f = *state;
	_cleanup_err_ struct err e = ERR_INIT;
	struct pack_opts o = { .level = 3, .mtime_clamp = -1 };
	struct pack_result res;

	assert_int_equal(pack_tree(f->src, &o, failing_sink, NULL, &res, &e), -ENOSPC);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shifted_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_device_node, setup, teardown),
		cmocka_unit_test_setup_teardown(test_order_and_excludes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deterministic, setup, teardown),
		cmocka_unit_test_setup_teardown(test_secure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_empty, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_root, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sink_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_names, setup, teardown),
	};

	return cmocka_run_group_tests_name("archive", tests, NULL, NULL);
}
