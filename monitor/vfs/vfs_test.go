package vfs

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// testFS builds a file system with a small tree, /tmp limited to limit
// bytes, and a volume at /data (read-only at /ro) over host directories it
// returns.
func testFS(t *testing.T, limit int64) (*FS, string, string) {
	t.Helper()
	f, vol, outside, _ := testFSUsage(t, limit)
	return f, vol, outside
}

// testFSUsage is testFS that also returns what /tmp counts against its
// limit.
func testFSUsage(t *testing.T, limit int64) (*FS, string, string, *int64) {
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
	return f, vol, outside, &used
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
	// lstat says file: the link names itself, and what resolves links
	// by lstat and readlink (filepath.EvalSymlinks) would loop.
	if a, _ := f.Stat(ExeLink, false); a.Mode&unix.S_IFMT != unix.S_IFREG {
		t.Errorf("lstat exe: %o", a.Mode)
	}
	if e := f.Access("/dev/null", unix.W_OK, true); e != 0 {
		t.Errorf("write access to /dev/null: %v", e)
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
	big.Close() // an unlinked file holds its space until then
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

// TestTmpAccounting checks that /tmp counts what it holds, names and
// links included, that an unlinked file still open keeps its contents and
// its charge until the last close, and that everything removed returns
// the count to where it began.
func TestTmpAccounting(t *testing.T) {
	f, _, _, used := testFSUsage(t, 1<<20)
	if *used != 0 {
		t.Fatalf("an empty /tmp counts %d bytes", *used)
	}
	f.Mkdir("/tmp/d", 0o755)
	f.Symlink("a-long-link-target", "/tmp/d/link")
	h, e := f.Open("/tmp/d/f", unix.O_CREAT|unix.O_RDWR, 0o644)
	if e != 0 {
		t.Fatal(e)
	}
	h.WriteAt(make([]byte, 300<<10), 0, false)
	if *used < 300<<10 {
		t.Errorf("300 KiB written counts %d bytes", *used)
	}
	// A file cut to a tenth gives back most of its buffer.
	h.Truncate(30 << 10)
	if *used > 64<<10 {
		t.Errorf("after truncating to 30 KiB, %d bytes counted", *used)
	}
	f.Link("/tmp/d/f", "/tmp/hard", true)
	f.Rename("/tmp/d/link", "/tmp/d/renamed-link", 0)
	f.Remove("/tmp/d/f", false)
	f.Remove("/tmp/hard", false)
	// Unlinked but open: still readable, still counted.
	if n, e := h.ReadAt(make([]byte, 10), 0); n != 10 || e != 0 {
		t.Errorf("read of an open, unlinked file: %d %v", n, e)
	}
	if *used < 30<<10 {
		t.Errorf("an open, unlinked file's contents not counted: %d", *used)
	}
	h.Close()
	// A replacing rename drops what it replaces.
	for _, p := range []string{"/tmp/x", "/tmp/y"} {
		g, _ := f.Open(p, unix.O_CREAT|unix.O_WRONLY, 0o644)
		g.WriteAt(make([]byte, 10<<10), 0, false)
		g.Close()
	}
	if e := f.Rename("/tmp/x", "/tmp/y", 0); e != 0 {
		t.Fatal(e)
	}
	f.Remove("/tmp/y", false)
	f.Remove("/tmp/d/renamed-link", false)
	f.Remove("/tmp/d", true)
	if *used != 0 {
		t.Errorf("everything removed, %d bytes still counted", *used)
	}
	// Names cost too: a directory cannot fill the limit with empty files.
	var err unix.Errno
	for i := 0; i < 100000 && err == 0; i++ {
		var g Handle
		g, err = f.Open("/tmp/"+strings.Repeat("n", 200)+strconv.Itoa(i), unix.O_CREAT|unix.O_WRONLY, 0o644)
		if err == 0 {
			g.Close()
		}
	}
	if err != unix.ENOSPC {
		t.Errorf("100000 empty files with long names in 1 MiB: %v", err)
	}
}

// TestCreateThroughLink creates through a final symbolic link to nothing,
// as Linux does, in /tmp and in a volume; a volume's link never creates
// outside it, and a loop ends.
func TestCreateThroughLink(t *testing.T) {
	f, vol, outside := testFS(t, 1<<20)
	for _, dir := range []string{"/tmp", "/data"} {
		f.Symlink("sub/target", dir+"/dangling")
		f.Mkdir(dir+"/sub", 0o755)
		f.Symlink("dangling", dir+"/chain")
		h, e := f.Open(dir+"/chain", unix.O_CREAT|unix.O_WRONLY, 0o644)
		if e != 0 {
			t.Fatalf("%s: create through two links: %v", dir, e)
		}
		h.WriteAt([]byte("made"), 0, false)
		h.Close()
		if a, e := f.Stat(dir+"/sub/target", false); e != 0 || a.Size != 4 {
			t.Errorf("%s: the link's target: %+v %v", dir, a, e)
		}
		f.Remove(dir+"/sub/target", false)
		if _, e := f.Open(dir+"/dangling", unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY, 0o644); e != unix.EEXIST {
			t.Errorf("%s: O_EXCL through a link: %v", dir, e)
		}
		if _, e := f.Open(dir+"/dangling", unix.O_CREAT|unix.O_NOFOLLOW|unix.O_WRONLY, 0o644); e != unix.ELOOP {
			t.Errorf("%s: O_NOFOLLOW through a link: %v", dir, e)
		}
		f.Symlink("loop", dir+"/loop")
		done := make(chan unix.Errno)
		go func() { _, e := f.Open(dir+"/loop", unix.O_CREAT|unix.O_WRONLY, 0o644); done <- e }()
		select {
		case e := <-done:
			if e != unix.ELOOP {
				t.Errorf("%s: create through a link to itself: %v", dir, e)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: create through a link to itself never returned", dir)
		}
		if _, e := f.Open(dir, unix.O_CREAT|unix.O_RDONLY, 0o644); e != unix.EISDIR {
			t.Errorf("%s: O_CREAT on a directory: %v", dir, e)
		}
	}
	// Out of the volume: absolute, and above its root.
	os.Symlink(filepath.Join(outside, "new"), filepath.Join(vol, "out-abs"))
	os.Symlink("../../"+filepath.Base(outside)+"/new", filepath.Join(vol, "out-rel"))
	for _, p := range []string{"/data/out-abs", "/data/out-rel"} {
		if _, e := f.Open(p, unix.O_CREAT|unix.O_WRONLY, 0o644); e != unix.EXDEV {
			t.Errorf("%s: %v, want EXDEV", p, e)
		}
	}
	if _, err := os.Stat(filepath.Join(outside, "new")); err == nil {
		t.Error("a file was created outside the volume")
	}
}

// TestMemFlock locks an in-memory file through separate open files.
func TestMemFlock(t *testing.T) {
	f, _, _ := testFS(t, 1<<20)
	a := mustOpen(t, f, "/tmp/l", unix.O_CREAT|unix.O_RDWR)
	b := mustOpen(t, f, "/tmp/l", unix.O_RDONLY)
	for i, c := range []struct {
		h    Handle
		how  int
		want unix.Errno
	}{
		{a, unix.LOCK_EX, 0},
		{a, unix.LOCK_EX, 0}, // again: already its own
		{b, unix.LOCK_EX, unix.EWOULDBLOCK},
		{b, unix.LOCK_SH, unix.EWOULDBLOCK},
		{a, unix.LOCK_SH, 0}, // converted
		{b, unix.LOCK_SH, 0},
		{a, unix.LOCK_EX, unix.EWOULDBLOCK}, // b shares it
		{b, unix.LOCK_UN, 0},
		{a, unix.LOCK_EX, 0},
	} {
		if e := c.h.Flock(c.how); e != c.want {
			t.Errorf("step %d: flock(%d) = %v, want %v", i, c.how, e, c.want)
		}
	}
	a.Close()
	if e := b.Flock(unix.LOCK_EX); e != 0 {
		t.Errorf("after the holder closed: %v", e)
	}
}

// TestVolumeModes checks that the guest gives no host file a set-user-ID
// or set-group-ID bit, changes no host device, and changes a link's own
// times when asked not to follow it.
func TestVolumeModes(t *testing.T) {
	f, vol, _ := testFS(t, 1<<20)
	h, e := f.Open("/data/prog", unix.O_CREAT|unix.O_WRONLY, 0o6755)
	if e != 0 {
		t.Fatal(e)
	}
	check := func(what, name string) {
		t.Helper()
		st, err := os.Stat(filepath.Join(vol, name))
		if err != nil || st.Mode()&(fs.ModeSetuid|fs.ModeSetgid) != 0 {
			t.Errorf("%s: host mode %v, %v", what, st.Mode(), err)
		}
	}
	check("create", "prog")
	h.Chmod(0o4755)
	h.Close()
	check("fchmod", "prog")
	f.Chmod("/data/prog", 0o6777, true)
	check("chmod", "prog")
	f.Mkdir("/data/dir", 0o2755)
	check("mkdir", "dir")

	unix.Mkfifo(filepath.Join(vol, "fifo"), 0o644)
	if e := f.Chmod("/data/fifo", 0o666, true); e != unix.EACCES {
		t.Errorf("chmod of a host FIFO: %v", e)
	}
	now := unix.NsecToTimespec(time.Now().UnixNano())
	if e := f.Utimes("/data/fifo", &now, &now, true); e != unix.EACCES {
		t.Errorf("utimes of a host FIFO: %v", e)
	}

	os.Symlink("prog", filepath.Join(vol, "link"))
	before, _ := os.Stat(filepath.Join(vol, "prog"))
	old := unix.NsecToTimespec(time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	if e := f.Utimes("/data/link", &old, &old, false); e != 0 {
		t.Fatalf("utimes of a link itself: %v", e)
	}
	if l, _ := os.Lstat(filepath.Join(vol, "link")); l.ModTime().Year() != 2001 {
		t.Errorf("the link's own time is %v", l.ModTime())
	}
	if after, _ := os.Stat(filepath.Join(vol, "prog")); !after.ModTime().Equal(before.ModTime()) {
		t.Error("utimes without following changed the link's target")
	}
	if e := f.Chmod("/data/link", 0o600, false); e != unix.EOPNOTSUPP {
		t.Errorf("chmod of a link itself: %v", e)
	}
}
