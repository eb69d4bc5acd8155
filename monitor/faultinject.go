//go:build atollfault

package monitor

import (
	"fmt"
	"os"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Fault injection, in test builds only (go build -tags atollfault): the
// environment variable ATOLL_FAULT names a host call the seccomp filter
// forbids, which the monitor then makes as the guest first writes to its
// standard output — in a handler, on a vCPU's thread, well after the
// filter went in. It stands for a monitor that a guest has taken over
// (cmd/atoll's TestSeccompKills):
//
//	execve   a call the monitor never makes: exec a program (one that does not exist)
//	socket   an allowed call with other arguments: a packet socket
//	ioctl    an allowed call with another request: TIOCGWINSZ on standard error
func init() {
	what := os.Getenv("ATOLL_FAULT")
	if what == "" {
		return
	}
	var once sync.Once
	faultHook = func(nr uint64, a sysArgs) {
		if nr == unix.SYS_WRITE && a[0] == 1 {
			once.Do(func() { injectFault(what) })
		}
	}
}

// injectFault makes the forbidden call what, and reports how it went if
// the process survives it.
func injectFault(what string) {
	fmt.Fprintf(os.Stderr, "atoll: injected fault: %s\n", what)
	var result string
	switch what {
	case "execve":
		path := []byte("/nonexistent/atoll-fault\x00")
		_, _, e := unix.Syscall(unix.SYS_EXECVE, uintptr(unsafe.Pointer(&path[0])), 0, 0)
		result = e.Error()
	case "socket":
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err == nil {
			unix.Close(fd)
		}
		result = fmt.Sprint(err)
	case "ioctl":
		_, err := unix.IoctlGetWinsize(2, unix.TIOCGWINSZ)
		result = fmt.Sprint(err)
	default:
		result = "no such fault"
	}
	fmt.Fprintf(os.Stderr, "atoll: injected fault: %s returned: %s\n", what, result)
}
