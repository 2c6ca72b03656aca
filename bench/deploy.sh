#!/bin/bash
# bench/deploy.sh - time `upaas deploy` of a ~200 MB package from local
# storage (download, sha256 verify, secure extract, sync, switch) next to
# plain `tar --zstd -xf` of the same archive. Prints the median of RUNS runs
# of each, the ratio deploy/tar (above 1: deploy is slower), and the median
# time of the switch itself (symlink + rename + fsync), which must stay
# under 10 ms.
#
#   bench/deploy.sh [UPAAS]          UPAAS defaults to ./upaas (a build dir)
#   SIZE_MB=200 RUNS=3 bench/deploy.sh
#
# The package: half random data (incompressible), half text, in ~2000
# files, so both the I/O and the per-file cost show. deploy also syncs the
# filesystem before the revision gets its final name; tar does not, so the
# tar run is followed by `sync` and that time is shown as well. Revisions are
# extracted (deploy.materialize = "extract"): this is the cost of a whole
# package; bench/scale.sh shows what a layered deploy costs.
set -eu

UPAAS=${1:-${UPAAS:-$PWD/upaas}}
SIZE_MB=${SIZE_MB:-200}
RUNS=${RUNS:-3}
[ -x "$UPAAS" ] || { echo "no upaas binary '$UPAAS' (pass it as \$1)" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "run as root (extract restores ownership)" >&2; exit 2; }

TMP=$(mktemp -d /var/tmp/upaas-bench-deploy.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
export UPAAS_CONFIG=$TMP/upaas.cfg
cat >"$UPAAS_CONFIG" <<CFG
paths = { workdir = "$TMP/work"; cache = "$TMP/cache"; state = "$TMP/state"; };
storage = { handler = "local"; path = "$TMP/storage"; };
deploy = { root = "$TMP/srv"; hooks_dir = "$TMP/hooks"; keep = 2; materialize = "extract"; };
CFG

APP=bench
echo "making a ${SIZE_MB} MB package..." >&2
tree=$TMP/tree/home/app
mkdir -p "$tree"
half=$((SIZE_MB / 2))
for i in $(seq 1 "$half"); do
	head -c 1M /dev/urandom >"$tree/random-$i.bin"
done
python3 - "$tree" "$half" <<'PY'
import os, sys
root, mb = sys.argv[1], int(sys.argv[2])
line = b"".join(b"%06d the quick brown fox jumps over the lazy dog\n" % i for i in range(1000))
for d in range(20):
    os.makedirs(f"{root}/text/{d:02d}", exist_ok=True)
    for f in range(mb * 1024 * 1024 // len(line) // 20 + 1):
        with open(f"{root}/text/{d:02d}/{f:04d}.txt", "wb") as fh:
            fh.write(line)
PY
mkdir -p "$TMP/storage/packages/$APP" "$TMP/storage/apps/$APP"
blob=$TMP/storage/packages/$APP/p1.tar.zst
tar --zstd --numeric-owner -C "$TMP/tree" -cf "$blob" .
rm -rf "$TMP/tree"
files=$(tar --zstd -tf "$blob" | wc -l)
for id in p1 p2; do
	[ "$id" = p1 ] || cp "$blob" "$TMP/storage/packages/$APP/$id.tar.zst"
	python3 - "$blob" "$APP" "$id" >"$TMP/storage/packages/$APP/$id.json" <<'PY'
import hashlib, json, os, sys
blob, app, pid = sys.argv[1:]
h = hashlib.sha256()
with open(blob, "rb") as f:
    for b in iter(lambda: f.read(1 << 20), b""):
        h.update(b)
print(json.dumps({"format": 1, "app": app, "id": pid,
    "blob": {"key": "packages/%s/%s.tar.zst" % (app, pid), "sha256": h.hexdigest(),
             "size": os.path.getsize(blob)}, "app_home": "/home/app", "uid": 0, "gid": 0}))
PY
done
echo "package: $(du -m "$blob" | cut -f1) MB compressed, $files entries" >&2

. "$(dirname "$0")/lib.sh"

: >"$TMP/deploy.t"; : >"$TMP/switch.t"; : >"$TMP/parts.t"; : >"$TMP/tar.t"; : >"$TMP/tarsync.t"
for run in $(seq 1 "$RUNS"); do
	# a fresh deploy each time: p1 and p2 alternate, the other is pruned
	# away first so that every run fetches, verifies and extracts
	id=p$(( (run % 2) + 1 ))
	rm -rf "$TMP/srv/$APP/revisions/$id" "$TMP/srv/$APP/manifests/$id.json"
	sync
	t0=$(bench_now)
	"$UPAAS" -q deploy --json --package "$id" "$APP" >"$TMP/deploy.json"
	t1=$(bench_now)
	bench_elapsed "$t0" "$t1" >>"$TMP/deploy.t"
	python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["switch_us"] / 1000)' \
		"$TMP/deploy.json" >>"$TMP/switch.t"
	python3 -c 'import json,sys; j = json.load(open(sys.argv[1]))
print(j["fetch_ms"] / 1000, j["extract_ms"] / 1000)' "$TMP/deploy.json" >>"$TMP/parts.t"

	rm -rf "$TMP/x"; mkdir "$TMP/x"
	sync
	t0=$(bench_now)
	tar --zstd -xf "$blob" -C "$TMP/x"
	t1=$(bench_now)
	sync
	t2=$(bench_now)
	bench_elapsed "$t0" "$t1" >>"$TMP/tar.t"
	bench_elapsed "$t0" "$t2" >>"$TMP/tarsync.t"
	rm -rf "$TMP/x"
done

d=$(median $(cat "$TMP/deploy.t"))
s=$(median $(cat "$TMP/switch.t"))
t=$(median $(cat "$TMP/tar.t"))
ts=$(median $(cat "$TMP/tarsync.t"))
printf 'upaas deploy (fetch+verify+extract+sync+switch): %.2f s  (median of %d)\n' "$d" "$RUNS"
printf '  of which fetch+verify %.2f s, extract+sync %.2f s\n' \
	"$(median $(cut -d' ' -f1 "$TMP/parts.t"))" "$(median $(cut -d' ' -f2 "$TMP/parts.t"))"
printf 'tar --zstd -xf:                                  %.2f s\n' "$t"
printf 'tar --zstd -xf + sync:                           %.2f s\n' "$ts"
printf 'ratio deploy/tar:                                %.2f\n' "$(echo "$d / $t" | bc -l)"
printf 'ratio deploy/(tar+sync):                         %.2f\n' "$(echo "$d / $ts" | bc -l)"
printf 'switch (symlink + rename + fsync):               %.3f ms (limit 10 ms)\n' "$s"
if [ "$(echo "$s < 10" | bc)" != 1 ]; then
	echo "FAIL: the switch took $s ms" >&2
	exit 1
fi
