/*
 * archive/archive.h - pack a tree or an overlay upper dir into a
 * zstd-compressed pax tar (archive/archive.c), and unpack one safely, as a
 * tree or a layer (archive/extract.c). libarchive does the tar format.
 */
#ifndef UPAAS_ARCHIVE_H
#define UPAAS_ARCHIVE_H

#include "common/common.h"

/*
 * The names a layer gives to deletions (upaas-package(5), as in OCI image
 * layers): ".wh.<name>" deletes <name> from the layers below, and
 * ".wh..wh..opq" makes its directory hide what the layers below have in it.
 */
#define WHITEOUT_PREFIX ".wh."
#define WHITEOUT_OPAQUE ".wh..wh..opq"

/*
 * Packs the tree at root into a zstd-compressed pax tar, streamed to sink,
 * computing the sha256 of the compressed stream on the way (one pass).
 * Entries are depth first, the names of a directory in byte order; mtimes
 * above mtime_clamp are clamped to it (mtime_clamp < 0: no clamping); no
 * atime or ctime; owners by number only (shifted back by the offsets).
 * Ownership, modes, xattrs (file capabilities), hard links and device nodes
 * are kept; sockets are not.
 * exclude: patterns relative to root, such as "proc", "dev/" "*" or
 * "var/lib/apt/lists/" "*": "dir" excludes dir and everything below;
 * "dir/" followed by "*" keeps dir itself and excludes its contents.
 * With layer set, the tree is a full layer: a name starting with ".wh."
 * (reserved for whiteouts) fails with -EINVAL.
 */
struct pack_opts {
	int level;               /* zstd level */
	int threads;             /* 0: number of cores */
	int64_t mtime_clamp;     /* SOURCE_DATE_EPOCH, -1: none */
	const char *const *exclude;  /* NULL-terminated, may be NULL */
	struct progress *progress;   /* may be NULL */
	bool layer;              /* a full layer (see above) */
	/* A tree owned by the sandbox's range (a build's root): the archive
	 * holds the ids inside, host id - offset; an owner outside
	 * [offset, offset + ARCHIVE_ID_RANGE) is an error naming the file,
	 * and file capabilities for the sandbox's namespace become the host's
	 * root's again. 0: ids as they are. */
	uint32_t uid_offset;
	uint32_t gid_offset;
};

/* How many ids a shifted tree holds (the sandbox's range: 0..65535). */
#define ARCHIVE_ID_RANGE 65536u
struct pack_result {
	char sha256[65];
	uint64_t size;           /* compressed bytes */
	uint64_t entries;
	uint64_t whiteouts;      /* pack_layer: whiteouts and opaque markers */
	uint64_t unchanged;      /* pack_layer: copied-up entries left out */
};
int pack_tree(const char *root, const struct pack_opts *o, sink_fn sink, void *data,
	      struct pack_result *ret, struct err *e);

/*
 * Packs an overlayfs upper dir (unmounted) into a delta layer, as
 * pack_tree() does a tree, in the format of upaas-package(5): an overlay
 * whiteout (a 0:0 character device, or a file with the xattr
 * trusted.overlay.whiteout) becomes ".wh.<name>" when lower has <name>; a
 * directory with trusted.overlay.opaque=y is followed by ".wh..wh..opq";
 * overlayfs's own xattrs (trusted.overlay.*, user.overlay.*) are never
 * packed. lower is the merged view of the layers below (a directory; NULL:
 * nothing below). What a copy-up left unchanged is left out: an entry equal
 * to lower's in type, mode, owner, xattrs and size and data (or link target,
 * or device number; mtimes are not compared; the file is read only when
 * the sizes match); a directory equal to lower's is written only as the
 * parent of something that is. An upper dir made with redirect_dir or
 * metacopy fails with -EOPNOTSUPP: its entries would need lower to mean
 * anything.
 */
int pack_layer(const char *upper, const char *lower, const struct pack_opts *o, sink_fn sink,
	       void *data, struct pack_result *ret, struct err *e);

