package monitor

import (
	"encoding/binary"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"atoll.dev/atoll/monitor/guestmem"
	"atoll.dev/atoll/monitor/kvm"
)

// thread is one guest thread and the vCPU it runs on.
type thread struct {
	vm  *VM
	cpu cpu
	tid int

	pending atomic.Uint64 // signals queued by other threads (bit sig-1)

	// block is the thread's state the trampoline answers from: signal
	// mask, alternate stack (threadblock.go). slot is its number.
	block threadBlock
	slot  int

	// Owned by the thread's own goroutine:
	nr      uint64       // the system call being handled
	ctl     control      // what its handler did with the registers
	fpStack []*kvm.Xsave // FPU state saved at each signal delivery
}

// control tells the system-call path what a handler did with the
// registers.
type control int

const (
	ctlReturn control = iota // return the result to the caller
	ctlResume                // registers were replaced; resume them as is
	ctlStop                  // the thread is gone
)

// sysArgs are a system call's arguments, in the Linux x86-64 order.
type sysArgs [6]uint64

// syscall handles the system call the guest trapped on: SYSCALL has put
// the return address in RCX and the flags in R11. It returns false when
// the thread must stop.
func (t *thread) syscall() bool {
	r := t.cpu.Regs()
	nr := r.RAX
	t.vm.stats.syscall(nr)
	t.ctl = ctlReturn
	v, e := t.call(nr, sysArgs{r.RDI, r.RSI, r.RDX, r.R10, r.R8, r.R9})
	switch t.ctl {
	case ctlStop:
		return false
	case ctlReturn:
		if e != 0 {
			v = negErrno(e)
		}
		t.returnFromCall(v)
	}
	return true
}

// fastPathSignal completes a call the trampoline answered, whose result is
// in RAX, and which left through the deliver trap because a signal the
// thread does not block is queued: the vCPU loop delivers it before the
// thread runs on.
func (t *thread) fastPathSignal() bool {
	t.vm.stats.other("signal after a fast path")
	t.returnFromCall(t.cpu.Regs().RAX)
	return true
}

// call runs system call nr from the table (systable.go).
func (t *thread) call(nr uint64, a sysArgs) (uint64, unix.Errno) {
	t.nr = nr
	if faultHook != nil {
		faultHook(nr, a)
	}
	s := lookupSyscall(nr)
	switch {
	case s == nil:
		t.vm.log.printf("unsupported system call %s; answered ENOSYS", syscallName(nr))
		return 0, unix.ENOSYS
	case s.fn == nil:
		t.vm.log.printf("%s: not supported (%s); answered %s", s.name, plainNote(s.note), unix.ErrnoName(s.errno))
		return 0, s.errno
	}
	return s.fn(t, a)
}

// plainNote turns a table note into log text: no Markdown quotes, no
// capital or full stop around it.
func plainNote(note string) string {
	note = strings.TrimSuffix(strings.ReplaceAll(note, "`", ""), ".")
	if note == "" {
		return "no note"
	}
	return strings.ToLower(note[:1]) + note[1:]
}

// returnFromCall completes a system call with result v in RAX, as SYSRET
// would.
func (t *thread) returnFromCall(v uint64) {
	r := t.cpu.Regs()
	r.RAX = v
	r.RIP = r.RCX
	r.RFLAGS = r.R11
}

// unsupported logs, once, that the current call asked for something the
// monitor does not implement, and fails the call with e.
func (t *thread) unsupported(what string, e unix.Errno) (uint64, unix.Errno) {
	t.vm.log.printf("%s with %s: not supported; answered %s", syscallName(t.nr), what, unix.ErrnoName(e))
	return 0, e
}

// negErrno is e as a system call returns it in RAX.
func negErrno(e unix.Errno) uint64 { return uint64(-int64(e)) }

// errnoOf converts a host call's error to the errno the guest sees.
func errnoOf(err error) unix.Errno {
	switch e := err.(type) {
	case nil:
		return 0
	case unix.Errno:
		return e
	}
	return unix.EIO
}

// hostResult converts a host call's (count, error) to a handler's result.
func hostResult(n int, err error) (uint64, unix.Errno) {
	if err != nil {
		return 0, errnoOf(err)
	}
	return uint64(n), 0
}

