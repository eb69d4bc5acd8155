// Command nilpanic dereferences nil without recovering.
package main

import "fmt"

type node struct{ v int }

//go:noinline
func get(n *node) int { return n.v }

func main() {
	fmt.Println("about to crash")
	fmt.Println(get(nil))
}
