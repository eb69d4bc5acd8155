// Command fastpath checks, with raw system calls, the calls Atoll's
// trampoline answers inside the guest — rt_sigprocmask, sigaltstack,
// gettid, sched_getaffinity, PROT_NONE reservations by mmap, madvise
// hints, and fcntl's F_GETFD and F_GETFL of descriptors 0–2 — and the
// requests it leaves to the
// monitor: ordinary use, bad arguments and bad pointers, and a queued
// signal that an unblocking rt_sigprocmask delivers at once. Its output
// is the same natively and under Atoll.
package main

import (
	"fmt"
	"math/bits"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"
	"unsafe"
)

const (
	sigBlock, sigUnblock, sigSetmask = 0, 1, 2
	ssDisable                        = 2
	sigusr1, sigusr2                 = 10, 12
	// unmapped is an address no mapping covers, natively or in Atoll:
	// high in the lower half, far above any heap.
	unmapped = 0x7ff0_0000_0000
	// low is in the first page, never mapped either.
	low = 0x10
)

func bit(sig int) uint64 { return 1 << (sig - 1) }

func sigprocmask(how int, set, old uintptr, size uintptr) syscall.Errno {
	_, _, e := syscall.RawSyscall6(syscall.SYS_RT_SIGPROCMASK, uintptr(how), set, old, size, 0, 0)
	return e
}

// mask returns the calling thread's signal mask.
func mask() uint64 {
	var m uint64
	if e := sigprocmask(0, 0, uintptr(unsafe.Pointer(&m)), 8); e != 0 {
		panic(e)
	}
	return m
}

func setmask(m uint64) {
	if e := sigprocmask(sigSetmask, uintptr(unsafe.Pointer(&m)), 0, 8); e != 0 {
		panic(e)
	}
}

type stackT struct {
	sp    uint64
	flags int32
	_     int32
	size  uint64
}

func sigaltstack(ss, old uintptr) syscall.Errno {
	_, _, e := syscall.RawSyscall(syscall.SYS_SIGALTSTACK, ss, old, 0)
	return e
}

func ptr[T any](p *T) uintptr { return uintptr(unsafe.Pointer(p)) }

