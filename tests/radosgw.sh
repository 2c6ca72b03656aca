#!/bin/bash
# tests/radosgw.sh - a throw-away single-node Ceph with radosgw on 127.0.0.1,
# the real S3 server of the integration tests and the benchmark.
#
#   tests/radosgw.sh start ENVFILE    install if needed, start, write ENVFILE
#   tests/radosgw.sh stop ENVFILE     kill every daemon by PID, remove the dir
#   tests/radosgw.sh kill-rgw ENVFILE kill -9 radosgw only (fault tests)
#   tests/radosgw.sh start-rgw ENVFILE start radosgw again, same port and keys
#
# ENVFILE is shell: RGW_ENDPOINT, RGW_ACCESS_KEY, RGW_SECRET_KEY, RGW_BUCKET,
# RGW_REGION, RGW_DIR and the daemons' PIDs. One ceph-mon, one ceph-osd with
# `osd objectstore = memstore` (nothing touches a disk but logs) and radosgw
# with the beast frontend; cephx is off inside the cluster, but radosgw checks
# S3 signatures for real. Exit status 77 when the packages cannot be installed.
set -eu

cmd=${1:?usage: radosgw.sh start|stop|kill-rgw|start-rgw ENVFILE}
envfile=${2:?usage: radosgw.sh $cmd ENVFILE}

RGW_PKGS="ceph-mon ceph-osd radosgw ceph-common"

die() { echo "radosgw.sh: $*" >&2; exit 1; }

install_pkgs() {
	if command -v ceph-mon >/dev/null && command -v ceph-osd >/dev/null &&
		command -v radosgw >/dev/null && command -v radosgw-admin >/dev/null &&
		command -v monmaptool >/dev/null && command -v ceph >/dev/null; then
		return 0
	fi
	[ "$(id -u)" = 0 ] || { echo "radosgw.sh: ceph is not installed and not root" >&2; exit 77; }
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=600 \
		--no-install-recommends $RGW_PKGS >&2 || {
		echo "radosgw.sh: cannot install $RGW_PKGS" >&2
		exit 77
	}
}

# A TCP port nobody listens on (and, being random, that a parallel run is
# unlikely to pick at the same moment).
free_port() {
	local p
	for _ in $(seq 100); do
		p=$((20000 + RANDOM % 40000))
		# connecting fails when nobody listens (no iproute2 needed)
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	die "no free port"
}

# wait_for SECONDS DESCRIPTION COMMAND...: polls every 0.2 s
wait_for() {
	local t=$1 what=$2
	shift 2
	local end=$((SECONDS + t))
	until "$@" >/dev/null 2>&1; do
		[ "$SECONDS" -lt "$end" ] || { echo "radosgw.sh: timed out waiting for $what" >&2; return 1; }
		sleep 0.2
	done
}

start_rgw() {
	# shellcheck disable=SC1090
	. "$envfile"
	# a radosgw killed with SIGKILL left its pid file: reading that one
	# back would record a dead pid (and a later kill-rgw would miss)
	rm -f "$RGW_DIR/run/rgw.pid"
	radosgw -c "$RGW_DIR/ceph.conf" -n client.rgw --no-mon-config \
		--rgw-frontends "beast endpoint=127.0.0.1:$RGW_PORT" \
		--pid-file "$RGW_DIR/run/rgw.pid" --log-file "$RGW_DIR/log/rgw.log"
	wait_for 60 "radosgw pid file" test -s "$RGW_DIR/run/rgw.pid"
	sed -i '/^RGW_PID=/d' "$envfile"
	echo "RGW_PID=$(tr -dc 0-9 <"$RGW_DIR/run/rgw.pid")" >>"$envfile"
	wait_for 60 "radosgw on port $RGW_PORT" curl -sf -o /dev/null "http://127.0.0.1:$RGW_PORT/"
}

kill_pid() {  # kill_pid PID [SIGNAL]: kills and waits for it to go away
	local pid=$1 sig=${2:-TERM}
	[ -n "$pid" ] || return 0
	kill -"$sig" "$pid" 2>/dev/null || return 0
	for _ in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
}

