// Command noaccess tries to reach the host: a file and a socket. Both must
// fail.
package main

import (
	"fmt"
	"net"
	"os"
)

func main() {
	_, err := os.Open("/etc/passwd")
	fmt.Println("open /etc/passwd failed:", err != nil)
	_, err = net.Dial("tcp", "127.0.0.1:1")
	fmt.Println("dial failed:", err != nil)
}
