package monitor

import (
	"encoding/binary"
	"errors"
	"path"

	"golang.org/x/sys/unix"

	"atoll.dev/atoll/monitor/guestmem"
)

// System calls on paths: the guest's file system (package vfs). Paths are
// guest paths; none reaches the host but through a volume.

// atFDCWD is AT_FDCWD as a register holds it.
const atFDCWD = 1<<32 - 100

// guestPath reads a path argument.
func (t *thread) guestPath(p uint64) (string, unix.Errno) {
	s, err := t.vm.mem.CString(guestmem.GuestAddr(p), unix.PathMax)
	switch {
	case errors.Is(err, guestmem.ErrFault):
		return "", unix.EFAULT
	case err != nil:
		return "", unix.ENAMETOOLONG
	case s == "":
		return "", unix.ENOENT
	}
	return s, 0
}

// atPath resolves the (dirfd, path) arguments of an *at call to an
// absolute guest path. With AT_EMPTY_PATH in flags, an empty path names
// dirfd itself: file is then that open file, with a reference the caller
// must release.
func (t *thread) atPath(dirfd, p, flags uint64) (abs string, file *openFile, e unix.Errno) {
	s, e := t.guestPath(p)
	if e == unix.ENOENT && flags&unix.AT_EMPTY_PATH != 0 {
		f, ok := t.vm.fds.acquire(dirfd)
		if !ok {
			return "", nil, unix.EBADF
		}
		return "", f, 0
	}
	if e != 0 {
		return "", nil, e
	}
	if path.IsAbs(s) || uint32(dirfd) == atFDCWD {
		return t.vm.fs.Abs("", s), nil, 0
	}
	f, ok := t.vm.fds.acquire(dirfd)
	if !ok {
		return "", nil, unix.EBADF
	}
	defer f.release()
	vf, ok := f.file.(*vfsFile)
	if !ok {
		return "", nil, unix.ENOTDIR
	}
	if a, e := vf.h.Attr(); e != 0 || !a.IsDir() {
		return "", nil, unix.ENOTDIR
	}
	return t.vm.fs.Abs(vf.path, s), nil, 0
}

// openFlags are the open(2) flags the file system sees; the rest are
// the descriptor's (O_CLOEXEC, O_NONBLOCK) or have no meaning here.
const openFlags = unix.O_ACCMODE | unix.O_CREAT | unix.O_EXCL | unix.O_TRUNC | unix.O_APPEND | unix.O_NOFOLLOW | unix.O_DIRECTORY

func sysOpenat(t *thread, a sysArgs) (uint64, unix.Errno) {
	return openAt(t, a[0], a[1], a[2], a[3])
}

func sysOpen(t *thread, a sysArgs) (uint64, unix.Errno) { return openAt(t, atFDCWD, a[0], a[1], a[2]) }

func sysCreat(t *thread, a sysArgs) (uint64, unix.Errno) {
	return openAt(t, atFDCWD, a[0], unix.O_CREAT|unix.O_WRONLY|unix.O_TRUNC, a[1])
}

// openAt implements openat(dirfd, path, flags, mode).
func openAt(t *thread, dirfd, p, flags, mode uint64) (uint64, unix.Errno) {
	if flags&unix.O_TMPFILE == unix.O_TMPFILE {
		return t.unsupported("O_TMPFILE", unix.EOPNOTSUPP)
	}
	abs, _, e := t.atPath(dirfd, p, 0)
	if e != 0 {
		return 0, e
	}
	fl := int(flags) & openFlags
	if flags&unix.O_PATH != 0 {
		fl = unix.O_RDONLY | int(flags)&(unix.O_NOFOLLOW|unix.O_DIRECTORY)
	}
	h, e := t.vm.fs.Open(abs, fl, uint32(mode)&0o7777)
	if e != 0 {
		t.logPath("open", abs, e)
		return 0, e
	}
	f := &vfsFile{h: h, path: abs, flags: int(flags) & (unix.O_ACCMODE | unix.O_APPEND | unix.O_PATH), vm: t.vm}
	f.nonblock.Store(flags&unix.O_NONBLOCK != 0)
	return t.installNew(f)
}

// logPath logs, once, a path the guest could not have for a reason of
// Atoll's own (not merely a missing file).
func (t *thread) logPath(op, p string, e unix.Errno) {
	switch e {
	case unix.EROFS, unix.EACCES, unix.EXDEV, unix.EOPNOTSUPP:
		t.vm.log.printf("%s %q: %v", op, p, e)
	}
}

