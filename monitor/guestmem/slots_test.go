package guestmem

import (
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

// TestLazySlots checks that the mmap arena becomes KVM memory only where
// the guest maps pages readable or writable, a run of granules per slot,
// and that a mapping KVM cannot back fails with ENOMEM, counting nothing.
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
	g := uint64(res)
	steps := []struct {
		name        string
		do          func() unix.Errno
		gpas, sizes []uint64 // the new slots
	}{
		{"one page", func() unix.Errno { _, e := m.Mmap(res+8<<20+4096, 4096, rw, Fixed); return e },
			[]uint64{g + 8<<20}, []uint64{arenaGranule}},
		{"the same granule", func() unix.Errno { _, e := m.Mmap(res+8<<20, 4096, rw, Fixed); return e },
			nil, nil},
		{"both sides of it", func() unix.Errno { _, e := m.Mmap(res+6<<20, 6<<20, rw, Fixed); return e },
			[]uint64{g + 6<<20, g + 10<<20}, []uint64{arenaGranule, arenaGranule}},
		{"a run of granules", func() unix.Errno { return m.Mprotect(res+10<<20, 8<<20, unix.PROT_READ) },
			[]uint64{g + 12<<20}, []uint64{6 << 20}},
		{"made inaccessible", func() unix.Errno { return m.Mprotect(res+32<<20, 4<<20, unix.PROT_NONE) },
			nil, nil},
	}
	for _, s := range steps {
		n := len(f.gpas)
		if e := s.do(); e != 0 {
			t.Fatalf("%s: %v", s.name, e)
		}
		if !slices.Equal(f.gpas[n:], s.gpas) || !slices.Equal(f.sizes[n:], s.sizes) {
			t.Errorf("%s: new slots at %#x (+%#x), want %#x (+%#x)", s.name, f.gpas[n:], f.sizes[n:], s.gpas, s.sizes)
		}
	}
	f.max = len(f.gpas)
	before := m.Committed()
	if _, e := m.Mmap(res+40<<20, 4096, rw, Fixed); e != unix.ENOMEM {
		t.Errorf("a mapping KVM cannot back: %v, want ENOMEM", e)
	}
	if e := m.Mprotect(res+44<<20, 4096, rw); e != unix.ENOMEM {
		t.Errorf("mprotect KVM cannot back: %v, want ENOMEM", e)
	}
	if m.Committed() != before {
		t.Errorf("refused mappings counted: %d bytes", m.Committed()-before)
	}
}
