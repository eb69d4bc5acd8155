package imagefile

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"hash/crc32"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"atoll.dev/atoll/manifest"
)

var when = time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)

// writeTree makes files under dir: name → contents; a name ending in "/"
// is a directory. Every mtime is when.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(dir, name)
		if strings.HasSuffix(name, "/") {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type()&fs.ModeSymlink == 0 {
			os.Chtimes(p, when, when)
		}
		return err
	})
}

// TestTreeRoundTrip packs a package's files, maps the image back and
// finds every file byte-identical at a page-aligned offset, with its mode,
// size and time; implicit parents appear as directories; symbolic links
// inside the package are followed; the image still runs as a process.
func TestTreeRoundTrip(t *testing.T) {
	x := exe(t)
	pkg := t.TempDir()
	big := make([]byte, 3*PageSize+17)
	for i := range big {
		big[i] = byte(rand.IntN(256))
	}
	writeTree(t, pkg, map[string]string{
		"conf/app.conf":         "answer = 42\n",
		"static/index.html":     "<h1>hi</h1>\n",
		"static/img/logo.bin":   string(big),
		"static/empty":          "",
		"static/sub/":           "",
		"shared/readme.txt":     "shared\n",
		"static/img/page.bin":   string(big[:PageSize]),
		"static/z-last.txt":     "z",
		"static/img/other.html": "o",
	})
	os.Chmod(filepath.Join(pkg, "conf/app.conf"), 0o640)
	os.Chmod(filepath.Join(pkg, "static/sub"), 0o700)
	os.Chtimes(filepath.Join(pkg, "static/sub"), when, when)
	if err := os.Symlink("../shared/readme.txt", filepath.Join(pkg, "static/readme")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../shared", filepath.Join(pkg, "static/shared")); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(filepath.Join(pkg, "static"), when, when)
	out := filepath.Join(pkg, "app.img")
	srcs, err := Collect(pkg, []manifest.FilesEntry{{Src: "conf/app.conf", Dst: "/etc/app.conf"}, {Src: ".", Dst: "/srv/pkg"}, {Src: "static", Dst: "/srv/www"}}, out)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(out, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	m := manifest.Default("web")
	m.Files = []manifest.FilesEntry{{Src: "conf/app.conf", Dst: "/etc/app.conf"}, {Src: ".", Dst: "/srv/pkg"}, {Src: "static", Dst: "/srv/www"}}
	packed, err := Write(f, x, Embedded{Manifest: m, ABIVersion: "9.9"}, srcs)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}

	im, err := Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	if !bytes.Equal(im.Exe, x) || !reflect.DeepEqual(im.Embedded.Manifest, m) || im.Embedded.ABIVersion != "9.9" {
		t.Fatal("the executable or manifest changed")
	}
	tree := im.Embedded.Tree
	if !reflect.DeepEqual(tree.Entries, packed) {
		t.Fatalf("entries read back differ from those packed:\n%v\n%v", tree.Entries, packed)
	}
	dir, reg := fs.ModeDir|0o755, fs.FileMode(0o644)
	want := map[string]struct {
		mode fs.FileMode
		data string
	}{
		"/etc":                              {dir, ""},
		"/etc/app.conf":                     {0o640, "answer = 42\n"},
		"/srv":                              {dir, ""},
		"/srv/pkg":                          {dir, ""},
		"/srv/pkg/conf":                     {dir, ""},
		"/srv/pkg/conf/app.conf":            {0o640, "answer = 42\n"},
		"/srv/pkg/shared":                   {dir, ""},
		"/srv/pkg/shared/readme.txt":        {reg, "shared\n"},
		"/srv/pkg/static":                   {dir, ""},
		"/srv/pkg/static/empty":             {reg, ""},
		"/srv/pkg/static/img":               {dir, ""},
		"/srv/pkg/static/img/logo.bin":      {reg, string(big)},
		"/srv/pkg/static/img/other.html":    {reg, "o"},
		"/srv/pkg/static/img/page.bin":      {reg, string(big[:PageSize])},
		"/srv/pkg/static/index.html":        {reg, "<h1>hi</h1>\n"},
		"/srv/pkg/static/readme":            {reg, "shared\n"},
		"/srv/pkg/static/shared":            {dir, ""},
		"/srv/pkg/static/shared/readme.txt": {reg, "shared\n"},
		"/srv/pkg/static/sub":               {fs.ModeDir | 0o700, ""},
		"/srv/pkg/static/z-last.txt":        {reg, "z"},
		"/srv/www":                          {dir, ""},
		"/srv/www/empty":                    {reg, ""},
		"/srv/www/img":                      {dir, ""},
		"/srv/www/img/logo.bin":             {reg, string(big)},
		"/srv/www/img/other.html":           {reg, "o"},
		"/srv/www/img/page.bin":             {reg, string(big[:PageSize])},
		"/srv/www/index.html":               {reg, "<h1>hi</h1>\n"},
		"/srv/www/readme":                   {reg, "shared\n"},
		"/srv/www/shared":                   {dir, ""},
		"/srv/www/shared/readme.txt":        {reg, "shared\n"},
		"/srv/www/sub":                      {fs.ModeDir | 0o700, ""},
		"/srv/www/z-last.txt":               {reg, "z"},
	}
	var total int64
	for i, e := range tree.Entries {
		w, ok := want[e.Path]
		if !ok {
			t.Errorf("unexpected entry %s", e.Path)
			continue
		}
		delete(want, e.Path)
		if e.Mode != w.mode || e.Size != int64(len(w.data)) || string(tree.Data(e)) != w.data {
			t.Errorf("%s: mode %v size %d data %.20q, want %v %d %.20q", e.Path, e.Mode, e.Size, tree.Data(e), w.mode, len(w.data), w.data)
		}
		implicit := e.Path == "/etc" || e.Path == "/srv"
		if implicit && !e.ModTime.Equal(time.Unix(0, 0)) || !implicit && !e.ModTime.Equal(when) {
			t.Errorf("%s: time %v", e.Path, e.ModTime)
		}
		if d := tree.Data(e); len(d) > 0 {
			if tree.offs[i]%PageSize != 0 || &im.data[tree.offs[i]] != &d[0] {
				t.Errorf("%s: contents at %d, not page-aligned in the mapping", e.Path, tree.offs[i])
			}
			if cap(d) != len(d) {
				t.Errorf("%s: Data has room to append into the image", e.Path)
			}
		}
		total += e.Size
		if got, ok := tree.Lookup(e.Path); !ok || got != e {
			t.Errorf("Lookup(%s) = %v, %v", e.Path, got, ok)
		}
	}
	for p := range want {
		t.Errorf("missing %s", p)
	}
	if tree.Size() != total {
		t.Errorf("Size %d, want %d", tree.Size(), total)
	}
	if _, ok := tree.Lookup("/srv/pkg/app.img"); ok {
		t.Error("the image being written was packed into itself")
	}
	if tree.Data(TreeEntry{Path: "/nonexistent"}) != nil {
		t.Error("Data of a path not in the tree")
	}

	// The same through Split of the bytes, and Append copies the tree.
	data, _ := os.ReadFile(out)
	_, e, err := Split(data)
	if err != nil || !reflect.DeepEqual(e.Tree.Entries, packed) {
		t.Fatalf("Split: %v", err)
	}
	again, err := Append(x, *e)
	if err != nil || !bytes.Equal(again, data) {
		t.Fatalf("Append of the tree read back differs (%v)", err)
	}
	// The image still runs as a process.
	if out, err := exec.Command(out).Output(); err != nil || string(out) != "hello from atoll\n" {
		t.Fatalf("image as a process: %q, %v", out, err)
	}
	if err := im.Close(); err != nil || im.Close() != nil {
		t.Fatal("Close twice:", err)
	}
}

// TestCollectRefuses checks what atoll build refuses to pack, with
// messages naming the entry and the file.
func TestCollectRefuses(t *testing.T) {
	pkg := t.TempDir()
	writeTree(t, pkg, map[string]string{"conf/a": "a", "conf/b": "b", "other/a": "x", "file": "f", "dir/": ""})
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "secret"), []byte("secret"), 0o600)
	mk := func(name string, f func(p string) error) string {
		d := filepath.Join(t.TempDir(), name)
		os.MkdirAll(d, 0o755)
		if err := f(d); err != nil {
			t.Fatal(err)
		}
		return d
	}
	escape := mk("escape", func(d string) error { return os.Symlink(filepath.Join(outside, "secret"), filepath.Join(d, "passwd")) })
	escapeDir := mk("escapedir", func(d string) error { return os.Symlink("../../..", filepath.Join(d, "up")) })
	loop := mk("loop", func(d string) error {
		os.Mkdir(filepath.Join(d, "x"), 0o755)
		return os.Symlink("..", filepath.Join(d, "x", "back"))
	})
	broken := mk("broken", func(d string) error { return os.Symlink("nowhere", filepath.Join(d, "dangling")) })
	fifo := mk("fifo", func(d string) error { return syscall.Mkfifo(filepath.Join(d, "pipe"), 0o644) })
	os.Symlink(outside, filepath.Join(pkg, "linkout"))
	os.Symlink(escape, filepath.Join(pkg, "escape"))
	for _, c := range []struct {
		dir     string
		entries []manifest.FilesEntry
		want    string
	}{
		{escape, []manifest.FilesEntry{{Src: ".", Dst: "/etc"}}, "files . /etc: passwd is a symbolic link to " + outside + "/secret, outside the package directory"},
		{escapeDir, []manifest.FilesEntry{{Src: ".", Dst: "/etc"}}, "files . /etc: up is a symbolic link to ../../.., outside the package directory"},
		{pkg, []manifest.FilesEntry{{Src: "linkout", Dst: "/etc"}}, "files linkout /etc: linkout resolves to " + outside + ", outside the package directory"},
		{pkg, []manifest.FilesEntry{{Src: "escape/passwd", Dst: "/etc/passwd"}}, "files escape/passwd /etc/passwd: escape/passwd resolves to " + outside + "/secret, outside the package directory"},
		{loop, []manifest.FilesEntry{{Src: ".", Dst: "/l"}}, "files . /l: x/back leads back to a directory it is in (a symbolic link loop)"},
		{broken, []manifest.FilesEntry{{Src: ".", Dst: "/b"}}, "files . /b: dangling is a symbolic link to nowhere, which does not resolve"},
		{fifo, []manifest.FilesEntry{{Src: ".", Dst: "/f"}}, "files . /f: pipe is a FIFO: only regular files and directories can be packed"},
		{pkg, []manifest.FilesEntry{{Src: "nope", Dst: "/x"}}, "files nope /x: " + pkg + "/nope: no such file or directory"},
		{pkg, []manifest.FilesEntry{{Src: "../x", Dst: "/x"}}, "files ../x /x: the source is outside the package directory"},
		{pkg, []manifest.FilesEntry{{Src: "file", Dst: "/tmp/x"}}, `files file /tmp/x: the destination lies in /tmp`},
		{pkg, []manifest.FilesEntry{{Src: "file", Dst: "/etc/app"}, {Src: "conf", Dst: "/etc/app/conf"}}, "files conf /etc/app/conf: /etc/app is a file (files file /etc/app), so nothing can lie under it"},
		{pkg, []manifest.FilesEntry{{Src: "conf", Dst: "/c"}, {Src: "other", Dst: "/c"}}, "files other /c: other/a is packed at /c/a, which files conf /c gives too"},
		{pkg, []manifest.FilesEntry{{Src: "conf", Dst: "/c"}, {Src: "file", Dst: "/c/b"}}, "files file /c/b: file is packed at /c/b, which files conf /c gives too"},
	} {
		_, err := Collect(c.dir, c.entries)
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%v:\n got %v\nwant %s", c.entries, err, c.want)
		}
	}
	// Directories merge.
	srcs, err := Collect(pkg, []manifest.FilesEntry{{Src: "conf", Dst: "/c"}, {Src: "dir", Dst: "/c"}, {Src: "file", Dst: "/c/f"}})
	if err != nil || len(srcs) != 4 {
		t.Fatalf("merge: %v %v", srcs, err)
	}
}