// statAt describes (dirfd, path), or the open file when AT_EMPTY_PATH
// names it.
func statAt(t *thread, dirfd, p, flags uint64) (unix.Stat_t, unix.Errno) {
	if flags&^(unix.AT_SYMLINK_NOFOLLOW|unix.AT_EMPTY_PATH|unix.AT_NO_AUTOMOUNT|atStatxSync) != 0 {
		return unix.Stat_t{}, unix.EINVAL
	}
	abs, f, e := t.atPath(dirfd, p, flags)
	if e != 0 {
		return unix.Stat_t{}, e
	}
	var st unix.Stat_t
	if f != nil {
		defer f.release()
		return st, f.stat(&st)
	}
	a, e := t.vm.fs.Stat(abs, flags&unix.AT_SYMLINK_NOFOLLOW == 0)
	if e != 0 {
		return st, e
	}
	return statOf(a), 0
}

func putStat(t *thread, addr uint64, st unix.Stat_t, e unix.Errno) (uint64, unix.Errno) {
	if e != 0 {
		return 0, e
	}
	b, ok := t.slice(addr, statSize)
	if !ok {
		return 0, unix.EFAULT
	}
	copy(b, statBytes(&st))
	return 0, 0
}

func sysNewfstatat(t *thread, a sysArgs) (uint64, unix.Errno) {
	st, e := statAt(t, a[0], a[1], a[3])
	return putStat(t, a[2], st, e)
}

func sysStat(t *thread, a sysArgs) (uint64, unix.Errno) {
	st, e := statAt(t, atFDCWD, a[0], 0)
	return putStat(t, a[1], st, e)
}

func sysLstat(t *thread, a sysArgs) (uint64, unix.Errno) {
	st, e := statAt(t, atFDCWD, a[0], unix.AT_SYMLINK_NOFOLLOW)
	return putStat(t, a[1], st, e)
}

// sysStatx implements statx(dirfd, path, flags, mask, statxbuf), filling
// every basic field whatever the mask asks.
func sysStatx(t *thread, a sysArgs) (uint64, unix.Errno) {
	st, e := statAt(t, a[0], a[1], a[2])
	if e != 0 {
		return 0, e
	}
	b, ok := t.slice(a[4], statxSize)
	if !ok {
		return 0, unix.EFAULT
	}
	x := unix.Statx_t{Mask: unix.STATX_BASIC_STATS, Blksize: uint32(st.Blksize), Nlink: uint32(st.Nlink),
		Mode: uint16(st.Mode), Ino: st.Ino, Size: uint64(st.Size), Blocks: uint64(st.Blocks),
		Atime:      unix.StatxTimestamp{Sec: st.Atim.Sec, Nsec: uint32(st.Atim.Nsec)},
		Mtime:      unix.StatxTimestamp{Sec: st.Mtim.Sec, Nsec: uint32(st.Mtim.Nsec)},
		Ctime:      unix.StatxTimestamp{Sec: st.Ctim.Sec, Nsec: uint32(st.Ctim.Nsec)},
		Rdev_major: unix.Major(st.Rdev), Rdev_minor: unix.Minor(st.Rdev),
		Dev_major: unix.Major(st.Dev), Dev_minor: unix.Minor(st.Dev)}
	copy(b, statxBytes(&x))
	return 0, 0
}

// sysGetdents64 implements getdents64(fd, dirp, count).
func sysGetdents64(t *thread, a sysArgs) (uint64, unix.Errno) {
	return t.withFile(a[0], func(f file) (uint64, unix.Errno) {
		vf, ok := f.(*vfsFile)
		if !ok {
			return 0, unix.ENOTDIR
		}
		if vf.pathOnly() {
			return 0, unix.EBADF
		}
		if at, e := vf.h.Attr(); e != 0 || !at.IsDir() {
			return 0, unix.ENOTDIR
		}
		b, ok := t.slice(a[1], min(a[2], 1<<20))
		if !ok {
			return 0, unix.EFAULT
		}
		n, e := vf.getdents(b)
		return uint64(n), e
	})
}

func sysReadlinkat(t *thread, a sysArgs) (uint64, unix.Errno) {
	return readlinkAt(t, a[0], a[1], a[2], a[3])
}

func sysReadlink(t *thread, a sysArgs) (uint64, unix.Errno) {
	return readlinkAt(t, atFDCWD, a[0], a[1], a[2])
}

