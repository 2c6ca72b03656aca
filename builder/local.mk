# builder/: fragments per part (sandbox, archive/rootcache/workspace, build).
libupaas_a_SOURCES += builder/builder.h
include builder/sandbox.mk
include builder/images.mk
include builder/build.mk
