package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
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

// TestMemoryCgroup checks that atoll run, as root on a host with a memory
// controller, runs in a memory cgroup of its own limited to --mem plus
// cgroupOverhead, and removes it as it exits; and that a cgroup left by an
// atoll killed outright is removed by the next.
func TestMemoryCgroup(t *testing.T) {
	testenv.RequireKVM(t)
	if os.Geteuid() != 0 {
		testenv.SkipOrFail(t, "memory cgroups need root")
	}
	dir := t.TempDir()
	atoll := atollBinary(t, dir)
	www := buildTestImage(t, atoll, dir, "../../examples/www")
	port := testenv.FreePort(t)
	cmd := exec.Command(atoll, "run", "-v", "--mem", "128M", "-p", fmt.Sprintf("%d:80", port), www)
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	get(t, fmt.Sprintf("http://127.0.0.1:%d/", port))
	m := regexp.MustCompile(`atoll: memory cgroup (\S+), limit 384M`).FindStringSubmatch(stderr.String())
	if m == nil {
		testenv.SkipOrFail(t, "atoll made no memory cgroup: "+stderr.String())
	}
	cg := m[1]
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", cmd.Process.Pid))
	if err != nil || !strings.Contains(string(b), filepath.Base(cg)) {
		t.Errorf("atoll's cgroups: %q, %v; want %s", b, err, cg)
	}
	limit := filepath.Join(cg, "memory.limit_in_bytes")
	if _, err := os.Stat(limit); err != nil {
		limit = filepath.Join(cg, "memory.max")
	}
	if b, err := os.ReadFile(limit); err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(384<<20) {
		t.Errorf("the cgroup's limit: %q, %v", b, err)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	if _, err := os.Stat(cg); !os.IsNotExist(err) {
		t.Errorf("the cgroup outlived atoll: %v\n%s", err, stderr.String())
	}
	// An atoll killed with SIGKILL leaves its cgroup; the next removes it.
	cmd = exec.Command(atoll, "run", "-v", "-p", fmt.Sprintf("%d:80", port), www)
	stderr = &lockedBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	get(t, fmt.Sprintf("http://127.0.0.1:%d/", port))
	cmd.Process.Kill()
	cmd.Wait()
	m = regexp.MustCompile(`atoll: memory cgroup (\S+),`).FindStringSubmatch(stderr.String())
	if m == nil {
		t.Fatalf("no cgroup the second time: %s", stderr.String())
	}
	if _, err := os.Stat(m[1]); err != nil {
		t.Fatalf("a killed atoll's cgroup is gone already: %v", err)
	}
	hello := filepath.Join(dir, "hello")
	build(t, hello, "amd64")
	if _, _, code := invoke(t, dir, "run", hello); code != 0 {
		t.Fatalf("hello: exit %d", code)
	}
	if _, err := os.Stat(m[1]); !os.IsNotExist(err) {
		t.Errorf("the next atoll left the stale cgroup %s: %v", m[1], err)
	}
}
