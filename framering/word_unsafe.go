package framering

import (
	"sync/atomic"
	"unsafe"
)

// word returns the uint32 at b[off:], which must be 4-byte aligned (the
// region is page-aligned and every offset a multiple of 0x40).
func word(b []byte, off int) *uint32 {
	_ = b[off+3]
	return (*uint32)(unsafe.Pointer(&b[off]))
}

// load, store and cas are the ring's atomics. On amd64 a store is an
// XCHG, a full barrier: a side that stores its index (or its asleep or
// waiting flag) and then reads the other side's flag (or index) cannot
// have the read pass the store, which is what makes the sleep/notify
// handshake lose no wake-up.
func load(p *uint32) uint32             { return atomic.LoadUint32(p) }
func store(p *uint32, v uint32)         { atomic.StoreUint32(p, v) }
func cas(p *uint32, old, v uint32) bool { return atomic.CompareAndSwapUint32(p, old, v) }
