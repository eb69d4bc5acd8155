package elfimage

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"atoll.dev/atoll/internal/testenv"
)

const testProgram = `package main

import "fmt"

var sink int

func main() {
	sink++
	fmt.Println("hello", sink)
}
`

// cgoProgram links the C library, so it is dynamically linked.
const cgoProgram = `package main

import "C"

func main() { println("hello") }
`

// A build is the test program built one way, once per test process.
type build struct {
	src   string   // testProgram if empty
	env   []string // over CGO_ENABLED=0 GOOS=linux GOARCH=amd64
	flags []string // go build flags
	cgo   bool     // needs a C compiler

	once sync.Once
	data []byte
	err  error
}

var (
	staticBuild  = &build{}
	pieBuild     = &build{flags: []string{"-buildmode=pie"}}
	cgoPIEBuild  = &build{src: cgoProgram, env: []string{"CGO_ENABLED=1"}, flags: []string{"-buildmode=pie"}, cgo: true}
	arm64Build   = &build{env: []string{"GOARCH=arm64"}}
	freebsdBuild = &build{env: []string{"GOOS=freebsd"}}
	windowsBuild = &build{env: []string{"GOOS=windows"}}

	// otherBuilds are the ones only TestParse uses; each takes seconds
	// with a cold cache, so -short skips them.
	otherBuilds = []*build{pieBuild, cgoPIEBuild, arm64Build, freebsdBuild, windowsBuild}
)

// realBinary returns a static linux/amd64 Go executable, built once per
// test process.
func realBinary(tb testing.TB) []byte {
	tb.Helper()
	return staticBuild.binary(tb)
}

// other returns an executable of one of otherBuilds, skipping the test
// under -short or, for cgo, without a C compiler (failing it under CI).
func (b *build) other(tb testing.TB) []byte {
	tb.Helper()
	if testing.Short() {
		tb.Skip("-short: not building executables other than the static one")
	}
	if b.cgo {
		testenv.RequireCommands(tb, cc())
	}
	return b.binary(tb)
}

// cc is the C compiler a cgo build uses.
func cc() string {
	if cc := os.Getenv("CC"); cc != "" {
		return cc
	}
	return "gcc"
}

func haveCC() bool {
	_, err := exec.LookPath(cc())
	return err == nil
}

func (b *build) binary(tb testing.TB) []byte {
	tb.Helper()
	b.make()
	if b.err != nil {
		tb.Fatalf("building test binary: %v", b.err)
	}
	return b.data
}

func (b *build) make() { b.once.Do(func() { b.data, b.err = b.build() }) }

