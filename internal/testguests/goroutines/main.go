// Command goroutines exercises the scheduler, channels, timers, the
// garbage collector and a 100 MB allocation.
package main

import (
	"fmt"
	"runtime"
	"sync"
	"time"
)

func main() {
	const workers = 8
	results := make(chan int, workers)
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func(n int) {
			defer wg.Done()
			time.Sleep(time.Duration(n) * time.Millisecond)
			sum := 0
			for j := 0; j <= 1000*n; j++ {
				sum += j
			}
			results <- sum
		}(i)
	}
	wg.Wait()
	close(results)
	total := 0
	for r := range results {
		total += r
	}
	fmt.Println("sum", total)

	timer := time.NewTimer(20 * time.Millisecond)
	select {
	case <-timer.C:
		fmt.Println("timer fired")
	case <-time.After(5 * time.Second):
		fmt.Println("timer late")
	}

	big := make([]byte, 100<<20)
	for i := range big {
		big[i] = byte(i)
	}
	check := 0
	for i := 0; i < len(big); i += 4096 {
		check += int(big[i])
	}
	fmt.Println("100MB check", check)
	big = nil
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	fmt.Println("gc ran", m.NumGC > 0)
}
