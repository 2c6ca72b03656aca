# sandbox/: run one command contained; the one privilege drop.
libupaas_a_SOURCES += sandbox/sandbox.h sandbox/sandbox-int.h sandbox/sandbox.c \
	sandbox/ids.c sandbox/seccomp.c sandbox/cgroup.c sandbox/net.c

# A helper the integration test drives (built by make check, not a test).
check_PROGRAMS += tests/unit/sandbox-helper
tests_unit_sandbox_helper_SOURCES = tests/unit/sandbox-helper.c
tests_unit_sandbox_helper_LDADD = $(UPAAS_LIBS)

TESTS += tests/integration/sandbox.sh tests/integration/hostile.sh
EXTRA_DIST += tests/integration/sandbox.sh tests/integration/hostile.sh bench/pair.sh

check_PROGRAMS += tests/unit/test-sandbox
tests_unit_test_sandbox_SOURCES = tests/unit/test-sandbox.c
tests_unit_test_sandbox_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_sandbox_LDADD = $(UNIT_LIBS)
TESTS += tests/unit/test-sandbox
