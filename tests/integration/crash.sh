#!/bin/bash
# tests/integration/crash.sh - crash consistency: upaas is killed (SIGKILL,
# at each crash point of common/crash.c that the command passes) in the
# middle of build, deploy, rollback, undeploy and package prune, and
# SIGTERM'd at random moments of deploy. After each kill: `current` (in
# storage and on the host) names a complete package / a complete, verified
# revision (its files, sizes and the app's content against the blob's
# listing), no final name holds a half tree; then the next command succeeds
# and leaves nothing over: no blob without manifest, no tombstone, no temp,
# no trash, no dead work dir. image-crash.sh does the same for images.
. "$UPAAS_SRCDIR/tests/lib.sh"
. "$UPAAS_SRCDIR/tests/integration/deploy-lib.sh"
t_require_crash_points

# Every crash point in the source is in the table, and the other way round:
# what the walks below cover is then what the code has.
src_points=$(grep -rhoE 'crash_point\("[^"]+"\)' --include='*.c' "$UPAAS_SRCDIR" |
	sed 's/crash_point("\(.*\)")/\1/' | sort -u)
t_is "the table lists exactly the crash points of the source" \
	"$(sort <<<"$CRASH_POINTS")" "$src_points"

t_image || t_bail "cannot create the base image"
t_write_config 'interpreters = { shell = { any = { packages = []; }; }; };
pack = { level = 1; max_layers = 32; };'
# a cache of our own: the walks empty and trim it
CACHE=$T_ROOT/cache
sed -i "s|cache = \"$UPAAS_TEST_SHARED/cache\";|cache = \"$CACHE\";|" "$T_CFG"
grep -q "cache = \"$CACHE\";" "$T_CFG" || t_bail "cannot point the config at '$CACHE'"
# revisions kept on the host: 2, so that deploys prune
sed -i 's|^  hooks_dir = .*;$|&\n  keep = 2;|' "$T_CFG"
grep -q '^  keep = 2;$' "$T_CFG" || t_bail "cannot set deploy.keep"
# a storage of our own (the shared image copied in), so that prune may
# collect unlisted layers at once (apps.layer_grace = 0) without taking the
# layers of another test's build in progress
ST=$T_ROOT/storage
mkdir -p "$ST"
cp -a "$UPAAS_TEST_SHARED/storage/images" "$ST/" || t_bail "cannot copy the image"
D_STORAGE=$ST
sed -i "s|path = \"$UPAAS_TEST_SHARED/storage\";|path = \"$ST\";|" "$T_CFG"
grep -q "path = \"$ST\";" "$T_CFG" || t_bail "cannot point the config at '$ST'"
echo 'apps = { layer_grace = 0; };' >>"$T_CFG"
ROOT=$T_ROOT/srv
APP=$(d_app crash)
trap 'rc=$?; d_cleanup_storage; (exit $rc); t_cleanup' EXIT
WALKED=0 BROKEN=0 HALF=0 GARBAGE=0 FAILED_NEXT=0

# ------------------------------------------------------------------ checks

