// Command memlimit exercises a memory limit three ways (the first
// argument):
//
//   - cycle N: allocates and frees N MiB in all, three times. First from Go's
//     heap, in blocks of growing size that each stay live alone, a small
//     allocation pinned after each, returning what it frees
//     (debug.FreeOSMemory). Then with mmap and munmap, blocks of growing
//     size with a page left mapped after each, so that no block fits where
//     an earlier one was: the pages it writes span N MiB of address space
//     while it holds one block at a time. Last, it writes and gives back
//     (MADV_DONTNEED) a page in every 2 MiB of N MiB.
//   - reserve: maps 4 GiB read-only and 4 GiB PROT_NONE, reads a page in
//     each 256 MiB of the first, and unmaps both.
//   - hog: maps read-write all the address space it can get, 1 GiB at a
//     time, then writes a byte in every page of it, printing progress: a
//     guest out to make the host commit memory.
package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"syscall"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: memlimit cycle MIB | reserve | hog")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "cycle":
		n, err := strconv.Atoi(os.Args[2])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		cycle(n)
	case "reserve":
		reserve()
	case "hog":
		hog()
	}
}

var pins [][]byte

func cycle(total int) {
	done, size := 0, 4
	for done < total {
		b := make([]byte, size<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = byte(i)
		}
		pins = append(pins, make([]byte, 64<<10))
		done += size
		b = nil
		runtime.GC()
		debug.FreeOSMemory()
		size += 4
		if size > 40 {
			size = 4
		}
	}
	fmt.Printf("cycled %d MiB\n", done)
	done, size = 0, 8
	for done < total {
		b, err := syscall.Mmap(-1, 0, size<<20, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
		if err != nil {
			fmt.Println("mmap:", err)
			os.Exit(1)
		}
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		pin, err := syscall.Mmap(-1, 0, 4096, syscall.PROT_READ, syscall.MAP_PRIVATE|syscall.MAP_ANON)
		if err != nil {
			fmt.Println("mmap:", err)
			os.Exit(1)
		}
		pins = append(pins, pin)
		if err := syscall.Munmap(b); err != nil {
			fmt.Println("munmap:", err)
			os.Exit(1)
		}
		done += size
		size += 2
	}
	fmt.Printf("mapped and unmapped %d MiB\n", done)
	// Then a page in every 2 MiB of N MiB of fresh address space, each
	// written and given back at once (MADV_DONTNEED): what the guest holds
	// is a chunk per page with nothing in it, which only reclaim at the
	// limit frees.
	b, err := syscall.Mmap(-1, 0, total<<20, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		fmt.Println("mmap:", err)
		os.Exit(1)
	}
	for off := 0; off < len(b); off += 2 << 20 {
		b[off] = 1
		if err := syscall.Madvise(b[off:off+4096], syscall.MADV_DONTNEED); err != nil {
			fmt.Println("madvise:", err)
			os.Exit(1)
		}
	}
	fmt.Printf("touched a page in each 2 MiB of %d MiB\n", total)
}

func reserve() {
	ro, err := syscall.Mmap(-1, 0, 4<<30, syscall.PROT_READ, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		fmt.Println("4 GiB PROT_READ:", err)
		os.Exit(1)
	}
	none, err := syscall.Mmap(-1, 0, 4<<30, syscall.PROT_NONE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		fmt.Println("4 GiB PROT_NONE:", err)
		os.Exit(1)
	}
	sum := 0
	for off := 0; off < len(ro); off += 256 << 20 {
		sum += int(ro[off])
	}
	fmt.Println("read 16 pages of 4 GiB, sum", sum)
	if syscall.Munmap(ro) != nil || syscall.Munmap(none) != nil {
		fmt.Println("munmap failed")
		os.Exit(1)
	}
	fmt.Println("reserved and released 8 GiB")
}

func hog() {
	var maps [][]byte
	for {
		b, err := syscall.Mmap(-1, 0, 1<<30, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON|syscall.MAP_NORESERVE)
		if err != nil {
			break
		}
		maps = append(maps, b)
	}
	fmt.Printf("mapped %d GiB\n", len(maps))
	for i, b := range maps {
		for off := 0; off < len(b); off += 4096 {
			b[off] = 1
		}
		fmt.Printf("wrote %d GiB\n", i+1)
	}
}
