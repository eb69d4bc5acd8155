package monitor

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// putFlock writes a struct flock into guest memory at a.
func putFlock(t *testing.T, tv *testVM, a uint64, typ, whence int16, start, length int64, pid int32) {
	t.Helper()
	b := make([]byte, flockSize)
	binary.LittleEndian.PutUint16(b[0:], uint16(typ))
	binary.LittleEndian.PutUint16(b[2:], uint16(whence))
	binary.LittleEndian.PutUint64(b[8:], uint64(start))
	binary.LittleEndian.PutUint64(b[16:], uint64(length))
	binary.LittleEndian.PutUint32(b[24:], uint32(pid))
	tv.put(t, a, b)
}

// getFlock reads the struct flock at a back.
func getFlock(t *testing.T, tv *testVM, a uint64) unix.Flock_t {
	t.Helper()
	b := tv.bytes(t, a, flockSize)
	return unix.Flock_t{
		Type: int16(binary.LittleEndian.Uint16(b[0:])), Whence: int16(binary.LittleEndian.Uint16(b[2:])),
		Start: int64(binary.LittleEndian.Uint64(b[8:])), Len: int64(binary.LittleEndian.Uint64(b[16:])),
		Pid: int32(binary.LittleEndian.Uint32(b[24:])),
	}
}

// hostLock takes (or, with F_UNLCK, drops) an OFD lock on host file f, as
// another process would: OFD locks and POSIX locks conflict even within
// one process, so the test's own locks stand for the host's others.
func hostLock(t *testing.T, f *os.File, typ int16, start, length int64) unix.Errno {
	t.Helper()
	lk := unix.Flock_t{Type: typ, Start: start, Len: length}
	return errnoOf(unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk))
}

