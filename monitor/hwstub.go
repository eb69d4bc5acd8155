package monitor

import (
	"encoding/binary"
	"fmt"

	"atoll.dev/atoll/monitor/guestmem"
)

// The CPL-0 stub of the hardware exit path. On Intel VMX and AMD SVM,
// SYSCALL enters CPL 0 and a CPU exception in the guest is delivered
// through its IDT (an unhandled one resets the vCPU on SVM), so the guest
// needs what a kernel gives a user program: a GDT with kernel and user
// segments, a TSS per vCPU, and an IDT. Atoll's is the smallest that works,
// in the Solo5 hvt shape: the guest program runs at CPL 3; SYSCALL lands on
// the trampoline (trampoline.go), whose final `hlt` leaves the VM as a
// KVM_EXIT_HLT; every exception vector is a `hlt` of its own, entered on
// the vCPU's IST stack; and the monitor returns to the program with an
// `iretq` from a frame it writes. The stub keeps no state: everything it
// would know, the monitor reads from the vCPU.
//
// Layout in the system area:
//
//	trampolineAddr+0x800  32 vector entries of 8 bytes, then iretq, then the probe's syscall
//	gdtAddr               the GDT (Linux's selectors)
//	idtAddr               the IDT: 32 interrupt gates on IST 1
//	tssBase + 1 KiB × n   vCPU n's TSS, and its IST stack above it
//
// (The system area also holds, open to the program, the vDSO and its
// parameters, the doorbell page of the frame rings (net_ring.go) and,
// closed to it, the thread blocks (threadblock.go).)

const (
	hwStubAddr   = trampolineAddr + 0x800
	vectorStride = 8
	numVectors   = 32
	retUserAddr  = hwStubAddr + numVectors*vectorStride // iretq
	probeAddr    = retUserAddr + 2                      // syscall
	compatAddr   = probeAddr + 2                        // hlt: MSR_CSTAR

	gdtAddr   = guestmem.SystemBase + 0x4000
	idtAddr   = guestmem.SystemBase + 0x5000
	tssBase   = guestmem.SystemBase + 0x100000
	tssStride = 0x400
	tssSize   = 0x68
	// maxVCPUs is how many vCPUs have a TSS: the system area's last MiB.
	maxVCPUs = (guestmem.SystemSize - 0x100000) / tssStride
)

// Segment selectors, Linux's, so that SYSCALL and SYSRET (STAR) and the
// signal frames (cs 0x33) agree with what Go programs expect.
const (
	kernelCS = 0x10
	kernelDS = 0x18
	user32CS = 0x23
	userDS   = 0x2b
	userCS   = 0x33
	tssSel   = 0x38
	gdtLimit = 0x47

	// starValue is MSR_STAR: SYSCALL loads CS from bits 47:32 (SS is
	// 8 more), SYSRET from bits 63:48 (CS 16 more, SS 8 more, RPL 3).
	starValue = uint64(user32CS&^3)<<48 | uint64(kernelCS)<<32
	// fmaskValue is MSR_SFMASK: the flags SYSCALL clears (TF, DF, IF,
	// IOPL, NT, AC, as Linux), so the stub never runs single-stepped.
	fmaskValue = 0x47700
)

// hwStubCode is the stub's machine code, assembled from testdata/hwstub.s
// (hwstub_test.go checks they match): the vectors, each a `hlt` padded
// with int3, then `iretq`, `syscall` and `hlt`.
func hwStubCode() []byte {
	var b []byte
	for v := 0; v < numVectors; v++ {
		b = append(b, 0xf4, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc)
	}
	return append(b, 0x48, 0xcf, 0x0f, 0x05, 0xf4)
}

