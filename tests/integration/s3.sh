#!/bin/bash
# tests/integration/s3.sh - the s3 storage handler against a real radosgw
# on 127.0.0.1 (tests/radosgw.sh): put/get/ls/rm, awkward keys, multipart,
# listing continuation, prefix, virtual-host style, awscli interoperability,
# wrong credentials, presigned URLs, tampered objects.
. "$UPAAS_SRCDIR/tests/lib.sh"

RGW_ENV=$T_ROOT/rgw.env
s3_cleanup() {
	local rc=$?
	bash "$UPAAS_SRCDIR/tests/radosgw.sh" stop "$RGW_ENV" >/dev/null 2>&1
	(exit $rc)
	t_cleanup
}
trap s3_cleanup EXIT

bash "$UPAAS_SRCDIR/tests/radosgw.sh" start "$RGW_ENV" >"$T_ROOT/rgw.out" 2>&1
case $? in
0) ;;
77) t_skip_all "no radosgw: $(tail -n 1 "$T_ROOT/rgw.out")" ;;
*) t_bail "radosgw did not start: $(tail -n 5 "$T_ROOT/rgw.out" | tr '\n' ' ')" ;;
esac
. "$RGW_ENV"

# awscli: Debian's (apt-get install awscli), else whatever is in PATH
AWS=/usr/bin/aws
[ -x "$AWS" ] || AWS=$(command -v aws || true)
[ -n "$AWS" ] || t_bail "awscli is missing (apt-get install awscli)"
export AWS_ACCESS_KEY_ID=$RGW_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$RGW_SECRET_KEY
export AWS_DEFAULT_REGION=$RGW_REGION AWS_EC2_METADATA_DISABLED=true
# newer botocore sends CRC trailers that radosgw 16 does not know
export AWS_REQUEST_CHECKSUM_CALCULATION=when_required AWS_RESPONSE_CHECKSUM_VALIDATION=when_required
aws() { "$AWS" --endpoint-url "$RGW_ENDPOINT" "$@"; }
s3api() { aws s3api "$@" --bucket "$RGW_BUCKET"; }

# s3_config FILE [extra storage settings...]: an admin config using the s3 handler
s3_config() {
	local f=$1
	shift
	cat >"$f" <<CFG
paths = {
  workdir = "$T_ROOT/work";
  cache = "$UPAAS_TEST_SHARED/cache";
  state = "$T_ROOT/state";
};
deploy = {
  root = "$T_ROOT/srv";
  hooks_dir = "$T_ROOT/hooks";
};
signing = { key = "$T_KEY"; trusted = [ "$T_PUB" ]; };
storage = {
  handler = "s3";
  endpoint = "$RGW_ENDPOINT";
  region = "$RGW_REGION";
  bucket = "$RGW_BUCKET";
  path_style = true;
  access_key = "$RGW_ACCESS_KEY";
  multipart_threshold = "5M";
  part_size = "5M";
  parallel = 3;
  retries = 2;
$(printf '  %s\n' "$@")
};
CFG
}
s3_config "$T_CFG" "secret_key = \"$RGW_SECRET_KEY\";"
U() { "$UPAAS" "$@"; }

# -------------------------------------------------------------- basics
t_ok "storage check against radosgw" U storage check
printf 'hello s3\n' >"$T_ROOT/small"
t_ok "put a small object" U storage put "$T_ROOT/small" apps/demo/current
t_ok "get it back" U storage get apps/demo/current "$T_ROOT/small.out"
t_ok "same bytes" cmp "$T_ROOT/small" "$T_ROOT/small.out"
t_is "ls -l shows key and size" "$(U storage ls -l apps/ | awk '{print $1, $3}')" "9 apps/demo/current"
t_is "stdout get" "$(U storage get apps/demo/current -)" "hello s3"

# -------------------------------------------------------------- awkward keys
keys=("we ird/a b.txt" "uni/café €ü.txt" "ops/x+y=z&w*v;a,b" "sl//double//x" "q/?#%25[]~.txt"
	"xml/it's \"q\" <t>&amp;")
i=0
for k in "${keys[@]}"; do
	i=$((i + 1))
	printf 'content %d\n' "$i" >"$T_ROOT/k$i"
	t_ok "put key '$k'" U storage put "$T_ROOT/k$i" "$k"
	t_is "get key '$k'" "$(U storage get "$k" -)" "content $i"
	t_is "awscli reads key '$k'" "$(aws s3api get-object --bucket "$RGW_BUCKET" --key "$k" /dev/stdout 2>/dev/null | head -n 1)" "content $i"
done
want=$(printf '%s\n' "${keys[@]}" | LC_ALL=C sort)
got=$(U storage ls | grep -v '^apps/')
t_is "ls lists every awkward key exactly" "$got" "$want"

