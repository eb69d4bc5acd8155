// Package guestmem owns a guest's address space: the host memory behind it,
// the KVM memory slots, the page tables, the guest's mmap/munmap
// bookkeeping and the memory limit.
//
// The address space is made of a few large regions, each one host mapping
// (MAP_NORESERVE, so untouched pages cost nothing) registered with KVM as
// memory slots where the guest maps memory (slots.go), mapped with 2 MiB
// pages as the guest holds them (hold.go):
//
//	[0, 2 MiB)          page-table pool; physical only, never mapped, so
//	                    nil dereferences fault
//	[2 MiB, 4 MiB)      system area: monitor-owned code and data pages
//	[image start, end)  the executable's segments
//	stack               the initial thread's stack
//	reservation zone    PROT_NONE reservations the guest takes itself
//	                    (Zone), without the monitor
//	mmap arena          anonymous mappings without a usable hint
//	heap region         placed at the Go runtime's first large hinted
//	                    mmap, so its arena hints succeed at once
//
// The low region is identity-mapped: guest-virtual equals guest-physical.
// The heap region sits at the runtime's hint (0xc000000000 for Go on
// amd64) in the guest's virtual space but just above the low region in its
// physical space, so it fits any CPU's physical-address width (39 bits on
// many Intel parts, 40 under QEMU's emulation): a memory slot above it
// would be refused.
//
// Every access the monitor makes to guest memory goes through Slice, the one
// bounds-checked conversion from guest addresses to host bytes.
package guestmem

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Slots registers host memory as guest-physical memory (kvm.VM does).
type Slots interface {
	SetMemory(slot uint32, gpa uint64, mem []byte) error
}

// GuestAddr is an address in the guest's address space. It cannot be
// dereferenced; Memory.Slice turns it into host bytes after checking bounds.
type GuestAddr uint64

// Page and region granularity.
const (
	PageSize  = 4096
	LargePage = 2 << 20

	// SystemBase is where the monitor's own guest pages live.
	SystemBase GuestAddr = 2 << 20
	// SystemSize is the size of the system area.
	SystemSize = 2 << 20

	ptPoolBase = 0x1000
	ptPoolEnd  = 2 << 20

	// maxUserAddr is the end of the lower canonical half.
	maxUserAddr = 1 << 47

	// heapHintMin is the smallest hinted mapping taken as the Go heap's
	// first arena (the runtime's heapArenaBytes on linux/amd64).
	heapHintMin = 64 << 20
)

// ErrFault is returned for guest addresses outside guest memory.
var ErrFault = errors.New("bad guest address")

// region is one contiguous guest range backed by one host mapping.
type region struct {
	base GuestAddr // guest-virtual
	phys uint64    // guest-physical address of base
	host []byte
	// arena, when non-zero, is the first page index that mmap may hand out.
	arena uint64
	// The bitmaps are guarded by Memory.mu.
	alloc  bitmap // pages the guest has mapped (any protection)
	access bitmap // pages mapped readable or writable
	// slotted marks the granules registered with KVM (slots.go).
	slotted bitmap
	granule uint64 // bytes
	// held marks the 2 MiB chunks present in the page tables (hold.go).
	held heldSet
	// fixed counts the chunks at the region's start that are present
	// from the start and never held or released: the low region's
	// page-table pool and system area.
	fixed uint64
}

func (r *region) end() GuestAddr { return r.base + GuestAddr(len(r.host)) }

// Memory is a guest address space.
type Memory struct {
	vm Slots

	// regions is an immutable sorted slice, replaced under mu when a region
	// is added, so that Slice can read it without locking.
	regions atomic.Pointer[[]*region]

	// mu guards the fields below and the regions' bitmaps.
	mu        sync.Mutex
	limit     uint64  // bytes
	committed uint64  // bytes: the fixed part, the held chunks, Charge's
	peak      uint64  // the most committed has been
	released  uint64  // chunks reclaim has released
	flush     func()  // makes every vCPU drop cached translations (hold.go)
	ptNext    uint64  // next free page-table page (guest-physical)
	systemPT  uint64  // the system area's 4 KiB page table (guest-physical)
	heap      *region // nil until placed at the runtime's hint
	low       *region
	zone      zone
	nextSlot  uint32 // the next KVM memory slot number
	// sharedMaps are the shared file mappings (shared.go).
	sharedMaps []span

	// sharedLo and sharedHi bound the shared area (shared.go), at the top
	// of the low region; set once by New.
	sharedLo, sharedHi GuestAddr
}