func readlinkAt(t *thread, dirfd, p, buf, size uint64) (uint64, unix.Errno) {
	if int64(size) <= 0 {
		return 0, unix.EINVAL
	}
	abs, _, e := t.atPath(dirfd, p, 0)
	if e != 0 {
		return 0, e
	}
	target, e := t.vm.fs.Readlink(abs)
	if e != 0 {
		return 0, e
	}
	b, ok := t.slice(buf, min(size, uint64(len(target))))
	if !ok {
		return 0, unix.EFAULT
	}
	return uint64(copy(b, target)), 0
}

// pathOp runs op on the absolute path of (dirfd, p).
func pathOp(t *thread, dirfd, p uint64, what string, op func(abs string) unix.Errno) (uint64, unix.Errno) {
	abs, _, e := t.atPath(dirfd, p, 0)
	if e != 0 {
		return 0, e
	}
	e = op(abs)
	t.logPath(what, abs, e)
	return 0, e
}

func sysMkdirat(t *thread, a sysArgs) (uint64, unix.Errno) {
	return pathOp(t, a[0], a[1], "mkdir", func(p string) unix.Errno { return t.vm.fs.Mkdir(p, uint32(a[2])) })
}

func sysMkdir(t *thread, a sysArgs) (uint64, unix.Errno) {
	return sysMkdirat(t, sysArgs{atFDCWD, a[0], a[1]})
}

func sysUnlinkat(t *thread, a sysArgs) (uint64, unix.Errno) {
	if a[2]&^unix.AT_REMOVEDIR != 0 {
		return 0, unix.EINVAL
	}
	return pathOp(t, a[0], a[1], "unlink", func(p string) unix.Errno { return t.vm.fs.Remove(p, a[2] != 0) })
}

func sysUnlink(t *thread, a sysArgs) (uint64, unix.Errno) {
	return sysUnlinkat(t, sysArgs{atFDCWD, a[0], 0})
}

func sysRmdir(t *thread, a sysArgs) (uint64, unix.Errno) {
	return sysUnlinkat(t, sysArgs{atFDCWD, a[0], unix.AT_REMOVEDIR})
}

// sysRenameat2 implements renameat2; RENAME_NOREPLACE only.
func sysRenameat2(t *thread, a sysArgs) (uint64, unix.Errno) {
	if a[4]&^unix.RENAME_NOREPLACE != 0 {
		return t.unsupported("flags other than RENAME_NOREPLACE", unix.EINVAL)
	}
	from, _, e := t.atPath(a[0], a[1], 0)
	if e != 0 {
		return 0, e
	}
	to, _, e := t.atPath(a[2], a[3], 0)
	if e != 0 {
		return 0, e
	}
	return 0, t.vm.fs.Rename(from, to, uint(a[4]))
}

func sysRenameat(t *thread, a sysArgs) (uint64, unix.Errno) {
	return sysRenameat2(t, sysArgs{a[0], a[1], a[2], a[3], 0})
}

func sysRename(t *thread, a sysArgs) (uint64, unix.Errno) {
	return sysRenameat2(t, sysArgs{atFDCWD, a[0], atFDCWD, a[1], 0})
}

func sysSymlinkat(t *thread, a sysArgs) (uint64, unix.Errno) {
	target, e := t.guestPath(a[0])
	if e != 0 {
		return 0, e
	}
	return pathOp(t, a[1], a[2], "symlink", func(p string) unix.Errno { return t.vm.fs.Symlink(target, p) })
}

func sysSymlink(t *thread, a sysArgs) (uint64, unix.Errno) {
	return sysSymlinkat(t, sysArgs{a[0], atFDCWD, a[1]})
}

func sysLinkat(t *thread, a sysArgs) (uint64, unix.Errno) {
	if a[4]&^unix.AT_SYMLINK_FOLLOW != 0 {
		return 0, unix.EINVAL
	}
	from, _, e := t.atPath(a[0], a[1], 0)
	if e != 0 {
		return 0, e
	}
	to, _, e := t.atPath(a[2], a[3], 0)
	if e != 0 {
		return 0, e
	}
	return 0, t.vm.fs.Link(from, to, a[4] != 0)
}

func sysLink(t *thread, a sysArgs) (uint64, unix.Errno) {
	return sysLinkat(t, sysArgs{atFDCWD, a[0], atFDCWD, a[1], 0})
}

func sysChdir(t *thread, a sysArgs) (uint64, unix.Errno) {
	return pathOp(t, atFDCWD, a[0], "chdir", t.vm.fs.Chdir)
}