func (b *build) build() ([]byte, error) {
	dir, err := os.MkdirTemp("", "elfimage-test-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	src := b.src
	if src == "" {
		src = testProgram
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module x\n\ngo 1.26\n"), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644); err != nil {
		return nil, err
	}
	goCmd, err := exec.LookPath("go")
	if err != nil {
		goCmd = "/usr/local/go/bin/go"
	}
	out := filepath.Join(dir, "prog")
	cmd := exec.Command(goCmd, append(append([]string{"build", "-o", out}, b.flags...), ".")...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64",
		"GOFLAGS=", "GOWORK=off", "GOTOOLCHAIN=local")
	cmd.Env = append(cmd.Env, b.env...) // the last value of a variable wins
	if msg, err := cmd.CombinedOutput(); err != nil {
		return nil, errors.New(err.Error() + ": " + string(msg))
	}
	return os.ReadFile(out)
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }

// progHeader is the offset of the i'th program header in data.
func progHeader(data []byte, i int) int {
	phoff := binary.LittleEndian.Uint64(data[32:])
	phentsize := binary.LittleEndian.Uint16(data[54:])
	return int(phoff) + i*int(phentsize)
}

func numProgs(data []byte) int { return int(binary.LittleEndian.Uint16(data[56:])) }

// findProg returns the offset of the first program header for which match
// returns true.
func findProg(tb testing.TB, data []byte, match func(ph []byte) bool) int {
	tb.Helper()
	for i := range numProgs(data) {
		off := progHeader(data, i)
		if match(data[off:]) {
			return off
		}
	}
	tb.Fatal("no matching program header")
	return 0
}

func isLoad(ph []byte) bool { return binary.LittleEndian.Uint32(ph[0:]) == uint32(elf.PT_LOAD) }

func firstLoad(tb testing.TB, data []byte) int {
	tb.Helper()
	return findProg(tb, data, isLoad)
}

func TestParse(t *testing.T) {
	real := realBinary(t)
	if !testing.Short() { // build the others side by side
		var wg sync.WaitGroup
		for _, b := range otherBuilds {
			if !b.cgo || haveCC() {
				wg.Go(b.make)
			}
		}
		wg.Wait()
	}
	le := binary.LittleEndian

	tests := []struct {
		name  string
		input func(t *testing.T) []byte
		// want is empty for success, or fragments of which the error
		// message must contain at least one.
		want []string
		// all are fragments the error message must all contain, and
		// not fragments it must not.
		all, not []string
	}{
		{
			name:  "real static binary",
			input: func(t *testing.T) []byte { return clone(real) },
		},
		{
			name:  "empty",
			input: func(t *testing.T) []byte { return nil },
			want:  []string{"not an ELF"},
		},
		{
			name:  "not an ELF",
			input: func(t *testing.T) []byte { return []byte("#!/bin/sh\necho hello\n") },
			want:  []string{"not an ELF"},
		},
		{
			name:  "magic only",
			input: func(t *testing.T) []byte { return []byte(elf.ELFMAG) },
			want:  []string{"malformed"},
		},
		{
			name:  "truncated",
			input: func(t *testing.T) []byte { return clone(real[:4096]) },
			want:  []string{"truncated", "malformed"},
		},
		{
			name: "wrong machine",
			input: func(t *testing.T) []byte {
				d := clone(real)
				le.PutUint16(d[18:], uint16(elf.EM_AARCH64))
				return d
			},
			want: []string{"x86-64"},
		},
		{
			name: "32-bit class",
			input: func(t *testing.T) []byte {
				d := clone(real)
				d[elf.EI_CLASS] = byte(elf.ELFCLASS32)
				return d
			},
			want: []string{"x86-64", "malformed"},
		},
		{
			name: "position-independent",
			input: func(t *testing.T) []byte {
				d := clone(real)
				le.PutUint16(d[16:], uint16(elf.ET_DYN))
				return d
			},
			want: []string{"position-independent"},
			not:  []string{"CGO_ENABLED"},
		},
		{
			// What CGO_ENABLED=0 go build -buildmode=pie makes: ET_DYN
			// with an interpreter to relocate it, but no library.
			name:  "real PIE (-buildmode=pie, CGO_ENABLED=0)",
			input: func(t *testing.T) []byte { return pieBuild.other(t) },
			want:  []string{"position-independent executable (-buildmode=pie)"},
			all:   []string{"-buildmode=exe"},
			not:   []string{"CGO_ENABLED", "dynamically linked"},
		},
		{
			name: "static-pie (PIE without an interpreter)",
			input: func(t *testing.T) []byte {
				d := clone(pieBuild.other(t))
				off := findProg(t, d, func(ph []byte) bool { return le.Uint32(ph) == uint32(elf.PT_INTERP) })
				le.PutUint32(d[off:], uint32(elf.PT_NULL))
				return d
			},
			want: []string{"static-pie"},
			all:  []string{"-buildmode=exe"},
			not:  []string{"CGO_ENABLED", "dynamically linked"},
		},
		{
			name:  "real cgo PIE (-buildmode=pie, CGO_ENABLED=1)",
			input: func(t *testing.T) []byte { return cgoPIEBuild.other(t) },
			want:  []string{"dynamically linked"},
			all:   []string{"CGO_ENABLED=0", "without -buildmode=pie"},
		},
		{
			name: "real C program (/bin/true)",
			input: func(t *testing.T) []byte {
				d, err := os.ReadFile("/bin/true")
				if err != nil || len(d) < 20 || le.Uint16(d[18:]) != uint16(elf.EM_X86_64) {
					t.Skip("no x86-64 /bin/true")
				}
				return d
			},
			// cmd/atoll/testdata/run-dynamic.golden holds this message.
			want: []string{"dynamically linked — rebuild with CGO_ENABLED=0 for a static executable"},
			not:  []string{"pie"},
		},
		{
			// The libraries are found from the PT_DYNAMIC segment, not
			// the .dynamic section a stripped file may lack.
			name: "real C program without section headers",
			input: func(t *testing.T) []byte {
				d, err := os.ReadFile("/bin/true")
				if err != nil || len(d) < 64 || le.Uint16(d[18:]) != uint16(elf.EM_X86_64) {
					t.Skip("no x86-64 /bin/true")
				}
				le.PutUint64(d[40:], 0) // e_shoff
				le.PutUint16(d[60:], 0) // e_shnum
				le.PutUint16(d[62:], 0) // e_shstrndx
				return d
			},
			want: []string{"dynamically linked — rebuild with CGO_ENABLED=0"},
		},
		{
			name:  "real arm64 binary",
			input: func(t *testing.T) []byte { return arm64Build.other(t) },
			want:  []string{"x86-64"},
			all:   []string{"arm64", "GOARCH=amd64"},
		},
		{
			name:  "real FreeBSD binary",
			input: func(t *testing.T) []byte { return freebsdBuild.other(t) },
			want:  []string{"FreeBSD"},
			all:   []string{"GOOS=linux"},
		},
		{
			name:  "real Windows binary",
			input: func(t *testing.T) []byte { return windowsBuild.other(t) },
			want:  []string{"not an ELF"},
			all:   []string{"Windows", "GOOS=linux"},
		},
		{
			name:  "Mach-O header",
			input: func(t *testing.T) []byte { return []byte("\xcf\xfa\xed\xfe\x07\x00\x00\x01") },
			want:  []string{"not an ELF"},
			all:   []string{"macOS", "GOOS=linux"},
		},
		{
			name: "relocatable object",
			input: func(t *testing.T) []byte {
				d := clone(real)
				le.PutUint16(d[16:], uint16(elf.ET_REL))
				return d
			},
			want: []string{"not an executable"},
		},
		{
			name: "PT_INTERP",
			input: func(t *testing.T) []byte {
				d := clone(real)
				off := findProg(t, d, func(ph []byte) bool { return !isLoad(ph) })
				le.PutUint32(d[off:], uint32(elf.PT_INTERP))
				return d
			},
			want: []string{"dynamically linked"},
		},
		{
			name: "PT_DYNAMIC",
			input: func(t *testing.T) []byte {
				d := clone(real)
				off := findProg(t, d, func(ph []byte) bool { return !isLoad(ph) })
				le.PutUint32(d[off:], uint32(elf.PT_DYNAMIC))
				return d
			},
			want: []string{"dynamically linked"},
		},
		{
			name: "filesz exceeds memsz",
			input: func(t *testing.T) []byte {
				d := clone(real)
				off := firstLoad(t, d)
				le.PutUint64(d[off+32:], le.Uint64(d[off+40:])+1)
				return d
			},
			want: []string{"exceeds memory size"},
		},
		{
			name: "contents beyond end of file",
			input: func(t *testing.T) []byte {
				d := clone(real)
				off := firstLoad(t, d)
				le.PutUint64(d[off+8:], uint64(len(d)))
				return d
			},
			want: []string{"truncated"},
		},
		{
			name: "offset overflow",
			input: func(t *testing.T) []byte {
				d := clone(real)
				off := firstLoad(t, d)
				le.PutUint64(d[off+8:], ^uint64(0)-8)
				return d
			},
			// debug/elf already rejects offsets past int64.
			want: []string{"truncated", "malformed"},
		},
		{
			name: "vaddr below MinVaddr",
			input: func(t *testing.T) []byte {
				d := clone(real)
				off := firstLoad(t, d)
				le.PutUint64(d[off+16:], 0x1000)
				le.PutUint64(d[off+24:], 0x1000)
				return d
			},
			want: []string{"outside the allowed range"},
		},
		{
			name: "vaddr wraps around",
			input: func(t *testing.T) []byte {
				d := clone(real)
				off := firstLoad(t, d)
				le.PutUint64(d[off+16:], ^uint64(0)-0xfff)
				return d
			},
			want: []string{"outside the allowed range"},
		},
		{
			name: "absurd memsz",
			input: func(t *testing.T) []byte {
				d := clone(real)
				off := firstLoad(t, d)
				le.PutUint64(d[off+40:], 1<<50)
				return d
			},
			want: []string{"outside the allowed range"},
		},
		{
			name: "segment larger than MaxImageBytes",
			input: func(t *testing.T) []byte {
				d := clone(real)
				off := firstLoad(t, d)
				le.PutUint64(d[off+40:], MaxImageBytes+1)
				return d
			},
			want: []string{"more than"},
		},
		{
			name: "segments overlap",
			input: func(t *testing.T) []byte {
				d := clone(real)
				off := firstLoad(t, d)
				le.PutUint64(d[off+40:], le.Uint64(d[off+40:])+0x100000)
				return d
			},
			want: []string{"overlap"},
		},
		{
			name: "no loadable segments",
			input: func(t *testing.T) []byte {
				d := clone(real)
				for i := range numProgs(d) {
					off := progHeader(d, i)
					if isLoad(d[off:]) {
						le.PutUint32(d[off:], uint32(elf.PT_NOTE))
					}
				}
				return d
			},
			want: []string{"no loadable segments"},
		},
		{
			name: "entry in non-executable segment",
			input: func(t *testing.T) []byte {
				d := clone(real)
				off := findProg(t, d, func(ph []byte) bool {
					return isLoad(ph) && elf.ProgFlag(le.Uint32(ph[4:]))&elf.PF_X == 0
				})
				le.PutUint64(d[24:], le.Uint64(d[off+16:]))
				return d
			},
			want: []string{"entry point", "not in an executable segment"},
		},
		{
			name: "entry outside all segments",
			input: func(t *testing.T) []byte {
				d := clone(real)
				le.PutUint64(d[24:], 0x10)
				return d
			},
			want: []string{"not in an executable segment"},
		},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img, err := Parse(tt.input(t))
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				checkImage(t, img)
				return
			}
			if err == nil {
				t.Fatalf("Parse succeeded (%+v), want error containing %q", summary(img), tt.want)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %q does not wrap ErrInvalid", err)
			}
			found := false
			for _, w := range tt.want {
				if strings.Contains(err.Error(), w) {
					found = true
				}
			}
			if !found {
				t.Errorf("error %q does not mention any of %q", err, tt.want)
			}
			for _, w := range tt.all {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			for _, w := range tt.not {
				if strings.Contains(err.Error(), w) {
					t.Errorf("error %q mentions %q", err, w)
				}
			}
		})
	}
}

