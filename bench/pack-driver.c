/*
 * bench/pack-driver.c - pack_tree() from the command line, for bench/pack.sh:
 *
 *   pack-driver TREE LEVEL      the packed TREE to stdout; sha256, size
 *                               and entries on stderr
 *
 * Built by `make check` (archive/local.mk), so it never drifts from the API.
 */
#include <stdio.h>

#include "archive/archive.h"

static int to_stdout(void *data, const void *p, size_t n)
{
	(void)data;
	return fs_write_all(STDOUT_FILENO, p, n);
}

int main(int argc, char **argv)
{
	struct pack_opts o = { .threads = 0, .mtime_clamp = -1 };
	struct pack_result r;
	_cleanup_err_ struct err e = ERR_INIT;
	int64_t level;

	if (argc != 3 || parse_int64(argv[2], 1, 22, &level) < 0) {
		fputs("usage: pack-driver TREE LEVEL (zstd level 1..22)\n", stderr);
		return 2;
	}
	o.level = (int)level;
	if (pack_tree(argv[1], &o, to_stdout, NULL, &r, &e) < 0) {
		fprintf(stderr, "pack-driver: %s\n", err_msg(&e));
		return 1;
	}
	fprintf(stderr, "%s %llu bytes, %llu entries\n", r.sha256, (unsigned long long)r.size,
		(unsigned long long)r.entries);
	return 0;
}
