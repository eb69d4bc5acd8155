// Command fdio exercises pipes and eventfds the way a program using raw
// system calls does. Its first argument picks a test:
//
//	flags      O_NONBLOCK as pipe2, eventfd2 and fcntl set it, and
//	           blocking reads and writes that wait for the other side
//	blockexit  exits while another thread is blocked in read on an
//	           empty blocking pipe
//	race       closes, dups and writes one descriptor from two threads;
//	           fd 3 must be a block device, which no write may reach
package main

import (
	"bytes"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Println("usage: fdio flags|blockexit|race")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "flags":
		flags()
	case "blockexit":
		blockExit()
	case "race":
		race()
	default:
		fmt.Println("unknown test", os.Args[1])
		os.Exit(2)
	}
}

func check(what string, err error) {
	if err != nil {
		fmt.Printf("%s: %v\n", what, err)
		os.Exit(1)
	}
}

func getfl(fd int) int {
	r, _, e := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_GETFL, 0)
	if e != 0 {
		check("F_GETFL", e)
	}
	return int(r)
}

func setfl(fd, fl int) {
	if _, _, e := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_SETFL, uintptr(fl)); e != 0 {
		check("F_SETFL", e)
	}
}

func nonblock(fd int) bool { return getfl(fd)&syscall.O_NONBLOCK != 0 }

func eventfd(flags int) int {
	r, _, e := syscall.Syscall(syscall.SYS_EVENTFD2, 0, uintptr(flags), 0)
	if e != 0 {
		check("eventfd2", e)
	}
	return int(r)
}

// retry repeats a call interrupted by a signal, as SA_RESTART would.
func retry(f func() (int, error)) (int, error) {
	for {
		n, err := f()
		if err != syscall.EINTR {
			return n, err
		}
	}
}

func flags() {
	var p [2]int
	check("pipe2", syscall.Pipe2(p[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK))
	fmt.Println("pipe2 O_NONBLOCK:", nonblock(p[0]), nonblock(p[1]))
	fmt.Println("access modes:", getfl(p[0])&syscall.O_ACCMODE, getfl(p[1])&syscall.O_ACCMODE)
	_, err := syscall.Read(p[0], make([]byte, 1))
	fmt.Println("empty non-blocking read:", err == syscall.EAGAIN)
	setfl(p[0], 0)
	fmt.Println("after F_SETFL 0:", nonblock(p[0]), nonblock(p[1]))
	d, err := syscall.Dup(p[0])
	check("dup", err)
	fmt.Println("dup shares the flag:", nonblock(d))
	setfl(d, syscall.O_NONBLOCK)
	fmt.Println("set through the dup:", nonblock(p[0]))
	setfl(d, 0)
	syscall.Close(d)

	var q [2]int
	check("pipe2", syscall.Pipe2(q[:], syscall.O_CLOEXEC))
	fmt.Println("pipe2 blocking:", nonblock(q[0]), nonblock(q[1]))
	setfl(q[1], syscall.O_NONBLOCK)
	fmt.Println("after F_SETFL O_NONBLOCK:", nonblock(q[0]), nonblock(q[1]))
	setfl(q[1], 0)

	e1, e2 := eventfd(syscall.O_NONBLOCK|syscall.O_CLOEXEC), eventfd(syscall.O_CLOEXEC)
	fmt.Println("eventfd O_NONBLOCK:", nonblock(e1), nonblock(e2))
	_, err = syscall.Read(e1, make([]byte, 8))
	fmt.Println("empty non-blocking eventfd read:", err == syscall.EAGAIN)

	// A blocking read waits for a write made later.
	go func() {
		time.Sleep(50 * time.Millisecond)
		syscall.Write(q[1], []byte("late"))
	}()
	b := make([]byte, 16)
	n, err := retry(func() (int, error) { return syscall.Read(q[0], b) })
	fmt.Printf("blocking read: %q %v\n", b[:n], err)

	// A blocking write larger than the pipe writes it all.
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16)
	got := make(chan []byte)
	go func() {
		var all []byte
		buf := make([]byte, 4096)
		for len(all) < len(big) {
			n, err := retry(func() (int, error) { return syscall.Read(q[0], buf) })
			if err != nil || n == 0 {
				break
			}
			all = append(all, buf[:n]...)
		}
		got <- all
	}()
	// One call writes it all unless a signal (the runtime's preemption
	// SIGURG) interrupts it part way, as on Linux: then it returns what
	// it wrote, and the rest is written by the next call.
	n = 0
	for err = nil; n < len(big) && err == nil; {
		var m int
		m, err = retry(func() (int, error) { return syscall.Write(q[1], big[n:]) })
		n += max(m, 0)
	}
	fmt.Println("blocking 1MiB write:", n, err)
	fmt.Println("read back intact:", bytes.Equal(<-got, big))

	// A blocking eventfd read waits for a write.
	go func() {
		time.Sleep(50 * time.Millisecond)
		syscall.Write(e2, []byte{5, 0, 0, 0, 0, 0, 0, 0})
	}()
	n, err = retry(func() (int, error) { return syscall.Read(e2, b[:8]) })
	fmt.Println("blocking eventfd read:", n, b[0], err)
	fmt.Println("flags ok")
}

