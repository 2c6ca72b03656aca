# tests/: shared test helpers. Modules add their tests in their local.mk:
#   check_PROGRAMS += tests/unit/test-NAME
#   tests_unit_test_NAME_SOURCES = tests/unit/test-NAME.c
#   tests_unit_test_NAME_CFLAGS = $(UNIT_CFLAGS)
#   tests_unit_test_NAME_LDADD = $(UNIT_LIBS)
#   TESTS += tests/unit/test-NAME tests/integration/NAME.sh
EXTRA_DIST += tests/lib.sh tests/summary.sh tests/run-all.sh tests/unit/unit.h bench/lib.sh

# Cross-module integration tests.
TESTS += tests/integration/build-node.sh tests/integration/deb.sh tests/integration/repro.sh \
	tests/integration/crash.sh
EXTRA_DIST += tests/integration/build-node.sh tests/integration/deb.sh \
	tests/integration/repro.sh tests/integration/crash.sh

# Every #include runs downhill (the floors in tests/floors, as in README).
TESTS += tests/layering.sh
EXTRA_DIST += tests/layering.sh tests/floors

# Signed packages and secrets, across builder, deploy and storage.
TESTS += tests/integration/sign.sh
EXTRA_DIST += tests/integration/sign.sh
TESTS += tests/integration/secrets.sh
EXTRA_DIST += tests/integration/secrets.sh tests/auth-http.py
