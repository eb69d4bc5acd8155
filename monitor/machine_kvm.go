package monitor

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"atoll.dev/atoll/monitor/guestmem"
	"atoll.dev/atoll/monitor/kvm"
)

// kvmMachine runs a VM's threads on KVM vCPUs, each driven by one host
// thread locked to its goroutine, on the exit path the host's KVM takes
// (probe.go).
type kvmMachine struct {
	vm    *kvm.VM
	cpuid []kvm.CPUIDEntry
	mem   *guestmem.Memory
	exits *exitCounts
	path  exitPath

	spares sync.WaitGroup // makeSpares, which close waits for

	// tlbGen counts flushTLBs calls: a vCPU whose own count is behind
	// flushes before it runs guest code again.
	tlbGen atomic.Uint64

	mu     sync.Mutex // guards the fields below
	all    []*kvmCPU  // every vCPU made, for close
	idle   []*kvmCPU  // vCPUs of ended threads (KVM cannot destroy one, so they are reused) and spares
	nextID int
	closed bool
}

// kvmCPU is a KVM vCPU as the handlers see it (cpu).
type kvmCPU struct {
	*kvm.VCPU
	id      int
	hostTID atomic.Int32 // 0 until its loop starts
	// inStub, on the hardware path, says the vCPU stopped in the CPL-0
	// stub and its registers were turned into the program's: it must
	// return to the program through the stub's iretq. Owned by the
	// thread's goroutine.
	inStub bool
	// runSeq is odd while the vCPU's thread is in KVM_RUN or about to
	// enter it, past its check of tlbGen (flushTLBs).
	runSeq atomic.Uint64
	// tlbGen is the machine's tlbGen when the vCPU last flushed its
	// translations. Owned by the thread's goroutine.
	tlbGen uint64
}

var _ cpu = (*kvmCPU)(nil)

// Regs returns the sync-regs area of kvm_run.
func (c *kvmCPU) Regs() *kvm.Regs { return &c.Run.Regs }

// Kick sets immediate_exit and interrupts KVM_RUN with a host signal.
func (c *kvmCPU) Kick() {
	c.Run.ImmediateExit = 1
	if tid := c.hostTID.Load(); tid != 0 {
		unix.Tgkill(unix.Getpid(), int(tid), unix.SIGURG)
	}
}

func (m *kvmMachine) newCPU(regs *kvm.Regs, fs, gs uint64) (cpu, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var c *kvmCPU
	if n := len(m.idle); n > 0 {
		c, m.idle = m.idle[n-1], m.idle[:n-1]
	} else {
		var err error
		if c, err = m.createCPU(); err != nil {
			return nil, err
		}
	}
	if err := m.setup(c, regs, fs, gs); err != nil {
		m.idle = append(m.idle, c)
		return nil, err
	}
	c.hostTID.Store(0)
	c.inStub = false
	return c, nil
}

// createCPU makes a new vCPU with the guest's CPUID. The caller holds mu.
func (m *kvmMachine) createCPU() (*kvmCPU, error) {
	v, err := m.vm.CreateVCPU(m.nextID)
	if err != nil {
		return nil, err
	}
	if err := v.SetCPUID(m.cpuid); err != nil {
		v.Close()
		return nil, err
	}
	c := &kvmCPU{VCPU: v, id: m.nextID}
	m.nextID++
	m.all = append(m.all, c)
	return c, nil
}

func (m *kvmMachine) doorbell(gpa uint64, fd int) error { return m.vm.IOEventFD(gpa, 4, fd) }

func (m *kvmMachine) retire(c cpu) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.idle = append(m.idle, c.(*kvmCPU))
}

