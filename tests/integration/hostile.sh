#!/bin/bash
# tests/integration/hostile.sh - what an app would try from inside the
# sandbox, as root of a step and as the app user: every probe must fail to
# reach the host, and the host side is checked afterwards (core_pattern,
# /dev/null, the terminal, the keyring, loopback listeners, processes,
# mounts, cgroups). Where a probe could pass for the wrong reason, the same
# probe is first shown to work outside the sandbox, so that the test can fail.
#
# The sandbox is driven through tests/unit/sandbox-helper on the shifted
# minbase root that sandbox.sh uses.
set -u
: "${UPAAS_SRCDIR:?run through make check}" "${UPAAS_BUILDDIR:?run through make check}"
. "$UPAAS_SRCDIR/tests/lib.sh" || exit 1
[ -d "${T_ROOT:?}" ] || exit 1

SBH=$UPAAS_BUILDDIR/tests/unit/sandbox-helper
[ -x "$SBH" ] || t_bail "missing $SBH (make check builds it)"
command -v mmdebstrap >/dev/null || t_bail "mmdebstrap is needed (apt-get install mmdebstrap)"
command -v script >/dev/null || t_bail "script is needed (apt-get install bsdutils)"
command -v python3 >/dev/null || t_bail "python3 is needed"

R=$UPAAS_TEST_SHARED/sandbox-root

