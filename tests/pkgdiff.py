#!/usr/bin/env python3
"""tests/pkgdiff.py - compares two package blobs (zstd pax tars) entry by
entry: type, mode, owner, size, content hash, link target, device numbers
and xattrs (mtimes only with --mtime).

  pkgdiff.py [--ignore PATH]... [--mtime] A.tar.zst B.tar.zst

Prints one line per difference and "compared N entries" on stderr; exits 0
when the trees are the same, 1 when they differ, 2 on error. A PATH given
with --ignore is left out, with everything below it.
"""
import hashlib
import subprocess
import sys
import tarfile

TYPES = {tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.DIRTYPE: "dir",
         tarfile.SYMTYPE: "symlink", tarfile.LNKTYPE: "hardlink", tarfile.CHRTYPE: "char",
         tarfile.BLKTYPE: "block", tarfile.FIFOTYPE: "fifo"}


def entries(path, ignore, mtime):
    out = {}
    z = subprocess.Popen(["zstd", "-dcq", path], stdout=subprocess.PIPE)
    with tarfile.open(fileobj=z.stdout, mode="r|") as t:
        for m in t:
            name = m.name.rstrip("/")
            if any(name == i or name.startswith(i + "/") for i in ignore):
                continue
            h = ""
            if m.isreg():
                f = t.extractfile(m)
                d = hashlib.sha256()
                for blk in iter(lambda: f.read(1 << 20), b""):
                    d.update(blk)
                h = d.hexdigest()
            xattrs = sorted((k.split(".", 2)[2], v) for k, v in m.pax_headers.items()
                            if k.startswith("SCHILY.xattr."))
            rec = {"type": TYPES.get(m.type, repr(m.type)), "mode": oct(m.mode),
                   "owner": "%d:%d" % (m.uid, m.gid), "size": m.size, "sha256": h,
                   "link": m.linkname, "dev": "%d,%d" % (m.devmajor, m.devminor)
                   if m.ischr() or m.isblk() else "", "xattrs": xattrs}
            if mtime:
                rec["mtime"] = m.mtime
            out[name] = rec
    if z.wait() != 0:
        raise SystemExit("pkgdiff: zstd failed on %s" % path)
    return out


def main(argv):
    ignore, mtime, files = [], False, []
    it = iter(argv)
    for a in it:
        if a == "--ignore":
            ignore.append(next(it).strip("/"))
        elif a == "--mtime":
            mtime = True
        else:
            files.append(a)
    if len(files) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    a, b = (entries(f, ignore, mtime) for f in files)
    diffs = 0
    for name in sorted(set(a) | set(b)):
        if name not in b:
            print("only in A: %s (%s)" % (name, a[name]["type"]))
        elif name not in a:
            print("only in B: %s (%s)" % (name, b[name]["type"]))
        elif a[name] != b[name]:
            what = ["%s %s != %s" % (k, a[name][k], b[name][k])
                    for k in a[name] if a[name][k] != b[name][k]]
            print("differs: %s: %s" % (name, "; ".join(what)))
        else:
            continue
        diffs += 1
    print("compared %d entries, %d differ" % (len(set(a) | set(b)), diffs), file=sys.stderr)
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
