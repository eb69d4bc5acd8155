// Command hello prints a greeting: the smallest boot test.
package main

import "fmt"

func main() { fmt.Println("hello from atoll") }
