// Package imagefile reads and writes Atoll images: a static Go executable
// with its manifest, and a read-only file tree, appended. The executable
// is unchanged, so the image still runs as an ordinary Linux process
// (loaders ignore trailing bytes); atoll finds the rest through a
// fixed-size footer at the very end. An image without a tree is format 1:
//
//	executable | manifest (JSON) | footer (24 bytes)
//	footer: "ATOLLIMG" | format u32 (1) | JSON length u32 | CRC-32 (IEEE) of the JSON u32 | 0 u32
//
// An image with a tree is format 2. Every regular file's contents start at
// a multiple of 4096 bytes in the image file, so a monitor that maps the
// image can serve reads straight from the mapping:
//
//	executable | zeros to a multiple of 4096 | contents | index | manifest (JSON) | footer (24 bytes)
//	footer: "ATOLLIMG" | format u32 (2) | JSON length u32 | CRC-32 of the JSON u32 | index length u32
//	index:  header (32 bytes) | count entries (40 bytes each) | paths (concatenated)
//	header: "ATOLLTRE" | CRC-32 of the rest of the index u32 | count u32 | executable length u64 | paths length u32 | 0 u32
//	entry:  path offset u32 | path length u32 | mode u32 | mtime nanoseconds u32 | mtime seconds i64 | contents offset u64 | size u64
//
// Entries are sorted by path (byte order), so parents precede children
// and every directory's descendants are contiguous; every parent but "/"
// has its own entry. A mode is S_IFDIR (0o040000) or S_IFREG (0o100000)
// with permission bits (0o777). Directories and empty files have offset 0;
// other files' contents lie, in entry order and without overlapping,
// between the padded executable and the index.
//
// All integers are little-endian.
package imagefile

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"os"

	"atoll.dev/atoll/manifest"
	"atoll.dev/atoll/monitor/elfimage"
)

const (
	magic        = "ATOLLIMG"
	footerSize   = 24
	formatNoTree = 1
	formatTree   = 2
	// maxManifest bounds the embedded JSON.
	maxManifest = 1 << 20
)

// Embedded is what an image carries besides its executable.
type Embedded struct {
	Manifest   *manifest.Manifest `json:"manifest"`
	ABIVersion string             `json:"abi_version"`
	// Tree is the image's read-only file tree; nil when it has none.
	Tree *Tree `json:"-"`
}

// ErrBadImage is wrapped by errors about a damaged trailer: the manifest,
// the footer or the file tree.
var ErrBadImage = errors.New("damaged atoll image")

// elfEnd returns where the last byte an ELF file describes (a section,
// a segment or the section header table) ends, or 0 if data is not an ELF
// file (the loader reports that better).
func elfEnd(data []byte) uint64 {
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil || len(data) < 64 {
		return 0
	}
	le := binary.LittleEndian
	end := le.Uint64(data[40:]) + uint64(le.Uint16(data[58:]))*uint64(le.Uint16(data[60:]))
	for _, s := range f.Sections {
		if s.Type != elf.SHT_NOBITS {
			end = max(end, s.Offset+s.FileSize)
		}
	}
	for _, p := range f.Progs {
		end = max(end, p.Off+p.Filesz)
	}
	return end
}

func hasFooter(data []byte) bool {
	return len(data) >= footerSize && bytes.Equal(data[len(data)-footerSize:][:8], []byte(magic))
}

// MaxFile bounds the size of an image file Load reads: the largest
// executable the loader accepts plus room for the manifest and a tree.
const MaxFile = elfimage.MaxImageBytes + PageSize + MaxTreeSize + maxIndex + maxManifest + footerSize

// Load reads the image at path into memory and splits it (see Split).
// Open maps it instead, which an image with a large tree wants.
func Load(path string) (exe []byte, e *Embedded, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	data, err := elfimage.ReadFile(f, MaxFile)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	if exe, e, err = Split(data); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return exe, e, nil
}

// Split separates an image into its executable and what it embeds. A
// plain executable (no footer, nothing after the ELF's last byte) yields a
// nil *Embedded and no error.
func Split(data []byte) ([]byte, *Embedded, error) {
	if !hasFooter(data) {
		if end := elfEnd(data); end > 0 && end < uint64(len(data)) {
			return nil, nil, fmt.Errorf("%w: %d bytes follow the executable but no manifest footer ends the file (truncated?) — rebuild it with atoll build", ErrBadImage, uint64(len(data))-end)
		}
		return data, nil, nil
	}
	f := data[len(data)-footerSize:]
	le := binary.LittleEndian
	v := le.Uint32(f[8:])
	if v != formatNoTree && v != formatTree {
		return nil, nil, fmt.Errorf("%w: image format %d, this atoll reads %d and %d — rebuild the image with this atoll", ErrBadImage, v, formatNoTree, formatTree)
	}
	n := uint64(le.Uint32(f[12:]))
	if n > maxManifest || n > uint64(len(data)-footerSize) {
		return nil, nil, fmt.Errorf("%w: manifest length %d does not fit the file (truncated?)", ErrBadImage, n)
	}
	jsStart := uint64(len(data)) - footerSize - n
	js := data[jsStart : len(data)-footerSize]
	if crc32.ChecksumIEEE(js) != le.Uint32(f[16:]) {
		return nil, nil, fmt.Errorf("%w: manifest checksum mismatch (the file was modified or truncated)", ErrBadImage)
	}
	var e Embedded
	if err := json.Unmarshal(js, &e); err != nil {
		return nil, nil, fmt.Errorf("%w: unreadable manifest: %v", ErrBadImage, err)
	}
	if e.Manifest == nil {
		return nil, nil, fmt.Errorf("%w: the trailer holds no manifest", ErrBadImage)
	}
	if err := e.Manifest.Validate(); err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrBadImage, err)
	}
	exeLen := int(jsStart)
	if ilen := uint64(le.Uint32(f[20:])); v == formatNoTree && ilen != 0 {
		return nil, nil, fmt.Errorf("%w: a format-1 footer with an index length (damaged footer)", ErrBadImage)
	} else if v == formatTree {
		if ilen > maxIndex || ilen > jsStart {
			return nil, nil, fmt.Errorf("%w: file tree index length %d does not fit the file (truncated?)", ErrBadImage, ilen)
		}
		var err error
		if exeLen, e.Tree, err = decodeIndex(data, jsStart-ilen, jsStart); err != nil {
			return nil, nil, err
		}
	}
	return data[:exeLen], &e, nil
}
