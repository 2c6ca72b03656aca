#!/bin/bash
# tests/integration/deploy.sh - deploy real packages built by `upaas build`
# into a temp root: install, upgrade, shared dirs, hooks (JSON variables,
# environment, app user, admin hooks), pre- and post-hook failures, no-op
# and --force, rollback (also of a pruned revision), prune, status, watch,
# exec, the app lock, undeploy and purge.
. "${UPAAS_SRCDIR:?run through make check}/tests/lib.sh" || exit 99
. "$UPAAS_SRCDIR/tests/integration/deploy-lib.sh" || exit 99

# A minimal python interpreter: nothing to install, the app's hooks are sh.
t_write_config '
interpreters = {
  python = {
    any = { packages = []; };
    versions = ( { version = "3"; } );
  };
};'
# hooks run as the app user and need to reach the revisions
chmod 755 "$T_ROOT"
SRV=$T_ROOT/srv
trap 'd_cleanup_storage; t_cleanup' EXIT

t_image || t_bail "cannot create the base image"

APP=$(d_app dep)
A=$SRV/$APP
DATA=$A/shared/data

# The app: hooks log what they get into the shared dir, and fail on demand
# (a file fail-pre / fail-post in the shared dir), so one package can both
# fail and succeed.
SRC=$T_ROOT/src
mkdir -p "$SRC/hooks"
cat >"$SRC/.upaas.cfg" <<'CFG'
interpreter = { type = "python"; };
deploy = {
  shared = [ "data" ];
  hooks = { pre = [ "hooks/pre" ]; post = [ "hooks/post" ]; };
  keep = 2;
};
CFG
for ev in pre post; do
	cat >"$SRC/hooks/$ev" <<HOOK
#!/bin/sh
d=\$UPAAS_SHARED_DIR/data
echo "$ev \$1 \$UPAAS_PACKAGE_ID uid=\$(id -u) cwd=\$(pwd) prev=\$PREVIOUS_CONFIG cur=\$CURRENT_CONFIG" >>"\$d/hooks.log"
cp "\$2" "\$d/vars-$ev.json"
stat -c %a "\$2" >"\$d/vars-$ev.mode"
echo "\$2" >"\$d/vars-$ev.path"
[ -z "\$PREVIOUS_CONFIG" ] || cat "\$PREVIOUS_CONFIG/home/app/version" >"\$d/prev-version"
[ -z "\$PREVIOUS_CONFIG" ] || ! touch "\$PREVIOUS_CONFIG/home/app/version" 2>/dev/null || echo "previous writable" >>"\$d/hooks.log"
# the hooks of a switch back must not fail with the upgrade
[ "\$1" = rollback ] || [ ! -e "\$d/fail-$ev" ]
HOOK
	chmod +x "$SRC/hooks/$ev"
done
REPO=$T_ROOT/repo

# admin hooks, run as root in name order
for n in 20-second 10-first; do
	mkdir -p "$T_ROOT/hooks/pre-deploy.d" "$T_ROOT/hooks/post-undeploy.d"
	printf '#!/bin/sh\necho "%s $1 uid=$(id -u) $UPAAS_APP" >>"%s/admin.log"\n' "$n" "$T_ROOT" \
		>"$T_ROOT/hooks/pre-deploy.d/$n"
	chmod +x "$T_ROOT/hooks/pre-deploy.d/$n"
done
printf '#!/bin/sh\necho "post-undeploy $1 uid=$(id -u)" >>"%s/admin.log"\n' "$T_ROOT" \
	>"$T_ROOT/hooks/post-undeploy.d/50-log"
chmod +x "$T_ROOT/hooks/post-undeploy.d/50-log"
echo "not executable: never run" >"$T_ROOT/hooks/pre-deploy.d/30-plain"

build_version() {
	echo "$1" >"$SRC/version"
	commit_tree "$REPO" "$SRC" "version $1" && make_package "$APP" "$REPO"
}

# ---------------------------------------------------------------- install
ID1=$(build_version v1) || t_bail "upaas build failed"
t_ok "first deploy" "$UPAAS" deploy "$APP"
t_is "current points at the package" "$(readlink "$A/current")" "revisions/$ID1"
t_is "the revision holds the app" "$(cat "$A/current/home/app/version")" "v1"
t_match "history: install" "$(cat "$A/history")" "^[0-9T:-]+Z install $ID1 ok -$"
t_is "shared dir owned by the app user" "$(stat -c %u:%g "$DATA")" "1000:1000"
t_is "shared dir linked into the revision" "$(readlink -f "$A/current/home/app/data")" "$(readlink -f "$DATA")"
# app hooks run in the app's sandbox, chrooted into the revision: the
# paths they see are the ones inside
t_is "app hooks ran with operation install, as the app user, in the revision" \
	"$(cut -d' ' -f1-5 "$DATA/hooks.log")" "pre install $ID1 uid=1000 cwd=/
