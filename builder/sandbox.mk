# builder/sandbox.mk - the sandbox, and the tests of it and of safe removal
# (common/saferm.c is listed in common/local.mk).
libupaas_a_SOURCES += builder/sandbox.c

check_PROGRAMS += tests/unit/test-saferm
tests_unit_test_saferm_SOURCES = tests/unit/test-saferm.c
tests_unit_test_saferm_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_saferm_LDADD = $(UNIT_LIBS)
TESTS += tests/unit/test-saferm

# Helpers the integration tests drive (built by make check, not tests).
check_PROGRAMS += tests/unit/rmrf-helper tests/unit/sandbox-helper
tests_unit_rmrf_helper_SOURCES = tests/unit/rmrf-helper.c
tests_unit_rmrf_helper_LDADD = $(UPAAS_LIBS)
tests_unit_sandbox_helper_SOURCES = tests/unit/sandbox-helper.c
tests_unit_sandbox_helper_LDADD = $(UPAAS_LIBS)

TESTS += tests/integration/saferm.sh tests/integration/sandbox.sh
EXTRA_DIST += tests/integration/saferm.sh tests/integration/sandbox.sh
