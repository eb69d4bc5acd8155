// Package elfimage reads and validates the executable a unikernel is made
// of: a static, non-PIE linux/amd64 ELF as the stock Go toolchain builds
// with CGO_ENABLED=0. Everything read from the file is checked before the
// monitor trusts it; errors say what is wrong and how to fix it.
package elfimage

import (
	"bytes"
	"debug/buildinfo"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
)

// Limits on what an image may ask for.
const (
	// MinVaddr is the lowest address a segment may occupy; the pages below
	// stay unmapped so that nil dereferences fault, and the monitor keeps
	// its own pages there.
	MinVaddr = 0x400000
	// MaxVaddr bounds the image's address range (1 TiB).
	MaxVaddr = 1 << 40
	// MaxImageBytes bounds the memory the segments may occupy (1 GiB).
	MaxImageBytes = 1 << 30
)

// ErrInvalid is wrapped by every validation error.
var ErrInvalid = errors.New("invalid image")

// Segment is one loadable segment.
type Segment struct {
	Vaddr uint64 // where it is mapped
	Data  []byte // file contents; the rest up to Memsz is zero
	Off   uint64 // where Data starts in the file
	Memsz uint64
	Flags elf.ProgFlag
}

// Image is a validated executable ready to load.
type Image struct {
	Entry    uint64
	Segments []Segment
	// Start and End bound all segments, page-aligned.
	Start, End uint64
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Parse validates an executable held in memory.
func Parse(data []byte) (*Image, error) {
	if len(data) < 4 || !bytes.Equal(data[:4], []byte(elf.ELFMAG)) {
		if kind := foreignFormat(data); kind != "" {
			return nil, invalid("a %s executable, not an ELF one — build for Linux with CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build", kind)
		}
		return nil, invalid("not an ELF executable — build one with CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build")
	}
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return nil, invalid("malformed or truncated ELF (%v) — check the file was copied whole, or rebuild it", err)
	}
	if f.Class != elf.ELFCLASS64 || f.Data != elf.ELFDATA2LSB || f.Machine != elf.EM_X86_64 {
		return nil, invalid("built for %s (%v, %v), not x86-64 — rebuild with GOARCH=amd64", goarch(f.Machine), f.Machine, f.Class)
	}
	if f.OSABI != elf.ELFOSABI_NONE && f.OSABI != elf.ELFOSABI_LINUX {
		return nil, invalid("built for %s (%v), not Linux — rebuild with GOOS=linux", osName(f.OSABI), f.OSABI)
	}
	if err := checkStatic(data, f); err != nil {
		return nil, err
	}
	if f.Type != elf.ET_EXEC {
		return nil, invalid("ELF type %v is not an executable", f.Type)
	}
	img := &Image{Entry: f.Entry, Start: ^uint64(0)}
	var total uint64
	for _, p := range f.Progs {
		if p.Type != elf.PT_LOAD {
			continue
		}
		if p.Memsz == 0 {
			continue
		}
		end := p.Vaddr + p.Memsz
		switch {
		case p.Filesz > p.Memsz:
			return nil, invalid("segment at %#x: file size %#x exceeds memory size %#x", p.Vaddr, p.Filesz, p.Memsz)
		case p.Off > uint64(len(data)) || p.Filesz > uint64(len(data))-p.Off:
			return nil, invalid("segment at %#x: contents [%#x, +%#x) lie beyond the end of the file (%d bytes): truncated?", p.Vaddr, p.Off, p.Filesz, len(data))
		case end < p.Vaddr || p.Vaddr < MinVaddr || end > MaxVaddr:
			return nil, invalid("segment [%#x, +%#x) outside the allowed range [%#x, %#x)", p.Vaddr, p.Memsz, MinVaddr, uint64(MaxVaddr))
		case p.Memsz > MaxImageBytes:
			return nil, invalid("segment at %#x is %d bytes, more than the %d allowed", p.Vaddr, p.Memsz, MaxImageBytes)
		}
		total += p.Memsz
		if total > MaxImageBytes {
			return nil, invalid("segments total more than %d bytes", MaxImageBytes)
		}
		img.Segments = append(img.Segments, Segment{
			Vaddr: p.Vaddr,
			Data:  data[p.Off : p.Off+p.Filesz],
			Off:   p.Off,
			Memsz: p.Memsz,
			Flags: p.Flags,
		})
		img.Start = min(img.Start, p.Vaddr&^0xfff)
		img.End = max(img.End, (end+0xfff)&^0xfff)
	}
	if len(img.Segments) == 0 {
		return nil, invalid("no loadable segments")
	}
	sort.Slice(img.Segments, func(i, j int) bool { return img.Segments[i].Vaddr < img.Segments[j].Vaddr })
	for i := 1; i < len(img.Segments); i++ {
		a, b := img.Segments[i-1], img.Segments[i]
		if a.Vaddr+a.Memsz > b.Vaddr {
			return nil, invalid("segments at %#x and %#x overlap", a.Vaddr, b.Vaddr)
		}
	}
	entryOK := false
	for _, s := range img.Segments {
		if s.Flags&elf.PF_X != 0 && img.Entry >= s.Vaddr && img.Entry < s.Vaddr+s.Memsz {
			entryOK = true
		}
	}
	if !entryOK {
		return nil, invalid("entry point %#x is not in an executable segment", img.Entry)
	}
	return img, nil
}

