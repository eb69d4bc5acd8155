// Package testenv holds what tests across the tree need from the machine
// they run on.
package testenv

import (
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"

	"atoll.dev/atoll/monitor/kvm"
)

// RequireKVM skips a test that boots unikernels where /dev/kvm cannot be
// used, saying why — and fails it instead under CI (CI set), where boot
// tests must run.
func RequireKVM(t testing.TB) {
	t.Helper()
	s, err := kvm.Open()
	if err == nil {
		s.Close()
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("boot tests must run in CI, but KVM is unusable: %v", err)
	}
	t.Skipf("skipping boot test: %v", err)
}

// RequireCommands skips a test that runs the named programs unless all of
// them are on PATH, naming those missing — and fails it instead under CI
// (CI set), where .ci/run installs them.
func RequireCommands(t testing.TB, names ...string) {
	t.Helper()
	var missing []string
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			missing = append(missing, n)
		}
	}
	if len(missing) == 0 {
		return
	}
	reason := "not installed (not on PATH): " + strings.Join(missing, ", ")
	if os.Getenv("CI") != "" {
		t.Fatalf("this test must run in CI, but %s", reason)
	} else {
		t.Skipf("skipping: %s", reason)
	}
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
