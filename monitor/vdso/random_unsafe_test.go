package vdso

import (
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"atoll.dev/atoll/internal/testenv"
)

// nativeVDSO is the image mapped executable in the test process, with its
// parameters page below it, so that tests call its functions natively.
type nativeVDSO struct {
	mem    []byte // the parameters page, then the image
	random *Random
	fn     uintptr // __vdso_getrandom
}

// mapVDSO maps the image and seeds its parameters page (generation 1).
func mapVDSO(t testing.TB) *nativeVDSO {
	t.Helper()
	mem := mapPages(t, 2*Size, unix.PROT_READ|unix.PROT_WRITE|unix.PROT_EXEC)
	copy(mem[Size:], Image())
	off, err := lookup(mem[Size:], "__vdso_getrandom")
	if err != nil {
		t.Fatal(err)
	}
	return &nativeVDSO{mem: mem, random: NewRandom(mem[:Size]), fn: addr(mem[Size:]) + uintptr(off)}
}

// mapPages maps n bytes of anonymous memory, unmapped when the test ends.
func mapPages(t testing.TB, n, prot int) []byte {
	t.Helper()
	b, err := unix.Mmap(-1, 0, n, prot, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(b) })
	return b
}

// addr returns the address of b's first byte (b is mmapped: it never moves).
func addr(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }

// getrandom calls __vdso_getrandom(buf, n, flags, state, stateLen) and
// returns its result, negative errno on failure.
func (v *nativeVDSO) getrandom(buf uintptr, n uint64, flags uint32, state uintptr, stateLen uint64) int64 {
	return int64(testenv.CallSysV(v.fn, buf, uintptr(n), uintptr(flags), state, uintptr(stateLen)))
}
