// Command exitcode exits with the status given as its first argument.
package main

import (
	"fmt"
	"os"
	"strconv"
)

func main() {
	code, err := strconv.Atoi(os.Args[1])
	if err != nil {
		panic(err)
	}
	fmt.Println("exiting with", code)
	os.Exit(code)
}
