#!/bin/bash
# tests/integration/sign.sh - a deploy host runs only what a trusted builder
# made. Every tampering case of storage is refused with `current` untouched
# and no hook run: a blob swapped for another valid package's, a manifest
# edited by one byte, a manifest signed by an untrusted key, a current
# pointer replayed with an older sequence, uid 0 in a signed manifest, a
# size smaller than the blob, a base image swapped under a builder, an
# unsigned first-edition package (refused, then let through by
# signing.allow_unsigned). Key rotation. Safe trees: setuid bits, file
# capabilities, security/trusted xattrs and device nodes dropped unless the
# admin allows them. A real build of examples/python-flask: provenance in
# its signed manifest, and a bill of materials that lists python3-flask
# with its Debian version and validates against the CycloneDX schema.
. "${UPAAS_SRCDIR:?run through make check}/tests/lib.sh" || exit 99
. "$UPAAS_SRCDIR/tests/integration/deploy-lib.sh" || exit 99
trap 'd_cleanup_storage; t_cleanup' EXIT
command -v getcap >/dev/null || t_bail "getcap (libcap2-bin) is not installed"

APP=$(d_app signed)
SRV=$T_ROOT/srv
A=$SRV/$APP
RUN_ID=$("$UPAAS" key show --json "$T_PUB" | jq -r '.[0].id')

# an admin hook that leaves a mark: "no hook run" is checked for real
mkdir -p "$T_ROOT/hooks/pre-deploy.d"
printf '#!/bin/sh\necho "$1" >>%s/hook-ran\n' "$T_ROOT" >"$T_ROOT/hooks/pre-deploy.d/10-mark"
chmod 755 "$T_ROOT/hooks/pre-deploy.d/10-mark"
hooks_ran() { [ -e "$T_ROOT/hook-ran" ] && wc -l <"$T_ROOT/hook-ran" || echo 0; }

tree() {
	rm -rf "$T_ROOT/tree"
	mkdir -p "$T_ROOT/tree/home/app"
	echo "$1" >"$T_ROOT/tree/home/app/version"
	chown -R 1000:1000 "$T_ROOT/tree/home/app"
}
# refused DESC CMD...: fails, with current, the hooks and the revisions as before
refused() {
	local desc=$1 before_hooks before_revs
	shift
	before_hooks=$(hooks_ran)
	before_revs=$(ls "$A/revisions" 2>/dev/null | tr '\n' ' ')
	t_fail "$desc: refused" "$@"
	OUT=$(cat "$T_ROOT/last.out")
	t_is "$desc: current untouched" "$(deployed "$APP")" "$CUR"
	t_is "$desc: no hook ran" "$(hooks_ran)" "$before_hooks"
	t_is "$desc: no new revision" "$(ls "$A/revisions" 2>/dev/null | tr '\n' ' ')" "$before_revs"
}

# ------------------------------------------------------ a good package
tree good1
hand_package "$APP" good1 "$T_ROOT/tree" || t_bail "cannot make a package"
set_current "$APP" good1
t_ok "a signed package deploys" "$UPAAS" deploy "$APP"
t_match "the log names the key" "$(cat "$A/deploy.log")" "signed by trusted key $RUN_ID"
t_is "its hook ran" "$(hooks_ran)" 1
CUR=good1
t_is "the host remembers the pointer's sequence" "$(cat "$A/sequence")" 1

# ------------------------------------------------- blob swapped for another's
tree other
hand_package "$APP" other "$T_ROOT/tree"
tree swapped
hand_package "$APP" swapped "$T_ROOT/tree"
cp "$D_STORAGE/packages/$APP/other.tar.zst" "$D_STORAGE/packages/$APP/swapped.tar.zst"
refused "blob swapped for another valid package's" "$UPAAS" deploy --package swapped "$APP"
t_match "... by its sha256" "$OUT" "package 'swapped' failed verification: layer [0-9a-f]{12} .*corrupt: ([0-9]+ bytes|sha256)"

# ------------------------------------------------- manifest edited by one byte
tree edited
hand_package "$APP" edited "$T_ROOT/tree"
sed -i 's/"url": "test"/"url": "tesT"/' "$D_STORAGE/packages/$APP/edited.json"
refused "manifest edited by one byte" "$UPAAS" deploy --package edited "$APP"
t_match "... naming it and why" "$OUT" \
	"'packages/$APP/edited.json' does not match its signature by key $RUN_ID"

