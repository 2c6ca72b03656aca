#!/bin/bash
# tests/integration/cli.sh - the command line itself, without a build: options
# after operands, "--", usage errors (exit 2), --help of every command listing
# every option of its table, --version, `upaas __complete` and the bash
# completion script (dist/bash-completion/upaas) sourced into bash.
. "$UPAAS_SRCDIR/tests/lib.sh"

command -v jq >/dev/null || t_skip_all "jq is not installed"

# Its own empty storage and a SQLite queue in its own state dir.
cat >"$T_CFG" <<CFG
paths = {
  workdir = "$T_ROOT/work";
  cache = "$T_ROOT/cache";
  state = "$T_ROOT/state";
};
storage = {
  handler = "local";
  path = "$T_ROOT/storage";
};
deploy = {
  root = "$T_ROOT/srv";
};
CFG

run() {  # run ARGS...: $RC, $T_ROOT/out, $T_ROOT/err
	"$UPAAS" "$@" >"$T_ROOT/out" 2>"$T_ROOT/err"
	RC=$?
}

# ------------------------------------------------ options after operands
run image list --json
t_is "image list --json: an empty array" "$RC $(jq length "$T_ROOT/out")" "0 0"
run package list cli-demo --json
t_is "package list APP --json on an empty store" "$RC $(jq length "$T_ROOT/out")" "0 0"
run config show --json
t_is "config show --json" "$RC $(jq -r .paths.state "$T_ROOT/out")" "0 $T_ROOT/state"
run config check "$T_CFG" --json
t_is "config check FILE --json" "$RC $(jq -r .ok "$T_ROOT/out")" "0 true"
run package show cli-demo 20000101T000000Z-0000000 --json
t_is "package show APP ID --json parses (no such package: 1, not 2)" "$RC" 1
t_match "... and says why" "$(cat "$T_ROOT/err")" "no package '20000101T000000Z-0000000'"

# ------------------------------------------------------------------ "--"
printf 'dash\n' >"$T_ROOT/-x"
(cd "$T_ROOT" && "$UPAAS" storage put -x cli/dash >/dev/null 2>&1)
t_is "a file named -x is an unknown option" "$?" 2
(cd "$T_ROOT" && "$UPAAS" storage put -- -x cli/dash)
t_is "... and an operand after --" "$?" 0
t_is "... stored" "$("$UPAAS" storage get cli/dash -)" "dash"
run exec no-such-app -- --bogus
t_is "exec: the words after -- are the command, not options" "$RC" 1
t_match "... (no such app)" "$(cat "$T_ROOT/err")" "no-such-app"
run image run no-such-image --bogus
t_is "image run: the words after NAME are the command" "$RC" 1
t_match "... (no such image)" "$(cat "$T_ROOT/err")" "no image 'no-such-image'"

# ----------------------------------------------------------- usage errors
for args in "image list --bogus" "package --json list" "queue list -Z" "app" \
	"worker extra" "package show only-app" "deploy" "build a b" "frobnicate" \
	"storage put" "serve extra" "token add" "token add x --scope root" "token rm" \
	"status --root"; do
	# shellcheck disable=SC2086
	run $args
	t_is "usage error: upaas $args" "$RC" 2
done
t_match "a usage error names the command's help" "$(cat "$T_ROOT/err")" "^upaas: .*'upaas status --help'"

# -------------------------------------- --help lists every option it has
"$UPAAS" __complete "" >"$T_ROOT/cmds"
t_is "upaas --help lists every command" \
	"$("$UPAAS" --help | awk '/^Commands:/ {f=1; next} /^$/ {f=0} f {print $1}')" \
	"$(cat "$T_ROOT/cmds")"
missing=
checked=0
while read -r cmd; do
	subs=
	"$UPAAS" "$cmd" --help | grep -q '^Commands:' && subs=$("$UPAAS" __complete "$cmd" "")
	# "app:add": a sub-command, split again below
	for p in "$cmd" $(printf '%s\n' $subs | sed "s/^/$cmd:/"); do
		help=$("$UPAAS" ${p/:/ } --help) || missing="$missing [$p: --help failed]"
		for opt in $("$UPAAS" __complete ${p/:/ } -); do
			checked=$((checked + 1))
			grep -q -- "$opt\b" <<<"$help" || missing="$missing [$p $opt]"
		done
	done
done <"$T_ROOT/cmds"
t_is "every --help lists each of its options ($checked checked)" "$missing" ""
t_match "... which are many" "$checked" "^[0-9]{3,}$"

# --------------------------------------------------------------- version
version=$(sed -n 's/^AC_INIT(\[upaas\], \[\([^]]*\)\].*/\1/p' "$UPAAS_SRCDIR/configure.ac")
run --version
t_is "--version: the version of configure.ac" "$RC $(head -n 1 "$T_ROOT/out")" "0 upaas $version"
t_match "... and the features built in" "$(sed -n 2p "$T_ROOT/out")" \
	"^features: storage=local,s3,http queue=sqlite,postgresql archive=zstd( |$)"

# ------------------------------------------------------------ completion
t_is "no queue yet: no app names" "$("$UPAAS" __complete queue add "")" ""
t_fail "... and completion created no database" test -e "$T_ROOT/state/upaas.db"
"$UPAAS" app add cli-demo --repo /nonexistent >/dev/null
t_is "__complete: a registered app" "$("$UPAAS" __complete queue add cli-)" "cli-demo"
t_is "... from the config named by -c" \
	"$(env -u UPAAS_CONFIG "$UPAAS" __complete -c "$T_CFG" app show "")" "cli-demo"
t_is "no config file: no dynamic words" \
	"$(env -u UPAAS_CONFIG "$UPAAS" -c "$T_ROOT/none.cfg" __complete app show "")" ""
t_is "an option's values" "$("$UPAAS" __complete queue list --state s)" "succeeded"
t_is "a path" "$("$UPAAS" __complete config check "")" "@file"
t_is "nothing inside a command line" "$("$UPAAS" __complete image run x -- "")" ""

# The script, as bash calls it: COMP_WORDS and COMP_CWORD in, COMPREPLY out.
complete_words() {
	PATH="$(dirname "$UPAAS"):$PATH" bash -c '
		. "$1/dist/bash-completion/upaas"
		shift
		COMP_WORDS=("$@")
		COMP_CWORD=$(($# - 1))
		_upaas
		printf "%s\n" "${COMPREPLY[@]}"' complete "$UPAAS_SRCDIR" upaas "$@"
}
t_is "bash: a command" "$(complete_words im)" "image"
t_is "bash: a sub-command" "$(complete_words image l | sort | tr '\n' ' ')" "list ls "
t_is "bash: an option" "$(complete_words package list --j)" "--json"
t_is "bash: a registered app" "$(complete_words app show cli)" "cli-demo"
t_is "bash: a file" "$(cd "$T_ROOT" && complete_words storage put upaas.c)" "upaas.cfg"
t_is "bash: the commands of upaas serve" "$(complete_words se; complete_words to)" "serve
token"
t_is "an option of app add" "$("$UPAAS" __complete app add x --new)" "--new-secret"
t_is "token scopes" "$("$UPAAS" __complete token add x --scope "" | tr '\n' ' ')" "read build admin "
"$UPAAS" token add cli-token >/dev/null 2>&1
t_is "a token's name" "$("$UPAAS" __complete token rm "")" "cli-token"

t_done
