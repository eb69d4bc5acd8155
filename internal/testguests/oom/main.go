// Command oom allocates and keeps memory until the runtime gives up.
package main

import "fmt"

var keep [][]byte

func main() {
	fmt.Println("allocating")
	for i := 0; ; i++ {
		b := make([]byte, 16<<20)
		for j := range b {
			b[j] = 1
		}
		keep = append(keep, b)
	}
}
