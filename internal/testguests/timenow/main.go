// Command timenow checks that wall and monotonic time advance across a
// sleep by about the right amount.
package main

import (
	"fmt"
	"time"
)

func main() {
	t0 := time.Now()
	time.Sleep(200 * time.Millisecond)
	d := time.Since(t0)
	fmt.Println("slept at least 200ms:", d >= 200*time.Millisecond)
	fmt.Println("slept under 2s:", d < 2*time.Second)
	wall := time.Now().Round(0).Sub(t0.Round(0))
	fmt.Println("wall clock advanced:", wall >= 190*time.Millisecond && wall < 2*time.Second)
	fmt.Println("year plausible:", time.Now().Year() >= 2024)
}
