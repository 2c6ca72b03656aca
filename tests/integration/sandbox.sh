#!/bin/bash
# tests/integration/sandbox.sh - sandbox_run() in a real Debian root: the
# namespaces (user namespace included), /proc, /dev, resolv.conf, rlimits,
# cgroup limits, the timeout, dropped privileges, binds, user-mode network,
# and that nothing outlives the command (kill -9 too). The hostile probes
# are in hostile.sh.
#
# The root is a minbase bookworm made once per run with mmdebstrap from the
# real mirror, in $UPAAS_TEST_SHARED/sandbox-root (under a lock), so this
# test does not depend on `upaas image`; its ids are shifted into the
# sandbox range (root inside is host uid $BASE), as the root cache's are.
# Never run outside make check: every path below hangs off these.
set -u
: "${UPAAS_SRCDIR:?run through make check}" "${UPAAS_BUILDDIR:?run through make check}"
. "$UPAAS_SRCDIR/tests/lib.sh" || exit 1
[ -d "${T_ROOT:?}" ] || exit 1

SBH=$UPAAS_BUILDDIR/tests/unit/sandbox-helper
[ -x "$SBH" ] || t_bail "missing $SBH (make check builds it)"
command -v mmdebstrap >/dev/null || t_bail "mmdebstrap is needed (apt-get install mmdebstrap)"

R=$UPAAS_TEST_SHARED/sandbox-root
BASE=$T_SANDBOX_BASE      # the range of every test (tests/lib.sh)
t_sandbox_root "$R" "$BASE"

# The tree as the sandbox must leave it (directory mtimes aside: creating
# and removing policy-rc.d touches /usr/sbin).
snapshot() {
	(cd "$R" && find . -xdev \( -type d -printf '%y %m %U:%G %p\n' \) -o \
		-printf '%y %m %U:%G %s %T@ %p %l\n' | sort)
}
rm -f "$R/usr/sbin/policy-rc.d"   # left by an earlier run killed on purpose
before=$(snapshot)

sb() { "$SBH" --root "$R" --range "$BASE" "$@"; }
out() { "$SBH" --root "$R" --range "$BASE" "$@" 2>&1; }

# --- namespaces
t_is "the command is PID 1 of its own PID namespace" "$(sb -- sh -c 'echo $$')" 1
t_is "/proc/1 is the command" "$(sb -- cat /proc/1/cmdline | tr '\0' ' ')" "cat /proc/1/cmdline "
n=$(sb -- sh -c 'ls /proc | grep -c "^[0-9][0-9]*$"')
t_match "only the sandbox's processes are in /proc ($n)" "$n" '^[1-4]$'
t_is "default hostname" "$(sb -- cat /proc/sys/kernel/hostname)" upaas
t_is "hostname set" "$(sb --hostname box-17 -- cat /proc/sys/kernel/hostname)" box-17
t_is "the host's hostname is unchanged" "$(cat /proc/sys/kernel/hostname)" "$(hostname)"
t_is "own IPC namespace" "$(sb -- readlink /proc/self/ns/ipc | grep -c "$(readlink /proc/self/ns/ipc)")" 0
t_is "the host's tree is not reachable (pivot_root)" \
	"$(sb -- sh -c "test -e '$T_ROOT' && echo visible || echo hidden")" hidden

# --- /dev, resolv.conf, policy-rc.d
t_is "/dev has exactly the minimal nodes" "$(sb -- ls /dev | tr '\n' ' ')" \
	"fd full null ptmx pts random shm stderr stdin stdout tty urandom zero "
t_is "/dev/null is the null device" "$(sb -- stat -c '%t:%T %F' /dev/null)" "1:3 character special file"
t_is "a new devpts instance: no host pty is visible" "$(sb -- ls /dev/pts | tr '\n' ' ')" "ptmx "
t_ok "/dev/shm is a writable tmpfs" sb -- sh -ec 'echo x >/dev/shm/x; grep -q " /dev/shm tmpfs" /proc/mounts'
t_is "resolv.conf is the host's" "$(sb -- cat /etc/resolv.conf)" "$(cat /etc/resolv.conf)"
t_fail "resolv.conf is read-only, even for root" sb -- sh -c 'echo x >/etc/resolv.conf'
t_match "... because its mount is read-only" "$(cat "$T_ROOT/last.out")" "Read-only file system"
t_is "policy-rc.d keeps daemons from starting" "$(sb -- sh -c '/usr/sbin/policy-rc.d; echo $?')" 101
t_fail "policy-rc.d is removed after the command" test -e "$R/usr/sbin/policy-rc.d"

