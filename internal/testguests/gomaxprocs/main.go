// Command gomaxprocs prints the number of processors the runtime uses.
package main

import (
	"fmt"
	"runtime"
)

func main() { fmt.Println("GOMAXPROCS", runtime.GOMAXPROCS(0)) }
