package vfs

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"path"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// hostFS is a volume: a host directory the operator attached. Every host
// path operation is resolved by the host kernel beneath the volume's root
// descriptor (openat2 with RESOLVE_BENEATH, RESOLVE_NO_MAGICLINKS and
// RESOLVE_NO_XDEV), in one step, so no "..", absolute symbolic link or
// link swapped during the lookup reaches outside it, nor another file
// system mounted inside it. Operations on a name (mkdir, unlink, rename,
// symlink, link) act on a directory descriptor so resolved and a single
// last element; changes of mode and times go through the file's own
// descriptor. Device files, FIFOs and sockets are never opened nor
// changed, and no file gets a set-user-ID or set-group-ID bit: the
// guest's root is not the host's.
type hostFS struct {
	root int // O_PATH|O_DIRECTORY
	ro   bool
}

// resolveBeneath are the openat2 resolve flags of every volume lookup.
const resolveBeneath = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV

// hostMode are the permission bits the guest may give a host file: all
// but set-user-ID and set-group-ID.
const hostMode = 0o1777

func newHostFS(v Volume, _ uint64) (*hostFS, error) {
	fd, err := unix.FcntlInt(v.Dir.Fd(), unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		return nil, fmt.Errorf("volume %s: %w", v.Path, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		unix.Close(fd)
		return nil, fmt.Errorf("volume %s: not a directory", v.Path)
	}
	return &hostFS{root: fd, ro: v.ReadOnly}, nil
}

func (h *hostFS) close() { unix.Close(h.root) }

// openat2 opens rel beneath the volume's root.
func (h *hostFS) openat2(rel string, flags int, mode uint32) (int, unix.Errno) {
	if rel == "" {
		rel = "."
	}
	how := unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC), Mode: uint64(mode), Resolve: resolveBeneath}
	for tries := 0; ; tries++ {
		fd, err := unix.Openat2(h.root, rel, &how)
		// EAGAIN: a rename raced the lookup; the kernel asks to retry.
		if (err == unix.EAGAIN || err == unix.EINTR) && tries < 16 {
			continue
		}
		return fd, errnoOf(err)
	}
}

// reopen opens the file an O_PATH descriptor names with flags, through
// its magic link in /proc: the same inode, with no second lookup.
func reopen(pathFD, flags int) (int, unix.Errno) {
	fd, err := unix.Open("/proc/self/fd/"+strconv.Itoa(pathFD), flags|unix.O_CLOEXEC, 0)
	return fd, errnoOf(err)
}

func errnoOf(err error) unix.Errno {
	if err == nil {
		return 0
	}
	if e, ok := err.(unix.Errno); ok {
		return e
	}
	return unix.EIO
}

// writes reports whether open flags ask to change the file.
func writes(flags int) bool {
	return flags&unix.O_ACCMODE != unix.O_RDONLY || flags&(unix.O_CREAT|unix.O_TRUNC) != 0
}

// walk leaves the whole path to the host kernel.
func (h *hostFS) walk(string, bool) (walkResult, unix.Errno) { return walkResult{}, 0 }

// open opens rel. A new file is created exclusively, so never through a
// symbolic link by the host kernel: a final link to nothing is followed
// here, beneath the volume's root as the host kernel would (an absolute
// target, or one above the root, is EXDEV), at most maxLinks times.
func (h *hostFS) open(rel string, flags int, mode uint32) (Handle, unix.Errno) {
	if h.ro && writes(flags) {
		return nil, unix.EROFS
	}
	for tries := 0; tries <= maxLinks; tries++ {
		pfd, e := h.openat2(rel, unix.O_PATH|flags&unix.O_NOFOLLOW, 0)
		if e == unix.ENOENT && flags&unix.O_CREAT != 0 {
			fd, e := h.openat2(rel, flags|unix.O_CREAT|unix.O_EXCL, mode&hostMode)
			if e == unix.EEXIST && flags&unix.O_EXCL == 0 {
				// A link to nothing, or a file created meanwhile.
				if target, e := h.readlink(rel); e == 0 && flags&unix.O_NOFOLLOW == 0 {
					if rel, e = beneath(rel, target); e != 0 {
						return nil, e
					}
				}
				continue
			}
			if e != 0 {
				return nil, e
			}
			return &hostHandle{fd: fd, append: flags&unix.O_APPEND != 0, ro: h.ro}, 0
		}
		if e != 0 {
			return nil, e
		}
		defer unix.Close(pfd)
		var st unix.Stat_t
		if err := unix.Fstat(pfd, &st); err != nil {
			return nil, errnoOf(err)
		}
		if flags&unix.O_CREAT != 0 && flags&unix.O_EXCL != 0 {
			return nil, unix.EEXIST
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
		case unix.S_IFDIR:
			if flags&unix.O_CREAT != 0 {
				return nil, unix.EISDIR
			}
		case unix.S_IFLNK:
			return nil, unix.ELOOP // O_NOFOLLOW on a link
		default:
			return nil, unix.EACCES // devices, FIFOs and sockets stay the host's
		}
		fd, e := reopen(pfd, flags&^(unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW))
		if e != 0 {
			return nil, e
		}
		return &hostHandle{fd: fd, append: flags&unix.O_APPEND != 0, ro: h.ro}, 0
	}
	return nil, unix.ELOOP
}

