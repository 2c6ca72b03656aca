# docs/: man pages. upaas(1) is assembled from docs/upaas.1.in (head and
# tail around @COMMANDS@) and one roff fragment per command group in
# docs/cmd/*.man, so each module documents its own commands.
man_MANS = docs/upaas.1
UPAAS_MAN_FRAGMENTS = $(sort $(wildcard $(srcdir)/docs/cmd/*.man))
docs/upaas.1: $(srcdir)/docs/upaas.1.in $(UPAAS_MAN_FRAGMENTS)
	$(AM_V_GEN)mkdir -p docs && \
	sed -n '1,/^@COMMANDS@$$/p' $(srcdir)/docs/upaas.1.in | sed '$$d' > $@.tmp && \
	for f in $(UPAAS_MAN_FRAGMENTS); do cat "$$f" >> $@.tmp; done && \
	sed -n '/^@COMMANDS@$$/,$$p' $(srcdir)/docs/upaas.1.in | sed '1d' >> $@.tmp && \
	mv $@.tmp $@
CLEANFILES = docs/upaas.1
EXTRA_DIST += docs/upaas.1.in docs/cmd
all-local: docs/upaas.1
# config/: the admin config and the app metadata formats.
dist_man_MANS += docs/upaas.cfg.5 docs/upaas-metadata.5
