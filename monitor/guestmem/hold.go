package guestmem

import (
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Memory the guest holds. Above the low region's fixed part (the
// page-table pool and the system area: present from the start, counted by
// Layout.Committed), guest memory — the image and the stack included — is
// present in the page tables in 2 MiB chunks, and only once the guest
// holds them: a mapping takes address
// space and no memory, as on Linux. The first touch of a chunk with a
// readable or writable page in it is a page fault that Hold answers: the
// chunk becomes present and counts 2 MiB against the limit. A chunk with
// no such page stays absent, so touching it is a SIGSEGV for the guest,
// as touching a PROT_NONE or unmapped page is on Linux. A system call's
// buffer holds its chunks the same way (GuestSlice), so the monitor never
// writes host memory for the guest that the limit does not count.
//
// Pages the guest gives back (munmap, MADV_DONTNEED, what Go's scavenger
// releases) go back to the host at once (region.zero). For that the host
// must back guest memory with 4 KiB pages (noHugePages): on a host with
// transparent huge pages always on, a chunk the guest touched is one huge
// page, and giving back part of it splits it but leaves the rest resident,
// so the chunk could never be reclaimed. The guest's own page tables map
// 2 MiB pages all the same. The chunk that held
// them is released when the limit is reached: reclaim takes every chunk
// with no host page resident out of the page tables, has every vCPU drop
// its cached translations (the flush hook), and releases those still
// empty, counting 2 MiB less each. So a guest whose resident memory stays
// under the limit runs however much address space it cycles through, and
// the host memory it can make the monitor commit is bounded by the limit
// (plus page tables and KVM's own per-slot metadata): a chunk is resident
// only while held.

// heldSet marks the 2 MiB chunks of a region that are present in the page
// tables. It is read without the lock (GuestSlice) and written with it.
type heldSet []atomic.Uint64

func newHeldSet(chunks uint64) heldSet { return make(heldSet, (chunks+63)/64) }

func (h heldSet) get(c uint64) bool { return h[c/64].Load()&(1<<(c%64)) != 0 }
func (h heldSet) set(c uint64)      { h[c/64].Or(1 << (c % 64)) }
func (h heldSet) clear(c uint64)    { h[c/64].And(^uint64(1 << (c % 64))) }

// HoldResult is what Hold made of a page fault.
type HoldResult int

// Hold's results.
const (
	// HoldDone: the chunk is present (now, or already: another vCPU
	// held it first); the access can be retried.
	HoldDone HoldResult = iota
	// HoldNotMapped: no readable or writable page of the guest's is
	// there; the fault is the guest's own (SIGSEGV).
	HoldNotMapped
	// HoldOutOfMemory: the chunk would take the guest past its limit,
	// and nothing could be reclaimed.
	HoldOutOfMemory
)

// SetFlush sets the hook reclaim calls after taking chunks out of the page
// tables: it must return once no vCPU can use a translation cached before
// the call. Set before the guest runs; without one, nothing is released.
func (m *Memory) SetFlush(flush func()) { m.flush = flush }

// Hold makes the chunk of guest address a present, for a page fault on
// it.
func (m *Memory) Hold(a GuestAddr) HoldResult {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.claim()
	r := m.find(a)
	if r == nil || r.chunk(a) < r.fixed {
		return HoldNotMapped
	}
	c := r.chunk(a)
	if r.held.get(c) {
		return HoldDone
	}
	if p := r.page(a); !r.alloc.get(p) || !r.access.get(p) {
		return HoldNotMapped
	}
	return m.holdChunk(r, c)
}

// holdRange makes the chunks of [a, a+n), which lies in r, present. With
// check, each chunk not yet held must have the range's pages in it
// readable or writable (a buffer the guest named). The chunks it needs
// must fit in the limit together — what reclaim releases for them is
// never one of the range's own, which the monitor is about to write —
// or none is held. Called with mu held.
func (m *Memory) holdRange(r *region, a GuestAddr, n uint64, check bool) error {
	m.claim()
	end := a + GuestAddr(n)
	first, last := r.chunk(a), r.chunk(end-1)
	var need uint64
	for c := first; c <= last; c++ {
		if r.held.get(c) {
			continue
		}
		cb := r.base + GuestAddr(c*LargePage)
		if c < r.fixed {
			return ErrFault // the page-table pool and system area are the monitor's
		}
		if check {
			plo, phi := r.page(max(a, cb)), r.page(min(end, cb+LargePage)-1)+1
			if r.alloc.count(plo, phi) != phi-plo || r.access.count(plo, phi) != phi-plo {
				return ErrFault
			}
		}
		need += LargePage
	}
	if m.committed+need > m.limit && !m.reclaim(need, r, first, last) {
		return ErrFault
	}
	for c := first; c <= last; c++ {
		if !r.held.get(c) && m.holdChunk(r, c) != HoldDone {
			return ErrFault
		}
	}
	return nil
}

// holdChunk makes chunk c of r present and counts it, reclaiming released
// chunks first if the limit is reached. Called with mu held.
func (m *Memory) holdChunk(r *region, c uint64) HoldResult {
	if m.committed+LargePage > m.limit && !m.reclaim(LargePage, r, c, c) {
		return HoldOutOfMemory
	}
	lo := c * LargePage / PageSize
	if m.back(r, lo, lo+LargePage/PageSize) != nil {
		return HoldOutOfMemory
	}
	va := r.base + GuestAddr(c*LargePage)
	if m.mapRange(va, va+LargePage, r.phys+c*LargePage) != nil {
		return HoldOutOfMemory
	}
	r.held.set(c)
	m.committed += LargePage
	m.peak = max(m.peak, m.committed)
	return HoldDone
}

// reclaim releases every held chunk above the fixed part with no host page
// resident (for the image's pages mapped from its file, none in the page
// cache either, so nothing is lost), except chunks first to last of keep, and reports whether need
// more bytes then fit in the limit. Called with mu held.
func (m *Memory) reclaim(need uint64, keep *region, first, last uint64) bool {
	if m.flush == nil {
		return false
	}
	type held struct {
		r *region
		c uint64
	}
	var empty []held
	for _, r := range *m.regions.Load() {
		for c := r.fixed; c < uint64(len(r.host))/LargePage; c++ {
			if r.held.get(c) && !(r == keep && c >= first && c <= last) && !r.resident(c) {
				empty = append(empty, held{r, c})
			}
		}
	}
	if len(empty) == 0 {
		return false
	}
	for _, e := range empty {
		m.clearPTE(e.r.base + GuestAddr(e.c*LargePage))
	}
	m.flush()
	// A vCPU may have touched a chunk between the first look and the
	// flush: it stays held.
	for _, e := range empty {
		va := e.r.base + GuestAddr(e.c*LargePage)
		if e.r.resident(e.c) {
			m.mapRange(va, va+LargePage, e.r.phys+e.c*LargePage) // the entry's tables exist: no error
			continue
		}
		e.r.held.clear(e.c)
		m.committed -= LargePage
		m.released++
	}
	return m.committed+need <= m.limit
}

// Released returns how many chunks reclaim has released.
func (m *Memory) Released() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.released
}

// Peak returns the most bytes ever counted against the limit.
func (m *Memory) Peak() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.peak
}

// resident reports whether any host page of chunk c is in memory.
func (r *region) resident(c uint64) bool {
	var vec [LargePage / PageSize]byte
	b := r.host[c*LargePage : (c+1)*LargePage]
	if err := mincore(b, vec[:]); err != nil {
		return true // cannot tell: keep it
	}
	for _, v := range vec {
		if v&1 != 0 {
			return true
		}
	}
	return false
}

// noHugePages asks the host to back b with 4 KiB pages, whatever its
// transparent-huge-page policy (see above). A kernel without them refuses
// the advice, which is then moot.
func noHugePages(b []byte) { unix.Madvise(b, unix.MADV_NOHUGEPAGE) }

// chunk returns the index in r of the 2 MiB chunk holding a.
func (r *region) chunk(a GuestAddr) uint64 { return uint64(a-r.base) / LargePage }
