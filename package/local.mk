# package/: the package manifest (writer and reader) and stored packages;
# the CLI command package.
libupaas_a_SOURCES += package/package.h package/manifest.c package/packages.c package/layers.c
upaas_SOURCES += cli/cmd-package.c

check_PROGRAMS += tests/unit/test-manifest
tests_unit_test_manifest_SOURCES = tests/unit/test-manifest.c
tests_unit_test_manifest_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_manifest_LDADD = $(UNIT_LIBS)
TESTS += tests/unit/test-manifest
EXTRA_DIST += docs/cmd/package.man
dist_man_MANS += docs/upaas-package.5

# Layered packages end to end (deploy, get, missing layers, prune vs build).
TESTS += tests/integration/layers.sh
EXTRA_DIST += tests/integration/layers.sh
