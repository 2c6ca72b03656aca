#!/bin/bash
# tests/integration/image.sh - base images: create from the real mirror (the
# shared image of the run), list/show, reuse, --force, a mirror that does not
# answer, image run in a throwaway copy, rm; no mount left behind.
. "$UPAAS_SRCDIR/tests/lib.sh"

CACHE=$UPAAS_TEST_SHARED/cache
STORE=$UPAAS_TEST_SHARED/storage

# --- create (or reuse the run's) shared image
t_ok "image create (shared base image of the run)" t_image
NAME=$(awk '/^name:/ {print $2}' "$T_ROOT/image.out")
t_match "create prints name, sha256 and size" "$(tr '\n' ' ' <"$T_ROOT/image.out")" \
	"name: +bookworm-[a-z]+-[a-z0-9]+ +sha256: +[0-9a-f]{64} +size: "
[ -n "$NAME" ] || t_bail "no image name in: $(cat "$T_ROOT/image.out")"
t_ok "manifest stored" test -s "$STORE/images/$NAME.json"
blob_key() { jq -r .key "$STORE/images/$NAME.json"; }
t_match "it names a blob of its own creation" "$(blob_key)" "^images/$NAME/[0-9]{8}T[0-9]{6}Z-[0-9a-f]{7}\.tar\.zst$"
t_ok "blob stored" test -s "$STORE/$(blob_key)"

list=$("$UPAAS" image list 2>&1)
t_match "image list shows it" "$list" "^$NAME "
json=$("$UPAAS" image show --json "$NAME")
t_ok "show --json is JSON" jq -e . <<<"$json"
field() { jq -r --arg k "$1" 'if (.[$k] | type) == "array" then (.[$k] | length) else .[$k] end' <<<"$json"; }
t_is "manifest distribution" "$(field distribution)" "bookworm"
t_match "manifest suite" "$(field suite)" "^[a-z]+"
t_is "manifest arch" "$(field arch)" "$(dpkg --print-architecture)"
t_match "manifest tool" "$(field tool)" "^(mmdebstrap|debootstrap)$"
t_match "manifest packages (many)" "$(field packages)" "^[0-9]{2,}$"
t_match "manifest lists dpkg" "$json" '"dpkg=[0-9]'
t_match "manifest created" "$(field created)" "^20[0-9]{2}-[0-9]{2}-[0-9]{2}T"
t_is "manifest sha256 = blob's" "$(field sha256)" "$(sha256sum <"$STORE/$(blob_key)" | cut -d' ' -f1)"
t_is "manifest size = blob's" "$(field size)" "$(stat -c %s "$STORE/$(blob_key)")"
t_is "list --json" "$("$UPAAS" image list --json | jq -r --arg n "$NAME" 'any(.[]; .name == $n)')" true

# --- second create is a reuse
sha1=$(field sha256)
out=$("$UPAAS" image create 2>&1)
t_match "second create reuses the image" "$out" "image '$NAME' is up to date \\(created "
t_is "reuse leaves the blob alone" "$(sha256sum <"$STORE/$(blob_key)" | cut -d' ' -f1)" "$sha1"

# --- a mirror that does not answer: error names it, nothing stored
t_write_config 'bootstrap = { mirror = "http://127.0.0.1:9/debian"; };'
out=$("$UPAAS" image create bad-mirror 2>&1); rc=$?
t_is "unreachable mirror fails" "$rc" 1
t_match "error names the mirror" "$out" "mirror 'http://127.0.0.1:9/debian'"
t_is "nothing stored for it" "$(ls "$STORE/images" | grep -c '^bad-mirror')" 0
t_is "no temp dir left" "$(ls "$T_ROOT/work" 2>/dev/null | grep -c '^image-')" 0
t_write_config

