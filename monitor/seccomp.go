package monitor

//go:generate go test -run=^TestSeccompDocMatchesFilter$ -update .

import (
	"fmt"
	"runtime"
	"strings"
	"unsafe"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"atoll.dev/atoll/monitor/kvm"
)

// The monitor's seccomp filter (docs/threat-model.md, "Seccomp"). With
// Config.Seccomp, Run confines the whole process just before the guest's
// first instruction, once the VM, its memory, devices, network backends
// and volumes are set up: from then on every thread may make only the
// host calls of seccompCalls, with the arguments listed there, and any
// other call kills the process (SIGSYS). The filter is two programs: the
// call list, by name (github.com/elastic/go-seccomp-bpf), and the
// argument checks (seccomp_args.go, which says why they are not the
// library's). The list is what the monitor and
// the Go runtime were seen to make after that point — strace of the boot
// tests' guests, examples/www under load, examples/dns with updates and
// transfers, volumes (every file call: internal/testguests/fileops), block
// devices, the user, host and tap network backends, with atoll built with
// and without cgo — completed from the code and the Go runtime's sources
// for paths no trace took (each such entry says so).

// faultHook, when set, runs before each system call's handler. Only test
// builds set it (the atollfault build tag, faultinject.go).
var faultHook func(nr uint64, a sysArgs)

// SeccompMode says whether Run confines the process, and what a call
// outside the filter does.
type SeccompMode int

const (
	// SeccompOff installs no filter: the zero value, for programs that
	// run more than one VM or do other work after one (tests,
	// benchmarks).
	SeccompOff SeccompMode = iota
	// SeccompKill kills the whole process on a call outside the filter
	// (SECCOMP_RET_KILL_PROCESS): killing only the thread would leave the
	// process half alive.
	SeccompKill
	// SeccompTrap raises SIGSYS in the calling thread instead, which
	// crashes the Go runtime with a traceback naming the caller. The
	// process is as confined (the call is not made), but a program that
	// took it over could catch the signal: for diagnosing a call the
	// filter lacks, not for production.
	SeccompTrap
)

// hostCall is a host system call the filter allows.
type hostCall struct {
	name string
	who  string // who makes it after the guest has started
	// check, if set, allows the call only with the arguments it
	// describes.
	check *argCheck
}

// argCheck allows a call when its arguments pass any one of rules, or,
// with ownPID, when its first argument is the process's ID (known only
// as the filter is made).
type argCheck struct {
	rules  []argRule
	ownPID bool
	doc    string // the rules in words, for docs/threat-model.md
}

// argRule is one alternative of an argument check: every test must pass.
type argRule []argTest

// argTest tests argument arg (0 is the first) against v with op: Equal,
// or BitsSet (some bit of v is set) or BitsNotSet (no bit of v is).
type argTest struct {
	arg int
	op  seccomp.Operation
	v   uint64
}

// named is a value with its name, for documentation.
type named struct {
	name string
	v    uint64
}

// oneOf allows argument arg, called what, to be any of vals.
func oneOf(arg int, what string, vals ...named) *argCheck {
	c := &argCheck{}
	var names []string
	for _, v := range vals {
		c.rules = append(c.rules, argRule{{arg, seccomp.Equal, v.v}})
		names = append(names, "`"+v.name+"`")
	}
	c.doc = fmt.Sprintf("`%s` is %s", what, joinOr(names))
	return c
}

// bitsSet allows the call when argument arg has all of the bits of v (one
// bit: the library's BitsSet tests for any of them).
func bitsSet(arg int, doc string, v uint64) *argCheck {
	return &argCheck{rules: []argRule{{{arg, seccomp.BitsSet, v}}}, doc: doc}
}

// bitsClear allows the call when argument arg has none of the bits of v.
func bitsClear(arg int, doc string, v uint64) *argCheck {
	return &argCheck{rules: []argRule{{{arg, seccomp.BitsNotSet, v}}}, doc: doc}
}

// joinOr joins words as "a, b or c".
func joinOr(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}

