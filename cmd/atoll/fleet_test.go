package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"atoll.dev/atoll/internal/testenv"
)

// fleet runs atoll commands against one state directory, each as a
// process of its own, as a user at a shell would.
type fleet struct {
	t            *testing.T
	atoll, state string
}

func (f fleet) run(args ...string) (stdout, stderr string, code int) {
	f.t.Helper()
	cmd := exec.Command(f.atoll, args...)
	cmd.Env = append(os.Environ(), stateEnv+"="+f.state)
	return testenv.Output(f.t, cmd)
}

func (f fleet) must(args ...string) string {
	f.t.Helper()
	o, e, code := f.run(args...)
	if code != 0 {
		f.t.Fatalf("atoll %s: exit %d\n%s%s", strings.Join(args, " "), code, o, e)
	}
	return o
}

// ps returns each unikernel's ps line, by name.
func (f fleet) ps() map[string]string {
	f.t.Helper()
	lines := strings.Split(strings.TrimSpace(f.must("ps")), "\n")
	if !strings.HasPrefix(lines[0], "NAME") {
		f.t.Fatalf("ps: no header:\n%s", strings.Join(lines, "\n"))
	}
	m := map[string]string{}
	for _, l := range lines[1:] {
		m[strings.Fields(l)[0]] = l
	}
	return m
}

// waitStatus waits until ps says name's status starts with want.
func (f fleet) waitStatus(name, want string) string {
	f.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		l := f.ps()[name]
		if fs := strings.Fields(l); len(fs) > 2 && strings.HasPrefix(strings.Join(fs[2:], " "), want) {
			return l
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("%s is not %q: %q\n%s", name, want, l, f.must("logs", name))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestFleet drives the local fleet end to end: three unikernels started
// detached (a web server, one that exits, one that crashes and is
// restarted twice), ps, logs, logs -f, stop and rm, each command a process
// of its own; bad requests; and nothing left behind.
func TestFleet(t *testing.T) {
	testenv.RequireKVM(t)
	dir := t.TempDir()
	f := fleet{t: t, atoll: atollBinary(t, dir), state: filepath.Join(dir, "state")}
	www := buildTestImage(t, f.atoll, dir, "../../examples/www")
	hello := buildTestImage(t, f.atoll, dir, "../../examples/hello")
	crash := filepath.Join(dir, "crash")
	if out, err := exec.Command("go", "build", "-o", crash, "../../internal/testguests/crash").CombinedOutput(); err != nil {
		t.Fatalf("build crash: %v\n%s", err, out)
	}
	port := testenv.FreePort(t)
	defer func() { // nothing left running, whatever failed
		for _, n := range []string{"www", "hi", "boom", "w2"} {
			f.run("rm", "-f", n)
		}
	}()

	if o := f.must("run", "-d", "-p", fmt.Sprintf("%d:80", port), www); o != "www\n" {
		t.Errorf("run -d printed %q, want the manifest's name", o)
	}
	f.must("run", "-d", "--name", "hi", hello)
	f.must("run", "-d", "--name", "boom", "--restart", "on-failure:2", crash)

	l := f.waitStatus("www", "running")
	if !strings.Contains(l, fmt.Sprintf("%d:80", port)) || !strings.Contains(l, "M/256M") || !strings.Contains(l, www) {
		t.Errorf("ps line for www: %q", l)
	}
	if code, body := get(t, fmt.Sprintf("http://127.0.0.1:%d/", port)); code != 200 || !strings.Contains(body, "unikernel") {
		t.Errorf("www answered %d %q", code, body)
	}
	f.waitStatus("hi", "exited (0)")
	if l := f.waitStatus("boom", "crashed (exit 139)"); !strings.Contains(l, "-/") {
		t.Errorf("a crashed unikernel shows memory: %q", l)
	}
	if o := f.must("logs", "hi"); !strings.Contains(o, "hello from hello") {
		t.Errorf("logs hi: %q", o)
	}
	o := f.must("logs", "boom")
	if strings.Count(o, "guest crashed") != 3 || !strings.Contains(o, "restart 2") || strings.Contains(o, "restart 3") {
		t.Errorf("logs boom: want three crashes and two restarts:\n%s", o)
	}

	// Bad requests, refused with a reason and changing nothing.
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"run", "-d", www}, exitFailure, "a unikernel named www exists"},
		{[]string{"run", "-d", "--name", "../x", hello}, exitUsage, "bad unikernel name"},
		{[]string{"run", "-d", "--restart", "sometimes", hello}, exitUsage, "bad --restart"},
		{[]string{"run", "--name", "x", hello}, exitUsage, "for -d"},
		{[]string{"rm", "www"}, exitFailure, "www is running"},
		{[]string{"stop", "nope"}, exitFailure, "no unikernel named nope"},
		{[]string{"logs", "nope"}, exitFailure, "no unikernel named nope"},
	} {
		if _, e, code := f.run(c.args...); code != c.code || !strings.Contains(e, c.want) {
			t.Errorf("atoll %s: exit %d, %q; want %d and %q", strings.Join(c.args, " "), code, e, c.code, c.want)
		}
	}
	// A unikernel that fails as it starts is reported at once.
	if _, e, code := f.run("run", "-d", "--name", "clash", "-p", fmt.Sprintf("%d:80", port), www); code != exitFailure || !strings.Contains(e, "address already in use") {
		t.Errorf("a port in use: exit %d, %q", code, e)
	}
	f.must("rm", "clash")

	// logs -f follows until the unikernel ends.
	f.must("run", "-d", "--name", "w2", www)
	f.waitStatus("w2", "running")
	follow := exec.Command(f.atoll, "logs", "-f", "w2")
	follow.Env = append(os.Environ(), stateEnv+"="+f.state)
	var followed strings.Builder
	follow.Stdout = &followed
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if o := f.must("stop", "-t", "5", "w2", "www"); o != "w2\nwww\n" {
		t.Errorf("stop printed %q", o)
	}
	done := make(chan error)
	go func() { done <- follow.Wait() }()
	select {
	case err := <-done:
		if err != nil || !strings.Contains(followed.String(), "stopped www (SIGTERM)") {
			t.Errorf("logs -f: %v, %q", err, followed.String())
		}
	case <-time.After(10 * time.Second):
		follow.Process.Kill()
		t.Error("logs -f did not end with the unikernel")
	}
	f.waitStatus("www", "stopped (exit 143)")
	if ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err != nil {
		t.Errorf("the stopped unikernel's port: %v", err)
	} else {
		ln.Close()
	}

	// rm cleans up: no entries, no files, no processes of this atoll.
	f.must("rm", "www", "hi", "boom", "w2")
	if m := f.ps(); len(m) != 0 {
		t.Errorf("ps after rm: %v", m)
	}
	if des, _ := os.ReadDir(f.state); len(des) != 0 {
		t.Errorf("the state directory holds %d entries after rm", len(des))
	}
	if ps := testenv.ProcessesMentioning(t, dir); len(ps) != 0 {
		t.Errorf("processes left: %v", ps)
	}
}
