#!/bin/bash
# tests/integration/deploy-faults.sh - hostile and broken input for deploy:
# tampered and truncated blobs, archives that try to escape the revision
# ("..", absolute paths, symlinks, hard links), symlink tricks against the
# shared dirs and app hooks, a full disk in the middle of an extract, kill -9
# during the extract and during a slow hook, and two deploys at once.
# Whatever happens, `current` names a complete revision.
. "${UPAAS_SRCDIR:?run through make check}/tests/lib.sh" || exit 99
. "$UPAAS_SRCDIR/tests/integration/deploy-lib.sh" || exit 99

chmod 755 "$T_ROOT"
SRV=$T_ROOT/srv
SMALL=$T_ROOT/small
OUT=$T_ROOT/outside
# the small file system, with the overlay-mounted revisions deployed onto it
small_umount() {
	t_revision_mounts_below "$SMALL" | sort -r | while read -r m; do umount -l "$m"; done
	if mountpoint -q "$SMALL"; then umount "$SMALL"; fi
}
fault_cleanup() {
	local p
	for p in ${BG_PIDS:-}; do kill -9 "$p" 2>/dev/null; done
	small_umount
	d_cleanup_storage
	t_cleanup
}
trap fault_cleanup EXIT

APP=$(d_app fault)
A=$SRV/$APP
mkdir -p "$OUT"
echo original >"$OUT/victim"

# a good package to stand on
good_tree() {
	rm -rf "$T_ROOT/tree"
	mkdir -p "$T_ROOT/tree/home/app"
	echo "$1" >"$T_ROOT/tree/home/app/version"
	chown -R 1000:1000 "$T_ROOT/tree/home/app"
}
good_tree good
hand_package "$APP" good1 "$T_ROOT/tree" || t_bail "cannot make a package"
t_ok "deploy a good package" "$UPAAS" deploy --package good1 "$APP"

# current must always be good1 (or a later good package), complete
still_good() {
	t_is "$1: current untouched" "$(deployed "$APP")" "${2:-good1}"
	t_is "$1: current is complete" "$(cat "$A/current/home/app/version" 2>&1)" "${3:-good}"
}
no_trace() {  # no trace of package $1 in the revisions, no download leftovers
	t_is "$2: nothing left of the package" \
		"$(ls -a "$A/revisions" "$A" | grep -E -- "^(\.?\.download-|$1)" || true)" ""
}

# ------------------------------------------------------- tampered blobs
good_tree tampered
hand_package "$APP" tampered "$T_ROOT/tree"
blob=$D_STORAGE/packages/$APP/tampered.tar.zst
size=$(stat -c %s "$blob")
printf 'X' | dd of="$blob" bs=1 seek=$((size / 2)) conv=notrunc status=none
t_fail "a tampered blob is refused" "$UPAAS" deploy --package tampered "$APP"
t_match "the error says sha256" "$(cat "$T_ROOT/last.out")" "failed verification: layer [0-9a-f]{12} .*corrupt: sha256"
still_good tampered
no_trace tampered tampered

good_tree truncated
hand_package "$APP" truncated "$T_ROOT/tree"
truncate -s $((size / 3)) "$D_STORAGE/packages/$APP/truncated.tar.zst"
t_fail "a truncated blob is refused" "$UPAAS" deploy --package truncated "$APP"
t_match "the error names the layer, says truncated" "$(cat "$T_ROOT/last.out")" "failed verification: layer [0-9a-f]{12} .*corrupt: [0-9]+ bytes, the manifest says [0-9]+"
still_good truncated
no_trace truncated truncated

t_fail "a package without a manifest is refused" "$UPAAS" deploy --package nosuch "$APP"
t_match "the error names the package" "$(cat "$T_ROOT/last.out")" "package 'nosuch' .*does not exist"

