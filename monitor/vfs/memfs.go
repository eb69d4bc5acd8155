package vfs

import (
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// memFS is a file tree in the monitor's memory: the read-only root (the
// image's tree and synthesized files) and the writable /tmp.
type memFS struct {
	// mu guards every node of the tree.
	mu       sync.Mutex
	root     *node
	dev      uint64
	writable bool
	// charge accounts for delta bytes more (or fewer, when negative)
	// held for the guest; it fails when the guest's memory limit would
	// be passed. Nil for the read-only root.
	charge func(delta int64) bool
}

// What /tmp counts against the memory limit, besides file contents (by
// the capacity held) and link targets: an estimate of the monitor's
// memory behind each node and each directory entry.
const (
	nodeCost  = 192
	entryCost = 64
)

func nameCost(name string) int64 { return entryCost + int64(len(name)) }

// node is a directory, regular file, symbolic link or device.
type node struct {
	mode     uint32 // S_IFMT type and permission bits
	ino      uint64
	nlink    uint32
	children map[string]*node // directory entries
	data     []byte           // regular file contents (tmpfs: owned; root: the image's)
	target   string           // symbolic link
	dev      device           // character device
	atime    unix.Timespec
	mtime    unix.Timespec
	ctime    unix.Timespec
	// exe makes a regular file also answer readlink, as /proc/self/exe.
	exe string

	// charged is what the node counts against the memory limit; it is
	// returned once no name and no open file refers to the node.
	charged int64
	opens   int
	// lockEx holds the node's exclusive flock, lockSh counts its shared
	// ones.
	lockEx *memHandle
	lockSh int
}

var nextIno atomic.Uint64

func now() unix.Timespec { return unix.NsecToTimespec(time.Now().UnixNano()) }

func newNode(mode uint32) *node {
	t := now()
	n := &node{mode: mode, ino: nextIno.Add(1) + 1, nlink: 1, atime: t, mtime: t, ctime: t}
	if mode&unix.S_IFMT == unix.S_IFDIR {
		n.children = map[string]*node{}
		n.nlink = 2
	}
	return n
}

func (n *node) isDir() bool  { return n.mode&unix.S_IFMT == unix.S_IFDIR }
func (n *node) isLink() bool { return n.mode&unix.S_IFMT == unix.S_IFLNK }

func newMemFS(dev uint64, writable bool, charge func(int64) bool) *memFS {
	fs := &memFS{root: newNode(unix.S_IFDIR | 0o755), dev: dev, writable: writable, charge: charge}
	if writable {
		fs.root.mode = unix.S_IFDIR | 0o1777 // /tmp
	}
	return fs
}

// account charges delta bytes against the memory limit, or returns them
// when delta is negative.
func (fs *memFS) account(delta int64) bool {
	return fs.charge == nil || delta == 0 || fs.charge(delta)
}

// insert names new node n name in directory p, charging for both.
// Called with mu.
func (fs *memFS) insert(p *node, name string, n *node) unix.Errno {
	cost := nodeCost + int64(len(n.target))
	if !fs.account(cost + nameCost(name)) {
		return unix.ENOSPC
	}
	n.charged = cost
	p.children[name] = n
	if n.isDir() {
		p.nlink++
	}
	p.mtime = now()
	p.ctime = p.mtime
	return 0
}

// unref drops one name of n (a directory's only one), returning what the
// node holds once nothing refers to it. Called with mu.
func (fs *memFS) unref(n *node) {
	if n.isDir() {
		n.nlink = 0
	} else {
		n.nlink--
	}
	fs.release(n)
}

// release returns a node's contents to the memory limit once no name and
// no open file refers to it. Called with mu.
func (fs *memFS) release(n *node) {
	if n.nlink > 0 || n.opens > 0 || n.charged == 0 {
		return
	}
	fs.account(-n.charged)
	n.charged, n.data = 0, nil
}

// lookup walks rel from the root without following links. Called with mu.
func (fs *memFS) lookup(rel string) (*node, unix.Errno) {
	n := fs.root
	for rel != "" {
		var name string
		name, rel = splitFirst(rel)
		if !n.isDir() {
			return nil, unix.ENOTDIR
		}
		c, ok := n.children[name]
		if !ok {
			return nil, unix.ENOENT
		}
		n = c
	}
	return n, 0
}

func (fs *memFS) walk(rel string, follow bool) (walkResult, unix.Errno) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	n, done := fs.root, ""
	for rest := rel; rest != ""; {
		var name string
		name, rest = splitFirst(rest)
		if !n.isDir() {
			return walkResult{}, unix.ENOTDIR
		}
		c, ok := n.children[name]
		if !ok {
			return walkResult{}, unix.ENOENT
		}
		if c.isLink() && (rest != "" || follow) {
			return walkResult{link: c.target, linkDir: done, rest: rest, followed: true}, 0
		}
		done = strings.TrimPrefix(done+"/"+name, "/")
		n = c
	}
	return walkResult{}, 0
}

