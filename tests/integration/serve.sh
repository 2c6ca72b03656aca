#!/bin/bash
# tests/integration/serve.sh - `upaas serve` against a real queue, real
# workers and real builds: every API endpoint and error status (400, 401,
# 403, 404, 405, 409, 413, 429, 431), token scopes, live logs as
# Server-Sent Events, webhooks of GitHub, GitLab and Gitea in their own
# payload shapes (bad signature, replay, other branch, other event, other
# repository), a push building exactly the pushed commit, signed
# notifications of builds and deploys (one receiver down), static files
# (types, CSP, traversal), a slow client, SIGKILL mid-request and restart,
# SIGTERM; then a real browser (serve-browser.py). On SQLite, and the API
# and webhook part again on PostgreSQL when UPAAS_TEST_PG_URL is set.
. "$UPAAS_SRCDIR/tests/lib.sh"

for t in jq curl git; do command -v $t >/dev/null || t_skip_all "$t is not installed"; done
PY=/usr/bin/python3
[ -x $PY ] || PY=$(command -v python3) || t_skip_all "python3 is not installed"
CLIENT="$PY $UPAAS_SRCDIR/tests/integration/serve-client.py"
t_image || t_bail "cannot create the base image"

PIDS=()
s_cleanup() {
	local rc=$?
	for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
	wait 2>/dev/null
	(exit $rc)
	t_cleanup
}
trap s_cleanup EXIT

# app names are unique per run: storage is shared by every test of a run
SFX=$(printf '%s' "${T_ROOT##*.}" | tr 'A-Z' 'a-z')
WEB_DIR=$(cd "$UPAAS_SRCDIR/serve/web" && pwd -P)
free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

RECV_PORT=$(free_port)
DEAD_PORT=$(free_port)   # nothing listens there: a receiver that is down
NOTIFY_SECRET=notify-$RANDOM$RANDOM

write_cfg() {  # DIR QUEUE_URL PORT
	mkdir -p "$1"
	cat >"$1/upaas.cfg" <<CFG
paths = { workdir = "$1/work"; cache = "$UPAAS_TEST_SHARED/cache"; state = "$1/state"; };
storage = { handler = "local"; path = "$UPAAS_TEST_SHARED/storage"; };
queue = { url = "$2"; lease_seconds = 10; };
deploy = { root = "$1/srv"; hooks_dir = "$1/hooks"; };
interpreters = { shell = { any = { packages = []; }; }; };
signing = { key = "$T_KEY"; trusted = [ "$T_PUB" ]; };
serve = {
  listen = "127.0.0.1:$3";
  web_dir = "$WEB_DIR";
  limits = { max_body = "1M"; rate = 200; burst = 400; timeout = 3; };
  notify = {
    urls = [ "http://127.0.0.1:$DEAD_PORT/down", "http://127.0.0.1:$RECV_PORT/hook" ];
    secret = "$NOTIFY_SECRET";
    timeout = 2;
  };
};
CFG
	export UPAAS_CONFIG=$1/upaas.cfg
}

# A tiny app (no OS packages): its main action logs over a few seconds.
mk_app() {  # DIR
	mkdir -p "$1"
	cat >"$1/.upaas.cfg" <<'META'
interpreter = { type = "shell"; };
actions = {
  main = [ "echo main begins", "sleep 1.5", "echo main middle", "sleep 1.5", "echo main ends" ];
};
META
	git -C "$1" init -q -b main
	git -C "$1" add -A
	git -C "$1" -c user.name=t -c user.email=t@localhost commit -qm one
}
commit() {  # DIR: a new commit on the current branch; prints its id
	echo "$RANDOM" >"$1/change"
	git -C "$1" add -A
	git -C "$1" -c user.name=t -c user.email=t@localhost commit -qm change
	git -C "$1" rev-parse HEAD
}

