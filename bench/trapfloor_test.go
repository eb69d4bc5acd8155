package bench

import (
	"encoding/binary"
	"errors"
	"testing"

	"golang.org/x/sys/unix"

	"atoll.dev/atoll/monitor/kvm"
)

// BenchmarkTrapFloor measures the floor under a forwarded system call on
// this host, in ns/op: a vCPU in 64-bit user mode loops on `syscall`, whose target
// is a lone `hlt` — Atoll's exit path on paravirtual KVM (kvm_pvm) with
// nothing in it — and the loop here resumes it at RCX, as the monitor
// returns from a call, through the same kvm package. Run it with
// BenchmarkGetpid for the ratio (docs/benchmarks.md). On VMX and SVM the
// system call would enter CPL 0, which this bare VM has no tables for: it
// skips.
func BenchmarkTrapFloor(b *testing.B) {
	sys, err := kvm.Open()
	if err != nil {
		b.Skipf("no KVM: %v", err)
	}
	defer sys.Close()
	vm, err := sys.CreateVM()
	if err != nil {
		b.Fatal(err)
	}
	defer vm.Close()
	const (
		memSize   = 4 << 20
		code      = 0x200000        // syscall; jmp back
		entry     = 0x200100        // hlt: MSR_LSTAR
		large     = 1<<7 | 1<<1 | 1 // 2 MiB page, writable, present
		user      = 1 << 2
		pml4, pdp = 0x1000, 0x2000
		pd        = 0x3000
	)
	mem, err := unix.Mmap(-1, 0, memSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Munmap(mem)
	le := binary.LittleEndian
	le.PutUint64(mem[pml4:], pdp|user|3)
	le.PutUint64(mem[pdp:], pd|user|3)
	le.PutUint64(mem[pd:], large)                 // [0, 2 MiB): supervisor, the tables
	le.PutUint64(mem[pd+8:], 0x200000|large|user) // [2 MiB, 4 MiB): the program
	copy(mem[code:], []byte{0x0f, 0x05, 0xeb, 0xfc})
	mem[entry] = 0xf4
	if err := vm.SetMemory(0, 0, mem); err != nil {
		b.Fatal(err)
	}
	c, err := vm.CreateVCPU(0)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	var s kvm.Sregs
	if err := c.GetSregs(&s); err != nil {
		b.Fatal(err)
	}
	s.CS = kvm.Segment{Limit: 0xffffffff, Selector: 0x33, Type: 11, Present: 1, DPL: 3, S: 1, L: 1, G: 1}
	data := kvm.Segment{Limit: 0xffffffff, Selector: 0x2b, Type: 3, Present: 1, DPL: 3, S: 1, DB: 1, G: 1}
	s.DS, s.ES, s.FS, s.GS, s.SS = data, data, data, data, data
	s.CR0, s.CR3, s.CR4 = 0x80050033, pml4, 1<<5|1<<9|1<<10
	s.EFER = 1 | 1<<8 | 1<<10 | 1<<11 // SCE, LME, LMA, NXE
	if err := c.SetSregs(&s); err != nil {
		b.Fatal(err)
	}
	if err := c.SetMSRs(kvm.MSR{Index: kvm.MSRLStar, Value: entry}, kvm.MSR{Index: kvm.MSRStar, Value: 0x8 << 32}, kvm.MSR{Index: kvm.MSRFMask}); err != nil {
		b.Fatal(err)
	}
	if err := c.SetRegs(&kvm.Regs{RIP: code, RSP: 0x300000, RFLAGS: 2}); err != nil {
		b.Fatal(err)
	}
	run := c.Run
	run.ValidRegs = kvm.SyncRegs
	trap := func() {
		for {
			err := c.RunOnce()
			if errors.Is(err, unix.EINTR) {
				run.ImmediateExit = 0
				continue
			}
			if err != nil {
				b.Fatal(err)
			}
			break
		}
		r := &run.Regs
		if run.ExitReason != kvm.ExitShutdown || r.RIP != entry {
			b.Skipf("not kvm_pvm's exit path: exit %d at %#x", run.ExitReason, r.RIP)
		}
		r.RIP, r.RFLAGS = r.RCX, r.R11
		run.DirtyRegs = kvm.SyncRegs
	}
	trap() // the first run costs more
	b.ResetTimer()
	for range b.N {
		trap()
	}
}
