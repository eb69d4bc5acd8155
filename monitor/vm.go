// Package monitor runs a static linux/amd64 Go executable as a KVM virtual
// machine with no guest kernel: the guest runs in (paravirtual) supervisor
// mode, its system calls arrive through a two-byte trampoline as port-I/O
// exits, and the monitor answers them from a small table (syscalls.go) that
// implements exactly the slice of the Linux ABI described in docs/abi.md.
package monitor

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"atoll.dev/atoll/abi"
	"atoll.dev/atoll/monitor/elfimage"
	"atoll.dev/atoll/monitor/guestmem"
	"atoll.dev/atoll/monitor/kvm"
)

// Config describes one run of a unikernel.
type Config struct {
	Image    []byte   // the static ELF executable
	Name     string   // argv[0] and the unikernel's host name
	Args     []string // arguments after argv[0]
	Env      []string // KEY=VALUE; the guest sees nothing else
	MemBytes uint64   // memory limit
	CPUs     int      // processors the guest is told it has (GOMAXPROCS)
	Stdout   *os.File // console: guest fd 1
	Stderr   *os.File // console: guest fd 2
	Log      io.Writer
	Verbose  bool // log each distinct unsupported call the guest makes, once
	// Devices are attached as pre-opened descriptors from 3 up, in order,
	// and listed to the guest in abi.DevicesEnv.
	Devices []Device
}

// Device is a device attached to the guest: a host object the operator
// named, presented as a descriptor with its Linux twin's semantics
// (docs/abi.md, device group). The monitor duplicates File; the caller
// keeps ownership of it.
type Device struct {
	Kind string // abi.KindBlock or abi.KindNet
	Name string
	File *os.File
	// Size and SectorSize describe a block device, in bytes.
	Size, SectorSize uint64
}

// Stats counts VM exits by cause.
type Stats struct {
	Total    uint64
	Syscalls map[string]uint64 // by system call name
	Other    map[string]uint64 // faults, interruptions, ...
}

// String formats the counts, largest first.
func (s Stats) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "exits: %d\n", s.Total)
	for _, m := range []map[string]uint64{s.Syscalls, s.Other} {
		type kv struct {
			k string
			v uint64
		}
		var l []kv
		for k, v := range m {
			l = append(l, kv{k, v})
		}
		sort.Slice(l, func(i, j int) bool { return l[i].v > l[j].v || l[i].v == l[j].v && l[i].k < l[j].k })
		for _, e := range l {
			fmt.Fprintf(&b, "  %-20s %d\n", e.k, e.v)
		}
	}
	return b.String()
}

// ExitVMFault is the exit status of a guest the VM could not carry on
// running for a reason no Linux signal describes: it touched hardware that
// does not exist (an I/O port, HLT, memory outside its address space), it
// faulted in the monitor's own code, or KVM failed. A crash report goes to
// the log. The value is EX_SOFTWARE from sysexits.h.
const ExitVMFault = 70

// Result is how a run ended.
type Result struct {
	ExitCode int  // the guest's exit status; -1 when stopped
	Stopped  bool // the context ended the run before the guest exited
	Stats    Stats
}

const (
	guestPID  = 1
	stackSize = 8 << 20
	// arenaBase is the address space for unhinted mmaps on top of the
	// limit: the Go runtime reserves about 1.1 GiB of PROT_NONE space for
	// its page allocator at start-up.
	arenaBase = 5 << 28 // 1.25 GiB
)

// VM is one running unikernel.
type VM struct {
	cfg Config
	img *elfimage.Image
	kvm *kvm.System
	vm  *kvm.VM
	mem *guestmem.Memory
	// stackTop is the top of the initial thread's stack.
	stackTop guestmem.GuestAddr
	cpuid    []kvm.CPUIDEntry
	log      *onceLog

	clock      *clock // set before the first thread runs
	fds        fdTable
	devicesEnv string // abi.DevicesEnv=..., when devices are attached

	// sigMu serializes the monitor's updates of the signal-action table
	// (trampoline.go), which lives in guest memory.
	sigMu sync.Mutex

	// thrMu guards the fields below.
	thrMu   sync.Mutex
	threads map[int]*vcpu
	idle    []*kvm.VCPU // vCPUs of exited threads, for reuse
	nextTID int
	nextID  int

	rlimits sync.Map // resource → [2]uint64

	running  sync.WaitGroup // one per thread loop
	exitOnce sync.Once
	exitCode int
	done     chan struct{}

	exits      atomic.Uint64
	sysExits   [512]atomic.Uint64
	otherExits sync.Map // string → *atomic.Uint64
}

