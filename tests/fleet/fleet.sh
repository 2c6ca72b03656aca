#!/bin/bash
# tests/fleet/fleet.sh - a whole fleet on one machine (tests/fleet/lib.sh):
# B=3 builder hosts on one PostgreSQL queue, D=6 deploy hosts running
# `upaas watch`, one radosgw, 8 tiny apps and 24 queued builds (three refs
# of each app). Faults while it runs: a builder killed with SIGKILL in the
# middle of a build, radosgw restarted, a deploy host's link cut for a
# while. At the end: every build ran exactly once and succeeded (the
# queue's records), never two of one app at once, the killed builder's
# build finished by another builder, taken up at the first free slot once
# its lease ran out; apps/_index names every current (no update lost
# between builders); an idle watcher pays one request a round; every deploy host runs
# every app's current, `fleet status` says so and exits 0; and nothing is
# left: no namespace, mount or process.
#
# FLEET_B, FLEET_D, FLEET_APPS and FLEET_REFS change the size (for a quick
# look by hand; the suite runs the defaults).
. "${UPAAS_SRCDIR:?run through make check}/tests/lib.sh" || exit 99
. "$UPAAS_SRCDIR/tests/fleet/lib.sh" || exit 99

B=${FLEET_B:-3}
D=${FLEET_D:-6}
APPS=${FLEET_APPS:-8}
REFS=${FLEET_REFS:-3}
LEASE=10          # queue.lease_seconds of the fleet (lib.sh): short, yet
                  # long enough that a loaded 2-core host renews it in time
START=$SECONDS

t_image || t_bail "cannot create the base image"
mkdir -p "$T_ROOT/fleet"
F_CLEANUP=t_cleanup
fleet_init "$T_ROOT/fleet"
# (not in a $(...): the fleet's state lives in this shell)
fleet_up "$B" "$D" 'apps = { keep_packages = 4; };' >"$T_ROOT/up.out" 2>&1
case $? in
0) ;;
77) t_skip_all "no fleet here: $(tail -n 1 "$T_ROOT/up.out")" ;;
*) t_bail "the fleet did not come up: $(tail -n 5 "$T_ROOT/up.out")" ;;
esac
t_pass "the fleet is up: services, $B builders, $D deploy hosts ($((SECONDS - START)) s)"
t_is "each host has its own hostname" "$(fleet_run b$B hostname) $(fleet_run d$D hostname)" "b$B d$D"
t_is "a deploy host reaches radosgw over the bridge" \
	"$(fleet_run d1 curl -s --noproxy '*' -o /dev/null -w '%{http_code}' "$RGW_ENDPOINT/")" 200
t_is "the fleet has no address or link in the machine's own network" \
	"$(ip -o addr show | grep -F " $F_NET." ; ip -o link show | grep -E ': (s|e)-(svc|b[0-9]|d[0-9])')" ""
fleet_image || t_bail "cannot put the base image into the bucket"

# ----------------------------------------------------------------- the apps
apps=()
for i in $(seq "$APPS"); do
	a=app$i
	apps+=("$a")
	r=$T_ROOT/repos/$a
	mkdir -p "$r"
	git -C "$r" init -q -b main
	# one commit per ref, each with its own version file
	for k in $(seq "$REFS"); do
		echo "$a r$k" >"$r/version"
		cat >"$r/.upaas.cfg" <<META
interpreter = { type = "shell"; };
actions = { main = [ "echo $a r$k > /home/app/version", "sleep 1" ]; };
META
		git -C "$r" add -A
		git -C "$r" -c user.name=t -c user.email=t@localhost commit -qm "r$k"
		git -C "$r" branch "r$k"
	done
	fleet_upaas b1 -q app add "$a" --repo "$r" >/dev/null || t_bail "cannot register $a"
done

# ------------------------------------------------------------- the watchers
for i in $(seq "$D"); do
	fleet_bg "d$i" "$T_ROOT/watch-d$i.log" "$UPAAS" -c "$F_DIR/d$i/upaas.cfg" -vv watch \
		--interval 2 --jitter 1 "${apps[@]}"
done

# ---------------------------------------------------------- the builds
declare -A WPID
for i in $(seq "$B"); do
	fleet_bg "b$i" "$T_ROOT/worker-b$i.log" "$UPAAS" -c "$F_DIR/b$i/upaas.cfg" -v worker \
		--concurrency 2
	WPID[b$i]=$F_LAST_PID
done
T_QUEUE=$(date +%s%3N)
for k in $(seq "$REFS"); do
	for a in "${apps[@]}"; do
		fleet_upaas b1 -q queue add --ref "r$k" "$a" >/dev/null || t_bail "cannot queue $a r$k"
	done