func (fs *memFS) attr(n *node) Attr {
	a := Attr{Mode: n.mode, Ino: n.ino, Dev: fs.dev, Nlink: n.nlink, Atime: n.atime, Mtime: n.mtime, Ctime: n.ctime}
	switch {
	case n.isLink():
		a.Size = int64(len(n.target))
	case n.dev != nil:
		a.Rdev = n.dev.rdev()
	case n.isDir():
		a.Size = 4096
	default:
		a.Size = int64(len(n.data))
	}
	a.Blocks = (a.Size + 511) / 512
	return a
}

// stat describes rel; walk has followed any link to follow. The
// executable is a regular file even to lstat, though it answers
// readlink: what lstat calls a link, path resolvers such as
// filepath.EvalSymlinks follow, and this link names itself.
func (fs *memFS) stat(rel string, _ bool) (Attr, unix.Errno) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	n, e := fs.lookup(rel)
	if e != 0 {
		return Attr{}, e
	}
	return fs.attr(n), 0
}

func (fs *memFS) readlink(rel string) (string, unix.Errno) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	n, e := fs.lookup(rel)
	switch {
	case e != 0:
		return "", e
	case n.exe != "":
		return n.exe, 0
	case !n.isLink():
		return "", unix.EINVAL
	}
	return n.target, 0
}

func (fs *memFS) open(rel string, flags int, mode uint32) (Handle, unix.Errno) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	n, e := fs.lookup(rel)
	acc := flags & unix.O_ACCMODE
	switch {
	case e == unix.ENOENT && flags&unix.O_CREAT != 0:
		if !fs.writable {
			return nil, unix.EROFS
		}
		parent, name, e := fs.parentOf(rel)
		if e != 0 {
			return nil, e
		}
		n = newNode(unix.S_IFREG | mode&0o7777)
		if e := fs.insert(parent, name, n); e != 0 {
			return nil, e
		}
	case e != 0:
		return nil, e
	case flags&unix.O_CREAT != 0 && flags&unix.O_EXCL != 0:
		return nil, unix.EEXIST
	case n.isLink():
		return nil, unix.ELOOP // O_NOFOLLOW on a link
	case flags&unix.O_DIRECTORY != 0 && !n.isDir():
		return nil, unix.ENOTDIR
	case n.isDir() && (acc != unix.O_RDONLY || flags&(unix.O_TRUNC|unix.O_CREAT) != 0):
		return nil, unix.EISDIR
	case acc != unix.O_RDONLY && !fs.writable && n.dev == nil:
		return nil, unix.EROFS
	}
	if flags&unix.O_TRUNC != 0 && acc != unix.O_RDONLY && n.dev == nil && !n.isDir() {
		if e := fs.resize(n, 0); e != 0 {
			return nil, e
		}
	}
	n.opens++
	return &memHandle{fs: fs, n: n}, 0
}

// parentOf returns the directory that holds rel and rel's last element.
// Called with mu.
func (fs *memFS) parentOf(rel string) (*node, string, unix.Errno) {
	i := strings.LastIndexByte(rel, '/')
	dir, name := "", rel
	if i >= 0 {
		dir, name = rel[:i], rel[i+1:]
	}
	if name == "" {
		return nil, "", unix.EEXIST // the root
	}
	p, e := fs.lookup(dir)
	if e != 0 {
		return nil, "", e
	}
	if !p.isDir() {
		return nil, "", unix.ENOTDIR
	}
	if len(name) > 255 {
		return nil, "", unix.ENAMETOOLONG
	}
	return p, name, 0
}

