package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"atoll.dev/atoll/internal/testenv"
)

// podman runs podman with the test's configuration: atoll-oci as the
// runtime named atoll (listed as taking --log-format json), runc as the
// default, and this machine's limits (docs/kubernetes.md).
type podman struct {
	t    *testing.T
	conf string
}

func newPodman(t *testing.T, runtime string) podman {
	t.Helper()
	conf := filepath.Join(t.TempDir(), "containers.conf")
	c := fmt.Sprintf(`[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
runtime_supports_json = ["runc", "atoll"]

[engine.runtimes]
atoll = [%q]
`, runtime)
	if err := os.WriteFile(conf, []byte(c), 0o644); err != nil {
		t.Fatal(err)
	}
	return podman{t, conf}
}

func (p podman) run(args ...string) (stdout, stderr string, code int) {
	p.t.Helper()
	cmd := exec.Command("podman", args...)
	cmd.Env = append(os.Environ(), "CONTAINERS_CONF="+p.conf)
	return testenv.Output(p.t, cmd)
}

func (p podman) must(args ...string) string {
	p.t.Helper()
	o, e, code := p.run(args...)
	if code != 0 {
		p.t.Fatalf("podman %s: exit %d\n%s%s", strings.Join(args, " "), code, o, e)
	}
	return o
}

// TestPodman runs unikernels with podman through atoll-oci, from images
// atoll build --oci made and podman load loaded: output and exit status
// are the guest's; a web server started detached with a published port
// answers, and podman stop stops it within its timeout; a memory hog
// under --memory dies of the limit; nothing is left behind.
func TestPodman(t *testing.T) {
	testenv.RequireKVM(t)
	testenv.RequireCommands(t, "podman", "runc", "curl")
	r := newRuntime(t)
	p := newPodman(t, r.bin)
	atoll := filepath.Join(filepath.Dir(r.bin), "atoll")
	tag := fmt.Sprintf("atoll-test-%d", os.Getpid())
	images := map[string]string{}
	for name, pkg := range map[string]string{"hello": "../../examples/hello", "www": "../../examples/www",
		"exitcode": "../../internal/testguests/exitcode", "memlimit": "../../internal/testguests/memlimit"} {
		archive := filepath.Join(t.TempDir(), name+".tar")
		ref := "localhost/" + tag + "-" + name + ":latest"
		if out, err := exec.Command(atoll, "build", "--oci", archive, "--tag", ref, pkg).CombinedOutput(); err != nil {
			t.Fatalf("atoll build --oci %s: %v\n%s", pkg, err, out)
		}
		if o := p.must("load", "-i", archive); !strings.Contains(o, ref) {
			t.Errorf("podman load: %q, want %s", o, ref)
		}
		images[name] = ref
	}
	defer func() {
		p.run("rm", "-f", tag+"-web")
		for _, ref := range images {
			p.run("rmi", "-f", ref)
		}
	}()
	if o := p.must("image", "inspect", "--format", "{{index .Labels \"dev.atoll.abi\"}}", images["www"]); strings.TrimSpace(o) == "" {
		t.Error("the image has no dev.atoll.abi label")
	}

	if o := p.must("run", "--rm", "--runtime", "atoll", images["hello"]); !strings.Contains(o, "hello from hello") {
		t.Errorf("podman run hello: %q", o)
	}
	if _, _, code := p.run("run", "--rm", "--runtime", "atoll", images["exitcode"], "7"); code != 7 {
		t.Errorf("podman run exitcode 7: exit %d", code)
	}

	port := testenv.FreePort(t)
	web := tag + "-web"
	p.must("run", "-d", "--name", web, "--runtime", "atoll", "-p", fmt.Sprintf("%d:80", port), images["www"])
	body, err := testenv.WaitGet(fmt.Sprintf("http://127.0.0.1:%d/", port), 30*time.Second)
	if err != nil {
		logs, _, _ := p.run("logs", web)
		t.Fatalf("www through podman's port: %v\n%s", err, logs)
	}
	if !strings.Contains(body, "unikernel") {
		t.Errorf("www answered %q", body)
	}
	start := time.Now()
	p.must("stop", "-t", "5", web)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("podman stop took %v, past its 5 s timeout", d)
	}
	if o := strings.TrimSpace(p.must("inspect", "--format", "{{.State.ExitCode}}", web)); o != "143" {
		t.Errorf("the stopped web server's exit code %s, want 143 (SIGTERM)", o)
	}
	if o, e, _ := p.run("logs", web); !strings.Contains(e, "stopped www (SIGTERM)") || !strings.Contains(e, "www: serving on") {
		t.Errorf("podman logs: stdout %q, stderr %q", o, e) // the guest's standard error, and atoll's
	}
	p.must("rm", web)

	_, e, code := p.run("run", "--rm", "--runtime", "atoll", "--memory", "64m", images["memlimit"], "hog")
	if code != 137 || !strings.Contains(e, "guest out of memory") {
		t.Errorf("a hog under --memory 64m: exit %d, stderr %q", code, e)
	}

	// Nothing left: no container state, no process of this test's atoll.
	if des, _ := os.ReadDir("/run/atoll-oci"); len(des) != 0 {
		var names []string
		for _, d := range des {
			names = append(names, d.Name())
		}
		t.Errorf("containers left in /run/atoll-oci: %v", names)
	}
	time.Sleep(500 * time.Millisecond) // conmon's cleanup
	if ps := testenv.ProcessesMentioning(t, filepath.Dir(r.bin)); len(ps) != 0 {
		t.Errorf("processes left: %v", ps)
	}
}