// checkStatic refuses an executable that cannot run at the fixed
// addresses in its program headers without a dynamic loader, telling
// apart the three ways a build gets there:
//   - dynamically linked: it needs shared libraries (DT_NEEDED), as a
//     cgo build or a C program does, or names an interpreter although
//     it is a fixed-address executable;
//   - position-independent (ET_DYN) with an interpreter but no library:
//     what go build -buildmode=pie makes with CGO_ENABLED=0, which asks
//     the dynamic loader only to relocate it;
//   - static-pie (ET_DYN, no interpreter): relocates itself at startup.
//
// Atoll maps segments where the headers say and applies no relocations,
// so all three are refused, each with the change that fixes it.
func checkStatic(data []byte, f *elf.File) error {
	var interp, dynamic bool
	for _, p := range f.Progs {
		switch p.Type {
		case elf.PT_INTERP:
			interp = true
		case elf.PT_DYNAMIC:
			dynamic = true
		}
	}
	pie := f.Type == elf.ET_DYN
	const exe = "Atoll runs only fixed-address executables: rebuild with the default -buildmode=exe (drop -buildmode=pie from the command line and GOFLAGS)"
	switch {
	case dynamic && needsLibraries(data, f.Progs) || !pie && (interp || dynamic):
		msg := "dynamically linked — rebuild with CGO_ENABLED=0 for a static executable"
		if pie && goBuildMode(data) == "pie" {
			msg += ", and without -buildmode=pie"
		}
		return invalid("%s", msg)
	case pie && interp:
		return invalid("position-independent executable (-buildmode=pie), which needs the dynamic loader to relocate it — %s", exe)
	case pie:
		return invalid("static position-independent executable (static-pie) — %s", exe)
	}
	return nil
}

// needsLibraries reports whether a PT_DYNAMIC segment lists a shared
// library (DT_NEEDED). It reads the segment itself rather than the
// .dynamic section, which a stripped file may lack.
func needsLibraries(data []byte, progs []*elf.Prog) bool {
	for _, p := range progs {
		if p.Type != elf.PT_DYNAMIC || p.Off >= uint64(len(data)) {
			continue
		}
		seg := data[p.Off:]
		seg = seg[:min(uint64(len(seg)), p.Filesz)]
		for ; len(seg) >= 16; seg = seg[16:] {
			tag := elf.DynTag(binary.LittleEndian.Uint64(seg))
			if tag == elf.DT_NEEDED {
				return true
			}
			if tag == elf.DT_NULL {
				break
			}
		}
	}
	return false
}

