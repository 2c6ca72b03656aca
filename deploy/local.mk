# deploy/: the host side (fetch, verify, extract, hooks, switch, watch, exec).
libupaas_a_SOURCES += deploy/deploy.h deploy/deploy-int.h deploy/paths.c deploy/manifest.c \
	deploy/history.c deploy/hooks.c deploy/cron.c deploy/deploy.c deploy/watch.c \
	deploy/exec.c deploy/report.c deploy/fleet.c deploy/overlay.c
upaas_SOURCES += cli/cmd-deploy.c cli/cmd-fleet.c

check_PROGRAMS += tests/unit/test-deploy
tests_unit_test_deploy_SOURCES = tests/unit/test-deploy.c
tests_unit_test_deploy_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_deploy_LDADD = $(UNIT_LIBS)
check_PROGRAMS += tests/unit/test-fleet
tests_unit_test_fleet_SOURCES = tests/unit/test-fleet.c
tests_unit_test_fleet_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_fleet_LDADD = $(UNIT_LIBS)
TESTS += tests/unit/test-deploy tests/unit/test-fleet tests/integration/deploy.sh \
	tests/integration/deploy-faults.sh tests/integration/fleet-report.sh \
	tests/integration/overlay.sh
EXTRA_DIST += tests/integration/deploy.sh tests/integration/deploy-faults.sh \
	tests/integration/fleet-report.sh tests/integration/overlay.sh \
	tests/integration/deploy-lib.sh bench/deploy.sh \
	docs/cmd/deploy.man docs/cmd/fleet.man dist/systemd/upaas-watch.service dist/systemd/upaas-app@.service \
	dist/systemd/upaas-remount.service

# systemd units: `upaas watch` as a service, and an example unit that runs
# an app with `upaas exec`; ExecStart points at the installed binary.
# systemdsystemunitdir comes from configure (--with-systemdsystemunitdir).
systemdsystemunit_DATA = deploy/upaas-watch.service deploy/upaas-app@.service \
	deploy/upaas-remount.service
deploy/upaas-watch.service: $(srcdir)/dist/systemd/upaas-watch.service
	$(AM_V_GEN)$(MKDIR_P) deploy && \
	sed -e 's|/usr/bin/upaas|$(bindir)/upaas|g' $(srcdir)/dist/systemd/upaas-watch.service >$@
deploy/upaas-remount.service: $(srcdir)/dist/systemd/upaas-remount.service
	$(AM_V_GEN)$(MKDIR_P) deploy && \
	sed -e 's|/usr/bin/upaas|$(bindir)/upaas|g' $(srcdir)/dist/systemd/upaas-remount.service >$@
deploy/upaas-app@.service: $(srcdir)/dist/systemd/upaas-app@.service
	$(AM_V_GEN)$(MKDIR_P) deploy && \
	sed -e 's|/usr/bin/upaas|$(bindir)/upaas|g' $(srcdir)/dist/systemd/upaas-app@.service >$@
MOSTLYCLEANFILES += deploy/upaas-watch.service deploy/upaas-app@.service \
	deploy/upaas-remount.service
