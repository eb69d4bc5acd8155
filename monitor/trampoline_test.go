package monitor

import (
	"bytes"
	"os"
	"testing"

	"atoll.dev/atoll/internal/testenv"
)

// TestTrampolineMatchesSource reassembles testdata/trampoline.s and checks
// the bytes, the hlt offset and the table address it was built with.
func TestTrampolineMatchesSource(t *testing.T) {
	code := testenv.Assemble(t, "testdata/trampoline.s")
	if !bytes.Equal(code, trampolineCode) {
		t.Fatalf("trampolineCode differs from its source:\n got % x\nwant % x", trampolineCode, code)
	}
	if !bytes.Equal(trampolineCode[trampolineSysret:trampolineHlt], []byte{0x48, 0x0f, 0x07}) {
		t.Fatalf("trampolineSysret %#x does not point at sysretq", trampolineSysret)
	}
	if trampolineCode[trampolineHlt] != 0xf4 || trampolineHlt != len(trampolineCode)-1 {
		t.Fatalf("trampolineHlt %#x does not point at the final hlt", trampolineHlt)
	}
	src, _ := os.ReadFile("testdata/trampoline.s")
	if !bytes.Contains(src, []byte(".equ H, 0x203000")) || sigTableAddr != 0x203000 {
		t.Fatalf("the source's table address and sigTableAddr (%#x) disagree", uint64(sigTableAddr))
	}
}
