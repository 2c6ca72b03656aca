#!/bin/bash
# tests/integration/fleet-report.sh - host reports and `upaas fleet status`
# on local storage, with two deploy roots standing for two hosts (web1,
# web2: each its own admin config and deploy.host_name): reports after
# deploy, rollback, undeploy and a failed deploy; behind, failed, silent
# and undeployed in the view and its exit status; watch's first-round
# reports, its heartbeat and its conditional reads (one download, then
# "not modified"); deploy.report = false; a bad deploy.host_name; fleet
# forget. Packages are made by hand: no build, no base image.
. "${UPAAS_SRCDIR:?run through make check}/tests/lib.sh" || exit 99
. "$UPAAS_SRCDIR/tests/integration/deploy-lib.sh" || exit 99

command -v jq >/dev/null || t_skip_all "jq is not installed"
chmod 755 "$T_ROOT"
# a storage of our own: the view covers everything under hosts/
D_STORAGE=$T_ROOT/storage
BG=
trap 'rc=$?; [ -z "$BG" ] || kill -9 $BG 2>/dev/null; (exit $rc); t_cleanup' EXIT

# host_cfg NAME [EXTRA]: the admin config of one "host"
host_cfg() {
	mkdir -p "$T_ROOT/$1"
	cat >"$T_ROOT/$1/upaas.cfg" <<CFG
paths = { workdir = "$T_ROOT/$1/work"; cache = "$T_ROOT/$1/cache"; state = "$T_ROOT/$1/state"; };
storage = { handler = "local"; path = "$D_STORAGE"; };
signing = { trusted = [ "$T_PUB" ]; };
sandbox = { uid_base = $T_SANDBOX_BASE; };
deploy = {
  root = "$T_ROOT/$1/srv";
  hooks_dir = "$T_ROOT/hooks";
  host_name = "$1";
  ${2:-}
};
CFG
}
host_cfg web1
host_cfg web2
U1() { "$UPAAS" -c "$T_ROOT/web1/upaas.cfg" "$@"; }
U2() { "$UPAAS" -c "$T_ROOT/web2/upaas.cfg" "$@"; }
report() { jq -r "$2" "$D_STORAGE/hosts/$1/$APP.json"; }
status_json() { U1 fleet status --json "$@"; }

APP=$(d_app fleet)
tree() {
	rm -rf "$T_ROOT/tree"
	mkdir -p "$T_ROOT/tree/home/app"
	echo "$1" >"$T_ROOT/tree/home/app/version"
}
P1=20260101T000000Z-0001
P2=20260102T000000Z-0002
P3=20260103T000000Z-0003
tree one && hand_package "$APP" $P1 "$T_ROOT/tree" || t_bail "cannot make a package"
tree two && hand_package "$APP" $P2 "$T_ROOT/tree" || t_bail "cannot make a package"
tree three && hand_package "$APP" $P3 "$T_ROOT/tree" || t_bail "cannot make a package"
# P3 is broken: its blob does not match the manifest
printf 'X' | dd of="$D_STORAGE/packages/$APP/$P3.tar.zst" bs=1 seek=100 conv=notrunc status=none
set_current "$APP" $P1

# ------------------------------------------------------------- nothing yet
t_is "no report yet: exit 0" "$(U1 fleet status >/dev/null; echo $?)" 0
t_match "... and says so" "$(U1 fleet status)" "no deploy host has reported yet"

# ------------------------------------------------------------- deploys
t_ok "web1 deploys" U1 deploy "$APP"
t_ok "web2 deploys" U2 deploy "$APP"
t_is "web1's report: host, app, current, result" \
	"$(report web1 '[.format, .host, .app, .current, .operation, .package, .result, .error] | @tsv')" \
	"$(printf '1\tweb1\t%s\t%s\tinstall\t%s\tok\t' "$APP" $P1 $P1)"
t_is "... its revisions and version" "$(report web1 '[.revisions[], .upaas_version] | @tsv')" \
	"$(printf '%s\t%s' $P1 "$("$UPAAS" --version | head -n 1 | awk '{print $2}')")"
