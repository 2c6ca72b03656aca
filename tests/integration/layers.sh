#!/bin/bash
# tests/integration/layers.sh - layered packages (upaas-package(5)): a
# package of three layers with whiteouts and an opaque directory, deployed
# and fetched as one tarball, each equal to the tree it describes; a missing
# and a corrupt layer fail cleanly and name the layer; prune in the middle
# of a build never takes a layer the build stored and has not listed yet,
# and a build whose layer vanished anyway writes no manifest; over a chain
# of commits (a deletion, a rename, a file turned into a directory and back,
# a retargeted symlink, a mode change, a directory the build removes, unicode
# names) and two squashes, the layered package, deployed and fetched by
# package get, equals a --fresh build of the same commit entry by entry; a
# host keeps the layers of its revisions and fetches only those it lacks; a
# first-edition package is the parent of an incremental build.
. "$UPAAS_SRCDIR/tests/lib.sh"
. "$UPAAS_SRCDIR/tests/integration/deploy-lib.sh"

ST=$D_STORAGE
trap 'rc=$?; d_cleanup_storage; (exit $rc); t_cleanup' EXIT

# ----------------------------------------------------- a hand-made package
# Three layers written by Python's tarfile (pax, sorted as upaas writes
# them) and zstd: a full root, then two deltas with whiteouts, an opaque
# directory, a file that becomes a directory and a unicode name; the tree
# they make is written next to them for comparison.
APP=$(d_app layers)
L=$T_ROOT/layers
mkdir -p "$L" "$ST/layers" "$ST/packages/$APP"
hand_layers "$L" || t_bail "cannot make the layers"
for i in 0 1 2; do
	SHA[$i]=$(sha256sum "$L/$i.tar.zst" | cut -c1-64)
	SIZE[$i]=$(stat -c %s "$L/$i.tar.zst")
	cp "$L/$i.tar.zst" "$ST/layers/${SHA[$i]}.tar.zst"
done
python3 - "$APP" "${SHA[0]}" "${SIZE[0]}" "${SHA[1]}" "${SIZE[1]}" "${SHA[2]}" "${SIZE[2]}" \
	>"$ST/packages/$APP/p3.json" <<'PY'
import json, sys
app = sys.argv[1]
v = sys.argv[2:]
layers = [{"sha256": v[2 * i], "size": int(v[2 * i + 1]), "kind": "delta" if i else "full",
           "key": f"layers/{v[2 * i]}.tar.zst"} for i in range(3)]
print(json.dumps({"format": 2, "app": app, "id": "p3", "fresh": False, "layers": layers,
                  "repository": {"url": "test", "commit": "ab" * 20},
                  "app_home": "/home/app", "uid": 1000, "gid": 1000}, indent=1))
PY
sign_object "packages/$APP/p3.json"
# the tree the three layers make, by hand
W=$T_ROOT/want
mkdir -p "$W/etc" "$W/home/app/f2d" "$W/home/app/old"
printf 'kept\n' >"$W/etc/keep"
printf 'mode only\n' >"$W/etc/mode"
chmod 600 "$W/etc/mode"
printf 'print(2)\n' >"$W/home/app/app.py"
rmdir "$W/home/app/f2d"
printf 'a file again\n' >"$W/home/app/f2d"
printf 'new\n' >"$W/home/app/old/new"
printf 'unicode\n' >"$W/home/app/$(printf '\303\251t\303\251 \342\230\203.txt')"
ln -s etc/mode "$W/link"
chown -R 1000:1000 "$W/home/app"
chown 0:0 "$W/home/app"
chmod 644 "$W/etc/keep" "$W/home/app/app.py" "$W/home/app/f2d" "$W/home/app/old/new" \
	"$W/home/app/$(printf '\303\251t\303\251 \342\230\203.txt')"
WANT=$(tree_of "$W")

