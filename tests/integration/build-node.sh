#!/bin/bash
# tests/integration/build-node.sh - the Node.js example, for real: node and npm
# from Debian's packages, the app's dependencies with `npm ci` from the npm
# registry inside the sandbox, as the app user; then an incremental rebuild.
. "$UPAAS_SRCDIR/tests/lib.sh"

t_image || t_bail "cannot create the base image"

APP=node-$(printf '%s' "${T_ROOT##*.}" | tr 'A-Z' 'a-z')
SRC=$T_ROOT/src
cp -a "$UPAAS_SRCDIR/examples/node-app" "$SRC"
git -C "$SRC" init -q -b main
git -C "$SRC" add -A
git -C "$SRC" -c user.name=t -c user.email=t@localhost commit -qm one
C1=$(git -C "$SRC" rev-parse HEAD)

ID1=$("$UPAAS" build --app "$APP" "$SRC" 2>"$T_ROOT/b1.err")
t_is "node app builds" "$?" 0
[ -n "$ID1" ] || { t_diag "$(tail -n 30 "$T_ROOT/b1.err")"; t_bail "no package"; }

X=$T_ROOT/x
mkdir -p "$X"
t_ok "package get" "$UPAAS" package get "$APP" "$ID1" "$T_ROOT/p.tar.zst"
t_ok "extract" tar --zstd -xpf "$T_ROOT/p.tar.zst" -C "$X"
t_ok "node is in the package" test -x "$X/usr/bin/node"
t_ok "npm ci installed the dependency" test -f "$X/home/app/node_modules/ms/package.json"
t_is "node_modules belong to the app user" "$(stat -c %u "$X/home/app/node_modules")" 1000
t_is "the app's self-test ran at the commit" "$(cat "$X/home/app/.upaas-commit")" "$C1"
t_is "the app runs from the package" \
	"$(chroot --userspec=1000:1000 "$X" /usr/bin/node /home/app/index.js --selftest 2>&1)" "selftest ok"
t_ok "the self-test exits 0" chroot --userspec=1000:1000 "$X" /usr/bin/node /home/app/index.js --selftest

ID2=$("$UPAAS" build --app "$APP" "$SRC" 2>"$T_ROOT/b2.err")
t_is "incremental rebuild succeeds" "$?" 0
t_match "the rebuild is incremental" "$("$UPAAS" package show "$APP" "$ID2" 2>&1)" "incremental"
t_done
