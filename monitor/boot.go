package monitor

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"strings"

	"atoll.dev/atoll/monitor/guestmem"
	"atoll.dev/atoll/monitor/kvm"
)

// The system area holds monitor-owned guest pages at fixed offsets.
const (
	trampolineAddr = guestmem.SystemBase          // SYSCALL lands here (MSR_LSTAR)
	vvarAddr       = guestmem.SystemBase + 0x1000 // clock parameters (clock.go)
	vdsoAddr       = guestmem.SystemBase + 0x2000 // the vDSO image (vdso.go)
)

// Control-register and EFER bits (Intel SDM vol. 3, 2.5).
const (
	cr0PE, cr0MP, cr0ET, cr0NE, cr0WP, cr0AM, cr0PG = 1 << 0, 1 << 1, 1 << 4, 1 << 5, 1 << 16, 1 << 18, 1 << 31
	cr4PAE, cr4OSFXSR, cr4OSXMMEXCPT, cr4OSXSAVE    = 1 << 5, 1 << 9, 1 << 10, 1 << 18
	eferSCE, eferLME, eferLMA, eferNXE              = 1 << 0, 1 << 8, 1 << 10, 1 << 11
)

// writeSystemArea installs the syscall trampoline (trampoline.go) and the
// vDSO.
//
// The guest runs in user mode (CPL 3) with no kernel: SYSCALL jumps to
// MSR_LSTAR without changing privilege, and the privileged `hlt` at the
// trampoline's end traps. With no exception handler in the guest the trap ends KVM_RUN, and
// the monitor recognises a system call by the trapping address. Measured on
// this project's PVM hosts, supervisor mode is emulated instruction by
// instruction while user mode runs natively; see docs/architecture.md.
func (v *VM) writeSystemArea() error {
	b, err := v.mem.Slice(trampolineAddr, uint64(len(trampolineCode)))
	if err != nil {
		return err
	}
	copy(b, trampolineCode)
	img, err := v.mem.Slice(vdsoAddr, vdsoSize)
	if err != nil {
		return err
	}
	copy(img, buildVDSO())
	return nil
}

// startClock anchors the guest clock on vCPU c, before it first runs, and
// keeps it anchored until the VM ends.
func (v *VM) startClock(c *kvm.VCPU) error {
	khz, err := c.TSCKHz()
	if err != nil {
		return err
	}
	h1 := rdtsc()
	g, err := c.GetMSR(kvm.MSRTSC)
	h2 := rdtsc()
	if err != nil {
		return err
	}
	page, err := v.mem.Slice(vvarAddr, guestmem.PageSize)
	if err != nil {
		return err
	}
	v.clock = newClock(page, khz, int64(g-(h1/2+h2/2)))
	go v.clock.run(v.done)
	return nil
}

// setupCPU puts c in 64-bit user mode on the guest's page tables with the
// given registers and FS base.
func (v *VM) setupCPU(c *kvm.VCPU, regs *kvm.Regs, fs uint64) error {
	var s kvm.Sregs
	if err := c.GetSregs(&s); err != nil {
		return fmt.Errorf("KVM_GET_SREGS: %w", err)
	}
	// Linux's user selectors: __USER_CS 0x33, __USER_DS 0x2b.
	code := kvm.Segment{Limit: 0xffffffff, Selector: 0x33, Type: 11, Present: 1, DPL: 3, S: 1, L: 1, G: 1}
	data := kvm.Segment{Limit: 0xffffffff, Selector: 0x2b, Type: 3, Present: 1, DPL: 3, S: 1, DB: 1, G: 1}
	s.CS = code
	s.DS, s.ES, s.SS, s.GS = data, data, data, data
	s.FS = data
	s.FS.Base = fs
	s.CR0 = cr0PE | cr0MP | cr0ET | cr0NE | cr0WP | cr0AM | cr0PG
	s.CR3 = v.mem.CR3()
	s.CR4 = cr4PAE | cr4OSFXSR | cr4OSXMMEXCPT | cr4OSXSAVE
	s.EFER = eferSCE | eferLME | eferLMA | eferNXE
	if err := c.SetSregs(&s); err != nil {
		return fmt.Errorf("KVM_SET_SREGS: %w", err)
	}
	if err := c.SetMSRs(
		kvm.MSR{Index: kvm.MSRLStar, Value: uint64(trampolineAddr)},
		kvm.MSR{Index: kvm.MSRStar, Value: 0x8 << 32},
		kvm.MSR{Index: kvm.MSRFMask, Value: 0},
	); err != nil {
		return err
	}
	if err := c.SetRegs(regs); err != nil {
		return fmt.Errorf("KVM_SET_REGS: %w", err)
	}
	c.Run.ValidRegs = kvm.SyncRegs
	c.Run.DirtyRegs = 0
	return nil
}

