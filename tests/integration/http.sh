#!/bin/bash
# tests/integration/http.sh - the read-only http handler against a real web
# server (python3 -m http.server on loopback) that serves a local storage dir.
. "$UPAAS_SRCDIR/tests/lib.sh"
command -v python3 >/dev/null || t_skip_all "python3 is not installed"

# Objects are written through the local handler into a private dir ...
ST=$T_ROOT/storage
sed -i "s|path = \"$UPAAS_TEST_SHARED/storage\";|path = \"$ST\";|" "$T_CFG"
grep -q "path = \"$ST\";" "$T_CFG" || t_bail "cannot point the config at '$ST'"
mkdir -p "$ST"
head -c 2500000 /dev/urandom >"$T_ROOT/blob"
"$UPAAS" storage put "$T_ROOT/blob" packages/web/1.tar.zst || t_bail "local put failed"
printf '{"id":1}' | "$UPAAS" storage put - packages/web/1.json || t_bail "local put failed"
printf 'odd' | "$UPAAS" storage put - "odd/a b+c%d.txt" || t_bail "local put failed"

# ... and served on a free port the kernel picks.
python3 -u -m http.server --bind 127.0.0.1 --directory "$ST" 0 >"$T_ROOT/http.log" 2>&1 &
HPID=$!
stop_server() { kill "$HPID" 2>/dev/null && wait "$HPID" 2>/dev/null; }
trap 'rc=$?; stop_server; (exit $rc); t_cleanup' EXIT
PORT=
for _ in $(seq 100); do
	PORT=$(sed -n 's/.*Serving HTTP on [0-9.]* port \([0-9]*\).*/\1/p' "$T_ROOT/http.log")
	[ -n "$PORT" ] && break
	sleep 0.1
done
[ -n "$PORT" ] || t_bail "http.server did not start: $(cat "$T_ROOT/http.log")"

# ... to a host whose config reads through the http handler.
HCFG=$T_ROOT/http.cfg
sed '/^storage = {/,/^};/d' "$T_CFG" >"$HCFG"
cat >>"$HCFG" <<CFG
storage = {
  handler = "http";
  url = "http://127.0.0.1:$PORT/";
  timeout = 10;
};
CFG
H() { UPAAS_CONFIG=$HCFG "$UPAAS" "$@"; }

t_ok "get an object over http" H storage get packages/web/1.tar.zst "$T_ROOT/back"
t_is "same bytes" "$(sha256sum <"$T_ROOT/back")" "$(sha256sum <"$T_ROOT/blob")"
t_is "get to stdout" "$(H storage get packages/web/1.json -)" '{"id":1}'
t_is "keys are percent-encoded" "$(H storage get "odd/a b+c%d.txt" -)" odd

t_ok "storage check (read-only)" H storage check
out=$(cat "$T_ROOT/last.out")
t_match "names the handler" "$out" "handler 'http' at 'http://127.0.0.1:$PORT'"
t_match "writes skipped" "$out" "^write +skipped \(handler 'http' is read-only\)"
t_match "reading checked" "$out" "^read +ok"
t_match "check ends ok" "$out" "^storage check ok$"
want=$(sha256sum <"$T_ROOT/blob" | cut -d' ' -f1)
t_ok "check --key reads an object" H storage check --key packages/web/1.tar.zst
t_match "and hashes it" "$(cat "$T_ROOT/last.out")" "^read key +ok \(.*2500000 bytes, sha256 $want\)"

t_fail "a missing object fails" H storage get packages/web/2.json "$T_ROOT/x"
t_match "with a clear 404 error" "$(cat "$T_ROOT/last.out")" \
	"object 'packages/web/2.json' not found at 'http://127.0.0.1:$PORT/packages/web/2.json' \(HTTP 404\)"
H storage get packages/web/2.json "$T_ROOT/x" 2>/dev/null
t_is "exit status 1" "$?" 1
t_ok "no file created" test ! -e "$T_ROOT/x"
t_fail "check --key of a missing object fails" H storage check --key nope

t_fail "put is refused" H storage put "$T_ROOT/blob" packages/web/3.tar.zst
t_match "as read-only" "$(cat "$T_ROOT/last.out")" "storage handler 'http' is read-only"
t_fail "rm is refused" H storage rm packages/web/1.json
t_match "as read-only" "$(cat "$T_ROOT/last.out")" "storage handler 'http' is read-only"
t_ok "the object is still served" H storage get packages/web/1.json "$T_ROOT/y"
t_fail "ls is not supported" H storage ls
t_match "and says so" "$(cat "$T_ROOT/last.out")" "storage handler 'http' cannot list objects"

