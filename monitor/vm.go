// Package monitor runs a static linux/amd64 Go executable as a KVM virtual
// machine with no guest kernel. The guest runs in 64-bit user mode; its
// SYSCALL instructions land on a trampoline in monitor-owned guest pages
// whose final `hlt` traps out of the guest (trampoline.go), and the
// monitor answers each call from its system-call table (systable.go), the
// source of the call list in docs/abi.md. Objects the guest opens —
// console, pipes, eventfds, epoll instances and attached devices — are
// files of one kind each (fd.go, file_*.go).
package monitor

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"atoll.dev/atoll/abi"
	"atoll.dev/atoll/manifest"
	"atoll.dev/atoll/monitor/elfimage"
	"atoll.dev/atoll/monitor/guestmem"
	"atoll.dev/atoll/monitor/kvm"
	"atoll.dev/atoll/monitor/vdso"
	"atoll.dev/atoll/monitor/vfs"
	"atoll.dev/atoll/netstack"
)

// Config describes one run of a unikernel.
type Config struct {
	Image []byte // the static ELF executable
	// ImageFile, if set, is the file whose first len(Image) bytes are
	// Image, kept open for the run: the image's pages are then mapped
	// from it copy-on-write rather than copied (load.go), so VMs of one
	// file share them. The file must not be truncated while a VM runs.
	ImageFile *os.File
	Name      string // the unikernel's host name, and argv[0] unless Argv0 is set
	Argv0     string
	Args      []string // arguments after argv[0]
	Env       []string // KEY=VALUE; the guest sees nothing else
	MemBytes  uint64   // memory limit
	CPUs      int      // processors the guest is told it has (GOMAXPROCS)
	Stdin     *os.File // console: guest fd 0; nil reads end-of-file
	Stdout    *os.File // console: guest fd 1
	Stderr    *os.File // console: guest fd 2
	Log       io.Writer
	Verbose   bool // log each distinct unsupported call the guest makes, once
	// MeasureMemory asks for Result.Memory: this process's host memory
	// when the guest ends, read before its memory is released.
	MeasureMemory bool
	// Devices are attached as pre-opened descriptors from 3 up, in order,
	// and listed to the guest in abi.DevicesEnv.
	Devices []Device
	// Files is the image's read-only tree, Volumes the host directories
	// mounted in the guest, Workdir its working directory ("/" if
	// empty), and Nameservers what /etc/resolv.conf names (package vfs).
	Files       []vfs.File
	Volumes     []vfs.Volume
	Workdir     string
	Nameservers []string
	// HostNet, if set, serves the guest's own sockets (hostnet.go).
	HostNet *HostNet
	// Seccomp, unless SeccompOff, confines this process with the
	// monitor's seccomp filter (seccomp.go) just before the guest's first
	// instruction: from then on every thread of the process may make
	// only the host calls the monitor needs. It cannot be undone, so a
	// process that sets it runs one VM and then exits (atoll run). With
	// Verbose, the filter's size is logged.
	Seccomp SeccompMode
}

// Device is a declared device attached to the guest: a host object the
// operator named, presented as a descriptor with its Linux twin's
// semantics (docs/abi.md, devices). The monitor duplicates File; the
// caller keeps ownership of it.
type Device struct {
	manifest.Device
	File *os.File
	// NoRings keeps a network device to its system calls: the guest's
	// mmap of its frame rings fails with ENODEV, as on a monitor
	// without them.
	NoRings bool
	// Frames, when set, takes a network device's frames once the guest
	// maps its rings: it is handed the rings as a frame device, and the
	// monitor moves nothing between them and File (the user backend's
	// NAT reads and writes the rings itself).
	Frames func(netstack.BatchDevice)
}

// deviceKinds makes the guest's file for an attached device from a host
// descriptor the monitor owns, by kind; each kind's file (file_block.go,
// file_net.go) registers itself.
var deviceKinds = map[abi.Kind]func(d Device, host int) (file, error){}

