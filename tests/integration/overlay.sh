#!/bin/bash
# tests/integration/overlay.sh - overlay-mounted revisions
# (deploy.materialize): a host extracts each layer once into a tree of its
# own and mounts a revision as an overlay of its layers' trees, so that a
# deploy fetches and extracts only the layers it lacks; the mounted tree
# equals the extracted one entry by entry; what the app writes stays in its
# revision; rollback mounts nothing new; after the mounts are gone (a
# reboot) `upaas remount` and `upaas exec` bring them back; a corrupt layer
# leaves no tree and no mount; undeploy --purge leaves no mount and no tree.
. "$UPAAS_SRCDIR/tests/lib.sh"
. "$UPAAS_SRCDIR/tests/integration/deploy-lib.sh"

ST=$D_STORAGE
trap 'rc=$?; d_cleanup_storage; (exit $rc); t_cleanup' EXIT

# (a host whose file system takes no overlayfs upper dir, such as one inside
# a container, extracts: nothing to show here)
P=$T_ROOT/probe
mkdir -p "$P/l" "$P/u" "$P/w" "$P/m"
mount -t overlay overlay -o "lowerdir=$P/l,upperdir=$P/u,workdir=$P/w" "$P/m" 2>/dev/null ||
	t_skip_all "overlayfs does not mount on $T_ROOT"
umount "$P/m"
rm -rf "$P"

T_DEPLOY_EXTRA='materialize = "extract";' t_write_config
sed "s|\"$T_ROOT/srv\"|\"$T_ROOT/srv-x\"|" "$T_CFG" >"$T_ROOT/extract.cfg"
t_write_config

APP=$(d_app overlay)
A=$T_ROOT/srv/$APP
L=$T_ROOT/layers
mkdir -p "$L" "$ST/layers" "$ST/packages/$APP"
hand_layers "$L" || t_bail "cannot make the layers"
SHA=() SIZE=()
for i in 0 1 2; do
	SHA[$i]=$(sha256sum "$L/$i.tar.zst" | cut -c1-64)
	SIZE[$i]=$(stat -c %s "$L/$i.tar.zst")
	cp "$L/$i.tar.zst" "$ST/layers/${SHA[$i]}.tar.zst"
done
# q1: the full layer; q2: and the first delta; q3: and the second
for n in 1 2 3; do
	python3 - "$APP" "q$n" "$n" "${SHA[0]}" "${SIZE[0]}" "${SHA[1]}" "${SIZE[1]}" \
		"${SHA[2]}" "${SIZE[2]}" >"$ST/packages/$APP/q$n.json" <<'PY'
import json, sys
app, pid, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
v = sys.argv[4:]
layers = [{"sha256": v[2 * i], "size": int(v[2 * i + 1]), "kind": "delta" if i else "full",
           "key": f"layers/{v[2 * i]}.tar.zst"} for i in range(n)]
print(json.dumps({"format": 2, "app": app, "id": pid, "fresh": n == 1, "layers": layers,
                  "repository": {"url": "test", "commit": "%040d" % n},
                  "app_home": "/home/app", "uid": 1000, "gid": 1000}, indent=1))
PY
	sign_object "packages/$APP/q$n.json"
done

fstype() { findmnt -n -o FSTYPE --mountpoint "$1" 2>/dev/null; }
dep() {  # dep ID [ARGS...]: a deploy, its JSON result in $T_ROOT/dep.json
	local id=$1; shift
	"$UPAAS" deploy --json --package "$id" "$@" "$APP" >"$T_ROOT/dep.json" 2>"$T_ROOT/dep.err"
}
counts() { jq -r '"fetched \(.fetched_layers) kept \(.kept_layers)"' "$T_ROOT/dep.json"; }

# ------------------------------------------------ each deploy: what it lacks
t_ok "deploy q1 (one full layer)" dep q1
t_is "q1 fetched its layer" "$(counts)" "fetched 1 kept 0"
t_is "revisions/q1 is an overlay mount" "$(fstype "$A/revisions/q1")" overlay
t_ok "deploy q2 (one more layer)" dep q2
t_is "q2 fetched only the layer the host lacked" "$(counts)" "fetched 1 kept 1"
t_ok "deploy q3" dep q3
t_is "q3 too" "$(counts)" "fetched 1 kept 2"
t_is "one tree per layer on the host" "$(ls "$A/trees" | grep -vc '\.dropped$')" 3
t_match "the log says which layers it extracted" "$(cat "$A/deploy.log")" \
	"mounted 3 layers at '$A/revisions/q3' \(1 fetched and extracted\)"
t_is "the revisions are mounted" "$(t_revision_mounts_below "$A" | wc -l)" 3

# ------------------------------------- the same trees as extracted revisions
for n in 1 2 3; do
	"$UPAAS" -c "$T_ROOT/extract.cfg" deploy --package "q$n" "$APP" >/dev/null 2>&1 ||
		t_not "extract-mode deploy of q$n"
	t_is "q$n: the mounted tree equals the extracted one, entry by entry" \
		"$(tree_of "$A/revisions/q$n")" "$(tree_of "$T_ROOT/srv-x/$APP/revisions/q$n")"
