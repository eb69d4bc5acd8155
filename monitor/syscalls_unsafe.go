package monitor

import (
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"atoll.dev/atoll/monitor/kvm"
)

const fsBaseIndex = kvm.MSRFSBase

func fsBase(v uint64) kvm.MSR { return kvm.MSR{Index: fsBaseIndex, Value: v} }

// sysFutex implements FUTEX_WAIT and FUTEX_WAKE (private or not) on the
// host futex of the guest word: every vCPU is a thread of this process.
func sysFutex(t *vcpu, a *sysArgs) (uint64, control) {
	op := a[1] &^ futexPrivateFlag
	if a[0]%4 != 0 {
		return fail(unix.EINVAL)
	}
	w, ok := t.slice(a[0], 4)
	if !ok {
		return fail(unix.EFAULT)
	}
	addr := uintptr(unsafe.Pointer(&w[0]))
	switch op {
	case futexWake:
		n, _, e := unix.Syscall6(unix.SYS_FUTEX, addr, futexWake|futexPrivateFlag, uintptr(uint32(a[2])), 0, 0, 0)
		if e != 0 {
			return fail(e)
		}
		return uint64(n), ctlReturn
	case futexWait:
	default:
		t.vm.log.printf("futex operation %d: not supported; answered ENOSYS", op)
		return fail(unix.ENOSYS)
	}
	var deadline time.Time
	if a[3] != 0 {
		d, ok := readTimespec(t, a[3])
		if !ok {
			return fail(unix.EFAULT)
		}
		if d < 0 {
			return fail(unix.EINVAL)
		}
		deadline = time.Now().Add(d)
	}
	for {
		chunk := waitChunk
		if !deadline.IsZero() {
			left := time.Until(deadline)
			if left <= 0 {
				return fail(unix.ETIMEDOUT)
			}
			chunk = min(chunk, left)
		}
		ts := unix.NsecToTimespec(int64(chunk))
		_, _, e := unix.Syscall6(unix.SYS_FUTEX, addr, futexWait|futexPrivateFlag, uintptr(uint32(a[2])),
			uintptr(unsafe.Pointer(&ts)), 0, 0)
		switch e {
		case 0, unix.EAGAIN:
			return errnoOrZero(e)
		case unix.ETIMEDOUT, unix.EINTR:
			if t.interrupted() {
				return fail(unix.EINTR)
			}
		default:
			return fail(e)
		}
	}
}

// epollEventSize is sizeof(struct epoll_event) on x86-64 (packed).
const epollEventSize = 12

func sysEpollCtl(t *vcpu, a *sysArgs) (uint64, control) {
	ep, ok := t.vm.fds.acquire(a[0])
	if !ok {
		return fail(unix.EBADF)
	}
	defer ep.release()
	f, ok := t.vm.fds.acquire(a[2])
	if !ok {
		return fail(unix.EBADF)
	}
	defer f.release()
	var ev uintptr
	if a[1] != unix.EPOLL_CTL_DEL {
		b, ok := t.slice(a[3], epollEventSize)
		if !ok {
			return fail(unix.EFAULT)
		}
		ev = uintptr(unsafe.Pointer(&b[0]))
	}
	_, _, e := unix.Syscall6(unix.SYS_EPOLL_CTL, uintptr(ep.host), uintptr(a[1]), uintptr(f.host), ev, 0, 0)
	return errnoOrZero(e)
}

// sysEpollWait implements epoll_wait and epoll_pwait (the signal mask
// argument is ignored: signals reach the guest only between calls).
func sysEpollWait(t *vcpu, a *sysArgs) (uint64, control) {
	ep, ok := t.vm.fds.acquire(a[0])
	if !ok {
		return fail(unix.EBADF)
	}
	defer ep.release()
	n := int32(a[2])
	if n <= 0 || n > 1<<20 {
		return fail(unix.EINVAL)
	}
	b, ok := t.slice(a[1], uint64(n)*epollEventSize)
	if !ok {
		return fail(unix.EFAULT)
	}
	timeout := int32(a[3])
	var deadline time.Time
	if timeout >= 0 {
		deadline = time.Now().Add(time.Duration(timeout) * time.Millisecond)
	}
	for {
		ms := int(waitChunk / time.Millisecond)
		if timeout >= 0 {
			ms = min(ms, int(time.Until(deadline).Milliseconds()))
			ms = max(ms, 0)
		}
		r, _, e := unix.Syscall6(unix.SYS_EPOLL_WAIT, uintptr(ep.host), uintptr(unsafe.Pointer(&b[0])), uintptr(n), uintptr(ms), 0, 0)
		switch {
		case e == unix.EINTR:
		case e != 0:
			return fail(e)
		case r > 0 || (timeout >= 0 && !time.Now().Before(deadline)):
			return uint64(r), ctlReturn
		}
		if t.interrupted() {
			return fail(unix.EINTR)
		}
	}
}

func sysFstat(t *vcpu, a *sysArgs) (uint64, control) {
	f, ok := t.vm.fds.acquire(a[0])
	if !ok {
		return fail(unix.EBADF)
	}
	defer f.release()
	var st unix.Stat_t
	b, ok := t.slice(a[1], uint64(unsafe.Sizeof(st)))
	if !ok {
		return fail(unix.EFAULT)
	}
	if err := unix.Fstat(f.host, &st); err != nil {
		return ret(0, err)
	}
	copy(b, unsafe.Slice((*byte)(unsafe.Pointer(&st)), unsafe.Sizeof(st)))
	return 0, ctlReturn
}

// futex operations (include/uapi/linux/futex.h).
const (
	futexWait        = 0
	futexWake        = 1
	futexPrivateFlag = 128
)
