package monitor

import (
	"encoding/binary"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"

	"atoll.dev/atoll/monitor/elfimage"
	"atoll.dev/atoll/monitor/guestmem"
	"atoll.dev/atoll/monitor/kvm"
	"atoll.dev/atoll/monitor/vdso"
	"atoll.dev/atoll/monitor/vfs"
)

// The handler harness: a VM whose vCPUs are fakes (fakeCPU, fakeMachine)
// over real guest memory (guestmem with fake slots), real host objects and
// the real system-call table, so that handlers run in-process, without
// /dev/kvm, exactly as the vCPU loop calls them.

// fakeCPU is a vCPU that never runs: registers and state in memory.
type fakeCPU struct {
	regs   kvm.Regs
	mu     sync.Mutex
	msrs   map[uint32]uint64
	xsave  kvm.Xsave
	events kvm.VCPUEvents
	sregs  kvm.Sregs
	kicks  atomic.Int32
}

func (c *fakeCPU) Regs() *kvm.Regs { return &c.regs }

func (c *fakeCPU) GetMSR(i uint32) (uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.msrs[i], nil
}

func (c *fakeCPU) SetMSRs(ms ...kvm.MSR) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range ms {
		c.msrs[m.Index] = m.Value
	}
	return nil
}

func (c *fakeCPU) GetXsave(x *kvm.Xsave) error       { *x = c.xsave; return nil }
func (c *fakeCPU) SetXsave(x *kvm.Xsave) error       { c.xsave = *x; return nil }
func (c *fakeCPU) GetEvents(e *kvm.VCPUEvents) error { *e = c.events; return nil }
func (c *fakeCPU) GetSregs(s *kvm.Sregs) error       { *s = c.sregs; return nil }
func (c *fakeCPU) Kick()                             { c.kicks.Add(1) }

// fakeMachine makes fake vCPUs and records the threads it is asked to
// start, without running them.
type fakeMachine struct {
	mu      sync.Mutex
	started []*thread
}

func (m *fakeMachine) newCPU(regs *kvm.Regs, fs, gs uint64) (cpu, error) {
	c := &fakeCPU{regs: *regs, msrs: map[uint32]uint64{kvm.MSRFSBase: fs}}
	c.sregs.GS.Base = gs
	return c, nil
}

func (m *fakeMachine) start(t *thread) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.started = append(m.started, t)
}

func (m *fakeMachine) retire(cpu) {}

func (m *fakeMachine) flushTLBs() {}

// doorbell records nothing: a test rings a doorbell by writing its
// eventfd.
func (m *fakeMachine) doorbell(uint64, int) error { return nil }
func (m *fakeMachine) close()                     {}

// noSlots accepts guest memory without a hypervisor.
type noSlots struct{}

func (noSlots) SetMemory(uint32, uint64, []byte) error { return nil }

// testVM is a VM on the fake machine, with its first thread.
type testVM struct {
	*VM
	mach    *fakeMachine
	main    *thread
	scratch uint64 // guest address of scratchSize bytes for call arguments
	console *os.File
}

const scratchSize = 1 << 20

// vmOptions adjust newTestVM.
type vmOptions struct {
	devices []Device
	console *os.File // guest fds 1 and 2; a temporary file by default
	log     io.Writer
	mem     uint64
	hostNet *HostNet
	volumes []vfs.Volume
}

// newVolumeVM is newTestVM with a temporary directory as the volume
// /data, which it returns.
func newVolumeVM(t testing.TB) (*testVM, string) {
	t.Helper()
	dir := t.TempDir()
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	return newTestVM(t, vmOptions{volumes: []vfs.Volume{{Path: "/data", Dir: d}}}), dir
}

