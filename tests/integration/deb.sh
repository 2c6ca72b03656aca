#!/bin/bash
# tests/integration/deb.sh - the Debian package: dpkg-buildpackage from a
# copy of the source tree (the files git tracks or would track, as they are
# in the working tree; never a build dir), lintian, then install into a
# throwaway root (the run's base image, unpacked), run upaas there, purge,
# and check that nothing of the package is left but the admin's data.
. "$UPAAS_SRCDIR/tests/lib.sh"

for tool in git dpkg-buildpackage dh lintian readelf; do
	command -v "$tool" >/dev/null || t_bail "'$tool' is missing (./quickstart test installs it)"
done
git -C "$UPAAS_SRCDIR" rev-parse --git-dir >/dev/null 2>&1 ||
	t_skip_all "not a git checkout: the source of the package is what git tracks"

ARCH=$(dpkg --print-architecture)
VERSION=$(sed -n 's/^AC_INIT(\[upaas\], \[\([^]]*\)\].*/\1/p' "$UPAAS_SRCDIR/configure.ac")
DEBVER=$(dpkg-parsechangelog -l "$UPAAS_SRCDIR/debian/changelog" -S Version)
t_is "debian/changelog has configure.ac's version" "${DEBVER%-*}" "$VERSION"

# Every library configure requires (UP_REQUIRE names its Debian package)
# is a build dependency of the package.
bdeps=$(sed -n '/^Build-Depends:/,/^[A-Z]/p' "$UPAAS_SRCDIR/debian/control")
missing=$(sed -n 's/^UP_REQUIRE(\[[^]]*\], \[[^]]*\], \[\([^]]*\)\]).*/\1/p' "$UPAAS_SRCDIR/configure.ac" |
	while read -r p; do grep -qw -- "$p" <<<"$bdeps" || echo "$p"; done)
t_is "debian/control build-depends on every library of configure.ac" "$missing" ""

tick() { T0=$(date +%s); }
tock() { TIMES="${TIMES:-}$1 $(($(date +%s) - T0))s, "; }
START=$(date +%s)

# --- build the .deb from a clean copy of the tree
tick
SRC=$T_ROOT/src/upaas-$VERSION
mkdir -p "$SRC"
(cd "$UPAAS_SRCDIR" && git ls-files -z --cached --others --exclude-standard |
	tar --null -T - --ignore-failed-read -cf - 2>/dev/null) | tar -xf - -C "$SRC"
t_ok "the copy has debian/ and no build products" \
	bash -c '[ -x "$1/debian/rules" ] && [ ! -e "$1/config.status" ] && [ ! -e "$1/upaas" ]' _ "$SRC"
(cd "$SRC" && DEB_BUILD_OPTIONS="parallel=$(nproc)" dpkg-buildpackage -us -uc -b) >"$T_ROOT/build.log" 2>&1
rc=$?
DEB=$T_ROOT/src/upaas_${DEBVER}_$ARCH.deb
t_is "dpkg-buildpackage -us -uc -b succeeds" "$rc" 0
[ -s "$DEB" ] || { t_diag "$(tail -n 30 "$T_ROOT/build.log")"; t_bail "no $(basename "$DEB")"; }
t_fail "the package build does not run the test suite" grep -Eq '^\s*make\b.*\bcheck\b' "$T_ROOT/build.log"
tock build

tick
lint=$(lintian --fail-on error,warning "$DEB" 2>&1); rc=$?
t_is "lintian: no error, no warning" "$rc" 0
[ "$rc" = 0 ] || t_diag "$lint"
tock lintian

X=$T_ROOT/x
dpkg-deb -x "$DEB" "$X"
t_match "dpkg-buildflags reach the build: PIE" "$(readelf -h "$X/usr/bin/upaas")" "Type: +DYN"
t_match "dpkg-buildflags reach the build: relro" "$(readelf -lW "$X/usr/bin/upaas")" "GNU_RELRO"
t_match "dpkg-buildflags reach the build: bindnow" "$(readelf -dW "$X/usr/bin/upaas")" "BIND_NOW|FLAGS_1.* NOW"
t_match "dpkg-buildflags reach the build: fortify" "$(readelf -sW --dyn-syms "$X/usr/bin/upaas")" "__[a-z]+_chk@"
t_is "conffile" "$(dpkg-deb --ctrl-tarfile "$DEB" | tar -xOf - ./conffiles)" /etc/upaas/upaas.cfg
t_is "the conffile is the example, every line commented out" \
	"$(sed -e '1,/^$/d' -e 's/^#//' "$X/etc/upaas/upaas.cfg")" \
	"$(sed -e '1,/^$/d' "$UPAAS_SRCDIR/examples/upaas.cfg")"
