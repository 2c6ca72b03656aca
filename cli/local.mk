# cli/: the upaas binary. Command groups add their cli/cmd-*.c in their
# module's local.mk (upaas_SOURCES += cli/cmd-NAME.c).
upaas_SOURCES += cli/main.c cli/cli.h
