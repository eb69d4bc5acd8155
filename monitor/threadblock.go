package monitor

import (
	"encoding/binary"
	"fmt"

	"atoll.dev/atoll/monitor/guestmem"
)

// A thread block is the per-thread state the trampoline's fast paths
// answer from (trampoline.go): the thread's id, signal mask and alternate
// signal stack, the signals queued for it, and the processors it may run
// on. Each thread has one in the system area; its vCPU's GS base points at
// it (Go uses FS for its TLS and never touches GS), so the trampoline
// finds it on either exit path. The monitor reads the mask and the
// alternate stack from the block whenever it needs them, so the block is
// their only copy. The guest's own code can write it on the paravirtual
// path (where nothing is closed to it) — which only changes its own
// signal state — and cannot on the hardware path (supervisor pages); the
// monitor checks what it reads as it would a system call's argument.
//
// Offsets must match testdata/trampoline.s.
const (
	tbTID     = 0x00 // the thread id (gettid)
	tbMask    = 0x08 // the signal mask (rt_sigprocmask)
	tbPending = 0x10 // the signals queued for the thread, as of its last exit
	tbAltSP   = 0x18 // the alternate signal stack (sigaltstack): base,
	tbAltFl   = 0x20 // flags (0 or SS_DISABLE),
	tbAltSize = 0x28 // and size
	tbCPUs    = 0x30 // the affinity mask (sched_getaffinity)
	// 0x38 and 0x40 are the trampoline's scratch words.

	threadBlockSize = 0x80
	// threadBlocks is where the blocks are, one per live thread.
	threadBlocks = guestmem.SystemBase + 0x8000
	// threadBlocksEnd bounds them: maxThreads blocks.
	threadBlocksEnd = threadBlocks + maxThreads*threadBlockSize
)

// threadBlock is a thread's block, as host bytes of guest memory.
type threadBlock []byte

// threadBlockAddr returns the address of block slot, the GS base of the
// thread using it.
func threadBlockAddr(slot int) (guestmem.GuestAddr, error) {
	if slot < 0 || slot >= maxThreads {
		return 0, fmt.Errorf("thread block %d does not exist (at most %d threads)", slot, maxThreads)
	}
	return threadBlocks + guestmem.GuestAddr(slot*threadBlockSize), nil
}

func (b threadBlock) get(off int) uint64    { return binary.LittleEndian.Uint64(b[off:]) }
func (b threadBlock) put(off int, v uint64) { binary.LittleEndian.PutUint64(b[off:], v) }

// init gives a new thread with id tid its block: no signals blocked or
// queued, no alternate stack, cpus processors.
func (b threadBlock) init(tid, cpus int) {
	clear(b)
	b.put(tbTID, uint64(tid))
	b.put(tbAltFl, ssDisable)
	b.put(tbCPUs, ^uint64(0)>>(64-min(cpus, 64)))
}

// sigmask returns t's signal mask; SIGKILL and SIGSTOP are never in it,
// whatever the block holds.
func (t *thread) sigmask() uint64 { return t.block.get(tbMask) &^ unblockable }

// setSigmask sets t's signal mask, without SIGKILL and SIGSTOP.
func (t *thread) setSigmask(m uint64) { t.block.put(tbMask, m&^unblockable) }

// altStack is an alternate signal stack (sigaltstack).
type altStack struct {
	sp, size uint64
	flags    int32 // 0 or SS_DISABLE
}

// altStack returns t's alternate signal stack.
func (t *thread) altStack() altStack {
	s := altStack{sp: t.block.get(tbAltSP), size: t.block.get(tbAltSize)}
	if t.block.get(tbAltFl)&ssDisable != 0 {
		s.flags = ssDisable
	}
	return s
}

// setAltStack sets t's alternate signal stack.
func (t *thread) setAltStack(s altStack) {
	t.block.put(tbAltSP, s.sp)
	t.block.put(tbAltSize, s.size)
	t.block.put(tbAltFl, uint64(s.flags))
}

// publishPending copies the signals queued for t into its block, before
// its vCPU enters the guest: a fast path that unblocks one of them then
// leaves through the trampoline's deliver trap. A signal queued later
// kicks the vCPU, which publishes it at its next entry.
func (t *thread) publishPending() { t.block.put(tbPending, t.pending.Load()) }