// ExitVMFault is the exit status of a guest the VM could not carry on
// running for a reason no Linux signal describes: it touched hardware that
// does not exist (an I/O port, HLT, memory outside its address space), it
// faulted in the monitor's own code, or KVM failed. A crash report goes to
// the log. The value is EX_SOFTWARE from sysexits.h.
const ExitVMFault = 70

// ExitOutOfMemory is the exit status of a guest that touched memory past
// its limit (--mem) with nothing left to reclaim: 128 + SIGKILL, as a
// shell reports a process Linux's OOM killer ended. A line saying so goes
// to the log.
const ExitOutOfMemory = 128 + 9

// Result is how a run ended.
type Result struct {
	ExitCode int  // the guest's exit status; -1 when stopped
	Stopped  bool // the context ended the run before the guest exited
	Stats    Stats
	Timeline Timeline
	Memory   *HostMemory // with Config.MeasureMemory, unless the kernel could not say
}

const (
	guestPID  = 1
	stackSize = 8 << 20
	// zoneSize is the address space the guest takes its PROT_NONE
	// reservations from itself (trampoline.go): the Go runtime reserves
	// about 1.1 GiB for its page allocator at start-up.
	zoneSize = 5 << 28 // 1.25 GiB
	// runtimeStartup is the memory the Go runtime holds before main
	// runs, beyond the image and the stack's top: chunks of its
	// heap-arena index, the first heap arena, stacks and GC metadata.
	// Measured with Go 1.26 (--stats, "held at most"): hello holds
	// 32 MiB in all, of which 14 are image, stack and monitor;
	// examples/www 36 of which 18.
	runtimeStartup = 24 << 20
	// arenaMin is the least address space for mappings without a usable
	// hint (4 GiB reservations, read-only or not, must fit whatever the
	// limit);
	// it costs nothing until the guest holds some of it
	// (guestmem/hold.go).
	arenaMin = 16 << 30
)

// VM is one running unikernel.
type VM struct {
	cfg      Config
	img      *elfimage.Image
	mach     machine
	mem      *guestmem.Memory
	stackTop guestmem.GuestAddr // top of the initial thread's stack
	hwcap    uint64             // AT_HWCAP: CPUID leaf 1's EDX
	clock    *vdso.Clock        // set before the first thread runs
	fds      fdTable
	fs       *vfs.FS
	mirrors  mirrors  // shared read-only file mappings kept coherent (file_mirror.go)
	net      *hostNet // the host network backend, if attached
	// devicesEnv is abi.DevicesEnv=..., when devices are attached.
	devicesEnv string
	sigs       sigTable // signal actions (trampoline.go)
	threads    threadTable
	rlimits    rlimits
	life       lifecycle
	stats      exitCounts
	timeline   *timeline
	log        *onceLog

	// ringsMu guards rings, the network devices' mapped frame rings,
	// and doorbells, how many doorbell pairs are taken.
	ringsMu   sync.Mutex
	rings     []*netRing
	doorbells int
}

// lifecycle is how a VM ends.
type lifecycle struct {
	running  sync.WaitGroup // one per thread loop, and the vDSO's clock and generation
	exitOnce sync.Once
	exitCode int
	done     chan struct{} // closed when the VM ends
}

// MinMemory returns the smallest memory limit with which the executable
// img can start: the monitor's area, the chunks of its image's file
// contents and of the initial stack's top, and what the Go runtime holds
// before main runs. A limit below it is refused before boot.
func MinMemory(img *elfimage.Image) uint64 {
	return guestmem.Layout{}.Committed() + imageChunks(img) + guestmem.LargePage + runtimeStartup
}

// imageChunks is the size of the 2 MiB chunks the image's file contents
// span: what the guest holds of it once its code has run (its .bss counts
// only as it is touched).
func imageChunks(img *elfimage.Image) uint64 {
	end := img.Start
	for _, s := range img.Segments {
		end = max(end, s.Vaddr+uint64(len(s.Data)))
	}
	const c = guestmem.LargePage
	return (end+c-1)/c*c - img.Start/c*c
}