start_serve() {  # LOG
	"$UPAAS" serve >>"$1" 2>&1 &
	SPID=$!
	PIDS+=("$SPID")
	for _ in $(seq 100); do
		curl -s -o /dev/null "$BASE/api/v1/whoami" && return 0
		sleep 0.05
	done
	return 1
}
start_worker() {  # LOG
	"$UPAAS" worker >>"$1" 2>&1 &
	WPID=$!
	PIDS+=("$WPID")
}

# status METHOD PATH [TOKEN [BODY]]: prints the HTTP status; the body goes to $T_ROOT/body
status() {
	local args=(-s -o "$T_ROOT/body" -w '%{http_code}' -X "$1" "$BASE$2")
	[ -n "${3:-}" ] && args+=(-H "Authorization: Bearer $3")
	[ -n "${4:-}" ] && args+=(-H 'Content-Type: application/json' --data-binary "$4")
	curl "${args[@]}"
}
get() { curl -sf -H "Authorization: Bearer $1" "$BASE$2"; }
post() { curl -s -X POST -H "Authorization: Bearer $1" -H 'Content-Type: application/json' --data-binary "${3:-{\}}" "$BASE$2"; }
body() { cat "$T_ROOT/body"; }
bstate() { get "$RT" "/api/v1/builds/$1" | jq -r .state; }
wait_state() {  # ID STATE SECONDS
	local end=$((SECONDS + $3))
	while [ $SECONDS -lt $end ]; do
		[ "$(bstate "$1")" = "$2" ] && return 0
		sleep 0.2
	done
	echo "build $1 is $(bstate "$1"), not $2" >&2
	return 1
}
nqueued() { get "$RT" "/api/v1/builds?state=queued" | jq length; }