// kvmRequests names the KVM ioctls a running VM makes (package kvm has
// their numbers): the vCPU loop's, signal delivery's, and those that make
// a vCPU for a new guest thread or map memory for the guest. KVM_RUN comes
// first, as the filter tests them in order and it is one per VM exit.
// Creating the VM, reading what KVM supports and the clock's rate
// (KVM_GET_TSC_KHZ) happen before the filter.
var kvmRequests = []string{
	"KVM_RUN",                    // the vCPU loops
	"KVM_GET_SREGS",              // faults (CR2), new vCPUs
	"KVM_GET_VCPU_EVENTS",        // faults, and a trap pending when a kick interrupted KVM_RUN
	"KVM_SET_REGS",               // new vCPUs (machine_kvm.go setup)
	"KVM_SET_SREGS",              // new vCPUs
	"KVM_SET_MSRS",               // new vCPUs, arch_prctl(ARCH_SET_FS)
	"KVM_GET_MSRS",               // arch_prctl(ARCH_GET_FS) and clone: the FS base (no trace took it)
	"KVM_GET_XSAVE",              // signal delivery saves the FPU state
	"KVM_SET_XSAVE",              // and rt_sigreturn restores it
	"KVM_CREATE_VCPU",            // a vCPU for a new guest thread, and the spares made while the guest starts
	"KVM_SET_CPUID2",             // the new vCPU's CPUID
	"KVM_SET_USER_MEMORY_REGION", // guest mmap: memory slots
	"KVM_IOEVENTFD",              // a network device's doorbell, when the guest maps its frame rings
}