t_match "... its time is now" "$(report web1 .time)" "^$(date -u +%Y-%m-%dT%H):"
t_ok "fleet status: everyone runs the current: exit 0" U1 fleet status
t_match "... the table shows web2 current" "$(cat "$T_ROOT/last.out")" \
	"web2 +$P1 +current"
t_match "... and the summary" "$(cat "$T_ROOT/last.out")" "2 hosts, 1 app: 2 current, 0 drifting"
t_is "--json: app, current, states" \
	"$(status_json | jq -c '[.drift, .apps[0].app, .apps[0].current, [.apps[0].hosts[] | [.host, .state, .runs]]]')" \
	"[0,\"$APP\",\"$P1\",[[\"web1\",\"current\",\"$P1\"],[\"web2\",\"current\",\"$P1\"]]]"
t_is "--json for one app" "$(status_json "$APP" | jq -c '[.apps[].app]')" "[\"$APP\"]"
t_is "--json for an app nobody runs" \
	"$(status_json nobody-runs-it | jq -c '[.drift, .apps[0].app, .apps[0].hosts]')" \
	'[0,"nobody-runs-it",[]]'

# ------------------------------------------------------------- behind
set_current "$APP" $P2
t_is "a new current: both behind, exit 1" "$(U1 fleet status >/dev/null; echo $?)" 1
t_is "... --json says behind twice" \
	"$(status_json | jq -c '[.drift, [.apps[0].hosts[] | .state]]')" '[2,["behind","behind"]]'
t_ok "web1 deploys it" U1 deploy "$APP"
t_is "... web1 current, web2 still behind" \
	"$(status_json | jq -c '[.apps[0].hosts[] | .state]')" '["current","behind"]'
t_is "... web1's report has the previous" "$(report web1 '[.current, .previous, .operation] | @tsv')" \
	"$(printf '%s\t%s\tupgrade' $P2 $P1)"

# ------------------------------------------------------------- failed
set_current "$APP" $P3
t_fail "web2's deploy of a tampered package fails" U2 deploy "$APP"
t_is "web2's report: failed, still on P1" \
	"$(report web2 '[.result, .current, .package] | @tsv')" "$(printf 'failed\t%s\t%s' $P1 $P3)"
t_match "... with the error" "$(report web2 .error)" "failed verification: .*sha256"
out=$(U1 fleet status)
t_match "fleet status shows the failure" "$out" "web2 +$P1 +failed"
t_match "... and its error" "$out" "failed verification: .*sha256"
t_is "... exit 1" "$(U1 fleet status >/dev/null; echo $?)" 1

# ------------------------------------------------------------- rollback
set_current "$APP" $P1
t_ok "web1 rolls back" U1 rollback "$APP"
t_is "web1's report: rollback to P1" "$(report web1 '[.operation, .current, .result] | @tsv')" \
	"$(printf 'rollback\t%s\tok' $P1)"
t_is "... the view: web1 current, web2 failed" \
	"$(status_json | jq -c '[.apps[0].hosts[] | .state]')" '["current","failed"]'

# ------------------------------------------------------------- undeploy
t_ok "web2 undeploys" U2 undeploy "$APP"
t_is "web2's report: nothing runs, undeploy ok" \
	"$(report web2 '[.current, .operation, .package, .result] | @tsv')" \
	"$(printf '\tundeploy\t%s\tok' $P1)"
t_is "... the view: undeployed is no drift" \
	"$(status_json | jq -c '[.drift, [.apps[0].hosts[] | .state]]')" '[0,["current","undeployed"]]'
t_ok "... exit 0" U1 fleet status

# ------------------------------------------------------------- watch
# web2 watches: its first round deploys P1 and reports; the heartbeat
# lists what it runs
t_ok "web2: watch --once deploys the current" U2 watch --once "$APP"
t_is "... reported" "$(report web2 '[.current, .operation, .result] | @tsv')" \
	"$(printf '%s\tinstall\tok' $P1)"
t_is "... its heartbeat" \
	"$(jq -c '[.format, .host, .apps["'"$APP"'"]]' "$D_STORAGE/hosts/web2/_host.json")" \
	"[1,\"web2\",\"$P1\"]"
t_is "the view: web2 watches" \
	"$(status_json | jq -c '[.hosts[] | [.host, .watching]]')" '[["web1",false],["web2",true]]'