# a resolv.conf that is a symlink (as with systemd-resolved) is not followed:
# it is swapped for the bind target during the run and restored afterwards
mv "$R/etc/resolv.conf" "$T_ROOT/resolv.conf.orig"
ln -s ../run/systemd/resolve/stub-resolv.conf "$R/etc/resolv.conf"
t_is "a symlinked resolv.conf gets the host's" "$(sb -- cat /etc/resolv.conf)" "$(cat /etc/resolv.conf)"
t_is "... and the symlink is back afterwards" "$(readlink "$R/etc/resolv.conf")" \
	../run/systemd/resolve/stub-resolv.conf
t_fail "... and nothing was written where it points" test -e "$R/run/systemd/resolve"
rm -f "$R/etc/resolv.conf"
mv "$T_ROOT/resolv.conf.orig" "$R/etc/resolv.conf"

# --- network
t_is "without network only lo exists" \
	"$(sb -- sh -c 'tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d " "')" lo
t_is "... and lo is up" "$(sb -- cat /sys/class/net/lo/operstate /sys/class/net/lo/flags | tr '\n' ' ')" \
	"unknown 0x9 "
t_is "with network: lo and pasta's interface, not the host's" \
	"$(sb --network -- sh -c 'tail -n +3 /proc/net/dev | wc -l')" 2
t_is "... in a network namespace of its own" \
	"$(sb --network -- readlink /proc/self/ns/net | grep -c "$(readlink /proc/self/ns/net)")" 0
t_match "... with a default route through pasta" "$(sb --network -- cat /proc/net/route)" \
	'^[a-z0-9]+	00000000	[0-9A-F]{8}	0003'
# a host whose resolver is on its loopback (systemd-resolved, dnsmasq): a
# relay on 127.0.0.2:53 stands for it, in a mount namespace where the
# host's resolv.conf names it
upstream=$(awk '$1 == "nameserver" {print $2; exit}' /etc/resolv.conf)
python3 - "$upstream" "$T_ROOT/dns.log" <<'PY' &
import select, socket, sys
up, log = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.2", 53))
u = socket.socket(socket.AF_INET6 if ":" in up else socket.AF_INET, socket.SOCK_DGRAM)
peers = {}
while True:
    r, _, _ = select.select([s, u], [], [], 20)
    if not r:
        break
    for x in r:
        d, a = x.recvfrom(4096)
        if x is s:
            peers[d[:2]] = a
            u.sendto(d, (up, 53))
            open(log, "a").write("query\n")
        elif d[:2] in peers:
            s.sendto(d, peers.pop(d[:2]))
PY
relay=$!
printf 'nameserver 127.0.0.2\nsearch upaas.test\n' >"$T_ROOT/resolv.loopback"
sleep 0.3
out=$(unshare -m --propagation private sh -c 'mount --bind "$1" /etc/resolv.conf && shift && exec "$@"' - \
	"$T_ROOT/resolv.loopback" "$SBH" --root "$R" --range "$BASE" --network --uid 1000 -- \
	sh -c 'cat /etc/resolv.conf; getent hosts deb.debian.org' 2>/dev/null)
t_match "a host resolver on loopback: the run asks pasta's forwarder at the gateway" \
	"$(tr '\n' ' ' <<<"$out")" \
	'^# written by upaas.*nameserver [0-9.]+.*search upaas.test'
t_match "... and names resolve through it" "$out" '[0-9a-f.:]+ +deb\.debian\.org'
t_match "... reaching the host's resolver" "$(cat "$T_ROOT/dns.log" 2>/dev/null)" query
kill "$relay" 2>/dev/null
wait "$relay" 2>/dev/null
t_is "... and its resolv.conf is gone afterwards" "$(ls /tmp | grep -c '^upaas-resolv-')" 0
# (pasta runs as pasta's user: its program must be where that user can go,
# which T_ROOT and the run's shared dir, both 0700, are not)
fakedir=$(mktemp -d /var/tmp/upaas-fake-pasta.XXXXXX)
chmod 755 "$fakedir"
fake=$fakedir/pasta
printf '#!/bin/sh\necho "fake pasta: failing on purpose" >&2\nexit 3\n' >"$fake"
chmod 755 "$fake"
start=$(date +%s)
t_fail "a pasta that fails fails the run" sb --network --pasta "$fake" -- true
t_match "... at once, saying so" "$(tr '\n' ' ' <"$T_ROOT/last.out") $(($(date +%s) - start))s" \
	'fake pasta: failing on purpose.*pasta exited with status 3.* [0-9]s$'
