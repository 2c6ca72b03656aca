#!/bin/bash
# tests/integration/queue.sh - the app registry, the queue and real workers
# running real builds, on SQLite and on a real PostgreSQL (tests/pg.sh):
# coalescing, a load of 30 builds of 10 apps on 3 workers (15 of 5 on PG;
# exactly once, never two builds of an app at once), enqueue-to-start
# latency, a worker
# killed with SIGKILL mid-build (requeued after its lease, finished by
# another worker, nothing left behind), cancel of a running build, SIGTERM
# of a worker (its build is requeued), retention (keep_packages = 2).
. "$UPAAS_SRCDIR/tests/lib.sh"

command -v jq >/dev/null || t_skip_all "jq is not installed"
t_image || t_bail "cannot create the base image"

SUFFIX=$(printf '%s' "${T_ROOT##*.}" | tr 'A-Z' 'a-z')
WORKERS=()

# Kills what this test started, then the usual cleanup.
q_cleanup() {
	local rc=$?
	for p in "${WORKERS[@]}"; do kill -9 "$p" 2>/dev/null; done
	wait 2>/dev/null
	[ -n "${PG_STARTED:-}" ] && "$UPAAS_SRCDIR/tests/pg.sh" stop >/dev/null 2>&1
	(exit $rc)
	t_cleanup
}
trap q_cleanup EXIT

# The admin config of one backend: its own state and work dirs, the shared
# storage (where the base image is), a 3 s lease, keep_packages = 2.
write_cfg() {  # write_cfg DIR URL
	mkdir -p "$1"
	cat >"$1/upaas.cfg" <<CFG
paths = {
  workdir = "$1/work";
  cache = "$UPAAS_TEST_SHARED/cache";
  state = "$1/state";
};
storage = {
  handler = "local";
  path = "$UPAAS_TEST_SHARED/storage";
};
queue = {
  url = "$2";
  lease_seconds = 3;
};
apps = {
  keep_packages = 2;
};
signing = { key = "$T_KEY"; trusted = [ "$T_PUB" ]; };
interpreters = {
  shell = { any = { packages = []; }; };
};
CFG
	export UPAAS_CONFIG=$1/upaas.cfg
}

# A tiny app: a git repo whose main action echoes (and sleeps $2 s), with
# branches r1 and r2 at the same commit.
mk_app() {  # mk_app DIR SLEEP
	mkdir -p "$1"
	cat >"$1/.upaas.cfg" <<META
interpreter = { type = "shell"; };
actions = {
  main = [ "echo main begins", "sleep $2", "echo main ends" ];
};
META
	git -C "$1" init -q -b main
	git -C "$1" add -A
	git -C "$1" -c user.name=t -c user.email=t@localhost commit -qm one
	git -C "$1" branch r1
	git -C "$1" branch r2
}

start_worker() {  # start_worker LOG ARGS... ; sets WPID
	"$UPAAS" worker "${@:2}" >"$1" 2>&1 &
	WPID=$!
	WORKERS+=("$WPID")
}

bjson() { "$UPAAS" queue show --json "$1"; }
bstate() { bjson "$1" | jq -r .state; }
# Waits up to $3 s for build $1 to reach state $2.
wait_state() {
	local end=$((SECONDS + $3))
	while [ $SECONDS -lt $end ]; do
		[ "$(bstate "$1")" = "$2" ] && return 0
		sleep 0.2
	done
	echo "build $1 is $(bstate "$1"), not $2 after $3 s" >&2
	return 1
}
# Waits up to $3 s for the build log of $1 to match regex $2.
wait_log() {
	local end=$((SECONDS + $3)) f
	f=$(bjson "$1" | jq -r .log)
	while [ $SECONDS -lt $end ]; do
		grep -Eq -- "$2" "$f" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}
