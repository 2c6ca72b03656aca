# tests/fleet/lib.sh - a small fleet on one machine, sourced by the fleet
# scenario (tests/fleet/fleet.sh) and the fleet bench (bench/fleet.sh).
#
# Every host lives in network namespaces of its own, on a bridge that lives
# in a namespace of its own too, so that nothing of the fleet touches the
# machine's own network:
#
#   <p>-sw      the switch: bridge br0, one veth per host (s-<host>)
#   <p>-svc     "services" (10.77.0.2): PostgreSQL (the queue) and a
#               single-node Ceph with radosgw (the S3 storage), both
#               listening on the bridge address
#   <p>-bN      builder hosts (10.77.0.1N): `upaas worker` on the shared queue
#   <p>-dN      deploy hosts (10.77.0.1NN): `upaas watch`
#
# (<p> = "upf" + a random id.) Each host has its own hostname (a UTS
# namespace) and mount namespace, held by an anchor process (sleep) that
# every command of the host joins with nsenter; its own paths under
# $F_DIR/<host>/ (state, cache, workdir, deploy root) and its own admin
# config ($F_DIR/<host>/upaas.cfg): builders and deploy hosts talk to
# PostgreSQL and radosgw over the bridge as real hosts would.
#
#   fleet_init DIR             where everything goes (DIR must exist); sets
#                              the EXIT trap that tears everything down
#   fleet_up B D [CFG]         services, B builders (b1..bB) and D deploy
#                              hosts (d1..dD); CFG: extra libconfig text
#                              for every host's config
#   fleet_run HOST CMD...      runs CMD in HOST's namespaces (svc too)
#   fleet_upaas HOST ARGS...   runs upaas with HOST's config there
#   fleet_bg HOST LOG CMD...   starts CMD in the background there, output to
#                              LOG; sets F_LAST_PID (remembered for teardown)
#   fleet_stop PID [SIGNAL]    signals a background process, waits for it
#   fleet_cut HOST             takes HOST's link down (switch side: packets
#                              are silently lost, as on a real partition)
#   fleet_restore HOST         brings it up again
#   fleet_rgw_restart [SECONDS]  kill -9 radosgw, wait, start it again
#   fleet_image                puts the suite's base image into the bucket
#   fleet_down                 stops and removes everything (the trap)
#   fleet_leaks                prints what the fleet left behind: network
#                              namespaces, processes in them, mounts below
#                              DIR; empty when nothing (call after fleet_down)
#
# Needs root, iproute2 (ip netns), util-linux (unshare, nsenter),
# PostgreSQL (Debian's postgresql) and Ceph (tests/radosgw.sh). fleet_up
# returns 77 when something is missing.

F_NET=10.77.0
F_SVC_IP=$F_NET.2
F_ID=
F_DIR=
F_HOSTS=()          # every host, svc included, in creation order
F_PIDS=()           # background processes started with fleet_bg
F_PG_BIN=
F_PG_DIR=
F_RGW_ENV=
F_UP=
declare -A F_ANCHOR=() F_IP=()

_f_src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

fleet_ns() { echo "upf$F_ID-$1"; }

fleet_init() {
	F_DIR=$(cd "${1:?fleet_init DIR}" && pwd)
	F_ID=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
	chmod 755 "$F_DIR"
	trap 'fleet_trap' EXIT
}

# The EXIT trap: tear down, then run the caller's own cleanup (F_CLEANUP).
fleet_trap() {
	local rc=$?
	fleet_down
	if [ -n "${F_CLEANUP:-}" ]; then
		(exit $rc)
		$F_CLEANUP
	fi
	exit $rc
}

_f_pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

