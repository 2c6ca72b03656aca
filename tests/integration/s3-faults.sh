#!/bin/bash
# tests/integration/s3-faults.sh - the s3 handler when radosgw dies: a
# multipart upload retries, then fails cleanly (no object under the key,
# the multipart upload aborted once the server is back), and single
# requests to a dead server fail with one clear error.
. "$UPAAS_SRCDIR/tests/lib.sh"

RGW_ENV=$T_ROOT/rgw.env
RGW_SH=$UPAAS_SRCDIR/tests/radosgw.sh
UP_PID=
s3_cleanup() {
	local rc=$?
	[ -n "$UP_PID" ] && kill "$UP_PID" 2>/dev/null
	exec 7>&- 2>/dev/null
	bash "$RGW_SH" stop "$RGW_ENV" >/dev/null 2>&1
	(exit $rc)
	t_cleanup
}
trap s3_cleanup EXIT

bash "$RGW_SH" start "$RGW_ENV" >"$T_ROOT/rgw.out" 2>&1
case $? in
0) ;;
77) t_skip_all "no radosgw: $(tail -n 1 "$T_ROOT/rgw.out")" ;;
*) t_bail "radosgw did not start: $(tail -n 5 "$T_ROOT/rgw.out" | tr '\n' ' ')" ;;
esac
. "$RGW_ENV"

AWS=/usr/bin/aws
[ -x "$AWS" ] || AWS=$(command -v aws || true)
[ -n "$AWS" ] || t_bail "awscli is missing (apt-get install awscli)"
export AWS_ACCESS_KEY_ID=$RGW_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$RGW_SECRET_KEY
export AWS_DEFAULT_REGION=$RGW_REGION AWS_EC2_METADATA_DISABLED=true
export AWS_REQUEST_CHECKSUM_CALCULATION=when_required AWS_RESPONSE_CHECKSUM_VALIDATION=when_required
s3api() { "$AWS" --endpoint-url "$RGW_ENDPOINT" s3api "$@" --bucket "$RGW_BUCKET"; }
uploads() { s3api list-multipart-uploads --query 'Uploads[].Key' --output text 2>&1; }

cat >"$T_CFG" <<CFG
paths = {
  workdir = "$T_ROOT/work";
  cache = "$UPAAS_TEST_SHARED/cache";
  state = "$T_ROOT/state";
};
storage = {
  handler = "s3";
  endpoint = "$RGW_ENDPOINT";
  bucket = "$RGW_BUCKET";
  path_style = true;
  access_key = "$RGW_ACCESS_KEY";
  secret_key = "$RGW_SECRET_KEY";
  multipart_threshold = "5M";
  part_size = "5M";
  parallel = 2;
  retries = 3;
  timeout = 30;
};
CFG

# wait_for SECONDS COMMAND...: polls every 0.2 s
wait_for() {
	local end=$((SECONDS + $1))
	shift
	until "$@" >/dev/null 2>&1; do
		[ "$SECONDS" -lt "$end" ] || return 1
		sleep 0.2
	done
}

key=packages/demo/victim.tar.zst
printf 'v1\n' >"$T_ROOT/v1"
t_ok "current pointer written before the failure" "$UPAAS" storage put "$T_ROOT/v1" apps/demo/current

# ---------------------------------------------------- radosgw dies mid-upload
# The data comes through a FIFO so that the test decides when upaas has
# started the multipart upload and when it reaches the end of its input.
mkfifo "$T_ROOT/fifo"
"$UPAAS" storage put "$T_ROOT/fifo" "$key" >"$T_ROOT/up.out" 2>&1 &
UP_PID=$!
exec 7>"$T_ROOT/fifo"
head -c $((11 * 1024 * 1024)) /dev/urandom >&7
upload_started() { uploads | grep -qF "$key"; }
t_ok "multipart upload under way" wait_for 20 upload_started
t_ok "radosgw killed (SIGKILL) mid-upload" bash "$RGW_SH" kill-rgw "$RGW_ENV"
head -c $((1024 * 1024)) /dev/urandom >&7
exec 7>&-
# upaas retries the last part, gives up, then tries to abort the upload;
# the server comes back while it insists
t_ok "upaas gives up on the part and starts the abort" \
	wait_for 30 grep -q "aborting the multipart upload" "$T_ROOT/up.out"
t_ok "radosgw restarted" bash "$RGW_SH" start-rgw "$RGW_ENV"
. "$RGW_ENV"
wait "$UP_PID"
rc=$?
UP_PID=
out=$(cat "$T_ROOT/up.out")
t_is "the upload fails with exit 1" "$rc" 1
t_match "after retrying" "$out" "retrying in [0-9]+ ms"
t_match "with one clear error naming part, key and bucket" "$out" \
	"^upaas: .*PUT part [0-9]+ of '$key' in bucket '$RGW_BUCKET' failed: .*\(4 attempts\)"
t_fail "no object under the final key" s3api head-object --key "$key"
t_is "no multipart upload left" "$(uploads)" "None"
t_is "the current pointer is unchanged" "$("$UPAAS" storage get apps/demo/current -)" "v1"
t_fail "the secret never appears in the output" grep -qF "$RGW_SECRET_KEY" "$T_ROOT/up.out"

# ---------------------------------------------------- the server is back
head -c $((7 * 1024 * 1024)) /dev/urandom >"$T_ROOT/seven"
t_ok "the server works again after the restart" "$UPAAS" storage put "$T_ROOT/seven" packages/demo/ok.bin
t_is "no multipart upload left after a good one" "$(uploads)" "None"

# ---------------------------------------------------- dead server, single requests
t_ok "radosgw killed again" bash "$RGW_SH" kill-rgw "$RGW_ENV"
start=$SECONDS
out=$("$UPAAS" storage put "$T_ROOT/v1" apps/demo/other 2>&1)
t_is "put to a dead server exits 1" "$?" 1
t_match "after its retries, naming the bucket" "$out" \
	"^upaas: .*PUT 'apps/demo/other' in bucket '$RGW_BUCKET' failed: .*(connect|Connection).*\(4 attempts\)"
t_is "the retries are bounded (< 15 s)" "$(( SECONDS - start < 15 ))" 1
out=$("$UPAAS" storage get apps/demo/current - 2>&1)
t_is "get from a dead server exits 1" "$?" 1
t_match "with a clear error" "$out" "GET 'apps/demo/current' in bucket '$RGW_BUCKET' failed"

t_done
