package monitor

import (
	"fmt"

	"atoll.dev/atoll/monitor/kvm"
)

// exitPath is how the guest's system calls and exceptions leave the VM.
// Everything above the exit — the system-call table, signals, devices —
// is the same on both.
type exitPath int

const (
	// pathParavirtual is kvm_pvm's: SYSCALL stays in user mode, and the
	// trampoline's privileged hlt, like any exception, traps out as a
	// shutdown exit with the guest's state intact. Supervisor mode is
	// emulated instruction by instruction there, so nothing runs at CPL 0.
	pathParavirtual exitPath = iota
	// pathHardware is Intel VMX's and AMD SVM's: SYSCALL enters CPL 0,
	// the trampoline's hlt is a HLT exit, and exceptions go through the
	// guest's IDT to the CPL-0 stub (hwstub.go). A shutdown there resets
	// the vCPU on SVM, so it can never be an exit path.
	pathHardware
)

func (p exitPath) String() string {
	if p == pathHardware {
		return "hardware KVM (VMX/SVM): SYSCALL enters CPL 0, the stub's hlt exits, exceptions go through the guest's IDT"
	}
	return "paravirtual KVM (kvm_pvm): the guest stays in user mode and its traps exit"
}

// probe finds the host KVM's exit path by asking it: a fresh vCPU in user
// mode makes one system call, which the fast path leaves alone, into the
// trampoline. kvm_pvm traps on the trampoline's hlt in user mode (a
// shutdown exit at the hlt); VMX and SVM run the hlt at CPL 0 (a HLT exit
// after it). Anything else is a KVM Atoll cannot run on. The vCPU is kept
// for the first thread. It costs one exit.
func (m *kvmMachine) probe() (exitPath, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, err := m.createCPU()
	if err != nil {
		return 0, err
	}
	defer func() { m.idle = append(m.idle, c) }()
	m.path = pathParavirtual // no descriptor tables: the probe needs none
	if err := m.warm(c); err != nil {
		return 0, fmt.Errorf("probe the exit path: %w", err)
	}
	hlt := uint64(trampolineAddr) + trampolineHlt
	switch rip := c.Run.Regs.RIP; {
	case c.Run.ExitReason == kvm.ExitShutdown && rip == hlt:
		return pathParavirtual, nil
	case c.Run.ExitReason == kvm.ExitHLT && rip == hlt+1:
		return pathHardware, nil
	default:
		return 0, fmt.Errorf("this KVM neither traps a user-mode hlt (kvm_pvm) nor enters CPL 0 on SYSCALL (VMX, SVM): the probe's system call ended in exit %d at rip %#x", c.Run.ExitReason, rip)
	}
}

// guestCPUID is the host's supported CPUID with the virtualization
// extensions hidden: the guest cannot use them.
func guestCPUID(entries []kvm.CPUIDEntry) []kvm.CPUIDEntry {
	out := append([]kvm.CPUIDEntry(nil), entries...)
	for i := range out {
		switch out[i].Function {
		case 1:
			out[i].ECX &^= 1 << 5 // VMX
		case 0x80000001:
			out[i].ECX &^= 1 << 2 // SVM
		}
	}
	return out
}