// protectSystemArea keeps the guest program (CPL 3) out of what runs or
// is read at CPL 0 on the hardware path: the trampoline and stub, the
// signal table and thread blocks the fast paths use, the descriptor
// tables and the TSSs and their stacks. Were any of them open to it, the program could make
// its own code run at CPL 0 (an IDT gate, a GDT call gate, the
// trampoline's code). The vDSO and its parameters page stay readable.
func protectSystemArea(mem *guestmem.Memory) error {
	for _, p := range []struct {
		a   guestmem.GuestAddr
		n   uint64
		acc guestmem.SystemAccess
	}{
		{trampolineAddr, guestmem.PageSize, guestmem.SystemKernel},
		{vvarAddr, guestmem.PageSize, guestmem.SystemUser},
		{vdsoAddr, guestmem.PageSize, guestmem.SystemUser},
		{sigTableAddr, guestmem.PageSize, guestmem.SystemKernelWrite},
		{gdtAddr, guestmem.PageSize, guestmem.SystemKernel},
		{idtAddr, guestmem.PageSize, guestmem.SystemKernel},
		{idtAddr + guestmem.PageSize, uint64(doorbellAddr - idtAddr - guestmem.PageSize), guestmem.SystemNone},
		{doorbellAddr + guestmem.PageSize, uint64(threadBlocks - doorbellAddr - guestmem.PageSize), guestmem.SystemNone},
		{threadBlocks, uint64(threadBlocksEnd - threadBlocks), guestmem.SystemKernelWrite},
		{threadBlocksEnd, uint64(tssBase - threadBlocksEnd), guestmem.SystemNone},
		{tssBase, uint64(maxVCPUs * tssStride), guestmem.SystemKernelWrite},
	} {
		if err := mem.ProtectSystem(p.a, p.n, p.acc); err != nil {
			return err
		}
	}
	return nil
}

// writeHardwareTables writes the stub, the GDT and the IDT into guest
// memory. They are written on either exit path; only the hardware path
// loads them.
func writeHardwareTables(mem *guestmem.Memory) error {
	stub, err := mem.Slice(hwStubAddr, uint64(len(hwStubCode())))
	if err != nil {
		return err
	}
	copy(stub, hwStubCode())
	gdt, err := mem.Slice(gdtAddr, gdtLimit+1)
	if err != nil {
		return err
	}
	le := binary.LittleEndian
	for sel, d := range map[int]uint64{
		kernelCS: 0x00af9b000000ffff, // 64-bit code, DPL 0
		kernelDS: 0x00cf93000000ffff, // data, DPL 0
		user32CS: 0x00cffb000000ffff, // 32-bit code, DPL 3 (SYSRET's base)
		userDS:   0x00cff3000000ffff, // data, DPL 3
		userCS:   0x00affb000000ffff, // 64-bit code, DPL 3
	} {
		le.PutUint64(gdt[sel&^3:], d)
	}
	putTSSDescriptor(gdt[tssSel:], uint64(tssBase))
	idt, err := mem.Slice(idtAddr, numVectors*16)
	if err != nil {
		return err
	}
	for v := 0; v < numVectors; v++ {
		entry := uint64(hwStubAddr) + uint64(v)*vectorStride
		dpl := uint64(0)
		if v == vecBP {
			dpl = 3 // int3 from the program raises SIGTRAP, as on Linux
		}
		g := idt[16*v:]
		le.PutUint64(g, entry&0xffff|uint64(kernelCS)<<16|1<<32| // IST 1
			(0x8e|dpl<<5)<<40| // present interrupt gate
			(entry>>16&0xffff)<<48)
		le.PutUint64(g[8:], entry>>32)
	}
	return nil
}

// putTSSDescriptor writes a 16-byte available 64-bit TSS descriptor.
func putTSSDescriptor(b []byte, base uint64) {
	le := binary.LittleEndian
	le.PutUint64(b, tssSize-1|(base&0xffffff)<<16|0x89<<40|(base>>24&0xff)<<56)
	le.PutUint64(b[8:], base>>32)
}

