# tests/lib.sh - sourced by every integration test (tests/integration/*.sh).
#
# Gives a TAP reporter, a private temp root per test with its own admin config,
# and a storage/cache shared by all tests of one run, so the base image is
# bootstrapped from the real mirror once per run.
#
#   . "$UPAAS_SRCDIR/tests/lib.sh"
#   t_ok "description" command args...      # passes when the command succeeds
#   t_fail "description" command args...    # passes when the command fails
#   t_is "description" "$got" "$want"
#   t_done                                  # prints the plan; exit status

set -u
: "${UPAAS:?run through make check}"
: "${UPAAS_SRCDIR:?run through make check}"

T_N=0
T_FAILED=0

t_pass() { T_N=$((T_N + 1)); echo "ok $T_N - $*"; }
t_not() { T_N=$((T_N + 1)); T_FAILED=$((T_FAILED + 1)); echo "not ok $T_N - $*"; }
t_diag() { printf '%s\n' "$@" | sed 's/^/# /'; }
t_ok() {
	local d=$1; shift
	if "$@" >"$T_ROOT/last.out" 2>&1; then t_pass "$d"; else
		t_not "$d"; t_diag "command: $*" "$(tail -n 30 "$T_ROOT/last.out")"; fi
}
t_fail() {
	local d=$1; shift
	if "$@" >"$T_ROOT/last.out" 2>&1; then
		t_not "$d"; t_diag "command unexpectedly succeeded: $*" "$(tail -n 30 "$T_ROOT/last.out")"
	else t_pass "$d"; fi
}
t_is() {
	if [ "$2" = "$3" ]; then t_pass "$1"; else
		t_not "$1"; t_diag "got:  $2" "want: $3"; fi
}
t_match() {  # t_match desc "$text" regex
	if printf '%s' "$2" | grep -Eq -- "$3"; then t_pass "$1"; else
		t_not "$1"; t_diag "no match for /$3/ in:" "$(printf '%s' "$2" | tail -n 20)"; fi
}
t_done() { echo "1..$T_N"; [ "$T_FAILED" -eq 0 ]; exit $?; }
t_skip_all() { echo "1..0 # SKIP $*"; exit 0; }
t_bail() { echo "Bail out! $*"; exit 1; }

[ "$(id -u)" = 0 ] || t_skip_all "integration tests run as root"

# Shared between all tests of one run (tests/run-all.sh sets it fresh).
UPAAS_TEST_SHARED=${UPAAS_TEST_SHARED:-/var/tmp/upaas-tests-shared}
mkdir -p "$UPAAS_TEST_SHARED/storage" "$UPAAS_TEST_SHARED/cache"
mkdir -p -m 0700 "$UPAAS_TEST_SHARED/keys"
export UPAAS_TEST_SHARED

T_ROOT=$(mktemp -d /var/tmp/upaas-test.XXXXXX)
export T_ROOT
T_CFG=$T_ROOT/upaas.cfg
export UPAAS_CONFIG=$T_CFG

t_cleanup() {
	local rc=$?
	# The overlay-mounted revisions of the apps a test deployed are meant
	# to stay (deploy.materialize); any other mount left below T_ROOT is a
	# bug of upaas.
	t_revision_mounts_below "$T_ROOT" | sort -r | while read -r m; do umount -l "$m"; done
	if awk -v r="$T_ROOT" '$5 ~ "^" r {f=1} END {exit !f}' /proc/self/mountinfo; then
		echo "# mounts left below $T_ROOT:" >&2
		awk -v r="$T_ROOT" '$5 ~ "^" r {print "#   " $5}' /proc/self/mountinfo >&2
	else
		rm -rf "$T_ROOT"
	fi
	exit $rc
}
trap t_cleanup EXIT

# The run's signing key pair, made once per run under a lock: every test
# builds signed packages and deploys only what this key signed.
T_KEY=$UPAAS_TEST_SHARED/keys/builder.key
T_PUB=$UPAAS_TEST_SHARED/keys/builder.pub
(
	flock 9
	[ -s "$T_KEY" ] || "$UPAAS" key generate --private "$T_KEY" --public "$T_PUB" >/dev/null ||
		exit 1
) 9>"$UPAAS_TEST_SHARED/keys.lock" || t_bail "cannot make the run's signing key"
export T_KEY T_PUB

# The first host id of the sandbox's range in the tests (the built-in one).
T_SANDBOX_BASE=268435456

# Writes the test's admin config; extra libconfig text may be passed as $1.
# Unless it has a signing group of its own, the run's key signs and is the
# one trusted. T_DEPLOY_EXTRA goes into the deploy group.
t_write_config() {
	local signing="signing = { key = \"$T_KEY\"; trusted = [ \"$T_PUB\" ]; };"
	case ${1:-} in *"signing = "* | *"signing ="*) signing= ;; esac
	cat >"$T_CFG" <<CFG