// flushTLBs makes every vCPU reload its translations before it next runs
// guest code (flushTLB), and kicks those in KVM_RUN out of it, waiting
// until each has left: none of them then uses an entry cached before the
// call. Called by guest memory's reclaim, which is rare: only at the
// memory limit, with chunks to release.
func (m *kvmMachine) flushTLBs() {
	m.tlbGen.Add(1)
	m.mu.Lock()
	cpus := append([]*kvmCPU(nil), m.all...)
	m.mu.Unlock()
	for _, c := range cpus {
		seq := c.runSeq.Load()
		if seq%2 == 0 {
			continue // it checks tlbGen before it next enters
		}
		c.Kick()
		for c.runSeq.Load() == seq {
			time.Sleep(20 * time.Microsecond)
		}
	}
}

// cr3PWT is CR3's page-level write-through bit.
const cr3PWT = 1 << 3

// flushTLB makes KVM drop c's cached translations, as a CR3 write does:
// KVM_SET_SREGS with CR3's write-through bit flipped makes KVM reset the
// vCPU's MMU, which flushes its TLB before it next enters the guest (a
// CR3 KVM_SET_SREGS finds unchanged may not). The bit only says how the
// top-level table itself is cached.
func flushTLB(c *kvmCPU) error {
	var s kvm.Sregs
	if err := c.GetSregs(&s); err != nil {
		return err
	}
	s.CR3 ^= cr3PWT
	return c.SetSregs(&s)
}

func (m *kvmMachine) close() {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	m.spares.Wait()
	m.mu.Lock()
	for _, c := range m.all {
		c.Close()
	}
	m.all, m.idle = nil, nil
	m.mu.Unlock()
	m.vm.Close()
}

// spareCPUs is how many vCPUs beyond the first makeSpares makes: a Go
// program starts two more threads at once (sysmon, and one to run its
// goroutines while the first waits).
const spareCPUs = 2

// makeSpares makes spareCPUs vCPUs in the background, while the guest
// starts, and leaves them idle for newCPU. Each is run once through the
// probe's system call (probe.go), outside the guest's exit counts: a
// vCPU's first KVM_RUN on kvm_pvm costs far more than later ones, and a
// vCPU made and first run when the guest asks for a thread cost 1–4 ms of
// a boot (measured, 2026-11-29).
func (m *kvmMachine) makeSpares() {
	m.spares.Add(1)
	go func() {
		defer m.spares.Done()
		for range spareCPUs {
			m.mu.Lock()
			if m.closed {
				m.mu.Unlock()
				return
			}
			c, err := m.createCPU()
			m.mu.Unlock()
			if err != nil || m.warm(c) != nil {
				return // newCPU makes its own, and reports the error
			}
			m.mu.Lock()
			m.idle = append(m.idle, c)
			m.mu.Unlock()
		}
	}()
}

// warm runs c once through the probe's system call.
func (m *kvmMachine) warm(c *kvmCPU) error {
	if err := m.setup(c, &kvm.Regs{RIP: uint64(probeAddr), RAX: unix.SYS_GETPID, RFLAGS: 2}, 0, 0); err != nil {
		return err
	}
	for {
		err := c.RunOnce()
		if !errors.Is(err, unix.EINTR) {
			return err
		}
		c.Run.ImmediateExit = 0
	}
}

// Control-register and EFER bits (Intel SDM vol. 3, 2.5; cr* also in
// asm/processor-flags.h, checked in linux_test.go).
const (
	cr0PE, cr0MP, cr0ET, cr0NE, cr0WP, cr0AM, cr0PG = 1 << 0, 1 << 1, 1 << 4, 1 << 5, 1 << 16, 1 << 18, 1 << 31
	cr4PAE, cr4OSFXSR, cr4OSXMMEXCPT, cr4OSXSAVE    = 1 << 5, 1 << 9, 1 << 10, 1 << 18
	eferSCE, eferLME, eferLMA, eferNXE              = 1 << 0, 1 << 8, 1 << 10, 1 << 11
)

