package monitor

import (
	"encoding/binary"
	"fmt"
	"time"

	"golang.org/x/sys/unix"

	"atoll.dev/atoll/monitor/guestmem"
)

// sysHandler implements one system call. It returns the value for RAX
// (a negated errno on failure) and what to do with the registers.
type sysHandler func(t *vcpu, a *sysArgs) (uint64, control)

type sysEntry struct {
	name string
	fn   sysHandler
}

// syscallTable is the whole guest ABI's system-call surface (docs/abi.md).
// A number not in it is answered ENOSYS and logged. It is filled in init
// because handlers refer back to it (through syscallName).
var syscallTable map[uint64]sysEntry

func init() {
	syscallTable = map[uint64]sysEntry{
		// Runtime group.
		unix.SYS_ARCH_PRCTL:        {"arch_prctl", sysArchPrctl},
		unix.SYS_SCHED_GETAFFINITY: {"sched_getaffinity", sysSchedGetaffinity},
		unix.SYS_OPENAT:            {"openat", sysOpenat},
		unix.SYS_OPEN:              {"open", sysOpen},
		unix.SYS_MMAP:              {"mmap", sysMmap},
		unix.SYS_MUNMAP:            {"munmap", sysMunmap},
		unix.SYS_MPROTECT:          {"mprotect", sysMprotect},
		unix.SYS_MADVISE:           {"madvise", sysMadvise},
		unix.SYS_PRCTL:             {"prctl", sysPrctl},
		unix.SYS_RT_SIGPROCMASK:    {"rt_sigprocmask", sysRtSigprocmask},
		unix.SYS_RT_SIGACTION:      {"rt_sigaction", sysRtSigaction},
		unix.SYS_SIGALTSTACK:       {"sigaltstack", sysSigaltstack},
		unix.SYS_RT_SIGRETURN:      {"rt_sigreturn", sysRtSigreturn},
		unix.SYS_FCNTL:             {"fcntl", sysFcntl},
		unix.SYS_GETTID:            {"gettid", sysGettid},
		unix.SYS_GETPID:            {"getpid", sysGetpid},
		unix.SYS_GETPPID:           {"getppid", sysZero},
		unix.SYS_GETUID:            {"getuid", sysZero},
		unix.SYS_GETEUID:           {"geteuid", sysZero},
		unix.SYS_GETGID:            {"getgid", sysZero},
		unix.SYS_GETEGID:           {"getegid", sysZero},
		unix.SYS_TGKILL:            {"tgkill", sysTgkill},
		unix.SYS_TKILL:             {"tkill", sysTkill},
		unix.SYS_KILL:              {"kill", sysKill},
		unix.SYS_CLONE:             {"clone", sysClone},
		unix.SYS_FUTEX:             {"futex", sysFutex},
		unix.SYS_NANOSLEEP:         {"nanosleep", sysNanosleep},
		unix.SYS_SCHED_YIELD:       {"sched_yield", sysSchedYield},
		unix.SYS_CLOCK_GETTIME:     {"clock_gettime", sysClockGettime},
		unix.SYS_GETTIMEOFDAY:      {"gettimeofday", sysGettimeofday},
		unix.SYS_GETRANDOM:         {"getrandom", sysGetrandom},
		unix.SYS_PRLIMIT64:         {"prlimit64", sysPrlimit64},
		unix.SYS_GETRLIMIT:         {"getrlimit", sysGetrlimit},
		unix.SYS_EXIT:              {"exit", sysExit},
		unix.SYS_EXIT_GROUP:        {"exit_group", sysExitGroup},
		// Guest-internal objects.
		unix.SYS_READ:          {"read", sysRead},
		unix.SYS_WRITE:         {"write", sysWrite},
		unix.SYS_PREAD64:       {"pread64", sysPread},
		unix.SYS_PWRITE64:      {"pwrite64", sysPwrite},
		unix.SYS_READV:         {"readv", sysReadv},
		unix.SYS_WRITEV:        {"writev", sysWritev},
		unix.SYS_LSEEK:         {"lseek", sysLseek},
		unix.SYS_FSTAT:         {"fstat", sysFstat},
		unix.SYS_CLOSE:         {"close", sysClose},
		unix.SYS_FSYNC:         {"fsync", sysFsync},
		unix.SYS_FDATASYNC:     {"fdatasync", sysFsync},
		unix.SYS_DUP:           {"dup", sysDup},
		unix.SYS_DUP2:          {"dup2", sysDup2},
		unix.SYS_DUP3:          {"dup3", sysDup3},
		unix.SYS_PIPE:          {"pipe", sysPipe},
		unix.SYS_PIPE2:         {"pipe2", sysPipe2},
		unix.SYS_EVENTFD2:      {"eventfd2", sysEventfd2},
		unix.SYS_EPOLL_CREATE:  {"epoll_create", sysEpollCreate},
		unix.SYS_EPOLL_CREATE1: {"epoll_create1", sysEpollCreate1},
		unix.SYS_EPOLL_CTL:     {"epoll_ctl", sysEpollCtl},
		unix.SYS_EPOLL_WAIT:    {"epoll_wait", sysEpollWait},
		unix.SYS_EPOLL_PWAIT:   {"epoll_pwait", sysEpollWait},
		unix.SYS_IOCTL:         {"ioctl", sysIoctl},
		unix.SYS_GETCWD:        {"getcwd", sysGetcwd},
		unix.SYS_UNAME:         {"uname", sysUname},
		unix.SYS_SOCKET:        {"socket", sysSocket},
		unix.SYS_RECVMMSG:      {"recvmmsg", sysRecvmmsg},
		unix.SYS_SENDMMSG:      {"sendmmsg", sysSendmmsg},
	}
}