done
t_is "materialize = extract mounts nothing" "$(t_revision_mounts_below "$T_ROOT/srv-x")" ""
t_is "nor keeps trees" "$(ls "$T_ROOT/srv-x/$APP/trees" 2>/dev/null)" ""
t_ok "a whiteout of the layer below hides its file" test ! -e "$A/revisions/q2/etc/gone"
t_is "the unicode name" "$(cat "$A/revisions/q3/home/app/$(printf '\303\251t\303\251 \342\230\203.txt')")" \
	unicode

# -------------------------------------- what the app writes stays its own
echo written >"$A/revisions/q3/home/app/state"
t_ok "the revision is writable" test -f "$A/current/home/app/state"
t_ok "another revision does not see it" test ! -e "$A/revisions/q2/home/app/state"
t_is "no tree holds it" "$(find "$A/trees" -name state)" ""
rb() { "$UPAAS" rollback --json --to "$1" "$APP" >"$T_ROOT/rb.json" 2>"$T_ROOT/rb.err"; }
t_ok "rollback to q2" rb q2
t_is "the rollback switched" "$(deployed "$APP")" q2
t_is "and fetched nothing" "$(jq -r '"\(.fetched) \(.fetched_layers)"' "$T_ROOT/rb.json")" "false 0"
t_ok "back to q3" dep q3
t_is "q3 was reused" "$(jq -r '.fetched' "$T_ROOT/dep.json")" false
t_is "with what the app wrote" "$(cat "$A/current/home/app/state")" written

# ---------------------------------------------------------------- reboot
BEFORE=$(tree_of "$A/current")
t_revision_mounts_below "$A" | while read -r m; do umount "$m"; done
t_is "the mounts are gone (a reboot)" "$(t_revision_mounts_below "$A")" ""
t_ok "the current revision is empty then" test -z "$(ls -A "$A/current/")"
remount() { "$UPAAS" remount --json >"$T_ROOT/remount.json" 2>"$T_ROOT/remount.err"; }
t_ok "remount" remount
t_is "remount mounted the three revisions" "$(jq -c . "$T_ROOT/remount.json")" \
	'{"mounted":3,"failed":[]}'
t_is "the current tree is back, with what the app wrote" "$(tree_of "$A/current")" "$BEFORE"
remount
t_is "remount again: nothing to do" "$(jq -r .mounted "$T_ROOT/remount.json")" 0
umount "$A/revisions/q3"
# (these trees hold no program: deploy.sh runs commands with exec; here it
# is enough that exec mounts the revision before it starts the command)
"$UPAAS" exec "$APP" -- /etc/keep >/dev/null 2>&1
t_is "exec mounts the current revision itself" "$(fstype "$A/revisions/q3")" overlay

# ------------------------------------------------ a corrupt layer, a new host
printf 'X' | dd of="$ST/layers/${SHA[2]}.tar.zst" bs=1 seek=20 conv=notrunc status=none
OUT=$("$UPAAS" deploy --root "$T_ROOT/srv2" --package q3 "$APP" 2>&1)
t_is "a corrupt layer fails the deploy" "$?" 1
t_match "the error names the layer" "$OUT" "layer ${SHA[2]:0:12} \(3 of 3\).*corrupt: sha256"
t_is "no revision, no mount" "$(ls "$T_ROOT/srv2/$APP/revisions" 2>/dev/null)$(t_mounts_below "$T_ROOT/srv2")$(t_revision_mounts_below "$T_ROOT/srv2")" ""
t_is "no tree of the corrupt layer" "$(ls "$T_ROOT/srv2/$APP/trees" | grep -c "^${SHA[2]}")" 0
cp "$L/2.tar.zst" "$ST/layers/${SHA[2]}.tar.zst"
t_ok "the next deploy of it works" "$UPAAS" deploy --root "$T_ROOT/srv2" --package q3 "$APP"
t_is "its tree is whole" "$(tree_of "$T_ROOT/srv2/$APP/revisions/q3")" \
	"$(tree_of "$T_ROOT/srv-x/$APP/revisions/q3")"

# ------------------------------------------------------------- undeploy
t_ok "undeploy --purge" "$UPAAS" undeploy --purge "$APP"
t_is "no revision mount left" "$(t_revision_mounts_below "$T_ROOT/srv/$APP")" ""
t_ok "nothing left of the app" test ! -e "$A"
t_ok "no trash left" test -z "$(ls -A "$T_ROOT/srv")"
"$UPAAS" undeploy --root "$T_ROOT/srv2" --purge "$APP" >/dev/null 2>&1

# ---------------------------------------------------------------- config
printf 'deploy = { materialize = "copy"; };\n' >"$T_ROOT/bad.cfg"
OUT=$(UPAAS_CONFIG=$T_ROOT/bad.cfg "$UPAAS" status 2>&1)
t_is "an unknown materialize is refused" "$?" 1
t_match "with file:line" "$OUT" "bad.cfg:1: .*materialize"
t_is "no mount left" "$(t_mounts_below "$T_ROOT")$(t_revision_mounts_below "$T_ROOT")" ""
t_done
