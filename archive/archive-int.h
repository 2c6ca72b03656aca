/*
 * archive/archive-int.h - shared by the files of archive/ only.
 */
#ifndef UPAAS_ARCHIVE_INT_H
#define UPAAS_ARCHIVE_INT_H

#ifndef UPAAS_ARCHIVE_H
#error "include archive/archive.h first"
#endif

/* The size of a v3 file capability (security.capability with a root id). */
#define CAP_V3_SIZE 24

/* A file capability of an unshifted tree made one of a tree shifted by
 * offset (v2 -> v3 with root id offset; v3 r -> offset + r). Returns the
 * new length (0: leave the value alone), or -EINVAL for a v3 root id that
 * does not shift. v has room for CAP_V3_SIZE bytes. */
int archive_cap_shift(unsigned char *v, size_t len, uint32_t offset);

#endif
