// Package testenv holds what tests across the tree need from the machine
// they run on.
package testenv

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// RequireKVM skips a test that boots unikernels where /dev/kvm cannot be
// used, saying why — and fails it instead under CI (CI set), where boot
// tests must run.
func RequireKVM(t testing.TB) {
	t.Helper()
	err := openKVM()
	if err == nil {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("boot tests must run in CI, but KVM is unusable: %v", err)
	}
	t.Skipf("skipping boot test: %v", err)
}

// openKVM checks that /dev/kvm opens and speaks the stable API (version
// 12), as the monitor's kvm.Open does first. It does not use package kvm,
// whose own tests use this package.
func openKVM() error {
	fd, err := unix.Open("/dev/kvm", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open /dev/kvm: %w", err)
	}
	defer unix.Close(fd)
	const kvmGetAPIVersion = 0xae00 // KVM_GET_API_VERSION
	v, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), kvmGetAPIVersion, 0)
	if e != 0 {
		return fmt.Errorf("KVM_GET_API_VERSION: %w", e)
	}
	if v != 12 {
		return fmt.Errorf("KVM API version %d, want 12", v)
	}
	return nil
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
	SkipOrFail(t, "not installed (not on PATH): "+strings.Join(missing, ", "))
}

// SkipOrFail skips the test for reason, or fails it under CI (CI set),
// where .ci/run has installed everything tests need.
func SkipOrFail(t testing.TB, reason string) {
	t.Helper()
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

// ChildEnv is the environment for a child process that is this test
// binary run again: this process's, plus extra, with the race detector
// told not to sleep a second as the child exits (GORACE atexit_sleep_ms,
// 1000 by default), which tests that run many children would pay each
// time.
func ChildEnv(extra ...string) []string {
	var env []string
	gorace := "atexit_sleep_ms=0"
	for _, kv := range os.Environ() {
		if v, ok := strings.CutPrefix(kv, "GORACE="); ok {
			gorace = strings.TrimSpace(v + " " + gorace)
			continue
		}
		env = append(env, kv)
	}
	return append(append(env, "GORACE="+gorace), extra...)
}

// ExitConfined ends a child process — a test binary run again — that has
// confined itself with the monitor's seccomp filter, with status code:
// os.Exit, except in a coverage build (go test -cover), whose exit hook
// would write the coverage counters, which the filter forbids; that one
// exits at once (syscall.Exit), its coverage lost.
func ExitConfined(code int) {
	if testing.CoverMode() != "" {
		syscall.Exit(code)
	}
	os.Exit(code)
}

// ProcessesMentioning lists the processes whose command line holds s: a
// test's leftovers, when s is a directory only its processes name.
func ProcessesMentioning(t testing.TB, s string) []string {
	t.Helper()
	des, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, de := range des {
		b, err := os.ReadFile("/proc/" + de.Name() + "/cmdline")
		if err == nil && strings.Contains(string(b), s) {
			out = append(out, de.Name()+": "+strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return out
}

// Output runs cmd with its standard output and error collected, and
// returns them with its exit status; a command that cannot start fails
// the test.
func Output(t testing.TB, cmd *exec.Cmd) (stdout, stderr string, code int) {
	t.Helper()
	var o, e strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Run(); err != nil && cmd.ProcessState == nil {
		t.Fatal(err)
	}
	return o.String(), e.String(), cmd.ProcessState.ExitCode()
}

// WaitGet fetches url until it answers or timeout passes, and returns the
// body, or the last error.
func WaitGet(url string, timeout time.Duration) (string, error) {
	for deadline := time.Now().Add(timeout); ; time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get(url)
		if err == nil {
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			return string(b), err
		}
		if time.Now().After(deadline) {
			return "", err
		}
	}
}

// BuildExample builds, for the boot test of an example in a module of its
// own (examples/NAME, the repository two levels up), atoll from the
// repository, the example's image with it, and the example as a static
// host executable, all into dir; it returns their paths.
func BuildExample(t testing.TB, dir, name string) (atoll, image, native string) {
	t.Helper()
	atoll, image, native = filepath.Join(dir, "atoll"), filepath.Join(dir, name+".img"), filepath.Join(dir, name)
	for _, c := range []struct {
		args []string
		env  []string
	}{
		{[]string{"go", "build", "-C", "../..", "-o", atoll, "./cmd/atoll"}, nil},
		{[]string{atoll, "build", "-o", image, "."}, nil},
		{[]string{"go", "build", "-o", native, "."}, []string{"CGO_ENABLED=0"}},
	} {
		cmd := exec.Command(c.args[0], c.args[1:]...)
		cmd.Env = append(os.Environ(), c.env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", c.args, err, out)
		}
	}
	return atoll, image, native
}