// otherNames names common calls outside the table, for logs and statistics.
var otherNames = map[uint64]string{
	unix.SYS_CONNECT: "connect", unix.SYS_BIND: "bind", unix.SYS_NEWFSTATAT: "newfstatat",
	unix.SYS_STATX: "statx", unix.SYS_STAT: "stat", unix.SYS_LSTAT: "lstat", unix.SYS_RSEQ: "rseq",
	unix.SYS_SET_ROBUST_LIST: "set_robust_list", unix.SYS_SET_TID_ADDRESS: "set_tid_address",
	unix.SYS_EXECVE: "execve", unix.SYS_FORK: "fork", unix.SYS_VFORK: "vfork", unix.SYS_WAIT4: "wait4",
	unix.SYS_CLOCK_NANOSLEEP: "clock_nanosleep", unix.SYS_EPOLL_PWAIT2: "epoll_pwait2",
	unix.SYS_MINCORE: "mincore", unix.SYS_SYSINFO: "sysinfo", unix.SYS_GETRUSAGE: "getrusage",
}

func syscallName(nr uint64) string {
	if e, ok := syscallTable[nr]; ok {
		return e.name
	}
	if n, ok := otherNames[nr]; ok {
		return n
	}
	return fmt.Sprintf("syscall_%d", nr)
}

func ret(v int, err error) (uint64, control) {
	if err != nil {
		if e, ok := err.(unix.Errno); ok {
			return errno(e), ctlReturn
		}
		return errno(unix.EIO), ctlReturn
	}
	return uint64(v), ctlReturn
}

func fail(e unix.Errno) (uint64, control) { return errno(e), ctlReturn }

func sysZero(*vcpu, *sysArgs) (uint64, control)   { return 0, ctlReturn }
func sysGetpid(*vcpu, *sysArgs) (uint64, control) { return guestPID, ctlReturn }
func sysGettid(t *vcpu, _ *sysArgs) (uint64, control) {
	return uint64(t.tid), ctlReturn
}

func (t *vcpu) slice(a, n uint64) ([]byte, bool) {
	b, err := t.vm.mem.Slice(guestmem.GuestAddr(a), n)
	return b, err == nil
}

const (
	archSetFS = 0x1002
	archGetFS = 0x1003
)

func sysArchPrctl(t *vcpu, a *sysArgs) (uint64, control) {
	switch a[0] {
	case archSetFS:
		if err := t.cpu.SetMSRs(fsBase(a[1])); err != nil {
			return fail(unix.EPERM)
		}
		return 0, ctlReturn
	case archGetFS:
		v, err := t.cpu.GetMSR(fsBaseIndex)
		if err != nil {
			return fail(unix.EIO)
		}
		if t.vm.mem.WriteU64(guestmem.GuestAddr(a[1]), v) != nil {
			return fail(unix.EFAULT)
		}
		return 0, ctlReturn
	}
	return fail(unix.EINVAL)
}

