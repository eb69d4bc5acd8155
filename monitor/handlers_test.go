package monitor

import (
	"atoll.dev/atoll/monitor/guestmem"
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"atoll.dev/atoll/abi"
	"atoll.dev/atoll/manifest"
	"atoll.dev/atoll/monitor/elfimage"
	"atoll.dev/atoll/monitor/kvm"
)

// Handler tests run without /dev/kvm on the fake machine of harness_test.go.
// Each case makes calls as a guest would and checks the results and guest
// memory; bad pointers and arguments are part of every group.

const wild = 0x7ff0_0000_0000 // canonical, never guest memory

// errCase is a call that must fail with want.
type errCase struct {
	name string
	nr   uint64
	args []uint64
	want unix.Errno
}

func runErrCases(t *testing.T, tv *testVM, cases []errCase) {
	t.Helper()
	for _, c := range cases {
		if _, e := tv.call(t, c.nr, c.args...); e != c.want {
			t.Errorf("%s: %v, want %v", c.name, e, c.want)
		}
	}
}

func TestMemoryCalls(t *testing.T) {
	tv := newTestVM(t, vmOptions{mem: 64 << 20})
	rw := uint64(unix.PROT_READ | unix.PROT_WRITE)
	anon := uint64(unix.MAP_PRIVATE | unix.MAP_ANONYMOUS)
	a := tv.mustCall(t, unix.SYS_MMAP, 0, 1<<20, rw, anon, ^uint64(0), 0)
	tv.put(t, a, []byte("data"))
	tv.mustCall(t, unix.SYS_MADVISE, a, 4096, unix.MADV_DONTNEED)
	if got := tv.bytes(t, a, 4); !bytes.Equal(got, make([]byte, 4)) {
		t.Errorf("MADV_DONTNEED left %q", got)
	}
	tv.mustCall(t, unix.SYS_MADVISE, a, 4096, unix.MADV_HUGEPAGE) // accepted hint
	tv.mustCall(t, unix.SYS_MPROTECT, a, 4096, unix.PROT_READ)
	// MAP_FIXED_NOREPLACE over a mapping is EEXIST; MAP_FIXED replaces.
	if _, e := tv.call(t, unix.SYS_MMAP, a, 4096, rw, anon|unix.MAP_FIXED_NOREPLACE, ^uint64(0), 0); e != unix.EEXIST {
		t.Errorf("MAP_FIXED_NOREPLACE over a mapping: %v", e)
	}
	if got := tv.mustCall(t, unix.SYS_MMAP, a, 4096, rw, anon|unix.MAP_FIXED, ^uint64(0), 0); got != a {
		t.Errorf("MAP_FIXED at %#x gave %#x", a, got)
	}
	tv.mustCall(t, unix.SYS_MUNMAP, a, 1<<20)
	// MAP_DROPPABLE, which the vDSO asks getrandom states to be mapped
	// with, is private memory that is never dropped.
	d := tv.mustCall(t, unix.SYS_MMAP, 0, 4096, rw, unix.MAP_DROPPABLE|unix.MAP_ANONYMOUS, ^uint64(0), 0)
	tv.put(t, d, []byte("state"))
	if got := tv.bytes(t, d, 5); string(got) != "state" {
		t.Errorf("MAP_DROPPABLE memory holds %q", got)
	}
	runErrCases(t, tv, []errCase{
		{"mmap of a pipe", unix.SYS_MMAP, []uint64{0, 4096, rw, unix.MAP_PRIVATE, 0, 0}, unix.ENODEV},
		{"mmap of a bad descriptor", unix.SYS_MMAP, []uint64{0, 4096, rw, unix.MAP_PRIVATE, 99, 0}, unix.EBADF},
		{"mmap past the address space", unix.SYS_MMAP, []uint64{0, 1 << 40, rw, anon, ^uint64(0), 0}, unix.ENOMEM},
		{"munmap unaligned", unix.SYS_MUNMAP, []uint64{a + 1, 4096}, unix.EINVAL},
		{"madvise wild", unix.SYS_MADVISE, []uint64{wild, 4096, unix.MADV_DONTNEED}, unix.ENOMEM},
	})
	// Mappings take address space, not memory: past the limit, of either
	// protection (guestmem/hold.go).
	tv.mustCall(t, unix.SYS_MMAP, 0, 512<<20, unix.PROT_NONE, anon, ^uint64(0), 0)
	tv.mustCall(t, unix.SYS_MMAP, 0, 512<<20, rw, anon, ^uint64(0), 0)
}

func TestTimeCalls(t *testing.T) {
	tv := newTestVM(t, vmOptions{})
	ts := tv.at(0)
	for _, clock := range []uint64{unix.CLOCK_REALTIME, unix.CLOCK_MONOTONIC, unix.CLOCK_BOOTTIME, unix.CLOCK_MONOTONIC_COARSE} {
		tv.mustCall(t, unix.SYS_CLOCK_GETTIME, clock, ts)
		if sec := tv.word(t, ts); sec == 0 && clock == unix.CLOCK_REALTIME {
			t.Errorf("clock %d: zero seconds", clock)
		}
	}
	tv.mustCall(t, unix.SYS_CLOCK_GETTIME, unix.CLOCK_REALTIME, ts)
	if d := time.Since(time.Unix(int64(tv.word(t, ts)), int64(tv.word(t, ts+8)))); d < -time.Second || d > time.Second {
		t.Errorf("CLOCK_REALTIME is %v off the host's", d)
	}
	tv.mustCall(t, unix.SYS_GETTIMEOFDAY, ts, 0)
	if us := tv.word(t, ts+8); us >= 1e6 {
		t.Errorf("gettimeofday microseconds %d", us)
	}
	tv.mustCall(t, unix.SYS_GETTIMEOFDAY, 0, 0)
	tv.put(t, ts, u64s(0, 2_000_000)) // 2 ms
	start := time.Now()
	tv.mustCall(t, unix.SYS_NANOSLEEP, ts, 0)
	if d := time.Since(start); d < 2*time.Millisecond {
		t.Errorf("nanosleep(2ms) returned after %v", d)
	}
	// A pending signal interrupts a sleep, which reports what is left.
	tv.main.pending.Or(sigbit(unix.SIGUSR1))
	tv.put(t, ts, u64s(5, 0))
	if _, e := tv.call(t, unix.SYS_NANOSLEEP, ts, tv.at(16)); e != unix.EINTR {
		t.Errorf("interrupted nanosleep: %v", e)
	}
	if left := tv.word(t, tv.at(16)); left < 4 {
		t.Errorf("interrupted nanosleep left %d s, want about 5", left)
	}
	tv.main.pending.Store(0)
	tv.put(t, ts, u64s(0, 1e9))
	runErrCases(t, tv, []errCase{
		{"nanosleep bad nsec", unix.SYS_NANOSLEEP, []uint64{ts, 0}, unix.EINVAL},
		{"nanosleep wild", unix.SYS_NANOSLEEP, []uint64{wild, 0}, unix.EFAULT},
		{"clock_gettime bad clock", unix.SYS_CLOCK_GETTIME, []uint64{99, ts}, unix.EINVAL},
		{"clock_gettime wild", unix.SYS_CLOCK_GETTIME, []uint64{unix.CLOCK_MONOTONIC, wild}, unix.EFAULT},
		{"gettimeofday wild", unix.SYS_GETTIMEOFDAY, []uint64{wild, 0}, unix.EFAULT},
		{"clock_nanosleep", unix.SYS_CLOCK_NANOSLEEP, []uint64{0, 0, ts, 0}, unix.ENOSYS},
	})
}