# fleet_need: 77 with a reason when the machine cannot host a fleet.
fleet_need() {
	local c
	[ "$(id -u)" = 0 ] || { echo "the fleet needs root"; return 77; }
	for c in ip unshare nsenter jq curl; do
		command -v "$c" >/dev/null || { echo "'$c' is missing"; return 77; }
	done
	[ -x "$(_f_pg_bin)/initdb" ] || { echo "PostgreSQL is not installed"; return 77; }
	for c in ceph-mon ceph-osd radosgw radosgw-admin; do
		command -v "$c" >/dev/null || { echo "Ceph is not installed ($c)"; return 77; }
	done
	ip netns list >/dev/null 2>&1 || { echo "ip netns does not work here"; return 77; }
}

fleet_run() {
	local h=$1
	shift
	nsenter -t "${F_ANCHOR[$h]:?no host $h}" -n -u -m -- "$@"
}

fleet_upaas() {
	local h=$1
	shift
	fleet_run "$h" "$UPAAS" -c "$F_DIR/$h/upaas.cfg" "$@"
}

fleet_bg() {
	local h=$1 log=$2
	shift 2
	nsenter -t "${F_ANCHOR[$h]:?no host $h}" -n -u -m -- "$@" >"$log" 2>&1 </dev/null &
	F_LAST_PID=$!
	F_PIDS+=("$F_LAST_PID")
}

fleet_stop() {
	local pid=$1 sig=${2:-TERM}
	kill -"$sig" "$pid" 2>/dev/null || return 0
	for _ in $(seq 300); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null
	# reap it when it is a job of this shell (bash complains otherwise)
	if jobs -p | grep -qx "$pid"; then
		wait "$pid" 2>/dev/null
	fi
	return 0
}

# _f_host NAME IP: a namespace on the switch, with its anchor
_f_host() {
	local name=$1 ip=$2 ns sw
	ns=$(fleet_ns "$name")
	sw=$(fleet_ns sw)
	ip netns add "$ns" || return 1
	F_HOSTS+=("$name")
	ip -n "$sw" link add "s-$name" type veth peer name "e-$name" &&
	ip -n "$sw" link set "e-$name" netns "$ns" &&
	ip -n "$sw" link set "s-$name" master br0 up &&
	ip -n "$ns" link set "e-$name" name eth0 &&
	ip -n "$ns" addr add "$ip/24" dev eth0 &&
	ip -n "$ns" link set eth0 up &&
	ip -n "$ns" link set lo up || return 1
	# a default route through the services host, which forwards nothing:
	# the sandbox's user-mode network (pasta) wants a routable interface,
	# and the fleet reaches nothing beyond its bridge anyway
	[ "$name" = svc ] || ip -n "$ns" route add default via "$F_SVC_IP" || return 1
	F_IP[$name]=$ip
	# the anchor: a hostname and a mount namespace of the host's own
	ip netns exec "$ns" unshare --uts --mount --propagation private -- \
		bash -c 'hostname "$1" && exec sleep infinity' _ "$name" \
		</dev/null >/dev/null 2>&1 &
	F_ANCHOR[$name]=$!
	disown "${F_ANCHOR[$name]}"   # fleet_down kills it; no job notice
	local i
	for i in $(seq 100); do
		[ "$(nsenter -t "${F_ANCHOR[$name]}" -u hostname 2>/dev/null)" = "$name" ] && return 0
		sleep 0.05
	done
	echo "fleet: host $name did not come up" >&2
	return 1
}

# PostgreSQL in the services namespace, listening on the bridge address
# (trust for the fleet's subnet: a throwaway server).
_f_pg() {
	# a dir of its own: the postgres user may not reach into F_DIR
	F_PG_DIR=$(mktemp -d /var/tmp/upaas-fleet-pg.XXXXXX) || return 1
	chown postgres: "$F_PG_DIR"
	chmod 0700 "$F_PG_DIR"
	runuser -u postgres -- "$F_PG_BIN/initdb" -D "$F_PG_DIR/data" -U postgres --auth=trust \
		-E UTF8 --no-sync >"$F_DIR/svc/initdb.log" 2>&1 || return 1
	echo "host all all $F_NET.0/24 trust" >>"$F_PG_DIR/data/pg_hba.conf"
	fleet_run svc runuser -u postgres -- "$F_PG_BIN/pg_ctl" start -w -t 60 \
		-D "$F_PG_DIR/data" -l "$F_PG_DIR/server.log" \
		-o "-c listen_addresses='$F_SVC_IP' -c unix_socket_directories='$F_PG_DIR' \
		-c fsync=off -c max_connections=200 -c synchronous_commit=off" >/dev/null || return 1
	fleet_run svc runuser -u postgres -- "$F_PG_BIN/createdb" -h "$F_SVC_IP" -U postgres upaas
}

