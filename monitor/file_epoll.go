package monitor

import (
	"time"

	"golang.org/x/sys/unix"
)

// epollFile is an epoll instance the guest made: a host epoll, which
// watches the host descriptors of the guest's pollable files. The guest
// names its files by its own numbers; the monitor passes their host
// descriptors, so the host kernel does the waiting.
type epollFile struct{ hostFD }

var _ pollable = (*epollFile)(nil)

// pollFD makes epoll instances watchable by other epoll instances, as on
// Linux.
func (e *epollFile) pollFD() int { return e.fd }

func sysEpollCreate(t *thread, a sysArgs) (uint64, unix.Errno) {
	if int32(a[0]) <= 0 {
		return 0, unix.EINVAL
	}
	return sysEpollCreate1(t, sysArgs{0})
}

func sysEpollCreate1(t *thread, a sysArgs) (uint64, unix.Errno) {
	if a[0]&^unix.EPOLL_CLOEXEC != 0 {
		return 0, unix.EINVAL
	}
	h, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return 0, errnoOf(err)
	}
	return t.installNew(&epollFile{hostFD{h}})
}

// acquireEpoll returns the epoll instance behind guest fd, with a
// reference the caller must release.
func (t *thread) acquireEpoll(fd uint64) (*openFile, *epollFile, unix.Errno) {
	f, ok := t.vm.fds.acquire(fd)
	if !ok {
		return nil, nil, unix.EBADF
	}
	ep, ok := f.file.(*epollFile)
	if !ok {
		f.release()
		return nil, nil, unix.EINVAL
	}
	return f, ep, 0
}

// sysEpollCtl implements epoll_ctl(epfd, op, fd, event). Files with no
// host readiness (block devices) are refused with EPERM, as Linux refuses
// regular files.
func sysEpollCtl(t *thread, a sysArgs) (uint64, unix.Errno) {
	f, ep, e := t.acquireEpoll(a[0])
	if e != 0 {
		return 0, e
	}
	defer f.release()
	target, ok := t.vm.fds.acquire(a[2])
	if !ok {
		return 0, unix.EBADF
	}
	defer target.release()
	p, ok := target.file.(pollable)
	if !ok {
		return 0, unix.EPERM
	}
	var ev []byte
	if a[1] != unix.EPOLL_CTL_DEL {
		if ev, ok = t.slice(a[3], epollEventSize); !ok {
			return 0, unix.EFAULT
		}
	}
	return 0, hostEpollCtl(ep.fd, int(a[1]), p.pollFD(), ev)
}

// sysEpollWait implements epoll_wait and epoll_pwait (the signal mask
// argument is ignored: signals reach the guest only between calls). A
// wait with a timeout waits in chunks of waitChunk, giving up early when
// the VM ends or a signal is pending.
func sysEpollWait(t *thread, a sysArgs) (uint64, unix.Errno) {
	f, ep, e := t.acquireEpoll(a[0])
	if e != 0 {
		return 0, e
	}
	defer f.release()
	n := int32(a[2])
	if n <= 0 || n > 1<<20 {
		return 0, unix.EINVAL
	}
	b, ok := t.slice(a[1], uint64(n)*epollEventSize)
	if !ok {
		return 0, unix.EFAULT
	}
	timeout := int32(a[3])
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(time.Duration(timeout) * time.Millisecond)
	}
	ms := 0 // the first look never waits
	for {
		r, errno := hostEpollWait(ep.fd, b, ms)
		switch {
		case errno == unix.EINTR:
		case errno != 0:
			return 0, errno
		case r > 0 || timeout == 0 || timeout > 0 && !time.Now().Before(deadline):
			return uint64(r), 0
		}
		if t.interrupted() {
			return 0, unix.EINTR
		}
		ms = int(waitChunk / time.Millisecond)
		if timeout > 0 {
			ms = max(min(ms, int(time.Until(deadline).Milliseconds())+1), 0)
		}
	}
}
