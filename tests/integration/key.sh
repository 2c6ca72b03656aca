#!/bin/bash
# tests/integration/key.sh - upaas key: a key pair on disk with the right
# modes, the key id, sign and verify through the binary, and OpenSSL's own
# command line accepting upaas's signature with the public key alone.
. "$UPAAS_SRCDIR/tests/lib.sh"

K=$T_ROOT/keys
t_ok "key generate --out makes a pair" "$UPAAS" key generate --out "$K"
PRIV=$(ls "$K"/upaas-*.key)
PUB=$(ls "$K"/upaas-*.pub)
ID=$(basename "$PUB" .pub); ID=${ID#upaas-}
t_is "the private key is 0600" "$(stat -c %a "$PRIV")" 600
t_is "the public key is 0644" "$(stat -c %a "$PUB")" 644
t_is "the directory is 0700" "$(stat -c %a "$K")" 700
t_match "the private key is PEM PKCS#8" "$(head -n1 "$PRIV")" '^-----BEGIN PRIVATE KEY-----$'

# the id is the first 16 hex digits of sha256 over the raw public key
RAW_ID=$(openssl pkey -pubin -in "$PUB" -outform DER | tail -c 32 | sha256sum | cut -c1-16)
t_is "the key id is sha256 of the raw public key" "$ID" "$RAW_ID"
t_match "key show prints it" "$("$UPAAS" key show "$PRIV")" "key id  $ID"
t_is "key show --json names the public key" \
	"$("$UPAAS" key show --json "$PUB" | jq -r '.[0].id + " " + .[0].kind')" "$ID public"
t_fail "key generate never overwrites" "$UPAAS" key generate --private "$PRIV" --public "$K/x.pub"
t_fail "nor leaves half a pair" test -e "$K/x.pub"

t_write_config "signing = { key = \"$PRIV\"; trusted = [ \"$PUB\" ]; };"
printf '{ "format": 1, "app": "demo" }\n' >"$T_ROOT/doc.json"
t_ok "key sign signs with signing.key" "$UPAAS" key sign "$T_ROOT/doc.json"
t_match "the signature is one line: ed25519, the key id, base64" "$(cat "$T_ROOT/doc.json.sig")" \
	"^ed25519 $ID [A-Za-z0-9+/]{86}==\$"
t_ok "key verify accepts it" "$UPAAS" key verify "$T_ROOT/doc.json"

# OpenSSL's command line, with the public key alone
cut -d' ' -f3 "$T_ROOT/doc.json.sig" | base64 -d >"$T_ROOT/sig.bin"
t_ok "openssl pkeyutl -verify accepts upaas's signature" \
	openssl pkeyutl -verify -pubin -inkey "$PUB" -rawin -in "$T_ROOT/doc.json" -sigfile "$T_ROOT/sig.bin"
sed 's/demo/dem0/' "$T_ROOT/doc.json" >"$T_ROOT/edited.json"
t_fail "openssl refuses it over an edited file" \
	openssl pkeyutl -verify -pubin -inkey "$PUB" -rawin -in "$T_ROOT/edited.json" -sigfile "$T_ROOT/sig.bin"
t_fail "key verify refuses the edited file" "$UPAAS" key verify --sig "$T_ROOT/doc.json.sig" "$T_ROOT/edited.json"
t_match "naming what changed" "$(cat "$T_ROOT/last.out")" "'$T_ROOT/edited.json' does not match its signature by key $ID"

# and the other way round: OpenSSL signs, upaas verifies
openssl pkeyutl -sign -inkey "$PRIV" -rawin -in "$T_ROOT/edited.json" -out "$T_ROOT/os.bin"
printf 'ed25519 %s %s\n' "$ID" "$(base64 -w0 "$T_ROOT/os.bin")" >"$T_ROOT/edited.json.sig"
t_ok "upaas verifies a signature made by openssl" "$UPAAS" key verify "$T_ROOT/edited.json"

# a key nobody trusts, a private key readable by others
t_ok "a second key" "$UPAAS" key generate --private "$T_ROOT/other.key" --public "$T_ROOT/other.pub"
t_ok "signs" "$UPAAS" key sign --key "$T_ROOT/other.key" "$T_ROOT/doc.json"
t_fail "a signature by an untrusted key is refused" "$UPAAS" key verify "$T_ROOT/doc.json"
t_match "as untrusted" "$(cat "$T_ROOT/last.out")" "which is not trusted"
chmod 0644 "$T_ROOT/other.key"
t_fail "a private key readable by others is refused" "$UPAAS" key sign --key "$T_ROOT/other.key" "$T_ROOT/doc.json"
t_match "saying why" "$(cat "$T_ROOT/last.out")" "accessible by group or others \\(mode 0644\\)"
# ------------------------------------------ a host on the defaults: its own key
# No signing.key: the first build makes <state>/keys/signing.{key,pub} and
# signs with it; no signing.trusted: a host trusts that signing.pub, so one
# host that builds and deploys needs no signing settings at all. Storage of
# its own (a copy of the run's base image): the run's storage stays signed by
# the run's key only.
t_write_config
t_image || t_bail "no base image"
mkdir -p "$T_ROOT/storage"
cp -a "$UPAAS_TEST_SHARED/storage/images" "$T_ROOT/storage/"
own_cfg() {  # SIGNING-GROUP
	cat >"$T_CFG" <<CFG
paths = { workdir = "$T_ROOT/work"; cache = "$UPAAS_TEST_SHARED/cache"; state = "$T_ROOT/state"; };
storage = { handler = "local"; path = "$T_ROOT/storage"; };
deploy = { root = "$T_ROOT/srv"; hooks_dir = "$T_ROOT/hooks"; };
interpreters = { shell = { any = { packages = []; }; }; };
sandbox = { uid_base = $T_SANDBOX_BASE; };
$1
CFG
}
HPUB=$T_ROOT/state/keys/signing.pub
APP=keydefault
mkdir -p "$T_ROOT/$APP"
printf 'interpreter = { type = "shell"; };\nactions = { main = [ "true" ]; };\n' >"$T_ROOT/$APP/.upaas.cfg"
git -C "$T_ROOT/$APP" init -q -b main
git -C "$T_ROOT/$APP" add -A
git -C "$T_ROOT/$APP" -c user.name=t -c user.email=t@localhost commit -qm one
# the base image is the run's: trust the run's key for it
own_cfg "signing = { trusted = [ \"$T_PUB\" ]; };"
t_is "no key of this host yet" "$("$UPAAS" key show --json | jq -r 'map(.role) | join(" ")')" "signing.trusted"
t_ok "a build with no signing.key" "$UPAAS" build "$T_ROOT/$APP"
t_match "says it made this host's key" "$(cat "$T_ROOT/last.out")" "made this host's signing key"
t_is "the private key is 0600" "$(stat -c %a "$T_ROOT/state/keys/signing.key")" 600
own_cfg "signing = { };"
HID=$("$UPAAS" key show --json | jq -r '.[0].id')
t_is "with no signing settings, key show names the host's pair" \
	"$("$UPAAS" key show --json | jq -r 'map(.role) | join(" ")')" "signing.key signing.trusted"
t_match "the package is signed by it" "$(cat "$T_ROOT/storage/packages/$APP/"*.json.sig)" "^ed25519 $HID "
t_ok "and deploys on this host, which trusts signing.pub by default" "$UPAAS" deploy "$APP"
own_cfg "signing = { trusted = [ \"$T_PUB\", \"$HPUB\" ]; };"
t_ok "a second build reuses the key" "$UPAAS" build "$T_ROOT/$APP"
t_is "the same key" "$(cat "$T_ROOT/storage/packages/$APP/"*.json.sig | cut -d' ' -f2 | sort -u)" "$HID"
t_done
