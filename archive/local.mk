# archive/: pack a tree (zstd pax tar), unpack one safely (libarchive).
libupaas_a_SOURCES += archive/archive.h archive/archive-int.h archive/archive.c \
	archive/extract.c

check_PROGRAMS += tests/unit/test-archive
tests_unit_test_archive_SOURCES = tests/unit/test-archive.c
tests_unit_test_archive_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_archive_LDADD = $(UNIT_LIBS)
TESTS += tests/unit/test-archive

# bench/pack.sh's driver: built with the tests, so it follows the API.
check_PROGRAMS += bench/pack-driver
bench_pack_driver_SOURCES = bench/pack-driver.c
bench_pack_driver_LDADD = $(UPAAS_LIBS)
EXTRA_DIST += bench/pack.sh

check_PROGRAMS += tests/unit/test-layer
tests_unit_test_layer_SOURCES = tests/unit/test-layer.c
tests_unit_test_layer_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_layer_LDADD = $(UNIT_LIBS)
TESTS += tests/unit/test-layer