# ------------------------------------------------- signed by an untrusted key
"$UPAAS" key generate --private "$T_ROOT/rogue.key" --public "$T_ROOT/rogue.pub" >/dev/null
ROGUE=$("$UPAAS" key show --json "$T_ROOT/rogue.pub" | jq -r '.[0].id')
tree rogue
hand_package "$APP" rogue "$T_ROOT/tree"
"$UPAAS" key sign --key "$T_ROOT/rogue.key" --output "$D_STORAGE/packages/$APP/rogue.json.sig" \
	"$D_STORAGE/packages/$APP/rogue.json" >/dev/null
refused "manifest signed by an untrusted key" "$UPAAS" deploy --package rogue "$APP"
t_match "... naming the key" "$OUT" "is signed by key $ROGUE, which is not trusted"

# ------------------------------------------------- uid 0, signed
tree root
hand_package "$APP" root "$T_ROOT/tree" '{"uid": 0}'
refused "uid 0 in a signed manifest" "$UPAAS" deploy --package root "$APP"
t_match "... for that reason" "$OUT" "uid"

# ------------------------------------------------- size smaller than the blob
tree short
hand_package "$APP" short "$T_ROOT/tree"
jq '.blob.size = (.blob.size - 100)' "$D_STORAGE/packages/$APP/short.json" >"$T_ROOT/m.json"
cp "$T_ROOT/m.json" "$D_STORAGE/packages/$APP/short.json"
sign_object "packages/$APP/short.json"
refused "size smaller than the blob" "$UPAAS" deploy --package short "$APP"
t_match "... the download stops at the signed size" "$OUT" "corrupt: larger than the [0-9]+ bytes of the manifest"

# ------------------------------------------------- current replayed
tree good2
hand_package "$APP" good2 "$T_ROOT/tree"
cp "$D_STORAGE/apps/$APP/current" "$T_ROOT/current.seq1"
set_current "$APP" good2
t_ok "a newer pointer deploys" "$UPAAS" deploy "$APP"
CUR=good2
t_is "its sequence is remembered" "$(cat "$A/sequence")" 2
cp "$T_ROOT/current.seq1" "$D_STORAGE/apps/$APP/current"
refused "current replayed with an older sequence" "$UPAAS" deploy "$APP"
t_match "... saying so" "$OUT" "has sequence 1, lower than the 2 this host has seen"
t_fail "watch refuses it too" "$UPAAS" watch --once "$APP"
t_is "watch: current untouched" "$(deployed "$APP")" good2
t_ok "rollback stays a local act" "$UPAAS" rollback "$APP"
t_is "rolled back" "$(deployed "$APP")" good1
t_ok "deploy --package, the admin's explicit choice" "$UPAAS" deploy --package good2 "$APP"
CUR=good2

# ------------------------------------------------- first edition, unsigned
tree legacy
hand_package "$APP" legacy "$T_ROOT/tree"
rm "$D_STORAGE/packages/$APP/legacy.json.sig"
refused "an unsigned first-edition package" "$UPAAS" deploy --package legacy "$APP"
t_match "... as not signed" "$OUT" "'packages/$APP/legacy.json' is not signed"
LAX=$T_ROOT/lax.cfg
sed 's|^signing = {|signing = { allow_unsigned = true;|' "$T_CFG" >"$LAX"
t_ok "accepted with signing.allow_unsigned" env UPAAS_CONFIG="$LAX" "$UPAAS" deploy --package legacy "$APP"
t_match "... with a warning" "$(cat "$T_ROOT/last.out")" "warning: 'packages/$APP/legacy.json' is not signed"
CUR=legacy
printf 'legacy\n' >"$D_STORAGE/apps/$APP/current"
t_fail "a first-edition current is refused" "$UPAAS" deploy "$APP"

# ------------------------------------------------- key rotation
"$UPAAS" key generate --private "$T_ROOT/new.key" --public "$T_ROOT/new.pub" >/dev/null
BOTH=$T_ROOT/both.cfg
NEWONLY=$T_ROOT/new.cfg
t_write_config "signing = { key = \"$T_ROOT/new.key\"; trusted = [ \"$T_PUB\", \"$T_ROOT/new.pub\" ]; };"
cp "$T_CFG" "$BOTH"
t_write_config "signing = { key = \"$T_ROOT/new.key\"; trusted = [ \"$T_ROOT/new.pub\" ]; };"
cp "$T_CFG" "$NEWONLY"
t_write_config
tree old1
hand_package "$APP" old1 "$T_ROOT/tree"   # the run's (old) key
tree old2
hand_package "$APP" old2 "$T_ROOT/tree"
tree new1
hand_package "$APP" new1 "$T_ROOT/tree"
"$UPAAS" key sign --key "$T_ROOT/new.key" --output "$D_STORAGE/packages/$APP/new1.json.sig" \
	"$D_STORAGE/packages/$APP/new1.json" >/dev/null