// newTestVM boots nothing: it builds the VM a boot would, on fakes, and
// closes it when the test ends.
func newTestVM(t testing.TB, o vmOptions) *testVM {
	t.Helper()
	if o.mem == 0 {
		o.mem = 256 << 20
	}
	console := o.console
	if console == nil {
		f, err := os.CreateTemp(t.TempDir(), "console")
		if err != nil {
			t.Fatal(err)
		}
		console = f
	}
	img := &elfimage.Image{Start: 0x400000, End: 0x600000, Entry: 0x400000}
	mach := &fakeMachine{}
	v, err := newVM(Config{Name: "test", MemBytes: o.mem, CPUs: 2, Stdout: console, Stderr: console,
		Log: o.log, Verbose: o.log != nil, Devices: o.devices, HostNet: o.hostNet, Volumes: o.volumes}, img, mach, noSlots{})
	if err != nil {
		t.Fatal(err)
	}
	if o.console == nil {
		console.Close()
	}
	t.Cleanup(func() {
		v.exit(-1)
		v.close()
	})
	page, err := v.mem.Slice(vvarAddr, guestmem.PageSize)
	if err != nil {
		t.Fatal(err)
	}
	v.clock = vdso.NewClock(page, 2_000_000, 0)
	if err := v.writeSystemArea(); err != nil {
		t.Fatal(err)
	}
	main, err := v.newThread(&kvm.Regs{RSP: uint64(v.stackTop) - 4096}, 0)
	if err != nil {
		t.Fatal(err)
	}
	scratch, e := v.mem.Mmap(0, scratchSize, unix.PROT_READ|unix.PROT_WRITE, 0)
	if e != 0 {
		t.Fatal(e)
	}
	return &testVM{VM: v, mach: mach, main: main, scratch: uint64(scratch), console: console}
}

// sys makes system call nr on thread t as the vCPU loop does, from the
// registers, and decodes the result. ok is false when the thread stopped.
func (tv *testVM) sys(t *thread, nr uint64, args ...uint64) (v uint64, e unix.Errno, ok bool) {
	var a sysArgs
	copy(a[:], args)
	r := t.cpu.Regs()
	r.RAX, r.RDI, r.RSI, r.RDX, r.R10, r.R8, r.R9 = nr, a[0], a[1], a[2], a[3], a[4], a[5]
	r.RCX, r.R11 = 0x401000, 0x202
	if !t.syscall() {
		return 0, 0, false
	}
	if t.ctl == ctlReturn && r.RIP != 0x401000 {
		panic("monitor: a returning call did not return to RCX")
	}
	if r.RAX > negErrno(4096) {
		return 0, unix.Errno(-int64(r.RAX)), true
	}
	return r.RAX, 0, true
}

// call is sys on the main thread, for calls that return.
func (tv *testVM) call(t testing.TB, nr uint64, args ...uint64) (uint64, unix.Errno) {
	t.Helper()
	v, e, ok := tv.sys(tv.main, nr, args...)
	if !ok {
		t.Fatalf("%s stopped the thread", syscallName(nr))
	}
	return v, e
}

// mustCall is call for calls that must succeed.
func (tv *testVM) mustCall(t testing.TB, nr uint64, args ...uint64) uint64 {
	t.Helper()
	v, e := tv.call(t, nr, args...)
	if e != 0 {
		t.Fatalf("%s%v: %v", syscallName(nr), args, e)
	}
	return v
}

// mem returns guest memory [a, a+n).
func (tv *testVM) bytes(t testing.TB, a, n uint64) []byte {
	t.Helper()
	b, err := tv.VM.mem.Slice(guestmem.GuestAddr(a), n)
	if err != nil {
		t.Fatalf("guest memory %#x+%d: %v", a, n, err)
	}
	return b
}

// at returns the scratch address off bytes in.
func (tv *testVM) at(off uint64) uint64 { return tv.scratch + off }

// put writes data into guest memory at a.
func (tv *testVM) put(t testing.TB, a uint64, data []byte) {
	copy(tv.bytes(t, a, uint64(len(data))), data)
}

// u64s encodes words little-endian.
func u64s(ws ...uint64) []byte {
	b := make([]byte, 8*len(ws))
	for i, w := range ws {
		binary.LittleEndian.PutUint64(b[8*i:], w)
	}
	return b
}

// word reads a little-endian word of guest memory.
func (tv *testVM) word(t testing.TB, a uint64) uint64 {
	return binary.LittleEndian.Uint64(tv.bytes(t, a, 8))
}

// u32 reads a little-endian 32-bit word of guest memory.
func (tv *testVM) u32(t testing.TB, a uint64) uint32 {
	return binary.LittleEndian.Uint32(tv.bytes(t, a, 4))
}

// hostFDs returns the test process's open descriptors. Other tests' VMs
// may still be closing theirs in the background (Run's last goroutine),
// so compare sets with newFDs rather than counts.
func hostFDs(t testing.TB) map[string]bool {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	fds := map[string]bool{}
	for _, e := range ents {
		fds[e.Name()] = true
	}
	return fds
}

// newFDs returns the descriptors open now that were not in before.
func newFDs(t testing.TB, before map[string]bool) []string {
	t.Helper()
	var out []string
	for fd := range hostFDs(t) {
		if !before[fd] {
			out = append(out, fd)
		}
	}
	return out
}