t_is "the conffile sets nothing" "$(grep -Ev '^(#|$)' "$X/etc/upaas/upaas.cfg")" ""
t_ok "the units are in /lib/systemd/system (Debian 12)" \
	test -f "$X/lib/systemd/system/upaas-worker.service" -a -f "$X/lib/systemd/system/upaas-watch.service" \
	-a -f "$X/lib/systemd/system/upaas-serve.service"
t_is "the dashboard's files are in /usr/share/upaas/web" \
	"$(cd "$X/usr/share/upaas/web" 2>/dev/null && ls | tr '\n' ' ')" \
	"$(cd "$UPAAS_SRCDIR/serve/web" && ls | tr '\n' ' ')"
t_ok "the examples are in /usr/share/doc/upaas/examples, uncompressed" \
	cmp "$X/usr/share/doc/upaas/examples/upaas.cfg" "$UPAAS_SRCDIR/examples/upaas.cfg"
if [ -f "$UPAAS_SRCDIR/dist/bash-completion/upaas" ]; then
	t_ok "the bash completion is shipped" test -s "$X/usr/share/bash-completion/completions/upaas"
fi

# --- a throwaway root: the run's base image, unpacked
t_image || t_bail "cannot create the base image"
NAME=$(awk '/^name:/ {print $2}' "$T_ROOT/image.out")
tick
ROOT=$T_ROOT/root
mkdir -p "$ROOT"
tar --zstd -xpf "$UPAAS_TEST_SHARED/storage/$(jq -r .key "$UPAAS_TEST_SHARED/storage/images/$NAME.json")" -C "$ROOT" \
	--warning=no-unknown-keyword ||
	t_bail "cannot unpack image '$NAME'"
mkdir -p "$ROOT/proc" "$ROOT/dev"
deb_cleanup() {
	local rc=$? m
	for m in "$ROOT/var/cache/upaas/layer" "$ROOT/dev" "$ROOT/proc"; do
		mountpoint -q "$m" && { umount "$m" || umount -l "$m"; }
	done
	(exit $rc)
	t_cleanup
}
trap deb_cleanup EXIT
mount -t proc proc "$ROOT/proc" || t_bail "cannot mount /proc in the root"
mount --bind /dev "$ROOT/dev" || t_bail "cannot bind /dev in the root"
in_root() {
	env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C \
		DEBIAN_FRONTEND=noninteractive chroot "$ROOT" "$@"
}
cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf"
cp "$DEB" "$ROOT/tmp/upaas.deb"
# Subordinate ids of someone else: the package's range must go above them.
echo "builder:100000:100000" >>"$ROOT/etc/subuid"
echo "builder:100000:65536" >>"$ROOT/etc/subgid"
SUBUID0=$(cat "$ROOT/etc/subuid")
SUBGID0=$(cat "$ROOT/etc/subgid")

# The dependencies first, so that "before" is the root upaas goes into.
t_ok "apt-get update in the root" in_root apt-get update -q
t_ok "the dependencies install from the mirror" \
	in_root apt-get satisfy -y -q --no-install-recommends "$(dpkg-deb -f "$DEB" Depends)"
tock "deps"

# The root's files (type, mode, numeric owner, path), without the mounts,
# /run (a tmpfs on a real system: adduser leaves its lock there), what
# apt and dpkg keep about themselves, and shadow's backups of /etc/passwd
# and the like (made by adduser and usermod: the admin's files).
snapshot() {
	(cd "$ROOT" && find . -xdev \( -path ./proc -o -path ./dev -o -path ./run \
		-o -path ./var/lib/dpkg -o -path ./var/lib/apt -o -path ./var/cache/apt \
		-o -path ./var/cache/debconf -o -path ./var/log \) -prune -o -printf '%y %m %U:%G %p\n') |
		grep -Ev ' \./etc/(passwd|group|shadow|gshadow|subuid|subgid)-$' | sort
}
snapshot >"$T_ROOT/before"

