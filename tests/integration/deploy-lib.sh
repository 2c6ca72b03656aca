# tests/integration/deploy-lib.sh - helpers of the deploy tests, sourced
# after tests/lib.sh.
#
#   d_app NAME            a unique app name (storage is shared by the run)
#   hand_package APP ID TREE [JSON]
#                         a package made by hand: tar --zstd of TREE plus a
#                         manifest (JSON is merged into it), in local storage
#   hand_blob APP ID FILE [JSON]   the same from an archive file
#   set_current APP ID    points apps/APP/current at ID (signed, the sequence
#                         one more than the pointer's before)
#   sign_object KEY       signs the stored object KEY with the run's key
#   make_package APP REPO a real package: `upaas build` of the git repo REPO;
#                         prints the id
#   d_cleanup_storage     removes the test's apps from the shared storage
#   hand_layers DIR       three layers written by hand (DIR/0.tar.zst: a
#                         full root; 1, 2: deltas with whiteouts, an opaque
#                         directory, a file turned into a directory and
#                         back, a retargeted symlink, a mode change, a
#                         unicode name)
#   tree_of DIR           one line per entry (type, mode, owner, size,
#                         digest or target, xattrs), to compare trees

D_STORAGE=$UPAAS_TEST_SHARED/storage
D_APPS=()

d_app() {
	local name
	name="$1-$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')"
	D_APPS+=("$name")
	echo "$name"
}

