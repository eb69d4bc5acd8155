package monitor

import (
	"encoding/binary"
	"time"

	"golang.org/x/sys/unix"
)

// fdBuffer resolves the (fd, buffer, length) arguments most I/O calls
// take, with a reference to the open file the caller must release. Block
// devices are read and written only with pread and pwrite, in whole
// sectors (positioned says which kind of call this is).
func (t *vcpu) fdBuffer(a *sysArgs, positioned bool) (*openFile, []byte, unix.Errno) {
	f, ok := t.vm.fds.acquire(a[0])
	if !ok {
		return nil, nil, unix.EBADF
	}
	n := min(a[2], maxIO)
	if f.block != nil && (!positioned || !f.block.checkIO(a[3], n)) {
		f.release()
		return nil, nil, unix.EINVAL
	}
	b, ok := t.slice(a[1], n)
	if !ok {
		f.release()
		return nil, nil, unix.EFAULT
	}
	return f, b, 0
}

// waitReady waits up to waitChunk for f's host descriptor to report
// events, for a call the guest made in blocking mode. It answers EINTR
// when the call must give up: the VM is ending or a signal is pending.
func (t *vcpu) waitReady(f *openFile, events int16) unix.Errno {
	if t.interrupted() {
		return unix.EINTR
	}
	pfd := []unix.PollFd{{Fd: int32(f.host), Events: events}}
	if _, err := unix.Poll(pfd, int(waitChunk/time.Millisecond)); err != nil && err != unix.EINTR {
		if e, ok := err.(unix.Errno); ok {
			return e
		}
		return unix.EIO
	}
	if t.interrupted() {
		return unix.EINTR
	}
	return 0
}

// readFile runs a reading host call on f, waiting in bounded polls while
// the guest's view of f is blocking and the host has nothing to read.
func (t *vcpu) readFile(f *openFile, op func() (int, error)) (uint64, control) {
	for {
		n, err := op()
		if err != unix.EAGAIN || !f.blocking() {
			return ret(n, err)
		}
		if e := t.waitReady(f, unix.POLLIN); e != 0 {
			return fail(e)
		}
	}
}

// writeFile runs a writing host call of total bytes on f; op writes what
// is left after done bytes. While the guest's view of f is blocking, it
// waits in bounded polls until everything is written, as a blocking
// write does, or until it is interrupted (then it reports what was
// written, if anything).
func (t *vcpu) writeFile(f *openFile, total int, op func(done int) (int, error)) (uint64, control) {
	done := 0
	for {
		n, err := op(done)
		if err == nil {
			done += n
			if done >= total || n == 0 || !f.blocking() {
				return uint64(done), ctlReturn
			}
			continue // partial write: try the rest
		}
		if err != unix.EAGAIN || !f.blocking() {
			if done > 0 {
				return uint64(done), ctlReturn
			}
			return ret(0, err)
		}
		if e := t.waitReady(f, unix.POLLOUT); e != 0 {
			if done > 0 {
				return uint64(done), ctlReturn
			}
			return fail(e)
		}
	}
}

func sysRead(t *vcpu, a *sysArgs) (uint64, control) {
	f, b, e := t.fdBuffer(a, false)
	if e != 0 {
		return fail(e)
	}
	defer f.release()
	return t.readFile(f, func() (int, error) { return unix.Read(f.host, b) })
}

func sysWrite(t *vcpu, a *sysArgs) (uint64, control) {
	f, b, e := t.fdBuffer(a, false)
	if e != 0 {
		return fail(e)
	}
	defer f.release()
	return t.writeFile(f, len(b), func(done int) (int, error) { return unix.Write(f.host, b[done:]) })
}

func sysPread(t *vcpu, a *sysArgs) (uint64, control) {
	f, b, e := t.fdBuffer(a, true)
	if e != 0 {
		return fail(e)
	}
	defer f.release()
	return ret(unix.Pread(f.host, b, int64(a[3])))
}

