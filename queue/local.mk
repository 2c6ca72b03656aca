# queue/: the app registry, the build queue (SQLite and PostgreSQL backends
# behind queue/queue-int.h) and the worker.
libupaas_a_SOURCES += queue/queue.h queue/queue-int.h queue/queue.c queue/registry.c \
	queue/sqlite.c queue/pg.c queue/worker.c queue/tokens.c queue/outbox.c queue/json.c
upaas_SOURCES += cli/cmd-queue.c cli/cmd-app.c cli/cmd-worker.c cli/cmd-token.c

check_PROGRAMS += tests/unit/test-queue
tests_unit_test_queue_SOURCES = tests/unit/test-queue.c
tests_unit_test_queue_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_queue_LDADD = $(UNIT_LIBS)
TESTS += tests/unit/test-queue tests/integration/queue.sh
EXTRA_DIST += tests/integration/queue.sh tests/pg.sh bench/queue.sh \
	dist/systemd/upaas-worker.service

# The worker's systemd unit, with ExecStart pointing at the installed
# binary. queueunitdir: the deploy module installs its own units.
queueunitdir = $(systemdsystemunitdir)
queueunit_DATA = queue/upaas-worker.service
MOSTLYCLEANFILES += queue/upaas-worker.service
queue/upaas-worker.service: $(srcdir)/dist/systemd/upaas-worker.service
	$(AM_V_GEN)$(MKDIR_P) queue && \
	sed -e 's|/usr/bin/upaas|$(bindir)/upaas|g' $(srcdir)/dist/systemd/upaas-worker.service >$@