# listing BLOB: "type size name" of every entry (cached per blob), what
# a complete tree must hold; the app's own files (home/app) with a sha256
listing() {
	local out=$T_ROOT/listings/$(basename "$1").txt
	mkdir -p "$T_ROOT/listings"
	[ -s "$out" ] || python3 - "$1" >"$out" <<'PY'
import hashlib, subprocess, sys, tarfile
p = subprocess.Popen(["zstd", "-dcq", sys.argv[1]], stdout=subprocess.PIPE)
with tarfile.open(fileobj=p.stdout, mode="r|") as t:
    for m in t:
        name = m.name[2:] if m.name.startswith("./") else m.name
        name = name.rstrip("/")
        if not name or name == ".":
            continue
        kind = "d" if m.isdir() else "l" if m.issym() else "h" if m.islnk() else "f" if m.isfile() else "o"
        extra = ""
        if m.isfile() and name.startswith("home/app/"):
            extra = " " + hashlib.sha256(t.extractfile(m).read()).hexdigest()
        print("%s %d %s%s" % (kind, m.size if m.isfile() else 0, name, extra))
p.wait()
PY
	echo "$out"
}
# tree_ok TREE BLOB: empty output when TREE holds exactly BLOB's entries
# (types, sizes, the app's content), else the first differences
tree_ok() {
	python3 - "$1" "$(listing "$2")" <<'PY'
import hashlib, os, stat, sys
tree, lst = sys.argv[1:]
want, bad = {}, []
for line in open(lst):
    kind, size, rest = line.rstrip("\n").split(" ", 2)
    name, _, sha = rest.partition(" ") if rest.startswith("home/app/") else (rest, "", "")
    want[name] = (kind, int(size), sha)
have = set()
for d, dirs, files in os.walk(tree):
    for n in dirs + files:
        have.add(os.path.relpath(os.path.join(d, n), tree))
for name, (kind, size, sha) in want.items():
    p = os.path.join(tree, name)
    try:
        st = os.lstat(p)
    except OSError:
        bad.append("missing " + name); continue
    if kind == "d" and not stat.S_ISDIR(st.st_mode): bad.append("not a dir " + name)
    if kind == "l" and not stat.S_ISLNK(st.st_mode): bad.append("not a link " + name)
    if kind in "fh" and not stat.S_ISREG(st.st_mode): bad.append("not a file " + name)
    if kind == "f" and stat.S_ISREG(st.st_mode) and st.st_size != size:
        bad.append("size of " + name)
    if sha and hashlib.sha256(open(p, "rb").read()).hexdigest() != sha:
        bad.append("content of " + name)
extra = sorted(have - set(want))
bad += ["extra " + n for n in extra]
print("\n".join(bad[:5]) + ("\n... %d in all" % len(bad) if len(bad) > 5 else ""), end="")
PY
}
blob_of() { echo "$ST/packages/$APP/$1.tar.zst"; }
# host_state: "" when the host is sound: current (if any) names a complete
# revision whose tree is the package's, and every revisions/<id> tree (a
# final name) is whole; else what is wrong
host_state() {
	local a=$ROOT/$APP cur id bad
	[ -d "$a" ] || return 0
	if [ -L "$a/current" ]; then
		cur=$(readlink "$a/current")
		id=${cur#revisions/}
		[ -f "$a/manifests/$id.complete" ] || echo "current $id has no completion marker"
		bad=$(tree_ok "$a/$cur" "$(blob_of "$id")")
		[ -z "$bad" ] || echo "current $id: $bad"
	fi
	for d in "$a"/revisions/*; do
		[ -d "$d" ] || continue
		id=$(basename "$d")
		case $id in *.tmp | *.failed) continue ;; esac
		bad=$(tree_ok "$d" "$(blob_of "$id")")
		[ -z "$bad" ] || echo "half tree under a final name: revisions/$id: $bad"
	done
}
# storage_state: "" when apps/APP/current names a package whose manifest
# is there, and every manifest's layers (or first-edition blob) are there
# with the sha256 the manifest gives: no package lists a missing layer
storage_state() {
	local id m key sha
	if [ -e "$ST/apps/$APP/current" ]; then
		id=$(stored_current "$APP")
		[ -f "$ST/packages/$APP/$id.json" ] || echo "current $id has no manifest"
	fi
	for m in "$ST/packages/$APP"/*.json; do
		case $m in *.sbom.json) continue ;; esac
		[ -e "$m" ] || continue
		while read -r key sha; do
			[ -e "$ST/$key" ] || { echo "$(basename "$m") lists a missing layer $key"; continue; }
			[ "$(sha256sum <"$ST/$key" | cut -d' ' -f1)" = "$sha" ] ||
				echo "$(basename "$m"): layer $key does not match its manifest"
		done < <(jq -r '(.layers // [.blob])[] | "\(.key) \(.sha256)"' "$m")
	done
}
# garbage: what no finished command may leave
garbage() {
	local f
	for f in "$ST/packages/$APP"/*; do
		[ -e "$f" ] || continue
		case $f in
		*.sbom.json) [ -e "${f%.sbom.json}.json" ] || echo "bill without manifest: $f" ;;
		*.json) ;;
		*.json.sig) [ -e "${f%.sig}" ] || echo "signature without manifest: $f" ;;
		*.tar.zst) [ -e "${f%.tar.zst}.json" ] || echo "blob without manifest: $f" ;;
		*) echo "stray: $f" ;;
		esac
	done
	# layers no package lists (a build that died before its manifest, a
	# collection cut short): the next build or prune takes them
	for f in "$ST/layers"/*; do
		[ -e "$f" ] || continue
		grep -qs "layers/$(basename "$f")" "$ST/packages/$APP"/*.json ||
			echo "layer no package lists: $f"
	done
	find "$ST/packages/$APP" "$ST/apps/$APP" "$ST/logs/$APP" -name '.tmp-*' 2>/dev/null
	ls -d "$ROOT/.trash-"* "$ROOT/$APP/revisions/.trash-"* "$ROOT/$APP/revisions/"*.tmp \
		"$ROOT/$APP/.download-"* "$ROOT/$APP/..download-"* "$ROOT/$APP/.current.tmp" 2>/dev/null
	ls "$T_ROOT/work" 2>/dev/null | grep -v '\.lock$'
	ls "$CACHE/roots" 2>/dev/null | grep '\.tmp-'
	for f in "$CACHE/roots/"*.parent; do
		[ -e "$f" ] && [ ! -d "${f%.parent}" ] && echo "layer record without its layer: $f"
	done
	true
}

# walk LABEL COMMAND... < TRACE: for each point of TRACE (its first hit: a
# point hit again, such as an upload's commit, leaves the same kind of
# state; walking each hit would double the time), SETUP (an array)
# makes the state, COMMAND is killed at that point, the state is checked,
# NEXT (an array) runs and must succeed, and nothing may be left over.
walk() {
	local label=$1 point count state; shift
	declare -A seen=()
	while read -r point count; do
		[ -z "${seen[$point]:-}" ] || continue
		seen[$point]=1
		echo "$point" >>"$T_ROOT/walked"
		WALKED=$((WALKED + 1))
		"${SETUP[@]}" >"$T_ROOT/setup.out" 2>&1 ||
			t_diag "setup for $label at $point failed: $(tail -n 3 "$T_ROOT/setup.out")"
		t_ok "$label: killed at $point #$count" t_crash_at "$point" "$count" "$@"
		state=$(storage_state; host_state)
		case $state in *"half tree"*) HALF=$((HALF + 1)) ;; esac
		[ -z "$state" ] || BROKEN=$((BROKEN + 1))
		t_is "$label at $point #$count: current is whole, no half tree" "$state" ""
		if ! "${NEXT[@]}" >"$T_ROOT/next.out" 2>&1; then
			FAILED_NEXT=$((FAILED_NEXT + 1))
			t_not "$label at $point #$count: the next command succeeds"
			t_diag "$(tail -n 5 "$T_ROOT/next.out")"
		else
			t_pass "$label at $point #$count: the next command succeeds"
		fi
		state=$(storage_state; host_state)
		[ -z "$state" ] || BROKEN=$((BROKEN + 1))
		t_is "$label at $point #$count: then current is whole" "$state" ""
		state=$(garbage)
		[ -z "$state" ] || GARBAGE=$((GARBAGE + 1))
		t_is "$label at $point #$count: nothing left over after the next command" "$state" ""
	done
}

# ------------------------------------------------------------------ build
printf "# build at %d s\n" "$SECONDS"
SRC=$T_ROOT/src
mkdir -p "$SRC"
git -C "$SRC" init -q -b main
printf 'interpreter = { type = "shell"; };\nactions = { main = "mkdir -p /home/app/out && cp /home/app/app.sh /home/app/out/"; };\n' >"$SRC/.upaas.cfg"
commit() {
	printf 'echo %s\n' "$1" >"$SRC/app.sh"
	git -C "$SRC" add -A
	git -C "$SRC" -c user.name=t -c user.email=t@l commit -qm "$1"
}
N=0
build() { N=$((N + 1)); commit "v$N" && "$UPAAS" build --app "$APP" "$SRC"; }
# the first build unpacks the base image into the (empty) root cache
t_ok "trace of a first build" t_crash_trace "$T_ROOT/first.trace" build
t_match "it unpacks the base image into the root cache" "$(tr '\n' ' ' <"$T_ROOT/first.trace")" \
	"rootcache.before-publish 1 .*rootcache.after-publish 1"
t_ok "trace of an incremental build" t_crash_trace "$T_ROOT/build.trace" build
t_match "it passes the publication points" "$(tr '\n' ' ' <"$T_ROOT/build.trace")" \
	"build.after-layer 1 .*build.after-manifest 1 .*build.after-current 1"
# (the storage's own points, the commit of each upload, are walked by the
# prune below: here they would cost two builds each)
SETUP=(commit change) NEXT=(build)
walk "build" build < <(grep -v '^storage\.' "$T_ROOT/build.trace")
# a build that unpacks: its parent's layer and the base copy gone
uncached() { commit change && rm -rf "$CACHE/roots"; }
SETUP=(uncached)
walk "build (unpacking)" build < <(grep '^rootcache\.' "$T_ROOT/first.trace")
# a fresh build that trims the root cache to nothing (limits.unpacked_cache):
# the app's layers go, the base copy it uses stays
sed 's|^limits = .*||' "$T_CFG" >"$T_ROOT/trim.cfg"
echo 'limits = { unpacked_cache = 1; };' >>"$T_ROOT/trim.cfg"
trim_build() {
	N=$((N + 1))
	commit "v$N" && UPAAS_CONFIG=$T_ROOT/trim.cfg "$UPAAS" build --fresh --app "$APP" "$SRC"
}
t_ok "trace of a build that trims the root cache" t_crash_trace "$T_ROOT/trim.trace" trim_build
t_match "it removes entries" "$(cat "$T_ROOT/trim.trace")" "rootcache.remove.after-rename"
SETUP=(commit change)
walk "build (trimming)" trim_build < <(grep '^rootcache.remove' "$T_ROOT/trim.trace")

# ------------------------------------------------------------------ deploy
printf "# deploy at %d s\n" "$SECONDS"
# Packages made by hand (a few hundred files, quick to extract), several,
# so that deploys cycle through them and prune (deploy.keep = 2).
TREE=$T_ROOT/tree
mkdir -p "$TREE/home/app" "$TREE/etc"
for i in $(seq 200); do head -c $((i * 37)) /dev/urandom >"$TREE/etc/f$i"; done
ln -s f1 "$TREE/etc/link"
IDS=()
for i in 1 2 3 4; do
	id=20261120T00000${i}Z-abcdef$i
	printf 'v%s\n' "$i" >"$TREE/home/app/version"
	hand_package "$APP" "$id" "$TREE" || t_bail "cannot make package $id"
	IDS+=("$id")
done
# after_current ID...: the id after the current one in the cycle of IDs
after_current() {
	local cur i=0 k ids=("$@")
	cur=$(readlink "$ROOT/$APP/current" 2>/dev/null)
	cur=${cur#revisions/}
	for k in "${!ids[@]}"; do [ "${ids[$k]}" = "$cur" ] && i=$(((k + 1) % ${#ids[@]})); done
	echo "${ids[$i]}"
}
# dep_next: deploys the id after the current one in the cycle of IDS
dep_next() { "$UPAAS" deploy --package "$(after_current "${IDS[@]}")" "$APP"; }
for i in 1 2 3; do dep_next >/dev/null 2>&1 || t_bail "deploy $i failed"; done
t_ok "trace of a deploy that extracts, switches and prunes" \
	t_crash_trace "$T_ROOT/deploy.trace" dep_next
t_match "it passes the extract, switch, prune and sweep points" \
	"$(tr '\n' ' ' <"$T_ROOT/deploy.trace")" \
	"deploy.after-extract 1 .*deploy.after-marker 1 .*deploy.after-switch 1 .*deploy.retire.after-rename 1 .*deploy.sweep.after-remove 1"
# each crash deploys the next id of the cycle, the next command the one
# after: it comes back to pruned (and maybe half-retired) revisions
SETUP=(true) NEXT=(dep_next)
walk "deploy" dep_next <"$T_ROOT/deploy.trace"

# ------------------------------------------------------------------ rollback
printf "# rollback at %d s\n" "$SECONDS"
# to a revision pruned and to be fetched again: a rollback that extracts
rb_to() { "$UPAAS" rollback --to "$1" "$APP"; }
oldest() {  # an id of the cycle with no revision on the host
	local id
	for id in "${IDS[@]}"; do [ -d "$ROOT/$APP/revisions/$id" ] || { echo "$id"; return; }; done
	echo "${IDS[0]}"
}
t_ok "trace of a rollback that fetches again" \
	t_crash_trace "$T_ROOT/rollback.trace" rb_to "$(oldest)"
SETUP=(true) NEXT=(sh -c "\"$UPAAS\" rollback \"$APP\"")
# the target is the oldest id at each point: read the trace first
mapfile -t rb_points < <(awk '!seen[$1]++' "$T_ROOT/rollback.trace")
for line in "${rb_points[@]}"; do
	walk "rollback --to" rb_to "$(oldest)" <<<"$line"
done

# ------------------------------------------------------------------ SIGTERM
printf "# SIGTERM at %d s\n" "$SECONDS"
# A bigger package, so that a deploy takes long enough to be hit anywhere:
# SIGTERM after a random delay; it must exit 0 (done) or 1 "interrupted",
# never die of the signal, and leave a sound host to the next deploy. Every
# third one gets SIGKILL instead, at a random moment too.
for i in $(seq 1000); do printf '%s\n' "$i" >"$TREE/etc/g$i"; done
head -c 20000000 /dev/urandom >"$TREE/etc/big"
BIG=()
for i in 1 2 3; do
	id=20261121T00000${i}Z-bbbbbb$i
	printf 'big%s\n' "$i" >"$TREE/home/app/version"
	hand_package "$APP" "$id" "$TREE" || t_bail "cannot make package $id"
	BIG+=("$id")
done
"$UPAAS" deploy --package "${BIG[0]}" "$APP" >/dev/null 2>&1 || t_bail "deploy of ${BIG[0]} failed"
start=$SECONDS runs=0 interrupted=0 badexit=0 early=0 killed=0
for it in $(seq 15); do
	sig=TERM
	[ $((it % 3)) = 0 ] && sig=KILL
	lines=$(wc -l <"$ROOT/$APP/deploy.log")
	# the id after the current one: pruned (keep = 2), so fetched and extracted
	"$UPAAS" deploy --package "$(after_current "${BIG[@]}")" "$APP" >"$T_ROOT/term.out" 2>&1 &
	pid=$!
	# a deploy of it takes ~0.3 s
	sleep "$(printf '0.%03d' $((10 + RANDOM % 340)))"
	kill -$sig "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	rc=$?
	runs=$((runs + 1))
	[ $sig = KILL ] && [ $rc = 137 ] && { killed=$((killed + 1)); rc=kill; }
	case $rc in
	kill) ;;
	0) ;;
	1) grep -q "interrupted" "$T_ROOT/term.out" && interrupted=$((interrupted + 1)) ||
		{ badexit=$((badexit + 1)); t_diag "exit 1 without 'interrupted': $(tail -n 2 "$T_ROOT/term.out")"; } ;;
	143) # killed before its handler was set, in the first milliseconds of
	     # the process: nothing started, nothing to undo (the log says so)
	     if [ "$(wc -l <"$ROOT/$APP/deploy.log")" = "$lines" ]; then early=$((early + 1))
	     else badexit=$((badexit + 1)); t_diag "deploy died of SIGTERM after it had started"; fi ;;
	*) badexit=$((badexit + 1)); t_diag "deploy exited $rc on SIGTERM" ;;
	esac
	state=$(host_state)
	[ -z "$state" ] || { BROKEN=$((BROKEN + 1)); t_diag "after SIGTERM $it: $state"; }
	"$UPAAS" deploy --package "$(after_current "${BIG[@]}")" "$APP" >"$T_ROOT/next.out" 2>&1 ||
		{ FAILED_NEXT=$((FAILED_NEXT + 1)); t_diag "the deploy after SIGTERM $it failed: $(tail -n 2 "$T_ROOT/next.out")"; }
	state=$(host_state; garbage)
	[ -z "$state" ] || { GARBAGE=$((GARBAGE + 1)); t_diag "after the deploy after SIGTERM $it: $state"; }
done
t_is "SIGTERM: every deploy exits 0 or 1 'interrupted', none dies of the signal once started" "$badexit" 0
t_diag "SIGTERM/SIGKILL: $runs deploys, $interrupted interrupted by SIGTERM, $early SIGTERM'd before they started, $killed killed by SIGKILL, in $((SECONDS - start)) s"
t_match "SIGTERM: some deploys were interrupted" "$interrupted" "^[1-9]"

# ------------------------------------------------------------------ undeploy
printf "# undeploy at %d s\n" "$SECONDS"
t_ok "trace of an undeploy" t_crash_trace "$T_ROOT/undeploy.trace" "$UPAAS" undeploy "$APP"
t_match "it passes the undeploy points" "$(tr '\n' ' ' <"$T_ROOT/undeploy.trace")" \
	"undeploy.after-current 1 .*undeploy.after-retire 1"
redeploy() { "$UPAAS" deploy --package "${IDS[0]}" "$APP" && "$UPAAS" deploy --package "${IDS[1]}" "$APP"; }
undeploy_again() {  # the next undeploy, or "not deployed" when the first got through
	"$UPAAS" undeploy "$APP" 2>"$T_ROOT/undeploy.err" ||
		grep -q "is not deployed" "$T_ROOT/undeploy.err"
}
SETUP=(redeploy) NEXT=(undeploy_again)
walk "undeploy" "$UPAAS" undeploy "$APP" <"$T_ROOT/undeploy.trace"
redeploy >/dev/null 2>&1 || t_bail "cannot deploy again"
t_ok "trace of an undeploy --purge" t_crash_trace "$T_ROOT/purge.trace" "$UPAAS" undeploy --purge "$APP"
purge_again() { "$UPAAS" undeploy --purge "$APP" 2>/dev/null; "$UPAAS" deploy --package "${IDS[2]}" "$APP"; }
SETUP=(redeploy) NEXT=(purge_again)
walk "undeploy --purge" "$UPAAS" undeploy --purge "$APP" \
	< <(grep -E '^undeploy.after-purge-rename|^deploy.sweep' "$T_ROOT/purge.trace")

# ------------------------------------------------------------------ prune
printf "# prune at %d s\n" "$SECONDS"
more_packages() {  # two more packages to prune, made by hand
	local i id
	for i in 1 2; do
		id=$(date -u +%Y%m%dT%H%M%SZ)-$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n' | cut -c1-7)
		hand_package "$APP" "$id" "$TREE" || return 1
		printf 'log\n' >"$ST/logs/$APP/$id.log" 2>/dev/null ||
			{ mkdir -p "$ST/logs/$APP" && printf 'log\n' >"$ST/logs/$APP/$id.log"; }
	done
}
t_ok "packages to prune" more_packages
t_ok "trace of a package prune" t_crash_trace "$T_ROOT/prune.trace" \
	"$UPAAS" package prune --keep 2 "$APP"
t_match "it passes the prune points" "$(tr '\n' ' ' <"$T_ROOT/prune.trace")" \
	"package.prune.after-tombstone 1 .*package.prune.after-manifest 1 .*package.prune.after-bill 1 .*layers.gc.after-delete 1"
SETUP=(more_packages) NEXT=("$UPAAS" package prune --keep 2 "$APP")
walk "prune" "$UPAAS" package prune --keep 2 "$APP" <"$T_ROOT/prune.trace"

t_is "every crash point is walked (image-crash.sh walks image.*, s3-faults.sh the s3 one)" \
	"$(sort -u "$T_ROOT/walked")" "$(grep -v -e '^image\.' -e '^storage\.s3\.' <<<"$CRASH_POINTS" | sort)"
t_diag "walked $WALKED crash points: $BROKEN broken current, $HALF half trees, $FAILED_NEXT failed next commands, $GARBAGE times garbage after the next command"
t_is "0 broken current" "$BROKEN" 0
t_is "0 half trees" "$HALF" 0
t_is "0 failed next commands" "$FAILED_NEXT" 0
t_is "0 garbage after the next command" "$GARBAGE" 0
t_is "no mount left" "$(t_mounts_below "$T_ROOT")" ""
t_done
