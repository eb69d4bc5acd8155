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

// TestMapShared maps a file shared: the guest's stores reach the file and
// the file's writes show in the guest; Slice refuses the pages (the
// monitor never touches them: the file may shrink under them); msync
// writes them; munmap, and a mapping made over them, leave anonymous,
// zeroed memory again, the file as the guest left it.
func TestMapShared(t *testing.T) {
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
	a, e := m.Mmap(0, 2*PageSize, unix.PROT_READ|unix.PROT_WRITE, 0)
	if e != 0 {
		t.Fatal(e)
	}
	if e := m.MapShared(a, 2*PageSize, int(f.Fd()), PageSize); e != 0 {
		t.Fatal(e)
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
	}{{a, 1}, {a + PageSize, PageSize}, {a - 8, 16}} {
		if _, err := m.Slice(c.a, c.n); err == nil {
			t.Errorf("Slice(%#x, %d) of a shared page succeeded", c.a, c.n)
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
	// A mapping over the second page, then munmap of the first.
	if _, e := m.Mmap(a+PageSize, PageSize, unix.PROT_READ|unix.PROT_WRITE, Fixed); e != 0 {
		t.Fatal(e)
	}
	if b, err := m.Slice(a+PageSize, PageSize); err != nil || !bytes.Equal(b, make([]byte, PageSize)) {
		t.Errorf("a mapping over a shared page: %v, not zeros", err)
	}
	if e := m.Munmap(a, PageSize); e != 0 {
		t.Fatal(e)
	}
	if _, e := m.Mmap(a, PageSize, unix.PROT_READ|unix.PROT_WRITE, Fixed); e != 0 {
		t.Fatal(e)
	}
	b, err := m.Slice(a, 2*PageSize)
	if err != nil || !bytes.Equal(b, make([]byte, 2*PageSize)) {
		t.Fatalf("after munmap: %v, not zeros", err)
	}
	b[0] = 'z'
	if got, _ := os.ReadFile(path); got[PageSize] != 'g' || got[2*PageSize] != 'h' || got[2*PageSize+1] != 'H' {
		t.Error("the file changed after the guest unmapped it")
	}
	if m.shared.Load() != 0 {
		t.Errorf("%d pages still counted shared", m.shared.Load())
	}

	// A read-only descriptor cannot be mapped shared and writable, and
	// leaves the pages anonymous.
	ro, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if e := m.MapShared(a, PageSize, int(ro.Fd()), 0); e != unix.EACCES {
		t.Errorf("a read-only descriptor: %v, want EACCES", e)
	}
	if b, err := m.Slice(a, 1); err != nil || b[0] != 'z' {
		t.Errorf("after a refused MapShared: %v %q", err, b)
	}
}
