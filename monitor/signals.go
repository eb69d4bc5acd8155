package monitor

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"

	"atoll.dev/atoll/monitor/guestmem"
	"atoll.dev/atoll/monitor/kvm"
)

// sigaction mirrors the kernel's struct sigaction on x86-64.
type sigaction struct {
	handler, flags, restorer, mask uint64
}

const (
	sigDfl = 0
	sigIgn = 1

	saOnstack   = 0x08000000
	saRestorer  = 0x04000000
	saNodefer   = 0x40000000
	saResethand = 0x80000000

	// maxFPSaves bounds the FPU states kept for nested signal frames.
	maxFPSaves = 64

	// Frame sizes of the x86-64 rt_sigframe (arch/x86/include/asm/sigframe.h).
	ucontextSize = 304 // uc_flags, uc_link, uc_stack, uc_mcontext, uc_sigmask
	siginfoSize  = 128
	frameSize    = 8 + ucontextSize + siginfoSize
	mcontextOff  = 40 // offset of uc_mcontext in ucontext
	sigmaskOff   = 296
	redZone      = 128

	// RFLAGS bits a signal handler may change (Linux FIX_EFLAGS).
	fixEflags = 0x50dd5
)

func sigbit(sig unix.Signal) uint64 { return 1 << (uint(sig) - 1) }

// unblockable signals can never be masked.
var unblockable = sigbit(unix.SIGKILL) | sigbit(unix.SIGSTOP)

// faultInfo is a synchronous signal raised by a CPU exception.
type faultInfo struct {
	sig                    unix.Signal
	code                   int32
	addr, trapno, err, cr2 uint64
}

// deliverFault delivers a synchronous signal. A fault that is blocked, has
// no handler or cannot be delivered ends the VM with a crash report.
func (t *vcpu) deliverFault(f faultInfo) bool {
	h := t.vm.handler(int(f.sig))
	if h.handler == sigDfl || h.handler == sigIgn || t.sigmask&sigbit(f.sig) != 0 {
		t.crash(fmt.Sprintf("%s at pc %#x (address %#x), and the guest has no handler for it", signalName(f.sig), t.cpu.Run.Regs.RIP, f.addr), 128+int(f.sig))
		return false
	}
	var info [siginfoSize]byte
	putSiginfo(info[:], f.sig, f.code)
	binary.LittleEndian.PutUint64(info[16:], f.addr)
	if err := t.pushFrame(f.sig, h, info[:], f); err != nil {
		t.crash(fmt.Sprintf("%s at pc %#x could not be delivered: %v", signalName(f.sig), t.cpu.Run.Regs.RIP, err), 128+int(f.sig))
		return false
	}
	return true
}

// deliverPending delivers the lowest queued, unblocked signal, if any. It
// returns false when the signal's default action ended the VM.
func (t *vcpu) deliverPending() bool {
	for {
		p := t.pending.Load() &^ t.sigmask
		if p == 0 {
			return true
		}
		var sig unix.Signal
		for sig = 1; p&sigbit(sig) == 0; sig++ {
		}
		t.pending.And(^sigbit(sig))
		h := t.vm.handler(int(sig))
		switch {
		case h.handler == sigIgn:
			continue
		case h.handler == sigDfl:
			if ignoredByDefault(sig) {
				continue
			}
			fmt.Fprintf(t.vm.cfg.Log, "atoll: guest killed by %s\n", signalName(sig))
			t.vm.exit(128 + int(sig))
			return false
		}
		var info [siginfoSize]byte
		putSiginfo(info[:], sig, siTkill)
		binary.LittleEndian.PutUint32(info[16:], guestPID)
		if err := t.pushFrame(sig, h, info[:], faultInfo{}); err != nil {
			t.crash(fmt.Sprintf("%s could not be delivered: %v", signalName(sig), err), 128+int(sig))
			return false
		}
		return true
	}
}

func ignoredByDefault(sig unix.Signal) bool {
	switch sig {
	case unix.SIGURG, unix.SIGCHLD, unix.SIGWINCH, unix.SIGCONT:
		return true
	}
	return false
}

