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

// hostBytes returns r's host bytes behind [a, a+n) without Slice's
// checks: the guest's own view of shared pages, which Slice refuses.
func (m *Memory) hostBytes(a GuestAddr, n uint64) []byte {
	r := m.find(a)
	off := uint64(a - r.base)
	return r.host[off : off+n]
}

// TestMmapShared maps a file shared in the shared area: the guest's stores
// reach the file and the file's writes show in the guest; Slice refuses
// the whole area (the monitor never touches a page that may become a
// file's); msync writes the pages; munmap leaves anonymous memory, the
// file as the guest left it, and the area is used again; nothing else is
// ever mapped there.
func TestMmapShared(t *testing.T) {
	m, _, _ := newTest(t)
	path := filepath.Join(t.TempDir(), "shm")
	if err := os.WriteFile(path, bytes.Repeat([]byte{'f'}, 3*PageSize), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	a, e := m.MmapShared(2*PageSize, int(f.Fd()), PageSize)
	if e != 0 {
		t.Fatal(e)
	}
	if a < m.sharedLo || a+2*PageSize > m.sharedHi {
		t.Fatalf("mapped at %#x, outside the shared area [%#x, %#x)", a, m.sharedLo, m.sharedHi)
	}
	g := m.hostBytes(a, 2*PageSize)
	if g[0] != 'f' {
		t.Fatalf("the guest reads %q, want the file's 'f'", g[0])
	}
	g[0], g[PageSize] = 'g', 'h' // the guest's stores
	if _, err := f.WriteAt([]byte("H"), 2*PageSize+1); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); b[PageSize] != 'g' || b[2*PageSize] != 'h' {
		t.Errorf("the file has %q and %q, want the guest's 'g' and 'h'", b[PageSize], b[2*PageSize])
	}
	if g[PageSize+1] != 'H' {
		t.Errorf("the guest reads %q, want the file's new 'H'", g[PageSize+1])
	}
	for _, c := range []struct {
		a GuestAddr
		n uint64
	}{{a, 1}, {a + PageSize, PageSize}, {a + 2*PageSize, 1}, {m.sharedLo - 8, 16}} {
		if _, err := m.Slice(c.a, c.n); err == nil {
			t.Errorf("Slice(%#x, %d) in the shared area succeeded", c.a, c.n)
		}
	}
	if e := m.Msync(a, 2*PageSize, unix.MS_SYNC); e != 0 {
		t.Errorf("msync: %v", e)
	}
	if e := m.Msync(a, 2*PageSize, unix.MS_SYNC|unix.MS_ASYNC); e != unix.EINVAL {
		t.Errorf("msync with MS_SYNC|MS_ASYNC: %v", e)
	}
	if e := m.Msync(a+4*PageSize, PageSize, unix.MS_SYNC); e != unix.ENOMEM {
		t.Errorf("msync of unmapped pages: %v", e)
	}
	// Nothing else maps in the area, fixed or not.
	if _, e := m.Mmap(a+4*PageSize, PageSize, unix.PROT_READ|unix.PROT_WRITE, Fixed); e != unix.ENOMEM {
		t.Errorf("a fixed mapping in the shared area: %v, want ENOMEM", e)
	}
	if b, e := m.Mmap(a+4*PageSize, PageSize, unix.PROT_READ, 0); e != 0 || m.inShared(b, PageSize) {
		t.Errorf("a hint in the shared area: %#x %v", b, e)
	}
	if e := m.Munmap(a, 2*PageSize); e != 0 {
		t.Fatal(e)
	}
	if n := m.SharedPages(); n != 0 || !bytes.Equal(m.hostBytes(a, 2*PageSize), make([]byte, 2*PageSize)) {
		t.Errorf("after munmap: %d pages counted shared, or not zeros", n)
	}
	if got, _ := os.ReadFile(path); got[PageSize] != 'g' || got[2*PageSize] != 'h' || got[2*PageSize+1] != 'H' {
		t.Error("the file changed when the guest unmapped it")
	}
	if b, e := m.MmapShared(PageSize, int(f.Fd()), 0); e != 0 || b != a {
		t.Errorf("the area used again: %#x %v, want %#x", b, e, a)
	}

	// A read-only descriptor cannot be mapped shared and writable.
	ro, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if _, e := m.MmapShared(PageSize, int(ro.Fd()), 0); e != unix.EACCES {
		t.Errorf("a read-only descriptor: %v, want EACCES", e)
	}
	// At most maxSharedMaps at once.
	n := 1
	for ; n < maxSharedMaps+10; n++ {
		if _, e := m.MmapShared(PageSize, int(f.Fd()), 0); e != 0 {
			break
		}
	}
	if n != maxSharedMaps {
		t.Errorf("%d shared mappings, want at most %d", n, maxSharedMaps)
	}
}
