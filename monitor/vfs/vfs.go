// Package vfs is a unikernel's file system, served by the monitor with no
// guest kernel: a read-only root made of the image's packed tree and a few
// synthesized files (/etc/hosts, /proc/self/exe, /dev/null, ...), a
// private tmpfs at /tmp counted against the guest's memory limit, and host
// directories mounted as volumes, every host path resolved beneath the
// volume's directory by the host kernel (openat2 with RESOLVE_BENEATH).
//
// Paths are resolved lexically: joined with the working directory or the
// directory a descriptor names, then cleaned, so "a/b/../c" is "a/c" even
// if b is a symbolic link (Linux would follow b first). Symbolic links in
// the in-memory trees are followed by re-resolving their target; inside a
// volume the host kernel follows them, never out of the volume.
//
// Errors are Linux's errno values, as the system calls return them.
package vfs

import (
	"path"
	"sort"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Attr is a file's metadata, as stat reports it.
type Attr struct {
	Mode   uint32 // S_IFMT type and permission bits
	Size   int64
	Ino    uint64
	Dev    uint64
	Rdev   uint64
	Nlink  uint32
	Blocks int64 // 512-byte blocks
	Atime  unix.Timespec
	Mtime  unix.Timespec
	Ctime  unix.Timespec
}

// IsDir reports whether the attributes are a directory's.
func (a Attr) IsDir() bool { return a.Mode&unix.S_IFMT == unix.S_IFDIR }

// Dirent is one directory entry.
type Dirent struct {
	Name string
	Ino  uint64
	Type uint8 // DT_* value
}

// Handle is an open file or directory.
type Handle interface {
	// ReadAt reads at off; for a device, off is ignored.
	ReadAt(p []byte, off int64) (int, unix.Errno)
	// WriteAt writes at off; append writes at the end (O_APPEND).
	WriteAt(p []byte, off int64, append bool) (int, unix.Errno)
	Attr() (Attr, unix.Errno)
	Truncate(size int64) unix.Errno
	Sync() unix.Errno
	// ReadDir lists a directory, "." and ".." first.
	ReadDir() ([]Dirent, unix.Errno)
	// Chmod and Utimes change the open file's attributes.
	Chmod(mode uint32) unix.Errno
	Utimes(atime, mtime *unix.Timespec) unix.Errno
	// Flock takes, converts or drops (LOCK_SH, LOCK_EX, LOCK_UN) the
	// open file's lock against the file's other open files, the host's
	// too for a volume's. It never waits: a lock held elsewhere is
	// EWOULDBLOCK.
	Flock(how int) unix.Errno
	// Lock tests or sets a record lock as fcntl does with cmd (F_GETLK,
	// F_SETLK, F_OFD_GETLK or F_OFD_SETLK), lk's l_whence SEEK_SET or
	// SEEK_END. Process-associated (POSIX) locks belong to the guest as a
	// whole, so only the host's other processes hold conflicting ones;
	// open-file-description locks conflict between the guest's open
	// files too. It never waits: a conflict is EAGAIN.
	Lock(cmd int, lk *unix.Flock_t) unix.Errno
	// HostFD returns a host descriptor the file can be polled or locked
	// with, or -1.
	HostFD() int
	Close()
}

// backend is a file system mounted at a path: paths given to it are
// relative to its root, clean, "" for the root itself.
type backend interface {
	// walk resolves rel without following a final symbolic link unless
	// follow. It returns the path within the backend resolved so far
	// and, when it met a symbolic link to follow, the link's target and
	// the part of rel after the link.
	walk(rel string, follow bool) (res walkResult, e unix.Errno)
	open(rel string, flags int, mode uint32) (Handle, unix.Errno)
	// stat describes rel; a final symbolic link itself unless follow
	// (walk has already followed the others).
	stat(rel string, follow bool) (Attr, unix.Errno)
	readlink(rel string) (string, unix.Errno)
	mkdir(rel string, mode uint32) unix.Errno
	remove(rel string, dir bool) unix.Errno
	rename(from, to string, flags uint) unix.Errno
	symlink(target, rel string) unix.Errno
	link(from, to string) unix.Errno
	// chmod and utimes change rel's attributes, or a final symbolic
	// link's own unless follow (walk has followed the others).
	chmod(rel string, mode uint32, follow bool) unix.Errno
	utimes(rel string, atime, mtime *unix.Timespec, follow bool) unix.Errno
	statfs() (unix.Statfs_t, unix.Errno)
}

// walkResult is where a walk stopped.
type walkResult struct {
	// link is a symbolic link to follow: its target, the directory it
	// is in (relative to the backend's root) and what followed it.
	link, linkDir, rest string
	followed            bool
}

// mount is a backend at a guest path.
type mount struct {
	at string // absolute, clean
	be backend
}

// FS is one guest's file system. It is safe for concurrent use.
type FS struct {
	root   backend
	mounts []mount // longest path first

	// mu guards the fields below.
	mu    sync.Mutex
	cwd   string
	umask uint32
}

// maxLinks bounds the symbolic links one resolution follows (Linux's 40).
const maxLinks = 40

// newFS makes a file system with root at "/" and the given mounts.
func newFS(root backend, mounts []mount) *FS {
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i].at) > len(mounts[j].at) })
	return &FS{root: root, mounts: mounts, cwd: "/", umask: 0o022}
}