start() {
	install_pkgs
	local dir mon_port rgw_port fsid
	dir=$(mktemp -d /var/tmp/upaas-rgw.XXXXXX)
	mon_port=$(free_port)
	rgw_port=$(free_port)
	fsid=$(cat /proc/sys/kernel/random/uuid)
	mkdir -p "$dir/run" "$dir/log" "$dir/mon" "$dir/osd/ceph-0"
	cat >"$dir/ceph.conf" <<EOF
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$mon_port
ms bind msgr1 = false
public addr = 127.0.0.1
auth cluster required = none
auth service required = none
auth client required = none
run dir = $dir/run
admin socket = $dir/run/\$name.asok
log file = $dir/log/\$name.log
pid file = $dir/run/\$name.pid
keyring = /dev/null
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon max pg per osd = 1000
mon warn on pool no redundancy = false
mon data avail warn = 1
mon data avail crit = 1
# every pool radosgw creates is an osdmap change: do not batch them for 1 s
paxos propose interval = 0.01
paxos min wait = 0.01
[mon]
mon data = $dir/mon/ceph-\$id
[osd]
osd data = $dir/osd/ceph-\$id
osd objectstore = memstore
memstore device bytes = 3221225472
osd max object size = 134217728
[client.rgw]
# radosgw insists on a secure mon connection by default, which auth none
# cannot give
ms mon client mode = crc
rgw frontends = beast endpoint=127.0.0.1:$rgw_port
rgw data = $dir/rgw
rgw dns name = localhost
rgw enable usage log = false
# small listing pages, so that the tests exercise continuation tokens
rgw max listing results = 10
EOF
	cat >"$envfile" <<EOF
RGW_DIR=$dir
RGW_PORT=$rgw_port
RGW_ENDPOINT=http://127.0.0.1:$rgw_port
RGW_REGION=us-east-1
RGW_BUCKET=upaas-test
RGW_ACCESS_KEY=UPAASTESTACCESSKEY01
RGW_SECRET_KEY=upaasTestSecretKey0123456789abcdefghijAB
EOF
	local c="-c $dir/ceph.conf"
	monmaptool --create --clobber --addv a "[v2:127.0.0.1:$mon_port]" --fsid "$fsid" \
		"$dir/monmap" >/dev/null
	ceph-mon $c --mkfs -i a --monmap "$dir/monmap" >"$dir/log/mkfs.log" 2>&1 ||
		die "ceph-mon --mkfs failed: $(tail -n 5 "$dir/log/mkfs.log")"
	ceph-mon $c -i a
	wait_for 30 "ceph-mon pid file" test -s "$dir/run/mon.a.pid"
	echo "MON_PID=$(tr -dc 0-9 <"$dir/run/mon.a.pid")" >>"$envfile"
	wait_for 30 "ceph-mon" ceph $c --connect-timeout 5 mon stat

	local uuid id
	uuid=$(cat /proc/sys/kernel/random/uuid)
	id=$(ceph $c osd new "$uuid")
	ceph-osd $c -i "$id" --mkfs --osd-uuid "$uuid" >"$dir/log/osd-mkfs.log" 2>&1 ||
		die "ceph-osd --mkfs failed: $(tail -n 5 "$dir/log/osd-mkfs.log")"
	ceph-osd $c -i "$id" 2>>"$dir/log/osd-start.log"
	wait_for 30 "ceph-osd pid file" test -s "$dir/run/osd.$id.pid"
	echo "OSD_PID=$(tr -dc 0-9 <"$dir/run/osd.$id.pid")" >>"$envfile"
	wait_for 60 "ceph-osd up" sh -c "ceph $c osd stat | grep -q '1 up'"

	start_rgw
	# shellcheck disable=SC1090
	. "$envfile"
	radosgw-admin $c -n client.rgw user create --uid=upaas --display-name=upaas \
		--access-key="$RGW_ACCESS_KEY" --secret-key="$RGW_SECRET_KEY" >/dev/null 2>>"$RGW_DIR/log/admin.log"
	# The bucket, created with a signed request of our own (no awscli needed).
	make_bucket
	echo "radosgw up at $RGW_ENDPOINT, bucket '$RGW_BUCKET', environment in '$envfile'"
}

# PUT /bucket signed with curl's own SigV4 (enough for a bucket creation,
# which has an empty body).
make_bucket() {
	local i
	for i in $(seq 50); do
		if curl -sf -X PUT -o /dev/null --user "$RGW_ACCESS_KEY:$RGW_SECRET_KEY" \
			--aws-sigv4 "aws:amz:$RGW_REGION:s3" \
			-H "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" \
			"$RGW_ENDPOINT/$RGW_BUCKET"; then
			return 0
		fi
		sleep 0.2
	done
	die "cannot create bucket '$RGW_BUCKET'"
}

stop() {
	[ -f "$envfile" ] || return 0
	# shellcheck disable=SC1090
	. "$envfile"
	kill_pid "${RGW_PID:-}"
	kill_pid "${OSD_PID:-}"
	kill_pid "${MON_PID:-}"
	case "${RGW_DIR:-}" in
	/var/tmp/upaas-rgw.*) rm -rf "$RGW_DIR" ;;
	esac
	rm -f "$envfile"
}

case $cmd in
start) start ;;
stop) stop ;;
kill-rgw)
	. "$envfile"
	kill_pid "$RGW_PID" KILL
	;;
start-rgw) start_rgw ;;
*) die "unknown command '$cmd'" ;;
esac
