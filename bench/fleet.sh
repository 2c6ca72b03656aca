#!/bin/bash
# bench/fleet.sh - a fleet on one machine (tests/fleet/lib.sh: PostgreSQL
# and radosgw in a services namespace, builder and deploy hosts in network
# namespaces of their own), measured:
#
#   throughput   builds per minute of tiny apps (no OS packages) with B = 1,
#                2 and 3 builders on one PostgreSQL queue, each a worker of
#                concurrency 1; and the queue's share of the workers' time
#                (time in queue calls against time building, as each worker
#                logs it when it stops)
#   idle watch   S3 requests per idle watcher per minute with 1, 10 and 50
#                apps (one watcher, --interval 10 --jitter 0, which reads
#                apps/_index conditionally and no current, counted by the
#                storage layer; the apps are built for real, their deploys are
#                stood in for by their current links so the watcher is idle
#                from its first round), and per round
#   deploy bytes bytes a deploy host fetches for a one-file change of
#                examples/python-flask, against the package's size (local
#                storage on this host: the build needs the Debian mirror,
#                which the fleet's namespaces cannot reach)
#   converge     seconds from a new current (its build's end) until all D
#                deploy hosts run it (watch --interval 5 --jitter 2), RUNS
#                times; the median
#
#   UPAAS=_build/upaas bench/fleet.sh [PART...]     (default: every part)
#   RUNS=3 D=6 APPS=12 bench/fleet.sh
#
# Needs root, ip netns, PostgreSQL, Ceph (tests/radosgw.sh), jq, and the
# suite's base image in UPAAS_TEST_SHARED (made once when missing).
set -uo pipefail
SRCDIR=$(cd "$(dirname "$0")/.." && pwd)
UPAAS=${UPAAS:-$PWD/upaas}
[ -x "$UPAAS" ] || { echo "bench/fleet.sh: no upaas at '$UPAAS' (set UPAAS)" >&2; exit 2; }
UPAAS=$(cd "$(dirname "$UPAAS")" && pwd)/$(basename "$UPAAS")
RUNS=${RUNS:-3}
D=${D:-6}
APPS=${APPS:-12}
PARTS=${*:-throughput idle converge bytes}
. "$SRCDIR/bench/lib.sh"
. "$SRCDIR/tests/fleet/lib.sh"
command -v jq >/dev/null || { echo "bench/fleet.sh: needs jq" >&2; exit 2; }
export UPAAS_TEST_SHARED=${UPAAS_TEST_SHARED:-/var/tmp/upaas-tests-shared}

TMP=$(mktemp -d /var/tmp/upaas-bench-fleet.XXXXXX)
F_CLEANUP=bench_cleanup
bench_cleanup() { rm -rf "$TMP"; }
say() { printf '%s\n' "$*"; }
has() { case " $PARTS " in *" $1 "*) return 0 ;; esac; return 1; }

# the suite's base image, made once (tests/lib.sh's t_image)
base_image() {
	mkdir -p "$UPAAS_TEST_SHARED/storage" "$UPAAS_TEST_SHARED/cache"
	cat >"$TMP/image.cfg" <<CFG
paths = { workdir = "$TMP/iwork"; cache = "$UPAAS_TEST_SHARED/cache"; state = "$TMP/istate"; };
storage = { handler = "local"; path = "$UPAAS_TEST_SHARED/storage"; };
signing = { key = "$UPAAS_TEST_SHARED/keys/builder.key"; trusted = [ "$UPAAS_TEST_SHARED/keys/builder.pub" ]; };
CFG
	(flock 9; "$UPAAS" -c "$TMP/image.cfg" -q image create >/dev/null) 9>"$UPAAS_TEST_SHARED/image.lock"
}

# mk_app NAME: a tiny app whose main action takes no time
mk_app() {
	local r=$TMP/repos/$1
	mkdir -p "$r"
	printf 'interpreter = { type = "shell"; };\nactions = { main = [ "echo %s > /home/app/name" ]; };\n' \
		"$1" >"$r/.upaas.cfg"
	git -C "$r" init -q -b main
	git -C "$r" add -A
	git -C "$r" -c user.name=b -c user.email=b@localhost commit -qm one
	fleet_upaas b1 -q app add "$1" --repo "$r" >/dev/null
}
# new_commit NAME: a one-file change of the app
new_commit() {
	local r=$TMP/repos/$1
	date +%s%N >"$r/stamp"
	git -C "$r" add -A
	git -C "$r" -c user.name=b -c user.email=b@localhost commit -qm change
}

declare -A WPID
workers_start() {  # N [CONCURRENCY]
	local i
	for i in $(seq "$1"); do
		fleet_bg "b$i" "$TMP/worker-b$i.log" "$UPAAS" -c "$F_DIR/b$i/upaas.cfg" -v worker \
			--concurrency "${2:-1}"
		WPID[b$i]=$F_LAST_PID
	done
}
workers_stop() {
	local h
	for h in "${!WPID[@]}"; do fleet_stop "${WPID[$h]}"; done
	WPID=()
}
blist() { fleet_upaas b1 queue list --limit 100000 --json; }
wait_idle() {
	while [ "$(blist | jq '[.[] | select(.state == "queued" or .state == "running")] | length')" != 0 ]; do
		sleep 0.5
	done
}