// beneath returns what symbolic link rel's target names, relative to the
// volume's root, or EXDEV if that is outside it.
func beneath(rel, target string) (string, unix.Errno) {
	if path.IsAbs(target) {
		return "", unix.EXDEV
	}
	p := path.Join(path.Dir(rel), target)
	switch {
	case p == "..", strings.HasPrefix(p, "../"):
		return "", unix.EXDEV
	case p == ".":
		return "", 0
	}
	return p, 0
}

func (h *hostFS) stat(rel string, follow bool) (Attr, unix.Errno) {
	flags := unix.O_PATH
	if !follow {
		flags |= unix.O_NOFOLLOW
	}
	fd, e := h.openat2(rel, flags, 0)
	if e != 0 {
		return Attr{}, e
	}
	defer unix.Close(fd)
	return fstat(fd)
}

func fstat(fd int) (Attr, unix.Errno) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return Attr{}, errnoOf(err)
	}
	return Attr{Mode: st.Mode, Size: st.Size, Ino: st.Ino, Dev: st.Dev, Rdev: st.Rdev, Nlink: uint32(st.Nlink),
		Blocks: st.Blocks, Atime: st.Atim, Mtime: st.Mtim, Ctime: st.Ctim}, 0
}

func (h *hostFS) readlink(rel string) (string, unix.Errno) {
	fd, e := h.openat2(rel, unix.O_PATH|unix.O_NOFOLLOW, 0)
	if e != 0 {
		return "", e
	}
	defer unix.Close(fd)
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlinkat(fd, "", buf)
	if err == unix.ENOENT {
		return "", unix.EINVAL // not a link
	}
	if err != nil {
		return "", errnoOf(err)
	}
	return string(buf[:n]), 0
}

// parent opens the directory that holds rel, and returns it with rel's
// last element.
func (h *hostFS) parent(rel string) (int, string, unix.Errno) {
	if rel == "" {
		return -1, "", unix.EBUSY // the volume's root
	}
	dir, name := path.Split(rel)
	fd, e := h.openat2(path.Clean(dir), unix.O_PATH|unix.O_DIRECTORY, 0)
	return fd, name, e
}

// atName runs op on rel's directory and last element.
func (h *hostFS) atName(rel string, op func(dirfd int, name string) error) unix.Errno {
	if h.ro {
		return unix.EROFS
	}
	fd, name, e := h.parent(rel)
	if e != 0 {
		return e
	}
	defer unix.Close(fd)
	return errnoOf(op(fd, name))
}

func (h *hostFS) mkdir(rel string, mode uint32) unix.Errno {
	return h.atName(rel, func(fd int, name string) error { return unix.Mkdirat(fd, name, mode&hostMode) })
}

func (h *hostFS) remove(rel string, dir bool) unix.Errno {
	flags := 0
	if dir {
		flags = unix.AT_REMOVEDIR
	}
	return h.atName(rel, func(fd int, name string) error { return unix.Unlinkat(fd, name, flags) })
}

func (h *hostFS) rename(from, to string, flags uint) unix.Errno {
	return h.atName(from, func(fd1 int, n1 string) error {
		fd2, n2, e := h.parent(to)
		if e != 0 {
			return e
		}
		defer unix.Close(fd2)
		return unix.Renameat2(fd1, n1, fd2, n2, flags)
	})
}

func (h *hostFS) symlink(target, rel string) unix.Errno {
	return h.atName(rel, func(fd int, name string) error { return unix.Symlinkat(target, fd, name) })
}

func (h *hostFS) link(from, to string) unix.Errno {
	return h.atName(from, func(fd1 int, n1 string) error {
		fd2, n2, e := h.parent(to)
		if e != 0 {
			return e
		}
		defer unix.Close(fd2)
		return unix.Linkat(fd1, n1, fd2, n2, 0)
	})
}

// throughFD runs op on the regular file or directory rel names, by its
// /proc magic link, so that nothing follows a symbolic link out of the
// volume; a final link itself, unless follow, goes to onLink with its
// directory and name.
func (h *hostFS) throughFD(rel string, follow bool, op func(procPath string) error, onLink func(dirfd int, name string) error) unix.Errno {
	if h.ro {
		return unix.EROFS
	}
	flags := unix.O_PATH
	if !follow {
		flags |= unix.O_NOFOLLOW
	}
	fd, e := h.openat2(rel, flags, 0)
	if e != 0 {
		return e
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return errnoOf(err)
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG, unix.S_IFDIR:
		return errnoOf(op("/proc/self/fd/" + strconv.Itoa(fd)))
	case unix.S_IFLNK:
		return h.atName(rel, onLink)
	}
	return unix.EACCES // devices, FIFOs and sockets stay the host's
}

