package monitor

import (
	"encoding/binary"
	"sync"

	"atoll.dev/atoll/monitor/guestmem"
)

// The trampoline is where the guest's SYSCALL lands (MSR_LSTAR), and its
// final `hlt` is how a system call leaves the VM on either exit path
// (probe.go): on paravirtual KVM, SYSCALL stays in user mode and the
// privileged `hlt` traps, a shutdown exit at the hlt; on VMX and SVM,
// SYSCALL enters CPL 0 and the `hlt` is a HLT exit after it. The monitor
// recognises a system call by that address (machine_kvm.go). Before the
// `hlt`, a fast path answers the
// commonest call of a Go program's start-up — rt_sigaction, 114 of ~190
// boot exits — inside the guest, on a signal-action table in guest memory
// that the monitor also reads and writes. The fast path takes only valid,
// ordinary requests (signal 1–64, sigsetsize 8, not SIGKILL/SIGSTOP, act
// and oldact distinct); everything else, and every other call, traps. It
// stores masks without SIGKILL and SIGSTOP, as Linux does. It may clobber
// only what SYSCALL does (rax, rcx, r11). In user mode (paravirtual KVM)
// it returns with `push r11; popfq; jmp rcx`; at CPL 0 (hardware KVM,
// where SYSCALL enters CPL 0 and the final `hlt` is an ordinary HLT exit)
// with `sysretq`. A fault on a bad act or oldact pointer inside
// the fast path is answered EFAULT (vcpu.fault); act is probed before
// anything changes. Restoring the flags uses the 8 bytes below the
// caller's stack pointer (docs/abi.md).
//
// trampolineCode is assembled from testdata/trampoline.s
// (trampoline_test.go checks they match).
var trampolineCode = []byte{
	0x48, 0x83, 0xf8, 0x0d, 0x0f, 0x85, 0xc6, 0x00, 0x00, 0x00, 0x49, 0x83,
	0xfa, 0x08, 0x0f, 0x85, 0xbc, 0x00, 0x00, 0x00, 0x48, 0x83, 0xff, 0x40,
	0x0f, 0x87, 0xb2, 0x00, 0x00, 0x00, 0x48, 0x85, 0xff, 0x0f, 0x84, 0xa9,
	0x00, 0x00, 0x00, 0x48, 0x85, 0xf6, 0x74, 0x24, 0x48, 0x83, 0xff, 0x09,
	0x0f, 0x84, 0x9a, 0x00, 0x00, 0x00, 0x48, 0x83, 0xff, 0x13, 0x0f, 0x84,
	0x90, 0x00, 0x00, 0x00, 0x48, 0x39, 0xd6, 0x0f, 0x84, 0x87, 0x00, 0x00,
	0x00, 0x48, 0x8b, 0x06, 0x48, 0x8b, 0x46, 0x18, 0x48, 0x85, 0xd2, 0x74,
	0x2f, 0x48, 0x8b, 0x04, 0xfd, 0x00, 0x30, 0x20, 0x00, 0x48, 0x89, 0x02,
	0x48, 0x8b, 0x04, 0xfd, 0x08, 0x32, 0x20, 0x00, 0x48, 0x89, 0x42, 0x08,
	0x48, 0x8b, 0x04, 0xfd, 0x10, 0x34, 0x20, 0x00, 0x48, 0x89, 0x42, 0x10,
	0x48, 0x8b, 0x04, 0xfd, 0x18, 0x36, 0x20, 0x00, 0x48, 0x89, 0x42, 0x18,
	0x48, 0x85, 0xf6, 0x74, 0x35, 0x48, 0x8b, 0x46, 0x08, 0x48, 0x89, 0x04,
	0xfd, 0x08, 0x32, 0x20, 0x00, 0x48, 0x8b, 0x46, 0x10, 0x48, 0x89, 0x04,
	0xfd, 0x10, 0x34, 0x20, 0x00, 0x48, 0x8b, 0x46, 0x18, 0x48, 0x25, 0xff,
	0xfe, 0xfb, 0xff, 0x48, 0x89, 0x04, 0xfd, 0x18, 0x36, 0x20, 0x00, 0x48,
	0x8b, 0x06, 0x48, 0x89, 0x04, 0xfd, 0x00, 0x30, 0x20, 0x00, 0x8c, 0xc8,
	0xa8, 0x03, 0x74, 0x07, 0x31, 0xc0, 0x41, 0x53, 0x9d, 0xff, 0xe1, 0x31,
	0xc0, 0x48, 0x0f, 0x07, 0xf4,
}

const (
	// trampolineSysret is the offset of the fast path's `sysretq`.
	trampolineSysret = trampolineHlt - 3
	// trampolineHlt is the offset of the trapping `hlt`.
	trampolineHlt = 0xd0

	// sigTableAddr holds the signal actions, as four arrays of 65 words
	// indexed by signal number: handler, flags, restorer, mask.
	sigTableAddr   = guestmem.SystemBase + 0x3000
	sigTableStride = 0x208
)

// sigTable is the guest's signal actions, kept in guest memory at
// sigTableAddr so that the trampoline's fast path can answer rt_sigaction
// without an exit. The guest can change the table at any time; the monitor
// only trusts what it checks.
type sigTable struct {
	mem *guestmem.Memory
	// mu serializes the monitor's updates of the table.
	mu sync.Mutex
}

// get returns the action for sig (1–64).
func (s *sigTable) get(sig int) sigaction {
	b, err := s.mem.Slice(sigTableAddr, 4*sigTableStride)
	if err != nil {
		return sigaction{}
	}
	le := binary.LittleEndian
	w := func(array int) uint64 { return le.Uint64(b[array*sigTableStride+8*sig:]) }
	return sigaction{handler: w(0), flags: w(1), restorer: w(2), mask: w(3) &^ unblockable}
}

// set stores the action for sig, handler last so that a concurrent reader
// never sees a new handler with old flags. The caller holds mu.
func (s *sigTable) set(sig int, h sigaction) {
	b, err := s.mem.Slice(sigTableAddr, 4*sigTableStride)
	if err != nil {
		return
	}
	le := binary.LittleEndian
	le.PutUint64(b[1*sigTableStride+8*sig:], h.flags)
	le.PutUint64(b[2*sigTableStride+8*sig:], h.restorer)
	le.PutUint64(b[3*sigTableStride+8*sig:], h.mask)
	le.PutUint64(b[0*sigTableStride+8*sig:], h.handler)
}