post install $ID1 uid=1000 cwd=/"
t_match "CURRENT_CONFIG and PREVIOUS_CONFIG" "$(head -n 1 "$DATA/hooks.log")" " prev= cur=/\$"
t_is "admin hooks ran as root in name order" "$(cat "$T_ROOT/admin.log")" \
	"10-first install uid=0 $APP
20-second install uid=0 $APP"
t_is "variables file was mode 0600" "$(cat "$DATA/vars-pre.mode")" "600"
t_is "variables file seen at /run/upaas/hook.json" "$(cat "$DATA/vars-pre.path")" /run/upaas/hook.json
t_is "variables files deleted afterwards" "$(find "$A" -maxdepth 1 -name '.hook-*')" ""
t_is "nothing left of it in the revision" "$(find "$A/revisions/$ID1/run" -type f)" ""
t_ok "variables file has every variable" python3 - "$DATA/vars-pre.json" "$APP" "$ID1" "$A" <<'PY'
import json, sys
path, app, pid, a = sys.argv[1:]
v = json.load(open(path))
want = {"app": app, "package_id": pid, "revision_dir": "/",
        "previous_revision_dir": "", "shared_dir": "/shared",
        "data_dir": "/home/app", "root": "/",
        "operation": "install"}
for k, w in want.items():
    assert v[k] == w, (k, v[k], w)
for k in ("commit", "hostname", "time"):
    assert v[k], k
assert len(v["commit"]) == 40, v["commit"]
PY

# ---------------------------------------------------------------- upgrade
echo "kept" >"$DATA/persist.txt"
ID2=$(build_version v2) || t_bail "upaas build failed"
t_ok "upgrade" "$UPAAS" deploy "$APP"
t_is "current is the new package" "$(deployed "$APP")" "$ID2"
t_is "shared data survives the upgrade" "$(cat "$A/current/home/app/data/persist.txt")" "kept"
t_match "hooks saw upgrade with the previous revision" "$(tail -n 2 "$DATA/hooks.log")" \
	"^pre upgrade $ID2 uid=1000 cwd=/ prev=/run/upaas/previous cur=/"
t_ok "variables file names the previous revision" python3 -c '
import json, sys; v = json.load(open(sys.argv[1]))
assert v["previous_revision_dir"] == "/run/upaas/previous" and v["operation"] == "upgrade"' \
	"$DATA/vars-post.json"
t_is "the previous revision is there, read-only" "$(cat "$DATA/prev-version")" "v1"

out=$("$UPAAS" deploy "$APP" 2>&1)
t_match "deploying the current package again is a no-op" "$out" "already at $ID2"
t_is "the no-op is not in the history" "$(wc -l <"$A/history")" "2"
t_ok "--force deploys it again" "$UPAAS" deploy --force "$APP"
t_is "history after --force" "$(tail -n 1 "$A/history" | cut -d' ' -f2-4)" "upgrade $ID2 ok"
touch "$DATA/fail-post"
t_fail "--force with a failing post-deploy hook fails" "$UPAAS" deploy --force "$APP"
t_is "a failed forced redeploy leaves current in place" "$(readlink "$A/current")" "revisions/$ID2"
rm -f "$DATA/fail-post"

# ------------------------------------------------------- post-hook failure
ID3=$(build_version v3) || t_bail "upaas build failed"
touch "$DATA/fail-post"
: >"$DATA/hooks.log"
t_fail "a failing post-deploy hook fails the deploy" "$UPAAS" deploy "$APP"
t_is "current switched back" "$(deployed "$APP")" "$ID2"
t_is "post hooks ran again with rollback for the old revision" \
	"$(cut -d' ' -f1-6 "$DATA/hooks.log")" "pre upgrade $ID3 uid=1000 cwd=/ prev=/run/upaas/previous
post upgrade $ID3 uid=1000 cwd=/ prev=/run/upaas/previous
post rollback $ID2 uid=1000 cwd=/ prev=/run/upaas/previous"
t_is "history records the failure and the switch back" "$(tail -n 2 "$A/history" | cut -d' ' -f2-)" \
	"upgrade $ID3 failed:post-deploy $ID2
switch-back $ID2 ok $ID3"
rm -f "$DATA/fail-post"