func blockExit() {
	var p [2]int
	check("pipe2", syscall.Pipe2(p[:], syscall.O_CLOEXEC))
	started := make(chan bool)
	go func() {
		started <- true
		for {
			_, err := syscall.Read(p[0], make([]byte, 1))
			if err != syscall.EINTR {
				fmt.Println("read returned:", err)
				os.Exit(3)
			}
		}
	}()
	<-started
	time.Sleep(300 * time.Millisecond) // let the reader block in the host
	fmt.Println("exiting with a reader blocked")
	os.Exit(0)
}

func race() {
	const block = 3
	// Let the runtime make its own descriptors (netpoll) before the
	// churn, so they do not land on numbers this test reuses.
	time.Sleep(time.Millisecond)
	var p [2]int
	check("pipe2", syscall.Pipe2(p[:], syscall.O_CLOEXEC))
	w := p[1]
	keep, err := syscall.Dup(w) // a write end that stays open
	check("dup", err)

	payload := bytes.Repeat([]byte{'X'}, 100)
	var bad, total int
	readDone := make(chan bool)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := retry(func() (int, error) { return syscall.Read(p[0], buf) })
			if err != nil || n == 0 {
				break
			}
			total += n
			bad += n - bytes.Count(buf[:n], []byte{'X'})
		}
		readDone <- true
	}()

	stop := make(chan bool)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // writes to w, whatever w is now
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			syscall.Write(w, payload)
		}
	}()
	go func() { // closes w and puts other objects, then the pipe, there
		defer wg.Done()
		for i := 0; i < 3000; i++ {
			syscall.Close(w)
			if d, err := syscall.Dup(block); err == nil {
				syscall.Close(d)
			}
			var q [2]int
			if syscall.Pipe2(q[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK) == nil {
				syscall.Close(q[0])
				syscall.Close(q[1])
			}
			if e := eventfd(syscall.O_CLOEXEC); e >= 0 {
				syscall.Close(e)
			}
			check("dup2", syscall.Dup2(keep, w))
		}
		close(stop)
	}()
	wg.Wait()
	syscall.Close(w)
	syscall.Close(keep)
	<-readDone

	sector := make([]byte, 4096)
	n, err := syscall.Pread(block, sector, 0)
	fmt.Println("block read:", n, err)
	fmt.Println("block untouched:", bytes.Count(sector[:max(n, 0)], []byte{0}) == max(n, 0))
	fmt.Println("pipe got only payload:", bad == 0, total > 0)
	fmt.Println("race ok")
}