func summary(img *Image) string {
	if img == nil {
		return "<nil>"
	}
	var b strings.Builder
	for _, s := range img.Segments {
		b.WriteString(" ")
		b.WriteString(s.Flags.String())
	}
	return b.String()
}

// checkImage asserts the invariants a successfully parsed real Go binary
// satisfies.
func checkImage(t *testing.T, img *Image) {
	t.Helper()
	if img.Start < MinVaddr {
		t.Errorf("Start %#x below MinVaddr", img.Start)
	}
	if img.Start%0x1000 != 0 || img.End%0x1000 != 0 {
		t.Errorf("Start %#x / End %#x not page-aligned", img.Start, img.End)
	}
	if len(img.Segments) < 2 {
		t.Errorf("%d segments, want text and data at least", len(img.Segments))
	}
	entryOK := false
	for i, s := range img.Segments {
		if i > 0 && img.Segments[i-1].Vaddr >= s.Vaddr {
			t.Errorf("segments not sorted: %#x then %#x", img.Segments[i-1].Vaddr, s.Vaddr)
		}
		if uint64(len(s.Data)) > s.Memsz {
			t.Errorf("segment %#x: %d data bytes > memsz %#x", s.Vaddr, len(s.Data), s.Memsz)
		}
		if s.Vaddr < img.Start || s.Vaddr+s.Memsz > img.End {
			t.Errorf("segment [%#x, +%#x) outside [Start, End)", s.Vaddr, s.Memsz)
		}
		if s.Flags&elf.PF_X != 0 && img.Entry >= s.Vaddr && img.Entry < s.Vaddr+s.Memsz {
			entryOK = true
		}
	}
	if !entryOK {
		t.Errorf("entry %#x not inside an executable segment", img.Entry)
	}
}

