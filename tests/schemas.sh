#!/bin/bash
# tests/schemas.sh - prints the directory holding the official CycloneDX
# JSON schemas the SBOM test validates against (bom-1.5, and the spdx and
# jsf schemas it refers to), fetching them once with npm.
#
# They come from the CycloneDX project's own npm package
# @cyclonedx/cyclonedx-library (res/schema/, copies of the specification's
# schemas for offline use; see that directory's README.md for the few
# documented changes of its copies). No Debian package ships them, and none
# ships SPDX's JSON schema: the SPDX output is checked field by field.
# They are kept out of the tree, in a cache: UPAAS_TEST_SCHEMAS (default
# /var/cache/upaas-tests/schemas).
set -euo pipefail
version=10.3.0
dir=${UPAAS_TEST_SCHEMAS:-/var/cache/upaas-tests/schemas}/cyclonedx-library-$version
files=(bom-1.5.SNAPSHOT.schema.json spdx.SNAPSHOT.schema.json jsf-0.82.SNAPSHOT.schema.json)
have() { for f in "${files[@]}"; do [ -s "$dir/$f" ] || return 1; done; }
if ! have; then
	command -v npm >/dev/null || {
		echo "schemas.sh: npm is needed once to fetch the CycloneDX schemas" >&2
		exit 1
	}
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	# npm checks the tarball against the registry's integrity hash
	(cd "$tmp" && npm pack --silent "@cyclonedx/cyclonedx-library@$version" >/dev/null)
	tar -xzf "$tmp"/cyclonedx-cyclonedx-library-$version.tgz -C "$tmp" \
		"${files[@]/#/package/res/schema/}" package/res/schema/README.md
	mkdir -p "$dir"
	for f in "${files[@]}" README.md; do cp "$tmp/package/res/schema/$f" "$dir/$f"; done
	have
fi
echo "$dir"
