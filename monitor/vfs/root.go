package vfs

import (
	"crypto/rand"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Config describes a guest's file system.
type Config struct {
	// Tree is the image's packed tree (read-only); Exe the executable,
	// served as /proc/self/exe.
	Tree []File
	Exe  []byte
	// Hostname names the guest in /etc/hostname and /etc/hosts;
	// Nameservers go to /etc/resolv.conf.
	Hostname    string
	Nameservers []string
	// Volumes are host directories mounted in the guest.
	Volumes []Volume
	// Charge accounts for /tmp's contents against the memory limit.
	Charge func(delta int64) bool
}

// File is one entry of a packed tree.
type File struct {
	Path    string      // absolute, clean
	Mode    fs.FileMode // fs.ModeDir or a regular file, with permissions
	ModTime time.Time
	Data    []byte // a regular file's contents, not copied
}

// Volume is a host directory mounted at Path.
type Volume struct {
	Path     string   // absolute, clean guest path
	Dir      *os.File // the host directory, opened O_PATH|O_DIRECTORY; the FS keeps its own duplicate
	ReadOnly bool
}

// ExeLink is what readlink("/proc/self/exe") answers, and the path that
// opens the executable: the guest's os.Executable.
const ExeLink = "/proc/self/exe"

// New builds a guest's file system: the root from the tree and the
// synthesized files the tree does not provide, /tmp, and the volumes.
// Close releases the volumes' host descriptors.
func New(cfg Config) (*FS, error) {
	root := newMemFS(1, false, nil)
	for _, f := range cfg.Tree {
		if err := root.add(f.Path, fileNode(f)); err != nil {
			return nil, err
		}
	}
	synth := []struct {
		path string
		n    *node
	}{
		{"/etc/hostname", text(cfg.Hostname + "\n")},
		{"/etc/hosts", text("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t" + cfg.Hostname + "\n")},
		{"/etc/resolv.conf", text(resolvConf(cfg.Nameservers))},
		{"/etc/passwd", text("root:x:0:0:root:/root:/sbin/nologin\n")},
		{"/etc/group", text("root:x:0:\n")},
		{"/sys/kernel/mm/transparent_hugepage/hpage_pmd_size", text("2097152\n")},
		{ExeLink, exeNode(cfg.Exe)},
		{"/dev/null", devNode(null{})},
		{"/dev/zero", devNode(zero{})},
		{"/dev/full", devNode(full{})},
		{"/dev/random", devNode(random{8})},
		{"/dev/urandom", devNode(random{9})},
	}
	for _, s := range synth {
		if _, e := root.lookup(strings.TrimPrefix(s.path, "/")); e == 0 {
			continue // the image's own
		}
		if err := root.add(s.path, s.n); err != nil {
			return nil, err
		}
	}
	mounts := []mount{{at: "/tmp", be: newMemFS(2, true, cfg.Charge)}}
	for i, v := range cfg.Volumes {
		be, err := newHostFS(v, uint64(16+i))
		if err != nil {
			closeMounts(mounts)
			return nil, err
		}
		mounts = append(mounts, mount{at: v.Path, be: be})
	}
	for _, m := range mounts {
		if err := root.mkdirAll(m.at); err != nil {
			closeMounts(mounts)
			return nil, err
		}
	}
	return newFS(root, mounts), nil
}

// Close releases the host descriptors the volumes hold.
func (fs *FS) Close() { closeMounts(fs.mounts) }

func closeMounts(ms []mount) {
	for _, m := range ms {
		if h, ok := m.be.(*hostFS); ok {
			h.close()
		}
	}
}

// SetWorkdir makes absolute path dir the working directory, which must be
// a directory.
func (fs *FS) SetWorkdir(dir string) error {
	if !path.IsAbs(dir) {
		return fmt.Errorf("working directory %q is not an absolute path", dir)
	}
	if e := fs.Chdir(path.Clean(dir)); e != 0 {
		return fmt.Errorf("working directory %s: %w", dir, e)
	}
	return nil
}

func resolvConf(ns []string) string {
	if len(ns) == 0 {
		return "# atoll: the attached networks offer no resolver\n"
	}
	var b strings.Builder
	for _, n := range ns {
		fmt.Fprintf(&b, "nameserver %s\n", n)
	}
	return b.String()
}

func text(s string) *node {
	n := newNode(unix.S_IFREG | 0o644)
	n.data = []byte(s)
	return n
}

func exeNode(exe []byte) *node {
	n := newNode(unix.S_IFREG | 0o555)
	n.data = exe
	n.exe = ExeLink
	return n
}

func devNode(d device) *node {
	n := newNode(unix.S_IFCHR | 0o666)
	n.dev = d
	return n
}

func fileNode(f File) *node {
	mode := uint32(f.Mode.Perm())
	if f.Mode.IsDir() {
		mode |= unix.S_IFDIR
	} else {
		mode |= unix.S_IFREG
	}
	n := newNode(mode)
	n.data = f.Data
	t := unix.NsecToTimespec(f.ModTime.UnixNano())
	n.atime, n.mtime, n.ctime = t, t, t
	return n
}

// add puts n at absolute path p, making missing parent directories; a
// directory already there is kept. Used while building, before the guest
// runs.
func (fs *memFS) add(p string, n *node) error {
	if !path.IsAbs(p) || path.Clean(p) != p || p == "/" {
		return fmt.Errorf("tree path %q is not a clean absolute path", p)
	}
	dir, name := path.Split(p)
	if err := fs.mkdirAll(path.Clean(dir)); err != nil {
		return err
	}
	parent, _ := fs.lookup(strings.TrimPrefix(path.Clean(dir), "/"))
	if old, ok := parent.children[name]; ok {
		if old.isDir() && n.isDir() {
			return nil
		}
		return fmt.Errorf("tree path %s given twice", p)
	}
	parent.children[name] = n
	if n.isDir() {
		parent.nlink++
	}
	return nil
}

// mkdirAll makes directory p and its parents.
func (fs *memFS) mkdirAll(p string) error {
	n := fs.root
	for _, name := range strings.Split(strings.TrimPrefix(p, "/"), "/") {
		if name == "" {
			continue
		}
		c, ok := n.children[name]
		if !ok {
			c = newNode(unix.S_IFDIR | 0o755)
			n.children[name] = c
			n.nlink++
		} else if !c.isDir() {
			return fmt.Errorf("%s: a file where a directory is needed", p)
		}
		n = c
	}
	return nil
}

// device is a character device's behaviour.
type device interface {
	read(p []byte) (int, unix.Errno)
	write(p []byte) (int, unix.Errno)
	rdev() uint64
}

// The devices of /dev, with Linux's numbers (major 1, "mem").
type (
	null   struct{}
	zero   struct{}
	full   struct{}
	random struct{ minor uint32 }
)

func (null) read([]byte) (int, unix.Errno)    { return 0, 0 }
func (null) write(p []byte) (int, unix.Errno) { return len(p), 0 }
func (null) rdev() uint64                     { return unix.Mkdev(1, 3) }

func (zero) read(p []byte) (int, unix.Errno)  { clear(p); return len(p), 0 }
func (zero) write(p []byte) (int, unix.Errno) { return len(p), 0 }
func (zero) rdev() uint64                     { return unix.Mkdev(1, 5) }

func (full) read(p []byte) (int, unix.Errno) { clear(p); return len(p), 0 }
func (full) write([]byte) (int, unix.Errno)  { return 0, unix.ENOSPC }
func (full) rdev() uint64                    { return unix.Mkdev(1, 7) }

func (random) read(p []byte) (int, unix.Errno) {
	rand.Read(p)
	return len(p), 0
}
func (random) write(p []byte) (int, unix.Errno) { return len(p), 0 }
func (r random) rdev() uint64                   { return unix.Mkdev(1, r.minor) }