// TestWriteRefuses checks the tree Write completes and refuses.
func TestWriteRefuses(t *testing.T) {
	file := func(p, data string) Source {
		return Source{TreeEntry: TreeEntry{Path: p, Mode: 0o644, Size: int64(len(data))}, Data: []byte(data)}
	}
	x := []byte("\x7fELF-not-really")
	e := Embedded{Manifest: manifest.Default("web")}
	for name, c := range map[string]struct {
		files []Source
		want  string
	}{
		"twice":       {[]Source{file("/a", "1"), file("/a", "2")}, "tree path /a given twice"},
		"under file":  {[]Source{file("/a", "1"), file("/a/b", "2")}, "tree path /a/b lies under /a, which is a file"},
		"unclean":     {[]Source{file("/a/", "1")}, `tree path "/a/" must be a clean path: /a`},
		"relative":    {[]Source{file("a", "1")}, `tree path "a" must be an absolute guest path`},
		"proc":        {[]Source{file("/proc/self/exe", "1")}, `tree path "/proc/self/exe" lies in /proc`},
		"size":        {[]Source{{TreeEntry: TreeEntry{Path: "/a", Size: 5}, Data: []byte("1")}}, "tree path /a: size 5 does not match its 1 bytes of data"},
		"symlink":     {[]Source{{TreeEntry: TreeEntry{Path: "/a", Mode: fs.ModeSymlink}}}, "tree path /a: only regular files and directories can be packed"},
		"host change": {[]Source{{TreeEntry: TreeEntry{Path: "/a", Size: 5}, HostPath: "/dev/null"}}, "/dev/null changed while the image was built"},
	} {
		_, err := Write(new(bytes.Buffer), x, e, c.files)
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %s", name, err, c.want)
		}
	}
	// No files: a format-1 image, as older atolls wrote.
	var b bytes.Buffer
	if _, err := Write(&b, x, e, nil); err != nil || binary.LittleEndian.Uint32(b.Bytes()[b.Len()-16:]) != formatNoTree {
		t.Fatalf("no files: %v", err)
	}
	// An old image (format 1, written before trees) still loads.
	old, _ := Append(x, Embedded{Manifest: &manifest.Manifest{Name: "old", Memory: 1 << 30, CPUs: 1}, ABIVersion: "0.3"})
	if _, e, err := Split(old); err != nil || e.Tree != nil || e.Manifest.TZData {
		t.Fatalf("format 1: %+v %v", e, err)
	}
}

