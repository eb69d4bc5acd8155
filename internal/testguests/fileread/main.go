// Command fileread measures file access from inside the guest: "read
// PATH" reads a file through a 1 MiB buffer and prints MB/s; "stat DIR N"
// stats, opens and closes DIR/f0 … DIR/f(N-1) and prints µs per file.
package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"time"
)

func main() {
	switch os.Args[1] {
	case "read":
		f, err := os.Open(os.Args[2])
		if err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		buf := make([]byte, 1<<20)
		start := time.Now()
		var n int64
		for {
			m, err := f.Read(buf)
			n += int64(m)
			if err == io.EOF {
				break
			}
			if err != nil {
				fmt.Println(err)
				os.Exit(1)
			}
		}
		d := time.Since(start)
		fmt.Printf("read %d bytes in %v: %.0f MB/s\n", n, d.Round(time.Millisecond), float64(n)/d.Seconds()/1e6)
	case "stat":
		n, _ := strconv.Atoi(os.Args[3])
		start := time.Now()
		for i := 0; i < n; i++ {
			p := fmt.Sprintf("%s/f%d", os.Args[2], i)
			if _, err := os.Stat(p); err != nil {
				fmt.Println(err)
				os.Exit(1)
			}
			f, err := os.Open(p)
			if err != nil {
				fmt.Println(err)
				os.Exit(1)
			}
			f.Close()
		}
		fmt.Printf("stat+open+close of %d files: %.1f µs each\n", n, float64(time.Since(start).Microseconds())/float64(n))
	}
}
