#!/bin/bash
# tests/integration/image-crash.sh - images are published like packages:
# kill -9 (a crash point) at every step of `image create --force` and of
# `image rm` leaves a manifest that names its own intact blob (the old image
# or the new one, never a mix) or no image at all; the next command
# succeeds, and after it nothing is left over: no blob that no manifest
# names, no temp file, no dead creation's work dir.
#
# Only the steps after the bootstrap matter here, so the bootstrap is a
# stand-in that copies a seed root taken from the run's base image (its dpkg
# status: the manifest lists its packages): a creation costs a second.
. "$UPAAS_SRCDIR/tests/lib.sh"
t_require_crash_points

t_image || t_bail "cannot create the base image"
BASE_NAME=$(awk '/^name:/ {print $2}' "$T_ROOT/image.out")
BASE=$UPAAS_TEST_SHARED/storage/$(jq -r .key "$UPAAS_TEST_SHARED/storage/images/$BASE_NAME.json")
SEED=$T_ROOT/seed
mkdir -p "$SEED" "$T_ROOT/bin" "$T_ROOT/mirror/dists/bookworm"
tar --warning=no-unknown-keyword --zstd -xpf "$BASE" -C "$SEED" \
	var/lib/dpkg/status etc/os-release ||
	t_bail "cannot take the seed root from '$BASE'"
printf 'Suite: stable\nCodename: bookworm\n' >"$T_ROOT/mirror/dists/bookworm/Release"
# mmdebstrap's argv ends with SUITE TARGET MIRROR
cat >"$T_ROOT/bin/mmdebstrap" <<SH
#!/bin/bash
target=\${@: -2:1}
mkdir -p "\$target" && cp -a "$SEED/." "\$target/"
SH
chmod +x "$T_ROOT/bin/mmdebstrap"
export PATH=$T_ROOT/bin:$PATH

ST=$T_ROOT/storage
t_write_config "bootstrap = { tool = \"mmdebstrap\"; mirror = \"file://$T_ROOT/mirror\"; };"
sed -i "s|path = \"$UPAAS_TEST_SHARED/storage\";|path = \"$ST\";|; s|cache = \"$UPAAS_TEST_SHARED/cache\";|cache = \"$T_ROOT/cache\";|" "$T_CFG"
grep -q "path = \"$ST\";" "$T_CFG" || t_bail "cannot point the config at '$ST'"

IMG=crashimg
t_ok "a creation with the stand-in bootstrap" "$UPAAS" image create "$IMG"

# consistent NAME: the manifest (if any) names a blob that is there, with
# the manifest's sha256 and size; prints "ok", "none" or what is wrong
consistent() {
	local m=$ST/images/$1.json key blob
	[ -e "$m" ] || { echo none; return; }
	key=$(jq -r .key "$m") || { echo "manifest unreadable"; return; }
	blob=$ST/$key
	[ -f "$blob" ] || { echo "manifest names a missing blob '$key'"; return; }
	[ "$(sha256sum <"$blob" | cut -d' ' -f1)" = "$(jq -r .sha256 "$m")" ] ||
		{ echo "blob '$key' does not match its manifest"; return; }
	[ "$(stat -c %s "$blob")" = "$(jq -r .size "$m")" ] || { echo "size differs"; return; }
	# and its signature checks out: upaas reads it
	"$UPAAS" image show "$1" >/dev/null 2>"$T_ROOT/show.err" ||
		{ echo "image show fails: $(tail -n 1 "$T_ROOT/show.err")"; return; }
	echo ok
}
# leftovers NAME: whatever a finished command must not leave: blobs no
# manifest names, upload temps, publication records, dead work dirs
leftovers() {
	local keep=
	[ -e "$ST/images/$1.json" ] && keep=$(jq -r .key "$ST/images/$1.json")
	find "$ST" -name '.tmp-*'
	find "$ST/images" -type f \( -path "$ST/images/$1/*" -o -name "$1.tar.zst" \) |
		grep -v -x -F "$ST/$keep"
	ls -d "$T_ROOT/cache/images/$1.publish" "$T_ROOT/work/image-$1."* 2>/dev/null
	# a signature with lines of an older manifest than the one it signs
	[ ! -e "$ST/images/$1.json.sig" ] || [ "$(wc -l <"$ST/images/$1.json.sig")" = 1 ] ||
		echo "old signature lines left in images/$1.json.sig"
	[ -e "$ST/images/$1.json" ] || [ ! -e "$ST/images/$1.json.sig" ] ||
		echo "a signature without its manifest"
}

# walk LABEL NAME COMMAND... < TRACE: for each point of TRACE, kills COMMAND
# there, checks the image, runs the next command (NEXT), checks again and
# looks for leftovers; then SETUP makes the state the next walk starts from
broken=0 garbage=0 walked=0
walk() {
	local label=$1 name=$2 point count state left; shift 2
	while read -r point count; do
		walked=$((walked + 1))
		t_ok "$label: killed at $point #$count" \
			t_crash_at "$point" "$count" "$@"
		state=$(consistent "$name")
		[ "$state" = ok ] || [ "$state" = none ] || broken=$((broken + 1))
		t_match "$label at $point #$count: the image is whole or absent" "$state" "^(ok|none)$"
		t_ok "$label at $point #$count: the next command succeeds" "${NEXT[@]}"
		t_is "$label at $point #$count: then the image is whole" "$(consistent "$name")" "$NEXT_STATE"
		left=$(leftovers "$name")
		[ -z "$left" ] || garbage=$((garbage + 1))
		t_is "$label at $point #$count: nothing left over after the next command" "$left" ""
		"${SETUP[@]}" >/dev/null 2>&1
	done
}

# --- image create --force
t_ok "trace of a create --force" t_crash_trace "$T_ROOT/create.trace" \
	"$UPAAS" image create --force "$IMG"
t_match "it passes the blob/manifest points" "$(tr '\n' ' ' <"$T_ROOT/create.trace")" \
	"image.after-blob 1.*image.after-manifest 1"
NEXT=("$UPAAS" image create --force "$IMG") NEXT_STATE=ok SETUP=(true)
walk "create --force" "$IMG" "$UPAAS" image create --force "$IMG" <"$T_ROOT/create.trace"

# --- image rm (each time of an image made afresh)
RM=rmimg
t_ok "an image to remove" "$UPAAS" image create "$RM"
t_ok "trace of an rm" t_crash_trace "$T_ROOT/rm.trace" "$UPAAS" image rm "$RM"
t_match "it passes the removal point" "$(cat "$T_ROOT/rm.trace")" "image.remove.after-manifest 1"
t_ok "the image again" "$UPAAS" image create "$RM"
# the next command: rm again (an image already gone says so; that is fine)
rm_again() { "$UPAAS" image rm "$RM" || grep -q "no image '$RM'" "$T_ROOT/rm.err"; } 2>"$T_ROOT/rm.err"
NEXT=(rm_again) NEXT_STATE=none SETUP=("$UPAAS" image create "$RM")
walk "rm" "$RM" "$UPAAS" image rm "$RM" <"$T_ROOT/rm.trace"

t_ok "the points walked cover the image's own" sh -c "cat '$T_ROOT/create.trace' '$T_ROOT/rm.trace' | awk '{print \$1}' | sort -u | grep -c '^image\.' | grep -qx 3"
t_diag "walked $walked crash points: $broken broken images, $garbage left garbage"
t_is "0 broken images" "$broken" 0
t_is "0 garbage after the next command" "$garbage" 0
t_done
