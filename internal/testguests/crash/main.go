// Command crash dies in a way Go cannot report itself: it resets the
// SIGSEGV handler to the default behind the runtime's back and then
// dereferences a bad pointer. Under atoll the monitor must print the cause,
// registers and a symbolized backtrace.
package main

import (
	"fmt"
	"syscall"
	"unsafe"
)

// badAddr is a pointer into the unmapped first pages, kept as an integer
// so that the compiler cannot see it is bad.
var badAddr uintptr = 0x10

//go:noinline
func poke(p *int) { *p = 42 }

func main() {
	var dfl [4]uint64 // struct sigaction with sa_handler = SIG_DFL
	if _, _, e := syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, uintptr(syscall.SIGSEGV),
		uintptr(unsafe.Pointer(&dfl)), 0, 8, 0, 0); e != 0 {
		fmt.Println("rt_sigaction:", e)
		return
	}
	fmt.Println("crashing")
	poke(*(**int)(unsafe.Pointer(&badAddr)))
}