// Abs returns the absolute, clean path p names from directory dir (the
// working directory when dir is "").
func (fs *FS) Abs(dir, p string) string {
	if path.IsAbs(p) {
		return path.Clean(p)
	}
	if dir == "" {
		fs.mu.Lock()
		dir = fs.cwd
		fs.mu.Unlock()
	}
	return path.Join(dir, p)
}

// mountOf returns the backend serving absolute path p and p relative to it.
func (fs *FS) mountOf(p string) (backend, string) {
	for _, m := range fs.mounts {
		if p == m.at {
			return m.be, ""
		}
		if strings.HasPrefix(p, m.at+"/") {
			return m.be, p[len(m.at)+1:]
		}
	}
	return fs.root, strings.TrimPrefix(p, "/")
}

// mountPath returns the guest path of rel in backend be.
func (fs *FS) mountPath(be backend, rel string) string {
	at := "/"
	for _, m := range fs.mounts {
		if m.be == be {
			at = m.at
		}
	}
	return path.Join(at, rel)
}

// resolve follows symbolic links in absolute path p (the final one only if
// follow) and returns the backend and relative path that name the file.
func (fs *FS) resolve(p string, follow bool) (backend, string, unix.Errno) {
	p = fs.Abs("", p)
	for hops := 0; ; hops++ {
		if hops > maxLinks {
			return nil, "", unix.ELOOP
		}
		be, rel := fs.mountOf(p)
		res, e := be.walk(rel, follow)
		if e != 0 {
			return nil, "", e
		}
		if !res.followed {
			return be, rel, 0
		}
		target := res.link
		if !path.IsAbs(target) {
			target = path.Join(fs.mountPath(be, res.linkDir), target)
		}
		p = path.Clean(path.Join(target, res.rest))
	}
}

// parent resolves the directory of absolute path p (following links) and
// returns its backend, the directory's relative path and p's last element.
func (fs *FS) parent(p string) (backend, string, string, unix.Errno) {
	p = fs.Abs("", p)
	if p == "/" {
		return nil, "", "", unix.EBUSY
	}
	dir, name := path.Split(p)
	be, rel, e := fs.resolve(path.Clean(dir), true)
	if e != 0 {
		return nil, "", "", e
	}
	// A mount point is not an entry of the directory it sits in.
	for _, m := range fs.mounts {
		if m.at == p {
			return nil, "", "", unix.EBUSY
		}
	}
	return be, path.Join(rel, name), name, 0
}

// Open opens absolute path p with open(2) flags and creation mode. With
// O_CREAT, a final symbolic link to nothing creates its target, as Linux
// does (O_EXCL refuses any link).
func (fs *FS) Open(p string, flags int, mode uint32) (Handle, unix.Errno) {
	follow := flags&unix.O_NOFOLLOW == 0
	if flags&unix.O_CREAT != 0 && flags&unix.O_EXCL != 0 {
		follow = false
	}
	p = fs.Abs("", p)
	for hops := 0; ; hops++ {
		be, rel, e := fs.resolve(p, follow)
		if e != unix.ENOENT || flags&unix.O_CREAT == 0 {
			if e != 0 {
				return nil, e
			}
			return be.open(rel, flags, mode&^fs.Umask())
		}
		// Create through the parent, which must exist.
		if be, rel, _, e = fs.parent(p); e != 0 {
			return nil, e
		}
		target, e := be.readlink(rel)
		if !follow || e != 0 {
			return be.open(rel, flags, mode&^fs.Umask())
		}
		if hops >= maxLinks {
			return nil, unix.ELOOP
		}
		if !path.IsAbs(target) {
			target = path.Join(path.Dir(p), target)
		}
		p = path.Clean(target)
	}
}

// Stat returns the attributes of absolute path p, following a final
// symbolic link if follow.
func (fs *FS) Stat(p string, follow bool) (Attr, unix.Errno) {
	be, rel, e := fs.resolve(p, follow)
	if e != 0 {
		return Attr{}, e
	}
	return be.stat(rel, follow)
}

