#!/bin/bash
# tests/run-all.sh BUILDDIR - runs the whole suite in BUILDDIR (unit tests,
# then integration tests in order), with a fresh shared store for this run,
# and closes with "N passed, N failed".
set -uo pipefail
builddir=$(cd "${1:?usage: tests/run-all.sh BUILDDIR}" && pwd)
srcdir=$(cd "$(dirname "$0")/.." && pwd)

shared=$(mktemp -d /var/tmp/upaas-tests-shared.XXXXXX)
export UPAAS_TEST_SHARED=$shared
cleanup() {
	[ -x "$srcdir/tests/radosgw.sh" ] && "$srcdir/tests/radosgw.sh" stop >/dev/null 2>&1
	[ -x "$srcdir/tests/pg.sh" ] && "$srcdir/tests/pg.sh" stop >/dev/null 2>&1
	if awk -v r="$shared" 'index($5, r) == 1 {f=1} END {exit !f}' /proc/self/mountinfo; then
		echo "run-all: mounts left below $shared" >&2
	else
		rm -rf "$shared"
	fi
}
trap cleanup EXIT

# One PostgreSQL server for the run (the queue's unit and integration tests).
if url=$("$srcdir/tests/pg.sh" start 2>"$shared/pg.err"); then
	export UPAAS_TEST_PG_URL=$url
else
	echo "run-all: no PostgreSQL server: $(cat "$shared/pg.err")" >&2
fi

cd "$builddir"
find . -name '*.trs' -delete
start=$(date +%s)
make -k check VERBOSE=1 >"$builddir/check.out" 2>&1
rc=$?
grep -E '^(PASS|FAIL|ERROR|SKIP|XFAIL|XPASS):' "$builddir/check.out" | sed 's/^/  /' | tail -n 400
if [ $rc -ne 0 ]; then
	# show the failing tests' own logs
	for trs in $(grep -l -E ':test-result: (FAIL|ERROR|XPASS)' $(find . -name '*.trs')); do
		log=${trs%.trs}.log
		echo "=== ${log#./} (failures) ==="
		grep -E -B2 -A25 '^not ok|Bail out' "$log" | head -n 120
	done
	grep -E 'error|Error' "$builddir/check.out" | grep -v -E '^(PASS|ok )' | head -n 20
fi
echo "test run took $(( $(date +%s) - start )) s"
"$srcdir/tests/summary.sh" "$builddir"
sum=$?
[ $rc -eq 0 ] && [ $sum -eq 0 ]
