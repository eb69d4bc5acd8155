package imagefile

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"

	"atoll.dev/atoll/manifest"
)

// Collect walks a manifest's files entries in the package directory pkgDir
// and returns the sources of the tree they make (not yet sorted, without
// implicit parents: Write completes them). Directories are walked
// recursively. A symbolic link is followed if what it points at lies
// inside the package directory, and refused otherwise; device files,
// FIFOs and sockets are refused. Directories given by two entries merge;
// any other path given twice is an error naming both entries, as is a
// destination under another entry's file. Host files in skip (the image
// being written, say) are left out.
func Collect(pkgDir string, entries []manifest.FilesEntry, skip ...string) ([]Source, error) {
	abs, err := filepath.Abs(pkgDir)
	if err != nil {
		return nil, err
	}
	root, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return nil, err
	}
	c := &collector{root: root, at: map[string]int{}, walking: map[string]bool{}, skip: map[string]bool{}}
	for _, s := range skip {
		if a, err := filepath.Abs(s); err == nil {
			if d, err := filepath.EvalSymlinks(filepath.Dir(a)); err == nil {
				c.skip[filepath.Join(d, filepath.Base(a))] = true
			}
		}
	}
	for _, e := range entries {
		c.entry = fmt.Sprintf("files %s %s", e.Src, e.Dst)
		if !filepath.IsLocal(e.Src) {
			return nil, fmt.Errorf("%s: the source is outside the package directory", c.entry)
		}
		if err := manifest.CheckGuestPath(e.Dst); err != nil {
			return nil, fmt.Errorf("%s: the destination %v", c.entry, err)
		}
		real, err := filepath.EvalSymlinks(filepath.Join(abs, e.Src))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.entry, unwrapPath(err))
		}
		if !c.inside(real) {
			return nil, fmt.Errorf("%s: %s resolves to %s, outside the package directory %s", c.entry, e.Src, real, root)
		}
		fi, err := os.Stat(real)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.entry, err)
		}
		if err := c.add(e.Src, real, fi, e.Dst); err != nil {
			return nil, err
		}
	}
	// A destination under another entry's file: name both entries.
	for _, e := range entries {
		for p := path.Dir(e.Dst); p != "/"; p = path.Dir(p) {
			if i, ok := c.at[p]; ok && !c.out[i].Mode.IsDir() {
				return nil, fmt.Errorf("files %s %s: %s is a file (%s), so nothing can lie under it", e.Src, e.Dst, p, c.from[i])
			}
		}
	}
	return c.out, nil
}

// unwrapPath drops the operation from a *fs.PathError: "lstat x: no such
// file" reads "x: no such file" after the entry that names it.
func unwrapPath(err error) error {
	if pe, ok := err.(*fs.PathError); ok {
		return fmt.Errorf("%s: %w", pe.Path, pe.Err)
	}
	return err
}

type collector struct {
	root    string          // the package directory, symbolic links resolved
	entry   string          // the entry being walked, for messages
	out     []Source        // what is packed
	from    []string        // the entry that gave out[i]
	at      map[string]int  // guest path → index in out
	walking map[string]bool // host directories being walked (link loops)
	skip    map[string]bool
}

func (c *collector) inside(real string) bool {
	rel, err := filepath.Rel(c.root, real)
	return err == nil && filepath.IsLocal(rel)
}

// add packs the host file or directory real (named show in messages, fi
// its Stat) at the guest path guest.
func (c *collector) add(show, real string, fi fs.FileInfo, guest string) error {
	if err := manifest.CheckGuestPath(guest); err != nil {
		return fmt.Errorf("%s: %s would be packed at %q, which %v", c.entry, show, guest, err)
	}
	if c.skip[real] {
		return nil
	}
	var s Source
	s.Path, s.Mode, s.ModTime = guest, fi.Mode().Perm(), fi.ModTime().UTC()
	switch {
	case fi.IsDir():
		s.Mode |= fs.ModeDir
	case fi.Mode().IsRegular():
		s.Size, s.HostPath = fi.Size(), real
	default:
		return fmt.Errorf("%s: %s is a %s: only regular files and directories can be packed", c.entry, show, typeName(fi.Mode()))
	}
	if i, dup := c.at[guest]; dup {
		if !s.Mode.IsDir() || !c.out[i].Mode.IsDir() {
			return fmt.Errorf("%s: %s is packed at %s, which %s gives too", c.entry, show, guest, c.from[i])
		}
	} else {
		if len(c.out) >= MaxTreeEntries {
			return fmt.Errorf("%s: more than %d files and directories to pack", c.entry, MaxTreeEntries)
		}
		c.at[guest] = len(c.out)
		c.out = append(c.out, s)
		c.from = append(c.from, c.entry)
	}
	if !fi.IsDir() {
		return nil
	}
	if c.walking[real] {
		return fmt.Errorf("%s: %s leads back to a directory it is in (a symbolic link loop)", c.entry, show)
	}
	c.walking[real] = true
	defer delete(c.walking, real)
	des, err := os.ReadDir(real)
	if err != nil {
		return fmt.Errorf("%s: %w", c.entry, unwrapPath(err))
	}
	for _, de := range des {
		childShow, childReal := filepath.Join(show, de.Name()), filepath.Join(real, de.Name())
		fi, err := os.Lstat(childReal)
		if err != nil {
			return fmt.Errorf("%s: %w", c.entry, unwrapPath(err))
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			target, err := filepath.EvalSymlinks(childReal)
			if err != nil {
				link, _ := os.Readlink(childReal)
				return fmt.Errorf("%s: %s is a symbolic link to %s, which does not resolve: %v", c.entry, childShow, link, unwrapPath(err))
			}
			if !c.inside(target) {
				link, _ := os.Readlink(childReal)
				return fmt.Errorf("%s: %s is a symbolic link to %s, outside the package directory %s", c.entry, childShow, link, c.root)
			}
			if fi, err = os.Stat(target); err != nil {
				return fmt.Errorf("%s: %w", c.entry, unwrapPath(err))
			}
			childReal = target
		}
		if err := c.add(childShow, childReal, fi, guest+"/"+de.Name()); err != nil {
			return err
		}
	}
	return nil
}

func typeName(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "FIFO"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeCharDevice != 0:
		return "character device"
	case m&fs.ModeDevice != 0:
		return "block device"
	}
	return "special file (" + m.String() + ")"
}
