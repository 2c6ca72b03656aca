#!/bin/bash
# tests/integration/secrets.sh - no secret leaks over a whole lifecycle:
# config show (text and JSON), an app registered with a git URL that carries
# credentials (a real git server over HTTP with basic auth), a build and a
# deploy of it, the app's environment, PostgreSQL with a password in
# queue.url, http storage with user:password, S3 with a wrong secret key.
# Every output, log, manifest, bill of materials, the git mirror's config,
# and every /proc/*/cmdline and /proc/*/environ sampled while it runs are
# searched for the secret strings: zero hits.
. "$UPAAS_SRCDIR/tests/lib.sh"
command -v python3 >/dev/null || t_bail "python3 is missing"

# the secrets: random, so that a hit is never a coincidence
rnd() { od -An -N6 -tx1 /dev/urandom | tr -d ' \n'; }
GIT_PW=gitpw-$(rnd)
HTTP_PW=httppw-$(rnd)
PG_PW=pgpw-$(rnd)
S3_SECRET=s3secret-$(rnd)
MIRROR_PW=mirrorpw-$(rnd)
printf '%s\n' "$GIT_PW" "$HTTP_PW" "$PG_PW" "$S3_SECRET" "$MIRROR_PW" >"$T_ROOT/secrets"
# a canary on a command line on purpose: proof that the sampler sees them
CANARY=canary-$(rnd)
printf '%s\n' "$CANARY" >>"$T_ROOT/secrets"
SCAN=$T_ROOT/scan
mkdir -p "$SCAN"
N=0
# run DESC CMD...: runs CMD, its stdout and stderr kept for the scan
run() {
	local d=$1
	shift
	N=$((N + 1))
	"$@" >"$SCAN/$N.out" 2>&1
	RC=$?
	OUT=$(cat "$SCAN/$N.out")
}

PIDS=()
PG_STARTED=
sec_cleanup() {
	local rc=$? p
	touch "$T_ROOT/stop"
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
	"$UPAAS" app rm "$APP" >/dev/null 2>&1
	[ -n "$PG_STARTED" ] && "$UPAAS_SRCDIR/tests/pg.sh" stop >/dev/null 2>&1
	[ -e "$T_ROOT/rgw.env" ] && bash "$UPAAS_SRCDIR/tests/radosgw.sh" stop "$T_ROOT/rgw.env" \
		>/dev/null 2>&1
	rm -rf "${UPAAS_TEST_SHARED:?}/storage/packages/$APP" "$UPAAS_TEST_SHARED/storage/apps/$APP" \
		"$UPAAS_TEST_SHARED/storage/logs/$APP" "$UPAAS_TEST_SHARED/cache/git/$APP".*
	(exit $rc)
	t_cleanup
}
trap sec_cleanup EXIT
APP=secret-$(rnd)

t_image || t_bail "cannot create the base image"

# ------------------------------------------------------------ the sampler
# Every 50 ms, the command line and environment of every process: only
# lines that hold a secret are kept.
(
	while [ ! -e "$T_ROOT/stop" ]; do
		# paused while a command line is given a secret on purpose
		[ -e "$T_ROOT/pause" ] && { sleep 0.05; continue; }
		for f in /proc/[0-9]*/cmdline /proc/[0-9]*/environ; do
			tr '\0' '\n' <"$f" 2>/dev/null
		done | grep -F -f "$T_ROOT/secrets" >>"$T_ROOT/proc-hits"
		sleep 0.05
	done
) &
PIDS+=($!)
sh -c 'sleep 1' "$CANARY"

# ------------------------------------------------------------ PostgreSQL
if [ -n "${UPAAS_TEST_PG_URL:-}" ]; then
	PG_URL=$UPAAS_TEST_PG_URL
elif PG_URL=$("$UPAAS_SRCDIR/tests/pg.sh" start 2>"$T_ROOT/pg.err"); then
	PG_STARTED=1
else
	t_bail "no PostgreSQL: $(cat "$T_ROOT/pg.err")"
fi
# postgresql:///upaas?host=DIR&user=postgres -> with a password in the userinfo
PG_DIR=$(sed -n 's/.*host=\([^&]*\).*/\1/p' <<<"$PG_URL")
SECRET_PG_URL="postgresql://postgres:$PG_PW@/upaas?host=$PG_DIR"

