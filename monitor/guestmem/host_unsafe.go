package guestmem

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// mapFile replaces the host pages behind b, a page-aligned slice of a
// region's host mapping, with a private, copy-on-write mapping of len(b)
// bytes of the file fd from offset off.
func mapFile(b []byte, fd int, off int64) error {
	_, err := unix.MmapPtr(fd, off, unsafe.Pointer(&b[0]), uintptr(len(b)),
		unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_FIXED|unix.MAP_NORESERVE)
	return err
}

// remap replaces the host pages behind b, a page-aligned slice of a
// region's host mapping, with a shared mapping of len(b) bytes of the file
// fd from offset off, readable and writable; with fd -1, with anonymous
// private memory, as the region's own.
func remap(b []byte, fd int, off int64) error {
	flags := unix.MAP_SHARED | unix.MAP_FIXED
	if fd < 0 {
		flags = unix.MAP_PRIVATE | unix.MAP_ANONYMOUS | unix.MAP_FIXED | unix.MAP_NORESERVE
	}
	_, err := unix.MmapPtr(fd, off, unsafe.Pointer(&b[0]), uintptr(len(b)), unix.PROT_READ|unix.PROT_WRITE, flags)
	if err == nil && fd < 0 {
		noHugePages(b)
	}
	return err
}

// mincore fills vec with one byte per page of b, the host mapping's pages:
// bit 0 set when the page is resident.
func mincore(b, vec []byte) error {
	_, _, e := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), uintptr(unsafe.Pointer(&vec[0])))
	if e != 0 {
		return e
	}
	return nil
}
