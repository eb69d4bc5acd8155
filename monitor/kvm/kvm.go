// Package kvm is a thin binding to the Linux KVM API (/dev/kvm) for
// x86-64: the ioctls and structures the Atoll monitor uses, nothing more.
//
// Structures mirror the kernel's (include/uapi/linux/kvm.h and
// arch/x86/include/uapi/asm/kvm.h); their sizes and the ioctl numbers are
// checked against the installed kernel headers in kvm_test.go.
package kvm

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// ioctl numbers, from include/uapi/linux/kvm.h (checked in kvm_test.go).
const (
	ioctlGetAPIVersion       = 0xae00
	ioctlCreateVM            = 0xae01
	ioctlCheckExtension      = 0xae03
	ioctlGetVCPUMmapSize     = 0xae04
	ioctlGetSupportedCPUID   = 0xc008ae05
	ioctlCreateVCPU          = 0xae41
	ioctlSetUserMemoryRegion = 0x4020ae46
	ioctlRun                 = 0xae80
	ioctlGetRegs             = 0x8090ae81
	ioctlSetRegs             = 0x4090ae82
	ioctlGetSregs            = 0x8138ae83
	ioctlSetSregs            = 0x4138ae84
	ioctlGetMSRs             = 0xc008ae88
	ioctlSetMSRs             = 0x4008ae89
	ioctlSetCPUID2           = 0x4008ae90
	ioctlGetVCPUEvents       = 0x8040ae9f
	ioctlGetXsave            = 0x9000aea4
	ioctlSetXsave            = 0x5000aea5
	ioctlEnableCap           = 0x4068aea3
	ioctlGetTSCKHz           = 0xaea3
	ioctlIOEventFD           = 0x4040ae79
)

// Requests names every ioctl the package makes, as linux/kvm.h spells it,
// with its number: the monitor's seccomp filter allows those it needs by
// name.
var Requests = map[string]uint64{
	"KVM_GET_API_VERSION": ioctlGetAPIVersion, "KVM_CREATE_VM": ioctlCreateVM,
	"KVM_CHECK_EXTENSION": ioctlCheckExtension, "KVM_GET_VCPU_MMAP_SIZE": ioctlGetVCPUMmapSize,
	"KVM_GET_SUPPORTED_CPUID": ioctlGetSupportedCPUID, "KVM_CREATE_VCPU": ioctlCreateVCPU,
	"KVM_SET_USER_MEMORY_REGION": ioctlSetUserMemoryRegion, "KVM_RUN": ioctlRun,
	"KVM_GET_REGS": ioctlGetRegs, "KVM_SET_REGS": ioctlSetRegs, "KVM_GET_SREGS": ioctlGetSregs,
	"KVM_SET_SREGS": ioctlSetSregs, "KVM_GET_MSRS": ioctlGetMSRs, "KVM_SET_MSRS": ioctlSetMSRs,
	"KVM_SET_CPUID2": ioctlSetCPUID2, "KVM_GET_VCPU_EVENTS": ioctlGetVCPUEvents,
	"KVM_GET_XSAVE": ioctlGetXsave, "KVM_SET_XSAVE": ioctlSetXsave,
	"KVM_ENABLE_CAP": ioctlEnableCap, "KVM_GET_TSC_KHZ": ioctlGetTSCKHz, "KVM_IOEVENTFD": ioctlIOEventFD,
}

// Capabilities queried with CheckExtension.
const (
	CapSyncRegs = 74
	CapMaxVCPUs = 66
	// CapTripleFaultEvent makes a pending triple fault visible in
	// VCPUEvents (Flags&EventValidTripleFault, TripleFault.Pending).
	CapTripleFaultEvent = 218
)

// EventValidTripleFault marks VCPUEvents.TripleFault as valid.
const EventValidTripleFault = 0x20

// Exit reasons (kvm_run.exit_reason).
const (
	ExitUnknown       = 0
	ExitException     = 1
	ExitIO            = 2
	ExitHypercall     = 3
	ExitDebug         = 4
	ExitHLT           = 5
	ExitMMIO          = 6
	ExitShutdown      = 8
	ExitFailEntry     = 9
	ExitIntr          = 10
	ExitInternalError = 17
	ExitSystemEvent   = 24
)

// Sync-register selectors for Run.ValidRegs / Run.DirtyRegs.
const (
	SyncRegs  = 1 << 0
	SyncSregs = 1 << 1
)

// Regs mirrors struct kvm_regs.
type Regs struct {
	RAX, RBX, RCX, RDX, RSI, RDI, RSP, RBP uint64
	R8, R9, R10, R11, R12, R13, R14, R15   uint64
	RIP, RFLAGS                            uint64
}

