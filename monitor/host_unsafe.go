package monitor

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// Host system calls that take pointers into guest memory. Each buffer is
// a slice from guestmem.(*Memory).Slice, already checked to lie in guest
// memory and to be long enough for the call.

// hostEpollCtl runs epoll_ctl on the host with the guest's epoll_event ev
// (nil for EPOLL_CTL_DEL).
func hostEpollCtl(epfd, op, fd int, ev []byte) unix.Errno {
	var p unsafe.Pointer
	if ev != nil {
		_ = ev[epollEventSize-1]
		p = unsafe.Pointer(&ev[0])
	}
	_, _, e := unix.Syscall6(unix.SYS_EPOLL_CTL, uintptr(epfd), uintptr(op), uintptr(fd), uintptr(p), 0, 0)
	return e
}

// hostEpollWait runs epoll_wait on the host into events, a whole number of
// guest epoll_events, waiting at most ms milliseconds.
func hostEpollWait(epfd int, events []byte, ms int) (int, unix.Errno) {
	n := len(events) / epollEventSize
	r, _, e := unix.Syscall6(unix.SYS_EPOLL_WAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(n), uintptr(ms), 0, 0)
	return int(r), e
}

// hostMmsg runs recvmmsg or sendmmsg (nr) on the host; hdrs point into
// guest memory.
func hostMmsg(fd int, nr uintptr, hdrs []unix.Mmsghdr, flags uint64) (int, unix.Errno) {
	r, _, e := unix.Syscall6(nr, uintptr(fd), uintptr(unsafe.Pointer(&hdrs[0])), uintptr(len(hdrs)), uintptr(flags), 0, 0)
	return int(r), e
}

// hostFutexWake wakes up to n waiters on the host futex of the guest word w.
func hostFutexWake(w []byte, n uint32) (int, unix.Errno) {
	_ = w[3]
	r, _, e := unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(&w[0])), futexWake|futexPrivateFlag, uintptr(n), 0, 0, 0)
	return int(r), e
}

// hostFutexWait waits on the host futex of the guest word w while it holds
// val, for at most timeout.
func hostFutexWait(w []byte, val uint32, timeout unix.Timespec) unix.Errno {
	_ = w[3]
	_, _, e := unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(&w[0])), futexWait|futexPrivateFlag, uintptr(val),
		uintptr(unsafe.Pointer(&timeout)), 0, 0)
	return e
}

// statxBytes returns x as the bytes of the guest's struct statx.
func statxBytes(x *unix.Statx_t) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(x)), unsafe.Sizeof(*x))
}

// statfsBytes returns st as the bytes of the guest's struct statfs.
func statfsBytes(st *unix.Statfs_t) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(st)), unsafe.Sizeof(*st))
}

// statBytes returns st as the bytes of the guest's struct stat.
func statBytes(st *unix.Stat_t) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(st)), unsafe.Sizeof(*st))
}

// hostSetsockopt sets a host socket option to the bytes val.
func hostSetsockopt(fd, level, name int, val []byte) unix.Errno {
	var p unsafe.Pointer
	if len(val) > 0 {
		p = unsafe.Pointer(&val[0])
	}
	_, _, e := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), uintptr(level), uintptr(name), uintptr(p), uintptr(len(val)), 0)
	return e
}

// hostGetsockopt reads a host socket option into buf and returns its
// length.
func hostGetsockopt(fd, level, name int, buf []byte) (int, unix.Errno) {
	var p unsafe.Pointer
	if len(buf) > 0 {
		p = unsafe.Pointer(&buf[0])
	}
	n := uint32(len(buf))
	_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), uintptr(level), uintptr(name), uintptr(p), uintptr(unsafe.Pointer(&n)), 0)
	return int(n), e
}

// hostDisconnect dissolves a UDP socket's association: connect to an
// AF_UNSPEC address.
func hostDisconnect(fd int) unix.Errno {
	sa := unix.RawSockaddr{Family: unix.AF_UNSPEC}
	_, _, e := unix.Syscall(unix.SYS_CONNECT, uintptr(fd), uintptr(unsafe.Pointer(&sa)), unsafe.Sizeof(sa))
	return e
}
