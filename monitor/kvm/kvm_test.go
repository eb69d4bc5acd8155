package kvm

import (
	"testing"
	"unsafe"

	"atoll.dev/atoll/internal/testenv"
)

// TestMirrorsKernelHeaders compares every ioctl number, constant and
// structure layout this package hard-codes with the installed kernel
// headers.
func TestMirrorsKernelHeaders(t *testing.T) {
	var run Run
	want := map[string]uintptr{
		"KVM_CAP_SYNC_REGS": CapSyncRegs, "KVM_CAP_MAX_VCPUS": CapMaxVCPUs,
		"KVM_EXIT_IO": ExitIO, "KVM_EXIT_HLT": ExitHLT, "KVM_EXIT_MMIO": ExitMMIO,
		"KVM_EXIT_SHUTDOWN": ExitShutdown, "KVM_EXIT_FAIL_ENTRY": ExitFailEntry,
		"KVM_EXIT_INTR": ExitIntr, "KVM_EXIT_INTERNAL_ERROR": ExitInternalError,
		"KVM_SYNC_X86_REGS": SyncRegs, "KVM_SYNC_X86_SREGS": SyncSregs,
		"sizeof(struct kvm_ioeventfd)": unsafe.Sizeof(ioEventFD{}), "KVM_CAP_X86_TRIPLE_FAULT_EVENT": CapTripleFaultEvent,
		"KVM_VCPUEVENT_VALID_TRIPLE_FAULT":                    EventValidTripleFault,
		"sizeof(struct kvm_enable_cap)":                       unsafe.Sizeof(enableCap{}),
		"sizeof(struct kvm_regs)":                             unsafe.Sizeof(Regs{}),
		"sizeof(struct kvm_sregs)":                            unsafe.Sizeof(Sregs{}),
		"sizeof(struct kvm_segment)":                          unsafe.Sizeof(Segment{}),
		"sizeof(struct kvm_vcpu_events)":                      unsafe.Sizeof(VCPUEvents{}),
		"offsetof(struct kvm_vcpu_events, exception_payload)": unsafe.Offsetof(VCPUEvents{}.ExceptionPayload),
		"sizeof(struct kvm_xsave)":                            unsafe.Sizeof(Xsave{}),
		"sizeof(struct kvm_cpuid_entry2)":                     unsafe.Sizeof(CPUIDEntry{}),
		"sizeof(struct kvm_msr_entry)":                        unsafe.Sizeof(msrEntry{}),
		"sizeof(struct kvm_userspace_memory_region)":          unsafe.Sizeof(userspaceMemoryRegion{}),
		"offsetof(struct kvm_run, exit_reason)":               unsafe.Offsetof(run.ExitReason),
		"offsetof(struct kvm_run, io)":                        unsafe.Offsetof(run.exit),
		"offsetof(struct kvm_run, kvm_valid_regs)":            unsafe.Offsetof(run.ValidRegs),
		"offsetof(struct kvm_run, kvm_dirty_regs)":            unsafe.Offsetof(run.DirtyRegs),
		"offsetof(struct kvm_run, s.regs.regs)":               unsafe.Offsetof(run.Regs),
		"offsetof(struct kvm_run, s.regs.sregs)":              unsafe.Offsetof(run.Sregs),
	}
	for name, nr := range Requests {
		want[name] = uintptr(nr)
	}
	exprs := make([]string, 0, len(want))
	for e := range want {
		exprs = append(exprs, e)
	}
	got := testenv.HeaderValues(t, []string{"linux/kvm.h"}, exprs)
	for e, w := range want {
		if g, ok := got[e]; !ok || g != uint64(w) {
			t.Errorf("%s: kernel header says %#x, package uses %#x", e, g, w)
		}
	}
}