sleep 2
t_is "silent for more than 1 s: exit 1" "$(U1 fleet status --silent-after 1 >/dev/null; echo $?)" 1
t_is "... web2 silent, web1 (which does not watch) not" \
	"$(status_json --silent-after 1 | jq -c '[.apps[0].hosts[] | .state]')" '["current","silent"]'
t_fail "--silent-after wants seconds" U1 fleet status --silent-after soon

# watch polls with conditional reads: the first round downloads the
# current, the others find it unchanged
"$UPAAS" -c "$T_ROOT/web2/upaas.cfg" -vv watch --interval 1 --jitter 0 "$APP" \
	>"$T_ROOT/watch.log" 2>&1 &
BG=$!
sleep 4.5
kill -TERM $BG
wait $BG
t_is "watch stops on SIGTERM with status 0" "$?" 0
BG=
rounds=$(grep -c "watch: round" "$T_ROOT/watch.log")
[ "$rounds" -ge 3 ] && t_pass "watch ran $rounds rounds in 4.5 s (--interval 1)" ||
	t_not "watch ran $rounds rounds in 4.5 s (--interval 1)"
t_is "... current was not modified in every round but the first" \
	"$(grep -c "is not modified" "$T_ROOT/watch.log")" $((rounds - 1))
# two writes in the first round (the report, the heartbeat), none since;
# one look for apps/_index (there is none: no build wrote one), none since
t_match "... the last round's storage line: one GET downloaded" \
	"$(grep "watch: round $rounds," "$T_ROOT/watch.log")" \
	"storage: $((rounds + 3)) requests \($((rounds + 1)) GET, $((rounds - 1)) not modified, 2 PUT\)"
t_match "... and a summary when it stops" "$(tail -n 3 "$T_ROOT/watch.log")" \
	"watch: stopped: [0-9]+ storage requests in"

# a changed current is seen at once (a new ETag)
set_current "$APP" $P2
t_ok "watch --once deploys the new current" U2 watch --once "$APP"
t_is "... reported" "$(report web2 .current)" $P2

# ------------------------------------------------------------- the index
# apps/_index, made from the currents by a host with the signing key (a
# build updates it after each current it writes); an idle watcher reads
# it alone, conditionally, whatever the number of apps it watches
sed "s|signing = { trusted|signing = { key = \"$T_KEY\"; trusted|" "$T_ROOT/web1/upaas.cfg" \
	>"$T_ROOT/signer.cfg"
US() { "$UPAAS" -c "$T_ROOT/signer.cfg" "$@"; }
APP2=$(d_app fleet)
tree one && hand_package "$APP2" $P1 "$T_ROOT/tree" &&
	tree two && hand_package "$APP2" $P2 "$T_ROOT/tree" && set_current "$APP2" $P2 ||
	t_bail "cannot make a package"
t_ok "package index --rebuild" US package index --rebuild
t_is "... lists both apps, signed" \
	"$(U1 package index --json | jq -c --arg a "$APP" --arg b "$APP2" '[.apps[$a].id, .apps[$b].id, .kind]')" \
	"[\"$P2\",\"$P2\",\"index\"]"
t_match "... the table" "$(U2 package index)" "2 apps, signed by key"
"$UPAAS" -c "$T_ROOT/web2/upaas.cfg" -vv watch --interval 1 --jitter 0 "$APP" "$APP2" \
	>"$T_ROOT/watch2.log" 2>&1 &
BG=$!
# reqs N: the requests of the watcher's first N rounds
reqs() { grep -o "watch: round $1, .*requests" "$T_ROOT/watch2.log" | grep -o '[0-9]* requests$' |
	cut -d' ' -f1; }
for _ in $(seq 100); do grep -q "watch: round 4," "$T_ROOT/watch2.log" && break; sleep 0.1; done
t_is "after the first round, one request a round for two apps" "$(( $(reqs 4) - $(reqs 1) ))" 3
t_is "... the index was not modified" \
	"$(grep -c "'apps/_index' is not modified" "$T_ROOT/watch2.log")" 3
