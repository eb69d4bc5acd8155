// Command volume uses two host directories: /data, writable, and /config,
// read-only. It reads what the host left, writes a file for the host to
// find after it exits, and checks that the read-only one refuses writes.
package main

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

func main() {
	b, err := os.ReadFile("/config/settings")
	fmt.Printf("settings: %q %v\n", b, err)
	err = os.WriteFile("/data/from-guest.txt", []byte("written by the unikernel\n"), 0o644)
	fmt.Println("write /data:", err)
	err = os.MkdirAll("/data/sub/dir", 0o755)
	fmt.Println("mkdir /data:", err)
	err = os.WriteFile("/config/new", []byte("x"), 0o644)
	fmt.Println("write /config refused with EROFS:", errors.Is(err, syscall.EROFS))
	err = os.Remove("/config/settings")
	fmt.Println("remove /config refused with EROFS:", errors.Is(err, syscall.EROFS))
}
