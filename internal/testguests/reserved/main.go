// Command reserved reserves 1 GiB of address space (PROT_NONE), maps one
// page readable and writable in each 2 MiB of it and uses them all — under
// atoll, one KVM memory slot each — then touches the reservation between
// two of those pages: a SIGSEGV, natively and under atoll (docs/abi.md:
// reserved space that was never mapped is no guest memory).
package main

import (
	"fmt"
	"os"
	"syscall"
	"unsafe"
)

func main() {
	const size, step = 1 << 30, 2 << 20
	b, err := syscall.Mmap(-1, 0, size, syscall.PROT_NONE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		fmt.Println("mmap:", err)
		os.Exit(1)
	}
	sum := 0
	for off := 0; off < size; off += 2 * step { // every other granule
		page := uintptr(unsafe.Pointer(&b[off]))
		if _, _, e := syscall.Syscall(syscall.SYS_MPROTECT, page, 4096, syscall.PROT_READ|syscall.PROT_WRITE); e != 0 {
			fmt.Println("mprotect:", e)
			os.Exit(1)
		}
		b[off] = 1
		sum += int(b[off])
	}
	fmt.Println("mapped pages:", sum)
	fmt.Println("reserved byte:", b[3*step])
}