t_is "... both apps deployed in the first round" "$(report web2 .current)" $P2
# a new current, then the index (as a build does): the running watcher
# reads that app's current and deploys it
set_current "$APP2" $P1
t_ok "... the index made again" US package index --rebuild
for _ in $(seq 100); do
	[ "$(jq -r .current "$D_STORAGE/hosts/web2/$APP2.json")" = $P1 ] && break
	sleep 0.1
done
t_is "... the watcher deployed the app the index names anew" \
	"$(jq -r .current "$D_STORAGE/hosts/web2/$APP2.json")" $P1
kill -TERM $BG
wait $BG
BG=
t_is "... and read no other current after its first round" \
	"$(grep -c "'apps/$APP/current' is not modified" "$T_ROOT/watch2.log")" 0
printf '{"format":1,"kind":"index","apps":{}}' >"$D_STORAGE/apps/_index"
t_fail "an unsigned index is refused" U1 package index
t_match "... saying so" "$(cat "$T_ROOT/last.out")" "unsigned|signature"
"$UPAAS" -c "$T_ROOT/web2/upaas.cfg" -vv watch --interval 1 --jitter 0 "$APP" "$APP2" \
	>"$T_ROOT/watch3.log" 2>&1 &
BG=$!
for _ in $(seq 100); do grep -q "watch: round 3," "$T_ROOT/watch3.log" && break; sleep 0.1; done
kill -TERM $BG
wait $BG
BG=
t_is "watch: a refused index is said once, then each current is read (3 rounds)" \
	"$(grep -c "warning: .*_index.*every app is read by itself" "$T_ROOT/watch3.log") $(grep -c "is not modified (refused before)" "$T_ROOT/watch3.log") $(grep -c "'apps/$APP/current' is not modified" "$T_ROOT/watch3.log")" \
	"1 2 2"

# ------------------------------------------------------------- the web API
# upaas serve's /api/v1/hosts serves the view of fleet status --json
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
host_cfg web9 "};
serve = { listen = \"127.0.0.1:$PORT\"; anonymous_read = true; "
"$UPAAS" -c "$T_ROOT/web9/upaas.cfg" serve >"$T_ROOT/serve.log" 2>&1 &
BG=$!
for _ in $(seq 100); do
	curl -s -o /dev/null "http://127.0.0.1:$PORT/api/v1/whoami" && break
	sleep 0.05
done
# the times move: compare what does not
view() { jq -c 'del(.time) | .apps[].hosts[] |= del(.seconds_since_seen) |
	.hosts[] |= del(.seconds_since_seen)'; }
t_is "GET /api/v1/hosts is the view of fleet status --json" \
	"$(curl -sf "http://127.0.0.1:$PORT/api/v1/hosts" | view)" "$(status_json | view)"
t_is "... again, from its cache" \
	"$(curl -sf "http://127.0.0.1:$PORT/api/v1/hosts" | view)" "$(status_json | view)"
t_is "... ?app= and ?silent_after=" \
	"$(curl -sf "http://127.0.0.1:$PORT/api/v1/hosts?app=$APP&silent_after=1" | view)" \
	"$(status_json "$APP" --silent-after 1 | view)"
t_is "... a bad threshold: 400" \
	"$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/api/v1/hosts?silent_after=x")" 400
kill $BG
wait $BG 2>/dev/null
BG=

# ------------------------------------------------------------- settings
host_cfg web3 'report = false;'
t_ok "deploy.report = false: deploy" "$UPAAS" -c "$T_ROOT/web3/upaas.cfg" deploy "$APP"
t_is "... writes no report" "$(ls "$D_STORAGE/hosts")" "$(printf 'web1\nweb2')"
host_cfg web4
sed -i 's/host_name = "web4"/host_name = "Web 4"/' "$T_ROOT/web4/upaas.cfg"
t_fail "a host name that cannot be a key is refused" "$UPAAS" -c "$T_ROOT/web4/upaas.cfg" config check
t_match "... naming the file and line" "$(cat "$T_ROOT/last.out")" "web4/upaas.cfg:[0-9]+: .*host_name"

# ------------------------------------------------------------- forget
t_ok "fleet forget web1" U1 fleet forget web1
t_is "... its reports are gone" "$(ls "$D_STORAGE/hosts")" web2
t_is "... the view has web2 only" "$(status_json | jq -c '[.hosts[].host]')" '["web2"]'

t_done
