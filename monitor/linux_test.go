package monitor

import (
	"testing"

	"atoll.dev/atoll/internal/testenv"
)

// TestLinuxConstants checks every constant and layout of linux.go (and the
// control-register bits of machine_kvm.go) against the installed headers.
func TestLinuxConstants(t *testing.T) {
	kernel := map[string]uint64{
		"SIG_DFL": sigDfl, "SIG_IGN": sigIgn,
		"SA_ONSTACK": saOnstack, "SA_RESTORER": saRestorer, "SA_NODEFER": saNodefer, "SA_RESETHAND": saResethand,
		"sizeof(struct sigaction)": sigactionSize, "sizeof(sigset_t)": sigsetSize,
		"SS_ONSTACK": ssOnstack, "SS_DISABLE": ssDisable, "(unsigned)SS_AUTODISARM": 1 << 31,
		"MINSIGSTKSZ": minSigstksz, "sizeof(stack_t)": stackTSize,
		"sizeof(struct ucontext)": ucontextSize, "offsetof(struct ucontext, uc_stack)": ucStackOff,
		"offsetof(struct ucontext, uc_mcontext)": mcontextOff, "offsetof(struct ucontext, uc_sigmask)": sigmaskOff,
		"sizeof(siginfo_t)":                       siginfoSize,
		"offsetof(struct sigcontext, eflags) / 8": scFlagsWord,
		"offsetof(struct sigcontext, r8)":         0,
		"offsetof(struct sigcontext, rip) / 8":    16,
		"offsetof(struct sigcontext, cs)":         scCS,
		"offsetof(struct sigcontext, err)":        scErr,
		"offsetof(struct sigcontext, trapno)":     scTrapno,
		"offsetof(struct sigcontext, oldmask)":    scOldmask,
		"offsetof(struct sigcontext, cr2)":        scCR2,
		"SI_KERNEL":                               siKernel,
		"SI_TKILL + 6":                            0, // SI_TKILL is -6
		"SEGV_MAPERR":                             segvMaperr, "SEGV_ACCERR": segvAccerr,
		"FPE_INTDIV": fpeIntdiv, "FPE_FLTINV": fpeFltinv, "ILL_ILLOPN": illIllopn,
		"BUS_ADRALN": busAdraln, "TRAP_BRKPT": trapBrkpt,
		"FUTEX_WAIT": futexWait, "FUTEX_WAKE": futexWake, "FUTEX_PRIVATE_FLAG": futexPrivateFlag,
		"ARCH_SET_FS": archSetFS, "ARCH_GET_FS": archGetFS,
		"AT_NULL": atNull, "AT_PAGESZ": atPagesz, "AT_HWCAP": atHwcap, "AT_CLKTCK": atClktck,
		"AT_SECURE": atSecure, "AT_RANDOM": atRandom, "AT_EXECFN": atExecfn, "AT_SYSINFO_EHDR": atSysinfoEhdr,
		"sizeof(struct epoll_event)": epollEventSize, "sizeof(struct iovec)": iovecSize, "UIO_MAXIOV": iovMax,
		"sizeof(struct stat)": statSize, "sizeof(struct __kernel_timespec)": timespecSize,
		"sizeof(struct __kernel_old_timeval)": timevalSize, "sizeof(struct rlimit)": rlimitSize,
		"RLIM_NLIMITS": rlimNlimits, "FIONBIO": fionbio, "__NEW_UTS_LEN + 1": utsFieldSize,
		"X86_CR0_PE": cr0PE, "X86_CR0_MP": cr0MP, "X86_CR0_ET": cr0ET, "X86_CR0_NE": cr0NE,
		"X86_CR0_WP": cr0WP, "X86_CR0_AM": cr0AM, "X86_CR0_PG": cr0PG,
		"X86_CR4_PAE": cr4PAE, "X86_CR4_OSFXSR": cr4OSFXSR, "X86_CR4_OSXMMEXCPT": cr4OSXMMEXCPT, "X86_CR4_OSXSAVE": cr4OSXSAVE,
	}
	check(t, []string{"linux/types.h", "linux/signal.h", "asm/sigcontext.h", "asm/ucontext.h",
		"linux/futex.h", "asm/prctl.h", "linux/auxvec.h", "linux/eventpoll.h", "linux/uio.h", "asm/stat.h",
		"linux/time_types.h", "linux/resource.h", "asm/ioctls.h", "linux/utsname.h", "asm/processor-flags.h"}, kernel)
	libc := map[string]uint64{
		"sizeof(struct mmsghdr)": mmsghdrSize, "offsetof(struct mmsghdr, msg_hdr.msg_name)": msgNameOff,
		"offsetof(struct mmsghdr, msg_hdr.msg_iov)": msgIovOff, "offsetof(struct mmsghdr, msg_hdr.msg_iovlen)": msgIovlenOff,
		"offsetof(struct mmsghdr, msg_hdr.msg_control)": msgControlOff, "offsetof(struct mmsghdr, msg_hdr.msg_flags)": msgFlagsOff,
		"offsetof(struct mmsghdr, msg_len)": msgLenOff, "sizeof(struct msghdr)": msghdrSize,
		"offsetof(struct msghdr, msg_namelen)": msgNamelenOff, "offsetof(struct msghdr, msg_controllen)": msgControllenOff,
		"sizeof(struct sockaddr_in)": sockaddrInSize, "sizeof(struct sockaddr_in6)": sockaddrIn6Size,
		"offsetof(struct sockaddr_in6, sin6_scope_id)": sockaddrIn6Min, "TCP_SYN_SENT": tcpSynSent, "TCP_CLOSE": tcpClose,
	}
	check(t, []string{"#define _GNU_SOURCE", "sys/socket.h", "netinet/in.h", "netinet/tcp.h"}, libc)
}

func check(t *testing.T, headers []string, want map[string]uint64) {
	t.Helper()
	exprs := make([]string, 0, len(want))
	for e := range want {
		exprs = append(exprs, e)
	}
	got := testenv.HeaderValues(t, headers, exprs)
	for e, w := range want {
		if g, ok := got[e]; !ok || g != w {
			t.Errorf("%s: the headers say %#x, the monitor uses %#x", e, g, w)
		}
	}
}