// assemble builds a format-2 image around an index and contents area of
// its own (entries with offsets relative to the image), for damage tests.
func assemble(exe, area []byte, entries []TreeEntry, offs []int64, fix func(idx []byte)) []byte {
	img := append([]byte(nil), exe...)
	img = append(img, make([]byte, int(alignPage(uint64(len(img))))-len(img))...)
	img = append(img, area...)
	idx := encodeIndex(entries, offs, len(exe))
	if fix != nil {
		fix(idx)
		binary.LittleEndian.PutUint32(idx[8:], crc32.ChecksumIEEE(idx[12:]))
	}
	img = append(img, idx...)
	js, _ := json.Marshal(Embedded{Manifest: manifest.Default("web"), ABIVersion: "0.4"})
	img = append(img, js...)
	var f [footerSize]byte
	copy(f[:], magic)
	le := binary.LittleEndian
	le.PutUint32(f[8:], formatTree)
	le.PutUint32(f[12:], uint32(len(js)))
	le.PutUint32(f[16:], crc32.ChecksumIEEE(js))
	le.PutUint32(f[20:], uint32(len(idx)))
	return append(img, f[:]...)
}

// TestDamagedTrees feeds trees that are truncated, corrupted or crafted to
// be wrong with a valid checksum: each is refused with ErrBadImage and a
// message saying what is wrong.
func TestDamagedTrees(t *testing.T) {
	x := []byte("\x7fELF-not-really")
	area := bytes.Repeat([]byte("c"), 2*PageSize)
	contents := int64(PageSize) // where the area starts for this exe
	d := func(p string) TreeEntry { return TreeEntry{Path: p, Mode: fs.ModeDir | 0o755} }
	f := func(p string, size int64) TreeEntry { return TreeEntry{Path: p, Mode: 0o644, Size: size} }
	good := assemble(x, area, []TreeEntry{d("/etc"), f("/etc/a", 10), f("/etc/b", 5)}, []int64{0, contents, contents + PageSize}, nil)
	if _, e, err := Split(good); err != nil || string(e.Tree.Data(e.Tree.Entries[2])) != "ccccc" {
		t.Fatalf("the undamaged tree: %v", err)
	}
	flip := func(i int) []byte { b := bytes.Clone(good); b[i] ^= 0x40; return b }
	idxStart := len(good) - footerSize - 0
	js, _ := json.Marshal(Embedded{Manifest: manifest.Default("web"), ABIVersion: "0.4"})
	idxStart -= len(js) + headerSize + 3*entrySize + len("/etc/etc/a/etc/b")
	badIdxLen := bytes.Clone(good)
	binary.LittleEndian.PutUint32(badIdxLen[len(good)-4:], 1<<30)
	shortIdxLen := bytes.Clone(good)
	binary.LittleEndian.PutUint32(shortIdxLen[len(good)-4:], 12)
	put32 := func(at int, v uint32) func([]byte) {
		return func(b []byte) { binary.LittleEndian.PutUint32(b[at:], v) }
	}
	put64 := func(at int, v uint64) func([]byte) {
		return func(b []byte) { binary.LittleEndian.PutUint64(b[at:], v) }
	}
	two := []TreeEntry{d("/etc"), f("/etc/a", 10)}
	twoOffs := []int64{0, contents}
	for name, c := range map[string]struct {
		img  []byte
		want string
	}{
		"truncated":          {append(bytes.Clone(good[:idxStart+20]), good[len(good)-footerSize-len(js):]...), "no file tree index where the footer puts it"},
		"index bit flip":     {flip(idxStart + headerSize + 5), "file tree index checksum mismatch"},
		"index length":       {badIdxLen, "file tree index length 1073741824 does not fit the file"},
		"index length short": {shortIdxLen, "no file tree index where the footer puts it"},
		"duplicate":          {assemble(x, area, []TreeEntry{d("/etc"), f("/etc/a", 1), f("/etc/a", 1)}, []int64{0, contents, contents + PageSize}, nil), `file tree entry "/etc/a" is out of order or repeated`},
		"unsorted":           {assemble(x, area, []TreeEntry{d("/etc"), f("/etc/b", 1), f("/etc/a", 1)}, []int64{0, contents, contents + PageSize}, nil), `file tree entry "/etc/a" is out of order`},
		"unclean":            {assemble(x, area, []TreeEntry{d("/etc"), f("/etc/./a", 1)}, twoOffs, nil), `file tree entry "/etc/./a": path must be a clean path`},
		"relative":           {assemble(x, area, []TreeEntry{f("etc", 1)}, []int64{contents}, nil), `file tree entry "etc": path must be an absolute guest path`},
		"root":               {assemble(x, area, []TreeEntry{d("/")}, []int64{0}, nil), `file tree entry "/": path cannot be the root`},
		"reserved":           {assemble(x, area, []TreeEntry{d("/proc")}, []int64{0}, nil), `file tree entry "/proc": path lies in /proc`},
		"missing parent":     {assemble(x, area, []TreeEntry{f("/etc/a", 1)}, []int64{contents}, nil), `file tree entry "/etc/a": its parent directory is not in the tree`},
		"parent is a file":   {assemble(x, area, []TreeEntry{f("/etc", 1), f("/etc/a", 1)}, []int64{contents, contents + PageSize}, nil), `file tree entry "/etc/a": its parent directory is not in the tree`},
		"unaligned":          {assemble(x, area, two, []int64{0, contents + 1}, nil), `file tree entry "/etc/a": contents at 4097, not page-aligned`},
		"before contents":    {assemble(x, area, two, []int64{0, 0}, nil), `file tree entry "/etc/a": 10 bytes at 0 lie outside the contents area`},
		"past the end":       {assemble(x, area, []TreeEntry{d("/etc"), f("/etc/a", 3*PageSize)}, twoOffs, nil), `file tree entry "/etc/a": 12288 bytes at 4096 lie outside the contents area`},
		"huge size":          {assemble(x, area, []TreeEntry{d("/etc"), f("/etc/a", -1)}, twoOffs, nil), `file tree entry "/etc/a": 18446744073709551615 bytes at 4096 lie outside`},
		"overlap":            {assemble(x, area, []TreeEntry{d("/etc"), f("/etc/a", PageSize+1), f("/etc/b", 1)}, []int64{0, contents, contents + PageSize}, nil), `file tree entry "/etc/b": 1 bytes at 8192 lie outside the contents area or overlap another file`},
		"empty with offset":  {assemble(x, area, []TreeEntry{d("/etc"), f("/etc/a", 0)}, twoOffs, nil), `file tree entry "/etc/a": an empty file with an offset`},
		"directory contents": {assemble(x, area, []TreeEntry{{Path: "/etc", Mode: fs.ModeDir, Size: 3}}, []int64{contents}, nil), `file tree directory "/etc" has contents`},
		"symlink mode":       {assemble(x, area, two, twoOffs, put32(headerSize+entrySize+8, 0o120777)), `file tree entry "/etc/a" has mode 0120777`},
		"setuid":             {assemble(x, area, two, twoOffs, put32(headerSize+entrySize+8, 0o104755)), `file tree entry "/etc/a" has mode 0104755`},
		"bad nanoseconds":    {assemble(x, area, two, twoOffs, put32(headerSize+entrySize+12, 2e9)), `file tree entry "/etc/a": bad modification time`},
		"absurd count":       {assemble(x, area, two, twoOffs, put32(12, 1<<31)), "file tree of 2147483648 entries, more than the 1048576 allowed"},
		"count mismatch":     {assemble(x, area, two, twoOffs, put32(12, 3)), "file tree index of 122 bytes does not hold 3 entries"},
		"path out of bounds": {assemble(x, area, two, twoOffs, put32(headerSize+entrySize, 1<<20)), "file tree entry 1: path out of bounds"},
		"path length":        {assemble(x, area, two, twoOffs, put32(headerSize+entrySize+4, 1<<31)), "file tree entry 1: path out of bounds"},
		"exe length":         {assemble(x, area, two, twoOffs, put64(16, 1<<40)), "executable length 1099511627776 does not fit"},
		"zero exe length":    {assemble(x, area, two, twoOffs, put64(16, 0)), "executable length 0 does not fit"},
		"flags":              {assemble(x, area, two, twoOffs, put32(28, 1)), "file tree index has unknown flags 0x1"},
	} {
		_, _, err := Split(c.img)
		if !errors.Is(err, ErrBadImage) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s:\n got %v\nwant %s", name, err, c.want)
		}
	}
	// A format-1 footer with an index length is not an old image.
	v1 := bytes.Clone(good)
	binary.LittleEndian.PutUint32(v1[len(v1)-16:], formatNoTree)
	if _, _, err := Split(v1); !errors.Is(err, ErrBadImage) {
		t.Errorf("format 1 with an index: %v", err)
	}
}