t_ok "rotation: the old key's package deploys while both are trusted" \
	env UPAAS_CONFIG="$BOTH" "$UPAAS" deploy --package old1 "$APP"
t_ok "rotation: so does the new key's" env UPAAS_CONFIG="$BOTH" "$UPAAS" deploy --package new1 "$APP"
CUR=new1
refused "rotation: the old key's package once the old key is dropped" \
	env UPAAS_CONFIG="$NEWONLY" "$UPAAS" deploy --package old2 "$APP"
t_match "... as not trusted" "$OUT" "which is not trusted"

# ------------------------------------------------- safe trees
tree privileged
T=$T_ROOT/tree
printf '#!/bin/sh\n' >"$T/home/app/suid" && chmod 4755 "$T/home/app/suid"
cp "$T/home/app/suid" "$T/home/app/cap" && chmod 0755 "$T/home/app/cap"
setcap cap_net_raw+ep "$T/home/app/cap"
printf 'x' >"$T/home/app/attrs"
python3 -c 'import os, sys; os.setxattr(sys.argv[1], "trusted.upaas", b"1"); os.setxattr(sys.argv[1], "user.kept", b"1")' "$T/home/app/attrs"
mknod "$T/home/app/mem" c 1 1
mkdir -p "$D_STORAGE/packages/$APP"
tar --zstd --numeric-owner --xattrs --xattrs-include='*' -C "$T" \
	-cf "$D_STORAGE/packages/$APP/priv.tar.zst" . &&
	hand_manifest "$APP" priv
cp "$D_STORAGE/packages/$APP/priv.tar.zst" "$T_ROOT/priv.tar.zst"
hand_blob "$APP" priv2 "$T_ROOT/priv.tar.zst"
t_ok "a package with privileged files deploys" "$UPAAS" deploy --package priv "$APP"
R=$A/revisions/priv/home/app
t_is "setuid is dropped" "$(stat -c %a "$R/suid")" 755
t_is "file capabilities are dropped" "$(getcap "$R/cap")" ""
t_is "device nodes are not made" "$(test -e "$R/mem" && echo there)" ""
t_is "trusted.* xattrs are dropped" "$(python3 -c 'import os, sys; print(sorted(os.listxattr(sys.argv[1])))' "$R/attrs")" "['user.kept']"
t_is "the revision's record says what was dropped" \
	"$(jq -c '[.privileged_files, .dropped.setuid_setgid, .dropped.capabilities, .dropped.xattrs, .dropped.devices]' "$A/manifests/priv.files.json")" \
	"[false,1,1,1,1]"
printf 'deploy = {\n  root = "%s";\n  hooks_dir = "%s";\n  allow_privileged_files = true;\n};\n' \
	"$SRV" "$T_ROOT/hooks" >"$T_ROOT/deploy.part"
sed '/^deploy = {/,/^};/d' "$T_CFG" >"$T_ROOT/priv.cfg" && cat "$T_ROOT/deploy.part" >>"$T_ROOT/priv.cfg"
t_ok "with deploy.allow_privileged_files" env UPAAS_CONFIG="$T_ROOT/priv.cfg" "$UPAAS" deploy --package priv2 "$APP"
R=$A/revisions/priv2/home/app
t_is "setuid is kept" "$(stat -c %a "$R/suid")" 4755
t_match "capabilities are kept" "$(getcap "$R/cap")" "cap_net_raw"
t_is "and the revision's record says so" "$(jq .privileged_files "$A/manifests/priv2.files.json")" true
CUR=priv2

# ------------------------------------------------- a real build
t_image || t_bail "cannot create the base image"
FLASK=$(d_app flask)
REPO=$T_ROOT/flask
commit_tree "$REPO" "$UPAAS_SRCDIR/examples/python-flask" || t_bail "cannot make the repo"
ID=$(make_package "$FLASK" "$REPO") || t_bail "cannot build examples/python-flask"
MF=$D_STORAGE/packages/$FLASK/$ID.json
t_ok "the build signed its manifest" "$UPAAS" key verify "$MF"
t_is "provenance: the key id" "$(jq -r .key_id "$MF")" "$RUN_ID"
t_is "provenance: the upaas version" "$(jq -r .upaas_version "$MF")" "$("$UPAAS" --version | head -n1 | awk '{print $2}')"
t_is "provenance: the builder" "$(jq -r .builder "$MF")" "$(hostname)"
IMG=$(jq -r .image.name "$MF")
t_is "provenance: the base image's digest" "$(jq -r .image.sha256 "$MF")" \
	"$(jq -r .sha256 "$D_STORAGE/images/$IMG.json")"
