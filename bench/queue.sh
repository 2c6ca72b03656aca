#!/bin/bash
# bench/queue.sh [CLAIMS] - the queue's own overhead, on SQLite and on
# PostgreSQL (a throwaway server from tests/pg.sh; skipped when Debian's
# postgresql package is missing):
#
#   latency     enqueue -> start with one idle worker, per build
#               (started_at - queued_at, both written by the queue), 20 times
#   claims/s    CLAIMS builds (default 2000) of as many apps appear at once (one
#               SQL insert, through sqlite3 or psql) before 3 idle worker
#               processes; from the first start to the last finish
#
# The workers run with --noop-builds (documented in upaas worker --help as a
# benchmarking aid): a claimed build is marked succeeded at once, so what is
# measured is the queue (claim, lease, finish), not the build pipeline.
#
#   UPAAS=/path/to/upaas bench/queue.sh          (default: ./upaas)
set -euo pipefail
UPAAS=${UPAAS:-./upaas}
CLAIMS=${1:-2000}
SRCDIR=$(cd "$(dirname "$0")/.." && pwd)
. "$SRCDIR/bench/lib.sh"
command -v jq >/dev/null || { echo "bench/queue.sh: needs jq" >&2; exit 1; }
[ -x "$UPAAS" ] || { echo "bench/queue.sh: no upaas at '$UPAAS' (set UPAAS)" >&2; exit 1; }
UPAAS=$(cd "$(dirname "$UPAAS")" && pwd)/$(basename "$UPAAS")

TMP=$(mktemp -d /var/tmp/upaas-bench-queue.XXXXXX)
export UPAAS_TEST_SHARED=$TMP/shared
mkdir -p "$UPAAS_TEST_SHARED"
PIDS=()
PG_STARTED=
cleanup() {
	for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	[ -n "$PG_STARTED" ] && "$SRCDIR/tests/pg.sh" stop >/dev/null 2>&1
	rm -rf "$TMP"
}
trap cleanup EXIT

write_cfg() {  # DIR URL
	mkdir -p "$1"
	cat >"$1/upaas.cfg" <<CFG
paths = { workdir = "$1/work"; cache = "$1/cache"; state = "$1/state"; };
storage = { handler = "local"; path = "$1/storage"; };
queue = { url = "$2"; lease_seconds = 30; };
CFG
	export UPAAS_CONFIG=$1/upaas.cfg
}

stats() {  # reads numbers (ms), prints min/median/p90/max
	local v
	v=$(sort -n)
	printf 'min %d  median %.0f  p90 %d  max %d ms\n' "$(head -n 1 <<<"$v")" "$(median $v)" \
		"$(awk '{ v[NR] = $1 } END { print v[int(NR * 0.9 + 0.5)] }' <<<"$v")" \
		"$(tail -n 1 <<<"$v")"
}

wait_done() {  # N: waits until N builds succeeded
	while [ "$("$UPAAS" queue list --state succeeded --json | jq length)" -lt "$1" ]; do
		sleep 0.2
	done
}

# Runs SQL on the bench's database (sqlite3 or psql).
sql() {
	case $URL in
	sqlite://*) sqlite3 "${URL#sqlite://}" "$1" ;;
	*) psql -q "$URL" -c "$1" >/dev/null ;;
	esac
}
# The rows 1..N as a table s with a column i, and the time in unix ms.
series() {
	case $URL in
	sqlite://*) echo "(WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < $1) SELECT i FROM c) AS s" ;;
	*) echo "generate_series(1, $1) AS s(i)" ;;
	esac
}
now_sql() {
	case $URL in
	sqlite://*) echo "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)" ;;
	*) echo "CAST(extract(epoch FROM clock_timestamp()) * 1000 AS BIGINT)" ;;
	esac
}

bench() {  # NAME URL
	local name=$1 D=$TMP/$1
	URL=$2
	write_cfg "$D" "$2"
	echo "== $name"

	# latency: one idle worker, one build at a time
	"$UPAAS" app add lat --repo /nonexistent
	"$UPAAS" worker --noop-builds >"$D/w0.log" 2>&1 &
	PIDS+=($!)
	sleep 0.5
	local ids=() i id
	for i in $(seq 1 20); do
		id=$("$UPAAS" queue add lat 2>/dev/null)
		ids+=("$id")
		wait_done "$i"
		sleep 0.1   # the worker is idle again, waiting
	done
	kill -TERM "${PIDS[-1]}"
	wait "${PIDS[-1]}" || true
	printf '  enqueue -> start, idle worker:  '
	"$UPAAS" queue list --app lat --json | jq '.[] | .started_at_ms - .queued_at_ms' | stats

	# claims per second: 3 idle workers, then CLAIMS builds of CLAIMS apps
	# appear at once (one SQL transaction, as a burst of requests would)
	sql "INSERT INTO apps (name, repo, created) SELECT 'a' || CAST(i AS TEXT), '/nonexistent', 0
	     FROM $(series "$CLAIMS")"
	local t0 w
	for w in 1 2 3; do
		"$UPAAS" worker --noop-builds >"$D/w$w.log" 2>&1 &
		PIDS+=($!)
	done
	sleep 1
	t0=$(bench_now)
	sql "INSERT INTO builds (id, app, fresh, state, queued_at)
	     SELECT 'b-' || name, name, 0, 'queued', $(now_sql) FROM apps WHERE name <> 'lat'"
	[ "$name" = postgresql ] && sql "NOTIFY upaas_queue"
	wait_done $((CLAIMS + 20))
	local t1
	t1=$(bench_now)
	for w in 1 2 3; do
		kill -TERM "${PIDS[-$w]}" 2>/dev/null || true
	done
	wait 2>/dev/null || true
	PIDS=()
	local L
	L=$("$UPAAS" queue list --json | jq '[.[] | select(.app != "lat")]')
	jq -r --argjson n "$CLAIMS" '
		(map(.started_at_ms) | min) as $a | (map(.finished_at_ms) | max) as $b |
		"  claims/s, 3 workers:            \($n * 1000 / (if $b > $a then $b - $a else 1 end) | floor)" +
		" (\($n) builds in \($b - $a) ms, spread over \(map(.worker) | unique | length) workers)"' <<<"$L"
	echo "  (wall clock, including the CLI polls: $(awk -v s="$(bench_elapsed "$t0" "$t1")" \
		'BEGIN { printf "%d", s * 1000 }') ms)"
}

bench sqlite "sqlite://$TMP/sqlite/state/upaas.db"

if [ "$(id -u)" = 0 ] && PG_URL=$("$SRCDIR/tests/pg.sh" start 2>/dev/null); then
	PG_STARTED=1
	bench postgresql "$PG_URL"
else
	echo "== postgresql: skipped (needs root and Debian's postgresql package)"
fi
