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
