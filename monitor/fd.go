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
// monitor created for it (console, pipe, eventfd, epoll) — never a host
// file the guest chose.
type fdTable struct {
	mu  sync.Mutex
	fds map[int]int // guest fd → host fd
}

// init opens the console: fd 0 reads end-of-file, 1 and 2 write to the
// given host files.
func (ft *fdTable) init(stdout, stderr *os.File) error {
	ft.fds = map[int]int{}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return err
	}
	unix.Close(p[1])
	ft.fds[0] = p[0]
	for gfd, f := range map[int]*os.File{1: stdout, 2: stderr} {
		if f == nil {
			f = os.Stderr
		}
		h, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 3)
		if err != nil {
			return err
		}
		ft.fds[gfd] = h
	}
	return nil
}

// host returns the host descriptor behind guest fd.
func (ft *fdTable) host(fd uint64) (int, bool) {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	h, ok := ft.fds[int(fd)]
	return h, ok && fd < maxFDs
}

// install gives host descriptor h the lowest free guest number >= min.
func (ft *fdTable) install(h, min int) (int, unix.Errno) {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	for fd := min; fd < maxFDs; fd++ {
		if _, used := ft.fds[fd]; !used {
			ft.fds[fd] = h
			return fd, 0
		}
	}
	unix.Close(h)
	return -1, unix.EMFILE
}

// installAt puts h at guest number fd, closing what was there (dup2).
func (ft *fdTable) installAt(h, fd int) {
	ft.mu.Lock()
	old, had := ft.fds[fd]
	ft.fds[fd] = h
	ft.mu.Unlock()
	if had {
		unix.Close(old)
	}
}

// close removes guest fd and closes its host descriptor.
func (ft *fdTable) close(fd uint64) unix.Errno {
	ft.mu.Lock()
	h, ok := ft.fds[int(fd)]
	delete(ft.fds, int(fd))
	ft.mu.Unlock()
	if !ok || fd >= maxFDs {
		return unix.EBADF
	}
	unix.Close(h)
	return 0
}

func (ft *fdTable) closeAll() {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	for fd, h := range ft.fds {
		unix.Close(h)
		delete(ft.fds, fd)
	}
}