# ------------------------------------------------------- the API, all of it
api_scenarios() {  # BACKEND
	local be=$1 s b id id2 rid
	t_diag "---- $be"
	RT=$("$UPAAS" token add "reader-$be" --scope read 2>/dev/null | tail -n1)
	BT=$("$UPAAS" token add "builder-$be" --scope build 2>/dev/null | tail -n1)
	AT=$("$UPAAS" token add "admin-$be" --scope admin 2>/dev/null | tail -n1)
	t_match "$be: token add prints the token alone on its last line" "$RT" '^upaas_[0-9a-f]{64}$'
	t_is "$be: token list shows three tokens" \
		"$("$UPAAS" token list --json | jq -r '[.[] | select(.name | endswith("-'"$be"'")) | .scope] | sort | join(",")')" \
		"admin,build,read"
	t_is "$be: the token is stored hashed" "$("$UPAAS" token list --json | grep -c upaas_)" 0

	# auth
	t_is "$be: no token: 401" "$(status GET /api/v1/apps)" 401
	t_match "$be: ... with a JSON error" "$(body | jq -r .error)" "token"
	t_is "$be: unknown token: 401" "$(status GET /api/v1/apps "upaas_$(printf '%064d' 0)")" 401
	t_is "$be: a read token reads" "$(status GET /api/v1/apps "$RT")" 200
	t_is "$be: whoami names the token" "$(get "$RT" /api/v1/whoami | jq -r '.name + " " + .scope')" \
		"reader-$be read"

	# apps
	local APP=web-$be-$SFX REPO=$T_ROOT/src/web-$be
	mk_app "$REPO"
	t_is "$be: a read token cannot add an app: 403" \
		"$(status POST /api/v1/apps "$RT" "{\"name\":\"$APP\",\"repo\":\"$REPO\"}")" 403
	t_is "$be: nor can a build token: 403" \
		"$(status POST /api/v1/apps "$BT" "{\"name\":\"$APP\",\"repo\":\"$REPO\"}")" 403
	t_is "$be: an admin token adds an app: 201" \
		"$(status POST /api/v1/apps "$AT" "{\"name\":\"$APP\",\"repo\":\"$REPO\",\"branch\":\"main\"}")" 201
	SECRET=$(body | jq -r .webhook_secret)
	t_match "$be: ... with a webhook secret" "$SECRET" '^[0-9a-f]{64}$'
	t_is "$be: app show --json shows the same secret" \
		"$("$UPAAS" app show --json "$APP" | jq -r .webhook_secret)" "$SECRET"
	t_is "$be: adding it again: 409" \
		"$(status POST /api/v1/apps "$AT" "{\"name\":\"$APP\",\"repo\":\"$REPO\"}")" 409
	t_is "$be: malformed JSON: 400" "$(status POST /api/v1/apps "$AT" '{"name": "x", ')" 400
	t_is "$be: a JSON array: 400" "$(status POST /api/v1/apps "$AT" '[1]')" 400
	t_is "$be: no repo: 400" "$(status POST /api/v1/apps "$AT" '{"name":"x1"}')" 400
	t_is "$be: a bad name: 400" "$(status POST /api/v1/apps "$AT" '{"name":"../x","repo":"/x"}')" 400
	t_is "$be: apps lists it" "$(get "$RT" /api/v1/apps | jq -r --arg a "$APP" '.[] | select(.name == $a) | .repo')" "$REPO"
	t_is "$be: a read token sees no secret" "$(get "$RT" "/api/v1/apps/$APP" | jq -r 'has("webhook_secret")')" false
	t_is "$be: an admin token does" "$(get "$AT" "/api/v1/apps/$APP" | jq -r .webhook_secret)" "$SECRET"
	t_is "$be: an unknown app: 404" "$(status GET /api/v1/apps/nope "$RT")" 404
	t_is "$be: an unknown endpoint: 404" "$(status GET /api/v1/nope "$RT")" 404
	t_is "$be: a wrong method: 405" "$(status PUT /api/v1/builds/x/cancel "$BT")" 405
	"$UPAAS" app add "gone-$be-$SFX" --repo /nonexistent >/dev/null
	t_is "$be: a read token cannot remove an app: 403" "$(status DELETE "/api/v1/apps/gone-$be-$SFX" "$RT")" 403
	t_is "$be: an admin token removes it" "$(status DELETE "/api/v1/apps/gone-$be-$SFX" "$AT")" 200
	t_is "$be: ... and it is gone" "$(status GET "/api/v1/apps/gone-$be-$SFX" "$RT")" 404

	# builds
	t_is "$be: a read token cannot queue a build: 403" \
		"$(status POST /api/v1/builds "$RT" "{\"app\":\"$APP\"}")" 403
	t_is "$be: ... and nothing was queued" "$(nqueued)" 0
	t_is "$be: a build token queues one: 202" "$(status POST /api/v1/builds "$BT" "{\"app\":\"$APP\",\"ref\":\"r1\"}")" 202
	id=$(body | jq -r .id)
	t_is "$be: ... queued" "$(body | jq -r '.state + " " + .ref')" "queued r1"
	t_is "$be: the same request joins it" "$(post "$BT" /api/v1/builds "{\"app\":\"$APP\",\"ref\":\"r1\",\"fresh\":true}" | jq -r '.id + " " + (.coalesced | tostring) + " " + (.fresh | tostring)')" \
		"$id true true"
	t_is "$be: an unknown app: 404" "$(status POST /api/v1/builds "$BT" '{"app":"nope"}')" 404
	t_is "$be: malformed JSON: 400" "$(status POST /api/v1/builds "$BT" '{"app":')" 400
	t_is "$be: a ref like an option: 400" "$(status POST /api/v1/builds "$BT" "{\"app\":\"$APP\",\"ref\":\"--upload-pack=x\"}")" 400
	t_is "$be: a field of the wrong type: 400" "$(status POST /api/v1/builds "$BT" "{\"app\":\"$APP\",\"fresh\":\"yes\"}")" 400
	t_is "$be: builds by app and state" "$(get "$RT" "/api/v1/builds?app=$APP&state=queued" | jq -r '.[0].id')" "$id"
	t_is "$be: a bad state: 400" "$(status GET "/api/v1/builds?state=happy" "$RT")" 400
	t_is "$be: a bad limit: 400" "$(status GET "/api/v1/builds?limit=0" "$RT")" 400
	t_is "$be: build show" "$(get "$RT" "/api/v1/builds/$id" | jq -r .app)" "$APP"
	t_is "$be: ... the object of queue show --json" \
		"$(get "$RT" "/api/v1/builds/$id" | jq -c 'del(.log_url)')" \
		"$("$UPAAS" queue show --json "$id" | jq -c 'del(.log)')"
	t_is "$be: an unknown build: 404" "$(status GET /api/v1/builds/nope "$RT")" 404
	t_is "$be: a queued build has no log yet: 404" "$(status GET "/api/v1/builds/$id/log" "$RT")" 404
	t_is "$be: retry of a queued build: 409" "$(status POST "/api/v1/builds/$id/retry" "$BT")" 409
	t_is "$be: a read token cannot cancel: 403" "$(status POST "/api/v1/builds/$id/cancel" "$RT")" 403
	t_is "$be: cancel" "$(status POST "/api/v1/builds/$id/cancel" "$BT")" 200
	t_is "$be: ... cancelled" "$(body | jq -r .state)" cancelled
	t_is "$be: cancel again: 409" "$(status POST "/api/v1/builds/$id/cancel" "$BT")" 409
	t_is "$be: retry: 202" "$(status POST "/api/v1/builds/$id/retry" "$BT")" 202
	rid=$(body | jq -r .id)
	[ "$rid" != "$id" ] && t_pass "$be: ... a new build" || t_not "$be: ... a new build"
	post "$BT" "/api/v1/builds/$rid/cancel" >/dev/null
	t_is "$be: hosts: none reports the app yet" \
		"$(get "$RT" "/api/v1/hosts?app=$APP" | jq -c '[.drift, [.apps[].hosts[]]]')" "[0,[]]"
	t_is "$be: hosts: a bad app name: 400" "$(status GET "/api/v1/hosts?app=..x" "$RT")" 400
	t_is "$be: no packages yet" "$(get "$RT" "/api/v1/apps/$APP/packages")" "[]"
	t_is "$be: no current package: 404" "$(status GET "/api/v1/apps/$APP/packages/current" "$RT")" 404

	# ---------------------------------------------------------- webhooks
	local c1 f r n0 dl
	c1=$(git -C "$REPO" rev-parse HEAD)
	for f in github gitlab gitea; do
		local ev=push; [ $f = gitlab ] && ev="Push Hook"
		dl="$f-$be-$RANDOM$RANDOM"
		n0=$(nqueued)
		r=$($CLIENT hook $f "$BASE" - "$SECRET" "$ev" "$dl" "$REPO" refs/heads/main "$c1" --bad-sig)
		t_match "$be: $f: a wrong signature: 401" "$r" '^401 '
		t_is "$be: $f: ... nothing queued" "$(nqueued)" "$n0"
		r=$($CLIENT hook $f "$BASE" "$APP" "$SECRET" "$ev" "$dl" "$T_ROOT/src/other" refs/heads/main "$c1")
		t_match "$be: $f: another repository: 403" "$r" '^403 '
		r=$($CLIENT hook $f "$BASE" "$APP" "$SECRET" "$ev" "$dl-x" "$REPO" refs/heads/main "$c1" --raw '{"ref": ')
		t_match "$be: $f: malformed JSON: 400" "$r" '^400 '
		r=$($CLIENT hook $f "$BASE" - "$SECRET" "$ev" "$dl" "$REPO" refs/heads/main "$c1")
		t_match "$be: $f: a push to the app's branch: 202" "$r" '^202 '
		t_is "$be: $f: ... queues that exact commit" "$(get "$RT" "/api/v1/builds/$(jq -r '.queued[0].id' <<<"${r#* }")" | jq -r .ref)" "$c1"
		r=$($CLIENT hook $f "$BASE" - "$SECRET" "$ev" "$dl" "$REPO" refs/heads/main "$c1")
		t_match "$be: $f: the same delivery again: 409" "$r" '^409 '
		t_is "$be: $f: ... nothing more queued" "$(nqueued)" "$((n0 + 1))"
		r=$($CLIENT hook $f "$BASE" "$APP" "$SECRET" "$ev" "$dl-2" "$REPO" refs/heads/main "$c1")
		t_match "$be: $f: another delivery of the commit joins the build" "$r" '"coalesced":true'
		r=$($CLIENT hook $f "$BASE" "$APP" "$SECRET" "$ev" "$dl-3" "$REPO" refs/heads/other "$c1")
		t_match "$be: $f: a push to another branch is ignored: 200" "$r" '^200 .*ignored'
		r=$($CLIENT hook $f "$BASE" "$APP" "$SECRET" "$ev" "$dl-4" "$REPO" refs/tags/v1 "$c1")
		t_match "$be: $f: a tag is ignored: 200" "$r" '^200 .*ignored'
		local other=issues; [ $f = gitlab ] && other="Issue Hook"
		r=$($CLIENT hook $f "$BASE" "$APP" "$SECRET" "$other" "$dl-5" "$REPO" refs/heads/main "$c1")
		t_match "$be: $f: another event is ignored: 200" "$r" '^200 .*ignored'
		t_is "$be: $f: ... nothing more queued" "$(nqueued)" "$((n0 + 1))"
		r=$($CLIENT hook $f "$BASE" "nope" "$SECRET" "$ev" "$dl-6" "$REPO" refs/heads/main "$c1")
		t_match "$be: $f: an unknown app: 404" "$r" '^404 '
		# leave the queue empty for the next forge
		for b in $(get "$RT" "/api/v1/builds?state=queued" | jq -r '.[].id'); do
			post "$BT" "/api/v1/builds/$b/cancel" >/dev/null
		done
	done
	"$UPAAS" app add "$APP" --repo "$REPO" --branch main --replace --new-secret >/dev/null
	r=$($CLIENT hook github "$BASE" "$APP" "$SECRET" push "rot-$be" "$REPO" refs/heads/main "$c1")
	t_match "$be: after app add --new-secret the old secret is refused" "$r" '^401 '
	SECRET=$("$UPAAS" app show --json "$APP" | jq -r .webhook_secret)
}

