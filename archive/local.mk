# archive/: pack a tree (zstd pax tar), unpack one safely (libarchive).
libupaas_a_SOURCES += archive/archive.h archive/archive.c

check_PROGRAMS += tests/unit/test-archive
tests_unit_test_archive_SOURCES = tests/unit/test-archive.c
tests_unit_test_archive_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_archive_LDADD = $(UNIT_LIBS)
TESTS += tests/unit/test-archive
EXTRA_DIST += bench/pack.sh
