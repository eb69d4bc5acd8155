package vfs

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// testFS builds a file system with a small tree, /tmp limited to limit
// bytes, and a volume at /data (read-only at /ro) over host directories it
// returns.
func testFS(t *testing.T, limit int64) (*FS, string, string) {
	t.Helper()
	host := t.TempDir()
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "secret"), []byte("host secret"), 0o644)
	vol := filepath.Join(host, "vol")
	os.Mkdir(vol, 0o755)
	ro := filepath.Join(host, "ro")
	os.Mkdir(ro, 0o755)
	os.WriteFile(filepath.Join(ro, "f"), []byte("read only"), 0o644)
	open := func(p string) *os.File {
		fd, err := unix.Open(p, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		f := os.NewFile(uintptr(fd), p)
		t.Cleanup(func() { f.Close() })
		return f
	}
	var used int64
	f, err := New(Config{
		Tree: []File{
			{Path: "/etc/app.conf", Mode: 0o644, ModTime: time.Unix(1e9, 0), Data: []byte("key=value\n")},
			{Path: "/srv/www", Mode: fs.ModeDir | 0o755},
			{Path: "/srv/www/index.html", Mode: 0o644, Data: []byte("<h1>hi</h1>")},
		},
		Exe:      []byte("\x7fELF..."),
		Hostname: "box",
		Volumes:  []Volume{{Path: "/data", Dir: open(vol)}, {Path: "/ro", Dir: open(ro), ReadOnly: true}},
		Charge: func(d int64) bool {
			if used+d > limit {
				return false
			}
			used += d
			return true
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	return f, vol, outside
}

func readAll(t *testing.T, h Handle) string {
	t.Helper()
	buf := make([]byte, 1<<16)
	n, e := h.ReadAt(buf, 0)
	if e != 0 {
		t.Fatalf("read: %v", e)
	}
	return string(buf[:n])
}

func mustOpen(t *testing.T, f *FS, p string, flags int) Handle {
	t.Helper()
	h, e := f.Open(p, flags, 0o644)
	if e != 0 {
		t.Fatalf("open %s: %v", p, e)
	}
	t.Cleanup(h.Close)
	return h
}

func TestRootTree(t *testing.T) {
	f, _, _ := testFS(t, 1<<20)
	if got := readAll(t, mustOpen(t, f, "/etc/app.conf", unix.O_RDONLY)); got != "key=value\n" {
		t.Errorf("tree file: %q", got)
	}
	if got := readAll(t, mustOpen(t, f, "/etc/hosts", unix.O_RDONLY)); !bytes.Contains([]byte(got), []byte("127.0.0.1\tlocalhost")) || !bytes.Contains([]byte(got), []byte("box")) {
		t.Errorf("/etc/hosts: %q", got)
	}
	a, e := f.Stat("/srv/www", true)
	if e != 0 || !a.IsDir() {
		t.Errorf("tree directory: %+v %v", a, e)
	}
	ents, _ := mustOpen(t, f, "/srv/www", unix.O_RDONLY|unix.O_DIRECTORY).ReadDir()
	if len(ents) != 3 || ents[2].Name != "index.html" || ents[2].Type != unix.DT_REG {
		t.Errorf("readdir: %+v", ents)
	}
	for _, c := range []struct {
		what string
		e    unix.Errno
		want unix.Errno
	}{
		{"stat missing", func() unix.Errno { _, e := f.Stat("/nope", true); return e }(), unix.ENOENT},
		{"stat under a file", func() unix.Errno { _, e := f.Stat("/etc/app.conf/x", true); return e }(), unix.ENOTDIR},
		{"mkdir in the root", f.Mkdir("/newdir", 0o755), unix.EROFS},
		{"mkdir existing", f.Mkdir("/etc", 0o755), unix.EEXIST},
		{"write the tree", func() unix.Errno { _, e := f.Open("/etc/app.conf", unix.O_WRONLY, 0); return e }(), unix.EROFS},
		{"create in the root", func() unix.Errno { _, e := f.Open("/new", unix.O_CREAT|unix.O_WRONLY, 0o644); return e }(), unix.EROFS},
		{"remove the tree", f.Remove("/etc/app.conf", false), unix.EROFS},
		{"readlink a file", func() unix.Errno { _, e := f.Readlink("/etc/hosts"); return e }(), unix.EINVAL},
		{"open a directory for writing", func() unix.Errno { _, e := f.Open("/srv", unix.O_RDWR, 0); return e }(), unix.EISDIR},
		{"O_DIRECTORY on a file", func() unix.Errno { _, e := f.Open("/etc/hosts", unix.O_DIRECTORY, 0); return e }(), unix.ENOTDIR},
		{"remove a mount point", f.Remove("/tmp", true), unix.EBUSY},
		{"write access to the root", f.Access("/etc/hosts", unix.W_OK, true), unix.EROFS},
	} {
		if c.e != c.want {
			t.Errorf("%s: %v, want %v", c.what, c.e, c.want)
		}
	}
	// /proc/self/exe: a link to read, a file to open.
	if l, e := f.Readlink(ExeLink); e != 0 || l != ExeLink {
		t.Errorf("readlink exe: %q %v", l, e)
	}
	if got := readAll(t, mustOpen(t, f, ExeLink, unix.O_RDONLY)); got != "\x7fELF..." {
		t.Errorf("exe contents %q", got)
	}
	if a, _ := f.Stat(ExeLink, false); a.Mode&unix.S_IFMT != unix.S_IFLNK {
		t.Errorf("lstat exe: %o", a.Mode)
	}
	// Devices.
	null := mustOpen(t, f, "/dev/null", unix.O_RDWR)
	if n, e := null.WriteAt([]byte("gone"), 0, false); n != 4 || e != 0 || readAll(t, null) != "" {
		t.Error("/dev/null")
	}
	if n, e := mustOpen(t, f, "/dev/full", unix.O_WRONLY).WriteAt([]byte("x"), 0, false); n != 0 || e != unix.ENOSPC {
		t.Errorf("/dev/full: %d %v", n, e)
	}
	if got := readAll(t, mustOpen(t, f, "/dev/urandom", unix.O_RDONLY)); len(got) != 1<<16 {
		t.Errorf("/dev/urandom gave %d bytes", len(got))
	}
}

func TestTmp(t *testing.T) {
	f, _, _ := testFS(t, 64<<10)
	if e := f.Mkdir("/tmp/d", 0o755); e != 0 {
		t.Fatal(e)
	}
	h := mustOpen(t, f, "/tmp/d/a", unix.O_CREAT|unix.O_RDWR|unix.O_EXCL)
	if n, e := h.WriteAt([]byte("hello"), 0, false); n != 5 || e != 0 {
		t.Fatal(n, e)
	}
	h.WriteAt([]byte(" world"), 0, true)
	if got := readAll(t, mustOpen(t, f, "/tmp/d/a", unix.O_RDONLY)); got != "hello world" {
		t.Errorf("read back %q", got)
	}
	if _, e := f.Open("/tmp/d/a", unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY, 0o644); e != unix.EEXIST {
		t.Errorf("O_EXCL on an existing file: %v", e)
	}
	if e := f.Rename("/tmp/d/a", "/tmp/b", 0); e != 0 {
		t.Fatal(e)
	}
	if _, e := f.Stat("/tmp/d/a", true); e != unix.ENOENT {
		t.Errorf("old name after rename: %v", e)
	}
	if e := f.Symlink("b", "/tmp/link"); e != 0 {
		t.Fatal(e)
	}
	if got := readAll(t, mustOpen(t, f, "/tmp/link", unix.O_RDONLY)); got != "hello world" {
		t.Errorf("through a link: %q", got)
	}
	if _, e := f.Open("/tmp/link", unix.O_RDONLY|unix.O_NOFOLLOW, 0); e != unix.ELOOP {
		t.Errorf("O_NOFOLLOW on a link: %v", e)
	}
	if e := f.Symlink("/tmp/loop", "/tmp/loop"); e != 0 {
		t.Fatal(e)
	}
	if _, e := f.Stat("/tmp/loop", true); e != unix.ELOOP {
		t.Errorf("a link to itself: %v", e)
	}
	if e := f.Remove("/tmp/d", true); e != 0 {
		t.Errorf("rmdir: %v", e)
	}
	if e := f.Rename("/tmp/b", "/etc/b", 0); e != unix.EXDEV {
		t.Errorf("rename across file systems: %v", e)
	}
	// The limit: /tmp holds at most 64 KiB.
	big := mustOpen(t, f, "/tmp/big", unix.O_CREAT|unix.O_WRONLY)
	if _, e := big.WriteAt(make([]byte, 100<<10), 0, false); e != unix.ENOSPC {
		t.Errorf("past the limit: %v", e)
	}
	if e := big.Truncate(32 << 10); e != 0 {
		t.Errorf("truncate within the limit: %v", e)
	}
	if e := f.Remove("/tmp/big", false); e != 0 {
		t.Fatal(e)
	}
	if e := mustOpen(t, f, "/tmp/again", unix.O_CREAT|unix.O_WRONLY).Truncate(60 << 10); e != 0 {
		t.Errorf("space not returned after remove: %v", e)
	}
	// Working directory and relative paths.
	if e := f.Chdir("/tmp"); e != 0 || f.Getwd() != "/tmp" {
		t.Errorf("chdir: %v %s", e, f.Getwd())
	}
	if p := f.Abs("", "again"); p != "/tmp/again" {
		t.Errorf("Abs = %s", p)
	}
	if e := f.Chdir("/etc/hosts"); e != unix.ENOTDIR {
		t.Errorf("chdir to a file: %v", e)
	}
}

func TestVolume(t *testing.T) {
	f, vol, outside := testFS(t, 1<<20)
	h := mustOpen(t, f, "/data/out.txt", unix.O_CREAT|unix.O_WRONLY|unix.O_TRUNC)
	h.WriteAt([]byte("from the guest"), 0, false)
	h.Sync()
	if b, err := os.ReadFile(filepath.Join(vol, "out.txt")); err != nil || string(b) != "from the guest" {
		t.Errorf("host sees %q, %v", b, err)
	}
	if e := f.Mkdir("/data/sub", 0o755); e != 0 {
		t.Fatal(e)
	}
	if e := f.Rename("/data/out.txt", "/data/sub/moved", 0); e != 0 {
		t.Fatal(e)
	}
	ents, _ := mustOpen(t, f, "/data/sub", unix.O_RDONLY|unix.O_DIRECTORY).ReadDir()
	found := false
	for _, d := range ents {
		found = found || d.Name == "moved"
	}
	if !found {
		t.Errorf("readdir: %+v", ents)
	}
	// Escapes: links out, and lexical "..".
	os.Symlink(filepath.Join(outside, "secret"), filepath.Join(vol, "abs"))
	os.Symlink("../../"+filepath.Base(outside)+"/secret", filepath.Join(vol, "rel"))
	for _, p := range []string{"/data/abs", "/data/rel"} {
		if h, e := f.Open(p, unix.O_RDONLY, 0); e == 0 {
			t.Errorf("%s opened outside the volume: %q", p, readAll(t, h))
		}
		if _, e := f.Open(p, unix.O_CREAT|unix.O_WRONLY, 0o644); e == 0 {
			t.Errorf("%s created outside the volume", p)
		}
		if e := f.Chmod(p, 0o777, true); e == 0 {
			t.Errorf("%s: chmod reached outside", p)
		}
	}
	if _, e := f.Stat("/data/../etc/hosts", true); e != 0 {
		t.Errorf(".. leaves the volume lexically, to the root: %v", e)
	}
	// Devices and FIFOs stay the host's.
	unix.Mkfifo(filepath.Join(vol, "fifo"), 0o644)
	if _, e := f.Open("/data/fifo", unix.O_RDONLY, 0); e != unix.EACCES {
		t.Errorf("FIFO: %v", e)
	}
	if _, e := f.Stat("/data/fifo", true); e != 0 {
		t.Errorf("stat of a FIFO: %v", e)
	}
	// Read-only volume.
	if got := readAll(t, mustOpen(t, f, "/ro/f", unix.O_RDONLY)); got != "read only" {
		t.Errorf("ro read %q", got)
	}
	for what, e := range map[string]unix.Errno{
		"write":  func() unix.Errno { _, e := f.Open("/ro/f", unix.O_WRONLY, 0); return e }(),
		"create": func() unix.Errno { _, e := f.Open("/ro/g", unix.O_CREAT|unix.O_WRONLY, 0o644); return e }(),
		"mkdir":  f.Mkdir("/ro/d", 0o755),
		"remove": f.Remove("/ro/f", false),
		"access": f.Access("/ro/f", unix.W_OK, true),
	} {
		if e != unix.EROFS {
			t.Errorf("ro %s: %v", what, e)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(outside, "secret")); string(b) != "host secret" {
		t.Error("a host file outside the volume changed")
	}
}

// TestTruncatedImage reads a tree file whose mapping lost its pages (the
// image file was truncated behind it): EIO, and the monitor lives.
func TestTruncatedImage(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "image")
	if err != nil {
		t.Fatal(err)
	}
	f.Write(make([]byte, 8192))
	m, err := unix.Mmap(int(f.Fd()), 0, 8192, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	fs, err := New(Config{Tree: []File{{Path: "/big", Mode: 0o644, Data: m}}})
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(0)
	h, e := fs.Open("/big", unix.O_RDONLY, 0)
	if e != 0 {
		t.Fatal(e)
	}
	if _, e := h.ReadAt(make([]byte, 100), 4096); e != unix.EIO {
		t.Errorf("read of a truncated mapping: %v, want EIO", e)
	}
}
