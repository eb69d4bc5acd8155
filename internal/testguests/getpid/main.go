// Command getpid makes N getpid system calls (N is its argument) and
// prints the average time per call in nanoseconds, measured in the guest.
package main

import (
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"
)

func main() {
	n, err := strconv.Atoi(os.Args[1])
	if err != nil || n < 1 {
		fmt.Fprintln(os.Stderr, "usage: getpid N")
		os.Exit(2)
	}
	start := time.Now()
	for i := 0; i < n; i++ {
		syscall.RawSyscall(syscall.SYS_GETPID, 0, 0, 0)
	}
	fmt.Println(time.Since(start).Nanoseconds() / int64(n))
}