// setup puts c in 64-bit user mode on the guest's page tables with the
// given registers, FS base and GS base (the thread's block,
// threadblock.go); SYSCALL lands on the trampoline (trampoline.go). On the hardware path it also loads the GDT, the IDT and
// the vCPU's own TSS (hwstub.go).
func (m *kvmMachine) setup(kc *kvmCPU, regs *kvm.Regs, fs, gs uint64) error {
	c := kc.VCPU
	var s kvm.Sregs
	if err := c.GetSregs(&s); err != nil {
		return fmt.Errorf("KVM_GET_SREGS: %w", err)
	}
	// Linux's user selectors: __USER_CS 0x33, __USER_DS 0x2b.
	code := kvm.Segment{Limit: 0xffffffff, Selector: 0x33, Type: 11, Present: 1, DPL: 3, S: 1, L: 1, G: 1}
	data := kvm.Segment{Limit: 0xffffffff, Selector: 0x2b, Type: 3, Present: 1, DPL: 3, S: 1, DB: 1, G: 1}
	s.CS = code
	s.DS, s.ES, s.SS, s.GS = data, data, data, data
	s.FS = data
	s.FS.Base = fs
	s.GS.Base = gs
	s.CR0 = cr0PE | cr0MP | cr0ET | cr0NE | cr0WP | cr0AM | cr0PG
	s.CR3 = m.mem.CR3()
	s.CR4 = cr4PAE | cr4OSFXSR | cr4OSXMMEXCPT | cr4OSXSAVE
	s.EFER = eferSCE | eferLME | eferLMA | eferNXE
	star, fmask := uint64(0x8<<32), uint64(0)
	if m.path == pathHardware {
		tss, err := writeTSS(m.mem, kc.id)
		if err != nil {
			return err
		}
		s.GDT = kvm.DTable{Base: uint64(gdtAddr), Limit: gdtLimit}
		s.IDT = kvm.DTable{Base: uint64(idtAddr), Limit: numVectors*16 - 1}
		s.TR = kvm.Segment{Base: uint64(tss), Limit: tssSize - 1, Selector: tssSel, Type: 11, Present: 1}
		star, fmask = starValue, fmaskValue
	}
	if err := c.SetSregs(&s); err != nil {
		return fmt.Errorf("KVM_SET_SREGS: %w", err)
	}
	msrs := []kvm.MSR{
		{Index: kvm.MSRLStar, Value: uint64(trampolineAddr)},
		{Index: kvm.MSRStar, Value: star},
		{Index: kvm.MSRFMask, Value: fmask},
	}
	if m.path == pathHardware {
		msrs = append(msrs, kvm.MSR{Index: kvm.MSRCStar, Value: uint64(compatAddr)})
	}
	if err := c.SetMSRs(msrs...); err != nil {
		return err
	}
	if err := c.SetRegs(regs); err != nil {
		return fmt.Errorf("KVM_SET_REGS: %w", err)
	}
	c.Run.ValidRegs = kvm.SyncRegs
	c.Run.DirtyRegs = 0
	c.Run.ImmediateExit = 0
	return nil
}

// start runs t's loop on a goroutine locked to its host thread.
func (m *kvmMachine) start(t *thread) {
	t.vm.life.running.Add(1)
	go func() {
		defer t.vm.life.running.Done()
		runtime.LockOSThread()
		c := t.cpu.(*kvmCPU)
		c.hostTID.Store(int32(unix.Gettid()))
		if t.vm.exiting() {
			c.Run.ImmediateExit = 1
		}
		m.loop(t, c)
	}()
}