// seccompCalls is the filter's list. Each program compares the call
// number with its entries in order. The kernel caches the verdict of calls
// allowed whatever their arguments (Linux 5.11 and later), so only the
// calls whose arguments are checked run the programs each time: they come
// first, ioctl, the hottest (KVM_RUN: one per VM exit), before them all.
var seccompCalls = []hostCall{
	{"ioctl", "vCPU loops, signal delivery, vCPUs for new guest threads, guest mmap, frame-ring doorbells (`KVM_*`); the host backend's sockets (the guest's `FIONREAD`, `SIOCOUTQ`)", nil},
	{"mmap", "Go runtime (heap, stacks); guest memory, and a volume's file the guest maps shared; a new vCPU's kvm_run; glibc thread stacks (cgo builds)", nil},
	{"madvise", "Go runtime (scavenger, huge pages); memory the guest releases; glibc thread stacks", nil},
	{"tgkill", "vCPU kicks (SIGURG), Go's preemption", nil},
	{"mprotect", "glibc thread stacks' guard pages (cgo builds)", nil},
	{"clone", "Go runtime: new threads (directly, or through glibc's pthread_create in cgo builds)", nil},
	{"kill", "Go runtime: re-raising a fatal signal (dieFromSignal; no trace took it)", nil},
	{"prctl", "Go runtime 1.25+: names its anonymous mappings (`PR_SET_VMA`), on kernels that can", nil},
	{"socket", "host backend sockets; the user NAT's outbound connections and its resolver forwarding", nil},
	{"futex", "Go runtime (locks, sleeping threads); the guest's futexes (host futexes on guest memory)", nil},
	{"nanosleep", "Go runtime (sysmon, spinning)", nil},
	{"read", "console, pipes, eventfds, volumes, block devices, sockets, tap; Go runtime", nil},
	{"write", "console and log, pipes, eventfds, volumes, block devices, sockets, tap", nil},
	{"readv", "the guest's readv on host descriptors", nil},
	{"writev", "the guest's writev on host descriptors", nil},
	{"pread64", "block devices, volumes; Go runtime (cgroup CPU limit)", nil},
	{"pwrite64", "block devices, volumes", nil},
	{"epoll_pwait", "Go runtime (netpoller)", nil},
	{"epoll_wait", "guest epoll instances (host epoll)", nil},
	{"epoll_ctl", "Go runtime (netpoller); guest epoll instances", nil},
	{"ppoll", "console and host-descriptor waits in bounded chunks (unix.Poll)", nil},
	{"recvfrom", "host backend sockets; user NAT (Go's net)", nil},
	{"sendto", "host backend sockets; user NAT (Go's net)", nil},
	{"recvmsg", "host backend sockets; user NAT (Go's net)", nil},
	{"sendmsg", "host backend sockets; user NAT (Go's net)", nil},
	{"recvmmsg", "the guest's recvmmsg (network devices without rings, host sockets); the user NAT's frame device", nil},
	{"sendmmsg", "the guest's sendmmsg (network devices without rings, host sockets); the user NAT's frame device", nil},
	{"getsockopt", "host backend (`SO_ERROR`, `SO_PROTOCOL`, `TCP_INFO`); Go's net", nil},
	{"setsockopt", "host backend (its allow-list of options); Go's net (the NAT's connections)", nil},
	{"close", "every descriptor the guest or the monitor closes", nil},
	{"getpid", "vCPU kicks and Go's preemption (tgkill's first argument)", nil},
	{"gettid", "Go runtime (new threads); vCPU loops (their kick target)", nil},
	{"rt_sigreturn", "return from every signal handler", nil},
	{"rt_sigprocmask", "Go runtime (new threads, signal handling)", nil},
	{"rt_sigaction", "Go runtime (os/signal: signal.Stop as atoll ends; dieFromSignal)", nil},
	{"sigaltstack", "Go runtime (new threads)", nil},
	{"sched_yield", "Go runtime; the guest's sched_yield", nil},
	{"sched_getaffinity", "Go runtime (sysmon follows the CPU count for GOMAXPROCS)", nil},
	{"clock_gettime", "Go runtime where the vDSO falls back to the system call (paravirtual clocks); the guest's clock_gettime", nil},
	{"munmap", "Go runtime; guest memory; released vCPUs and VM teardown", nil},
	{"msync", "the guest's msync of a shared file mapping", nil},
	{"mincore", "guest memory: whether a chunk the guest gave back is still resident, at its memory limit", nil},
	{"brk", "glibc's malloc growing its main arena (cgo builds; no trace took it)", nil},
	{"exit", "Go runtime: a thread that ends locked (vCPU loops)", nil},
	{"exit_group", "atoll exits", nil},
	{"rseq", "glibc: each new thread registers (cgo builds)", nil},
	{"set_robust_list", "glibc: each new thread (cgo builds)", nil},
	{"restart_syscall", "the kernel resumes the threads' interrupted sleeps with it after SIGSTOP and SIGCONT (^Z, fg)", nil},
	{"getrandom", "the guest's getrandom; crypto/rand and the vDSO's rekeying", nil},
	{"fcntl", "os.NewFile for a new vCPU's descriptor (`F_GETFL`); the guest's O_NONBLOCK on host descriptors; volumes: the guest's record locks", nil},
	{"fstat", "volumes (every lookup checks the file's type), block devices", nil},
	{"lseek", "volumes (directory offsets)", nil},
	{"getdents64", "volumes: reading a directory", nil},
	{"openat", "volumes: a file found with openat2 is reopened through /proc/self/fd; glibc (cgo builds: a new thread's malloc arena reads /sys/devices/system/cpu/online); --stats (/proc/self/smaps_rollup)", nil},
	{"openat2", "volumes: every path lookup, `RESOLVE_BENEATH` the volume's directory", nil},
	{"mkdirat", "volumes", nil},
	{"unlinkat", "volumes", nil},
	{"renameat2", "volumes", nil},
	{"symlinkat", "volumes", nil},
	{"linkat", "volumes", nil},
	{"readlinkat", "volumes", nil},
	{"fchmodat", "volumes: chmod through /proc/self/fd", nil},
	{"fchmod", "volumes: fchmod", nil},
	{"utimensat", "volumes: utimes and futimens", nil},
	{"ftruncate", "volumes", nil},
	{"fsync", "volumes, block devices: the guest's fsync and fdatasync", nil},
	{"fstatfs", "volumes: statfs and fstatfs", nil},
	{"flock", "volumes: the guest's flock", nil},
	{"pipe2", "the guest's pipes", nil},
	{"eventfd2", "the guest's eventfds; frame-ring doorbells", nil},
	{"epoll_create1", "the guest's epoll instances", nil},
	{"bind", "host backend", nil},
	{"listen", "host backend", nil},
	{"accept4", "host backend; the user NAT's port forwards", nil},
	{"connect", "host backend; the user NAT's outbound connections", nil},
	{"shutdown", "host backend; the user NAT", nil},
	{"getsockname", "host backend; Go's net", nil},
	{"getpeername", "host backend; Go's net", nil},
	{"getrusage", "--stats: peak RSS as the guest ends", nil},
}