set_current "$APP" p3
t_ok "deploy a package of three layers" "$UPAAS" deploy "$APP"
t_is "the deployed tree is what the layers make" "$(tree_of "$T_ROOT/srv/$APP/revisions/p3")" "$WANT"
t_ok "package verify checks every layer" "$UPAAS" package verify "$APP" p3
t_is "package verify lists three layers" "$(grep -c '^ok ' "$T_ROOT/last.out")" 3
t_ok "package get writes one tarball" "$UPAAS" package get "$APP" p3 "$T_ROOT/p3.tar.zst"
mkdir "$T_ROOT/got"
tar --zstd -xpf "$T_ROOT/p3.tar.zst" -C "$T_ROOT/got" --numeric-owner
t_is "the tarball holds the same tree" "$(tree_of "$T_ROOT/got")" "$WANT"
t_is "the tarball has no whiteout" "$(tar --zstd -tf "$T_ROOT/p3.tar.zst" | grep -c '\.wh\.')" 0
LIST=$("$UPAAS" package list "$APP")
t_match "package list: three layers, own and total" "$LIST" "p3 .* 3 +[0-9.]+ [KM]iB +[0-9.]+ [KM]iB"
t_match "storage du: the app's layers, each once" "$("$UPAAS" storage du "$APP")" \
	"^$APP +1 +3 "

# a missing and a corrupt layer: refused, named, nothing changed (revisions
# extracted from local storage, which is read and verified at each deploy;
# overlay.sh shows the same for mounted revisions, on a host that lacks the
# layer's tree)
sed 's|^deploy = {|deploy = {\n  materialize = "extract";|' "$T_CFG" >"$T_ROOT/extract.cfg"
X() { UPAAS_CONFIG=$T_ROOT/extract.cfg "$UPAAS" "$@"; }
cp "$ST/packages/$APP/p3.json" "$ST/packages/$APP/p4.json"
sed -i 's/"p3"/"p4"/' "$ST/packages/$APP/p4.json"
sign_object "packages/$APP/p4.json"
mv "$ST/layers/${SHA[1]}.tar.zst" "$T_ROOT/aside"
OUT=$(X deploy --package p4 "$APP" 2>&1)
t_is "a missing layer fails the deploy" "$?" 1
t_match "the error names the missing layer" "$OUT" \
	"layer ${SHA[1]:0:12} \(2 of 3\) of package $APP/p4 .*missing from storage"
t_is "current untouched" "$(deployed "$APP")" p3
t_ok "nothing left of p4" test ! -e "$T_ROOT/srv/$APP/revisions/p4.tmp" -a ! -e "$T_ROOT/srv/$APP/revisions/p4"
cp "$T_ROOT/aside" "$ST/layers/${SHA[1]}.tar.zst"
printf 'X' | dd of="$ST/layers/${SHA[2]}.tar.zst" bs=1 seek=20 conv=notrunc status=none
OUT=$(X deploy --package p4 "$APP" 2>&1)
t_is "a corrupt layer fails the deploy" "$?" 1
t_match "the error names the corrupt layer" "$OUT" "layer ${SHA[2]:0:12} \(3 of 3\).*corrupt: sha256"
t_is "current still untouched" "$(deployed "$APP")" p3
t_fail "package get refuses it too" "$UPAAS" package get "$APP" p4 "$T_ROOT/p4.tar.zst"
t_ok "and leaves no file" test ! -e "$T_ROOT/p4.tar.zst"
cp "$L/2.tar.zst" "$ST/layers/${SHA[2]}.tar.zst"
"$UPAAS" undeploy --purge "$APP" >/dev/null 2>&1

# the same through the http handler: each layer streamed into a private
# temporary file, verified, bounded by its size, then extracted (extracted
# revisions keep the verified layers; mounted ones keep their trees)
python3 -u -m http.server --bind 127.0.0.1 --directory "$ST" 0 >"$T_ROOT/http.log" 2>&1 &
HPID=$!
trap 'rc=$?; kill $HPID 2>/dev/null; d_cleanup_storage; (exit $rc); t_cleanup' EXIT
for _ in $(seq 100); do
	PORT=$(sed -n 's/.*Serving HTTP on [0-9.]* port \([0-9]*\).*/\1/p' "$T_ROOT/http.log")
	[ -n "$PORT" ] && break
	sleep 0.1
done
sed '/^storage = {/,/^};/d' "$T_ROOT/extract.cfg" >"$T_ROOT/http.cfg"
printf 'storage = { handler = "http"; url = "http://127.0.0.1:%s/"; timeout = 10; };\n' \
	"$PORT" >>"$T_ROOT/http.cfg"
