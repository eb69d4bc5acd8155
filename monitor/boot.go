package monitor

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"strings"

	"atoll.dev/atoll/monitor/guestmem"
	"atoll.dev/atoll/monitor/kvm"
	"atoll.dev/atoll/monitor/vdso"
)

// The system area holds monitor-owned guest pages at fixed offsets.
const (
	trampolineAddr = guestmem.SystemBase          // SYSCALL lands here (MSR_LSTAR)
	vvarAddr       = guestmem.SystemBase + 0x1000 // vDSO parameters: clock, random generation (package vdso)
	vdsoAddr       = guestmem.SystemBase + 0x2000 // the vDSO image, just above them
)

// writeSystemArea installs the system-call trampoline (trampoline.go),
// the vDSO, and the stub and descriptor tables of the hardware exit path
// (hwstub.go).
func (v *VM) writeSystemArea() error {
	b, err := v.mem.Slice(trampolineAddr, uint64(len(trampolineCode)))
	if err != nil {
		return err
	}
	copy(b, trampolineCode)
	img, err := v.mem.Slice(vdsoAddr, vdso.Size)
	if err != nil {
		return err
	}
	copy(img, vdso.Image())
	if err := v.mem.MapMMIO(doorbellAddr, v.mem.MMIOBase()); err != nil {
		return err
	}
	return writeHardwareTables(v.mem)
}

// startVDSO anchors the guest clock on vCPU c and seeds the vDSO's random
// generation, before c first runs, and keeps both until the VM ends: the
// clock re-anchored, the generation bumped every reseed period.
func (v *VM) startVDSO(c *kvm.VCPU) error {
	khz, err := c.TSCKHz()
	if err != nil {
		return err
	}
	h1 := vdso.RDTSC()
	g, err := c.GetMSR(kvm.MSRTSC)
	h2 := vdso.RDTSC()
	if err != nil {
		return err
	}
	page, err := v.mem.Slice(vvarAddr, guestmem.PageSize)
	if err != nil {
		return err
	}
	v.clock = vdso.NewClock(page, khz, int64(g-(h1/2+h2/2)))
	random := vdso.NewRandom(page)
	// Both write guest memory until the VM ends; the memory is released
	// only after they have stopped.
	v.life.running.Add(2)
	go func() {
		defer v.life.running.Done()
		v.clock.Run(v.life.done)
	}()
	go func() {
		defer v.life.running.Done()
		random.Run(v.life.done)
	}()
	return nil
}

// guestEnv returns the environment the guest starts with: the configured
// variables, the device list, and GOMEMLIMIT unless one was given: 7/8 of
// the memory limit left after the image, so that the runtime's memory,
// counted in 2 MiB chunks (guestmem/hold.go), stays under the limit.
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
	// What the guest holds besides what Go's runtime manages: the
	// monitor's area, the image's file contents, the stack's top.
	image := guestmem.Layout{}.Committed() + imageChunks(v.img) + guestmem.LargePage
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
		dst, err2 := v.mem.Populate(sp, uint64(len(b)))
		if err2 != nil {
			err = err2
			return 0
		}
		copy(dst, b)
		return sp
	}
	pushString := func(s string) uint64 { return uint64(push(append([]byte(s), 0))) }

	argv0 := v.cfg.Argv0
	if argv0 == "" {
		argv0 = v.cfg.Name
	}
	argv := []uint64{pushString(argv0)}
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
	auxv := []uint64{atPagesz, guestmem.PageSize, atClktck, 100, atHwcap, v.hwcap,
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