// Layout describes the low region.
type Layout struct {
	ImageStart, ImageEnd GuestAddr // page-aligned extent of the executable
	StackSize            uint64
	// ZoneSize is address space the guest hands out itself for PROT_NONE
	// reservations (zone.go), whose cursor and end are the two words at
	// ZoneWords, in the system area; ArenaSize is the space for unhinted
	// mmaps above it.
	ZoneSize  uint64
	ZoneWords GuestAddr
	ArenaSize uint64
}

// stackTop is the top of the initial stack: a 2 MiB gap of unallocated
// (but mapped) addresses separates it from the image.
func (l Layout) stackTop() uint64 {
	stackBase := alignUp(uint64(l.ImageEnd), LargePage) + LargePage
	return stackBase + alignUp(l.StackSize, LargePage)
}

// Committed returns the bytes New counts against the limit from the
// start: the system area. The image and the stack count as the guest
// holds them.
func (l Layout) Committed() uint64 { return SystemSize }

// New creates the low region (system area, image, stack and mmap arena) in
// vm, maps it, and returns the address space and the stack's top.
func New(vm Slots, l Layout, limit uint64) (*Memory, GuestAddr, error) {
	if l.ImageStart < SystemBase+SystemSize {
		return nil, 0, fmt.Errorf("image starts at %#x, inside the monitor's area below %#x", l.ImageStart, SystemBase+SystemSize)
	}
	stackTop := l.stackTop()
	zoneEnd := stackTop + alignUp(l.ZoneSize, LargePage)
	arenaStart := zoneEnd
	sharedLo := arenaStart + alignUp(l.ArenaSize, LargePage)
	end := sharedLo + sharedSize
	if end > maxUserAddr {
		return nil, 0, fmt.Errorf("address space too large: %#x", end)
	}
	m := &Memory{vm: vm, limit: limit, ptNext: ptPoolBase + PageSize, sharedLo: GuestAddr(sharedLo), sharedHi: GuestAddr(end)}
	low, err := m.newRegion(0, 0, end, arenaGranule)
	if err != nil {
		return nil, 0, err
	}
	// Below the reservation zone at once; the zone and the arena as the
	// guest maps them.
	if err := m.back(low, 0, stackTop/PageSize); err != nil {
		unix.Munmap(low.host)
		return nil, 0, err
	}
	m.low = low
	low.arena = stackTop / PageSize
	// Physical-only pages are allocated so mmap never hands them out.
	low.alloc.set(0, uint64(SystemBase)/PageSize)
	m.regions.Store(&[]*region{low})
	if err := m.mapSystemArea(); err != nil {
		return nil, 0, err
	}
	// The page-table pool and the system area are present from the
	// start; the image, the stack and everything above, as the guest
	// holds them (hold.go): an image's untouched .bss or stack costs
	// nothing.
	low.fixed = uint64(SystemBase+SystemSize) / LargePage
	for c := range low.fixed {
		low.held.set(c)
	}
	// The system area is committed from the start; the image and stack
	// are mapped. The gap between image and stack is not mapped by mmap.
	for _, r := range [][2]uint64{
		{uint64(SystemBase), uint64(SystemBase) + SystemSize},
		{uint64(l.ImageStart), stackTop},
	} {
		lo, hi := r[0]/PageSize, r[1]/PageSize
		low.alloc.set(lo, hi)
		low.access.set(lo, hi)
	}
	m.committed = l.Committed()
	low.alloc.set(uint64(SystemBase+SystemSize)/PageSize, uint64(l.ImageStart)/PageSize)
	m.peak = m.committed
	if m.committed > limit {
		return nil, 0, fmt.Errorf("memory limit %d MiB is smaller than the monitor's own area (%d MiB)", limit>>20, m.committed>>20)
	}
	if err := m.initZone(GuestAddr(stackTop), GuestAddr(zoneEnd), l.ZoneWords); err != nil {
		return nil, 0, err
	}
	return m, GuestAddr(stackTop), nil
}

// newRegion allocates host memory for [base, base+size), to be guest-physical
// memory at phys registered with KVM in granules (slots.go); size is a
// multiple of granule. It neither registers nor maps it in the page
// tables.
func (m *Memory) newRegion(base GuestAddr, phys, size, granule uint64) (*region, error) {
	host, err := unix.Mmap(-1, 0, int(size), unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		return nil, fmt.Errorf("reserve %d MiB of host memory: %w", size>>20, err)
	}
	noHugePages(host)
	pages := size / PageSize
	return &region{base: base, phys: phys, host: host, alloc: newBitmap(pages), access: newBitmap(pages),
		slotted: newBitmap(size / granule), granule: granule, held: newHeldSet(size / LargePage)}, nil
}

// Close releases the host memory behind every region. The VM using it
// must be closed first.
func (m *Memory) Close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range *m.regions.Load() {
		if r.host != nil {
			unix.Munmap(r.host)
			r.host = nil
		}
	}
	m.regions.Store(&[]*region{})
}

