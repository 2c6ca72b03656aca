# builder/images.mk - packing/unpacking, the unpacked-root cache, workspaces.
libupaas_a_SOURCES += builder/archive.c builder/rootcache.c builder/workspace.c

check_PROGRAMS += tests/unit/test-archive
tests_unit_test_archive_SOURCES = tests/unit/test-archive.c
tests_unit_test_archive_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_archive_LDADD = $(UNIT_LIBS)
TESTS += tests/unit/test-archive
