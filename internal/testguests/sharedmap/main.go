// Command sharedmap maps a file shared and writable, as SQLite maps its
// write-ahead log's index, for the tests of shared file mappings:
//
//	sharedmap FILE         writes "from the guest" at the start of FILE's
//	                       mapping, msyncs it, and prints the bytes the
//	                       host put at offset 4096
//	sharedmap FILE shrink  truncates FILE to nothing, then reads its
//	                       mapping: a fault, as natively (SIGBUS)
//	sharedmap FILE mirror  maps FILE shared and read-only, writes it with
//	                       pwrite, and prints what the mapping reads
package main

import (
	"fmt"
	"os"
	"syscall"
	"unsafe"
)

func main() {
	f, err := os.OpenFile(os.Args[1], os.O_RDWR, 0)
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	if len(os.Args) > 2 && os.Args[2] == "mirror" {
		m, err := syscall.Mmap(int(f.Fd()), 0, 8192, syscall.PROT_READ, syscall.MAP_SHARED)
		if err != nil {
			fmt.Println("mmap:", err)
			os.Exit(1)
		}
		if _, err := f.WriteAt([]byte("written later"), 4096); err != nil {
			fmt.Println("pwrite:", err)
			os.Exit(1)
		}
		fmt.Printf("the mapping reads %q\n", m[4096:4096+13])
		return
	}
	b, err := syscall.Mmap(int(f.Fd()), 0, 8192, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		fmt.Println("mmap:", err)
		os.Exit(1)
	}
	if len(os.Args) > 2 && os.Args[2] == "shrink" {
		if err := f.Truncate(0); err != nil {
			fmt.Println("truncate:", err)
			os.Exit(1)
		}
		fmt.Println("truncated")
		fmt.Println("read", b[4096])
		return
	}
	copy(b, "from the guest")
	_, _, e := syscall.Syscall(syscall.SYS_MSYNC, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), syscall.MS_SYNC)
	if e != 0 {
		fmt.Println("msync:", e)
		os.Exit(1)
	}
	fmt.Printf("host wrote %q\n", b[4096:4096+13])
	if err := syscall.Munmap(b); err != nil {
		fmt.Println("munmap:", err)
		os.Exit(1)
	}
}