func TestParseDataMatchesFile(t *testing.T) {
	real := realBinary(t)
	img, err := Parse(real)
	if err != nil {
		t.Fatal(err)
	}
	f, err := elf.NewFile(bytes.NewReader(real))
	if err != nil {
		t.Fatal(err)
	}
	text := f.Section(".text")
	if text == nil {
		t.Fatal("no .text section")
	}
	want, err := text.Data()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range img.Segments {
		if text.Addr >= s.Vaddr && text.Addr+text.Size <= s.Vaddr+uint64(len(s.Data)) {
			got := s.Data[text.Addr-s.Vaddr:][:text.Size]
			if !bytes.Equal(got, want) {
				t.Fatal("segment data does not match .text contents")
			}
			if s.Flags&elf.PF_X == 0 {
				t.Errorf(".text in a non-executable segment (flags %v)", s.Flags)
			}
			return
		}
	}
	t.Fatalf(".text [%#x, +%#x) not in any segment's file data", text.Addr, text.Size)
}

func TestSymbols(t *testing.T) {
	real := realBinary(t)
	syms := Symbols(real)
	if len(syms) == 0 {
		t.Fatal("no symbols")
	}
	var mainMain Symbol
	for i, s := range syms {
		if i > 0 && syms[i-1].Addr > s.Addr {
			t.Fatalf("symbols not sorted: %v before %v", syms[i-1], s)
		}
		if s.Name == "main.main" {
			mainMain = s
		}
	}
	if mainMain.Name == "" {
		t.Fatal("main.main not among the symbols")
	}
	if mainMain.Size < 2 {
		t.Fatalf("main.main size %d, too small to test", mainMain.Size)
	}

	tests := []struct {
		name       string
		pc         uint64
		wantOK     bool
		wantName   string
		wantOffset uint64
	}{
		{"main.main+0", mainMain.Addr, true, "main.main", 0},
		{"main.main+1", mainMain.Addr + 1, true, "main.main", 1},
		{"main.main last byte", mainMain.Addr + mainMain.Size - 1, true, "main.main", mainMain.Size - 1},
		{"below first symbol", syms[0].Addr - 1, false, "", 0},
		{"zero", 0, false, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, off, ok := Lookup(syms, tt.pc)
			if ok != tt.wantOK {
				t.Fatalf("Lookup(%#x) ok = %v, want %v (got %+v)", tt.pc, ok, tt.wantOK, s)
			}
			if !ok {
				return
			}
			if s.Name != tt.wantName || off != tt.wantOffset {
				t.Errorf("Lookup(%#x) = %s+%#x, want %s+%#x", tt.pc, s.Name, off, tt.wantName, tt.wantOffset)
			}
		})
	}
}