# --- image run: own /proc and hostname, a throwaway copy
key=$(field cache_key)
out=$("$UPAAS" image run "$NAME" -- sh -c 'echo hi > /etc/x; cat /etc/x; tr "\0" " " </proc/1/cmdline; echo; hostname' 2>&1)
t_match "run: writes inside the copy" "$out" "^hi"
t_match "run: PID 1 is the sandbox's" "$(echo "$out" | sed -n 2p)" "^sh -c"
t_is "run: hostname" "$(echo "$out" | sed -n 3p)" "upaas"
t_ok "cached unpacked root exists" test -d "$CACHE/roots/$sha1"
snapshot() { (cd "$CACHE/roots/$sha1" && find . -printf '%p %s %m %U %T@\n' | sort | sha256sum); }
snap1=$(snapshot)
t_fail "cache copy unchanged (no /etc/x)" test -e "$CACHE/roots/$sha1/etc/x"
out=$("$UPAAS" image run "$NAME" -- sh -c 'test -e /etc/x && echo present || echo absent' 2>&1)
t_is "second run sees a fresh copy" "$out" "absent"
t_is "blob unchanged by runs" "$(sha256sum <"$STORE/$(blob_key)" | cut -d' ' -f1)" "$sha1"
"$UPAAS" image run "$NAME" -- sh -c 'exit 7' >/dev/null 2>&1
t_is "run exits with the command's status" "$?" 7
"$UPAAS" image run --timeout 2 "$NAME" -- sh -c 'sleep 1000 & sleep 1000' >"$T_ROOT/to.out" 2>&1
t_is "run --timeout exits 124" "$?" 124
t_match "timeout message" "$(cat "$T_ROOT/to.out")" "timed out after 2 s"
out=$("$UPAAS" image run --user "$NAME" -- id -u 2>&1)
t_is "run --user runs as apps.uid" "$out" "1000"
t_fail "run --user cannot chown a root file" "$UPAAS" image run --user "$NAME" -- chown 1000 /etc/passwd
t_is "no network by default (only lo)" "$("$UPAAS" image run "$NAME" -- grep -c : /proc/net/dev 2>&1)" 1
t_match "--network shares the host's" "$("$UPAAS" image run --network "$NAME" -- grep -c : /proc/net/dev 2>&1)" "^([2-9]|[1-9][0-9]+)$"
t_is "no mount left below T_ROOT" "$(t_mounts_below "$T_ROOT")" ""
t_is "no mount left below the cache" "$(t_mounts_below "$CACHE")" ""

# --- kill -9 of upaas in the middle of a command
"$UPAAS" image run "$NAME" -- sleep 4242 &
pid=$!
for _ in $(seq 50); do pgrep -f '^sleep 4242$' >/dev/null && break; sleep 0.2; done
t_ok "command started" pgrep -f '^sleep 4242$'
kill -9 "$pid"; wait "$pid" 2>/dev/null
for _ in $(seq 25); do pgrep -f '^sleep 4242$' >/dev/null || break; sleep 0.2; done
t_fail "command died with upaas" pgrep -f '^sleep 4242$'
t_is "no mount left after kill -9" "$(t_mounts_below "$T_ROOT")$(t_mounts_below "$CACHE")" ""
t_ok "next run works and removes the dead run's files" "$UPAAS" image run "$NAME" -- true
t_is "no stale run dir" "$(ls "$T_ROOT/work" | grep -c '^run-')" 0
t_fail "cache copy still has no /etc/x" test -e "$CACHE/roots/$sha1/etc/x"
t_is "cache copy unchanged (names, sizes, modes, owners, mtimes)" "$(snapshot)" "$snap1"

# --- --force rebuilds (under the run's image lock: other tests may use it)
old_key=$(blob_key)
out=$( (flock 9; "$UPAAS" image create --force 2>&1) 9>"$UPAAS_TEST_SHARED/image.lock")
t_match "--force rebuilds" "$out" "image '$NAME' created"
json=$("$UPAAS" image show --json "$NAME")
t_is "rebuilt manifest matches its blob" "$(field sha256)" "$(sha256sum <"$STORE/$(blob_key)" | cut -d' ' -f1)"
t_ok "under a new key: the old blob was never overwritten" test "$(blob_key)" != "$old_key"
t_ok "and the old blob is gone" test ! -e "$STORE/$old_key"
t_is "no other blob of the image is left" "$(ls "$STORE/images/$NAME")" "$(basename "$(blob_key)")"

