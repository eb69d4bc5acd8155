package monitor

import (
	"fmt"

	"atoll.dev/atoll/monitor/elfimage"
	"atoll.dev/atoll/monitor/guestmem"
)

// loadImage puts the executable's segments in guest memory. With
// Config.ImageFile, the whole pages of each segment's file contents are
// mapped from that file copy-on-write (guestmem.MapFile): the text and
// read-only data of every VM booted from one file are the same page-cache
// pages, and only what a guest writes is its own. The rest — pages a
// segment covers only in part, and everything without a file — is
// copied; a segment's memory beyond its file contents is left zero.
func (v *VM) loadImage() error {
	var fileSize uint64
	if f := v.cfg.ImageFile; f != nil {
		st, err := f.Stat()
		if err != nil {
			return fmt.Errorf("image file: %w", err)
		}
		fileSize = uint64(st.Size())
	}
	for _, s := range v.img.Segments {
		lo, hi := filePages(s, fileSize)
		if hi > lo {
			if err := v.mem.MapFile(guestmem.GuestAddr(s.Vaddr+lo), hi-lo, int(v.cfg.ImageFile.Fd()), int64(s.Off+lo)); err != nil {
				return fmt.Errorf("load segment at %#x: %w", s.Vaddr, err)
			}
		}
		// What is copied is written now: its chunks are held. The rest
		// of the segment (.bss) counts as the guest touches it.
		for _, part := range [][2]uint64{{0, min(lo, uint64(len(s.Data)))}, {max(hi, lo), uint64(len(s.Data))}} {
			if part[1] <= part[0] {
				continue
			}
			b, err := v.mem.Populate(guestmem.GuestAddr(s.Vaddr+part[0]), part[1]-part[0])
			if err != nil {
				return fmt.Errorf("load segment at %#x: %w", s.Vaddr, err)
			}
			copy(b, s.Data[part[0]:part[1]])
		}
	}
	return nil
}

// filePages returns the part [lo, hi) of segment s, as offsets in it,
// that can be mapped from an image file of fileSize bytes: the whole
// pages of its file contents, when the segment's address and file offset
// agree modulo the page size (the Go linker's layout). lo == hi when
// nothing can.
func filePages(s elfimage.Segment, fileSize uint64) (lo, hi uint64) {
	const page = guestmem.PageSize
	end := s.Vaddr + uint64(len(s.Data))
	if s.Vaddr%page != s.Off%page || s.Off+uint64(len(s.Data)) > fileSize {
		return 0, 0
	}
	lo = (s.Vaddr+page-1)&^(page-1) - s.Vaddr
	hi = end&^(page-1) - s.Vaddr
	if end&^(page-1) < s.Vaddr || hi <= lo {
		return 0, 0
	}
	return lo, hi
}
