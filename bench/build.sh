#!/bin/bash
# bench/build.sh [UPAAS] - how fast is a build, and what does upaas add?
#
# Builds examples/python-flask fresh, then again with no change, then with a
# one-file change, and prints per-stage times (from the manifest) and the
# overhead: the build's wall time minus the actions' own run time. Side by
# side, in the same run, it does the same job the naive way: extract a
# .tar.gz of the previous package, chroot, run the app's actions, tar czf,
# sha256sum, copy; and it times `tar | zstd -T0` over the same tree against
# upaas's pack stage, and `cowbuilder --execute -- /bin/true` (installed and
# its base made once, kept under /var/cache/upaas-bench). The no-change
# build, the one-file change, the naive pipeline, tar | zstd and cowbuilder
# run REPEAT times (default 3); the summary gives medians. Run as root;
# uses a private config under $BENCH_DIR (default /var/tmp/upaas-bench) and
# removes it at the end (KEEP=1 keeps it).
set -euo pipefail
UPAAS=${1:-${UPAAS:-upaas}}
HERE=$(cd "$(dirname "$0")/.." && pwd)
B=${BENCH_DIR:-/var/tmp/upaas-bench}
rm -rf "$B"
mkdir -p "$B"
cleanup() {
	[ "${KEEP:-0}" = 1 ] && return
	rm -rf "$B"
}
trap cleanup EXIT
export UPAAS_CONFIG=$B/upaas.cfg
cat >"$UPAAS_CONFIG" <<CFG
paths = { workdir = "$B/work"; cache = "${BENCH_CACHE:-$B/cache}"; state = "$B/state"; };
storage = { handler = "local"; path = "$B/storage"; };
CFG

. "$HERE/bench/lib.sh"
REPEAT=${REPEAT:-3}
# secs T0 T1: the seconds between two bench_now values, as printed here
secs() { printf '%.2f' "$(bench_elapsed "$1" "$2")"; }
APP=bench
SRC=$B/src
cp -a "$HERE/examples/python-flask" "$SRC"
git -C "$SRC" init -q -b main
git -C "$SRC" add -A
git -C "$SRC" -c user.name=b -c user.email=b@l commit -qm bench

echo "== base image (not timed)"
"$UPAAS" image create >/dev/null

# summary ID WALL: per-stage times, the actions' time and the overhead
ACTION_STEPS='system,os packages,interpreter,before,main,after,finalize'
summary() {
	"$UPAAS" package show --json "$APP" "$1" | python3 -c '
import json, sys
m = json.load(sys.stdin)
wall = float(sys.argv[1])
acts = set(sys.argv[2].split(","))
fmt = lambda s: "%s %.2f" % (s["name"], s["seconds"])
stages = "  ".join(fmt(s) for s in m["stages"])
steps = "  ".join(fmt(s) for s in m["steps"] if s["status"] == "ok")
a = sum(s["seconds"] for s in m["steps"] if s["name"] in acts)
print(f"  stages: {stages}")
print(f"  steps:  {steps}")
print(f"  wall {wall:.2f} s, actions {a:.2f} s, upaas overhead {wall - a:.2f} s")
print(f"OVERHEAD={wall - a:.2f}")
' "$2" "$ACTION_STEPS"
}

run_build() {   # run_build LABEL ARGS...
	local label=$1; shift
	local t0 t1 id
	t0=$(bench_now)
	id=$("$UPAAS" -q build --app "$APP" "$@" "$SRC")
	t1=$(bench_now)
	echo "== upaas build: $label ($id)"
	WALL=$(secs "$t0" "$t1")
	summary "$id" "$WALL" | tee "$B/summary" | grep -v '^OVERHEAD='
	OVERHEAD=$(sed -n 's/^OVERHEAD=//p' "$B/summary")
	PACK=$("$UPAAS" package show --json "$APP" "$id" |
		python3 -c 'import json,sys; print([s["seconds"] for s in json.load(sys.stdin)["stages"] if s["name"]=="pack"][0])')
	LAST_ID=$id
}

