#!/bin/bash
# bench/scale.sh [UPAAS] - does the cost of a build and a deploy follow the
# change, or the size of the root?
#
# Three apps, built and deployed side by side in one run:
#   flask  examples/python-flask as it is
#   big    the same plus SCALE_MB (default 1024) MB of data in 4 files
#   many   the same plus SCALE_FILES (default 100000) small files
# The data is made by the app's own `before` action when it is missing (so
# incremental builds keep it, and a fresh build makes the same bytes).
#
# For each app: a fresh build (not counted), then REPEAT (default 3) builds
# with no change and REPEAT with a one-file change, each followed by a
# deploy of the new package onto a host that runs the previous one. It
# prints the medians of: build time, bytes uploaded (what the build added to
# storage), deploy time, bytes downloaded (the layers the deploy fetched);
# per GB of root and per 10k files; and, for the deploy of a one-file
# change, `rsync -a --link-dest` of the same change (the new tree from the
# previous one) next to it.
#
# Run as root. A private config under $BENCH_DIR (default
# /var/tmp/upaas-bench-scale), removed at the end unless KEEP=1; the base
# image and the root cache go to $BENCH_CACHE (default $BENCH_DIR/cache),
# which may be kept between runs.
set -euo pipefail
UPAAS=${1:-${UPAAS:-upaas}}
HERE=$(cd "$(dirname "$0")/.." && pwd)
. "$HERE/bench/lib.sh"
B=${BENCH_DIR:-/var/tmp/upaas-bench-scale}
REPEAT=${REPEAT:-3}
SCALE_MB=${SCALE_MB:-1024}
SCALE_FILES=${SCALE_FILES:-100000}
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 2; }
command -v "$UPAAS" >/dev/null || { echo "no upaas binary '$UPAAS'" >&2; exit 2; }
command -v rsync >/dev/null || apt-get install -y -qq rsync >/dev/null
UPAAS=$(command -v "$UPAAS")

rm -rf "$B/storage" "$B/src" "$B/srv" "$B/work" "$B/state" "$B/rsync"
mkdir -p "$B"
cleanup() {
	# the overlay-mounted revisions first: rm never goes through a mount
	findmnt -rn -o TARGET | grep "^$B/srv/" | sort -r | xargs -r umount -l
	[ "${KEEP:-0}" = 1 ] && return
	rm -rf "$B/storage" "$B/src" "$B/srv" "$B/work" "$B/state" "$B/rsync"
	[ -n "${BENCH_CACHE:-}" ] || rm -rf "$B/cache"
}
trap cleanup EXIT
export UPAAS_CONFIG=$B/upaas.cfg
cat >"$UPAAS_CONFIG" <<CFG
paths = { workdir = "$B/work"; cache = "${BENCH_CACHE:-$B/cache}"; state = "$B/state"; };
storage = { handler = "local"; path = "$B/storage"; };
deploy = { root = "$B/srv"; hooks_dir = "$B/hooks"; keep = 2; };
apps = { keep_packages = 3; };
CFG