# the run cgroups of any upaas on this host (other process trees may have
# left some: only this test's own count)
run_cgroups() {
	local d run
	for d in /sys/fs/cgroup/upaas /sys/fs/cgroup/*/upaas /sys/fs/cgroup/*/*/*/upaas; do
		for run in "$d"/run-*; do
			[ -d "$run" ] && echo "$run"
		done
	done
}
cgroups_before=$(run_cgroups)
BASE=$T_SANDBOX_BASE      # the range of every test (tests/lib.sh)
t_sandbox_root "$R" "$BASE"
sb() { "$SBH" --root "$R" --range "$BASE" "$@"; }

core_before=$(cat /proc/sys/kernel/core_pattern)
modprobe_before=$(cat /proc/sys/kernel/modprobe 2>/dev/null)
null_before=$(stat -c '%a %u:%g %Z %t:%T' /dev/null)

# --- the kernel's knobs and the host's devices, as root and as the app
for who in root app; do
	as=()
	[ "$who" = app ] && as=(--uid 1000)
	t_fail "$who: writing kernel.core_pattern is refused" \
		sb "${as[@]}" -- sh -c 'echo "|/tmp/pwn %p" >/proc/sys/kernel/core_pattern'
	t_fail "$who: writing /proc/sysrq-trigger is refused" \
		sb "${as[@]}" -- sh -c 'echo c >/proc/sysrq-trigger'
	t_fail "$who: writing kernel.modprobe is refused" \
		sb "${as[@]}" -- sh -c 'echo /tmp/pwn >/proc/sys/kernel/modprobe'
	t_fail "$who: mknod of a block device is refused" sb "${as[@]}" -- mknod /tmp/sda b 8 0
	t_fail "$who: chmod of /dev/null is refused" sb "${as[@]}" -- chmod 0777 /dev/null
	t_fail "$who: chown of /dev/null is refused" sb "${as[@]}" -- chown 1000:1000 /dev/null
	t_fail "$who: unshare -U is refused" sb "${as[@]}" -- unshare -U true
	t_fail "$who: unshare -m is refused" sb "${as[@]}" -- unshare -m true
	t_fail "$who: the kernel's memory is not readable" sb "${as[@]}" -- head -c 1 /proc/kcore
done
t_is "the host's kernel.core_pattern is unchanged" "$(cat /proc/sys/kernel/core_pattern)" "$core_before"
t_is "the host's kernel.modprobe is unchanged" "$(cat /proc/sys/kernel/modprobe 2>/dev/null)" \
	"$modprobe_before"
t_is "the host's /dev/null: mode, owner, ctime and device unchanged" \
	"$(stat -c '%a %u:%g %Z %t:%T' /dev/null)" "$null_before"

# --- chroot escape: chroot into a subdirectory, climb out with .. from the
# old cwd, chroot "." again. It ends at the sandbox's root: the host's tree
# is not below it (pivot_root and a detached old root)
touch "$T_ROOT/host-marker"
t_is "a chroot escape (chroot + fchdir + ..) stays inside" \
	"$(sb -- perl -e 'mkdir "/tmp/jail"; opendir(my $d, "/") or die "opendir: $!";
		chroot("/tmp/jail") or die "chroot: $!"; chdir($d) or die "fchdir: $!";
		chdir("..") for 1..64; chroot(".") or die "chroot .: $!";
		print -e "'"$T_ROOT/host-marker"'" ? "escaped\n" : -e "/etc/debian_version" ? "inside\n" : "lost\n"' 2>&1)" \
	inside
sb -- rmdir /tmp/jail 2>/dev/null

# --- the admin's terminal: TIOCSTI pushes keystrokes into the terminal the
# command can reach (upaas's stdout/stderr). Run under script(1), which gives
# the test a terminal; what would be injected is read back by the shell.
# script's stdin stays open (at EOF it would push an end-of-file into the
# terminal, ahead of any injected keystroke).
tiocsti='for my $fd (0, 1, 2) { open(my $h, "+<&=", $fd) or next;
	for (split //, "echo INJECTED\n") { my $c = $_; ioctl($h, 0x5412, $c) } }'
export SHELL=/bin/bash    # script(1) runs the command with it: read -t
got=$(script -qec "perl -e '$tiocsti'; read -t 1 l; echo \"got:[\$l]\"" /dev/null < <(sleep 5))
t_match "control: outside the sandbox TIOCSTI reaches the terminal" "$got" 'got:\[echo INJECTED'
got=$(script -qec "$SBH --root $R --range $BASE -- perl -e '$tiocsti'; read -t 1 l; echo \"got:[\$l]\"" \
	/dev/null < <(sleep 5))
t_match "inside, no keystroke reaches the terminal" "$got" 'got:\[\]'
t_fail "inside, /dev/tty is no terminal (a session of its own)" sb -- sh -c ': </dev/tty'

# --- the admin's keyring: a key in the session keyring upaas runs with.
# keyring_run CMD...: CMD in a new session keyring holding a user key,
# whose id is in $KEYID (perl makes the system calls: no keyutils needed)
keyring_run() {
	perl -e 'my ($ring, $type, $desc, $text) = ("upaas-hostile-ring", "user", "upaas-hostile",
			"hostile-secret");
		syscall(250, 1, $ring) >= 0 or die "join: $!\n";
		my $id = syscall(248, $type, $desc, $text, 14, -3);
		$id > 0 or die "add_key: $!\n"; $ENV{KEYID} = $id; exec @ARGV or die "exec: $!\n"' -- "$@"
}
readkey='my $b = "\0" x 64; my $n = syscall(250, 11, 0 + $ENV{KEYID}, $b, 64);
	print $n > 0 ? substr($b, 0, $n) : "error: $!", "\n"'
t_is "control: the key is readable in the session that runs upaas" \
	"$(keyring_run perl -e "$readkey")" hostile-secret
out=$(keyring_run sh -c 'exec "$0" --root "$1" --range "$2" --env KEYID="$KEYID" -- perl -e "$3"' \
	"$SBH" "$R" "$BASE" "$readkey" 2>&1)
t_match "inside, keyctl read of that key fails" "$out" '^error: '
t_fail "... and its text never shows" grep -q hostile-secret <<<"$out"

# --- ptrace of a host process (upaas's own shell, and a child of it)
sleep 3150 &
target=$!
out=$(sb -- perl -e "print syscall(101, 16, $target, 0, 0) < 0 ? \"error: \$!\n\" : \"attached\n\"" 2>&1)
t_match "inside, ptrace of a host process fails" "$out" '^error: '
out=$(sb -- perl -e "print syscall(101, 16, $$, 0, 0) < 0 ? \"error: \$!\n\" : \"attached\n\"" 2>&1)
t_match "inside, ptrace of the process that runs upaas fails" "$out" '^error: '
t_is "... and nothing traces the host process" "$(awk '/^TracerPid/ {print $2}' "/proc/$target/status")" 0
kill "$target"
wait "$target" 2>/dev/null

# --- the network: listeners on the host's loopback and the host's own
# address; a step with network must reach the mirror but neither of them
host_ip=$(ip -4 -o addr show scope global | awk '{sub("/.*", "", $4); print $4; exit}')
port=$((20000 + RANDOM % 20000))
python3 - "$host_ip" "$port" "$T_ROOT/conns" <<'PY' &
import socket, sys, threading, time
ip, port, log = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def serve(addr):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(16)
    while True:
        c, peer = s.accept()
        with open(log, "a") as f:
            f.write("%s from %s\n" % (addr, peer[0]))
        c.close()
for a in ("127.0.0.1", ip):
    threading.Thread(target=serve, args=(a,), daemon=True).start()
time.sleep(60)
PY
listener=$!
for _ in $(seq 50); do
	(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
	sleep 0.1
done
(exec 3<>"/dev/tcp/$host_ip/$port") 2>/dev/null
sleep 0.2
t_is "control: the listeners take connections from the host" "$(sort "$T_ROOT/conns" | cut -d' ' -f1 | tr '\n' ' ')" \
	"127.0.0.1 $host_ip "
: >"$T_ROOT/conns"
for who in root app; do
	as=()
	[ "$who" = app ] && as=(--uid 1000)
	t_fail "$who: connect to the host's 127.0.0.1 fails" \
		sb --network "${as[@]}" -- bash -c "exec 3<>/dev/tcp/127.0.0.1/$port"
	t_fail "$who: connect to the host's own address ($host_ip) fails" \
		sb --network "${as[@]}" -- bash -c "exec 3<>/dev/tcp/$host_ip/$port"
	t_fail "$who: connect to link-local 169.254.169.254 fails" \
		sb --network "${as[@]}" -- timeout 5 bash -c "exec 3<>/dev/tcp/169.254.169.254/80"
done
t_ok "a step with network reaches the Debian mirror" sb --network --uid 1000 -- bash -c '
	exec 3<>/dev/tcp/deb.debian.org/80 || exit 1
	printf "HEAD /debian/dists/bookworm/Release HTTP/1.1\r\nHost: deb.debian.org\r\nConnection: close\r\n\r\n" >&3
	head -1 <&3 | grep "^HTTP/1.1 "'
sleep 0.2
t_is "no connection reached a listener of the host" "$(cat "$T_ROOT/conns")" ""
kill "$listener"
wait "$listener" 2>/dev/null

# --- a fork bomb and a memory hog: stopped by their limits, with errors
# that say so, while the host goes on
start=$(date +%s)
out=$(sb --pids 256 -- sh -c 'bomb() { bomb | bomb & }; bomb; sleep 2; exit 1' 2>&1)
t_match "a fork bomb fails naming the limit" "$out" "exceeded limits\.pids \(256\)"
t_match "... within seconds ($(($(date +%s) - start)) s)" "$(($(date +%s) - start))" '^[0-9]$'
out=$(sb --uid 1000 --memory 134217728 -- perl -e '$x = "x" x (1 << 30); print "survived\n"' 2>&1)
t_match "a memory hog fails naming the limit" "$out" "ran out of memory: limits\.memory 128 MiB"
t_fail "... and did not get its memory" grep -qx survived <<<"$out"
t_ok "the host is responsive" timeout 5 true

# --- a daemon that leaves the session does not outlive the run
sb -- sh -c 'setsid sleep 3151 </dev/null >/dev/null 2>&1 & echo started' >/dev/null
sleep 0.3
t_is "a setsid daemon does not survive the run" "$(pgrep -f 'sleep 3151')" ""

# --- nothing left behind
t_is "no process of any probe is left" "$(pgrep -f 'sleep 31[45][0-9]')" ""
t_is "no mount below the root" "$(t_mounts_below "$R")" ""
left=
for run in $(run_cgroups); do
	grep -qxF "$run" <<<"$cgroups_before" && continue
	pid=${run##*/run-}
	pid=${pid%-*}
	kill -0 "$pid" 2>/dev/null || left="$left $run"