H() { UPAAS_CONFIG=$T_ROOT/http.cfg "$UPAAS" "$@"; }
t_ok "deploy the three layers over http" H deploy --package p3 "$APP"
t_is "the same tree" "$(tree_of "$T_ROOT/srv/$APP/revisions/p3")" "$WANT"
t_is "no temporary file left" "$(find "$T_ROOT/srv/$APP" -maxdepth 1 -name '.*layer*')" ""
# the host keeps the layers of its revisions and fetches only those it
# lacks: p5 lists p3's first two layers, p6 only the bottom one
t_is "the host keeps the three layers" "$(ls "$T_ROOT/srv/$APP/layers")" \
	"$(printf '%s.tar.zst\n' "${SHA[@]}" | sort)"
for n in 5 6; do
	python3 - "$ST/packages/$APP/p3.json" p$n $((7 - n)) >"$ST/packages/$APP/p$n.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
m["id"], m["layers"] = sys.argv[2], m["layers"][:int(sys.argv[3])]
print(json.dumps(m, indent=1))
PY
	sign_object "packages/$APP/p$n.json"
done
gets() { grep -c 'GET /layers/' "$T_ROOT/http.log"; }
G=$(gets)
H deploy --json --package p5 "$APP" >"$T_ROOT/p5.json" 2>"$T_ROOT/p5.err"
t_is "deploy p5 over http" "$?" 0
t_is "it fetched no layer, took two the host kept" \
	"$(jq -r '"\(.fetched_layers) \(.fetched_bytes) \(.kept_layers)"' "$T_ROOT/p5.json")" "0 0 2"
t_is "no layer was downloaded" "$(gets)" "$G"
t_ok "package get p5" "$UPAAS" package get "$APP" p5 "$T_ROOT/p5.tar.zst"
mkdir "$T_ROOT/got5"
tar --zstd -xpf "$T_ROOT/p5.tar.zst" -C "$T_ROOT/got5" --numeric-owner 2>/dev/null
t_is "p5's deployed tree is that of its two layers" \
	"$(tree_of "$T_ROOT/srv/$APP/revisions/p5")" "$(tree_of "$T_ROOT/got5")"
# a kept copy that went bad is not used: fetched again, and kept anew
printf 'X' | dd of="$T_ROOT/srv/$APP/layers/${SHA[0]}.tar.zst" bs=1 seek=20 conv=notrunc status=none
H deploy --json --package p6 "$APP" >"$T_ROOT/p6.json" 2>"$T_ROOT/p6.err"
t_is "deploy p6 over a kept copy gone bad" "$?" 0
t_match "it says so" "$(cat "$T_ROOT/p6.err")" "kept copy .*${SHA[0]}.tar.zst.* is unusable .*fetching it again"
t_is "and fetched that layer again" "$(jq -r .fetched_layers "$T_ROOT/p6.json") $(gets)" "1 $((G + 1))"
t_is "the kept copy is whole again" "$(sha256sum <"$T_ROOT/srv/$APP/layers/${SHA[0]}.tar.zst" | cut -c1-64)" \
	"${SHA[0]}"
# once no revision lists a layer, the sweep after the report removes it
t_ok "undeploy" H undeploy "$APP"
t_is "no kept layer left" "$(ls "$T_ROOT/srv/$APP/layers" 2>/dev/null)" ""
printf 'X' | dd of="$ST/layers/${SHA[1]}.tar.zst" bs=1 seek=20 conv=notrunc status=none
OUT=$(H deploy --package p4 "$APP" 2>&1)
t_match "a corrupt layer over http: refused, named" "$OUT" "layer ${SHA[1]:0:12} \(2 of 3\).*corrupt"
printf 'more' >>"$ST/layers/${SHA[2]}.tar.zst"
cp "$L/1.tar.zst" "$ST/layers/${SHA[1]}.tar.zst"
OUT=$(H deploy --package p4 "$APP" 2>&1)
t_match "a layer longer than its size: refused" "$OUT" \
	"layer ${SHA[2]:0:12} .*corrupt: larger than the ${SIZE[2]} bytes"