# ---------------------------------------------------------------- SQLite
D=$T_ROOT/sqlite
PORT=$(free_port)
BASE=http://127.0.0.1:$PORT
write_cfg "$D" "sqlite://$D/state/upaas.db" "$PORT"
$CLIENT receiver "$RECV_PORT" "$T_ROOT/events" "$NOTIFY_SECRET" &
PIDS+=($!)
start_serve "$D/serve.log" || { cat "$D/serve.log"; t_bail "upaas serve does not start"; }
t_pass "sqlite: upaas serve starts"
t_match "sqlite: ... and says where it listens" "$(cat "$D/serve.log")" "listening on http://127.0.0.1:$PORT/"
t_match "config show masks the notification secret" "$("$UPAAS" config show | grep -A3 'notify = {')" 'secret = "\*{8}"'
t_fail "... and never prints it" bash -c '"$UPAAS" config show | grep -q "$1"' _ "$NOTIFY_SECRET"
api_scenarios sqlite
APP=web-sqlite-$SFX REPO=$T_ROOT/src/web-sqlite

# --------------------------------------------- limits and hostile clients
t_is "a 10 MB body: 413" "$(head -c 10485760 /dev/zero | curl -s -o /dev/null -w '%{http_code}' \
	-H "Authorization: Bearer $BT" -H 'Content-Type: application/json' --data-binary @- "$BASE/api/v1/builds")" 413
