// Command preempt spins in a tight loop without function calls while
// another goroutine must still get to run: only asynchronous preemption
// (SIGURG) makes that possible with GOMAXPROCS=1.
package main

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"time"
)

func main() {
	runtime.GOMAXPROCS(1)
	var stop atomic.Bool
	go func() {
		x := 0
		for !stop.Load() {
			x++
		}
		_ = x
	}()
	runtime.Gosched()
	start := time.Now()
	time.Sleep(50 * time.Millisecond)
	stop.Store(true)
	fmt.Println("main goroutine ran again:", time.Since(start) < 5*time.Second)
}