done
N=$((APPS * REFS))
blist() { fleet_upaas b1 queue list --json; }
t_is "$N builds queued" "$(blist | jq length)" "$N"
count() { blist | jq "[.[] | select(.state == \"$1\")] | length"; }

# fault 1: SIGKILL a builder in the middle of a build (b2, or the only one)
victim=b$((B > 1 ? 2 : 1))
kid=
for _ in $(seq 600); do
	kid=$(blist | jq -r --arg h "$victim:${WPID[$victim]}" \
		'[.[] | select(.state == "running" and .worker == $h)][0].id // empty')
	[ -n "$kid" ] && break
	sleep 0.1
done
[ -n "$kid" ] || t_bail "builder $victim never ran a build"
sleep 1.5   # in the middle of it (its main action sleeps)
T_KILL=$(date +%s%3N)
kill -KILL "${WPID[$victim]}"
# every build it ran then (two slots): once it is gone, and a moment later,
# so that a claim it sent just before it died is committed and counted
wait "${WPID[$victim]}" 2>/dev/null
sleep 1
killed=$(blist | jq -c --arg h "$victim:${WPID[$victim]}" \
	'[.[] | select(.state == "running" and .worker == $h) | .id]')
t_pass "builder $victim killed with SIGKILL during build $kid (it ran $killed)"

# fault 2: radosgw restarted once a third of the builds are done
for _ in $(seq 900); do
	[ "$(count succeeded)" -ge $((N / 3)) ] && break
	sleep 0.2
done
t0=$SECONDS
t_ok "radosgw restarted mid-run ($(count succeeded) of $N builds done)" fleet_rgw_restart 2
t_diag "radosgw was away $((SECONDS - t0)) s"

# fault 3: a deploy host's link cut for a while
cut=d$((D > 2 ? 3 : D))
fleet_cut "$cut"
t_pass "$cut cut off the network"
sleep 12
fleet_restore "$cut"
t_pass "$cut back on the network after 12 s"

# the killed builder comes back (as systemd would restart it): its sweep
# removes what the killed build left in its work dir
fleet_bg "$victim" "$T_ROOT/worker-$victim-2.log" "$UPAAS" -c "$F_DIR/$victim/upaas.cfg" -v worker \
	--concurrency 2
WPID[$victim]=$F_LAST_PID

wait_idle() {
	local end=$((SECONDS + $1))
	while [ $SECONDS -lt $end ]; do
		[ "$(blist | jq '[.[] | select(.state == "queued" or .state == "running")] | length')" = 0 ] &&
			return 0
		sleep 1
	done
	return 1
}
t_ok "every build ends" wait_idle 600
T_DONE=$(date +%s%3N)
L=$(blist)
t_is "every build succeeded" "$(jq '[.[] | select(.state == "succeeded")] | length' <<<"$L")" "$N"
t_diag "$(jq -r '.[] | select(.state != "succeeded") | "build \(.id) of \(.app): \(.state): \(.error)"' <<<"$L")"
t_is "each made its own package" "$(jq '[.[].package_id] | unique | length' <<<"$L")" "$N"
t_is "every build ran exactly once: one attempt each but the killed builder's" \
	"$(jq -c --argjson k "$killed" '[.[] | select(.id as $i | $k | index($i) | not) | .attempts] | unique' <<<"$L")" "[1]"
t_is "the killed builder's builds: two attempts each, succeeded" \
	"$(jq -c --argjson k "$killed" '[.[] | select(.id as $i | $k | index($i)) | .state + " " + (.attempts | tostring)] | unique' <<<"$L")" \
	'["succeeded 2"]'
K=$(jq --arg k "$kid" '.[] | select(.id == $k)' <<<"$L")
t_fail "... finished by another builder" test "$(jq -r '.worker | split(":")[0]' <<<"$K")" = "$victim"
again=$(( ($(jq .started_at_ms <<<"$K") - T_KILL) ))
t_diag "the killed build started again $again ms after the kill (lease $LEASE s)"
# the lease runs out at most LEASE s after the kill (it was renewed before);
# from then on the killed builds come first (the oldest queued): no other
# build may start between then and their new start, whose delay is only
# the wait for a free slot of a busy builder
t_is "... at the first free slot once its lease ran out: nothing started before it" \
	"$(jq -r --argjson k "$killed" --argjson from $((T_KILL + LEASE * 1000 + 500)) \
		--argjson to "$(jq .started_at_ms <<<"$K")" \
		'.[] | select(.id as $i | $k | index($i) | not) |
		select(.started_at_ms > $from and .started_at_ms < $to) | .id' <<<"$L")" ""
# (how long after the kill depends on when a slot frees, on a loaded
# machine up to the length of a build: a number, not a check)
t_is "never two builds of one app at once" \
	"$(jq -r 'group_by(.app)[] | sort_by(.started_at_ms) |
		[range(1; length) as $i | select(.[$i].started_at_ms < .[$i - 1].finished_at_ms)
		 | .[$i].id][]' <<<"$L")" ""
