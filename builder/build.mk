# builder/build.mk - the build pipeline (build.c, git.c) and stored packages
# (manifest.c, packages.c); the CLI commands build and package.
libupaas_a_SOURCES += builder/build.c builder/build-int.h builder/git.c \
	builder/manifest.c builder/packages.c
upaas_SOURCES += cli/cmd-build.c cli/cmd-package.c

check_PROGRAMS += tests/unit/test-manifest
tests_unit_test_manifest_SOURCES = tests/unit/test-manifest.c
tests_unit_test_manifest_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_manifest_LDADD = $(UNIT_LIBS)
TESTS += tests/unit/test-manifest

TESTS += tests/integration/build.sh tests/integration/build-faults.sh
EXTRA_DIST += tests/integration/build.sh tests/integration/build-faults.sh \
	bench/build.sh docs/cmd/build.man docs/cmd/package.man \
	examples/python-flask/.upaas.cfg examples/python-flask/app.py \
	examples/python-flask/selftest.py \
	examples/node-app/.upaas.cfg examples/node-app/package.json \
	examples/node-app/package-lock.json examples/node-app/index.js