kill $HPID 2>/dev/null
wait $HPID 2>/dev/null
trap 'rc=$?; d_cleanup_storage; (exit $rc); t_cleanup' EXIT
"$UPAAS" undeploy --purge "$APP" >/dev/null 2>&1
rm -f "$ST/layers/${SHA[0]}.tar.zst" "$ST/layers/${SHA[1]}.tar.zst" "$ST/layers/${SHA[2]}.tar.zst"

# ------------------------------------------------- prune during a build
t_image || t_bail "cannot create the base image"
CFG_EXTRA='interpreters = { shell = { any = { packages = []; }; }; };'
t_write_config "$CFG_EXTRA"
APP=$(d_app race)
SRC=$T_ROOT/src
mkdir -p "$SRC"
printf 'interpreter = { type = "shell"; };\nactions = { main = "date >> history"; };\n' \
	>"$SRC/.upaas.cfg"
commit_tree "$T_ROOT/repo" "$SRC" one >/dev/null
ID1=$(make_package "$APP" "$T_ROOT/repo") || t_bail "the first build failed"
layer_of() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["layers"][-1]["key"])' \
	"$ST/packages/$APP/$1.json"; }
K1=$(layer_of "$ID1")
# an old layer nobody lists: what prune is for
OLD=layers/$(printf old | sha256sum | cut -c1-64).tar.zst
printf 'garbage' >"$ST/$OLD"
touch -d '3 hours ago' "$ST/$OLD"

# paused right before its manifest: its layer is stored, listed nowhere
echo two >"$SRC/two"
commit_tree "$T_ROOT/repo" "$SRC" two >/dev/null
PAUSE=$T_ROOT/paused
(UPAAS_TEST_PAUSE=build.before-manifest:$PAUSE exec "$UPAAS" build --app "$APP" "$T_ROOT/repo" \
	>"$T_ROOT/b2.out" 2>"$T_ROOT/b2.err") &
PID=$!
for _ in $(seq 600); do [ -e "$PAUSE" ] && break; sleep 0.1; done
t_ok "the build pauses before its manifest" test -e "$PAUSE"
NEW=$(cd "$ST" && find layers -name '*.tar.zst' -newer "$ST/$K1" ! -path "$OLD" | head -1)
t_ok "its layer is stored" test -n "$NEW"
t_ok "prune --keep 1 meanwhile" "$UPAAS" package prune --keep 1 "$APP"
t_ok "prune removed the old unlisted layer" test ! -e "$ST/$OLD"
t_ok "prune kept the parent's layer" test -e "$ST/$K1"
t_ok "prune kept the layer the build stored and has not listed yet" test -e "$ST/$NEW"
rm -f "$PAUSE"
wait $PID
t_is "the build completes" "$?" 0
ID2=$(cat "$T_ROOT/b2.out")
t_is "its manifest lists the layer prune left" "$(layer_of "$ID2")" "$NEW"
t_ok "the package verifies" "$UPAAS" package verify "$APP" "$ID2"

# a layer that vanishes anyway (a prune without a grace): no manifest
echo three >"$SRC/three"
commit_tree "$T_ROOT/repo" "$SRC" three >/dev/null
(UPAAS_TEST_PAUSE=build.before-manifest:$PAUSE exec "$UPAAS" build --app "$APP" "$T_ROOT/repo" \
	>"$T_ROOT/b3.out" 2>"$T_ROOT/b3.err") &
PID=$!
for _ in $(seq 600); do [ -e "$PAUSE" ] && break; sleep 0.1; done
t_write_config "$CFG_EXTRA
apps = { layer_grace = 0; };"
t_ok "prune with no grace meanwhile" "$UPAAS" package prune "$APP"
t_write_config "$CFG_EXTRA"
rm -f "$PAUSE"
wait $PID
t_is "the build fails" "$?" 1
t_match "it names the missing layer" "$(cat "$T_ROOT/b3.err")" \
	"before writing the manifest: layer [0-9a-f]{12} .*missing from storage"
t_is "it wrote no manifest" "$(ls "$ST/packages/$APP" | grep -v sbom | grep -c "\.json$")" 2
t_is "current still names the last good package" "$(stored_current "$APP")" "$ID2"
t_ok "the next build works" make_package "$APP" "$T_ROOT/repo"
t_is "no mount left" "$(t_mounts_below "$T_ROOT")" ""