# -------------------------------------------------------- pre-hook failure
touch "$DATA/fail-pre"
t_fail "a failing pre-deploy hook aborts the deploy" "$UPAAS" deploy "$APP"
t_match "the error names the hook" "$(cat "$T_ROOT/last.out")" "pre-deploy hook 'hooks/pre' failed with exit status 1"
t_is "current untouched" "$(deployed "$APP")" "$ID2"
t_ok "the failed revision is kept for inspection" test -d "$A/revisions/$ID3.failed"
rm -f "$DATA/fail-pre"
t_ok "the next deploy succeeds" "$UPAAS" deploy "$APP"
t_is "current is the retried package" "$(deployed "$APP")" "$ID3"
t_fail "the failed revision was removed" test -e "$A/revisions/$ID3.failed"

# --------------------------------------------------------- rollback, prune
t_ok "rollback" "$UPAAS" rollback "$APP"
t_is "rollback goes to the previous revision" "$(deployed "$APP")" "$ID2"
t_match "rollback hooks" "$(tail -n 1 "$DATA/hooks.log")" "^post rollback $ID2 "
t_fail "keep = 2 pruned the oldest revision" test -e "$A/revisions/$ID1"
t_is "current and previous are kept" "$(ls "$A/revisions" | sort | tr '\n' ' ')" \
	"$(printf '%s\n' "$ID2" "$ID3" | sort | tr '\n' ' ')"
t_ok "rollback --to a pruned package" "$UPAAS" rollback "$APP" --to "$ID1"
t_is "pruned package fetched again" "$(cat "$A/current/home/app/version")" "v1"
t_ok "rollback again returns to the previous" "$UPAAS" rollback "$APP"
t_is "back at the second package" "$(deployed "$APP")" "$ID2"

# ------------------------------------------------------------------ status
st=$("$UPAAS" status "$APP" --json)
t_ok "status --json" python3 -c '
import json, sys; s = json.loads(sys.argv[1])
assert s["current"] == sys.argv[2] and s["previous"] == sys.argv[3], s
assert len(s["commit"]) == 40 and s["history"][-1]["operation"] == "rollback", s' \
	"$st" "$ID2" "$ID1"
t_match "status text" "$("$UPAAS" status "$APP")" "current: +$ID2"
t_match "status of every app" "$("$UPAAS" status)" "app: +$APP"

# ------------------------------------------------------------------- watch
ID4=$(build_version v4) || t_bail "upaas build failed"
t_ok "watch --once deploys the new package" "$UPAAS" watch --once "$APP"
t_is "watch picked up the package" "$(deployed "$APP")" "$ID4"
n=$(wc -l <"$A/history")
t_ok "watch --once without a change" "$UPAAS" watch --once
t_is "nothing deployed without a change" "$(wc -l <"$A/history")" "$n"
touch "$DATA/fail-pre"
ID5=$(build_version v5) || t_bail "upaas build failed"
t_fail "watch --once reports a failed deploy" "$UPAAS" watch --once "$APP"
t_is "the failed package is remembered" "$(cat "$A/.failed")" "$ID5"
n=$(wc -l <"$A/history")
t_ok "watch does not retry the failed package" "$UPAAS" watch --once "$APP"
t_is "no deploy attempt" "$(wc -l <"$A/history")" "$n"
rm -f "$DATA/fail-pre"
t_ok "watch --force retries it" "$UPAAS" watch --once --force "$APP"
t_is "retried package deployed" "$(deployed "$APP")" "$ID5"
t_fail ".failed is cleared after a success" test -e "$A/.failed"
t_fail "watch rejects a bad schedule" "$UPAAS" watch --once --schedule "61 * * * *" "$APP"

# watch as a service: SIGTERM stops it between deploys
"$UPAAS" watch --schedule "* * * * *" "$APP" >"$T_ROOT/watch.out" 2>&1 &
wpid=$!
sleep 1
kill -TERM "$wpid"
wait "$wpid"
t_is "watch exits cleanly on SIGTERM" "$?" "0"

# -------------------------------------------------------------------- exec
t_is "exec runs in the current revision" "$("$UPAAS" exec "$APP" -- cat /home/app/version)" "v5"
t_is "exec runs as the app user" "$("$UPAAS" exec "$APP" -- id -u)" "1000"
"$UPAAS" exec "$APP" -- sh -c 'echo from-exec > /home/app/data/exec.txt'
t_is "exec sees the shared dir" "$(cat "$DATA/exec.txt" 2>&1)" "from-exec"
"$UPAAS" exec "$APP" -- sh -c 'exit 7'
t_is "exec exits with the command's status" "$?" "7"
t_is "exec passes stdin" "$(echo piped | "$UPAAS" exec "$APP" -- cat)" "piped"

