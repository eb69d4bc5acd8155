// Command privileged does in user mode what only a kernel may, and reports
// how each attempt ended. As on Linux, a privileged instruction or a kernel
// selector raises SIGSEGV, which it recovers from (debug.SetPanicOnFault);
// a unikernel must behave the same on every exit path. With an argument it
// attacks the monitor's own pages instead — "stub" jumps into the CPL-0
// stub, "idt" overwrites the IDT and then faults, "block" writes a
// scratch word of the trampoline's thread blocks (CPL 0 only on the
// hardware path) — where a crash report is as right as a signal: the
// monitor must live either way.
package main

import (
	"fmt"
	"os"
	"runtime/debug"
	"unsafe"
)

// Each is a few instructions in privileged_amd64.s.
func hlt()
func cli()
func lgdt()
func movSS()
func outb()
func rdmsr()
func call(addr uintptr)

func try(name string, f func()) {
	defer func() { fmt.Printf("%s: recovered %v\n", name, recover() != nil) }()
	f()
}

// idt is where the monitor's IDT lives under atoll (monitor/hwstub.go),
// kept as an integer's bits so the compiler does not see a bad pointer;
// in a process it is unmapped.
var idt = uintptr(0x205000)

// block is the first thread block's scratch word (monitor/threadblock.go).
var block = uintptr(0x208040)

func main() {
	debug.SetPanicOnFault(true)
	if len(os.Args) < 2 {
		for _, c := range []struct {
			name string
			f    func()
		}{{"hlt", hlt}, {"cli", cli}, {"lgdt", lgdt}, {"mov ss", movSS}, {"out", outb}, {"rdmsr", rdmsr}} {
			try(c.name, c.f)
		}
		return
	}
	switch os.Args[1] {
	case "stub": // the hardware path's exception vector 13
		try("stub", func() { call(0x200800 + 13*8) })
	case "block":
		try("block", func() {
			p := *(**uint64)(unsafe.Pointer(&block))
			*p = 1
		})
	case "idt":
		try("idt", func() {
			p := *(**[512]byte)(unsafe.Pointer(&idt))
			clear(p[:])
			var nilp *int
			fmt.Println(*nilp)
		})
	}
}
