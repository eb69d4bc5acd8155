package monitor

import (
	"testing"

	"atoll.dev/atoll/monitor/elfimage"
)

// TestFilePages checks which part of a segment the loader maps from the
// image file rather than copies.
func TestFilePages(t *testing.T) {
	const size = 1 << 20
	for _, c := range []struct {
		name           string
		vaddr, off, n  uint64
		fileSize       uint64
		wantLo, wantHi uint64
	}{
		{"whole pages", 0x400000, 0, 0x3000, size, 0, 0x3000},
		{"partial last page", 0x400000, 0, 0x3010, size, 0, 0x3000},
		{"partial first and last pages", 0x400800, 0x800, 0x3000, size, 0x800, 0x2800},
		{"Go's data segment", 0xc6e000, 0x86e000, 0x5b9e0, 16 << 20, 0, 0x5b000},
		{"within one page", 0x400100, 0x100, 0x200, size, 0, 0},
		{"less than a page", 0x400000, 0, 0xfff, size, 0, 0},
		{"offset and address disagree", 0x400000, 0x800, 0x3000, size, 0, 0},
		{"beyond the file", 0x400000, 0, 0x3000, 0x2000, 0, 0},
		{"no file contents (bss)", 0x400000, 0x3000, 0, size, 0, 0},
	} {
		s := elfimage.Segment{Vaddr: c.vaddr, Off: c.off, Data: make([]byte, c.n), Memsz: c.n}
		if lo, hi := filePages(s, c.fileSize); lo != c.wantLo || hi != c.wantHi {
			t.Errorf("%s: filePages = [%#x, %#x), want [%#x, %#x)", c.name, lo, hi, c.wantLo, c.wantHi)
		}
	}
}
