package monitor

import (
	"encoding/binary"
	"time"

	"golang.org/x/sys/unix"
)

// File locks: flock(2), and fcntl(2)'s record locks. Files of the file
// system lock through package vfs (a volume's with the host's locks, so
// the host's other processes see them); anything else succeeds, since
// nothing else shares it. A lock that waits polls, so that a signal or
// the VM's end interrupts it.

// sysFlock locks a file of the file system; on anything else it succeeds,
// as nothing else shares it. Without LOCK_NB it waits, polling, until the
// lock is free or a signal comes (EINTR).
func sysFlock(t *thread, a sysArgs) (uint64, unix.Errno) {
	op := int(a[1]) &^ unix.LOCK_NB
	if op != unix.LOCK_SH && op != unix.LOCK_EX && op != unix.LOCK_UN {
		return 0, unix.EINVAL
	}
	return t.withFile(a[0], func(f file) (uint64, unix.Errno) {
		vf, ok := f.(*vfsFile)
		switch {
		case !ok:
			return 0, 0
		case vf.pathOnly():
			return 0, unix.EBADF
		}
		return 0, retryLock(t, a[1]&unix.LOCK_NB == 0, func() unix.Errno { return vf.h.Flock(op) })
	})
}

// flockSize is the size of struct flock: l_type and l_whence (int16),
// l_start and l_len (int64, from offset 8), l_pid (int32).
const flockSize = 32

// recordLock answers fcntl's record locks — F_GETLK, F_SETLK, F_SETLKW and
// their F_OFD_ forms — with the struct flock at addr. An l_whence of
// SEEK_CUR is made absolute with the open file's offset. F_GETLK's answer
// for a lock held elsewhere has l_pid -1: the holder is outside the guest,
// or (OFD) another of its open files, as Linux says for those.
func recordLock(t *thread, f file, cmd int, addr uint64) (uint64, unix.Errno) {
	b, ok := t.slice(addr, flockSize)
	if !ok {
		return 0, unix.EFAULT
	}
	le := binary.LittleEndian
	lk := unix.Flock_t{
		Type: int16(le.Uint16(b[0:])), Whence: int16(le.Uint16(b[2:])),
		Start: int64(le.Uint64(b[8:])), Len: int64(le.Uint64(b[16:])), Pid: int32(le.Uint32(b[24:])),
	}
	ofd := cmd == unix.F_OFD_GETLK || cmd == unix.F_OFD_SETLK || cmd == unix.F_OFD_SETLKW
	test := cmd == unix.F_GETLK || cmd == unix.F_OFD_GETLK
	switch {
	case ofd && lk.Pid != 0,
		lk.Type != unix.F_RDLCK && lk.Type != unix.F_WRLCK && (test || lk.Type != unix.F_UNLCK),
		lk.Whence != unix.SEEK_SET && lk.Whence != unix.SEEK_CUR && lk.Whence != unix.SEEK_END:
		return 0, unix.EINVAL
	}
	vf, ok := f.(*vfsFile)
	if !ok {
		if test {
			le.PutUint16(b[0:], unix.F_UNLCK)
		}
		return 0, 0
	}
	switch {
	case vf.pathOnly(),
		!test && lk.Type == unix.F_RDLCK && !vf.readable(),
		!test && lk.Type == unix.F_WRLCK && !vf.writable():
		return 0, unix.EBADF
	}
	if lk.Whence == unix.SEEK_CUR {
		vf.mu.Lock()
		pos := vf.pos
		vf.mu.Unlock()
		if lk.Start > 0 && pos > (1<<63-1)-lk.Start {
			return 0, unix.EOVERFLOW
		}
		lk.Start += pos
		lk.Whence = unix.SEEK_SET
	}
	get, set := unix.F_GETLK, unix.F_SETLK
	if ofd {
		get, set = unix.F_OFD_GETLK, unix.F_OFD_SETLK
	}
	if test {
		if e := vf.h.Lock(get, &lk); e != 0 {
			return 0, e
		}
		le.PutUint16(b[0:], uint16(lk.Type))
		if lk.Type != unix.F_UNLCK { // the conflicting lock, as SEEK_SET; free: only l_type changes
			le.PutUint16(b[2:], uint16(lk.Whence))
			le.PutUint64(b[8:], uint64(lk.Start))
			le.PutUint64(b[16:], uint64(lk.Len))
			le.PutUint32(b[24:], ^uint32(0)) // l_pid -1
		}
		return 0, 0
	}
	wait := cmd == unix.F_SETLKW || cmd == unix.F_OFD_SETLKW
	return 0, retryLock(t, wait, func() unix.Errno { return vf.h.Lock(set, &lk) })
}

// retryLock takes a lock with try, which answers busy while another holds
// it; if wait, it tries again, polling, until it is taken or a signal
// comes (EINTR).
func retryLock(t *thread, wait bool, try func() unix.Errno) unix.Errno {
	for pause := time.Millisecond; ; pause = min(2*pause, waitChunk) {
		e := try()
		if (e != unix.EWOULDBLOCK && e != unix.EAGAIN) || !wait {
			return e
		}
		if t.interrupted() {
			return unix.EINTR
		}
		time.Sleep(pause)
	}
}
