package monitor

import (
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// maxFDs bounds the guest's file-descriptor table (its RLIMIT_NOFILE).
const maxFDs = 4096

// fdTable maps guest file descriptors to monitor-owned host descriptors.
// The guest names only its own numbers; each entry is a host object the
// monitor created for it (console, pipe, eventfd, epoll) or a device the
// operator attached — never a host file the guest chose.
type fdTable struct {
	mu  sync.Mutex
	fds map[int]fdEntry // guest fd → host object
}

// fdEntry is one open guest descriptor.
type fdEntry struct {
	host  int
	block *blockDevice // set for block devices
}

// blockDevice describes a block device's geometry (docs/abi.md).
type blockDevice struct {
	size, sector uint64
}

// checkIO validates a positioned transfer of n bytes at off.
func (b *blockDevice) checkIO(off, n uint64) bool {
	return off%b.sector == 0 && n%b.sector == 0 && off <= b.size && n <= b.size-off
}

// init opens the console: fd 0 reads end-of-file, 1 and 2 write to the
// given host files.
func (ft *fdTable) init(stdout, stderr *os.File) error {
	ft.fds = map[int]fdEntry{}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return err
	}
	unix.Close(p[1])
	ft.fds[0] = fdEntry{host: p[0]}
	for gfd, f := range map[int]*os.File{1: stdout, 2: stderr} {
		if f == nil {
			f = os.Stderr
		}
		h, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 3)
		if err != nil {
			return err
		}
		ft.fds[gfd] = fdEntry{host: h}
	}
	return nil
}

// get returns the entry for guest fd.
func (ft *fdTable) get(fd uint64) (fdEntry, bool) {
	if fd >= maxFDs {
		return fdEntry{}, false
	}
	ft.mu.Lock()
	defer ft.mu.Unlock()
	e, ok := ft.fds[int(fd)]
	return e, ok
}

// host returns the host descriptor behind guest fd.
func (ft *fdTable) host(fd uint64) (int, bool) {
	e, ok := ft.get(fd)
	return e.host, ok
}

// install gives e the lowest free guest number >= min. On failure it
// closes e's host descriptor.
func (ft *fdTable) install(e fdEntry, min int) (int, unix.Errno) {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	for fd := min; fd < maxFDs; fd++ {
		if _, used := ft.fds[fd]; !used {
			ft.fds[fd] = e
			return fd, 0
		}
	}
	unix.Close(e.host)
	return -1, unix.EMFILE
}

// installAt puts e at guest number fd, closing what was there (dup2).
func (ft *fdTable) installAt(e fdEntry, fd int) {
	ft.mu.Lock()
	old, had := ft.fds[fd]
	ft.fds[fd] = e
	ft.mu.Unlock()
	if had {
		unix.Close(old.host)
	}
}

// close removes guest fd and closes its host descriptor.
func (ft *fdTable) close(fd uint64) unix.Errno {
	ft.mu.Lock()
	e, ok := ft.fds[int(fd)]
	delete(ft.fds, int(fd))
	ft.mu.Unlock()
	if !ok || fd >= maxFDs {
		return unix.EBADF
	}
	unix.Close(e.host)
	return 0
}

func (ft *fdTable) closeAll() {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	for fd, e := range ft.fds {
		unix.Close(e.host)
		delete(ft.fds, fd)
	}
}
