# actions/: the ordered build steps (the step runner build.c calls).
libupaas_a_SOURCES += actions/actions.h actions/steps.c

check_PROGRAMS += tests/unit/test-actions
tests_unit_test_actions_SOURCES = tests/unit/test-actions.c
tests_unit_test_actions_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_actions_LDADD = $(UNIT_LIBS)
TESTS += tests/unit/test-actions
