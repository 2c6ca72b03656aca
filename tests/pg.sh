#!/bin/bash
# tests/pg.sh start|url|stop - a throwaway PostgreSQL server for the tests.
#
# start: initdb (as the postgres user) into a new /var/tmp/upaas-pg.XXXXXX
# (its path is kept in $UPAAS_TEST_SHARED/pg.dir: the shared dir itself may
# be closed to the postgres user), listen only on a Unix socket in that dir,
# create the database "upaas", and print its URL
# (postgresql:///upaas?host=DIR&user=postgres). Idempotent: a running
# server is reused. stop: pg_ctl stop (by the server's PID file), then
# remove the dir. Needs Debian's postgresql package (apt-get install
# postgresql); start exits 77 when it is missing.
set -euo pipefail
shared=${UPAAS_TEST_SHARED:-/var/tmp/upaas-tests-shared}
dir=$(cat "$shared/pg.dir" 2>/dev/null || true)
data=$dir/data
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)

url() { echo "postgresql:///upaas?host=$dir&user=postgres"; }

running() { [ -n "$dir" ] && [ -n "$bin" ] && [ -f "$data/postmaster.pid" ] &&
	runuser -u postgres -- "$bin/pg_ctl" status -D "$data" >/dev/null 2>&1; }

start() {
	if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
		echo "pg.sh: PostgreSQL is not installed (apt-get install postgresql)" >&2
		exit 77
	fi
	mkdir -p "$shared"
	exec 9>"$shared/pg.lock"
	flock 9
	if running; then
		url
		return
	fi
	[ -n "$dir" ] && rm -rf "$dir"
	dir=$(mktemp -d /var/tmp/upaas-pg.XXXXXX)
	data=$dir/data
	echo "$dir" >"$shared/pg.dir"
	chown postgres: "$dir"
	chmod 0700 "$dir"
	runuser -u postgres -- "$bin/initdb" -D "$data" -U postgres --auth=trust \
		-E UTF8 --no-sync >"$dir/initdb.log" 2>&1 || {
		cat "$dir/initdb.log" >&2
		exit 1
	}
	# No TCP: only the socket in $dir, which nobody else can reach.
	# 9>&-: the server must not inherit (and hold) the lock.
	runuser -u postgres -- "$bin/pg_ctl" start -w -t 60 -D "$data" -l "$dir/server.log" 9>&- \
		-o "-c listen_addresses='' -c unix_socket_directories='$dir' -c fsync=off \
		-c max_connections=200 -c synchronous_commit=off" >/dev/null || {
		cat "$dir/server.log" >&2
		exit 1
	}
	runuser -u postgres -- "$bin/createdb" -h "$dir" -U postgres upaas
	url
}

stop() {
	[ -n "$dir" ] && [ -d "$dir" ] || return 0
	if running; then
		runuser -u postgres -- "$bin/pg_ctl" stop -D "$data" -m fast -w >/dev/null
	fi
	rm -rf "$dir" "$shared/pg.dir"
}

case "${1:-}" in
start) start ;;
url) running && url ;;
stop) stop ;;
*) echo "usage: tests/pg.sh start|url|stop" >&2; exit 2 ;;
esac
