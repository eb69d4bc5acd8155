package monitor

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestTrampolineMatchesSource reassembles testdata/trampoline.s and checks
// the bytes, the hlt offset and the table address it was built with.
func TestTrampolineMatchesSource(t *testing.T) {
	as, err1 := exec.LookPath("as")
	objcopy, err2 := exec.LookPath("objcopy")
	if err1 != nil || err2 != nil {
		t.Skip("GNU as/objcopy not installed (binutils): cannot reassemble the trampoline")
	}
	dir := t.TempDir()
	obj, bin := filepath.Join(dir, "t.o"), filepath.Join(dir, "t.bin")
	if out, err := exec.Command(as, "-o", obj, "testdata/trampoline.s").CombinedOutput(); err != nil {
		t.Fatalf("as: %v\n%s", err, out)
	}
	if out, err := exec.Command(objcopy, "-O", "binary", "-j", ".text", obj, bin).CombinedOutput(); err != nil {
		t.Fatalf("objcopy: %v\n%s", err, out)
	}
	code, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(code, trampolineCode) {
		t.Fatalf("trampolineCode differs from its source:\n got % x\nwant % x", trampolineCode, code)
	}
	if trampolineCode[trampolineHlt] != 0xf4 || trampolineHlt != len(trampolineCode)-1 {
		t.Fatalf("trampolineHlt %#x does not point at the final hlt", trampolineHlt)
	}
	src, _ := os.ReadFile("testdata/trampoline.s")
	if !bytes.Contains(src, []byte(".equ H, 0x203000")) || sigTableAddr != 0x203000 {
		t.Fatalf("the source's table address and sigTableAddr (%#x) disagree", uint64(sigTableAddr))
	}
}
