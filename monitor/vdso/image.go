// Package vdso is the guest's clock and random generator: a minimal vDSO
// image the monitor places in the guest's system area and announces with
// AT_SYSINFO_EHDR, and the Clock and Random that keep its parameters page.
// It uses nothing of the VM: the monitor hands it the two pages of guest
// memory.
//
// The image is an ELF shared object that exports two functions at version
// LINUX_2.6. __vdso_clock_gettime computes CLOCK_MONOTONIC and
// CLOCK_REALTIME from the TSC and the parameters page the monitor keeps
// (clock.go) without leaving the guest; other clocks fall back to the
// system call. Without it, reading the clock was the most frequent exit.
// __vdso_getrandom is Linux 6.11's, a ChaCha20 generator per caller-owned
// state, keyed by the getrandom system call and rekeyed when the monitor
// bumps a generation count (random.go). The parameters page MUST sit
// immediately below the image.
package vdso

import (
	"encoding/binary"
	"strings"
)

// Layout of the image (one page; offsets are also virtual addresses):
//
//	0x000 ELF header, 0x040 program headers (PT_LOAD, PT_DYNAMIC)
//	0x100 dynamic section   0x200 DT_HASH   0x300 symbols   0x380 strings
//	0x400 version definitions   0x480 symbol versions
//	0x800 __vdso_clock_gettime   0x880 __vdso_getrandom (to 0xc08)
//
// The parameters page sits just below the image; the code addresses it
// RIP-relative (the function's address - 0x1000 - its offset).
const (
	vdsoDynOff    = 0x100
	vdsoHashOff   = 0x200
	vdsoSymOff    = 0x300
	vdsoStrOff    = 0x380
	vdsoVerdefOff = 0x400
	vdsoVersymOff = 0x480
	vdsoClockOff  = 0x800
	vdsoRandomOff = 0x880
)

// Size is the size of the image, and of the parameters page below it.
const Size = 0x1000

// vdsoClockGettime is the machine code of __vdso_clock_gettime(clockid,
// ts), assembled from testdata/clock_gettime.s (vdso_test.go checks
// that they match). CLOCK_MONOTONIC and CLOCK_REALTIME are computed from
// the TSC and the parameters page under its sequence count; any other
// clock is the system call.
var vdsoClockGettime = []byte{
	0x83, 0xff, 0x01, 0x74, 0x04, 0x85, 0xff, 0x75, 0x5f, 0x4c, 0x8d, 0x15,
	0xf0, 0xe7, 0xff, 0xff, 0x45, 0x8b, 0x02, 0x41, 0xf7, 0xc0, 0x01, 0x00,
	0x00, 0x00, 0x75, 0x48, 0x0f, 0xae, 0xe8, 0x0f, 0x31, 0x48, 0xc1, 0xe2,
	0x20, 0x48, 0x09, 0xd0, 0x49, 0x2b, 0x42, 0x08, 0x73, 0x02, 0x31, 0xc0,
	0x41, 0x8b, 0x4a, 0x24, 0x45, 0x8b, 0x4a, 0x20, 0x49, 0xf7, 0xe1, 0x48,
	0x0f, 0xad, 0xd0, 0x49, 0x03, 0x42, 0x10, 0x85, 0xff, 0x75, 0x04, 0x49,
	0x03, 0x42, 0x18, 0x45, 0x3b, 0x02, 0x75, 0xc0, 0xb9, 0x00, 0xca, 0x9a,
	0x3b, 0x31, 0xd2, 0x48, 0xf7, 0xf1, 0x48, 0x89, 0x06, 0x48, 0x89, 0x56,
	0x08, 0x31, 0xc0, 0xc3, 0xf3, 0x90, 0xeb, 0xa8, 0xb8, 0xe4, 0x00, 0x00,
	0x00, 0x0f, 0x05, 0xc3,
}

// Parameters page layout, shared with the code and with Clock and Random.
const (
	vvarSeq        = 0  // u32, odd while being written
	vvarTSCBase    = 8  // u64, TSC at the anchor
	vvarMonoBase   = 16 // u64, CLOCK_MONOTONIC ns at the anchor
	vvarRealOff    = 24 // u64, CLOCK_REALTIME - CLOCK_MONOTONIC, ns
	vvarMult       = 32 // u32
	vvarShift      = 36 // u32
	vvarGeneration = 64 // u64, bumped to rekey every getrandom state; 0: not seeded
)

// ELF constants (include/uapi/linux/elf.h).
const (
	etDyn      = 3
	emX8664    = 62
	ptLoad     = 1
	ptDynamic  = 2
	dtNull     = 0
	dtHash     = 4
	dtStrtab   = 5
	dtSymtab   = 6
	dtStrsz    = 10
	dtSyment   = 11
	dtVersym   = 0x6ffffff0
	dtVerdef   = 0x6ffffffc
	dtVerdefnm = 0x6ffffffd
	verFlgBase = 1
)