// seccompENOSYS are calls the filter answers ENOSYS without making them:
// glibc's pthread_create tries clone3, whose flags a filter cannot see,
// and falls back to clone, whose flags it can.
var seccompENOSYS = []hostCall{
	{"clone3", "glibc's pthread_create (cgo builds), which then uses clone", nil},
}

// The checked calls' rules, which depend on the process (its ID).
func init() {
	var reqs []named
	for _, r := range kvmRequests {
		reqs = append(reqs, named{r, kvm.Requests[r]})
	}
	reqs = append(reqs, named{"FIONREAD", unix.SIOCINQ}, named{"SIOCOUTQ", unix.SIOCOUTQ})
	socket := &argCheck{doc: "`domain` is `AF_INET` or `AF_INET6`, `type` is `SOCK_STREAM` or `SOCK_DGRAM` with `SOCK_NONBLOCK|SOCK_CLOEXEC`, `protocol` is 0"}
	for _, family := range []uint64{unix.AF_INET, unix.AF_INET6} {
		for _, typ := range []uint64{unix.SOCK_STREAM, unix.SOCK_DGRAM} {
			socket.rules = append(socket.rules, argRule{
				{0, seccomp.Equal, family},
				{1, seccomp.Equal, typ | unix.SOCK_NONBLOCK | unix.SOCK_CLOEXEC},
				{2, seccomp.Equal, 0},
			})
		}
	}
	checks := map[string]*argCheck{
		"ioctl":    oneOf(1, "request", reqs...),
		"socket":   socket,
		"clone":    bitsSet(0, "`flags` has `CLONE_THREAD`: threads, never processes", unix.CLONE_THREAD),
		"mmap":     bitsClear(2, "`prot` lacks `PROT_EXEC`", unix.PROT_EXEC),
		"mprotect": bitsClear(2, "`prot` lacks `PROT_EXEC`", unix.PROT_EXEC),
		"madvise": oneOf(2, "advice", named{"MADV_DONTNEED", unix.MADV_DONTNEED}, named{"MADV_FREE", unix.MADV_FREE},
			named{"MADV_HUGEPAGE", unix.MADV_HUGEPAGE}, named{"MADV_NOHUGEPAGE", unix.MADV_NOHUGEPAGE}, named{"MADV_COLLAPSE", unix.MADV_COLLAPSE}),
		"tgkill": {ownPID: true, doc: "`tgid` is atoll's process ID"},
		"kill":   {ownPID: true, doc: "`pid` is atoll's process ID"},
		"prctl": {rules: []argRule{{{0, seccomp.Equal, unix.PR_SET_VMA}, {1, seccomp.Equal, unix.PR_SET_VMA_ANON_NAME}}},
			doc: "`option` is `PR_SET_VMA` with `PR_SET_VMA_ANON_NAME`"},
	}
	for i := range seccompCalls {
		if c, ok := checks[seccompCalls[i].name]; ok {
			seccompCalls[i].check = c
		}
	}
}

// seccompPolicy is the call list as the library takes it: every call by
// name, whatever its arguments (the argument checks are the second
// filter's, seccomp_args.go), then those answered ENOSYS, and otherwise
// the action.
func seccompPolicy(otherwise seccomp.Action) seccomp.Policy {
	allow := seccomp.SyscallGroup{Action: seccomp.ActionAllow}
	for _, c := range seccompCalls {
		allow.Names = append(allow.Names, c.name)
	}
	enosys := seccomp.SyscallGroup{Action: seccomp.ActionErrno | seccomp.Action(unix.ENOSYS)}
	for _, c := range seccompENOSYS {
		enosys.Names = append(enosys.Names, c.name)
	}
	return seccomp.Policy{DefaultAction: otherwise, Syscalls: []seccomp.SyscallGroup{allow, enosys}}
}

