// Command chaos makes system calls with random numbers and arguments drawn
// from values that tend to break parsers: zero, -1, huge lengths, unmapped
// and half-mapped addresses, addresses of a scratch buffer of its own. It
// may well corrupt itself and crash; the point is that the monitor answers
// every call and reports the end cleanly. Calls that would end the run
// early or block indefinitely are left out.
//
//	chaos SEED [CALLS [THREADS]]
//
// With THREADS above 1, that many threads, each locked to its own host
// thread (vCPU), share the CALLS, while other goroutines do ordinary I/O
// beside them — a file in /tmp and, when mounted, in /data written,
// synced and read back, and a pipe — so the monitor serves hostile and
// honest calls at once. It prints the calls made and the I/O rounds done.
package main

import (
	"bytes"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"
)

var skip = map[uintptr]bool{
	syscall.SYS_EXIT: true, syscall.SYS_EXIT_GROUP: true, syscall.SYS_RT_SIGRETURN: true,
	syscall.SYS_CLONE: true, syscall.SYS_NANOSLEEP: true, syscall.SYS_FUTEX: true,
	syscall.SYS_EPOLL_WAIT: true, syscall.SYS_EPOLL_PWAIT: true, syscall.SYS_READ: true,
	syscall.SYS_READV: true, syscall.SYS_PREAD64: true, syscall.SYS_KILL: true,
	syscall.SYS_TGKILL: true, syscall.SYS_TKILL: true, syscall.SYS_MUNMAP: true,
	syscall.SYS_MMAP: true, syscall.SYS_MADVISE: true, syscall.SYS_MPROTECT: true,
	syscall.SYS_RT_SIGACTION: true, syscall.SYS_RT_SIGPROCMASK: true, syscall.SYS_SIGALTSTACK: true,
	syscall.SYS_ARCH_PRCTL: true, syscall.SYS_DUP2: true, syscall.SYS_DUP3: true, syscall.SYS_CLOSE: true,
	syscall.SYS_PAUSE: true, syscall.SYS_WAIT4: true, syscall.SYS_SELECT: true, syscall.SYS_POLL: true,
	syscall.SYS_PPOLL: true, syscall.SYS_PSELECT6: true, syscall.SYS_RT_SIGSUSPEND: true,
	syscall.SYS_RT_SIGTIMEDWAIT: true, syscall.SYS_CLOCK_NANOSLEEP: true, 441: true, // epoll_pwait2
}

func main() {
	seed, _ := strconv.ParseInt(os.Args[1], 10, 64)
	calls, threads := 3000, 1
	if len(os.Args) > 2 {
		calls, _ = strconv.Atoi(os.Args[2])
	}
	if len(os.Args) > 3 {
		threads, _ = strconv.Atoi(os.Args[3])
	}
	var made atomic.Int64
	if threads <= 1 {
		made.Add(int64(chaos(seed, calls)))
		fmt.Println("made", made.Load(), "calls")
		return
	}
	stop := make(chan struct{})
	var rounds atomic.Int64
	var io sync.WaitGroup
	for _, dir := range []string{"/tmp", "/data"} {
		if _, err := os.Stat(dir); err == nil {
			io.Go(func() { rounds.Add(fileIO(dir, stop)) })
		}
	}
	io.Go(func() { rounds.Add(pipeIO(stop)) })
	var wg sync.WaitGroup
	for i := 0; i < threads; i++ {
		wg.Go(func() {
			runtime.LockOSThread()
			made.Add(int64(chaos(seed*1000+int64(i), calls/threads)))
		})
	}
	wg.Wait()
	close(stop)
	io.Wait()
	fmt.Println("made", made.Load(), "calls;", rounds.Load(), "I/O rounds")
}

// chaos makes n random calls and returns how many it made.
func chaos(seed int64, n int) int {
	rng := rand.New(rand.NewSource(seed))
	// A large scratch buffer, so that most writes through it stay in it
	// (a huge length still reaches past it: the guest may corrupt itself).
	scratch := make([]byte, 4<<20)
	own := uintptr(unsafe.Pointer(&scratch[0]))
	values := []uintptr{0, 1, 2, 8, 4096, ^uintptr(0), 1 << 31, 1 << 47, 1 << 62,
		0x10, 0x1ff000, 0x200000, 0x3ff000, 0x00007ff000000000, own, own + 200, own + 1<<20}
	arg := func() uintptr {
		if rng.Intn(4) == 0 {
			return uintptr(rng.Uint64())
		}
		return values[rng.Intn(len(values))]
	}
	made := 0
	for made < n {
		nr := uintptr(rng.Intn(460))
		if skip[nr] {
			continue
		}
		syscall.RawSyscall6(nr, arg(), arg(), arg(), arg(), arg(), arg())
		made++
	}
	runtime.KeepAlive(scratch)
	return made
}

// fileIO writes, syncs and reads back a file in dir until stop, and
// returns the rounds that read back what they wrote. The chaos threads
// may truncate or write the file through a descriptor number they hit
// by chance: a mismatch is the guest's own doing, so it is not fatal.
func fileIO(dir string, stop chan struct{}) int64 {
	path := filepath.Join(dir, "chaos-io")
	want := bytes.Repeat([]byte("atoll chaos "), 1000)
	var ok int64
	for {
		select {
		case <-stop:
			os.Remove(path)
			return ok
		default:
		}
		f, err := os.Create(path)
		if err != nil {
			continue
		}
		f.Write(want)
		f.Sync()
		f.Close()
		if got, err := os.ReadFile(path); err == nil && bytes.Equal(got, want) {
			ok++
		}
	}
}

// pipeIO sends messages through a pipe until stop and returns how many
// came back whole.
func pipeIO(stop chan struct{}) int64 {
	r, w, err := os.Pipe()
	if err != nil {
		return 0
	}
	defer r.Close()
	defer w.Close()
	msg := []byte("ping through a pipe")
	buf := make([]byte, len(msg))
	var ok int64
	for {
		select {
		case <-stop:
			return ok
		default:
		}
		if _, err := w.Write(msg); err != nil {
			return ok
		}
		if n, err := r.Read(buf); err == nil && n == len(msg) && bytes.Equal(buf, msg) {
			ok++
		}
	}
}