# (a build names the builder of its last attempt: the killed builder ran
# its killed builds, and may find nothing left to do once it is back)
t_is "the builds spread over every builder" \
	"$(jq -r --arg v "$victim" --argjson k "$killed" \
		'[.[].worker | split(":")[0]] + (if ($k | length) > 0 then [$v] else [] end) |
		 unique | join(" ")' <<<"$L")" \
	"$(seq -f 'b%g' "$B" | tr '\n' ' ' | sed 's/ $//')"
t_diag "$N builds in $(((T_DONE - T_QUEUE) / 1000)) s: $(jq -r 'group_by(.worker | split(":")[0])[] |
	"\(.[0].worker | split(":")[0]): \(length)"' <<<"$L" | tr '\n' ' ')"

# --------------------------------------------------------- convergence
# every app on every host, current: the exit status alone would not see a
# host that never reported
converged() {
	fleet_upaas d1 fleet status >"$T_ROOT/status.out" 2>&1 &&
	[ "$(fleet_upaas d1 fleet status --json |
		jq '[.apps[].hosts[] | select(.state == "current")] | length')" = $((APPS * D)) ]
}
t0=$SECONDS
for _ in $(seq 240); do converged && break; sleep 1; done
t_ok "fleet status: every host runs every app's current (exit 0)" converged
t_diag "converged $((SECONDS - t0)) s after the last build" "$(tail -n 1 "$T_ROOT/status.out")"
S=$(fleet_upaas d1 fleet status --json)
t_is "... $APPS apps × $D hosts, all current" \
	"$(jq -c '[.drift, (.apps | length), ([.apps[].hosts[]] | length), ([.apps[].hosts[] | select(.state == "current")] | length)]' <<<"$S")" \
	"[0,$APPS,$((APPS * D)),$((APPS * D))]"
bad=
want_index=
for a in "${apps[@]}"; do
	cur=$(fleet_upaas d1 storage get "apps/$a/current" - | sed -n 's/.*"id": *"\([^"]*\)".*/\1/p')
	[ -n "$cur" ] || cur=$(fleet_upaas d1 storage get "apps/$a/current" - | tail -n 1)
	want_index="$want_index $a=$cur"
	for i in $(seq "$D"); do
		got=$(readlink "$F_DIR/d$i/srv/$a/current")
		[ "$got" = "revisions/$cur" ] || bad="$bad d$i/$a:${got:-none}!=$cur"
	done
done
t_is "every deploy root's current is the app's current in storage" "$bad" ""
# three builders updated apps/_index under the queue's lock: none lost
t_is "apps/_index names every app's current (verified by a deploy host)" \
	"$(fleet_upaas d1 package index --json | jq -r '.apps | to_entries[] | " \(.key)=\(.value.id)"' |
		tr -d '\n')" "$want_index"
# idle watching: after convergence a round reads the index alone (and a
# heartbeat a minute); the median of the last rounds' costs
idle_cost() {
	grep 'watch: round' "$T_ROOT/watch-d$1.log" | tail -n 6 |
		sed -n 's/.*storage: \([0-9]*\) requests.*/\1/p' |
		awk 'NR > 1 { print $1 - p } { p = $1 }' | sort -n | sed -n 3p
}
sleep 12
t_is "an idle watcher of $APPS apps: one request a round (median of the last 5, d1 d$D)" \
	"$(idle_cost 1) $(idle_cost "$D")" "1 1"
t_match "the cut host saw the cut" "$(cat "$T_ROOT/watch-$cut.log")" "error|warning"

# what idle watching costs: the last round's line of each watcher
for i in $(seq "$D"); do
	t_diag "d$i: $(grep 'watch: round' "$T_ROOT/watch-d$i.log" | tail -n 1 | sed 's/.*watch: //')"
done

# ------------------------------------------------------------- teardown
builder_mounts=$(for i in $(seq "$B"); do fleet_run "b$i" cat /proc/self/mountinfo |
	awk -v r="$F_DIR/b$i/" 'index($5, r) == 1 {print $5}'; done)
t_is "no build mount left on a builder (the killed one included)" "$builder_mounts" ""
fleet_down
t_is "nothing left: no namespace, process or mount" "$(fleet_leaks)" ""
t_diag "the scenario took $((SECONDS - START)) s"
# the hosts' trees (each revision a whole root: about a million files in
# all), one rm per host at once: removing them is most of the wall time
t0=$SECONDS
for d in "$F_DIR"/*/; do rm -rf "$d" & done
wait
t_diag "their files removed in $((SECONDS - t0)) s"
t_done
