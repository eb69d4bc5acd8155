package monitor

import (
	"bytes"
	"os"
	"regexp"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"

	"atoll.dev/atoll/internal/testenv"
	"atoll.dev/atoll/monitor/guestmem"
)

// TestTrampolineMatchesSource reassembles testdata/trampoline.s and checks
// the bytes, the hlt offset and the table address it was built with.
func TestTrampolineMatchesSource(t *testing.T) {
	code := testenv.Assemble(t, "testdata/trampoline.s")
	if !bytes.Equal(code, trampolineCode) {
		t.Fatalf("trampolineCode differs from its source:\n got % x\nwant % x", trampolineCode, code)
	}
	if !bytes.Equal(trampolineCode[trampolineSysret:trampolineSysret+3], []byte{0x48, 0x0f, 0x07}) {
		t.Fatalf("trampolineSysret %#x does not point at sysretq", trampolineSysret)
	}
	if trampolineCode[trampolineDeliver] != 0xf4 || trampolineDeliver != trampolineHlt-1 {
		t.Fatalf("trampolineDeliver %#x does not point at the hlt before the last", trampolineDeliver)
	}
	if trampolineCode[trampolineHlt] != 0xf4 || trampolineHlt != len(trampolineCode)-1 {
		t.Fatalf("trampolineHlt %#x does not point at the final hlt", trampolineHlt)
	}
	src, err := os.ReadFile("testdata/trampoline.s")
	if err != nil {
		t.Fatal(err)
	}
	equ := map[string]uint64{}
	for _, m := range regexp.MustCompile(`(?m)^\.equ (\w+), (-?\w+)$`).FindAllStringSubmatch(string(src), -1) {
		if v, err := strconv.ParseInt(m[2], 0, 64); err == nil {
			equ[m[1]] = uint64(v)
		}
	}
	for name, want := range map[string]uint64{
		"H": uint64(sigTableAddr), "ZCUR": uint64(zoneCursorAddr), "ZEND": uint64(zoneEndAddr), "FDS": uint64(fdCacheAddr), "TID": tbTID, "MASK": tbMask, "PEND": tbPending,
		"ALTSP": tbAltSP, "ALTFL": tbAltFl, "ALTSZ": tbAltSize, "CPUS": tbCPUs,
		"LOW": uint64(guestmem.SystemBase + guestmem.SystemSize), "KEEP": ^unblockable,
		"SS_DISABLE": ssDisable, "MINSIGSTKSZ": minSigstksz,
	} {
		if got, ok := equ[name]; !ok || got != want {
			t.Errorf("the source's %s is %#x, the monitor's %#x", name, got, want)
		}
	}
	if uint64(threadBlocksEnd) > uint64(tssBase) || threadBlocks < idtAddr+guestmem.PageSize {
		t.Errorf("the thread blocks [%#x, %#x) overlap the system area's other pages", uint64(threadBlocks), uint64(threadBlocksEnd))
	}
}

// TestReservationZone plays the mmap fast path: the guest advances the
// zone's cursor itself, and the monitor's next change to the address
// space sees those pages mapped (guestmem/zone.go has the rest).
func TestReservationZone(t *testing.T) {
	tv := newTestVM(t, vmOptions{mem: 64 << 20})
	lo, hi := tv.mem.Zone()
	if tv.word(t, uint64(zoneCursorAddr)) != uint64(lo) || tv.word(t, uint64(zoneEndAddr)) != uint64(hi) || hi-lo != zoneSize {
		t.Fatalf("zone words %#x %#x, zone [%#x, %#x)", tv.word(t, uint64(zoneCursorAddr)), tv.word(t, uint64(zoneEndAddr)), uint64(lo), uint64(hi))
	}
	if _, e := tv.call(t, unix.SYS_MPROTECT, uint64(lo), 1<<20, unix.PROT_READ|unix.PROT_WRITE); e != unix.ENOMEM {
		t.Errorf("mprotect of an untaken reservation: %v, want ENOMEM", e)
	}
	tv.put(t, uint64(zoneCursorAddr), u64s(uint64(lo)+1<<20)) // the fast path took 1 MiB
	committed := tv.mem.Committed()
	tv.mustCall(t, unix.SYS_MPROTECT, uint64(lo), 1<<20, unix.PROT_READ|unix.PROT_WRITE)
	if h := tv.mem.Hold(lo + 4096); h != guestmem.HoldDone || tv.mem.Committed()-committed != guestmem.LargePage {
		t.Errorf("holding the reservation made readable: %v, %d bytes more", h, tv.mem.Committed()-committed)
	}
	// The monitor's own reservations, larger than the limit, come next.
	if a := tv.mustCall(t, unix.SYS_MMAP, 0, 512<<20, unix.PROT_NONE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS, ^uint64(0), 0); a != uint64(lo)+1<<20 {
		t.Errorf("the monitor's reservation at %#x, want %#x", a, uint64(lo)+1<<20)
	}
}
