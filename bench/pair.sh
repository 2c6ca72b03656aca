#!/bin/bash
# bench/pair.sh NEW OLD - the no-change incremental build of
# examples/python-flask by two upaas binaries, side by side in one run (to
# compare a change with the build before it: the target is NEW within 10%
# of OLD).
#
# Each binary has its own config, storage, cache and work dir under
# $BENCH_DIR (default /var/tmp/upaas-pair); the base image is made once
# (by NEW) and copied to OLD's storage. Both build the app fresh once, then
# do REPEAT (default 7) no-change builds alternately, so that whatever else
# the machine does falls on both alike. Prints every wall time, the medians
# and the ratio NEW/OLD, and NEW's sandbox setup times from its build log
# when it has them. Run as root; removes $BENCH_DIR at the end (KEEP=1
# keeps it).
set -euo pipefail
NEW=${1:?usage: bench/pair.sh NEW OLD}
OLD=${2:?usage: bench/pair.sh NEW OLD}
HERE=$(cd "$(dirname "$0")/.." && pwd)
B=${BENCH_DIR:-/var/tmp/upaas-pair}
REPEAT=${REPEAT:-7}
rm -rf "$B"
mkdir -p "$B"
cleanup() {
	[ "${KEEP:-0}" = 1 ] && return
	rm -rf "$B"
}
trap cleanup EXIT

now() { date +%s.%N; }
median() { python3 -c 'import statistics, sys; print(f"{statistics.median(map(float, sys.argv[1:])):.2f}")' "$@"; }

SRC=$B/src
cp -a "$HERE/examples/python-flask" "$SRC"
git -C "$SRC" init -q -b main
git -C "$SRC" add -A
git -C "$SRC" -c user.name=b -c user.email=b@l commit -qm bench

for who in new old; do
	mkdir -p "$B/$who"
	cat >"$B/$who/upaas.cfg" <<CFG
paths = { workdir = "$B/$who/work"; cache = "$B/$who/cache"; state = "$B/$who/state"; };
storage = { handler = "local"; path = "$B/$who/storage"; };
CFG
done
run() {   # run WHO ARGS...: the binary of WHO with its config
	local who=$1 bin
	shift
	bin=$NEW
	[ "$who" = old ] && bin=$OLD
	UPAAS_CONFIG=$B/$who/upaas.cfg "$bin" "$@"
}

echo "== base image (not timed)"
run new image create >/dev/null
mkdir -p "$B/old/storage"
cp -a "$B/new/storage/images" "$B/old/storage/"

for who in new old; do
	t0=$(now)
	run "$who" build --app bench "$SRC" >/dev/null 2>"$B/$who/fresh.err" ||
		{ tail -n 20 "$B/$who/fresh.err" >&2; exit 1; }
	echo "== $who: fresh build $(python3 -c "print(f'{$(now) - $t0:.2f}')") s"
done

declare -A WALL=([new]="" [old]="")
for i in $(seq "$REPEAT"); do
	# alternate who goes first
	order="new old"
	[ $((i % 2)) = 0 ] && order="old new"
	for who in $order; do
		t0=$(now)
		id=$(run "$who" build --app bench "$SRC" 2>"$B/$who/nc.err") ||
			{ tail -n 20 "$B/$who/nc.err" >&2; exit 1; }
		w=$(python3 -c "print(f'{$(now) - $t0:.3f}')")
		WALL[$who]="${WALL[$who]} $w"
		echo "  #$i $who: no-change build $w s ($id)"
	done
done
# shellcheck disable=SC2086
mn=$(median ${WALL[new]})
# shellcheck disable=SC2086
mo=$(median ${WALL[old]})
echo "== medians of $REPEAT: new $mn s, old $mo s, new/old $(python3 -c "print(f'{$mn / $mo:.3f}')")"
python3 -c "import sys; sys.exit(0 if $mn <= 1.10 * $mo else 1)" &&
	echo "   target (new within 10% of old): ok" || echo "   target (new within 10% of old): MISSED"
log=$(ls -t "$B/new/storage/logs/bench/"*.log 2>/dev/null | head -1)
if [ -n "$log" ] && grep -q 'sandbox setup' "$log"; then
	echo "== new: sandbox setup per step (last build)"
	grep 'sandbox setup' "$log" | sed 's/^[^ ]* /  /'
fi
