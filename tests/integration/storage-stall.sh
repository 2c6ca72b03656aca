#!/bin/bash
# tests/integration/storage-stall.sh - timeouts that mean something, for the
# http and s3 handlers, against a tiny python3 server that misbehaves on
# purpose: a transfer slower than storage.timeout but moving arrives; one
# that stalls is given up after storage.timeout (not a whole-transfer
# deadline) and resumes with Range from the bytes already taken; a server
# that ignores Range is coped with; an object that changed between the
# attempts fails the download, naming why. And SIGTERM in the middle of
# storage get, package get and storage put: exit 1 "interrupted", nothing
# left behind.
. "$UPAAS_SRCDIR/tests/lib.sh"
command -v python3 >/dev/null || t_skip_all "python3 is not installed"

head -c 3000000 /dev/urandom >"$T_ROOT/blob"
head -c 3000000 /dev/urandom >"$T_ROOT/blob2"
want=$(sha256sum <"$T_ROOT/blob" | cut -d' ' -f1)

# The server: GET /<anything>/<mode>/<name> serves blob (blob2 where said).
#   slow     the whole body in 30 chunks, 0.1 s apart (3 s, never stalls)
#   stall    first request: half the body, then silence for 60 s; later
#            requests honour Range (If-Range / If-Match against the ETag)
#   norange  the same stall first, later requests ignore Range (200, whole)
#   changed  the same stall first, then the object changes (new ETag, blob2)
#   demo     a package: <id>.json its manifest (argv[3]), the blob slowly
# Each request is logged as "METHOD path range=... if=...".
cat >"$T_ROOT/server.py" <<'PY'
import http.server, socketserver, sys, time, threading
blobs = [open(sys.argv[1], "rb").read(), open(sys.argv[2], "rb").read()]
manifest = open(sys.argv[3], "rb").read()
signature = open(sys.argv[4], "rb").read()
seen = {}
lock = threading.Lock()
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_GET(self):
        parts = self.path.split("?")[0].split("/")
        mode = parts[-2] if len(parts) >= 3 else ""
        with lock:
            n = seen.get(self.path, 0)
            seen[self.path] = n + 1
        rng = self.headers.get("Range")
        cond = self.headers.get("If-Range") or self.headers.get("If-Match")
        print("GET", self.path, "range=%s" % rng, "if=%s" % cond, flush=True)
        version = 1 if (mode == "changed" and n > 0) else 0
        body, etag = blobs[version], '"v%d"' % (version + 1)
        if mode == "demo":
            if self.path.endswith(".json"):
                body, etag = manifest, '"m"'
            elif self.path.endswith(".json.sig"):
                body, etag = signature, '"s"'
            else:
                mode = "slow"
        lm = "Mon, 0%d Jan 2024 00:00:00 GMT" % (version + 1)
        if self.headers.get("If-Match") and self.headers.get("If-Match") != etag:
            self.send_response(412)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        start = 0
        if rng and mode != "norange" and n > 0 and (not self.headers.get("If-Range") or
                                                  self.headers.get("If-Range") == etag):
            start = int(rng.split("=")[1].split("-")[0])
        self.send_response(206 if start else 200)
        self.send_header("ETag", etag)
        self.send_header("Last-Modified", lm)
        self.send_header("Content-Length", str(len(body) - start))
        if start:
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, len(body) - 1, len(body)))
        self.end_headers()
        data = body[start:]
        try:
            if mode == "slow":
                step = len(data) // 30 + 1
                for i in range(0, len(data), step):
                    self.wfile.write(data[i:i + step]); self.wfile.flush(); time.sleep(0.1)
            elif n == 0 and mode in ("stall", "norange", "changed"):
                self.wfile.write(data[:len(data) // 2]); self.wfile.flush()
                time.sleep(60)
            else:
                self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
s = S(("127.0.0.1", 0), H)
print("port", s.server_address[1], flush=True)
s.serve_forever()
PY
PID_=20261120T000000Z-abcdef0
python3 - "$T_ROOT/blob" "$PID_" >"$T_ROOT/manifest.json" <<'PY'
import hashlib, json, os, sys
blob, pid = sys.argv[1:]
print(json.dumps({"format": 1, "app": "demo", "id": pid, "fresh": True,
    "blob": {"key": "packages/demo/%s.tar.zst" % pid, "size": os.path.getsize(blob),
             "sha256": hashlib.sha256(open(blob, "rb").read()).hexdigest()}}))
PY
"$UPAAS" key sign --key "$T_KEY" --output "$T_ROOT/manifest.json.sig" "$T_ROOT/manifest.json" \
	>/dev/null || t_bail "cannot sign the manifest"
python3 -u "$T_ROOT/server.py" "$T_ROOT/blob" "$T_ROOT/blob2" "$T_ROOT/manifest.json" \
	"$T_ROOT/manifest.json.sig" >"$T_ROOT/server.log" 2>&1 &
SPID=$!
trap 'rc=$?; kill "$SPID" 2>/dev/null; wait "$SPID" 2>/dev/null; (exit $rc); t_cleanup' EXIT
PORT=
for _ in $(seq 100); do
	PORT=$(sed -n 's/^port \([0-9]*\)$/\1/p' "$T_ROOT/server.log")
	[ -n "$PORT" ] && break
	sleep 0.1
done
[ -n "$PORT" ] || t_bail "the server did not start: $(cat "$T_ROOT/server.log")"

# One config per handler: a stall timeout of 2 s, quick retries.
HCFG=$T_ROOT/http.cfg
sed '/^storage = {/,/^};/d' "$T_CFG" >"$HCFG"
cat >>"$HCFG" <<CFG
storage = {
  handler = "http";
  url = "http://127.0.0.1:$PORT/h";
  timeout = 2;
  connect_timeout = 2;
  retries = 3;
};
CFG
SCFG=$T_ROOT/s3.cfg
sed '/^storage = {/,/^};/d' "$T_CFG" >"$SCFG"
cat >>"$SCFG" <<CFG
storage = {
  handler = "s3";
  endpoint = "http://127.0.0.1:$PORT";
  bucket = "bucket";
  path_style = true;
  access_key = "AK";
  secret_key = "not-checked-by-this-server";
  timeout = 2;
  connect_timeout = 2;
  retries = 3;
};
CFG

# get HANDLER KEY: downloads KEY to $T_ROOT/out, output in $T_ROOT/get.out,
# the seconds it took in $took
get() {
	local cfg=$HCFG
	[ "$1" = s3 ] && cfg=$SCFG
	rm -f "$T_ROOT/out"
	local start=$SECONDS
	UPAAS_CONFIG=$cfg "$UPAAS" storage get "$2" "$T_ROOT/out" >"$T_ROOT/get.out" 2>&1
	local rc=$?
	took=$((SECONDS - start))
	return $rc
}
sum() { sha256sum <"$T_ROOT/out" | cut -d' ' -f1; }

for h in http s3; do
	t_ok "$h: a transfer longer than the stall timeout, but moving, arrives" get $h slow/a
	t_is "$h: whole and intact" "$(sum)" "$want"
	t_fail "$h: ... without a retry" grep -q "retrying\|resuming" "$T_ROOT/get.out"

	t_ok "$h: a download that stalls half-way succeeds" get $h stall/b
	t_is "$h: whole and intact" "$(sum)" "$want"
	t_match "$h: given up as a stall, it resumed at the byte where it stopped" \
		"$(cat "$T_ROOT/get.out")" \
		"warning: .*nothing moved for 2 s \(storage.timeout\), resuming at byte 1500000 in [0-9]+ ms"
	t_is "$h: after the stall timeout, not a minute (< 6 s)" "$((took < 6))" 1
	t_match "$h: the second request asked for the rest, on condition" \
		"$(grep "stall/b" "$T_ROOT/server.log" | tail -n 1)" \
		"range=bytes=1500000- if=\"v1\""
done

t_ok "http: a server that ignores Range: the head is dropped" get http norange/c
t_is "http: whole and intact" "$(sum)" "$want"

for h in http s3; do
	t_fail "$h: an object that changed between the attempts fails" get $h changed/d
	t_match "$h: saying so" "$(tail -n 1 "$T_ROOT/get.out")" \
		"error: .*changed while it was read"
	t_ok "$h: and leaves no file" test ! -e "$T_ROOT/out"
done

# ------------------------------------------------------------ SIGTERM
# term CMD...: runs CMD, SIGTERM after 1 s (the transfers take 3 s); its
# status in $rc, its output in $T_ROOT/term.out
term() {
	"$@" >"$T_ROOT/term.out" 2>&1 &
	local pid=$!
	sleep 1
	kill -TERM "$pid"
	wait "$pid"
	rc=$?
}
mkdir -p "$T_ROOT/dl"
for h in http s3; do
	cfg=$HCFG
	[ $h = s3 ] && cfg=$SCFG
	term env UPAAS_CONFIG="$cfg" "$UPAAS" storage get slow/t "$T_ROOT/dl/obj"
	t_is "$h: storage get stopped by SIGTERM exits 1" "$rc" 1
	t_match "$h: ... saying it was interrupted" "$(tail -n 1 "$T_ROOT/term.out")" \
		"^upaas: error: .*interrupted by SIGTERM"
	t_is "$h: ... and leaves no file, not even a temp" "$(ls -A "$T_ROOT/dl")" ""
	term env UPAAS_CONFIG="$cfg" "$UPAAS" package get demo "$PID_" "$T_ROOT/dl/pkg.tar.zst"
	t_is "$h: package get stopped by SIGTERM exits 1" "$rc" 1
	t_match "$h: ... interrupted" "$(tail -n 1 "$T_ROOT/term.out")" "interrupted by SIGTERM"
	t_is "$h: ... and leaves no file" "$(ls -A "$T_ROOT/dl")" ""
done
t_ok "the package arrives when left alone" env UPAAS_CONFIG="$HCFG" \
	"$UPAAS" package get demo "$PID_" "$T_ROOT/dl/pkg.tar.zst"
rm -f "$T_ROOT/dl/pkg.tar.zst"

# storage put, into local storage, from a pipe that never ends
ST=$T_ROOT/storage
mkdir -p "$ST"
sed -i "s|path = \"$UPAAS_TEST_SHARED/storage\";|path = \"$ST\";|" "$T_CFG"
mkfifo "$T_ROOT/in"
(while head -c 65536 /dev/zero; do sleep 0.05; done) >"$T_ROOT/in" 2>/dev/null &
prod=$!
"$UPAAS" storage put "$T_ROOT/in" big/obj >"$T_ROOT/term.out" 2>&1 &
pid=$!
sleep 1
t_match "an upload under way" "$(find "$ST" -name '.tmp-*' | wc -l)" "^1$"
kill -TERM "$pid"
wait "$pid"
rc=$?
kill "$prod" 2>/dev/null
wait "$prod" 2>/dev/null
t_is "storage put stopped by SIGTERM exits 1" "$rc" 1
t_match "... interrupted" "$(cat "$T_ROOT/term.out")" "interrupted by SIGTERM"
t_is "... and leaves nothing in storage, not even a temp" "$(find "$ST" -type f)" ""
# an input that never sends anything: the put waits in a read, and still
# stops at once
mkfifo "$T_ROOT/idle"
exec 7<>"$T_ROOT/idle"
"$UPAAS" storage put - big/idle <"$T_ROOT/idle" >"$T_ROOT/term.out" 2>&1 &
pid=$!
sleep 1
start=$SECONDS
kill -TERM "$pid"
wait "$pid"
rc=$?
exec 7>&-
t_is "storage put waiting for input, SIGTERM: exit 1" "$rc" 1
t_match "... interrupted" "$(cat "$T_ROOT/term.out")" "interrupted by SIGTERM"
t_is "... at once" "$((SECONDS - start < 3))" 1
t_is "... nothing left in storage" "$(find "$ST" -type f)" ""

t_done
