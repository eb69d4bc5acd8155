// Command reserved reserves address space (PROT_NONE), maps a page of it
// readable and writable and uses it, then touches the reservation far from
// that page: natively a SIGSEGV, under atoll the end of the VM (docs/abi.md:
// reserved space that was never mapped is no guest memory).
package main

import (
	"fmt"
	"os"
	"syscall"
	"unsafe"
)

func main() {
	const size = 64 << 20
	b, err := syscall.Mmap(-1, 0, size, syscall.PROT_NONE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		fmt.Println("mmap:", err)
		os.Exit(1)
	}
	page := uintptr(unsafe.Pointer(&b[0]))
	if _, _, e := syscall.Syscall(syscall.SYS_MPROTECT, page, 4096, syscall.PROT_READ|syscall.PROT_WRITE); e != 0 {
		fmt.Println("mprotect:", e)
		os.Exit(1)
	}
	b[0] = 42
	fmt.Println("mapped page:", b[0])
	fmt.Println("reserved byte:", b[size/2])
}
