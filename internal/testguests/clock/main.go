// Command clock reads the clock from several goroutines and checks that
// monotonic time never goes backwards; it ends by printing the wall clock
// so the test can compare it with the host's.
package main

import (
	"fmt"
	"sync"
	"time"
)

func main() {
	var wg sync.WaitGroup
	bad := make(chan string, 8)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			prev := time.Now()
			for i := 0; i < 200000; i++ {
				now := time.Now()
				if now.Sub(prev) < 0 {
					bad <- fmt.Sprintf("went back %v", now.Sub(prev))
					return
				}
				prev = now
			}
		}()
	}
	wg.Wait()
	close(bad)
	ok := true
	for b := range bad {
		fmt.Println(b)
		ok = false
	}
	fmt.Println("monotonic ok:", ok)
	fmt.Println("unix", time.Now().UnixNano())
}
