package main

import (
	"bytes"
	"debug/buildinfo"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"atoll.dev/atoll/abi"
	"atoll.dev/atoll/imagefile"
	"atoll.dev/atoll/internal/testenv"
	"atoll.dev/atoll/manifest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// asAtollEnv makes the test binary atoll itself (TestMain), for invoke.
const asAtollEnv = "ATOLL_TEST_AS_ATOLL"

// TestMain runs the tests, or, with asAtollEnv set, the command line in
// the arguments as atoll would.
func TestMain(m *testing.M) {
	if os.Getenv(asAtollEnv) == "1" {
		testenv.ExitConfined(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// invoke runs the command line and returns its output with the temporary
// directory replaced by $DIR. It runs in-process, except atoll run: that
// confines its process with the monitor's seccomp filter for good, so it
// runs in a child process, this test binary acting as atoll. A child the
// filter killed fails the test.
func invoke(t *testing.T, dir string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	o, _ := os.Create(filepath.Join(t.TempDir(), "stdout"))
	e, _ := os.Create(filepath.Join(t.TempDir(), "stderr"))
	defer o.Close()
	defer e.Close()
	if len(args) > 0 && args[0] == "run" {
		code = invokeChild(t, args, o, e)
	} else {
		code = run(args, o, e)
	}
	ob, _ := os.ReadFile(o.Name())
	eb, _ := os.ReadFile(e.Name())
	return normalize(string(ob), dir), normalize(string(eb), dir), code
}

// invokeChild runs the command line in a child process, this test binary
// as atoll, and returns its exit status (128+N for a death by signal N).
func invokeChild(t *testing.T, args []string, stdout, stderr *os.File) int {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, args...)
	cmd.Env = testenv.ChildEnv(asAtollEnv + "=1")
	cmd.Stdout, cmd.Stderr = stdout, stderr
	err = cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case !errors.As(err, &ee):
		t.Fatal(err)
	}
	if ws := ee.Sys().(syscall.WaitStatus); ws.Signaled() {
		if ws.Signal() == syscall.SIGSYS {
			t.Errorf("atoll %s: killed by its seccomp filter (SIGSYS)", strings.Join(args, " "))
		}
		return 128 + int(ws.Signal())
	}
	return ee.ExitCode()
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
		regexp.MustCompile(`lib [0-9a-f]{12}\b`):         "lib $LIB",
		regexp.MustCompile(`(?m)^atoll:     .*`):         "atoll:     $VERSION",
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
	fakeCABundle(t, dir)
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
	treeImage := filepath.Join(dir, "tree.img")
	if _, stderr, code := invoke(t, dir, "build", "-o", treeImage, treePkg(t, dir)); code != 0 {
		t.Fatalf("build treepkg: %s", stderr)
	}
	escapePkg := pkg(t, dir, "escapepkg", "unikernel escape\nfiles conf /etc/app\n")
	os.Mkdir(filepath.Join(escapePkg, "conf"), 0o755)
	os.Symlink("/etc/passwd", filepath.Join(escapePkg, "conf", "passwd"))

	cases := []struct {
		name string
		args []string
		code int
	}{
		{"help", []string{"help"}, 0},
		{"noargs", nil, 2},
		{"unknown-command", []string{"frobnicate"}, 2},
		{"help-nosuch", []string{"help", "nosuch"}, 2},
		{"help-lib", []string{"help", "lib"}, 0},
		{"help-version", []string{"help", "version"}, 0},
		{"version", []string{"version"}, 0},
		{"version-args", []string{"version", "x"}, 2},
		{"new-two-names", []string{"new", "a", "--net", "b"}, 2},
		{"run-help", []string{"run", "-h"}, 0},
		{"abi", []string{"abi"}, 0},
		{"abi-args", []string{"abi", "x"}, 2},
		{"run-missing-image", []string{"run"}, 2},
		{"run-bad-cpus", []string{"run", "--cpus", "65", hello}, 2},
		{"run-bad-mem", []string{"run", "--mem", "lots", hello}, 2},
		{"run-small-mem", []string{"run", "--mem", "1M", hello}, 2},
		{"run-bad-env", []string{"run", "-e", "NOEQUALS", hello}, 2},
		{"run-nested-volumes", []string{"run", "--volume", dir + ":/a", "--volume", dir + ":/a/b", hello}, 125},
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
		{"inspect-damaged", []string{"inspect", write("damaged.img", append(bytes.Clone(data), make([]byte, 500)...))}, 125},
		{"inspect-tree", []string{"inspect", treeImage}, 0},
		{"inspect-tree-json", []string{"inspect", "--json", treeImage}, 0},
		{"build-files-escape", []string{"build", "-o", filepath.Join(dir, "escape.img"), escapePkg}, 125},
		{"build-files-bad", []string{"build", pkg(t, dir, "badfilespkg", "unikernel web\nfiles (\n\tconf /etc/app\n\tstatic /proc/www\n)\n")}, 125},
		{"run-missing-device", []string{"run", devicesImage}, 125},
		{"run-undeclared-device", []string{"run", "--block", "data=" + filepath.Join(dir, "d"), "--block", "logs=x", devicesImage}, 125},
		{"run-net-undeclared", []string{"run", "--net", "svc=user", devicesImage}, 125},
		{"run-net-bad-backend", []string{"run", "--net", "service=bridge:br0", netImage}, 125},
		{"run-net-tap-missing", []string{"run", "--net", "service=tap:atoll-none0,ip=10.9.0.2/24", netImage}, 125},
		{"run-net-tap-no-addr", []string{"run", "--net", "service=tap:atoll-none0", netImage}, 125},
		{"run-net-bad-option", []string{"run", "--net", "service=user,mtu=9000", netImage}, 125},
		{"run-net-host-image", []string{"run", "--net", "host", "--block", "data=" + filepath.Join(dir, "d3"), devicesImage}, 125},
		{"run-net-host-addressing", []string{"run", "--net", "host,ip=10.1.0.2/24", hello}, 125},
		{"run-net-host-rings", []string{"run", "--net", "host,outbound=none,rings=off", hello}, 125},
		{"run-net-rings-bad", []string{"run", "--net", "service=user,rings=maybe", netImage}, 125},
		{"run-net-twice", []string{"run", "--net", "host", "--net", "host,outbound=none", hello}, 125},
		{"run-net-bad", []string{"run", "--net", "tap0", hello}, 2},
		{"run-dns-bad", []string{"run", "--dns", "dns.example", "--net", "host", hello}, 125},
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

// offline makes the go commands a test runs fetch nothing and change no
// go.mod: what a module needs must already be in it and in the module
// cache.
var offline = []string{"GOPROXY=off", "GOFLAGS=-mod=readonly"}

// runIn runs a command in dir with the environment plus env, failing the
// test if it fails, and returns its combined output.
func runIn(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestNewNetServes is the networked quickstart, outside this repository
// and offline: atoll new --net scaffolds a module that imports the guest
// library from its own copy, builds with atoll build and go build with no
// download, boots, and serves HTTP through a port forward — and serves
// as a plain process too.
func TestNewNetServes(t *testing.T) {
	testenv.RequireKVM(t)
	dir := t.TempDir()
	atoll := atollBinary(t, dir)
	runIn(t, dir, offline, atoll, "new", "svc", "--net")
	svc := filepath.Join(dir, "svc")
	runIn(t, svc, offline, atoll, "build")
	runIn(t, svc, offline, "go", "build", "-o", os.DevNull, "./...")
	runIn(t, svc, offline, "go", "vet", "./...")

	port := testenv.FreePort(t)
	var stderr strings.Builder
	cmd := exec.Command(atoll, "run", "-p", fmt.Sprintf("%d:80", port), ".")
	cmd.Dir, cmd.Env, cmd.Stderr = svc, append(os.Environ(), offline...), &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	if code, body := get(t, fmt.Sprintf("http://127.0.0.1:%d/", port)); code != 200 || body != "hello from svc\n" {
		t.Errorf("unikernel: %d %q\nstderr: %s", code, body, stderr.String())
	}

	port = testenv.FreePort(t)
	proc := exec.Command(filepath.Join(svc, "svc.img"))
	proc.Env = append(os.Environ(), fmt.Sprintf("PORT=%d", port))
	if err := proc.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { proc.Process.Kill(); proc.Wait() }()
	if code, body := get(t, fmt.Sprintf("http://127.0.0.1:%d/", port)); code != 200 || !strings.HasPrefix(body, "hello from ") {
		t.Errorf("as a process: %d %q", code, body)
	}
}

// TestNewScaffolds checks both scaffolds, with --net before and after the
// name: the files, the manifest's network device, and the module pointed
// at its copy of the guest library.
func TestNewScaffolds(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	for _, c := range []struct {
		args []string
		net  bool
	}{{[]string{"plain"}, false}, {[]string{"web1", "--net"}, true}, {[]string{"--net", "web2"}, true}} {
		name := c.args[0]
		if c.net && name == "--net" {
			name = c.args[1]
		}
		stdout, stderr, code := invoke(t, dir, append([]string{"new"}, c.args...)...)
		if code != 0 {
			t.Fatalf("new %v: %d %s", c.args, code, stderr)
		}
		man, _ := os.ReadFile(filepath.Join(name, "atoll.manifest"))
		src, _ := os.ReadFile(filepath.Join(name, "main.go"))
		mod, _ := os.ReadFile(filepath.Join(name, "go.mod"))
		if got := strings.Contains(string(man), "\nnet service\n"); got != c.net {
			t.Errorf("new %v: manifest declares the network: %v, want %v\n%s", c.args, got, c.net, man)
		}
		if got := strings.Contains(string(src), `atoll.Net("service")`); got != c.net {
			t.Errorf("new %v: main.go uses atoll.Net: %v, want %v", c.args, got, c.net)
		}
		if !strings.Contains(string(mod), "replace atoll.dev/atoll => ./.atoll") || !strings.Contains(stdout, name+"/.atoll") {
			t.Errorf("new %v: go.mod not pointed at the copy:\n%s\nstdout: %s", c.args, mod, stdout)
		}
		if _, err := os.Stat(filepath.Join(name, ".atoll", "netstack", "netstack.go")); err != nil {
			t.Errorf("new %v: no copy of the library: %v", c.args, err)
		}
		if m, _ := filepath.Glob(filepath.Join(name, ".atoll", "*", "*_test.go")); len(m) > 0 {
			t.Errorf("new %v: the copy holds tests: %v", c.args, m)
		}
	}
	// The plain scaffold builds with no module cache at all: it uses only
	// the standard library, whatever go.mod requires.
	runIn(t, filepath.Join(dir, "plain"), append([]string{"GOMODCACHE=" + filepath.Join(dir, "empty-cache")}, offline...), "go", "build", "-o", os.DevNull, ".")
	os.RemoveAll(filepath.Join(dir, "empty-cache"))
}

func TestParseInterspersed(t *testing.T) {
	for _, c := range []struct {
		args []string
		rest []string
		net  bool
	}{
		{[]string{"svc", "--net"}, []string{"svc"}, true},
		{[]string{"--net", "svc"}, []string{"svc"}, true},
		{[]string{"a", "-net", "b"}, []string{"a", "b"}, true},
		{[]string{"svc"}, []string{"svc"}, false},
		{[]string{"--", "--net"}, []string{"--net"}, false},
		{[]string{"x", "--", "--net"}, []string{"x", "--net"}, false},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		net := fs.Bool("net", false, "")
		rest, err := parseInterspersed(fs, c.args)
		if err != nil || strings.Join(rest, " ") != strings.Join(c.rest, " ") || *net != c.net {
			t.Errorf("%q: %q, net %v, %v; want %q, net %v", c.args, rest, *net, err, c.rest, c.net)
		}
	}
}

// TestLibExistingModule gives an existing module the guest library: a
// different replace is refused, then overridden with -f; requirements
// are raised but not lowered; the module then builds offline; a second
// run changes nothing; hand edits to the copy are refused; atoll build
// notes a copy that is not this atoll's, a missing copy, and a module
// with none.
func TestLibExistingModule(t *testing.T) {
	t.Setenv("GOPROXY", "off")
	t.Setenv("GOFLAGS", "-mod=readonly")
	dir := t.TempDir()
	app := filepath.Join(dir, "app")
	os.MkdirAll(app, 0o755)
	goMod := "module example.com/app\n\ngo 1.26\n\nrequire golang.org/x/sys v0.50.0\n\nrequire github.com/google/btree v1.0.0 // indirect\n\nreplace atoll.dev/atoll => ../atoll-checkout\n"
	mainGo := "package main\n\nimport (\n\t\"fmt\"\n\n\t\"atoll.dev/atoll\"\n\t\"golang.org/x/sys/unix\"\n)\n\nfunc main() {\n\tdevs, _ := atoll.Devices()\n\tfmt.Println(len(devs), unix.Getpid() > 0)\n}\n"
	os.WriteFile(filepath.Join(app, "go.mod"), []byte(goMod), 0o644)
	os.WriteFile(filepath.Join(app, "main.go"), []byte(mainGo), 0o644)

	_, stderr, code := invoke(t, dir, "lib", app)
	if code != 125 || !strings.Contains(stderr, "already replaces atoll.dev/atoll with ../atoll-checkout; nothing was changed") {
		t.Fatalf("lib over a different replace: %d %s", code, stderr)
	}
	if b, _ := os.ReadFile(filepath.Join(app, "go.mod")); string(b) != goMod {
		t.Fatalf("refused, yet go.mod changed:\n%s", b)
	}
	if _, err := os.Stat(filepath.Join(app, ".atoll")); err == nil {
		t.Fatal("refused, yet .atoll was written")
	}

	stdout, stderr, code := invoke(t, dir, "lib", "-f", app)
	for _, want := range []string{"wrote $DIR/app/.atoll: the guest library lib $LIB", "dropped replace atoll.dev/atoll => ../atoll-checkout (-f)", "raised github.com/google/btree v1.0.0 to v1.1.2", "raised go 1.26 to"} {
		if code != 0 || !strings.Contains(stdout, want) {
			t.Errorf("lib -f: %d, stdout lacks %q:\n%s%s", code, want, stdout, stderr)
		}
	}
	mod, _ := os.ReadFile(filepath.Join(app, "go.mod"))
	for _, want := range []string{"\tgolang.org/x/sys v0.50.0\n", "\tatoll.dev/atoll v0.0.0-00010101000000-000000000000\n", "\tgvisor.dev/gvisor v", "// indirect\n", "replace atoll.dev/atoll => ./.atoll\n"} {
		if !strings.Contains(string(mod), want) {
			t.Errorf("go.mod lacks %q:\n%s", want, mod)
		}
	}
	runIn(t, app, nil, "go", "build", "-o", os.DevNull, ".")

	if stdout, _, code := invoke(t, dir, "lib", app); code != 0 || !strings.Contains(stdout, "is up to date") || strings.Contains(stdout, "go.mod") {
		t.Errorf("second run: %d %s", code, stdout)
	}
	if b, _ := os.ReadFile(filepath.Join(app, "go.mod")); string(b) != string(mod) {
		t.Errorf("second run changed go.mod:\n%s", b)
	}

	netGo := filepath.Join(app, ".atoll", "net.go")
	f, _ := os.OpenFile(netGo, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("// edited\n")
	f.Close()
	if _, stderr, code := invoke(t, dir, "lib", app); code != 125 || !strings.Contains(stderr, "they were edited") {
		t.Errorf("lib over an edited copy: %d %s", code, stderr)
	}
	if stdout, _, code := invoke(t, dir, "lib", "-f", app); code != 0 || !strings.Contains(stdout, "changed net.go") {
		t.Errorf("lib -f over an edited copy: %d %s", code, stdout)
	}

	os.WriteFile(filepath.Join(app, ".atoll", "VERSION"), []byte("lib 000000000000 abi 0.0\n"), 0o644)
	img := filepath.Join(dir, "app.img")
	if _, stderr, code := invoke(t, dir, "build", "-o", img, app); code != 0 || !strings.Contains(stderr, "atoll: note: the guest library in $DIR/app/.atoll (lib $LIB, ABI 0.0) is older than this atoll's") || !strings.Contains(stderr, "run 'atoll lib' to update it") {
		t.Errorf("build with another copy: %d %s", code, stderr)
	}

	os.RemoveAll(filepath.Join(app, ".atoll"))
	if _, stderr, code := invoke(t, dir, "build", "-o", img, app); code != 1 || !strings.Contains(stderr, "which is missing: run 'atoll lib' to write it") {
		t.Errorf("build without the copy: %d %s", code, stderr)
	}

	os.WriteFile(filepath.Join(app, "go.mod"), []byte("module example.com/app\n\ngo 1.26\n"), 0o644)
	if _, stderr, code := invoke(t, dir, "build", "-o", img, app); code != 1 || !strings.Contains(stderr, "has no copy of the guest library atoll.dev/atoll: run 'atoll lib'") {
		t.Errorf("build of a module without the library: %d %s", code, stderr)
	}
}

// fakeCABundle makes atoll build pack a CA bundle of its own instead of
// the host's, so that what images hold does not depend on the machine.
func fakeCABundle(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "ca-bundle.pem")
	if err := os.WriteFile(p, []byte("-----BEGIN CERTIFICATE-----\nnot really\n-----END CERTIFICATE-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(p, 0o644)
	os.Chtimes(p, treeTime, treeTime)
	saved := caBundles
	caBundles = []string{filepath.Join(dir, "no-such-bundle"), p}
	t.Cleanup(func() { caBundles = saved })
	return p
}

var treeTime = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

// treePkg writes a package with a files entry for a directory and one for
// a file, its files' modes and times fixed.
func treePkg(t *testing.T, dir string) string {
	t.Helper()
	p := pkg(t, dir, "treepkg", "unikernel tree\nfiles (\n\tconf /etc/app\n\tstatic/index.html /srv/www/index.html\n)\n")
	for name, data := range map[string]string{"conf/app.conf": "answer = 42\n", "conf/empty": "", "conf/keys/k1": "k1", "static/index.html": "<h1>hello</h1>\n"} {
		os.MkdirAll(filepath.Join(p, filepath.Dir(name)), 0o755)
		if err := os.WriteFile(filepath.Join(p, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(filepath.Join(p, "conf/keys/k1"), 0o600)
	for _, name := range []string{"conf/app.conf", "conf/empty", "conf/keys/k1", "static/index.html", "conf/keys", "conf", "static"} {
		if name == "conf/keys" || name == "conf" || name == "static" {
			os.Chmod(filepath.Join(p, name), 0o755)
		}
		os.Chtimes(filepath.Join(p, name), treeTime, treeTime)
	}
	return p
}

// filesPkg writes a module whose program loads a time zone and says
// whether GOFLAGS' "foo" tag reached it, with the manifest man and the
// package files extra.
func filesPkg(t *testing.T, dir, name, man string, extra map[string]string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	files := map[string]string{
		"go.mod":         "module " + name + "\n\ngo 1.26\n",
		"atoll.manifest": man,
		"main.go": `package main

import (
	"fmt"
	"os"
	"time"
)

var foo = "no tag foo"

func main() {
	loc, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	fmt.Println(time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC).In(loc).Format("15:04 MST"), foo)
}
`,
		"foo.go": "//go:build foo\n\npackage main\n\nfunc init() { foo = \"tag foo\" }\n",
	}
	for f, text := range extra {
		files[f] = text
	}
	for f, text := range files {
		os.MkdirAll(filepath.Join(p, filepath.Dir(f)), 0o755)
		if err := os.WriteFile(filepath.Join(p, f), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// TestBuildTree builds an image with a tree: the files and the CA bundle
// are in it byte for byte, the image still runs as a plain process, and
// the build tags GOFLAGS gives are kept beside timetzdata.
func TestBuildTree(t *testing.T) {
	dir := t.TempDir()
	bundle := fakeCABundle(t, dir)
	t.Setenv("GOFLAGS", "-tags=foo")
	p := filesPkg(t, dir, "treeapp", "unikernel treeapp\nfiles conf /etc/app\n", map[string]string{"conf/app.conf": "answer = 42\n", "conf/big.bin": strings.Repeat("0123456789abcdef", 40000)})
	img := filepath.Join(dir, "treeapp.img")
	_, stderr, code := invoke(t, dir, "build", "-o", img, p)
	if code != 0 {
		t.Fatalf("build: %s", stderr)
	}
	for _, want := range []string{"(go build, CGO_ENABLED=0 GOOS=linux GOARCH=amd64 -tags=foo,timetzdata)\n", "atoll: packed 3 files in 4 directories, 0.6 MB (files entries: 1; CA bundle: $DIR/ca-bundle.pem) in "} {
		if !strings.Contains(stderr, want) {
			t.Errorf("build output lacks %q:\n%s", want, stderr)
		}
	}
	im, err := imagefile.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	tree := im.Embedded.Tree
	var paths []string
	for _, e := range tree.Entries {
		paths = append(paths, e.Mode.String()+" "+e.Path)
	}
	if got, want := strings.Join(paths, "\n"), strings.Join([]string{
		"drwxr-xr-x /etc", "drwxr-xr-x /etc/app", "-rw-r--r-- /etc/app/app.conf", "-rw-r--r-- /etc/app/big.bin",
		"drwxr-xr-x /etc/ssl", "drwxr-xr-x /etc/ssl/certs", "-rw-r--r-- /etc/ssl/certs/ca-certificates.crt"}, "\n"); got != want {
		t.Errorf("tree:\n%s\nwant:\n%s", got, want)
	}
	for guest, host := range map[string]string{"/etc/app/app.conf": filepath.Join(p, "conf/app.conf"), "/etc/app/big.bin": filepath.Join(p, "conf/big.bin"), "/etc/ssl/certs/ca-certificates.crt": bundle} {
		want, _ := os.ReadFile(host)
		e, ok := tree.Lookup(guest)
		if !ok || string(tree.Data(e)) != string(want) {
			t.Errorf("%s: not the contents of %s", guest, host)
		}
	}
	if bi, err := buildinfo.ReadFile(img); err != nil || !slices.Contains(bi.Settings, debug.BuildSetting{Key: "-tags", Value: "foo,timetzdata"}) {
		t.Errorf("build settings lack -tags=foo,timetzdata: %v", err)
	}
	if out, err := exec.Command(img).Output(); err != nil || string(out) != "14:00 CEST tag foo\n" {
		t.Errorf("image as a process: %q, %v", out, err)
	}

	// The package's own bundle wins over the host's; cacerts off packs none.
	own := filesPkg(t, dir, "ownca", "unikernel ownca\nfiles etc /etc\n", map[string]string{"etc/ssl/certs/ca-certificates.crt": "mine\n"})
	off := filesPkg(t, dir, "noca", "unikernel noca\ncacerts off\n", nil)
	for pkgDir, want := range map[string]string{own: "mine\n", off: ""} {
		img := filepath.Join(dir, filepath.Base(pkgDir)+".img")
		if _, stderr, code := invoke(t, dir, "build", "-o", img, pkgDir); code != 0 {
			t.Fatalf("build %s: %s", pkgDir, stderr)
		}
		im, err := imagefile.Open(img)
		if err != nil {
			t.Fatal(err)
		}
		e, _ := im.Embedded.Tree.Lookup("/etc/ssl/certs/ca-certificates.crt")
		if got := string(im.Embedded.Tree.Data(e)); got != want {
			t.Errorf("%s: CA bundle %q, want %q", pkgDir, got, want)
		}
		im.Close()
	}
	// No bundle on the host: a note, and an image without one.
	caBundles = []string{filepath.Join(dir, "none")}
	if _, stderr, code := invoke(t, dir, "build", "-o", filepath.Join(dir, "x.img"), p); code != 0 || !strings.Contains(stderr, "atoll: note: no CA bundle on this host ($DIR/none): the image has none") {
		t.Errorf("no bundle: %d %s", code, stderr)
	}
}

// TestTZData runs images where no zoneinfo exists (an empty chroot): with
// tzdata on (the default) the program finds Europe/Paris, with tzdata off
// it does not, so the build tag is what makes the difference.
func TestTZData(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to chroot")
	}
	dir := t.TempDir()
	fakeCABundle(t, dir)
	for _, c := range []struct {
		man, want string
		ok        bool
	}{
		{"unikernel tzon\n", "14:00 CEST no tag foo\n", true},
		{"unikernel tzoff\ntzdata off\n", "unknown time zone Europe/Paris\n", false},
	} {
		p := filesPkg(t, dir, strings.Fields(c.man)[1], c.man, nil)
		root := filepath.Join(dir, "root-"+filepath.Base(p))
		os.MkdirAll(root, 0o755)
		if _, stderr, code := invoke(t, dir, "build", "-o", filepath.Join(root, "app"), p); code != 0 {
			t.Fatalf("build: %s", stderr)
		}
		cmd := exec.Command("/app")
		cmd.Env = []string{"ZONEINFO=/nonexistent"}
		cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root}
		out, err := cmd.Output()
		if string(out) != c.want || (err == nil) != c.ok {
			t.Errorf("%s: %q, %v; want %q", p, out, err, c.want)
		}
	}
}

// TestInspectLongTree lists a long tree as text: the first entries, then
// how many more; odd paths quoted.
func TestInspectLongTree(t *testing.T) {
	in := inspection{Image: "x.img", Manifest: manifest.Default("x")}
	for i := range maxListed + 7 {
		in.Tree = append(in.Tree, inspectedFile{Path: fmt.Sprintf("/f%03d", i), Mode: "-rw-r--r--", Size: 1})
	}
	in.Tree[0].Path = "/a\x1b[31mred"
	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	printInspection(f, in)
	f.Close()
	out, _ := os.ReadFile(f.Name())
	for _, want := range []string{"files:     57 entries, 0 bytes\n", "  -rw-r--r--          1  \"/a\\x1b[31mred\"\n", "/f049\n  … and 7 more (atoll inspect --json lists them all)\n"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "/f050") || strings.ContainsRune(string(out), 0x1b) {
		t.Errorf("listed too much, or a raw escape:\n%s", out)
	}
}
