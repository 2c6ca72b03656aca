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
#   bytes        bytes a deploy host fetches for a one-file change of
#                examples/python-flask (a layered package), against the
#                package's size and against the new layer plus the manifest
#                (at most 2x): built on this host into local storage (the
#                build needs the Debian mirror, which the fleet's namespaces
#                cannot reach), deployed by a second config through the
#                read-only http handler from a loopback python3 http.server
#                that serves that storage dir, so every layer the deploy
#                host does not keep is really downloaded; the numbers are
#                deploy --json's (fetched_bytes, fetched_layers,
#                kept_layers), with the bytes the server sent beside them
#   converge     seconds from a new current (its build's end) until all D
#                deploy hosts run it (watch --interval 5 --jitter 2), RUNS
#                times; the median
#
#   UPAAS=_build/upaas bench/fleet.sh [PART...]     (default: every part)
#   RUNS=3 D=6 APPS=12 bench/fleet.sh
#
# Needs root, jq, python3 (bytes), and for the other parts ip netns,
# PostgreSQL and Ceph (tests/radosgw.sh); the suite's signing key pair and
# base image in UPAAS_TEST_SHARED (made once when missing, as tests/lib.sh
# does). `bench/fleet.sh bytes` alone brings no fleet up.
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
HPID=
# the bytes part's http server, then the run's dir: the EXIT trap (once the
# fleet is up, the fleet's trap calls it)
bench_cleanup() {
	if [ -n "$HPID" ]; then
		kill "$HPID" 2>/dev/null
		wait "$HPID" 2>/dev/null
		HPID=
	fi
	# the bytes part's overlay-mounted revisions: rm never goes through a mount
	findmnt -rn -o TARGET | grep "^$TMP/" | sort -r | xargs -r umount -l
	rm -rf "$TMP"
}
F_CLEANUP=bench_cleanup
trap bench_cleanup EXIT
say() { printf '%s\n' "$*"; }
has() { case " $PARTS " in *" $1 "*) return 0 ;; esac; return 1; }

# the suite's signing key pair and base image, made once (as tests/lib.sh
# and its t_image make them)
base_image() {
	mkdir -p "$UPAAS_TEST_SHARED/storage" "$UPAAS_TEST_SHARED/cache"
	mkdir -p -m 0700 "$UPAAS_TEST_SHARED/keys"
	(
		flock 9
		[ -s "$UPAAS_TEST_SHARED/keys/builder.key" ] ||
			"$UPAAS" key generate --private "$UPAAS_TEST_SHARED/keys/builder.key" \
				--public "$UPAAS_TEST_SHARED/keys/builder.pub" >/dev/null
	) 9>"$UPAAS_TEST_SHARED/keys.lock" || return 1
	cat >"$TMP/image.cfg" <<CFG
paths = { workdir = "$TMP/iwork"; cache = "$UPAAS_TEST_SHARED/cache"; state = "$TMP/istate"; };
storage = { handler = "local"; path = "$UPAAS_TEST_SHARED/storage"; };
signing = { key = "$UPAAS_TEST_SHARED/keys/builder.key"; trusted = [ "$UPAAS_TEST_SHARED/keys/builder.pub" ]; };
CFG
	(flock 9; "$UPAAS" -c "$TMP/image.cfg" -q image create >/dev/null) 9>"$UPAAS_TEST_SHARED/image.lock"
}

# name N: the Nth tiny app (tiny01, tiny02, ...)
name() { printf 'tiny%02d' "$1"; }
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
FLEET=
if has throughput || has idle || has converge; then
	FLEET=1
	fleet_init "$TMP"
	if ! fleet_up 3 "$D" >"$TMP/up.out" 2>&1; then
		echo "bench/fleet.sh: the fleet did not come up: $(tail -n 3 "$TMP/up.out")" >&2
		exit 1
	fi
	fleet_image || exit 1
	say "fleet: 3 builders, $D deploy hosts, PostgreSQL and radosgw on a test bridge"
	# the apps: tiny01, tiny02, ...
	for i in $(seq "$APPS"); do mk_app "$(name "$i")"; done
fi

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
	# tiny01's first current, when no part before built it
	fleet_upaas b1 -q storage ls apps/tiny01/ 2>/dev/null | grep -q current ||
		fleet_upaas b1 -q queue add tiny01 >/dev/null
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

if [ -n "$FLEET" ]; then
	fleet_down
	leaks=$(fleet_leaks)
	[ -z "$leaks" ] || { echo "bench/fleet.sh: the fleet left: $leaks" >&2; }
fi

# --------------------------------------------------------- deploy bytes
if has bytes; then
	say ""
	say "== bytes: a one-file change of examples/python-flask, layered; built into local storage, deployed over http"
	B=$TMP/bytes
	mkdir -p "$B/storage"
	# the build host: local storage, the base image from the shared storage
	cat >"$B/upaas.cfg" <<CFG
paths = { workdir = "$B/work"; cache = "$UPAAS_TEST_SHARED/cache"; state = "$B/state"; };
storage = { handler = "local"; path = "$B/storage"; };
signing = { key = "$UPAAS_TEST_SHARED/keys/builder.key"; trusted = [ "$UPAAS_TEST_SHARED/keys/builder.pub" ]; };
CFG
	cp -a "$UPAAS_TEST_SHARED/storage/images" "$B/storage/"
	U() { "$UPAAS" -c "$B/upaas.cfg" "$@"; }
	# the deploy host: paths of its own, that storage dir over loopback http
	# (a port the kernel picks)
	python3 -u -m http.server --bind 127.0.0.1 --directory "$B/storage" 0 >"$B/http.log" 2>&1 &
	HPID=$!
	port=
	for _ in $(seq 100); do
		port=$(sed -n 's/.*Serving HTTP on [0-9.]* port \([0-9]*\).*/\1/p' "$B/http.log")
		[ -n "$port" ] && break
		sleep 0.1
	done
	cat >"$B/deploy.cfg" <<CFG