done
t_is "no cgroup of a finished run is left" "$left" ""

# ======================================================================
# The same attacks as app repositories, built with `upaas build` against
# the shared base image, then deployed: through an app step, a root step
# (the admin's finalize runs a script the app's files wrote), a deploy
# hook and `upaas exec`.
# ======================================================================
. "$UPAAS_SRCDIR/tests/integration/deploy-lib.sh" || exit 99
trap 'd_cleanup_storage; t_cleanup' EXIT
t_write_config '
interpreters = {
  actions = { finalize = [ "sh /usr/local/lib/probe.sh root" ]; };
  python = { any = { packages = []; }; versions = ( { version = "3"; } ); };
};
limits = { pids = 300; memory = "256M"; };'
chmod 755 "$T_ROOT"      # the app user of deploy hooks reaches the revisions
t_image || t_bail "cannot create the base image"

# the key in the session keyring upaas runs with (a named keyring kept by
# the user keyring, so that the build below can join it)
keyid=$(perl -e 'my ($r, $t, $d, $x) = ("upaas-hostile-ring", "user", "upaas-hostile-b", "hostile-secret");
	my $ring = syscall(250, 1, $r); $ring > 0 or die "join: $!\n";
	my $id = syscall(248, $t, $d, $x, 14, $ring); $id > 0 or die "add_key: $!\n";
	syscall(250, 8, $ring, -4) >= 0 or die "link: $!\n"; print "$id\n"')
[ -n "$keyid" ] || t_bail "cannot make the test's key"
python3 - "$host_ip" "$port" "$T_ROOT/conns" <<'PY' &
import socket, sys, threading, time
ip, port, log = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def serve(addr):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(16)
    while True:
        c, peer = s.accept()
        with open(log, "a") as f:
            f.write("%s from %s\n" % (addr, peer[0]))
        c.close()
for a in ("127.0.0.1", ip):
    threading.Thread(target=serve, args=(a,), daemon=True).start()
time.sleep(900)
PY
listener=$!
: >"$T_ROOT/conns"
echo intact >"$T_ROOT/victim"

# The probe: every attack, "NAME: blocked" or "NAME: ESCAPED"; always exit 0
probe() {
	cat <<PROBE
#!/bin/sh
who=\$1
try() { n=\$1; shift; if "\$@" >/dev/null 2>&1; then echo "\$who \$n: ESCAPED"; else echo "\$who \$n: blocked"; fi; }
try core_pattern sh -c 'echo "|/tmp/pwn %p" >/proc/sys/kernel/core_pattern'
try sysrq sh -c 'echo c >/proc/sysrq-trigger'
try modprobe sh -c 'echo /tmp/pwn >/proc/sys/kernel/modprobe'
try mknod mknod /tmp/sda b 8 0
try chmod_null chmod 0777 /dev/null
try chown_null chown 1000 /dev/null
try unshare_U unshare -U true
try tty sh -c ': </dev/tty'
try tiocsti perl -e 'my \$ok = 0; for my \$fd (0, 1, 2) { open(my \$h, "+<&=", \$fd) or next; my \$c = "x"; \$ok = 1 if ioctl(\$h, 0x5412, \$c) } exit !\$ok'
try keyctl perl -e 'my \$b = "\\0" x 64; exit(syscall(250, 11, $keyid, \$b, 64) > 0 ? 0 : 1)'
try ptrace perl -e 'exit(syscall(101, 16, $$, 0, 0) == 0 ? 0 : 1)'
try chroot_escape perl -e 'mkdir "/tmp/j"; opendir(my \$d, "/") or exit 1; chroot("/tmp/j") or exit 1;
	chdir(\$d) or exit 1; chdir("..") for 1..64; chroot(".") or exit 1; exit(-e "$T_ROOT/victim" ? 0 : 1)'
try loopback timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/$port'
try host_address timeout 5 bash -c 'exec 3<>/dev/tcp/$host_ip/$port'
try link_local timeout 5 bash -c 'exec 3<>/dev/tcp/169.254.169.254/80'
setsid sleep 3333 </dev/null >/dev/null 2>&1 &
exit 0
PROBE
}

APP=$(d_app hostile)
SRC=$T_ROOT/hsrc
mkdir -p "$SRC/hooks"
probe >"$SRC/probe.sh"
chmod 755 "$SRC/probe.sh"
printf '#!/bin/sh\nexec sh /home/app/probe.sh hook\n' >"$SRC/hooks/post"
chmod 755 "$SRC/hooks/post"
ln -s /etc "$SRC/etclink"
ln -s /srv "$SRC/srvlink"
# files: a tool of the tree replaced (by something that would write the
# host's victim if it ever ran as host root), then a second entry (which
# the first edition wrote with that tool, as root); the root step's probe;
# paths through symlinks of the checkout
python3 - "$SRC/.upaas.cfg" "$SRC/probe.sh" "$T_ROOT" <<'PY'
import sys
cfg, probe, troot = sys.argv[1:]
def s(text):   # a libconfig string
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
files = [
    ("/usr/bin/dirname", "#!/bin/sh\necho pwned >%s/victim\n" % troot),
    ("/etc/upaas-second", "second\n"),
    ("/usr/local/lib/probe.sh", open(probe).read()),
    ("/home/app/etclink/upaas-through-link", "inside\n"),
    ("/home/app/srvlink/upaas-pwned", "inside\n"),
]
with open(cfg, "w") as f:
    f.write('interpreter = { type = "python"; };\n')
    f.write('actions = { main = [ "sh probe.sh app" ]; };\n')
    f.write("files = (\n" + ",\n".join("  { path = %s; content = %s; }" % (s(p), s(c))
                                        for p, c in files) + "\n);\n")
    f.write('deploy = { hooks = { post = [ "hooks/post" ]; }; };\n')
PY
REPO=$T_ROOT/hrepo
commit_tree "$REPO" "$SRC" probes || t_bail "cannot make the app repository"

core_before=$(cat /proc/sys/kernel/core_pattern)
null_before=$(stat -c '%a %u:%g %Z %t:%T' /dev/null)
# built under script(1) (a terminal to push keystrokes into) and in the
# session keyring with the key
keyring_join() {
	perl -e 'syscall(250, 1, my $r = "upaas-hostile-ring") > 0 or die "join: $!\n"; exec @ARGV or die' -- "$@"
}
out=$(keyring_join script -qec "$UPAAS build --app $APP $REPO >$T_ROOT/hbuild.out 2>$T_ROOT/hbuild.err; echo build=\$?; read -t 1 l; echo \"got:[\$l]\"" /dev/null < <(sleep 5))
t_match "the probe app builds (contained)" "$out" 'build=0'
t_match "... and no keystroke reached the terminal" "$out" 'got:\[\]'
ID=$(tail -n 1 "$T_ROOT/hbuild.out")
blog=$(cat "$D_STORAGE/logs/$APP/$ID.log" 2>/dev/null)
t_is "no probe escaped in the build" "$(grep -c ': ESCAPED' <<<"$blog")" 0
grep -q ': ESCAPED' <<<"$blog" && t_diag "$(grep ': ESCAPED' <<<"$blog" | head -5)"
t_is "every probe ran, as the app and as root" "$(grep -c ': blocked' <<<"$blog")" 30

# the package: the tree's own files, nothing of the host
X=$T_ROOT/hpkg
"$UPAAS" package get "$APP" "$ID" "$T_ROOT/hpkg.tar.zst" >/dev/null 2>&1 && mkdir -p "$X" &&
	tar --zstd -xf "$T_ROOT/hpkg.tar.zst" -C "$X" 2>/dev/null
t_is "files: the second entry written after the tool was replaced" "$(cat "$X/etc/upaas-second")" second
t_is "files: a path through a symlink to /etc lands in the tree's /etc" \
	"$(cat "$X/etc/upaas-through-link")" inside
t_is "files: a path through a symlink to /srv lands in the tree's /srv" \
	"$(cat "$X/srv/upaas-pwned" 2>&1)" inside
t_fail "... and not in the host's /srv" test -e /srv/upaas-pwned
t_fail "... nor in the host's /etc" test -e /etc/upaas-through-link
t_is "the replaced tool never ran on the host" "$(cat "$T_ROOT/victim")" intact

# a `..` path in files is refused before anything runs; a path through a
# symlink of the checkout to a host path resolves inside the tree, where
# that path does not exist: the build fails, the host is untouched
APP2=$(d_app hostdotdot)
mkdir -p "$T_ROOT/dsrc"
printf 'interpreter = { type = "python"; };\nfiles = ( { path = "/etc/../../x"; content = "x"; } );\n' \
	>"$T_ROOT/dsrc/.upaas.cfg"
commit_tree "$T_ROOT/drepo" "$T_ROOT/dsrc" dotdot || t_bail "cannot make the repository"
t_fail "a '..' files path fails the build" "$UPAAS" build --app "$APP2" "$T_ROOT/drepo"
t_match "... saying why" "$(cat "$T_ROOT/last.out")" "files\[0\]\.path: '/etc/\.\./\.\./x' is not an absolute path"
APP3=$(d_app hostlink)
mkdir -p "$T_ROOT/lsrc"
ln -s "$T_ROOT" "$T_ROOT/lsrc/hostlink"
printf 'interpreter = { type = "python"; };\nfiles = ( { path = "/home/app/hostlink/pwned"; content = "x"; } );\n' \
	>"$T_ROOT/lsrc/.upaas.cfg"
commit_tree "$T_ROOT/lrepo" "$T_ROOT/lsrc" link || t_bail "cannot make the repository"
t_fail "a files path through a symlink to a host path fails the build" \
	"$UPAAS" build --app "$APP3" "$T_ROOT/lrepo"
t_match "... inside the tree" "$(cat "$T_ROOT/last.out")" "cannot make the directory of '/home/app/hostlink/pwned'"
t_fail "... and wrote nothing on the host" test -e "$T_ROOT/pwned"

# a fork bomb and a memory hog, as app steps
for kind in bomb hog; do
	a=$(d_app "host$kind")
	mkdir -p "$T_ROOT/$kind"
	case $kind in
	bomb) printf 'b() { b | b & }; b; sleep 3; exit 1\n' >"$T_ROOT/$kind/run.sh" ;;
	hog) printf '$x = "x" x (1 << 30); print "survived\\n";\n' >"$T_ROOT/$kind/run.pl" ;;
	esac
	case $kind in
	bomb) main='sh run.sh' ;;
	hog) main='perl run.pl' ;;
	esac
	printf 'interpreter = { type = "python"; };\nactions = { main = [ "%s" ]; };\n' "$main" \
		>"$T_ROOT/$kind/.upaas.cfg"
	commit_tree "$T_ROOT/$kind-repo" "$T_ROOT/$kind" "$kind" || t_bail "cannot make the repository"
	t_fail "a $kind fails the build" "$UPAAS" build --app "$a" "$T_ROOT/$kind-repo"
	case $kind in
	bomb) t_match "... naming the limit" "$(cat "$T_ROOT/last.out")" 'exceeded limits\.pids \(300\)' ;;
	hog) t_match "... naming the limit" "$(cat "$T_ROOT/last.out")" 'out of memory: limits\.memory 256 MiB' ;;
	esac