func putSiginfo(b []byte, sig unix.Signal, code int32) {
	binary.LittleEndian.PutUint32(b[0:], uint32(sig))
	binary.LittleEndian.PutUint32(b[8:], uint32(code))
}

// pushFrame builds a Linux rt_sigframe for sig and points the vCPU at the
// handler, exactly as the kernel does on return to user space.
func (t *vcpu) pushFrame(sig unix.Signal, h sigaction, info []byte, f faultInfo) error {
	if h.flags&saRestorer == 0 {
		return fmt.Errorf("handler has no SA_RESTORER")
	}
	r := &t.cpu.Run.Regs
	sp := r.RSP - redZone
	if h.flags&saOnstack != 0 && t.altFlags&ssDisable == 0 && !t.onAltStack(r.RSP) {
		sp = t.altSP + t.altSize
	}
	frame := (sp-frameSize)&^15 - 8
	b, err := t.vm.mem.Slice(guestmem.GuestAddr(frame), frameSize)
	if err != nil {
		return fmt.Errorf("signal stack at %#x is not guest memory", frame)
	}
	clear(b)
	le := binary.LittleEndian
	le.PutUint64(b[0:], h.restorer)
	uc := b[8 : 8+ucontextSize]
	le.PutUint64(uc[16:], t.altSP)
	flags := t.altFlags
	if t.onAltStack(r.RSP) {
		flags |= ssOnstack
	}
	le.PutUint32(uc[24:], uint32(flags))
	le.PutUint64(uc[32:], t.altSize)
	mc := uc[mcontextOff:]
	for i, v := range []uint64{r.R8, r.R9, r.R10, r.R11, r.R12, r.R13, r.R14, r.R15,
		r.RDI, r.RSI, r.RBP, r.RBX, r.RDX, r.RAX, r.RCX, r.RSP, r.RIP, r.RFLAGS} {
		le.PutUint64(mc[8*i:], v)
	}
	le.PutUint16(mc[144:], 0x33) // cs: Linux's __USER_CS
	le.PutUint64(mc[152:], f.err)
	le.PutUint64(mc[160:], f.trapno)
	le.PutUint64(mc[168:], t.sigmask)
	le.PutUint64(mc[176:], f.cr2)
	le.PutUint64(uc[sigmaskOff:], t.sigmask)
	copy(b[8+ucontextSize:], info)

	x := new(kvm.Xsave)
	if err := t.cpu.GetXsave(x); err != nil {
		return fmt.Errorf("save FPU state: %w", err)
	}
	// A handler that never returns (longjmps away) leaves its entry
	// behind; keep the newest maxFPSaves so that cannot grow without end.
	if len(t.fpStack) == maxFPSaves {
		t.fpStack = append(t.fpStack[:0], t.fpStack[1:]...)
	}
	t.fpStack = append(t.fpStack, x)

	t.sigmask |= h.mask
	if h.flags&saNodefer == 0 {
		t.sigmask |= sigbit(sig)
	}
	t.sigmask &^= unblockable
	if h.flags&saResethand != 0 {
		t.vm.sigMu.Lock()
		t.vm.setHandler(int(sig), sigaction{})
		t.vm.sigMu.Unlock()
	}
	r.RSP = frame
	r.RIP = h.handler
	r.RDI = uint64(sig)
	r.RSI = frame + 8 + ucontextSize
	r.RDX = frame + 8
	r.RAX = 0
	r.RFLAGS &^= 0x400 | 0x100 | 0x40000 // DF, TF, AC
	t.cpu.Run.DirtyRegs |= kvm.SyncRegs
	return nil
}

func (t *vcpu) onAltStack(sp uint64) bool {
	return t.altFlags&ssDisable == 0 && sp > t.altSP && sp <= t.altSP+t.altSize
}

