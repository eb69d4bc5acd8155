package kvm

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unsafe"
)

// headerProbe prints, from the installed kernel headers, every ioctl number
// and structure size this package hard-codes.
const headerProbe = `#include <stdio.h>
#include <stddef.h>
#include <linux/kvm.h>
#define P(x) printf("%s %lu\n", #x, (unsigned long)(x))
int main(void) {
P(KVM_GET_API_VERSION); P(KVM_CREATE_VM); P(KVM_CHECK_EXTENSION); P(KVM_GET_VCPU_MMAP_SIZE);
P(KVM_GET_SUPPORTED_CPUID); P(KVM_CREATE_VCPU); P(KVM_SET_USER_MEMORY_REGION); P(KVM_RUN);
P(KVM_GET_REGS); P(KVM_SET_REGS); P(KVM_GET_SREGS); P(KVM_SET_SREGS); P(KVM_GET_MSRS);
P(KVM_SET_MSRS); P(KVM_SET_CPUID2); P(KVM_GET_VCPU_EVENTS); P(KVM_GET_XSAVE); P(KVM_SET_XSAVE);
P(KVM_CAP_SYNC_REGS); P(KVM_CAP_MAX_VCPUS); P(KVM_EXIT_IO); P(KVM_EXIT_HLT); P(KVM_EXIT_MMIO);
P(KVM_EXIT_SHUTDOWN); P(KVM_EXIT_FAIL_ENTRY); P(KVM_EXIT_INTR); P(KVM_EXIT_INTERNAL_ERROR);
P(KVM_SYNC_X86_REGS); P(KVM_SYNC_X86_SREGS); P(KVM_ENABLE_CAP); P(KVM_GET_TSC_KHZ); P(KVM_CAP_X86_TRIPLE_FAULT_EVENT);
P(KVM_VCPUEVENT_VALID_TRIPLE_FAULT); P(sizeof(struct kvm_enable_cap));
P(sizeof(struct kvm_regs)); P(sizeof(struct kvm_sregs)); P(sizeof(struct kvm_segment));
P(sizeof(struct kvm_vcpu_events)); P(offsetof(struct kvm_vcpu_events, exception_payload));
P(sizeof(struct kvm_xsave)); P(sizeof(struct kvm_cpuid_entry2)); P(sizeof(struct kvm_msr_entry));
P(sizeof(struct kvm_userspace_memory_region));
P(offsetof(struct kvm_run, exit_reason)); P(offsetof(struct kvm_run, io));
P(offsetof(struct kvm_run, kvm_valid_regs)); P(offsetof(struct kvm_run, kvm_dirty_regs));
P(offsetof(struct kvm_run, s.regs.regs)); P(offsetof(struct kvm_run, s.regs.sregs));
return 0; }
`

// TestMirrorsKernelHeaders compiles headerProbe and compares each value with
// the constant or layout this package uses.
func TestMirrorsKernelHeaders(t *testing.T) {
	cc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("gcc not installed: cannot compare with kernel headers")
	}
	if _, err := os.Stat("/usr/include/linux/kvm.h"); err != nil {
		t.Skip("kernel headers not installed (linux-libc-dev): cannot compare")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "probe.c")
	if err := os.WriteFile(src, []byte(headerProbe), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "probe")
	if out, err := exec.Command(cc, "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("compile probe: %v\n%s", err, out)
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	var run Run
	want := map[string]uintptr{
		"KVM_GET_API_VERSION": ioctlGetAPIVersion, "KVM_CREATE_VM": ioctlCreateVM,
		"KVM_CHECK_EXTENSION": ioctlCheckExtension, "KVM_GET_VCPU_MMAP_SIZE": ioctlGetVCPUMmapSize,
		"KVM_GET_SUPPORTED_CPUID": ioctlGetSupportedCPUID, "KVM_CREATE_VCPU": ioctlCreateVCPU,
		"KVM_SET_USER_MEMORY_REGION": ioctlSetUserMemoryRegion, "KVM_RUN": ioctlRun,
		"KVM_GET_REGS": ioctlGetRegs, "KVM_SET_REGS": ioctlSetRegs, "KVM_GET_SREGS": ioctlGetSregs,
		"KVM_SET_SREGS": ioctlSetSregs, "KVM_GET_MSRS": ioctlGetMSRs, "KVM_SET_MSRS": ioctlSetMSRs,
		"KVM_SET_CPUID2": ioctlSetCPUID2, "KVM_GET_VCPU_EVENTS": ioctlGetVCPUEvents,
		"KVM_GET_XSAVE": ioctlGetXsave, "KVM_SET_XSAVE": ioctlSetXsave,
		"KVM_CAP_SYNC_REGS": CapSyncRegs, "KVM_CAP_MAX_VCPUS": CapMaxVCPUs,
		"KVM_EXIT_IO": ExitIO, "KVM_EXIT_HLT": ExitHLT, "KVM_EXIT_MMIO": ExitMMIO,
		"KVM_EXIT_SHUTDOWN": ExitShutdown, "KVM_EXIT_FAIL_ENTRY": ExitFailEntry,
		"KVM_EXIT_INTR": ExitIntr, "KVM_EXIT_INTERNAL_ERROR": ExitInternalError,
		"KVM_SYNC_X86_REGS": SyncRegs, "KVM_SYNC_X86_SREGS": SyncSregs,
		"KVM_ENABLE_CAP": ioctlEnableCap, "KVM_GET_TSC_KHZ": ioctlGetTSCKHz, "KVM_CAP_X86_TRIPLE_FAULT_EVENT": CapTripleFaultEvent,
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
	seen := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		i := strings.LastIndexByte(line, ' ')
		name, val := line[:i], line[i+1:]
		n, err := strconv.ParseUint(val, 10, 64)
		if err != nil {
			t.Fatalf("bad probe line %q", line)
		}
		w, ok := want[name]
		if !ok {
			t.Errorf("probe printed %s, which the test does not check", name)
			continue
		}
		seen++
		if uint64(w) != n {
			t.Errorf("%s: kernel header says %#x, package uses %#x", name, n, w)
		}
	}
	if seen != len(want) {
		t.Errorf("checked %d of %d values", seen, len(want))
	}
}
