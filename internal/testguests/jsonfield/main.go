// Command jsonfield reads one JSON object from standard input and prints
// the value of the key given as its argument, as a tool like jq would; it
// fails when stdin holds no object.
package main

import (
	"encoding/json"
	"fmt"
	"os"
)

func main() {
	var v map[string]any
	if err := json.NewDecoder(os.Stdin).Decode(&v); err != nil {
		fmt.Fprintln(os.Stderr, "jsonfield:", err)
		os.Exit(1)
	}
	fmt.Println(v[os.Args[1]])
}