_f_rgw() {
	F_RGW_ENV=$F_DIR/svc/rgw.env
	fleet_run svc env RGW_ADDR="$F_SVC_IP" bash "$_f_src/tests/radosgw.sh" start "$F_RGW_ENV" \
		>"$F_DIR/svc/rgw.out" 2>&1 || return 1
	# shellcheck disable=SC1090
	. "$F_RGW_ENV"
}

fleet_rgw_restart() {
	fleet_run svc bash "$_f_src/tests/radosgw.sh" kill-rgw "$F_RGW_ENV" || return 1
	sleep "${1:-3}"
	fleet_run svc bash "$_f_src/tests/radosgw.sh" start-rgw "$F_RGW_ENV" \
		>>"$F_DIR/svc/rgw.out" 2>&1
}

# _f_config HOST: the admin config of a host: its own paths, S3 on the
# services host, the queue on its PostgreSQL; builders sign with the
# fleet's key, every host trusts it.
_f_config() {
	local h=$1 d=$F_DIR/$1 key=
	mkdir -p "$d"
	case $h in b*) key="key = \"$F_DIR/keys/signing.key\";" ;; esac
	cat >"$d/upaas.cfg" <<CFG
paths = { workdir = "$d/work"; cache = "$d/cache"; state = "$d/state"; };
storage = {
  handler = "s3";
  endpoint = "$RGW_ENDPOINT";
  region = "$RGW_REGION";
  bucket = "$RGW_BUCKET";
  path_style = true;
  access_key = "$RGW_ACCESS_KEY";
  secret_key = "$RGW_SECRET_KEY";
  retries = 10;
  timeout = 120;
};
queue = { url = "postgresql://postgres@$F_SVC_IP:5432/upaas"; lease_seconds = 10; };
deploy = { root = "$d/srv"; hooks_dir = "$d/hooks"; keep = 2; };
interpreters = { shell = { any = { packages = []; }; }; };
signing = { $key trusted = [ "$F_DIR/keys/signing.pub" ]; };
sandbox = { uid_base = 268435456; };
${F_EXTRA_CFG:-}
CFG
}

fleet_up() {
	local b=${1:?fleet_up B D} dn=${2:?fleet_up B D} i why
	F_EXTRA_CFG=${3:-}
	why=$(fleet_need) || { echo "$why"; return 77; }
	F_PG_BIN=$(_f_pg_bin)
	ip netns add "$(fleet_ns sw)" || return 1
	F_UP=1
	ip -n "$(fleet_ns sw)" link add br0 type bridge &&
	ip -n "$(fleet_ns sw)" link set br0 up &&
	ip -n "$(fleet_ns sw)" link set lo up || return 1
	_f_host svc "$F_SVC_IP" || return 1
	mkdir -p "$F_DIR/svc"
	_f_pg || { echo "fleet: PostgreSQL did not start: $(tail -n 5 "$F_PG_DIR/server.log" \
		"$F_DIR/svc/initdb.log" 2>/dev/null)"; return 1; }
	_f_rgw || { echo "fleet: radosgw did not start: $(tail -n 5 "$F_DIR/svc/rgw.out")"; return 1; }
	# the fleet's signing key: builders sign, every host trusts it
	mkdir -p -m 0700 "$F_DIR/keys"
	"$UPAAS" key generate --private "$F_DIR/keys/signing.key" \
		--public "$F_DIR/keys/signing.pub" >/dev/null || return 1
	for i in $(seq "$b"); do
		_f_host "b$i" "$F_NET.$((10 + i))" && _f_config "b$i" || return 1
	done
	for i in $(seq "$dn"); do
		_f_host "d$i" "$F_NET.$((100 + i))" && _f_config "d$i" || return 1
	done
}