for id in $(ls "$ST/packages/$APP" | grep -v sbom | sed -n 's/\.json$//p'); do
	rm -f "$ST/$(layer_of "$id")"
done

# ------------------------------------------- a chain of commits vs --fresh
# Each commit is built incrementally (a chain of layers over the first
# package) and, as another app from the same repository, --fresh; the
# package of the chain, materialized by deploy and by package get, must be
# the tree of the fresh one entry by entry, but for the app's build history.
# (packed at zstd level 1: the fresh builds pack whole roots)
CFG_EXTRA="$CFG_EXTRA
pack = { level = 1; };"
t_write_config "$CFG_EXTRA"
APP=$(d_app chain)
FRESH=$APP-fresh
D_APPS+=("$FRESH")
W=$T_ROOT/wc
rm -rf "$W"
mkdir -p "$W/d/sub"
printf 'interpreter = { type = "shell"; };\nactions = { main = [ "date >> history", %s ]; };\n' \
	'"if [ -e make-out ]; then mkdir -p out/x && echo made > out/x/y; else rm -rf out; fi"' \
	>"$W/.upaas.cfg"
for f in a b c; do echo "$f" >"$W/$f.txt"; done
echo x >"$W/d/sub/x"
echo f >"$W/f"
echo '#!/bin/sh' >"$W/x.sh"
chmod 644 "$W/x.sh"
ln -s a.txt "$W/l"
touch "$W/make-out"
REPO=$T_ROOT/chain.git
git init -q -b main "$REPO"
gc() { git -C "$REPO" -c user.name=t -c user.email=t@l "$@"; }
step() {   # step MESSAGE: commit the work tree's state as it is
	rsync -a --delete --exclude=.git "$W/" "$REPO/" && gc add -A && gc commit -qm "$1"
}
# compare_trees LABEL A B: the trees equal but for the build history
compare_trees() {
	t_is "$1" "$(tree_of "$2" | grep -v '^home/app/history ')" \
		"$(tree_of "$3" | grep -v '^home/app/history ')"
}
get_tree() {   # get_tree APP ID DIR: the tarball of package get, extracted
	rm -rf "$3" && mkdir -p "$3" &&
	"$UPAAS" package get "$1" "$2" "$T_ROOT/get.tar.zst" >/dev/null 2>&1 &&
	tar --zstd -xpf "$T_ROOT/get.tar.zst" -C "$3" --numeric-owner 2>/dev/null &&
	rm -f "$T_ROOT/get.tar.zst"
}
# check_commit LABEL [deploy]: with deploy, the deployed trees are compared
# too (each deploy extracts a whole root: a few of them show it)
check_commit() {
	local inc fr
	inc=$(make_package "$APP" "$REPO") || { t_not "$1: incremental build"; return; }
	"$UPAAS" build --fresh --app "$FRESH" "$REPO" >"$T_ROOT/fresh.out" 2>&1 ||
		{ t_not "$1: fresh build"; tail -5 "$T_ROOT/fresh.out" | t_diag; return; }
	fr=$(stored_current "$FRESH")
	get_tree "$FRESH" "$fr" "$T_ROOT/tf" || { t_not "$1: get the fresh package"; return; }
	get_tree "$APP" "$inc" "$T_ROOT/ti" || { t_not "$1: get the layered package"; return; }
	compare_trees "$1: package get equals --fresh" "$T_ROOT/ti" "$T_ROOT/tf"
	[ "${2:-}" = deploy ] || return 0
	# deployed, both (deploy drops setuid bits and the like, the same way)
	"$UPAAS" deploy --package "$inc" "$APP" >"$T_ROOT/dep.out" 2>&1 &&
	"$UPAAS" deploy --package "$fr" "$FRESH" >>"$T_ROOT/dep.out" 2>&1 ||
		{ t_not "$1: deploy"; tail -5 "$T_ROOT/dep.out" | t_diag; return; }
	compare_trees "$1: deployed equals --fresh" "$T_ROOT/srv/$APP/revisions/$inc" \
		"$T_ROOT/srv/$FRESH/revisions/$fr"
}
step one && make_package "$APP" "$REPO" >/dev/null || t_bail "the first build failed"
rm "$W/b.txt"; step "delete a file"; check_commit "deleted file"
mv "$W/c.txt" "$W/c2.txt"; step "rename a file"; check_commit "renamed file"
rm "$W/f"; mkdir "$W/f"; echo in >"$W/f/in"; step "a file becomes a directory"
check_commit "file to directory" deploy
rm -r "$W/f"; echo f2 >"$W/f"; step "and back"; check_commit "directory to file"
ln -sfn c2.txt "$W/l"; step "retarget a symlink"; check_commit "retargeted symlink"
chmod 755 "$W/x.sh"; step "a mode only"; check_commit "mode only" deploy
layers_now() { python3 -c 'import json,sys; print(" ".join(l["kind"] for l in json.load(open(sys.argv[1]))["layers"]))' \
	"$ST/packages/$APP/$(stored_current "$APP").json"; }
