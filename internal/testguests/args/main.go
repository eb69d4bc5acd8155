// Command args prints its arguments and selected environment variables.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Printf("args %q\n", os.Args[1:])
	fmt.Printf("GREETING=%q\n", os.Getenv("GREETING"))
	_, set := os.LookupEnv("UNSET_VARIABLE")
	fmt.Println("unset present:", set)
}