// TestRecordLocks drives fcntl's record locks on a volume's file: the
// guest's POSIX locks never conflict with each other but do with the
// host's, which see them; F_GETLK describes a host's lock; F_SETLKW waits
// for the host to let go and a signal ends its wait; SEEK_CUR counts from
// the file's offset; closing any descriptor of the file drops the guest's
// POSIX locks; OFD locks conflict between the guest's open files.
func TestRecordLocks(t *testing.T) {
	tv, dir := newVolumeVM(t)
	tv.put(t, tv.at(0), []byte("/data/db\x00"))
	fd1 := tv.mustCall(t, unix.SYS_OPEN, tv.at(0), unix.O_CREAT|unix.O_RDWR, 0o644)
	fd2 := tv.mustCall(t, unix.SYS_OPEN, tv.at(0), unix.O_RDWR, 0)
	host, err := os.OpenFile(filepath.Join(dir, "db"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	lk := tv.at(256)
	setlk := func(fd uint64, cmd int, typ, whence int16, start, length int64) unix.Errno {
		t.Helper()
		putFlock(t, tv, lk, typ, whence, start, length, 0)
		_, e := tv.call(t, unix.SYS_FCNTL, fd, uint64(cmd), lk)
		return e
	}

	// The guest's POSIX locks: one process's, never in each other's way.
	if e := setlk(fd1, unix.F_SETLK, unix.F_WRLCK, unix.SEEK_SET, 0, 10); e != 0 {
		t.Fatalf("F_SETLK: %v", e)
	}
	if e := setlk(fd2, unix.F_SETLK, unix.F_WRLCK, unix.SEEK_SET, 5, 10); e != 0 {
		t.Errorf("F_SETLK through a second open file of the guest: %v", e)
	}
	// The host sees them.
	if e := hostLock(t, host, unix.F_RDLCK, 0, 1); e != unix.EAGAIN {
		t.Errorf("a host lock over the guest's: %v, want EAGAIN", e)
	}
	if e := hostLock(t, host, unix.F_WRLCK, 15, 5); e != 0 {
		t.Errorf("a host lock beside the guest's: %v", e)
	}
	// And the guest sees the host's.
	if e := setlk(fd1, unix.F_SETLK, unix.F_RDLCK, unix.SEEK_SET, 16, 1); e != unix.EAGAIN {
		t.Errorf("F_SETLK over the host's lock: %v, want EAGAIN", e)
	}
	putFlock(t, tv, lk, unix.F_RDLCK, unix.SEEK_SET, 0, 0, 0)
	tv.mustCall(t, unix.SYS_FCNTL, fd1, unix.F_GETLK, lk)
	if got, want := getFlock(t, tv, lk), (unix.Flock_t{Type: unix.F_WRLCK, Start: 15, Len: 5, Pid: -1}); got != want {
		t.Errorf("F_GETLK: %+v, want %+v", got, want)
	}
	putFlock(t, tv, lk, unix.F_WRLCK, unix.SEEK_CUR, 100, 0, 0)
	tv.mustCall(t, unix.SYS_FCNTL, fd1, unix.F_GETLK, lk)
	if got, want := getFlock(t, tv, lk), (unix.Flock_t{Type: unix.F_UNLCK, Whence: unix.SEEK_CUR, Start: 100}); got != want {
		t.Errorf("F_GETLK of a free range: %+v, want %+v (only l_type changed)", got, want)
	}

	// F_SETLKW waits until the host lets go, and a signal ends a wait.
	child := tv.thread(int(tv.mustCall(t, unix.SYS_CLONE, cloneThreadFlags, 0, 0, 0, 0)))
	done := make(chan unix.Errno)
	wait := func() {
		putFlock(t, tv, tv.at(512), unix.F_WRLCK, unix.SEEK_SET, 15, 1, 0)
		go func() {
			_, e, _ := tv.sys(child, unix.SYS_FCNTL, fd1, unix.F_SETLKW, tv.at(512))
			done <- e
		}()
	}
	wait()
	select {
	case e := <-done:
		t.Fatalf("F_SETLKW returned %v while the host held the lock", e)
	case <-time.After(50 * time.Millisecond):
	}
	hostLock(t, host, unix.F_UNLCK, 15, 5)
	if e := <-done; e != 0 {
		t.Errorf("F_SETLKW after the host let go: %v", e)
	}
	if e := hostLock(t, host, unix.F_WRLCK, 15, 1); e != unix.EAGAIN {
		t.Errorf("the lock F_SETLKW took is not the host's to take: %v", e)
	}
	tv.mustCall(t, unix.SYS_CLOSE, fd2) // drops every POSIX lock of the guest on the file
	if e := hostLock(t, host, unix.F_WRLCK, 0, 20); e != 0 {
		t.Fatalf("the guest's locks after it closed a descriptor of the file: %v", e)
	}
	wait()
	time.Sleep(20 * time.Millisecond)
	child.pending.Or(sigbit(unix.SIGURG))
	if e := <-done; e != unix.EINTR {
		t.Errorf("F_SETLKW with a signal: %v", e)
	}
	child.pending.Store(0)
	hostLock(t, host, unix.F_UNLCK, 0, 20)

	// SEEK_CUR is from the open file's offset.
	tv.mustCall(t, unix.SYS_LSEEK, fd1, 100, unix.SEEK_SET)
	if e := setlk(fd1, unix.F_SETLK, unix.F_WRLCK, unix.SEEK_CUR, -10, 5); e != 0 {
		t.Fatalf("F_SETLK from SEEK_CUR: %v", e)
	}
	hl := unix.Flock_t{Type: unix.F_RDLCK, Start: 0, Len: 0}
	if err := unix.FcntlFlock(host.Fd(), unix.F_OFD_GETLK, &hl); err != nil || hl.Type != unix.F_WRLCK || hl.Start != 90 || hl.Len != 5 {
		t.Errorf("the host sees the SEEK_CUR lock as %+v (%v), want [90, 95)", hl, err)
	}
	if e := setlk(fd1, unix.F_SETLK, unix.F_UNLCK, unix.SEEK_SET, 0, 0); e != 0 {
		t.Errorf("F_UNLCK: %v", e)
	}
	if e := hostLock(t, host, unix.F_WRLCK, 0, 0); e != 0 {
		t.Errorf("the whole file after F_UNLCK: %v", e)
	}
	hostLock(t, host, unix.F_UNLCK, 0, 0)

	// OFD locks belong to the open file, so the guest's conflict.
	fd2 = tv.mustCall(t, unix.SYS_OPEN, tv.at(0), unix.O_RDWR, 0)
	if e := setlk(fd1, unix.F_OFD_SETLK, unix.F_WRLCK, unix.SEEK_SET, 0, 1); e != 0 {
		t.Fatalf("F_OFD_SETLK: %v", e)
	}
	if e := setlk(fd2, unix.F_OFD_SETLK, unix.F_RDLCK, unix.SEEK_SET, 0, 1); e != unix.EAGAIN {
		t.Errorf("F_OFD_SETLK against another open file's: %v, want EAGAIN", e)
	}
	putFlock(t, tv, lk, unix.F_RDLCK, unix.SEEK_SET, 0, 0, 0)
	tv.mustCall(t, unix.SYS_FCNTL, fd2, unix.F_OFD_GETLK, lk)
	if got := getFlock(t, tv, lk); got.Type != unix.F_WRLCK || got.Len != 1 || got.Pid != -1 {
		t.Errorf("F_OFD_GETLK: %+v", got)
	}
	dup := tv.mustCall(t, unix.SYS_DUP, fd1)
	if e := setlk(dup, unix.F_OFD_SETLK, unix.F_WRLCK, unix.SEEK_SET, 0, 2); e != 0 {
		t.Errorf("F_OFD_SETLK through a dup of the holder: %v", e)
	}

	// Bad requests.
	ro := tv.mustCall(t, unix.SYS_OPEN, tv.at(0), unix.O_RDONLY, 0)
	wo := tv.mustCall(t, unix.SYS_OPEN, tv.at(0), unix.O_WRONLY, 0)
	pfd := tv.mustCall(t, unix.SYS_OPEN, tv.at(0), unix.O_PATH, 0)
	for _, c := range []struct {
		name       string
		fd         uint64
		cmd        int
		typ, whnce int16
		pid        int32
		want       unix.Errno
	}{
		{"a bad type", fd1, unix.F_SETLK, 7, unix.SEEK_SET, 0, unix.EINVAL},
		{"a bad whence", fd1, unix.F_SETLK, unix.F_RDLCK, 9, 0, unix.EINVAL},
		{"F_GETLK of F_UNLCK", fd1, unix.F_GETLK, unix.F_UNLCK, unix.SEEK_SET, 0, unix.EINVAL},
		{"an OFD lock with a pid", fd1, unix.F_OFD_SETLK, unix.F_RDLCK, unix.SEEK_SET, 1, unix.EINVAL},
		{"a write lock, read-only", ro, unix.F_SETLK, unix.F_WRLCK, unix.SEEK_SET, 0, unix.EBADF},
		{"a read lock, write-only", wo, unix.F_SETLK, unix.F_RDLCK, unix.SEEK_SET, 0, unix.EBADF},
		{"O_PATH", pfd, unix.F_SETLK, unix.F_RDLCK, unix.SEEK_SET, 0, unix.EBADF},
	} {
		putFlock(t, tv, lk, c.typ, c.whnce, 200, 1, c.pid)
		if _, e := tv.call(t, unix.SYS_FCNTL, c.fd, uint64(c.cmd), lk); e != c.want {
			t.Errorf("%s: %v, want %v", c.name, e, c.want)
		}
	}
	if e := setlk(fd1, unix.F_SETLK, unix.F_RDLCK, unix.SEEK_SET, -1, 1); e != unix.EINVAL {
		t.Errorf("a negative start: %v", e)
	}
	if _, e := tv.call(t, unix.SYS_FCNTL, fd1, unix.F_SETLK, 8); e != unix.EFAULT {
		t.Errorf("a bad pointer: %v", e)
	}
}

// TestRecordLocksInMemory locks an in-memory (/tmp) file and a pipe: only
// the guest has them, so POSIX locks always succeed and test free; OFD
// locks, which are not kept there, are EINVAL.
func TestRecordLocksInMemory(t *testing.T) {
	tv := newTestVM(t, vmOptions{})
	tv.put(t, tv.at(0), []byte("/tmp/db\x00"))
	fd1 := tv.mustCall(t, unix.SYS_OPEN, tv.at(0), unix.O_CREAT|unix.O_RDWR, 0o644)
	fd2 := tv.mustCall(t, unix.SYS_OPEN, tv.at(0), unix.O_RDWR, 0)
	tv.mustCall(t, unix.SYS_PIPE2, tv.at(64), 0)
	pipe := uint64(tv.u32(t, tv.at(64)))
	lk := tv.at(256)
	for _, fd := range []uint64{fd1, fd2, pipe} {
		putFlock(t, tv, lk, unix.F_WRLCK, unix.SEEK_SET, 0, 0, 0)
		if _, e := tv.call(t, unix.SYS_FCNTL, fd, unix.F_SETLK, lk); e != 0 {
			t.Errorf("F_SETLK of descriptor %d: %v", fd, e)
		}
		putFlock(t, tv, lk, unix.F_WRLCK, unix.SEEK_SET, 0, 0, 0)
		tv.mustCall(t, unix.SYS_FCNTL, fd, unix.F_GETLK, lk)
		if got := getFlock(t, tv, lk); got.Type != unix.F_UNLCK {
			t.Errorf("F_GETLK of descriptor %d: %+v", fd, got)
		}
	}
	putFlock(t, tv, lk, unix.F_WRLCK, unix.SEEK_SET, 0, 0, 0)
	if _, e := tv.call(t, unix.SYS_FCNTL, fd1, unix.F_OFD_SETLK, lk); e != unix.EINVAL {
		t.Errorf("F_OFD_SETLK of an in-memory file: %v", e)
	}
}