t_is "... and nothing was queued" "$(nqueued)" 0
t_is "a 100 KB header: 431" "$(curl -s -o /dev/null -w '%{http_code}' -H "X-Big: $(head -c 100000 /dev/zero | tr '\0' a)" "$BASE/api/v1/whoami")" 431
r=$($CLIENT burst "$BASE" "$RT" 5000)
t_match "requests as fast as one client can: 429 once its burst is spent" "$r" '^200:[0-9]+ 429:10$'
n200=${r%% *}
t_ok "... which took more than the burst allowance (${n200#200:})" test "${n200#200:}" -ge 400
sleep 2.5   # the bucket refills
t_is "the server still serves after the burst" "$(status GET /api/v1/whoami "$RT")" 200
t_match "a client that sends half a request is cut off (timeout 3 s)" "$($CLIENT slow 127.0.0.1 "$PORT" 10)" '^closed [3-6]'

# ------------------------------------------------------------ static files
hdr=$(curl -s -D - -o "$T_ROOT/index" "$BASE/")
t_match "the dashboard: / is HTML" "$hdr" 'Content-Type: text/html; charset=utf-8'
t_match "... with a CSP" "$hdr" "Content-Security-Policy: default-src 'none'; script-src 'self'"
t_match "... nosniff" "$hdr" 'X-Content-Type-Options: nosniff'
t_match "... revalidated by ETag" "$hdr" 'Cache-Control: no-cache'
etag=$(sed -n 's/^ETag: //Ip' <<<"$hdr" | tr -d '\r')
t_is "... an unchanged file: 304" "$(curl -s -o /dev/null -w '%{http_code}' -H "If-None-Match: $etag" "$BASE/")" 304
t_match "app.js is JavaScript" "$(curl -s -D - -o /dev/null "$BASE/app.js")" 'Content-Type: text/javascript'
t_match "app.css is CSS" "$(curl -s -D - -o /dev/null "$BASE/app.css")" 'Content-Type: text/css'
t_is "no traversal: /../upaas.cfg" "$(curl -s --path-as-is -o /dev/null -w '%{http_code}' "$BASE/../upaas.cfg")" 404
t_is "no traversal: /%2e%2e/%2e%2e/etc/passwd" "$(curl -s --path-as-is -o /dev/null -w '%{http_code}' "$BASE/%2e%2e/%2e%2e/etc/passwd")" 404
t_is "no hidden files" "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/.git")" 404
t_is "no unknown types" "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/upaas.cfg")" 404

