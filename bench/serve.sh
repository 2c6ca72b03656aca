#!/bin/bash
# bench/serve.sh [CLIENTS] [SECONDS] - `upaas serve` on loopback, SQLite queue:
#
#   webhook -> start   a signed GitHub push webhook to an idle worker, 15
#                      times; the queue's started_at - queued_at of each
#                      build (min, median, p90, max)
#   load               CLIENTS (default 8) processes, each on one keep-alive
#                      connection, loop over the list endpoints (apps, builds,
#                      builds of an app, one build) for SECONDS (default 10),
#                      while one client follows a live log that gains 20
#                      lines a second; requests/s, p50/p99 latency, errors,
#                      and the log lines the follower got
#
# The worker runs with --noop-builds (a benchmarking aid, see `upaas worker
# --help`): a claimed build succeeds at once, so what is measured is the
# server and the queue, not the build pipeline. Python's standard library
# only; bounded in time; stops by itself.
#
#   UPAAS=/path/to/upaas bench/serve.sh          (default: ./upaas)
set -euo pipefail
UPAAS=${UPAAS:-./upaas}
CLIENTS=${1:-8}
DURATION=${2:-10}
SRCDIR=$(cd "$(dirname "$0")/.." && pwd)
PY=/usr/bin/python3
[ -x $PY ] || PY=python3
for t in jq curl git; do command -v $t >/dev/null || { echo "bench/serve.sh: needs $t" >&2; exit 1; }; done
[ -x "$UPAAS" ] || { echo "bench/serve.sh: no upaas at '$UPAAS' (set UPAAS)" >&2; exit 1; }
UPAAS=$(cd "$(dirname "$UPAAS")" && pwd)/$(basename "$UPAAS")

TMP=$(mktemp -d /var/tmp/upaas-bench-serve.XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$TMP"
}
trap cleanup EXIT

PORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
BASE=http://127.0.0.1:$PORT
cat >"$TMP/upaas.cfg" <<CFG
paths = { workdir = "$TMP/work"; cache = "$TMP/cache"; state = "$TMP/state"; };
storage = { handler = "local"; path = "$TMP/storage"; };
serve = {
  listen = "127.0.0.1:$PORT";
  web_dir = "$SRCDIR/serve/web";
  limits = { rate = 1000000; burst = 1000000; connections = 512; };
};
CFG
export UPAAS_CONFIG=$TMP/upaas.cfg

mkdir -p "$TMP/src/web"
git -C "$TMP/src/web" init -q -b main
git -C "$TMP/src/web" -c user.name=b -c user.email=b@localhost commit -q --allow-empty -m one
for i in $(seq 1 20); do "$UPAAS" app add "app$i" --repo "$TMP/src/app$i"; done
"$UPAAS" app add web --repo "$TMP/src/web" --branch main
"$UPAAS" app add follow --repo "$TMP/src/follow"
SECRET=$("$UPAAS" app show --json web | jq -r .webhook_secret)
TOKEN=$("$UPAAS" token add bench --scope build 2>/dev/null | tail -n1)

"$UPAAS" serve >"$TMP/serve.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do curl -s -o /dev/null "$BASE/api/v1/whoami" && break; sleep 0.05; done
"$UPAAS" worker --noop-builds >"$TMP/worker.log" 2>&1 &
WORKER=$!
PIDS+=($WORKER)
# some history for the lists: 200 builds of 20 apps
for i in $(seq 1 200); do
	curl -s -o /dev/null -X POST -H "Authorization: Bearer $TOKEN" \
		--data-binary "{\"app\":\"app$(( i % 20 + 1 ))\",\"ref\":\"r$i\"}" "$BASE/api/v1/builds"
done
sleep 1

stats() {  # reads numbers, prints min/median/p90/max
	sort -n | awk '{ v[NR] = $1 } END {
		printf "min %d  median %d  p90 %d  max %d ms\n",
			v[1], v[int((NR + 1) / 2)], v[int(NR * 0.9 + 0.5)], v[NR] }'
}

