package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"atoll.dev/atoll/internal/testenv"
)

// runtimeUnderTest is atoll-oci and atoll built side by side, driven as an
// engine drives them.
type runtimeUnderTest struct {
	t         *testing.T
	bin, root string
	logPath   string
}

func newRuntime(t *testing.T) *runtimeUnderTest {
	t.Helper()
	dir := t.TempDir()
	for _, c := range [][]string{
		{"go", "build", "-o", filepath.Join(dir, "atoll-oci"), "."},
		{"go", "build", "-o", filepath.Join(dir, "atoll"), "../atoll"},
	} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", c, err, out)
		}
	}
	return &runtimeUnderTest{t: t, bin: filepath.Join(dir, "atoll-oci"), root: filepath.Join(dir, "root"), logPath: filepath.Join(dir, "log")}
}

// call runs atoll-oci with the global flags an engine passes. Its output
// goes to files, not pipes: a container's process created keeps the
// standard streams it inherits, as an engine's are.
func (r *runtimeUnderTest) call(args ...string) (string, error) {
	cmd := exec.Command(r.bin, append([]string{"--root", r.root, "--log", r.logPath, "--log-format", "json"}, args...)...)
	out, err := os.CreateTemp(r.t.TempDir(), "out")
	if err != nil {
		r.t.Fatal(err)
	}
	defer out.Close()
	errs, err := os.CreateTemp(r.t.TempDir(), "err")
	if err != nil {
		r.t.Fatal(err)
	}
	defer errs.Close()
	cmd.Stdout, cmd.Stderr = out, errs
	err = cmd.Run()
	o, _ := os.ReadFile(out.Name())
	e, _ := os.ReadFile(errs.Name())
	if err != nil {
		return string(o), fmt.Errorf("%v: %s", err, e)
	}
	return string(o), nil
}

func (r *runtimeUnderTest) state(id string) ociState {
	r.t.Helper()
	out, err := r.call("state", id)
	if err != nil {
		r.t.Fatal(err)
	}
	var s ociState
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		r.t.Fatalf("state: %v\n%s", err, out)
	}
	return s
}