// tssAddr is vCPU id's TSS; its IST stack ends at tssAddr+tssStride.
func tssAddr(id int) (guestmem.GuestAddr, error) {
	if id < 0 || id >= maxVCPUs {
		return 0, fmt.Errorf("vCPU %d has no TSS (at most %d vCPUs on the hardware exit path)", id, maxVCPUs)
	}
	return tssBase + guestmem.GuestAddr(id*tssStride), nil
}

// writeTSS gives vCPU id its TSS: RSP0 and IST1 at the top of its stack.
func writeTSS(mem *guestmem.Memory, id int) (guestmem.GuestAddr, error) {
	a, err := tssAddr(id)
	if err != nil {
		return 0, err
	}
	b, err := mem.Slice(a, tssSize)
	if err != nil {
		return 0, err
	}
	clear(b)
	top := uint64(a) + tssStride
	binary.LittleEndian.PutUint64(b[4:], top)    // rsp0
	binary.LittleEndian.PutUint64(b[0x24:], top) // ist1
	binary.LittleEndian.PutUint16(b[0x66:], tssSize)
	return a, nil
}

// vectorAt returns the exception vector whose stub entry's `hlt` ends just
// before rip, if rip is one.
func vectorAt(rip uint64) (int, bool) {
	off := rip - 1 - uint64(hwStubAddr)
	if rip == 0 || off >= numVectors*vectorStride || off%vectorStride != 0 {
		return 0, false
	}
	return int(off / vectorStride), true
}

// hasErrorCode reports whether the CPU pushes an error code for vector
// (Intel SDM vol. 3, 6.3.1).
func hasErrorCode(vector int) bool {
	switch vector {
	case 8, 10, 11, 12, 13, 14, 17, 21, 29, 30:
		return true
	}
	return false
}

// exceptionFrame is what the CPU pushed on the IST stack.
type exceptionFrame struct {
	errorCode, rip, cs, rflags, rsp, ss uint64
}

// readExceptionFrame reads the frame of vector at sp.
func readExceptionFrame(mem *guestmem.Memory, sp uint64, vector int) (exceptionFrame, error) {
	var f exceptionFrame
	n := 5
	if hasErrorCode(vector) {
		n = 6
	}
	b, err := mem.Slice(guestmem.GuestAddr(sp), uint64(8*n))
	if err != nil {
		return f, fmt.Errorf("exception frame at %#x is not guest memory", sp)
	}
	w := make([]uint64, n)
	for i := range w {
		w[i] = binary.LittleEndian.Uint64(b[8*i:])
	}
	if n == 6 {
		f.errorCode, w = w[0], w[1:]
	}
	f.rip, f.cs, f.rflags, f.rsp, f.ss = w[0], w[1], w[2], w[3], w[4]
	return f, nil
}

// userFlags are the RFLAGS bits a return to the program keeps: never IOPL,
// NT, VM or the virtual-interrupt flags, which only the CPL-0 iretq could
// otherwise set; bit 1 is always 1.
const userFlags = 0x3f7fff &^ (0x3000 | 0x4000 | 0x20000 | 0x180000)

// canonical reports whether a is a canonical user address.
func canonical(a uint64) bool { return a < 1<<47 }

// writeIretFrame writes the frame retUserAddr's iretq pops to return to
// the program at rip with rsp and rflags, at the top of vCPU id's stack,
// and returns its address.
func writeIretFrame(mem *guestmem.Memory, id int, rip, rsp, rflags uint64) (uint64, error) {
	tss, err := tssAddr(id)
	if err != nil {
		return 0, err
	}
	sp := uint64(tss) + tssStride - 5*8
	b, err := mem.Slice(guestmem.GuestAddr(sp), 5*8)
	if err != nil {
		return 0, err
	}
	le := binary.LittleEndian
	le.PutUint64(b, rip)
	le.PutUint64(b[8:], userCS)
	le.PutUint64(b[16:], rflags&userFlags|2)
	le.PutUint64(b[24:], rsp)
	le.PutUint64(b[32:], userDS)
	return sp, nil
}