func TestLookupSynthetic(t *testing.T) {
	syms := []Symbol{
		{Name: "a", Addr: 0x1000, Size: 0x10},
		{Name: "b", Addr: 0x2000, Size: 0}, // unknown size extends to the next
		{Name: "c", Addr: 0x3000, Size: 0x20},
	}
	tests := []struct {
		pc     uint64
		ok     bool
		name   string
		offset uint64
	}{
		{0xfff, false, "", 0},
		{0x1000, true, "a", 0},
		{0x100f, true, "a", 0xf},
		{0x1010, false, "", 0}, // gap after a
		{0x2abc, true, "b", 0xabc},
		{0x301f, true, "c", 0x1f},
		{0x3020, false, "", 0},
	}
	for _, tt := range tests {
		s, off, ok := Lookup(syms, tt.pc)
		if ok != tt.ok || (ok && (s.Name != tt.name || off != tt.offset)) {
			t.Errorf("Lookup(%#x) = %q+%#x, %v; want %q+%#x, %v", tt.pc, s.Name, off, ok, tt.name, tt.offset, tt.ok)
		}
	}
	if _, _, ok := Lookup(nil, 0x1000); ok {
		t.Error("Lookup in no symbols succeeded")
	}
}

func TestSymbolsGarbage(t *testing.T) {
	for _, in := range [][]byte{nil, []byte("junk"), []byte(elf.ELFMAG)} {
		if s := Symbols(in); s != nil {
			t.Errorf("Symbols(%q) = %v, want nil", in, s)
		}
	}
}

