#!/bin/bash
# bench/s3.sh - upload and download a 200 MB package to a local radosgw with
# `upaas storage put/get` and with `aws s3 cp`, side by side in one run on
# the same server and file. Prints the median of RUNS runs and the ratio
# upaas/awscli (below 1: upaas is faster).
#
#   bench/s3.sh [UPAAS]          UPAAS defaults to ./upaas (a build dir)
#   SIZE_MB=200 RUNS=3 bench/s3.sh
#   RGW_ENV=/path/env bench/s3.sh   reuse a radosgw started by tests/radosgw.sh
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/bench/lib.sh"
UPAAS=$(realpath "${1:-${UPAAS:-./upaas}}")
SIZE_MB=${SIZE_MB:-200}
RUNS=${RUNS:-3}
[ -x "$UPAAS" ] || { echo "bench/s3.sh: no upaas binary at '$UPAAS'" >&2; exit 2; }
AWS=/usr/bin/aws
[ -x "$AWS" ] || AWS=$(command -v aws) || { echo "bench/s3.sh: install awscli" >&2; exit 2; }

work=$(mktemp -d /var/tmp/upaas-bench-s3.XXXXXX)
own_rgw=false
cleanup() {
	$own_rgw && bash "$here/tests/radosgw.sh" stop "$RGW_ENV" >/dev/null 2>&1
	rm -rf "$work"
}
trap cleanup EXIT
if [ -z "${RGW_ENV:-}" ]; then
	RGW_ENV=$work/rgw.env
	own_rgw=true
	echo "starting radosgw ..." >&2
	bash "$here/tests/radosgw.sh" start "$RGW_ENV" >"$work/rgw.out" 2>&1 ||
		{ cat "$work/rgw.out" >&2; exit 1; }
fi
. "$RGW_ENV"

export AWS_ACCESS_KEY_ID=$RGW_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$RGW_SECRET_KEY
export AWS_DEFAULT_REGION=$RGW_REGION AWS_EC2_METADATA_DISABLED=true
export AWS_REQUEST_CHECKSUM_CALCULATION=when_required AWS_RESPONSE_CHECKSUM_VALIDATION=when_required
export UPAAS_CONFIG=$work/upaas.cfg
# upaas with its defaults (16 MiB parts, 4 in flight, signed payload)
cat >"$UPAAS_CONFIG" <<CFG
paths = { workdir = "$work/w"; cache = "$work/c"; state = "$work/s"; };
storage = {
  handler = "s3";
  endpoint = "$RGW_ENDPOINT";
  bucket = "$RGW_BUCKET";
  path_style = true;
  access_key = "$RGW_ACCESS_KEY";
  secret_key = "$RGW_SECRET_KEY";
};
CFG

file=$work/package.tar.zst
head -c $((SIZE_MB * 1000 * 1000)) /dev/urandom >"$file"

# t CMD...: prints the wall-clock seconds CMD took (fails the bench if CMD fails)
t() {
	bench_time "$@" 2>"$work/err" ||
		{ echo "bench/s3.sh: failed: $*" >&2; cat "$work/err" >&2; exit 1; }
}

declare -a up_u up_a down_u down_a
for r in $(seq "$RUNS"); do
	rm -f "$work/out.u" "$work/out.a"
	up_u+=("$(t "$UPAAS" -q storage put "$file" bench/upaas.bin)")
	up_a+=("$(t "$AWS" --endpoint-url "$RGW_ENDPOINT" s3 cp --quiet "$file" "s3://$RGW_BUCKET/bench/aws.bin")")
	down_u+=("$(t "$UPAAS" -q storage get bench/aws.bin "$work/out.u")")
	down_a+=("$(t "$AWS" --endpoint-url "$RGW_ENDPOINT" s3 cp --quiet "s3://$RGW_BUCKET/bench/upaas.bin" "$work/out.a")")
	cmp -s "$file" "$work/out.u" && cmp -s "$file" "$work/out.a" ||
		{ echo "bench/s3.sh: downloaded bytes differ" >&2; exit 1; }
	echo "run $r: upload upaas ${up_u[-1]} s, awscli ${up_a[-1]} s; download upaas ${down_u[-1]} s, awscli ${down_a[-1]} s" >&2
done

mu=$(median "${up_u[@]}"); ma=$(median "${up_a[@]}")
md=$(median "${down_u[@]}"); mad=$(median "${down_a[@]}")
rate() { echo "scale=1; $SIZE_MB / $1" | bc -l; }
ratio() { echo "scale=2; $1 / $2" | bc -l; }
printf '\n%s MB, median of %s runs, radosgw at %s\n' "$SIZE_MB" "$RUNS" "$RGW_ENDPOINT"
printf '%-9s %10s %10s %10s %10s %14s\n' "" "upaas s" "MB/s" "awscli s" "MB/s" "upaas/awscli"
printf '%-9s %10.2f %10s %10.2f %10s %14s\n' upload "$mu" "$(rate "$mu")" "$ma" "$(rate "$ma")" "$(ratio "$mu" "$ma")"
printf '%-9s %10.2f %10s %10.2f %10s %14s\n' download "$md" "$(rate "$md")" "$mad" "$(rate "$mad")" "$(ratio "$md" "$mad")"
