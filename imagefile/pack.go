package imagefile

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"time"

	"atoll.dev/atoll/manifest"
)

// Source is one entry of a tree to pack: where it goes in the guest and,
// for a regular file, where its contents come from.
type Source struct {
	TreeEntry
	// HostPath names a regular file on the build host holding the
	// contents: it must still be a regular file of Size bytes when they
	// are copied. When it is empty, Data holds the contents.
	HostPath string
	Data     []byte
}

// implicitDir is the mode and time of a directory added only because a
// packed path lies under it (/etc for /etc/app.conf).
var implicitDir = TreeEntry{Mode: fs.ModeDir | 0o755, ModTime: time.Unix(0, 0).UTC()}

// completeTree checks the sources and returns them sorted by path, with
// every missing parent directory added.
func completeTree(files []Source) ([]Source, error) {
	at := make(map[string]int, len(files))
	var out []Source
	var total int64
	for _, s := range files {
		if err := manifest.CheckGuestPath(s.Path); err != nil {
			return nil, fmt.Errorf("tree path %q %v", s.Path, err)
		}
		switch {
		case s.Mode.IsDir():
			s.Mode, s.Size, s.HostPath, s.Data = fs.ModeDir|s.Mode.Perm(), 0, "", nil
		case s.Mode.IsRegular():
			s.Mode = s.Mode.Perm()
			if s.Size < 0 || s.HostPath == "" && int64(len(s.Data)) != s.Size {
				return nil, fmt.Errorf("tree path %s: size %d does not match its %d bytes of data", s.Path, s.Size, len(s.Data))
			}
			total += s.Size
		default:
			return nil, fmt.Errorf("tree path %s: only regular files and directories can be packed, not %v", s.Path, s.Mode.Type())
		}
		if _, dup := at[s.Path]; dup {
			return nil, fmt.Errorf("tree path %s given twice", s.Path)
		}
		at[s.Path] = len(out)
		out = append(out, s)
	}
	for i := 0; i < len(out); i++ { // out grows with the parents it lacks
		p := path.Dir(out[i].Path)
		if p == "/" {
			continue
		}
		if j, ok := at[p]; ok {
			if !out[j].Mode.IsDir() {
				return nil, fmt.Errorf("tree path %s lies under %s, which is a file", out[i].Path, p)
			}
			continue
		}
		d := Source{TreeEntry: implicitDir}
		d.Path = p
		at[p] = len(out)
		out = append(out, d)
	}
	switch {
	case len(out) > MaxTreeEntries:
		return nil, fmt.Errorf("the tree has %d entries, more than the %d allowed", len(out), MaxTreeEntries)
	case total > MaxTreeSize:
		return nil, fmt.Errorf("the tree holds %d bytes, more than the %d allowed", total, int64(MaxTreeSize))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// Write writes an image to w: exe, the tree packed from files, and e's
// manifest (e.Tree is ignored). Without files it writes a format-1 image,
// which older atolls read too. It returns the tree's entries as packed,
// implicit parent directories included. Writing to an *os.File copies the
// host files with copy_file_range where the file system allows.
func Write(w io.Writer, exe []byte, e Embedded, files []Source) ([]TreeEntry, error) {
	if hasFooter(exe) {
		return nil, fmt.Errorf("the executable already carries a manifest")
	}
	if len(exe) == 0 {
		return nil, fmt.Errorf("no executable")
	}
	e.Tree = nil
	js, err := json.Marshal(e)
	if err != nil {
		return nil, err
	}
	if len(js) > maxManifest {
		return nil, fmt.Errorf("the manifest is %d bytes as JSON, more than the %d allowed", len(js), maxManifest)
	}
	srcs, err := completeTree(files)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(exe); err != nil {
		return nil, err
	}
	var index []byte
	var entries []TreeEntry
	if len(srcs) > 0 {
		entries = make([]TreeEntry, len(srcs))
		offs := make([]int64, len(srcs))
		pos := int64(len(exe))
		for i, s := range srcs {
			entries[i] = s.TreeEntry
			if !s.Mode.IsRegular() || s.Size == 0 {
				continue
			}
			if err := writeZeros(w, int64(alignPage(uint64(pos)))-pos); err != nil {
				return nil, err
			}
			offs[i] = int64(alignPage(uint64(pos)))
			if err := copyContents(w, s); err != nil {
				return nil, err
			}
			pos = offs[i] + s.Size
		}
		index = encodeIndex(entries, offs, len(exe))
		if len(index) > maxIndex {
			return nil, fmt.Errorf("the tree's index is %d bytes, more than the %d allowed: pack fewer files or shorter paths", len(index), maxIndex)
		}
		if _, err := w.Write(index); err != nil {
			return nil, err
		}
	}
	if _, err := w.Write(js); err != nil {
		return nil, err
	}
	var f [footerSize]byte
	copy(f[:], magic)
	binary.LittleEndian.PutUint32(f[8:], formatNoTree)
	if index != nil {
		binary.LittleEndian.PutUint32(f[8:], formatTree)
	}
	binary.LittleEndian.PutUint32(f[12:], uint32(len(js)))
	binary.LittleEndian.PutUint32(f[16:], crc32.ChecksumIEEE(js))
	binary.LittleEndian.PutUint32(f[20:], uint32(len(index)))
	_, err = w.Write(f[:])
	return entries, err
}

var zeros [PageSize]byte

func writeZeros(w io.Writer, n int64) error {
	_, err := w.Write(zeros[:n])
	return err
}

// copyContents writes s's Size bytes of contents to w.
func copyContents(w io.Writer, s Source) error {
	if s.HostPath == "" {
		_, err := w.Write(s.Data)
		return err
	}
	f, err := os.Open(s.HostPath)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() || st.Size() != s.Size {
		return fmt.Errorf("%s changed while the image was built (%v, %d bytes; it was a regular file of %d bytes)", s.HostPath, st.Mode().Type(), st.Size(), s.Size)
	}
	n, err := io.CopyN(w, f, s.Size)
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("%s shrank while the image was built (%d of %d bytes)", s.HostPath, n, s.Size)
	}
	return err
}

// Append returns exe with e embedded, and e.Tree's files packed if it has
// any (from their Data: to copy a tree from one image to another).
func Append(exe []byte, e Embedded) ([]byte, error) {
	var files []Source
	if e.Tree != nil {
		for _, te := range e.Tree.Entries {
			files = append(files, Source{TreeEntry: te, Data: e.Tree.Data(te)})
		}
	}
	var b bytes.Buffer
	if _, err := Write(&b, exe, e, files); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