func sysFchdir(t *thread, a sysArgs) (uint64, unix.Errno) {
	return t.withFile(a[0], func(f file) (uint64, unix.Errno) {
		vf, ok := f.(*vfsFile)
		if !ok {
			return 0, unix.ENOTDIR
		}
		return 0, t.vm.fs.Chdir(vf.path)
	})
}

// sysGetcwd answers the working directory.
func sysGetcwd(t *thread, a sysArgs) (uint64, unix.Errno) {
	wd := t.vm.fs.Getwd() + "\x00"
	if a[1] < uint64(len(wd)) {
		return 0, unix.ERANGE
	}
	b, ok := t.slice(a[0], uint64(len(wd)))
	if !ok {
		return 0, unix.EFAULT
	}
	return uint64(copy(b, wd)), 0
}

// truncateFile runs op on the open file behind fd, when it is one of the
// file system's and open for writing.
func truncateFile(t *thread, fd uint64, op func(f *vfsFile) unix.Errno) (uint64, unix.Errno) {
	return t.withFile(fd, func(f file) (uint64, unix.Errno) {
		vf, ok := f.(*vfsFile)
		if !ok || !vf.writable() {
			return 0, unix.EINVAL
		}
		return 0, op(vf)
	})
}

func sysFtruncate(t *thread, a sysArgs) (uint64, unix.Errno) {
	if int64(a[1]) < 0 {
		return 0, unix.EINVAL
	}
	return truncateFile(t, a[0], func(f *vfsFile) unix.Errno { return f.h.Truncate(int64(a[1])) })
}

func sysTruncate(t *thread, a sysArgs) (uint64, unix.Errno) {
	if int64(a[1]) < 0 {
		return 0, unix.EINVAL
	}
	return pathOp(t, atFDCWD, a[0], "truncate", func(p string) unix.Errno {
		h, e := t.vm.fs.Open(p, unix.O_WRONLY, 0)
		if e != 0 {
			return e
		}
		defer h.Close()
		return h.Truncate(int64(a[1]))
	})
}

// sysFallocate implements mode 0 (allocate, growing the file) by growing
// the size; other modes are EOPNOTSUPP, as on file systems without them.
func sysFallocate(t *thread, a sysArgs) (uint64, unix.Errno) {
	off, n := int64(a[2]), int64(a[3])
	if off < 0 || n <= 0 || off+n < off {
		return 0, unix.EINVAL
	}
	if a[1] != 0 {
		return t.unsupported("a mode", unix.EOPNOTSUPP)
	}
	return truncateFile(t, a[0], func(f *vfsFile) unix.Errno {
		at, e := f.h.Attr()
		if e != 0 || at.Size >= off+n {
			return e
		}
		return f.h.Truncate(off + n)
	})
}

func sysFaccessat2(t *thread, a sysArgs) (uint64, unix.Errno) {
	if a[2]&^7 != 0 || a[3]&^(unix.AT_SYMLINK_NOFOLLOW|unix.AT_EACCESS|unix.AT_EMPTY_PATH) != 0 {
		return 0, unix.EINVAL
	}
	return pathOp(t, a[0], a[1], "access", func(p string) unix.Errno {
		return t.vm.fs.Access(p, uint32(a[2]), a[3]&unix.AT_SYMLINK_NOFOLLOW == 0)
	})
}

func sysFaccessat(t *thread, a sysArgs) (uint64, unix.Errno) {
	return sysFaccessat2(t, sysArgs{a[0], a[1], a[2], 0})
}

func sysAccess(t *thread, a sysArgs) (uint64, unix.Errno) {
	return sysFaccessat2(t, sysArgs{atFDCWD, a[0], a[1], 0})
}

func sysFchmodat(t *thread, a sysArgs) (uint64, unix.Errno) {
	return pathOp(t, a[0], a[1], "chmod", func(p string) unix.Errno { return t.vm.fs.Chmod(p, uint32(a[2]), true) })
}

func sysChmod(t *thread, a sysArgs) (uint64, unix.Errno) {
	return sysFchmodat(t, sysArgs{atFDCWD, a[0], a[1]})
}

func sysFchmod(t *thread, a sysArgs) (uint64, unix.Errno) {
	return t.withFile(a[0], func(f file) (uint64, unix.Errno) {
		vf, ok := f.(*vfsFile)
		switch {
		case !ok:
			return 0, 0 // a pipe's mode: nothing to keep
		case vf.pathOnly():
			return 0, unix.EBADF
		}
		return 0, vf.h.Chmod(uint32(a[1]) & 0o7777)
	})
}