rm -rf "$fakedir"
t_fail "root inside cannot change the routes" sb --network -- ip route flush all
t_fail "... nor bring an interface down" sb --network -- sh -c 'ip link set lo down'

# --- rlimits
t_is "RLIMIT_NOFILE applied" "$(sb --nofile 123 -- sh -c 'ulimit -n')" 123
t_is "RLIMIT_FSIZE applied" "$(sb --fsize 4096 -- sh -c 'ulimit -f')" 8   # 512-byte blocks

# --- cgroup limits (the hostile probes are in hostile.sh)
sb --pids 77 --memory 67108864 -- sleep 3149 >/dev/null 2>&1 &
helper=$!
p=
for _ in $(seq 50); do p=$(pgrep -x -f 'sleep 3149') && break; sleep 0.1; done
cg=$(cat "/proc/$p/cgroup" 2>/dev/null)
if grep -q '^0::/upaas/' <<<"$cg"; then      # cgroup v2
	d=/sys/fs/cgroup/$(sed -n 's/^0:://p' <<<"$cg")
	t_is "the run has its own cgroup with pids.max" "$(cat "$d/pids.max")" 77
	t_is "... and memory.max" "$(cat "$d/memory.max")" 67108864
else                                         # cgroup v1
	d=/sys/fs/cgroup/pids$(awk -F: '$2 == "pids" {print $3}' <<<"$cg")
	dm=/sys/fs/cgroup/memory$(awk -F: '$2 == "memory" {print $3}' <<<"$cg")
	t_match "the run has its own pids cgroup ($d)" "$d" '/upaas/run-[0-9]+-[0-9]+$'
	t_is "... with pids.max" "$(cat "$d/pids.max")" 77
	t_is "... and a memory cgroup with the limit" "$(cat "$dm/memory.limit_in_bytes")" 67108864
fi
t_is "inside, the cgroup is the root of its own cgroup namespace" \
	"$(sb -- sh -c 'cut -d: -f3 /proc/self/cgroup | sort -u')" /
