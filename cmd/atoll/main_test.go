package main

import (
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"atoll.dev/atoll/monitor/kvm"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// invoke runs the command line in-process and returns its output with the
// temporary directory replaced by $DIR.
func invoke(t *testing.T, dir string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	o, _ := os.Create(filepath.Join(t.TempDir(), "stdout"))
	e, _ := os.Create(filepath.Join(t.TempDir(), "stderr"))
	defer o.Close()
	defer e.Close()
	code = run(args, o, e)
	ob, _ := os.ReadFile(o.Name())
	eb, _ := os.ReadFile(e.Name())
	clean := func(b []byte) string { return strings.ReplaceAll(string(b), dir, "$DIR") }
	return clean(ob), clean(eb), code
}

// TestGolden checks help texts and every bad-input error against
// testdata/*.golden; run with -update to rewrite them after a deliberate
// change.
func TestGolden(t *testing.T) {
	dir := t.TempDir()
	hello := filepath.Join(dir, "hello")
	build(t, hello, "amd64")
	data, err := os.ReadFile(hello)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	arm := filepath.Join(dir, "hello-arm64")
	build(t, arm, "arm64")

	cases := []struct {
		name string
		args []string
		code int
	}{
		{"help", []string{"help"}, 0},
		{"noargs", nil, 2},
		{"unknown-command", []string{"frobnicate"}, 2},
		{"run-help", []string{"run", "-h"}, 0},
		{"run-missing-image", []string{"run"}, 2},
		{"run-bad-cpus", []string{"run", "--cpus", "0", hello}, 2},
		{"run-bad-mem", []string{"run", "--mem", "lots", hello}, 2},
		{"run-small-mem", []string{"run", "--mem", "1M", hello}, 2},
		{"run-bad-env", []string{"run", "-e", "NOEQUALS", hello}, 2},
		{"run-no-such-file", []string{"run", filepath.Join(dir, "nonexistent")}, 125},
		{"run-not-elf", []string{"run", write("script.sh", []byte("#!/bin/sh\necho hi\n"))}, 125},
		{"run-empty", []string{"run", write("empty", nil)}, 125},
		{"run-truncated", []string{"run", write("truncated", data[:4096])}, 125},
		{"run-wrong-arch", []string{"run", arm}, 125},
		{"run-dynamic", []string{"run", "/bin/true"}, 125},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			stdout, stderr, code := invoke(t, dir, c.args...)
			if code != c.code {
				t.Errorf("exit status %d, want %d\nstderr: %s", code, c.code, stderr)
			}
			got := "stdout:\n" + stdout + "stderr:\n" + stderr
			golden := filepath.Join("testdata", c.name+".golden")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./cmd/atoll -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("output differs from %s (go test ./cmd/atoll -update rewrites it):\n--- got\n%s\n--- want\n%s", golden, got, want)
			}
		})
	}
}

// TestRunBoots boots a guest through the command line: arguments,
// environment and exit status pass through.
func TestRunBoots(t *testing.T) {
	if s, err := kvm.Open(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("boot tests must run in CI: %v", err)
		}
		t.Skipf("skipping boot test: %v", err)
	} else {
		s.Close()
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "exitcode")
	cmd := exec.Command("go", "build", "-o", bin, "../../internal/testguests/exitcode")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	stdout, _, code := invoke(t, dir, "run", "--mem", "256M", "--cpus", "2", bin, "--", "7")
	if code != 7 || stdout != "exiting with 7\n" {
		t.Fatalf("exit %d, stdout %q", code, stdout)
	}
}

// TestNoKVMPermission runs atoll as an unprivileged user, who cannot open
// /dev/kvm here, and checks the one-line error names the fix.
func TestNoKVMPermission(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run atoll as another user")
	}
	if fi, err := os.Stat("/dev/kvm"); err != nil || fi.Mode().Perm()&0o006 != 0 {
		t.Skip("/dev/kvm missing or world-accessible: nothing to refuse")
	}
	dir, err := os.MkdirTemp("", "atoll-perm-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	atoll, hello := filepath.Join(dir, "atoll"), filepath.Join(dir, "hello")
	if out, err := exec.Command("go", "build", "-o", atoll, ".").CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	build(t, hello, "amd64")
	cmd := exec.Command(atoll, "run", hello)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 125 {
		t.Fatalf("err %v, output %s", err, out)
	}
	want := "open /dev/kvm: permission denied — run as root or add your user to the kvm group"
	if !strings.Contains(string(out), want) || strings.Count(string(out), "\n") != 1 {
		t.Fatalf("output %q, want one line containing %q", out, want)
	}
}

func build(t *testing.T, out, arch string) {
	t.Helper()
	cmd := exec.Command("go", "build", "-o", out, "../../internal/testguests/hello")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build hello for %s: %v\n%s", arch, err, b)
	}
}
