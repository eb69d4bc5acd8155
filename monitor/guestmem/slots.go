package guestmem

// KVM keeps metadata for every page of a memory slot, whether the guest
// touches it or not: on a shadow-paging KVM (kvm_pvm, this project's
// machines) a reverse map entry (8 bytes) and a write-tracking count
// (2 bytes) per 4 KiB page, ~2.5 MiB of host kernel memory per GiB of
// slot. The Go runtime reserves more than 1 GiB of address space
// (PROT_NONE) it never uses, and the heap region is sized for the memory
// limit, so a region is registered with KVM lazily: in granules, one run
// of adjacent granules per slot, as the guest first maps pages in them
// readable or writable. The low region's pages below the mmap arena
// (page tables, system area, image, stack) are registered at once.
//
// A guest that touches memory in no slot (a PROT_NONE reservation it
// never mapped) makes the VM fail, as any access outside its memory does.

// Granules in which a region's memory becomes KVM memory slots.
const (
	// arenaGranule is the low region's: the mmap arena holds many small
	// mappings of the runtime's own (GC metadata, page-allocator
	// summaries), scattered over its reservations.
	arenaGranule = LargePage
	// heapGranule is the heap region's: the Go heap grows in arenas of
	// this size, a few MiB at a time.
	heapGranule = heapHintMin
)

// back registers with KVM the granules of r holding pages [lo, hi) that
// are not registered yet, one slot per run of adjacent granules. Called
// with mu held; on failure, what was registered stays registered.
func (m *Memory) back(r *region, lo, hi uint64) error {
	g, end := lo*PageSize/r.granule, (hi*PageSize+r.granule-1)/r.granule
	for g < end {
		if r.slotted.get(g) {
			g++
			continue
		}
		run := g + 1
		for run < end && !r.slotted.get(run) {
			run++
		}
		if err := m.vm.SetMemory(m.nextSlot, r.phys+g*r.granule, r.host[g*r.granule:run*r.granule]); err != nil {
			return err
		}
		m.nextSlot++
		r.slotted.set(g, run)
		g = run
	}
	return nil
}
