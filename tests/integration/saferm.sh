#!/bin/bash
# tests/integration/saferm.sh - fs_rm_rf against real mounts: a host directory
# bind-mounted inside a work tree must survive the cleanup of that tree.
# Never run outside make check: every path below hangs off these.
set -u
: "${UPAAS_SRCDIR:?run through make check}" "${UPAAS_BUILDDIR:?run through make check}"
. "$UPAAS_SRCDIR/tests/lib.sh" || exit 1
[ -d "${T_ROOT:?}" ] || exit 1

RMRF=$UPAAS_BUILDDIR/tests/unit/rmrf-helper
[ -x "$RMRF" ] || t_bail "missing $RMRF (make check builds it)"

host=$T_ROOT/host
work=$T_ROOT/work/tree
mkdir -p "$host/sub" "$work/a/b" "$work/with space/mnt" "$work/mnt"
echo precious >"$host/file"
echo deeper >"$host/sub/file"
echo w >"$work/a/b/f"
ln -s "$host" "$work/a/link-to-host"
ln -s "$host/file" "$work/link-to-file"

cleanup_mounts() {
	for m in "$work/mnt" "$work/with space/mnt"; do
		mountpoint -q "$m" && umount "$m"
	done
	return 0
}
trap 'cleanup_mounts; t_cleanup' EXIT

mount --bind "$host" "$work/mnt" || t_bail "cannot bind-mount"
t_fail "refuses a tree with a bind mount below it" "$RMRF" "$work"
t_match "the error names the mount point" "$(cat "$T_ROOT/last.out")" \
	"refusing to remove '$work': '$work/mnt' is mounted below it"
t_is "the host's file is intact" "$(cat "$host/file")" precious
t_is "the host's subdirectory is intact" "$(cat "$host/sub/file")" deeper
t_is "nothing of the tree was removed" "$(cat "$work/a/b/f")" w
t_fail "refuses the mount point itself" "$RMRF" "$work/mnt"
t_fail "refuses a parent of the tree too" "$RMRF" "$T_ROOT/work"
umount "$work/mnt"

# mountinfo escapes spaces as \040: the check must still match
mount --bind "$host" "$work/with space/mnt" || t_bail "cannot bind-mount"
t_fail "refuses a mount below a path with a space" "$RMRF" "$work"
t_match "names the path with the space" "$(cat "$T_ROOT/last.out")" "'$work/with space/mnt' is mounted"
umount "$work/with space/mnt"

t_ok "removes the tree once nothing is mounted" "$RMRF" "$work"
t_fail "the tree is gone" test -e "$work"
t_is "symlinks into the host were not followed" "$(cat "$host/file") $(cat "$host/sub/file")" \
	"precious deeper"
t_ok "a missing path is fine" "$RMRF" "$work"
t_is "no mount left below the test root" "$(t_mounts_below "$T_ROOT")" ""
t_done
