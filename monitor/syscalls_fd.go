package monitor

import (
	"encoding/binary"

	"golang.org/x/sys/unix"
)

// hostFD resolves a guest fd.
func (t *vcpu) hostFD(fd uint64) (int, bool) { return t.vm.fds.host(fd) }

// fdBuffer resolves the (fd, buffer, length) arguments most I/O calls
// take. Block devices are read and written only with pread and pwrite, in
// whole sectors (positioned says which kind of call this is).
func (t *vcpu) fdBuffer(a *sysArgs, positioned bool) (int, []byte, unix.Errno) {
	ent, ok := t.vm.fds.get(a[0])
	if !ok {
		return 0, nil, unix.EBADF
	}
	n := min(a[2], maxIO)
	if ent.block != nil && (!positioned || !ent.block.checkIO(a[3], n)) {
		return 0, nil, unix.EINVAL
	}
	b, ok := t.slice(a[1], n)
	if !ok {
		return 0, nil, unix.EFAULT
	}
	return ent.host, b, 0
}

func sysRead(t *vcpu, a *sysArgs) (uint64, control) {
	h, b, e := t.fdBuffer(a, false)
	if e != 0 {
		return fail(e)
	}
	return ret(unix.Read(h, b))
}

func sysWrite(t *vcpu, a *sysArgs) (uint64, control) {
	h, b, e := t.fdBuffer(a, false)
	if e != 0 {
		return fail(e)
	}
	return ret(unix.Write(h, b))
}

func sysPread(t *vcpu, a *sysArgs) (uint64, control) {
	h, b, e := t.fdBuffer(a, true)
	if e != 0 {
		return fail(e)
	}
	return ret(unix.Pread(h, b, int64(a[3])))
}

func sysPwrite(t *vcpu, a *sysArgs) (uint64, control) {
	h, b, e := t.fdBuffer(a, true)
	if e != 0 {
		return fail(e)
	}
	return ret(unix.Pwrite(h, b, int64(a[3])))
}

// iovecs reads a guest iovec array into host slices.
func (t *vcpu) iovecs(addr, n uint64) ([][]byte, unix.Errno) {
	const iovMax = 1024
	if n > iovMax {
		return nil, unix.EINVAL
	}
	raw, ok := t.slice(addr, n*16)
	if !ok {
		return nil, unix.EFAULT
	}
	out := make([][]byte, 0, n)
	var total uint64
	for i := uint64(0); i < n; i++ {
		base, l := binary.LittleEndian.Uint64(raw[16*i:]), binary.LittleEndian.Uint64(raw[16*i+8:])
		if total += l; total > maxIO || l > maxIO {
			return nil, unix.EINVAL
		}
		b, ok := t.slice(base, l)
		if !ok {
			return nil, unix.EFAULT
		}
		out = append(out, b)
	}
	return out, 0
}

// fdIovecs resolves the (fd, iov, iovcnt) arguments of readv and writev.
func (t *vcpu) fdIovecs(a *sysArgs) (int, [][]byte, unix.Errno) {
	ent, ok := t.vm.fds.get(a[0])
	if !ok {
		return 0, nil, unix.EBADF
	}
	if ent.block != nil {
		return 0, nil, unix.EINVAL
	}
	iov, e := t.iovecs(a[1], a[2])
	return ent.host, iov, e
}

func sysReadv(t *vcpu, a *sysArgs) (uint64, control) {
	h, iov, e := t.fdIovecs(a)
	if e != 0 {
		return fail(e)
	}
	return ret(unix.Readv(h, iov))
}

func sysWritev(t *vcpu, a *sysArgs) (uint64, control) {
	h, iov, e := t.fdIovecs(a)
	if e != 0 {
		return fail(e)
	}
	return ret(unix.Writev(h, iov))
}

func sysLseek(t *vcpu, a *sysArgs) (uint64, control) {
	ent, ok := t.vm.fds.get(a[0])
	if !ok {
		return fail(unix.EBADF)
	}
	if ent.block != nil {
		return fail(unix.EINVAL)
	}
	h := ent.host
	off, err := unix.Seek(h, int64(a[1]), int(a[2]))
	return ret(int(off), err)
}

func sysClose(t *vcpu, a *sysArgs) (uint64, control) { return errnoOrZero(t.vm.fds.close(a[0])) }

// dup duplicates the entry behind guest fd onto a new host descriptor.
func (t *vcpu) dup(fd uint64) (fdEntry, unix.Errno) {
	ent, ok := t.vm.fds.get(fd)
	if !ok {
		return fdEntry{}, unix.EBADF
	}
	n, err := unix.FcntlInt(uintptr(ent.host), unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		return fdEntry{}, err.(unix.Errno)
	}
	ent.host = n
	return ent, 0
}