// elfHash is the System V ABI symbol hash used by DT_HASH and verdefs.
func elfHash(s string) uint32 {
	var h uint32
	for i := 0; i < len(s); i++ {
		h = h<<4 + uint32(s[i])
		if g := h & 0xf0000000; g != 0 {
			h ^= g >> 24
		}
		h &^= 0xf0000000
	}
	return h
}

// Image returns the vDSO image, Size bytes.
func Image() []byte {
	b := make([]byte, Size)
	le := binary.LittleEndian
	// Strings.
	strs := "\x00__vdso_clock_gettime\x00__vdso_getrandom\x00LINUX_2.6\x00atoll\x00"
	const nameClock, nameRandom, nameVer, nameBase = 1, 22, 39, 49
	copy(b[vdsoStrOff:], strs)
	// ELF header.
	copy(b, "\x7fELF\x02\x01\x01")
	le.PutUint16(b[16:], etDyn)
	le.PutUint16(b[18:], emX8664)
	le.PutUint32(b[20:], 1)
	le.PutUint64(b[32:], 64) // e_phoff
	le.PutUint16(b[52:], 64) // e_ehsize
	le.PutUint16(b[54:], 56) // e_phentsize
	le.PutUint16(b[56:], 2)  // e_phnum
	le.PutUint16(b[58:], 64) // e_shentsize
	// Program headers.
	ph := func(off int, typ, flags uint32, o, size, align uint64) {
		le.PutUint32(b[off:], typ)
		le.PutUint32(b[off+4:], flags)
		le.PutUint64(b[off+8:], o)
		le.PutUint64(b[off+16:], o)
		le.PutUint64(b[off+24:], o)
		le.PutUint64(b[off+32:], size)
		le.PutUint64(b[off+40:], size)
		le.PutUint64(b[off+48:], align)
	}
	ph(64, ptLoad, 5, 0, Size, 0x1000)
	ph(64+56, ptDynamic, 4, vdsoDynOff, 16*9, 8)
	// Dynamic section.
	for i, kv := range [][2]uint64{
		{dtHash, vdsoHashOff}, {dtStrtab, vdsoStrOff}, {dtSymtab, vdsoSymOff},
		{dtStrsz, uint64(len(strs))}, {dtSyment, 24}, {dtVersym, vdsoVersymOff},
		{dtVerdef, vdsoVerdefOff}, {dtVerdefnm, 2}, {dtNull, 0},
	} {
		le.PutUint64(b[vdsoDynOff+16*i:], kv[0])
		le.PutUint64(b[vdsoDynOff+16*i+8:], kv[1])
	}
	// DT_HASH: one bucket, whose chain runs symbol 2, symbol 1.
	for i, v := range []uint32{1, 3, 2, 0, 0, 1} {
		le.PutUint32(b[vdsoHashOff+4*i:], v)
	}
	// Symbols 1 and 2: the functions.
	for i, fn := range []struct {
		name uint32
		off  uint64
		code []byte
	}{{nameClock, vdsoClockOff, vdsoClockGettime}, {nameRandom, vdsoRandomOff, vdsoGetrandom}} {
		s := b[vdsoSymOff+24*(i+1):]
		le.PutUint32(s, fn.name)
		s[4] = 1<<4 | 2 // STB_GLOBAL, STT_FUNC
		le.PutUint16(s[6:], 1)
		le.PutUint64(s[8:], fn.off)
		le.PutUint64(s[16:], uint64(len(fn.code)))
		le.PutUint16(b[vdsoVersymOff+2*(i+1):], 2)
		copy(b[fn.off:], fn.code)
	}
	// Version definitions: the base, then LINUX_2.6 (index 2).
	verdef := func(off int, flags, ndx uint16, name uint32, next uint32) {
		le.PutUint16(b[off:], 1)
		le.PutUint16(b[off+2:], flags)
		le.PutUint16(b[off+4:], ndx)
		le.PutUint16(b[off+6:], 1)
		le.PutUint32(b[off+8:], elfHash(strs[name:name+uint32(strings.IndexByte(strs[name:], 0))]))
		le.PutUint32(b[off+12:], 20)
		le.PutUint32(b[off+16:], next)
		le.PutUint32(b[off+20:], name)
	}
	verdef(vdsoVerdefOff, verFlgBase, 1, nameBase, 28)
	verdef(vdsoVerdefOff+28, 0, 2, nameVer, 0)
	return b
}
