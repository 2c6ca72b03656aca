# storage module: add sources with +=
libupaas_a_SOURCES += storage/storage.h storage/storage-int.h storage/storage.c \
	storage/local.c storage/http.c
upaas_SOURCES += cli/cmd-storage.c

check_PROGRAMS += tests/unit/test-storage
tests_unit_test_storage_SOURCES = tests/unit/test-storage.c
tests_unit_test_storage_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_storage_LDADD = $(UNIT_LIBS)
TESTS += tests/unit/test-storage tests/integration/storage-local.sh tests/integration/http.sh \
	tests/integration/storage-stall.sh
EXTRA_DIST += tests/integration/storage-local.sh tests/integration/http.sh \
	tests/integration/storage-stall.sh

# The S3 handler lists its own files there.
include storage/s3.mk
