package monitor

import (
	"errors"
	"fmt"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"atoll.dev/atoll/monitor/guestmem"
	"atoll.dev/atoll/monitor/kvm"
)

// vcpu is one guest thread: a KVM vCPU driven by one locked host thread.
type vcpu struct {
	vm  *VM
	cpu *kvm.VCPU
	tid int

	hostTID atomic.Int32  // 0 until the loop starts
	pending atomic.Uint64 // signals queued by other threads (bit sig-1)

	// Owned by the vCPU's own goroutine:
	started  bool // registers in Run are valid (at least one exit seen)
	sigmask  uint64
	altSP    uint64
	altSize  uint64
	altFlags int32
	fpStack  []*kvm.Xsave // FPU state saved at each signal delivery
}

// kick makes the vCPU leave the guest soon: at once if it is in KVM_RUN,
// or when it next tries to enter.
func (t *vcpu) kick() {
	t.cpu.Run.ImmediateExit = 1
	if tid := t.hostTID.Load(); tid != 0 {
		unix.Tgkill(unix.Getpid(), int(tid), unix.SIGURG)
	}
}

// loop runs the vCPU until its thread exits or the VM ends.
func (t *vcpu) loop() {
	defer t.vm.running.Done()
	t.hostTID.Store(int32(lockThread()))
	run := t.cpu.Run
	for !t.vm.exiting() {
		if t.started && !t.trapPending() && !t.deliverPending() {
			return
		}
		err := t.cpu.RunOnce()
		t.started = true
		t.vm.exits.Add(1)
		if errors.Is(err, unix.EINTR) {
			run.ImmediateExit = 0
			t.vm.countOther("interrupted")
			continue
		}
		if err != nil {
			t.crash(fmt.Sprintf("KVM_RUN failed: %v", err), ExitVMFault)
			return
		}
		switch run.ExitReason {
		case kvm.ExitShutdown:
			// Every trap out of the guest arrives here (see boot.go):
			// a system call is the trampoline's trap, anything else a
			// fault.
			if run.Regs.RIP == uint64(trampolineAddr)+trampolineHlt {
				if !t.syscall() {
					return
				}
				continue
			}
			t.vm.countOther("fault")
			if !t.fault() {
				return
			}
		case kvm.ExitIO:
			t.crash(fmt.Sprintf("guest accessed I/O port %#x, which does not exist", run.IO().Port), ExitVMFault)
			return
		case kvm.ExitHLT:
			t.crash("guest executed HLT", ExitVMFault)
			return
		case kvm.ExitMMIO:
			t.crash("guest accessed memory outside its address space", ExitVMFault)
			return
		default:
			t.crash(fmt.Sprintf("unexpected VM exit %d (%#x)", run.ExitReason, run.ExitWords()), ExitVMFault)
			return
		}
	}
}

// trapPending reports whether the guest has trapped but KVM_RUN was
// interrupted before reporting it. The trap (a system call or a fault)
// is then taken first, at its own RIP; signals wait for the next exit.
func (t *vcpu) trapPending() bool {
	if t.cpu.Run.ExitReason != kvm.ExitIntr {
		return false
	}
	var ev kvm.VCPUEvents
	if err := t.cpu.GetEvents(&ev); err != nil {
		return true
	}
	return ev.Flags&kvm.EventValidTripleFault != 0 && ev.TripleFault.Pending != 0 ||
		ev.Exception.Pending != 0 || ev.Exception.Injected != 0
}

// control tells the syscall path what a handler did with the registers.
type control int

const (
	ctlReturn control = iota // return the value to the caller
	ctlResume                // registers were replaced; resume them as is
	ctlStop                  // the thread is gone
)

// sysArgs are a system call's arguments, in the Linux x86-64 order.
type sysArgs [6]uint64

