# cli/: the upaas binary: the parser, dispatcher and completion (cli.c)
# and the top-level table (main.c). Command groups add their cli/cmd-*.c in
# their module's local.mk (upaas_SOURCES += cli/cmd-NAME.c); main.c links
# every one of them.
upaas_SOURCES += cli/main.c cli/cli.c cli/cli.h

# bash completion: asks `upaas __complete`; bashcompletiondir comes from
# configure (bash-completion's completionsdir, else DATADIR/...).
bashcompletion_DATA = dist/bash-completion/upaas
EXTRA_DIST += dist/bash-completion/upaas

TESTS += tests/integration/cli.sh
EXTRA_DIST += tests/integration/cli.sh
