package imagefile

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io/fs"
	"path"
	"sort"
	"time"

	"atoll.dev/atoll/manifest"
)

// Tree is the read-only file tree packed in an image.
type Tree struct {
	Entries []TreeEntry // sorted by Path; parents before children

	data []byte  // the whole image: the mapping when it was mapped
	offs []int64 // where Entries[i]'s contents start in data
	size int64   // sum of the regular files' sizes
}

// TreeEntry is one file or directory of a Tree.
type TreeEntry struct {
	Path    string      // absolute, clean guest path ("/etc/app.conf")
	Mode    fs.FileMode // fs.ModeDir for directories, 0 type bits for regular files; permission bits kept from the build host
	Size    int64
	ModTime time.Time
}

// IsDir reports whether e is a directory.
func (e TreeEntry) IsDir() bool { return e.Mode.IsDir() }

// Lookup returns the entry at the guest path p (absolute and clean).
func (t *Tree) Lookup(p string) (TreeEntry, bool) {
	i, ok := t.find(p)
	if !ok {
		return TreeEntry{}, false
	}
	return t.Entries[i], true
}

func (t *Tree) find(p string) (int, bool) {
	if t == nil {
		return 0, false
	}
	i := sort.Search(len(t.Entries), func(i int) bool { return t.Entries[i].Path >= p })
	return i, i < len(t.Entries) && t.Entries[i].Path == p
}

// Data returns a regular file's contents: a slice of the image (the
// mapping when the image was mapped), starting page-aligned in the file.
// It is nil for a directory, an empty file or a path not in the tree. The
// bytes must not be modified (a mapping is read-only).
func (t *Tree) Data(e TreeEntry) []byte {
	i, ok := t.find(e.Path)
	if !ok || !t.Entries[i].Mode.IsRegular() || t.Entries[i].Size == 0 {
		return nil
	}
	off, end := t.offs[i], t.offs[i]+t.Entries[i].Size
	return t.data[off:end:end]
}

// Size returns the total size of the packed contents (the regular files'
// sizes, without alignment padding).
func (t *Tree) Size() int64 {
	if t == nil {
		return 0
	}
	return t.size
}

// The index of a format-2 image (see the package comment).
const (
	indexMagic = "ATOLLTRE"
	headerSize = 32
	entrySize  = 40
	// PageSize is the alignment of every regular file's contents in the
	// image file.
	PageSize = 4096

	// MaxTreeEntries bounds the entries of a tree.
	MaxTreeEntries = 1 << 20
	// MaxTreeSize bounds the total size of a tree's contents (64 GiB).
	MaxTreeSize = 1 << 36
	// maxIndex bounds the index: MaxTreeEntries entries with paths of
	// 200 bytes on average.
	maxIndex = headerSize + MaxTreeEntries*(entrySize+200)

	sIFDIR = 0o040000
	sIFREG = 0o100000
	sIFMT  = 0o170000
)

func alignPage(n uint64) uint64 { return (n + PageSize - 1) &^ (PageSize - 1) }

// unixMode turns a TreeEntry's mode into the index's: S_IFDIR or S_IFREG
// with the permission bits.
func unixMode(m fs.FileMode) uint32 {
	if m.IsDir() {
		return sIFDIR | uint32(m.Perm())
	}
	return sIFREG | uint32(m.Perm())
}

// encodeIndex encodes entries (sorted, complete) with their contents
// offsets, for an executable of exeLen bytes.
func encodeIndex(entries []TreeEntry, offs []int64, exeLen int) []byte {
	var names []byte
	idx := make([]byte, headerSize+len(entries)*entrySize)
	le := binary.LittleEndian
	for i, e := range entries {
		b := idx[headerSize+i*entrySize:]
		le.PutUint32(b[0:], uint32(len(names)))
		le.PutUint32(b[4:], uint32(len(e.Path)))
		names = append(names, e.Path...)
		le.PutUint32(b[8:], unixMode(e.Mode))
		le.PutUint32(b[12:], uint32(e.ModTime.Nanosecond()))
		le.PutUint64(b[16:], uint64(e.ModTime.Unix()))
		le.PutUint64(b[24:], uint64(offs[i]))
		le.PutUint64(b[32:], uint64(e.Size))
	}
	idx = append(idx, names...)
	copy(idx, indexMagic)
	le.PutUint32(idx[12:], uint32(len(entries)))
	le.PutUint64(idx[16:], uint64(exeLen))
	le.PutUint32(idx[24:], uint32(len(names)))
	le.PutUint32(idx[8:], crc32.ChecksumIEEE(idx[12:]))
	return idx
}

