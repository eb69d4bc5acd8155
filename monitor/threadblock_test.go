package monitor

import (
	"testing"

	"golang.org/x/sys/unix"
)

// gsBase is the GS base the fake machine gave t's vCPU.
func gsBase(t *thread) uint64 { return t.cpu.(*fakeCPU).sregs.GS.Base }

// TestThreadBlocks checks what a new thread's block holds, that its vCPU's
// GS base points at it, that a child inherits the mask through it, and
// that an ended thread's slot is reused, fresh.
func TestThreadBlocks(t *testing.T) {
	tv := newTestVM(t, vmOptions{})
	main := tv.main
	if a, _ := threadBlockAddr(main.slot); gsBase(main) != uint64(a) || gsBase(main) < uint64(threadBlocks) {
		t.Fatalf("main thread's GS base %#x, its block at %#x", gsBase(main), uint64(a))
	}
	b := tv.bytes(t, gsBase(main), threadBlockSize)
	if threadBlock(b).get(tbTID) != 1 || threadBlock(b).get(tbMask) != 0 || threadBlock(b).get(tbAltFl) != ssDisable || threadBlock(b).get(tbCPUs) != 3 {
		t.Errorf("main thread's block % x", b[:0x38])
	}

	tv.put(t, tv.at(0), u64s(sigbit(unix.SIGUSR1)))
	tv.mustCall(t, unix.SYS_RT_SIGPROCMASK, unix.SIG_BLOCK, tv.at(0), 0, sigsetSize)
	tid := tv.mustCall(t, unix.SYS_CLONE, cloneThreadFlags, 0, 0, 0, 0)
	child := tv.thread(int(tid))
	if gsBase(child) != gsBase(main)+threadBlockSize {
		t.Errorf("child's GS base %#x, main's %#x", gsBase(child), gsBase(main))
	}
	if child.block.get(tbTID) != tid || child.sigmask() != sigbit(unix.SIGUSR1) {
		t.Errorf("child's block: tid %d, mask %#x", child.block.get(tbTID), child.sigmask())
	}
	// The fast path writes the block; the monitor's handlers see it.
	child.block.put(tbAltSP, 0x7000_0000)
	child.block.put(tbAltSize, 8192)
	child.block.put(tbAltFl, 0)
	if _, _, ok := tv.sys(child, unix.SYS_SIGALTSTACK, 0, tv.at(64)); !ok || tv.word(t, tv.at(64)) != 0x7000_0000 || tv.word(t, tv.at(80)) != 8192 || tv.u32(t, tv.at(72)) != 0 {
		t.Errorf("sigaltstack does not read the block: % x", tv.bytes(t, tv.at(64), stackTSize))
	}
	if _, e, _ := tv.sys(child, unix.SYS_SCHED_GETAFFINITY, 0, 8, tv.at(0)); e != 0 || tv.word(t, tv.at(0)) != 3 {
		t.Errorf("sched_getaffinity of the calling thread: %v, %#x", e, tv.word(t, tv.at(0)))
	}
	if _, e, _ := tv.sys(child, unix.SYS_SCHED_GETAFFINITY, 1, 8, tv.at(0)); e != 0 {
		t.Errorf("sched_getaffinity of another guest thread: %v", e)
	}
	if _, e, _ := tv.sys(child, unix.SYS_SCHED_GETAFFINITY, 99, 8, tv.at(0)); e != unix.ESRCH {
		t.Errorf("sched_getaffinity of no thread: %v, want ESRCH", e)
	}

	// Its slot goes to the next thread, with a fresh block.
	slot := child.slot
	if _, _, ok := tv.sys(child, unix.SYS_EXIT, 0); ok {
		t.Fatal("exit returned")
	}
	tid2 := tv.mustCall(t, unix.SYS_CLONE, cloneThreadFlags, 0, 0, 0, 0)
	next := tv.thread(int(tid2))
	if next.slot != slot || next.block.get(tbTID) != tid2 || next.altStack() != (altStack{flags: ssDisable}) || next.sigmask() != sigbit(unix.SIGUSR1) {
		t.Errorf("reused slot %d (want %d): tid %d, alternate stack %+v, mask %#x", next.slot, slot, next.block.get(tbTID), next.altStack(), next.sigmask())
	}
}

