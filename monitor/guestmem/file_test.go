package guestmem

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestMapFile maps a file's pages into the image and checks that the
// guest reads them, that its writes stay private, and that only the
// pages below the mmap arena can be mapped.
func TestMapFile(t *testing.T) {
	m, stackTop, _ := newTest(t)
	want := bytes.Repeat([]byte("atoll image page"), 3*PageSize/16)
	path := filepath.Join(t.TempDir(), "image")
	if err := os.WriteFile(path, want, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fd := int(f.Fd())
	before := m.Committed()
	if err := m.MapFile(testImageStart, 2*PageSize, fd, PageSize); err != nil {
		t.Fatal(err)
	}
	if m.Committed() != before {
		t.Errorf("MapFile changed the committed bytes: %d, want %d", m.Committed(), before)
	}
	b, err := m.Slice(testImageStart, 2*PageSize)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, want[PageSize:]) {
		t.Fatal("the guest does not read the file's pages")
	}
	b[0], b[PageSize] = 'X', 'Y' // the guest writes its data
	if got, _ := os.ReadFile(path); !bytes.Equal(got, want) {
		t.Fatal("a guest write reached the file")
	}
	if b[0] != 'X' || b[PageSize] != 'Y' {
		t.Fatal("a guest write was lost")
	}
	for _, c := range []struct {
		name   string
		a      GuestAddr
		length uint64
		off    int64
	}{
		{"unaligned address", testImageStart + 8, PageSize, 0},
		{"unaligned length", testImageStart, 100, 0},
		{"unaligned offset", testImageStart, PageSize, 8},
		{"negative offset", testImageStart, PageSize, -PageSize},
		{"empty", testImageStart, 0, 0},
		{"system area", SystemBase, PageSize, 0},
		{"page tables", 0, PageSize, 0},
		{"mmap arena", stackTop, PageSize, 0},
		{"across the arena", stackTop - PageSize, 2 * PageSize, 0},
		{"wrapping", testImageStart, ^uint64(0) &^ (PageSize - 1), 0},
	} {
		if err := m.MapFile(c.a, c.length, fd, c.off); err == nil {
			t.Errorf("MapFile, %s: no error", c.name)
		}
	}
	// The arena's pages stay anonymous, as the guest's mmap expects.
	a, e := m.Mmap(0, PageSize, unix.PROT_READ|unix.PROT_WRITE, 0)
	if e != 0 {
		t.Fatal(e)
	}
	if b, _ := m.Slice(a, 8); !bytes.Equal(b, make([]byte, 8)) {
		t.Fatal("a new mapping is not zero")
	}
}