# --- the root cache is trimmed LRU to limits.unpacked_cache; the copy in use stays
sha2=$(field sha256)
# the old copy: the image before --force or, when the rebuild gave the same
# bytes (images are reproducible: the mirror did not change), one made here
old=$sha1
if [ "$sha2" = "$sha1" ]; then
	old=$(printf 'old copy %s' "$T_ROOT" | sha256sum | cut -d' ' -f1)
	mkdir -p "$CACHE/roots/$old/etc" && echo 4096 >"$CACHE/roots/$old.size" &&
		touch -d '2 days ago' "$CACHE/roots/$old.used"
fi
t_ok "old and new copies cached" test -d "$CACHE/roots/$old" -a -d "$CACHE/roots/$sha2"
t_write_config 'limits = { unpacked_cache = 1; };'
t_ok "run with a tiny unpacked cache" "$UPAAS" image run "$NAME" -- true
t_fail "old copy trimmed" test -e "$CACHE/roots/$old"
t_ok "copy in use kept" test -d "$CACHE/roots/$sha2/etc"
t_write_config

# --- kill -9 of upaas in the middle of a bootstrap: apt and dpkg die with it,
# no mount is left, nothing is stored, and the next create works
bootstrap_procs() {  # processes of a bootstrap below T_ROOT (root or argv)
	local p
	for p in $(pgrep -f 'mmdebstrap|apt|dpkg|gpgv|methods/http'); do
		{ readlink "/proc/$p/root"; tr '\0' ' ' <"/proc/$p/cmdline"; echo; } 2>/dev/null |
			grep -q -- "$T_ROOT" && echo "$p"
	done
}
"$UPAAS" image create killed-image >"$T_ROOT/killed.out" 2>&1 &
pid=$!
for _ in $(seq 100); do [ -n "$(bootstrap_procs)" ] && break; sleep 0.1; done
sleep 3   # apt is downloading or dpkg unpacking by now
t_match "bootstrap under way" "$(bootstrap_procs | wc -l)" "^[1-9]"
kill -9 "$pid"; wait "$pid" 2>/dev/null
for _ in $(seq 50); do [ -z "$(bootstrap_procs)" ] && break; sleep 0.2; done
t_is "mmdebstrap, apt and dpkg died with upaas" "$(bootstrap_procs)" ""
t_is "no mount left after kill -9 of a bootstrap" "$(t_mounts_below "$T_ROOT")" ""
t_is "nothing stored for the killed image" "$(ls "$STORE/images" | grep -c '^killed-image')" 0
t_fail "the killed image is not listed" "$UPAAS" image show killed-image

# --- a name that is not the default image must exist: no bootstrap for a typo
out=$("$UPAAS" image run no-such-image -- true 2>&1)
t_is "run of an unknown image fails with 1" "$?" 1
t_match "... saying how to create it" "$out" "no image 'no-such-image' \(create it with"
t_is "... and creates nothing" "$(ls "$STORE/images" | grep -c '^no-such-image')" 0

# --- rm (on a copy under another name, the shared image stays), of a
# first-edition image: its blob at images/<name>.tar.zst, named by "key"
cp "$STORE/$(blob_key)" "$STORE/images/rm-me.tar.zst"
jq '.name = "rm-me" | .key = "images/rm-me.tar.zst"' "$STORE/images/$NAME.json" >"$STORE/images/rm-me.json"
"$UPAAS" key sign --key "$T_KEY" --output "$STORE/images/rm-me.json.sig" "$STORE/images/rm-me.json" \
	>/dev/null
t_match "copy listed" "$("$UPAAS" image list)" "^rm-me "
t_is "a first-edition image loads" "$("$UPAAS" image show --json rm-me | jq -r .key)" "images/rm-me.tar.zst"
t_ok "image rm" "$UPAAS" image rm rm-me
t_is "manifest and blob gone" "$(ls "$STORE/images" | grep -c '^rm-me')" 0
t_fail "rm of a missing image fails" "$UPAAS" image rm rm-me
t_fail "show of a missing image fails" "$UPAAS" image show rm-me

t_done
