libupaas_a_SOURCES += common/common.h common/alloc.c common/buf.c common/strv.c \
	common/err.c common/log.c common/progress.c common/time.c common/hash.c \
	common/proc.c common/fs.c common/saferm.c common/lock.c

check_PROGRAMS += tests/unit/test-common
tests_unit_test_common_SOURCES = tests/unit/test-common.c
tests_unit_test_common_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_common_LDADD = $(UNIT_LIBS)
TESTS += tests/unit/test-common
