# builder/: one build (build.c, git.c); the CLI command build.
libupaas_a_SOURCES += builder/builder.h builder/build-int.h builder/build.c builder/git.c \
	builder/checkout.c
upaas_SOURCES += cli/cmd-build.c

TESTS += tests/integration/build.sh tests/integration/build-faults.sh \
	tests/integration/incremental.sh tests/integration/git.sh
EXTRA_DIST += tests/integration/build.sh tests/integration/build-faults.sh \
	tests/integration/incremental.sh tests/integration/git.sh tests/pkgdiff.py \
	bench/build.sh docs/cmd/build.man \
	examples/python-flask/.upaas.cfg examples/python-flask/app.py \
	examples/python-flask/selftest.py \
	examples/node-app/.upaas.cfg examples/node-app/package.json \
	examples/node-app/package-lock.json examples/node-app/index.js