# ------------------------------ real builds: webhook, live log, notifications
start_worker "$D/worker.log"
sleep 0.5   # the worker is idle, polling
c2=$(commit "$REPO")
r=$($CLIENT hook github "$BASE" "$APP" "$SECRET" push "live-1" "$REPO" refs/heads/main "$c2")
t_match "a push of a new commit queues it" "$r" '^202 '
id=$(jq -r '.queued[0].id' <<<"${r#* }")
$CLIENT sse "$BASE" "$RT" "$id" "$T_ROOT/sse" &
SSE=$!
t_ok "an idle worker builds it" wait_state "$id" succeeded 120
wait "$SSE"
B=$(get "$RT" "/api/v1/builds/$id")
lat=$(jq '.started_at_ms - .queued_at_ms' <<<"$B")
t_diag "webhook to build start: $lat ms"
# bench/serve.sh measures the latency; this only checks that the push wakes
# the idle worker rather than its next long poll
[ "$lat" -lt 5000 ] && t_pass "the build started within 5 s of the webhook ($lat ms)" ||
	t_not "the build started within 5 s of the webhook ($lat ms)"
t_is "the package is of the pushed commit" \
	"$(get "$RT" "/api/v1/apps/$APP/packages/current" | jq -r '.repository | .commit + " " + .ref')" "$c2 $c2"
t_is "live log: an event stream" "$(head -n1 "$T_ROOT/sse" | jq -r '(.status|tostring) + " " + .type')" \
	"200 text/event-stream; charset=utf-8"
t_match "live log: state events" "$(jq -r 'select(.event == "state") | .data[0] | fromjson | .state' "$T_ROOT/sse" | tr '\n' ' ')" \
	"running succeeded"