// Run boots cfg.Image and returns when the guest exits, or when ctx ends:
// then the guest is stopped where it is (Result.Stopped).
func Run(ctx context.Context, cfg Config) (Result, error) {
	v, err := newVM(cfg)
	if err != nil {
		return Result{}, err
	}
	res, err := v.run(ctx)
	// Threads blocked in the host notice the end within waitChunk; the
	// VM's resources are released once the last one has left.
	go func() {
		v.running.Wait()
		v.close()
	}()
	return res, err
}

func newVM(cfg Config) (*VM, error) {
	img, err := elfimage.Parse(cfg.Image)
	if err != nil {
		return nil, err
	}
	if cfg.CPUs < 1 {
		cfg.CPUs = 1
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	cfg.Log = &lockedWriter{w: cfg.Log}
	sys, err := kvm.Open()
	if err != nil {
		return nil, err
	}
	v := &VM{cfg: cfg, img: img, kvm: sys, threads: map[int]*vcpu{}, nextTID: guestPID, done: make(chan struct{}),
		log: &onceLog{w: cfg.Log, verbose: cfg.Verbose}}
	if v.vm, err = sys.CreateVM(); err != nil {
		sys.Close()
		return nil, err
	}
	// A trap can be pending when a host signal interrupts KVM_RUN; the
	// vCPU loop must see it before it redirects the guest to a handler.
	if err = v.vm.EnableCap(kvm.CapTripleFaultEvent, 1); err != nil {
		v.close()
		return nil, err
	}
	if v.cpuid, err = sys.SupportedCPUID(); err != nil {
		v.close()
		return nil, err
	}
	v.mem, v.stackTop, err = guestmem.New(v.vm, guestmem.Layout{
		ImageStart: guestmem.GuestAddr(img.Start),
		ImageEnd:   guestmem.GuestAddr(img.End),
		StackSize:  stackSize,
		ArenaSize:  arenaBase + cfg.MemBytes,
	}, cfg.MemBytes)
	if err != nil {
		v.close()
		return nil, err
	}
	if err := v.fds.init(cfg.Stdout, cfg.Stderr); err != nil {
		v.close()
		return nil, err
	}
	if err := v.attach(cfg.Devices); err != nil {
		v.close()
		return nil, err
	}
	return v, nil
}

// attach installs the devices in the descriptor table and records where
// for the guest's environment.
func (v *VM) attach(devs []Device) error {
	var listed []abi.DeviceFD
	for _, d := range devs {
		h, err := unix.FcntlInt(d.File.Fd(), unix.F_DUPFD_CLOEXEC, 3)
		if err != nil {
			return fmt.Errorf("device %s: %w", d.Name, err)
		}
		var f *openFile
		switch d.Kind {
		case abi.KindBlock:
			if d.SectorSize == 0 || d.Size%d.SectorSize != 0 {
				unix.Close(h)
				return fmt.Errorf("block device %s: size %d is not a multiple of the sector size %d", d.Name, d.Size, d.SectorSize)
			}
			f = newOpenFile(fdEntry{host: h, block: &blockDevice{size: d.Size, sector: d.SectorSize}})
		case abi.KindNet:
			// A frame device (tap or SOCK_SEQPACKET socket): kept
			// non-blocking on the host, so that a guest that asks for
			// blocking reads waits in bounded polls, like a pipe.
			if err := unix.SetNonblock(h, true); err != nil {
				unix.Close(h)
				return fmt.Errorf("device %s: %w", d.Name, err)
			}
			f = newEmulatedFile(h, true)
		default:
			unix.Close(h)
			return fmt.Errorf("device %s: kind %q is not supported", d.Name, d.Kind)
		}
		fd, e := v.fds.installFile(f, 3)
		if e != 0 {
			return fmt.Errorf("device %s: %w", d.Name, e)
		}
		listed = append(listed, abi.DeviceFD{Kind: d.Kind, Name: d.Name, FD: fd})
	}
	if len(listed) > 0 {
		v.devicesEnv = abi.DevicesEnv + "=" + abi.FormatDevices(listed)
	}
	return nil
}

func (v *VM) close() {
	v.fds.closeAll()
	v.thrMu.Lock()
	for _, t := range v.threads {
		t.cpu.Close()
	}
	for _, c := range v.idle {
		c.Close()
	}
	v.thrMu.Unlock()
	if v.vm != nil {
		v.vm.Close()
	}
	if v.mem != nil {
		v.mem.Close()
	}
	v.kvm.Close()
}

// run loads the image, starts the first thread and waits for exit_group.
func (v *VM) run(ctx context.Context) (Result, error) {
	for _, s := range v.img.Segments {
		b, err := v.mem.Slice(guestmem.GuestAddr(s.Vaddr), s.Memsz)
		if err != nil {
			return Result{}, fmt.Errorf("load segment at %#x: %w", s.Vaddr, err)
		}
		copy(b, s.Data)
	}
	if err := v.writeSystemArea(); err != nil {
		return Result{}, err
	}
	sp, err := v.buildStack()
	if err != nil {
		return Result{}, err
	}
	regs := kvm.Regs{RIP: v.img.Entry, RSP: uint64(sp), RFLAGS: 2}
	t, err := v.newThread(&regs, 0)
	if err != nil {
		return Result{}, err
	}
	if err := v.startClock(t.cpu); err != nil {
		v.exitThread(t, 0)
		v.running.Done()
		return Result{}, err
	}
	go t.loop()
	stopped := false
	select {
	case <-v.done:
	case <-ctx.Done():
		v.exit(-1)
		stopped = v.exitCode == -1
	}
	return Result{ExitCode: v.exitCode, Stopped: stopped, Stats: v.stats()}, nil
}

// exit ends the VM with code; later calls are ignored.
func (v *VM) exit(code int) {
	v.exitOnce.Do(func() {
		v.exitCode = code
		close(v.done)
		v.thrMu.Lock()
		for _, t := range v.threads {
			t.kick()
		}
		v.thrMu.Unlock()
	})
}

func (v *VM) exiting() bool {
	select {
	case <-v.done:
		return true
	default:
		return false
	}
}

// newThread creates a vCPU running regs with FS base fs.
func (v *VM) newThread(regs *kvm.Regs, fs uint64) (*vcpu, error) {
	v.thrMu.Lock()
	defer v.thrMu.Unlock()
	var c *kvm.VCPU
	if n := len(v.idle); n > 0 {
		c, v.idle = v.idle[n-1], v.idle[:n-1]
	} else {
		var err error
		if c, err = v.vm.CreateVCPU(v.nextID); err != nil {
			return nil, err
		}
		v.nextID++
		if err := c.SetCPUID(v.cpuid); err != nil {
			c.Close()
			return nil, err
		}
	}
	if err := v.setupCPU(c, regs, fs); err != nil {
		v.idle = append(v.idle, c)
		return nil, err
	}
	tid := v.nextTID
	v.nextTID++
	t := &vcpu{vm: v, cpu: c, tid: tid, altFlags: ssDisable}
	v.threads[tid] = t
	v.running.Add(1)
	return t, nil
}

// exitThread retires t's vCPU for reuse and ends the VM when t was the
// last thread.
func (v *VM) exitThread(t *vcpu, code int) {
	v.thrMu.Lock()
	delete(v.threads, t.tid)
	v.idle = append(v.idle, t.cpu)
	last := len(v.threads) == 0
	v.thrMu.Unlock()
	if last {
		v.exit(code)
	}
}

func (v *VM) thread(tid int) *vcpu {
	v.thrMu.Lock()
	defer v.thrMu.Unlock()
	return v.threads[tid]
}

func (v *VM) countOther(what string) {
	c, _ := v.otherExits.LoadOrStore(what, new(atomic.Uint64))
	c.(*atomic.Uint64).Add(1)
}

func (v *VM) stats() Stats {
	s := Stats{Total: v.exits.Load(), Syscalls: map[string]uint64{}, Other: map[string]uint64{}}
	for nr := range v.sysExits {
		if n := v.sysExits[nr].Load(); n > 0 {
			s.Syscalls[syscallName(uint64(nr))] = n
		}
	}
	v.otherExits.Range(func(k, c any) bool {
		s.Other[k.(string)] = c.(*atomic.Uint64).Load()
		return true
	})
	return s
}

// lockedWriter serializes writes from the vCPU threads.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// onceLog reports each distinct message once, and only when verbose.
type onceLog struct {
	w       io.Writer
	verbose bool
	seen    sync.Map
	count   atomic.Int64
}

// maxLogged bounds the distinct messages a guest can make the log keep.
const maxLogged = 1000

func (l *onceLog) printf(format string, args ...any) {
	if !l.verbose {
		return
	}
	msg := fmt.Sprintf(format, args...)
	if _, dup := l.seen.LoadOrStore(msg, true); dup || l.count.Add(1) > maxLogged {
		return
	}
	fmt.Fprintf(l.w, "atoll: %s\n", msg)
}

// lockThread pins the calling goroutine to its OS thread for the lifetime
// of a vCPU and returns the host thread id.
func lockThread() int {
	runtime.LockOSThread()
	return unix.Gettid()
}