func TestThreadCalls(t *testing.T) {
	tv := newTestVM(t, vmOptions{})
	if got := tv.mustCall(t, unix.SYS_GETTID); got != 1 {
		t.Errorf("gettid = %d", got)
	}
	tv.mustCall(t, unix.SYS_ARCH_PRCTL, archSetFS, 0xabc000)
	tv.mustCall(t, unix.SYS_ARCH_PRCTL, archGetFS, tv.at(0))
	if fs := tv.word(t, tv.at(0)); fs != 0xabc000 {
		t.Errorf("ARCH_GET_FS = %#x", fs)
	}
	if n := tv.mustCall(t, unix.SYS_SCHED_GETAFFINITY, 0, 128, tv.at(8)); n != 8 || tv.word(t, tv.at(8)) != 3 {
		t.Errorf("sched_getaffinity = %d, mask %#x, want 8 and 2 CPUs", n, tv.word(t, tv.at(8)))
	}
	tv.mustCall(t, unix.SYS_SCHED_YIELD)

	// clone: a thread that starts where the parent returns, with RAX 0.
	flags := uint64(cloneThreadFlags | unix.CLONE_SETTLS | unix.CLONE_PARENT_SETTID)
	tid := tv.mustCall(t, unix.SYS_CLONE, flags, 0x7000_0000, tv.at(16), 0, 0xdef000)
	if tid != 2 || tv.u32(t, tv.at(16)) != 2 || len(tv.mach.started) != 1 {
		t.Fatalf("clone = %d, ptid %d, %d started", tid, tv.u32(t, tv.at(16)), len(tv.mach.started))
	}
	child := tv.mach.started[0]
	r := child.cpu.Regs()
	if r.RAX != 0 || r.RIP != 0x401000 || r.RSP != 0x7000_0000 || r.RFLAGS != 0x202 {
		t.Errorf("child registers %+v", r)
	}
	if fs, _ := child.cpu.GetMSR(kvm.MSRFSBase); fs != 0xdef000 {
		t.Errorf("child FS base %#x", fs)
	}
	runErrCases(t, tv, []errCase{
		{"arch_prctl other", unix.SYS_ARCH_PRCTL, []uint64{0x1001, 0}, unix.EINVAL},
		{"arch_prctl get wild", unix.SYS_ARCH_PRCTL, []uint64{archGetFS, wild}, unix.EFAULT},
		{"sched_getaffinity short", unix.SYS_SCHED_GETAFFINITY, []uint64{0, 4, tv.at(0)}, unix.EINVAL},
		{"sched_getaffinity wild", unix.SYS_SCHED_GETAFFINITY, []uint64{0, 8, wild}, unix.EFAULT},
		{"clone a process", unix.SYS_CLONE, []uint64{uint64(unix.SIGCHLD), 0, 0, 0, 0}, unix.ENOSYS},
		{"clone child tid", unix.SYS_CLONE, []uint64{cloneThreadFlags | unix.CLONE_CHILD_SETTID, 0, 0, 0, 0}, unix.EINVAL},
		{"clone wild ptid", unix.SYS_CLONE, []uint64{cloneThreadFlags | unix.CLONE_PARENT_SETTID, 0, wild, 0, 0}, unix.EFAULT},
	})

	// futex: wake nobody, wait on a changed word, time out, be interrupted.
	w := tv.at(64)
	tv.put(t, w, []byte{1, 0, 0, 0})
	if n := tv.mustCall(t, unix.SYS_FUTEX, w, futexWake|futexPrivateFlag, 1); n != 0 {
		t.Errorf("FUTEX_WAKE woke %d", n)
	}
	tv.put(t, tv.at(80), u64s(0, 1_000_000)) // 1 ms
	runErrCases(t, tv, []errCase{
		{"futex value changed", unix.SYS_FUTEX, []uint64{w, futexWait, 0, 0}, unix.EAGAIN},
		{"futex timeout", unix.SYS_FUTEX, []uint64{w, futexWait | futexPrivateFlag, 1, tv.at(80)}, unix.ETIMEDOUT},
		{"futex unaligned", unix.SYS_FUTEX, []uint64{w + 1, futexWake, 1}, unix.EINVAL},
		{"futex wild", unix.SYS_FUTEX, []uint64{wild, futexWake, 1}, unix.EFAULT},
		{"futex wild timeout", unix.SYS_FUTEX, []uint64{w, futexWait, 1, wild}, unix.EFAULT},
		{"futex requeue", unix.SYS_FUTEX, []uint64{w, 3, 1, 0, 0}, unix.ENOSYS},
	})
	tv.main.pending.Or(sigbit(unix.SIGURG))
	if _, e := tv.call(t, unix.SYS_FUTEX, w, futexWait, 1, 0); e != unix.EINTR {
		t.Errorf("futex wait with a signal pending: %v", e)
	}
	tv.main.pending.Store(0)

	// A futex wait is woken by a wake from another thread.
	done := make(chan unix.Errno)
	go func() {
		_, e, _ := tv.sys(child, unix.SYS_FUTEX, w, futexWait, 1, 0)
		done <- e
	}()
	deadline := time.Now().Add(5 * time.Second)
	for woke := uint64(0); woke == 0 && time.Now().Before(deadline); {
		woke = tv.mustCall(t, unix.SYS_FUTEX, w, futexWake, 1)
		time.Sleep(time.Millisecond)
	}
	if e := <-done; e != 0 {
		t.Errorf("woken futex wait: %v", e)
	}

	// exit ends a thread; exit_group the VM.
	if _, _, ok := tv.sys(child, unix.SYS_EXIT, 0); ok || tv.thread(2) != nil || tv.exiting() {
		t.Errorf("exit of one thread: ok %v, thread %v, VM ended %v", ok, tv.thread(2), tv.exiting())
	}
	if _, _, ok := tv.sys(tv.main, unix.SYS_EXIT_GROUP, 0x107); ok || !tv.exiting() || tv.life.exitCode != 7 {
		t.Errorf("exit_group: ok %v, ended %v, code %d", ok, tv.exiting(), tv.life.exitCode)
	}
}

func TestTooManyThreads(t *testing.T) {
	tv := newTestVM(t, vmOptions{})
	for i := 1; i < maxThreads; i++ {
		tv.mustCall(t, unix.SYS_CLONE, cloneThreadFlags, 0, 0, 0, 0)
	}
	if _, e := tv.call(t, unix.SYS_CLONE, cloneThreadFlags, 0, 0, 0, 0); e != unix.EAGAIN {
		t.Fatalf("thread %d: %v, want EAGAIN", maxThreads+1, e)
	}
}

func TestProcessCalls(t *testing.T) {
	tv := newTestVM(t, vmOptions{})
	for nr, want := range map[uint64]uint64{unix.SYS_GETPID: 1, unix.SYS_GETPPID: 0, unix.SYS_GETUID: 0, unix.SYS_GETEGID: 0} {
		if got := tv.mustCall(t, nr); got != want {
			t.Errorf("%s = %d, want %d", syscallName(nr), got, want)
		}
	}
	for _, flags := range []uint64{0, unix.GRND_NONBLOCK, unix.GRND_RANDOM, unix.GRND_INSECURE} {
		tv.put(t, tv.at(0), make([]byte, 64))
		if n := tv.mustCall(t, unix.SYS_GETRANDOM, tv.at(0), 64, flags); n != 64 || bytes.Equal(tv.bytes(t, tv.at(0), 64), make([]byte, 64)) {
			t.Errorf("getrandom(flags %#x) = %d", flags, n)
		}
	}
	tv.mustCall(t, unix.SYS_UNAME, tv.at(0))
	u := tv.bytes(t, tv.at(0), 6*utsFieldSize)
	if string(bytes.TrimRight(u[:utsFieldSize], "\x00")) != "Linux" || string(bytes.TrimRight(u[utsFieldSize:2*utsFieldSize], "\x00")) != "test" {
		t.Errorf("uname %q", u)
	}
	if n := tv.mustCall(t, unix.SYS_GETCWD, tv.at(0), 64); n != 2 || string(tv.bytes(t, tv.at(0), 2)) != "/\x00" {
		t.Errorf("getcwd = %d", n)
	}
	// Limits: read the default, lower it, read it back.
	tv.mustCall(t, unix.SYS_PRLIMIT64, 0, unix.RLIMIT_NOFILE, 0, tv.at(0))
	if soft, hard := tv.word(t, tv.at(0)), tv.word(t, tv.at(8)); soft != maxFDs || hard != maxFDs {
		t.Errorf("RLIMIT_NOFILE %d/%d", soft, hard)
	}
	tv.put(t, tv.at(16), u64s(100, 200))
	tv.mustCall(t, unix.SYS_PRLIMIT64, 1, unix.RLIMIT_NOFILE, tv.at(16), 0)
	tv.mustCall(t, unix.SYS_GETRLIMIT, unix.RLIMIT_NOFILE, tv.at(0))
	if tv.word(t, tv.at(0)) != 100 || tv.word(t, tv.at(8)) != 200 {
		t.Errorf("RLIMIT_NOFILE not set")
	}
	tv.mustCall(t, unix.SYS_GETRLIMIT, unix.RLIMIT_STACK, tv.at(0))
	tv.mustCall(t, unix.SYS_GETRLIMIT, unix.RLIMIT_CPU, tv.at(0))
	tv.put(t, tv.at(32), []byte("/etc/shadow\x00"))
	tv.put(t, tv.at(48), u64s(5, 1))
	tv.put(t, tv.at(64), u64s(1, maxFDs+1))
	long := bytes.Repeat([]byte("a"), unix.PathMax+1)
	tv.put(t, tv.at(4096), long)
	runErrCases(t, tv, []errCase{
		{"getrandom wild", unix.SYS_GETRANDOM, []uint64{wild, 16, 0}, unix.EFAULT},
		{"getrandom unknown flag", unix.SYS_GETRANDOM, []uint64{tv.at(0), 16, 8}, unix.EINVAL},
		{"getrandom insecure and random", unix.SYS_GETRANDOM, []uint64{tv.at(0), 16, unix.GRND_INSECURE | unix.GRND_RANDOM}, unix.EINVAL},
		{"uname wild", unix.SYS_UNAME, []uint64{wild}, unix.EFAULT},
		// The monitor's own pages: neither written nor read for the guest.
		{"uname into the trampoline", unix.SYS_UNAME, []uint64{uint64(trampolineAddr)}, unix.EFAULT},
		{"uname into the signal table", unix.SYS_UNAME, []uint64{uint64(sigTableAddr)}, unix.EFAULT},
		{"getrandom into the page tables", unix.SYS_GETRANDOM, []uint64{0x1000, 16, 0}, unix.EFAULT},
		{"getcwd over the system area's end", unix.SYS_GETCWD, []uint64{uint64(guestmem.SystemBase+guestmem.SystemSize) - 8, 64}, unix.EFAULT},
		{"write from the vDSO", unix.SYS_WRITE, []uint64{1, uint64(vdsoAddr), 16}, unix.EFAULT},
		{"openat a path in the system area", unix.SYS_OPENAT, []uint64{atFDCWD, uint64(trampolineAddr), 0, 0}, unix.EFAULT},
		{"getcwd short", unix.SYS_GETCWD, []uint64{tv.at(0), 1}, unix.ERANGE},
		{"getcwd wild", unix.SYS_GETCWD, []uint64{wild, 64}, unix.EFAULT},
		{"prlimit64 other process", unix.SYS_PRLIMIT64, []uint64{2, 0, 0, tv.at(0)}, unix.ESRCH},
		{"prlimit64 bad resource", unix.SYS_PRLIMIT64, []uint64{0, 99, 0, tv.at(0)}, unix.EINVAL},
		{"prlimit64 soft above hard", unix.SYS_PRLIMIT64, []uint64{0, unix.RLIMIT_CPU, tv.at(48), 0}, unix.EINVAL},
		{"prlimit64 too many files", unix.SYS_PRLIMIT64, []uint64{0, unix.RLIMIT_NOFILE, tv.at(64), 0}, unix.EINVAL},
		{"prlimit64 wild new", unix.SYS_PRLIMIT64, []uint64{0, unix.RLIMIT_CPU, wild, 0}, unix.EFAULT},
		{"prlimit64 wild old", unix.SYS_PRLIMIT64, []uint64{0, unix.RLIMIT_CPU, 0, wild}, unix.EFAULT},
		{"openat", unix.SYS_OPENAT, []uint64{atFDCWD, tv.at(32), 0, 0}, unix.ENOENT},
		{"open", unix.SYS_OPEN, []uint64{tv.at(32), 0, 0}, unix.ENOENT},
		{"openat wild", unix.SYS_OPENAT, []uint64{atFDCWD, wild, 0, 0}, unix.EFAULT},
		{"openat too long", unix.SYS_OPENAT, []uint64{atFDCWD, tv.at(4096), 0, 0}, unix.ENAMETOOLONG},
		{"socket", unix.SYS_SOCKET, []uint64{unix.AF_INET, unix.SOCK_STREAM, 0}, unix.EAFNOSUPPORT},
		{"prctl", unix.SYS_PRCTL, []uint64{unix.PR_SET_NAME, tv.at(32)}, unix.EINVAL},
		{"execve", unix.SYS_EXECVE, []uint64{tv.at(32), 0, 0}, unix.ENOSYS},
		{"not in the table", 450, nil, unix.ENOSYS},
	})
}