// CR3 is the guest-physical address of the top-level page table.
func (m *Memory) CR3() uint64 { return ptPoolBase }

// Limit returns the memory limit in bytes.
func (m *Memory) Limit() uint64 { return m.limit }

// Charge counts delta more bytes (fewer when negative) against the limit,
// for guest memory the monitor keeps outside the address space (the
// guest's /tmp); it refuses, changing nothing, what would pass the limit.
func (m *Memory) Charge(delta int64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if delta > 0 && m.committed+uint64(delta) > m.limit {
		return false
	}
	m.committed = uint64(int64(m.committed) + delta)
	m.peak = max(m.peak, m.committed)
	return true
}

// Committed returns the bytes currently counted against the limit.
func (m *Memory) Committed() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.committed
}

func (m *Memory) find(a GuestAddr) *region {
	for _, r := range *m.regions.Load() {
		if a >= r.base && a < r.end() {
			return r
		}
	}
	return nil
}

// Slice returns the host bytes backing [a, a+n). It fails with ErrFault
// unless the whole range lies in guest memory, none of it in the shared
// area (shared.go). n == 0 is valid anywhere.
func (m *Memory) Slice(a GuestAddr, n uint64) ([]byte, error) {
	_, b, err := m.slice(a, n)
	return b, err
}

// slice is Slice, with the region holding the range (nil for n == 0).
func (m *Memory) slice(a GuestAddr, n uint64) (*region, []byte, error) {
	if n == 0 {
		return nil, nil, nil
	}
	if a < SystemBase || uint64(a)+n < uint64(a) {
		return nil, nil, ErrFault
	}
	r := m.find(a)
	if r == nil {
		return nil, nil, ErrFault
	}
	off := uint64(a - r.base)
	if n > uint64(len(r.host))-off || m.inShared(a, n) {
		return nil, nil, ErrFault
	}
	return r, r.host[off : off+n : off+n], nil
}

// GuestSlice is Slice for a range the guest named — a system call's
// buffer, its signal stack: it also fails for any part of the page-table
// pool and the monitor's system area. The guest cannot write those pages
// itself (they are mapped for the monitor's code only, or read-only);
// nor may it have the monitor write them for it, or read the monitor's
// data there. Its chunks are held (hold.go): the pages in those the guest
// does not hold yet must be mapped readable or writable, and holding them
// must fit in the limit.
func (m *Memory) GuestSlice(a GuestAddr, n uint64) ([]byte, error) {
	if n != 0 && a < SystemBase+SystemSize {
		return nil, ErrFault
	}
	return m.heldSlice(a, n, true)
}

// Populate is Slice for guest memory the monitor fills for the guest (a
// file it maps, a frame ring), whatever its protection: its chunks are
// held, as GuestSlice's.
func (m *Memory) Populate(a GuestAddr, n uint64) ([]byte, error) {
	return m.heldSlice(a, n, false)
}

func (m *Memory) heldSlice(a GuestAddr, n uint64, check bool) ([]byte, error) {
	r, b, err := m.slice(a, n)
	if err != nil || n == 0 {
		return b, err
	}
	for c := r.chunk(a); c <= r.chunk(a+GuestAddr(n-1)); c++ {
		if !r.held.get(c) {
			m.mu.Lock()
			err = m.holdRange(r, a, n, check)
			m.mu.Unlock()
			break
		}
	}
	if err != nil {
		return nil, err
	}
	return b, nil
}

// ReadU64 reads a little-endian word at a.
func (m *Memory) ReadU64(a GuestAddr) (uint64, error) {
	b, err := m.Slice(a, 8)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b), nil
}

// WriteU64 writes a little-endian word at a.
func (m *Memory) WriteU64(a GuestAddr, v uint64) error {
	b, err := m.Slice(a, 8)
	if err != nil {
		return err
	}
	binary.LittleEndian.PutUint64(b, v)
	return nil
}

// CString reads a NUL-terminated string of at most max bytes at a, an
// address the guest named (as GuestSlice).
func (m *Memory) CString(a GuestAddr, max int) (string, error) {
	if a < SystemBase+SystemSize {
		return "", ErrFault
	}
	var out []byte
	for len(out) < max {
		b, err := m.GuestSlice(a+GuestAddr(len(out)), 1)
		if err != nil {
			return "", err
		}
		if b[0] == 0 {
			return string(out), nil
		}
		out = append(out, b[0])
	}
	return "", fmt.Errorf("string at %#x longer than %d bytes", a, max)
}

func alignUp(v, a uint64) uint64 { return (v + a - 1) &^ (a - 1) }