// TestGuestHeldMask checks that the monitor takes a thread's mask from
// its block, which the trampoline changes without an exit: a signal it
// blocks waits; once the block unblocks it, the deliver trap (a fast path
// leaving with its result) delivers it.
func TestGuestHeldMask(t *testing.T) {
	tv := newTestVM(t, vmOptions{})
	const handler, restorer = 0x401100, 0x401200
	tv.put(t, tv.at(0), u64s(handler, saRestorer, restorer, 0))
	tv.mustCall(t, unix.SYS_RT_SIGACTION, uint64(unix.SIGUSR1), tv.at(0), 0, sigsetSize)
	m := tv.main
	m.block.put(tbMask, sigbit(unix.SIGUSR1)) // as the fast path would
	tv.mustCall(t, unix.SYS_TKILL, 1, uint64(unix.SIGUSR1))
	r := m.cpu.Regs()
	if r.RIP == handler || m.interrupted() || m.pending.Load() != sigbit(unix.SIGUSR1) {
		t.Fatalf("a signal the block blocks: rip %#x, pending %#x", r.RIP, m.pending.Load())
	}
	m.publishPending()
	if m.block.get(tbPending) != sigbit(unix.SIGUSR1) {
		t.Errorf("published pending %#x", m.block.get(tbPending))
	}
	// The fast path unblocks it and leaves through the deliver trap with
	// its result, 0, in RAX.
	m.block.put(tbMask, 0)
	r.RAX, r.RCX, r.R11 = 0, 0x401000, 0x202
	if !m.fastPathSignal() || r.RIP != 0x401000 || r.RAX != 0 {
		t.Fatalf("deliver trap: %+v", r)
	}
	if !m.deliverPending() || r.RIP != handler || r.RDI != uint64(unix.SIGUSR1) || m.sigmask() != sigbit(unix.SIGUSR1) {
		t.Errorf("not delivered after the deliver trap: %+v, mask %#x", r, m.sigmask())
	}
	if n := tv.stats.snapshot().Other["signal after a fast path"]; n != 1 {
		t.Errorf("%d deliver traps counted, want 1", n)
	}
}

// TestHostileBlock has the guest scribble on its own block: SIGKILL and
// SIGSTOP never count as blocked, and an alternate stack outside guest
// memory makes a signal undeliverable (a crash report), never a monitor
// failure.
func TestHostileBlock(t *testing.T) {
	tv := newTestVM(t, vmOptions{})
	m := tv.main
	m.block.put(tbMask, ^uint64(0))
	if m.sigmask()&unblockable != 0 {
		t.Errorf("mask %#x blocks SIGKILL or SIGSTOP", m.sigmask())
	}
	for _, alt := range []struct{ sp, size, flags uint64 }{
		{wild, 1 << 20, 0},
		{^uint64(0) - 10, 100, 0},
		{wild, 1 << 20, 0xfffd}, // every flag but SS_DISABLE: enabled
	} {
		tv := newTestVM(t, vmOptions{})
		tv.put(t, tv.at(0), u64s(0x401100, saRestorer|saOnstack, 0x401200, 0))
		tv.mustCall(t, unix.SYS_RT_SIGACTION, uint64(unix.SIGUSR1), tv.at(0), 0, sigsetSize)
		m := tv.main
		m.block.put(tbAltSP, alt.sp)
		m.block.put(tbAltSize, alt.size)
		m.block.put(tbAltFl, alt.flags)
		m.cpu.Regs().RSP = tv.at(4096)
		if _, _, ok := tv.sys(m, unix.SYS_TKILL, 1, uint64(unix.SIGUSR1)); ok || tv.life.exitCode != 128+int(unix.SIGUSR1) {
			t.Errorf("alternate stack %+v: ok %v, exit %d", alt, ok, tv.life.exitCode)
		}
	}
}
