package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"atoll.dev/atoll/internal/testenv"
	"atoll.dev/atoll/monitor"
)

// TestMemoryBelowImage checks that a memory limit the image cannot start
// in is refused before boot with the minimum in the message (www: its
// code, the stack's top, the monitor's pages and the runtime's start-up
// come to 38M), and that a small program runs at the smallest --mem.
func TestMemoryBelowImage(t *testing.T) {
	testenv.RequireKVM(t)
	dir := t.TempDir()
	www := buildTestImage(t, atollBinary(t, dir), dir, "../../examples/www")
	_, stderr, code := invoke(t, dir, "run", "--mem", "33M", www)
	m := regexp.MustCompile(`memory limit 33M is below what this image needs to start: at least (\d+M) \(`).FindStringSubmatch(stderr)
	if code != exitFailure || m == nil {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	hello := filepath.Join(dir, "hello")
	build(t, hello, "amd64")
	// The smallest --mem is more than a small program needs.
	stdout, stderr, code := invoke(t, dir, "run", "--mem", "32M", hello)
	if code != 0 || !strings.Contains(stdout, "hello from atoll") {
		t.Fatalf("at the smallest --mem: exit %d, stdout %q, stderr %s", code, stdout, stderr)
	}
}

// TestSeccompMode checks ATOLL_SECCOMP's values, and that each that
// weakens the filter says so.
func TestSeccompMode(t *testing.T) {
	for _, c := range []struct {
		value, warning string
		mode           monitor.SeccompMode
		bad            bool
	}{
		{"", "", monitor.SeccompKill, false},
		{"kill", "", monitor.SeccompKill, false},
		{"trap", "ATOLL_SECCOMP=trap", monitor.SeccompTrap, false},
		{"off", "WARNING: ATOLL_SECCOMP=off: the monitor runs WITHOUT its seccomp filter", monitor.SeccompOff, false},
		{"no", "", 0, true},
	} {
		t.Setenv(seccompEnv, c.value)
		f, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
		if err != nil {
			t.Fatal(err)
		}
		mode, err := seccompMode(f)
		f.Close()
		out, _ := os.ReadFile(f.Name())
		if (err != nil) != c.bad || err == nil && mode != c.mode || c.warning == "" && len(out) > 0 || !strings.Contains(string(out), c.warning) {
			t.Errorf("%s=%q: mode %v, error %v, stderr %q", seccompEnv, c.value, mode, err, out)
		}
	}
}