CFG_EXTRA="interpreters = { shell = { any = { packages = []; }; }; };
queue = { url = \"$SECRET_PG_URL\"; };"
t_write_config "$CFG_EXTRA"

run "config show" "$UPAAS" config show
t_match "config show hides the queue password" "$OUT" 'url = "postgresql://\*\*\*\*\*\*\*\*@/upaas'
run "config show --json" "$UPAAS" config show --json
t_is "config show --json too" "$(jq -r .queue.url "$SCAN/$N.out")" "postgresql://********@/upaas?host=$PG_DIR"

# ------------------------------------------------------------ git over HTTP
SRC=$T_ROOT/src
mkdir -p "$SRC" "$T_ROOT/git"
git -C "$SRC" init -q -b main
cat >"$SRC/.upaas.cfg" <<'META'
interpreter = { type = "shell"; };
actions = { main = [ "env | sort", "echo built" ]; };
META
echo hello >"$SRC/app.txt"
git -C "$SRC" add -A && git -C "$SRC" -c user.name=t -c user.email=t@l commit -qm app
git clone -q --bare "$SRC" "$T_ROOT/git/app.git" && git -C "$T_ROOT/git/app.git" update-server-info
printf 'builder:%s\n' "$GIT_PW" >"$T_ROOT/git.cred"
python3 -u "$UPAAS_SRCDIR/tests/auth-http.py" "$T_ROOT/git" "$T_ROOT/git.cred" \
	>"$T_ROOT/git.port" 2>"$T_ROOT/git.log" &
PIDS+=($!)
wait_port() {
	local p=
	for _ in $(seq 100); do
		p=$(sed -n 's/^port \([0-9]*\)$/\1/p' "$1")
		[ -n "$p" ] && { echo "$p"; return 0; }
		sleep 0.1
	done
	return 1
}
GPORT=$(wait_port "$T_ROOT/git.port") || t_bail "the git server did not start"
REPO_URL="http://builder:$GIT_PW@127.0.0.1:$GPORT/app.git"
t_fail "the git server wants the credentials" git ls-remote "http://127.0.0.1:$GPORT/app.git"

printf '%s\n' "$REPO_URL" >"$T_ROOT/url"
run "app add" "$UPAAS" app add "$APP" --repo - <"$T_ROOT/url"
t_is "app add --repo - reads the URL from stdin" "$RC" 0
run "app list" "$UPAAS" app list
t_match "app list shows the repository without its credentials" "$OUT" \
	"http://\*\*\*\*\*\*\*\*@127.0.0.1:$GPORT/app.git"
run "app show --json" "$UPAAS" app show --json "$APP"

run "build" "$UPAAS" build "$APP"
t_is "a build from a URL with credentials" "$RC" 0
ID=$(t_current_id "$UPAAS_TEST_SHARED/storage/apps/$APP/current")
t_match "git asked for them (401 first)" "$(cat "$T_ROOT/git.log")" '" 401 '
MF=$UPAAS_TEST_SHARED/storage/packages/$APP/$ID.json
t_is "the manifest has the URL without credentials" "$(jq -r .repository.url "$MF")" \
	"http://127.0.0.1:$GPORT/app.git"
t_match "the build log says credentials were used, not which" \
	"$(cat "$UPAAS_TEST_SHARED/storage/logs/$APP/$ID.log")" "fetching http://127.0.0.1:$GPORT/app.git \(with credentials\)"
t_is "the mirror keeps no credentials" \
	"$(git --git-dir="$UPAAS_TEST_SHARED/cache/git/$APP.git" config remote.origin.url)" \
	"http://127.0.0.1:$GPORT/app.git"
run "deploy" "$UPAAS" deploy "$APP"
t_is "deploys" "$RC" 0
run "the app's environment" "$UPAAS" exec "$APP" -- env
t_is "exec env" "$RC" 0

# a build given the URL on its command line: upaas hides it from ps (the
# sampler pauses: the command line holds it until upaas's main() runs)
touch "$T_ROOT/pause"
sleep 0.2
: >"$T_ROOT/git.log"
"$UPAAS" build --app "$APP" "$REPO_URL" >"$SCAN/direct.out" 2>&1 &
BPID=$!
for _ in $(seq 100); do grep -qs 'GET /app.git' "$T_ROOT/git.log" && break; sleep 0.1; done
tr '\0' ' ' <"/proc/$BPID/cmdline" >"$SCAN/direct.cmdline" 2>/dev/null
wait $BPID
t_is "upaas build URL works" "$?" 0
rm -f "$T_ROOT/pause"
t_match "while it ran, its command line showed no credentials" "$(cat "$SCAN/direct.cmdline")" \
	"build --app $APP http://\*+@127.0.0.1:$GPORT/app.git"

# ------------------------------------------------------------ http storage
printf 'reader:%s\n' "$HTTP_PW" >"$T_ROOT/http.cred"
python3 -u "$UPAAS_SRCDIR/tests/auth-http.py" "$UPAAS_TEST_SHARED/storage" "$T_ROOT/http.cred" \
	>"$T_ROOT/http.port" 2>"$T_ROOT/http.log" &
PIDS+=($!)
HPORT=$(wait_port "$T_ROOT/http.port") || t_bail "the storage server did not start"
sed '/^storage = {/,/^};/d' "$T_CFG" >"$T_ROOT/http.cfg"
printf 'storage = { handler = "http"; url = "http://reader:%s@127.0.0.1:%s/"; timeout = 10; };\n' \
	"$HTTP_PW" "$HPORT" >>"$T_ROOT/http.cfg"
H() { UPAAS_CONFIG=$T_ROOT/http.cfg "$UPAAS" "$@"; }
run "http: package verify" H package verify "$APP" current
t_is "http storage with user:password works" "$RC" 0
run "http: config show" H config show
t_match "config show hides it" "$OUT" "url = \"http://\*\*\*\*\*\*\*\*@127.0.0.1:$HPORT/\";"
run "http: a missing object" H storage get "packages/$APP/none.json" -
t_match "an error names the URL without its credentials" "$OUT" \
	"object 'packages/$APP/none.json' not found at 'http://127.0.0.1:$HPORT/packages"
sed '/^storage = {/d' "$T_ROOT/http.cfg" >"$T_ROOT/http-bad.cfg"
printf 'storage = { handler = "http"; url = "http://reader:wrong-%s@127.0.0.1:%s/"; timeout = 10; };\n' \
	"$HTTP_PW" "$HPORT" >>"$T_ROOT/http-bad.cfg"
run "http: wrong password" env UPAAS_CONFIG="$T_ROOT/http-bad.cfg" "$UPAAS" storage check
t_match "wrong credentials: access denied" "$OUT" "denied \(HTTP 401\)"

# ------------------------------------------------------------ S3
bash "$UPAAS_SRCDIR/tests/radosgw.sh" start "$T_ROOT/rgw.env" >"$T_ROOT/rgw.out" 2>&1
case $? in
0)
	. "$T_ROOT/rgw.env"
	sed '/^storage = {/,/^};/d' "$T_CFG" >"$T_ROOT/s3.cfg"
	cat >>"$T_ROOT/s3.cfg" <<CFG
