#!/bin/bash
# tests/integration/s3-faults.sh - the s3 handler when radosgw dies: a
# multipart upload retries, then fails cleanly (no object under the key,
# the multipart upload aborted once the server is back); a download resumes
# where it stopped; an upload whose abort cannot reach the server is left
# for `storage check` to find and abort; and single requests to a dead
# server fail with one clear error.
. "$UPAAS_SRCDIR/tests/lib.sh"

RGW_ENV=$T_ROOT/rgw.env
RGW_SH=$UPAAS_SRCDIR/tests/radosgw.sh
UP_PID=
s3_cleanup() {
	local rc=$?
	[ -n "$UP_PID" ] && kill "$UP_PID" 2>/dev/null
	exec 7>&- 8<&- 2>/dev/null
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

# ---------------------------------------------------- radosgw dies mid-download
# The download goes to a FIFO that the test drains: it decides when upaas
# has bytes in hand, kills radosgw then, and lets upaas go on once the
# server is back. upaas resumes with Range (If-Match: the same ETag) from
# the bytes it already gave out, and the whole object arrives intact.
big=packages/demo/big.bin
head -c $((64 * 1024 * 1024)) /dev/urandom >"$T_ROOT/big"
t_ok "a 64 MiB object stored" "$UPAAS" storage put "$T_ROOT/big" "$big"
mkfifo "$T_ROOT/down"
"$UPAAS" storage get "$big" - >"$T_ROOT/down" 2>"$T_ROOT/get.out" &
UP_PID=$!
exec 8<"$T_ROOT/down"
head -c $((1024 * 1024)) <&8 >"$T_ROOT/big.back"
t_ok "radosgw killed (SIGKILL) mid-download" bash "$RGW_SH" kill-rgw "$RGW_ENV"
t_ok "radosgw restarted" bash "$RGW_SH" start-rgw "$RGW_ENV"
. "$RGW_ENV"
cat <&8 >>"$T_ROOT/big.back"
exec 8<&-
wait "$UP_PID"
rc=$?
UP_PID=
t_is "the download succeeds" "$rc" 0
t_is "the object arrived whole and intact" "$(sha256sum <"$T_ROOT/big.back")" \
	"$(sha256sum <"$T_ROOT/big")"
t_match "after resuming where it stopped, not from the start" "$(cat "$T_ROOT/get.out")" \
	"GET '$big' in bucket '$RGW_BUCKET' failed: .*, resuming at byte [1-9][0-9]+ in [0-9]+ ms"

# ---------------------------------------------------- an abort that cannot reach the server
# radosgw dies mid-upload and stays dead: upaas fails, cannot abort the
# multipart upload, says so, and prints the root cause last. The upload
# stays on the server until `storage check` aborts it.
key2=packages/demo/orphan.tar.zst
"$UPAAS" storage put "$T_ROOT/fifo" "$key2" >"$T_ROOT/up2.out" 2>&1 &
UP_PID=$!
exec 7>"$T_ROOT/fifo"
head -c $((11 * 1024 * 1024)) /dev/urandom >&7
upload2_started() {  # a part of it is stored
	local id
	id=$(s3api list-multipart-uploads --query "Uploads[?Key=='$key2'].UploadId" --output text) &&
		[ -n "$id" ] && [ "$id" != None ] &&
		[ "$(s3api list-parts --key "$key2" --upload-id "$id" --query 'length(Parts)' --output text)" -ge 1 ]
}
t_ok "a second multipart upload under way, a part stored" wait_for 20 upload2_started
t_ok "radosgw killed (SIGKILL) for good" bash "$RGW_SH" kill-rgw "$RGW_ENV"
head -c $((1024 * 1024)) /dev/urandom >&7
exec 7>&-
wait "$UP_PID"
rc=$?
UP_PID=
t_is "the upload fails with exit 1" "$rc" 1
out=$(cat "$T_ROOT/up2.out")
t_match "a warning says the abort failed, and what will remove the upload" "$out" \
	"warning: s3: AbortMultipartUpload '$key2' \(upload id '[^']+'\) in bucket '$RGW_BUCKET' failed: .*; the incomplete upload stays in the bucket until 'upaas storage check'"
t_match "the root cause is printed last" "$(tail -n 1 "$T_ROOT/up2.out")" \
	"^upaas: error: s3: PUT part [0-9]+ of '$key2' in bucket '$RGW_BUCKET' failed: .*\(4 attempts\)$"
t_ok "radosgw restarted" bash "$RGW_SH" start-rgw "$RGW_ENV"
. "$RGW_ENV"
t_is "the orphan upload is on the server" "$(uploads)" "$key2"
t_ok "storage check" "$UPAAS" storage check
out=$(cat "$T_ROOT/last.out")
t_match "lists it, with its size" "$out" \
	"incomplete upload of '$key2' \(upload id '[^']+'\), (5|10)\.0 MiB, idle [0-9]+ s: left \(it may still be running\)"
t_match "and leaves it: it was busy a moment ago" "$out" "^uploads +ok \(1 incomplete upload, 0 removed\)"
t_is "it is still there" "$(uploads)" "$key2"
t_ok "storage check --force --json" sh -c '"$UPAAS" storage check --force --json >"$T_ROOT/check.json"'
t_ok "reports it aborted" python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["ok"] is True, d
u = [x for x in d["uploads"] if x["key"] == sys.argv[2]]
assert len(u) == 1 and u[0]["removed"] is True and u[0]["id"] and u[0]["size"] > 0, d
' "$T_ROOT/check.json" "$key2"
t_is "no multipart upload left" "$(uploads)" "None"
t_fail "and no object under its key" s3api head-object --key "$key2"

# ---------------------------------------------------- killed before the completion
# (crash points: test builds only) every part is stored, upaas dies before
# CompleteMultipartUpload: nothing under the key, the upload is found and
# aborted by the next storage check --force
if UPAAS_CRASH_POINT=list "$UPAAS" --version 2>/dev/null | grep -qx storage.s3.before-complete; then
	key3=packages/demo/crashed.tar.zst
	UPAAS_CRASH_POINT=storage.s3.before-complete "$UPAAS" storage put "$T_ROOT/seven" "$key3" \
		>/dev/null 2>&1
	t_is "killed before CompleteMultipartUpload" "$?" 137
	t_fail "nothing under its key" s3api head-object --key "$key3"
	t_is "its multipart upload is on the server" "$(uploads)" "$key3"
	t_ok "storage check --force" "$UPAAS" storage check --force
	t_is "aborts it" "$(uploads)" "None"
fi

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