func sysDup(t *vcpu, a *sysArgs) (uint64, control) {
	ent, e := t.dup(a[0])
	if e != 0 {
		return fail(e)
	}
	fd, e := t.vm.fds.install(ent, 0)
	if e != 0 {
		return fail(e)
	}
	return uint64(fd), ctlReturn
}

func sysDup2(t *vcpu, a *sysArgs) (uint64, control) {
	if a[0] == a[1] {
		if _, ok := t.hostFD(a[0]); !ok {
			return fail(unix.EBADF)
		}
		return a[1], ctlReturn
	}
	return sysDup3(t, &sysArgs{a[0], a[1], 0})
}

func sysDup3(t *vcpu, a *sysArgs) (uint64, control) {
	if a[0] == a[1] || a[2]&^unix.O_CLOEXEC != 0 {
		return fail(unix.EINVAL)
	}
	if a[1] >= maxFDs {
		return fail(unix.EBADF)
	}
	ent, e := t.dup(a[0])
	if e != 0 {
		return fail(e)
	}
	t.vm.fds.installAt(ent, int(a[1]))
	return a[1], ctlReturn
}

func sysFcntl(t *vcpu, a *sysArgs) (uint64, control) {
	h, ok := t.hostFD(a[0])
	if !ok {
		return fail(unix.EBADF)
	}
	switch a[1] {
	case unix.F_GETFD, unix.F_SETFD:
		return 0, ctlReturn
	case unix.F_GETFL:
		return ret(unix.FcntlInt(uintptr(h), unix.F_GETFL, 0))
	case unix.F_SETFL:
		return ret(unix.FcntlInt(uintptr(h), unix.F_SETFL, int(a[2]&unix.O_NONBLOCK)))
	case unix.F_DUPFD, unix.F_DUPFD_CLOEXEC:
		if a[2] >= maxFDs {
			return fail(unix.EINVAL)
		}
		ent, e := t.dup(a[0])
		if e != 0 {
			return fail(e)
		}
		fd, e := t.vm.fds.install(ent, int(a[2]))
		if e != 0 {
			return fail(e)
		}
		return uint64(fd), ctlReturn
	}
	return fail(unix.EINVAL)
}

func sysPipe(t *vcpu, a *sysArgs) (uint64, control) { return sysPipe2(t, &sysArgs{a[0], 0}) }

func sysPipe2(t *vcpu, a *sysArgs) (uint64, control) {
	if a[1]&^(unix.O_NONBLOCK|unix.O_CLOEXEC) != 0 {
		return fail(unix.EINVAL)
	}
	b, ok := t.slice(a[0], 8)
	if !ok {
		return fail(unix.EFAULT)
	}
	var p [2]int
	if err := unix.Pipe2(p[:], int(a[1])|unix.O_CLOEXEC); err != nil {
		return ret(0, err)
	}
	r, e := t.vm.fds.install(fdEntry{host: p[0]}, 0)
	if e != 0 {
		unix.Close(p[1])
		return fail(e)
	}
	w, e := t.vm.fds.install(fdEntry{host: p[1]}, 0)
	if e != 0 {
		t.vm.fds.close(uint64(r))
		return fail(e)
	}
	binary.LittleEndian.PutUint32(b, uint32(r))
	binary.LittleEndian.PutUint32(b[4:], uint32(w))
	return 0, ctlReturn
}

func installNew(t *vcpu, h int, err error) (uint64, control) {
	if err != nil {
		return ret(0, err)
	}
	fd, e := t.vm.fds.install(fdEntry{host: h}, 0)
	if e != 0 {
		return fail(e)
	}
	return uint64(fd), ctlReturn
}

// sysFsync implements fsync and fdatasync: a block device's writes reach
// the host file's storage before it returns.
func sysFsync(t *vcpu, a *sysArgs) (uint64, control) {
	h, ok := t.hostFD(a[0])
	if !ok {
		return fail(unix.EBADF)
	}
	return ret(0, unix.Fsync(h))
}

func sysEventfd2(t *vcpu, a *sysArgs) (uint64, control) {
	if a[1]&^(unix.EFD_NONBLOCK|unix.EFD_CLOEXEC|unix.EFD_SEMAPHORE) != 0 {
		return fail(unix.EINVAL)
	}
	h, err := unix.Eventfd(uint(uint32(a[0])), int(a[1])|unix.EFD_CLOEXEC)
	return installNew(t, h, err)
}

func sysEpollCreate(t *vcpu, a *sysArgs) (uint64, control) {
	if int32(a[0]) <= 0 {
		return fail(unix.EINVAL)
	}
	return sysEpollCreate1(t, &sysArgs{0})
}

func sysEpollCreate1(t *vcpu, a *sysArgs) (uint64, control) {
	if a[0]&^unix.EPOLL_CLOEXEC != 0 {
		return fail(unix.EINVAL)
	}
	h, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	return installNew(t, h, err)
}