# Status mapping and redirects: a second server answers /status/NNN/... with
# that status, /moved/KEY with a redirect to KEY on the first server,
# /auth/KEY the same but only with the right basic credentials (else 401),
# /hdr/ with the Authorization header it got, /away/PATH with a redirect
# to PATH on the same server by another name (localhost), /file/ with a
# redirect to a file:// URL.
cat >"$T_ROOT/status.py" <<'PY'
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def answer(self, body):
        parts = self.path.split("/")
        data = b""
        auth = self.headers.get("Authorization")
        if parts[1] == "moved" or (parts[1] == "auth" and auth == sys.argv[2]):
            self.send_response(302)
            self.send_header("Location", sys.argv[1] + "/".join(parts[2:]))
        elif parts[1] == "auth":
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="upaas"')
        elif parts[1] == "hdr":
            self.send_response(200)
            data = (auth or "none").encode()
        elif parts[1] == "away":
            self.send_response(302)
            self.send_header("Location", "http://localhost:%d/%s" % (
                self.server.server_address[1], "/".join(parts[2:])))
        elif parts[1] == "file":
            self.send_response(302)
            self.send_header("Location", "file:///etc/passwd")
        else:
            self.send_response(int(parts[2]))
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)
    def do_GET(self): self.answer(True)
    def do_HEAD(self): self.answer(False)
    def log_message(self, *a): pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
print("port", s.server_address[1], flush=True)
s.serve_forever()
PY
PW='s3cret-Pa55word'
BASIC="Basic $(printf 'upaas:%s' "$PW" | base64 -w0)"
python3 -u "$T_ROOT/status.py" "http://127.0.0.1:$PORT/" "$BASIC" >"$T_ROOT/status.log" 2>&1 &
SPID=$!
trap 'rc=$?; stop_server; kill "$SPID" 2>/dev/null; (exit $rc); t_cleanup' EXIT
SPORT=
for _ in $(seq 100); do
	SPORT=$(sed -n 's/^port \([0-9]*\)$/\1/p' "$T_ROOT/status.log")
	[ -n "$SPORT" ] && break
	sleep 0.1
done
[ -n "$SPORT" ] || t_bail "status server did not start: $(cat "$T_ROOT/status.log")"
SCFG=$T_ROOT/status.cfg
sed "s|url = \"http://127.0.0.1:$PORT/\";|url = \"http://127.0.0.1:$SPORT/\";|" "$HCFG" >"$SCFG"
S() { UPAAS_CONFIG=$SCFG "$UPAAS" "$@"; }
t_fail "HTTP 403" S storage get status/403/x -
t_match "maps to access denied" "$(cat "$T_ROOT/last.out")" "access to '.*/status/403/x' denied \(HTTP 403\)"
t_fail "HTTP 500" S storage get status/500/x -
t_match "is an error with the status" "$(cat "$T_ROOT/last.out")" "GET '.*/status/500/x' failed: HTTP 500"
t_is "redirects are followed" "$(S storage get moved/packages/web/1.json -)" '{"id":1}'

# redirects go nowhere else
t_fail "a redirect to another host is refused" S storage get away/hdr/x -
t_match "naming both ends" "$(cat "$T_ROOT/last.out")" \
	"GET 'http://127.0.0.1:$SPORT/away/hdr/x' redirects to 'http://localhost:$SPORT/hdr/x': refused"
t_fail "a redirect to file:// is refused" S storage get file/x -
t_match "as well" "$(cat "$T_ROOT/last.out")" "redirects to 'file:///etc/passwd': refused"

# credentials in storage.url: sent to its host as basic auth, nowhere else
ACFG=$T_ROOT/auth.cfg
sed "s|url = \"http://127.0.0.1:$PORT/\";|url = \"http://upaas:$PW@127.0.0.1:$SPORT/\"; redirect_hosts = [ \"localhost\" ];|" \
	"$HCFG" >"$ACFG"
A() { UPAAS_CONFIG=$ACFG "$UPAAS" "$@"; }
t_is "basic credentials from storage.url open the door" "$(A storage get auth/packages/web/1.json -)" '{"id":1}'
t_is "in the request's header" "$(A storage get hdr/x -)" "$BASIC"
t_is "a redirect to a host of redirect_hosts is followed, without them" \
	"$(A storage get away/hdr/x -)" "none"
sed "s|upaas:$PW@|upaas:wrong-$PW@|" "$ACFG" >"$ACFG.bad"
t_fail "wrong credentials are refused" env UPAAS_CONFIG="$ACFG.bad" "$UPAAS" storage get auth/x -
t_match "as access denied, without the URL's userinfo" "$(cat "$T_ROOT/last.out")" \
	"access to 'http://127.0.0.1:$SPORT/auth/x' denied \(HTTP 401\)"
A storage check >"$T_ROOT/check.out" 2>&1
A config show >>"$T_ROOT/check.out" 2>&1
A storage get nope/404/x - >>"$T_ROOT/check.out" 2>&1
UPAAS_CONFIG="$ACFG.bad" "$UPAAS" storage get auth/x - >>"$T_ROOT/check.out" 2>&1
t_match "check, config show and errors name the storage" "$(cat "$T_ROOT/check.out")" "127.0.0.1:$SPORT"
t_is "but never the password" "$(grep -c -- "$PW" "$T_ROOT/check.out")" 0
kill "$SPID"

stop_server
t_fail "check fails when the server is down" H storage check
t_match "reading FAILED" "$(cat "$T_ROOT/last.out")" "^read +FAILED"
t_fail "get fails when the server is down" H storage get packages/web/1.json "$T_ROOT/z"

t_done
