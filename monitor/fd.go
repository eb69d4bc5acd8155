package monitor

import (
	"os"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// maxFDs bounds the guest's file-descriptor table (its RLIMIT_NOFILE).
const maxFDs = 4096

// fdTable maps guest file descriptors to monitor-owned host objects.
// The guest names only its own numbers; each entry is a host object the
// monitor created for it (console, pipe, eventfd, epoll) or a device the
// operator attached — never a host file the guest chose.
//
// Entries are reference-counted open files, shared by the descriptors
// dup made (like Linux file descriptions). A handler takes a reference
// with acquire before it uses the host descriptor and drops it with
// release when the host call is over: closing the guest descriptor in
// another thread only removes it from the table, and the host descriptor
// is closed when the last reference goes, so its number cannot be reused
// for another object while a call still uses it.
type fdTable struct {
	mu  sync.Mutex
	fds map[int]*openFile // guest fd → open file
}

// fdEntry describes a host object to install in the table.
type fdEntry struct {
	host  int
	block *blockDevice // set for block devices
}

// openFile is a host object open in the guest, shared by every guest
// descriptor that names it and every call that uses it.
type openFile struct {
	host  int
	block *blockDevice // set for block devices

	// refs counts the table entries and calls holding the file; the
	// host descriptor is closed when it drops to zero.
	refs atomic.Int32

	// emulated says the host descriptor is always O_NONBLOCK and the
	// guest's O_NONBLOCK flag lives in nonblock: a blocking read or
	// write then waits in bounded polls, so that it notices the VM
	// ending and signals.
	emulated bool
	nonblock atomic.Bool
}

// blockDevice describes a block device's geometry (docs/abi.md).
type blockDevice struct {
	size, sector uint64
}

// checkIO validates a positioned transfer of n bytes at off.
func (b *blockDevice) checkIO(off, n uint64) bool {
	return off%b.sector == 0 && n%b.sector == 0 && off <= b.size && n <= b.size-off
}

// newOpenFile wraps a host descriptor; the caller holds its one reference.
func newOpenFile(e fdEntry) *openFile {
	f := &openFile{host: e.host, block: e.block}
	f.refs.Store(1)
	return f
}

// newEmulatedFile wraps a host descriptor that is O_NONBLOCK on the host,
// with the guest's own O_NONBLOCK flag; the caller holds its one
// reference.
func newEmulatedFile(h int, nonblock bool) *openFile {
	f := newOpenFile(fdEntry{host: h})
	f.emulated = true
	f.nonblock.Store(nonblock)
	return f
}

// ref takes another reference to f.
func (f *openFile) ref() { f.refs.Add(1) }

// release drops a reference to f, closing the host descriptor with the
// last one.
func (f *openFile) release() {
	switch n := f.refs.Add(-1); {
	case n == 0:
		unix.Close(f.host)
	case n < 0:
		panic("monitor: open file released too often")
	}
}

// blocking reports whether calls on f wait for readiness, as the guest
// sees it, although the host descriptor does not block.
func (f *openFile) blocking() bool { return f.emulated && !f.nonblock.Load() }

// init opens the console: fd 0 reads end-of-file, 1 and 2 write to the
// given host files. 1 and 2 share the operator's file description, so
// their host flags are left as they are.
func (ft *fdTable) init(stdout, stderr *os.File) error {
	ft.fds = map[int]*openFile{}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return err
	}
	unix.Close(p[1])
	ft.fds[0] = newOpenFile(fdEntry{host: p[0]})
	for gfd, f := range map[int]*os.File{1: stdout, 2: stderr} {
		if f == nil {
			f = os.Stderr
		}
		h, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 3)
		if err != nil {
			return err
		}
		ft.fds[gfd] = newOpenFile(fdEntry{host: h})
	}
	return nil
}

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

// host reports whether guest fd is open, with the host descriptor it had
// when looked up. The number is good for nothing but an existence check:
// once this returns, another thread may close the descriptor and the

// install gives a new open file for e the lowest free guest number
// >= min. On failure it closes e's host descriptor.
func (ft *fdTable) install(e fdEntry, min int) (int, unix.Errno) {
	return ft.installFile(newOpenFile(e), min)
}

// installFile gives f the lowest free guest number >= min, handing the
// caller's reference to the table. On failure it releases that reference.
func (ft *fdTable) installFile(f *openFile, min int) (int, unix.Errno) {
	ft.mu.Lock()
	for fd := max(min, 0); fd < maxFDs; fd++ {
		if _, used := ft.fds[fd]; !used {
			ft.fds[fd] = f
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
	ft.mu.Unlock()
	if !ok {
		return unix.EBADF
	}
	f.release()
	return 0
}

// closeAll empties the table. Host descriptors still in use by a call
// are closed when that call ends.
func (ft *fdTable) closeAll() {
	ft.mu.Lock()
	old := ft.fds
	ft.fds = map[int]*openFile{}
	ft.mu.Unlock()
	for _, f := range old {
		f.release()
	}
}