// TestLifecycle drives a container as an engine does: create (with a pid
// file, the process this test's to reap as conmon's is conmon's), state,
// start, a request to the unikernel, kill by name, the exit status, state
// stopped, delete; then kill -9 of a created container and delete
// --force of a running one, and the refusals.
func TestLifecycle(t *testing.T) {
	testenv.RequireKVM(t)
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	r := newRuntime(t)
	srv := filepath.Join(t.TempDir(), "stocknet")
	build := exec.Command("go", "build", "-o", srv, "../../internal/testguests/stocknet")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build stocknet: %v\n%s", err, out)
	}
	port := testenv.FreePort(t)
	bundle := writeBundle(t, spec{Process: &process{Args: []string{"/stocknet", "serve", fmt.Sprintf(":%d", port)}}},
		map[string]string{"stocknet": srv})
	pidFile := filepath.Join(t.TempDir(), "pid")

	out := filepath.Join(t.TempDir(), "out")
	stdout, _ := os.Create(out)
	cmd := exec.Command(r.bin, "--root", r.root, "create", "--bundle", bundle, "--pid-file", pidFile, "web")
	cmd.Stdout, cmd.Stderr = stdout, stdout
	if err := cmd.Run(); err != nil {
		b, _ := os.ReadFile(out)
		t.Fatalf("create: %v\n%s", err, b)
	}
	stdout.Close()
	b, _ := os.ReadFile(pidFile)
	pid, err := strconv.Atoi(string(b))
	if err != nil {
		t.Fatalf("pid file %q", b)
	}
	if s := r.state("web"); s.Status != "created" || s.Pid != pid || s.Bundle != bundle {
		t.Errorf("after create: %+v", s)
	}
	if _, err := r.call("create", "--bundle", bundle, "web"); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("a second create of web: %v", err)
	}
	if _, err := r.call("start", "web"); err != nil {
		t.Fatal(err)
	}
	if s := r.state("web"); s.Status != "running" {
		t.Errorf("after start: %+v", s)
	}
	body, err := testenv.WaitGet(fmt.Sprintf("http://127.0.0.1:%d/", port), 20*time.Second)
	if err != nil {
		b, _ := os.ReadFile(out)
		t.Fatalf("the unikernel did not answer: %v\n%s", err, b)
	}
	if !strings.Contains(body, "/") {
		t.Errorf("body %q", body)
	}
	if out, err := r.call("ps", "--format", "json", "web"); err != nil || strings.TrimSpace(out) != fmt.Sprintf("[%d]", pid) {
		t.Errorf("ps: %q, %v", out, err)
	}
	if _, err := r.call("delete", "web"); err == nil || !strings.Contains(err.Error(), "not stopped") {
		t.Errorf("delete of a running container: %v", err)
	}
	if _, err := r.call("kill", "web", "SIGNOPE"); err == nil || !strings.Contains(err.Error(), "unknown signal") {
		t.Errorf("kill with an unknown signal: %v", err)
	}
	if b, _ := os.ReadFile(r.logPath); !strings.Contains(string(b), `"level":"error"`) {
		t.Errorf("the log has no JSON error line:\n%s", b)
	}
	if _, err := r.call("kill", "web", "TERM"); err != nil {
		t.Fatal(err)
	}
	var ws unix.WaitStatus
	if _, err := unix.Wait4(pid, &ws, 0, nil); err != nil || ws.ExitStatus() != 128+15 {
		t.Errorf("the container's exit: %v, status %d (want 143, atoll run's after SIGTERM)", err, ws.ExitStatus())
	}
	if s := r.state("web"); s.Status != "stopped" || s.Pid != 0 {
		t.Errorf("after exit: %+v", s)
	}
	if _, err := r.call("kill", "web", "KILL"); err == nil {
		t.Error("kill of a stopped container succeeded")
	}
	if _, err := r.call("delete", "web"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(r.root, "web")); !os.IsNotExist(err) {
		t.Errorf("delete left the state: %v", err)
	}
	if _, err := r.call("state", "web"); err == nil {
		t.Error("state of a deleted container succeeded")
	}

	// delete --force of a running container; delete of a created one.
	for _, started := range []bool{true, false} {
		if _, err := r.call("create", "--bundle", bundle, "--pid-file", pidFile, "c"); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(pidFile)
		pid, _ := strconv.Atoi(string(b))
		args := []string{"delete", "c"}
		if started {
			if _, err := r.call("start", "c"); err != nil {
				t.Fatal(err)
			}
			args = []string{"delete", "--force", "c"}
		}
		if _, err := r.call(args...); err != nil {
			t.Fatal(err)
		}
		if _, err := unix.Wait4(pid, &ws, 0, nil); err != nil || !ws.Signaled() || ws.Signal() != unix.SIGKILL {
			t.Errorf("started %v: the deleted container's process: %v, %v", started, err, ws)
		}
	}
	if _, err := r.call("delete", "--force", "gone"); err != nil {
		t.Errorf("delete --force of a container that is not there: %v", err)
	}
	if des, _ := os.ReadDir(r.root); len(des) != 0 {
		t.Errorf("%d containers left in the state root", len(des))
	}
	for _, c := range [][]string{{"exec", "c"}, {"pause", "c"}, {"resume", "c"}} {
		if _, err := r.call(c...); err == nil || !strings.Contains(err.Error(), "not supported") {
			t.Errorf("%s: %v", c[0], err)
		}
	}
}

