package monitor

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"

	"atoll.dev/atoll/monitor/kvm"
)

// System calls about signals: actions, masks, the alternate stack, return
// from a handler, and sending. Delivery is in signals.go.

// sysRtSigreturn restores the context saved by pushFrame: the handler has
// returned into the restorer, so the ucontext is at the stack pointer.
func sysRtSigreturn(t *thread, _ sysArgs) (uint64, unix.Errno) {
	r := t.cpu.Regs()
	b, ok := t.slice(r.RSP, ucontextSize)
	if !ok {
		t.crash(fmt.Sprintf("rt_sigreturn with a bad frame at %#x", r.RSP), 128+int(unix.SIGSEGV))
		return 0, 0
	}
	le := binary.LittleEndian
	mc := b[mcontextOff:]
	g := func(i int) uint64 { return le.Uint64(mc[8*i:]) }
	flags := (r.R11 &^ fixEflags) | (g(scFlagsWord) & fixEflags) | 2
	*r = kvm.Regs{R8: g(0), R9: g(1), R10: g(2), R11: g(3), R12: g(4), R13: g(5), R14: g(6), R15: g(7),
		RDI: g(8), RSI: g(9), RBP: g(10), RBX: g(11), RDX: g(12), RAX: g(13), RCX: g(14), RSP: g(15),
		RIP: g(16), RFLAGS: flags}
	t.setSigmask(le.Uint64(b[sigmaskOff:]))
	t.ctl = ctlResume
	if n := len(t.fpStack); n > 0 {
		x := t.fpStack[n-1]
		t.fpStack = t.fpStack[:n-1]
		if err := t.cpu.SetXsave(x); err != nil {
			t.crash(fmt.Sprintf("restore FPU state: %v", err), ExitVMFault)
		}
	}
	return 0, 0
}

// sysRtSigaction implements rt_sigaction(sig, act, oldact, sigsetsize).
// The trampoline answers ordinary requests without an exit; this handles
// the rest, on the same table.
func sysRtSigaction(t *thread, a sysArgs) (uint64, unix.Errno) {
	sig := unix.Signal(a[0])
	if sig < 1 || sig > 64 || a[3] != sigsetSize {
		return 0, unix.EINVAL
	}
	// Read the new action before writing the old one: they may share a
	// buffer (sigaction(s, &sa, &sa)).
	var act *sigaction
	if a[1] != 0 {
		if sig == unix.SIGKILL || sig == unix.SIGSTOP {
			return 0, unix.EINVAL
		}
		b, ok := t.slice(a[1], sigactionSize)
		if !ok {
			return 0, unix.EFAULT
		}
		le := binary.LittleEndian
		act = &sigaction{le.Uint64(b), le.Uint64(b[8:]), le.Uint64(b[16:]), le.Uint64(b[24:]) &^ unblockable}
	}
	var old []byte
	if a[2] != 0 {
		var ok bool
		if old, ok = t.slice(a[2], sigactionSize); !ok {
			return 0, unix.EFAULT
		}
	}
	s := &t.vm.sigs
	s.mu.Lock()
	prev := s.get(int(sig))
	if act != nil {
		s.set(int(sig), *act)
	}
	s.mu.Unlock()
	if old != nil {
		le := binary.LittleEndian
		le.PutUint64(old, prev.handler)
		le.PutUint64(old[8:], prev.flags)
		le.PutUint64(old[16:], prev.restorer)
		le.PutUint64(old[24:], prev.mask)
	}
	return 0, 0
}

// sysRtSigprocmask implements rt_sigprocmask(how, set, oldset, sigsetsize).
func sysRtSigprocmask(t *thread, a sysArgs) (uint64, unix.Errno) {
	if a[3] != sigsetSize {
		return 0, unix.EINVAL
	}
	old := t.sigmask()
	if a[1] != 0 {
		b, ok := t.slice(a[1], sigsetSize)
		if !ok {
			return 0, unix.EFAULT
		}
		set := binary.LittleEndian.Uint64(b)
		switch a[0] {
		case unix.SIG_BLOCK:
			t.setSigmask(old | set)
		case unix.SIG_UNBLOCK:
			t.setSigmask(old &^ set)
		case unix.SIG_SETMASK:
			t.setSigmask(set)
		default:
			return 0, unix.EINVAL
		}
	}
	if a[2] != 0 {
		b, ok := t.slice(a[2], sigsetSize)
		if !ok {
			return 0, unix.EFAULT
		}
		binary.LittleEndian.PutUint64(b, old)
	}
	return 0, 0
}