done

# the parent's commit, a stored manifest's data, reaches no git argv: one
# that starts with "--", even signed by a key the builder trusts (a key
# that leaked, a builder that was had), makes the package unreadable, and
# the next build fresh; unsigned, the signature check refuses it first
mf=$D_STORAGE/packages/$APP/$ID.json
cp "$mf" "$T_ROOT/manifest.orig"
cp "$mf.sig" "$T_ROOT/manifest.orig.sig"
python3 - "$mf" "$T_ROOT/victim" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
m["repository"]["commit"] = "--output=" + sys.argv[2]
json.dump(m, open(sys.argv[1], "w"))
PY
echo again >>"$SRC/probe.sh"
commit_tree "$REPO" "$SRC" again || t_bail "cannot commit"
t_fail "a build over a tampered parent manifest fails" "$UPAAS" build --app "$APP" "$REPO"
t_match "... at its signature" "$(cat "$T_ROOT/last.out")" 'does not match its signature'
"$UPAAS" key sign --key "$T_KEY" "$mf" >/dev/null
t_ok "a build over a signed parent whose commit starts with -- goes on" \
	"$UPAAS" build --app "$APP" "$REPO"
t_match "... fresh, the parent unreadable" "$(cat "$T_ROOT/last.out")" 'unreadable|fresh'
t_is "... and truncated no host file" "$(cat "$T_ROOT/victim")" intact
cp "$T_ROOT/manifest.orig" "$mf"
cp "$T_ROOT/manifest.orig.sig" "$mf.sig"

