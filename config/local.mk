# config/: the admin config, the app metadata and the merge rules.
libupaas_a_SOURCES += config/config.h config/config-int.h config/names.c \
	config/schema.c config/admin.c config/metadata.c config/plan.c
upaas_SOURCES += cli/cmd-config.c

check_PROGRAMS += tests/unit/test-config tests/unit/test-metadata tests/unit/test-plan
tests_unit_test_config_SOURCES = tests/unit/test-config.c
tests_unit_test_config_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_config_LDADD = $(UNIT_LIBS)
tests_unit_test_metadata_SOURCES = tests/unit/test-metadata.c
tests_unit_test_metadata_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_metadata_LDADD = $(UNIT_LIBS)
tests_unit_test_plan_SOURCES = tests/unit/test-plan.c
tests_unit_test_plan_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_plan_LDADD = $(UNIT_LIBS)
TESTS += tests/unit/test-config tests/unit/test-metadata tests/unit/test-plan \
	tests/integration/config.sh
EXTRA_DIST += tests/integration/config.sh

# The example admin config and app metadata, installed as documentation.
upaasexampledir = $(docdir)/examples
dist_upaasexample_DATA = examples/upaas.cfg examples/upaas-metadata.cfg