// Segment mirrors struct kvm_segment.
type Segment struct {
	Base                           uint64
	Limit                          uint32
	Selector                       uint16
	Type                           uint8
	Present, DPL, DB, S, L, G, AVL uint8
	Unusable                       uint8
	_                              uint8
}

// DTable mirrors struct kvm_dtable.
type DTable struct {
	Base  uint64
	Limit uint16
	_     [3]uint16
}

// Sregs mirrors struct kvm_sregs.
type Sregs struct {
	CS, DS, ES, FS, GS, SS  Segment
	TR, LDT                 Segment
	GDT, IDT                DTable
	CR0, CR2, CR3, CR4, CR8 uint64
	EFER                    uint64
	APICBase                uint64
	InterruptBitmap         [4]uint64
}

// VCPUEvents mirrors struct kvm_vcpu_events (x86).
type VCPUEvents struct {
	Exception struct {
		Injected     uint8
		Nr           uint8
		HasErrorCode uint8
		Pending      uint8
		ErrorCode    uint32
	}
	Interrupt struct {
		Injected, Nr, Soft, Shadow uint8
	}
	NMI struct {
		Injected, Pending, Masked, _ uint8
	}
	SIPIVector uint32
	Flags      uint32
	SMI        struct {
		SMM, Pending, SMMInsideNMI, LatchedInit uint8
	}
	TripleFault struct {
		Pending uint8
	}
	_                   [26]uint8
	ExceptionHasPayload uint8
	ExceptionPayload    uint64
}

// Xsave mirrors struct kvm_xsave (the legacy 4 KiB form).
type Xsave struct {
	Region [1024]uint32
}

// CPUIDEntry mirrors struct kvm_cpuid_entry2.
type CPUIDEntry struct {
	Function, Index, Flags uint32
	EAX, EBX, ECX, EDX     uint32
	_                      [3]uint32
}

// MSR is one model-specific register index and value.
type MSR struct {
	Index uint32
	Value uint64
}

// Well-known MSR indices (Intel SDM vol. 4).
const (
	MSRTSC    = 0x10
	MSRStar   = 0xc0000081
	MSRLStar  = 0xc0000082
	MSRCStar  = 0xc0000083
	MSRFMask  = 0xc0000084
	MSRFSBase = 0xc0000100
	MSRGSBase = 0xc0000101
)

// ErrNoKVM wraps failures to open /dev/kvm with an actionable message.
var ErrNoKVM = errors.New("kvm unavailable")

// System is an open /dev/kvm.
type System struct {
	f        *os.File
	mmapSize int
}

// Open opens /dev/kvm and checks the API version and the capabilities the
// monitor depends on.
func Open() (*System, error) {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		switch {
		case errors.Is(err, os.ErrNotExist):
			return nil, fmt.Errorf("%w: /dev/kvm does not exist — this machine has no KVM (enable virtualization, or load the kvm module)", ErrNoKVM)
		case errors.Is(err, os.ErrPermission):
			return nil, fmt.Errorf("%w: open /dev/kvm: permission denied — run as root or add your user to the kvm group", ErrNoKVM)
		}
		return nil, fmt.Errorf("%w: %v", ErrNoKVM, err)
	}
	s := &System{f: f}
	v, err := s.ioctl(ioctlGetAPIVersion, 0)
	if err != nil || v != 12 {
		f.Close()
		return nil, fmt.Errorf("%w: unexpected KVM API version %d (%v)", ErrNoKVM, v, err)
	}
	if n, _ := s.CheckExtension(CapSyncRegs); n&(SyncRegs|SyncSregs) != SyncRegs|SyncSregs {
		f.Close()
		return nil, fmt.Errorf("%w: KVM lacks KVM_CAP_SYNC_REGS", ErrNoKVM)
	}
	sz, err := s.ioctl(ioctlGetVCPUMmapSize, 0)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%w: KVM_GET_VCPU_MMAP_SIZE: %v", ErrNoKVM, err)
	}
	s.mmapSize = int(sz)
	return s, nil
}

// Close releases /dev/kvm. VMs created from it stay valid.
func (s *System) Close() error { return s.f.Close() }

// CheckExtension returns the value KVM reports for capability c.
func (s *System) CheckExtension(c uintptr) (int, error) {
	v, err := s.ioctl(ioctlCheckExtension, c)
	return int(v), err
}

func (s *System) ioctl(req, arg uintptr) (uintptr, error) {
	return ioctl(s.f.Fd(), req, arg)
}

func ioctl(fd, req, arg uintptr) (uintptr, error) {
	for {
		r, _, e := unix.Syscall(unix.SYS_IOCTL, fd, req, arg)
		if e == unix.EINTR && req != ioctlRun {
			continue
		}
		if e != 0 {
			return 0, e
		}
		return r, nil
	}
}