# The suite's base image (tests/lib.sh t_image, in the shared local
# storage) copied into the bucket, object by object, from builder b1; its
# manifest signed again with the fleet's key (the suite's key signed it).
fleet_image() {
	local st=${UPAAS_TEST_SHARED:?}/storage f
	(cd "$st" && find images -type f ! -name '.tmp-*' | sort) >"$F_DIR/image.keys"
	[ -s "$F_DIR/image.keys" ] || { echo "fleet: no base image in '$st'" >&2; return 1; }
	while read -r f; do
		case $f in
		*.sig) continue ;;
		*.json)
			"$UPAAS" key sign --key "$F_DIR/keys/signing.key" --output "$F_DIR/image.sig" \
				"$st/$f" >/dev/null &&
			fleet_upaas b1 -q storage put "$F_DIR/image.sig" "$f.sig" || return 1
			;;
		esac
		fleet_upaas b1 -q storage put "$st/$f" "$f" || return 1
	done <"$F_DIR/image.keys"
}

fleet_cut() { ip -n "$(fleet_ns sw)" link set "s-$1" down; }
fleet_restore() { ip -n "$(fleet_ns sw)" link set "s-$1" up; }

fleet_down() {
	local p h ns
	[ -n "$F_UP" ] || return 0
	for p in "${F_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
	for p in "${F_PIDS[@]}"; do fleet_stop "$p"; done
	F_PIDS=()
	if [ -n "$F_PG_DIR" ] && [ -n "${F_ANCHOR[svc]:-}" ]; then
		fleet_run svc runuser -u postgres -- "$F_PG_BIN/pg_ctl" stop -D "$F_PG_DIR/data" \
			-m immediate -w >/dev/null 2>&1
	fi
	[ -n "$F_RGW_ENV" ] && [ -f "$F_RGW_ENV" ] &&
		bash "$_f_src/tests/radosgw.sh" stop "$F_RGW_ENV" >/dev/null 2>&1
	# whatever still runs in a namespace of ours is ours: the anchors, and
	# what a killed process left
	for h in "${F_HOSTS[@]}"; do
		ns=$(fleet_ns "$h")
		for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
	done
	for h in "${F_HOSTS[@]}"; do
		ns=$(fleet_ns "$h")
		for _ in $(seq 50); do
			[ -z "$(ip netns pids "$ns" 2>/dev/null)" ] && break
			sleep 0.1
		done
		ip netns del "$ns" 2>/dev/null
	done
	ip netns del "$(fleet_ns sw)" 2>/dev/null
	F_HOSTS=()
	F_UP=
	[ -n "$F_PG_DIR" ] && rm -rf "$F_PG_DIR"
	return 0
}

fleet_leaks() {
	local ns p
	for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^upf$F_ID-"); do
		echo "network namespace $ns"
		for p in $(ip netns pids "$ns" 2>/dev/null); do
			echo "process $p in $ns: $(tr '\0' ' ' </proc/"$p"/cmdline 2>/dev/null)"
		done
	done
	awk -v r="$F_DIR" 'index($5, r) == 1 {print "mount " $5}' /proc/self/mountinfo
	[ -n "$F_PG_DIR" ] && [ -e "$F_PG_DIR" ] && echo "PostgreSQL dir '$F_PG_DIR'"
	# a process that runs something of the fleet's dir (a worker, a build)
	for p in /proc/[0-9]*; do
		grep -qsF "$F_DIR/" "$p/cmdline" 2>/dev/null &&
			echo "process ${p#/proc/}: $(tr '\0' ' ' <"$p/cmdline")"
	done
	if [ -n "$F_RGW_ENV" ] && [ -f "$F_RGW_ENV" ]; then
		echo "radosgw environment '$F_RGW_ENV'"
	fi
	return 0
}
