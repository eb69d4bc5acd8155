package monitor

import (
	"fmt"

	"golang.org/x/sys/unix"

	"atoll.dev/atoll/monitor/guestmem"
	"atoll.dev/atoll/monitor/kvm"
)

// Exception vectors (Intel SDM vol. 3, 6.3.1).
const (
	vecDE, vecDB, vecBP, vecUD, vecSS, vecGP, vecPF, vecMF, vecAC, vecXM = 0, 1, 3, 6, 12, 13, 14, 16, 17, 19
)

// fault handles a trap out of the guest on the paravirtual exit path: the
// guest has no exception handlers there, so an exception becomes a
// shutdown exit, and the vector, error code and CR2 are read back from the
// vCPU. It returns false when the thread must stop.
func (t *thread) fault() bool {
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
	vec, code := int(ev.Exception.Nr), uint64(ev.Exception.ErrorCode)
	if held, ok := t.demand(vec, code, s.CR2); held {
		return ok // retried with the registers as they are
	}
	return t.exception(vec, code, s.CR2, true)
}

// inFastPath reports whether pc is in the trampoline's fast paths, before
// its trapping hlts, where a fault is a bad pointer the guest passed. Their
// sysretq is not: a fault there (a return address that is not canonical)
// is the program's own.
func inFastPath(pc uint64) bool {
	return pc >= uint64(trampolineAddr) && pc < uint64(trampolineAddr)+trampolineDeliver && pc != uint64(trampolineAddr)+trampolineSysret
}

// exception turns CPU exception vec, with its error code and CR2, into the
// signal Linux would send; the registers are the program's at the fault.
// A fault inside the trampoline's fast path is a bad pointer given to the
// system call it answers, when fastPath says the fast path was running
// (the stub ran at CPL 0 on the hardware path; on the paravirtual path
// nothing tells). It returns false when the thread must stop.
func (t *thread) exception(vec int, code, cr2 uint64, fastPath bool) bool {
	r := t.cpu.Regs()
	if fastPath && inFastPath(r.RIP) {
		t.returnFromCall(negErrno(unix.EFAULT))
		return true
	}
	f := faultInfo{trapno: uint64(vec), err: code}
	switch vec {
	case vecPF:
		f.sig, f.code, f.addr = unix.SIGSEGV, segvMaperr, cr2
		if code&1 != 0 {
			f.code = segvAccerr
		}
		f.cr2 = cr2
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
		t.crash(fmt.Sprintf("CPU exception vector %d (error code %#x)", vec, code), ExitVMFault)
		return false
	}
	if inMonitorCode(r.RIP) {
		t.crash(fmt.Sprintf("%s in monitor-owned code (vector %d, address %#x)", signalName(f.sig), vec, f.addr), ExitVMFault)
		return false
	}
	return t.deliverFault(f)
}

// pfPresent is the page-fault error code's bit for a fault on a present
// page (a protection violation, not a missing page).
const pfPresent = 1 << 0

// demand answers a page fault on a page not present that the guest may
// hold (guestmem/hold.go): held says the fault is answered — the access
// can be retried, or, when ok is false, the guest is out of memory and
// the VM ended. Any other fault is the guest's own.
func (t *thread) demand(vec int, code, cr2 uint64) (held, ok bool) {
	if vec != vecPF || code&pfPresent != 0 {
		return false, true
	}
	switch t.vm.mem.Hold(guestmem.GuestAddr(cr2)) {
	case guestmem.HoldDone:
		return true, true
	case guestmem.HoldOutOfMemory:
		t.outOfMemory(cr2)
		return true, false
	}
	return false, true
}

// outOfMemory ends the VM as Linux's OOM killer ends a process in a
// memory cgroup: the guest touched memory that would take it past its
// limit, and none it had given back was left to reclaim.
func (t *thread) outOfMemory(addr uint64) {
	t.ctl = ctlStop
	fmt.Fprintf(t.vm.cfg.Log, "atoll: guest out of memory: it holds %d MiB, all its --mem %d MiB, and touched more (address %#x, thread %d); killed\n",
		t.vm.mem.Committed()>>20, t.vm.mem.Limit()>>20, addr, t.tid)
	t.vm.exit(ExitOutOfMemory)
}

// inMonitorCode reports whether pc is in monitor-owned code other than the
// vDSO (where, as on Linux, faults are the guest's).
func inMonitorCode(pc uint64) bool {
	return pc >= uint64(guestmem.SystemBase) && pc < uint64(vdsoAddr)
}