// TestVerboseNotes checks that -v logs each unsupported call once, with
// the table's note.
func TestVerboseNotes(t *testing.T) {
	var log bytes.Buffer
	tv := newTestVM(t, vmOptions{log: &log})
	for i := 0; i < 3; i++ {
		tv.call(t, unix.SYS_SOCKET, unix.AF_INET, unix.SOCK_STREAM, 0)
		tv.call(t, 450)
		tv.call(t, unix.SYS_MMAP, 0, 4096, 3, unix.MAP_PRIVATE, 1, 0)
	}
	for _, want := range []string{
		"atoll: socket: not supported (the guest has no host sockets: attach a network to the host backend, or use a declared network device (atoll.Net)); answered EAFNOSUPPORT\n",
		"atoll: unsupported system call syscall_450; answered ENOSYS\n",
		"atoll: mmap with a descriptor that is not a file: not supported; answered ENODEV\n",
	} {
		if n := strings.Count(log.String(), want); n != 1 {
			t.Errorf("log has %q %d times, want once:\n%s", want, n, log.String())
		}
	}
}

func TestSignalCalls(t *testing.T) {
	tv := newTestVM(t, vmOptions{})
	act := tv.at(0)
	const handler, restorer = 0x401100, 0x401200
	tv.put(t, act, u64s(handler, saRestorer|saOnstack, restorer, sigbit(unix.SIGUSR2)|sigbit(unix.SIGKILL)))
	tv.mustCall(t, unix.SYS_RT_SIGACTION, uint64(unix.SIGUSR1), act, 0, sigsetSize)
	tv.mustCall(t, unix.SYS_RT_SIGACTION, uint64(unix.SIGUSR1), 0, tv.at(64), sigsetSize)
	if got := tv.bytes(t, tv.at(64), sigactionSize); !bytes.Equal(got, u64s(handler, saRestorer|saOnstack, restorer, sigbit(unix.SIGUSR2))) {
		t.Errorf("rt_sigaction read back % x (SIGKILL must leave the mask)", got)
	}
	// Same buffer for act and oldact.
	tv.mustCall(t, unix.SYS_RT_SIGACTION, uint64(unix.SIGUSR1), tv.at(64), tv.at(64), sigsetSize)

	// Masks.
	tv.put(t, tv.at(128), u64s(sigbit(unix.SIGUSR2)|sigbit(unix.SIGSTOP)))
	tv.mustCall(t, unix.SYS_RT_SIGPROCMASK, unix.SIG_BLOCK, tv.at(128), 0, sigsetSize)
	tv.mustCall(t, unix.SYS_RT_SIGPROCMASK, unix.SIG_UNBLOCK, 0, tv.at(136), sigsetSize)
	if got := tv.word(t, tv.at(136)); got != sigbit(unix.SIGUSR2) {
		t.Errorf("mask %#x, want SIGUSR2 only", got)
	}
	tv.put(t, tv.at(128), u64s(0))
	tv.mustCall(t, unix.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, tv.at(128), 0, sigsetSize)

	// An alternate stack, then a signal to oneself delivered on it.
	const altSP, altSize = 0x7000_0000, 64 << 10
	altBase := tv.mustCall(t, unix.SYS_MMAP, 0, altSize, 3, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS, ^uint64(0), 0)
	_ = altSP
	tv.put(t, tv.at(192), append(u64s(altBase), append([]byte{0, 0, 0, 0, 0, 0, 0, 0}, u64s(altSize)...)...))
	tv.mustCall(t, unix.SYS_SIGALTSTACK, tv.at(192), tv.at(224))
	if flags := tv.u32(t, tv.at(232)); flags != ssDisable {
		t.Errorf("old sigaltstack flags %d, want SS_DISABLE", flags)
	}
	r := tv.main.cpu.Regs()
	before := *r
	if _, _, ok := tv.sys(tv.main, unix.SYS_TGKILL, guestPID, 1, uint64(unix.SIGUSR1)); !ok {
		t.Fatal("tgkill to self stopped the thread")
	}
	if r.RIP != handler || r.RDI != uint64(unix.SIGUSR1) || r.RSP < altBase || r.RSP >= altBase+altSize {
		t.Fatalf("not in the handler on the alternate stack: %+v", r)
	}
	if got := tv.word(t, r.RSP); got != restorer {
		t.Errorf("return address %#x, want the restorer", got)
	}
	if signo := tv.u32(t, r.RSI); signo != uint32(unix.SIGUSR1) {
		t.Errorf("siginfo signo %d", signo)
	}
	if tv.main.sigmask() != sigbit(unix.SIGUSR1)|sigbit(unix.SIGUSR2) {
		t.Errorf("mask in the handler %#x", tv.main.sigmask())
	}
	// sigaltstack on the alternate stack reports SS_ONSTACK and refuses a change.
	tv.mustCall(t, unix.SYS_SIGALTSTACK, 0, tv.at(224))
	if flags := tv.u32(t, tv.at(232)); flags != ssOnstack {
		t.Errorf("sigaltstack flags on the stack %d", flags)
	}
	if _, e := tv.call(t, unix.SYS_SIGALTSTACK, tv.at(192), 0); e != unix.EPERM {
		t.Errorf("changing the stack in use: %v", e)
	}
	// The handler returns into the restorer: rt_sigreturn with the frame at RSP.
	r.RSP += 8
	if _, _, ok := tv.sys(tv.main, unix.SYS_RT_SIGRETURN); !ok {
		t.Fatal("rt_sigreturn stopped the thread")
	}
	if r.RIP != 0x401000 || r.RAX != 0 || r.RSP != before.RSP || tv.main.sigmask() != 0 {
		t.Errorf("after rt_sigreturn: %+v, mask %#x", r, tv.main.sigmask())
	}

	// Another thread's signal is queued and the thread kicked.
	tid := tv.mustCall(t, unix.SYS_CLONE, cloneThreadFlags, 0, 0, 0, 0)
	other := tv.thread(int(tid))
	tv.mustCall(t, unix.SYS_TKILL, tid, uint64(unix.SIGUSR1))
	if other.pending.Load() != sigbit(unix.SIGUSR1) || other.cpu.(*fakeCPU).kicks.Load() != 1 {
		t.Errorf("tkill: pending %#x, kicks %d", other.pending.Load(), other.cpu.(*fakeCPU).kicks.Load())
	}
	tv.mustCall(t, unix.SYS_TGKILL, guestPID, tid, 0) // existence check

	tv.put(t, tv.at(256), u64s(0, 0, 100)) // a stack too small
	runErrCases(t, tv, []errCase{
		{"rt_sigaction signal 0", unix.SYS_RT_SIGACTION, []uint64{0, act, 0, sigsetSize}, unix.EINVAL},
		{"rt_sigaction SIGKILL", unix.SYS_RT_SIGACTION, []uint64{uint64(unix.SIGKILL), act, 0, sigsetSize}, unix.EINVAL},
		{"rt_sigaction sigsetsize", unix.SYS_RT_SIGACTION, []uint64{uint64(unix.SIGUSR1), act, 0, 4}, unix.EINVAL},
		{"rt_sigaction wild act", unix.SYS_RT_SIGACTION, []uint64{uint64(unix.SIGUSR1), wild, 0, sigsetSize}, unix.EFAULT},
		{"rt_sigaction wild oldact", unix.SYS_RT_SIGACTION, []uint64{uint64(unix.SIGUSR1), 0, wild, sigsetSize}, unix.EFAULT},
		{"rt_sigprocmask how", unix.SYS_RT_SIGPROCMASK, []uint64{9, tv.at(128), 0, sigsetSize}, unix.EINVAL},
		{"rt_sigprocmask size", unix.SYS_RT_SIGPROCMASK, []uint64{0, 0, 0, 4}, unix.EINVAL},
		{"rt_sigprocmask wild", unix.SYS_RT_SIGPROCMASK, []uint64{0, wild, 0, sigsetSize}, unix.EFAULT},
		{"rt_sigprocmask wild old", unix.SYS_RT_SIGPROCMASK, []uint64{0, 0, wild, sigsetSize}, unix.EFAULT},
		{"sigaltstack wild", unix.SYS_SIGALTSTACK, []uint64{wild, 0}, unix.EFAULT},
		{"sigaltstack wild old", unix.SYS_SIGALTSTACK, []uint64{0, wild}, unix.EFAULT},
		{"sigaltstack small", unix.SYS_SIGALTSTACK, []uint64{tv.at(256), 0}, unix.ENOMEM},
		{"tgkill other process", unix.SYS_TGKILL, []uint64{2, 1, uint64(unix.SIGUSR1)}, unix.ESRCH},
		{"tkill no thread", unix.SYS_TKILL, []uint64{99, uint64(unix.SIGUSR1)}, unix.ESRCH},
		{"tkill bad signal", unix.SYS_TKILL, []uint64{1, 65}, unix.EINVAL},
		{"kill other process", unix.SYS_KILL, []uint64{2, uint64(unix.SIGUSR1)}, unix.ESRCH},
	})
	tv.put(t, tv.at(256), u64s(0, 3, altSize))
	if _, e := tv.call(t, unix.SYS_SIGALTSTACK, tv.at(256), 0); e != unix.EINVAL {
		t.Errorf("sigaltstack with bad flags: %v", e)
	}

	// A signal whose default action is to end the process ends the VM.
	if _, _, ok := tv.sys(tv.main, unix.SYS_KILL, 0, uint64(unix.SIGTERM)); ok || tv.life.exitCode != 128+int(unix.SIGTERM) {
		t.Errorf("SIGTERM with no handler: ok %v, exit %d", ok, tv.life.exitCode)
	}
}

