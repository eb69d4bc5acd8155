// Command chaos makes thousands of system calls with random numbers and
// arguments drawn from values that tend to break parsers: zero, -1, huge
// lengths, unmapped and half-mapped addresses, addresses of its own stack.
// It may well corrupt itself and crash; the point is that the monitor
// answers every call and reports the end cleanly. Calls that would end the
// run early or block indefinitely are left out.
package main

import (
	"fmt"
	"math/rand"
	"os"
	"strconv"
	"syscall"
	"unsafe"
)

var skip = map[uintptr]bool{
	syscall.SYS_EXIT: true, syscall.SYS_EXIT_GROUP: true, syscall.SYS_RT_SIGRETURN: true,
	syscall.SYS_CLONE: true, syscall.SYS_NANOSLEEP: true, syscall.SYS_FUTEX: true,
	syscall.SYS_EPOLL_WAIT: true, syscall.SYS_EPOLL_PWAIT: true, syscall.SYS_READ: true,
	syscall.SYS_READV: true, syscall.SYS_PREAD64: true, syscall.SYS_KILL: true,
	syscall.SYS_TGKILL: true, syscall.SYS_TKILL: true, syscall.SYS_MUNMAP: true,
	syscall.SYS_MMAP: true, syscall.SYS_MADVISE: true, syscall.SYS_MPROTECT: true,
	syscall.SYS_RT_SIGACTION: true, syscall.SYS_RT_SIGPROCMASK: true, syscall.SYS_SIGALTSTACK: true,
	syscall.SYS_ARCH_PRCTL: true, syscall.SYS_DUP2: true, syscall.SYS_DUP3: true, syscall.SYS_CLOSE: true,
	syscall.SYS_PAUSE: true, syscall.SYS_WAIT4: true, syscall.SYS_SELECT: true, syscall.SYS_POLL: true,
	syscall.SYS_PPOLL: true, syscall.SYS_PSELECT6: true, syscall.SYS_RT_SIGSUSPEND: true,
	syscall.SYS_RT_SIGTIMEDWAIT: true, syscall.SYS_CLOCK_NANOSLEEP: true, 441: true, // epoll_pwait2
}

func main() {
	seed, _ := strconv.ParseInt(os.Args[1], 10, 64)
	rng := rand.New(rand.NewSource(seed))
	var stack [256]byte
	own := uintptr(unsafe.Pointer(&stack[0]))
	values := []uintptr{0, 1, 2, 8, 4096, ^uintptr(0), 1 << 31, 1 << 47, 1 << 62,
		0x10, 0x1ff000, 0x200000, 0x3ff000, 0x00007ff000000000, own, own + 200}
	arg := func() uintptr {
		if rng.Intn(4) == 0 {
			return uintptr(rng.Uint64())
		}
		return values[rng.Intn(len(values))]
	}
	calls := 0
	for calls < 3000 {
		nr := uintptr(rng.Intn(460))
		if skip[nr] {
			continue
		}
		syscall.RawSyscall6(nr, arg(), arg(), arg(), arg(), arg(), arg())
		calls++
	}
	fmt.Println("made", calls, "calls")
}
