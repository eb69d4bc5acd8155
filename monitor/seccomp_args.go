package monitor

import (
	"fmt"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// The argument checks are a second filter, written here rather than by
// the library: go-seccomp-bpf v1.6.0's argument conditions leave an
// argument in the accumulator when they fail and go on comparing it with
// system-call numbers, so a call whose check failed could pass as another
// (socket(AF_PACKET, ...) as pread64, 17; an ioctl request's high half,
// which the kernel ignores, as any call). The library's filter allows the
// calls by name; this one, stacked on it, kills a checked call whose
// arguments pass none of its rules, and allows everything else, for the
// first to judge. The kernel runs both and takes the stricter verdict.
//
// Its layout, every jump forward and short:
//
//	ld arch; jeq AUDIT_ARCH_X86_64, or kill
//	ld nr; jge X32_SYSCALL_BIT: allow (the first filter answers ENOSYS)
//	for each checked call: jne nr: skip its block
//	    block: for each rule, its tests, each failing to the next rule;
//	           all passed: allow. After the last rule: kill.
//	allow

// seccomp_data's layout (linux/seccomp.h): the call number, the
// architecture, the instruction pointer, then six 64-bit arguments.
const (
	seccompDataNr   = 0
	seccompDataArch = 4
	seccompDataArgs = 16
)

// auditArchX8664 is AUDIT_ARCH_X86_64 (linux/audit.h); x32SyscallBit marks
// the x32 ABI's calls.
const (
	auditArchX8664 = 0xc000003e
	x32SyscallBit  = 0x40000000
)

// label names a place in a program being assembled.
type label int

// bpfAsm assembles a classic BPF program with forward jumps to labels.
type bpfAsm struct {
	prog   []bpf.Instruction
	labels []int          // label → instruction index; -1 until placed
	fixups []bpfJumpFixup // conditional jumps to resolve
}

// bpfJumpFixup is a JumpIf at index whose targets are labels (noLabel
// for the next instruction).
type bpfJumpFixup struct {
	index           int
	ifTrue, ifFalse label
}

const noLabel label = -1

func (a *bpfAsm) newLabel() label {
	a.labels = append(a.labels, -1)
	return label(len(a.labels) - 1)
}

func (a *bpfAsm) place(l label) { a.labels[l] = len(a.prog) }

func (a *bpfAsm) emit(i bpf.Instruction) { a.prog = append(a.prog, i) }

// jump emits a conditional jump to ifTrue, or else to ifFalse (noLabel: on
// to the next instruction).
func (a *bpfAsm) jump(cond bpf.JumpTest, val uint32, ifTrue, ifFalse label) {
	a.fixups = append(a.fixups, bpfJumpFixup{len(a.prog), ifTrue, ifFalse})
	a.emit(bpf.JumpIf{Cond: cond, Val: val})
}

// assemble resolves the jumps.
func (a *bpfAsm) assemble() ([]bpf.Instruction, error) {
	skip := func(from int, l label) (uint8, error) {
		if l == noLabel {
			return 0, nil
		}
		to := a.labels[l]
		if to <= from || to-from-1 > 255 {
			return 0, fmt.Errorf("seccomp: a jump from %d to %d", from, to)
		}
		return uint8(to - from - 1), nil
	}
	for _, f := range a.fixups {
		j := a.prog[f.index].(bpf.JumpIf)
		var err error
		if j.SkipTrue, err = skip(f.index, f.ifTrue); err != nil {
			return nil, err
		}
		if j.SkipFalse, err = skip(f.index, f.ifFalse); err != nil {
			return nil, err
		}
		a.prog[f.index] = j
	}
	return a.prog, nil
}

// loadArg loads the high or low half of argument arg.
func (a *bpfAsm) loadArg(arg int, high bool) {
	off := uint32(seccompDataArgs + 8*arg)
	if high {
		off += 4 // little-endian
	}
	a.emit(bpf.LoadAbsolute{Off: off, Size: 4})
}

// test emits t, jumping to fail unless it holds.
func (a *bpfAsm) test(t argTest, fail label) error {
	hi, lo := uint32(t.v>>32), uint32(t.v)
	switch t.op {
	case seccomp.Equal:
		a.loadArg(t.arg, true)
		a.jump(bpf.JumpNotEqual, hi, fail, noLabel)
		a.loadArg(t.arg, false)
		a.jump(bpf.JumpNotEqual, lo, fail, noLabel)
	case seccomp.BitsSet: // all of v's bits
		for _, half := range []struct {
			high bool
			v    uint32
		}{{true, hi}, {false, lo}} {
			if half.v == 0 {
				continue
			}
			a.loadArg(t.arg, half.high)
			a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: half.v})
			a.jump(bpf.JumpNotEqual, half.v, fail, noLabel)
		}
	case seccomp.BitsNotSet: // none of v's bits
		for _, half := range []struct {
			high bool
			v    uint32
		}{{true, hi}, {false, lo}} {
			if half.v == 0 {
				continue
			}
			a.loadArg(t.arg, half.high)
			a.jump(bpf.JumpBitsSet, half.v, fail, noLabel)
		}
	default:
		return fmt.Errorf("seccomp: operation %s", t.op)
	}
	return nil
}

// argFilter is the argument checks' program for process pid; a call
// that fails them returns deny.
func argFilter(pid int, deny uint32) ([]bpf.Instruction, error) {
	a := &bpfAsm{}
	x8664, notX32 := a.newLabel(), a.newLabel()
	a.emit(bpf.LoadAbsolute{Off: seccompDataArch, Size: 4})
	a.jump(bpf.JumpEqual, auditArchX8664, x8664, noLabel)
	a.emit(bpf.RetConstant{Val: deny})
	a.place(x8664)
	a.emit(bpf.LoadAbsolute{Off: seccompDataNr, Size: 4})
	a.jump(bpf.JumpGreaterOrEqual, x32SyscallBit, noLabel, notX32)
	a.emit(bpf.RetConstant{Val: unix.SECCOMP_RET_ALLOW})
	a.place(notX32)
	for _, c := range seccompCalls {
		if c.check == nil {
			continue
		}
		nr, ok := syscallNumbers[c.name]
		if !ok {
			return nil, fmt.Errorf("seccomp: no number for %s", c.name)
		}
		rules := c.check.rules
		if c.check.ownPID {
			rules = []argRule{{{0, seccomp.Equal, uint64(pid)}}}
		}
		next := a.newLabel()
		a.jump(bpf.JumpNotEqual, nr, next, noLabel)
		for _, r := range rules {
			fail := a.newLabel()
			for _, t := range r {
				if err := a.test(t, fail); err != nil {
					return nil, err
				}
			}
			a.emit(bpf.RetConstant{Val: unix.SECCOMP_RET_ALLOW})
			a.place(fail)
		}
		a.emit(bpf.RetConstant{Val: deny})
		a.place(next)
	}
	a.emit(bpf.RetConstant{Val: unix.SECCOMP_RET_ALLOW})
	return a.assemble()
}

// syscallNumbers maps x86-64 system-call names to numbers (the library's
// table, from the kernel's).
var syscallNumbers = func() map[string]uint32 {
	m := map[string]uint32{}
	for name, nr := range arch.X86_64.SyscallNames {
		m[name] = uint32(nr)
	}
	return m
}()