# ----------------------------------------------------- malicious archives
# craft <name>.tar.zst with python's tarfile: a normal home/app plus one
# hostile entry
craft() {
	python3 - "$T_ROOT/$1.tar" "$1" "$OUT" <<'PY' || return 1
import io, sys, tarfile
path, kind, out = sys.argv[1:]
t = tarfile.open(path, "w", format=tarfile.PAX_FORMAT)
def add_dir(name):
    i = tarfile.TarInfo(name); i.type = tarfile.DIRTYPE; i.mode = 0o755; t.addfile(i)
def add_file(name, data=b"pwned\n"):
    i = tarfile.TarInfo(name); i.size = len(data); i.mode = 0o644; t.addfile(i, io.BytesIO(data))
def add_link(name, target, hard=False):
    i = tarfile.TarInfo(name); i.type = tarfile.LNKTYPE if hard else tarfile.SYMTYPE
    i.linkname = target; t.addfile(i)
add_dir("./"); add_dir("home"); add_dir("home/app"); add_file("home/app/version", b"evil\n")
if kind == "dotdot":
    add_file("home/../../../../../dotdot-escape")
elif kind == "absolute":
    add_file(out + "/absolute-escape")
elif kind == "symlink":
    add_link("home/app/lnk", out)
    add_file("home/app/lnk/symlink-escape")
elif kind == "relsymlink":
    add_link("home/app/up", "../../../../../../outside")
    add_file("home/app/up/relsymlink-escape")
elif kind == "hardlink":
    add_link("home/app/hl", out + "/victim", hard=True)
    add_file("home/app/hl", b"pwned\n")
elif kind == "dirsymlink":
    # replace a directory by a symlink, then write below it
    add_link("home/app", out)
    add_file("home/app/dirsymlink-escape")
t.close()
PY
	zstd -q -f --rm "$T_ROOT/$1.tar" -o "$T_ROOT/$1.tar.zst"
}
for kind in dotdot absolute symlink relsymlink hardlink dirsymlink; do
	craft "$kind" || t_bail "cannot craft $kind"
	hand_blob "$APP" "evil-$kind" "$T_ROOT/$kind.tar.zst"
	t_fail "archive with $kind entry is refused" "$UPAAS" deploy --package "evil-$kind" "$APP"
	still_good "$kind"
	no_trace "evil-$kind" "$kind"
done
t_is "nothing was written outside the revision" \
	"$(find "$T_ROOT" -name '*-escape' | sort)" ""
t_is "the hard link victim is intact" "$(cat "$OUT/victim")" "original"

# ----------------------------------------- symlink tricks after extraction
# app_home is a symlink out of the revision: the shared dir link must not
# be made through it
rm -rf "$T_ROOT/tree"; mkdir -p "$T_ROOT/tree/home"
ln -s "$OUT" "$T_ROOT/tree/home/app"
hand_package "$APP" evil-home "$T_ROOT/tree" '{"deploy": {"shared": ["data"]}}'
t_fail "a symlinked app home is refused for shared dirs" "$UPAAS" deploy --package evil-home "$APP"
t_match "the error names the symlink" "$(cat "$T_ROOT/last.out")" "not a directory \(a symlink\?\)"
t_fail "no shared link was made outside" test -e "$OUT/data"
still_good evil-home

# an app hook that is a symlink to a host binary
good_tree evil-hook
ln -s /bin/true "$T_ROOT/tree/home/app/hook"
hand_package "$APP" evil-hook "$T_ROOT/tree" '{"deploy": {"hooks": {"pre": ["hook"]}}}'
t_fail "an app hook pointing outside the revision is refused" "$UPAAS" deploy --package evil-hook "$APP"
t_match "the error says so" "$(cat "$T_ROOT/last.out")" "resolves outside the revision"
still_good evil-hook

# a manifest naming a shared dir with ..
good_tree evil-shared
hand_package "$APP" evil-shared "$T_ROOT/tree" '{"deploy": {"shared": ["../../x"]}}'
t_fail "a shared dir with .. is refused" "$UPAAS" deploy --package evil-shared "$APP"
t_match "the error names the entry" "$(cat "$T_ROOT/last.out")" "deploy.shared entry '../../x'"
still_good evil-shared

# --------------------------------------------------- full disk mid-extract
mkdir -p "$SMALL"
mount -t tmpfs -o size=8m tmpfs "$SMALL" || t_bail "cannot mount a tmpfs"
t_ok "deploy into a small filesystem" "$UPAAS" deploy --root "$SMALL" --package good1 "$APP"
good_tree big
# compressible but not zeros (libarchive would write zeros as holes)
yes "a line that compresses well" | head -c 24M >"$T_ROOT/tree/home/app/lines"
hand_package "$APP" big "$T_ROOT/tree"
t_fail "a full disk fails the deploy" "$UPAAS" deploy --root "$SMALL" --package big "$APP"
t_match "the error says no space" "$(cat "$T_ROOT/last.out")" "[Nn]o space left"
t_is "full disk: current untouched" "$(readlink "$SMALL/$APP/current")" "revisions/good1"
t_is "full disk: current complete" "$(cat "$SMALL/$APP/current/home/app/version")" "good"
t_is "full disk: the partial extract was removed" \
	"$(ls -a "$SMALL/$APP/revisions" "$SMALL/$APP" | grep -E '^(big|\.?\.download-)' || true)" ""
t_ok "the small file system unmounts (its revisions first)" small_umount

