package monitor

import (
	"fmt"
	"strings"

	"atoll.dev/atoll/monitor/elfimage"
	"atoll.dev/atoll/monitor/guestmem"
	"atoll.dev/atoll/monitor/vdso"
)

// crash reports a guest failure Go itself could not report — the cause,
// the registers and a symbolized backtrace along the frame-pointer chain —
// and ends the VM with status code. The thread stops.
func (t *thread) crash(cause string, code int) {
	t.ctl = ctlStop
	var b strings.Builder
	r := *t.cpu.Regs()
	syms := elfimage.Symbols(t.vm.cfg.Image)
	fmt.Fprintf(&b, "atoll: guest crashed (thread %d): %s\n", t.tid, cause)
	fmt.Fprintf(&b, "  rip %#016x  %s\n", r.RIP, symbolize(syms, r.RIP))
	for _, row := range [][2]struct {
		n string
		v uint64
	}{
		{{"rax", r.RAX}, {"rbx", r.RBX}}, {{"rcx", r.RCX}, {"rdx", r.RDX}},
		{{"rsi", r.RSI}, {"rdi", r.RDI}}, {{"rbp", r.RBP}, {"rsp", r.RSP}},
		{{"r8", r.R8}, {"r9", r.R9}}, {{"r10", r.R10}, {"r11", r.R11}},
		{{"r12", r.R12}, {"r13", r.R13}}, {{"r14", r.R14}, {"r15", r.R15}},
	} {
		fmt.Fprintf(&b, "  %-3s %#016x  %-3s %#016x\n", row[0].n, row[0].v, row[1].n, row[1].v)
	}
	fmt.Fprintf(&b, "  rflags %#x\n", r.RFLAGS)
	b.WriteString("backtrace (frame pointers):\n")
	fmt.Fprintf(&b, "  %#016x  %s\n", r.RIP, symbolize(syms, r.RIP))
	// A function that has not set up its frame (a leaf, or one stopped in
	// its prologue) has its return address on top of the stack instead.
	if ret, err := t.vm.mem.ReadU64(guestmem.GuestAddr(r.RSP)); err == nil {
		if _, _, ok := elfimage.Lookup(syms, ret-1); ok && ret != 0 {
			fmt.Fprintf(&b, "  %#016x  %s (return address on top of stack)\n", ret, symbolize(syms, ret-1))
		}
	}
	fp := r.RBP
	for i := 0; i < 64 && fp != 0; i++ {
		ret, err1 := t.vm.mem.ReadU64(guestmem.GuestAddr(fp + 8))
		next, err2 := t.vm.mem.ReadU64(guestmem.GuestAddr(fp))
		if err1 != nil || err2 != nil || ret == 0 {
			break
		}
		fmt.Fprintf(&b, "  %#016x  %s\n", ret, symbolize(syms, ret-1))
		if next <= fp {
			break
		}
		fp = next
	}
	fmt.Fprint(t.vm.cfg.Log, b.String())
	t.vm.exit(code)
}

func symbolize(syms []elfimage.Symbol, pc uint64) string {
	switch {
	case inMonitorCode(pc):
		return "(atoll monitor code)"
	case pc >= uint64(vdsoAddr) && pc < uint64(vdsoAddr)+vdso.Size:
		return "(atoll vdso)"
	}
	if s, off, ok := elfimage.Lookup(syms, pc); ok {
		return fmt.Sprintf("%s+%#x", s.Name, off)
	}
	return "?"
}
