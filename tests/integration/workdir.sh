#!/bin/bash
# tests/integration/workdir.sh - the one sweep of the work dir
# (rootfs/workdir.c), as a starting worker runs it: the workspace of a live
# `upaas image run` survives it even when an app called "run" was built on
# this host (its run.lock is free), and the command goes on; what dead
# processes left (an image run killed with SIGKILL, a build of app "run",
# an image creation) is removed; anything else is left alone.
. "$UPAAS_SRCDIR/tests/lib.sh"

command -v jq >/dev/null || t_skip_all "jq is not installed"
t_image || t_bail "cannot create the base image"
NAME=$(awk '/^name:/ {print $2}' "$T_ROOT/image.out")
W=$T_ROOT/work
RUNPIDS=()
w_cleanup() {
	local rc=$?
	# a sandboxed command dies with its upaas (PR_SET_PDEATHSIG)
	for p in "${RUNPIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
	wait 2>/dev/null
	(exit $rc)
	t_cleanup
}
trap w_cleanup EXIT

# run_dirs: the image-run workspaces in the work dir (not their locks)
run_dirs() { ls "$W" 2>/dev/null | grep -E '^run-[0-9]{8}T[0-9]{6}Z-[0-9a-f]{7}$'; }
wait_for() {  # wait_for PATTERN: until a process runs "sleep N" exactly
	for _ in $(seq 100); do pgrep -f "^$1\$" >/dev/null && return 0; sleep 0.2; done
	return 1
}

# --- a live image run, and a worker that starts after a build of app "run"
"$UPAAS" image run "$NAME" -- sh -c 'sleep 3033; echo written >/root/after; cat /root/after' \
	>"$T_ROOT/run.out" 2>&1 &
RUNPIDS+=($!)
t_ok "image run: the command started" wait_for 'sleep 3033'
live=$(run_dirs)
t_match "image run: one workspace run-<id>" "$live" '^run-[^ ]+$'
t_ok "... with its lock" test -e "$W/$live.lock"

t_ok "app add run" "$UPAAS" app add run --repo "$T_ROOT/no-such-repo"
t_match "queue add run" "$("$UPAAS" queue add run 2>&1)" '^[0-9]{8}T'
t_ok "worker --once runs the build of app run (it fails: no repo)" timeout 120 "$UPAAS" worker --once
t_is "the build of app run failed" "$("$UPAAS" queue list --app run --json | jq -r '.[0].state')" failed
t_ok "the build left app run's lock, now free" flock -n "$W/run.lock" true
t_ok "worker --once starts (and sweeps) again" timeout 60 "$UPAAS" worker --once
t_ok "the live run's workspace is still there" test -d "$W/$live"
t_ok "... and its lock" test -e "$W/$live.lock"
t_ok "the command still runs" pgrep -f '^sleep 3033$'
kill -TERM $(pgrep -f '^sleep 3033$')
wait "${RUNPIDS[0]}"
t_is "image run finished with status 0" "$?" 0
t_is "the command wrote to its workspace after the sweeps" "$(tail -n 1 "$T_ROOT/run.out")" written
t_is "the run removed its workspace and lock" "$(ls "$W" | grep -c '^run-')" 0

# --- what dead processes left is removed by the next sweep
"$UPAAS" image run "$NAME" -- sleep 3034 >/dev/null 2>&1 &
RUNPIDS+=($!)
t_ok "a second image run started" wait_for 'sleep 3034'
dead=$(run_dirs)
kill -9 "${RUNPIDS[1]}"
wait "${RUNPIDS[1]}" 2>/dev/null
for _ in $(seq 50); do pgrep -f '^sleep 3034$' >/dev/null || break; sleep 0.2; done
t_fail "its command died with it (kill -9)" pgrep -f '^sleep 3034$'
t_ok "the dead run's workspace is left behind" test -d "$W/$dead"
ghost=run-20260101T000000Z-0001abc          # a dead build of app "run"
mkdir -p "$W/$ghost/ws/upper" "$W/image-$NAME.AbC123/root" "$W/keep-me"
: >"$W/image-$NAME.AbC123.log"
t_ok "worker --once" timeout 60 "$UPAAS" worker --once
t_fail "the dead run's workspace is gone" test -e "$W/$dead"
t_fail "... and its lock" test -e "$W/$dead.lock"
t_fail "a dead build dir of app run is gone" test -e "$W/$ghost"
t_fail "a dead image creation's dir is gone" test -e "$W/image-$NAME.AbC123"
t_fail "... and its log" test -e "$W/image-$NAME.AbC123.log"
t_ok "an unknown entry is left alone" test -d "$W/keep-me"
t_is "no mount left below T_ROOT" "$(t_mounts_below "$T_ROOT")" ""

t_done