// loop runs thread t until it exits or the VM ends.
func (m *kvmMachine) loop(t *thread, c *kvmCPU) {
	run := c.Run
	started := false
	for !t.vm.exiting() {
		// A trap KVM has pending is taken first, with the registers as
		// KVM holds them: marking them dirty would make KVM drop the
		// pending exception. Otherwise signals are delivered — unless
		// the vCPU stopped inside the monitor's code, which runs on to
		// its own exit — and the registers handlers changed in place
		// (cpu.Regs) are handed back.
		if started && !trapPending(c) {
			if m.path == pathHardware && !c.inStub && run.Regs.RIP == uint64(retUserAddr) {
				// Kicked before the stub's iretq ran: take the
				// program's registers back, so signals are delivered.
				if !m.undoReturn(t, c) {
					return
				}
			}
			if m.canDeliver(c) && !t.deliverPending() {
				return
			}
			if c.inStub && !m.returnToProgram(t, c) {
				return
			}
			run.DirtyRegs |= kvm.SyncRegs
		}
		t.publishPending()
		c.runSeq.Add(1)
		if g := m.tlbGen.Load(); c.tlbGen != g {
			if err := flushTLB(c); err != nil {
				c.runSeq.Add(1)
				t.crash(fmt.Sprintf("flushing the vCPU's translations: %v", err), ExitVMFault)
				return
			}
			c.tlbGen = g
		}
		err := c.RunOnce()
		c.runSeq.Add(1)
		started = true
		m.exits.total.Add(1)
		if errors.Is(err, unix.EINTR) {
			run.ImmediateExit = 0
			m.exits.other("interrupted")
			continue
		}
		if err != nil {
			why := fmt.Sprintf("KVM_RUN failed: %v", err)
			if errors.Is(err, unix.EFAULT) && t.vm.mem.SharedPages() != 0 {
				why += " (the guest touched a shared file mapping past its file's end, where Linux sends SIGBUS)"
			}
			t.crash(why, ExitVMFault)
			return
		}
		if !m.exit(t, c) {
			return
		}
	}
}

// exit handles one exit of thread t's vCPU; it returns false when the
// thread must stop.
func (m *kvmMachine) exit(t *thread, c *kvmCPU) bool {
	run := c.Run
	switch run.ExitReason {
	case kvm.ExitShutdown:
		if m.path == pathHardware {
			// The IDT, GDT or a stack the stub needs is unusable:
			// the guest wrote over the monitor's pages. SVM resets
			// the vCPU on a shutdown, so its registers are gone.
			t.crash("triple fault: the CPU could not deliver an exception (the monitor's descriptor tables or stacks were overwritten); registers may be the reset vCPU's", ExitVMFault)
			return false
		}
		// Every trap out of the guest arrives here on the paravirtual
		// path (trampoline.go): a system call is the trampoline's trap,
		// anything else a fault.
		switch run.Regs.RIP {
		case uint64(trampolineAddr) + trampolineHlt:
			return t.syscall()
		case uint64(trampolineAddr) + trampolineDeliver:
			return t.fastPathSignal()
		}
		m.exits.other("fault")
		return t.fault()
	case kvm.ExitHLT:
		if m.path == pathHardware {
			return m.stubExit(t, c)
		}
		t.crash("guest executed HLT", ExitVMFault)
	case kvm.ExitIO:
		t.crash(fmt.Sprintf("guest accessed I/O port %#x, which does not exist", run.IO().Port), ExitVMFault)
	case kvm.ExitMMIO:
		t.crash("guest accessed memory outside its address space", ExitVMFault)
	default:
		t.crash(fmt.Sprintf("unexpected VM exit %d (%#x)", run.ExitReason, run.ExitWords()), ExitVMFault)
	}
	return false
}