// TestSandboxToRunc checks that a pod's sandbox container (a pause
// process, here busybox's sleep) is runc's: created, started, reported,
// killed and deleted through atoll-oci, with runc doing the work.
func TestSandboxToRunc(t *testing.T) {
	testenv.RequireCommands(t, "runc", "busybox")
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	r := newRuntime(t)
	bundle := t.TempDir()
	if out, err := exec.Command("runc", "spec", "--bundle", bundle).CombinedOutput(); err != nil {
		t.Fatalf("runc spec: %v\n%s", err, out)
	}
	busybox, _ := exec.LookPath("busybox")
	os.MkdirAll(filepath.Join(bundle, "rootfs", "bin"), 0o755)
	b, _ := os.ReadFile(busybox)
	os.WriteFile(filepath.Join(bundle, "rootfs", "bin", "busybox"), b, 0o755)
	var s map[string]any
	b, _ = os.ReadFile(filepath.Join(bundle, "config.json"))
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	proc := s["process"].(map[string]any)
	proc["terminal"] = false
	proc["args"] = []string{"/bin/busybox", "sleep", "60"}
	s["annotations"] = map[string]string{"io.kubernetes.cri.container-type": "sandbox"}
	b, _ = json.Marshal(s)
	os.WriteFile(filepath.Join(bundle, "config.json"), b, 0o644)

	pidFile := filepath.Join(t.TempDir(), "pid")
	if _, err := r.call("create", "--bundle", bundle, "--pid-file", pidFile, "pod"); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(pidFile)
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("pid file %q", b)
	}
	if st := r.state("pod"); st.Status != "created" || st.Pid != pid {
		t.Errorf("after create: %+v", st)
	}
	if _, err := r.call("start", "pod"); err != nil {
		t.Fatal(err)
	}
	if st := r.state("pod"); st.Status != "running" {
		t.Errorf("after start: %+v", st)
	}
	if _, err := r.call("kill", "pod", "KILL"); err != nil {
		t.Fatal(err)
	}
	var ws unix.WaitStatus
	if _, err := unix.Wait4(pid, &ws, 0, nil); err != nil || ws.Signal() != unix.SIGKILL {
		t.Errorf("the sandbox's end: %v, %v", err, ws)
	}
	if _, err := r.call("delete", "pod"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(r.root, "pod")); !os.IsNotExist(err) {
		t.Errorf("delete left the container's directory: %v", err)
	}
}

// TestNoKVM checks create on a host without a usable KVM, made in a mount
// namespace of the test's own: /dev/kvm missing (an empty /dev), and a
// device that opens but is not KVM (/dev/null bound over it). Each gets a
// runc-style error, on standard error and in the engine's JSON log, and
// leaves no state directory and no pid file behind.
func TestNoKVM(t *testing.T) {
	testenv.RequireCommands(t, "unshare", "mount")
	if os.Geteuid() != 0 {
		testenv.SkipOrFail(t, "a mount namespace needs root")
	}
	r := newRuntime(t)
	bundle := writeBundle(t, spec{Process: &process{Args: []string{"/hello"}}}, map[string]string{"hello": staticGuest(t)})
	for _, c := range []struct{ name, setup, want string }{
		{"missing", "mount -t tmpfs tmpfs /dev", "/dev/kvm does not exist"},
		{"not KVM", "mount --bind /dev/null /dev/kvm", "unexpected KVM API version"},
	} {
		t.Run(c.name, func(t *testing.T) {
			os.Remove(r.logPath)
			pidFile := filepath.Join(t.TempDir(), "pid")
			cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", c.setup+` && exec "$0" "$@"`,
				r.bin, "--root", r.root, "--log", r.logPath, "--log-format", "json",
				"create", "--bundle", bundle, "--pid-file", pidFile, "nokvm")
			_, stderr, code := testenv.Output(t, cmd)
			if code != 1 || !strings.Contains(stderr, "atoll needs /dev/kvm") || !strings.Contains(stderr, c.want) {
				t.Fatalf("exit status %d, stderr %q; want 1 and %q", code, stderr, c.want)
			}
			b, err := os.ReadFile(r.logPath)
			if err != nil {
				t.Fatal(err)
			}
			var entry struct{ Level, Msg string }
			if err := json.Unmarshal(b, &entry); err != nil || entry.Level != "error" || !strings.Contains(entry.Msg, c.want) {
				t.Errorf("log %q: %v", b, err)
			}
			if _, err := os.Stat(filepath.Join(r.root, "nokvm")); !os.IsNotExist(err) {
				t.Errorf("state directory left: %v", err)
			}
			if _, err := os.Stat(pidFile); !os.IsNotExist(err) {
				t.Errorf("pid file written: %v", err)
			}
		})
	}
}