// Run boots cfg.Image and returns when the guest exits, or when ctx ends:
// then the guest is stopped where it is (Result.Stopped).
func Run(ctx context.Context, cfg Config) (Result, error) {
	tl := &timeline{start: time.Now()}
	v, err := newKVMVM(cfg)
	if err != nil {
		return Result{}, err
	}
	v.timeline = tl
	tl.mark(stageVM)
	res, err := v.run(ctx)
	// Kicked threads leave at once, and threads blocked in the host
	// notice the end within waitChunk; the VM's resources (host files,
	// their locks, guest memory) are released once the last has left.
	// Run waits that long for it, and leaves it to the background after.
	left := make(chan struct{})
	go func() {
		v.life.running.Wait()
		v.close()
		tl.mark(stageClosed)
		close(left)
	}()
	select {
	case <-left:
	case <-time.After(2 * waitChunk):
	}
	res.Timeline = tl.snapshot()
	return res, err
}

// newKVMVM makes a VM on KVM for cfg.
func newKVMVM(cfg Config) (*VM, error) {
	img, err := elfimage.Parse(cfg.Image)
	if err != nil {
		return nil, err
	}
	if err := CheckMemory(img, cfg.MemBytes); err != nil {
		return nil, err
	}
	sys, err := kvm.Open()
	if err != nil {
		return nil, err
	}
	defer sys.Close()
	kv, err := sys.CreateVM()
	if err != nil {
		return nil, err
	}
	// A trap can be pending when a host signal interrupts KVM_RUN; the
	// vCPU loop must see it before it redirects the guest to a handler.
	if err = kv.EnableCap(kvm.CapTripleFaultEvent, 1); err != nil {
		kv.Close()
		return nil, err
	}
	cpuid, err := sys.SupportedCPUID()
	if err != nil {
		kv.Close()
		return nil, err
	}
	m := &kvmMachine{vm: kv, cpuid: guestCPUID(cpuid)}
	v, err := newVM(cfg, img, m, kv)
	if err != nil {
		m.close()
		return nil, err
	}
	m.mem, m.exits = v.mem, &v.stats
	for _, e := range m.cpuid {
		if e.Function == 1 {
			v.hwcap = uint64(e.EDX)
		}
	}
	if err := v.writeSystemArea(); err != nil {
		v.close()
		return nil, err
	}
	if m.path, err = m.probe(); err != nil {
		v.close()
		return nil, err
	}
	if m.path == pathHardware {
		if err := protectSystemArea(v.mem); err != nil {
			v.close()
			return nil, err
		}
	}
	v.log.printf("exit path: %v", m.path)
	m.makeSpares()
	return v, nil
}

// CheckMemory refuses a memory limit below what executable img needs to
// start (MinMemory), naming the minimum.
func CheckMemory(img *elfimage.Image, limit uint64) error {
	min := MinMemory(img)
	if limit >= min {
		return nil
	}
	return fmt.Errorf("memory limit %s is below what this image needs to start: at least %s (image, stack and monitor %s, Go runtime start-up %s)",
		manifest.FormatSize(limit), manifest.FormatSize(roundMiB(min)), manifest.FormatSize(roundMiB(min-runtimeStartup)), manifest.FormatSize(runtimeStartup))
}

// roundMiB rounds n up to whole MiB.
func roundMiB(n uint64) uint64 { return (n + 1<<20 - 1) &^ (1<<20 - 1) }

