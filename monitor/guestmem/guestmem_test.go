package guestmem

import (
	"encoding/binary"
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

// fakeSlots records memory slots instead of registering them with KVM;
// it refuses slots beyond max, when max is set.
type fakeSlots struct {
	gpas, sizes []uint64
	max         int
}

func (f *fakeSlots) SetMemory(slot uint32, gpa uint64, mem []byte) error {
	if int(slot) != len(f.gpas) {
		return errors.New("slots out of order")
	}
	if f.max != 0 && len(f.gpas) == f.max {
		return errors.New("no more slots")
	}
	f.gpas, f.sizes = append(f.gpas, gpa), append(f.sizes, uint64(len(mem)))
	return nil
}

const (
	testImageStart = 0x400000
	testImageEnd   = 0x600000
	testLimit      = 256 << 20
)

func newTest(t *testing.T) (*Memory, GuestAddr, *fakeSlots) {
	t.Helper()
	f := &fakeSlots{}
	m, stackTop, err := New(f, Layout{ImageStart: testImageStart, ImageEnd: testImageEnd, StackSize: 1 << 20, ArenaSize: 1 << 30}, testLimit)
	if err != nil {
		t.Fatal(err)
	}
	return m, stackTop, f
}

// walk translates a through the guest page tables as the MMU would, for
// a user-mode write.
func (m *Memory) walk(a uint64) (uint64, bool) {
	e, ok := m.leaf(a)
	if !ok || e&pteUser == 0 || e&pteWrite == 0 {
		return 0, false
	}
	if e&pteLarge != 0 {
		return e&^(LargePage-1)&^(1<<63) + a&(LargePage-1), true
	}
	return e&^(PageSize-1)&^(1<<63) + a&(PageSize-1), true
}

// leaf returns the entry that maps a: a 2 MiB page's, or a 4 KiB page's.
func (m *Memory) leaf(a uint64) (uint64, bool) {
	table := m.CR3()
	for shift := 39; shift >= 12; shift -= 9 {
		e := binary.LittleEndian.Uint64(m.low.host[table+((a>>shift)&511)*8:])
		if e&ptePresent == 0 {
			return 0, false
		}
		if shift == 12 || shift == 21 && e&pteLarge != 0 {
			return e, true
		}
		table = e &^ 0xfff
	}
	return 0, false
}

func TestPageTablesIdentityMap(t *testing.T) {
	m, stackTop, _ := newTest(t)
	end := uint64(m.sharedLo) // the arena's end
	if p, ok := m.walk(uint64(SystemBase)); !ok || p != uint64(SystemBase) {
		t.Errorf("walk(%#x) = %#x, %v; want identity", uint64(SystemBase), p, ok)
	}
	// The image and the stack are mapped as the guest holds them.
	held := []uint64{testImageStart, testImageEnd - 1, uint64(stackTop) - 8}
	for _, a := range held {
		if p, ok := m.walk(a); ok {
			t.Errorf("walk(%#x) = %#x before the guest held it", a, p)
		}
	}
	for _, a := range held {
		if h := m.Hold(GuestAddr(a)); h != HoldDone {
			t.Fatalf("Hold(%#x): %v", a, h)
		}
		if p, ok := m.walk(a); !ok || p != a {
			t.Errorf("walk(%#x) = %#x, %v once held; want identity", a, p, ok)
		}
	}
	// Above the stack, the arena is mapped as the guest holds it.
	if _, e := m.Mmap(GuestAddr(end-PageSize), PageSize, unix.PROT_READ|unix.PROT_WRITE, Fixed); e != 0 {
		t.Fatal(e)
	}
	if p, ok := m.walk(end - 1); ok {
		t.Errorf("walk(%#x) = %#x before the guest held it", end-1, p)
	}
	if h := m.Hold(GuestAddr(end - 1)); h != HoldDone {
		t.Fatalf("Hold: %v", h)
	}
	if p, ok := m.walk(end - 1); !ok || p != end-1 {
		t.Errorf("walk(%#x) = %#x, %v once held; want identity", end-1, p, ok)
	}
	for _, a := range []uint64{0, 0x10, 0x1000, uint64(SystemBase) - 1, uint64(stackTop), end, 1 << 46} {
		if p, ok := m.walk(a); ok {
			t.Errorf("walk(%#x) = %#x: mapped, want a fault", a, p)
		}
	}
}

func TestSliceBounds(t *testing.T) {
	m, _, _ := newTest(t)
	end := m.low.end()
	for _, c := range []struct {
		a  GuestAddr
		n  uint64
		ok bool
	}{
		{SystemBase, 8, true},
		{m.sharedLo - 8, 8, true},
		{m.sharedLo - 8, 9, false}, // the shared area (shared.go)
		{end - 8, 8, false},
		{0, 8, false},
		{0x1000, 8, false}, // page tables: physical only
		{end - 8, 9, false},
		{end, 1, false},
		{SystemBase, 1 << 62, false},
		{^GuestAddr(0) - 4, 16, false},
		{0, 0, true},
	} {
		_, err := m.Slice(c.a, c.n)
		if (err == nil) != c.ok {
			t.Errorf("Slice(%#x, %#x): err %v, want ok=%v", c.a, c.n, err, c.ok)
		}
	}
}

func TestMmapAndReuse(t *testing.T) {
	m, _, _ := newTest(t)
	base := m.Committed()
	// Mappings take address space, not memory: more than the limit's
	// worth, of either protection.
	r, e := m.Mmap(0, 1<<30-64<<20, unix.PROT_NONE, 0)
	if e != 0 {
		t.Fatalf("reserve: %v", e)
	}
	if _, e := m.Mmap(r, 2*testLimit, unix.PROT_READ|unix.PROT_WRITE, Fixed); e != 0 {
		t.Fatalf("map twice the limit: %v", e)
	}
	if m.Committed() != base {
		t.Fatalf("mappings counted: %d", m.Committed()-base)
	}
	// A fixed mapping over used memory reads back zero.
	b, _ := m.GuestSlice(r, 8)
	b[0] = 0xaa
	if _, e := m.Mmap(r, 4096, unix.PROT_READ|unix.PROT_WRITE, Fixed); e != 0 {
		t.Fatal(e)
	}
	if b, _ := m.Slice(r, 8); b[0] != 0 {
		t.Fatal("MAP_FIXED did not zero the page")
	}
	if _, e := m.Mmap(r, 4096, unix.PROT_READ, FixedNoReplace); e != unix.EEXIST {
		t.Fatalf("MAP_FIXED_NOREPLACE over a mapping: %v, want EEXIST", e)
	}
	// Unmapping returns the addresses.
	if e := m.Munmap(r, 1<<30-64<<20); e != 0 {
		t.Fatal(e)
	}
	if r2, e := m.Mmap(0, 4096, unix.PROT_READ, 0); e != 0 || r2 != r {
		t.Fatalf("reuse: %#x, %v; want %#x", r2, e, r)
	}
	if _, e := m.Mmap(0, 1<<40, unix.PROT_NONE, 0); e != unix.ENOMEM {
		t.Fatalf("huge mapping: %v, want ENOMEM", e)
	}
}

// TestHold checks what the guest holds: chunks count as they are touched
// (Hold) or named as a buffer (GuestSlice), only where a page is readable
// or writable, up to the limit; released chunks are reclaimed at the
// limit, after a flush, and not while a vCPU's touch left a page there.
func TestHold(t *testing.T) {
	m, _, _ := newTest(t)
	base := m.Committed()
	flushes := 0
	m.SetFlush(func() { flushes++ })
	r, e := m.Mmap(0, 2*testLimit, unix.PROT_READ|unix.PROT_WRITE, 0)
	if e != 0 {
		t.Fatal(e)
	}
	r = GuestAddr(alignUp(uint64(r), LargePage))
	// A PROT_NONE chunk is not held: the guest's own SIGSEGV.
	if _, e := m.Mmap(r, LargePage, unix.PROT_NONE, Fixed); e != 0 {
		t.Fatal(e)
	}
	if h := m.Hold(r + 5); h != HoldNotMapped {
		t.Errorf("Hold in a PROT_NONE chunk: %v", h)
	}
	if _, err := m.GuestSlice(r+5, 8); err != ErrFault {
		t.Errorf("GuestSlice in a PROT_NONE chunk: %v", err)
	}
	if _, err := m.GuestSlice(r+LargePage-4, 8); err != ErrFault {
		t.Errorf("GuestSlice straddling into a PROT_NONE chunk: %v", err)
	}
	if m.Committed() != base {
		t.Fatalf("refused holds counted %d", m.Committed()-base)
	}
	// Fill the limit, chunk by chunk.
	chunks := (testLimit - base) / LargePage
	for i := range chunks {
		a := r + GuestAddr((i+1)*LargePage)
		if i%2 == 0 {
			if h := m.Hold(a); h != HoldDone {
				t.Fatalf("Hold chunk %d: %v", i, h)
			}
		} else if _, err := m.GuestSlice(a+100, 16); err != nil {
			t.Fatalf("GuestSlice chunk %d: %v", i, err)
		}
		b, _ := m.Slice(a, 1)
		b[0] = 1 // the guest writes it
	}
	if got := m.Committed() - base; got != chunks*LargePage {
		t.Fatalf("committed %d, want %d", got, chunks*LargePage)
	}
	next := r + GuestAddr((chunks+1)*LargePage)
	if h := m.Hold(next); h != HoldOutOfMemory || flushes != 0 {
		t.Fatalf("Hold past the limit with nothing released: %v (%d flushes)", h, flushes)
	}
	if _, err := m.GuestSlice(next, 8); err != ErrFault {
		t.Errorf("GuestSlice past the limit: %v", err)
	}
	// The guest gives back two chunks: one whole, one page by page. The
	// next hold reclaims both, with one flush.
	first := r + LargePage
	if e := m.Discard(first, LargePage); e != 0 {
		t.Fatal(e)
	}
	second := r + 2*LargePage
	if e := m.Munmap(second, LargePage/2); e != 0 {
		t.Fatal(e)
	}
	if e := m.Discard(second+LargePage/2, LargePage/2); e != 0 {
		t.Fatal(e)
	}
	if h := m.Hold(next); h != HoldDone || flushes != 1 || m.Released() != 2 {
		t.Fatalf("Hold after releases: %v, %d flushes, %d released", h, flushes, m.Released())
	}
	if _, ok := m.walk(uint64(first)); ok {
		t.Error("a released chunk is still mapped")
	}
	if got := m.Committed() - base; got != (chunks-1)*LargePage {
		t.Fatalf("committed %d after reclaiming, want %d", got, (chunks-1)*LargePage)
	}
	// A released chunk is held again on the next touch, and reads zero.
	if h := m.Hold(first); h != HoldDone {
		t.Fatalf("Hold a released chunk again: %v", h)
	}
	if b, _ := m.Slice(first, 1); b[0] != 0 {
		t.Error("a released chunk kept its data")
	}
	for _, a := range []GuestAddr{first, next} {
		b, _ := m.Slice(a, 1)
		b[0] = 1 // the guest writes both
	}
	// A touch between the first look and the flush keeps the chunk.
	if e := m.Discard(r+3*LargePage, LargePage); e != 0 {
		t.Fatal(e)
	}
	m.SetFlush(func() {
		b, _ := m.Slice(r+3*LargePage, 1)
		b[0] = 7 // a vCPU's write through a cached translation
	})
	if h := m.Hold(next + LargePage); h != HoldOutOfMemory {
		t.Fatalf("Hold with the only released chunk touched again: %v", h)
	}
	if _, ok := m.walk(uint64(r + 3*LargePage)); !ok {
		t.Error("a chunk touched during the flush was unmapped")
	}
}

func TestHeapHint(t *testing.T) {
	m, _, f := newTest(t)
	const hint = GuestAddr(0x1da344000000)
	a, e := m.Mmap(hint, 64<<20, unix.PROT_NONE, 0)
	if e != 0 || a != hint {
		t.Fatalf("first heap hint: %#x, %v; want the hint honoured", a, e)
	}
	// The region sits at the hint in virtual space, and just above the
	// low region in physical space: below 2^39, whatever the hint. Its
	// memory becomes a slot when the guest first holds some of it.
	phys := alignUp(uint64(m.low.end()), 1<<30)
	if len(f.gpas) != 1 {
		t.Fatalf("slots %#x: a reservation was registered", f.gpas)
	}
	if _, e := m.Mmap(hint, 4<<20, unix.PROT_READ|unix.PROT_WRITE, Fixed); e != 0 || len(f.gpas) != 1 {
		t.Fatalf("map: %v, slots %#x", e, f.gpas)
	}
	if h := m.Hold(hint + 12345); h != HoldDone {
		t.Fatal(h)
	}
	if len(f.gpas) != 2 || f.gpas[1] != phys || f.sizes[1] != heapGranule || phys+m.heapSize() > 1<<39 {
		t.Fatalf("slots %#x (sizes %#x), want a second at %#x", f.gpas, f.sizes, phys)
	}
	if p, ok := m.walk(uint64(hint) + 12345); !ok || p != phys+12345 {
		t.Fatalf("heap maps %#x to %#x %v, want %#x", uint64(hint)+12345, p, ok, phys+12345)
	}
	b, err := m.Slice(hint+12345, 1)
	if err != nil || &b[0] != &m.heap.host[12345] {
		t.Fatalf("Slice does not reach the heap's host memory: %v", err)
	}
	// The runtime grows the heap at the next hint, just above.
	if a, e := m.Mmap(hint+64<<20, 64<<20, unix.PROT_NONE, 0); e != 0 || a != hint+64<<20 {
		t.Fatalf("next hint: %#x, %v", a, e)
	}
	// Mprotect on a range that is not all mapped fails, as on Linux.
	if e := m.Mprotect(hint+192<<20, 4096, unix.PROT_READ); e != unix.ENOMEM {
		t.Fatalf("mprotect of unmapped pages: %v, want ENOMEM", e)
	}
	// A hint already taken is not honoured.
	if a, e := m.Mmap(hint, 64<<20, unix.PROT_NONE, 0); e != 0 || a == hint {
		t.Fatalf("taken hint: %#x, %v; want another address", a, e)
	}
}

// TestHeapHintTooLarge: a first hinted mapping larger than the heap region
// (limit-sized) does not get to size the region; it is refused.
func TestHeapHintTooLarge(t *testing.T) {
	m, _, f := newTest(t)
	if _, e := m.Mmap(0x600000000000, 64<<30, unix.PROT_NONE, 0); e != unix.ENOMEM {
		t.Fatalf("64 GiB reservation: %v, want ENOMEM", e)
	}
	if len(f.gpas) != 1 {
		t.Fatalf("a heap region was created: slots %#x", f.gpas)
	}
}

// TestProtectSystem checks the system area's 4 KiB pages take their own
// access, and that ProtectSystem refuses anything outside it.
func TestProtectSystem(t *testing.T) {
	m, _, _ := newTest(t)
	if _, ok := m.walk(uint64(SystemBase) + 0x5000); !ok {
		t.Fatal("system area not open to the guest by default")
	}
	if err := m.ProtectSystem(SystemBase+0x5000, PageSize, SystemKernel); err != nil {
		t.Fatal(err)
	}
	e, ok := m.leaf(uint64(SystemBase) + 0x5123)
	if !ok || e&pteUser != 0 || e&pteWrite != 0 || e&^0xfff != uint64(SystemBase)+0x5000 {
		t.Fatalf("kernel read-only page: %#x %v", e, ok)
	}
	if _, ok := m.walk(uint64(SystemBase) + 0x6000); !ok {
		t.Fatal("the next page changed too")
	}
	m.ProtectSystem(SystemBase+0x7000, PageSize, SystemNone)
	if _, ok := m.leaf(uint64(SystemBase) + 0x7000); ok {
		t.Fatal("SystemNone page present")
	}
	for _, bad := range [][2]uint64{{uint64(SystemBase) - PageSize, PageSize}, {uint64(SystemBase) + 1, PageSize},
		{uint64(SystemBase), SystemSize + PageSize}, {uint64(SystemBase) + SystemSize - PageSize, 2 * PageSize}} {
		if err := m.ProtectSystem(GuestAddr(bad[0]), bad[1], SystemKernel); err == nil {
			t.Errorf("ProtectSystem(%#x, %#x) accepted", bad[0], bad[1])
		}
	}
}

// TestCorruptTablesRefused checks that a page-table entry pointing outside
// the pool is an error, not a host slice out of range.
func TestCorruptTablesRefused(t *testing.T) {
	m, _, _ := newTest(t)
	const base = GuestAddr(0x100000000000)
	m.putPTE(ptPoolBase, (uint64(base)>>39)&511, 0x7fff000|ptePresent|pteWrite|pteUser)
	if err := m.mapRange(base, base+LargePage, 1<<30); err == nil {
		t.Fatal("mapRange followed an entry outside the pool")
	}
	m.clearPTE(base) // must not panic
}

// TestZone checks the reservation zone: the monitor's PROT_NONE
// reservations come from it and advance the guest's cursor; nothing else
// it maps does, nor a hint into its untaken part; what the guest takes by
// advancing the cursor is mapped before the next change — only forward,
// and only within the zone.
func TestZone(t *testing.T) {
	f := &fakeSlots{}
	const zoneSize, words = 64 << 20, SystemBase + 0x3820
	m, stackTop, err := New(f, Layout{ImageStart: testImageStart, ImageEnd: testImageEnd, StackSize: 1 << 20, ZoneSize: zoneSize, ZoneWords: words, ArenaSize: 1 << 30}, testLimit)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	lo, hi := m.Zone()
	cursor := func() GuestAddr { v, _ := m.ReadU64(words); return GuestAddr(v) }
	if end, _ := m.ReadU64(words + 8); lo != stackTop || hi != lo+zoneSize || cursor() != lo || GuestAddr(end) != hi {
		t.Fatalf("zone [%#x, %#x), words %#x %#x, stack top %#x", lo, hi, cursor(), end, stackTop)
	}
	if a, e := m.Mmap(0, 1<<20, unix.PROT_NONE, 0); e != 0 || a != lo || cursor() != lo+1<<20 {
		t.Errorf("the monitor's reservation at %#x (%v), cursor %#x; want the zone's start", a, e, cursor())
	}
	if a, e := m.Mmap(0, 1<<20, unix.PROT_READ, 0); e != 0 || a < hi {
		t.Errorf("a readable mapping at %#x (%v), inside the zone", a, e)
	}
	if a, e := m.Mmap(lo+2<<20, PageSize, unix.PROT_READ, 0); e != 0 || a == lo+2<<20 {
		t.Errorf("a hint into the untaken zone was taken: %#x (%v)", a, e)
	}
	if e := m.Mprotect(lo+1<<20, PageSize, unix.PROT_READ); e != unix.ENOMEM {
		t.Errorf("mprotect of an untaken zone page: %v, want ENOMEM", e)
	}
	// The guest takes 1 MiB and a page itself; the claim rounds up.
	m.WriteU64(words, uint64(lo+2<<20+1))
	if e := m.Mprotect(lo+1<<20, 1<<20+PageSize, unix.PROT_READ|unix.PROT_WRITE); e != 0 {
		t.Errorf("mprotect of pages the guest took: %v", e)
	}
	if e := m.Mprotect(lo+2<<20+PageSize, PageSize, unix.PROT_READ); e != unix.ENOMEM {
		t.Errorf("mprotect past what the guest took: %v, want ENOMEM", e)
	}
	// A cursor set backwards: nothing is handed out twice by the monitor.
	m.WriteU64(words, uint64(lo))
	if a, e := m.Mmap(0, 1<<20, unix.PROT_NONE, 0); e != 0 || (a >= lo && a < lo+2<<20+PageSize) {
		t.Errorf("after the cursor went back, a reservation at %#x (%v) over taken pages", a, e)
	}
	// A cursor past the zone: all of it is taken, nothing beyond.
	m.WriteU64(words, ^uint64(0))
	arena := m.low.alloc.count(m.low.page(hi), m.low.page(hi)+4096)
	if e := m.Mprotect(hi-PageSize, PageSize, unix.PROT_READ); e != 0 || m.zone.claimed != hi || m.low.alloc.count(m.low.page(hi), m.low.page(hi)+4096) != arena {
		t.Errorf("a cursor past the zone: %v, claimed %#x", e, m.zone.claimed)
	}
	if a, e := m.Mmap(0, 1<<20, unix.PROT_NONE, 0); e != 0 || a < hi {
		t.Errorf("a reservation with the zone used up at %#x (%v), want the arena", a, e)
	}
	// Taken pages unmapped are free for hints again.
	if e := m.Munmap(lo, PageSize); e != 0 {
		t.Fatal(e)
	}
	if a, e := m.Mmap(lo, PageSize, unix.PROT_READ, 0); e != 0 || a != lo {
		t.Errorf("a hint at an unmapped zone page: %#x (%v)", a, e)
	}
}

// TestHoldRangeWhole checks that a buffer needing more than the limit
// fails whole: reclaim never releases its own chunks to make room for the
// rest (the monitor is about to write all of them).
func TestHoldRangeWhole(t *testing.T) {
	m, _, _ := newTest(t)
	m.SetFlush(func() {})
	base := m.Committed()
	r, e := m.Mmap(0, 4*testLimit, unix.PROT_READ|unix.PROT_WRITE, 0)
	if e != 0 {
		t.Fatal(e)
	}
	if _, err := m.GuestSlice(r, 2*testLimit); err != ErrFault {
		t.Fatalf("a buffer of twice the limit: %v, want ErrFault", err)
	}
	if m.Committed() != base || m.Released() != 0 {
		t.Fatalf("a refused buffer held %d bytes, released %d chunks", m.Committed()-base, m.Released())
	}
	if _, err := m.GuestSlice(r, testLimit-base); err != nil {
		t.Fatalf("a buffer of what is left: %v", err)
	}
}
