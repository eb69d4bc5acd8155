// Command pathchaos makes N random path operations (its first argument;
// the second seeds them) on names that try to leave /data: "..", absolute
// paths, and the links the host planted. It prints how many succeeded; a
// run that escapes shows on the host, not here. "pathchaos swap N" reads
// /data/swap N times, a link the host keeps pointing in and out of the
// volume, and counts what it read.
package main

import (
	"fmt"
	"math/rand"
	"os"
	"strconv"
	"syscall"
)

var names = []string{
	"/data/a", "/data/b", "/data/d/a", "/data/../etc/passwd", "/data/abs", "/data/rel", "/data/abs/x",
	"/data/rel/../x", "/data/d", "/data/fifo", "/data/null", "/data/link", "/data/loop", "../../outside",
	"/data/d/../../etc", "/data/.", "/data/..", "/data/abs/../secret", "/data/rel/../../secret",
}

func main() {
	if os.Args[1] == "swap" {
		swap()
		return
	}
	n, _ := strconv.Atoi(os.Args[1])
	seed, _ := strconv.Atoi(os.Args[2])
	r := rand.New(rand.NewSource(int64(seed)))
	pick := func() string { return names[r.Intn(len(names))] }
	ok := 0
	buf := make([]byte, 64)
	for i := 0; i < n; i++ {
		var err error
		switch r.Intn(12) {
		case 0:
			var fd int
			fd, err = syscall.Open(pick(), syscall.O_RDWR|syscall.O_CREAT, 0o644)
			if err == nil {
				syscall.Write(fd, []byte("chaos"))
				syscall.Read(fd, buf)
				syscall.Close(fd)
			}
		case 1:
			var fd int
			fd, err = syscall.Open(pick(), syscall.O_RDONLY|syscall.O_NOFOLLOW, 0)
			if err == nil {
				syscall.Read(fd, buf)
				syscall.Close(fd)
			}
		case 2:
			err = syscall.Mkdir(pick(), 0o755)
		case 3:
			err = syscall.Unlink(pick())
		case 4:
			err = syscall.Rmdir(pick())
		case 5:
			err = syscall.Rename(pick(), pick())
		case 6:
			err = syscall.Symlink(pick(), pick())
		case 7:
			err = syscall.Link(pick(), pick())
		case 8:
			err = syscall.Chmod(pick(), 0o777)
		case 9:
			err = syscall.Truncate(pick(), 1)
		case 10:
			var st syscall.Stat_t
			err = syscall.Stat(pick(), &st)
		case 11:
			_, err = os.Readlink(pick())
		}
		if err == nil {
			ok++
		}
	}
	fmt.Println("operations", n, "succeeded", ok)
}

// swap reads /data/swap again and again and counts each content seen.
func swap() {
	n, _ := strconv.Atoi(os.Args[2])
	seen := map[string]int{}
	for i := 0; i < n; i++ {
		b, err := os.ReadFile("/data/swap")
		if err != nil {
			seen["error"]++
			continue
		}
		seen[string(b)]++
	}
	fmt.Println("inside", seen["inside"], "outside", seen["host secret"], "errors", seen["error"])
}
