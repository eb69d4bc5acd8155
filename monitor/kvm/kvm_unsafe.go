package kvm

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// SupportedCPUID returns the CPUID leaves KVM can expose to a guest.
func (s *System) SupportedCPUID() ([]CPUIDEntry, error) {
	const max = 256
	var buf struct {
		n       uint32
		_       uint32
		entries [max]CPUIDEntry
	}
	buf.n = max
	if _, err := s.ioctl(ioctlGetSupportedCPUID, uintptr(unsafe.Pointer(&buf))); err != nil {
		return nil, fmt.Errorf("KVM_GET_SUPPORTED_CPUID: %w", err)
	}
	return append([]CPUIDEntry(nil), buf.entries[:buf.n]...), nil
}

// VM is a KVM virtual machine.
type VM struct {
	sys *System
	f   *os.File
}

// CreateVM creates an empty virtual machine.
func (s *System) CreateVM() (*VM, error) {
	fd, err := s.ioctl(ioctlCreateVM, 0)
	if err != nil {
		return nil, fmt.Errorf("KVM_CREATE_VM: %w", err)
	}
	return &VM{sys: s, f: os.NewFile(fd, "kvm-vm")}, nil
}

// enableCap mirrors struct kvm_enable_cap.
type enableCap struct {
	Cap, Flags uint32
	Args       [4]uint64
	_          [64]uint8
}

// EnableCap enables VM capability c with argument arg.
func (vm *VM) EnableCap(c uint32, arg uint64) error {
	e := enableCap{Cap: c, Args: [4]uint64{arg}}
	if _, err := ioctl(vm.f.Fd(), ioctlEnableCap, uintptr(unsafe.Pointer(&e))); err != nil {
		return fmt.Errorf("KVM_ENABLE_CAP %d: %w", c, err)
	}
	return nil
}

// Close releases the VM. Its vCPUs must be closed first.
func (vm *VM) Close() error { return vm.f.Close() }

// userspaceMemoryRegion mirrors struct kvm_userspace_memory_region.
type userspaceMemoryRegion struct {
	Slot, Flags   uint32
	GuestPhysAddr uint64
	MemorySize    uint64
	UserspaceAddr uint64
}

// ioEventFD mirrors struct kvm_ioeventfd.
type ioEventFD struct {
	Datamatch uint64
	Addr      uint64
	Len       uint32
	FD        int32
	Flags     uint32
	_         [36]byte
}

// IOEventFD makes a guest write of n bytes (1, 2, 4 or 8) to
// guest-physical address gpa, which no memory slot may back, signal the
// eventfd fd inside the host kernel: the vCPU goes on without an exit to
// the monitor (a doorbell).
func (vm *VM) IOEventFD(gpa uint64, n uint32, fd int) error {
	e := ioEventFD{Addr: gpa, Len: n, FD: int32(fd)}
	if _, err := ioctl(vm.f.Fd(), ioctlIOEventFD, uintptr(unsafe.Pointer(&e))); err != nil {
		return fmt.Errorf("KVM_IOEVENTFD at %#x: %w", gpa, err)
	}
	return nil
}

// SetMemory maps host memory mem at guest-physical address gpa in slot.
func (vm *VM) SetMemory(slot uint32, gpa uint64, mem []byte) error {
	r := userspaceMemoryRegion{
		Slot:          slot,
		GuestPhysAddr: gpa,
		MemorySize:    uint64(len(mem)),
		UserspaceAddr: uint64(uintptr(unsafe.Pointer(unsafe.SliceData(mem)))),
	}
	if _, err := ioctl(vm.f.Fd(), ioctlSetUserMemoryRegion, uintptr(unsafe.Pointer(&r))); err != nil {
		return fmt.Errorf("KVM_SET_USER_MEMORY_REGION slot %d at %#x (+%#x): %w", slot, gpa, len(mem), err)
	}
	return nil
}

// Run mirrors the head of struct kvm_run and the x86 sync-regs area that
// follows it; the exit-reason union is read through accessors.
type Run struct {
	RequestInterruptWindow uint8
	ImmediateExit          uint8
	_                      [6]uint8
	ExitReason             uint32
	ReadyForInterrupt      uint8
	IFFlag                 uint8
	Flags                  uint16
	CR8                    uint64
	APICBase               uint64
	exit                   [256]byte
	ValidRegs              uint64
	DirtyRegs              uint64
	Regs                   Regs  // kvm_run.s.regs.regs
	Sregs                  Sregs // kvm_run.s.regs.sregs
}

// IOExit is the KVM_EXIT_IO member of the exit union.
type IOExit struct {
	Direction  uint8
	Size       uint8
	Port       uint16
	Count      uint32
	DataOffset uint64
}

// IO returns the port-I/O exit description.
func (r *Run) IO() *IOExit { return (*IOExit)(unsafe.Pointer(&r.exit[0])) }

// ExitWords returns the first words of the exit union, for diagnostics.
func (r *Run) ExitWords() [4]uint64 { return *(*[4]uint64)(unsafe.Pointer(&r.exit[0])) }

// VCPU is one virtual CPU and its shared kvm_run page.
type VCPU struct {
	f   *os.File
	run []byte
	// Run is the shared kvm_run structure of this vCPU.
	Run *Run
}

