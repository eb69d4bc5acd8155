package main

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"atoll.dev/atoll/internal/testenv"
)

// TestMemoryBelowImage checks that a memory limit the image cannot start
// in is refused before boot with the minimum in the message, and that the
// minimum named is one the image does start in.
func TestMemoryBelowImage(t *testing.T) {
	testenv.RequireKVM(t)
	dir := t.TempDir()
	hello := filepath.Join(dir, "hello")
	build(t, hello, "amd64")
	_, stderr, code := invoke(t, dir, "run", "--mem", "40M", hello)
	m := regexp.MustCompile(`memory limit 40M is below what this image needs to start: at least (\d+M) \(`).FindStringSubmatch(stderr)
	if code != exitFailure || m == nil {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	stdout, stderr, code := invoke(t, dir, "run", "--mem", m[1], hello)
	if code != 0 || !strings.Contains(stdout, "hello from atoll") {
		t.Fatalf("at the minimum %s: exit %d, stdout %q, stderr %s", m[1], code, stdout, stderr)
	}
}
