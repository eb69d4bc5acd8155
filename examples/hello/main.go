// Command hello is the smallest Atoll example: it greets, says where it
// runs and lists the devices it was given. `atoll run ./examples/hello`
// boots it as a VM; `go run ./examples/hello` runs it as a process.
package main

import (
	"fmt"
	"os"
	"runtime"

	"atoll.dev/atoll"
)

func main() {
	greeting := os.Getenv("GREETING")
	if greeting == "" {
		greeting = "hello"
	}
	host, _ := os.Hostname()
	fmt.Printf("%s from %s: %s, %d CPU(s)\n", greeting, host, runtime.Version(), runtime.GOMAXPROCS(0))
	devs, err := atoll.Devices()
	if err != nil {
		fmt.Println("devices:", err)
		os.Exit(1)
	}
	fmt.Printf("%d device(s)\n", len(devs))
	for _, d := range devs {
		fmt.Printf("  %s %s\n", d.Kind, d.Name)
	}
}