// syscall handles the system call the trampoline trapped on. SYSCALL has
// put the return address in RCX and the flags in R11. It returns false when
// the thread must stop.
func (t *vcpu) syscall() bool {
	r := &t.cpu.Run.Regs
	nr := r.RAX
	if nr < uint64(len(t.vm.sysExits)) {
		t.vm.sysExits[nr].Add(1)
	}
	a := sysArgs{r.RDI, r.RSI, r.RDX, r.R10, r.R8, r.R9}
	var ret uint64
	ctl := ctlReturn
	if e, ok := syscallTable[nr]; ok {
		ret, ctl = e.fn(t, &a)
	} else {
		t.vm.log.printf("unsupported system call %s; answered ENOSYS", syscallName(nr))
		ret = errno(unix.ENOSYS)
	}
	switch ctl {
	case ctlStop:
		return false
	case ctlReturn:
		r.RAX = ret
		r.RIP = r.RCX
		r.RFLAGS = r.R11
	}
	t.cpu.Run.DirtyRegs |= kvm.SyncRegs
	return true
}

func errno(e unix.Errno) uint64 { return uint64(-int64(e)) }

// Exception vectors (Intel SDM vol. 3, 6.3.1).
const (
	vecDE, vecDB, vecBP, vecUD, vecSS, vecGP, vecPF, vecMF, vecAC, vecXM = 0, 1, 3, 6, 12, 13, 14, 16, 17, 19
)

// siginfo codes (include/uapi/asm-generic/siginfo.h).
const (
	siKernel   = 0x80
	siTkill    = -6
	segvMaperr = 1
	segvAccerr = 2
	fpeIntdiv  = 1
	fpeFltinv  = 7
	illIllopn  = 2
	busAdraln  = 1
	trapBrkpt  = 1
)

// fault turns a CPU exception into the signal Linux would send. The guest
// has no exception handlers of its own: an exception becomes a shutdown
// exit, and the vector, error code and CR2 are read back from KVM.
func (t *vcpu) fault() bool {
	var ev kvm.VCPUEvents
	var s kvm.Sregs
	if err := t.cpu.GetEvents(&ev); err != nil {
		t.crash(fmt.Sprintf("triple fault (events unreadable: %v)", err), ExitVMFault)
		return false
	}
	if err := t.cpu.GetSregs(&s); err != nil {
		t.crash(fmt.Sprintf("triple fault (sregs unreadable: %v)", err), ExitVMFault)
		return false
	}
	r := &t.cpu.Run.Regs
	if r.RIP >= uint64(trampolineAddr) && r.RIP < uint64(trampolineAddr)+trampolineHlt {
		// A bad pointer given to a system call the trampoline answers.
		r.RAX = errno(unix.EFAULT)
		r.RIP = r.RCX
		r.RFLAGS = r.R11
		t.cpu.Run.DirtyRegs |= kvm.SyncRegs
		return true
	}
	vec := ev.Exception.Nr
	code := uint64(ev.Exception.ErrorCode)
	f := faultInfo{trapno: uint64(vec), err: code}
	switch vec {
	case vecPF:
		f.sig, f.code, f.addr = unix.SIGSEGV, segvMaperr, s.CR2
		if code&1 != 0 {
			f.code = segvAccerr
		}
		f.cr2 = s.CR2
	case vecGP:
		f.sig, f.code = unix.SIGSEGV, siKernel
	case vecDE:
		f.sig, f.code, f.addr = unix.SIGFPE, fpeIntdiv, r.RIP
	case vecMF, vecXM:
		f.sig, f.code, f.addr = unix.SIGFPE, fpeFltinv, r.RIP
	case vecUD:
		f.sig, f.code, f.addr = unix.SIGILL, illIllopn, r.RIP
	case vecBP, vecDB:
		f.sig, f.code = unix.SIGTRAP, trapBrkpt
	case vecSS, vecAC:
		f.sig, f.code = unix.SIGBUS, busAdraln
	default:
		t.crash(fmt.Sprintf("triple fault with exception vector %d (error code %#x)", vec, code), ExitVMFault)
		return false
	}
	if inMonitorCode(r.RIP) {
		t.crash(fmt.Sprintf("%s in monitor-owned code (vector %d, address %#x)", signalName(f.sig), vec, f.addr), ExitVMFault)
		return false
	}
	return t.deliverFault(f)
}

// inMonitorCode reports whether pc is in monitor-owned code other than the
// vDSO (where, as on Linux, faults are the guest's).
func inMonitorCode(pc uint64) bool {
	return pc >= uint64(guestmem.SystemBase) && pc < uint64(vdsoAddr)
}
