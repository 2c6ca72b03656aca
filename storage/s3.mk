# storage/s3.mk: S3 handler (storage/s3.c, storage/sigv4.c)
libupaas_a_SOURCES += storage/s3.c storage/sigv4.c storage/sigv4.h

check_PROGRAMS += tests/unit/test-sigv4
tests_unit_test_sigv4_SOURCES = tests/unit/test-sigv4.c
tests_unit_test_sigv4_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_sigv4_LDADD = $(UNIT_LIBS)
TESTS += tests/unit/test-sigv4

check_PROGRAMS += tests/unit/test-s3
tests_unit_test_s3_SOURCES = tests/unit/test-s3.c
tests_unit_test_s3_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_s3_LDADD = $(UNIT_LIBS)
TESTS += tests/unit/test-s3

TESTS += tests/integration/s3.sh tests/integration/s3-faults.sh
EXTRA_DIST += tests/integration/s3.sh tests/integration/s3-faults.sh \
	tests/radosgw.sh bench/s3.sh