// newVM makes the VM for cfg on machine mach, whose guest memory slots
// are slots: the address space, the console and the devices. On failure
// it releases what it made but not mach.
func newVM(cfg Config, img *elfimage.Image, mach machine, slots guestmem.Slots) (*VM, error) {
	if cfg.CPUs < 1 {
		cfg.CPUs = 1
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	cfg.Log = &lockedWriter{w: cfg.Log}
	v := &VM{cfg: cfg, img: img, mach: mach,
		threads:  threadTable{m: map[int]*thread{}, nextTID: guestPID},
		life:     lifecycle{done: make(chan struct{})},
		timeline: &timeline{start: time.Now()},
		log:      &onceLog{w: cfg.Log, verbose: cfg.Verbose}}
	var err error
	v.mem, v.stackTop, err = guestmem.New(slots, guestmem.Layout{
		ImageStart: guestmem.GuestAddr(img.Start),
		ImageEnd:   guestmem.GuestAddr(img.End),
		StackSize:  stackSize,
		ZoneSize:   zoneSize,
		ZoneWords:  zoneCursorAddr,
		ArenaSize:  max(cfg.MemBytes, arenaMin),
	}, cfg.MemBytes)
	if err != nil {
		return nil, err
	}
	v.mem.SetFlush(mach.flushTLBs)
	v.sigs.mem = v.mem
	v.fds.init()
	if v.fds.cache, err = v.mem.Slice(fdCacheAddr, 8*fdCached); err != nil {
		v.releaseMemory()
		return nil, err
	}
	if err := openConsole(&v.fds, cfg.Stdin, cfg.Stdout, cfg.Stderr); err != nil {
		v.releaseMemory()
		return nil, err
	}
	v.fds.publishAll()
	if err := v.attach(cfg.Devices); err != nil {
		v.releaseMemory()
		return nil, err
	}
	v.fs, err = vfs.New(vfs.Config{Tree: cfg.Files, Exe: cfg.Image, Hostname: cfg.Name, Nameservers: cfg.Nameservers,
		Volumes: cfg.Volumes, Charge: v.mem.Charge})
	if err == nil && cfg.Workdir != "" {
		if err = v.fs.SetWorkdir(cfg.Workdir); err != nil {
			v.fs.Close()
		}
	}
	if err == nil && cfg.HostNet != nil {
		if v.net, err = newHostNet(*cfg.HostNet, v.log); err != nil {
			v.fs.Close()
		}
	}
	if err != nil {
		v.releaseMemory()
		return nil, err
	}
	return v, nil
}

// attach installs the devices in the descriptor table and records where
// for the guest's environment.
func (v *VM) attach(devs []Device) error {
	var listed []abi.DeviceFD
	for _, d := range devs {
		open, ok := deviceKinds[d.Kind]
		if !ok {
			return fmt.Errorf("device %s: kind %q is not supported", d.Name, d.Kind)
		}
		h, err := unix.FcntlInt(d.File.Fd(), unix.F_DUPFD_CLOEXEC, 3)
		if err != nil {
			return fmt.Errorf("device %s: %w", d.Name, err)
		}
		f, err := open(d, h)
		if err != nil {
			unix.Close(h)
			return err
		}
		fd, e := v.fds.install(f, 3)
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

// releaseMemory closes the descriptors and frees guest memory.
func (v *VM) releaseMemory() {
	v.fds.closeAll()
	v.mem.Close()
}

// close releases everything the VM holds; its threads must have left.
func (v *VM) close() {
	v.fds.closeAll()
	v.fs.Close()
	if v.net != nil {
		v.net.close()
	}
	v.mach.close()
	v.mem.Close()
}

// run loads the image, starts the first thread and waits for the VM to
// end.
func (v *VM) run(ctx context.Context) (Result, error) {
	if err := v.loadImage(); err != nil {
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
	if err := v.startVDSO(t.cpu.(*kvmCPU).VCPU); err != nil {
		v.exitThread(t, 0)
		return Result{}, err
	}
	if v.cfg.Seccomp != SeccompOff {
		info, err := confine(v.cfg.Seccomp)
		if err != nil {
			v.exitThread(t, 0)
			return Result{}, err
		}
		v.log.printf("%v", info)
	}
	v.timeline.mark(stageGuest)
	v.mach.start(t)
	stopped := false
	select {
	case <-v.life.done:
	case <-ctx.Done():
		v.exit(-1)
		stopped = v.life.exitCode == -1
	}
	res := Result{ExitCode: v.life.exitCode, Stopped: stopped, Stats: v.snapshot()}
	if v.cfg.MeasureMemory {
		if m, err := readHostMemory(); err == nil {
			res.Memory = &m
		} else {
			fmt.Fprintf(v.cfg.Log, "atoll: host memory: %v\n", err)
		}
	}
	return res, nil
}

// exit ends the VM with code; later calls are ignored.
func (v *VM) exit(code int) {
	v.life.exitOnce.Do(func() {
		v.timeline.mark(stageExit)
		v.life.exitCode = code
		close(v.life.done)
		v.kickAll()
	})
}

// exiting reports whether the VM has ended.
func (v *VM) exiting() bool {
	select {
	case <-v.life.done:
		return true
	default:
		return false
	}
}

// Stats counts VM exits by cause, what moved through frame rings without
// an exit, and the memory the guest held.
type Stats struct {
	Total    uint64
	Syscalls map[string]uint64 // by system call name
	Other    map[string]uint64 // faults, interruptions, ...
	Rings    []RingStats
	// Memory the guest held against its limit (guestmem/hold.go), in
	// bytes: at the end and at most, and the 2 MiB chunks reclaimed.
	Held, PeakHeld, Limit, Reclaimed uint64
}

// snapshot returns the VM's counts so far.
func (v *VM) snapshot() Stats {
	s := v.stats.snapshot()
	s.Held, s.PeakHeld, s.Limit, s.Reclaimed = v.mem.Committed(), v.mem.Peak(), v.mem.Limit(), v.mem.Released()
	v.ringsMu.Lock()
	for _, r := range v.rings {
		s.Rings = append(s.Rings, r.stats())
	}
	v.ringsMu.Unlock()
	return s
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
	if s.Limit != 0 {
		fmt.Fprintf(&b, "guest memory: held %.1f MiB at the end, %.1f MiB at most, of --mem %.0f MiB; %d chunks of 2 MiB reclaimed\n",
			float64(s.Held)/(1<<20), float64(s.PeakHeld)/(1<<20), float64(s.Limit)/(1<<20), s.Reclaimed)
	}
	for _, r := range s.Rings {
		fmt.Fprintf(&b, "ring %s: %d frames out, %d in, %d dropped, %d out and %d in still in the rings; %d doorbells, %d guest wake-ups\n",
			r.Device, r.TXFrames, r.RXFrames, r.Dropped, r.TXPending, r.RXPending, r.Doorbells, r.Wakeups)
	}
	return b.String()
}

// exitCounts counts a VM's exits as they happen.
type exitCounts struct {
	total  atomic.Uint64
	sys    [512]atomic.Uint64 // by system call number
	others sync.Map           // cause → *atomic.Uint64
}

// syscall counts a system call.
func (c *exitCounts) syscall(nr uint64) {
	if nr < uint64(len(c.sys)) {
		c.sys[nr].Add(1)
	}
}

// other counts an exit of another cause.
func (c *exitCounts) other(what string) {
	n, _ := c.others.LoadOrStore(what, new(atomic.Uint64))
	n.(*atomic.Uint64).Add(1)
}

func (c *exitCounts) snapshot() Stats {
	s := Stats{Total: c.total.Load(), Syscalls: map[string]uint64{}, Other: map[string]uint64{}}
	for nr := range c.sys {
		if n := c.sys[nr].Load(); n > 0 {
			s.Syscalls[syscallName(uint64(nr))] = n
		}
	}
	c.others.Range(func(k, n any) bool {
		s.Other[k.(string)] = n.(*atomic.Uint64).Load()
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
