// Command random reads crypto/rand. With an argument N it makes N reads of
// 16 bytes and prints the average time per read in nanoseconds, measured in
// the guest. Without one it checks the output: 40,000 reads of 16 bytes
// from four goroutines (so from several threads' generator states) are all
// distinct and none is zero, and one large read fills its buffer.
package main

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"
)

func main() {
	if len(os.Args) > 1 {
		n, err := strconv.Atoi(os.Args[1])
		if err != nil || n < 1 {
			fmt.Fprintln(os.Stderr, "usage: random [N]")
			os.Exit(2)
		}
		var b [16]byte
		start := time.Now()
		for i := 0; i < n; i++ {
			rand.Read(b[:])
		}
		fmt.Println(time.Since(start).Nanoseconds() / int64(n))
		return
	}
	const workers, reads = 4, 10000
	seen := make(map[[16]byte]bool, workers*reads)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out := make([][16]byte, reads)
			for i := range out {
				rand.Read(out[i][:])
			}
			mu.Lock()
			defer mu.Unlock()
			for _, b := range out {
				seen[b] = true
			}
		}()
	}
	wg.Wait()
	fmt.Println("distinct:", len(seen) == workers*reads, "zero:", seen[[16]byte{}])
	big := make([]byte, 1<<20)
	rand.Read(big)
	fmt.Println("large read filled:", !bytes.Contains(big, make([]byte, 32)))
}