run_build "fresh" --fresh
FRESH_PACK=$PACK
NC_WALL=() NC_OVH=() OF_WALL=() OF_OVH=() PACKS=()
for i in $(seq "$REPEAT"); do
	run_build "no change (incremental) #$i"
	NC_WALL+=("$WALL") NC_OVH+=("$OVERHEAD")
done
for i in $(seq "$REPEAT"); do
	echo "# one-file change $i" >>"$SRC/app.py"
	git -C "$SRC" -c user.name=b -c user.email=b@l commit -qam "change $i"
	run_build "one-file change (incremental) #$i"
	OF_WALL+=("$WALL") OF_OVH+=("$OVERHEAD") PACKS+=("$PACK")
done
NOCHANGE_WALL=$(median "${NC_WALL[@]}")
NOCHANGE_OVERHEAD=$(median "${NC_OVH[@]}")
ONEFILE_WALL=$(median "${OF_WALL[@]}")
ONEFILE_OVERHEAD=$(median "${OF_OVH[@]}")
PACK=$(median "${PACKS[@]}")

# ------------------------------------------------------------ the naive way
echo "== naive pipeline: extract .tar.gz, chroot, run, tar czf, sha256sum, copy"
N=$B/naive
mkdir -p "$N/store"
"$UPAAS" package get "$APP" "$LAST_ID" "$N/prev.tar.zst" >/dev/null
zstd -dc "$N/prev.tar.zst" | gzip -1 >"$N/base.tar.gz"   # preparation, not timed
rm -f "$N/prev.tar.zst"
NAIVE=() NAIVE_RUNS=()
for i in $(seq "$REPEAT"); do
	rm -rf "$N/root" "$N/pkg.tar.gz" "$N/store/pkg.tar.gz"
	sync
	T=()
	t0=$(bench_now)
	mkdir "$N/root"
	tar --warning=no-unknown-keyword -xzpf "$N/base.tar.gz" -C "$N/root"
	t1=$(bench_now); T+=("extract $(secs "$t0" "$t1")")
	git -C "$SRC" archive HEAD | tar -xf - -C "$N/root/home/app"
	chown -R 1000:1000 "$N/root/home/app"
	mount -t proc proc "$N/root/proc"
	t2=$(bench_now)
	chroot --userspec=1000:1000 "$N/root" /usr/bin/env -i HOME=/home/app PATH=/usr/bin:/bin \
		sh -ec 'cd /home/app; python3 -c "import flask"; python3 selftest.py;
			printf "%s\n" x >> build-history.txt' >/dev/null
	t3=$(bench_now); T+=("run $(secs "$t2" "$t3")")
	umount "$N/root/proc"
	tar -czf "$N/pkg.tar.gz" -C "$N/root" --exclude=./proc/* --exclude=./dev/* --exclude=./tmp/* .
	t4=$(bench_now); T+=("tar-czf $(secs "$t3" "$t4")")
	sha256sum "$N/pkg.tar.gz" >/dev/null
	t5=$(bench_now); T+=("sha256sum $(secs "$t4" "$t5")")
	cp "$N/pkg.tar.gz" "$N/store/"
	sync "$N/store/pkg.tar.gz"
	t6=$(bench_now); T+=("copy $(secs "$t5" "$t6")")
	NAIVE+=("$(secs "$t0" "$t6")") NAIVE_RUNS+=("$(secs "$t2" "$t3")")
	echo "  #$i stages: ${T[*]}"
	echo "  #$i wall ${NAIVE[-1]} s, actions ${NAIVE_RUNS[-1]} s"
done
NAIVE_WALL=$(median "${NAIVE[@]}")

# ----------------------------------------------- packing vs tar | zstd -T0
echo "== packing throughput on the same tree"
TZ=()
for i in $(seq "$REPEAT"); do
	t0=$(bench_now)
	tar -cf - -C "$N/root" . | zstd -T0 -3 -q >/dev/null
	t1=$(bench_now)
	TZ+=("$(secs "$t0" "$t1")")
done
TARZSTD=$(median "${TZ[@]}")
echo "  tar | zstd -T0: ${TZ[*]} s   upaas pack stage of the fresh build (a full layer," \
	"incl. upload): $FRESH_PACK s; of the one-file changes (a delta): ${PACKS[*]} s"

# ----------------------------------------------- cowbuilder, side by side
# The peer: cowbuilder copies a cached Debian base with hard links (cowdancer)
# and runs a command in it. Its base is made once from the host's Debian
# mirror and kept under /var/cache between runs.
echo "== cowbuilder --execute -- /bin/true"
COW=${COW_DIR:-/var/cache/upaas-bench/cowbuilder}
if ! command -v cowbuilder >/dev/null; then
	apt-get install -y -qq cowbuilder >/dev/null 2>&1 ||
		{ apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq cowbuilder >/dev/null; }
fi
if [ ! -x "$COW/base.cow/bin/true" ]; then
	# the host's mirror and release, as apt has them
	MIRROR=$(sed -n 's/^URIs: *\(http[^ ]*debian\)\/* *$/\1/p' /etc/apt/sources.list.d/*.sources \
		/dev/null 2>/dev/null | head -1)
	[ -n "$MIRROR" ] || MIRROR=$(awk '$1 == "deb" && $2 ~ /debian\/?$/ {print $2; exit}' \
		/etc/apt/sources.list 2>/dev/null)
	CODENAME=$(. /etc/os-release && echo "$VERSION_CODENAME")
	echo "  making the base once: $CODENAME from ${MIRROR:-the default mirror} (not timed)"
	mkdir -p "$COW"
	rm -rf "$COW/base.cow"
	cowbuilder --create --basepath "$COW/base.cow" --distribution "$CODENAME" \
		${MIRROR:+--mirror "$MIRROR"} >"$COW/create.log" 2>&1 ||
		{ tail -20 "$COW/create.log" >&2; echo "cowbuilder --create failed" >&2; exit 1; }
fi
COWT=()
for i in $(seq "$REPEAT"); do
	t0=$(bench_now)
	cowbuilder --execute --basepath "$COW/base.cow" -- /bin/true >"$B/cow.log" 2>&1 ||
		{ tail -20 "$B/cow.log" >&2; echo "cowbuilder --execute failed" >&2; exit 1; }
	t1=$(bench_now)
	COWT+=("$(secs "$t0" "$t1")")
done
COWBUILDER=$(median "${COWT[@]}")
echo "  cowbuilder --execute -- /bin/true: ${COWT[*]} s"

echo "== summary (medians of $REPEAT)"
python3 - "$NOCHANGE_WALL" "$NOCHANGE_OVERHEAD" "$ONEFILE_WALL" "$ONEFILE_OVERHEAD" "$NAIVE_WALL" \
	"$TARZSTD" "$FRESH_PACK" "$COWBUILDER" <<'PY'
import sys
nc, nco, one, oneo, naive, tz, pack, cow = map(float, sys.argv[1:])
print(f"  no-change incremental: {nc:.2f} s, upaas overhead {nco:.2f} s on top of the app's "
      f"actions (target <= 0.3 s): {'ok' if nco <= 0.3 else 'MISSED'}")
print(f"  against cowbuilder --execute -- /bin/true ({cow:.2f} s): {nc / cow:.2f}x its time "
      f"(target < 1): {'ok' if nc < cow else 'MISSED'}")
print(f"  one-file change: {one:.2f} s, overhead {oneo:.2f} s")
print(f"  naive pipeline: {naive:.2f} s; speedup of no-change incremental {naive / nc:.1f}x "
      f"(target >= 5x): {'ok' if naive / nc >= 5 else 'MISSED'}")
print(f"  packing a full layer at {100 * tz / pack:.0f}% of tar | zstd -T0 throughput (target >= 70%): "
      f"{'ok' if tz / pack >= 0.7 else 'MISSED'}")
PY