// sysFchownat accepts any owner for an existing file and changes nothing:
// every file belongs to the guest's only user, root.
func sysFchownat(t *thread, a sysArgs) (uint64, unix.Errno) {
	abs, f, e := t.atPath(a[0], a[1], a[4])
	if e != 0 {
		return 0, e
	}
	if f != nil {
		f.release()
		return 0, 0
	}
	_, e = t.vm.fs.Stat(abs, a[4]&unix.AT_SYMLINK_NOFOLLOW == 0)
	return 0, e
}

func sysChown(t *thread, a sysArgs) (uint64, unix.Errno) {
	return sysFchownat(t, sysArgs{atFDCWD, a[0], a[1], a[2], 0})
}

func sysLchown(t *thread, a sysArgs) (uint64, unix.Errno) {
	return sysFchownat(t, sysArgs{atFDCWD, a[0], a[1], a[2], unix.AT_SYMLINK_NOFOLLOW})
}

func sysFchown(t *thread, a sysArgs) (uint64, unix.Errno) {
	return t.withFile(a[0], func(file) (uint64, unix.Errno) { return 0, 0 })
}

// sysUtimensat implements utimensat(dirfd, path, times, flags), and
// futimens as utimensat(fd, NULL, times, 0).
func sysUtimensat(t *thread, a sysArgs) (uint64, unix.Errno) {
	atime, mtime, e := readUtimes(t, a[2])
	if e != 0 {
		return 0, e
	}
	if a[1] == 0 { // futimens
		return t.withFile(a[0], func(f file) (uint64, unix.Errno) {
			vf, ok := f.(*vfsFile)
			switch {
			case !ok:
				return 0, 0
			case vf.pathOnly():
				return 0, unix.EBADF
			}
			return 0, vf.h.Utimes(atime, mtime)
		})
	}
	return pathOp(t, a[0], a[1], "utimensat", func(p string) unix.Errno {
		return t.vm.fs.Utimes(p, atime, mtime, a[3]&unix.AT_SYMLINK_NOFOLLOW == 0)
	})
}

// readUtimes reads utimensat's times: NULL is now for both, UTIME_NOW and
// UTIME_OMIT per time.
func readUtimes(t *thread, addr uint64) (atime, mtime *unix.Timespec, e unix.Errno) {
	now := unix.NsecToTimespec(t.vm.clock.Now(true))
	if addr == 0 {
		return &now, &now, 0
	}
	b, ok := t.slice(addr, 2*timespecSize)
	if !ok {
		return nil, nil, unix.EFAULT
	}
	var out [2]*unix.Timespec
	for i := range out {
		ts := unix.Timespec{Sec: int64(binary.LittleEndian.Uint64(b[16*i:])), Nsec: int64(binary.LittleEndian.Uint64(b[16*i+8:]))}
		switch {
		case ts.Nsec == unix.UTIME_OMIT:
		case ts.Nsec == unix.UTIME_NOW:
			out[i] = &now
		case ts.Nsec < 0 || ts.Nsec >= 1e9:
			return nil, nil, unix.EINVAL
		default:
			out[i] = &ts
		}
	}
	return out[0], out[1], 0
}

func sysStatfs(t *thread, a sysArgs) (uint64, unix.Errno) {
	abs, _, e := t.atPath(atFDCWD, a[0], 0)
	if e != 0 {
		return 0, e
	}
	st, e := t.vm.fs.Statfs(abs)
	return putStatfs(t, a[1], st, e)
}

func sysFstatfs(t *thread, a sysArgs) (uint64, unix.Errno) {
	return t.withFile(a[0], func(f file) (uint64, unix.Errno) {
		p := "/"
		if vf, ok := f.(*vfsFile); ok {
			p = vf.path
		}
		st, e := t.vm.fs.Statfs(p)
		return putStatfs(t, a[1], st, e)
	})
}

func putStatfs(t *thread, addr uint64, st unix.Statfs_t, e unix.Errno) (uint64, unix.Errno) {
	if e != 0 {
		return 0, e
	}
	b, ok := t.slice(addr, statfsSize)
	if !ok {
		return 0, unix.EFAULT
	}
	copy(b, statfsBytes(&st))
	return 0, 0
}

func sysUmask(t *thread, a sysArgs) (uint64, unix.Errno) {
	return uint64(t.vm.fs.SetUmask(uint32(a[0]))), 0
}