storage = { handler = "s3"; endpoint = "$RGW_ENDPOINT"; bucket = "$RGW_BUCKET";
  region = "$RGW_REGION"; path_style = true; access_key = "$RGW_ACCESS_KEY";
  secret_key = "$S3_SECRET"; retries = 0; };
CFG
	run "s3: wrong key" env UPAAS_CONFIG="$T_ROOT/s3.cfg" "$UPAAS" storage check
	t_is "S3 with a wrong secret key fails" "$RC" 1
	t_match "... as access denied" "$OUT" "(403|denied|SignatureDoesNotMatch)"
	run "s3: config show" env UPAAS_CONFIG="$T_ROOT/s3.cfg" "$UPAAS" config show --json
	t_is "config show hides the S3 secret" "$(jq -r .storage.secret_key "$SCAN/$N.out")" "********"
	;;
77) t_pass "# SKIP no radosgw: $(tail -n 1 "$T_ROOT/rgw.out")" ;;
*) t_bail "radosgw did not start: $(tail -n 5 "$T_ROOT/rgw.out" | tr '\n' ' ')" ;;
esac

# ------------------------------------------------- a mirror with credentials
# bootstrap.mirror with a user and password (a proxy in front of the real
# mirror that wants them): mmdebstrap's command line gets the bare URL, apt
# an auth.conf.d entry the image never keeps
UP=${UPAAS_TEST_MIRROR:-http://deb.debian.org/debian}
UP_BASE=$(sed -E 's|^(http://[^/]+).*|\1|' <<<"$UP")
printf 'apt:%s\n' "$MIRROR_PW" >"$T_ROOT/mirror.cred"
python3 -u "$UPAAS_SRCDIR/tests/auth-http.py" "$UP_BASE" "$T_ROOT/mirror.cred" \
	>"$T_ROOT/mirror.port" 2>"$T_ROOT/mirror.log" &
PIDS+=($!)
MPORT=$(wait_port "$T_ROOT/mirror.port") || t_bail "the mirror proxy did not start"
cat >"$T_ROOT/mirror.cfg" <<CFG
paths = { workdir = "$T_ROOT/mwork"; cache = "$T_ROOT/mcache"; state = "$T_ROOT/state"; };
storage = { handler = "local"; path = "$T_ROOT/mstorage"; };
signing = { key = "$T_KEY"; trusted = [ "$T_PUB" ]; };
sandbox = { uid_base = $T_SANDBOX_BASE; };
bootstrap = { mirror = "http://apt:$MIRROR_PW@127.0.0.1:$MPORT${UP#"$UP_BASE"}"; variant = "essential"; };
CFG
run "image create from a mirror with credentials" \
	env UPAAS_CONFIG="$T_ROOT/mirror.cfg" "$UPAAS" image create mirror-auth
t_is "an image from a mirror that wants credentials" "$RC" 0
t_is "the mirror wants them" "$(curl -s -o /dev/null -w '%{http_code}' \
	"http://127.0.0.1:$MPORT${UP#"$UP_BASE"}/dists/bookworm/Release")" 401
t_match "... and apt gave them" "$(cat "$T_ROOT/mirror.log")" '"GET [^"]*\.deb HTTP/1\.1" 200'
BLOB=$(find "$T_ROOT/mstorage" -name '*.tar.zst' | head -n 1)
t_ok "the image is stored" test -s "$BLOB"
# (the password from a file: on grep's command line the sampler would see it)
printf '%s\n' "$MIRROR_PW" >"$T_ROOT/mirror.pw"
t_is "the image holds no credentials" "$(zstd -dc "$BLOB" | grep -c -a -F -f "$T_ROOT/mirror.pw")" 0
t_fail "... and no auth.conf.d entry of upaas" \
	bash -c 'zstd -dc "$1" | tar -t | grep -q upaas-mirror' _ "$BLOB"
t_is "the work dir keeps no credentials" \
	"$(grep -r -l -F -f "$T_ROOT/secrets" "$T_ROOT/mwork" 2>/dev/null)" ""

# ------------------------------------------------------------ the scan
touch "$T_ROOT/stop"
sleep 0.2
ST=$UPAAS_TEST_SHARED/storage
hits() {
	grep -r -l -F -f "$T_ROOT/secrets" "$@" 2>/dev/null
}
t_is "no secret in any output" "$(hits "$SCAN")" ""
t_is "no secret in storage: manifests, logs, bills, pointers" \
	"$(hits "$ST/packages/$APP" "$ST/logs/$APP" "$ST/apps/$APP")" ""
t_is "no secret in the git mirror" "$(hits "$UPAAS_TEST_SHARED/cache/git/$APP.git")" ""
t_is "no secret in the deploy root (logs, history, revisions' manifests)" \
	"$(hits "$T_ROOT/srv/$APP/deploy.log" "$T_ROOT/srv/$APP/history" "$T_ROOT/srv/$APP/manifests")" ""
t_is "no secret in the deployed app" "$(hits "$T_ROOT/srv/$APP/current/home" "$T_ROOT/srv/$APP/current/etc")" ""
t_match "the sampler saw the canary's command line" "$(cat "$T_ROOT/proc-hits")" "^$CANARY\$"
t_is "no secret in any /proc/*/cmdline or environ seen" \
	"$(grep -v -x -F "$CANARY" "$T_ROOT/proc-hits" | sort -u | head -5)" ""
t_done