// CreateVCPU creates vCPU id.
func (vm *VM) CreateVCPU(id int) (*VCPU, error) {
	fd, err := ioctl(vm.f.Fd(), ioctlCreateVCPU, uintptr(id))
	if err != nil {
		return nil, fmt.Errorf("KVM_CREATE_VCPU %d: %w", id, err)
	}
	f := os.NewFile(fd, "kvm-vcpu")
	m, err := unix.Mmap(int(fd), 0, vm.sys.mmapSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("mmap kvm_run: %w", err)
	}
	return &VCPU{f: f, run: m, Run: (*Run)(unsafe.Pointer(&m[0]))}, nil
}

// Close releases the vCPU.
func (c *VCPU) Close() error {
	unix.Munmap(c.run)
	return c.f.Close()
}

func (c *VCPU) ioctlPtr(req uintptr, p unsafe.Pointer) error {
	_, err := ioctl(c.f.Fd(), req, uintptr(p))
	return err
}

// RunOnce enters the guest until the next exit. It returns unix.EINTR when
// a host signal interrupted it (or ImmediateExit was set).
func (c *VCPU) RunOnce() error {
	_, _, e := unix.Syscall(unix.SYS_IOCTL, c.f.Fd(), ioctlRun, 0)
	if e != 0 {
		return e
	}
	return nil
}

// GetRegs reads the general-purpose registers.
func (c *VCPU) GetRegs(r *Regs) error { return c.ioctlPtr(ioctlGetRegs, unsafe.Pointer(r)) }

// SetRegs writes the general-purpose registers.
func (c *VCPU) SetRegs(r *Regs) error { return c.ioctlPtr(ioctlSetRegs, unsafe.Pointer(r)) }

// GetSregs reads the special registers.
func (c *VCPU) GetSregs(s *Sregs) error { return c.ioctlPtr(ioctlGetSregs, unsafe.Pointer(s)) }

// SetSregs writes the special registers.
func (c *VCPU) SetSregs(s *Sregs) error { return c.ioctlPtr(ioctlSetSregs, unsafe.Pointer(s)) }

// GetEvents reads pending and injected events (exceptions, interrupts).
func (c *VCPU) GetEvents(e *VCPUEvents) error {
	return c.ioctlPtr(ioctlGetVCPUEvents, unsafe.Pointer(e))
}

// GetXsave saves the FPU/SSE/AVX state.
func (c *VCPU) GetXsave(x *Xsave) error { return c.ioctlPtr(ioctlGetXsave, unsafe.Pointer(x)) }

// SetXsave restores the FPU/SSE/AVX state.
func (c *VCPU) SetXsave(x *Xsave) error { return c.ioctlPtr(ioctlSetXsave, unsafe.Pointer(x)) }

// SetCPUID sets the CPUID leaves the guest sees.
func (c *VCPU) SetCPUID(entries []CPUIDEntry) error {
	const max = 256
	if len(entries) > max {
		return fmt.Errorf("too many CPUID entries: %d", len(entries))
	}
	var buf struct {
		n       uint32
		_       uint32
		entries [max]CPUIDEntry
	}
	buf.n = uint32(len(entries))
	copy(buf.entries[:], entries)
	if err := c.ioctlPtr(ioctlSetCPUID2, unsafe.Pointer(&buf)); err != nil {
		return fmt.Errorf("KVM_SET_CPUID2: %w", err)
	}
	return nil
}

// msrEntry mirrors struct kvm_msr_entry.
type msrEntry struct {
	Index uint32
	_     uint32
	Data  uint64
}

// SetMSRs writes model-specific registers.
func (c *VCPU) SetMSRs(msrs ...MSR) error {
	const max = 16
	var buf struct {
		n       uint32
		_       uint32
		entries [max]msrEntry
	}
	if len(msrs) > max {
		return fmt.Errorf("too many MSRs: %d", len(msrs))
	}
	buf.n = uint32(len(msrs))
	for i, m := range msrs {
		buf.entries[i] = msrEntry{Index: m.Index, Data: m.Value}
	}
	n, err := ioctl(c.f.Fd(), ioctlSetMSRs, uintptr(unsafe.Pointer(&buf)))
	if err != nil {
		return fmt.Errorf("KVM_SET_MSRS: %w", err)
	}
	if int(n) != len(msrs) {
		return fmt.Errorf("KVM_SET_MSRS: MSR %#x refused", msrs[n].Index)
	}
	return nil
}

// TSCKHz returns the vCPU's TSC frequency in kHz.
func (c *VCPU) TSCKHz() (uint64, error) {
	n, err := ioctl(c.f.Fd(), ioctlGetTSCKHz, 0)
	if err != nil {
		return 0, fmt.Errorf("KVM_GET_TSC_KHZ: %w", err)
	}
	return uint64(n), nil
}

// GetMSR reads one model-specific register.
func (c *VCPU) GetMSR(index uint32) (uint64, error) {
	var buf struct {
		n     uint32
		_     uint32
		entry msrEntry
	}
	buf.n = 1
	buf.entry.Index = index
	n, err := ioctl(c.f.Fd(), ioctlGetMSRs, uintptr(unsafe.Pointer(&buf)))
	if err != nil || n != 1 {
		return 0, fmt.Errorf("KVM_GET_MSRS %#x: %v", index, err)
	}
	return buf.entry.Data, nil
}
