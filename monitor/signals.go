package monitor

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"

	"atoll.dev/atoll/monitor/guestmem"
	"atoll.dev/atoll/monitor/kvm"
)

// sigaction mirrors the kernel's struct sigaction on x86-64.
type sigaction struct {
	handler, flags, restorer, mask uint64
}

const (
	// maxFPSaves bounds the FPU states kept for nested signal frames.
	maxFPSaves = 64
	// frameSize is the x86-64 rt_sigframe: the restorer's address, then
	// the ucontext and the siginfo (arch/x86/include/asm/sigframe.h).
	frameSize = 8 + ucontextSize + siginfoSize
	// redZone is the x86-64 psABI's red zone below the stack pointer,
	// which a signal frame must not overwrite.
	redZone = 128
	// fixEflags are the RFLAGS bits a signal handler may change (the
	// kernel's FIX_EFLAGS, arch/x86/kernel/signal.c).
	fixEflags = 0x50dd5
)

func sigbit(sig unix.Signal) uint64 { return 1 << (uint(sig) - 1) }

// unblockable signals can never be masked.
var unblockable = sigbit(unix.SIGKILL) | sigbit(unix.SIGSTOP)

// faultInfo is a synchronous signal raised by a CPU exception.
type faultInfo struct {
	sig                    unix.Signal
	code                   int32
	addr, trapno, err, cr2 uint64
}

// deliverFault delivers a synchronous signal. A fault that is blocked, has
// no handler or cannot be delivered ends the VM with a crash report.
func (t *thread) deliverFault(f faultInfo) bool {
	h := t.vm.sigs.get(int(f.sig))
	if h.handler == sigDfl || h.handler == sigIgn || t.sigmask()&sigbit(f.sig) != 0 {
		t.crash(fmt.Sprintf("%s at pc %#x (address %#x), and the guest has no handler for it", signalName(f.sig), t.cpu.Regs().RIP, f.addr), 128+int(f.sig))
		return false
	}
	var info [siginfoSize]byte
	putSiginfo(info[:], f.sig, f.code)
	binary.LittleEndian.PutUint64(info[16:], f.addr)
	if err := t.pushFrame(f.sig, h, info[:], f); err != nil {
		t.crash(fmt.Sprintf("%s at pc %#x could not be delivered: %v", signalName(f.sig), t.cpu.Regs().RIP, err), 128+int(f.sig))
		return false
	}
	return true
}

// deliverPending delivers the lowest queued, unblocked signal, if any. It
// returns false when the signal's default action ended the VM.
func (t *thread) deliverPending() bool {
	for {
		p := t.pending.Load() &^ t.sigmask()
		if p == 0 {
			return true
		}
		var sig unix.Signal
		for sig = 1; p&sigbit(sig) == 0; sig++ {
		}
		t.pending.And(^sigbit(sig))
		h := t.vm.sigs.get(int(sig))
		switch {
		case h.handler == sigIgn:
			continue
		case h.handler == sigDfl:
			if ignoredByDefault(sig) {
				continue
			}
			fmt.Fprintf(t.vm.cfg.Log, "atoll: guest killed by %s\n", signalName(sig))
			t.vm.exit(128 + int(sig))
			return false
		}
		var info [siginfoSize]byte
		putSiginfo(info[:], sig, siTkill)
		binary.LittleEndian.PutUint32(info[16:], guestPID)
		if err := t.pushFrame(sig, h, info[:], faultInfo{}); err != nil {
			t.crash(fmt.Sprintf("%s could not be delivered: %v", signalName(sig), err), 128+int(sig))
			return false
		}
		return true
	}
}

func ignoredByDefault(sig unix.Signal) bool {
	switch sig {
	case unix.SIGURG, unix.SIGCHLD, unix.SIGWINCH, unix.SIGCONT:
		return true
	}
	return false
}

func putSiginfo(b []byte, sig unix.Signal, code int32) {
	binary.LittleEndian.PutUint32(b[0:], uint32(sig))
	binary.LittleEndian.PutUint32(b[8:], uint32(code))
}

// pushFrame builds a Linux rt_sigframe for sig and points the vCPU at the
// handler, exactly as the kernel does on return to user space.
func (t *thread) pushFrame(sig unix.Signal, h sigaction, info []byte, f faultInfo) error {
	if h.flags&saRestorer == 0 {
		return fmt.Errorf("handler has no SA_RESTORER")
	}
	r := t.cpu.Regs()
	sp := r.RSP - redZone
	alt := t.altStack()
	if h.flags&saOnstack != 0 && alt.flags&ssDisable == 0 && !alt.on(r.RSP) {
		sp = alt.sp + alt.size
	}
	frame := (sp-frameSize)&^15 - 8
	b, err := t.vm.mem.GuestSlice(guestmem.GuestAddr(frame), frameSize)
	if err != nil {
		return fmt.Errorf("signal stack at %#x is not guest memory", frame)
	}
	clear(b)
	le := binary.LittleEndian
	le.PutUint64(b[0:], h.restorer)
	uc := b[8 : 8+ucontextSize]
	alt.put(uc[ucStackOff:], alt.on(r.RSP))
	mc := uc[mcontextOff:]
	for i, v := range []uint64{r.R8, r.R9, r.R10, r.R11, r.R12, r.R13, r.R14, r.R15,
		r.RDI, r.RSI, r.RBP, r.RBX, r.RDX, r.RAX, r.RCX, r.RSP, r.RIP, r.RFLAGS} {
		le.PutUint64(mc[8*i:], v)
	}
	le.PutUint16(mc[scCS:], 0x33) // Linux's __USER_CS
	le.PutUint64(mc[scErr:], f.err)
	le.PutUint64(mc[scTrapno:], f.trapno)
	mask := t.sigmask()
	le.PutUint64(mc[scOldmask:], mask)
	le.PutUint64(mc[scCR2:], f.cr2)
	le.PutUint64(uc[sigmaskOff:], mask)
	copy(b[8+ucontextSize:], info)

	x := new(kvm.Xsave)
	if err := t.cpu.GetXsave(x); err != nil {
		return fmt.Errorf("save FPU state: %w", err)
	}
	// A handler that never returns (longjmps away) leaves its entry
	// behind; keep the newest maxFPSaves so that cannot grow without end.
	if len(t.fpStack) == maxFPSaves {
		t.fpStack = append(t.fpStack[:0], t.fpStack[1:]...)
	}
	t.fpStack = append(t.fpStack, x)

	mask |= h.mask
	if h.flags&saNodefer == 0 {
		mask |= sigbit(sig)
	}
	t.setSigmask(mask)
	if h.flags&saResethand != 0 {
		t.vm.sigs.mu.Lock()
		t.vm.sigs.set(int(sig), sigaction{})
		t.vm.sigs.mu.Unlock()
	}
	r.RSP = frame
	r.RIP = h.handler
	r.RDI = uint64(sig)
	r.RSI = frame + 8 + ucontextSize
	r.RDX = frame + 8
	r.RAX = 0
	r.RFLAGS &^= 0x400 | 0x100 | 0x40000 // DF, TF, AC
	return nil
}

// on reports whether sp is on the alternate stack, as Linux's
// on_sig_stack.
func (s altStack) on(sp uint64) bool {
	return s.flags&ssDisable == 0 && sp > s.sp && sp-s.sp <= s.size
}