# --- install, run
tick
t_ok "apt-get install /tmp/upaas.deb" in_root apt-get install -y -q --no-install-recommends /tmp/upaas.deb
t_match "upaas --version" "$(in_root upaas --version 2>&1)" "^upaas $VERSION"
t_ok "upaas config check (the conffile as installed)" in_root upaas config check
t_ok "upaas image list" in_root upaas image list
pw=$(in_root getent passwd upaas)
t_match "system user upaas, no home, no login" "$pw" "^upaas:x:[1-9][0-9]{0,2}:[0-9]+:[^:]*:/nonexistent:/usr/sbin/nologin$"
t_ok "group upaas" in_root getent group upaas
SUB=$(grep '^upaas:' "$ROOT/etc/subuid")
t_match "a subordinate uid range of 65536 for upaas" "$SUB" "^upaas:[0-9]+:65536$"
first=$(cut -d: -f2 <<<"$SUB")
t_is "above every other range, aligned" "$first" 262144
t_is "the same subordinate gid range" "$(grep '^upaas:' "$ROOT/etc/subgid")" "upaas:$first:65536"
t_ok "postinst again (reconfigure): nothing changes" \
	in_root /var/lib/dpkg/info/upaas.postinst configure "$DEBVER"
t_is "still one range" "$(grep -c '^upaas:' "$ROOT/etc/subuid" "$ROOT/etc/subgid" | tr '\n' ' ')" \
	"$ROOT/etc/subuid:1 $ROOT/etc/subgid:1 "
t_is "units installed" "$(cd "$ROOT/lib/systemd/system" && echo upaas*)" \
	"upaas-app@.service upaas-remount.service upaas-serve.service upaas-watch.service upaas-worker.service"
t_is "no unit enabled" "$(find "$ROOT/etc/systemd" -name 'upaas*' 2>/dev/null)" ""
tock "install+run"

# What upaas makes for itself (purge removes it) and the admin's data
# (purge keeps it).
mkdir -p "$ROOT/var/cache/upaas/images" "$ROOT/var/lib/upaas/work/run-x" \
	"$ROOT/var/lib/upaas/storage/packages/app" "$ROOT/var/lib/upaas/logs" "$ROOT/srv/upaas/app"
touch "$ROOT/var/cache/upaas/images/base.tar" "$ROOT/var/lib/upaas/work/run-x/f" \
	"$ROOT/var/lib/upaas/storage/packages/app/1.tar.zst" "$ROOT/var/lib/upaas/upaas.db" \
	"$ROOT/var/lib/upaas/logs/1.log" "$ROOT/srv/upaas/app/current"
chown -R 262144:262144 "$ROOT/var/lib/upaas/work/run-x"
KEPT=$( (cd "$ROOT" && find ./var/lib/upaas ./srv/upaas \( -path ./var/lib/upaas/work -prune \) -o \
	-printf '%y %m %U:%G %p\n') | sort)

# --- purge
tick
t_ok "apt-get purge upaas" in_root apt-get purge -y -q upaas
t_is "dpkg forgot upaas" "$(in_root dpkg-query -W -f '${db:Status-Abbrev}' upaas 2>/dev/null)" ""
t_fail "no user upaas" in_root getent passwd upaas
t_fail "no group upaas" in_root getent group upaas
t_is "subuid: upaas's line gone, the others kept" "$(cat "$ROOT/etc/subuid")" "$SUBUID0"
t_is "subgid: upaas's line gone, the others kept" "$(cat "$ROOT/etc/subgid")" "$SUBGID0"
snapshot >"$T_ROOT/after"
t_is "purge leaves nothing but the admin's data" "$(comm -13 "$T_ROOT/before" "$T_ROOT/after")" "$KEPT"
t_is "and removes nothing of the root" "$(comm -23 "$T_ROOT/before" "$T_ROOT/after")" ""
tock purge

# Never through a mount: a tree with something mounted below stays.
mkdir -p "$ROOT/var/cache/upaas/layer"
mount -t tmpfs tmpfs "$ROOT/var/cache/upaas/layer" || t_bail "cannot mount a tmpfs"
touch "$ROOT/var/cache/upaas/layer/f"
dpkg-deb -e "$DEB" "$T_ROOT/control"
cp "$T_ROOT/control/postrm" "$ROOT/tmp/postrm"
t_match "postrm purge skips a tree with a mount below" "$(in_root sh /tmp/postrm purge 2>&1)" \
	"not removing '/var/cache/upaas': something is mounted below it"
t_ok "and leaves it whole" test -f "$ROOT/var/cache/upaas/layer/f"
umount "$ROOT/var/cache/upaas/layer"
rm -rf "$ROOT/var/cache/upaas" "$ROOT/tmp/postrm"

# --- no mount left behind
umount "$ROOT/dev" "$ROOT/proc"
t_is "no mount left in the root" "$(t_mounts_below "$ROOT")" ""
t_diag "times: ${TIMES}total $(($(date +%s) - START))s"
t_done