func (h *hostFS) chmod(rel string, mode uint32, follow bool) unix.Errno {
	return h.throughFD(rel, follow,
		func(p string) error { return unix.Chmod(p, mode&hostMode) },
		func(int, string) error { return unix.EOPNOTSUPP }) // a link's mode is not its own to change
}

func (h *hostFS) utimes(rel string, atime, mtime *unix.Timespec, follow bool) unix.Errno {
	ts := times(atime, mtime)
	return h.throughFD(rel, follow,
		func(p string) error { return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, 0) },
		func(dirfd int, name string) error {
			return unix.UtimesNanoAt(dirfd, name, ts, unix.AT_SYMLINK_NOFOLLOW)
		})
}

func (h *hostFS) statfs() (unix.Statfs_t, unix.Errno) {
	var st unix.Statfs_t
	if err := unix.Fstatfs(h.root, &st); err != nil {
		return st, errnoOf(err)
	}
	if h.ro {
		st.Flags |= unix.ST_RDONLY
	}
	return st, 0
}

// times is utimensat's pair, UTIME_OMIT for a time left as it is.
func times(atime, mtime *unix.Timespec) []unix.Timespec {
	ts := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, {Nsec: unix.UTIME_OMIT}}
	if atime != nil {
		ts[0] = *atime
	}
	if mtime != nil {
		ts[1] = *mtime
	}
	return ts
}

// hostHandle is a file or directory open in a volume.
type hostHandle struct {
	fd     int
	append bool
	ro     bool
}

func (h *hostHandle) ReadAt(p []byte, off int64) (int, unix.Errno) {
	n, err := unix.Pread(h.fd, p, off)
	return max(n, 0), errnoOf(err)
}

func (h *hostHandle) WriteAt(p []byte, off int64, append bool) (int, unix.Errno) {
	if h.ro {
		return 0, unix.EBADF
	}
	var n int
	var err error
	if append {
		n, err = unix.Write(h.fd, p) // the descriptor is O_APPEND
	} else {
		n, err = unix.Pwrite(h.fd, p, off)
	}
	return max(n, 0), errnoOf(err)
}

func (h *hostHandle) Attr() (Attr, unix.Errno) { return fstat(h.fd) }

func (h *hostHandle) Truncate(size int64) unix.Errno {
	if h.ro {
		return unix.EROFS
	}
	return errnoOf(unix.Ftruncate(h.fd, size))
}

func (h *hostHandle) Sync() unix.Errno { return errnoOf(unix.Fsync(h.fd)) }

func (h *hostHandle) ReadDir() ([]Dirent, unix.Errno) {
	if _, err := unix.Seek(h.fd, 0, 0); err != nil {
		return nil, errnoOf(err)
	}
	var out []Dirent
	buf := make([]byte, 32<<10)
	for {
		n, err := unix.ReadDirent(h.fd, buf)
		if err != nil {
			return nil, errnoOf(err)
		}
		if n <= 0 {
			return out, 0
		}
		for b := buf[:n]; len(b) > 0; {
			// struct linux_dirent64: ino u64, off s64, reclen u16, type u8, name.
			if len(b) < 19 {
				return nil, unix.EIO
			}
			reclen := int(binary.LittleEndian.Uint16(b[16:]))
			if reclen < 19 || reclen > len(b) {
				return nil, unix.EIO
			}
			name := b[19:reclen]
			if i := bytes.IndexByte(name, 0); i >= 0 {
				name = name[:i]
			}
			out = append(out, Dirent{Name: string(name), Ino: binary.LittleEndian.Uint64(b), Type: b[18]})
			b = b[reclen:]
		}
	}
}

func (h *hostHandle) Chmod(mode uint32) unix.Errno {
	if h.ro {
		return unix.EROFS
	}
	return errnoOf(unix.Fchmod(h.fd, mode&hostMode))
}

func (h *hostHandle) Utimes(atime, mtime *unix.Timespec) unix.Errno {
	if h.ro {
		return unix.EROFS
	}
	return errnoOf(unix.UtimesNanoAt(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(h.fd), times(atime, mtime), 0))
}

func (h *hostHandle) Flock(how int) unix.Errno { return errnoOf(unix.Flock(h.fd, how|unix.LOCK_NB)) }

// Lock is the host's record lock on the volume's file: the monitor is one
// host process, as the guest is one process, so the host's POSIX locks
// have the guest's semantics (its open files never conflict; closing one
// lets go of all its locks on the file) and its OFD locks are the open
// file's own.
func (h *hostHandle) Lock(cmd int, lk *unix.Flock_t) unix.Errno {
	e := errnoOf(unix.FcntlFlock(uintptr(h.fd), cmd, lk))
	if e == unix.EACCES {
		e = unix.EAGAIN // Linux answers either; one for the guest
	}
	return e
}

func (h *hostHandle) HostFD() int { return h.fd }

func (h *hostHandle) Close() { unix.Close(h.fd) }
