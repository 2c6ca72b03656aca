# package/: the package manifest (writer and reader) and stored packages;
# the CLI command package.
libupaas_a_SOURCES += package/package.h package/manifest.c package/packages.c \
	package/layers.c package/sign.c package/sbom.c package/index.c
upaas_SOURCES += cli/cmd-package.c cli/cmd-key.c

check_PROGRAMS += tests/unit/test-manifest
tests_unit_test_manifest_SOURCES = tests/unit/test-manifest.c
tests_unit_test_manifest_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_manifest_LDADD = $(UNIT_LIBS)
TESTS += tests/unit/test-manifest
EXTRA_DIST += docs/cmd/package.man docs/cmd/key.man

check_PROGRAMS += tests/unit/test-sign
tests_unit_test_sign_SOURCES = tests/unit/test-sign.c
tests_unit_test_sign_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_sign_LDADD = $(UNIT_LIBS)
TESTS += tests/unit/test-sign

check_PROGRAMS += tests/unit/test-index
tests_unit_test_index_SOURCES = tests/unit/test-index.c
tests_unit_test_index_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_index_LDADD = $(UNIT_LIBS)
TESTS += tests/unit/test-index
TESTS += tests/integration/key.sh
EXTRA_DIST += tests/integration/key.sh

check_PROGRAMS += tests/unit/test-sbom tests/unit/sbom-helper
tests_unit_test_sbom_SOURCES = tests/unit/test-sbom.c
tests_unit_test_sbom_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_sbom_LDADD = $(UNIT_LIBS)
tests_unit_sbom_helper_SOURCES = tests/unit/sbom-helper.c
tests_unit_sbom_helper_LDADD = $(UPAAS_LIBS)
TESTS += tests/unit/test-sbom tests/integration/sbom.sh
EXTRA_DIST += tests/integration/sbom.sh tests/schemas.sh tests/sbom-check.py
dist_man_MANS += docs/upaas-package.5

# Layered packages end to end (deploy, get, missing layers, prune vs build).
TESTS += tests/integration/layers.sh
EXTRA_DIST += tests/integration/layers.sh
