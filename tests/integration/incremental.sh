#!/bin/bash
# tests/integration/incremental.sh - an incremental build is exactly a fresh
# build. One generated repository, a chain of commits; each commit is built
# incrementally (on the previous package) and, under a second app name,
# fresh from the base image, and the two packages are compared entry by
# entry (tests/pkgdiff.py: type, mode, owner, size, content, link target,
# device, xattrs), except the file the app writes as its build history.
# The chain: delete and rename directories, a file becomes a directory and
# back, a directory the build wrote into becomes a file, the build makes a
# tracked directory read-only, a `files` entry under the home and then a
# tracked file in its directory, an OS package added and removed, unicode
# names, a submodule added, moved to another commit and removed.
. "$UPAAS_SRCDIR/tests/lib.sh"

t_image || t_bail "cannot create the base image"
T0=$(date +%s)

t_write_config "interpreters = { shell = { any = { packages = []; }; }; };
git = { local_paths = [ \"$T_ROOT\" ]; };"

SUFFIX=$(printf '%s' "${T_ROOT##*.}" | tr 'A-Z' 'a-z')
APP=incr-$SUFFIX           # the incremental chain
APPF=incrf-$SUFFIX         # fresh builds of the same commits
ST=$UPAAS_TEST_SHARED/storage
ROOTS=$UPAAS_TEST_SHARED/cache/roots
SRC=$T_ROOT/src
SUB=$T_ROOT/sub
g() { git -c user.name=t -c user.email=t@localhost -c protocol.file.allow=always "$@"; }
jget() { python3 -c 'import json,sys; d=json.load(sys.stdin)
for k in sys.argv[1].split("."): d = d[k]
print(json.dumps(d) if isinstance(d, (dict, list, bool)) or d is None else d)' "$1"; }

# meta EXTRA: the app's .upaas.cfg with EXTRA settings
meta() {
	cat >"$SRC/.upaas.cfg" <<EOF
interpreter = { type = "shell"; };
actions = { main = "sh build.sh"; };
$1
EOF
}

ENTRIES=0
# check DESC: commits what changed, builds it incrementally and fresh, and
# compares the two packages
check() {
	local desc=$1 id fid out
	g -C "$SRC" add -A
	g -C "$SRC" commit -q --allow-empty -m "$desc"
	if ! id=$("$UPAAS" build --app "$APP" "$SRC" 2>"$T_ROOT/inc.err"); then
		t_not "$desc: incremental build"
		t_diag "$(tail -n 25 "$T_ROOT/inc.err")"
		# the chain starts again from here, so that what follows is
		# still tested
		LAST=$("$UPAAS" build --fresh --app "$APP" "$SRC" 2>/dev/null)
		return 1
	fi
	LAST=$id
	if [ "$desc" != "first commit" ] &&
		[ "$("$UPAAS" package show --json "$APP" "$id" | jget fresh)" != false ]; then
		t_not "$desc: incremental build"
		t_diag "it was fresh: $("$UPAAS" package show --json "$APP" "$id" | jget base.reason)"
	else
		t_pass "$desc: incremental build"
	fi
	if ! fid=$("$UPAAS" build --fresh --app "$APPF" "$SRC" 2>"$T_ROOT/fresh.err"); then
		t_not "$desc: fresh build"
		t_diag "$(tail -n 25 "$T_ROOT/fresh.err")"
		return 1
	fi
	"$UPAAS" package get "$APP" "$id" "$T_ROOT/inc.tar.zst" 2>/dev/null &&
		"$UPAAS" package get "$APPF" "$fid" "$T_ROOT/fresh.tar.zst" 2>/dev/null ||
		t_bail "cannot get the packages"
	if out=$(python3 "$UPAAS_SRCDIR/tests/pkgdiff.py" --ignore home/app/history.txt \
		"$T_ROOT/fresh.tar.zst" "$T_ROOT/inc.tar.zst" 2>"$T_ROOT/diff.err"); then
		t_pass "$desc: incremental equals fresh"
	else
		t_not "$desc: incremental equals fresh"
		t_diag "$(printf '%s\n' "$out" | head -n 20 | sed 's/^/A=fresh B=incremental: /')"
	fi
	ENTRIES=$((ENTRIES + $(sed -n 's/^compared \([0-9]*\) entries.*/\1/p' "$T_ROOT/diff.err")))
	rm -f "$T_ROOT/inc.tar.zst" "$T_ROOT/fresh.tar.zst"
	return 0
}

# The app: build.sh records the build (history.txt, ignored), writes into
# pkg/ the way Python writes __pycache__, and makes ro/ read-only.
mkdir -p "$SRC"
g init -q -b main "$SRC"
meta ""
cat >"$SRC/build.sh" <<'EOF'
set -e
echo "$UPAAS_BUILD_ID" >>history.txt
if [ -d pkg ]; then mkdir -p pkg/__pycache__; echo cached >pkg/__pycache__/mod.pyc; fi
if [ -d ro ]; then chmod a-w ro; fi
if [ -d swap ] && [ ! -L swap ]; then rm -rf swap; ln -s /etc swap; fi
EOF
echo stable >"$SRC/stable.txt"
mkdir -p "$SRC/gone/deep" "$SRC/old/inner" "$SRC/pkg"
echo 1 >"$SRC/gone/deep/a"
echo 2 >"$SRC/old/inner/b"
echo 3 >"$SRC/f"
echo 'x = 1' >"$SRC/pkg/mod.py"
ln -s stable.txt "$SRC/link"
check "first commit" || t_bail "the first build failed"
t_is "the first build of the chain is fresh" \
	"$("$UPAAS" package show --json "$APP" "$LAST" | jget fresh)" true

meta 'os = { packages = [ "hello" ]; };'
check "an OS package added"
t_is "the manifest lists the package" \
	"$("$UPAAS" package show --json "$APP" "$LAST" | jget os_packages)" '["hello"]'
meta ''
check "the OS package removed"
t_is "the manifest no longer lists it" \
	"$("$UPAAS" package show --json "$APP" "$LAST" | jget os_packages)" '[]'

mkdir -p "$SRC/données"
echo été >"$SRC/données/été.txt"
echo nfd >"$SRC/$(printf 'cafe\xcc\x81.txt')"
echo 日本 >"$SRC/日本語.txt"
check "unicode names"
"$UPAAS" package get "$APP" "$LAST" "$T_ROOT/u.tar.zst" 2>/dev/null
t_match "the names are in the package" "$(tar --zstd -tf "$T_ROOT/u.tar.zst" 2>&1)" \
	"home/app/données/été.txt"
rm -f "$T_ROOT/u.tar.zst"

t_is "the chain goes on incrementally" "$("$UPAAS" package show --json "$APP" "$LAST" | jget fresh)" false
# the checkout writes only what differs: an unchanged tracked file is not
# in the layer of the incremental package (its overlay upper dir)
SHA=$("$UPAAS" package show --json "$APP" "$LAST" | jq -r ".layers[-1].sha256")
t_ok "an unchanged tracked file is not rewritten" test -d "$ROOTS/$SHA" -a ! -e "$ROOTS/$SHA/home/app/stable.txt"

# the submodule: two commits, the second deletes, adds and renames
mkdir -p "$SUB/dir"
g init -q -b main "$SUB"
echo s1 >"$SUB/dir/one"
echo s2 >"$SUB/two"
g -C "$SUB" add -A
g -C "$SUB" commit -qm s1
S1=$(git -C "$SUB" rev-parse HEAD)
g -C "$SUB" rm -q two
g -C "$SUB" mv dir moved
echo s3 >"$SUB/three"
g -C "$SUB" add -A
g -C "$SUB" commit -qm s2
g -C "$SRC" submodule -q add ../sub vendor/sub
g -C "$SRC/vendor/sub" checkout -q "$S1"
check "a submodule added"
"$UPAAS" package get "$APP" "$LAST" "$T_ROOT/s.tar.zst" 2>/dev/null
t_match "the submodule is checked out at its commit" "$(tar --zstd -tf "$T_ROOT/s.tar.zst")" \
	"home/app/vendor/sub/dir/one"
rm -f "$T_ROOT/s.tar.zst"
g -C "$SRC/vendor/sub" checkout -q main
check "the submodule moved to another commit"
g -C "$SRC" rm -q vendor/sub
rm -rf "$SRC/.git/modules/vendor"
check "the submodule removed"

git -C "$SRC" rm -rq gone
git -C "$SRC" mv old new
check "a directory deleted, one renamed"

git -C "$SRC" rm -q f
mkdir "$SRC/f"
echo inner >"$SRC/f/inner"
check "a file becomes a directory"

git -C "$SRC" rm -rq f
echo file-again >"$SRC/f"
check "a directory becomes a file again"

git -C "$SRC" rm -rq pkg
echo "not a package any more" >"$SRC/pkg"
check "a directory the build wrote into becomes a file"

mkdir "$SRC/ro"
echo one >"$SRC/ro/file"
check "the build makes a tracked directory read-only"
echo two >"$SRC/ro/file"
echo new >"$SRC/ro/added"
check "a commit changes the read-only directory"

# the build swaps a tracked directory for a symlink to /etc: the checkout
# replaces the symlink, never writes through it
mkdir "$SRC/swap"
echo one >"$SRC/swap/passwd"
check "the build replaces a tracked directory by a symlink out"
echo two >"$SRC/swap/passwd"
check "a commit changes a file below that symlink"
"$UPAAS" package get "$APP" "$LAST" "$T_ROOT/w.tar.zst" 2>/dev/null
t_match "nothing was written through it" "$(tar --zstd -xOf "$T_ROOT/w.tar.zst" etc/passwd)" "^root:"
rm -f "$T_ROOT/w.tar.zst"

meta 'files = ( { path = "/home/app/conf/app.ini"; content = "[app]\n"; } );'
check "a files entry under the home"
mkdir "$SRC/conf"
echo tracked >"$SRC/conf/tracked.txt"
check "a commit tracks a file in the files entry's directory"

# a build of the same commit: the index of the last checkout says every
# tracked file is as it was written, so none is read; only swap/passwd,
# below the directory build.sh swaps for a symlink each time, is written again
ID=$("$UPAAS" build --app "$APP" "$SRC" 2>/dev/null)
t_match "a no-change build checks its files by their stat" "$(cat "$ST/logs/$APP/$ID.log")" \
	"checkout: [0-9]+ entries: 1 written, [0-9]+ kept \(0 checked by content\), 0 repaired"

# history rewritten and the old commits gone from the mirror: the base
# package's tree cannot be listed, the build falls back to fresh by itself
g -C "$SRC" checkout -q --orphan rewritten
g -C "$SRC" commit -qm "rewritten"
g -C "$SRC" branch -q -D main
g -C "$SRC" branch -q -m main
git --git-dir="$UPAAS_TEST_SHARED/cache/git/$APP.git" fetch -q --prune origin
git --git-dir="$UPAAS_TEST_SHARED/cache/git/$APP.git" reflog expire --expire=now --all
git --git-dir="$UPAAS_TEST_SHARED/cache/git/$APP.git" gc -q --prune=now
ID=$("$UPAAS" build --app "$APP" "$SRC" 2>"$T_ROOT/fb.err")
t_is "a base that cannot be checked out over: the build succeeds" "$?" 0
M=$("$UPAAS" package show --json "$APP" "$ID" 2>/dev/null)
t_is "it fell back to fresh" "$(jget fresh <<<"$M")" true
t_match "the manifest says why" "$(jget base.reason <<<"$M")" "is not in the repository any more"

t_diag "compared $ENTRIES entries in all; $(( $(date +%s) - T0 )) s"
t_done
