#!/bin/bash
# bench/pack.sh - packing throughput of pack_tree (libarchive, zstd) against
# `tar -cf - DIR | zstd -T0 -LEVEL` on the same tree: prints the median of 3
# runs of each and the ratio (the build issue wants pack_tree >= 70% of tar's
# throughput, i.e. time(tar) / time(pack_tree) >= 0.70).
#
#   bench/pack.sh [TREE]
#
# Without TREE it uses the unpacked copy of the default base image from the
# root cache (creating the image first, under $UPAAS_CONFIG). Needs a built
# tree: UPAAS_BUILDDIR (default: the current directory) with libupaas.a.
set -eu
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${UPAAS_BUILDDIR:-$PWD}
UPAAS=${UPAAS:-$BUILD/upaas}
LEVEL=${LEVEL:-3}
RUNS=${RUNS:-3}
[ -f "$BUILD/libupaas.a" ] || { echo "no libupaas.a in '$BUILD' (set UPAAS_BUILDDIR)" >&2; exit 2; }

TMP=$(mktemp -d /var/tmp/upaas-bench-pack.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

TREE=${1:-}
if [ -z "$TREE" ]; then
	"$UPAAS" -q image create >"$TMP/create.out"
	name=$(awk '/^name:/ {print $2}' "$TMP/create.out")
	sha=$(awk '/^sha256:/ {print $2}' "$TMP/create.out")
	"$UPAAS" -q image run "$name" -- true   # fills the root cache
	cache=$("$UPAAS" config show 2>/dev/null | sed -n 's/^ *cache *= *"\(.*\)";/\1/p' | head -n1)
	TREE=$cache/roots/$sha
fi
[ -d "$TREE" ] || { echo "no tree '$TREE'" >&2; exit 2; }

# A minimal driver around pack_tree: the tree to stdout.
cat >"$TMP/pack.c" <<'C'
#include "builder/builder.h"
#include <string.h>
static int sink(void *d, const void *p, size_t n) { (void)d; return fs_write_all(1, p, n); }
int main(int argc, char **argv)
{
	struct pack_opts o = { .level = atoi(argv[2]), .threads = 0, .mtime_clamp = -1 };
	struct pack_result r;
	struct err e = ERR_INIT;
	(void)argc;
	if (pack_tree(argv[1], &o, sink, NULL, &r, &e) < 0) {
		fprintf(stderr, "pack_tree: %s\n", err_msg(&e));
		return 1;
	}
	fprintf(stderr, "%s %llu bytes, %llu entries\n", r.sha256,
		(unsigned long long)r.size, (unsigned long long)r.entries);
	return 0;
}
C
gcc -O2 -std=gnu11 -I"$SRC" -include "$BUILD/config.h" "$TMP/pack.c" -o "$TMP/pack" \
	"$BUILD/libupaas.a" $(pkg-config --libs libarchive libcurl libconfig libcap libcrypto json-c) \
	$(pkg-config --libs sqlite3 libpq 2>/dev/null) -lpthread

median() { sort -n | sed -n "$(( (RUNS + 1) / 2 ))p"; }
secs() { local s e; s=$(date +%s.%N); "$@"; e=$(date +%s.%N); awk -v s="$s" -v e="$e" 'BEGIN {printf "%.3f\n", e - s}'; }

# warm the page cache: both variants read the same, already cached tree
tar -C "$TREE" -cf - . >/dev/null
bytes=$(du -sb "$TREE" | cut -f1)
for i in $(seq "$RUNS"); do
	secs sh -c "tar -C '$TREE' -cf - . | zstd -q -T0 -$LEVEL >'$TMP/tar.out'" >>"$TMP/t.tar"
	secs sh -c "'$TMP/pack' '$TREE' $LEVEL >'$TMP/pack.out' 2>'$TMP/pack.err'" >>"$TMP/t.pack"
done
t_tar=$(median <"$TMP/t.tar")
t_pack=$(median <"$TMP/t.pack")
printf 'tree:       %s (%s MB, %s entries)\n' "$TREE" "$((bytes / 1000000))" "$(find "$TREE" | wc -l)"
printf 'tar|zstd:   %.3f s  %s bytes  (median of %d)\n' "$t_tar" "$(stat -c %s "$TMP/tar.out")" "$RUNS"
printf 'pack_tree:  %.3f s  %s bytes  (median of %d)\n' "$t_pack" "$(stat -c %s "$TMP/pack.out")" "$RUNS"
printf 'ratio:      %.2f  (throughput of pack_tree / tar|zstd; target >= 0.70)\n' \
	"$(awk -v a="$t_tar" -v b="$t_pack" 'BEGIN {print a / b}')"
