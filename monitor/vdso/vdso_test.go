package vdso

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"atoll.dev/atoll/internal/testenv"
)

// TestVDSOImage checks the image is an ELF object that exports
// __vdso_clock_gettime and __vdso_getrandom at version LINUX_2.6, with the
// hashes the Go runtime looks symbols up by (runtime/vdso_linux_amd64.go).
func TestVDSOImage(t *testing.T) {
	for name, want := range map[string]uint32{"__vdso_clock_gettime": 0xd35ec75, "__vdso_getrandom": 0x25425d, "LINUX_2.6": 0x3ae75f6} {
		if h := elfHash(name); h != want {
			t.Errorf("elfHash(%s) = %#x, want %#x", name, h, want)
		}
	}
	f, err := elf.NewFile(bytes.NewReader(Image()))
	if err != nil {
		t.Fatal(err)
	}
	if f.Type != elf.ET_DYN || f.Machine != elf.EM_X86_64 {
		t.Fatalf("type %v machine %v", f.Type, f.Machine)
	}
	if len(f.Progs) != 2 || f.Progs[0].Type != elf.PT_LOAD || f.Progs[1].Type != elf.PT_DYNAMIC {
		t.Fatalf("program headers %+v", f.Progs)
	}
	for name, want := range map[string]uint64{"__vdso_clock_gettime": vdsoClockOff, "__vdso_getrandom": vdsoRandomOff} {
		if v, err := lookup(Image(), name); err != nil || v != want {
			t.Errorf("%s at %#x (%v), want %#x", name, v, err, want)
		}
	}
	if _, err := lookup(Image(), "__vdso_gettimeofday"); err == nil {
		t.Errorf("found __vdso_gettimeofday, which the image does not have")
	}
}

// lookup follows the lookup path of runtime/vdso_linux.go by hand: DT_HASH
// bucket and chain, symbol, name, version index, version definition; and
// returns the value of the function name at version LINUX_2.6.
func lookup(img []byte, name string) (uint64, error) {
	le := binary.LittleEndian
	dyn := map[uint64]uint64{}
	for off := vdsoDynOff; ; off += 16 {
		tag := le.Uint64(img[off:])
		if tag == dtNull {
			break
		}
		dyn[tag] = le.Uint64(img[off+8:])
	}
	hash, symtab, strtab := dyn[dtHash], dyn[dtSymtab], dyn[dtStrtab]
	nbucket := le.Uint32(img[hash:])
	chain := img[hash+8+4*uint64(nbucket):]
	cstr := func(off uint64) string { return string(img[off : off+uint64(bytes.IndexByte(img[off:], 0))]) }
	for idx := le.Uint32(img[hash+8+4*uint64(elfHash(name)%nbucket):]); idx != 0; idx = le.Uint32(chain[4*idx:]) {
		sym := img[symtab+24*uint64(idx):]
		if cstr(strtab+uint64(le.Uint32(sym))) != name {
			continue
		}
		if sym[4] != 0x12 {
			return 0, fmt.Errorf("symbol info %#x, want a global function", sym[4])
		}
		ver := le.Uint16(img[dyn[dtVersym]+2*uint64(idx):])
		for off := dyn[dtVerdef]; ; {
			d := img[off:]
			aux := d[le.Uint32(d[12:]):]
			if le.Uint16(d[4:]) == ver && cstr(strtab+uint64(le.Uint32(aux))) == "LINUX_2.6" && le.Uint32(d[8:]) == 0x3ae75f6 {
				return le.Uint64(sym[8:]), nil
			}
			if le.Uint32(d[16:]) == 0 {
				return 0, fmt.Errorf("symbol version %d is not LINUX_2.6", ver)
			}
			off += uint64(le.Uint32(d[16:]))
		}
	}
	return 0, fmt.Errorf("no %s", name)
}

// TestVDSOCodeMatchesSource reassembles testdata/clock_gettime.s.
func TestVDSOCodeMatchesSource(t *testing.T) {
	if code := testenv.Assemble(t, "testdata/clock_gettime.s"); !bytes.Equal(code, vdsoClockGettime) {
		t.Fatalf("vdsoClockGettime differs from its source:\n got % x\nwant % x", vdsoClockGettime, code)
	}
}

// TestClockTracksHost anchors a clock at the measured TSC frequency and
// checks that, across re-anchors, its reading stays close to the host's
// CLOCK_MONOTONIC.
func TestClockTracksHost(t *testing.T) {
	page := make([]byte, 4096)
	c := NewClock(page, uint64(estimateTSCHz(t)/1000), 0)
	for i := 0; i < 3; i++ {
		time.Sleep(20 * time.Millisecond)
		c.reanchor()
	}
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	if d := time.Duration(int64(c.at(RDTSC())) - ts.Nano()); d > time.Millisecond || d < -time.Millisecond {
		t.Errorf("guest clock off by %v", d)
	}
	if seq := page[vvarSeq]; seq%2 != 0 {
		t.Errorf("sequence count %d left odd", seq)
	}
}

// TestClockNeverGoesBack starts from a frequency guess three times too
// low, so the guest clock runs fast, and checks that re-anchoring slews it
// back without ever going backwards.
func TestClockNeverGoesBack(t *testing.T) {
	c := NewClock(make([]byte, 4096), uint64(estimateTSCHz(t)/3000), 0)
	last := c.at(RDTSC())
	for i := 0; i < 5; i++ {
		time.Sleep(20 * time.Millisecond)
		before := c.at(RDTSC())
		c.reanchor()
		after := c.at(RDTSC())
		if before < last || after < before {
			t.Fatalf("clock went backwards: %d, %d, %d", last, before, after)
		}
		last = after
	}
}

func estimateTSCHz(t *testing.T) float64 {
	var a, b unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &a)
	t0 := RDTSC()
	time.Sleep(50 * time.Millisecond)
	t1 := RDTSC()
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &b)
	return float64(t1-t0) / (float64(b.Nano()-a.Nano()) / 1e9)
}