# ------------------------------------------------------------ the fleet
base_image || { echo "bench/fleet.sh: cannot make the base image" >&2; exit 1; }
fleet_init "$TMP"
if ! fleet_up 3 "$D" >"$TMP/up.out" 2>&1; then
	echo "bench/fleet.sh: the fleet did not come up: $(tail -n 3 "$TMP/up.out")" >&2
	exit 1
fi
fleet_image || exit 1
say "fleet: 3 builders, $D deploy hosts, PostgreSQL and radosgw on a test bridge"
# the apps: tiny01, tiny02, ...
name() { printf 'tiny%02d' "$1"; }
for i in $(seq "$APPS"); do mk_app "$(name "$i")"; done

# --------------------------------------------------------- throughput
if has throughput; then
	say ""
	say "== throughput: $APPS builds of tiny apps (each app once), B builders of concurrency 1"
	# warm every builder's caches (the base image unpacked, the git mirrors)
	workers_start 3
	for i in $(seq "$APPS"); do fleet_upaas b1 -q queue add "$(name "$i")" >/dev/null; done
	wait_idle
	workers_stop
	for b in 1 2 3; do
		for i in $(seq "$APPS"); do new_commit "$(name "$i")"; done
		: >"$TMP/ids"
		workers_start "$b"
		for i in $(seq "$APPS"); do
			fleet_upaas b1 -q queue add "$(name "$i")" >>"$TMP/ids"
		done
		wait_idle
		workers_stop
		L=$(blist | jq --slurpfile ids <(jq -R . "$TMP/ids") '[.[] | select(.id as $i | $ids | index($i))]')
		span=$(jq '(map(.finished_at_ms) | max) - (map(.started_at_ms) | min)' <<<"$L")
		ok=$(jq '[.[] | select(.state == "succeeded")] | length' <<<"$L")
		share=$(for i in $(seq "$b"); do grep 'stopped:' "$TMP/worker-b$i.log" | tail -n 1; done |
			sed -n 's/.*, \([0-9.]*\) s building, \([0-9.]*\) s in \([0-9]*\) queue calls.*/\1 \2 \3/p' |
			awk '{ b += $1; q += $2; n += $3 } END { printf "%.3f s in %d queue calls, %.2f%% of %.1f s building", q, n, b ? 100 * q / b : 0, b }')
		say "$(printf 'B=%d: %d/%d builds in %.1f s: %.1f builds/min; queue: %s' "$b" "$ok" "$APPS" \
			"$(awk -v s="$span" 'BEGIN { print s / 1000 }')" \
			"$(awk -v n="$ok" -v s="$span" 'BEGIN { print s ? n * 60000 / s : 0 }')" "$share")"
	done
fi

# --------------------------------------------------------- idle watching
if has idle; then
	say ""
	say "== idle watch: one watcher (d1), --interval 10 --jitter 0, 70 s per count of apps"
	# 50 apps with a current: the first $APPS exist, build the rest
	for i in $(seq $((APPS + 1)) 50); do mk_app "$(name "$i")"; done
	workers_start 3 2
	for i in $(seq 50); do
		fleet_upaas b1 -q storage ls "apps/$(name "$i")/" 2>/dev/null | grep -q current ||
			fleet_upaas b1 -q queue add "$(name "$i")" >/dev/null
	done
	wait_idle
	workers_stop
	for n in 1 10 50; do
		apps=()
		rm -rf "$F_DIR/d1/srv"
		for i in $(seq "$n"); do
			a=$(name "$i")
			apps+=("$a")
			# stand in for a deploy: the current link is what watch compares
			cur=$(fleet_upaas d1 storage get "apps/$a/current" - |
				sed -n 's/.*"id": *"\([^"]*\)".*/\1/p')
			[ -n "$cur" ] || cur=$(fleet_upaas d1 storage get "apps/$a/current" - | tail -n 1)
			mkdir -p "$F_DIR/d1/srv/$a/revisions/$cur"
			ln -s "revisions/$cur" "$F_DIR/d1/srv/$a/current"
		done
		fleet_bg d1 "$TMP/idle-$n.log" "$UPAAS" -c "$F_DIR/d1/upaas.cfg" -vv watch --interval 10 \
			--jitter 0 "${apps[@]}"
		sleep 72
		fleet_stop "$F_LAST_PID"
		# the rounds after the first (which writes the reports): requests
		# and minutes are cumulative in each round's line
		grep 'watch: round' "$TMP/idle-$n.log" | sed -n 's/.*round \([0-9]*\), .*, \([0-9.]*\) min: storage: \([0-9]*\) requests.*/\1 \2 \3/p' >"$TMP/idle-$n.rounds"
		say "$(awk -v n="$n" 'NR == 1 { r0 = $1; m0 = $2; q0 = $3 } { r = $1; m = $2; q = $3 }
			END { printf "%2d apps: %.1f requests per minute over %d idle rounds (%.2f per round), first round %d requests\n",
				n, (m > m0) ? (q - q0) / (m - m0) : 0, r - r0, (r > r0) ? (q - q0) / (r - r0) : 0, q0 }' "$TMP/idle-$n.rounds")"
		grep 'watch: round' "$TMP/idle-$n.log" | tail -n 1 | sed 's/.*watch: /   last round: /'
	done
	rm -rf "$F_DIR/d1/srv"
