// Command sigaction checks rt_sigaction's semantics with raw system calls,
// the fast path and the trapping path alike: set and read back an action,
// act and oldact sharing a buffer, and the calls that must fail.
package main

import (
	"fmt"
	"syscall"
	"unsafe"
)

type sigaction struct{ handler, flags, restorer, mask uint64 }

func rtSigaction(sig uintptr, act, old *sigaction, size uintptr) syscall.Errno {
	_, _, e := syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, sig, uintptr(unsafe.Pointer(act)), uintptr(unsafe.Pointer(old)), size, 0, 0)
	return e
}

func main() {
	const sigusr2 = 12
	var saved sigaction
	fmt.Println("read:", rtSigaction(sigusr2, nil, &saved, 8))
	set := sigaction{handler: 1 /* SIG_IGN */, flags: 0x10000000 /* SA_RESTART */, mask: 1 << 3}
	var old sigaction
	fmt.Println("set:", rtSigaction(sigusr2, &set, &old, 8), old == saved)
	var back sigaction
	rtSigaction(sigusr2, nil, &back, 8)
	fmt.Println("read back:", back == set)
	same := saved
	fmt.Println("same buffer:", rtSigaction(sigusr2, &same, &same, 8), same == set)
	rtSigaction(sigusr2, nil, &back, 8)
	fmt.Println("restored:", back == saved)
	fmt.Println("signal 0:", rtSigaction(0, nil, &back, 8))
	fmt.Println("signal 65:", rtSigaction(65, nil, &back, 8))
	fmt.Println("SIGKILL:", rtSigaction(9, &set, nil, 8))
	fmt.Println("sigsetsize 4:", rtSigaction(sigusr2, nil, &back, 4))
}
