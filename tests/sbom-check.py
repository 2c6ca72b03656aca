#!/usr/bin/python3
# tests/sbom-check.py cyclonedx|spdx FILE [SCHEMA_DIR] - checks an SBOM that
# upaas printed. CycloneDX: against the official CycloneDX 1.5 JSON schema
# (tests/schemas.sh fetches it) with python3-jsonschema, formats included.
# SPDX: no SPDX JSON schema is packaged where this suite can fetch one, so
# the document is checked against the SPDX 2.3 rules it must meet: the
# required fields, SPDX identifiers, relationships that resolve, purls.
# Exits 0 when the document is valid, 1 with the reasons otherwise.
import json, os, re, sys

kind, path = sys.argv[1], sys.argv[2]
doc = json.load(open(path))
errors = []

if kind == "cyclonedx":
    import jsonschema
    d = sys.argv[3]
    load = lambda n: json.load(open(os.path.join(d, n)))
    bom = load("bom-1.5.SNAPSHOT.schema.json")
    base = "http://cyclonedx.org/schema/"
    store = {base + "spdx.SNAPSHOT.schema.json": load("spdx.SNAPSHOT.schema.json"),
             base + "jsf-0.82.SNAPSHOT.schema.json": load("jsf-0.82.SNAPSHOT.schema.json")}
    resolver = jsonschema.RefResolver.from_schema(bom, store=store)
    v = jsonschema.Draft7Validator(bom, resolver=resolver,
                                   format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)
    for e in sorted(v.iter_errors(doc), key=lambda e: list(e.path)):
        errors.append("%s: %s" % ("/".join(map(str, e.path)), e.message))
    refs = [c.get("bom-ref") for c in doc.get("components", [])]
    if len(refs) != len(set(refs)):
        errors.append("bom-refs are not unique")
elif kind == "spdx":
    def need(o, fields, where):
        for f in fields:
            if f not in o:
                errors.append("%s lacks %s" % (where, f))
    need(doc, ["spdxVersion", "dataLicense", "SPDXID", "name", "documentNamespace",
               "creationInfo"], "document")
    if doc.get("spdxVersion") != "SPDX-2.3": errors.append("spdxVersion is not SPDX-2.3")
    if doc.get("dataLicense") != "CC0-1.0": errors.append("dataLicense is not CC0-1.0")
    if doc.get("SPDXID") != "SPDXRef-DOCUMENT": errors.append("document SPDXID")
    if not re.match(r"^[a-z][a-z0-9+.-]*://", doc.get("documentNamespace", "")):
        errors.append("documentNamespace is not an absolute URI")
    ci = doc.get("creationInfo", {})
    need(ci, ["created", "creators"], "creationInfo")
    if not re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", ci.get("created", "")):
        errors.append("creationInfo.created is not UTC ISO 8601")
    for c in ci.get("creators", []):
        if not re.match(r"^(Tool|Person|Organization): .+", c):
            errors.append("bad creator %r" % c)
    ids = {"SPDXRef-DOCUMENT"}
    for p in doc.get("packages", []):
        need(p, ["name", "SPDXID", "downloadLocation"], "package %r" % p.get("name"))
        if not re.match(r"^SPDXRef-[A-Za-z0-9.-]+$", p.get("SPDXID", "")):
            errors.append("bad SPDXID %r" % p.get("SPDXID"))
        if p.get("SPDXID") in ids: errors.append("duplicate SPDXID %r" % p.get("SPDXID"))
        ids.add(p.get("SPDXID"))
        for r in p.get("externalRefs", []):
            need(r, ["referenceCategory", "referenceType", "referenceLocator"], "externalRef")
            if r.get("referenceType") == "purl" and not re.match(r"^pkg:[a-z]+/\S+@\S+$",
                                                                r.get("referenceLocator", "")):
                errors.append("bad purl %r" % r.get("referenceLocator"))
    rel_types = {"DESCRIBES", "CONTAINS", "DEPENDS_ON"}
    for r in doc.get("relationships", []):
        need(r, ["spdxElementId", "relationshipType", "relatedSpdxElement"], "relationship")
        if r.get("relationshipType") not in rel_types: errors.append("relationship type")
        for k in ("spdxElementId", "relatedSpdxElement"):
            if r.get(k) not in ids: errors.append("relationship to unknown %r" % r.get(k))
    if not any(r.get("relationshipType") == "DESCRIBES" for r in doc.get("relationships", [])):
        errors.append("nothing DESCRIBES")
else:
    sys.exit("usage: sbom-check.py cyclonedx|spdx FILE [SCHEMA_DIR]")

for e in errors[:20]:
    print("invalid:", e)
sys.exit(1 if errors else 0)