# -------------------------------------------------------------- awscli writes, upaas reads
printf 'from awscli\n' >"$T_ROOT/aws.txt"
aws s3 cp --quiet "$T_ROOT/aws.txt" "s3://$RGW_BUCKET/aws/we ird+é.txt" >/dev/null 2>&1
t_is "upaas reads what awscli wrote" "$(U storage get 'aws/we ird+é.txt' -)" "from awscli"

# -------------------------------------------------------------- multipart
head -c $((12 * 1024 * 1024 + 12345)) /dev/urandom >"$T_ROOT/big"
t_ok "multipart put of 12 MiB (parts of 5 MiB)" U storage put "$T_ROOT/big" packages/demo/big.tar.zst
etag=$(s3api head-object --key packages/demo/big.tar.zst --query ETag --output text 2>&1)
t_match "object was assembled from 3 parts" "$etag" '-3"?$'
t_ok "get the multipart object" U storage get packages/demo/big.tar.zst "$T_ROOT/big.out"
t_ok "multipart round trip is byte-exact" cmp "$T_ROOT/big" "$T_ROOT/big.out"
aws s3 cp --quiet "s3://$RGW_BUCKET/packages/demo/big.tar.zst" "$T_ROOT/big.aws" >/dev/null 2>&1
t_ok "awscli reads the multipart object" cmp "$T_ROOT/big" "$T_ROOT/big.aws"
t_ok "multipart put from a pipe (size unknown)" \
	sh -c 'cat "$1" | "$UPAAS" storage put - packages/demo/pipe.bin' sh "$T_ROOT/big"
t_ok "piped object is byte-exact" sh -c '"$UPAAS" storage get packages/demo/pipe.bin - | cmp - "$1"' sh "$T_ROOT/big"
aws s3 cp --quiet "$T_ROOT/big" "s3://$RGW_BUCKET/aws/big.bin" >/dev/null 2>&1
t_ok "upaas reads a multipart object awscli wrote" U storage get aws/big.bin "$T_ROOT/big.aws2"
t_ok "and it is byte-exact" cmp "$T_ROOT/big" "$T_ROOT/big.aws2"

# -------------------------------------------------------------- listing continuation
for n in $(seq -w 1 25); do printf '%s' "$n" >"$T_ROOT/m$n"; done
for n in $(seq -w 1 25); do U storage put "$T_ROOT/m$n" "many/k$n" || break; done
t_is "the server pages listings (IsTruncated on one page)" \
	"$(s3api list-objects-v2 --prefix many/ --max-keys 1000 --no-paginate --query IsTruncated --output text 2>&1)" "True"
t_is "ls follows continuation tokens" "$(U storage ls many/)" "$(for n in $(seq -w 1 25); do echo "many/k$n"; done)"
t_is "ls --json has sizes" "$(U storage ls --json many/k2 | tr -d ' \n' | grep -o '"size":[0-9]*' | sort -u)" '"size":2'

# -------------------------------------------------------------- delete
t_ok "rm a key" U storage rm many/k01
t_fail "get of a removed key fails" U storage get many/k01 -
t_match "and says NoSuchKey" "$(cat "$T_ROOT/last.out")" "404 NoSuchKey"
t_ok "rm of a missing key succeeds" U storage rm many/k01

# -------------------------------------------------------------- prefix, virtual host, unsigned payload
s3_config "$T_ROOT/prefix.cfg" "secret_key = \"$RGW_SECRET_KEY\";" 'prefix = "tenant/a";'
t_ok "put through a prefix" env UPAAS_CONFIG="$T_ROOT/prefix.cfg" "$UPAAS" storage put "$T_ROOT/small" images/x.json
t_ok "the object sits under the prefix" s3api head-object --key tenant/a/images/x.json
t_is "ls strips the prefix" "$(UPAAS_CONFIG="$T_ROOT/prefix.cfg" U storage ls)" "images/x.json"

sed -e 's/path_style = true;/path_style = false;/' -e "s|http://127.0.0.1:|http://localhost:|" \
	"$T_CFG" >"$T_ROOT/vhost.cfg"
t_is "virtual-host style (bucket.localhost)" "$(UPAAS_CONFIG="$T_ROOT/vhost.cfg" U storage get 'uni/café €ü.txt' -)" "content 2"
t_ok "virtual-host style multipart put" env UPAAS_CONFIG="$T_ROOT/vhost.cfg" "$UPAAS" storage put "$T_ROOT/big" vhost/big.bin

s3_config "$T_ROOT/unsigned.cfg" "secret_key = \"$RGW_SECRET_KEY\";" 'unsigned_payload = true;'
t_ok "UNSIGNED-PAYLOAD multipart put" env UPAAS_CONFIG="$T_ROOT/unsigned.cfg" "$UPAAS" storage put "$T_ROOT/big" unsigned/big.bin
t_ok "UNSIGNED-PAYLOAD object is byte-exact" sh -c '"$UPAAS" storage get unsigned/big.bin - | cmp - "$1"' sh "$T_ROOT/big"