// TestFaults drives the fault path with the events a vCPU would report.
func TestFaults(t *testing.T) {
	var log bytes.Buffer
	tv := newTestVM(t, vmOptions{log: &log})
	c := tv.main.cpu.(*fakeCPU)
	// A bad pointer in the trampoline's fast path is EFAULT to the caller.
	c.regs.RIP, c.regs.RCX = uint64(trampolineAddr)+4, 0x401000
	if !tv.main.fault() || c.regs.RAX != negErrno(unix.EFAULT) || c.regs.RIP != 0x401000 {
		t.Errorf("fault in the trampoline: %+v", c.regs)
	}
	// A page fault with a SIGSEGV handler becomes a signal frame.
	tv.put(t, tv.at(0), u64s(0x401100, saRestorer, 0x401200, 0))
	tv.mustCall(t, unix.SYS_RT_SIGACTION, uint64(unix.SIGSEGV), tv.at(0), 0, sigsetSize)
	c.regs.RIP, c.regs.RSP = 0x400500, uint64(tv.stackTop)-8192
	c.events.Exception.Nr, c.events.Exception.ErrorCode, c.sregs.CR2 = vecPF, 4, 0x10
	if !tv.main.fault() || c.regs.RIP != 0x401100 || c.regs.RDI != uint64(unix.SIGSEGV) {
		t.Fatalf("page fault: %+v", c.regs)
	}
	if addr := tv.word(t, c.regs.RSI+16); addr != 0x10 {
		t.Errorf("si_addr %#x", addr)
	}
	// Each vector maps to its signal; with SIGSEGV blocked (inside the
	// handler) a second fault ends the VM with a crash report.
	for vec, sig := range map[uint8]unix.Signal{vecGP: unix.SIGSEGV, vecDE: unix.SIGFPE, vecUD: unix.SIGILL, vecBP: unix.SIGTRAP, vecAC: unix.SIGBUS} {
		f := newTestVM(t, vmOptions{log: &log})
		fc := f.main.cpu.(*fakeCPU)
		fc.regs.RIP, fc.events.Exception.Nr = 0x400500, vec
		if f.main.fault() || f.life.exitCode != 128+int(sig) {
			t.Errorf("vector %d with no handler: exit %d, want %d", vec, f.life.exitCode, 128+int(sig))
		}
	}
	c.events.Exception.Nr = vecPF
	if tv.main.fault() || tv.life.exitCode != 128+int(unix.SIGSEGV) || !strings.Contains(log.String(), "guest crashed (thread 1): SIGSEGV") {
		t.Errorf("blocked SIGSEGV: exit %d, log:\n%s", tv.life.exitCode, log.String())
	}
	// An unknown vector, and a fault in monitor code, are VM faults.
	for _, setup := range []func(*fakeCPU){
		func(c *fakeCPU) { c.events.Exception.Nr = 2 },
		func(c *fakeCPU) { c.events.Exception.Nr, c.regs.RIP = vecGP, uint64(trampolineAddr)+0x800 },
	} {
		f := newTestVM(t, vmOptions{})
		setup(f.main.cpu.(*fakeCPU))
		if f.main.fault() || f.life.exitCode != ExitVMFault {
			t.Errorf("exit %d, want ExitVMFault", f.life.exitCode)
		}
	}
}

func TestPipeAndEventfd(t *testing.T) {
	tv := newTestVM(t, vmOptions{})
	tv.mustCall(t, unix.SYS_PIPE2, tv.at(0), unix.O_NONBLOCK)
	r, w := uint64(tv.u32(t, tv.at(0))), uint64(tv.u32(t, tv.at(4)))
	tv.put(t, tv.at(16), []byte("hello"))
	if n := tv.mustCall(t, unix.SYS_WRITE, w, tv.at(16), 5); n != 5 {
		t.Errorf("write = %d", n)
	}
	if n := tv.mustCall(t, unix.SYS_READ, r, tv.at(32), 64); n != 5 || string(tv.bytes(t, tv.at(32), 5)) != "hello" {
		t.Errorf("read = %d", n)
	}
	if _, e := tv.call(t, unix.SYS_READ, r, tv.at(32), 64); e != unix.EAGAIN {
		t.Errorf("empty non-blocking read: %v", e)
	}
	// A blocking read of an empty pipe gives up when a signal is pending.
	tv.mustCall(t, unix.SYS_FCNTL, r, unix.F_SETFL, 0)
	if fl := tv.mustCall(t, unix.SYS_FCNTL, r, unix.F_GETFL); fl&unix.O_NONBLOCK != 0 || fl&unix.O_ACCMODE != unix.O_RDONLY {
		t.Errorf("F_GETFL %#x", fl)
	}
	tv.main.pending.Or(sigbit(unix.SIGURG))
	if _, e := tv.call(t, unix.SYS_READ, r, tv.at(32), 64); e != unix.EINTR {
		t.Errorf("blocking read with a signal pending: %v", e)
	}
	tv.main.pending.Store(0)
	// readv and writev, several vectors.
	tv.put(t, tv.at(64), append(u64s(tv.at(16), 2), u64s(tv.at(18), 3)...))
	if n := tv.mustCall(t, unix.SYS_WRITEV, w, tv.at(64), 2); n != 5 {
		t.Errorf("writev = %d", n)
	}
	tv.put(t, tv.at(96), append(u64s(tv.at(128), 3), u64s(tv.at(160), 10)...))
	if n := tv.mustCall(t, unix.SYS_READV, r, tv.at(96), 2); n != 5 || string(tv.bytes(t, tv.at(128), 3))+string(tv.bytes(t, tv.at(160), 2)) != "hello" {
		t.Errorf("readv = %d", n)
	}
	// dup, dup2, dup3, F_DUPFD share the pipe.
	d := tv.mustCall(t, unix.SYS_DUP, w)
	if got := tv.mustCall(t, unix.SYS_DUP2, w, 100); got != 100 {
		t.Errorf("dup2 = %d", got)
	}
	if got := tv.mustCall(t, unix.SYS_DUP2, w, w); got != w {
		t.Errorf("dup2 onto itself = %d", got)
	}
	tv.mustCall(t, unix.SYS_DUP3, w, 101, unix.O_CLOEXEC)
	if got := tv.mustCall(t, unix.SYS_FCNTL, w, unix.F_DUPFD_CLOEXEC, 200); got != 200 {
		t.Errorf("F_DUPFD_CLOEXEC = %d", got)
	}
	tv.mustCall(t, unix.SYS_FCNTL, w, unix.F_SETFD, unix.FD_CLOEXEC)
	tv.mustCall(t, unix.SYS_FCNTL, w, unix.F_GETFD)
	for _, fd := range []uint64{d, 100, 101, 200} {
		tv.mustCall(t, unix.SYS_WRITE, fd, tv.at(16), 1)
		tv.mustCall(t, unix.SYS_CLOSE, fd)
	}
	if n := tv.mustCall(t, unix.SYS_READ, r, tv.at(32), 64); n != 4 {
		t.Errorf("read through dups = %d", n)
	}
	tv.mustCall(t, unix.SYS_FSTAT, r, tv.at(256))
	if mode := binary.LittleEndian.Uint32(tv.bytes(t, tv.at(256+24), 4)); mode&unix.S_IFMT != unix.S_IFIFO {
		t.Errorf("fstat mode %#o", mode)
	}
	// eventfd: a counter.
	efd := tv.mustCall(t, unix.SYS_EVENTFD2, 3, unix.EFD_NONBLOCK)
	tv.put(t, tv.at(0), u64s(4))
	tv.mustCall(t, unix.SYS_WRITE, efd, tv.at(0), 8)
	if n := tv.mustCall(t, unix.SYS_READ, efd, tv.at(8), 8); n != 8 || tv.word(t, tv.at(8)) != 7 {
		t.Errorf("eventfd read %d: %d", n, tv.word(t, tv.at(8)))
	}
	tv.mustCall(t, unix.SYS_PIPE, tv.at(0))
	tv.put(t, tv.at(512), u64s(wild, 1))
	runErrCases(t, tv, []errCase{
		{"read bad fd", unix.SYS_READ, []uint64{999, tv.at(0), 1}, unix.EBADF},
		{"read huge fd", unix.SYS_READ, []uint64{1 << 40, tv.at(0), 1}, unix.EBADF},
		{"read wild", unix.SYS_READ, []uint64{r, wild, 1}, unix.EFAULT},
		{"write wild", unix.SYS_WRITE, []uint64{w, wild, 1}, unix.EFAULT},
		{"readv too many", unix.SYS_READV, []uint64{r, tv.at(0), iovMax + 1}, unix.EINVAL},
		{"readv wild", unix.SYS_READV, []uint64{r, wild, 1}, unix.EFAULT},
		{"writev wild buffer", unix.SYS_WRITEV, []uint64{w, tv.at(512), 1}, unix.EFAULT},
		{"pread pipe", unix.SYS_PREAD64, []uint64{r, tv.at(0), 1, 0}, unix.ESPIPE},
		{"pwrite pipe", unix.SYS_PWRITE64, []uint64{w, tv.at(0), 1, 0}, unix.ESPIPE},
		{"lseek pipe", unix.SYS_LSEEK, []uint64{r, 0, 0}, unix.ESPIPE},
		{"fsync pipe", unix.SYS_FSYNC, []uint64{w}, unix.EINVAL},
		{"fstat wild", unix.SYS_FSTAT, []uint64{r, wild}, unix.EFAULT},
		{"ioctl", unix.SYS_IOCTL, []uint64{r, unix.TCGETS, tv.at(0)}, unix.ENOTTY},
		{"ioctl bad fd", unix.SYS_IOCTL, []uint64{999, unix.TCGETS, tv.at(0)}, unix.EBADF},
		{"close bad fd", unix.SYS_CLOSE, []uint64{999}, unix.EBADF},
		{"dup bad fd", unix.SYS_DUP, []uint64{999}, unix.EBADF},
		{"dup2 bad fd onto itself", unix.SYS_DUP2, []uint64{999, 999}, unix.EBADF},
		{"dup3 onto itself", unix.SYS_DUP3, []uint64{w, w, 0}, unix.EINVAL},
		{"dup3 bad flags", unix.SYS_DUP3, []uint64{w, 5, 1}, unix.EINVAL},
		{"dup3 huge", unix.SYS_DUP3, []uint64{w, 1 << 40, 0}, unix.EBADF},
		{"F_DUPFD huge", unix.SYS_FCNTL, []uint64{w, unix.F_DUPFD, maxFDs}, unix.EINVAL},
		{"fcntl other", unix.SYS_FCNTL, []uint64{w, unix.F_GETLK, tv.at(0)}, unix.EINVAL},
		{"fcntl bad fd", unix.SYS_FCNTL, []uint64{999, unix.F_GETFL}, unix.EBADF},
		{"pipe2 bad flags", unix.SYS_PIPE2, []uint64{tv.at(0), unix.O_DIRECT}, unix.EINVAL},
		{"pipe2 wild", unix.SYS_PIPE2, []uint64{wild, 0}, unix.EFAULT},
		{"eventfd2 bad flags", unix.SYS_EVENTFD2, []uint64{0, unix.O_DIRECT}, unix.EINVAL},
		{"recvmmsg on a pipe", unix.SYS_RECVMMSG, []uint64{r, tv.at(0), 1, 0, 0}, unix.ENOTSOCK},
	})
}

