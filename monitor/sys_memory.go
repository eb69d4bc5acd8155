package monitor

import (
	"golang.org/x/sys/unix"

	"atoll.dev/atoll/framering"
	"atoll.dev/atoll/monitor/guestmem"
)

// System calls about the address space (package guestmem keeps it).

// sysMmap implements mmap of anonymous memory, of files as a copy
// (MAP_PRIVATE, or MAP_SHARED without PROT_WRITE, whose copy the guest's
// own writes to the file keep current: file_mirror.go), of a volume's files shared and writable (the file's own
// pages: guestmem.MmapShared), and of a network device's frame rings.
func sysMmap(t *thread, a sysArgs) (uint64, unix.Errno) {
	flags := a[3]
	var src *vfsFile
	shared := -1 // the host descriptor of a shared writable file mapping
	if flags&unix.MAP_ANONYMOUS == 0 {
		f, ok := t.vm.fds.acquire(a[4])
		if !ok {
			return 0, unix.EBADF
		}
		defer f.release()
		if n, ok := f.file.(*netDevice); ok {
			return mmapRing(t, n, a)
		}
		vf, ok := f.file.(*vfsFile)
		switch {
		case !ok:
			return t.unsupported("a descriptor that is not a file", unix.ENODEV)
		case !vf.readable():
			return 0, unix.EACCES
		case a[5]%guestmem.PageSize != 0 || int64(a[5]) < 0:
			return 0, unix.EINVAL
		case flags&unix.MAP_SHARED != 0 && a[2]&unix.PROT_WRITE != 0:
			if !vf.writable() {
				return 0, unix.EACCES
			}
			if shared = vf.h.HostFD(); shared < 0 {
				return t.unsupported("MAP_SHARED and PROT_WRITE on an in-memory file", unix.ENODEV)
			}
		}
		src = vf
	}
	var mf guestmem.MapFlags
	switch {
	case flags&unix.MAP_FIXED_NOREPLACE != 0:
		mf = guestmem.FixedNoReplace
	case flags&unix.MAP_FIXED != 0:
		mf = guestmem.Fixed
	}
	if shared >= 0 {
		if mf != 0 {
			return t.unsupported("a shared writable file mapping at a fixed address", unix.EINVAL)
		}
		addr, e := t.vm.mem.MmapShared(a[1], shared, int64(a[5]))
		return uint64(addr), e
	}
	if mf != 0 {
		t.vm.mirrors.forget(a[0], a[1]) // before the pages can be anything else
	}
	addr, e := t.vm.mem.Mmap(guestmem.GuestAddr(a[0]), a[1], int(a[2]), mf)
	if e != 0 || src == nil {
		return uint64(addr), e
	}
	b, err := t.vm.mem.Populate(addr, a[1])
	if err != nil {
		t.vm.mem.Munmap(addr, a[1])
		return 0, unix.ENOMEM // holding the pages would pass the limit
	}
	for off := 0; off < len(b); {
		n, e := src.h.ReadAt(b[off:], int64(a[5])+int64(off))
		if e != 0 {
			t.vm.mem.Munmap(addr, a[1])
			return 0, e
		}
		if n == 0 {
			break // past the end of the file: zeros, as Linux's last page
		}
		off += n
	}
	if flags&unix.MAP_SHARED != 0 {
		if at, e := src.h.Attr(); e == 0 {
			t.vm.mirrors.add(mirror{dev: at.Dev, ino: at.Ino, addr: uint64(addr), off: int64(a[5]), length: uint64(len(b))})
		}
	}
	return uint64(addr), 0
}

// mmapRing maps device n's frame rings: MAP_SHARED, read and write, at
// offset 0, the whole region, anywhere (docs/abi.md).
func mmapRing(t *thread, n *netDevice, a sysArgs) (uint64, unix.Errno) {
	const rw = unix.PROT_READ | unix.PROT_WRITE
	switch {
	case a[0] != 0 || a[3]&(unix.MAP_FIXED|unix.MAP_FIXED_NOREPLACE) != 0:
		return t.unsupported("a frame-ring mapping at a chosen address", unix.EINVAL)
	case a[3]&unix.MAP_SHARED == 0 || a[2] != rw || a[5] != 0 || a[1] != framering.Size:
		return 0, unix.EINVAL
	case n.noRings:
		return 0, unix.ENODEV
	}
	return t.vm.mapRing(n)
}

// sysMsync writes a shared file mapping's pages back to the file.
func sysMsync(t *thread, a sysArgs) (uint64, unix.Errno) {
	return 0, t.vm.mem.Msync(guestmem.GuestAddr(a[0]), a[1], int(a[2]))
}

func sysMunmap(t *thread, a sysArgs) (uint64, unix.Errno) {
	t.vm.mirrors.forget(a[0], a[1]) // before the pages can be anything else
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