# -------------------------------------------------------------- secrets from file / environment
printf '%s\n' "$RGW_SECRET_KEY" >"$T_ROOT/secret"
chmod 600 "$T_ROOT/secret"
s3_config "$T_ROOT/file.cfg" "secret_key_file = \"$T_ROOT/secret\";"
t_ok "secret_key_file works" env UPAAS_CONFIG="$T_ROOT/file.cfg" "$UPAAS" storage get apps/demo/current -
s3_config "$T_ROOT/env.cfg"
t_ok "AWS_SECRET_ACCESS_KEY works" env UPAAS_CONFIG="$T_ROOT/env.cfg" \
	AWS_SECRET_ACCESS_KEY="$RGW_SECRET_KEY" "$UPAAS" storage get apps/demo/current -
t_ok "config show runs" U config show
t_fail "config show does not print the secret" grep -qF "$RGW_SECRET_KEY" "$T_ROOT/last.out"

# -------------------------------------------------------------- wrong credentials
bad=wrongSecret0123456789wrongSecret0123456
s3_config "$T_ROOT/bad.cfg" "secret_key = \"$bad\";"
out=$(UPAAS_CONFIG="$T_ROOT/bad.cfg" "$UPAAS" storage put "$T_ROOT/small" x 2>&1)
t_is "wrong secret: put exits 1" "$?" 1
t_match "one clear error naming bucket and code" "$out" \
	"^upaas: .*PUT 'x' in bucket '$RGW_BUCKET' failed: 403 (SignatureDoesNotMatch|AccessDenied)"
t_is "exactly one line" "$(printf '%s\n' "$out" | wc -l)" 1
out=$(UPAAS_CONFIG="$T_ROOT/bad.cfg" "$UPAAS" storage put "$T_ROOT/big" x 2>&1)
t_match "wrong secret: multipart put fails at creation" "$out" "bucket '$RGW_BUCKET' failed: 403"
out=$(UPAAS_CONFIG="$T_ROOT/bad.cfg" "$UPAAS" -v -v storage ls 2>&1)
t_match "wrong secret: ls fails the same way" "$out" "in bucket '$RGW_BUCKET' failed: 403"
t_fail "the secret never appears, even with -v -v" grep -qF "$bad" <<<"$out"
t_fail "nor does the signing secret of the right key" grep -qF "$RGW_SECRET_KEY" <<<"$out"
out=$(UPAAS_CONFIG="$T_ROOT/bad.cfg" "$UPAAS" storage check 2>&1)
t_is "storage check fails with exit 1" "$?" 1

# -------------------------------------------------------------- presigned URL, tampering
id=20261120T000000Z-abcdef0
blob=packages/demo/$id.tar.zst
head -c 100000 /dev/urandom >"$T_ROOT/blob"
sha=$(sha256sum "$T_ROOT/blob" | cut -d' ' -f1)
cat >"$T_ROOT/manifest.json" <<JSON
{ "format": 1, "app": "demo", "id": "$id", "fresh": true,
  "blob": { "key": "$blob", "sha256": "$sha", "size": 100000 } }
JSON
"$UPAAS" key sign --key "$T_KEY" --output "$T_ROOT/manifest.json.sig" "$T_ROOT/manifest.json" \
	>/dev/null
t_ok "put a package blob" U storage put "$T_ROOT/blob" "$blob"
t_ok "put its manifest's signature" U storage put "$T_ROOT/manifest.json.sig" "packages/demo/$id.json.sig"
t_ok "put its manifest" U storage put "$T_ROOT/manifest.json" "packages/demo/$id.json"
url=$(U package url --expires 120 demo "$id" 2>"$T_ROOT/url.err")
t_match "package url prints a presigned URL" "$url" "^$RGW_ENDPOINT/$RGW_BUCKET/packages/demo/.*X-Amz-Expires=120.*X-Amz-Signature=[0-9a-f]{64}$"
t_fail "the URL does not carry the secret" grep -qF "$RGW_SECRET_KEY" <<<"$url"
t_ok "plain curl fetches the presigned URL" curl -sSf -o "$T_ROOT/blob.curl" "$url"
t_ok "and gets the blob" cmp "$T_ROOT/blob" "$T_ROOT/blob.curl"
t_is "a tampered URL is refused (403)" \
	"$(curl -s -o /dev/null -w '%{http_code}' "${url/X-Amz-Expires=120/X-Amz-Expires=121}")" 403
t_ok "package verify passes on the intact blob" U package verify demo "$id"
head -c 100000 /dev/urandom >"$T_ROOT/evil"
aws s3 cp --quiet "$T_ROOT/evil" "s3://$RGW_BUCKET/$blob" >/dev/null 2>&1
t_fail "package verify catches a tampered blob (same size)" U package verify demo "$id"
t_match "by its sha256" "$(cat "$T_ROOT/last.out")" "sha256"

# -------------------------------------------------------------- nothing left behind
t_is "no multipart upload left on the server" \
	"$(s3api list-multipart-uploads --query 'Uploads[].Key' --output text 2>&1)" "None"

t_done