t_is "live log: ends with the build" "$(tail -n1 "$T_ROOT/sse" | jq -r '.event + " " + (.data[0] | fromjson | .state)')" "end succeeded"
t_ok "live log: every line of the log" bash -c 'diff <(jq -r "select(.event == \"message\") | .data[]" "$1") <(curl -sf -H "Authorization: Bearer $2" "$3")' \
	_ "$T_ROOT/sse" "$RT" "$BASE/api/v1/builds/$id/log"
# the app's own output lines, not upaas's "--- main: command 'echo ...'"
tb=$(jq -rs '[.[] | select(.event == "message") | select(any(.data[]; test("Z main begins$"))) | .t] | first' "$T_ROOT/sse")
te=$(jq -rs '[.[] | select(.event == "message") | select(any(.data[]; test("Z main ends$"))) | .t] | first' "$T_ROOT/sse")
t_ok "live log: lines arrive as they are written ($tb s, then $te s)" \
	$PY -c "import sys; sys.exit(0 if float('$te') - float('$tb') > 2 else 1)"
t_ok "live log: resumes from an offset" bash -c '[ "$(curl -s -N -H "Authorization: Bearer $1" "$2?follow=1&offset=$(( $(wc -c < "$3") - 10 ))" | grep "^data: [^{]")" = "data: succeeded" ]' \
	_ "$RT" "$BASE/api/v1/builds/$id/log" "$D/state/logs/$id.log"
P=$(get "$RT" "/api/v1/apps/$APP/packages")
t_is "packages: one, current" "$(jq -r '.[0].current' <<<"$P")" true
# (but for own_size: what a package added to its app's storage needs a
# listing of all of storage, which the API does not pay per request)
t_is "... the object of package list --json" "$(jq -c . <<<"$P")" \
	"$("$UPAAS" package list --json "$APP" | jq -c 'map(del(.own_size))')"
pid=$(jq -r '.[0].id' <<<"$P")
t_is "package show" "$(get "$RT" "/api/v1/apps/$APP/packages/$pid" | jq -r .id)" "$pid"
t_is "an unknown package: 404" "$(status GET "/api/v1/apps/$APP/packages/20200101T000000Z-0000000" "$RT")" 404
t_is "current" "$(get "$RT" "/api/v1/apps/$APP/current" | jq -r .current)" "$pid"
for _ in $(seq 50); do grep -q build.succeeded "$T_ROOT/events" 2>/dev/null && break; sleep 0.2; done
t_is "a notification of the build's end, signed" \
	"$(jq -r --arg id "$id" 'select(.body.build.id == $id) | .event + " " + (.signed|tostring)' "$T_ROOT/events" 2>/dev/null)" "build.succeeded true"
t_match "the receiver that is down did not hold up the build" \
	"$(jq -r '.finished_at_ms - .started_at_ms' <<<"$(get "$RT" "/api/v1/builds/$id")")" '^[0-9]{1,5}$'
t_match "... its event waits in the outbox for a retry" "$(cat "$D/serve.log")" "cannot notify http://127.0.0.1:$DEAD_PORT/down of build.succeeded"
t_ok "deploy the package on this host" "$UPAAS" deploy "$APP"
for _ in $(seq 50); do grep -q '"deploy"' "$T_ROOT/events" 2>/dev/null && break; sleep 0.2; done
t_is "a notification of the deploy, signed, sent by the deploy host" \
	"$(jq -r 'select(.event == "deploy") | .body.deploy.app + " " + .body.deploy.id + " " + (.signed|tostring)' "$T_ROOT/events")" "$APP $pid true"

# ---------------------------------------------------------- a real browser
# It clicks Build with no worker running (so that it sees the build
# queued), then runs `upaas worker --once` itself.
kill "$WPID"; wait "$WPID" 2>/dev/null
if $PY -c 'import selenium' 2>/dev/null && command -v chromedriver >/dev/null; then
	ART=$UPAAS_BUILDDIR/tests/artifacts
	mkdir -p "$ART"
	t_ok "a browser signs in, opens the app, clicks Build and watches it succeed live" \
		$PY "$UPAAS_SRCDIR/tests/integration/serve-browser.py" "$BASE" "$BT" "$APP" "$ART"
	t_diag "$(cat "$T_ROOT/last.out")"