t_is "the chain: a full layer and a delta per build" "$(layers_now)" \
	"full delta delta delta delta delta delta"
rm "$W/make-out"; step "the build removes its directory"; check_commit "build's dir removed"
printf 'u\n' >"$W/$(printf '\303\251t\303\251 \342\230\203.txt')"
step "unicode names"; check_commit "unicode names" deploy
t_is "past pack.max_layers (8) the chain was squashed" "$(layers_now)" "full"

# squash when the deltas outweigh pack.squash_ratio of the bottom layer
t_write_config "${CFG_EXTRA%pack = *}
pack = { level = 1; squash_ratio = 0.0; };"
echo sq >"$W/squash"; step "squash"
check_commit "a delta then"
echo sq2 >"$W/squash"; step "squash again"
check_commit "squashed" deploy
t_is "the deltas outweigh a ratio of 0: squashed" "$(layers_now)" "full"
t_write_config "$CFG_EXTRA"
"$UPAAS" undeploy --purge "$APP" >/dev/null 2>&1
"$UPAAS" undeploy --purge "$FRESH" >/dev/null 2>&1

# ------------------------------------------------- a first-edition parent
# A package of the first edition (one blob under packages/<app>/, a format 1
# manifest) is the parent of an incremental build, which starts a chain on
# it: its manifest lists the blob as the bottom layer, then its delta; its
# tree is that of a --fresh build; prune keeps the blob as long as a
# package lists it.
APP=$(d_app first)
FRESH=$APP-fresh
D_APPS+=("$FRESH")
ID=$(make_package "$APP" "$REPO") || t_bail "the build of the first-edition parent failed"
M=$ST/packages/$APP/$ID.json
K=$(jq -r '.layers[0].key' "$M")
BLOB=packages/$APP/$ID.tar.zst
mv "$ST/$K" "$ST/$BLOB"
jq --arg k "$BLOB" '.format = 1 | .blob = (.layers[0] | {key: $k, sha256, size,
	compression: "zstd", format: "pax"}) | del(.layers)' "$M" >"$M.new" && mv "$M.new" "$M"
sign_object "packages/$APP/$ID.json"
t_ok "the first-edition package verifies" "$UPAAS" package verify "$APP" "$ID"
echo first >"$W/first-edition"; step "over a first-edition package"
check_commit "over a first-edition parent" deploy
INC=$(stored_current "$APP")
t_is "its manifest: the blob, then a delta" \
	"$(jq -r '"\(.format) " + ([.layers[] | "\(.key) \(.kind)"] | join(" "))' "$ST/packages/$APP/$INC.json")" \
	"2 $BLOB full layers/$(jq -r '.layers[1].sha256' "$ST/packages/$APP/$INC.json").tar.zst delta"
t_write_config "$CFG_EXTRA
apps = { layer_grace = 0; };"
t_ok "prune --keep 1 takes the first-edition package" "$UPAAS" package prune --keep 1 "$APP"
t_write_config "$CFG_EXTRA"
t_ok "its manifest is gone" test ! -e "$M"
t_ok "its blob stays: the chain lists it" test -e "$ST/$BLOB"
t_ok "the chain verifies" "$UPAAS" package verify "$APP" "$INC"
"$UPAAS" undeploy --purge "$APP" >/dev/null 2>&1
"$UPAAS" undeploy --purge "$FRESH" >/dev/null 2>&1
for k in $BLOB $(jq -r '.layers[1:][] | .key' "$ST/packages/$APP/$INC.json"); do rm -f "$ST/$k"; done
t_done