// sysRtSigreturn restores the context saved by pushFrame: the handler has
// returned into the restorer, so the ucontext is at the stack pointer.
func sysRtSigreturn(t *vcpu, _ *sysArgs) (uint64, control) {
	r := &t.cpu.Run.Regs
	b, err := t.vm.mem.Slice(guestmem.GuestAddr(r.RSP), ucontextSize)
	if err != nil {
		t.crash(fmt.Sprintf("rt_sigreturn with a bad frame at %#x", r.RSP), 128+int(unix.SIGSEGV))
		return 0, ctlStop
	}
	le := binary.LittleEndian
	mc := b[mcontextOff:]
	g := func(i int) uint64 { return le.Uint64(mc[8*i:]) }
	flags := (r.R11 &^ fixEflags) | (g(17) & fixEflags) | 2
	*r = kvm.Regs{R8: g(0), R9: g(1), R10: g(2), R11: g(3), R12: g(4), R13: g(5), R14: g(6), R15: g(7),
		RDI: g(8), RSI: g(9), RBP: g(10), RBX: g(11), RDX: g(12), RAX: g(13), RCX: g(14), RSP: g(15),
		RIP: g(16), RFLAGS: flags}
	t.sigmask = le.Uint64(b[sigmaskOff:]) &^ unblockable
	if n := len(t.fpStack); n > 0 {
		x := t.fpStack[n-1]
		t.fpStack = t.fpStack[:n-1]
		if err := t.cpu.SetXsave(x); err != nil {
			t.crash(fmt.Sprintf("restore FPU state: %v", err), ExitVMFault)
			return 0, ctlStop
		}
	}
	return 0, ctlResume
}

// sysRtSigaction implements rt_sigaction(sig, act, oldact, sigsetsize).
func sysRtSigaction(t *vcpu, a *sysArgs) (uint64, control) {
	sig := unix.Signal(a[0])
	if sig < 1 || sig > 64 || a[3] != 8 {
		return errno(unix.EINVAL), ctlReturn
	}
	v := t.vm
	// Read the new action before writing the old one: they may share a
	// buffer (sigaction(s, &sa, &sa)).
	var act *sigaction
	if a[1] != 0 {
		if sig == unix.SIGKILL || sig == unix.SIGSTOP {
			return errno(unix.EINVAL), ctlReturn
		}
		b, err := v.mem.Slice(guestmem.GuestAddr(a[1]), 32)
		if err != nil {
			return errno(unix.EFAULT), ctlReturn
		}
		le := binary.LittleEndian
		act = &sigaction{le.Uint64(b), le.Uint64(b[8:]), le.Uint64(b[16:]), le.Uint64(b[24:]) &^ unblockable}
	}
	var old []byte
	if a[2] != 0 {
		b, err := v.mem.Slice(guestmem.GuestAddr(a[2]), 32)
		if err != nil {
			return errno(unix.EFAULT), ctlReturn
		}
		old = b
	}
	v.sigMu.Lock()
	prev := v.handler(int(sig))
	if act != nil {
		v.setHandler(int(sig), *act)
	}
	v.sigMu.Unlock()
	if old != nil {
		putSigaction(old, prev)
	}
	return 0, ctlReturn
}

func putSigaction(b []byte, h sigaction) {
	le := binary.LittleEndian
	le.PutUint64(b, h.handler)
	le.PutUint64(b[8:], h.flags)
	le.PutUint64(b[16:], h.restorer)
	le.PutUint64(b[24:], h.mask)
}

// sysRtSigprocmask implements rt_sigprocmask(how, set, oldset, sigsetsize).
func sysRtSigprocmask(t *vcpu, a *sysArgs) (uint64, control) {
	if a[3] != 8 {
		return errno(unix.EINVAL), ctlReturn
	}
	old := t.sigmask
	if a[1] != 0 {
		set, err := t.vm.mem.ReadU64(guestmem.GuestAddr(a[1]))
		if err != nil {
			return errno(unix.EFAULT), ctlReturn
		}
		switch a[0] {
		case unix.SIG_BLOCK:
			t.sigmask |= set
		case unix.SIG_UNBLOCK:
			t.sigmask &^= set
		case unix.SIG_SETMASK:
			t.sigmask = set
		default:
			return errno(unix.EINVAL), ctlReturn
		}
		t.sigmask &^= unblockable
	}
	if a[2] != 0 {
		if err := t.vm.mem.WriteU64(guestmem.GuestAddr(a[2]), old); err != nil {
			return errno(unix.EFAULT), ctlReturn
		}
	}
	return 0, ctlReturn
}