func sysSchedGetaffinity(t *vcpu, a *sysArgs) (uint64, control) {
	if a[1] < 8 || a[1]%8 != 0 {
		return fail(unix.EINVAL)
	}
	b, ok := t.slice(a[2], 8)
	if !ok {
		return fail(unix.EFAULT)
	}
	n := min(t.vm.cfg.CPUs, 64)
	binary.LittleEndian.PutUint64(b, ^uint64(0)>>(64-n))
	return 8, ctlReturn
}

func sysOpenat(t *vcpu, a *sysArgs) (uint64, control) { return openPath(t, a[1]) }
func sysOpen(t *vcpu, a *sysArgs) (uint64, control)   { return openPath(t, a[0]) }

func openPath(t *vcpu, p uint64) (uint64, control) {
	path, err := t.vm.mem.CString(guestmem.GuestAddr(p), unix.PathMax)
	if err != nil {
		return fail(unix.EFAULT)
	}
	t.vm.log.printf("open %q: no such file (the guest has no file system)", path)
	return fail(unix.ENOENT)
}

func sysMmap(t *vcpu, a *sysArgs) (uint64, control) {
	flags := a[3]
	if flags&unix.MAP_ANONYMOUS == 0 {
		t.vm.log.printf("mmap of a file descriptor: not supported; answered ENODEV")
		return fail(unix.ENODEV)
	}
	var mf guestmem.MapFlags
	switch {
	case flags&unix.MAP_FIXED_NOREPLACE != 0:
		mf = guestmem.FixedNoReplace
	case flags&unix.MAP_FIXED != 0:
		mf = guestmem.Fixed
	}
	addr, e := t.vm.mem.Mmap(guestmem.GuestAddr(a[0]), a[1], int(a[2]), mf)
	if e != 0 {
		return fail(e)
	}
	return uint64(addr), ctlReturn
}

func sysMunmap(t *vcpu, a *sysArgs) (uint64, control) {
	return errnoOrZero(t.vm.mem.Munmap(guestmem.GuestAddr(a[0]), a[1]))
}

func sysMprotect(t *vcpu, a *sysArgs) (uint64, control) {
	return errnoOrZero(t.vm.mem.Mprotect(guestmem.GuestAddr(a[0]), a[1], int(a[2])))
}

func sysMadvise(t *vcpu, a *sysArgs) (uint64, control) {
	switch a[2] {
	case unix.MADV_DONTNEED, unix.MADV_FREE, unix.MADV_REMOVE:
		return errnoOrZero(t.vm.mem.Discard(guestmem.GuestAddr(a[0]), a[1]))
	}
	return 0, ctlReturn
}

func errnoOrZero(e unix.Errno) (uint64, control) {
	if e != 0 {
		return fail(e)
	}
	return 0, ctlReturn
}

func sysPrctl(*vcpu, *sysArgs) (uint64, control) { return fail(unix.EINVAL) }

func sysSchedYield(*vcpu, *sysArgs) (uint64, control) {
	unix.Syscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
	return 0, ctlReturn
}

func sysExit(t *vcpu, a *sysArgs) (uint64, control) {
	t.vm.exitThread(t, int(a[0]&0xff))
	return 0, ctlStop
}

func sysExitGroup(t *vcpu, a *sysArgs) (uint64, control) {
	t.vm.exit(int(a[0] & 0xff))
	return 0, ctlStop
}

const (
	cloneThreadFlags = unix.CLONE_VM | unix.CLONE_THREAD | unix.CLONE_SIGHAND
)