// slice returns the guest memory [a, a+n) the guest named, if it all
// exists and lies outside the monitor's own pages (GuestSlice).
func (t *thread) slice(a, n uint64) ([]byte, bool) {
	b, err := t.vm.mem.GuestSlice(guestmem.GuestAddr(a), n)
	return b, err == nil
}

// interrupted reports whether a blocking call should return EINTR: the
// VM is ending or an unblocked signal is pending.
func (t *thread) interrupted() bool {
	return t.vm.exiting() || t.pending.Load()&^t.sigmask() != 0
}

// installNew gives f the lowest free descriptor and returns it.
func (t *thread) installNew(f file) (uint64, unix.Errno) {
	fd, e := t.vm.fds.install(f, 0)
	return uint64(fd), e
}

// maxIO bounds a single read, write or getrandom, as Linux does (MAX_RW_COUNT).
const maxIO = 0x7ffff000

// iovecs reads a guest iovec array into host slices.
func (t *thread) iovecs(addr, n uint64) ([][]byte, unix.Errno) {
	if n > iovMax {
		return nil, unix.EINVAL
	}
	raw, ok := t.slice(addr, n*iovecSize)
	if !ok {
		return nil, unix.EFAULT
	}
	out := make([][]byte, 0, n)
	var total uint64
	for i := uint64(0); i < n; i++ {
		base, l := binary.LittleEndian.Uint64(raw[iovecSize*i:]), binary.LittleEndian.Uint64(raw[iovecSize*i+8:])
		if total += l; total > maxIO || l > maxIO {
			return nil, unix.EINVAL
		}
		b, ok := t.slice(base, l)
		if !ok {
			return nil, unix.EFAULT
		}
		out = append(out, b)
	}
	return out, 0
}

// maxThreads bounds the guest's threads (each a vCPU and a host thread);
// clone beyond it is EAGAIN, as when Linux's RLIMIT_NPROC is reached.
const maxThreads = 1024

// threadTable is a VM's threads by id.
type threadTable struct {
	mu      sync.Mutex // guards the fields below
	m       map[int]*thread
	nextTID int
	// freeSlots are thread-block slots of ended threads; slots from
	// nextSlot up have never been used.
	freeSlots []int
	nextSlot  int
}

// newThread creates a thread running regs with FS base fs on a new vCPU
// whose GS base is the thread's block. It does not start it.
func (v *VM) newThread(regs *kvm.Regs, fs uint64) (*thread, error) {
	tt := &v.threads
	tt.mu.Lock()
	defer tt.mu.Unlock()
	if len(tt.m) >= maxThreads {
		return nil, unix.EAGAIN
	}
	slot := tt.nextSlot
	if n := len(tt.freeSlots); n > 0 {
		slot = tt.freeSlots[n-1]
	}
	gs, err := threadBlockAddr(slot)
	if err != nil {
		return nil, err
	}
	b, err := v.mem.Slice(gs, threadBlockSize)
	if err != nil {
		return nil, err
	}
	c, err := v.mach.newCPU(regs, fs, uint64(gs))
	if err != nil {
		return nil, err
	}
	if n := len(tt.freeSlots); n > 0 {
		tt.freeSlots = tt.freeSlots[:n-1]
	} else {
		tt.nextSlot++
	}
	t := &thread{vm: v, cpu: c, tid: tt.nextTID, block: b, slot: slot}
	t.block.init(t.tid, v.cfg.CPUs)
	tt.nextTID++
	tt.m[t.tid] = t
	return t, nil
}

// exitThread retires t's vCPU and ends the VM when t was the last thread.
func (v *VM) exitThread(t *thread, code int) {
	tt := &v.threads
	tt.mu.Lock()
	delete(tt.m, t.tid)
	tt.freeSlots = append(tt.freeSlots, t.slot)
	last := len(tt.m) == 0
	tt.mu.Unlock()
	v.mach.retire(t.cpu)
	if last {
		v.exit(code)
	}
}

// thread returns the thread with id tid, or nil.
func (v *VM) thread(tid int) *thread {
	v.threads.mu.Lock()
	defer v.threads.mu.Unlock()
	return v.threads.m[tid]
}

// kickAll makes every thread leave the guest.
func (v *VM) kickAll() {
	v.threads.mu.Lock()
	defer v.threads.mu.Unlock()
	for _, t := range v.threads.m {
		t.cpu.Kick()
	}
}