# A service stops gracefully: with the shipped unit's KillMode=mixed systemd
# sends SIGTERM to upaas alone; it reaches the app's handler through the
# sandbox's init, and upaas exits with the app's status.
t_is "the shipped unit signals upaas alone" \
	"$(grep '^KillMode=' "$UPAAS_SRCDIR/dist/systemd/upaas-app@.service")" "KillMode=mixed"
# the zombies among the descendants of $1
zombies() {
	local all=$1 pids=$1 p next
	while [ -n "$pids" ]; do
		next=$(cat $(printf '/proc/%s/task/*/children ' $pids) 2>/dev/null)
		pids=$next
		all="$all $next"
	done
	for p in $all; do awk '{print $3}' "/proc/$p/stat" 2>/dev/null; done | grep -c '^Z' || true
}
wait_for() { for _ in $(seq 1 100); do [ -e "$1" ] && return 0; sleep 0.1; done; return 1; }
rm -f "$DATA/stop.txt" "$DATA/started.txt" "$DATA/signals.txt"
"$UPAAS" exec "$APP" -- sh -c 'for s in HUP INT QUIT USR1 USR2; do
	trap "echo $s >>/home/app/data/signals.txt" $s; done
trap "echo stopped cleanly >/home/app/data/stop.txt; exit 3" TERM
echo up >/home/app/data/started.txt
while :; do sleep 0.1; done' &
PID=$!
t_ok "a service runs" wait_for "$DATA/started.txt"
# the other signals a service manager or a terminal sends reach it too
for s in HUP INT QUIT USR1 USR2; do
	kill -$s $PID
	for _ in $(seq 1 50); do grep -qx $s "$DATA/signals.txt" 2>/dev/null && break; sleep 0.1; done
done
t_is "SIGHUP, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2 to upaas reach the app" \
	"$(tr '\n' ' ' <"$DATA/signals.txt" 2>&1)" "HUP INT QUIT USR1 USR2 "
kill -TERM $PID
wait $PID
t_is "SIGTERM to upaas: upaas exits with the app's status" "$?" 3
t_is "SIGTERM to upaas: the app's handler ran" "$(cat "$DATA/stop.txt" 2>&1)" "stopped cleanly"
# an app that does not reap: its orphans are init's to reap; SIGTERM still
# ends it (it is no PID 1, which would ignore it)
rm -f "$DATA/started.txt"
"$UPAAS" exec "$APP" -- sh -c '(sleep 0.1 &); echo up >/home/app/data/started.txt; exec sleep 30' &
PID=$!
wait_for "$DATA/started.txt"
sleep 1
t_is "init reaps the orphans" "$(zombies $PID)" 0
T0=$(date +%s)
kill -TERM $PID
wait $PID
t_is "SIGTERM ends an app without a handler: 128+15" "$?" 143
t_ok "promptly" test $(($(date +%s) - T0)) -lt 5
t_is "nothing of the app is left" "$(pgrep -f '^sleep 30$' | head -1)" ""

# --------------------------------------------------------------- the lock
# -o: only flock itself holds the lock, not sleep: killing flock frees it
flock -o "$A/.lock" sleep 30 &
lpid=$!
sleep 0.3
t_fail "--no-wait fails while another deploy holds the app" "$UPAAS" deploy --no-wait --force "$APP"
t_match "the error says so" "$(cat "$T_ROOT/last.out")" "another deploy of app '$APP' is running"
{ pkill -P "$lpid" sleep; kill "$lpid"; wait "$lpid"; } 2>/dev/null

# ---------------------------------------------------------------- undeploy
: >"$T_ROOT/admin.log"
t_ok "undeploy" "$UPAAS" undeploy "$APP"
t_fail "current is gone" test -e "$A/current"
t_is "revisions are gone" "$(ls "$A/revisions" 2>/dev/null)" ""
t_is "shared data stays" "$(cat "$DATA/persist.txt")" "kept"
t_is "post-undeploy admin hook" "$(cat "$T_ROOT/admin.log")" "post-undeploy undeploy uid=0"
t_fail "undeploy of an undeployed app fails" "$UPAAS" undeploy "$APP"
t_ok "deploy after undeploy" "$UPAAS" deploy "$APP"
t_match "it is an install again" "$(tail -n 1 "$A/history")" " install $ID5 ok"
: >"$T_ROOT/admin.log"
t_ok "undeploy --purge" "$UPAAS" undeploy --purge "$APP"
t_fail "purge removes everything" test -e "$A"
t_is "post-undeploy hook saw uninstall" "$(cat "$T_ROOT/admin.log")" "post-undeploy uninstall uid=0"

t_done