// TestContainerd runs unikernels through containerd's runc shim with
// atoll-oci as its runc binary, as a Kubernetes RuntimeClass does
// (docs/kubernetes.md), on a containerd of the test's own: images from
// atoll build --oci imported with ctr, output and exit status the
// guest's.
func TestContainerd(t *testing.T) {
	testenv.RequireKVM(t)
	testenv.RequireCommands(t, "containerd", "ctr")
	r := newRuntime(t)
	atoll := filepath.Join(filepath.Dir(r.bin), "atoll")
	dir, err := os.MkdirTemp("", "atoll-containerd-") // short: the socket's path has a length limit
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "sock")
	d := exec.Command("containerd", "--root", filepath.Join(dir, "root"), "--state", filepath.Join(dir, "state"), "--address", sock)
	logf, _ := os.Create(filepath.Join(dir, "log"))
	defer logf.Close()
	d.Stdout, d.Stderr = logf, logf
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { d.Process.Kill(); d.Wait() }()
	ctr := func(args ...string) (string, int) {
		t.Helper()
		cmd := exec.Command("ctr", append([]string{"--address", sock}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil && cmd.ProcessState == nil {
			t.Fatal(err)
		}
		return string(out), cmd.ProcessState.ExitCode()
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if _, code := ctr("version"); code == 0 {
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("containerd did not start:\n%s", b)
		}
	}
	for name, pkg := range map[string]string{"hello": "../../examples/hello", "exitcode": "../../internal/testguests/exitcode"} {
		archive := filepath.Join(dir, name+".tar")
		if out, err := exec.Command(atoll, "build", "--oci", archive, pkg).CombinedOutput(); err != nil {
			t.Fatalf("atoll build --oci: %v\n%s", err, out)
		}
		if out, code := ctr("image", "import", archive); code != 0 {
			t.Fatalf("ctr image import: %s", out)
		}
	}
	run := []string{"run", "--rm", "--runtime", "io.containerd.runc.v2", "--runc-binary", r.bin}
	if out, code := ctr(append(run, "localhost/hello:latest", "h1")...); code != 0 || !strings.Contains(out, "hello from hello") {
		t.Errorf("ctr run hello: exit %d\n%s", code, out)
	}
	if out, code := ctr(append(run, "localhost/exitcode:latest", "e1", "/exitcode", "7")...); code != 7 {
		t.Errorf("ctr run exitcode 7: exit %d\n%s", code, out)
	}
	if out, _ := ctr("containers", "ls", "-q"); strings.TrimSpace(out) != "" {
		t.Errorf("containers left: %s", out)
	}
}
