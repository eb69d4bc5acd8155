package monitor

import "encoding/binary"

// The fd cache is where the trampoline's fcntl fast path answers F_GETFD
// and F_GETFL of descriptors 0–2 (a Go program asks each at start-up):
// one word per descriptor in the system area, the file's status flags
// with bit 63 set while the word is valid. The monitor publishes the
// console's at boot and a descriptor's whenever it answers one of those
// calls for it, and forgets all three (clears them, so the fast path
// traps) at any change that could make one wrong: a descriptor 0–2
// installed, replaced or closed, or any file's status flags set, which
// dups of 0–2 share. The guest can write the words on kvm_pvm, which
// changes only what its own fcntl calls read.
const (
	fdCacheAddr = zoneEndAddr + 8
	fdCached    = 3 // descriptors 0 to fdCached-1
	fdValid     = 1 << 63
)

// forget clears the cache and counts a change. The caller holds ft.mu.
func (ft *fdTable) forget() {
	ft.gen++
	clear(ft.cache)
}

// flagsChanged forgets the cache after a file's status flags changed.
func (ft *fdTable) flagsChanged() {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	ft.forget()
}

// generation is the count of changes so far, to pass to publish.
func (ft *fdTable) generation() uint64 {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	return ft.gen
}

// publish records the status flags fl of descriptor fd, found when the
// table was at generation gen, unless something has changed since.
func (ft *fdTable) publish(fd uint64, fl int, gen uint64) {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	if fd < fdCached && ft.cache != nil && ft.gen == gen {
		binary.LittleEndian.PutUint64(ft.cache[8*fd:], fdValid|uint64(uint32(fl)))
	}
}

// publishAll publishes descriptors 0–2 as they are now: at boot.
func (ft *fdTable) publishAll() {
	gen := ft.generation()
	for fd := range uint64(fdCached) {
		if f, ok := ft.acquire(fd); ok {
			if fl, e := statusFlags(f.file); e == 0 {
				ft.publish(fd, fl, gen)
			}
			f.release()
		}
	}
}