t_is "the current pointer is signed, sequence 1" \
	"$(grep -v '^ed25519 ' "$D_STORAGE/apps/$FLASK/current" | jq -r '.sequence')" 1
t_ok "the bill of materials" sh -c '"$1" package sbom --format cyclonedx "$2" current >"$3"' - \
	"$UPAAS" "$FLASK" "$T_ROOT/cdx.json"
SCHEMAS=$("$UPAAS_SRCDIR/tests/schemas.sh") || t_bail "cannot get the CycloneDX schemas"
t_ok "validates against the CycloneDX 1.5 schema" \
	/usr/bin/python3 "$UPAAS_SRCDIR/tests/sbom-check.py" cyclonedx "$T_ROOT/cdx.json" "$SCHEMAS"
t_ok "deploys" "$UPAAS" deploy "$FLASK"
want=$(dpkg-query --admindir="$SRV/$FLASK/current/var/lib/dpkg" -W -f='${Version}' python3-flask)
t_match "python3-flask is in the tree" "$want" '^[0-9]'
t_is "the bill lists python3-flask with its Debian version" \
	"$(jq -r '.components[] | select(.name == "python3-flask") | .version' "$T_ROOT/cdx.json")" "$want"
t_ok "as SPDX too" sh -c '"$1" package sbom "$2" current >"$3"' - "$UPAAS" "$FLASK" "$T_ROOT/spdx.json"
t_ok "valid SPDX 2.3" /usr/bin/python3 "$UPAAS_SRCDIR/tests/sbom-check.py" spdx "$T_ROOT/spdx.json"
t_match "with python3-flask's purl" "$(cat "$T_ROOT/spdx.json")" "pkg:deb/debian/python3-flask@"

# the bill is held to the signed manifest's digest
printf ' ' >>"$D_STORAGE/packages/$FLASK/$ID.sbom.json"
t_fail "a changed bill of materials is refused" "$UPAAS" package sbom "$FLASK" current

# a base image swapped under a builder: in a storage and cache of its own
PRIV=$T_ROOT/priv-storage
mkdir -p "$PRIV/images"
cp "$D_STORAGE/images/$IMG.json" "$D_STORAGE/images/$IMG.json.sig" "$PRIV/images/"
IMG_BLOB=$PRIV/$(jq -r .key "$D_STORAGE/images/$IMG.json")
mkdir -p "$(dirname "$IMG_BLOB")"
cp "$D_STORAGE/$(jq -r '.layers[0].key' "$D_STORAGE/packages/$FLASK/$ID.json")" "$IMG_BLOB"
cat >"$T_ROOT/swap.cfg" <<CFG
paths = { workdir = "$T_ROOT/work"; cache = "$T_ROOT/cache"; state = "$T_ROOT/state"; };
storage = { handler = "local"; path = "$PRIV"; };
signing = { key = "$T_KEY"; trusted = [ "$T_PUB" ]; };
CFG
t_fail "a base image swapped under a builder fails the build" \
	env UPAAS_CONFIG="$T_ROOT/swap.cfg" "$UPAAS" build --app "$FLASK-swap" "$REPO"
t_match "... clearly" "$(cat "$T_ROOT/last.out")" "base image '$IMG'.*failed verification"
t_is "... and publishes nothing" "$(ls "$PRIV/packages/$FLASK-swap" 2>/dev/null | wc -l)" 0
sed -i 's/"sha256": "/"sha256": "0/; s/"sha256": "0\(.\{63\}\)./"sha256": "0\1/' "$PRIV/images/$IMG.json"
t_fail "an image manifest that is not the signed one fails it too" \
	env UPAAS_CONFIG="$T_ROOT/swap.cfg" "$UPAAS" build --app "$FLASK-swap" "$REPO"
t_match "... naming it" "$(cat "$T_ROOT/last.out")" "'images/$IMG.json' does not match its signature"
D_APPS+=("$FLASK-swap")
t_done
