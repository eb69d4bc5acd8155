package monitor

// Linux ABI constants and layouts the monitor uses that
// golang.org/x/sys/unix does not provide, gathered here with the header
// each comes from; linux_test.go checks every one against the installed
// kernel (and, for mmsghdr, C library) headers.

// Signals (asm/signal.h, asm-generic/signal-defs.h).
const (
	sigDfl = 0 // SIG_DFL
	sigIgn = 1 // SIG_IGN

	saOnstack   = 0x08000000 // SA_ONSTACK
	saRestorer  = 0x04000000 // SA_RESTORER
	saNodefer   = 0x40000000 // SA_NODEFER
	saResethand = 0x80000000 // SA_RESETHAND

	sigactionSize = 32 // sizeof(struct sigaction): handler, flags, restorer, mask
	sigsetSize    = 8  // sizeof(sigset_t)

	ssOnstack    = 1        // SS_ONSTACK
	ssDisable    = 2        // SS_DISABLE
	ssAutodisarm = -1 << 31 // SS_AUTODISARM: bit 31 of the int flags (linux_test.go checks 1<<31)
	minSigstksz  = 2048     // MINSIGSTKSZ
	stackTSize   = 24       // sizeof(stack_t)
)

// Signal frames (asm/ucontext.h, asm/sigcontext.h, asm-generic/siginfo.h).
const (
	ucontextSize = 304 // sizeof(struct ucontext)
	ucStackOff   = 16  // offsetof(struct ucontext, uc_stack)
	mcontextOff  = 40  // offsetof(struct ucontext, uc_mcontext)
	sigmaskOff   = 296 // offsetof(struct ucontext, uc_sigmask)
	siginfoSize  = 128 // sizeof(siginfo_t)

	// struct sigcontext: r8–r15, rdi, rsi, rbp, rbx, rdx, rax, rcx, rsp,
	// rip, eflags as words 0–17, then:
	scFlagsWord = 17  // offsetof(struct sigcontext, eflags) / 8
	scCS        = 144 // offsetof(struct sigcontext, cs)
	scErr       = 152 // offsetof(struct sigcontext, err)
	scTrapno    = 160 // offsetof(struct sigcontext, trapno)
	scOldmask   = 168 // offsetof(struct sigcontext, oldmask)
	scCR2       = 176 // offsetof(struct sigcontext, cr2)

	siKernel   = 0x80 // SI_KERNEL
	siTkill    = -6   // SI_TKILL
	segvMaperr = 1    // SEGV_MAPERR
	segvAccerr = 2    // SEGV_ACCERR
	fpeIntdiv  = 1    // FPE_INTDIV
	fpeFltinv  = 7    // FPE_FLTINV
	illIllopn  = 2    // ILL_ILLOPN
	busAdraln  = 1    // BUS_ADRALN
	trapBrkpt  = 1    // TRAP_BRKPT
)

// Threads and futexes (linux/futex.h, asm/prctl.h).
const (
	futexWait        = 0   // FUTEX_WAIT
	futexWake        = 1   // FUTEX_WAKE
	futexPrivateFlag = 128 // FUTEX_PRIVATE_FLAG

	archSetFS = 0x1002 // ARCH_SET_FS
	archGetFS = 0x1003 // ARCH_GET_FS
)

// Auxiliary-vector keys (linux/auxvec.h, asm/auxvec.h).
const (
	atNull        = 0  // AT_NULL
	atPagesz      = 6  // AT_PAGESZ
	atHwcap       = 16 // AT_HWCAP
	atClktck      = 17 // AT_CLKTCK
	atSecure      = 23 // AT_SECURE
	atRandom      = 25 // AT_RANDOM
	atExecfn      = 31 // AT_EXECFN
	atSysinfoEhdr = 33 // AT_SYSINFO_EHDR
)

// Structure sizes and limits of the descriptor, time and process calls.
const (
	epollEventSize = 12     // sizeof(struct epoll_event): packed on x86-64 (linux/eventpoll.h)
	iovecSize      = 16     // sizeof(struct iovec) (linux/uio.h)
	iovMax         = 1024   // UIO_MAXIOV (linux/uio.h)
	statSize       = 144    // sizeof(struct stat) (asm/stat.h)
	timespecSize   = 16     // sizeof(struct timespec) (linux/time.h)
	timevalSize    = 16     // sizeof(struct timeval) (linux/time.h)
	rlimitSize     = 16     // sizeof(struct rlimit) (linux/resource.h)
	rlimNlimits    = 16     // RLIM_NLIMITS (asm-generic/resource.h)
	utsFieldSize   = 65     // __NEW_UTS_LEN + 1 (linux/utsname.h)
	statxSize      = 256    // sizeof(struct statx) (linux/stat.h)
	statfsSize     = 120    // sizeof(struct statfs) (asm-generic/statfs.h)
	atStatxSync    = 0x6000 // AT_STATX_SYNC_TYPE (linux/fcntl.h)
	fionbio        = 0x5421 // FIONBIO (asm-generic/ioctls.h)
	tcpSynSent     = 2      // TCP_SYN_SENT, a tcp_info state (netinet/tcp.h)
	tcpClose       = 7      // TCP_CLOSE
)

// struct mmsghdr on x86-64: a struct msghdr, then msg_len (sys/socket.h;
// the kernel's is not in its UAPI headers).
const (
	mmsghdrSize      = 64
	msghdrSize       = 56     // sizeof(struct msghdr)
	msgNameOff       = 0      // msg_hdr.msg_name
	msgNamelenOff    = 8      // msg_hdr.msg_namelen
	msgIovOff        = 16     // msg_hdr.msg_iov
	msgIovlenOff     = 24     // msg_hdr.msg_iovlen
	msgControlOff    = 32     // msg_hdr.msg_control
	msgControllenOff = 40     // msg_hdr.msg_controllen
	msgFlagsOff      = 48     // msg_hdr.msg_flags
	msgLenOff        = 56     // msg_len
	maxMmsg          = iovMax // messages per call (UIO_MAXIOV)
)

// Socket addresses (netinet/in.h).
const (
	sockaddrInSize  = 16 // sizeof(struct sockaddr_in)
	sockaddrIn6Size = 28 // sizeof(struct sockaddr_in6)
	// sockaddrIn6Min is the size of the RFC 2133 sockaddr_in6, without
	// sin6_scope_id, which Linux still accepts.
	sockaddrIn6Min = 24
)