/*
 * How unpack_fd() treats the names of upaas-package(5):
 *  - UNPACK_PLAIN: every entry as it is (a first-edition package, an image,
 *    a full layer); dest must be empty or missing;
 *  - UNPACK_UPPER: a layer into an empty or missing dest in overlayfs's
 *    upper format, for stacking with overlayfs: ".wh.<name>" becomes a 0:0
 *    character device <name>, ".wh..wh..opq" the xattr
 *    trusted.overlay.opaque=y of its directory;
 *  - UNPACK_APPLY: a layer onto dest, the tree of the layers below it:
 *    ".wh.<name>" deletes <name> (and what is below it), ".wh..wh..opq"
 *    empties its directory of what the layers below put there, an entry
 *    replaces whatever dest has at its name (a directory over a directory
 *    keeps the contents). A hard link must name an earlier entry of the
 *    same layer; a whiteout of an entry of the same layer is an error.
 */
enum unpack_mode { UNPACK_PLAIN, UNPACK_UPPER, UNPACK_APPLY };

/*
 * What an extraction keeps of a tree from outside (deploy): unless
 * privileged, setuid and setgid bits are cleared, device nodes (character,
 * block) are not created, and the trusted.* and security.* xattrs are
 * dropped (file capabilities are security.capability) except the names of
 * allow_xattrs (exact, or a prefix ending in '*').
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

struct unpack_opts {
	enum unpack_mode mode;
	const char *name;            /* the archive in messages; NULL: dest */
	const struct unpack_policy *policy;   /* NULL: every entry as it is */
	/* A root for the sandbox (the root cache): every owner is shifted
	 * into the sandbox's range, host id = id + offset (an id of
	 * ARCHIVE_ID_RANGE or more is an error naming the entry), dest itself
	 * then belongs to the offsets (root inside), and file capabilities of
	 * the host's root become those of root inside. 0: ids as they are. */
	uint32_t uid_offset;
	uint32_t gid_offset;
	/* Verification of the compressed stream while it is read: with sha256
	 * set, reading stops (-EBADMSG) past size bytes, and after the last
	 * entry the stream must have exactly size bytes and this sha256
	 * (-EBADMSG otherwise). dest then holds unverified data: the caller
	 * removes it on failure. */
	const char *sha256;
	uint64_t size;
	struct progress *progress;   /* compressed bytes; may be NULL */
};
struct unpack_result {
	uint64_t entries;
	uint64_t bytes;              /* compressed bytes read */
	struct unpack_dropped dropped;   /* what the policy took out */
};

/*
 * Extracts the tar read from fd (zstd, gzip, xz or plain; ustar, pax or GNU)
 * into dest, as the mode says. Safe against hostile archives: no absolute
 * path, no "..", nothing written through a symlink (each directory is
 * opened with O_NOFOLLOW relative to its parent, each file created with
 * O_EXCL|O_NOFOLLOW), hard links only to files inside dest, removal never
 * through a symlink or into another file system, and overlayfs's own xattrs
 * never set from an archive. Each directory is opened once while the
 * entries below it follow one another (a stack of open directories), not
 * once per entry and path component. Ownership (by number), modes, mtimes,
 * xattrs (file capabilities), hard links, symlinks, devices and FIFOs are
 * restored. Stops with -ECANCELED when proc_cancelled is set. Nothing is
 * synced: the caller syncs what it publishes.
 */
int unpack_fd(int fd, const char *dest, const struct unpack_opts *o, struct unpack_result *ret,
	      struct err *e);

/*
 * unpack_fd() in UNPACK_PLAIN mode of the file archive into dest (created,
 * must not exist or be empty). secure is ignored: extraction is always
 * safe (see unpack_fd).
 */
int unpack_file(const char *archive, const char *dest, bool secure, struct progress *progress,
		struct err *e);
/* The same with the ids shifted (unpack_opts.uid_offset, gid_offset). */
int unpack_file_shifted(const char *archive, const char *dest, uint32_t uid_offset,
			uint32_t gid_offset, struct progress *progress, struct err *e);
/* The same with a policy; ret_dropped (may be NULL) counts what it took. */
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
/* The same with pack_layer(). */
int pack_layer_to_storage(const char *upper, const char *lower, const struct pack_opts *o,
			  struct sink *out, struct pack_result *ret, struct err *e);

/* The compression filters of the libarchive we run with that packages and
 * images use ("zstd"), for `upaas --version`. */
void archive_filter_names(struct strv *out);

#endif
