#!/bin/bash
# tests/integration/storage-local.sh - the local storage handler through the
# binary: storage check, put/get/ls/rm, refused keys, and a crash (kill -9)
# in the middle of an upload that must leave no object behind.
. "$UPAAS_SRCDIR/tests/lib.sh"

# A private storage dir: ls must see only what this test wrote.
ST=$T_ROOT/storage
sed -i "s|path = \"$UPAAS_TEST_SHARED/storage\";|path = \"$ST\";|" "$T_CFG"
grep -q "path = \"$ST\";" "$T_CFG" || t_bail "cannot point the config at '$ST'"

# --------------------------------------------------------------- check
t_ok "storage check passes" "$UPAAS" storage check
out=$(cat "$T_ROOT/last.out")
t_match "check names the handler" "$out" "handler 'local' at '$ST'"
for s in list write read stat delete; do
	t_match "check stage '$s' ok" "$out" "^$s +ok"
done
t_match "check ends ok" "$out" "^storage check ok$"
t_is "check leaves no probe behind" "$(find "$ST" -mindepth 1 | wc -l)" 0

t_ok "storage check --json" "$UPAAS" storage check --json
cp "$T_ROOT/last.out" "$T_ROOT/check.json"
t_ok "check --json says ok" python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["ok"] is True and d["handler"] == "local", d
assert [s["stage"] for s in d["stages"]][:5] == ["list", "write", "read", "stat", "list new"], d
assert all(s["status"] == "ok" for s in d["stages"]), d
' "$T_ROOT/check.json"

# A check that cannot write reports the stage and exits 1.
touch "$ST/upaas-check"
"$UPAAS" storage check >"$T_ROOT/check.out" 2>&1
t_is "a failing check exits 1" "$?" 1
t_match "write FAILED with the reason" "$(cat "$T_ROOT/check.out")" \
	"^write +FAILED \(cannot store 'upaas-check/.*': a parent of it is not a directory\)"
t_match "later stages skipped" "$(cat "$T_ROOT/check.out")" "^read +skipped"
t_match "and the verdict" "$(cat "$T_ROOT/check.out")" "^storage check FAILED$"
rm "$ST/upaas-check"

# ------------------------------------------------------ put / get / ls / rm
head -c 3000000 /dev/urandom >"$T_ROOT/blob"
t_ok "put a file" "$UPAAS" storage put "$T_ROOT/blob" packages/web/1.tar.zst
t_ok "put from stdin" sh -c 'printf "{\"id\":1}" | "$UPAAS" storage put - packages/web/1.json'
t_ok "put a key with spaces" "$UPAAS" storage put "$T_ROOT/blob" "odd/a b+c=d&e.bin"
t_is "the object is a plain file" "$(cmp "$T_ROOT/blob" "$ST/packages/web/1.tar.zst" && echo same)" same

t_ok "get to a file" "$UPAAS" storage get packages/web/1.tar.zst "$T_ROOT/back"
t_is "got what was put" "$(sha256sum <"$T_ROOT/back")" "$(sha256sum <"$T_ROOT/blob")"
t_is "get to stdout" "$("$UPAAS" storage get packages/web/1.json -)" '{"id":1}'
t_ok "get a key with spaces" "$UPAAS" storage get "odd/a b+c=d&e.bin" "$T_ROOT/back2"
t_is "same bytes" "$(cmp "$T_ROOT/blob" "$T_ROOT/back2" && echo same)" same

t_is "ls lists every key in order" "$("$UPAAS" storage ls | tr '\n' ' ')" \
	"odd/a b+c=d&e.bin packages/web/1.json packages/web/1.tar.zst "
t_is "ls PREFIX" "$("$UPAAS" storage ls packages/web/1.t)" "packages/web/1.tar.zst"
t_match "ls -l shows size and time" "$("$UPAAS" storage ls -l packages/)" \
	"^ +3000000  [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z +packages/web/1.tar.zst$"
"$UPAAS" storage ls --json packages/ >"$T_ROOT/ls.json"
t_ok "ls --json" python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert [o["key"] for o in d] == ["packages/web/1.json", "packages/web/1.tar.zst"], d
assert d[1]["size"] == 3000000 and d[1]["mtime"] > 0, d
' "$T_ROOT/ls.json"