// TestOpen maps images: a plain executable, a damaged one, a missing one,
// a directory and an empty file.
func TestOpen(t *testing.T) {
	dir := t.TempDir()
	x := exe(t)
	plain := filepath.Join(dir, "plain")
	os.WriteFile(plain, x, 0o755)
	if im, err := Open(plain); err != nil || im.Embedded != nil || !bytes.Equal(im.Exe, x) {
		t.Fatalf("plain: %v", err)
	} else {
		im.Close()
	}
	img, _ := Append(x, Embedded{Manifest: manifest.Default("web")})
	damaged := filepath.Join(dir, "damaged")
	os.WriteFile(damaged, img[:len(img)-3], 0o755)
	if _, err := Open(damaged); !errors.Is(err, ErrBadImage) || !strings.HasPrefix(err.Error(), damaged+": ") {
		t.Errorf("damaged: %v", err)
	}
	if _, err := Open(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing: %v", err)
	}
	if _, err := Open(dir); err == nil {
		t.Error("opened a directory")
	}
	r, w, _ := os.Pipe()
	go func() { w.Write(img); w.Close() }()
	if im, err := Open("/dev/fd/" + strconv.Itoa(int(r.Fd()))); err != nil || im.Embedded == nil || !bytes.Equal(im.Exe, x) {
		t.Errorf("pipe: %v", err)
	}
	r.Close()
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o644)
	if im, err := Open(empty); err != nil || len(im.Exe) != 0 || im.Close() != nil {
		t.Errorf("empty: %v", err)
	}
}
