package guestmem

import "golang.org/x/sys/unix"

// Shared file mappings. A writable MAP_SHARED mapping of a host file (a
// volume's) cannot be a copy: the guest's stores must reach the file, and
// other processes' must show, as SQLite's write-ahead-log index (its
// -shm file) needs between the processes sharing a database. MmapShared
// replaces the host pages behind such guest pages with a shared mapping of
// the file itself, so the guest's loads and stores reach the host's page
// cache through KVM, coherent with every other mapping of the file.
//
// Those pages are the file's, and the file can shrink under them (any
// process may truncate it): the host raises SIGBUS for a page past its
// end, and the monitor must never take one. So shared mappings live in an
// area of the low region of their own, the shared area, which nothing else
// is mapped in (mmap, fixed or not, never places anything else there) and
// which Slice refuses whole: the monitor never holds a slice of it, before,
// during or after a mapping, so no page can become the file's under a
// slice, whatever the guest's threads do meanwhile. A system call given a
// buffer there answers EFAULT. The guest touching a page past the file's
// end faults in KVM, which ends the VM (Linux would send it SIGBUS, which
// ends a Go program too).
//
// Each shared mapping is a host mapping of its own, and the host bounds
// their number per process (vm.max_map_count, 65530 by default, which the
// monitor's own Go runtime needs too): at most maxSharedMaps are kept.
//
// In the chunk accounting (hold.go) a shared page is like any other: its
// chunk is held when touched and counts against the limit, and reclaim
// keeps a chunk while the file's page there is in the page cache.

const (
	// sharedSize is the shared area's address space.
	sharedSize = 4 << 30
	// maxSharedMaps bounds the shared mappings kept at once.
	maxSharedMaps = 1024
)

// inShared reports whether [a, a+n) overlaps the shared area.
func (m *Memory) inShared(a GuestAddr, n uint64) bool {
	return n != 0 && a < m.sharedHi && uint64(a)+n > uint64(m.sharedLo)
}

// span is a shared mapping's pages [lo, hi) in the low region.
type span struct{ lo, hi uint64 }

// MmapShared maps length bytes of the file fd from offset off, shared,
// readable and writable, in the shared area, and returns where. ENOMEM
// when the area or maxSharedMaps is exhausted; the host's errno when it
// refuses the file (EACCES for a descriptor not open for reading and
// writing, ENODEV for a file that cannot be mapped).
func (m *Memory) MmapShared(length uint64, fd int, off int64) (GuestAddr, unix.Errno) {
	if length == 0 || length > sharedSize || off < 0 || off%PageSize != 0 {
		return 0, unix.EINVAL
	}
	length = alignUp(length, PageSize)
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.low
	if len(m.sharedMaps) >= maxSharedMaps {
		return 0, unix.ENOMEM
	}
	at, ok := r.alloc.findFree(r.page(m.sharedLo), r.page(m.sharedHi), length/PageSize)
	if !ok {
		return 0, unix.ENOMEM
	}
	b := r.host[at*PageSize : at*PageSize+length]
	if err := remap(b, fd, off); err != nil {
		// The host checks its arguments before it unmaps anything; if it
		// failed later, the range has a hole, which must not stay.
		vec := make([]byte, length/PageSize)
		if mincore(b, vec) == unix.ENOMEM {
			remap(b, -1, 0)
		}
		return 0, err.(unix.Errno)
	}
	end := at + length/PageSize
	r.alloc.set(at, end)
	r.access.set(at, end)
	m.sharedMaps = append(m.sharedMaps, span{at, end})
	return r.base + GuestAddr(at*PageSize), 0
}

// unshare makes the pages of shared mappings in [lo, hi) of the low region
// anonymous again, for munmap, so that zero clears them; a mapping partly
// in the range keeps the rest. On failure (the host out of mappings) the
// pages that could not be stay shared. Called with mu held.
func (m *Memory) unshare(lo, hi uint64) unix.Errno {
	kept := m.sharedMaps[:0:0]
	var e unix.Errno
	for _, s := range m.sharedMaps {
		clo, chi := max(s.lo, lo), min(s.hi, hi)
		if clo >= chi || e != 0 {
			kept = append(kept, s)
			continue
		}
		// Over a mapping of the same size: the kernel has the memory.
		if err := remap(m.low.host[clo*PageSize:chi*PageSize], -1, 0); err != nil {
			e = err.(unix.Errno)
			kept = append(kept, s)
			continue
		}
		if s.lo < clo {
			kept = append(kept, span{s.lo, clo})
		}
		if chi < s.hi {
			kept = append(kept, span{chi, s.hi})
		}
	}
	m.sharedMaps = kept
	return e
}

// SharedPages returns how many pages are shared file mappings.
func (m *Memory) SharedPages() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var n uint64
	for _, s := range m.sharedMaps {
		n += s.hi - s.lo
	}
	return n
}

// Msync writes the shared file pages of [a, a+length) back to their file,
// as msync does with flags (MS_ASYNC, MS_SYNC, MS_INVALIDATE); other pages
// have nothing to write. Part of the range unmapped is ENOMEM, as on
// Linux. The writes happen without the lock: a mapping changed meanwhile
// is written, or is anonymous memory that has nothing to write.
func (m *Memory) Msync(a GuestAddr, length uint64, flags int) unix.Errno {
	if flags&^(unix.MS_ASYNC|unix.MS_SYNC|unix.MS_INVALIDATE) != 0 || flags&(unix.MS_ASYNC|unix.MS_SYNC) == unix.MS_ASYNC|unix.MS_SYNC {
		return unix.EINVAL
	}
	m.mu.Lock()
	r, lo, hi, e := m.mapped(a, length)
	var runs [][]byte
	if e == 0 && r == m.low {
		for _, s := range m.sharedMaps {
			if clo, chi := max(s.lo, lo), min(s.hi, hi); clo < chi {
				runs = append(runs, r.host[clo*PageSize:chi*PageSize])
			}
		}
	}
	m.mu.Unlock()
	if e != 0 {
		return e
	}
	for _, b := range runs {
		if err := unix.Msync(b, flags); err != nil {
			return err.(unix.Errno)
		}
	}
	return 0
}