func TestReadFile(t *testing.T) {
	data, err := ReadFile(strings.NewReader("12345"), 5)
	if err != nil || string(data) != "12345" {
		t.Errorf("ReadFile at limit = %q, %v", data, err)
	}
	_, err = ReadFile(strings.NewReader("123456"), 5)
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("ReadFile over limit: err = %v, want ErrInvalid", err)
	}
}

func FuzzParse(f *testing.F) {
	real := realBinary(f)
	f.Add(clone(real[:min(len(real), 64<<10)]))
	f.Add([]byte{})
	f.Add([]byte(elf.ELFMAG))
	f.Add([]byte("\x7fELF\x02\x01\x01\x00"))
	f.Add(clone(real[:64]))
	f.Add([]byte("not an elf file at all"))

	f.Fuzz(func(t *testing.T, data []byte) {
		img, err := Parse(data)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %q does not wrap ErrInvalid", err)
			}
			return
		}
		if img.Start > img.Entry || img.Entry >= img.End {
			t.Fatalf("entry %#x outside [%#x, %#x)", img.Entry, img.Start, img.End)
		}
		if len(img.Segments) == 0 {
			t.Fatal("accepted with no segments")
		}
		var total uint64
		for _, s := range img.Segments {
			end := s.Vaddr + s.Memsz
			if s.Vaddr < MinVaddr || end < s.Vaddr || end > MaxVaddr {
				t.Fatalf("segment [%#x, +%#x) outside [MinVaddr, MaxVaddr)", s.Vaddr, s.Memsz)
			}
			if uint64(len(s.Data)) > s.Memsz {
				t.Fatalf("segment %#x: %d data bytes > memsz %#x", s.Vaddr, len(s.Data), s.Memsz)
			}
			if s.Vaddr < img.Start || end > img.End {
				t.Fatalf("segment [%#x, +%#x) outside [Start %#x, End %#x)", s.Vaddr, s.Memsz, img.Start, img.End)
			}
			total += s.Memsz
		}
		if total > MaxImageBytes {
			t.Fatalf("segments total %#x bytes > MaxImageBytes", total)
		}
	})
}
