# bench/lib.sh - timing and medians for the bench scripts (sourced).
#
#   bench_now              the wall clock: seconds since the epoch, with
#                          nanoseconds ("1764446400.123456789")
#   bench_elapsed T0 [T1]  the seconds from T0 to T1 (bench_now values;
#                          T1 defaults to now), with 3 decimals
#   bench_time CMD [ARG...]
#                          runs CMD with its stdout discarded (stderr is the
#                          caller's) and prints the seconds it took, with 3
#                          decimals; returns CMD's exit status
#   median N...            the median of the numbers given as arguments
#                          (any unit): the middle one of the sorted list, the
#                          mean of the two middle ones for an even count;
#                          printed with 6 decimals. No number: an error.
#
# The callers format what they print (printf '%.2f' ...).

bench_now() { date +%s.%N; }

bench_elapsed() {
	awk -v a="$1" -v b="${2:-$(bench_now)}" 'BEGIN { printf "%.3f\n", b - a }'
}

bench_time() {
	local t0 rc=0
	t0=$(bench_now)
	"$@" >/dev/null || rc=$?
	bench_elapsed "$t0"
	return "$rc"
}

median() {
	[ "$#" -gt 0 ] || { echo "median: no numbers" >&2; return 1; }
	printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
		END { printf "%.6f\n", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