paths = { workdir = "$B/dwork"; cache = "$B/dcache"; state = "$B/dstate"; };
storage = { handler = "http"; url = "http://127.0.0.1:$port/"; timeout = 30; };
deploy = { root = "$B/srv"; hooks_dir = "$B/hooks"; };
signing = { trusted = [ "$UPAAS_TEST_SHARED/keys/builder.pub" ]; };
CFG
	Dh() { "$UPAAS" -c "$B/deploy.cfg" "$@"; }
	# served FROM: the bytes of the objects the server sent whole (200) in
	# the GETs of its log after line FROM
	served() {
		local p n=0
		for p in $(tail -n +"$(($1 + 1))" "$B/http.log" |
			sed -n 's|.*"GET /\([^ ?]*\) HTTP/[0-9.]*" 200 .*|\1|p'); do
			n=$((n + $(stat -c %s "$B/storage/$p")))
		done
		echo "$n"
	}
	loglines() { wc -l <"$B/http.log"; }
	# bdeploy N: the deploy host deploys the app's current; deployN.json
	bdeploy() {
		local from
		from=$(loglines)
		Dh -q deploy --json python-flask >"$B/deploy$1.json" 2>"$B/deploy$1.err" || return 1
		SENT[$1]=$(served "$from")
		GETS[$1]=$(tail -n +"$((from + 1))" "$B/http.log" | grep -c '"GET /layers/.*" 200 ')
	}
	declare -A SENT GETS
	cp -a "$SRCDIR/examples/python-flask" "$B/repo"
	git -C "$B/repo" init -q -b main && git -C "$B/repo" add -A &&
		git -C "$B/repo" -c user.name=b -c user.email=b@localhost commit -qm one
	ok=
	if [ -z "$port" ]; then
		say "the http server did not start: $(tail -n 3 "$B/http.log")"
	elif ! id1=$(U -q build --app python-flask "$B/repo" 2>"$B/build1.err"); then
		say "the first flask build failed: $(tail -n 3 "$B/build1.err")"
	elif ! bdeploy 1; then
		say "the first deploy failed: $(tail -n 3 "$B/deploy1.err")"
	else
		echo "# a one-line change" >>"$B/repo/app.py"
		git -C "$B/repo" -c user.name=b -c user.email=b@localhost commit -qam change
		if ! id2=$(U -q build --app python-flask "$B/repo" 2>"$B/build2.err"); then
			say "the second flask build failed: $(tail -n 3 "$B/build2.err")"
		elif ! bdeploy 2; then
			say "the second deploy failed: $(tail -n 3 "$B/deploy2.err")"
		else
			ok=1
		fi
	fi
	kill "$HPID" 2>/dev/null
	wait "$HPID" 2>/dev/null
	HPID=
	if [ -n "$ok" ]; then
		for n in 1 2; do
			want=$([ "$n" = 1 ] && echo "$id1" || echo "$id2")
			got=$(jq -r .id "$B/deploy$n.json")
			[ "$got" = "$want" ] || say "odd: deploy $n deployed '$got', not the build's '$want'"
		done
		U package show --json python-flask "$id1" >"$B/p1.json"
		U package show --json python-flask "$id2" >"$B/p2.json"
		jf() { jq -r "$1" "$2"; }
		# the package: the sum of its layers; the new layer(s): those of
		# the second package that the first does not list
		size=$(jf '[.layers[].size] | add' "$B/p2.json")
		nlayers=$(jf '.layers | length' "$B/p2.json")
		newl=$(jq -n --slurpfile a "$B/p1.json" --slurpfile b "$B/p2.json" \
			'[$b[0].layers[] | select(.sha256 as $s | [$a[0].layers[].sha256] | index($s) | not) | .size] | add // 0')
		# the manifest: the signed document the deploy host reads
		man=0
		for o in "$B/storage/packages/python-flask/$id2".json "$B/storage/packages/python-flask/$id2".json.sig; do
			[ -f "$o" ] && man=$((man + $(stat -c %s "$o")))
		done
		for n in 1 2; do
			say "$(jq -r --arg sent "${SENT[$n]}" --arg gets "${GETS[$n]}" --arg what \
				"$([ "$n" = 1 ] && echo 'first deploy:' || echo 'one-file change:')" \
				'"\($what | . + " " * (16 - length)) \(.fetched_bytes) bytes fetched: \(.fetched_layers) layers fetched, \(.kept_layers) kept (deploy --json); the server sent \($sent) bytes (\($gets) layer GETs); deploy \(.total_ms) ms, extract \(.extract_ms) ms"' \
				"$B/deploy$n.json")"
		done
		say "$(printf 'package:         %d bytes in %d layers; the new layer %d bytes; the manifest %d bytes (with its signature)' \
			"$size" "$nlayers" "$newl" "$man")"
		say "$(awk -v c="$(jf .fetched_bytes "$B/deploy2.json")" -v w="${SENT[2]}" -v p="$size" -v l="$newl" -v m="$man" 'BEGIN {
			r = (l + m) ? c / (l + m) : 0; rw = (l + m) ? w / (l + m) : 0
			printf "ratios: change fetched / package %.5f (%.3f%%); change fetched / (new layer + manifest) %.3f (%s 2); sent by the server / (new layer + manifest) %.3f\n",
				p ? c / p : 0, p ? 100 * c / p : 0, r, (r <= 2) ? "<=" : "OVER", rw }')"
	fi
fi
