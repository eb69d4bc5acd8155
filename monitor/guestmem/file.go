package guestmem

import "fmt"

// MapFile backs the guest pages [a, a+length) with the file fd's bytes from
// offset off, copy-on-write: the guest reads the file's pages, which every
// VM mapping the same file shares in the host's page cache, and a page it
// writes becomes a private copy. It is how the image is loaded: an
// executable's text and read-only data are most of a small guest's
// memory. a, length and off must be page-aligned, and the pages must lie
// between the system area and the mmap arena (the image's and the initial
// stack's, which New allocates): the guest can neither unmap nor discard
// those, so they never need to read as zeros again.
func (m *Memory) MapFile(a GuestAddr, length uint64, fd int, off int64) error {
	if a%PageSize != 0 || length%PageSize != 0 || off%PageSize != 0 || off < 0 || length == 0 {
		return fmt.Errorf("map file at %#x (+%#x, offset %#x): unaligned", a, length, off)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.low // identity-mapped: a is an offset in r.host
	end := uint64(a) + length
	if a < SystemBase+SystemSize || end < uint64(a) || end > r.arena*PageSize {
		return fmt.Errorf("map file at %#x (+%#x): %w: not below the mmap arena", a, length, ErrFault)
	}
	if err := mapFile(r.host[a:end], fd, off); err != nil {
		return fmt.Errorf("map file at %#x (+%#x): %w", a, length, err)
	}
	return nil
}
