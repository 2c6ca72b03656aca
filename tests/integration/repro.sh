#!/bin/bash
# tests/integration/repro.sh - reproducible builds and standard tarballs:
# two fresh builds of one commit (with an OS package) give the same sha256;
# a second bootstrap of the base image from the same mirror state gives the
# same sha256; GNU tar and bsdtar list and extract a package and an image
# without a word on stderr.
. "$UPAAS_SRCDIR/tests/lib.sh"

t_image || t_bail "cannot create the base image"
command -v bsdtar >/dev/null || t_bail "bsdtar is missing (apt-get install libarchive-tools)"

t_write_config 'interpreters = { shell = { any = { packages = []; }; }; };'
APP=repro-$(printf '%s' "${T_ROOT##*.}" | tr 'A-Z' 'a-z')
ST=$UPAAS_TEST_SHARED/storage
SRC=$T_ROOT/src
jget() { python3 -c 'import json,sys; d=json.load(sys.stdin)
for k in sys.argv[1].split("."): d = d[k]
print(json.dumps(d) if isinstance(d, (dict, list, bool)) or d is None else d)' "$1"; }

mkdir -p "$SRC/données"
git init -q -b main "$SRC"
cat >"$SRC/.upaas.cfg" <<'EOF'
interpreter = { type = "shell"; };
os = { packages = [ "hello" ]; };
actions = { main = [ "hello >greeting.txt", "date -u -d @$SOURCE_DATE_EPOCH +%F >built-on.txt" ]; };
EOF
echo été >"$SRC/données/été.txt"
echo 日本 >"$SRC/日本語.txt"
git -C "$SRC" add -A
git -C "$SRC" -c user.name=t -c user.email=t@l commit -qm one
DAY=$(TZ=UTC git -C "$SRC" show -s --format=%cd --date=format-local:%F HEAD)

# ----------------------------------------------------------- packages
ID1=$("$UPAAS" build --fresh --app "$APP" "$SRC" 2>"$T_ROOT/b1.err")
t_is "a fresh build" "$?" 0
[ -n "$ID1" ] || t_diag "$(tail -n 20 "$T_ROOT/b1.err")"
ID2=$("$UPAAS" build --fresh --app "$APP" "$SRC" 2>"$T_ROOT/b2.err")
t_is "another fresh build of the same commit" "$?" 0
SHA1=$("$UPAAS" package show --json "$APP" "$ID1" | jq -r ".layers[0].sha256")
SHA2=$("$UPAAS" package show --json "$APP" "$ID2" | jq -r ".layers[0].sha256")
t_is "both have the same sha256" "$SHA2" "$SHA1"
if [ "$SHA1" != "$SHA2" ]; then
	"$UPAAS" package get "$APP" "$ID1" "$T_ROOT/1.tar.zst" 2>/dev/null
	"$UPAAS" package get "$APP" "$ID2" "$T_ROOT/2.tar.zst" 2>/dev/null
	t_diag "$(python3 "$UPAAS_SRCDIR/tests/pkgdiff.py" --mtime "$T_ROOT/1.tar.zst" \
		"$T_ROOT/2.tar.zst" 2>&1 | head -n 20)"
fi
t_is "steps see SOURCE_DATE_EPOCH, the commit's time" \
	"$("$UPAAS" package get "$APP" "$ID1" "$T_ROOT/p.tar.zst" 2>/dev/null &&
	   tar --zstd -xOf "$T_ROOT/p.tar.zst" home/app/built-on.txt)" "$DAY"

# ------------------------------------------------------ standard tarballs
# tar_clean LABEL FILE: both tools list and extract FILE, stderr empty
tar_clean() {
	local label=$1 file=$2 x=$T_ROOT/x
	rm -rf "$x" && mkdir "$x"
	t_is "$label: GNU tar lists it silently" "$(tar --zstd -tvf "$file" 2>&1 >/dev/null | head -n 5)" ""
	t_is "$label: GNU tar extracts it silently" "$(tar --zstd -xpf "$file" -C "$x" 2>&1 | head -n 5)" ""
	rm -rf "$x" && mkdir "$x"
	t_is "$label: bsdtar lists it silently" "$(bsdtar -tvf "$file" 2>&1 >/dev/null | head -n 5)" ""
	t_is "$label: bsdtar extracts it silently" "$(bsdtar -xpf "$file" -C "$x" 2>&1 | head -n 5)" ""
	rm -rf "$x"
}
tar_clean "a package" "$T_ROOT/p.tar.zst"
t_match "unicode names are plain UTF-8" "$(tar --zstd -tf "$T_ROOT/p.tar.zst")" "home/app/données/été.txt"
rm -f "$T_ROOT"/*.tar.zst
IMG=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["name"])' \
	"$(ls "$ST"/images/*.json | head -1)")
# the blob its manifest names (images/<name>/<id>.tar.zst since images are
# content addressed)
tar_clean "an image" "$ST/$(jq -r .key "$ST/images/$IMG.json")"

# ------------------------------------------------------------- the image
# A second bootstrap under another name, from the same mirror state (the
# Release Date the image records), must give the same bytes.
epoch() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("source_date_epoch", 0))' "$1"; }
NAME=repro-$(printf '%s' "${T_ROOT##*.}" | tr 'A-Z' 'a-z')
trap 'rc=$?; "$UPAAS" image rm "$NAME" >/dev/null 2>&1; "$UPAAS" image rm "$NAME-2" >/dev/null 2>&1
(exit $rc); t_cleanup' EXIT
t_ok "image create NAME" "$UPAAS" image create "$NAME"
A=$ST/images/$IMG.json
B=$ST/images/$NAME.json
if [ "$(epoch "$A")" != "$(epoch "$B")" ] || [ "$(epoch "$A")" = 0 ]; then
	# the mirror moved on since the shared image: bootstrap twice
	t_diag "the mirror changed since '$IMG' was made: comparing two new images"
	t_ok "image create NAME-2" "$UPAAS" image create "$NAME-2"
	A=$B
	B=$ST/images/$NAME-2.json
fi
t_match "the image records the mirror's time" "$(epoch "$B")" '^[1-9][0-9]+$'
t_is "the same mirror state gives the same image" \
	"$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["sha256"])' "$B")" \
	"$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["sha256"])' "$A")"

t_done
