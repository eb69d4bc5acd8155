package monitor

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"atoll.dev/atoll/monitor/kvm"
)

// kvmMachine runs a VM's threads on KVM vCPUs, each driven by one host
// thread locked to its goroutine.
type kvmMachine struct {
	vm    *kvm.VM
	cpuid []kvm.CPUIDEntry
	cr3   uint64
	exits *exitCounts

	mu     sync.Mutex // guards the fields below
	all    []*kvmCPU  // every vCPU made, for close
	idle   []*kvmCPU  // vCPUs of ended threads: KVM cannot destroy one, so they are reused
	nextID int
}

// kvmCPU is a KVM vCPU as the handlers see it (cpu).
type kvmCPU struct {
	*kvm.VCPU
	hostTID atomic.Int32 // 0 until its loop starts
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

func (m *kvmMachine) newCPU(regs *kvm.Regs, fs uint64) (cpu, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var c *kvmCPU
	if n := len(m.idle); n > 0 {
		c, m.idle = m.idle[n-1], m.idle[:n-1]
	} else {
		v, err := m.vm.CreateVCPU(m.nextID)
		if err != nil {
			return nil, err
		}
		m.nextID++
		if err := v.SetCPUID(m.cpuid); err != nil {
			v.Close()
			return nil, err
		}
		c = &kvmCPU{VCPU: v}
		m.all = append(m.all, c)
	}
	if err := m.setup(c.VCPU, regs, fs); err != nil {
		m.idle = append(m.idle, c)
		return nil, err
	}
	c.hostTID.Store(0)
	return c, nil
}

func (m *kvmMachine) retire(c cpu) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.idle = append(m.idle, c.(*kvmCPU))
}

func (m *kvmMachine) close() {
	m.mu.Lock()
	for _, c := range m.all {
		c.Close()
	}
	m.all, m.idle = nil, nil
	m.mu.Unlock()
	m.vm.Close()
}

// Control-register and EFER bits (Intel SDM vol. 3, 2.5; cr* also in
// asm/processor-flags.h, checked in linux_test.go).
const (
	cr0PE, cr0MP, cr0ET, cr0NE, cr0WP, cr0AM, cr0PG = 1 << 0, 1 << 1, 1 << 4, 1 << 5, 1 << 16, 1 << 18, 1 << 31
	cr4PAE, cr4OSFXSR, cr4OSXMMEXCPT, cr4OSXSAVE    = 1 << 5, 1 << 9, 1 << 10, 1 << 18
	eferSCE, eferLME, eferLMA, eferNXE              = 1 << 0, 1 << 8, 1 << 10, 1 << 11
)

// setup puts c in 64-bit user mode on the guest's page tables with the
// given registers and FS base. SYSCALL lands on the trampoline
// (trampoline.go) without changing privilege.
func (m *kvmMachine) setup(c *kvm.VCPU, regs *kvm.Regs, fs uint64) error {
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
	s.CR0 = cr0PE | cr0MP | cr0ET | cr0NE | cr0WP | cr0AM | cr0PG
	s.CR3 = m.cr3
	s.CR4 = cr4PAE | cr4OSFXSR | cr4OSXMMEXCPT | cr4OSXSAVE
	s.EFER = eferSCE | eferLME | eferLMA | eferNXE
	if err := c.SetSregs(&s); err != nil {
		return fmt.Errorf("KVM_SET_SREGS: %w", err)
	}
	if err := c.SetMSRs(
		kvm.MSR{Index: kvm.MSRLStar, Value: uint64(trampolineAddr)},
		kvm.MSR{Index: kvm.MSRStar, Value: 0x8 << 32},
		kvm.MSR{Index: kvm.MSRFMask, Value: 0},
	); err != nil {
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

// loop runs thread t until it exits or the VM ends. Every trap out of the
// guest is a shutdown exit (trampoline.go): a system call is the
// trampoline's trap, anything else a fault.
func (m *kvmMachine) loop(t *thread, c *kvmCPU) {
	run := c.Run
	started := false
	for !t.vm.exiting() {
		// A trap KVM has pending is taken first, with the registers as
		// KVM holds them: marking them dirty would make KVM drop the
		// pending exception. Otherwise signals are delivered, and the
		// registers handlers changed in place (cpu.Regs) are handed back.
		if started && !trapPending(c) {
			if !t.deliverPending() {
				return
			}
			run.DirtyRegs |= kvm.SyncRegs
		}
		err := c.RunOnce()
		started = true
		m.exits.total.Add(1)
		if errors.Is(err, unix.EINTR) {
			run.ImmediateExit = 0
			m.exits.other("interrupted")
			continue
		}
		if err != nil {
			t.crash(fmt.Sprintf("KVM_RUN failed: %v", err), ExitVMFault)
			return
		}
		switch run.ExitReason {
		case kvm.ExitShutdown:
			if run.Regs.RIP == uint64(trampolineAddr)+trampolineHlt {
				if !t.syscall() {
					return
				}
				continue
			}
			m.exits.other("fault")
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
