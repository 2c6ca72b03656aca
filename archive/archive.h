/*
 * archive/archive.h - pack a tree into a zstd-compressed pax tar, and
 * unpack one safely (libarchive; archive/archive.c).
 */
#ifndef UPAAS_ARCHIVE_H
#define UPAAS_ARCHIVE_H

#include "common/common.h"

/*
 * Packs the tree at root into a zstd-compressed pax tar, streamed to sink,
 * computing the sha256 of the compressed stream on the way (one pass).
 * Entries are sorted by path; mtimes above mtime_clamp are clamped to it
 * (mtime_clamp < 0: no clamping); no atime. Ownership (numeric, shifted
 * back by the offsets), modes, xattrs (file capabilities), hard links and
 * device nodes are kept.
 * exclude: patterns relative to root, such as "proc", "dev/" "*" or
 * "var/lib/apt/lists/" "*": "dir" excludes dir and everything below;
 * "dir/" followed by "*" keeps dir itself and excludes its contents.
 */
struct pack_opts {
	int level;               /* zstd level */
	int threads;             /* 0: number of cores */
	int64_t mtime_clamp;     /* SOURCE_DATE_EPOCH, -1: none */
	const char *const *exclude;  /* NULL-terminated, may be NULL */
	struct progress *progress;   /* may be NULL */
	/* A tree owned by the sandbox's range (a build's root): the archive
	 * holds the ids inside, host id - offset; an owner outside
	 * [offset, offset + ARCHIVE_ID_RANGE) is an error naming the file.
	 * 0: ids as they are. See struct archive_ids. */
	uint32_t uid_offset;
	uint32_t gid_offset;
};

/* How many ids a shifted tree holds (the sandbox's range: 0..65535). */
#define ARCHIVE_ID_RANGE 65536u
struct pack_result {
	char sha256[65];
	uint64_t size;           /* compressed bytes */
	uint64_t entries;
};
int pack_tree(const char *root, const struct pack_opts *o, sink_fn sink, void *data,
	      struct pack_result *ret, struct err *e);

/*
 * Extracts a zstd/gzip/plain tar file into dest (created, must not exist or
 * be empty). With secure=true refuses "..", absolute paths and writes through
 * symlinks (libarchive's ARCHIVE_EXTRACT_SECURE_*), as deploy needs.
 * Ownership, modes, xattrs and device nodes are restored; ownership by
 * number, never by the host's user names.
 */
int unpack_file(const char *archive, const char *dest, bool secure, struct progress *progress,
		struct err *e);

/*
 * unpack_file() (secure) of a root for the sandbox (the root cache): every
 * owner is shifted into the sandbox's range, host id = id + offset, applied
 * as lchown does (never through a symlink); an id of ARCHIVE_ID_RANGE or
 * more is an error naming the entry. dest itself then belongs to the
 * offsets (root inside). File capabilities follow: one of the host's root
 * becomes one of root inside (a v3 xattr whose root id is the offset).
 * pack_tree() with the same offsets gives the ids back.
 */
int unpack_file_shifted(const char *archive, const char *dest, uint32_t uid_offset,
			uint32_t gid_offset, struct progress *progress, struct err *e);

/*
 * unpack_file() for trees from outside (deploy): unless pol->privileged,
 * setuid and setgid bits are cleared, device nodes (character, block) are
 * not created, and the trusted.* and security.* xattrs are dropped (file
 * capabilities are security.capability) except the names of
 * pol->allow_xattrs (exact, or a prefix ending in '*'). ret_dropped (may be
 * NULL) counts what was dropped.
 */
struct unpack_policy {
	bool privileged;                  /* keep everything */
	const struct strv *allow_xattrs;  /* may be NULL */
};
struct unpack_dropped {
	uint64_t setid;                   /* entries that lost setuid/setgid */
	uint64_t caps;                    /* file capabilities dropped */
	uint64_t xattrs;                  /* other trusted.* / security.* dropped */
	uint64_t devices;                 /* device nodes not created */
};
int unpack_file_policy(const char *archive, const char *dest, bool secure,
		       const struct unpack_policy *pol, struct progress *progress,
		       struct unpack_dropped *ret_dropped, struct err *e);

/*
 * Packs root into out (a storage upload from storage_upload_sink(), or any
 * struct sink): pack_tree() with a progress line on a terminal, stopped by
 * proc_cancelled (-ECANCELED, with no message recorded unless the sink
 * recorded one: the caller says what interrupted it), then out->commit().
 * On any failure out is aborted, so nothing is left under its name. Either
 * way out is used up.
 */
int pack_to_storage(const char *root, const struct pack_opts *o, struct sink *out,
		    struct pack_result *ret, struct err *e);

/* The compression filters of the libarchive we run with that packages and
 * images use ("zstd"), for `upaas --version`. */
void archive_filter_names(struct strv *out);

#endif