// stubExit handles a HLT exit on the hardware path: the trampoline's, for
// a system call, or an exception vector's. Either way the registers are
// first turned into the program's, as SYSRET or IRET would leave them,
// so that handlers, signals and crash reports see the program.
func (m *kvmMachine) stubExit(t *thread, c *kvmCPU) bool {
	r := &c.Run.Regs
	switch r.RIP {
	case uint64(trampolineAddr) + trampolineHlt + 1:
		r.RIP, r.RFLAGS = r.RCX, r.R11
		c.inStub = true
		return t.syscall()
	case uint64(trampolineAddr) + trampolineDeliver + 1:
		r.RIP, r.RFLAGS = r.RCX, r.R11
		c.inStub = true
		return t.fastPathSignal()
	}
	if r.RIP == uint64(compatAddr)+1 {
		r.RIP, r.RFLAGS = r.RCX, r.R11
		t.crash("system call from 32-bit code, which Atoll does not run", ExitVMFault)
		return false
	}
	vec, ok := vectorAt(r.RIP)
	if !ok {
		t.crash("guest executed HLT at CPL 0 outside the monitor's stub", ExitVMFault)
		return false
	}
	m.exits.other("fault")
	f, err := readExceptionFrame(m.mem, r.RSP, vec)
	if err != nil {
		t.crash(fmt.Sprintf("exception vector %d: %v", vec, err), ExitVMFault)
		return false
	}
	var cr2 uint64
	if vec == vecPF {
		var s kvm.Sregs
		if err := c.GetSregs(&s); err != nil {
			t.crash(fmt.Sprintf("page fault (sregs unreadable: %v)", err), ExitVMFault)
			return false
		}
		cr2 = s.CR2
	}
	kernel := f.cs&3 == 0
	r.RIP, r.RSP, r.RFLAGS = f.rip, f.rsp, f.rflags
	c.inStub = true
	if held, ok := t.demand(vec, f.errorCode, cr2); held {
		// Retry the access where it faulted: in the program, through the
		// stub's return; in the stub's fast path, at CPL 0, where the
		// vCPU already is.
		c.inStub = !kernel
		return ok
	}
	if kernel && !inFastPath(f.rip) {
		t.crash(fmt.Sprintf("CPU exception vector %d (error code %#x) in the monitor's stub", vec, f.errorCode), ExitVMFault)
		return false
	}
	return t.exception(vec, f.errorCode, cr2, kernel)
}

// returnToProgram points a vCPU stopped in the stub at the stub's iretq,
// with a frame that returns to the program's registers at CPL 3.
func (m *kvmMachine) returnToProgram(t *thread, c *kvmCPU) bool {
	r := &c.Run.Regs
	if !canonical(r.RIP) || !canonical(r.RSP) {
		t.crash(fmt.Sprintf("return to a non-canonical address (rip %#x, rsp %#x)", r.RIP, r.RSP), 128+int(unix.SIGSEGV))
		return false
	}
	sp, err := writeIretFrame(m.mem, c.id, r.RIP, r.RSP, r.RFLAGS)
	if err != nil {
		t.crash(fmt.Sprintf("return to the program: %v", err), ExitVMFault)
		return false
	}
	// The program's flags stay out of CPL 0: NT would make the iretq
	// fault, TF trap after it.
	r.RIP, r.RSP, r.RFLAGS = uint64(retUserAddr), sp, 2
	c.inStub = false
	return true
}

// undoReturn takes back the program's registers from the frame
// returnToProgram wrote, for a vCPU kicked before it ran the iretq.
func (m *kvmMachine) undoReturn(t *thread, c *kvmCPU) bool {
	r := &c.Run.Regs
	f, err := readExceptionFrame(m.mem, r.RSP, vecUD) // an iret frame: no error code
	if err != nil {
		t.crash(fmt.Sprintf("return to the program: %v", err), ExitVMFault)
		return false
	}
	r.RIP, r.RSP, r.RFLAGS = f.rip, f.rsp, f.rflags
	c.inStub = true
	return true
}

// canDeliver reports whether signals can be delivered to the vCPU now. A
// vCPU kicked while running the monitor's code (the trampoline's fast
// paths, in user mode or at CPL 0) runs on to one of its exits first: a
// fast path that finds a signal it may take queued leaves through the
// trampoline's deliver trap (trampoline.go).
func (m *kvmMachine) canDeliver(c *kvmCPU) bool {
	return c.inStub || !inMonitorCode(c.Run.Regs.RIP)
}

// trapPending reports whether the guest has trapped but KVM_RUN was
// interrupted before reporting it. The trap (a system call or a fault)
// is then taken first, at its own RIP; signals wait for the next exit.
func trapPending(c *kvmCPU) bool {
	if c.Run.ExitReason != kvm.ExitIntr {
		return false
	}
	var ev kvm.VCPUEvents
	if err := c.GetEvents(&ev); err != nil {
		return true
	}
	return ev.Flags&kvm.EventValidTripleFault != 0 && ev.TripleFault.Pending != 0 ||
		ev.Exception.Pending != 0 || ev.Exception.Injected != 0
}
