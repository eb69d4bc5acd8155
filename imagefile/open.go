package imagefile

import (
	"fmt"
	"os"
	"sync"
	"syscall"

	"atoll.dev/atoll/monitor/elfimage"
)

// Image is an image file mapped read-only. The mapping is shared
// (MAP_SHARED), so every VM booted from the same file reads the same
// page-cache pages.
type Image struct {
	// Exe is the executable: a slice of the mapping.
	Exe []byte
	// Embedded is what the image carries besides the executable, its
	// Tree's contents slices of the mapping; nil for a plain executable.
	Embedded *Embedded

	data  []byte   // the mapping; nil for an empty file or one read
	file  *os.File // the mapped file, kept open; nil when data is nil
	close sync.Once
}

// Open maps the image at path and splits it (see Split); a file that
// cannot be mapped (a pipe) is read instead. Exe, Embedded
// and the tree's Data stay valid until Close; modifying the file while
// it is mapped changes what they hold (atoll build replaces an image with
// a new file, which leaves existing mappings alone).
func Open(path string) (*Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	im := &Image{}
	switch {
	case !st.Mode().IsRegular(): // a pipe, say: read it
		data, err := elfimage.ReadFile(f, MaxFile)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if im.Exe, im.Embedded, err = Split(data); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return im, nil
	case st.Size() > MaxFile:
		f.Close()
		return nil, fmt.Errorf("%s: %w: file of %d bytes, more than the %d allowed", path, ErrBadImage, st.Size(), int64(MaxFile))
	case st.Size() > 0:
		im.data, err = syscall.Mmap(int(f.Fd()), 0, int(st.Size()), syscall.PROT_READ, syscall.MAP_SHARED)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: mmap: %w", path, err)
		}
		im.file = f
	default:
		f.Close()
	}
	if im.Exe, im.Embedded, err = Split(im.data); err != nil {
		im.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return im, nil
}

// File returns the mapped file, whose first bytes are Exe, open until
// Close (monitor.Config.ImageFile); nil for an image that was read.
func (im *Image) File() *os.File { return im.file }

// Close unmaps the image and closes its file; Exe, Embedded's Tree data and
// every slice taken from them must no longer be used. Closing twice does
// nothing.
func (im *Image) Close() error {
	var err error
	im.close.Do(func() {
		if im.data != nil {
			err = syscall.Munmap(im.data)
			im.file.Close()
		}
		im.data, im.Exe, im.file = nil, nil, nil
	})
	return err
}
