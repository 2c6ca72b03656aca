# serve/: `upaas serve` (libmicrohttpd): the HTTP API, git webhooks, the
# web dashboard (serve/web/, installed into $(pkgdatadir)/web) and the
# delivery of notifications.
libupaas_a_SOURCES += serve/serve.h serve/serve-int.h serve/server.c serve/api.c \
	serve/hooks.c serve/static.c serve/notify.c serve/json.c
upaas_SOURCES += cli/cmd-serve.c

webdir = $(pkgdatadir)/web
dist_web_DATA = serve/web/index.html serve/web/app.js serve/web/app.css \
	serve/web/favicon.svg

check_PROGRAMS += tests/unit/test-serve
tests_unit_test_serve_SOURCES = tests/unit/test-serve.c
tests_unit_test_serve_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_serve_LDADD = $(UNIT_LIBS)
TESTS += tests/unit/test-serve tests/integration/serve.sh
EXTRA_DIST += tests/integration/serve.sh tests/integration/serve-browser.py \
	tests/integration/serve-client.py \
	bench/serve.sh dist/systemd/upaas-serve.service

# The server's systemd unit, with ExecStart pointing at the installed
# binary; systemdsystemunitdir comes from configure.
serveunitdir = $(systemdsystemunitdir)
serveunit_DATA = serve/upaas-serve.service
MOSTLYCLEANFILES += serve/upaas-serve.service
serve/upaas-serve.service: $(srcdir)/dist/systemd/upaas-serve.service
	$(AM_V_GEN)$(MKDIR_P) serve && \
	sed -e 's|/usr/bin/upaas|$(bindir)/upaas|g' $(srcdir)/dist/systemd/upaas-serve.service >$@
