# rootfs/: the cache of read-only roots and layers, overlay workspaces.
libupaas_a_SOURCES += rootfs/rootfs.h rootfs/rootcache.c rootfs/workspace.c