// Auxiliary-vector keys (include/uapi/linux/auxvec.h).
const (
	atNull, atPagesz, atClktck, atHwcap, atSecure, atRandom, atExecfn, atSysinfoEhdr = 0, 6, 17, 16, 23, 25, 31, 33
)

// guestEnv returns the environment the guest starts with: the configured
// variables, the device list, and GOMEMLIMIT below the memory limit unless
// one was given.
func (v *VM) guestEnv() []string {
	env := append([]string(nil), v.cfg.Env...)
	if v.devicesEnv != "" {
		env = append(env, v.devicesEnv)
	}
	for _, e := range env {
		if strings.HasPrefix(e, "GOMEMLIMIT=") {
			return env
		}
	}
	image := v.img.End - v.img.Start + stackSize
	limit := uint64(0)
	if v.cfg.MemBytes > image {
		limit = (v.cfg.MemBytes - image) / 8 * 7
	}
	return append(env, fmt.Sprintf("GOMEMLIMIT=%d", limit))
}

// buildStack lays out argc, argv, envp and the auxiliary vector at the top
// of the initial stack, as Linux's execve does, and returns the stack
// pointer.
func (v *VM) buildStack() (guestmem.GuestAddr, error) {
	var err error
	sp := v.stackTop
	push := func(b []byte) guestmem.GuestAddr {
		sp -= guestmem.GuestAddr(len(b))
		dst, err2 := v.mem.Slice(sp, uint64(len(b)))
		if err2 != nil {
			err = err2
			return 0
		}
		copy(dst, b)
		return sp
	}
	pushString := func(s string) uint64 { return uint64(push(append([]byte(s), 0))) }

	argv := []uint64{pushString(v.cfg.Name)}
	for _, a := range v.cfg.Args {
		argv = append(argv, pushString(a))
	}
	var envp []uint64
	for _, e := range v.guestEnv() {
		envp = append(envp, pushString(e))
	}
	execfn := argv[0]
	var rnd [16]byte
	rand.Read(rnd[:])
	random := uint64(push(rnd[:]))
	hwcap := uint64(0)
	for _, e := range v.cpuid {
		if e.Function == 1 {
			hwcap = uint64(e.EDX)
		}
	}
	auxv := []uint64{atPagesz, guestmem.PageSize, atClktck, 100, atHwcap, hwcap,
		atSecure, 0, atRandom, random, atExecfn, execfn, atSysinfoEhdr, uint64(vdsoAddr), atNull, 0}

	var words []uint64
	words = append(words, uint64(len(argv)))
	words = append(words, argv...)
	words = append(words, 0)
	words = append(words, envp...)
	words = append(words, 0)
	words = append(words, auxv...)
	sp &^= 15
	if len(words)%2 == 1 {
		sp -= 8
	}
	buf := make([]byte, 8*len(words))
	for i, w := range words {
		binary.LittleEndian.PutUint64(buf[8*i:], w)
	}
	push(buf)
	if err != nil {
		return 0, fmt.Errorf("arguments and environment do not fit the stack: %w", err)
	}
	return sp, nil
}