// resize sets a regular file's size. The capacity behind it is what
// counts against the memory limit: growth leaves a quarter more for the
// next append, and a file cut below half its capacity is moved to a
// buffer of its size. Called with mu.
func (fs *memFS) resize(n *node, size int64) unix.Errno {
	old, oldCap := int64(len(n.data)), int64(cap(n.data))
	if size == old {
		return 0
	}
	newCap := oldCap
	switch {
	case size > oldCap:
		newCap = size + size/4
		if !fs.account(newCap - oldCap) {
			newCap = size
			if !fs.account(newCap - oldCap) {
				return unix.ENOSPC
			}
		}
	case size < oldCap/2:
		newCap = size
		fs.account(newCap - oldCap)
	}
	if newCap != oldCap {
		buf := make([]byte, size, newCap)
		copy(buf, n.data)
		n.data = buf
		n.charged += newCap - oldCap
	} else {
		if size < old {
			clear(n.data[size:]) // what a later growth shows is zeroes
		}
		n.data = n.data[:size]
	}
	n.mtime = now()
	n.ctime = n.mtime
	return 0
}

func (fs *memFS) mkdir(rel string, mode uint32) unix.Errno {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	p, name, e := fs.parentOf(rel)
	if e != 0 {
		return e
	}
	if _, ok := p.children[name]; ok {
		return unix.EEXIST // before EROFS, as Linux
	}
	if !fs.writable {
		return unix.EROFS
	}
	return fs.insert(p, name, newNode(unix.S_IFDIR|mode&0o7777))
}