else
	t_not "a real browser (apt-get install chromium chromium-driver python3-selenium)"
fi

# --------------------------------------------- SIGKILL mid-request, SIGTERM
n_apps=$(get "$RT" /api/v1/apps | jq length)
n_builds=$(get "$RT" "/api/v1/builds?limit=1000" | jq length)
qid=$(post "$BT" /api/v1/builds "{\"app\":\"$APP\",\"ref\":\"r-kill\"}" | jq -r .id)
head -c 500000 /dev/zero | curl -s -o /dev/null --limit-rate 50k -X POST -H "Authorization: Bearer $AT" \
	-H 'Content-Type: application/json' --data-binary @- "$BASE/api/v1/apps" &
CURL=$!
$CLIENT sse "$BASE" "$RT" "$qid" "$T_ROOT/sse-kill" &
SSE=$!
sleep 1
kill -9 "$SPID"
wait "$CURL" "$SSE" 2>/dev/null
t_ok "upaas serve restarts after SIGKILL mid-request" start_serve "$D/serve.log"
t_is "... the apps are all there" "$(get "$RT" /api/v1/apps | jq length)" "$n_apps"
t_is "... the builds are all there, the last one queued" "$(get "$RT" "/api/v1/builds?limit=1000" | jq length) $(bstate "$qid")" \
	"$((n_builds + 1)) queued"
$CLIENT sse "$BASE" "$RT" "$qid" "$T_ROOT/sse-term" &
SSE=$!
sleep 0.5
kill -TERM "$SPID"
t0=$SECONDS
wait "$SPID"
t_is "SIGTERM stops upaas serve with 0" "$?" 0
[ $((SECONDS - t0)) -le 6 ] && t_pass "... within the grace period" || t_not "... within the grace period"
wait "$SSE"
t_is "... and ends the live streams it had (before the build's end)" "$(tail -n1 "$T_ROOT/sse-term" | jq -r '.event + " " + (.data[0] | fromjson | .state)')" "state queued"
t_match "... saying so" "$(cat "$D/serve.log")" "Terminated: stopping"

# ------------------------------------------------------------ PostgreSQL
if [ -n "${UPAAS_TEST_PG_URL:-}" ]; then
	psql -q "$UPAAS_TEST_PG_URL" -c 'DROP TABLE IF EXISTS builds, apps, schema_version, tokens, hook_deliveries, notify_outbox' >/dev/null 2>&1
	D=$T_ROOT/pg
	PORT=$(free_port)
	BASE=http://127.0.0.1:$PORT
	write_cfg "$D" "$UPAAS_TEST_PG_URL" "$PORT"
	t_ok "postgresql: upaas serve starts" start_serve "$D/serve.log"
	api_scenarios postgresql
	start_worker "$D/worker.log"
	sleep 0.5
	c3=$(commit "$T_ROOT/src/web-postgresql")
	r=$($CLIENT hook gitea "$BASE" "web-postgresql-$SFX" "$SECRET" push "pg-live" "$T_ROOT/src/web-postgresql" refs/heads/main "$c3")
	id=$(jq -r '.queued[0].id' <<<"${r#* }")
	t_ok "postgresql: a pushed commit is built" wait_state "$id" succeeded 120
	lat=$(get "$RT" "/api/v1/builds/$id" | jq '.started_at_ms - .queued_at_ms')
	t_diag "postgresql: webhook to build start: $lat ms"
	kill -TERM "$SPID"
	wait "$SPID"
	t_is "postgresql: SIGTERM stops upaas serve with 0" "$?" 0
	kill "$WPID"; wait "$WPID" 2>/dev/null
else
	t_diag "postgresql: not tested (set UPAAS_TEST_PG_URL, see tests/pg.sh)"
fi

t_done
