package guestmem

import "unsafe"

// word returns the 8-byte-aligned word at the start of b, for atomic
// access: the guest changes it concurrently.
func word(b []byte) *uint64 { return (*uint64)(unsafe.Pointer(unsafe.SliceData(b))) }