// Readlink returns the target of the symbolic link at absolute path p.
func (fs *FS) Readlink(p string) (string, unix.Errno) {
	be, rel, e := fs.resolve(p, false)
	if e != 0 {
		return "", e
	}
	return be.readlink(rel)
}

// Mkdir makes a directory.
func (fs *FS) Mkdir(p string, mode uint32) unix.Errno {
	be, rel, _, e := fs.parent(p)
	if e == unix.EBUSY {
		return unix.EEXIST
	}
	if e != 0 {
		return e
	}
	return be.mkdir(rel, mode&^fs.Umask())
}

// Remove removes a file, or an empty directory if dir.
func (fs *FS) Remove(p string, dir bool) unix.Errno {
	be, rel, _, e := fs.parent(p)
	if e != 0 {
		return e
	}
	return be.remove(rel, dir)
}

// Rename renames from to to; both must be in one file system (EXDEV).
func (fs *FS) Rename(from, to string, flags uint) unix.Errno {
	b1, r1, _, e := fs.parent(from)
	if e != 0 {
		return e
	}
	b2, r2, _, e := fs.parent(to)
	if e != 0 {
		return e
	}
	if b1 != b2 {
		return unix.EXDEV
	}
	return b1.rename(r1, r2, flags)
}

// Symlink makes a symbolic link at p to target.
func (fs *FS) Symlink(target, p string) unix.Errno {
	be, rel, _, e := fs.parent(p)
	if e == unix.EBUSY {
		return unix.EEXIST
	}
	if e != 0 {
		return e
	}
	return be.symlink(target, rel)
}

// Link makes a hard link at to for from.
func (fs *FS) Link(from, to string, follow bool) unix.Errno {
	b1, r1, e := fs.resolve(from, follow)
	if e != 0 {
		return e
	}
	b2, r2, _, e := fs.parent(to)
	if e != 0 {
		return e
	}
	if b1 != b2 {
		return unix.EXDEV
	}
	return b1.link(r1, r2)
}

// Chmod changes a file's permission bits; a symbolic link's own, unless
// follow, is EOPNOTSUPP.
func (fs *FS) Chmod(p string, mode uint32, follow bool) unix.Errno {
	be, rel, e := fs.resolve(p, follow)
	if e != 0 {
		return e
	}
	return be.chmod(rel, mode&0o7777, follow)
}

// Utimes changes a file's times; nil leaves one as it is.
func (fs *FS) Utimes(p string, atime, mtime *unix.Timespec, follow bool) unix.Errno {
	be, rel, e := fs.resolve(p, follow)
	if e != 0 {
		return e
	}
	return be.utimes(rel, atime, mtime, follow)
}

// Statfs describes the file system holding p.
func (fs *FS) Statfs(p string) (unix.Statfs_t, unix.Errno) {
	be, _, e := fs.resolve(p, true)
	if e != 0 {
		return unix.Statfs_t{}, e
	}
	return be.statfs()
}

// Access checks that p exists and, for W_OK, that its file system is
// writable or it is a device. The guest is root: permission bits do not
// bind it, except that X_OK needs some execute bit on a regular file.
func (fs *FS) Access(p string, mode uint32, follow bool) unix.Errno {
	be, rel, e := fs.resolve(p, follow)
	if e != 0 {
		return e
	}
	a, e := be.stat(rel, follow)
	if e != 0 {
		return e
	}
	if mode&unix.W_OK != 0 && a.Mode&unix.S_IFMT != unix.S_IFCHR {
		if st, e := be.statfs(); e == 0 && st.Flags&unix.ST_RDONLY != 0 {
			return unix.EROFS
		}
	}
	if mode&unix.X_OK != 0 && !a.IsDir() && a.Mode&0o111 == 0 {
		return unix.EACCES
	}
	return 0
}

// Chdir makes p the working directory.
func (fs *FS) Chdir(p string) unix.Errno {
	a, e := fs.Stat(p, true)
	if e != 0 {
		return e
	}
	if !a.IsDir() {
		return unix.ENOTDIR
	}
	fs.mu.Lock()
	fs.cwd = p
	fs.mu.Unlock()
	return 0
}

// Getwd returns the working directory.
func (fs *FS) Getwd() string {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.cwd
}

// SetUmask sets the creation mask and returns the old one.
func (fs *FS) SetUmask(mask uint32) uint32 {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	old := fs.umask
	fs.umask = mask & 0o777
	return old
}

// Umask returns the creation mask.
func (fs *FS) Umask() uint32 {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.umask
}

// splitFirst splits rel into its first element and the rest.
func splitFirst(rel string) (string, string) {
	first, rest, _ := strings.Cut(rel, "/")
	return first, rest
}
