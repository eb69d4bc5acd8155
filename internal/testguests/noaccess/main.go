// Command noaccess tries to reach the host: a file the host has and the
// guest's file system does not, a new file where the host would have
// none either, and a socket. All must fail.
package main

import (
	"fmt"
	"net"
	"os"
)

func main() {
	_, err := os.Open("/etc/shadow")
	fmt.Println("open /etc/shadow failed:", err != nil)
	err = os.WriteFile("/proc/atoll-probe", nil, 0o644)
	fmt.Println("create in /proc failed:", err != nil)
	_, err = net.Dial("tcp", "127.0.0.1:1")
	fmt.Println("dial failed:", err != nil)
}