# Waits up to $4 s until the build log of $1 has $3 lines matching $2.
wait_count() {
	local end=$((SECONDS + $4)) f
	f=$(bjson "$1" | jq -r .log)
	while [ $SECONDS -lt $end ]; do
		[ "$(grep -Ec -- "$2" "$f" 2>/dev/null)" -ge "$3" ] && return 0
		sleep 0.1
	done
	return 1
}
# Processes whose root directory is below $1 (sandboxed build commands).
# Waits up to $1 s until no build is queued or running.
wait_idle() {
	local end=$((SECONDS + $1)) n
	while [ $SECONDS -lt $end ]; do
		n=$("$UPAAS" queue list --json | jq '[.[] | select(.state == "queued" or .state == "running")] | length')
		[ "$n" = 0 ] && return 0
		sleep 0.5
	done
	return 1
}
# Stops a worker with SIGTERM; passes when it exits 0 within $2 s.
stop_worker() {  # stop_worker PID SECONDS
	kill -TERM "$1"
	local end=$((SECONDS + $2))
	while kill -0 "$1" 2>/dev/null && [ $SECONDS -lt $end ]; do sleep 0.1; done
	kill -0 "$1" 2>/dev/null && return 1
	wait "$1"
}
no_workdirs() {  # only the per-app lock files may remain in the work dir
	[ -z "$(find "$1" -mindepth 1 -maxdepth 1 ! -name '*.lock' 2>/dev/null)" ]
}

