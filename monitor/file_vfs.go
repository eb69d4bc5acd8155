package monitor

import (
	"encoding/binary"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"atoll.dev/atoll/monitor/vfs"
)

// vfsFile is a file, directory or device of the guest's file system
// (package vfs) open in the guest: the offset, the open flags and, for a
// directory, its listing belong to the open file and are shared by dups.
type vfsFile struct {
	h        vfs.Handle
	path     string // the guest path it was opened by, for *at calls and fchdir
	flags    int    // access mode, O_APPEND, O_PATH
	nonblock atomic.Bool
	vm       *VM // whose mappings of the file writes are mirrored in

	// mu guards the fields below.
	mu   sync.Mutex
	pos  int64
	dir  []vfs.Dirent // a directory's entries, read at the first getdents64
	dpos int          // the next entry getdents64 returns
}

var (
	_ reader     = (*vfsFile)(nil)
	_ writer     = (*vfsFile)(nil)
	_ positional = (*vfsFile)(nil)
	_ seeker     = (*vfsFile)(nil)
	_ syncer     = (*vfsFile)(nil)
	_ flagged    = (*vfsFile)(nil)
)

func (f *vfsFile) close() { f.h.Close() }

func (f *vfsFile) stat(st *unix.Stat_t) unix.Errno {
	a, e := f.h.Attr()
	if e != 0 {
		return e
	}
	*st = statOf(a)
	return 0
}

// statOf turns file attributes into a struct stat. The guest is root: uid
// and gid are 0.
func statOf(a vfs.Attr) unix.Stat_t {
	return unix.Stat_t{Dev: a.Dev, Ino: a.Ino, Nlink: uint64(a.Nlink), Mode: a.Mode, Rdev: a.Rdev, Size: a.Size,
		Blksize: 4096, Blocks: a.Blocks, Atim: a.Atime, Mtim: a.Mtime, Ctim: a.Ctime}
}

// pathOnly reports whether the file was opened O_PATH: a place to name,
// not a file to read, write, list, lock or change.
func (f *vfsFile) pathOnly() bool { return f.flags&unix.O_PATH != 0 }

func (f *vfsFile) readable() bool {
	return !f.pathOnly() && f.flags&unix.O_ACCMODE != unix.O_WRONLY
}

func (f *vfsFile) writable() bool {
	return !f.pathOnly() && f.flags&unix.O_ACCMODE != unix.O_RDONLY
}

func (f *vfsFile) readv(_ *thread, iov [][]byte) (int, unix.Errno) {
	if !f.readable() {
		return 0, unix.EBADF
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	done := 0
	for _, b := range iov {
		n, e := f.h.ReadAt(b, f.pos)
		f.pos += int64(n)
		done += n
		if e != 0 {
			return done, orIfNone(done, e)
		}
		if n < len(b) {
			break
		}
	}
	return done, 0
}

func (f *vfsFile) writev(_ *thread, iov [][]byte) (int, unix.Errno) {
	if !f.writable() {
		return 0, unix.EBADF
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	appending := f.flags&unix.O_APPEND != 0
	done := 0
	for _, b := range iov {
		n, e := f.h.WriteAt(b, f.pos, appending)
		f.mirror(f.pos, b[:n], appending)
		done += n
		if appending {
			if a, e := f.h.Attr(); e == 0 {
				f.pos = a.Size
			}
		} else {
			f.pos += int64(n)
		}
		if e != 0 {
			return done, orIfNone(done, e)
		}
		if n < len(b) {
			break
		}
	}
	return done, 0
}

func (f *vfsFile) pread(b []byte, off uint64) (int, unix.Errno) {
	if !f.readable() {
		return 0, unix.EBADF
	}
	if int64(off) < 0 {
		return 0, unix.EINVAL
	}
	return f.h.ReadAt(b, int64(off))
}

// pwrite writes at off, or, on an O_APPEND file, at the end (as Linux does).
func (f *vfsFile) pwrite(b []byte, off uint64) (int, unix.Errno) {
	if !f.writable() {
		return 0, unix.EBADF
	}
	if int64(off) < 0 {
		return 0, unix.EINVAL
	}
	appending := f.flags&unix.O_APPEND != 0
	n, e := f.h.WriteAt(b, int64(off), appending)
	f.mirror(int64(off), b[:n], appending)
	return n, e
}

// mirror copies b, just written at off (or, appended, at the end), into
// the guest's shared read-only mappings of the file (file_mirror.go).
func (f *vfsFile) mirror(off int64, b []byte, appended bool) {
	if f.vm == nil || len(b) == 0 || !f.vm.mirrors.any() {
		return
	}
	a, e := f.h.Attr()
	if e != 0 {
		return
	}
	if appended {
		off = a.Size - int64(len(b))
	}
	f.vm.mirrors.written(f.vm.mem, a.Dev, a.Ino, off, b)
}

func (f *vfsFile) seek(off int64, whence int) (int64, unix.Errno) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.pathOnly() {
		return 0, unix.EBADF
	}
	var base int64
	switch whence {
	case unix.SEEK_SET:
	case unix.SEEK_CUR:
		base = f.pos
	case unix.SEEK_END, unix.SEEK_DATA, unix.SEEK_HOLE:
		a, e := f.h.Attr()
		if e != 0 {
			return 0, e
		}
		switch whence {
		case unix.SEEK_END:
			base = a.Size
		case unix.SEEK_DATA:
			if off >= a.Size {
				return 0, unix.ENXIO
			}
		case unix.SEEK_HOLE:
			if off >= a.Size {
				return 0, unix.ENXIO
			}
			off = a.Size
		}
	default:
		return 0, unix.EINVAL
	}
	p := base + off
	if p < 0 || (off > 0 && p < base) {
		return 0, unix.EINVAL
	}
	f.pos = p
	if p == 0 {
		f.dir, f.dpos = nil, 0 // rewinddir
	}
	return p, 0
}

func (f *vfsFile) sync() unix.Errno { return f.h.Sync() }

func (f *vfsFile) statusFlags() (int, unix.Errno) {
	fl := f.flags &^ unix.O_NONBLOCK
	if f.nonblock.Load() {
		fl |= unix.O_NONBLOCK
	}
	return fl | unix.O_LARGEFILE, 0
}

func (f *vfsFile) setNonblock(on bool) unix.Errno {
	f.nonblock.Store(on)
	return 0
}

// getdents fills b with linux_dirent64 records from the directory's
// listing and returns the bytes used; 0 at its end.
func (f *vfsFile) getdents(b []byte) (int, unix.Errno) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.dir == nil {
		d, e := f.h.ReadDir()
		if e != 0 {
			return 0, e
		}
		f.dir = d
	}
	used := 0
	for ; f.dpos < len(f.dir); f.dpos++ {
		d := f.dir[f.dpos]
		// struct linux_dirent64: ino u64, off s64, reclen u16, type u8,
		// name and its NUL, padded to 8 bytes.
		reclen := (19 + len(d.Name) + 1 + 7) &^ 7
		if used+reclen > len(b) {
			if used == 0 {
				return 0, unix.EINVAL // the buffer holds not even one entry
			}
			break
		}
		r := b[used : used+reclen]
		clear(r)
		binary.LittleEndian.PutUint64(r, d.Ino)
		binary.LittleEndian.PutUint64(r[8:], uint64(f.dpos+1))
		binary.LittleEndian.PutUint16(r[16:], uint16(reclen))
		r[18] = d.Type
		copy(r[19:], d.Name)
		used += reclen
	}
	return used, 0
}
