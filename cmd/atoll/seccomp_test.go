package main

import (
	"bytes"
	"debug/buildinfo"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"atoll.dev/atoll/internal/testenv"
	"atoll.dev/atoll/monitor"
)

// TestSeccompKills has a running atoll make host calls its seccomp filter
// forbids — a call it never makes, and allowed calls with other arguments
// — through the fault injection of a test build (monitor/faultinject.go):
// each kills the process with SIGSYS before the call returns, and before
// the guest's write it was made in. Without the filter the same calls
// return and the guest runs on; with ATOLL_SECCOMP=trap, atoll crashes
// with a traceback naming the caller.
func TestSeccompKills(t *testing.T) {
	testenv.RequireKVM(t)
	dir := t.TempDir()
	atoll := filepath.Join(dir, "atoll-fault")
	if out, err := exec.Command("go", "build", "-tags", "atollfault", "-o", atoll, ".").CombinedOutput(); err != nil {
		t.Fatalf("build atoll with fault injection: %v\n%s", err, out)
	}
	hello := filepath.Join(dir, "hello")
	build(t, hello, "amd64")
	run := func(env ...string) (stdout, stderr string, err error) {
		cmd := exec.Command(atoll, "run", hello)
		cmd.Env = append(os.Environ(), env...)
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		err = cmd.Run()
		return o.String(), e.String(), err
	}
	for _, fault := range []string{"execve", "socket", "ioctl"} {
		stdout, stderr, err := run("ATOLL_FAULT=" + fault)
		var ee *exec.ExitError
		killed := errors.As(err, &ee) && ee.Sys().(syscall.WaitStatus).Signaled() && ee.Sys().(syscall.WaitStatus).Signal() == syscall.SIGSYS
		if !killed || !strings.Contains(stderr, "injected fault: "+fault+"\n") || strings.Contains(stderr, "returned") || stdout != "" {
			t.Errorf("%s: %v, want death by SIGSYS during the call\nstdout: %q\nstderr:\n%s", fault, err, stdout, stderr)
		}
	}
	stdout, stderr, err := run("ATOLL_FAULT=execve", seccompEnv+"=off")
	if err != nil || stdout != "hello from atoll\n" || !strings.Contains(stderr, "execve returned: no such file or directory") ||
		!strings.Contains(stderr, "WARNING: "+seccompEnv+"=off") {
		t.Errorf("unconfined: %v\nstdout: %q\nstderr:\n%s", err, stdout, stderr)
	}
	_, stderr, err = run("ATOLL_FAULT=socket", seccompEnv+"=trap")
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(stderr, "SIGSYS: bad system call") || !strings.Contains(stderr, "monitor.injectFault(") {
		t.Errorf("trap: %v, want exit status 2 with a traceback\n%s", err, stderr)
	}
}

