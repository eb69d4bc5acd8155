// Command recordlock takes fcntl record locks on a file, for the tests of
// locks between unikernels sharing a volume and the host's processes:
//
//	recordlock hold FILE   write-locks FILE whole (F_SETLK), says "locked",
//	                       and holds it until its standard input ends
//	recordlock try FILE    tries to (F_SETLK) and says what F_GETLK sees
//	recordlock wait FILE   waits for the lock (F_SETLKW), says "locked"
package main

import (
	"fmt"
	"io"
	"os"
	"syscall"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: recordlock hold|try|wait FILE")
		os.Exit(2)
	}
	f, err := os.OpenFile(os.Args[2], os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	whole := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: io.SeekStart}
	switch os.Args[1] {
	case "hold":
		lk := whole
		if err := syscall.FcntlFlock(f.Fd(), syscall.F_SETLK, &lk); err != nil {
			fmt.Println("F_SETLK:", err)
			os.Exit(1)
		}
		fmt.Println("locked")
		io.Copy(io.Discard, os.Stdin)
	case "try":
		lk := whole
		fmt.Println("F_SETLK:", syscall.FcntlFlock(f.Fd(), syscall.F_SETLK, &lk))
		lk = whole
		if err := syscall.FcntlFlock(f.Fd(), syscall.F_GETLK, &lk); err != nil {
			fmt.Println("F_GETLK:", err)
			os.Exit(1)
		}
		fmt.Printf("F_GETLK: write lock %v, pid %d\n", lk.Type == syscall.F_WRLCK, lk.Pid)
	case "wait":
		lk := whole
		if err := syscall.FcntlFlock(f.Fd(), syscall.F_SETLKW, &lk); err != nil {
			fmt.Println("F_SETLKW:", err)
			os.Exit(1)
		}
		fmt.Println("locked")
	}
}
