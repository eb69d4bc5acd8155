package monitor

import (
	"golang.org/x/sys/unix"

	"atoll.dev/atoll/monitor/guestmem"
)

// System calls about the address space (package guestmem keeps it).

// sysMmap implements mmap for anonymous memory.
func sysMmap(t *thread, a sysArgs) (uint64, unix.Errno) {
	flags := a[3]
	if flags&unix.MAP_ANONYMOUS == 0 {
		return t.unsupported("a file descriptor", unix.ENODEV)
	}
	var mf guestmem.MapFlags
	switch {
	case flags&unix.MAP_FIXED_NOREPLACE != 0:
		mf = guestmem.FixedNoReplace
	case flags&unix.MAP_FIXED != 0:
		mf = guestmem.Fixed
	}
	addr, e := t.vm.mem.Mmap(guestmem.GuestAddr(a[0]), a[1], int(a[2]), mf)
	return uint64(addr), e
}

func sysMunmap(t *thread, a sysArgs) (uint64, unix.Errno) {
	return 0, t.vm.mem.Munmap(guestmem.GuestAddr(a[0]), a[1])
}

func sysMprotect(t *thread, a sysArgs) (uint64, unix.Errno) {
	return 0, t.vm.mem.Mprotect(guestmem.GuestAddr(a[0]), a[1], int(a[2]))
}

// sysMadvise discards pages for the advice that frees them and accepts
// the rest as hints.
func sysMadvise(t *thread, a sysArgs) (uint64, unix.Errno) {
	switch a[2] {
	case unix.MADV_DONTNEED, unix.MADV_FREE, unix.MADV_REMOVE:
		return 0, t.vm.mem.Discard(guestmem.GuestAddr(a[0]), a[1])
	}
	return 0, 0
}
