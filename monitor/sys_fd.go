package monitor

import (
	"golang.org/x/sys/unix"
)

// System calls on descriptors, whatever their kind (fd.go). Each resolves
// the descriptor to its open file and asks the file for the operation; a
// kind without it gets Linux's answer for such an object. The calls that
// make files live with their kinds (file_*.go).

// withFile runs op on the open file behind guest fd, holding a reference
// for the duration of the call.
func (t *thread) withFile(fd uint64, op func(f file) (uint64, unix.Errno)) (uint64, unix.Errno) {
	f, ok := t.vm.fds.acquire(fd)
	if !ok {
		return 0, unix.EBADF
	}
	defer f.release()
	return op(f.file)
}

// transfer runs a read or write on the file behind fd through the kind's
// interface I, with the guest buffers bufs gives; a file without I
// answers missing.
func transfer[I any](t *thread, fd uint64, missing unix.Errno, bufs func() ([][]byte, unix.Errno), op func(I, [][]byte) (int, unix.Errno)) (uint64, unix.Errno) {
	return t.withFile(fd, func(f file) (uint64, unix.Errno) {
		x, ok := f.(I)
		if !ok {
			return 0, missing
		}
		b, e := bufs()
		if e != 0 {
			return 0, e
		}
		n, e := op(x, b)
		return uint64(n), e
	})
}

// buffer is the guest buffer of a (fd, buf, count) call, count capped at
// maxIO.
func (t *thread) buffer(a sysArgs) func() ([][]byte, unix.Errno) {
	return func() ([][]byte, unix.Errno) {
		b, ok := t.slice(a[1], min(a[2], maxIO))
		if !ok {
			return nil, unix.EFAULT
		}
		return [][]byte{b}, 0
	}
}

// vectors are the guest buffers of an (fd, iov, iovcnt) call.
func (t *thread) vectors(a sysArgs) func() ([][]byte, unix.Errno) {
	return func() ([][]byte, unix.Errno) { return t.iovecs(a[1], a[2]) }
}

// readv and writev adapt a thread's reads and writes to transfer.
func (t *thread) readv(r reader, b [][]byte) (int, unix.Errno)  { return r.readv(t, b) }
func (t *thread) writev(w writer, b [][]byte) (int, unix.Errno) { return w.writev(t, b) }

func sysRead(t *thread, a sysArgs) (uint64, unix.Errno) {
	return transfer(t, a[0], unix.EINVAL, t.buffer(a), t.readv)
}

func sysWrite(t *thread, a sysArgs) (uint64, unix.Errno) {
	return transfer(t, a[0], unix.EINVAL, t.buffer(a), t.writev)
}

func sysReadv(t *thread, a sysArgs) (uint64, unix.Errno) {
	return transfer(t, a[0], unix.EINVAL, t.vectors(a), t.readv)
}

func sysWritev(t *thread, a sysArgs) (uint64, unix.Errno) {
	return transfer(t, a[0], unix.EINVAL, t.vectors(a), t.writev)
}

// sysPread implements pread64; files without offsets answer ESPIPE.
func sysPread(t *thread, a sysArgs) (uint64, unix.Errno) {
	return transfer(t, a[0], unix.ESPIPE, t.buffer(a), func(p positional, b [][]byte) (int, unix.Errno) { return p.pread(b[0], a[3]) })
}

// sysPwrite implements pwrite64; files without offsets answer ESPIPE.
func sysPwrite(t *thread, a sysArgs) (uint64, unix.Errno) {
	return transfer(t, a[0], unix.ESPIPE, t.buffer(a), func(p positional, b [][]byte) (int, unix.Errno) { return p.pwrite(b[0], a[3]) })
}

// sysLseek implements lseek; files without offsets answer ESPIPE.
func sysLseek(t *thread, a sysArgs) (uint64, unix.Errno) {
	return t.withFile(a[0], func(f file) (uint64, unix.Errno) {
		s, ok := f.(seeker)
		if !ok {
			return 0, unix.ESPIPE
		}
		off, e := s.seek(int64(a[1]), int(a[2]))
		return uint64(off), e
	})
}

func sysFstat(t *thread, a sysArgs) (uint64, unix.Errno) {
	return t.withFile(a[0], func(f file) (uint64, unix.Errno) {
		var st unix.Stat_t
		b, ok := t.slice(a[1], statSize)
		if !ok {
			return 0, unix.EFAULT
		}
		if e := f.stat(&st); e != 0 {
			return 0, e
		}
		copy(b, statBytes(&st))
		return 0, 0
	})
}