// sysSigaltstack implements sigaltstack(ss, old_ss).
func sysSigaltstack(t *thread, a sysArgs) (uint64, unix.Errno) {
	alt := t.altStack()
	on := alt.on(t.cpu.Regs().RSP)
	var nb, ob []byte
	var ok bool
	if a[0] != 0 {
		if nb, ok = t.slice(a[0], stackTSize); !ok {
			return 0, unix.EFAULT
		}
	}
	if a[1] != 0 {
		if ob, ok = t.slice(a[1], stackTSize); !ok {
			return 0, unix.EFAULT
		}
	}
	var old [stackTSize]byte
	alt.put(old[:], on)
	if nb != nil {
		if on {
			return 0, unix.EPERM
		}
		le := binary.LittleEndian
		sp, fl, size := le.Uint64(nb), int32(le.Uint32(nb[8:])), le.Uint64(nb[16:])
		switch {
		case fl&ssAutodisarm != 0:
			return t.unsupported("SS_AUTODISARM", unix.EINVAL)
		case fl != 0 && fl != ssOnstack && fl != ssDisable:
			return 0, unix.EINVAL
		case fl == ssDisable:
			t.setAltStack(altStack{flags: ssDisable})
		case size < minSigstksz:
			return 0, unix.ENOMEM
		default:
			t.setAltStack(altStack{sp: sp, size: size})
		}
	}
	copy(ob, old[:])
	return 0, 0
}

// put writes the alternate signal stack as a stack_t.
func (s altStack) put(b []byte, onStack bool) {
	le := binary.LittleEndian
	le.PutUint64(b, s.sp)
	flags := s.flags
	if onStack {
		flags |= ssOnstack
	}
	le.PutUint32(b[8:], uint32(flags))
	le.PutUint64(b[16:], s.size)
}

// sysTgkill implements tgkill(tgid, tid, sig).
func sysTgkill(t *thread, a sysArgs) (uint64, unix.Errno) {
	if a[0] != guestPID {
		return 0, unix.ESRCH
	}
	return signalThread(t, int(a[1]), unix.Signal(a[2]))
}

// sysTkill implements tkill(tid, sig).
func sysTkill(t *thread, a sysArgs) (uint64, unix.Errno) {
	return signalThread(t, int(a[0]), unix.Signal(a[1]))
}

// sysKill implements kill(pid, sig) for the guest's own process, which is
// then delivered to the calling thread.
func sysKill(t *thread, a sysArgs) (uint64, unix.Errno) {
	if int64(a[0]) != guestPID && a[0] != 0 {
		return 0, unix.ESRCH
	}
	return signalThread(t, t.tid, unix.Signal(a[1]))
}

// signalThread queues sig for thread tid. A signal to another thread
// kicks it out of the guest; one to the caller is delivered on return
// from this call.
func signalThread(t *thread, tid int, sig unix.Signal) (uint64, unix.Errno) {
	if sig < 0 || sig > 64 {
		return 0, unix.EINVAL
	}
	target := t.vm.thread(tid)
	if target == nil {
		return 0, unix.ESRCH
	}
	if sig == 0 {
		return 0, 0
	}
	target.pending.Or(sigbit(sig))
	if target != t {
		target.cpu.Kick()
		return 0, 0
	}
	t.returnFromCall(0)
	t.ctl = ctlResume
	if !t.deliverPending() {
		t.ctl = ctlStop
	}
	return 0, 0
}

func signalName(sig unix.Signal) string {
	if n := unix.SignalName(sig); n != "" {
		return n
	}
	return fmt.Sprintf("signal %d", sig)
}
