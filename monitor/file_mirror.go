package monitor

import (
	"sync"

	"atoll.dev/atoll/monitor/guestmem"
)

// A read-only MAP_SHARED mapping of a file is a copy (sys_memory.go),
// where Linux's shows every later write to the file. Programs read through
// such a mapping what they write with pwrite: bbolt (etcd's storage) reads
// its meta pages and B+tree that way, and with a stale copy it lost its
// own commits ("page 3 already freed"). So the guest's own writes are kept
// coherent: every write the guest makes to a file through the monitor is
// also copied into the guest's shared read-only mappings of that file (the
// mirrors). Writes by the host's other processes are not seen
// (docs/abi.md, section 3).

// mirrors are the guest's shared read-only file mappings.
type mirrors struct {
	mu   sync.Mutex
	maps []mirror
}

// mirror is one mapping: length bytes of file (dev, ino) from offset off,
// at guest address addr.
type mirror struct {
	dev, ino uint64
	addr     uint64
	off      int64
	length   uint64
}

// add records a mapping.
func (ms *mirrors) add(m mirror) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	ms.maps = append(ms.maps, m)
}

// any reports whether there is a mapping to keep coherent.
func (ms *mirrors) any() bool {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	return len(ms.maps) != 0
}

// forget drops the guest pages of [a, a+n) from the mappings, before the
// guest unmaps or replaces them (whole pages, as munmap does): the rest of
// a mapping stays coherent.
func (ms *mirrors) forget(a, n uint64) {
	n = (n + guestmem.PageSize - 1) &^ (guestmem.PageSize - 1)
	ms.mu.Lock()
	defer ms.mu.Unlock()
	kept := ms.maps[:0:0]
	for _, m := range ms.maps {
		lo, hi := max(m.addr, a), min(m.addr+m.length, a+n)
		if lo >= hi {
			kept = append(kept, m)
			continue
		}
		if m.addr < lo {
			kept = append(kept, mirror{m.dev, m.ino, m.addr, m.off, lo - m.addr})
		}
		if end := m.addr + m.length; hi < end {
			kept = append(kept, mirror{m.dev, m.ino, hi, m.off + int64(hi-m.addr), end - hi})
		}
	}
	ms.maps = kept
}

// written copies b, just written at offset off of file (dev, ino), into
// the guest's mappings of those bytes. A mapping whose memory cannot be
// held (the limit) is left as it is.
func (ms *mirrors) written(mem *guestmem.Memory, dev, ino uint64, off int64, b []byte) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	for _, m := range ms.maps {
		lo, hi := max(m.off, off), min(m.off+int64(m.length), off+int64(len(b)))
		if m.dev != dev || m.ino != ino || lo >= hi {
			continue
		}
		dst, err := mem.Populate(guestmem.GuestAddr(m.addr+uint64(lo-m.off)), uint64(hi-lo))
		if err == nil {
			copy(dst, b[lo-off:hi-off])
		}
	}
}
