package guestmem

import "golang.org/x/sys/unix"

// Shared file mappings. A writable MAP_SHARED mapping of a host file (a
// volume's) cannot be a copy: the guest's stores must reach the file, and
// other processes' must show, as SQLite's write-ahead-log index (its
// -shm file) needs between the processes sharing a database. MapShared
// replaces the host pages behind such guest pages with a shared mapping of
// the file itself, so the guest's loads and stores reach the host's page
// cache through KVM, coherent with every other mapping of the file.
//
// Those pages are the file's, and the file can shrink under them (any
// process may truncate it): the host raises SIGBUS for a page past its
// end. So the monitor never reads or writes them: Slice fails for a range
// with a shared page in it, and a system call given a buffer there answers
// EFAULT. The guest touching such a page itself faults in KVM, which ends
// the VM (Linux would send it SIGBUS, which ends a Go program too).
//
// In the chunk accounting (hold.go) a shared page is like any other: its
// chunk is held when touched and counts against the limit, and reclaim
// keeps a chunk while the file's page there is in the page cache.

// MapShared backs the guest pages [a, a+length), which the guest has just
// mapped (Mmap), with a shared mapping of length bytes of the file fd
// from offset off, readable and writable. On failure (the host's errno:
// EACCES for a descriptor not open for reading and writing, ENODEV for a
// file that cannot be mapped) the pages stay anonymous.
func (m *Memory) MapShared(a GuestAddr, length uint64, fd int, off int64) unix.Errno {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, lo, hi, e := m.pages(a, length, unix.EINVAL)
	if e != 0 {
		return e
	}
	if r.alloc.count(lo, hi) != hi-lo {
		return unix.EINVAL
	}
	b := r.host[lo*PageSize : hi*PageSize]
	if err := remap(b, fd, off); err != nil {
		// The host checks its arguments before it unmaps anything; if it
		// failed later, the range has a hole, which must not stay.
		vec := make([]byte, hi-lo)
		if mincore(b, vec) == unix.ENOMEM {
			remap(b, -1, 0)
		}
		return err.(unix.Errno)
	}
	m.sharedMu.Lock()
	m.shared.Add(int64(r.shared.set(lo, hi)))
	m.sharedMu.Unlock()
	return 0
}

// unshare makes the shared pages of [lo, hi) in r anonymous again, for
// munmap or a mapping made over them, so that zero clears them. Called
// with mu held.
func (m *Memory) unshare(r *region, lo, hi uint64) {
	if m.shared.Load() == 0 {
		return
	}
	m.sharedMu.Lock()
	defer m.sharedMu.Unlock()
	r.sharedRuns(lo, hi, func(b []byte) error {
		// Over a mapping of the same size: the kernel has the memory.
		remap(b, -1, 0)
		m.shared.Add(-int64(len(b) / PageSize))
		return nil
	})
	r.shared.clear(lo, hi)
}

// sharedRuns calls fn with the host bytes of each run of shared pages in
// [lo, hi), until it fails. Called with sharedMu held.
func (r *region) sharedRuns(lo, hi uint64, fn func(b []byte) error) error {
	for p := lo; p < hi; p++ {
		if !r.shared.get(p) {
			continue
		}
		end := p + 1
		for end < hi && r.shared.get(end) {
			end++
		}
		if err := fn(r.host[p*PageSize : end*PageSize]); err != nil {
			return err
		}
		p = end
	}
	return nil
}

// SharedPages returns how many pages are shared file mappings.
func (m *Memory) SharedPages() int64 { return m.shared.Load() }

// isShared reports whether [off, off+n) of r's host mapping has a shared
// file page in it.
func (m *Memory) isShared(r *region, off, n uint64) bool {
	if m.shared.Load() == 0 {
		return false
	}
	m.sharedMu.RLock()
	defer m.sharedMu.RUnlock()
	return r.shared.count(off/PageSize, (off+n+PageSize-1)/PageSize) != 0
}

// Msync writes the shared file pages of [a, a+length) back to their file,
// as msync does with flags (MS_ASYNC, MS_SYNC, MS_INVALIDATE); other pages
// have nothing to write. Part of the range unmapped is ENOMEM, as on
// Linux.
func (m *Memory) Msync(a GuestAddr, length uint64, flags int) unix.Errno {
	if flags&^(unix.MS_ASYNC|unix.MS_SYNC|unix.MS_INVALIDATE) != 0 || flags&(unix.MS_ASYNC|unix.MS_SYNC) == unix.MS_ASYNC|unix.MS_SYNC {
		return unix.EINVAL
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	r, lo, hi, e := m.mapped(a, length)
	if e != 0 || !m.isShared(r, lo*PageSize, (hi-lo)*PageSize) {
		return e
	}
	m.sharedMu.RLock()
	defer m.sharedMu.RUnlock()
	if err := r.sharedRuns(lo, hi, func(b []byte) error { return unix.Msync(b, flags) }); err != nil {
		return err.(unix.Errno)
	}
	return 0
}
