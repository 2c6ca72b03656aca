# images/: base OS images (mmdebstrap/debootstrap), host mirror detection, image run.
libupaas_a_SOURCES += images/images.h images/images.c images/mirror.c images/mirror.h \
	images/run.c
upaas_SOURCES += cli/cmd-image.c

check_PROGRAMS += tests/unit/test-mirror
tests_unit_test_mirror_SOURCES = tests/unit/test-mirror.c
tests_unit_test_mirror_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_mirror_LDADD = $(UNIT_LIBS)
TESTS += tests/unit/test-mirror

TESTS += tests/integration/image.sh tests/integration/image-crash.sh
EXTRA_DIST += tests/integration/image.sh tests/integration/image-crash.sh
