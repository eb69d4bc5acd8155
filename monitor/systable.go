package monitor

import (
	"fmt"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

//go:generate go test -run=^TestABIDocMatchesTable$ -update .

// handler implements one system call: the result for RAX, or an errno.
// Handlers that replace the registers or end the thread say so in
// thread.ctl.
type handler func(t *thread, a sysArgs) (uint64, unix.Errno)

// Support is how much of a system call the monitor implements.
type Support int

// Support levels.
const (
	SupportFull    Support = iota // as Linux, for what a unikernel can do
	SupportPartial                // some of it; the note says what is missing
	SupportError                  // always fails, with the error the note explains
)

func (s Support) String() string {
	return [...]string{"full", "partial", "error"}[s]
}

// sysEntry is one entry of the system-call table.
type sysEntry struct {
	nr      uint64
	name    string
	subject string // the part of docs/abi.md it belongs to
	support Support
	fn      handler    // nil for an error entry, which answers errno
	errno   unix.Errno // an error entry's answer
	note    string
}

// Subjects, in docs/abi.md's order.
const (
	subjMemory  = "memory"
	subjThreads = "threads"
	subjSignals = "signals"
	subjTime    = "time"
	subjFiles   = "descriptors"
	subjPaths   = "paths"
	subjSockets = "sockets"
	subjProcess = "process"
)

var subjects = []string{subjMemory, subjThreads, subjSignals, subjTime, subjFiles, subjPaths, subjSockets, subjProcess}

func full(nr uint64, name, subject string, fn handler, note string) sysEntry {
	return sysEntry{nr: nr, name: name, subject: subject, support: SupportFull, fn: fn, note: note}
}

func partial(nr uint64, name, subject string, fn handler, note string) sysEntry {
	return sysEntry{nr: nr, name: name, subject: subject, support: SupportPartial, fn: fn, note: note}
}

// fails is an entry that always answers errno. A handler may stand in
// for it when the answer depends on the arguments (a bad pointer is
// EFAULT), or to log them.
func fails(nr uint64, name, subject string, errno unix.Errno, fn handler, note string) sysEntry {
	return sysEntry{nr: nr, name: name, subject: subject, support: SupportError, fn: fn, errno: errno, note: note}
}

// syscallTable is the whole system-call surface of the guest ABI: every
// call the monitor answers, how fully, and what to know about it
// (docs/abi.md's call list is generated from it). A number not in it is
// answered ENOSYS and logged with -v.
var syscallTable = []sysEntry{
	// Memory (sys_memory.go).
	partial(unix.SYS_MMAP, "mmap", subjMemory, sysMmap, "Anonymous memory (`MAP_DROPPABLE` is private memory that is never dropped), files as a copy (`MAP_PRIVATE`, or `MAP_SHARED` without `PROT_WRITE`), and a volume's files shared and writable, the file's own pages (section 3; an in-memory file's, or a descriptor that is no file, is `ENODEV`); a network device maps its frame rings (section 5). A free hint is honoured; the first hinted mapping of 64 MiB or more creates the heap region there. `MAP_FIXED` replaces and zeroes; `MAP_FIXED_NOREPLACE` is `EEXIST` on overlap. A mapping counts nothing against `--mem` until the guest holds its memory (section 1); past the address space (16 GiB, or the limit if larger, for mappings without a usable hint) it is `ENOMEM`; a file mapping whose pages would pass the limit is `ENOMEM`. A `PROT_NONE` private anonymous reservation with no address is answered inside the guest (trampoline), from 1.25 GiB of address space kept for them."),
	full(unix.SYS_MUNMAP, "munmap", subjMemory, sysMunmap, ""),
	full(unix.SYS_MSYNC, "msync", subjMemory, sysMsync, "Writes a shared file mapping's pages to the file; elsewhere there is nothing to write."),
	partial(unix.SYS_MPROTECT, "mprotect", subjMemory, sysMprotect, "A chunk with no readable or writable page left is never held (touching it is `SIGSEGV`); in a held chunk every page stays readable, writable and executable."),
	partial(unix.SYS_MADVISE, "madvise", subjMemory, sysMadvise, "`MADV_DONTNEED`, `MADV_FREE` and `MADV_REMOVE` zero the range (a shared file mapping's reads the file again); other advice is accepted and ignored, inside the guest (trampoline)."),

	// Threads (sys_threads.go).
	partial(unix.SYS_CLONE, "clone", subjThreads, sysClone, "Threads only (`CLONE_VM|CLONE_THREAD|CLONE_SIGHAND`, optional `CLONE_SETTLS`, `CLONE_PARENT_SETTID`; other flags are ignored); a new process is `ENOSYS`, `CLONE_CHILD_SETTID` and `CLONE_CHILD_CLEARTID` are `EINVAL`. At most 1024 threads (`EAGAIN`)."),
	full(unix.SYS_EXIT, "exit", subjThreads, sysExit, "The last thread's exit ends the VM."),
	full(unix.SYS_EXIT_GROUP, "exit_group", subjThreads, sysExitGroup, "Ends the VM with the status's low 8 bits."),
	partial(unix.SYS_FUTEX, "futex", subjThreads, sysFutex, "`FUTEX_WAIT` and `FUTEX_WAKE`, private or shared, on the host futex of the guest word; other operations are `ENOSYS`."),
	full(unix.SYS_GETTID, "gettid", subjThreads, sysGettid, "The first thread is 1; later ones count up. Answered inside the guest (trampoline)."),
	partial(unix.SYS_ARCH_PRCTL, "arch_prctl", subjThreads, sysArchPrctl, "`ARCH_SET_FS` and `ARCH_GET_FS`; others are `EINVAL`."),
	full(unix.SYS_SCHED_GETAFFINITY, "sched_getaffinity", subjThreads, sysSchedGetaffinity, "A mask of `--cpus` CPUs (8 bytes) for any of the guest's threads (`ESRCH` for another id); a length below 8 or not a multiple of 8 is `EINVAL`. The calling thread's is answered inside the guest (trampoline)."),
	full(unix.SYS_SCHED_YIELD, "sched_yield", subjThreads, sysSchedYield, ""),

	// Signals (sys_signals.go, signals.go).
	full(unix.SYS_RT_SIGACTION, "rt_sigaction", subjSignals, sysRtSigaction, "Ordinary requests are answered inside the guest, without an exit (trampoline)."),
	full(unix.SYS_RT_SIGPROCMASK, "rt_sigprocmask", subjSignals, sysRtSigprocmask, "Answered inside the guest (trampoline); unblocking a queued signal delivers it on return, as on Linux."),
	partial(unix.SYS_SIGALTSTACK, "sigaltstack", subjSignals, sysSigaltstack, "`SS_AUTODISARM` is `EINVAL`. Setting or reading the stack is answered inside the guest (trampoline)."),
	full(unix.SYS_RT_SIGRETURN, "rt_sigreturn", subjSignals, sysRtSigreturn, "The frame is Linux's `rt_sigframe`; FPU state is kept by the monitor, not in the frame (`fpstate` is NULL)."),
	partial(unix.SYS_TGKILL, "tgkill", subjSignals, sysTgkill, "Process 1 only; delivered when the target next leaves the guest, at once if it is running."),
	full(unix.SYS_TKILL, "tkill", subjSignals, sysTkill, ""),
	partial(unix.SYS_KILL, "kill", subjSignals, sysKill, "Process 1 (or 0) only: the signal goes to the calling thread."),

	// Time (sys_time.go).
	partial(unix.SYS_CLOCK_GETTIME, "clock_gettime", subjTime, sysClockGettime, "`REALTIME` and `MONOTONIC` read the guest clock the vDSO also answers, without an exit; `MONOTONIC_RAW`, `BOOTTIME`, the coarse clocks and the CPU-time clocks (the monitor's) are the host's."),
	full(unix.SYS_GETTIMEOFDAY, "gettimeofday", subjTime, sysGettimeofday, "The guest clock."),
	full(unix.SYS_NANOSLEEP, "nanosleep", subjTime, sysNanosleep, ""),
	fails(unix.SYS_CLOCK_NANOSLEEP, "clock_nanosleep", subjTime, unix.ENOSYS, nil, "Not used by Go on linux/amd64; `nanosleep` is."),

	// Descriptors (sys_fd.go, file_*.go).
	full(unix.SYS_READ, "read", subjFiles, sysRead, "Block devices are `EINVAL` (use `pread64`)."),
	full(unix.SYS_WRITE, "write", subjFiles, sysWrite, "Block devices are `EINVAL` (use `pwrite64`)."),
	full(unix.SYS_READV, "readv", subjFiles, sysReadv, "At most 1024 vectors."),
	full(unix.SYS_WRITEV, "writev", subjFiles, sysWritev, "At most 1024 vectors."),
	full(unix.SYS_PREAD64, "pread64", subjFiles, sysPread, "Block devices: whole sectors within the declared size, else `EINVAL`."),
	full(unix.SYS_PWRITE64, "pwrite64", subjFiles, sysPwrite, "Block devices: whole sectors within the declared size, else `EINVAL`."),
	full(unix.SYS_LSEEK, "lseek", subjFiles, sysLseek, "Pipes and devices have no offset: `ESPIPE`; block devices `EINVAL`."),
	full(unix.SYS_FSTAT, "fstat", subjFiles, sysFstat, "Describes the host object behind the descriptor."),
	full(unix.SYS_CLOSE, "close", subjFiles, sysClose, ""),
	full(unix.SYS_FSYNC, "fsync", subjFiles, sysFsync, "Block devices: returns once every completed write is on the host's storage. Descriptors 1 and 2 flush the operator's file (`EINVAL` for a terminal or pipe); pipes, eventfds, epoll instances and network devices are `EINVAL`."),
	full(unix.SYS_FDATASYNC, "fdatasync", subjFiles, sysFsync, "As `fsync`."),
	full(unix.SYS_DUP, "dup", subjFiles, sysDup, "The table holds at most 4096 descriptors."),
	full(unix.SYS_DUP2, "dup2", subjFiles, sysDup2, ""),
	full(unix.SYS_DUP3, "dup3", subjFiles, sysDup3, ""),
	partial(unix.SYS_FCNTL, "fcntl", subjFiles, sysFcntl, "`F_DUPFD`, `F_DUPFD_CLOEXEC`, `F_GETFD`/`F_SETFD` (accepted: there is no exec), `F_GETFL`/`F_SETFL` (only `O_NONBLOCK` changes), record locks (`F_GETLK`, `F_SETLK`, `F_SETLKW` and their `F_OFD_` forms; section 3); others are `EINVAL`. `F_GETFD` and `F_GETFL` of descriptors 0–2 are answered inside the guest (trampoline) while nothing has changed them."),
	partial(unix.SYS_IOCTL, "ioctl", subjFiles, sysIoctl, "Sockets answer `FIONREAD`, `SIOCOUTQ` and `FIONBIO`; there is no terminal or device control: `ENOTTY` for the rest."),
	full(unix.SYS_PIPE, "pipe", subjFiles, sysPipe, ""),
	full(unix.SYS_PIPE2, "pipe2", subjFiles, sysPipe2, "`O_NONBLOCK` and `O_CLOEXEC`."),
	full(unix.SYS_EVENTFD2, "eventfd2", subjFiles, sysEventfd2, ""),
	full(unix.SYS_EPOLL_CREATE, "epoll_create", subjFiles, sysEpollCreate, ""),
	full(unix.SYS_EPOLL_CREATE1, "epoll_create1", subjFiles, sysEpollCreate1, ""),
	full(unix.SYS_EPOLL_CTL, "epoll_ctl", subjFiles, sysEpollCtl, "Block devices are `EPERM`, as regular files are."),
	full(unix.SYS_EPOLL_WAIT, "epoll_wait", subjFiles, sysEpollWait, ""),
	partial(unix.SYS_EPOLL_PWAIT, "epoll_pwait", subjFiles, sysEpollWait, "The signal mask is ignored: signals reach the guest between calls."),
	fails(unix.SYS_EPOLL_PWAIT2, "epoll_pwait2", subjFiles, unix.ENOSYS, nil, "Go uses `epoll_pwait`."),
	partial(unix.SYS_RECVMMSG, "recvmmsg", subjSockets, sysRecvmmsg, "Sockets, as `recvmsg` per message; and network devices on the user backend, one frame per message, no names, no control data. No timeout; at most 1024 messages."),
	partial(unix.SYS_SENDMMSG, "sendmmsg", subjSockets, sysSendmmsg, "As `recvmmsg`."),

	// Process (sys_process.go).
	full(unix.SYS_GETPID, "getpid", subjProcess, sysGetpid, "1."),
	full(unix.SYS_GETPPID, "getppid", subjProcess, sysZero, "0."),
	full(unix.SYS_GETUID, "getuid", subjProcess, sysZero, "0: the guest is root of nothing."),
	full(unix.SYS_GETEUID, "geteuid", subjProcess, sysZero, "0."),
	full(unix.SYS_GETGID, "getgid", subjProcess, sysZero, "0."),
	full(unix.SYS_GETEGID, "getegid", subjProcess, sysZero, "0."),
	full(unix.SYS_GETRANDOM, "getrandom", subjProcess, sysGetrandom, "Host entropy, at most 32 MiB per call; unknown flags, or `GRND_INSECURE` with `GRND_RANDOM`, are `EINVAL`. The vDSO's `__vdso_getrandom` answers most reads without it (section 1)."),
	partial(unix.SYS_PRLIMIT64, "prlimit64", subjProcess, sysPrlimit64, "Readable and settable for process 1, but they bind nothing: the descriptor table always holds 4096, which is also `RLIMIT_NOFILE`'s soft and hard limit at start, and a hard `RLIMIT_NOFILE` above that is `EINVAL`."),
	full(unix.SYS_GETRLIMIT, "getrlimit", subjProcess, sysGetrlimit, "As `prlimit64`."),
	partial(unix.SYS_UNAME, "uname", subjProcess, sysUname, "`Linux`, node name the unikernel's, release `6.1.0-atoll`."),

	// Paths (sys_path.go, package vfs).
	partial(unix.SYS_OPENAT, "openat", subjPaths, sysOpenat, "`O_CREAT`, `O_EXCL`, `O_TRUNC`, `O_APPEND`, `O_DIRECTORY`, `O_NOFOLLOW`, `O_CLOEXEC`, `O_NONBLOCK`, `O_PATH`; `O_TMPFILE` is `EOPNOTSUPP`. The image's tree and the root are read-only (`EROFS`); a volume's devices, FIFOs and sockets are `EACCES`, and a link out of a volume fails (`EXDEV`)."),
	full(unix.SYS_OPEN, "open", subjPaths, sysOpen, "As `openat`."),
	full(unix.SYS_CREAT, "creat", subjPaths, sysCreat, "As `openat`."),
	full(unix.SYS_NEWFSTATAT, "newfstatat", subjPaths, sysNewfstatat, "Owner and group are 0: the guest is root of its files."),
	full(unix.SYS_STAT, "stat", subjPaths, sysStat, ""),
	full(unix.SYS_LSTAT, "lstat", subjPaths, sysLstat, ""),
	partial(unix.SYS_STATX, "statx", subjPaths, sysStatx, "The basic fields, whatever the mask; no birth time or attributes."),
	full(unix.SYS_GETDENTS64, "getdents64", subjPaths, sysGetdents64, ""),
	full(unix.SYS_READLINKAT, "readlinkat", subjPaths, sysReadlinkat, "`/proc/self/exe` answers `/proc/self/exe`, which opens the executable."),
	full(unix.SYS_READLINK, "readlink", subjPaths, sysReadlink, ""),
	full(unix.SYS_MKDIRAT, "mkdirat", subjPaths, sysMkdirat, ""),
	full(unix.SYS_MKDIR, "mkdir", subjPaths, sysMkdir, ""),
	full(unix.SYS_UNLINKAT, "unlinkat", subjPaths, sysUnlinkat, ""),
	full(unix.SYS_UNLINK, "unlink", subjPaths, sysUnlink, ""),
	full(unix.SYS_RMDIR, "rmdir", subjPaths, sysRmdir, ""),
	partial(unix.SYS_RENAMEAT2, "renameat2", subjPaths, sysRenameat2, "`RENAME_NOREPLACE` only; across file systems (`/tmp`, a volume, the root) `EXDEV`."),
	full(unix.SYS_RENAMEAT, "renameat", subjPaths, sysRenameat, ""),
	full(unix.SYS_RENAME, "rename", subjPaths, sysRename, ""),
	full(unix.SYS_SYMLINKAT, "symlinkat", subjPaths, sysSymlinkat, ""),
	full(unix.SYS_SYMLINK, "symlink", subjPaths, sysSymlink, ""),
	full(unix.SYS_LINKAT, "linkat", subjPaths, sysLinkat, ""),
	full(unix.SYS_LINK, "link", subjPaths, sysLink, ""),
	full(unix.SYS_CHDIR, "chdir", subjPaths, sysChdir, ""),
	full(unix.SYS_FCHDIR, "fchdir", subjPaths, sysFchdir, ""),
	full(unix.SYS_GETCWD, "getcwd", subjPaths, sysGetcwd, "`/` unless `--workdir` or `chdir` said otherwise."),
	full(unix.SYS_FTRUNCATE, "ftruncate", subjPaths, sysFtruncate, ""),
	full(unix.SYS_TRUNCATE, "truncate", subjPaths, sysTruncate, ""),
	partial(unix.SYS_FALLOCATE, "fallocate", subjPaths, sysFallocate, "Mode 0 grows the file; other modes are `EOPNOTSUPP`."),
	partial(unix.SYS_FACCESSAT2, "faccessat2", subjPaths, sysFaccessat2, "The guest is root: only existence, `EROFS` for `W_OK` on a read-only tree or volume, and `X_OK` on a file with no execute bit, can fail."),
	full(unix.SYS_FACCESSAT, "faccessat", subjPaths, sysFaccessat, "As `faccessat2`."),
	full(unix.SYS_ACCESS, "access", subjPaths, sysAccess, "As `faccessat2`."),
	full(unix.SYS_FCHMODAT, "fchmodat", subjPaths, sysFchmodat, ""),
	full(unix.SYS_CHMOD, "chmod", subjPaths, sysChmod, ""),
	full(unix.SYS_FCHMOD, "fchmod", subjPaths, sysFchmod, ""),
	partial(unix.SYS_FCHOWNAT, "fchownat", subjPaths, sysFchownat, "Accepted and ignored: every file belongs to root."),
	partial(unix.SYS_CHOWN, "chown", subjPaths, sysChown, "As `fchownat`."),
	partial(unix.SYS_LCHOWN, "lchown", subjPaths, sysLchown, "As `fchownat`."),
	partial(unix.SYS_FCHOWN, "fchown", subjPaths, sysFchown, "As `fchownat`."),
	full(unix.SYS_UTIMENSAT, "utimensat", subjPaths, sysUtimensat, "Also `futimens` (a NULL path)."),
	full(unix.SYS_FLOCK, "flock", subjPaths, sysFlock, "Between the guest's open files of a file, and for a volume's, with the host's processes too. A blocking lock waits, polling, until it is free or a signal arrives."),
	full(unix.SYS_STATFS, "statfs", subjPaths, sysStatfs, ""),
	full(unix.SYS_FSTATFS, "fstatfs", subjPaths, sysFstatfs, ""),
	full(unix.SYS_UMASK, "umask", subjPaths, sysUmask, ""),
	fails(unix.SYS_COPY_FILE_RANGE, "copy_file_range", subjPaths, unix.ENOSYS, nil, "Go's io.Copy falls back to reads and writes."),
	fails(unix.SYS_SENDFILE, "sendfile", subjPaths, unix.ENOSYS, nil, "Go's io.Copy falls back to reads and writes."),
	fails(unix.SYS_SPLICE, "splice", subjFiles, unix.EINVAL, nil, "As for descriptors that cannot splice: Go's io.Copy between sockets falls back to reads and writes."),
	partial(unix.SYS_SOCKET, "socket", subjSockets, sysSocket, "On the host network backend: TCP and UDP over IPv4 and IPv6 (`SOCK_RAW` is `EPERM`, other families `EAFNOSUPPORT`). Without it, `EAFNOSUPPORT`: use a declared network device (`atoll.Net`)."),
	fails(unix.SYS_SOCKETPAIR, "socketpair", subjSockets, unix.EAFNOSUPPORT, sysSocketpair, "No `AF_UNIX`; IPv4 and IPv6 make no pairs (`EOPNOTSUPP`)."),
	partial(unix.SYS_BIND, "bind", subjSockets, sysBind, "Any port of the guest's loopback; elsewhere a forwarded port (`-p`) or port 0, else `EACCES`; an address not the guest's is `EADDRNOTAVAIL`."),
	full(unix.SYS_LISTEN, "listen", subjSockets, sysListen, ""),
	full(unix.SYS_ACCEPT, "accept", subjSockets, sysAccept, ""),
	full(unix.SYS_ACCEPT4, "accept4", subjSockets, sysAccept4, ""),
	partial(unix.SYS_CONNECT, "connect", subjSockets, sysConnect, "The guest's loopback reaches its own sockets only; 10.0.2.2 is the host's loopback, 10.0.2.3:53 the resolver; the outbound policy refuses with `EACCES`."),
	full(unix.SYS_GETSOCKNAME, "getsockname", subjSockets, sysGetsockname, "The guest's view of the address (section 6)."),
	full(unix.SYS_GETPEERNAME, "getpeername", subjSockets, sysGetpeername, "As `getsockname`."),
	partial(unix.SYS_SENDTO, "sendto", subjSockets, sysSendto, "Flags `MSG_DONTWAIT`, `MSG_NOSIGNAL`, `MSG_MORE`, `MSG_EOR`, `MSG_OOB`, `MSG_CONFIRM`; others are `EOPNOTSUPP`. The monitor never raises `SIGPIPE`: `EPIPE` is the answer. An IPv6 UDP socket takes an IPv4 destination as `AF_INET` too, as Linux does (`ENETUNREACH` with `IPV6_V6ONLY`)."),
	partial(unix.SYS_RECVFROM, "recvfrom", subjSockets, sysRecvfrom, "Flags `MSG_DONTWAIT`, `MSG_PEEK`, `MSG_WAITALL`, `MSG_TRUNC`, `MSG_OOB`, `MSG_CMSG_CLOEXEC`."),
	partial(unix.SYS_SENDMSG, "sendmsg", subjSockets, sysSendmsg, "As `sendto`; control messages are `EINVAL`."),
	partial(unix.SYS_RECVMSG, "recvmsg", subjSockets, sysRecvmsg, "As `recvfrom`; no control messages are returned."),
	full(unix.SYS_SHUTDOWN, "shutdown", subjSockets, sysShutdown, ""),
	partial(unix.SYS_SETSOCKOPT, "setsockopt", subjSockets, sysSetsockopt, "An allow-list (section 6); other options are `ENOPROTOOPT`."),
	partial(unix.SYS_GETSOCKOPT, "getsockopt", subjSockets, sysGetsockopt, "As `setsockopt`."),
	fails(unix.SYS_PRCTL, "prctl", subjProcess, unix.EINVAL, nil, "No process controls."),
	fails(unix.SYS_EXECVE, "execve", subjProcess, unix.ENOSYS, nil, "A unikernel is one program."),
	fails(unix.SYS_FORK, "fork", subjProcess, unix.ENOSYS, nil, "A unikernel is one process."),
	fails(unix.SYS_VFORK, "vfork", subjProcess, unix.ENOSYS, nil, "A unikernel is one process."),
	fails(unix.SYS_WAIT4, "wait4", subjProcess, unix.ENOSYS, nil, "A unikernel is one process."),
	fails(unix.SYS_SYSINFO, "sysinfo", subjProcess, unix.ENOSYS, nil, "Not implemented yet: the machine a unikernel sees is its `--mem` and `--cpus`."),
	fails(unix.SYS_GETRUSAGE, "getrusage", subjProcess, unix.ENOSYS, nil, "Not implemented yet; the Go runtime does not use it."),
	fails(unix.SYS_MINCORE, "mincore", subjMemory, unix.ENOSYS, nil, "The Go runtime does not use it."),
	fails(unix.SYS_RSEQ, "rseq", subjProcess, unix.ENOSYS, nil, "The C library's; Go does not use it."),
	fails(unix.SYS_SET_ROBUST_LIST, "set_robust_list", subjProcess, unix.ENOSYS, nil, "The C library's; Go does not use it."),
	fails(unix.SYS_SET_TID_ADDRESS, "set_tid_address", subjProcess, unix.ENOSYS, nil, "The C library's; Go does not use it."),
}

// byNumber indexes syscallTable. It is made in init because handlers
// name calls through it (syscallName), and the table refers to them.
var byNumber map[uint64]*sysEntry

func init() {
	byNumber = make(map[uint64]*sysEntry, len(syscallTable))
	for i := range syscallTable {
		s := &syscallTable[i]
		if _, dup := byNumber[s.nr]; dup {
			panic("monitor: system call " + s.name + " listed twice")
		}
		byNumber[s.nr] = s
	}
}

// lookupSyscall returns the entry for nr, or nil.
func lookupSyscall(nr uint64) *sysEntry { return byNumber[nr] }

// syscallName names system call nr for logs and statistics.
func syscallName(nr uint64) string {
	if s := lookupSyscall(nr); s != nil {
		return s.name
	}
	return fmt.Sprintf("syscall_%d", nr)
}

// SyscallInfo describes one system call of the guest ABI.
type SyscallInfo struct {
	Number  uint64
	Name    string
	Subject string
	Support Support
	// Errno is what a call of Support Error answers (0 otherwise).
	Errno unix.Errno
	Note  string
}

// Syscalls lists the guest ABI's system calls by subject, then name: what
// the monitor answers and how (docs/abi.md, `atoll abi`).
func Syscalls() []SyscallInfo {
	rank := map[string]int{}
	for i, s := range subjects {
		rank[s] = i
	}
	out := make([]SyscallInfo, len(syscallTable))
	for i, s := range syscallTable {
		out[i] = SyscallInfo{Number: s.nr, Name: s.name, Subject: s.subject, Support: s.support, Note: s.note}
		if s.support == SupportError {
			out[i].Errno = s.errno
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		return rank[a.Subject] < rank[b.Subject] || rank[a.Subject] == rank[b.Subject] && a.Name < b.Name
	})
	return out
}

// SyscallDoc returns the guest ABI's call list as Markdown: a table per
// subject, as docs/abi.md holds it.
func SyscallDoc() string {
	var b strings.Builder
	subject := ""
	for _, s := range Syscalls() {
		if s.Subject != subject {
			if subject != "" {
				b.WriteString("\n")
			}
			subject = s.Subject
			fmt.Fprintf(&b, "### %s%s\n\n| call | nr | support | notes |\n| --- | --- | --- | --- |\n", strings.ToUpper(subject[:1]), subject[1:])
		}
		support := s.Support.String()
		if s.Support == SupportError {
			support = "error: `" + unix.ErrnoName(s.Errno) + "`"
		}
		// A | in a cell, even in code, must be escaped (GitHub's tables).
		fmt.Fprintf(&b, "| `%s` | %d | %s | %s |\n", s.Name, s.Number, support, strings.ReplaceAll(s.Note, "|", `\|`))
	}
	return b.String()
}
