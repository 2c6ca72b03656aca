#!/bin/bash
# tests/integration/git.sh - git as users use it: git.keep and the
# repository.clone/update overrides of upaas-metadata(5) as the app user,
# `upaas build .`, an empty repository and an unborn default branch, and
# submodule URLs that must never reach git (options, remote helpers, other
# transports, local paths outside git.local_paths).
. "$UPAAS_SRCDIR/tests/lib.sh"

t_image || t_bail "cannot create the base image"

t_write_config "interpreters = { shell = { any = { packages = []; }; }; };
git = { local_paths = [ \"$T_ROOT/allowed\" ]; };"
SUFFIX=$(printf '%s' "${T_ROOT##*.}" | tr 'A-Z' 'a-z')
APP=git-$SUFFIX
SRC=$T_ROOT/src
g() { git -c user.name=t -c user.email=t@localhost -c protocol.file.allow=always "$@"; }
commit() { g -C "$SRC" add -A && g -C "$SRC" commit -qm "$1"; }
# head ID: the commit the package's .git has checked out
head_of() {
	"$UPAAS" package get "$APP" "$1" "$T_ROOT/p.tar.zst" 2>/dev/null || return 1
	rm -rf "$T_ROOT/x" && mkdir "$T_ROOT/x" && tar --zstd -xf "$T_ROOT/p.tar.zst" -C "$T_ROOT/x" &&
		git -c safe.directory='*' --git-dir="$T_ROOT/x/home/app/.git" rev-parse HEAD
}

# ------------------------------------------ the documented clone/update
mkdir -p "$SRC"
g init -q -b main "$SRC"
cat >"$SRC/.upaas.cfg" <<'EOF'
interpreter = { type = "shell"; };
os = { packages = [ "git" ]; };
git = { keep = true; };
repository = {
  clone = [ "git clone -q --no-checkout \"$UPAAS_REPOSITORY\" .",
            "git checkout -q --detach \"$UPAAS_COMMIT\"" ];
  update = [ "git fetch -q origin", "git checkout -q -f --detach \"$UPAAS_COMMIT\"" ];
};
actions = { main = "git status --short >status.txt"; };
EOF
echo one >"$SRC/file.txt"
commit one
C1=$(git -C "$SRC" rev-parse HEAD)
ID1=$("$UPAAS" build --app "$APP" "$SRC" 2>"$T_ROOT/b1.err")
t_is "repository.clone with git.keep builds" "$?" 0
[ -n "$ID1" ] || t_diag "$(tail -n 20 "$T_ROOT/b1.err")"
t_is "the package's .git is at the commit" "$(head_of "$ID1")" "$C1"
t_is "the app's checkout is clean" "$(cat "$T_ROOT/x/home/app/status.txt")" "?? status.txt"
t_is "owned by the app" "$(stat -c %u "$T_ROOT/x/home/app/.git")" 1000

echo two >"$SRC/file.txt"
commit two
C2=$(git -C "$SRC" rev-parse HEAD)
ID2=$("$UPAAS" build --app "$APP" "$SRC" 2>"$T_ROOT/b2.err")
t_is "repository.update builds incrementally" "$?" 0
[ -n "$ID2" ] || t_diag "$(tail -n 20 "$T_ROOT/b2.err")"
t_is "the package's .git is at the new commit" "$(head_of "$ID2")" "$C2"
t_is "with the new content" "$(cat "$T_ROOT/x/home/app/file.txt")" two

# an update that fails over what the previous package left: the error says
# how to start from the base image
sed -i 's|^  update = .*|  update = [ "exit 7" ];|' "$SRC/.upaas.cfg"
commit "update fails"
OUT=$("$UPAAS" build --app "$APP" "$SRC" 2>&1)
t_match "a failed incremental checkout suggests --fresh" "$OUT" \
	"step 'checkout' failed: .*'upaas build --fresh' starts from the base image"

# ------------------------------------------------- git.keep on its own
sed -i '/^repository/,/^};/d' "$SRC/.upaas.cfg"
echo three >"$SRC/file.txt"
commit three
C3=$(git -C "$SRC" rev-parse HEAD)
ID3=$("$UPAAS" build --app "$APP" "$SRC" 2>"$T_ROOT/b3.err")
t_is "git.keep builds with upaas's own checkout" "$?" 0
[ -n "$ID3" ] || t_diag "$(tail -n 20 "$T_ROOT/b3.err")"
t_is "its .git is at the commit" "$(head_of "$ID3")" "$C3"
rm -rf "$T_ROOT/x" "$T_ROOT/p.tar.zst"

# ------------------------------------------------------- upaas build .
DOT=$T_ROOT/dotapp-$SUFFIX
mkdir -p "$DOT"
g init -q -b main "$DOT"
printf 'interpreter = { type = "shell"; };\n' >"$DOT/.upaas.cfg"
g -C "$DOT" add -A
g -C "$DOT" commit -qm one
OUT=$(cd "$DOT" && "$UPAAS" build . 2>&1)
t_is "upaas build . builds" "$?" 0
t_match "named after the directory" "$OUT" "built dotapp-$SUFFIX/"

# ------------------------------------------------ empty and unborn
g init -q -b trunk "$T_ROOT/empty"
OUT=$("$UPAAS" build --app "e-$SUFFIX" "$T_ROOT/empty" 2>&1)
t_match "an empty repository says so" "$OUT" "the repository is empty: it has no commit yet"
g -C "$DOT" branch -q -m main other
g -C "$DOT" symbolic-ref HEAD refs/heads/main
OUT=$("$UPAAS" build --app "u-$SUFFIX" "$DOT" 2>&1)
t_match "an unborn default branch says so, and what there is" "$OUT" \
	"the default branch 'main' has no commit yet.*--ref.*other"

# metadata over its size limit: the error gives the size and the limit
g init -q -b main "$T_ROOT/big"
{ printf 'interpreter = { type = "shell"; };\n#'; head -c 1100000 /dev/zero | tr '\0' x; echo; } \
	>"$T_ROOT/big/.upaas.cfg"
g -C "$T_ROOT/big" add -A
g -C "$T_ROOT/big" commit -qm big
OUT=$("$UPAAS" build --app "b-$SUFFIX" "$T_ROOT/big" 2>&1)
t_match "metadata over the size limit says the limit" "$OUT" \
	"'.upaas.cfg' is 1100037 bytes: it may be at most 1048576 bytes"

# ------------------------------------------------- submodule URLs
# sub: a repository a submodule may point at
SUB=$T_ROOT/allowed/sub
mkdir -p "$SUB"
g init -q -b main "$SUB"
echo s >"$SUB/s.txt"
g -C "$SUB" add -A
g -C "$SUB" commit -qm s
MOD=$T_ROOT/allowed/mod
mkdir -p "$MOD"
g init -q -b main "$MOD"
printf 'interpreter = { type = "shell"; };\n' >"$MOD/.upaas.cfg"
g -C "$MOD" submodule -q add ../sub lib
g -C "$MOD" add -A
g -C "$MOD" commit -qm mod
ID=$("$UPAAS" build --app "m-$SUFFIX" "$MOD" 2>"$T_ROOT/m.err")
t_is "a relative submodule URL inside git.local_paths" "$?" 0
[ -n "$ID" ] || t_diag "$(tail -n 20 "$T_ROOT/m.err")"
t_match "the submodule is in the package" \
	"$("$UPAAS" package get "m-$SUFFIX" "$ID" "$T_ROOT/m.tar.zst" 2>/dev/null &&
	   tar --zstd -tf "$T_ROOT/m.tar.zst")" "home/app/lib/s.txt"
rm -f "$T_ROOT/m.tar.zst"
# hostile URL -> what the error says
while IFS='|' read -r url want; do
	g -C "$MOD" config -f .gitmodules submodule.lib.url "$url"
	g -C "$MOD" commit -qam "url $url"
	OUT=$("$UPAAS" build --app "m-$SUFFIX" "$MOD" 2>&1)
	t_match "submodule URL '$url' is refused" "$OUT" "$want"
done <<EOF
ext::sh -c touch% $T_ROOT/pwned|names a git remote helper
fd::17|names a git remote helper
-oProxyCommand=touch $T_ROOT/pwned|looks like an option
ssh://-oProxyCommand=x/y|looks like an option
ftp://example.org/x.git|the transport 'ftp' is not allowed
file://$T_ROOT/src|not inside git.local_paths
$T_ROOT/src|not inside git.local_paths
../../src|not inside git.local_paths
EOF
t_ok "nothing ran" test ! -e "$T_ROOT/pwned"

t_done