echo "upaas serve on $BASE (SQLite), $(nproc) cores"
# ------------------------------------------------- webhook -> build start
: >"$TMP/lat"
for i in $(seq 1 15); do
	c=$(git -C "$TMP/src/web" -c user.name=b -c user.email=b@localhost commit -q --allow-empty -m "c$i" &&
		git -C "$TMP/src/web" rev-parse HEAD)
	r=$($PY "$SRCDIR/tests/integration/serve-client.py" hook github "$BASE" web "$SECRET" push \
		"bench-$i" "$TMP/src/web" refs/heads/main "$c")
	id=$(jq -r '.queued[0].id' <<<"${r#* }")
	for _ in $(seq 100); do
		s=$(curl -s -H "Authorization: Bearer $TOKEN" "$BASE/api/v1/builds/$id" | jq -r .state)
		[ "$s" = succeeded ] && break
		sleep 0.05
	done
	curl -s -H "Authorization: Bearer $TOKEN" "$BASE/api/v1/builds/$id" |
		jq '.started_at_ms - .queued_at_ms' >>"$TMP/lat"
	sleep 0.3   # the worker is idle again
done
echo "webhook -> build start (idle worker, 15 pushes): $(stats <"$TMP/lat")"

# ---------------------------------------------------------- load
kill "$WORKER"
wait "$WORKER" 2>/dev/null || true
FID=$(curl -s -X POST -H "Authorization: Bearer $TOKEN" --data-binary '{"app":"follow"}' "$BASE/api/v1/builds" | jq -r .id)
mkdir -p "$TMP/state/logs"
BID=$(curl -s -H "Authorization: Bearer $TOKEN" "$BASE/api/v1/builds?limit=1" | jq -r '.[0].id')

$PY - "$BASE" "$TOKEN" "$CLIENTS" "$DURATION" "$FID" "$BID" "$TMP/state/logs/$FID.log" <<'PY'
import http.client, multiprocessing, sys, threading, time, urllib.parse
base, token, clients, duration, fid, bid, logf = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5], sys.argv[6], sys.argv[7]
u = urllib.parse.urlsplit(base)
paths = ["/api/v1/apps", "/api/v1/builds?limit=50", "/api/v1/builds?app=app3", "/api/v1/builds/" + bid]
hdr = {"Authorization": "Bearer " + token}

def client(i, q):
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    lat, errors, n = [], 0, 0
    end = time.time() + duration
    while time.time() < end:
        p = paths[n % len(paths)]
        n += 1
        t0 = time.perf_counter()
        try:
            c.request("GET", p, headers=hdr)
            r = c.getresponse()
            r.read()
            if r.status != 200:
                errors += 1
        except Exception:
            errors += 1
            c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        lat.append((time.perf_counter() - t0) * 1000)
    q.put((lat, errors))

def follower(q, want):
    """reads the live log until it has every line written (or 30 s)"""
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    c.request("GET", "/api/v1/builds/%s/log?follow=1" % fid, headers=hdr)
    r = c.getresponse()
    lines, lags, end = 0, [], time.time() + duration + 30
    while time.time() < end and lines < want:
        l = r.fp.readline()
        if not l:
            break
        if l.startswith(b"data: ") and b" line " in l:
            lines += 1
            lags.append((time.time() - float(l.split()[-1])) * 1000)
    q.put((lines, lags))

def writer(n):
    """20 lines a second into the build's log, each with the time it was written"""
    with open(logf, "a") as f:
        for i in range(n):
            f.write("2026-01-01T00:00:00.000Z line %d %.6f\n" % (i, time.time()))
            f.flush()
            time.sleep(0.05)

q, fq = multiprocessing.Queue(), multiprocessing.Queue()
n_lines = int(duration * 20)
f = multiprocessing.Process(target=follower, args=(fq, n_lines))
f.start()
w = threading.Thread(target=writer, args=(n_lines,))
w.start()
time.sleep(0.2)
ps = [multiprocessing.Process(target=client, args=(i, q)) for i in range(clients)]
t0 = time.time()
for p in ps: p.start()
res = [q.get() for _ in ps]
for p in ps: p.join()
took = time.time() - t0
lat = sorted(x for r in res for x in r[0])
errors = sum(r[1] for r in res)
w.join()
lines, lags = fq.get()
f.join()
lags.sort()
pct = lambda p: lat[min(len(lat) - 1, int(len(lat) * p))]
print("load: %d clients on the list endpoints for %.0f s: %d requests, %.0f requests/s, "
      "p50 %.1f ms, p99 %.1f ms, max %.1f ms, %d errors" %
      (clients, duration, len(lat), len(lat) / took, pct(0.5), pct(0.99), lat[-1], errors))
print("live log follower meanwhile: %d of %d lines (20 a second), write to read: median %.0f ms, max %.0f ms" %
      (lines, n_lines, lags[len(lags) // 2] if lags else -1, lags[-1] if lags else -1))
PY
