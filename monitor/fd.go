package monitor

import (
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// maxFDs bounds the guest's file-descriptor table (its RLIMIT_NOFILE).
const maxFDs = 4096

// file is an object open in the guest, what Linux calls a file
// description: one kind per file_*.go (console, pipe, eventfd, epoll,
// block, net). Every kind can be closed and described by fstat; the other
// operations are small optional interfaces below, and a descriptor call on
// a file without one answers as Linux does for such an object
// (sys_fd.go). No kind is a host object the guest chose: each is one the
// monitor created for it or a device the operator attached.
type file interface {
	// close releases the file's host resources. It is called once, when
	// the last reference goes (fdTable).
	close()
	// stat describes the file for fstat.
	stat(st *unix.Stat_t) unix.Errno
}

// reader is a file read in sequence (read, readv).
type reader interface {
	readv(t *thread, iov [][]byte) (int, unix.Errno)
}

// writer is a file written in sequence (write, writev).
type writer interface {
	writev(t *thread, iov [][]byte) (int, unix.Errno)
}

// positional is a file read and written at offsets (pread64, pwrite64).
type positional interface {
	pread(b []byte, off uint64) (int, unix.Errno)
	pwrite(b []byte, off uint64) (int, unix.Errno)
}

// seeker is a file with an offset (lseek).
type seeker interface {
	seek(off int64, whence int) (int64, unix.Errno)
}

// syncer is a file with storage to flush (fsync, fdatasync).
type syncer interface {
	sync() unix.Errno
}

// flagged is a file whose status flags the guest may read and set
// (fcntl F_GETFL, F_SETFL); only O_NONBLOCK can be changed.
type flagged interface {
	statusFlags() (int, unix.Errno)
	setNonblock(on bool) unix.Errno
}

// pollable is a file that epoll can watch: it has a host descriptor that
// reports readiness.
type pollable interface {
	pollFD() int
}

// hostFD is the part every host-backed kind shares: the descriptor,
// closed with the file, with fstat and the status flags answered by the
// host.
type hostFD struct {
	fd int
}

func (h *hostFD) close() { unix.Close(h.fd) }

func (h *hostFD) stat(st *unix.Stat_t) unix.Errno { return errnoOf(unix.Fstat(h.fd, st)) }

func (h *hostFD) statusFlags() (int, unix.Errno) {
	fl, err := unix.FcntlInt(uintptr(h.fd), unix.F_GETFL, 0)
	return fl, errnoOf(err)
}

func (h *hostFD) setNonblock(on bool) unix.Errno {
	fl := 0
	if on {
		fl = unix.O_NONBLOCK
	}
	_, err := unix.FcntlInt(uintptr(h.fd), unix.F_SETFL, fl)
	return errnoOf(err)
}

// fdTable maps guest file descriptors to open files.
//
// Entries are reference-counted open files, shared by the descriptors dup
// made (like Linux file descriptions). A handler takes a reference with
// acquire before it uses the file and drops it with release when its
// call is over: closing the guest descriptor in another thread only
// removes it from the table, and the file is closed when the last
// reference goes, so a host descriptor number cannot be reused for
// another object while a call still uses it.
type fdTable struct {
	mu  sync.Mutex
	fds map[int]*openFile // guest fd → open file
	// cache is the fcntl fast path's view of descriptors 0–2 in guest
	// memory (fdcache.go), nil in a table without one; gen counts the
	// changes that cleared it.
	cache []byte
	gen   uint64
}

// openFile is a file open in the guest, shared by every guest descriptor
// that names it and every call that uses it.
type openFile struct {
	file
	// refs counts the table entries and calls holding the file; the file
	// is closed when it drops to zero.
	refs atomic.Int32
}

// newOpenFile wraps f; the caller holds its one reference.
func newOpenFile(f file) *openFile {
	o := &openFile{file: f}
	o.refs.Store(1)
	return o
}

// ref takes another reference to f.
func (f *openFile) ref() { f.refs.Add(1) }

// release drops a reference to f, closing the file with the last one.
func (f *openFile) release() {
	switch n := f.refs.Add(-1); {
	case n == 0:
		f.close()
	case n < 0:
		panic("monitor: open file released too often")
	}
}

// init empties the table.
func (ft *fdTable) init() { ft.fds = map[int]*openFile{} }

// acquire returns the open file behind guest fd with a reference the
// caller must release.
func (ft *fdTable) acquire(fd uint64) (*openFile, bool) {
	if fd >= maxFDs {
		return nil, false
	}
	ft.mu.Lock()
	defer ft.mu.Unlock()
	f, ok := ft.fds[int(fd)]
	if ok {
		f.ref()
	}
	return f, ok
}

// valid reports whether guest fd is open.
func (ft *fdTable) valid(fd uint64) bool {
	if fd >= maxFDs {
		return false
	}
	ft.mu.Lock()
	defer ft.mu.Unlock()
	_, ok := ft.fds[int(fd)]
	return ok
}

// count returns the number of open descriptors.
func (ft *fdTable) count() int {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	return len(ft.fds)
}

// install gives a new open file for f the lowest free guest number
// >= min. On failure it closes f.
func (ft *fdTable) install(f file, min int) (int, unix.Errno) {
	return ft.installFile(newOpenFile(f), min)
}

// installFile gives f the lowest free guest number >= min, handing the
// caller's reference to the table. On failure it releases that reference.
func (ft *fdTable) installFile(f *openFile, min int) (int, unix.Errno) {
	ft.mu.Lock()
	for fd := max(min, 0); fd < maxFDs; fd++ {
		if _, used := ft.fds[fd]; !used {
			ft.fds[fd] = f
			if fd < fdCached {
				ft.forget()
			}
			ft.mu.Unlock()
			return fd, 0
		}
	}
	ft.mu.Unlock()
	f.release()
	return -1, unix.EMFILE
}

// installAt puts f at guest number fd, handing the caller's reference to
// the table and dropping the table's reference to what was there (dup2).
func (ft *fdTable) installAt(f *openFile, fd int) {
	ft.mu.Lock()
	old, had := ft.fds[fd]
	ft.fds[fd] = f
	if fd < fdCached {
		ft.forget()
	}
	ft.mu.Unlock()
	if had {
		old.release()
	}
}

// close removes guest fd and drops the table's reference to its file.
func (ft *fdTable) close(fd uint64) unix.Errno {
	if fd >= maxFDs {
		return unix.EBADF
	}
	ft.mu.Lock()
	f, ok := ft.fds[int(fd)]
	delete(ft.fds, int(fd))
	if fd < fdCached {
		ft.forget()
	}
	ft.mu.Unlock()
	if !ok {
		return unix.EBADF
	}
	f.release()
	return 0
}

// closeIf removes guest fd if it still names f, and drops the table's
// reference: it undoes an install without touching a descriptor another
// thread has put in its place since.
func (ft *fdTable) closeIf(fd int, f *openFile) {
	ft.mu.Lock()
	cur, ok := ft.fds[fd]
	if ok && cur == f {
		delete(ft.fds, fd)
		if fd < fdCached {
			ft.forget()
		}
	}
	ft.mu.Unlock()
	if ok && cur == f {
		f.release()
	}
}

// closeAll empties the table, and stops using the fd cache in guest
// memory, which is released next. Files still in use by a call are
// closed when that call ends.
func (ft *fdTable) closeAll() {
	ft.mu.Lock()
	old := ft.fds
	ft.fds = map[int]*openFile{}
	ft.forget()
	ft.cache = nil // guest memory goes next
	ft.mu.Unlock()
	for _, f := range old {
		f.release()
	}
}