kill -9 "$p"
wait "$helper" 2>/dev/null
t_fail "... and the cgroup is gone afterwards" test -d "$d"
# a run cgroup that a killed run left under a pid a new run has now (pids
# are reused), in one hierarchy only (v1: memory; a removal cut short): the
# new run removes it rather than failing on it
parent=${dm:-$d}
parent=${parent%/*}
out=$(bash -c 'mkdir -p "$0/run-$$-0" && echo $$ >"$1/pid" &&
	exec "$2" --root "$3" --range "$4" -- true' "$parent" "$T_ROOT" "$SBH" "$R" "$BASE" 2>&1)
t_is "a dead run's cgroup under the pid of a new run: the run works" "$?:$out" "0:"
t_fail "... and that cgroup is gone" test -d "$parent/run-$(cat "$T_ROOT/pid")-0"

# --- setup time of a run (the sandbox must not make builds slower)
sb --timing --repeat 5 -- true 2>"$T_ROOT/timing"
t_diag "$(cat "$T_ROOT/timing")"
ms=$(sed -n 's/.*setup \([0-9]*\)\..*/\1/p' "$T_ROOT/timing")
t_match "a run without network sets up in well under 100 ms (${ms} ms)" "$ms" '^[0-9]{1,2}$'
sb --network --timing --repeat 3 -- true 2>"$T_ROOT/timing"
t_diag "$(cat "$T_ROOT/timing")"
ms=$(sed -n 's/.*setup \([0-9]*\)\..*/\1/p' "$T_ROOT/timing")
t_match "a run with network (pasta) sets up in well under 200 ms (${ms} ms)" "$ms" '^[0-9]{1,2}$|^1[0-9][0-9]$'

# --- timeout
start=$(date +%s)
t_fail "a command past its timeout fails" sb --timeout 2 -- sh -c 'sleep 3141 & sleep 3142'
msg=$(cat "$T_ROOT/last.out")
t_match "the error names the command and the time" "$msg" \
	"'sh -c sleep 3141 & sleep 3142' timed out after 2 s"
t_match "... and comes on time ($(($(date +%s) - start)) s)" "$(($(date +%s) - start))" '^[2-5]$'
left=x
for _ in $(seq 20); do
	left=$(pgrep -f 'sleep 314[12]')
	[ -z "$left" ] && break
	sleep 0.1
done
t_is "the background child died with it" "$left" ""

# --- dropped privileges
t_is "runs as the given uid/gid" "$(sb --uid 1000 -- id)" "uid=1000 gid=1000 groups=1000"
t_is "no capability in any set, no_new_privs" \
	"$(sb --uid 1000 -- grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs)' /proc/self/status | awk '{print $2}' | tr '\n' ' ')" \
	"0000000000000000 0000000000000000 0000000000000000 0000000000000000 0000000000000000 1 "
t_fail "dropped: cannot mount" sb --uid 1000 -- mount -t tmpfs x /mnt
t_fail "dropped: cannot chown a file owned by root" sb --uid 1000 -- chown 1000 /etc/passwd
t_is "/etc/passwd still belongs to root (inside)" "$(stat -c %u "$R/etc/passwd")" "$BASE"
t_is "root inside is the range's first id outside" \
	"$(sb -- cat /proc/self/uid_map /proc/self/gid_map | tr -s ' ' | tr '\n' ' ')" \
	" 0 $BASE 65536  0 $BASE 65536 "
sb --uid 1000 -- sleep 3148 >/dev/null 2>&1 &
helper=$!
p=
for _ in $(seq 50); do p=$(pgrep -x -f 'sleep 3148') && break; sleep 0.1; done
t_is "an app step's processes are the range's uid 1000 on the host" \
	"$(stat -c %u:%g "/proc/$p")" "$((BASE + 1000)):$((BASE + 1000))"
kill -9 "$p"
wait "$helper" 2>/dev/null
t_is "root inside holds no capability outside: the bounding set lacks the machine's" \
	"$(sb -- grep CapBnd /proc/self/status | cut -f2)" 0000010094944dfb
# root steps stay root for files, but lose what reaches beyond the sandbox
t_fail "root steps cannot mount" sb -- mount -t tmpfs x /mnt
t_fail "root steps cannot make device nodes" sb -- mknod /tmp/sda b 8 0
t_is "root steps keep what apt and dpkg need" \
	"$(sb -- sh -ec 'touch /etc/upaas-probe && chown 1000:1000 /etc/upaas-probe && stat -c %u /etc/upaas-probe && rm /etc/upaas-probe')" 1000
t_is "... and apt can drop to _apt" \
	"$(sb -- sh -c 'setpriv --reuid=_apt --regid=nogroup --clear-groups id -u')" 42
t_is "no mount below the root on the host" "$(t_mounts_below "$R")" ""
rm -rf "$R/run/mount"   # mount(8)'s utab: the command's doing, not the sandbox's

# --- binds
mkdir -p "$T_ROOT/data"
echo host-data >"$T_ROOT/data/f"
t_is "a read-only bind is visible" "$(sb --bind "$T_ROOT/data:/mnt/data" -- cat /mnt/data/f)" host-data
t_fail "a read-only bind cannot be written, even by root" \
	sb --bind "$T_ROOT/data:/mnt/data" -- sh -c 'echo x >/mnt/data/f'
t_fail "a writable bind of a host root's directory: root inside is not root there" \
	sb --bind "$T_ROOT/data:/mnt/data:rw" -- sh -c 'echo new >/mnt/data/g'
chown "$BASE:$BASE" "$T_ROOT/data"
t_ok "a writable bind owned by the range can be written" \
	sb --bind "$T_ROOT/data:/mnt/data:rw" -- sh -c 'echo new >/mnt/data/g'
t_is "... and the write reached the host, owned by the range" \
	"$(cat "$T_ROOT/data/g" 2>&1) $(stat -c %u "$T_ROOT/data/g")" "new $BASE"
# a symlink in the tree pointing at a host path resolves inside the tree
mkdir -p "$T_ROOT/victim"
ln -sfn "$T_ROOT/victim" "$R/mnt/escape"
t_fail "a bind target through a symlink to a host path is refused" \
	sb --bind "$T_ROOT/data:/mnt/escape/inside" -- true
t_is "nothing was created in the host directory it names" "$(ls -A "$T_ROOT/victim")" ""
t_fail "nor below the root where the symlink would lead" test -e "$R/$T_ROOT"
rm -f "$R/mnt/escape"
rmdir "$R/mnt/data"   # documented: missing mount points are created and stay

# --- sandbox_private_mounts(): a mount upaas makes (the workspace) is seen by
# the sandbox and by nobody else, and dies with upaas
mkdir -p "$T_ROOT/pm"
t_is "the sandbox sees a mount of upaas's private namespace" \
	"$(sb --private-mount "$T_ROOT/pm" --bind "$T_ROOT/pm:/mnt/pm" -- cat /mnt/pm/marker)" private
t_is "the host never saw that mount" "$(t_mounts_below "$T_ROOT/pm")" ""
t_fail "nor the file written into it" test -e "$T_ROOT/pm/marker"
rmdir "$R/mnt/pm"

# --- errors before exec, output to a log
t_is "exit status passes through" "$(sb -- sh -c 'exit 7'; echo $?)" 7
t_fail "a missing command fails" sb -- no-such-command
t_match "... naming it" "$(cat "$T_ROOT/last.out")" "sandbox: cannot exec 'no-such-command': No such file"
t_fail "a missing cwd fails" sb --cwd /no/such/dir -- true
t_match "... naming it" "$(cat "$T_ROOT/last.out")" "cannot chdir '/no/such/dir'"
sb --log "$T_ROOT/log" -- sh -c 'echo to-stdout; echo to-stderr >&2' >/dev/null
t_match "output goes to the log with timestamps" "$(cat "$T_ROOT/log")" \
	'^20[0-9-]{8}T[0-9:]{8}\.[0-9]{3}Z to-(stdout|stderr)$'
t_is "stdin is /dev/null" "$(sb -- sh -c 'cat | wc -c')" 0

# --- a command killed by a signal: 128+N ("kill -9 $$" inside is ignored by
# PID 1, so the signal comes from the host)
"$SBH" --root "$R" -- sleep 3147 >/dev/null 2>&1 &
helper=$!
for _ in $(seq 50); do init=$(pgrep -x -f 'sleep 3147') && break; sleep 0.1; done
kill -9 "$init"
wait "$helper"
t_is "a command killed by SIGKILL exits 137" "$?" 137

# --- nothing outlives the command, even kill -9 of its parent
"$SBH" --root "$R" -- sh -c 'sleep 3145 & sleep 3146' >/dev/null 2>&1 &
helper=$!
# (the helper's own argv holds the same words: wait for the sandboxed sh)
init=
for _ in $(seq 100); do
	init=$(pgrep -x -f 'sh -c sleep 3145 & sleep 3146') && pgrep -x -f 'sleep 3146' >/dev/null && break
	sleep 0.1
done
mntns=$(readlink "/proc/$init/ns/mnt")
t_match "the command runs in its own mount namespace ($mntns)" "$mntns" '^mnt:'
t_match "with its mounts in it" "$(cat "/proc/$init/mountinfo")" ' /dev/pts '
{ kill -9 "$helper"; wait "$helper"; } 2>/dev/null
left=x
for _ in $(seq 30); do
	left=$(pgrep -f 'sleep 314[56]')
	[ -z "$left" ] && break
	sleep 0.1
done
t_is "no process of the command is left after kill -9" "$left" ""
holders=$(for p in /proc/[0-9]*; do [ -n "$mntns" ] && [ "$(readlink "$p/ns/mnt" 2>/dev/null)" = "$mntns" ] && echo "$p"; done)
t_is "no process holds its mount namespace" "$holders" ""
t_is "no mount below the root on the host" "$(t_mounts_below "$R")" ""

# --- a root cache of the first edition (trees owned by real root, no
# .format) is moved aside and removed by the first use; the root it gives
# then belongs to the range
t_image || t_bail "cannot create the base image"
OLD=$T_ROOT/cache-old
fake=$OLD/roots/$(printf '%064d' 0)
mkdir -p "$fake/etc"
echo first-edition >"$fake/etc/marker"
sed "s|^  cache = .*|  cache = \"$OLD\";|" "$T_CFG" >"$T_ROOT/old.cfg"
NAME=$(awk '/^name:/ {print $2}' "$T_ROOT/image.out")
t_is "image run with a first-edition cache works" \
	"$(UPAAS_CONFIG=$T_ROOT/old.cfg "$UPAAS" image run "$NAME" -- stat -c %u /etc/passwd 2>"$T_ROOT/old.err")" 0
t_match "... saying what it does" "$(cat "$T_ROOT/old.err")" "first edition.*starting a new one"
t_is "... the cache has its format now" "$(cat "$OLD/roots/.format")" "upaas roots 2: uid $BASE gid $BASE"
t_fail "... the old entry is gone" test -e "$fake"
t_is "... and nothing of the old cache is left" "$(ls "$OLD" | grep -c '^roots\.old-')" 0
t_is "... the new entry belongs to the range" \
	"$(stat -c %u "$(ls -d "$OLD"/roots/*/ | head -1)etc/passwd")" "$BASE"

# --- the tree
rm -f "$R/usr/sbin/policy-rc.d"   # documented: kill -9 leaves it behind
after=$(snapshot)
t_is "the root tree is unchanged" "$(diff <(echo "$before") <(echo "$after"))" ""
t_done