func sysPwrite(t *vcpu, a *sysArgs) (uint64, control) {
	f, b, e := t.fdBuffer(a, true)
	if e != 0 {
		return fail(e)
	}
	defer f.release()
	return ret(unix.Pwrite(f.host, b, int64(a[3])))
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

// fdIovecs resolves the (fd, iov, iovcnt) arguments of readv and writev,
// with a reference to the open file the caller must release.
func (t *vcpu) fdIovecs(a *sysArgs) (*openFile, [][]byte, unix.Errno) {
	f, ok := t.vm.fds.acquire(a[0])
	if !ok {
		return nil, nil, unix.EBADF
	}
	if f.block != nil {
		f.release()
		return nil, nil, unix.EINVAL
	}
	iov, e := t.iovecs(a[1], a[2])
	if e != 0 {
		f.release()
		return nil, nil, e
	}
	return f, iov, 0
}

// skipIovecs returns what is left of iov after its first n bytes.
func skipIovecs(iov [][]byte, n int) [][]byte {
	for len(iov) > 0 && n >= len(iov[0]) {
		n -= len(iov[0])
		iov = iov[1:]
	}
	if len(iov) > 0 && n > 0 {
		iov = append([][]byte{iov[0][n:]}, iov[1:]...)
	}
	return iov
}

func sysReadv(t *vcpu, a *sysArgs) (uint64, control) {
	f, iov, e := t.fdIovecs(a)
	if e != 0 {
		return fail(e)
	}
	defer f.release()
	return t.readFile(f, func() (int, error) { return unix.Readv(f.host, iov) })
}

func sysWritev(t *vcpu, a *sysArgs) (uint64, control) {
	f, iov, e := t.fdIovecs(a)
	if e != 0 {
		return fail(e)
	}
	defer f.release()
	total := 0
	for _, b := range iov {
		total += len(b)
	}
	return t.writeFile(f, total, func(done int) (int, error) { return unix.Writev(f.host, skipIovecs(iov, done)) })
}

func sysLseek(t *vcpu, a *sysArgs) (uint64, control) {
	f, ok := t.vm.fds.acquire(a[0])
	if !ok {
		return fail(unix.EBADF)
	}
	defer f.release()
	if f.block != nil {
		return fail(unix.EINVAL)
	}
	off, err := unix.Seek(f.host, int64(a[1]), int(a[2]))
	return ret(int(off), err)
}

func sysClose(t *vcpu, a *sysArgs) (uint64, control) { return errnoOrZero(t.vm.fds.close(a[0])) }

// dup installs another guest descriptor for the open file behind fd, at
// the lowest free number >= min. Like Linux's, the new descriptor shares
// the file (its offset, flags and, for a block device, its geometry).
func (t *vcpu) dup(fd uint64, min int) (uint64, control) {
	f, ok := t.vm.fds.acquire(fd)
	if !ok {
		return fail(unix.EBADF)
	}
	n, e := t.vm.fds.installFile(f, min)
	if e != 0 {
		return fail(e)
	}
	return uint64(n), ctlReturn
}

func sysDup(t *vcpu, a *sysArgs) (uint64, control) { return t.dup(a[0], 0) }

func sysDup2(t *vcpu, a *sysArgs) (uint64, control) {
	if a[0] == a[1] {
		if !t.vm.fds.valid(a[0]) {
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
	f, ok := t.vm.fds.acquire(a[0])
	if !ok {
		return fail(unix.EBADF)
	}
	t.vm.fds.installAt(f, int(a[1]))
	return a[1], ctlReturn
}

func sysFcntl(t *vcpu, a *sysArgs) (uint64, control) {
	switch a[1] {
	case unix.F_DUPFD, unix.F_DUPFD_CLOEXEC:
		if a[2] >= maxFDs {
			return fail(unix.EINVAL)
		}
		return t.dup(a[0], int(a[2]))
	}
	f, ok := t.vm.fds.acquire(a[0])
	if !ok {
		return fail(unix.EBADF)
	}
	defer f.release()
	switch a[1] {
	case unix.F_GETFD, unix.F_SETFD:
		return 0, ctlReturn
	case unix.F_GETFL:
		fl, err := unix.FcntlInt(uintptr(f.host), unix.F_GETFL, 0)
		if err == nil && f.emulated {
			fl &^= unix.O_NONBLOCK
			if f.nonblock.Load() {
				fl |= unix.O_NONBLOCK
			}
		}
		return ret(fl, err)
	case unix.F_SETFL:
		if f.emulated {
			// The host descriptor stays non-blocking.
			f.nonblock.Store(a[2]&unix.O_NONBLOCK != 0)
			return 0, ctlReturn
		}
		return ret(unix.FcntlInt(uintptr(f.host), unix.F_SETFL, int(a[2]&unix.O_NONBLOCK)))
	}
	return fail(unix.EINVAL)
}

func sysPipe(t *vcpu, a *sysArgs) (uint64, control) { return sysPipe2(t, &sysArgs{a[0], 0}) }

// sysPipe2 makes a pipe whose host ends never block (see openFile).
func sysPipe2(t *vcpu, a *sysArgs) (uint64, control) {
	if a[1]&^(unix.O_NONBLOCK|unix.O_CLOEXEC) != 0 {
		return fail(unix.EINVAL)
	}
	b, ok := t.slice(a[0], 8)
	if !ok {
		return fail(unix.EFAULT)
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		return ret(0, err)
	}
	nonblock := a[1]&unix.O_NONBLOCK != 0
	wf := newEmulatedFile(p[1], nonblock)
	r, e := t.vm.fds.installFile(newEmulatedFile(p[0], nonblock), 0)
	if e != 0 {
		wf.release()
		return fail(e)
	}
	w, e := t.vm.fds.installFile(wf, 0)
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
	f, ok := t.vm.fds.acquire(a[0])
	if !ok {
		return fail(unix.EBADF)
	}
	defer f.release()
	return ret(0, unix.Fsync(f.host))
}

// sysEventfd2 makes an eventfd whose host side never blocks (see
// openFile).
func sysEventfd2(t *vcpu, a *sysArgs) (uint64, control) {
	if a[1]&^(unix.EFD_NONBLOCK|unix.EFD_CLOEXEC|unix.EFD_SEMAPHORE) != 0 {
		return fail(unix.EINVAL)
	}
	h, err := unix.Eventfd(uint(uint32(a[0])), int(a[1])|unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		return ret(0, err)
	}
	fd, e := t.vm.fds.installFile(newEmulatedFile(h, a[1]&unix.EFD_NONBLOCK != 0), 0)
	if e != 0 {
		return fail(e)
	}
	return uint64(fd), ctlReturn
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