# deploy: the probe as a post-deploy hook and through upaas exec
t_ok "the probe app deploys (the hook is contained)" "$UPAAS" deploy "$APP"
dlog=$(cat "$T_ROOT/srv/$APP/deploy.log" 2>/dev/null)
t_is "no probe escaped in the deploy hook" "$(grep -c 'hook [A-Za-z_]*: ESCAPED' <<<"$dlog")" 0
t_is "every probe ran in the hook" "$(grep -c 'hook [A-Za-z_]*: blocked' <<<"$dlog")" 15
out=$(keyring_join "$UPAAS" exec "$APP" -- sh /home/app/probe.sh exec 2>&1)
t_is "no probe escaped through upaas exec" "$(grep -c ': ESCAPED' <<<"$out")" 0
t_is "every probe ran through upaas exec" "$(grep -c 'exec [A-Za-z_]*: blocked' <<<"$out")" 15

sleep 0.3
t_is "the host's kernel.core_pattern is unchanged" "$(cat /proc/sys/kernel/core_pattern)" "$core_before"
t_is "the host's /dev/null is unchanged" "$(stat -c '%a %u:%g %Z %t:%T' /dev/null)" "$null_before"
t_is "no connection reached a listener of the host" "$(cat "$T_ROOT/conns")" ""
t_is "no setsid daemon survived a build, a hook or exec" "$(pgrep -f 'sleep 3333')" ""
t_is "no mount left below the test's root" "$(t_mounts_below "$T_ROOT")" ""
kill "$listener"
wait "$listener" 2>/dev/null
perl -e 'my $r = "upaas-hostile-ring"; my $ring = syscall(250, 1, $r); syscall(250, 9, $ring, -4);
	syscall(250, 3, '"$keyid"')' 2>/dev/null
t_done
