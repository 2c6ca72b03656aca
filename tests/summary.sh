#!/bin/sh
# Prints the closing line "N passed, N failed[, N skipped]" over the results
# that automake's TAP driver wrote to every .trs file below $1.
top=${1:-.}
find "$top" -name '*.trs' -exec cat {} + 2>/dev/null | awk '
	/^:test-result: (PASS|XFAIL)/ { p++ }
	/^:test-result: (FAIL|XPASS|ERROR)/ { f++ }
	/^:test-result: SKIP/ { s++ }
	END {
		line = sprintf("%d passed, %d failed", p, f)
		if (s) line = line sprintf(", %d skipped", s)
		print line
		exit (f > 0 || p == 0)
	}'
