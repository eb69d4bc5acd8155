package vdso

import (
	"sync/atomic"
	"unsafe"
)

// bumpSeq atomically increments the little-endian sequence count at b[0:4]
// (a full barrier on x86, ordering the parameter writes around it).
func bumpSeq(b []byte) {
	_ = b[3]
	atomic.AddUint32((*uint32)(unsafe.Pointer(&b[0])), 1)
}

// storeUint64 atomically stores v, little-endian, at b[0:8], which must be
// 8-byte aligned, so that a guest never reads half of it.
func storeUint64(b []byte, v uint64) {
	_ = b[7]
	atomic.StoreUint64((*uint64)(unsafe.Pointer(&b[0])), v)
}