// decodeIndex reads the index at data[start:end] of the image data (end is
// where the manifest JSON starts) and returns the executable's length and
// the tree. Every entry is checked against the file: this is hostile
// input.
func decodeIndex(data []byte, start, end uint64) (int, *Tree, error) {
	idx := data[start:end]
	le := binary.LittleEndian
	if len(idx) < headerSize || string(idx[:8]) != indexMagic {
		return 0, nil, fmt.Errorf("%w: no file tree index where the footer puts it (truncated?)", ErrBadImage)
	}
	if crc32.ChecksumIEEE(idx[12:]) != le.Uint32(idx[8:]) {
		return 0, nil, fmt.Errorf("%w: file tree index checksum mismatch (the file was modified or truncated)", ErrBadImage)
	}
	count, exeLen, namesLen := uint64(le.Uint32(idx[12:])), le.Uint64(idx[16:]), uint64(le.Uint32(idx[24:]))
	switch {
	case count > MaxTreeEntries:
		return 0, nil, fmt.Errorf("%w: file tree of %d entries, more than the %d allowed", ErrBadImage, count, MaxTreeEntries)
	case headerSize+count*entrySize+namesLen != uint64(len(idx)):
		return 0, nil, fmt.Errorf("%w: file tree index of %d bytes does not hold %d entries and %d bytes of paths", ErrBadImage, len(idx), count, namesLen)
	case le.Uint32(idx[28:]) != 0:
		return 0, nil, fmt.Errorf("%w: file tree index has unknown flags %#x", ErrBadImage, le.Uint32(idx[28:]))
	case exeLen == 0 || exeLen > start:
		return 0, nil, fmt.Errorf("%w: executable length %d does not fit before the file tree index at %d", ErrBadImage, exeLen, start)
	}
	names := idx[headerSize+count*entrySize:]
	t := &Tree{data: data, Entries: make([]TreeEntry, count), offs: make([]int64, count)}
	dirs := map[string]bool{"/": true}
	next := alignPage(exeLen) // where the next contents may start
	for i := range count {
		b := idx[headerSize+i*entrySize:]
		no, nl := uint64(le.Uint32(b[0:])), uint64(le.Uint32(b[4:]))
		if no > namesLen || nl > namesLen-no {
			return 0, nil, fmt.Errorf("%w: file tree entry %d: path out of bounds", ErrBadImage, i)
		}
		p := string(names[no : no+nl])
		if err := manifest.CheckGuestPath(p); err != nil {
			return 0, nil, fmt.Errorf("%w: file tree entry %q: path %v", ErrBadImage, p, err)
		}
		if i > 0 && p <= t.Entries[i-1].Path {
			return 0, nil, fmt.Errorf("%w: file tree entry %q is out of order or repeated", ErrBadImage, p)
		}
		if !dirs[path.Dir(p)] {
			return 0, nil, fmt.Errorf("%w: file tree entry %q: its parent directory is not in the tree", ErrBadImage, p)
		}
		mode, nsec, sec := le.Uint32(b[8:]), le.Uint32(b[12:]), int64(le.Uint64(b[16:]))
		off, size := le.Uint64(b[24:]), le.Uint64(b[32:])
		if nsec >= 1e9 {
			return 0, nil, fmt.Errorf("%w: file tree entry %q: bad modification time", ErrBadImage, p)
		}
		e := TreeEntry{Path: p, Mode: fs.FileMode(mode & 0o777), ModTime: time.Unix(sec, int64(nsec)).UTC()}
		switch mode &^ 0o777 {
		case sIFDIR:
			if off != 0 || size != 0 {
				return 0, nil, fmt.Errorf("%w: file tree directory %q has contents", ErrBadImage, p)
			}
			e.Mode |= fs.ModeDir
			dirs[p] = true
		case sIFREG:
			switch {
			case size == 0 && off != 0:
				return 0, nil, fmt.Errorf("%w: file tree entry %q: an empty file with an offset", ErrBadImage, p)
			case size == 0:
			case off%PageSize != 0:
				return 0, nil, fmt.Errorf("%w: file tree entry %q: contents at %d, not page-aligned", ErrBadImage, p, off)
			case off < next || off > start || size > start-off:
				return 0, nil, fmt.Errorf("%w: file tree entry %q: %d bytes at %d lie outside the contents area or overlap another file", ErrBadImage, p, size, off)
			default:
				next = off + size
			}
			e.Size = int64(size)
			t.offs[i] = int64(off)
			t.size += int64(size)
		default:
			return 0, nil, fmt.Errorf("%w: file tree entry %q has mode %#o: only directories and regular files with permission bits", ErrBadImage, p, mode)
		}
		t.Entries[i] = e
	}
	return int(exeLen), t, nil
}
