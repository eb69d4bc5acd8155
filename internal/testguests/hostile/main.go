// Command hostile passes bad pointers and lengths to every emulated call
// that takes one. Under atoll each must fail with an error (EFAULT,
// EINVAL, ...) and the VM must carry on. It prints one line per call and
// "survived" at the end.
package main

import (
	"fmt"
	"syscall"
	"unsafe"
)

const (
	null = 0
	wild = 0x00007ff0_00000000 // canonical, never mapped by atoll
	huge = 1 << 62
)

type call struct {
	name string
	nr   uintptr
	args [6]uintptr
}

func main() {
	var buf [64]byte
	ok := uintptr(unsafe.Pointer(&buf[0]))
	var p [2]int32
	_, _, _ = syscall.RawSyscall(syscall.SYS_PIPE2, uintptr(unsafe.Pointer(&p[0])), 0, 0)
	ep, _, _ := syscall.RawSyscall(syscall.SYS_EPOLL_CREATE1, 0, 0, 0)
	calls := []call{
		{"write null", syscall.SYS_WRITE, [6]uintptr{1, null, 10}},
		{"write wild", syscall.SYS_WRITE, [6]uintptr{1, wild, 10}},
		{"write huge length", syscall.SYS_WRITE, [6]uintptr{1, ok, huge}},
		{"read wild", syscall.SYS_READ, [6]uintptr{uintptr(p[0]), wild, 10}},
		{"readv wild iov", syscall.SYS_READV, [6]uintptr{uintptr(p[0]), wild, 2}},
		{"writev huge count", syscall.SYS_WRITEV, [6]uintptr{1, ok, 1 << 40}},
		{"pread null", syscall.SYS_PREAD64, [6]uintptr{uintptr(p[0]), null, 10, 0}},
		{"clock_gettime wild", syscall.SYS_CLOCK_GETTIME, [6]uintptr{1, wild}},
		{"gettimeofday wild", syscall.SYS_GETTIMEOFDAY, [6]uintptr{wild, 0}},
		{"nanosleep null", syscall.SYS_NANOSLEEP, [6]uintptr{null, 0}},
		{"getrandom wild", 318, [6]uintptr{wild, 16, 0}},
		{"rt_sigaction wild act", syscall.SYS_RT_SIGACTION, [6]uintptr{10, wild, 0, 8}},
		{"rt_sigaction wild oact", syscall.SYS_RT_SIGACTION, [6]uintptr{10, 0, wild, 8}},
		{"rt_sigprocmask wild", syscall.SYS_RT_SIGPROCMASK, [6]uintptr{0, wild, 0, 8}},
		{"sigaltstack wild", syscall.SYS_SIGALTSTACK, [6]uintptr{wild, 0}},
		{"futex null", syscall.SYS_FUTEX, [6]uintptr{null, 0, 0, 0}},
		{"futex wild timeout", syscall.SYS_FUTEX, [6]uintptr{ok, 0, 0, wild}},
		{"epoll_ctl wild event", syscall.SYS_EPOLL_CTL, [6]uintptr{ep, 1, uintptr(p[0]), wild}},
		{"epoll_wait wild", syscall.SYS_EPOLL_WAIT, [6]uintptr{ep, wild, 8, 0}},
		{"epoll_wait huge", syscall.SYS_EPOLL_WAIT, [6]uintptr{ep, ok, 1 << 30, 0}},
		{"pipe2 wild", syscall.SYS_PIPE2, [6]uintptr{wild, 0}},
		{"uname null", syscall.SYS_UNAME, [6]uintptr{null}},
		{"getcwd wild", syscall.SYS_GETCWD, [6]uintptr{wild, 64}},
		{"sched_getaffinity wild", syscall.SYS_SCHED_GETAFFINITY, [6]uintptr{0, 8, wild}},
		{"prlimit64 wild", syscall.SYS_PRLIMIT64, [6]uintptr{0, 7, 0, wild}},
		{"openat wild path", syscall.SYS_OPENAT, [6]uintptr{0, wild, 0, 0}},
		{"fstat wild", syscall.SYS_FSTAT, [6]uintptr{1, wild}},
		{"arch_prctl get wild", syscall.SYS_ARCH_PRCTL, [6]uintptr{0x1003, wild}},
		{"mmap huge", syscall.SYS_MMAP, [6]uintptr{0, huge, 3, 0x22, ^uintptr(0), 0}},
		{"munmap wild", syscall.SYS_MUNMAP, [6]uintptr{wild, 4096}},
		{"madvise wild", syscall.SYS_MADVISE, [6]uintptr{wild, 4096, 4}},
		{"recvmmsg wild vector", syscall.SYS_RECVMMSG, [6]uintptr{uintptr(p[0]), wild, 4, 0, 0}},
		{"recvmmsg with timeout", syscall.SYS_RECVMMSG, [6]uintptr{uintptr(p[0]), ok, 1, 0, ok}},
		{"sendmmsg huge count", 307, [6]uintptr{1, ok, 1 << 40, 0}},
		{"sendmmsg null vector", 307, [6]uintptr{1, null, 2, 0}},
		{"close bad fd", syscall.SYS_CLOSE, [6]uintptr{9999}},
		{"dup3 huge fd", syscall.SYS_DUP3, [6]uintptr{1, 1 << 40, 0}},
	}
	for _, c := range calls {
		r, _, e := syscall.Syscall6(c.nr, c.args[0], c.args[1], c.args[2], c.args[3], c.args[4], c.args[5])
		if e == 0 {
			fmt.Printf("%s: UNEXPECTED success (%d)\n", c.name, r)
			continue
		}
		fmt.Printf("%s: %v\n", c.name, e)
	}
	fmt.Println("survived")
}