scenarios() {  # scenarios BACKEND URL LOAD_APPS
	local be=$1 url=$2 n_apps=$3 per_app=3 D=$T_ROOT/$1
	local P=q$SUFFIX-${be:0:2}
	write_cfg "$D" "$url"
	local W=$D/work
	t_diag "---- $be: $url"

	# ------------------------------------------------------- registry
	mk_app "$D/src/demo" 0
	t_ok "$be: app add" "$UPAAS" app add "$P-demo" --repo "$D/src/demo"
	t_fail "$be: app add twice fails" "$UPAAS" app add "$P-demo" --repo "$D/src/demo"
	t_fail "$be: app add with a bad name fails" "$UPAAS" app add "Bad/Name" --repo /x
	t_is "$be: app list --json" \
		"$("$UPAAS" app list --json | jq -r --arg a "$P-demo" '.[] | select(.name == $a) | .repo')" \
		"$D/src/demo"
	t_fail "$be: queue add of an unknown app fails" "$UPAAS" queue add "$P-nope"

	# ------------------------------------------------------ coalescing
	local c1 c2 c3 c4
	c1=$("$UPAAS" queue add "$P-demo" 2>/dev/null)
	c2=$("$UPAAS" queue add "$P-demo" 2>/dev/null)
	t_is "$be: a second request joins the queued build" "$c2" "$c1"
	t_is "$be: ... which is not fresh" "$(bjson "$c1" | jq .fresh)" false
	c3=$("$UPAAS" queue add --fresh "$P-demo" 2>/dev/null)
	t_is "$be: a --fresh request joins it too" "$c3" "$c1"
	t_is "$be: ... and makes it fresh" "$(bjson "$c1" | jq .fresh)" true
	c4=$("$UPAAS" queue add --ref r1 "$P-demo" 2>/dev/null)
	t_match "$be: another ref is another build" "$c4" "^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{7}$"
	[ "$c4" != "$c1" ] && t_pass "$be: ... with its own id" || t_not "$be: ... with its own id"
	t_is "$be: one queued build per app and ref" \
		"$("$UPAAS" queue list --app "$P-demo" --state queued --json | jq length)" 2
	t_ok "$be: cancel a queued build" "$UPAAS" queue cancel "$c4"
	t_is "$be: it is cancelled at once" "$(bstate "$c4")" cancelled
	t_fail "$be: cancel it again fails" "$UPAAS" queue cancel "$c4"
	local bid
	bid=$("$UPAAS" build "$P-demo" 2>"$D/build.err")
	t_match "$be: upaas build NAME builds a registered app" "$bid" "^[0-9]{8}T[0-9]{6}Z-"
	t_is "$be: ... from its repository" \
		"$(jq -r .repository.url "$UPAAS_TEST_SHARED/storage/packages/$P-demo/$bid.json" 2>/dev/null)" \
		"$D/src/demo"

	# ----------------------------------------- load: 3 workers, N builds
	local apps=() a i n
	for i in $(seq 0 $((n_apps - 1))); do
		a=$P-l$i
		apps+=("$a")
		mk_app "$D/src/l$i" 0
		"$UPAAS" app add "$a" --repo "$D/src/l$i"
	done
	local refs=(main r1 r2)
	for i in $(seq 0 $((per_app - 1))); do
		# ids (and so package ids, which retention orders by) sort by
		# the second only: one round of builds per second.
		[ "$i" -gt 0 ] && sleep 1.1
		for a in "${apps[@]}"; do
			"$UPAAS" queue add --ref "${refs[$i]}" "$a" >/dev/null 2>&1
		done
	done
	n=$((per_app * n_apps))
	t_is "$be: $n builds queued" \
		"$("$UPAAS" queue list --state queued --json | jq '[.[] | select(.app | startswith("'"$P-l"'"))] | length')" "$n"
	local w1 w2 w3 t0=$SECONDS
	start_worker "$D/w1.log"; w1=$WPID
	start_worker "$D/w2.log"; w2=$WPID
	start_worker "$D/w3.log"; w3=$WPID
	t_ok "$be: the workers take every build" wait_idle 300
	t_diag "$be: $n builds (and the demo build) in $((SECONDS - t0)) s"
	local L
	L=$("$UPAAS" queue list --json | jq --arg p "$P-l" '[.[] | select(.app | startswith($p))]')
	t_is "$be: every build succeeded" \
		"$(jq '[.[] | select(.state == "succeeded")] | length' <<<"$L")" "$n"
	t_is "$be: every build ran exactly once (attempts)" \
		"$(jq '[.[] | select(.attempts == 1)] | length' <<<"$L")" "$n"
	t_is "$be: one package per build" \
		"$(jq '[.[] | select(.package_id == .id)] | length' <<<"$L")" "$n"
	local once=0
	for i in $(jq -r '.[].id' <<<"$L"); do
		[ "$(grep -c "runs build $i" "$D/state/logs/$i.log")" = 1 ] && once=$((once + 1))
	done
	t_is "$be: every build's log shows one run" "$once" "$n"
	t_is "$be: the three workers all built" \
		"$(jq '[.[].worker | split(":")[1]] | unique | length' <<<"$L")" 3
	t_is "$be: no app ever ran two builds at once" \
		"$(jq -r 'group_by(.app)[] | sort_by(.started_at_ms) |
			[range(1; length) as $i | select(.[$i].started_at_ms < .[$i - 1].finished_at_ms)
			 | .[$i].id] | .[]' <<<"$L")" ""
	t_ok "$be: no work dir left behind" no_workdirs "$W"

	# --------------------------------------------------------- latency
	local lid
	lid=$("$UPAAS" queue add --ref r1 "$P-demo" 2>/dev/null)
	t_ok "$be: an idle worker takes a new build" wait_state "$lid" succeeded 60
	local lat
	lat=$(bjson "$lid" | jq '.started_at_ms - .queued_at_ms')
	t_diag "$be: enqueue to start: $lat ms"
	[ "$lat" -lt 500 ] && t_pass "$be: it starts within 500 ms ($lat ms)" ||
		t_not "$be: it starts within 500 ms ($lat ms)"

	# ---------------------------------------------------- retention
	# keep_packages = 2: each app of the load has 2 of its 3 packages,
	# the current one included.
	local kept=0 cur
	for a in "${apps[@]}"; do
		cur=$(t_current_id "$UPAAS_TEST_SHARED/storage/apps/$a/current")
		if [ "$(ls "$UPAAS_TEST_SHARED/storage/packages/$a/" | grep -v '\.sbom\.json$' |
			grep -c '\.json$')" = 2 ] &&
			[ -f "$UPAAS_TEST_SHARED/storage/packages/$a/$cur.json" ]; then
			kept=$((kept + 1))
		fi
	done
	t_is "$be: retention keeps the newest 2 packages, current included" "$kept" "$n_apps"
	t_match "$be: app show names the current package" "$("$UPAAS" app show "$P-l0")" \
		"current: +$(t_current_id "$UPAAS_TEST_SHARED/storage/apps/$P-l0/current")"

	# ------------------------------------------------ cancel a running build
	mk_app "$D/src/slow" 30
	"$UPAAS" app add "$P-slow" --repo "$D/src/slow"
	local sid
	sid=$("$UPAAS" queue add "$P-slow" 2>/dev/null)
	t_ok "$be: the slow build runs" wait_log "$sid" "main begins" 60
	t_ok "$be: queue log shows it while it runs" \
		bash -c '"$UPAAS" queue log "$1" | grep -q "main begins"' _ "$sid"
	local t1=$SECONDS
	t_ok "$be: queue cancel --wait stops the running build" "$UPAAS" queue cancel --wait "$sid"
	t_is "$be: it is cancelled" "$(bstate "$sid")" cancelled
	[ $((SECONDS - t1)) -lt 20 ] && t_pass "$be: ... quickly" || t_not "$be: ... quickly"
	t_ok "$be: queue log -f ends with the build" timeout 20 "$UPAAS" queue log -f "$sid"
	t_ok "$be: no work dir left after the cancel" no_workdirs "$W"
	t_is "$be: no mount left" "$(t_mounts_below "$D")" ""

	# ------------------------------------- SIGTERM requeues, killed worker
	for p in $w1 $w2 $w3; do
		stop_worker "$p" 30 && t_pass "$be: worker $p stops on SIGTERM with 0" ||
			t_not "$be: worker $p stops on SIGTERM with 0"
	done
	WORKERS=()
	# a sleep no other process has: it shows whether the build is still alive
	local nap=5.$((RANDOM % 9000 + 1000))
	mk_app "$D/src/nap" "$nap"
	"$UPAAS" app add "$P-nap" --repo "$D/src/nap"
	local kid wa wb
	kid=$("$UPAAS" queue add "$P-nap" 2>/dev/null)
	start_worker "$D/wa.log"; wa=$WPID
	t_ok "$be: worker A runs the build" wait_log "$kid" "main begins" 60
	t_ok "$be: SIGTERM stops worker A with 0" stop_worker "$wa" 30
	t_is "$be: its build is queued again" "$(bstate "$kid")" queued
	t_is "$be: ... without counting the attempt" "$(bjson "$kid" | jq .attempts)" 0

	start_worker "$D/wa2.log"; wa=$WPID
	t_ok "$be: worker A' runs the build" wait_count "$kid" "main begins" 2 60
	wait_state "$kid" running 10 >/dev/null
	for _ in $(seq 30); do pgrep -f "^sleep $nap\$" >/dev/null && break; sleep 0.1; done
	t_ok "$be: ... which is in its main action (the log is live)" pgrep -f "^sleep $nap\$"
	kill -9 "$wa"
	wait "$wa" 2>/dev/null
	for _ in $(seq 30); do pgrep -f "^sleep $nap\$" >/dev/null || break; sleep 0.1; done
	t_fail "$be: the killed build's processes died with its worker" pgrep -f "^sleep $nap\$"
	local t2=$SECONDS
	start_worker "$D/wb.log"; wb=$WPID
	t_ok "$be: after kill -9 of its worker the build completes elsewhere" \
		wait_state "$kid" succeeded 60
	local K
	K=$(bjson "$kid")
	t_is "$be: ... in worker B" "$(jq -r '.worker | split(":")[1]' <<<"$K")" "$wb"
	t_is "$be: ... on its second attempt" "$(jq .attempts <<<"$K")" 2
	t_diag "$be: requeued and rebuilt in $((SECONDS - t2)) s"
	t_is "$be: no mount left after the kill" "$(t_mounts_below "$D")" ""
	t_ok "$be: no work dir left after the kill" no_workdirs "$W"
	t_ok "$be: worker B stops on SIGTERM" stop_worker "$wb" 30
	WORKERS=()

	# ------------------------------------- leftovers at worker start
	# A build killed on this host left its work dir; a live one holds its
	# app's lock. A starting worker removes the first and keeps the second.
	local ghost="$W/$P-ghost-20260101T000000Z-0001abc"
	local live="$W/$P-live-20260101T000000Z-0002abc"
	mkdir -p "$ghost/upper/etc" "$live/upper"
	echo x >"$ghost/upper/etc/x"
	: >"$W/$P-ghost.lock"
	( exec 9>"$W/$P-live.lock"; flock 9; exec sleep 30 ) &
	local holder=$!
	sleep 0.3
	t_ok "$be: worker --once with nothing queued" timeout 60 "$UPAAS" worker --once
	t_ok "$be: ... removed a dead build's work dir" test ! -e "$ghost"
	t_ok "$be: ... kept the work dir of a running build" test -d "$live"
	kill "$holder" 2>/dev/null
	wait "$holder" 2>/dev/null
	rm -rf "$live"

	# ----------------------------------------------------------- retry
	local rid
	rid=$("$UPAAS" queue retry "$sid" 2>/dev/null)
	t_match "$be: retry queues a new build" "$rid" "^[0-9]{8}T"
	t_is "$be: ... for the same app" "$(bjson "$rid" | jq -r .app)" "$P-slow"
	t_ok "$be: cancel it" "$UPAAS" queue cancel "$rid"
	t_ok "$be: app rm" "$UPAAS" app rm "$P-slow"
	t_fail "$be: app show of a removed app fails" "$UPAAS" app show "$P-slow"
}

