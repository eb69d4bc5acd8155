package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"

	"atoll.dev/atoll/internal/testenv"
)

// TestAtollTest runs packages' tests as unikernels with atoll test: five
// standard-library packages whose tests read testdata/ (and ../testdata,
// and their own binary), two whose tests and examples talk over loopback
// sockets (net/http's short tests: over a thousand, with httptest servers,
// proxies and TLS), and a package of this module; each must pass, as it
// does with go test.
func TestAtollTest(t *testing.T) {
	testenv.RequireKVM(t)
	dir := t.TempDir()
	atoll := atollBinary(t, dir)
	cmd := exec.Command(atoll, "test", "-count=1", "-short", "archive/tar", "compress/bzip2", "debug/dwarf", "debug/elf", "image/png",
		"context", "net/http", "atoll.dev/atoll/manifest")
	cmd.Dir = filepath.Join("..", "..")
	cmd.Env = append(os.Environ(), "GOFLAGS=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("atoll test: %v\n%s", err, out)
	}
	if n := len(regexp.MustCompile(`(?m)^ok  `).FindAll(out, -1)); n != 8 {
		t.Errorf("%d packages passed, want 8:\n%s", n, out)
	}
}
