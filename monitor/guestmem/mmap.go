package guestmem

import (
	"golang.org/x/sys/unix"
)

// MapFlags modify Mmap.
type MapFlags int

// Mmap flags, as MAP_FIXED and MAP_FIXED_NOREPLACE.
const (
	Fixed          MapFlags = 1 << iota // replace whatever is at the hint
	FixedNoReplace                      // map at the hint, EEXIST if taken
)

// Mmap maps length bytes of anonymous, zeroed memory and returns where.
// With Fixed, the mapping replaces whatever was at hint. Otherwise hint is
// honoured when it can be (the Go heap's arena hints) and ignored when not,
// as Linux does. A mapping takes address space only: memory counts against
// the limit as the guest holds it (hold.go).
func (m *Memory) Mmap(hint GuestAddr, length uint64, prot int, flags MapFlags) (GuestAddr, unix.Errno) {
	fixed := flags&(Fixed|FixedNoReplace) != 0
	if length == 0 || length > maxUserAddr || (fixed && hint%PageSize != 0) {
		return 0, unix.EINVAL
	}
	length = alignUp(length, PageSize)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.claim()

	var r *region
	var at GuestAddr
	switch {
	case fixed:
		if r = m.mappable(hint, length); r == nil || m.inShared(hint, length) {
			return 0, unix.ENOMEM
		}
		if flags&FixedNoReplace != 0 && r.alloc.count(r.page(hint), r.page(hint)+length/PageSize) != 0 {
			return 0, unix.EEXIST
		}
		at = hint
	case hint != 0 && hint%PageSize == 0:
		if r = m.mappable(hint, length); r != nil && !m.inShared(hint, length) && r.alloc.count(r.page(hint), r.page(hint)+length/PageSize) == 0 && !m.unclaimed(hint, length) {
			at = hint
		} else if m.heap == nil && length >= heapHintMin && length <= m.heapSize() {
			if err := m.createHeap(hint, length); err == nil {
				r, at = m.heap, hint
			}
		}
	}
	if at == 0 && prot == unix.PROT_NONE {
		if a, ok := m.reserve(length); ok {
			return a, 0
		}
	}
	if at == 0 {
		r = m.low
		i, ok := r.alloc.findFree(r.page(m.zone.hi), r.page(m.sharedLo), length/PageSize)
		if !ok {
			return 0, unix.ENOMEM
		}
		at = r.base + GuestAddr(i*PageSize)
	}
	lo, hi := r.page(at), r.page(at)+length/PageSize
	if prot != unix.PROT_NONE {
		r.access.set(lo, hi)
	} else {
		r.access.clear(lo, hi)
	}
	if r.alloc.count(lo, hi) != 0 {
		r.zero(lo, hi)
	}
	r.alloc.set(lo, hi)
	return at, 0
}

// Munmap removes mappings in [a, a+length). Unmapped pages in the range are
// not an error, as on Linux.
func (m *Memory) Munmap(a GuestAddr, length uint64) unix.Errno {
	if length == 0 {
		return unix.EINVAL
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.claim()
	r, lo, hi, e := m.pages(a, length, unix.EINVAL)
	if e != 0 {
		return e
	}
	if r == m.low {
		if e := m.unshare(lo, hi); e != 0 {
			return e // as Linux when unmapping needs a mapping the host refuses
		}
	}
	r.access.clear(lo, hi)
	r.alloc.clear(lo, hi)
	r.zero(lo, hi)
	return 0
}

// Mprotect changes whether the guest may hold [a, a+length): a chunk
// (hold.go) with no readable or writable page is never present, so
// touching it is a SIGSEGV; in a chunk the guest holds, every page is
// accessible whatever its protection (see docs/abi.md).
func (m *Memory) Mprotect(a GuestAddr, length uint64, prot int) unix.Errno {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, lo, hi, e := m.mapped(a, length)
	if e != 0 {
		return e
	}
	if prot == unix.PROT_NONE {
		r.access.clear(lo, hi)
	} else {
		r.access.set(lo, hi)
	}
	return 0
}

// Discard releases the host pages behind [a, a+length); the guest reads
// zeros there afterwards, or the file's bytes for a shared file mapping
// (MADV_DONTNEED semantics).
func (m *Memory) Discard(a GuestAddr, length uint64) unix.Errno {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.claim()
	r, lo, hi, e := m.pages(a, length, unix.ENOMEM)
	if e != 0 {
		return e
	}
	r.zero(lo, hi)
	return 0
}

// mapped is pages for a range the guest must have mapped whole: ENOMEM,
// as on Linux, if part of it is not. Called with mu held.
func (m *Memory) mapped(a GuestAddr, length uint64) (*region, uint64, uint64, unix.Errno) {
	m.claim()
	r, lo, hi, e := m.pages(a, length, unix.ENOMEM)
	if e == 0 && r.alloc.count(lo, hi) != hi-lo {
		e = unix.ENOMEM
	}
	return r, lo, hi, e
}

// pages resolves a page-aligned guest range to its region and page
// indices; outside is the error for a range no region can hold. Called
// with mu held.
func (m *Memory) pages(a GuestAddr, length uint64, outside unix.Errno) (*region, uint64, uint64, unix.Errno) {
	if a%PageSize != 0 || length > maxUserAddr {
		return nil, 0, 0, unix.EINVAL
	}
	length = alignUp(length, PageSize)
	r := m.mappable(a, length)
	if r == nil {
		return nil, 0, 0, outside
	}
	return r, r.page(a), r.page(a) + length/PageSize, 0
}

// mappable returns the region in which the guest may map [a, a+length).
func (m *Memory) mappable(a GuestAddr, length uint64) *region {
	if uint64(a)+length < uint64(a) {
		return nil
	}
	for _, r := range *m.regions.Load() {
		if a >= r.base+GuestAddr(r.arena*PageSize) && uint64(a)+length <= uint64(r.end()) {
			return r
		}
	}
	return nil
}

// heapSize is the heap region's size: four times the limit, rounded up to
// whole arenas, plus one. Address space is cheap (hold.go): the room lets
// a heap that frees what it allocates grow past the limit in address
// space, as Go's does when what it frees does not fit what it allocates
// next.
func (m *Memory) heapSize() uint64 { return alignUp(4*m.limit, heapHintMin) + heapHintMin }

// createHeap adds the heap region at base, sized for the memory limit.
// On failure nothing of it remains.
func (m *Memory) createHeap(base GuestAddr, length uint64) error {
	size := m.heapSize()
	if length > size || base%LargePage != 0 || base < m.low.end() || base >= maxUserAddr || uint64(base)+size > maxUserAddr {
		return unix.EINVAL
	}
	phys := alignUp(uint64(m.low.end()), 1<<30)
	r, err := m.newRegion(base, phys, size, heapGranule)
	if err != nil {
		return err
	}
	m.heap = r
	rs := append(append([]*region(nil), *m.regions.Load()...), r)
	m.regions.Store(&rs)
	return nil
}

func (r *region) page(a GuestAddr) uint64 { return uint64(a-r.base) / PageSize }

// zero discards the host pages of [lo, hi) so they read as zero.
func (r *region) zero(lo, hi uint64) {
	unix.Madvise(r.host[lo*PageSize:hi*PageSize], unix.MADV_DONTNEED)
}