// sysSigaltstack implements sigaltstack(ss, old_ss).
func sysSigaltstack(t *vcpu, a *sysArgs) (uint64, control) {
	m := t.vm.mem
	on := t.onAltStack(t.cpu.Run.Regs.RSP)
	var nb, ob []byte
	var err error
	if a[0] != 0 {
		if nb, err = m.Slice(guestmem.GuestAddr(a[0]), 24); err != nil {
			return errno(unix.EFAULT), ctlReturn
		}
	}
	if a[1] != 0 {
		if ob, err = m.Slice(guestmem.GuestAddr(a[1]), 24); err != nil {
			return errno(unix.EFAULT), ctlReturn
		}
	}
	le := binary.LittleEndian
	var old [24]byte
	le.PutUint64(old[0:], t.altSP)
	flags := t.altFlags
	if on {
		flags |= ssOnstack
	}
	le.PutUint32(old[8:], uint32(flags))
	le.PutUint64(old[16:], t.altSize)
	if nb != nil {
		if on {
			return errno(unix.EPERM), ctlReturn
		}
		sp, fl, size := le.Uint64(nb), int32(le.Uint32(nb[8:])), le.Uint64(nb[16:])
		switch {
		case fl&ssDisable != 0:
			t.altSP, t.altSize, t.altFlags = 0, 0, ssDisable
		case fl&^ssOnstack != 0:
			return errno(unix.EINVAL), ctlReturn
		case size < minSigstksz:
			return errno(unix.ENOMEM), ctlReturn
		default:
			t.altSP, t.altSize, t.altFlags = sp, size, 0
		}
	}
	copy(ob, old[:])
	return 0, ctlReturn
}

// sysTgkill implements tgkill(tgid, tid, sig); tkill and kill share it.
func sysTgkill(t *vcpu, a *sysArgs) (uint64, control) {
	if a[0] != guestPID {
		return errno(unix.ESRCH), ctlReturn
	}
	return signalThread(t, int(a[1]), unix.Signal(a[2]))
}

func sysTkill(t *vcpu, a *sysArgs) (uint64, control) {
	return signalThread(t, int(a[0]), unix.Signal(a[1]))
}

func sysKill(t *vcpu, a *sysArgs) (uint64, control) {
	if int64(a[0]) != guestPID && a[0] != 0 {
		return errno(unix.ESRCH), ctlReturn
	}
	return signalThread(t, t.tid, unix.Signal(a[1]))
}

func signalThread(t *vcpu, tid int, sig unix.Signal) (uint64, control) {
	if sig < 0 || sig > 64 {
		return errno(unix.EINVAL), ctlReturn
	}
	target := t.vm.thread(tid)
	if target == nil {
		return errno(unix.ESRCH), ctlReturn
	}
	if sig == 0 {
		return 0, ctlReturn
	}
	target.pending.Or(sigbit(sig))
	if target != t {
		target.kick()
		return 0, ctlReturn
	}
	// A signal to oneself is delivered on return from this call.
	t.cpu.Run.Regs.RAX = 0
	t.cpu.Run.Regs.RIP = t.cpu.Run.Regs.RCX
	t.cpu.Run.Regs.RFLAGS = t.cpu.Run.Regs.R11
	if !t.deliverPending() {
		return 0, ctlStop
	}
	return 0, ctlResume
}

func signalName(sig unix.Signal) string {
	if n := unix.SignalName(sig); n != "" {
		return n
	}
	return fmt.Sprintf("signal %d", sig)
}

// sigaltstack flags (include/uapi/linux/signal.h).
const (
	ssOnstack   = 1
	ssDisable   = 2
	minSigstksz = 2048
)
