#!/bin/bash
# examples/demo.sh UPAAS - the main job on the built-in defaults: bootstrap
# (or reuse) the base image, build the example Python app into a package in
# local storage under /var/lib/upaas, show it, deploy it under /srv/upaas and
# run the app's self-test inside the deployed revision.
set -euo pipefail
upaas=${1:?usage: examples/demo.sh PATH-TO-UPAAS}
here=$(cd "$(dirname "$0")" && pwd)

# The app's repository: the example, committed into a git repo of its own.
src=/var/lib/upaas/demo/python-flask
rm -rf "$src"
mkdir -p "$(dirname "$src")"
cp -a "$here/python-flask" "$src"
git -C "$src" init -q -b main
git -C "$src" add -A
git -C "$src" -c user.name=demo -c user.email=demo@localhost commit -qm "demo app"

# No config at all: the first build makes this host's signing key
# (/var/lib/upaas/keys/signing.key) and this host trusts it (signing.pub).
unset UPAAS_CONFIG

echo "== upaas image create"
"$upaas" image create
echo "== upaas build $src"
id=$("$upaas" build "$src")
echo "package: $id"
echo "== upaas package show python-flask $id"
"$upaas" package show python-flask "$id"
echo "== upaas deploy python-flask"
"$upaas" deploy python-flask
echo "== upaas exec python-flask -- python3 /home/app/selftest.py"
"$upaas" exec python-flask -- python3 /home/app/selftest.py
echo "== upaas status python-flask"
"$upaas" status python-flask
echo "== upaas package sbom --format cyclonedx python-flask $id (python3-flask)"
"$upaas" package sbom --format cyclonedx python-flask "$id" | grep -A1 '"name": "python3-flask"' || true