// TestSeccompStatus checks a running atoll run with /proc: every thread
// is in seccomp filter mode (Seccomp: 2) with the filter's two programs and
// no_new_privs, and -v names the filter and its size. The guest waits
// for its standard input meanwhile, atoll is stopped and continued, and
// then the guest answers as it would unconfined.
func TestSeccompStatus(t *testing.T) {
	testenv.RequireKVM(t)
	dir := t.TempDir()
	atoll := atollBinary(t, dir)
	guest := filepath.Join(dir, "jsonfield")
	build := exec.Command("go", "build", "-o", guest, "../../internal/testguests/jsonfield")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	cmd := exec.Command(atoll, "run", "-v", guest, "--", "a")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	proc := "/proc/" + strconv.Itoa(cmd.Process.Pid)
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, _ := os.ReadFile(proc + "/status")
		if strings.Contains(string(b), "\nSeccomp:\t2\n") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("atoll run never confined itself:\n%s\nstderr:\n%s", b, stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	tasks, err := os.ReadDir(proc + "/task")
	if err != nil || len(tasks) < 2 {
		t.Fatalf("threads %v: %v", tasks, err)
	}
	for _, task := range tasks {
		b, err := os.ReadFile(proc + "/task/" + task.Name() + "/status")
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"\nSeccomp:\t2\n", "\nSeccomp_filters:\t2\n", "\nNoNewPrivs:\t1\n"} {
			if !strings.Contains(string(b), want) {
				t.Errorf("thread %s lacks %q", task.Name(), strings.TrimSpace(want))
			}
		}
	}
	t.Logf("%d threads confined", len(tasks))
	// Stopped and continued (^Z, fg), the threads' interrupted sleeps
	// resume through restart_syscall, which the filter allows.
	cmd.Process.Signal(syscall.SIGSTOP)
	time.Sleep(100 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGCONT)
	time.Sleep(100 * time.Millisecond)
	stdin.Write([]byte(`{"a": "answered"}`))
	stdin.Close()
	if err := cmd.Wait(); err != nil || stdout.String() != "answered\n" {
		t.Errorf("%v, stdout %q\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	info, err := monitor.Seccomp()
	if err != nil {
		t.Fatal(err)
	}
	if want := "atoll: " + info.String() + "\n"; !strings.Contains(stderr.String(), want) {
		t.Errorf("-v lacks %q:\n%s", want, stderr.String())
	}
}

// TestSeccompBuilds runs a battery under atoll's filter — boots, the GC
// and goroutines on several threads, preemption, random system calls,
// every file call a volume serves, host sockets and the user network
// under load — with atoll built by default (cgo, the installed Go: every
// other test's build), without cgo, so that the Go runtime makes its
// threads itself rather than through glibc, and with the newest Go
// release the project supports, whose runtime's needs may differ (the
// release tests' toolchain, through GOTOOLCHAIN).
func TestSeccompBuilds(t *testing.T) {
	testenv.RequireKVM(t)
	dir := t.TempDir()
	www := buildTestImage(t, atollBinary(t, dir), dir, "../../examples/www")
	guests := map[string]string{}
	for _, g := range []string{"hello", "goroutines", "preempt", "chaos", "volume", "fileops", "stocknet"} {
		guests[g] = guestBinary(t, dir, g)
	}
	for _, b := range []struct {
		name, release string
		env           []string
	}{
		{"default", "", nil},
		{"nocgo", "", []string{"CGO_ENABLED=0"}},
		{goReleaseNewest, goReleaseNewest, []string{"GOTOOLCHAIN=" + goReleaseNewest}},
	} {
		t.Run(b.name, func(t *testing.T) {
			atoll := filepath.Join(dir, "atoll-"+b.name)
			cmd := exec.Command("go", "build", "-o", atoll, ".")
			cmd.Env = append(os.Environ(), b.env...)
			if out, err := cmd.CombinedOutput(); err != nil {
				if b.release != "" && os.Getenv("CI") == "" {
					t.Skipf("toolchain %s unavailable (the module proxy serves it): %v\n%s", b.release, err, out)
				}
				t.Fatalf("build atoll: %v\n%s", err, out)
			}
			info, err := buildinfo.ReadFile(atoll)
			if err != nil {
				t.Fatal(err)
			}
			if b.release != "" && info.GoVersion != b.release {
				t.Fatalf("atoll built by %s, want %s", info.GoVersion, b.release)
			}
			seccompBattery(t, atoll, www, guests)
		})
	}
}

// goReleaseNewest is the newest Go release the project supports (as in
// monitor/releases_test.go).
const goReleaseNewest = "go1.27.3"

// seccompBattery runs guests and examples/www under atoll, confined. A
// run must print want ("" for anything) and end without a signal.
func seccompBattery(t *testing.T, atoll, www string, guests map[string]string) {
	run := func(want string, args ...string) {
		t.Helper()
		r := runCmd(t, exec.Command(atoll, append([]string{"run"}, args...)...))
		if r.code == -1 || !strings.Contains(r.stdout, want) {
			t.Errorf("atoll run %s: exit %d (-1: a signal), stdout %q, want %q\nstderr:\n%.3000s", strings.Join(args, " "), r.code, r.stdout, want, r.stderr)
		}
	}
	run("hello from atoll", guests["hello"])
	run("gc ran true", "--cpus", "2", guests["goroutines"])
	run("main goroutine ran again: true", "--cpus", "2", guests["preempt"])
	run("", guests["chaos"], "--", "3") // it may crash itself, not atoll
	vol := t.TempDir()
	os.Mkdir(filepath.Join(vol, "config"), 0o755)
	os.WriteFile(filepath.Join(vol, "config", "settings"), []byte("x"), 0o644)
	run("remove /config refused with EROFS: true", "--volume", vol+":/data", "--volume", filepath.Join(vol, "config")+":/config:ro", guests["volume"])
	files := t.TempDir()
	run("all file calls succeeded", "--volume", files+":/data", guests["fileops"])
	run("200 hello from GET /inside", "--net", "host,outbound=none", guests["stocknet"], "--", "selftest")
	port := testenv.FreePort(t)
	cmd := exec.Command(atoll, "run", "-p", strconv.Itoa(port)+":80", www)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	for i := 0; i < 50; i++ {
		if code, body := get(t, "http://127.0.0.1:"+strconv.Itoa(port)+"/api/hello"); code != 200 || !strings.Contains(body, "hello from www") {
			t.Fatalf("www: %d %q\nstderr:\n%s", code, body, stderr.String())
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); cmd.ProcessState.ExitCode() != 128+15 {
		t.Errorf("www after SIGTERM: %v, want exit status 143\nstderr:\n%s", err, stderr.String())
	}
}