// sysClone creates a thread: a new vCPU that starts where the parent
// returns, with RAX = 0, the given stack and TLS.
func sysClone(t *vcpu, a *sysArgs) (uint64, control) {
	flags := a[0]
	if flags&cloneThreadFlags != cloneThreadFlags {
		t.vm.log.printf("clone without CLONE_VM|CLONE_THREAD (a new process): not supported; answered ENOSYS")
		return fail(unix.ENOSYS)
	}
	if flags&(unix.CLONE_CHILD_CLEARTID|unix.CLONE_CHILD_SETTID) != 0 {
		t.vm.log.printf("clone with CLONE_CHILD_SETTID/CLEARTID: not supported; answered EINVAL")
		return fail(unix.EINVAL)
	}
	fs := a[4]
	if flags&unix.CLONE_SETTLS == 0 {
		v, err := t.cpu.GetMSR(fsBaseIndex)
		if err != nil {
			return fail(unix.EAGAIN)
		}
		fs = v
	}
	var ptid []byte
	if flags&unix.CLONE_PARENT_SETTID != 0 {
		var ok bool
		if ptid, ok = t.slice(a[2], 4); !ok {
			return fail(unix.EFAULT)
		}
	}
	regs := t.cpu.Run.Regs
	regs.RAX = 0
	regs.RIP = regs.RCX
	regs.RFLAGS = regs.R11
	if a[1] != 0 {
		regs.RSP = a[1]
	}
	child, err := t.vm.newThread(&regs, fs)
	if err != nil {
		t.vm.log.printf("clone: %v", err)
		return fail(unix.EAGAIN)
	}
	child.sigmask = t.sigmask
	if ptid != nil {
		binary.LittleEndian.PutUint32(ptid, uint32(child.tid))
	}
	go child.loop()
	return uint64(child.tid), ctlReturn
}

// waitChunk bounds each blocking host call so that a thread notices the
// VM ending and queued signals.
const waitChunk = 500 * time.Millisecond

func readTimespec(t *vcpu, addr uint64) (time.Duration, bool) {
	b, ok := t.slice(addr, 16)
	if !ok {
		return 0, false
	}
	sec, nsec := int64(binary.LittleEndian.Uint64(b)), int64(binary.LittleEndian.Uint64(b[8:]))
	if sec < 0 || nsec < 0 || nsec >= 1e9 {
		return -1, true
	}
	if sec > 1<<32 {
		sec = 1 << 32
	}
	return time.Duration(sec)*time.Second + time.Duration(nsec), true
}

func writeTimespec(b []byte, ts unix.Timespec) {
	binary.LittleEndian.PutUint64(b, uint64(ts.Sec))
	binary.LittleEndian.PutUint64(b[8:], uint64(ts.Nsec))
}

// interrupted reports whether a blocking call should return EINTR.
func (t *vcpu) interrupted() bool {
	return t.vm.exiting() || t.pending.Load()&^t.sigmask != 0
}

func sysNanosleep(t *vcpu, a *sysArgs) (uint64, control) {
	d, ok := readTimespec(t, a[0])
	if !ok {
		return fail(unix.EFAULT)
	}
	if d < 0 {
		return fail(unix.EINVAL)
	}
	deadline := time.Now().Add(d)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return 0, ctlReturn
		}
		if t.interrupted() {
			if b, ok := t.slice(a[1], 16); ok && a[1] != 0 {
				writeTimespec(b, unix.NsecToTimespec(int64(left)))
			}
			return fail(unix.EINTR)
		}
		time.Sleep(min(left, waitChunk))
	}
}

var clockIDs = map[uint64]bool{
	unix.CLOCK_REALTIME: true, unix.CLOCK_MONOTONIC: true, unix.CLOCK_PROCESS_CPUTIME_ID: true,
	unix.CLOCK_THREAD_CPUTIME_ID: true, unix.CLOCK_MONOTONIC_RAW: true, unix.CLOCK_REALTIME_COARSE: true,
	unix.CLOCK_MONOTONIC_COARSE: true, unix.CLOCK_BOOTTIME: true,
}

func sysClockGettime(t *vcpu, a *sysArgs) (uint64, control) {
	if !clockIDs[a[0]] {
		return fail(unix.EINVAL)
	}
	b, ok := t.slice(a[1], 16)
	if !ok {
		return fail(unix.EFAULT)
	}
	var ts unix.Timespec
	switch a[0] {
	case unix.CLOCK_MONOTONIC, unix.CLOCK_REALTIME:
		// The guest clock the vDSO reads, so the two never disagree.
		ts = unix.NsecToTimespec(t.vm.clock.now(a[0] == unix.CLOCK_REALTIME))
	default:
		if err := unix.ClockGettime(int32(a[0]), &ts); err != nil {
			return ret(0, err)
		}
	}
	writeTimespec(b, ts)
	return 0, ctlReturn
}

