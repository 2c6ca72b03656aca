libupaas_a_SOURCES += common/common.h common/alloc.c common/buf.c common/strv.c \
	common/err.c common/log.c common/progress.c common/time.c common/testhook.c common/hash.c \
	common/proc.c common/fs.c common/saferm.c common/lock.c common/json.c \
	common/url.c common/askpass.c common/term.c common/crash.c

check_PROGRAMS += tests/unit/test-common
tests_unit_test_common_SOURCES = tests/unit/test-common.c
tests_unit_test_common_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_common_LDADD = $(UNIT_LIBS)
TESTS += tests/unit/test-common

# Safe removal: its unit test, and a helper the integration test drives.
check_PROGRAMS += tests/unit/test-saferm tests/unit/rmrf-helper
tests_unit_test_saferm_SOURCES = tests/unit/test-saferm.c
tests_unit_test_saferm_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_saferm_LDADD = $(UNIT_LIBS)
tests_unit_rmrf_helper_SOURCES = tests/unit/rmrf-helper.c
tests_unit_rmrf_helper_LDADD = $(UPAAS_LIBS)
TESTS += tests/unit/test-saferm tests/integration/saferm.sh
EXTRA_DIST += tests/integration/saferm.sh

check_PROGRAMS += tests/unit/test-url
tests_unit_test_url_SOURCES = tests/unit/test-url.c
tests_unit_test_url_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_url_LDADD = $(UNIT_LIBS)
TESTS += tests/unit/test-url
