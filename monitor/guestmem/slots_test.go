package guestmem

import (
	"fmt"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

// TestLazySlots checks that the mmap arena becomes KVM memory only where
// the guest holds it (hold.go), a granule per slot, and that a chunk KVM
// cannot back is not held and counts nothing.
func TestLazySlots(t *testing.T) {
	m, stackTop, f := newTest(t)
	if len(f.gpas) != 1 || f.gpas[0] != 0 || f.sizes[0] != uint64(stackTop) {
		t.Fatalf("at start: slots at %#x of %#x, want one of [0, %#x)", f.gpas, f.sizes, stackTop)
	}
	rw := unix.PROT_READ | unix.PROT_WRITE
	res, e := m.Mmap(0, 64<<20, unix.PROT_NONE, 0)
	if e != 0 || len(f.gpas) != 1 {
		t.Fatalf("a reservation: %v, slots %#x", e, f.gpas)
	}
	if _, e := m.Mmap(res+6<<20, 16<<20, rw, Fixed); e != 0 || len(f.gpas) != 1 {
		t.Fatalf("a mapping: %v, slots %#x", e, f.gpas)
	}
	g := uint64(res)
	hold := func(a GuestAddr, n uint64) func() error {
		return func() error { _, err := m.GuestSlice(a, n); return err }
	}
	steps := []struct {
		name        string
		do          func() error
		gpas, sizes []uint64 // the new slots
	}{
		{"one touch", func() error {
			if h := m.Hold(res + 8<<20 + 4096); h != HoldDone {
				return fmt.Errorf("%v", h)
			}
			return nil
		}, []uint64{g + 8<<20}, []uint64{arenaGranule}},
		{"the same granule", hold(res+8<<20, 4096), nil, nil},
		{"both sides of it", hold(res+6<<20, 6<<20), []uint64{g + 6<<20, g + 10<<20}, []uint64{arenaGranule, arenaGranule}},
	}
	for _, s := range steps {
		n := len(f.gpas)
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if !slices.Equal(f.gpas[n:], s.gpas) || !slices.Equal(f.sizes[n:], s.sizes) {
			t.Errorf("%s: new slots at %#x (+%#x), want %#x (+%#x)", s.name, f.gpas[n:], f.sizes[n:], s.gpas, s.sizes)
		}
	}
	f.max = len(f.gpas)
	before := m.Committed()
	if h := m.Hold(res + 14<<20); h != HoldOutOfMemory {
		t.Errorf("a chunk KVM cannot back: %v, want HoldOutOfMemory", h)
	}
	if _, err := m.GuestSlice(res+16<<20, 8); err != ErrFault {
		t.Errorf("a buffer KVM cannot back: %v, want ErrFault", err)
	}
	if m.Committed() != before {
		t.Errorf("refused holds counted: %d bytes", m.Committed()-before)
	}
}