func TestConsole(t *testing.T) {
	out, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	tv := newTestVM(t, vmOptions{console: out})
	tv.put(t, tv.at(0), []byte("to the console\n"))
	tv.mustCall(t, unix.SYS_WRITE, 1, tv.at(0), 15)
	tv.mustCall(t, unix.SYS_WRITE, 2, tv.at(0), 3)
	if got, _ := os.ReadFile(out.Name()); string(got) != "to the console\nto " {
		t.Errorf("console got %q", got)
	}
	if n := tv.mustCall(t, unix.SYS_READ, 0, tv.at(0), 10); n != 0 {
		t.Errorf("read of fd 0 = %d, want end-of-file", n)
	}
	// The guest's O_NONBLOCK is its own: the operator's file keeps its flags.
	tv.mustCall(t, unix.SYS_FCNTL, 1, unix.F_SETFL, unix.O_NONBLOCK)
	if fl := tv.mustCall(t, unix.SYS_FCNTL, 1, unix.F_GETFL); fl&unix.O_NONBLOCK == 0 {
		t.Errorf("guest F_GETFL %#x lacks O_NONBLOCK", fl)
	}
	if fl, _ := unix.FcntlInt(out.Fd(), unix.F_GETFL, 0); fl&unix.O_NONBLOCK != 0 {
		t.Errorf("the guest changed the operator's file flags: %#x", fl)
	}
	tv.mustCall(t, unix.SYS_FSYNC, 1)
	runErrCases(t, tv, []errCase{
		{"read stdout", unix.SYS_READ, []uint64{1, tv.at(0), 1}, unix.EBADF},
		{"write stdin", unix.SYS_WRITE, []uint64{0, tv.at(0), 1}, unix.EBADF},
		{"fsync stdin", unix.SYS_FSYNC, []uint64{0}, unix.EINVAL},
	})
}

