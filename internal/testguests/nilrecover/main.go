// Command nilrecover dereferences nil inside a recover and carries on.
package main

import "fmt"

type node struct{ next *node }

func deref(n *node) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("recovered: %v", r)
		}
	}()
	_ = n.next.next
	return nil
}

func main() {
	for i := 0; i < 3; i++ {
		fmt.Println(deref(&node{}))
	}
	fmt.Println("still running")
}