func main() {
	// Everything below runs on one thread, whose mask and alternate
	// stack it changes and restores.
	runtime.LockOSThread()
	saved := mask()

	fmt.Println("== gettid")
	tid, _, _ := syscall.RawSyscall(syscall.SYS_GETTID, 0, 0, 0)
	again, _, _ := syscall.RawSyscall(syscall.SYS_GETTID, 0, 0, 0)
	other := make(chan uintptr)
	go func() {
		runtime.LockOSThread()
		t, _, _ := syscall.RawSyscall(syscall.SYS_GETTID, 0, 0, 0)
		other <- t
	}()
	fmt.Println("stable:", tid == again, "positive:", tid > 0, "another thread's differs:", <-other != tid)

	fmt.Println("== rt_sigprocmask")
	set := bit(sigusr1) | bit(9) | bit(19) // SIGKILL and SIGSTOP are dropped
	var old uint64
	fmt.Println("block:", sigprocmask(sigBlock, ptr(&set), ptr(&old), 8), "old had USR1:", old&bit(sigusr1) != 0)
	fmt.Println("blocked USR1 only of the three:", mask()&set == bit(sigusr1))
	one := bit(sigusr1)
	fmt.Println("unblock:", sigprocmask(sigUnblock, ptr(&one), 0, 8), "USR1 blocked:", mask()&one != 0)
	both := bit(sigusr1) | bit(sigusr2)
	fmt.Println("setmask:", sigprocmask(sigSetmask, ptr(&both), 0, 8), "mask:", mask() == both)
	inout := saved
	fmt.Println("same buffer:", sigprocmask(sigSetmask, ptr(&inout), ptr(&inout), 8), inout == both, mask() == saved)
	fmt.Println("how 3:", sigprocmask(3, ptr(&set), 0, 8))
	fmt.Println("how 3, no set:", sigprocmask(3, 0, ptr(&old), 8))
	fmt.Println("sigsetsize 4:", sigprocmask(sigBlock, ptr(&set), 0, 4))
	fmt.Println("bad set:", sigprocmask(sigBlock, unmapped, 0, 8), sigprocmask(sigBlock, low, 0, 8), "unchanged:", mask() == saved)
	fmt.Println("bad oldset:", sigprocmask(sigBlock, ptr(&one), unmapped, 8), "changed first:", mask() == saved|one)
	fmt.Println("low oldset:", sigprocmask(sigSetmask, ptr(&saved), low, 8), "restored:", mask() == saved)

	fmt.Println("== a queued signal, unblocked")
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGUSR2)
	usr2 := bit(sigusr2)
	sigprocmask(sigBlock, ptr(&usr2), 0, 8)
	syscall.RawSyscall(syscall.SYS_TGKILL, uintptr(syscall.Getpid()), tid, sigusr2)
	select {
	case <-c:
		fmt.Println("delivered while blocked")
	case <-time.After(50 * time.Millisecond):
		fmt.Println("held while blocked")
	}
	sigprocmask(sigUnblock, ptr(&usr2), 0, 8)
	select {
	case <-c:
		fmt.Println("delivered once unblocked")
	case <-time.After(5 * time.Second):
		fmt.Println("lost")
	}

	fmt.Println("== sigaltstack")
	// No signal may arrive while the stack is not Go's own.
	all := ^uint64(0)
	sigprocmask(sigSetmask, ptr(&all), 0, 8)
	var goStack stackT
	fmt.Println("read:", sigaltstack(0, ptr(&goStack)), "enabled:", goStack.flags == 0, "on it:", goStack.flags&1 != 0)
	buf := make([]byte, 16<<10)
	mine := stackT{sp: uint64(uintptr(unsafe.Pointer(&buf[0]))), size: uint64(len(buf))}
	var back stackT
	fmt.Println("set:", sigaltstack(ptr(&mine), 0), "read back:", sigaltstack(0, ptr(&back)), back == mine)
	small := stackT{sp: mine.sp, size: 1024}
	fmt.Println("too small:", sigaltstack(ptr(&small), 0))
	bad := stackT{sp: mine.sp, size: mine.size, flags: 5}
	fmt.Println("bad flags:", sigaltstack(ptr(&bad), 0))
	off := stackT{sp: mine.sp, size: mine.size, flags: ssDisable}
	fmt.Println("disable:", sigaltstack(ptr(&off), 0), "read back:", sigaltstack(0, ptr(&back)), back == stackT{flags: ssDisable})
	fmt.Println("both:", sigaltstack(ptr(&mine), ptr(&back)), back == stackT{flags: ssDisable})
	fmt.Println("bad pointers:", sigaltstack(unmapped, 0), sigaltstack(0, unmapped), sigaltstack(low, 0), sigaltstack(0, low))
	fmt.Println("unchanged:", sigaltstack(0, ptr(&back)), back == mine)
	fmt.Println("restore:", sigaltstack(ptr(&goStack), 0))
	setmask(saved)
	runtime.KeepAlive(buf)

	fmt.Println("== sched_getaffinity")
	var cpus [4]uint64
	n, _, e := syscall.RawSyscall(syscall.SYS_SCHED_GETAFFINITY, 0, 32, ptr(&cpus))
	count := 0
	for _, w := range cpus {
		count += bits.OnesCount64(w)
	}
	fmt.Println("self:", e, "whole words:", n >= 8 && n%8 == 0, "CPUs as NumCPU:", count == runtime.NumCPU())
	for _, c := range []struct {
		name           string
		pid, len, addr uintptr
	}{
		{"length 4", 0, 4, ptr(&cpus)},
		{"length 12", 0, 12, ptr(&cpus)},
		{"bad pointer", 0, 8, unmapped},
		{"low pointer", 0, 8, low},
		{"no such thread", 0x3fffffff, 8, ptr(&cpus)},
	} {
		_, _, e := syscall.RawSyscall(syscall.SYS_SCHED_GETAFFINITY, c.pid, c.len, c.addr)
		fmt.Printf("%s: %v\n", c.name, e)
	}

	fmt.Println("== mmap reservations, madvise")
	const anon = syscall.MAP_PRIVATE | syscall.MAP_ANON
	mmap := func(addr, n, prot, flags uintptr) (uintptr, syscall.Errno) {
		a, _, e := syscall.RawSyscall6(syscall.SYS_MMAP, addr, n, prot, flags, ^uintptr(0), 0)
		return a, e
	}
	a, e1 := mmap(0, 3<<20+5, syscall.PROT_NONE, anon)
	b, e2 := mmap(0, 1<<20, syscall.PROT_NONE, anon)
	fmt.Println("reserve:", e1, e2, "aligned:", a%4096 == 0 && b%4096 == 0, "disjoint:", b >= a+3<<20+4096 || a >= b+1<<20)
	_, _, e = syscall.RawSyscall(syscall.SYS_MPROTECT, a, 3<<20+4096, syscall.PROT_READ|syscall.PROT_WRITE)
	p := unsafe.Slice(*(**byte)(unsafe.Pointer(&a)), 3<<20+4096) // a is memory the runtime does not manage
	p[0], p[len(p)-1] = 1, 2
	fmt.Println("mprotect and use:", e, p[0]+p[len(p)-1] == 3)
	_, _, e = syscall.RawSyscall(syscall.SYS_MADVISE, a, 4096, 15) // MADV_NOHUGEPAGE
	fmt.Println("madvise hint:", e, "kept:", p[0] == 1)
	_, _, e = syscall.RawSyscall(syscall.SYS_MADVISE, a, 4096, syscall.MADV_DONTNEED)
	fmt.Println("madvise dontneed:", e, "zeroed:", p[0] == 0)
	_, e = mmap(0, 0, syscall.PROT_NONE, anon)
	fmt.Println("length 0:", e)
	_, e = mmap(0, 1<<47, syscall.PROT_NONE, anon)
	fmt.Println("too long:", e)
	_, _, e1 = syscall.RawSyscall(syscall.SYS_MUNMAP, a, 3<<20+4096, 0)
	_, _, e2 = syscall.RawSyscall(syscall.SYS_MUNMAP, b, 1<<20, 0)
	fmt.Println("munmap:", e1, e2)

	fmt.Println("== fcntl of descriptors 0-2")
	fcntl := func(fd, cmd, arg uintptr) (uintptr, syscall.Errno) {
		v, _, e := syscall.RawSyscall(syscall.SYS_FCNTL, fd, cmd, arg)
		return v, e
	}
	getfl := func(fd uintptr) string {
		v, e := fcntl(fd, syscall.F_GETFL, 0)
		if e != 0 {
			return e.Error()
		}
		return fmt.Sprintf("writable %v nonblock %v", v&syscall.O_ACCMODE != syscall.O_RDONLY, v&syscall.O_NONBLOCK != 0)
	}
	_, e = fcntl(1, syscall.F_GETFD, 0)
	fmt.Println("F_GETFD 1:", e, "F_GETFL 1:", getfl(1))
	dup, _, _ := syscall.RawSyscall(syscall.SYS_DUP, 1, 0, 0)
	fl, _ := fcntl(dup, syscall.F_GETFL, 0)
	fcntl(dup, syscall.F_SETFL, fl|syscall.O_NONBLOCK)
	fmt.Println("O_NONBLOCK set on a dup, F_GETFL 1:", getfl(1))
	fcntl(dup, syscall.F_SETFL, fl)
	fmt.Println("and cleared:", getfl(1))
	syscall.RawSyscall(syscall.SYS_CLOSE, dup, 0, 0)
	syscall.RawSyscall(syscall.SYS_CLOSE, 0, 0, 0)
	_, e = fcntl(0, syscall.F_GETFD, 0)
	fmt.Println("0 closed: F_GETFD", e, "F_GETFL", getfl(0))
	var p2 [2]int32
	syscall.RawSyscall(syscall.SYS_PIPE2, uintptr(unsafe.Pointer(&p2)), 0, 0)
	_, e = fcntl(0, syscall.F_GETFD, 0)
	fmt.Println("a pipe at 0:", p2[0] == 0, "F_GETFD", e, "F_GETFL", getfl(0))
	_, e = fcntl(1000, syscall.F_GETFD, 0)
	fmt.Println("F_GETFD of a closed descriptor:", e)
}