# make_app NAME KIND: a git repository with the flask example, plus the
# generator of KIND's data (none, big, many)
make_app() {
	local src=$B/src/$1
	mkdir -p "$B/src"
	cp -a "$HERE/examples/python-flask" "$src"
	cat >"$src/gen.py" <<'PY'
# makes the bench's data in gen/, the same bytes every time
import os, random, sys
kind, mb, files = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.makedirs("gen", exist_ok=True)
rnd = random.Random(42)
if kind == "big":
    for i in range(4):
        with open(f"gen/big-{i}.bin", "wb") as f:
            for _ in range(mb // 4):
                f.write(rnd.randbytes(1 << 20))
elif kind == "many":
    for i in range(files):
        d = f"gen/{i // 1000:03d}"
        if i % 1000 == 0:
            os.makedirs(d, exist_ok=True)
        with open(f"{d}/{i:06d}.txt", "w") as f:
            f.write(f"file {i} {rnd.getrandbits(64):016x}\n")
PY
	if [ "$2" != none ]; then
		# the example's `before` (a version print) makes the data instead
		python3 - "$src/.upaas.cfg" "$2" "$SCALE_MB" "$SCALE_FILES" <<'PY'
import re, sys
path, kind, mb, files = sys.argv[1:]
text = open(path).read()
gen = f'  before = "[ -d gen ] || python3 gen.py {kind} {mb} {files}";'
text, n = re.subn(r"^  before = .*$", lambda m: gen, text, count=1, flags=re.M)
assert n == 1
open(path, "w").write(text)
PY
	fi
	git -C "$src" init -q -b main
	git -C "$src" add -A
	git -C "$src" -c user.name=b -c user.email=b@l commit -qm "$1"
}

# The bytes of every object in storage, one "key size" a line.
objects() { "$UPAAS" storage ls --json | python3 -c '
import json, sys
for o in json.load(sys.stdin): print(o["key"], o["size"])'; }

# added BEFORE AFTER: the bytes of the objects of AFTER not in BEFORE
# (layers, blobs), without manifests and logs
added() {
	python3 - "$1" "$2" <<'PY'
import sys
old = {l.split()[0] for l in open(sys.argv[1])}
n = 0
for l in open(sys.argv[2]):
    k, s = l.split()
    if k not in old and k.endswith(".tar.zst"):
        n += int(s)
print(n)
PY
}

echo "== base image (not timed)"
"$UPAAS" -q image create >/dev/null

declare -A ROOT_BYTES ROOT_FILES
RESULTS=$B/results
: >"$RESULTS"

# one_build APP LABEL: build, deploy, record "app label build up deploy down"
one_build() {
	local app=$1 label=$2 t0 t1 id before after
	objects >"$B/before"
	t0=$(bench_now)
	id=$("$UPAAS" -q build --app "$app" "$B/src/$app")
	t1=$(bench_now)
	objects >"$B/after"
	local build up
	build=$(bench_elapsed "$t0" "$t1")
	up=$(added "$B/before" "$B/after")
	t0=$(bench_now)
	"$UPAAS" -q deploy --json --package "$id" "$app" >"$B/deploy.json"
	t1=$(bench_now)
	local dep down
	dep=$(bench_elapsed "$t0" "$t1")
	# (an upaas without fetched_bytes downloads the whole package)
	down=$("$UPAAS" package show --json "$app" "$id" | python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
m = json.load(sys.stdin)
total = sum(l["size"] for l in m["layers"]) if m.get("format") == 2 else m["blob"]["size"]
print(d.get("fetched_bytes", total))' "$B/deploy.json")
	echo "$app $label $build $up $dep $down" >>"$RESULTS"
	printf '  %-6s %-9s build %7.2f s  up %12d B  deploy %7.2f s  down %12d B\n' \
		"$app" "$label" "$build" "$up" "$dep" "$down"
	LAST_ID=$id
}

# rsync_change APP PREV NEW: rsync -a --link-dest of NEW's tree from PREV's.
# The host rsync deploys onto keeps PREV as a plain tree on the file system
# it writes to (a hard link never crosses into an overlay mount): a copy of
# it is made first, not timed.
rsync_change() {
	local app=$1 prev=$B/srv/$1/revisions/$2 new=$B/srv/$1/revisions/$3 t0 t1
	rm -rf "$B/rsync"
	mkdir -p "$B/rsync"
	cp -a "$prev" "$B/rsync/prev"
	sync
	t0=$(bench_now)
	rsync -a --numeric-ids --link-dest="$B/rsync/prev" "$new/" "$B/rsync/x/"
	sync
	t1=$(bench_now)
	echo "$app rsync $(bench_elapsed "$t0" "$t1")" >>"$RESULTS"
	rm -rf "$B/rsync"
}

for spec in flask:none big:big many:many; do
	app=${spec%%:*} kind=${spec#*:}
	make_app "$app" "$kind"
	echo "== $app: fresh build (not counted)"
	t0=$(bench_now)
	id=$("$UPAAS" -q build --fresh --app "$app" "$B/src/$app")
	echo "  fresh build $(bench_elapsed "$t0") s"
	"$UPAAS" -q deploy --package "$id" "$app" >/dev/null
	rev=$B/srv/$app/revisions/$id
	ROOT_BYTES[$app]=$(du -sb --apparent-size "$rev" | cut -f1)
	ROOT_FILES[$app]=$(find "$rev" -xdev | wc -l)
	echo "  root: ${ROOT_BYTES[$app]} bytes, ${ROOT_FILES[$app]} entries"
	echo "== $app: no change, one-file change"
	for i in $(seq "$REPEAT"); do
		one_build "$app" nochange
	done
	for i in $(seq "$REPEAT"); do
		prev=$LAST_ID
		echo "# one-file change $i" >>"$B/src/$app/app.py"
		git -C "$B/src/$app" -c user.name=b -c user.email=b@l commit -qam "change $i"
		one_build "$app" onefile
		rsync_change "$app" "$prev" "$LAST_ID"
	done
	# the next app gets the machine to itself
	"$UPAAS" -q undeploy --purge "$app" >/dev/null 2>&1 || true
done

echo "== summary (medians of $REPEAT)"
ROOTS=""
for app in flask big many; do
	ROOTS="$ROOTS $app=${ROOT_BYTES[$app]}:${ROOT_FILES[$app]}"
done
python3 - "$RESULTS" $ROOTS <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
roots = {}
for a in sys.argv[2:]:
    app, v = a.split("=")
    b, f = v.split(":")
    roots[app] = (int(b), int(f))
def med(app, label, col):
    v = [float(r[col]) for r in rows if r[0] == app and r[1] == label]
    return statistics.median(v) if v else float("nan")
mib = lambda n: n / 1048576
print(f"{'':6} {'root':>10} {'entries':>8} | {'no change':^33} | {'one-file change':^33} | rsync")
print(f"{'':6} {'MiB':>10} {'':>8} | {'build s':>7} {'up MiB':>8} {'deploy s':>8} {'dn MiB':>7} |"
      f" {'build s':>7} {'up MiB':>8} {'deploy s':>8} {'dn MiB':>7} | {'s':>6}")
for app in ("flask", "big", "many"):
    b, f = roots[app]
    nc = [med(app, "nochange", c) for c in (2, 3, 4, 5)]
    of = [med(app, "onefile", c) for c in (2, 3, 4, 5)]
    rs = statistics.median([float(r[2]) for r in rows if r[0] == app and r[1] == "rsync"])
    print(f"{app:6} {mib(b):10.1f} {f:8d} | {nc[0]:7.2f} {mib(nc[1]):8.2f} {nc[2]:8.2f} {mib(nc[3]):7.2f} |"
          f" {of[0]:7.2f} {mib(of[1]):8.2f} {of[2]:8.2f} {mib(of[3]):7.2f} | {rs:6.2f}")
fb, ff = roots["flask"]
print()
print("growth over flask: the extra cost per GB of root (big) and per 10k files (many):")
for app, unit in (("big", "GB"), ("many", "10k files")):
    b, f = roots[app]
    size = (b - fb) / 1e9 if app == "big" else (f - ff) / 1e4
    for label in ("nochange", "onefile"):
        cols = [(med(app, label, c) - med("flask", label, c)) / size for c in (2, 3, 4, 5)]
        print(f"  {app:5} {label:9} build {cols[0]:+7.2f} s, up {mib(cols[1]):+9.2f} MiB,"
              f" deploy {cols[2]:+7.2f} s, down {mib(cols[3]):+9.2f} MiB per {unit}")
print()
for app in ("flask", "big", "many"):
    of_up, of_dep, of_dn = med(app, "onefile", 3), med(app, "onefile", 4), med(app, "onefile", 5)
    rs = statistics.median([float(r[2]) for r in rows if r[0] == app and r[1] == "rsync"])
    print(f"  {app:5} one-file deploy: {of_dep:.3f} s vs rsync --link-dest {rs:.3f} s"
          f" ({of_dep / rs:.2g}x, target <= 2x); downloaded {of_dn:.0f} B for {of_up:.0f} B uploaded")
PY