func (fs *memFS) remove(rel string, dir bool) unix.Errno {
	if !fs.writable {
		return unix.EROFS
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	p, name, e := fs.parentOf(rel)
	if e != 0 {
		return e
	}
	n, ok := p.children[name]
	switch {
	case !ok:
		return unix.ENOENT
	case dir && !n.isDir():
		return unix.ENOTDIR
	case !dir && n.isDir():
		return unix.EISDIR
	case dir && len(n.children) > 0:
		return unix.ENOTEMPTY
	}
	delete(p.children, name)
	fs.account(-nameCost(name))
	if n.isDir() {
		p.nlink--
	}
	fs.unref(n)
	p.mtime = now()
	p.ctime = p.mtime
	n.ctime = p.mtime
	return 0
}

func (fs *memFS) rename(from, to string, flags uint) unix.Errno {
	if !fs.writable {
		return unix.EROFS
	}
	if flags&^(unix.RENAME_NOREPLACE) != 0 {
		return unix.EINVAL
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fp, fname, e := fs.parentOf(from)
	if e != 0 {
		return e
	}
	tp, tname, e := fs.parentOf(to)
	if e != 0 {
		return e
	}
	n, ok := fp.children[fname]
	if !ok {
		return unix.ENOENT
	}
	if from == to {
		return 0
	}
	if n.isDir() && strings.HasPrefix(to+"/", from+"/") {
		return unix.EINVAL // into itself
	}
	if old, ok := tp.children[tname]; ok {
		switch {
		case flags&unix.RENAME_NOREPLACE != 0:
			return unix.EEXIST
		case old.isDir() && !n.isDir():
			return unix.EISDIR
		case !old.isDir() && n.isDir():
			return unix.ENOTDIR
		case old.isDir() && len(old.children) > 0:
			return unix.ENOTEMPTY
		case old == n:
			return 0 // two names of one file: nothing changes
		}
		if old.isDir() {
			tp.nlink--
		}
		fs.unref(old)
		fs.account(-nameCost(fname))
	} else if !fs.account(nameCost(tname) - nameCost(fname)) {
		return unix.ENOSPC
	}
	delete(fp.children, fname)
	tp.children[tname] = n
	if n.isDir() && fp != tp {
		fp.nlink--
		tp.nlink++
	}
	t := now()
	fp.mtime, tp.mtime, n.ctime = t, t, t
	return 0
}

func (fs *memFS) symlink(target, rel string) unix.Errno {
	if !fs.writable {
		return unix.EROFS
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	p, name, e := fs.parentOf(rel)
	if e != 0 {
		return e
	}
	if _, ok := p.children[name]; ok {
		return unix.EEXIST
	}
	l := newNode(unix.S_IFLNK | 0o777)
	l.target = target
	return fs.insert(p, name, l)
}

func (fs *memFS) link(from, to string) unix.Errno {
	if !fs.writable {
		return unix.EROFS
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	n, e := fs.lookup(from)
	if e != 0 {
		return e
	}
	if n.isDir() {
		return unix.EPERM
	}
	p, name, e := fs.parentOf(to)
	if e != 0 {
		return e
	}
	if _, ok := p.children[name]; ok {
		return unix.EEXIST
	}
	if !fs.account(nameCost(name)) {
		return unix.ENOSPC
	}
	p.children[name] = n
	n.nlink++
	n.ctime = now()
	p.mtime, p.ctime = n.ctime, n.ctime
	return 0
}

func (fs *memFS) chmod(rel string, mode uint32, follow bool) unix.Errno {
	if !fs.writable {
		return unix.EROFS
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	n, e := fs.lookup(rel)
	if e != 0 {
		return e
	}
	if n.isLink() && !follow {
		return unix.EOPNOTSUPP // a link's mode is not its own to change
	}
	n.mode = n.mode&unix.S_IFMT | mode&0o7777
	n.ctime = now()
	return 0
}

func (fs *memFS) utimes(rel string, atime, mtime *unix.Timespec, _ bool) unix.Errno {
	if !fs.writable {
		return unix.EROFS
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	n, e := fs.lookup(rel)
	if e != 0 {
		return e
	}
	setTimes(n, atime, mtime)
	return 0
}

func setTimes(n *node, atime, mtime *unix.Timespec) {
	if atime != nil {
		n.atime = *atime
	}
	if mtime != nil {
		n.mtime = *mtime
	}
	n.ctime = now()
}

func (fs *memFS) statfs() (unix.Statfs_t, unix.Errno) {
	st := unix.Statfs_t{Type: 0x01021994, Bsize: 4096, Namelen: 255, Frsize: 4096} // TMPFS_MAGIC
	if !fs.writable {
		st.Flags |= unix.ST_RDONLY
	}
	return st, 0
}

// memHandle is an open node.
type memHandle struct {
	fs *memFS
	n  *node
	// guarded by fs.mu
	lock   int // the flock it holds: 0, LOCK_SH or LOCK_EX
	closed bool
}

func (h *memHandle) ReadAt(p []byte, off int64) (int, unix.Errno) {
	if h.n.dev != nil {
		return h.n.dev.read(p)
	}
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if h.n.isDir() {
		return 0, unix.EISDIR
	}
	if off < 0 {
		return 0, unix.EINVAL
	}
	if off >= int64(len(h.n.data)) {
		return 0, 0
	}
	return faultSafeCopy(p, h.n.data[off:])
}

// faultSafeCopy copies src, which may be a mapping of the image file,
// into dst. Should the file have been truncated or overwritten in place
// behind the mapping, the copy faults: that is EIO to the guest, not a
// crash of the monitor.
func faultSafeCopy(dst, src []byte) (n int, e unix.Errno) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if recover() != nil {
			n, e = 0, unix.EIO
		}
	}()
	return copy(dst, src), 0
}

func (h *memHandle) WriteAt(p []byte, off int64, append bool) (int, unix.Errno) {
	if h.n.dev != nil {
		return h.n.dev.write(p)
	}
	if !h.fs.writable {
		return 0, unix.EROFS
	}
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if append {
		off = int64(len(h.n.data))
	}
	end := off + int64(len(p))
	if off < 0 || end < off {
		return 0, unix.EINVAL
	}
	if end > int64(len(h.n.data)) {
		if e := h.fs.resize(h.n, end); e != 0 {
			return 0, e
		}
	}
	copy(h.n.data[off:], p)
	h.n.mtime = now()
	return len(p), 0
}

func (h *memHandle) Attr() (Attr, unix.Errno) {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	return h.fs.attr(h.n), 0
}

func (h *memHandle) Truncate(size int64) unix.Errno {
	if size < 0 {
		return unix.EINVAL
	}
	if !h.fs.writable {
		return unix.EROFS
	}
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if h.n.isDir() {
		return unix.EISDIR
	}
	if h.n.dev != nil {
		return unix.EINVAL
	}
	return h.fs.resize(h.n, size)
}

func (h *memHandle) Sync() unix.Errno { return 0 }

func (h *memHandle) ReadDir() ([]Dirent, unix.Errno) {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if !h.n.isDir() {
		return nil, unix.ENOTDIR
	}
	out := []Dirent{{".", h.n.ino, unix.DT_DIR}, {"..", h.n.ino, unix.DT_DIR}}
	names := make([]string, 0, len(h.n.children))
	for name := range h.n.children {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		c := h.n.children[name]
		out = append(out, Dirent{name, c.ino, dtype(c.mode)})
	}
	return out, 0
}

func (h *memHandle) Chmod(mode uint32) unix.Errno {
	if !h.fs.writable {
		return unix.EROFS
	}
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	h.n.mode = h.n.mode&unix.S_IFMT | mode&0o7777
	return 0
}

func (h *memHandle) Utimes(atime, mtime *unix.Timespec) unix.Errno {
	if !h.fs.writable {
		return unix.EROFS
	}
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	setTimes(h.n, atime, mtime)
	return 0
}

// Lock answers record locks on an in-memory file. Only the guest opens
// it, and the guest is one process, so a POSIX lock never conflicts: it
// is taken, and tested free. Locks of open file descriptions, which would
// conflict between the guest's own open files, are not kept: EINVAL.
func (h *memHandle) Lock(cmd int, lk *unix.Flock_t) unix.Errno {
	switch cmd {
	case unix.F_GETLK:
		lk.Type = unix.F_UNLCK
		return 0
	case unix.F_SETLK:
		return 0
	}
	return unix.EINVAL
}

// Flock locks the node against the guest's other open files of it;
// nothing outside the guest shares an in-memory file.
func (h *memHandle) Flock(how int) unix.Errno {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	n := h.n
	switch how &^ unix.LOCK_NB {
	case unix.LOCK_UN:
		h.unlock()
	case unix.LOCK_SH:
		if n.lockEx != nil && n.lockEx != h {
			return unix.EWOULDBLOCK
		}
		if h.lock != unix.LOCK_SH {
			h.unlock()
			n.lockSh++
			h.lock = unix.LOCK_SH
		}
	case unix.LOCK_EX:
		others := n.lockSh
		if h.lock == unix.LOCK_SH {
			others--
		}
		if (n.lockEx != nil && n.lockEx != h) || others > 0 {
			return unix.EWOULDBLOCK
		}
		h.unlock()
		n.lockEx = h
		h.lock = unix.LOCK_EX
	default:
		return unix.EINVAL
	}
	return 0
}

// unlock drops the handle's lock. Called with mu.
func (h *memHandle) unlock() {
	switch h.lock {
	case unix.LOCK_SH:
		h.n.lockSh--
	case unix.LOCK_EX:
		h.n.lockEx = nil
	}
	h.lock = 0
}

func (h *memHandle) HostFD() int { return -1 }

// Close drops the handle's lock and, for a file no longer named, what it
// held.
func (h *memHandle) Close() {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if h.closed {
		return
	}
	h.closed = true
	h.unlock()
	h.n.opens--
	h.fs.release(h.n)
}

// dtype is the getdents64 type of a mode.
func dtype(mode uint32) uint8 {
	switch mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return unix.DT_DIR
	case unix.S_IFREG:
		return unix.DT_REG
	case unix.S_IFLNK:
		return unix.DT_LNK
	case unix.S_IFCHR:
		return unix.DT_CHR
	case unix.S_IFIFO:
		return unix.DT_FIFO
	case unix.S_IFSOCK:
		return unix.DT_SOCK
	case unix.S_IFBLK:
		return unix.DT_BLK
	}
	return unix.DT_UNKNOWN
}