scenarios sqlite "sqlite://$T_ROOT/sqlite/state/upaas.db" 10

if PG_URL=$("$UPAAS_SRCDIR/tests/pg.sh" url 2>/dev/null) && [ -n "$PG_URL" ]; then
	:
elif PG_URL=$("$UPAAS_SRCDIR/tests/pg.sh" start); then
	PG_STARTED=1
else
	t_bail "cannot start PostgreSQL (apt-get install postgresql)"
fi
# A smaller load on PostgreSQL (5 apps, 15 builds) to keep the test short:
# the claim logic is the same SQL; the unit tests race 4 claimers on both.
psql -q "$PG_URL" -c 'DROP TABLE IF EXISTS builds, apps, schema_version, tokens, hook_deliveries, notify_outbox' >/dev/null 2>&1
scenarios postgresql "$PG_URL" 5

# ------------------------------------------ database lost by one worker
# Worker A loses its database (its role may no longer log in, its session
# is killed) while its build runs: it cannot renew the lease, so it must
# stop the build before the lease runs out and another worker may take it.
lost_db() {
	local D=$T_ROOT/postgresql P=q$SUFFIX-po role=upaas_lease_$SUFFIX
	sql() { psql -qAt "$PG_URL" -v ON_ERROR_STOP=1 -c "$1"; }
	mk_app "$D/src/long" 60
	"$UPAAS" app add "$P-long" --repo "$D/src/long"
	sql "CREATE ROLE $role LOGIN" >/dev/null &&
		sql "GRANT ALL ON ALL TABLES IN SCHEMA public TO $role" >/dev/null ||
		{ t_not "pg: a role for worker A"; return; }
	local aurl=${PG_URL/user=postgres/user=$role}
	sed -e "s|url = \".*\";|url = \"${aurl//&/\\&}\";|" \
		-e "s|lease_seconds = 3;|lease_seconds = 6;|" "$D/upaas.cfg" >"$D/a.cfg"
	grep -q "user=$role" "$D/a.cfg" || { t_not "pg: a config for worker A"; return; }
	local lid wa
	lid=$("$UPAAS" queue add "$P-long" 2>/dev/null)
	"$UPAAS" -c "$D/a.cfg" worker >"$D/wlost.log" 2>&1 &
	wa=$!
	WORKERS+=("$wa")
	t_ok "pg: worker A runs the build" wait_state "$lid" running 60
	sleep 3   # into its 60 s main step (whose output is logged when it ends)
	sql "ALTER ROLE $role NOLOGIN" >/dev/null
	sql "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '$role'" >/dev/null
	# (logged once its build process has been reaped)
	t_ok "pg: without its database, A stops the build before its lease runs out" \
		wait_log "$lid" "the lease was lost; the build was stopped" 30
	t_is "pg: ... because it could not renew it" \
		"$(grep -c "cannot renew the lease before it runs out" "$(bjson "$lid" | jq -r .log)")" 1
	t_ok "pg: worker A stops on SIGTERM" stop_worker "$wa" 30
	WORKERS=()
	t_ok "pg: cancel the build A left running" "$UPAAS" queue cancel "$lid"
	sleep 6.5   # A's lease runs out; the next claim ends the build
	t_ok "pg: worker --once" timeout 60 "$UPAAS" worker --once
	t_is "pg: the build is cancelled, never run twice" \
		"$(bjson "$lid" | jq -r '.state + " " + (.attempts | tostring)')" "cancelled 1"
	t_ok "pg: no work dir left" no_workdirs "$D/work"
	t_is "pg: no mount left" "$(t_mounts_below "$D")" ""
	sql "REVOKE ALL ON ALL TABLES IN SCHEMA public FROM $role" >/dev/null
	sql "DROP ROLE $role" >/dev/null
}
lost_db

t_done
