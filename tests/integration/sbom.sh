#!/bin/bash
# tests/integration/sbom.sh - the bill of materials in its standard formats:
# CycloneDX 1.5 checked against the official JSON schema, SPDX 2.3 checked
# field by field (tests/sbom-check.py), over a tree that holds this host's
# real dpkg status (hundreds of real Debian versions), an npm lockfile and
# a Python dist-info. The package-level test (sign.sh) does the same for a
# real build.
. "$UPAAS_SRCDIR/tests/lib.sh"
HELPER=$UPAAS_BUILDDIR/tests/unit/sbom-helper
CHECK=$UPAAS_SRCDIR/tests/sbom-check.py
SCHEMAS=$("$UPAAS_SRCDIR/tests/schemas.sh") || t_bail "cannot get the CycloneDX schemas"
/usr/bin/python3 -c 'import jsonschema' 2>/dev/null || t_bail "python3-jsonschema is not installed"

R=$T_ROOT/root
mkdir -p "$R/var/lib/dpkg" "$R/srv/web" "$R/usr/lib/python3/dist-packages/Flask-2.2.2.dist-info"
cp /var/lib/dpkg/status "$R/var/lib/dpkg/status"
cat >"$R/srv/web/package-lock.json" <<'JSON'
{ "name": "web", "lockfileVersion": 3, "packages": {
  "": { "name": "web", "version": "1.0.0" },
  "node_modules/express": { "version": "4.18.2" },
  "node_modules/@types/node": { "version": "20.1.0" } } }
JSON
printf 'Metadata-Version: 2.1\nName: Flask\nVersion: 2.2.2\n' \
	>"$R/usr/lib/python3/dist-packages/Flask-2.2.2.dist-info/METADATA"

t_ok "a CycloneDX bill" sh -c '"$1" "$2" cyclonedx >"$3"' - "$HELPER" "$R" "$T_ROOT/cdx.json"
t_ok "validates against the CycloneDX 1.5 schema" /usr/bin/python3 "$CHECK" cyclonedx "$T_ROOT/cdx.json" "$SCHEMAS"
n_deb=$(grep -c '^Status: .* installed$' /var/lib/dpkg/status)
t_is "lists every installed Debian package of the tree, and the others" \
	"$(jq '.components | length' "$T_ROOT/cdx.json")" "$((n_deb + 3))"
libc=$(dpkg-query -W -f='${Version}' libc6)
t_is "with its version" "$(jq -r '.components[] | select(.name == "libc6") | .version' "$T_ROOT/cdx.json")" "$libc"

t_ok "an SPDX bill" sh -c '"$1" "$2" spdx >"$3"' - "$HELPER" "$R" "$T_ROOT/spdx.json"
t_ok "is valid SPDX 2.3" /usr/bin/python3 "$CHECK" spdx "$T_ROOT/spdx.json"
t_is "with the npm packages as purls" \
	"$(jq -r '.packages[].externalRefs[]?.referenceLocator | select(startswith("pkg:npm"))' "$T_ROOT/spdx.json" | sort | tr '\n' ' ')" \
	"pkg:npm/%40types/node@20.1.0 pkg:npm/express@4.18.2 "

# the checks can fail
jq 'del(.bomFormat)' "$T_ROOT/cdx.json" >"$T_ROOT/bad-cdx.json"
t_fail "a CycloneDX document without bomFormat is invalid" /usr/bin/python3 "$CHECK" cyclonedx "$T_ROOT/bad-cdx.json" "$SCHEMAS"
jq '.components[0].purl = 7' "$T_ROOT/cdx.json" >"$T_ROOT/bad-cdx.json"
t_fail "nor with a number for a purl" /usr/bin/python3 "$CHECK" cyclonedx "$T_ROOT/bad-cdx.json" "$SCHEMAS"
jq '.relationships[0].relatedSpdxElement = "SPDXRef-nowhere"' "$T_ROOT/spdx.json" >"$T_ROOT/bad-spdx.json"
t_fail "an SPDX relationship to nothing is invalid" /usr/bin/python3 "$CHECK" spdx "$T_ROOT/bad-spdx.json"
t_done
