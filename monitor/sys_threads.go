package monitor

import (
	"encoding/binary"
	"time"

	"golang.org/x/sys/unix"

	"atoll.dev/atoll/monitor/kvm"
)

// System calls about threads: each guest thread is a vCPU (thread.go).

func sysGettid(t *thread, _ sysArgs) (uint64, unix.Errno) { return uint64(t.tid), 0 }

// sysArchPrctl implements ARCH_SET_FS and ARCH_GET_FS.
func sysArchPrctl(t *thread, a sysArgs) (uint64, unix.Errno) {
	switch a[0] {
	case archSetFS:
		if err := t.cpu.SetMSRs(kvm.MSR{Index: kvm.MSRFSBase, Value: a[1]}); err != nil {
			return 0, unix.EPERM
		}
		return 0, 0
	case archGetFS:
		b, ok := t.slice(a[1], 8)
		if !ok {
			return 0, unix.EFAULT
		}
		v, err := t.cpu.GetMSR(kvm.MSRFSBase)
		if err != nil {
			return 0, unix.EIO
		}
		binary.LittleEndian.PutUint64(b, v)
		return 0, 0
	}
	return t.unsupported("another operation", unix.EINVAL)
}

// sysSchedGetaffinity reports --cpus processors, which is what GOMAXPROCS
// follows, for the calling thread (pid 0) or another of the guest's. The
// trampoline answers the calling thread's from its block.
func sysSchedGetaffinity(t *thread, a sysArgs) (uint64, unix.Errno) {
	if a[1] < 8 || a[1]%8 != 0 {
		return 0, unix.EINVAL
	}
	if a[0] != 0 && t.vm.thread(int(a[0])) == nil {
		return 0, unix.ESRCH
	}
	b, ok := t.slice(a[2], 8)
	if !ok {
		return 0, unix.EFAULT
	}
	binary.LittleEndian.PutUint64(b, t.block.get(tbCPUs))
	return 8, 0
}

func sysSchedYield(*thread, sysArgs) (uint64, unix.Errno) {
	unix.Syscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
	return 0, 0
}

// sysExit ends the calling thread; the last one ends the VM.
func sysExit(t *thread, a sysArgs) (uint64, unix.Errno) {
	t.vm.exitThread(t, int(a[0]&0xff))
	t.ctl = ctlStop
	return 0, 0
}

// sysExitGroup ends the VM with the status's low 8 bits.
func sysExitGroup(t *thread, a sysArgs) (uint64, unix.Errno) {
	t.vm.exit(int(a[0] & 0xff))
	t.ctl = ctlStop
	return 0, 0
}

const cloneThreadFlags = unix.CLONE_VM | unix.CLONE_THREAD | unix.CLONE_SIGHAND

// sysClone creates a thread: a new vCPU that starts where the parent
// returns, with RAX = 0, the given stack and TLS.
func sysClone(t *thread, a sysArgs) (uint64, unix.Errno) {
	flags := a[0]
	if flags&cloneThreadFlags != cloneThreadFlags {
		return t.unsupported("a new process (no CLONE_VM|CLONE_THREAD|CLONE_SIGHAND)", unix.ENOSYS)
	}
	if flags&(unix.CLONE_CHILD_CLEARTID|unix.CLONE_CHILD_SETTID) != 0 {
		return t.unsupported("CLONE_CHILD_SETTID or CLONE_CHILD_CLEARTID", unix.EINVAL)
	}
	fs := a[4]
	if flags&unix.CLONE_SETTLS == 0 {
		v, err := t.cpu.GetMSR(kvm.MSRFSBase)
		if err != nil {
			return 0, unix.EAGAIN
		}
		fs = v
	}
	var ptid []byte
	if flags&unix.CLONE_PARENT_SETTID != 0 {
		var ok bool
		if ptid, ok = t.slice(a[2], 4); !ok {
			return 0, unix.EFAULT
		}
	}
	regs := *t.cpu.Regs()
	regs.RAX = 0
	regs.RIP = regs.RCX
	regs.RFLAGS = regs.R11
	if a[1] != 0 {
		regs.RSP = a[1]
	}
	child, err := t.vm.newThread(&regs, fs)
	if err != nil {
		t.vm.log.printf("clone: %v", err)
		return 0, unix.EAGAIN
	}
	child.setSigmask(t.sigmask())
	if ptid != nil {
		binary.LittleEndian.PutUint32(ptid, uint32(child.tid))
	}
	t.vm.mach.start(child)
	return uint64(child.tid), 0
}

// sysFutex implements FUTEX_WAIT and FUTEX_WAKE (private or not) on the
// host futex of the guest word: every vCPU is a thread of this process.
// A wait gives up with EINTR when a signal is pending or the VM ends.
func sysFutex(t *thread, a sysArgs) (uint64, unix.Errno) {
	op := a[1] &^ futexPrivateFlag
	if a[0]%4 != 0 {
		return 0, unix.EINVAL
	}
	w, ok := t.slice(a[0], 4)
	if !ok {
		return 0, unix.EFAULT
	}
	switch op {
	case futexWake:
		n, e := hostFutexWake(w, uint32(a[2]))
		return uint64(n), e
	case futexWait:
	default:
		return t.unsupported("another operation", unix.ENOSYS)
	}
	var deadline time.Time
	if a[3] != 0 {
		d, ok := readTimespec(t, a[3])
		if !ok {
			return 0, unix.EFAULT
		}
		if d < 0 {
			return 0, unix.EINVAL
		}
		deadline = time.Now().Add(d)
	}
	for {
		if t.interrupted() {
			return 0, unix.EINTR
		}
		chunk := waitChunk
		if !deadline.IsZero() {
			left := time.Until(deadline)
			if left <= 0 {
				return 0, unix.ETIMEDOUT
			}
			chunk = min(chunk, left)
		}
		switch e := hostFutexWait(w, uint32(a[2]), unix.NsecToTimespec(int64(chunk))); e {
		case 0, unix.EAGAIN:
			return 0, e
		case unix.ETIMEDOUT, unix.EINTR:
		default:
			return 0, e
		}
	}
}
