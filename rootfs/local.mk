# rootfs/: the cache of read-only roots and layers, overlay workspaces, the work dir.
libupaas_a_SOURCES += rootfs/rootfs.h rootfs/rootcache.c rootfs/workspace.c rootfs/workdir.c

TESTS += tests/integration/workdir.sh
EXTRA_DIST += tests/integration/workdir.sh