// TestConsoleStalled checks that a write to an operator's pipe nobody
// reads gives up when the thread must, instead of blocking it for ever.
func TestConsoleStalled(t *testing.T) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	w := os.NewFile(uintptr(p[1]), "stalled")
	defer w.Close()
	tv := newTestVM(t, vmOptions{console: w})
	big := tv.mustCall(t, unix.SYS_MMAP, 0, 1<<20, 3, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS, ^uint64(0), 0)
	done := make(chan uint64)
	go func() {
		n, _, _ := tv.sys(tv.main, unix.SYS_WRITE, 1, big, 1<<20)
		done <- n
	}()
	time.Sleep(100 * time.Millisecond)
	tv.exit(0) // the VM ends while the write waits
	select {
	case n := <-done:
		if n == 0 || n >= 1<<20 {
			t.Errorf("interrupted write reported %d bytes", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a write to a stalled console outlived the VM")
	}
}

// TestPipeUndo checks that undoing a half-made pipe leaves alone a
// descriptor another thread has put in its place.
func TestPipeUndo(t *testing.T) {
	var ft fdTable
	ft.init()
	r1, w1 := testPipe(t)
	r2, w2 := testPipe(t)
	defer unix.Close(r1)
	defer unix.Close(r2)
	first := newOpenFile(&pipeEnd{newHostStream(w1, true)})
	fd, _ := ft.installFile(first, 0)
	ft.installAt(newOpenFile(&pipeEnd{newHostStream(w2, true)}), fd) // dup2 over it
	ft.closeIf(fd, first)
	if !ft.valid(uint64(fd)) || readsEOF(t, r2) {
		t.Fatal("closeIf closed a descriptor it did not install")
	}
	second, _ := ft.acquire(uint64(fd))
	ft.closeIf(fd, second)
	second.release()
	if ft.valid(uint64(fd)) || !readsEOF(t, r2) {
		t.Fatal("closeIf left its own descriptor")
	}
}

func TestEpoll(t *testing.T) {
	tv := newTestVM(t, vmOptions{})
	ep := tv.mustCall(t, unix.SYS_EPOLL_CREATE1, unix.EPOLL_CLOEXEC)
	tv.mustCall(t, unix.SYS_EPOLL_CREATE, 1)
	tv.mustCall(t, unix.SYS_PIPE2, tv.at(0), unix.O_NONBLOCK)
	r, w := uint64(tv.u32(t, tv.at(0))), uint64(tv.u32(t, tv.at(4)))
	ev := tv.at(16)
	tv.put(t, ev, []byte{unix.EPOLLIN, 0, 0, 0, 42, 0, 0, 0, 0, 0, 0, 0})
	tv.mustCall(t, unix.SYS_EPOLL_CTL, ep, unix.EPOLL_CTL_ADD, r, ev)
	events := tv.at(64)
	if n := tv.mustCall(t, unix.SYS_EPOLL_WAIT, ep, events, 8, 0); n != 0 {
		t.Errorf("epoll_wait on an empty pipe = %d", n)
	}
	start := time.Now()
	if n := tv.mustCall(t, unix.SYS_EPOLL_PWAIT, ep, events, 8, 20, 0); n != 0 || time.Since(start) < 20*time.Millisecond {
		t.Errorf("epoll_pwait(20ms) = %d after %v", n, time.Since(start))
	}
	tv.put(t, tv.at(0), []byte("x"))
	tv.mustCall(t, unix.SYS_WRITE, w, tv.at(0), 1)
	if n := tv.mustCall(t, unix.SYS_EPOLL_WAIT, ep, events, 8, uint64(0xffffffff)); n != 1 || tv.bytes(t, events+4, 1)[0] != 42 {
		t.Errorf("epoll_wait = %d, data %d", n, tv.bytes(t, events+4, 1)[0])
	}
	tv.mustCall(t, unix.SYS_READ, r, tv.at(0), 1)
	// A blocking wait gives up when a signal is pending.
	tv.main.pending.Or(sigbit(unix.SIGURG))
	if _, e := tv.call(t, unix.SYS_EPOLL_WAIT, ep, events, 8, uint64(0xffffffff)); e != unix.EINTR {
		t.Errorf("epoll_wait with a signal pending: %v", e)
	}
	tv.main.pending.Store(0)
	tv.mustCall(t, unix.SYS_EPOLL_CTL, ep, unix.EPOLL_CTL_DEL, r, 0)
	runErrCases(t, tv, []errCase{
		{"epoll_create 0", unix.SYS_EPOLL_CREATE, []uint64{0}, unix.EINVAL},
		{"epoll_create1 bad flags", unix.SYS_EPOLL_CREATE1, []uint64{1}, unix.EINVAL},
		{"epoll_ctl not epoll", unix.SYS_EPOLL_CTL, []uint64{r, unix.EPOLL_CTL_ADD, w, ev}, unix.EINVAL},
		{"epoll_ctl bad epfd", unix.SYS_EPOLL_CTL, []uint64{999, unix.EPOLL_CTL_ADD, w, ev}, unix.EBADF},
		{"epoll_ctl bad fd", unix.SYS_EPOLL_CTL, []uint64{ep, unix.EPOLL_CTL_ADD, 999, ev}, unix.EBADF},
		{"epoll_ctl wild event", unix.SYS_EPOLL_CTL, []uint64{ep, unix.EPOLL_CTL_ADD, w, wild}, unix.EFAULT},
		{"epoll_ctl itself", unix.SYS_EPOLL_CTL, []uint64{ep, unix.EPOLL_CTL_ADD, ep, ev}, unix.EINVAL},
		{"epoll_wait wild", unix.SYS_EPOLL_WAIT, []uint64{ep, wild, 8, 0}, unix.EFAULT},
		{"epoll_wait no room", unix.SYS_EPOLL_WAIT, []uint64{ep, events, 0, 0}, unix.EINVAL},
		{"epoll_wait huge", unix.SYS_EPOLL_WAIT, []uint64{ep, events, 1 << 30, 0}, unix.EINVAL},
		{"epoll_wait not epoll", unix.SYS_EPOLL_WAIT, []uint64{r, events, 8, 0}, unix.EINVAL},
		{"epoll_pwait2", unix.SYS_EPOLL_PWAIT2, []uint64{ep, events, 8, 0, 0}, unix.ENOSYS},
	})
}

// blockFile makes a host file for a block device of size bytes.
func blockFile(t *testing.T, size int64) *os.File {
	f, err := os.Create(filepath.Join(t.TempDir(), "disk"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestBlockDevice(t *testing.T) {
	disk := blockFile(t, 8192)
	tv := newTestVM(t, vmOptions{devices: []Device{{Device: manifest.Device{Name: "data", Kind: abi.KindBlock,
		Spec: &manifest.BlockSpec{Size: 8192, SectorSize: 512}}, File: disk}}})
	if tv.devicesEnv != "ATOLL_DEVICES=block:data=3" {
		t.Errorf("devices %q", tv.devicesEnv)
	}
	const fd = 3
	tv.put(t, tv.at(0), bytes.Repeat([]byte("s"), 1024))
	if n := tv.mustCall(t, unix.SYS_PWRITE64, fd, tv.at(0), 1024, 512); n != 1024 {
		t.Errorf("pwrite64 = %d", n)
	}
	tv.mustCall(t, unix.SYS_FSYNC, fd)
	tv.mustCall(t, unix.SYS_FDATASYNC, fd)
	if got := make([]byte, 1024); func() bool { disk.ReadAt(got, 512); return !bytes.Equal(got, bytes.Repeat([]byte("s"), 1024)) }() {
		t.Error("the write did not reach the host file")
	}
	if n := tv.mustCall(t, unix.SYS_PREAD64, fd, tv.at(2048), 512, 1024); n != 512 || tv.bytes(t, tv.at(2048), 1)[0] != 's' {
		t.Errorf("pread64 = %d", n)
	}
	tv.mustCall(t, unix.SYS_FSTAT, fd, tv.at(4096))
	d := tv.mustCall(t, unix.SYS_DUP, fd)
	tv.mustCall(t, unix.SYS_FCNTL, fd, unix.F_SETFL, unix.O_NONBLOCK)
	tv.mustCall(t, unix.SYS_FCNTL, fd, unix.F_GETFL)
	ep := tv.mustCall(t, unix.SYS_EPOLL_CREATE1, 0)
	runErrCases(t, tv, []errCase{
		{"pread unaligned offset", unix.SYS_PREAD64, []uint64{fd, tv.at(0), 512, 1}, unix.EINVAL},
		{"pread unaligned length", unix.SYS_PREAD64, []uint64{fd, tv.at(0), 100, 0}, unix.EINVAL},
		{"pwrite past the end", unix.SYS_PWRITE64, []uint64{fd, tv.at(0), 1024, 7680}, unix.EINVAL},
		{"pwrite far past the end", unix.SYS_PWRITE64, []uint64{d, tv.at(0), 512, 1 << 62}, unix.EINVAL},
		{"pread wild", unix.SYS_PREAD64, []uint64{fd, wild, 512, 0}, unix.EFAULT},
		{"read", unix.SYS_READ, []uint64{fd, tv.at(0), 512}, unix.EINVAL},
		{"write", unix.SYS_WRITE, []uint64{d, tv.at(0), 512}, unix.EINVAL},
		{"readv", unix.SYS_READV, []uint64{fd, tv.at(0), 1}, unix.EINVAL},
		{"writev", unix.SYS_WRITEV, []uint64{fd, tv.at(0), 1}, unix.EINVAL},
		{"lseek", unix.SYS_LSEEK, []uint64{fd, 0, 0}, unix.EINVAL},
		{"sendmmsg", unix.SYS_SENDMMSG, []uint64{fd, tv.at(0), 1, 0}, unix.ENOTSOCK},
		{"epoll_ctl", unix.SYS_EPOLL_CTL, []uint64{ep, unix.EPOLL_CTL_ADD, fd, tv.at(0)}, unix.EPERM},
	})
}

// TestNetDevice moves frames through a network device's socket pair with
// recvmmsg and sendmmsg, as the guest's netstack does.
func TestNetDevice(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	guest, host := os.NewFile(uintptr(fds[0]), "guest"), os.NewFile(uintptr(fds[1]), "host")
	defer guest.Close()
	defer host.Close()
	tv := newTestVM(t, vmOptions{devices: []Device{{Device: manifest.Device{Name: "service", Kind: abi.KindNet}, File: guest}}})
	const fd = 3
	// Two frames from the host, received in one call.
	host.Write([]byte("frame one"))
	host.Write([]byte("frame two!"))
	bufs, vec := tv.at(0), tv.at(4096)
	for i := uint64(0); i < 2; i++ {
		tv.put(t, tv.at(8192+16*i), u64s(bufs+2048*i, 2048)) // iovec
		tv.put(t, vec+i*mmsghdrSize, make([]byte, mmsghdrSize))
		tv.put(t, vec+i*mmsghdrSize+msgIovOff, u64s(tv.at(8192+16*i), 1))
	}
	if n := tv.mustCall(t, unix.SYS_RECVMMSG, fd, vec, 2, unix.MSG_DONTWAIT, 0); n != 2 {
		t.Fatalf("recvmmsg = %d", n)
	}
	if l := tv.u32(t, vec+msgLenOff); l != 9 || string(tv.bytes(t, bufs, 9)) != "frame one" {
		t.Errorf("first frame: %d %q", l, tv.bytes(t, bufs, 9))
	}
	if l := tv.u32(t, vec+mmsghdrSize+msgLenOff); l != 10 {
		t.Errorf("second frame length %d", l)
	}
	if _, e := tv.call(t, unix.SYS_RECVMMSG, fd, vec, 2, unix.MSG_DONTWAIT, 0); e != unix.EAGAIN {
		t.Errorf("recvmmsg with nothing waiting: %v", e)
	}
	// And back, in one call.
	if n := tv.mustCall(t, unix.SYS_SENDMMSG, fd, vec, 2, 0); n != 2 {
		t.Fatalf("sendmmsg = %d", n)
	}
	got := make([]byte, 4096)
	if n, _ := host.Read(got); n != 2048 {
		t.Errorf("host got a frame of %d bytes", n)
	}
	if n := tv.mustCall(t, unix.SYS_SENDMMSG, fd, vec, 0, 0); n != 0 {
		t.Errorf("sendmmsg of nothing = %d", n)
	}
	// read and write move one frame each.
	tv.put(t, tv.at(0), []byte("single"))
	tv.mustCall(t, unix.SYS_WRITE, fd, tv.at(0), 6)
	if fl := tv.mustCall(t, unix.SYS_FCNTL, fd, unix.F_GETFL); fl&unix.O_NONBLOCK == 0 {
		t.Errorf("network device F_GETFL %#x: not non-blocking", fl)
	}
	tv.put(t, vec+msgNameOff, u64s(tv.at(0)))
	runErrCases(t, tv, []errCase{
		{"recvmmsg with a name", unix.SYS_RECVMMSG, []uint64{fd, vec, 1, 0, 0}, unix.EINVAL},
		{"recvmmsg with a timeout", unix.SYS_RECVMMSG, []uint64{fd, vec, 1, 0, tv.at(0)}, unix.EINVAL},
		{"recvmmsg wild vector", unix.SYS_RECVMMSG, []uint64{fd, wild, 1, 0, 0}, unix.EFAULT},
		{"sendmmsg bad fd", unix.SYS_SENDMMSG, []uint64{999, vec, 1, 0}, unix.EBADF},
	})
	tv.put(t, vec+msgNameOff, u64s(0))
	tv.put(t, vec+msgIovOff, u64s(wild, 1))
	if _, e := tv.call(t, unix.SYS_SENDMMSG, fd, vec, 1, 0); e != unix.EFAULT {
		t.Errorf("sendmmsg with a wild iovec: %v", e)
	}
}

// TestAttachErrors checks that a device of an unknown kind or geometry is
// refused, and that a refused attach leaks no host descriptor.
func TestAttachErrors(t *testing.T) {
	disk := blockFile(t, 4096)
	before := hostFDs(t)
	img := testImage()
	for _, d := range []Device{
		{Device: manifest.Device{Name: "x", Kind: "tape"}, File: disk},
		{Device: manifest.Device{Name: "x", Kind: abi.KindBlock}, File: disk},
		{Device: manifest.Device{Name: "x", Kind: abi.KindBlock, Spec: &manifest.BlockSpec{Size: 1000, SectorSize: 512}}, File: disk},
	} {
		if _, err := newVM(Config{MemBytes: 256 << 20, Devices: []Device{d}}, img, &fakeMachine{}, noSlots{}); err == nil {
			t.Errorf("attached %+v", d)
		}
	}
	if left := newFDs(t, before); len(left) > 0 {
		t.Errorf("refused attaches leaked host descriptors %v", left)
	}
}

// TestFDTableLimit fills the guest's descriptor table.
func TestFDTableLimit(t *testing.T) {
	tv := newTestVM(t, vmOptions{})
	var e unix.Errno
	n := 0
	for e == 0 {
		_, e = tv.call(t, unix.SYS_DUP, 1)
		n++
	}
	if e != unix.EMFILE || tv.fds.count() != maxFDs {
		t.Fatalf("after %d dups: %v, %d descriptors", n, e, tv.fds.count())
	}
}

// TestMinMemory checks the start-up floor against the layout.
func TestMinMemory(t *testing.T) {
	img := testImage()
	min := MinMemory(img)
	if min < 24<<20 || min > 128<<20 {
		t.Fatalf("MinMemory = %d MiB", min>>20)
	}
	if err := CheckMemory(img, min); err != nil {
		t.Errorf("the minimum itself refused: %v", err)
	}
	err := CheckMemory(img, 20<<20)
	if want := "memory limit 20M is below what this image needs to start: at least 28M (image, stack and monitor 4M, Go runtime start-up 24M)"; err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
}

func testImage() *elfimage.Image {
	return &elfimage.Image{Start: 0x400000, End: 0x600000, Entry: 0x400000}
}

// TestPathCalls drives the path system calls on the guest's file system
// (package vfs), the way a C library or Go's syscall package calls them.
func TestPathCalls(t *testing.T) {
	tv := newTestVM(t, vmOptions{})
	str := func(off uint64, s string) uint64 { tv.put(t, tv.at(off), append([]byte(s), 0)); return tv.at(off) }
	next := uint64(16 << 10) // each error case's path its own place
	fresh := func(s string) uint64 { next += 256; return str(next, s) }
	dir := str(0, "/tmp/d")
	tv.mustCall(t, unix.SYS_MKDIR, dir, 0o755)
	file := str(64, "/tmp/d/f")
	fd := tv.mustCall(t, unix.SYS_OPENAT, atFDCWD, file, unix.O_CREAT|unix.O_RDWR|unix.O_EXCL, 0o644)
	tv.put(t, tv.at(512), []byte("0123456789"))
	tv.mustCall(t, unix.SYS_WRITE, fd, tv.at(512), 10)
	if off := tv.mustCall(t, unix.SYS_LSEEK, fd, 2, unix.SEEK_SET); off != 2 {
		t.Errorf("lseek = %d", off)
	}
	if n := tv.mustCall(t, unix.SYS_READ, fd, tv.at(1024), 4); n != 4 || string(tv.bytes(t, tv.at(1024), 4)) != "2345" {
		t.Errorf("read after lseek: %d", n)
	}
	if n := tv.mustCall(t, unix.SYS_PREAD64, fd, tv.at(1024), 3, 7); n != 3 || string(tv.bytes(t, tv.at(1024), 3)) != "789" {
		t.Errorf("pread64: %d", n)
	}
	tv.mustCall(t, unix.SYS_FTRUNCATE, fd, 4)
	tv.mustCall(t, unix.SYS_FALLOCATE, fd, 0, 0, 100)
	tv.mustCall(t, unix.SYS_FSTAT, fd, tv.at(2048))
	if size := tv.word(t, tv.at(2048)+48); size != 100 {
		t.Errorf("size after fallocate %d", size)
	}
	tv.mustCall(t, unix.SYS_FSYNC, fd)
	tv.mustCall(t, unix.SYS_FLOCK, fd, unix.LOCK_EX)
	tv.mustCall(t, unix.SYS_FCHMOD, fd, 0o600)
	tv.mustCall(t, unix.SYS_UTIMENSAT, fd, 0, 0, 0)
	tv.mustCall(t, unix.SYS_CLOSE, fd)
	// stat family.
	tv.mustCall(t, unix.SYS_NEWFSTATAT, atFDCWD, file, tv.at(2048), 0)
	if mode := tv.u32(t, tv.at(2048)+24); mode != unix.S_IFREG|0o600 {
		t.Errorf("mode %o", mode)
	}
	tv.mustCall(t, unix.SYS_STATX, atFDCWD, file, 0, unix.STATX_BASIC_STATS, tv.at(2048))
	if size := tv.word(t, tv.at(2048)+40); size != 100 {
		t.Errorf("statx size %d", size)
	}
	// Directories: getdents64 through an O_DIRECTORY descriptor.
	dfd := tv.mustCall(t, unix.SYS_OPENAT, atFDCWD, dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	n := tv.mustCall(t, unix.SYS_GETDENTS64, dfd, tv.at(4096), 4096)
	if !bytes.Contains(tv.bytes(t, tv.at(4096), n), []byte("f\x00")) {
		t.Errorf("getdents64 lacks f: % x", tv.bytes(t, tv.at(4096), n))
	}
	if n := tv.mustCall(t, unix.SYS_GETDENTS64, dfd, tv.at(4096), 4096); n != 0 {
		t.Errorf("second getdents64 = %d, want the end", n)
	}
	// *at calls relative to a directory descriptor, links, renames.
	rel := str(128, "g")
	tv.mustCall(t, unix.SYS_SYMLINKAT, str(192, "f"), dfd, rel)
	if n := tv.mustCall(t, unix.SYS_READLINKAT, dfd, rel, tv.at(1024), 64); n != 1 || tv.bytes(t, tv.at(1024), 1)[0] != 'f' {
		t.Errorf("readlinkat = %d", n)
	}
	tv.mustCall(t, unix.SYS_LINKAT, dfd, str(256, "f"), dfd, str(320, "h"), 0)
	tv.mustCall(t, unix.SYS_RENAMEAT2, dfd, str(384, "h"), atFDCWD, str(448, "/tmp/moved"), 0)
	tv.mustCall(t, unix.SYS_UNLINKAT, atFDCWD, str(448, "/tmp/moved"), 0)
	tv.mustCall(t, unix.SYS_FACCESSAT2, atFDCWD, file, unix.R_OK|unix.W_OK, 0)
	tv.mustCall(t, unix.SYS_FCHMODAT, atFDCWD, file, 0o644)
	tv.mustCall(t, unix.SYS_FCHOWNAT, atFDCWD, file, 0, 0, 0)
	tv.mustCall(t, unix.SYS_STATFS, dir, tv.at(2048))
	if old := tv.mustCall(t, unix.SYS_UMASK, 0o077); old != 0o022 {
		t.Errorf("umask %o", old)
	}
	// The working directory.
	tv.mustCall(t, unix.SYS_CHDIR, dir)
	if n := tv.mustCall(t, unix.SYS_GETCWD, tv.at(1024), 64); n != 7 || string(tv.bytes(t, tv.at(1024), 7)) != "/tmp/d\x00" {
		t.Errorf("getcwd = %d %q", n, tv.bytes(t, tv.at(1024), n))
	}
	tv.mustCall(t, unix.SYS_STAT, str(512, "f"), tv.at(2048))
	tv.mustCall(t, unix.SYS_FCHDIR, tv.mustCall(t, unix.SYS_OPEN, str(576, "/"), unix.O_RDONLY, 0))
	tv.mustCall(t, unix.SYS_CLOSE, dfd)
	tv.mustCall(t, unix.SYS_UNLINK, file)
	tv.mustCall(t, unix.SYS_UNLINK, str(640, "/tmp/d/g"))
	tv.mustCall(t, unix.SYS_RMDIR, dir)
	// /proc/self/exe and the read-only root.
	if n := tv.mustCall(t, unix.SYS_READLINK, str(704, "/proc/self/exe"), tv.at(1024), 64); string(tv.bytes(t, tv.at(1024), n)) != "/proc/self/exe" {
		t.Errorf("readlink exe %q", tv.bytes(t, tv.at(1024), n))
	}
	runErrCases(t, tv, []errCase{
		{"open missing", unix.SYS_OPEN, []uint64{fresh("/nope"), unix.O_RDONLY, 0}, unix.ENOENT},
		{"stat missing", unix.SYS_STAT, []uint64{fresh("/nope"), tv.at(2048)}, unix.ENOENT},
		{"lstat missing", unix.SYS_LSTAT, []uint64{fresh("/nope"), tv.at(2048)}, unix.ENOENT},
		{"readlink missing", unix.SYS_READLINK, []uint64{fresh("/nope"), tv.at(1024), 64}, unix.ENOENT},
		{"mkdir under missing", unix.SYS_MKDIR, []uint64{fresh("/nope/x"), 0o755}, unix.ENOENT},
		{"create in the root", unix.SYS_OPEN, []uint64{fresh("/x"), unix.O_CREAT | unix.O_WRONLY, 0o644}, unix.EROFS},
		{"mkdir in the root", unix.SYS_MKDIR, []uint64{fresh("/x"), 0o755}, unix.EROFS},
		{"empty path", unix.SYS_OPEN, []uint64{fresh(""), unix.O_RDONLY, 0}, unix.ENOENT},
		{"wild path", unix.SYS_OPEN, []uint64{wild, unix.O_RDONLY, 0}, unix.EFAULT},
		{"O_TMPFILE", unix.SYS_OPEN, []uint64{fresh("/tmp"), unix.O_TMPFILE | unix.O_RDWR, 0o600}, unix.EOPNOTSUPP},
		{"relative to a pipe", unix.SYS_OPENAT, []uint64{0, fresh("x"), 0, 0}, unix.ENOTDIR},
		{"getdents64 of a file", unix.SYS_GETDENTS64, []uint64{1, tv.at(4096), 4096}, unix.ENOTDIR},
		{"rename flags", unix.SYS_RENAMEAT2, []uint64{atFDCWD, fresh("/tmp"), atFDCWD, fresh("/tmp"), 4}, unix.EINVAL},
		{"fallocate mode", unix.SYS_FALLOCATE, []uint64{0, 1, 0, 10}, unix.EOPNOTSUPP},
		{"ftruncate a pipe", unix.SYS_FTRUNCATE, []uint64{0, 10}, unix.EINVAL},
		{"chdir to a file", unix.SYS_CHDIR, []uint64{fresh("/etc/hosts")}, unix.ENOTDIR},
		{"getcwd short", unix.SYS_GETCWD, []uint64{tv.at(1024), 1}, unix.ERANGE},
		{"copy_file_range", unix.SYS_COPY_FILE_RANGE, []uint64{0, 0, 1, 0, 10, 0}, unix.ENOSYS},
	})
	// /tmp counts against the memory limit.
	fd = tv.mustCall(t, unix.SYS_OPEN, str(768, "/tmp/huge"), unix.O_CREAT|unix.O_RDWR, 0o644)
	if _, e := tv.call(t, unix.SYS_FTRUNCATE, fd, 1<<40); e != unix.ENOSPC {
		t.Errorf("a /tmp file past the memory limit: %v", e)
	}
}

// TestFlock locks a /tmp file through two open files: LOCK_NB answers
// EWOULDBLOCK, a blocking lock waits for the holder to let go, and a
// signal ends the wait with EINTR. An O_PATH descriptor locks, lists and
// changes nothing.
func TestFlock(t *testing.T) {
	tv := newTestVM(t, vmOptions{})
	tv.put(t, tv.at(0), []byte("/tmp/lock\x00"))
	fd1 := tv.mustCall(t, unix.SYS_OPEN, tv.at(0), unix.O_CREAT|unix.O_RDWR, 0o644)
	fd2 := tv.mustCall(t, unix.SYS_OPEN, tv.at(0), unix.O_RDONLY, 0)
	tv.mustCall(t, unix.SYS_FLOCK, fd1, unix.LOCK_EX)
	if _, e := tv.call(t, unix.SYS_FLOCK, fd2, unix.LOCK_SH|unix.LOCK_NB); e != unix.EWOULDBLOCK {
		t.Errorf("LOCK_SH|LOCK_NB against an exclusive lock: %v", e)
	}
	dup := tv.mustCall(t, unix.SYS_DUP, fd1)
	tv.mustCall(t, unix.SYS_FLOCK, dup, unix.LOCK_EX|unix.LOCK_NB) // the same open file: its own lock

	child := tv.thread(int(tv.mustCall(t, unix.SYS_CLONE, cloneThreadFlags, 0, 0, 0, 0)))
	done := make(chan unix.Errno)
	go func() {
		_, e, _ := tv.sys(child, unix.SYS_FLOCK, fd2, unix.LOCK_SH)
		done <- e
	}()
	select {
	case e := <-done:
		t.Fatalf("a blocking flock returned %v while the lock was held", e)
	case <-time.After(50 * time.Millisecond):
	}
	tv.mustCall(t, unix.SYS_CLOSE, dup)
	tv.mustCall(t, unix.SYS_CLOSE, fd1) // the last reference lets the lock go
	if e := <-done; e != 0 {
		t.Errorf("blocking flock after the holder closed: %v", e)
	}
	fd1 = tv.mustCall(t, unix.SYS_OPEN, tv.at(0), unix.O_RDWR, 0)
	go func() {
		_, e, _ := tv.sys(child, unix.SYS_FLOCK, fd1, unix.LOCK_EX)
		done <- e
	}()
	time.Sleep(20 * time.Millisecond)
	child.pending.Or(sigbit(unix.SIGURG))
	if e := <-done; e != unix.EINTR {
		t.Errorf("blocking flock with a signal: %v", e)
	}
	child.pending.Store(0)

	tv.put(t, tv.at(64), []byte("/tmp\x00"))
	pfd := tv.mustCall(t, unix.SYS_OPEN, tv.at(64), unix.O_PATH|unix.O_DIRECTORY, 0)
	runErrCases(t, tv, []errCase{
		{"flock O_PATH", unix.SYS_FLOCK, []uint64{pfd, unix.LOCK_EX}, unix.EBADF},
		{"getdents64 O_PATH", unix.SYS_GETDENTS64, []uint64{pfd, tv.at(4096), 4096}, unix.EBADF},
		{"fchmod O_PATH", unix.SYS_FCHMOD, []uint64{pfd, 0o700}, unix.EBADF},
		{"futimens O_PATH", unix.SYS_UTIMENSAT, []uint64{pfd, 0, 0, 0}, unix.EBADF},
		{"flock bad op", unix.SYS_FLOCK, []uint64{fd2, 0}, unix.EINVAL},
	})
}

// TestMmapFile maps a file of the guest's file system as a copy.
func TestMmapFile(t *testing.T) {
	tv := newTestVM(t, vmOptions{})
	tv.put(t, tv.at(0), []byte("/tmp/m\x00"))
	fd := tv.mustCall(t, unix.SYS_OPEN, tv.at(0), unix.O_CREAT|unix.O_RDWR, 0o644)
	data := bytes.Repeat([]byte("abcdefgh"), 1024) // two pages
	tv.put(t, tv.at(4096), data)
	tv.mustCall(t, unix.SYS_WRITE, fd, tv.at(4096), uint64(len(data)))
	a := tv.mustCall(t, unix.SYS_MMAP, 0, 3*4096, unix.PROT_READ, unix.MAP_PRIVATE, fd, 4096)
	if got := tv.bytes(t, a, 8); string(got) != "abcdefgh" {
		t.Errorf("mapped %q", got)
	}
	if got := tv.bytes(t, a+4096, 8); !bytes.Equal(got, make([]byte, 8)) {
		t.Errorf("past the end: %q", got)
	}
	tv.mustCall(t, unix.SYS_MMAP, 0, 4096, unix.PROT_READ, unix.MAP_SHARED, fd, 0)
	runErrCases(t, tv, []errCase{
		{"shared writable, in memory", unix.SYS_MMAP, []uint64{0, 4096, unix.PROT_READ | unix.PROT_WRITE, unix.MAP_SHARED, fd, 0}, unix.ENODEV},
		{"unaligned offset", unix.SYS_MMAP, []uint64{0, 4096, unix.PROT_READ, unix.MAP_PRIVATE, fd, 1}, unix.EINVAL},
	})
}

// TestMmapShared maps a volume's file shared and writable: the file's own
// pages, in an area of their own, which the monitor never reads or writes
// for the guest (the file may shrink under them), so a system call given a
// buffer there is EFAULT; msync and munmap work; a descriptor not open for
// writing is EACCES; nothing maps over it at a fixed address.
func TestMmapShared(t *testing.T) {
	tv, dir := newVolumeVM(t)
	if err := os.WriteFile(filepath.Join(dir, "shm"), bytes.Repeat([]byte("s"), 8192), 0o644); err != nil {
		t.Fatal(err)
	}
	tv.put(t, tv.at(0), []byte("/data/shm\x00"))
	fd := tv.mustCall(t, unix.SYS_OPEN, tv.at(0), unix.O_RDWR, 0)
	ro := tv.mustCall(t, unix.SYS_OPEN, tv.at(0), unix.O_RDONLY, 0)
	a := tv.mustCall(t, unix.SYS_MMAP, 0, 8192, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED, fd, 0)
	runErrCases(t, tv, []errCase{
		{"write from a shared mapping", unix.SYS_WRITE, []uint64{fd, a, 16}, unix.EFAULT},
		{"read into a shared mapping", unix.SYS_PREAD64, []uint64{fd, a + 4000, 200, 0}, unix.EFAULT},
		{"read-only descriptor", unix.SYS_MMAP, []uint64{0, 4096, unix.PROT_READ | unix.PROT_WRITE, unix.MAP_SHARED, ro, 0}, unix.EACCES},
		{"negative offset", unix.SYS_MMAP, []uint64{0, 4096, unix.PROT_READ | unix.PROT_WRITE, unix.MAP_SHARED, fd, 1 << 63}, unix.EINVAL},
		{"at a fixed address", unix.SYS_MMAP, []uint64{a, 4096, unix.PROT_READ | unix.PROT_WRITE, unix.MAP_SHARED | unix.MAP_FIXED, fd, 0}, unix.EINVAL},
		{"anything else over it", unix.SYS_MMAP, []uint64{a, 4096, unix.PROT_READ | unix.PROT_WRITE, unix.MAP_PRIVATE | unix.MAP_ANONYMOUS | unix.MAP_FIXED, ^uint64(0), 0}, unix.ENOMEM},
		{"msync flags", unix.SYS_MSYNC, []uint64{a, 8192, unix.MS_SYNC | unix.MS_ASYNC}, unix.EINVAL},
		{"msync unaligned", unix.SYS_MSYNC, []uint64{a + 1, 8192, unix.MS_SYNC}, unix.EINVAL},
	})
	tv.mustCall(t, unix.SYS_MSYNC, a, 8192, unix.MS_SYNC)
	tv.mustCall(t, unix.SYS_MUNMAP, a, 8192)
	if b := tv.mustCall(t, unix.SYS_MMAP, 0, 8192, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED, fd, 0); b != a {
		t.Errorf("mapped again at %#x, want the freed %#x", b, a)
	}
}

// TestMmapMirrors maps a file shared and read-only, a copy, on a volume
// and in /tmp: the guest's later writes to the file, by pwrite and by
// write through another descriptor, show in the mapping, as they would in
// Linux's (bbolt depends on it); a private mapping and memory the guest
// unmapped are left alone.
func TestMmapMirrors(t *testing.T) {
	tv, _ := newVolumeVM(t)
	for _, p := range []string{"/data/db\x00", "/tmp/db\x00"} {
		tv.put(t, tv.at(0), []byte(p))
		fd := tv.mustCall(t, unix.SYS_OPEN, tv.at(0), unix.O_CREAT|unix.O_RDWR, 0o644)
		other := tv.mustCall(t, unix.SYS_OPEN, tv.at(0), unix.O_WRONLY|unix.O_APPEND, 0)
		tv.put(t, tv.at(4096), bytes.Repeat([]byte("a"), 8192))
		tv.mustCall(t, unix.SYS_PWRITE64, fd, tv.at(4096), 8192, 0)
		shared := tv.mustCall(t, unix.SYS_MMAP, 0, 8192, unix.PROT_READ, unix.MAP_SHARED, fd, 0)
		private := tv.mustCall(t, unix.SYS_MMAP, 0, 8192, unix.PROT_READ, unix.MAP_PRIVATE, fd, 0)
		gone := tv.mustCall(t, unix.SYS_MMAP, 0, 4096, unix.PROT_READ, unix.MAP_SHARED, fd, 4096)
		tv.mustCall(t, unix.SYS_MUNMAP, gone, 1) // the whole page
		again := tv.mustCall(t, unix.SYS_MMAP, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS, ^uint64(0), 0)

		tv.put(t, tv.at(0), []byte("news"))
		tv.mustCall(t, unix.SYS_PWRITE64, fd, tv.at(0), 4, 4094) // across the page boundary
		tv.mustCall(t, unix.SYS_WRITE, other, tv.at(0), 3)       // appended: 8192..8194, past the mapping
		if got := tv.bytes(t, shared+4092, 7); string(got) != "aanewsa" {
			t.Errorf("%s: the shared mapping reads %q after pwrite, want %q", p, got, "aanewsa")
		}
		if got := tv.bytes(t, private+4094, 3); string(got) != "aaa" {
			t.Errorf("%s: the private mapping reads %q", p, got)
		}
		if got := tv.bytes(t, again, 4); !bytes.Equal(got, make([]byte, 4)) || again != gone {
			t.Errorf("%s: memory the guest unmapped and mapped again at %#x reads %q", p, again, got)
		}
	}
}
