package guestmem

import (
	"encoding/binary"
	"fmt"
	"sync/atomic"
)

// The reservation zone is address space above the initial stack from
// which the guest takes PROT_NONE reservations itself, without an exit
// (the Go runtime makes six of them, ~1.1 GiB, at start-up; the monitor's
// trampoline answers them). Two words in the system area describe it: the
// next free address, which the guest advances with one atomic add per
// reservation, and the zone's end. The monitor records the pages the
// guest has taken as mapped (claim) before every change it makes to the
// address space, so they are mapped by the time anything looks at them;
// its own PROT_NONE reservations come from the zone the same way, and
// nothing else it maps does, nor does a hint into the zone's untaken
// part, so the guest's reservations and the monitor's mappings never
// overlap. Reservations commit nothing: the limit is not involved.
//
// The cursor is guest memory, so the guest can set it to anything: a
// value behind what was recorded changes nothing, one past the zone's end
// records the whole zone, and reservations the guest then makes overlap
// only its own.
type zone struct {
	lo, hi  GuestAddr
	claimed GuestAddr // the pages below it are recorded as mapped
	cursor  *uint64   // the guest's next free address
}

// Zone returns the reservation zone, [lo, hi).
func (m *Memory) Zone() (lo, hi GuestAddr) { return m.zone.lo, m.zone.hi }

// initZone sets up the zone [lo, hi) and its two words at words.
func (m *Memory) initZone(lo, hi, words GuestAddr) error {
	m.zone = zone{lo: lo, hi: hi, claimed: lo}
	if lo == hi {
		return nil
	}
	b, err := m.Slice(words, 16)
	if err != nil || words < SystemBase || words+16 > SystemBase+SystemSize || words%8 != 0 {
		return fmt.Errorf("reservation zone words at %#x: not aligned words of the system area", words)
	}
	binary.LittleEndian.PutUint64(b, uint64(lo))
	binary.LittleEndian.PutUint64(b[8:], uint64(hi))
	m.zone.cursor = word(b)
	return nil
}

// claim records as mapped the zone's pages the guest has taken. Called
// with mu held.
func (m *Memory) claim() {
	if m.zone.cursor == nil {
		return
	}
	upTo := GuestAddr(alignUp(min(atomic.LoadUint64(m.zone.cursor), uint64(m.zone.hi)), PageSize))
	if upTo <= m.zone.claimed {
		return
	}
	m.low.alloc.set(m.low.page(m.zone.claimed), m.low.page(upTo))
	m.zone.claimed = upTo
}

// reserve takes length bytes (whole pages) from the zone for the monitor,
// as the guest's own reservations do, if the zone has them. Called with
// mu held, after claim.
func (m *Memory) reserve(length uint64) (GuestAddr, bool) {
	if m.zone.cursor == nil || length > uint64(m.zone.hi-m.zone.lo) {
		return 0, false
	}
	end := atomic.AddUint64(m.zone.cursor, length)
	at := GuestAddr(end - length)
	if at < m.zone.claimed || end > uint64(m.zone.hi) || end < length {
		return 0, false
	}
	m.claim()
	return at, true
}

// unclaimed reports whether [a, a+length) overlaps the zone's pages the
// guest has not taken, which a hint must not get. Called with mu held.
func (m *Memory) unclaimed(a GuestAddr, length uint64) bool {
	return a < m.zone.hi && uint64(a)+length > uint64(m.zone.claimed)
}