d_cleanup_storage() {
	local a
	for a in "${D_APPS[@]}"; do
		rm -rf "${D_STORAGE:?}/packages/$a" "${D_STORAGE:?}/apps/$a" "${D_STORAGE:?}/logs/$a"
		rm -f "${D_STORAGE:?}"/hosts/*/"$a.json"
	done
}

hand_package() {
	local app=$1 id=$2 tree=$3 extra=${4:-'{}'}
	mkdir -p "$D_STORAGE/packages/$app"
	tar --zstd --numeric-owner -C "$tree" -cf "$D_STORAGE/packages/$app/$id.tar.zst" . &&
	hand_manifest "$app" "$id" "$extra"
}

# A package from an existing (e.g. crafted) archive FILE.
hand_blob() {
	local app=$1 id=$2 file=$3 extra=${4:-'{}'}
	mkdir -p "$D_STORAGE/packages/$app"
	cp "$file" "$D_STORAGE/packages/$app/$id.tar.zst" && hand_manifest "$app" "$id" "$extra"
}

# Writes the manifest of the blob packages/APP/ID.tar.zst.
hand_manifest() {
	local app=$1 id=$2 extra=${3:-'{}'}
	local blob=$D_STORAGE/packages/$app/$id.tar.zst
	python3 - "$blob" "$app" "$id" "$extra" >"$D_STORAGE/packages/$app/$id.json" <<'PY' || return 1
import hashlib, json, os, sys
blob, app, pid, extra = sys.argv[1:]
h = hashlib.sha256()
with open(blob, 'rb') as f:
    for block in iter(lambda: f.read(1 << 20), b''):
        h.update(block)
m = {
    "format": 1, "app": app, "id": pid, "parent": None, "fresh": True,
    "repository": {"url": "test", "ref": "main",
                   "commit": hashlib.sha1(pid.encode()).hexdigest()},
    "blob": {"key": "packages/%s/%s.tar.zst" % (app, pid), "sha256": h.hexdigest(),
             "size": os.path.getsize(blob), "compression": "zstd", "format": "pax"},
    "app_home": "/home/app", "uid": 1000, "gid": 1000,
    "deploy": {"shared": [], "hooks": {"pre": [], "post": []}},
}
def merge(a, b):
    for k, v in b.items():
        if isinstance(v, dict) and isinstance(a.get(k), dict):
            merge(a[k], v)
        else:
            a[k] = v
merge(m, json.loads(extra))
print(json.dumps(m, indent=1))
PY
	sign_object "packages/$app/$id.json"
}

# Signs the stored object KEY (a file below D_STORAGE) with the run's key:
# KEY.sig, as the builder writes it.
sign_object() {
	"$UPAAS" key sign --key "$T_KEY" --output "$D_STORAGE/$1.sig" "$D_STORAGE/$1" >/dev/null
}

set_current() {
	local dir=$D_STORAGE/apps/$1 seq=1 prev=
	mkdir -p "$dir"
	if [ -e "$dir/current" ] && grep -q '^{' "$dir/current"; then
		prev=$(grep -v '^ed25519 ' "$dir/current" | jq -r '.sequence // 0')
		seq=$((prev + 1))
	fi
	printf '{\n  "format": 1,\n  "kind": "current",\n  "app": "%s",\n  "id": "%s",\n  "sequence": %d,\n  "created": "%s"\n}\n' \
		"$1" "$2" "$seq" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$T_ROOT/current.doc" &&
	"$UPAAS" key sign --key "$T_KEY" --output "$T_ROOT/current.sig" "$T_ROOT/current.doc" \
		>/dev/null &&
	cat "$T_ROOT/current.sig" "$T_ROOT/current.doc" >"$dir/current"
}

# The id that apps/APP/current names.
stored_current() { t_current_id "$D_STORAGE/apps/$1/current" 2>/dev/null; }

# A commit in the git repository REPO (created on first use) with the files
# of the directory SRC.
commit_tree() {
	local repo=$1 src=$2 msg=${3:-update}
	if [ ! -d "$repo/.git" ]; then
		git init -q -b main "$repo" || return 1
	fi
	cp -a "$src/." "$repo/" &&
	git -C "$repo" add -A &&
	git -C "$repo" -c user.name=t -c user.email=t@example.org commit -q -m "$msg"
}

make_package() {
	local app=$1 repo=$2
	"$UPAAS" build --app "$app" "$repo" >"$T_ROOT/build.out" 2>&1 || {
		tail -n 40 "$T_ROOT/build.out" >&2
		return 1
	}
	stored_current "$app"
}

# The revision `current` of APP points at (basename), empty when none.
deployed() { basename "$(readlink "$T_ROOT/srv/$1/current" 2>/dev/null)" 2>/dev/null; }

tree_of() {
	python3 - "$1" <<'PY'
import hashlib, os, stat, sys
root = sys.argv[1]
out = []
for d, dirs, files in os.walk(root):
    for n in sorted(dirs + files):
        p = os.path.join(d, n)
        st = os.lstat(p)
        rel = os.path.relpath(p, root)
        extra = ""
        if stat.S_ISREG(st.st_mode):
            extra = hashlib.sha256(open(p, "rb").read()).hexdigest()[:16]
        elif stat.S_ISLNK(st.st_mode):
            extra = "-> " + os.readlink(p)
        try:
            xs = sorted(os.listxattr(p, follow_symlinks=False))
        except OSError:
            xs = []
        size = 0 if stat.S_ISDIR(st.st_mode) else st.st_size
        out.append(f"{rel} {st.st_mode:o} {st.st_uid}:{st.st_gid} {size} {extra} {' '.join(xs)}")
print("\n".join(sorted(out)))
PY
}

# Written by Python's tarfile (pax, sorted as upaas writes them) and zstd.
hand_layers() {
	python3 - "$1" <<'PY' || return 1
import io, os, sys, tarfile
out = sys.argv[1]
def layer(name, entries):
    with tarfile.open(os.path.join(out, name + ".tar"), "w", format=tarfile.PAX_FORMAT) as t:
        for path, kind, data in entries:
            i = tarfile.TarInfo(path)
            i.mtime = 1700000000
            i.uid = i.gid = 1000 if path.startswith("home/app/") else 0
            if kind == "d":
                i.type, i.mode = tarfile.DIRTYPE, 0o755
                t.addfile(i)
            elif kind == "l":
                i.type, i.linkname, i.mode = tarfile.SYMTYPE, data, 0o777
                t.addfile(i)
            else:
                b = data.encode()
                i.size, i.mode = len(b), 0o600 if kind == "x" else 0o644
                t.addfile(i, io.BytesIO(b))
layer("0", [
    ("etc", "d", None), ("etc/keep", "f", "kept\n"), ("etc/gone", "f", "deleted\n"),
    ("etc/mode", "f", "mode only\n"),
    ("home", "d", None), ("home/app", "d", None), ("home/app/app.py", "f", "print(1)\n"),
    ("home/app/f2d", "f", "a file, then a directory\n"),
    ("home/app/old", "d", None), ("home/app/old/x", "f", "hidden by opaque\n"),
    ("home/app/tree", "d", None), ("home/app/tree/deep", "d", None),
    ("home/app/tree/deep/f", "f", "removed with its directory\n"),
    ("link", "l", "etc/keep"),
])
layer("1", [
    ("etc", "d", None), ("etc/.wh.gone", "f", ""), ("etc/mode", "x", "mode only\n"),
    ("home/app", "d", None), ("home/app/.wh.tree", "f", ""),
    ("home/app/app.py", "f", "print(2)\n"),
    ("home/app/f2d", "d", None), ("home/app/f2d/in", "f", "inside\n"),
    ("home/app/old", "d", None), ("home/app/old/.wh..wh..opq", "f", ""),
    ("home/app/old/new", "f", "new\n"),
    ("link", "l", "etc/mode"),
])
layer("2", [
    ("home/app", "d", None), ("home/app/f2d", "f", "a file again\n"),
    ("home/app/\u00e9t\u00e9 \u2603.txt", "f", "unicode\n"),
])
PY
	local i
	for i in 0 1 2; do zstd -q -f --rm "$1/$i.tar" -o "$1/$i.tar.zst" || return 1; done
}