// goBuildMode is the -buildmode a Go executable records in its build
// information, or "" for other executables.
func goBuildMode(data []byte) string {
	info, err := buildinfo.Read(bytes.NewReader(data))
	if err != nil {
		return ""
	}
	for _, s := range info.Settings {
		if s.Key == "-buildmode" {
			return s.Value
		}
	}
	return ""
}

// foreignFormat names the executable format of data when it is one Go
// builds for another GOOS, or returns "".
func foreignFormat(data []byte) string {
	if len(data) >= 2 && data[0] == 'M' && data[1] == 'Z' {
		return "Windows (PE)"
	}
	if len(data) >= 4 {
		switch binary.LittleEndian.Uint32(data) {
		case 0xfeedface, 0xfeedfacf, 0xcefaedfe, 0xcffaedfe:
			return "macOS (Mach-O)"
		}
	}
	return ""
}

// goarch names a machine other than 64-bit little-endian x86-64 by its
// GOARCH where Go has one.
func goarch(m elf.Machine) string {
	switch m {
	case elf.EM_386:
		return "386"
	case elf.EM_X86_64:
		return "a 32-bit or big-endian x86-64 variant"
	case elf.EM_ARM:
		return "arm"
	case elf.EM_AARCH64:
		return "arm64"
	case elf.EM_LOONGARCH:
		return "loong64"
	case elf.EM_MIPS:
		return "mips"
	case elf.EM_PPC64:
		return "ppc64"
	case elf.EM_RISCV:
		return "riscv64"
	case elf.EM_S390:
		return "s390x"
	}
	return "another machine"
}

// osName names an ELF OS ABI by its operating system.
func osName(abi elf.OSABI) string {
	switch abi {
	case elf.ELFOSABI_FREEBSD:
		return "FreeBSD"
	case elf.ELFOSABI_NETBSD:
		return "NetBSD"
	case elf.ELFOSABI_OPENBSD:
		return "OpenBSD"
	case elf.ELFOSABI_SOLARIS:
		return "Solaris"
	}
	return "another operating system"
}

// Symbol is a function symbol, for symbolizing crash backtraces.
type Symbol struct {
	Name       string
	Addr, Size uint64
}

// Symbols returns the image's function symbols, sorted by address, that
// have a size. An image without a symbol table (-ldflags=-s) yields none.
func Symbols(data []byte) []Symbol {
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return nil
	}
	syms, err := f.Symbols()
	if err != nil {
		return nil
	}
	var out []Symbol
	for _, s := range syms {
		// Zero-size entries are markers (runtime.etext), not functions.
		if elf.ST_TYPE(s.Info) == elf.STT_FUNC && s.Value != 0 && s.Size != 0 {
			out = append(out, Symbol{Name: s.Name, Addr: s.Value, Size: s.Size})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Addr < out[j].Addr })
	return out
}

// Lookup returns the symbol containing pc and pc's offset in it.
func Lookup(syms []Symbol, pc uint64) (Symbol, uint64, bool) {
	i := sort.Search(len(syms), func(i int) bool { return syms[i].Addr > pc }) - 1
	if i < 0 {
		return Symbol{}, 0, false
	}
	s := syms[i]
	if s.Size != 0 && pc >= s.Addr+s.Size {
		return Symbol{}, 0, false
	}
	return s, pc - s.Addr, true
}

// ReadFile reads an image from r, refusing files larger than limit. A
// regular file is read in one go at its size (io.ReadAll's growing buffer
// made reading a 2.5 MB image take ~4 ms, a seventh of a boot).
func ReadFile(r io.Reader, limit int64) ([]byte, error) {
	if f, ok := r.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
			if st.Size() > limit {
				return nil, invalid("file larger than %d bytes", limit)
			}
			data := make([]byte, st.Size())
			if _, err := io.ReadFull(f, data); err != nil {
				return nil, err
			}
			return data, nil
		}
	}
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, invalid("file larger than %d bytes", limit)
	}
	return data, nil
}