func sysGettimeofday(t *vcpu, a *sysArgs) (uint64, control) {
	if a[0] != 0 {
		b, ok := t.slice(a[0], 16)
		if !ok {
			return fail(unix.EFAULT)
		}
		ts := unix.NsecToTimespec(t.vm.clock.now(true))
		binary.LittleEndian.PutUint64(b, uint64(ts.Sec))
		binary.LittleEndian.PutUint64(b[8:], uint64(ts.Nsec/1000))
	}
	return 0, ctlReturn
}

// maxIO bounds a single read, write or getrandom, as Linux does (MAX_RW_COUNT).
const maxIO = 0x7ffff000

func sysGetrandom(t *vcpu, a *sysArgs) (uint64, control) {
	n := min(a[1], 1<<25)
	b, ok := t.slice(a[0], n)
	if !ok {
		return fail(unix.EFAULT)
	}
	return ret(unix.Getrandom(b, int(a[2]&(unix.GRND_NONBLOCK|unix.GRND_RANDOM))))
}

// Resource limits the guest can read and set; they bind nothing but
// the fd table's size, which is fixed.
func (v *VM) rlimit(res uint64) [2]uint64 {
	if l, ok := v.rlimits.Load(res); ok {
		return l.([2]uint64)
	}
	switch res {
	case unix.RLIMIT_NOFILE:
		return [2]uint64{1024, maxFDs}
	case unix.RLIMIT_STACK:
		return [2]uint64{stackSize, unix.RLIM_INFINITY}
	}
	return [2]uint64{unix.RLIM_INFINITY, unix.RLIM_INFINITY}
}

func sysPrlimit64(t *vcpu, a *sysArgs) (uint64, control) {
	if a[0] != 0 && a[0] != guestPID {
		return fail(unix.ESRCH)
	}
	return rlimitCall(t, a[1], a[2], a[3])
}

func sysGetrlimit(t *vcpu, a *sysArgs) (uint64, control) { return rlimitCall(t, a[0], 0, a[1]) }

func rlimitCall(t *vcpu, res, newp, oldp uint64) (uint64, control) {
	if res >= rlimNlimits {
		return fail(unix.EINVAL)
	}
	old := t.vm.rlimit(res)
	if newp != 0 {
		b, ok := t.slice(newp, 16)
		if !ok {
			return fail(unix.EFAULT)
		}
		l := [2]uint64{binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint64(b[8:])}
		if l[0] > l[1] || (res == unix.RLIMIT_NOFILE && l[1] > maxFDs) {
			return fail(unix.EINVAL)
		}
		t.vm.rlimits.Store(res, l)
	}
	if oldp != 0 {
		b, ok := t.slice(oldp, 16)
		if !ok {
			return fail(unix.EFAULT)
		}
		binary.LittleEndian.PutUint64(b, old[0])
		binary.LittleEndian.PutUint64(b[8:], old[1])
	}
	return 0, ctlReturn
}

func sysGetcwd(t *vcpu, a *sysArgs) (uint64, control) {
	if a[1] < 2 {
		return fail(unix.ERANGE)
	}
	b, ok := t.slice(a[0], 2)
	if !ok {
		return fail(unix.EFAULT)
	}
	copy(b, "/\x00")
	return 2, ctlReturn
}

func sysUname(t *vcpu, a *sysArgs) (uint64, control) {
	const field = 65
	b, ok := t.slice(a[0], 6*field)
	if !ok {
		return fail(unix.EFAULT)
	}
	clear(b)
	for i, s := range []string{"Linux", t.vm.cfg.Name, "6.1.0-atoll", "#1 Atoll unikernel", "x86_64", "(none)"} {
		copy(b[i*field:i*field+field-1], s)
	}
	return 0, ctlReturn
}

func sysSocket(t *vcpu, _ *sysArgs) (uint64, control) {
	t.vm.log.printf("socket: the guest has no host sockets (use a declared network device); answered EAFNOSUPPORT")
	return fail(unix.EAFNOSUPPORT)
}

func sysIoctl(t *vcpu, a *sysArgs) (uint64, control) {
	if !t.vm.fds.valid(a[0]) {
		return fail(unix.EBADF)
	}
	return fail(unix.ENOTTY)
}

// rlimNlimits is the number of resource limits (include/uapi/asm-generic/resource.h).
const rlimNlimits = 16
