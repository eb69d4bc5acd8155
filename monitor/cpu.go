package monitor

import "atoll.dev/atoll/monitor/kvm"

// cpu is what the system-call, signal and fault code needs of a vCPU: its
// registers, MSRs, FPU state and pending events, and a way to make it
// leave the guest. It is the seam between the handlers and KVM: the KVM
// machine (machine_kvm.go) implements it with a real vCPU, and the handler
// tests (handlers_test.go) with a fake, so that every handler can be
// tested, and fuzzed, without /dev/kvm.
type cpu interface {
	// Regs returns the general registers as of the last exit; changes
	// take effect when the vCPU next enters the guest.
	Regs() *kvm.Regs
	GetMSR(index uint32) (uint64, error)
	SetMSRs(msrs ...kvm.MSR) error
	GetXsave(x *kvm.Xsave) error
	SetXsave(x *kvm.Xsave) error
	GetEvents(e *kvm.VCPUEvents) error
	GetSregs(s *kvm.Sregs) error
	// Kick makes the vCPU leave the guest soon: at once if it is running,
	// or when it next tries to enter.
	Kick()
}

// machine makes and runs a VM's vCPUs: KVM (machine_kvm.go), or a fake in
// the handler tests.
type machine interface {
	// newCPU returns a vCPU set up to run regs in 64-bit user mode with
	// FS base fs and GS base gs.
	newCPU(regs *kvm.Regs, fs, gs uint64) (cpu, error)
	// start runs thread t on its vCPU, in a goroutine of its own, until
	// the thread ends or the VM stops.
	start(t *thread)
	// doorbell makes a 4-byte guest write to guest-physical gpa signal
	// eventfd fd without an exit (a KVM ioeventfd).
	doorbell(gpa uint64, fd int) error
	// retire takes back the vCPU of a thread that has ended.
	retire(c cpu)
	// flushTLBs returns once no vCPU can use a guest translation cached
	// before the call: page-table entries cleared before it are seen.
	flushTLBs()
	// close releases the vCPUs and the VM.
	close()
}