// seccompFilters are the two programs for process pid: the call list and
// the argument checks, each returning otherwise for what it refuses.
func seccompFilters(pid int, otherwise seccomp.Action) (calls, args []bpf.Instruction, err error) {
	for _, r := range kvmRequests {
		if _, ok := kvm.Requests[r]; !ok {
			return nil, nil, fmt.Errorf("seccomp: package kvm has no ioctl %s", r)
		}
	}
	p := seccompPolicy(otherwise)
	if calls, err = p.Assemble(); err != nil {
		return nil, nil, fmt.Errorf("seccomp: %w", err)
	}
	if args, err = argFilter(pid, uint32(otherwise)); err != nil {
		return nil, nil, err
	}
	return calls, args, nil
}

// sockFilter assembles insts for the kernel.
func sockFilter(insts []bpf.Instruction) ([]unix.SockFilter, error) {
	raw, err := bpf.Assemble(insts)
	if err != nil {
		return nil, fmt.Errorf("seccomp: %w", err)
	}
	prog := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		prog[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	return prog, nil
}

// SeccompInfo describes the monitor's filter: how many host calls it
// allows and for how many it checks the arguments, the size of its two
// programs in BPF instructions, and what any other call does.
type SeccompInfo struct {
	Calls, Checked                    int
	CallInstructions, ArgInstructions int
	Mode                              SeccompMode
}

// String is the line atoll run -v prints.
func (s SeccompInfo) String() string {
	other := "kills atoll (SIGSYS)"
	if s.Mode == SeccompTrap {
		other = "crashes atoll with a traceback (trap)"
	}
	return fmt.Sprintf("seccomp filter: %d host calls allowed, %d with argument checks; %d BPF instructions (%d for the calls, %d for their arguments); any other call %s",
		s.Calls, s.Checked, s.CallInstructions+s.ArgInstructions, s.CallInstructions, s.ArgInstructions, other)
}

// seccompInfo describes the filter of programs calls and args.
func seccompInfo(calls, args []bpf.Instruction, mode SeccompMode) SeccompInfo {
	info := SeccompInfo{Calls: len(seccompCalls), CallInstructions: len(calls), ArgInstructions: len(args), Mode: mode}
	for _, c := range seccompCalls {
		if c.check != nil {
			info.Checked++
		}
	}
	return info
}

// Seccomp describes the filter Run installs with Config.Seccomp.
func Seccomp() (SeccompInfo, error) {
	calls, args, err := seccompFilters(unix.Getpid(), seccomp.ActionKillProcess)
	if err != nil {
		return SeccompInfo{}, err
	}
	return seccompInfo(calls, args, SeccompKill), nil
}

// confine installs the filter on every thread of the process. It cannot
// be undone.
func confine(mode SeccompMode) (SeccompInfo, error) {
	otherwise := seccomp.ActionKillProcess
	if mode == SeccompTrap {
		otherwise = seccomp.ActionTrap
	}
	calls, args, err := seccompFilters(unix.Getpid(), otherwise)
	if err != nil {
		return SeccompInfo{}, err
	}
	// The argument checks go in first: the call list, once in, refuses
	// seccomp itself.
	var progs [2][]unix.SockFilter
	for i, insts := range [][]bpf.Instruction{args, calls} {
		if progs[i], err = sockFilter(insts); err != nil {
			return SeccompInfo{}, err
		}
	}
	// no_new_privs belongs to a thread; seccomp, called from the same
	// thread, sets it on every thread it synchronizes (TSYNC). The
	// library's LoadFilter makes the two calls without holding the
	// thread, and ignores the thread ID TSYNC returns when a thread
	// cannot follow, so they are made here.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return SeccompInfo{}, fmt.Errorf("seccomp: prctl(PR_SET_NO_NEW_PRIVS): %w", err)
	}
	for _, prog := range progs {
		fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
		r, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&fprog)))
		runtime.KeepAlive(prog)
		switch {
		case e != 0:
			return SeccompInfo{}, fmt.Errorf("seccomp(SECCOMP_SET_MODE_FILTER): %w", e)
		case r != 0:
			return SeccompInfo{}, fmt.Errorf("seccomp(SECCOMP_SET_MODE_FILTER): thread %d cannot take the filter", r)
		}
	}
	return seccompInfo(calls, args, mode), nil
}