fi

# --------------------------------------------------------- convergence
if has converge; then
	say ""
	say "== converge: $D deploy hosts watch tiny01 (--interval 5 --jitter 2); a new current, $RUNS times"
	for i in $(seq "$D"); do
		fleet_bg "d$i" "$TMP/conv-d$i.log" "$UPAAS" -c "$F_DIR/d$i/upaas.cfg" -v watch \
			--interval 5 --jitter 2 tiny01
		CONV[$i]=$F_LAST_PID
	done
	all_current() {
		[ "$(fleet_upaas b1 fleet status tiny01 --json |
			jq '[.apps[].hosts[] | select(.state == "current")] | length')" = "$D" ]
	}
	workers_start 1
	until all_current; do sleep 0.5; done
	times=()
	for run in $(seq "$RUNS"); do
		new_commit tiny01
		id=$(fleet_upaas b1 -q queue add tiny01)
		until [ "$(fleet_upaas b1 queue show --json "$id" | jq -r .state)" = succeeded ]; do
			sleep 0.2
		done
		done_ms=$(fleet_upaas b1 queue show --json "$id" | jq .finished_at_ms)
		until all_current; do sleep 0.25; done
		t=$(awk -v a="$done_ms" -v b="$(date +%s%3N)" 'BEGIN { printf "%.2f", (b - a) / 1000 }')
		say "run $run: all $D hosts current $t s after the build ended"
		times+=("$t")
	done
	workers_stop
	for i in $(seq "$D"); do fleet_stop "${CONV[$i]}"; done
	say "$(printf 'median: %.2f s (interval 5 s + jitter up to 2 s + the deploy)' "$(median "${times[@]}")")"
fi

fleet_down
leaks=$(fleet_leaks)
[ -z "$leaks" ] || { echo "bench/fleet.sh: the fleet left: $leaks" >&2; }

# --------------------------------------------------------- deploy bytes
if has bytes; then
	say ""
	say "== bytes: a one-file change of examples/python-flask, local storage"
	B=$TMP/bytes
	mkdir -p "$B"
	cat >"$B/upaas.cfg" <<CFG
paths = { workdir = "$B/work"; cache = "$UPAAS_TEST_SHARED/cache"; state = "$B/state"; };
storage = { handler = "local"; path = "$B/storage"; };
deploy = { root = "$B/srv"; hooks_dir = "$B/hooks"; };
signing = { key = "$UPAAS_TEST_SHARED/keys/builder.key"; trusted = [ "$UPAAS_TEST_SHARED/keys/builder.pub" ]; };
CFG
	# the base image from the shared storage
	mkdir -p "$B/storage"
	cp -a "$UPAAS_TEST_SHARED/storage/images" "$B/storage/"
	U() { "$UPAAS" -c "$B/upaas.cfg" "$@"; }
	cp -a "$SRCDIR/examples/python-flask" "$B/repo"
	git -C "$B/repo" init -q -b main && git -C "$B/repo" add -A &&
		git -C "$B/repo" -c user.name=b -c user.email=b@localhost commit -qm one
	if U -q build --app python-flask "$B/repo" >"$B/build1.out" 2>&1 && U -vv deploy python-flask >"$B/deploy1.out" 2>&1; then
		echo "# a one-line change" >>"$B/repo/app.py"
		git -C "$B/repo" -c user.name=b -c user.email=b@localhost commit -qam change
		U -q build --app python-flask "$B/repo" >"$B/build2.out" 2>&1
		U -vv deploy python-flask >"$B/deploy2.out" 2>&1
		first=$(sed -n 's/.*storage: .*, \([0-9]*\) bytes in.*/\1/p' "$B/deploy1.out")
		second=$(sed -n 's/.*storage: .*, \([0-9]*\) bytes in.*/\1/p' "$B/deploy2.out")
		id=$(U package list python-flask --json 2>/dev/null | jq -r '.[-1].id // empty')
		size=$(U package show python-flask "$id" --json 2>/dev/null |
			jq '[.layers[]?.size] | add // .blob.size')
		say "first deploy: $first bytes fetched; one-file change: $second bytes fetched"
		say "$(awk -v s="$second" -v p="$size" 'BEGIN { printf "package %d bytes: the change fetched %.2f%% of it\n", p, p ? 100 * s / p : 0 }')"
	else
		say "the flask build or deploy failed: $(tail -n 3 "$B/build1.out" "$B/deploy1.out" 2>/dev/null)"
	fi
fi
