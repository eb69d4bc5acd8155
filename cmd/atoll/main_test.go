package main

import (
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"atoll.dev/atoll/abi"
	"atoll.dev/atoll/imagefile"
	"atoll.dev/atoll/internal/testenv"
	"atoll.dev/atoll/manifest"
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
	return normalize(string(ob), dir), normalize(string(eb), dir), code
}

// normalize replaces what differs between runs and machines.
func normalize(s, dir string) string {
	s = strings.ReplaceAll(s, dir, "$DIR")
	for re, repl := range map[*regexp.Regexp]string{
		regexp.MustCompile(`\(\d+\.\d MB\) in \d+\.\ds`): "($SIZE MB) in $TIME",
		regexp.MustCompile(`size:      \d+ bytes`):       "size:      $SIZE bytes",
		regexp.MustCompile(`go1\.\d+(\.\d+)?`):           "$GOVERSION",
		regexp.MustCompile(`(?m)^  "size": \d+`):         `  "size": $SIZE`,
		regexp.MustCompile(`/tmp/atoll-run-\d+`):         "$RUNDIR",
	} {
		s = re.ReplaceAllLiteralString(s, repl)
	}
	return s
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
	devicesImage := filepath.Join(dir, "devices.img")
	if _, stderr, code := invoke(t, dir, "build", "-o", devicesImage, "../../internal/testguests/devices"); code != 0 {
		t.Fatalf("build devices: %s", stderr)
	}
	netImage := filepath.Join(dir, "net.img")
	if _, stderr, code := invoke(t, dir, "build", "-o", netImage, pkg(t, dir, "netpkg", "unikernel web\nnet service\n")); code != 0 {
		t.Fatalf("build netpkg: %s", stderr)
	}
	devicesData, err := os.ReadFile(devicesImage)
	if err != nil {
		t.Fatal(err)
	}

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
		{"run-bad-cpus", []string{"run", "--cpus", "65", hello}, 2},
		{"run-bad-mem", []string{"run", "--mem", "lots", hello}, 2},
		{"run-small-mem", []string{"run", "--mem", "1M", hello}, 2},
		{"run-bad-env", []string{"run", "-e", "NOEQUALS", hello}, 2},
		{"run-no-such-file", []string{"run", filepath.Join(dir, "nonexistent")}, 125},
		{"run-not-elf", []string{"run", write("script.sh", []byte("#!/bin/sh\necho hi\n"))}, 125},
		{"run-empty", []string{"run", write("empty", nil)}, 125},
		{"run-truncated", []string{"run", write("truncated", data[:4096])}, 125},
		{"run-wrong-arch", []string{"run", arm}, 125},
		{"run-dynamic", []string{"run", "/bin/true"}, 125},
		{"help-build", []string{"help", "build"}, 0},
		{"help-inspect", []string{"help", "inspect"}, 0},
		{"help-new", []string{"help", "new"}, 0},
		{"build-bad-manifest", []string{"build", pkg(t, dir, "badpkg", "unikernel web\nnet Srv\n")}, 125},
		{"build-compile-error", []string{"build", "-o", filepath.Join(dir, "x.img"), pkg(t, dir, "brokenpkg", "unikernel broken\n")}, 1},
		{"inspect-plain", []string{"inspect", hello}, 0},
		{"inspect-image", []string{"inspect", devicesImage}, 0},
		{"inspect-json", []string{"inspect", "--json", devicesImage}, 0},
		{"inspect-damaged", []string{"inspect", write("damaged.img", devicesData[:len(devicesData)-30])}, 125},
		{"run-missing-device", []string{"run", devicesImage}, 125},
		{"run-undeclared-device", []string{"run", "--block", "data=" + filepath.Join(dir, "d"), "--block", "logs=x", devicesImage}, 125},
		{"run-net-undeclared", []string{"run", "--net", "svc=user", devicesImage}, 125},
		{"run-net-bad-backend", []string{"run", "--net", "service=bridge:br0", netImage}, 125},
		{"run-net-tap-missing", []string{"run", "--net", "service=tap:atoll-none0,ip=10.9.0.2/24", netImage}, 125},
		{"run-net-tap-no-addr", []string{"run", "--net", "service=tap:atoll-none0", netImage}, 125},
		{"run-net-bad-option", []string{"run", "--net", "service=user,mtu=9000", netImage}, 125},
		{"run-p-no-net", []string{"run", "-p", "8080:80", "--block", "data=" + filepath.Join(dir, "d2"), devicesImage}, 125},
		{"run-p-bad", []string{"run", "-p", "80", netImage}, 2},
		{"run-wrong-size", []string{"run", "--block", "data=" + write("big.img", make([]byte, 4096)), devicesImage}, 125},
		{"run-device-on-plain", []string{"run", "--block", "data=x", hello}, 125},
		{"new-bad-name", []string{"new", "Hello_World"}, 2},
		{"run-env-reserved", []string{"run", "-e", "ATOLL_DEVICES=x", hello}, 2},
		{"run-env-bad-key", []string{"run", "-e", "1X=y", hello}, 2},
		{"run-net-ipv6", []string{"run", "--net", "service=user,ip=fe80::1/64,gw=fe80::2", netImage}, 125},
		{"run-net-gw-outside", []string{"run", "--net", "service=user,ip=10.5.0.2/24,gw=10.6.0.1", netImage}, 125},
		{"run-abi-newer", []string{"run", write("future.img", futureImage(t, data))}, 125},
		{"build-env-reserved", []string{"build", pkg(t, dir, "envpkg", "unikernel web\nenv ATOLL_NET_SERVICE=1.2.3.4/8\n")}, 125},
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

// TestNewBuildRun is the quickstart end to end: atoll new scaffolds a
// module that builds, inspects as declared, boots, runs as a process, and
// boots straight from its directory.
func TestNewBuildRun(t *testing.T) {
	testenv.RequireKVM(t)
	dir := t.TempDir()
	t.Chdir(dir)
	if _, stderr, code := invoke(t, dir, "new", "hello-web"); code != 0 {
		t.Fatalf("new: %s", stderr)
	}
	t.Chdir(filepath.Join(dir, "hello-web"))
	if _, stderr, code := invoke(t, dir, "build"); code != 0 {
		t.Fatalf("build: %s", stderr)
	}
	stdout, _, code := invoke(t, dir, "inspect", "hello-web.img")
	for _, want := range []string{"name:      hello-web\n", "memory:    256M\n", "cpus:      1\n", "env:       GREETING=hello\n", "devices:   none\n", "abi:       " + abi.Version + "\n"} {
		if code != 0 || !strings.Contains(stdout, want) {
			t.Errorf("inspect lacks %q:\n%s", want, stdout)
		}
	}
	if stdout, stderr, code := invoke(t, dir, "run", "hello-web.img"); code != 0 || stdout != "hello from hello-web\n" {
		t.Errorf("run image: exit %d, stdout %q, stderr %s", code, stdout, stderr)
	}
	native := exec.Command("./hello-web.img")
	native.Env = append(os.Environ(), "GREETING=hi")
	if out, err := native.Output(); err != nil || !strings.HasPrefix(string(out), "hi from ") {
		t.Errorf("image as a process: %q, %v", out, err)
	}
	if stdout, stderr, code := invoke(t, dir, "run", "-e", "GREETING=hey", "."); code != 0 || stdout != "hey from hello-web\n" {
		t.Errorf("run .: exit %d, stdout %q, stderr %s", code, stdout, stderr)
	}
}

// TestBlockDevice attaches a declared block device: the guest finds it by
// name, writes a sector that lands in the host file, and is refused
// unaligned and out-of-range transfers.
func TestBlockDevice(t *testing.T) {
	testenv.RequireKVM(t)
	dir := t.TempDir()
	img, disk := filepath.Join(dir, "devices.img"), filepath.Join(dir, "disk")
	if _, stderr, code := invoke(t, dir, "build", "-o", img, "../../internal/testguests/devices"); code != 0 {
		t.Fatalf("build: %s", stderr)
	}
	stdout, stderr, code := invoke(t, dir, "run", "--block", "data="+disk, img)
	want := "device block data\nunaligned write refused: true\nread past the end refused: true\nblock ok\n"
	if code != 0 || stdout != want {
		t.Fatalf("exit %d, stdout %q, want %q\nstderr: %s", code, stdout, want, stderr)
	}
	data, err := os.ReadFile(disk)
	if err != nil || len(data) != 1<<20 || !strings.HasPrefix(string(data[1024:]), "written by the unikernel") {
		t.Fatalf("disk file: %d bytes, %v", len(data), err)
	}
	// The data survives: a second boot finds the file the right size and
	// leaves it as it was but for its own write.
	if _, stderr, code := invoke(t, dir, "run", "--block", "data="+disk, img); code != 0 {
		t.Fatalf("second boot: %s", stderr)
	}
}

// TestRunBoots boots a guest through the command line: arguments,
// environment and exit status pass through.
func TestRunBoots(t *testing.T) {
	testenv.RequireKVM(t)
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

// futureImage embeds a manifest claiming a guest ABI newer than this atoll's.
func futureImage(t *testing.T, exe []byte) []byte {
	t.Helper()
	img, err := imagefile.Append(exe, imagefile.Embedded{Manifest: manifest.Default("future"), ABIVersion: "0.99"})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// pkg writes a main package with the given manifest into dir/name; the
// "brokenpkg" one does not compile.
func pkg(t *testing.T, dir, name, man string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	os.MkdirAll(p, 0o755)
	src := "package main\n\nfunc main() {}\n"
	if name == "brokenpkg" {
		src = "package main\n\nfunc main() { undefined() }\n"
	}
	for f, text := range map[string]string{"go.mod": "module " + name + "\n\ngo 1.26\n", "main.go": src, "atoll.manifest": man} {
		if err := os.WriteFile(filepath.Join(p, f), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

func build(t *testing.T, out, arch string) {
	t.Helper()
	cmd := exec.Command("go", "build", "-o", out, "../../internal/testguests/hello")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build hello for %s: %v\n%s", arch, err, b)
	}
}