// sysFsync implements fsync and fdatasync: a device's completed writes
// reach the host's storage before it returns. Files with no storage
// answer EINVAL, as pipes do on Linux.
func sysFsync(t *thread, a sysArgs) (uint64, unix.Errno) {
	return t.withFile(a[0], func(f file) (uint64, unix.Errno) {
		s, ok := f.(syncer)
		if !ok {
			return 0, unix.EINVAL
		}
		return 0, s.sync()
	})
}

// sysIoctl answers ENOTTY on every open descriptor: no terminal or
// device control is part of the ABI.
func sysIoctl(t *thread, a sysArgs) (uint64, unix.Errno) {
	return t.withFile(a[0], func(f file) (uint64, unix.Errno) {
		if s, ok := f.(*socket); ok {
			return socketIoctl(t, s, a[1], a[2])
		}
		return 0, unix.ENOTTY
	})
}

func sysClose(t *thread, a sysArgs) (uint64, unix.Errno) { return 0, t.vm.fds.close(a[0]) }

// dup installs another guest descriptor for the open file behind fd, at
// the lowest free number >= min. Like Linux's, the new descriptor shares
// the file: its offset, its flags, its kind.
func (t *thread) dup(fd uint64, min int) (uint64, unix.Errno) {
	f, ok := t.vm.fds.acquire(fd)
	if !ok {
		return 0, unix.EBADF
	}
	n, e := t.vm.fds.installFile(f, min)
	return uint64(n), e
}

func sysDup(t *thread, a sysArgs) (uint64, unix.Errno) { return t.dup(a[0], 0) }

func sysDup2(t *thread, a sysArgs) (uint64, unix.Errno) {
	if a[0] == a[1] {
		if !t.vm.fds.valid(a[0]) {
			return 0, unix.EBADF
		}
		return a[1], 0
	}
	return sysDup3(t, sysArgs{a[0], a[1], 0})
}

func sysDup3(t *thread, a sysArgs) (uint64, unix.Errno) {
	if a[0] == a[1] || a[2]&^unix.O_CLOEXEC != 0 {
		return 0, unix.EINVAL
	}
	if a[1] >= maxFDs {
		return 0, unix.EBADF
	}
	f, ok := t.vm.fds.acquire(a[0])
	if !ok {
		return 0, unix.EBADF
	}
	t.vm.fds.installAt(f, int(a[1]))
	return a[1], 0
}

// sysFcntl implements F_DUPFD, F_DUPFD_CLOEXEC, F_GETFD and F_SETFD
// (accepted; there is no exec), F_GETFL and F_SETFL (O_NONBLOCK only).
func sysFcntl(t *thread, a sysArgs) (uint64, unix.Errno) {
	switch a[1] {
	case unix.F_DUPFD, unix.F_DUPFD_CLOEXEC:
		if a[2] >= maxFDs {
			return 0, unix.EINVAL
		}
		return t.dup(a[0], int(a[2]))
	}
	gen := t.vm.fds.generation()
	return t.withFile(a[0], func(f file) (uint64, unix.Errno) {
		switch a[1] {
		case unix.F_GETFD, unix.F_GETFL:
			v, e := statusFlags(f)
			if e == 0 {
				t.vm.fds.publish(a[0], v, gen)
			}
			if a[1] == unix.F_GETFD {
				return 0, e
			}
			return uint64(v), e
		case unix.F_SETFD:
			return 0, 0
		case unix.F_GETLK, unix.F_SETLK, unix.F_SETLKW, unix.F_OFD_GETLK, unix.F_OFD_SETLK, unix.F_OFD_SETLKW:
			return recordLock(t, f, int(a[1]), a[2])
		case unix.F_SETFL:
			fl, ok := f.(flagged)
			if !ok {
				return 0, 0
			}
			e := fl.setNonblock(a[2]&unix.O_NONBLOCK != 0)
			t.vm.fds.flagsChanged()
			return 0, e
		}
		return t.unsupported("another command", unix.EINVAL)
	})
}

// statusFlags is F_GETFL of f.
func statusFlags(f file) (int, unix.Errno) {
	fl, ok := f.(flagged)
	if !ok {
		return unix.O_RDWR, 0 // a file with no flags to change
	}
	return fl.statusFlags()
}
