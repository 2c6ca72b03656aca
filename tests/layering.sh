#!/bin/bash
# tests/layering.sh [SRCDIR] - every dependency runs downhill.
#
# Reads every `#include "X/..."` of every .c and .h outside tests/ and fails
# when a module includes a header of a module on its own floor or a higher
# one (the floors are in tests/floors), or another module's private header
# (anything but X/X.h); also when a folder with C sources has no floor, and
# when README's Layout table gives other floors than tests/floors. Prints
# every violation as "FILE: includes X (floor N) from floor M". TAP output.
#
# SRCDIR defaults to the tree this script is in; pass another checkout to
# check it against the same floors.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
FLOORS=$HERE/floors
SRC=${1:-${UPAAS_SRCDIR:-$HERE/..}}
SRC=$(cd "$SRC" && pwd) || { echo "Bail out! no source tree '$1'"; exit 1; }
[ -r "$FLOORS" ] || { echo "Bail out! cannot read '$FLOORS'"; exit 1; }

declare -A FLOOR
while read -r mod floor _; do
	case $mod in '' | '#'*) continue ;; esac
	FLOOR[$mod]=$floor
done <"$FLOORS"

# The C sources outside tests/: git's list in a checkout, else find (a
# release tarball), never a build dir's generated files.
if git -C "$SRC" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	FILES=$(git -C "$SRC" ls-files --cached --others --exclude-standard -- '*.c' '*.h' |
		grep -v '^tests/')
else
	FILES=$(cd "$SRC" && find . \( -path ./tests -o -name '_build*' -o -name autom4te.cache \) \
		-prune -o -type f \( -name '*.c' -o -name '*.h' \) -print | sed 's|^\./||' | grep '/')
fi

N=0
FAILED=0
ok() { N=$((N + 1)); echo "ok $N - $*"; }
not_ok() { N=$((N + 1)); FAILED=$((FAILED + 1)); echo "not ok $N - $*"; }

# --- every folder with C sources has a floor
unknown=$(printf '%s\n' "$FILES" | grep / | cut -d/ -f1 | sort -u |
	while read -r d; do [ -n "${FLOOR[$d]:-}" ] || echo "$d"; done)
if [ -z "$unknown" ]; then
	ok "every folder with C sources has a floor in tests/floors"
else
	for d in $unknown; do echo "$d/: C sources in a folder without a floor (tests/floors)"; done
	not_ok "every folder with C sources has a floor in tests/floors"
fi

# --- includes, per module
declare -A BAD
while IFS= read -r f; do
	[ -n "$f" ] || continue
	mod=${f%%/*}
	from=${FLOOR[$mod]:-}
	[ -n "$from" ] || continue
	while IFS= read -r inc; do
		imod=${inc%%/*}
		[ "$imod" = "$mod" ] && continue
		ifloor=${FLOOR[$imod]:-}
		if [ -z "$ifloor" ]; then
			echo "$f: includes $inc (no such module) from floor $from"
		elif [ "${inc#*/}" != "$imod.h" ]; then
			echo "$f: includes $inc (private to $imod/, floor $ifloor) from floor $from"
		elif [ "$ifloor" -ge "$from" ]; then
			echo "$f: includes $inc (floor $ifloor) from floor $from"
		else
			continue
		fi
		BAD[$mod]=1
	done < <(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\/[^"]*\)".*/\1/p' "$SRC/$f")
done <<<"$FILES"

for mod in $(for m in "${!FLOOR[@]}"; do echo "${FLOOR[$m]} $m"; done | sort -n | cut -d' ' -f2); do
	[ -d "$SRC/$mod" ] || continue
	if [ -n "${BAD[$mod]:-}" ]; then
		not_ok "$mod/ (floor ${FLOOR[$mod]}) includes only downhill, public headers"
	else
		ok "$mod/ (floor ${FLOOR[$mod]}) includes only downhill, public headers"
	fi
done

# --- README's Layout table ("| 8 | `cli/` | ...") gives the same floors to
# the modules of the tree
readme=$(sed -n '/^## Layout/,/^## [^L]/p' "$SRC/README.md" 2>/dev/null |
	sed -n 's/^| *\([0-9][0-9]*\) *| *`\([a-z]*\)\/` *|.*/\2 \1/p' | sort)
want=$(for m in "${!FLOOR[@]}"; do
	[ "$m" != bench ] && [ -d "$SRC/$m" ] && echo "$m ${FLOOR[$m]}"; done | sort)
if [ "$readme" = "$want" ]; then
	ok "README's Layout table gives the floors of tests/floors"
else
	comm -23 <(echo "$want") <(echo "$readme") | sed '/^$/d; s/^/README.md: the Layout table lacks /'
	comm -13 <(echo "$want") <(echo "$readme") | sed '/^$/d; s/^/README.md: the Layout table has, tests\/floors has not: /'
	not_ok "README's Layout table gives the floors of tests/floors"
fi

echo "1..$N"
[ "$FAILED" -eq 0 ]
