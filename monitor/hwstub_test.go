package monitor

import (
	"bytes"
	"encoding/binary"
	"testing"

	"atoll.dev/atoll/internal/testenv"
)

// TestHWStubMatchesSource reassembles testdata/hwstub.s and checks the
// bytes and the addresses the monitor derives from them.
func TestHWStubMatchesSource(t *testing.T) {
	code := testenv.Assemble(t, "testdata/hwstub.s")
	if !bytes.Equal(code, hwStubCode()) {
		t.Fatalf("hwStubCode differs from its source:\n got % x\nwant % x", hwStubCode(), code)
	}
	if code[retUserAddr-hwStubAddr] != 0x48 || code[retUserAddr-hwStubAddr+1] != 0xcf {
		t.Errorf("retUserAddr does not point at iretq")
	}
	if !bytes.Equal(code[probeAddr-hwStubAddr:compatAddr-hwStubAddr], []byte{0x0f, 0x05}) || code[compatAddr-hwStubAddr] != 0xf4 {
		t.Errorf("probeAddr does not point at syscall, or compatAddr at hlt")
	}
	if uint64(hwStubAddr)+uint64(len(code)) > uint64(vvarAddr) {
		t.Errorf("the stub overruns the trampoline page")
	}
	if uint64(trampolineAddr)+uint64(len(trampolineCode)) > uint64(hwStubAddr) {
		t.Errorf("the trampoline overruns the stub")
	}
}

// TestHardwareTables checks the GDT, IDT and TSS the hardware path loads.
func TestHardwareTables(t *testing.T) {
	tv := newTestVM(t, vmOptions{})
	le := binary.LittleEndian
	gdt := tv.bytes(t, uint64(gdtAddr), gdtLimit+1)
	for sel, want := range map[int]struct {
		access byte
		long   bool
	}{kernelCS: {0x9b, true}, kernelDS: {0x93, false}, userDS: {0xf3, false}, userCS: {0xfb, true}} {
		d := le.Uint64(gdt[sel&^3:])
		if byte(d>>40) != want.access || (d>>53&1 == 1) != want.long {
			t.Errorf("GDT selector %#x: %#x", sel, d)
		}
	}
	if starValue>>32&0xffff != kernelCS || (starValue>>48)+16|3 != userCS || (starValue>>48)+8|3 != userDS {
		t.Errorf("STAR %#x does not give Linux's selectors", starValue)
	}
	idt := tv.bytes(t, uint64(idtAddr), numVectors*16)
	for v := 0; v < numVectors; v++ {
		g := idt[16*v:]
		entry := uint64(le.Uint16(g)) | uint64(le.Uint16(g[6:]))<<16 | uint64(le.Uint32(g[8:]))<<32
		if got, ok := vectorAt(entry + 1); !ok || got != v || le.Uint16(g[2:]) != kernelCS || g[4]&7 != 1 {
			t.Errorf("IDT gate %d: entry %#x, selector %#x, IST %d", v, entry, le.Uint16(g[2:]), g[4]&7)
		}
		if dpl := g[5] >> 5 & 3; g[5]&0x8f != 0x8e || (dpl == 3) != (v == vecBP) {
			t.Errorf("IDT gate %d: type and DPL %#x", v, g[5])
		}
	}
	a, err := writeTSS(tv.VM.mem, 5)
	if err != nil {
		t.Fatal(err)
	}
	if top := tv.word(t, uint64(a)+0x24); top != uint64(a)+tssStride || tv.word(t, uint64(a)+4) != top {
		t.Errorf("TSS IST1/RSP0 %#x", top)
	}
	if _, err := tssAddr(maxVCPUs); err == nil {
		t.Error("a TSS past the system area")
	}
	// vCPUs are reused, and the probe's becomes the first thread's.
	if maxVCPUs < maxThreads {
		t.Errorf("%d TSSs for %d threads", maxVCPUs, maxThreads)
	}
	// An exception frame read back, and an iretq frame written.
	sp := uint64(a) + tssStride - 6*8
	tv.put(t, sp, u64s(4, 0x401000, userCS, 0x246, 0x7000, userDS))
	f, err := readExceptionFrame(tv.VM.mem, sp, vecPF)
	if err != nil || f != (exceptionFrame{4, 0x401000, userCS, 0x246, 0x7000, userDS}) {
		t.Errorf("frame %+v, %v", f, err)
	}
	if f, _ := readExceptionFrame(tv.VM.mem, sp+8, vecUD); f.rip != 0x401000 || f.errorCode != 0 {
		t.Errorf("frame without an error code %+v", f)
	}
	if _, err := readExceptionFrame(tv.VM.mem, wild, vecUD); err == nil {
		t.Error("frame read outside guest memory")
	}
	fsp, _ := writeIretFrame(tv.VM.mem, 5, 0x401000, 0x7000, 0x3246|0x4000)
	if got := tv.bytes(t, fsp, 40); !bytes.Equal(got, u64s(0x401000, userCS, 0x246, 0x7000, userDS)) {
		t.Errorf("iret frame % x (IOPL and NT must go)", got)
	}
	for _, rip := range []uint64{0, uint64(hwStubAddr), uint64(hwStubAddr) + 2, uint64(retUserAddr) + 1} {
		if v, ok := vectorAt(rip); ok {
			t.Errorf("vectorAt(%#x) = %d", rip, v)
		}
	}
}