# ------------------------------------------------ kill -9 during extract
good_tree killed
head -c 96M /dev/urandom >"$T_ROOT/tree/home/app/noise"
hand_package "$APP" killed "$T_ROOT/tree"
rm -rf "$T_ROOT/tree"
"$UPAAS" deploy --package killed "$APP" >"$T_ROOT/killed.out" 2>&1 &
pid=$!
BG_PIDS="$pid"
# an extract in progress: revisions/killed.tmp (an extracted revision), or
# the tree of its layer, trees/<name>.tmp (an overlay-mounted one)
extracting() { compgen -G "$A/revisions/killed.tmp" || compgen -G "$A/trees/*.tmp"; }
for _ in $(seq 1 3000); do
	extracting >/dev/null && break
	sleep 0.005
done
{ kill -9 "$pid"; wait "$pid"; } 2>/dev/null
wait "$pid" 2>/dev/null
t_ok "killed during the extract" extracting
still_good "kill -9 in extract"
t_fail "the partial revision has no complete name" test -e "$A/revisions/killed"
good_tree repaired
hand_package "$APP" repaired "$T_ROOT/tree"
t_ok "the next deploy succeeds" "$UPAAS" deploy --package repaired "$APP"
still_good "after the repair" repaired repaired
t_fail "and removed the leftover" extracting
t_is "no download leftovers" "$(ls -a "$A" | grep -c download)" "0"

# --------------------------------------------- kill -9 during a slow hook
HOOKS=$T_ROOT/hooks/pre-deploy.d
mkdir -p "$HOOKS"
cat >"$HOOKS/50-slow" <<HOOK
#!/bin/sh
echo \$\$ >"$T_ROOT/hook.pid"
exec sleep 60
HOOK
chmod +x "$HOOKS/50-slow"
good_tree slow
hand_package "$APP" slow "$T_ROOT/tree"
rm -f "$T_ROOT/hook.pid"
"$UPAAS" deploy --package slow "$APP" >"$T_ROOT/slow.out" 2>&1 &
pid=$!
BG_PIDS="$pid"
for _ in $(seq 1 1000); do
	[ -s "$T_ROOT/hook.pid" ] && break
	sleep 0.01
done
hpid=$(cat "$T_ROOT/hook.pid" 2>/dev/null)
t_ok "the slow hook runs" test -n "$hpid"
{ kill -9 "$pid"; wait "$pid"; } 2>/dev/null
wait "$pid" 2>/dev/null
gone() {  # the process is gone (or a zombie waiting for its new parent)
	local st
	for _ in $(seq 1 100); do
		st=$(ps -o stat= -p "$1")
		[ -z "$st" ] || [ "${st#Z}" != "$st" ] && return 0
		sleep 0.03
	done
	return 1
}
t_ok "the hook died with the deploy" gone "${hpid:-0}"
still_good "kill -9 in a hook" repaired repaired
rm -f "$HOOKS/50-slow"
t_ok "the next deploy succeeds" "$UPAAS" deploy --package slow "$APP"
still_good "after the hook kill" slow slow
t_is "no hook variable files left" "$(ls -a "$A" | grep -c '^\.hook-')" "0"

# ------------------------------------------------- two deploys at once
cat >"$HOOKS/50-wait" <<HOOK
#!/bin/sh
touch "$T_ROOT/in-hook"
while [ ! -e "$T_ROOT/release" ]; do sleep 0.05; done
HOOK
chmod +x "$HOOKS/50-wait"
good_tree first
hand_package "$APP" first "$T_ROOT/tree"
good_tree second
hand_package "$APP" second "$T_ROOT/tree"
"$UPAAS" deploy --package first "$APP" >"$T_ROOT/first.out" 2>&1 &
p1=$!
for _ in $(seq 1 1000); do [ -e "$T_ROOT/in-hook" ] && break; sleep 0.01; done
t_fail "a second deploy with --no-wait fails at once" "$UPAAS" deploy --no-wait --package second "$APP"
t_match "and says why" "$(cat "$T_ROOT/last.out")" "another deploy of app '$APP' is running"
"$UPAAS" deploy --package second "$APP" >"$T_ROOT/second.out" 2>&1 &
p2=$!
BG_PIDS="$p1 $p2"
sleep 0.5
t_ok "the waiting deploy has not started" kill -0 "$p2"
t_is "nothing switched meanwhile" "$(deployed "$APP")" "slow"
touch "$T_ROOT/release"
wait "$p1"; r1=$?
wait "$p2"; r2=$?
t_is "both deploys succeed" "$r1 $r2" "0 0"
t_is "one after the other" "$(tail -n 2 "$A/history" | cut -d' ' -f2-4 | tr '\n' ' ')" \
	"upgrade first ok upgrade second ok "
still_good "after two deploys" second second
rm -f "$HOOKS/50-wait"

t_done
