package vdso

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"atoll.dev/atoll/internal/testenv"
)

// TestVDSOImage checks the image is an ELF object that exports
// __vdso_clock_gettime at version LINUX_2.6, with the hashes the Go
// runtime looks symbols up by (runtime/vdso_linux_amd64.go).
func TestVDSOImage(t *testing.T) {
	if h := elfHash("__vdso_clock_gettime"); h != 0xd35ec75 {
		t.Errorf("elfHash(__vdso_clock_gettime) = %#x, want 0xd35ec75", h)
	}
	if h := elfHash("LINUX_2.6"); h != 0x3ae75f6 {
		t.Errorf("elfHash(LINUX_2.6) = %#x, want 0x3ae75f6", h)
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
	// Follow the lookup path of runtime/vdso_linux.go by hand: DT_HASH
	// bucket, symbol, name, version index, version definition.
	img := Image()
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
	idx := le.Uint32(img[hash+8+4*uint64(elfHash("__vdso_clock_gettime")%nbucket):])
	sym := img[symtab+24*uint64(idx):]
	cstr := func(off uint64) string { return string(img[off : off+uint64(bytes.IndexByte(img[off:], 0))]) }
	if name := cstr(strtab + uint64(le.Uint32(sym))); name != "__vdso_clock_gettime" {
		t.Fatalf("hash lookup found %q", name)
	}
	if v := le.Uint64(sym[8:]); v != vdsoCodeOff || sym[4] != 0x12 {
		t.Fatalf("symbol value %#x info %#x", v, sym[4])
	}
	ver := le.Uint16(img[dyn[dtVersym]+2*uint64(idx):])
	found := false
	for off := dyn[dtVerdef]; ; {
		d := img[off:]
		aux := d[le.Uint32(d[12:]):]
		if le.Uint16(d[4:]) == ver && cstr(strtab+uint64(le.Uint32(aux))) == "LINUX_2.6" && le.Uint32(d[8:]) == 0x3ae75f6 {
			found = true
		}
		if le.Uint32(d[16:]) == 0 {
			break
		}
		off += uint64(le.Uint32(d[16:]))
	}
	if !found {
		t.Fatalf("symbol version %d is not LINUX_2.6", ver)
	}
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
