#!/bin/bash
# tests/integration/config.sh - upaas config check|show through the binary:
# broken files are reported as file:line and exit 1 without creating
# anything, secrets are masked, the config file is found as documented,
# and app metadata is checked against the admin config.
. "$UPAAS_SRCDIR/tests/lib.sh"

# Runs the binary; stdout to $T_ROOT/out, stderr to $T_ROOT/err; sets RC.
run() {
	"$UPAAS" "$@" >"$T_ROOT/out" 2>"$T_ROOT/err"
	RC=$?
}

# ------------------------------------------------------------ check: ok
run config check
t_is "the test config is fine" "$RC" 0
t_is "check says ok" "$(cat "$T_ROOT/out")" "$T_CFG: ok"

run config check "$UPAAS_SRCDIR/examples/upaas.cfg"
t_is "the example admin config is fine" "$RC" 0

run config check --metadata "$UPAAS_SRCDIR/examples/upaas-metadata.cfg" "$UPAAS_SRCDIR/examples/upaas.cfg"
t_is "the example metadata is fine against the example config" "$RC" 0
t_is "and says so" "$(cat "$T_ROOT/out")" "$UPAAS_SRCDIR/examples/upaas-metadata.cfg: ok"

# ------------------------------------------------------- check: broken
# Paths point below a directory that must still not exist afterwards.
NOPE=$T_ROOT/must-not-exist
BAD=$T_ROOT/bad.cfg
cat >"$BAD" <<EOF
paths = {
  workdir = "$NOPE/work";
  state = "relative/state";
};
storage = {
  handler = "s3";
  bucket = "ok-bucket";
  part_size = 1024;
  secret_key = "x";
};
pack = { level = 25; };
bootstrap = {
  packages = [ "ca-certificates", "curl;reboot" ];
  tool = "yum";
};
colour = "blue";
interpreters = {
  python = {
    any = {
      actions = { system = "id"; };
    };
  };
};
EOF
before=$(find "$T_ROOT" | sort)
run config check "$BAD"
t_is "a broken config exits 1" "$RC" 1
err=$(cat "$T_ROOT/err")
t_is "nothing on stdout" "$(cat "$T_ROOT/out")" ""
t_match "relative path, line 3" "$err" "^$BAD:3: paths.state: 'relative/state' is not an absolute path$"
t_match "part_size, line 8" "$err" "^$BAD:8: storage.part_size: must be between 5242880 and"
t_match "zstd level, line 11" "$err" "^$BAD:11: pack.level: must be between 1 and 19, got 25$"
t_match "package name, line 13" "$err" "^$BAD:13: bootstrap.packages\[1\]: 'curl;reboot' is not a valid Debian package name"
t_match "bootstrap tool, line 14" "$err" "^$BAD:14: bootstrap.tool: 'yum' is not a bootstrap tool"
t_match "unknown key, line 16" "$err" "^$BAD:16: colour: unknown setting 'colour'$"
t_match "who may define, line 20" "$err" "^$BAD:20: .*action 'system' may not be defined here"
t_is "every problem, one line each" "$(wc -l <"$T_ROOT/err")" 7
t_is "check creates nothing" "$(find "$T_ROOT" | sort)" "$before"

printf 'paths = {\n  state = "/x"\n  cache = ;\n};\n' >"$BAD"
run config check "$BAD"
t_is "a syntax error exits 1" "$RC" 1
t_match "syntax error with its line" "$(cat "$T_ROOT/err")" "^$BAD:3: syntax error$"

run config check --json "$BAD"
t_is "check --json exits 1 too" "$RC" 1
t_is "check --json problems" "$(jq -r '.ok, .problems[0].line, .problems[0].message' "$T_ROOT/out" | tr '\n' ' ')" \
	"false 3 syntax error "

# A command other than check refuses to run on a broken config.
printf 'pack = { level = 0; };\n' >"$BAD"
run -c "$BAD" config show
t_is "show with a broken config exits 1" "$RC" 1
t_match "and names the problem" "$(cat "$T_ROOT/err")" "^$BAD:1: pack.level"

# ---------------------------------------------------- check: metadata
META=$T_ROOT/app.upaas.cfg
cat >"$META" <<'EOF'
interpreter = {
  type = "ruby";
};
os = { packages = [ "libpq-dev", "x y" ]; };
actions = {
  finalize = "rm -rf /";
};
files = ( { path = "../../etc/passwd"; content = "x"; } );
EOF
run config check --metadata "$META"
t_is "broken metadata exits 1" "$RC" 1
err=$(cat "$T_ROOT/err")
t_match "unknown interpreter type, line 2" "$err" "^$META:2: interpreter.type: unknown interpreter type 'ruby' \(configured: python, nodejs\)$"
t_match "bad package, line 4" "$err" "^$META:4: os.packages\[1\]: 'x y' is not a valid Debian package name"
t_match "app may not define finalize, line 6" "$err" "^$META:6: actions.finalize: action 'finalize' may not be defined here"
t_match "file outside the chroot, line 8" "$err" "^$META:8: files\[0\].path: '../../etc/passwd' is not an absolute path"

