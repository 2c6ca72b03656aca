#!/bin/bash
# tests/integration/build.sh - upaas build and upaas package, for real:
# the example Flask app from a git repository, fresh, incremental, fresh
# again; the package contents; list/show/verify/get/prune.
. "$UPAAS_SRCDIR/tests/lib.sh"

t_image || t_bail "cannot create the base image"

APP=pyflask-$(printf '%s' "${T_ROOT##*.}" | tr 'A-Z' 'a-z')
SRC=$T_ROOT/src
git_c() { git -C "$SRC" -c user.name=t -c user.email=t@localhost "$@"; }
cp -a "$UPAAS_SRCDIR/examples/python-flask" "$SRC"
echo "this file is removed by the second commit" >"$SRC/removeme.txt"
git -C "$SRC" init -q -b main
git -C "$SRC" add -A
git_c commit -qm one
C1=$(git -C "$SRC" rev-parse HEAD)

# Extracts package ID into dir $2.
extract() {
	rm -rf "$2"; mkdir -p "$2"
	"$UPAAS" package get "$APP" "$1" "$T_ROOT/pkg.tar.zst" &&
		tar --zstd -xpf "$T_ROOT/pkg.tar.zst" -C "$2" && rm -f "$T_ROOT/pkg.tar.zst"
}
jget() { python3 -c 'import json,sys; d=json.load(sys.stdin)
for k in sys.argv[1].split("."): d = d[int(k)] if k.lstrip("-").isdigit() else d[k]
print(json.dumps(d) if isinstance(d, (dict, list, bool)) or d is None else d)' "$1"; }

# ---------------------------------------------------------------- fresh
ID1=$("$UPAAS" build --app "$APP" "$SRC" 2>"$T_ROOT/build1.err")
t_is "fresh build succeeds" "$?" 0
[ -n "$ID1" ] || { cat "$T_ROOT/build1.err" >&2; t_bail "no package id"; }
t_match "progress names the steps" "$(cat "$T_ROOT/build1.err")" "step main +ok"
M1=$("$UPAAS" package show --json "$APP" "$ID1")
t_is "first build is fresh" "$(jget fresh <<<"$M1")" true
t_match "manifest says why" "$(jget base.reason <<<"$M1")" "first build"
t_is "manifest records the commit" "$(jget repository.commit <<<"$M1")" "$C1"
t_is "manifest records the interpreter" "$(jget interpreter.type <<<"$M1")" python
t_is "current names the package" "$(t_current_id "$UPAAS_TEST_SHARED/storage/apps/$APP/current")" "$ID1"
t_ok "the build log is stored" test -s "$UPAAS_TEST_SHARED/storage/logs/$APP/$ID1.log"

X=$T_ROOT/x1
t_ok "package get + extract" extract "$ID1" "$X"
t_is "app at the right commit (UPAAS_COMMIT)" "$(cat "$X/home/app/.upaas-commit")" "$C1"
t_is "UPAAS_FRESH_PACKAGE=true" "$(cat "$X/home/app/.upaas-fresh")" true
t_ok "app code checked out" cmp "$SRC/app.py" "$X/home/app/app.py"
t_ok "python3 and flask work in the package" chroot "$X" python3 -c 'import flask'
t_is "/home/app owned by the app uid" "$(stat -c %u:%g "$X/home/app")" 1000:1000
t_is "app files owned by the app uid" "$(stat -c %u "$X/home/app/app.py")" 1000
t_is "the app user exists" "$(chroot "$X" id -u app)" 1000
t_is "metadata files written" "$(cat "$X/etc/python-flask/app.ini")" "[server]
port = 8000"
t_ok "no .git in the package" test ! -e "$X/home/app/.git"
for d in proc sys dev tmp var/tmp var/lib/apt/lists var/cache/apt run; do
	t_is "/$d is empty" "$(find "$X/$d" -mindepth 1 -maxdepth 1 2>/dev/null | head -3)" ""
done
t_ok "package verify" "$UPAAS" package verify "$APP" "$ID1"

# ---------------------------------------------------------- incremental
git_c rm -q removeme.txt
echo "# changed" >>"$SRC/app.py"
git_c commit -qam two
C2=$(git -C "$SRC" rev-parse HEAD)
ID2=$("$UPAAS" build --app "$APP" "$SRC" 2>"$T_ROOT/build2.err")
t_is "incremental build succeeds" "$?" 0
[ -n "$ID2" ] || cat "$T_ROOT/build2.err" >&2
M2=$("$UPAAS" package show --json "$APP" "$ID2")
t_is "second build is incremental" "$(jget fresh <<<"$M2")" false
t_is "its parent is the first package" "$(jget parent <<<"$M2")" "$ID1"
t_is "its base is the first package" "$(jget base.kind <<<"$M2") $(jget base.name <<<"$M2")" \
	"package $ID1"
t_is "os packages step skipped (already installed)" \
	"$(python3 -c 'import json,sys; print([s["status"] for s in json.load(sys.stdin)["steps"] if s["name"]=="os packages"][0])' <<<"$M2")" skipped
X=$T_ROOT/x2
t_ok "extract the incremental package" extract "$ID2" "$X"
t_is "app at the new commit" "$(cat "$X/home/app/.upaas-commit")" "$C2"
t_is "UPAAS_FRESH_PACKAGE=false" "$(cat "$X/home/app/.upaas-fresh")" false
t_is "the previous build's artifact survives" "$(wc -l <"$X/home/app/build-history.txt")" 2
t_ok "a file removed from the repo is gone" test ! -e "$X/home/app/removeme.txt"
t_ok "a changed file is updated" cmp "$SRC/app.py" "$X/home/app/app.py"
t_is "current names the incremental package" "$("$UPAAS" package show "$APP" current | head -1)" \
	"package      $APP/$ID2"

# ------------------------------------------------ layers in the root cache
# A package lists its layers (a full one, then a delta per build); the root
# cache keeps each build's overlay upper dir as the entry of its new layer
# (roots/<sha> + roots/<sha>.parent), so the next incremental build stacks
# them instead of fetching anything.
ROOTS=$UPAAS_TEST_SHARED/cache/roots
SHA1=$(jget layers.-1.sha256 <<<"$M1")
SHA2=$(jget layers.-1.sha256 <<<"$M2")
LOG2=$UPAAS_TEST_SHARED/storage/logs/$APP/$ID2.log
t_is "the fresh package is one full layer" "$(jget layers.-1.kind <<<"$M1")" full
t_is "the incremental package adds a delta to it" \
	"$(python3 -c 'import json,sys; print(" ".join(l["kind"] + ":" + l["sha256"][:12] for l in json.load(sys.stdin)["layers"]))' <<<"$M2")" \
	"full:${SHA1:0:12} delta:${SHA2:0:12}"
t_is "the fresh build's layer sits on the image" "$(cat "$ROOTS/$SHA1.parent" 2>&1)" \
	"$(jget image.sha256 <<<"$M1")"
t_is "the incremental build's layer sits on the first" "$(cat "$ROOTS/$SHA2.parent" 2>&1)" \
	"$SHA1"
t_match "the incremental build stacked the layers, unpacked nothing" "$(cat "$LOG2")" \
	"root: 2 cached lower layers, nothing unpacked"
t_ok "a layer holds a whiteout for the removed file" \
	test -c "$ROOTS/$SHA2/home/app/removeme.txt"
t_match "the delta holds the removed file's whiteout and the change" \
	"$(tar --zstd -tf "$UPAAS_TEST_SHARED/storage/layers/$SHA2.tar.zst" | sort | tr '\n' ' ')" \
	"home/app/\.wh\.removeme\.txt .*home/app/app\.py"

# a trimmed layer (not mounted now): the chain is broken, the next build
# fetches the package's layers again (verified) and stacks them
rm -rf "$ROOTS/$SHA1"
echo "# three" >>"$SRC/app.py"
git_c commit -qam three
ID2B=$("$UPAAS" build --app "$APP" "$SRC" 2>"$T_ROOT/build2b.err")
t_is "a build over a broken chain succeeds" "$?" 0
[ -n "$ID2B" ] || cat "$T_ROOT/build2b.err" >&2
M2B=$("$UPAAS" package show --json "$APP" "$ID2B")
SHA2B=$(jget layers.-1.sha256 <<<"$M2B")
t_is "it is still incremental" "$(jget fresh <<<"$M2B") $(jget parent <<<"$M2B")" "false $ID2"
t_match "it fetched the package's layers" \
	"$(cat "$UPAAS_TEST_SHARED/storage/logs/$APP/$ID2B.log")" \
	"root: fetched and unpacked layers up to ${SHA2:0:12} into the cache"
t_ok "the bottom layer is a full copy again" \
	sh -c "test -d '$ROOTS/$SHA1' && test ! -e '$ROOTS/$SHA1.parent'"
t_is "the delta was fetched over it" "$(cat "$ROOTS/$SHA2.parent" 2>&1)" "$SHA1"
t_is "the new layer sits on the delta" "$(cat "$ROOTS/$SHA2B.parent" 2>&1)" "$SHA2"
X=$T_ROOT/x2b
t_ok "extract the package built over the fallback" extract "$ID2B" "$X"
t_is "history continues over the fallback" "$(wc -l <"$X/home/app/build-history.txt")" 3
t_ok "the removed file stays gone" test ! -e "$X/home/app/removeme.txt"
t_ok "the changed file is updated" cmp "$SRC/app.py" "$X/home/app/app.py"
ID4=$("$UPAAS" build --app "$APP" "$SRC" 2>"$T_ROOT/build4.err")
t_is "a no-change build over the new chain succeeds" "$?" 0
t_match "it stacked the layers again" \
	"$(cat "$UPAAS_TEST_SHARED/storage/logs/$APP/$ID4.log")" \
	"root: 3 cached lower layers, nothing unpacked"
t_ok "extract the no-change package" extract "$ID4" "$X"
t_is "history continues over the new chain" "$(wc -l <"$X/home/app/build-history.txt")" 4
t_is "excluded contents are absent" "$(find "$X/tmp" "$X/run" "$X/dev" "$X/var/tmp" -mindepth 1)" ""
SHA4=$("$UPAAS" package show --json "$APP" "$ID4" | jget layers.-1.sha256)

# ---------------------------------------------------------- fresh again
ID3=$("$UPAAS" build --fresh --app "$APP" "$SRC" 2>"$T_ROOT/build3.err")
t_is "--fresh build succeeds" "$?" 0
M3=$("$UPAAS" package show --json "$APP" "$ID3")
SHA3X=$(jget layers.0.sha256 <<<"$M3")
t_is "--fresh gives a fresh package" "$(jget fresh <<<"$M3")" true
t_match "--fresh reason" "$(jget base.reason <<<"$M3")" "--fresh"
X=$T_ROOT/x3
t_ok "extract the fresh package" extract "$ID3" "$X"
t_is "a fresh package starts a new history" "$(wc -l <"$X/home/app/build-history.txt")" 1
rm -rf "$T_ROOT/x1" "$T_ROOT/x2" "$T_ROOT/x2b" "$T_ROOT/x3"

# ------------------------------------------------------------- packages
LIST=$("$UPAAS" package list "$APP")
t_match "list shows the first" "$LIST" "$ID1 +fresh"
t_match "list shows the second" "$LIST" "$ID2 +incremental"
t_match "list marks current" "$LIST" "^\* $ID3"
t_is "list --json" "$("$UPAAS" package list --json "$APP" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" 5
t_match "show is for humans" "$("$UPAAS" package show "$APP" "$ID2")" "incremental: the current package"
t_fail "verify of a missing package fails" "$UPAAS" package verify "$APP" 20000101T000000Z-0000000

t_match "list shows layers, own and total bytes" "$LIST" \
	"$ID3 +fresh +[0-9a-f]{12} +1 +[0-9.]+ MiB +[0-9.]+ MiB "
t_match "show lists the layer" "$("$UPAAS" package show "$APP" "$ID3")" \
	"full +[0-9.]+ MiB +layers/$SHA3X\.tar\.zst"
DU=$("$UPAAS" storage du --json "$APP")
t_is "storage du: each layer once" \
	"$(python3 -c 'import json,sys; a=json.load(sys.stdin)["apps"][0]; print(a["packages"], a["layers"])' <<<"$DU")" \
	"5 5"

# a corrupt layer: verify and get refuse it and name it, get leaves no file
B=$UPAAS_TEST_SHARED/storage/layers/$SHA1.tar.zst
printf 'x' | dd of="$B" bs=1 seek=1000 conv=notrunc status=none
OUT=$("$UPAAS" package verify "$APP" "$ID1" 2>&1)
t_is "verify of a corrupt layer exits 1" "$?" 1
t_match "verify names the corrupt layer" "$OUT" "layer ${SHA1:0:12} .*corrupt.*sha256"
t_fail "get of a corrupt layer fails" "$UPAAS" package get "$APP" "$ID1" "$T_ROOT/bad.tar.zst"
t_ok "nothing written by a failed get" test -z "$(ls "$T_ROOT" | grep bad.tar.zst)"

# prune: the manifests, then (no grace here) the layers no package lists
t_write_config 'apps = { layer_grace = 0; };'
t_ok "prune --keep 1" "$UPAAS" package prune --keep 1 "$APP"
t_write_config
t_is "prune keeps the newest (current)" "$("$UPAAS" package list --json "$APP" | python3 -c 'import json,sys; print(" ".join(p["id"] for p in json.load(sys.stdin)))')" "$ID3"
t_ok "pruned layers are gone" test ! -e "$B"
t_ok "the kept package's layer stays" test -e "$UPAAS_TEST_SHARED/storage/layers/$SHA3X.tar.zst"

# ------------------------------------------------------------- bad input
mkdir "$T_ROOT/nocfg"
git -C "$T_ROOT/nocfg" init -q -b main
echo hi >"$T_ROOT/nocfg/x"
git -C "$T_ROOT/nocfg" add x
git -C "$T_ROOT/nocfg" -c user.name=t -c user.email=t@l commit -qm x
OUT=$("$UPAAS" build --app "$APP-nocfg" "$T_ROOT/nocfg" 2>&1)
t_match "a repo without .upaas.cfg is refused" "$OUT" "no \.upaas\.cfg in '.*nocfg' at [0-9a-f]{12}"
OUT=$("$UPAAS" build --app "$APP" --ref no-such-branch "$SRC" 2>&1)
t_match "an unknown ref is refused" "$OUT" "ref 'no-such-branch' not found"
OUT=$("$UPAAS" build no-such-app-name 2>&1)
t_match "an unknown source is refused" "$OUT" "unknown app 'no-such-app-name'"
t_is "current unchanged by failed builds" "$(t_current_id "$UPAAS_TEST_SHARED/storage/apps/$APP/current")" "$ID3"
t_is "no work dir left behind" "$(ls "$T_ROOT/work" | grep -v '\.lock$')" ""
t_is "no mount left behind" "$(t_mounts_below "$T_ROOT")" ""

# cleanup of the shared storage and cache (nothing of it is mounted now)
SHA3=$(jget layers.0.sha256 <<<"$M3")
for s in "$SHA1" "$SHA2" "$SHA2B" "$SHA3" ${SHA4:+"$SHA4"}; do
	rm -rf "${ROOTS:?}/$s" "$ROOTS/$s".*
done
"$UPAAS" package prune --keep 1 "$APP" >/dev/null
for s in "$SHA1" "$SHA2" "$SHA2B" "$SHA3" ${SHA4:+"$SHA4"}; do
	rm -f "$UPAAS_TEST_SHARED/storage/layers/$s.tar.zst"
done
rm -rf "$UPAAS_TEST_SHARED/storage/packages/$APP" "$UPAAS_TEST_SHARED/storage/apps/$APP" \
	"$UPAAS_TEST_SHARED/storage/logs/$APP" "$UPAAS_TEST_SHARED/cache/git/$APP".*
t_done