# ------------------------------------------------------------ errors
t_fail "get of a missing key fails" "$UPAAS" storage get packages/web/2.json "$T_ROOT/x"
t_match "with a clear error" "$(cat "$T_ROOT/last.out")" "object 'packages/web/2.json' not found"
"$UPAAS" storage get packages/web/2.json "$T_ROOT/x" 2>/dev/null
t_is "exit status 1" "$?" 1
t_is "no file created" "$(ls "$T_ROOT" | grep -c '^x\|^\.x')" 0
t_fail "a '..' key is refused" "$UPAAS" storage put "$T_ROOT/blob" "../escape"
t_match "as invalid" "$(cat "$T_ROOT/last.out")" "invalid storage key '../escape'"
t_fail "an empty component is refused" "$UPAAS" storage put "$T_ROOT/blob" "a//b"
t_match "with the reason" "$(cat "$T_ROOT/last.out")" "empty component"
t_is "nothing escaped" "$(ls "$T_ROOT" | grep -c escape)" 0
t_fail "unknown sub-command" "$UPAAS" storage frobnicate
t_ok "help lists every option" sh -c '"$UPAAS" storage --help | grep -q -- "--json" &&
	"$UPAAS" storage ls --help | grep -q -- "--long" && "$UPAAS" storage check --help | grep -q -- "--key"'

t_ok "rm" "$UPAAS" storage rm packages/web/1.json packages/web/1.tar.zst "odd/a b+c=d&e.bin"
t_ok "rm of a missing key is fine" "$UPAAS" storage rm packages/web/1.json
t_is "ls is empty" "$("$UPAAS" storage ls)" ""
t_is "no directories left" "$(find "$ST" -mindepth 1 | wc -l)" 0

# ------------------------------------------- a crash in the middle of an upload
# The upload reads a FIFO that this shell keeps open: it cannot reach EOF,
# so it is still writing its temp file when it is killed.
mkfifo "$T_ROOT/fifo"
exec 3<>"$T_ROOT/fifo"
"$UPAAS" storage put "$T_ROOT/fifo" big/pkg.tar.zst >"$T_ROOT/put.out" 2>&1 &
pid=$!
timeout 30 head -c 4000000 /dev/urandom >&3
tmp=
for _ in $(seq 100); do
	tmp=$(find "$ST/big" -name '.tmp-*' -size +1000k 2>/dev/null | head -n 1)
	[ -n "$tmp" ] && break
	sleep 0.1
done
t_match "the upload is writing a temp file" "$tmp" "/big/\.tmp-"
t_is "a reader meanwhile sees no object" "$("$UPAAS" storage ls)" ""
t_fail "nor can get it" "$UPAAS" storage get big/pkg.tar.zst "$T_ROOT/half"
# the writer is alive (it holds its temp's lock): nobody removes its temp,
# however old it looks
touch -d '2 days ago' "$tmp"
t_ok "another upload into the same directory" "$UPAAS" storage put "$T_ROOT/blob" big/other
t_ok "storage check" "$UPAAS" storage check
t_match "check lists the live upload, and leaves it" "$(cat "$T_ROOT/last.out")" \
	"incomplete upload of 'big/\.tmp-[0-9a-f]+', .*: left \(it may still be running\)"
t_ok "the live upload's temp is still there" test -f "$tmp"
{ kill -9 "$pid"; wait "$pid"; } 2>/dev/null   # quiet: no "Killed" job message
t_is "the upload was killed" "$?" 137
exec 3>&-

t_is "no object under the final name" "$(ls -A "$ST/big" | grep -v '^other$')" "$(basename "$tmp")"
t_ok "the next command removes the dead upload's temp at once" "$UPAAS" storage ls
t_ok "it is gone" test ! -e "$tmp"
t_is "ls shows no half object" "$("$UPAAS" storage ls big/)" "big/other"
t_fail "get finds nothing" "$UPAAS" storage get big/pkg.tar.zst "$T_ROOT/half"
t_match "as not found" "$(cat "$T_ROOT/last.out")" "not found"
t_ok "rm the other object" "$UPAAS" storage rm big/other
t_ok "the key can be written again" "$UPAAS" storage put "$T_ROOT/blob" big/pkg.tar.zst
t_is "ls shows it" "$("$UPAAS" storage ls big/)" "big/pkg.tar.zst"
t_ok "and rm it" "$UPAAS" storage rm big/pkg.tar.zst

t_done