printf 'interpreter = { type = "python"; };\n@include "/etc/passwd"\n' >"$META"
run config check --metadata "$META"
t_is "metadata @include is refused" "$RC" 1
t_match "with its line" "$(cat "$T_ROOT/err")" "^$META:2: @include is not allowed"

# ------------------------------------------------------------------ show
SHOW=$T_ROOT/show.cfg
cat >"$SHOW" <<EOF
paths = { state = "$T_ROOT/state2"; };
storage = {
  handler = "s3";
  bucket = "bkt";
  access_key = "AKIDVISIBLE";
  secret_key = "SUPERSECRETKEY";
  session_token = "SESSIONTOKENSECRET";
};
EOF
run -c "$SHOW" config show
t_is "show exits 0" "$RC" 0
out=$(cat "$T_ROOT/out")
t_match "secret_key masked" "$out" 'secret_key = "\*\*\*\*\*\*\*\*";'
t_match "session_token masked" "$out" 'session_token = "\*\*\*\*\*\*\*\*";'
t_is "no secret anywhere" "$(grep -c 'SECRET' "$T_ROOT/out")" 0
t_match "access_key shown" "$out" 'access_key = "AKIDVISIBLE";'
t_match "defaults follow paths.state" "$out" "url = \"sqlite://$T_ROOT/state2/upaas.db\";"
t_match "storage path too" "$out" "path = \"$T_ROOT/state2/storage\";"
t_ok "show output is a valid config" bash -c "'$UPAAS' -c '$SHOW' config show >'$T_ROOT/again.cfg' && '$UPAAS' config check '$T_ROOT/again.cfg'"

run -c "$SHOW" config show --json
t_is "show --json exits 0" "$RC" 0
t_is "json: masked secret, visible key, handler" \
	"$(jq -r '.storage.secret_key, .storage.access_key, .storage.handler, .file' "$T_ROOT/out" | tr '\n' ' ')" \
	"******** AKIDVISIBLE s3 $SHOW "
t_is "json: no secret anywhere" "$(grep -c 'SECRET' "$T_ROOT/out")" 0
t_is "show creates nothing" "$(find "$T_ROOT/state2" 2>/dev/null | wc -l)" 0

# ------------------------------------------------- finding the config file
run -c "$SHOW" config check
t_is "-c wins over \$UPAAS_CONFIG" "$(cat "$T_ROOT/out")" "$SHOW: ok"

UPAAS_CONFIG=$T_ROOT/missing.cfg run config show
t_is "\$UPAAS_CONFIG naming a missing file is an error" "$RC" 1
t_match "that names the file" "$(cat "$T_ROOT/err")" "^$T_ROOT/missing.cfg: cannot read: No such file or directory$"

run -c "$T_ROOT/missing.cfg" config check
t_is "-c naming a missing file is an error" "$RC" 1

default=$("$UPAAS" --help | sed -n 's/.*else \(.*\))$/\1/p')
if [ -n "$default" ] && [ ! -e "$default" ]; then
	env -u UPAAS_CONFIG "$UPAAS" config show >"$T_ROOT/out" 2>"$T_ROOT/err"
	t_is "no config file at all: built-in defaults" "$?" 0
	t_match "show says so" "$(head -n 1 "$T_ROOT/out")" "built-in defaults"
	t_match "default storage path" "$(cat "$T_ROOT/out")" 'path = "/var/lib/upaas/storage";'
	t_match "default interpreters" "$(cat "$T_ROOT/out")" '^  python = \{'
else
	t_pass "# SKIP default config '$default' exists on this host"
fi

# ------------------------------------------------------------------ usage
run config
t_is "no subcommand is a usage error" "$RC" 2
run config frobnicate
t_is "unknown subcommand is a usage error" "$RC" 2
run config check a b
t_is "too many arguments is a usage error" "$RC" 2
run config --help
t_is "--help exits 0" "$RC" 0
for opt in --metadata --json --help; do
	t_match "help mentions $opt" "$(cat "$T_ROOT/out")" "$opt"
done

# the sandbox's extra seccomp denials are names of this machine's calls
printf 'sandbox = { seccomp_deny = [ "io_pgetevents", "no_such_call" ]; };\n' >"$T_ROOT/seccomp.cfg"
run config check "$T_ROOT/seccomp.cfg"
t_is "an unknown system call in sandbox.seccomp_deny fails the check" "$RC" 1
t_match "... naming it" "$(cat "$T_ROOT/out" "$T_ROOT/err")" "sandbox.seccomp_deny: unknown system call 'no_such_call'"

t_done
