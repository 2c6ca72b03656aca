#!/bin/bash
# bench/pack.sh - packing throughput of pack_tree (libarchive, zstd) against
# `tar -cf - DIR | zstd -T0 -LEVEL` on the same tree: prints the median of 3
# runs of each and the ratio (the build issue wants pack_tree >= 70% of tar's
# throughput, i.e. time(tar) / time(pack_tree) >= 0.70).
#
#   bench/pack.sh [TREE]
#
# Without TREE it uses the unpacked copy of the default base image from the
# root cache (creating the image first, under $UPAAS_CONFIG). Needs a
# configured build dir: UPAAS_BUILDDIR (default: the current directory),
# where it builds its driver, bench/pack-driver.c, with make.
set -eu
SRC=$(cd "$(dirname "$0")/.." && pwd)
. "$SRC/bench/lib.sh"
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

# the driver around pack_tree (bench/pack-driver.c), built by the build system
make -C "$BUILD" -s bench/pack-driver >&2 || { echo "cannot build bench/pack-driver in '$BUILD'" >&2; exit 2; }
DRIVER=$BUILD/bench/pack-driver

# warm the page cache: both variants read the same, already cached tree
tar -C "$TREE" -cf - . >/dev/null
bytes=$(du -sb "$TREE" | cut -f1)
for i in $(seq "$RUNS"); do
	bench_time sh -c 'tar -C "$1" -cf - . | zstd -q -T0 -"$2" >"$3"' sh "$TREE" "$LEVEL" \
		"$TMP/tar.out" >>"$TMP/t.tar"
	bench_time sh -c '"$1" "$2" "$3" >"$4"' sh "$DRIVER" "$TREE" "$LEVEL" "$TMP/pack.out" \
		2>"$TMP/pack.err" >>"$TMP/t.pack"
done
t_tar=$(median $(cat "$TMP/t.tar"))
t_pack=$(median $(cat "$TMP/t.pack"))
printf 'tree:       %s (%s MB, %s entries)\n' "$TREE" "$((bytes / 1000000))" "$(find "$TREE" | wc -l)"
printf 'tar|zstd:   %.3f s  %s bytes  (median of %d)\n' "$t_tar" "$(stat -c %s "$TMP/tar.out")" "$RUNS"
printf 'pack_tree:  %.3f s  %s bytes  (median of %d)\n' "$t_pack" "$(stat -c %s "$TMP/pack.out")" "$RUNS"
printf 'ratio:      %.2f  (throughput of pack_tree / tar|zstd; target >= 0.70)\n' \
	"$(awk -v a="$t_tar" -v b="$t_pack" 'BEGIN {print a / b}')"
