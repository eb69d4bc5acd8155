// Package imagefile reads and writes Atoll images: a static Go executable
// with its manifest appended. The executable is unchanged, so the image
// still runs as an ordinary Linux process (loaders ignore trailing bytes);
// atoll finds the manifest through a fixed-size footer at the very end:
//
//	executable | manifest (JSON) | footer (24 bytes)
//	footer: "ATOLLIMG" | format u32 | JSON length u32 | CRC-32 (IEEE) of the JSON u32 | 0 u32
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
	magic      = "ATOLLIMG"
	footerSize = 24
	format     = 1
	// maxManifest bounds the embedded JSON.
	maxManifest = 1 << 20
)

// Embedded is what an image carries besides its executable.
type Embedded struct {
	Manifest   *manifest.Manifest `json:"manifest"`
	ABIVersion string             `json:"abi_version"`
}

// ErrBadImage is wrapped by errors about a damaged manifest trailer.
var ErrBadImage = errors.New("damaged atoll image")

// Append returns exe with e embedded.
func Append(exe []byte, e Embedded) ([]byte, error) {
	if hasFooter(exe) {
		return nil, fmt.Errorf("the executable already carries a manifest")
	}
	js, err := json.Marshal(e)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(exe)+len(js)+footerSize)
	out = append(append(out, exe...), js...)
	var f [footerSize]byte
	copy(f[:], magic)
	binary.LittleEndian.PutUint32(f[8:], format)
	binary.LittleEndian.PutUint32(f[12:], uint32(len(js)))
	binary.LittleEndian.PutUint32(f[16:], crc32.ChecksumIEEE(js))
	return append(out, f[:]...), nil
}

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

// MaxFile bounds the size of an image file: the largest executable the
// loader accepts plus room for the manifest.
const MaxFile = elfimage.MaxImageBytes + maxManifest + footerSize

// Load reads the image at path and splits it (see Split).
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
	if v := le.Uint32(f[8:]); v != format {
		return nil, nil, fmt.Errorf("%w: image format %d, this atoll reads %d — rebuild the image with this atoll", ErrBadImage, v, format)
	}
	n := uint64(le.Uint32(f[12:]))
	if n > maxManifest || n > uint64(len(data)-footerSize) {
		return nil, nil, fmt.Errorf("%w: manifest length %d does not fit the file (truncated?)", ErrBadImage, n)
	}
	exeLen := len(data) - footerSize - int(n)
	js := data[exeLen : len(data)-footerSize]
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
	return data[:exeLen], &e, nil
}