paths = {
  workdir = "$T_ROOT/work";
  cache = "$UPAAS_TEST_SHARED/cache";
  state = "$T_ROOT/state";
};
storage = {
  handler = "local";
  path = "$UPAAS_TEST_SHARED/storage";
};
deploy = {
  root = "$T_ROOT/srv";
  hooks_dir = "$T_ROOT/hooks";
  ${T_DEPLOY_EXTRA:-}
};
$signing
${1:-}
CFG
	# the sandbox's range: the built-in one, named (no warning in every
	# test's output); a test that sets its own sandbox group keeps it
	grep -q '^sandbox' "$T_CFG" ||
		printf 'sandbox = {\n  uid_base = %s;\n};\n' "$T_SANDBOX_BASE" >>"$T_CFG"
}

# The package id an apps/<app>/current file names (its signature lines,
# then its JSON document; or the first edition's plain id).
t_current_id() {
	[ -e "$1" ] || return 1
	if grep -q '^{' "$1"; then grep -v '^ed25519 ' "$1" | jq -r .id; else head -n1 "$1"; fi
}
t_write_config

# The base image all tests share; created once per run under a lock.
t_image() {
	# always the run's settings and key, whatever config the test wrote:
	# every test trusts the shared image through the run's key
	cat >"$T_ROOT/image.cfg" <<CFG
paths = { workdir = "$T_ROOT/work"; cache = "$UPAAS_TEST_SHARED/cache"; state = "$T_ROOT/state"; };
storage = { handler = "local"; path = "$UPAAS_TEST_SHARED/storage"; };
signing = { key = "$T_KEY"; trusted = [ "$T_PUB" ]; };
sandbox = { uid_base = $T_SANDBOX_BASE; };
CFG
	(
		flock 9
		UPAAS_CONFIG=$T_ROOT/image.cfg "$UPAAS" image create >"$T_ROOT/image.out" 2>&1 || {
			cat "$T_ROOT/image.out" >&2
			exit 1
		}
	) 9>"$UPAAS_TEST_SHARED/image.lock"
}

# A minbase bookworm for the sandbox tests at $1, made once per run with
# mmdebstrap from the real mirror (under a lock), its ids shifted into the
# sandbox range starting at $2 (idempotent).
t_sandbox_root() {
	local r=$1 base=$2
	(
		flock 9
		if [ ! -x "$r/bin/sh" ]; then
			rm -rf "$r.tmp"
			mmdebstrap --variant=minbase --mode=root --quiet bookworm "$r.tmp" \
				"${UPAAS_TEST_MIRROR:-http://deb.debian.org/debian}" >"$T_ROOT/mmdebstrap.out" 2>&1 &&
				mv "$r.tmp" "$r"
		fi
		[ -x "$r/bin/sh" ] &&
			"$UPAAS_BUILDDIR/tests/unit/sandbox-helper" --shift-tree "$r" --range "$base"
	) 9>"$UPAAS_TEST_SHARED/sandbox-root.lock"
	[ -x "$r/bin/sh" ] || { cat "$T_ROOT/mmdebstrap.out" >&2; t_bail "cannot bootstrap the test root"; }
}

# Mount points below a path (for leak checks); prints them.
# t_mounts_below DIR: the mount points at or below DIR but the overlay-mounted
# revisions of deployed apps (<deploy root>/<app>/revisions/<id>), which
# stay by design; t_revision_mounts_below DIR: those.
t_mounts_below() { t_mounts_filter "$1" 0; }
t_revision_mounts_below() { t_mounts_filter "$1" 1; }
t_mounts_filter() {
	awk -v r="$1" -v want="$2" 'index($5, r) == 1 {
		fs = ""
		for (i = 7; i < NF; i++) if ($i == "-") { fs = $(i + 1); break }
		rev = (fs == "overlay" && $5 ~ "/revisions/[^/]+$") ? 1 : 0
		if (rev == want) print $5
	}' /proc/self/mountinfo
}

# t_require_crash_points: this build's crash points (common/crash.c) into
# CRASH_POINTS, one a line. Without them the test is skipped, unless
# UPAAS_TEST_CRASH_POINTS=required (./quickstart test), where it fails.
t_require_crash_points() {
	CRASH_POINTS=$(UPAAS_CRASH_POINT=list "$UPAAS" --version 2>/dev/null) || CRASH_POINTS=
	[ -n "$CRASH_POINTS" ] && return 0
	[ "${UPAAS_TEST_CRASH_POINTS:-}" = required ] &&
		t_bail "this build has no crash points (configure --enable-crash-points)"
	t_skip_all "this build has no crash points (configure --enable-crash-points)"
}

# t_crash_trace FILE COMMAND...: runs COMMAND with every crash point it
# passes appended to FILE; then FILE holds "POINT COUNT" lines, one per hit
# (COUNT: the how-manieth hit of POINT), in order: what UPAAS_CRASH_POINT and
# UPAAS_CRASH_COUNT need to stop the command there.
t_crash_trace() {
	local file=$1; shift
	rm -f "$file.raw"
	UPAAS_CRASH_TRACE=$file.raw "$@" || return
	awk '{ n[$1]++; print $1, n[$1] }' "$file.raw" >"$file"
}

# t_crash_at POINT COUNT COMMAND...: runs COMMAND killed (SIGKILL) at the
# COUNT-th hit of POINT; succeeds when it was killed there (status 137).
t_crash_at() {
	local point=$1 count=$2; shift 2
	UPAAS_CRASH_POINT=$point UPAAS_CRASH_COUNT=$count "$@"
	[ $? -eq 137 ]
}
