package main

import (
	"errors"
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

	"atoll.dev/atoll/internal/testenv"
)

// atollBinary builds the atoll command for tests that need it as a process.
func atollBinary(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "atoll")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build atoll: %v\n%s", err, out)
	}
	return bin
}

func buildTestImage(t *testing.T, atoll, dir, pkg string) string {
	t.Helper()
	img := filepath.Join(dir, filepath.Base(pkg)+".img")
	if out, err := exec.Command(atoll, "build", "-o", img, pkg).CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", pkg, err, out)
	}
	return img
}

// get fetches url, retrying while the unikernel boots.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(url)
		if err == nil {
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil {
				return resp.StatusCode, string(body)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %v", url, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestWWWUserNetwork boots examples/www with a user-mode port forward,
// fetches pages with a real HTTP client, then stops atoll with SIGTERM and
// checks that the guest is shut down and the port is free again.
func TestWWWUserNetwork(t *testing.T) {
	testenv.RequireKVM(t)
	dir := t.TempDir()
	atoll := atollBinary(t, dir)
	img := buildTestImage(t, atoll, dir, "../../examples/www")
	port := testenv.FreePort(t)
	var stderr strings.Builder
	cmd := exec.Command(atoll, "run", "-p", fmt.Sprintf("%d:80", port), img)
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	if code, body := get(t, base+"/"); code != 200 || !strings.Contains(body, "Served by a unikernel") {
		t.Errorf("GET /: %d %q", code, body)
	}
	if code, body := get(t, base+"/style.css"); code != 200 || !strings.Contains(body, "font-family") {
		t.Errorf("GET /style.css: %d %q", code, body)
	}
	if code, body := get(t, base+"/api/hello"); code != 200 || !strings.Contains(body, `"message":"hello from www"`) {
		t.Errorf("GET /api/hello: %d %q", code, body)
	}
	if code, _ := get(t, base+"/missing"); code != 404 {
		t.Errorf("GET /missing: %d, want 404", code)
	}
	// A connection flood — idle connections and half-sent requests — must
	// not stop the unikernel serving.
	var flood []net.Conn
	for i := 0; i < 300; i++ {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 5*time.Second)
		if err != nil {
			break
		}
		if i%2 == 0 {
			io.WriteString(c, "GET /api/hello HTTP/1.1\r\nHost: x\r\n") // never finished
		}
		flood = append(flood, c)
	}
	if code, body := get(t, base+"/api/hello"); code != 200 || !strings.Contains(body, "hello from www") {
		t.Errorf("during a flood of %d connections: %d %q", len(flood), code, body)
	}
	for _, c := range flood {
		c.Close()
	}
	if code, _ := get(t, base+"/"); code != 200 {
		t.Errorf("after the flood: %d", code)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 128+15 {
			t.Errorf("after SIGTERM: %v, want exit status 143\nstderr: %s", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("atoll did not stop within 10s of SIGTERM")
	}
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatalf("port %d still taken after atoll stopped: %v", port, err)
	}
	ln.Close()
}

// TestGoTestExec runs a package's own test binary as a unikernel with
// `go test -exec "atoll run"`: a test binary is a static Go program too.
func TestGoTestExec(t *testing.T) {
	testenv.RequireKVM(t)
	dir := t.TempDir()
	atoll := atollBinary(t, dir)
	cmd := exec.Command("go", "test", "-count=1", "-v", "-run", "TestParseErrors|TestSizes", "-exec", atoll+" run", "../../manifest")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestParseErrors") || !strings.Contains(string(out), "ok  \tatoll.dev/atoll/manifest") {
		t.Fatalf("go test -exec: %v\n%s", err, out)
	}
}

// TestWWWDHCP boots www asking for its address with DHCP from the user
// network's server, and serves through the port forward.
func TestWWWDHCP(t *testing.T) {
	testenv.RequireKVM(t)
	dir := t.TempDir()
	atoll := atollBinary(t, dir)
	img := buildTestImage(t, atoll, dir, "../../examples/www")
	port := testenv.FreePort(t)
	cmd := exec.Command(atoll, "run", "--net", "service=user,ip=dhcp", "-p", fmt.Sprintf("%d:80", port), img)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	if code, body := get(t, fmt.Sprintf("http://127.0.0.1:%d/api/hello", port)); code != 200 || !strings.Contains(body, "hello from www") {
		t.Fatalf("%d %q", code, body)
	}
}

// TestWWWAsProcess runs the www image as a plain process: the same code on
// the host's sockets.
func TestWWWAsProcess(t *testing.T) {
	dir := t.TempDir()
	img := buildTestImage(t, atollBinary(t, dir), dir, "../../examples/www")
	port := testenv.FreePort(t)
	cmd := exec.Command(img, "-addr", fmt.Sprintf("127.0.0.1:%d", port))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	if code, body := get(t, fmt.Sprintf("http://127.0.0.1:%d/api/hello", port)); code != 200 || !strings.Contains(body, "hello from") {
		t.Fatalf("%d %q", code, body)
	}
}

// netns is a network namespace made for one test.
type netns string

func newNetns(t *testing.T) netns {
	t.Helper()
	if os.Getuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("tap tests must run in CI, which runs as root")
		}
		t.Skip("tap tests need root to make a network namespace")
	}
	testenv.RequireCommands(t, "ip")
	ns := netns(fmt.Sprintf("atoll-test-%d", os.Getpid()))
	exec.Command("ip", "netns", "del", string(ns)).Run()
	if out, err := exec.Command("ip", "netns", "add", string(ns)).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", string(ns)).Run() })
	ns.run(t, "ip", "link", "set", "lo", "up")
	return ns
}

func (ns netns) command(args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", string(ns)}, args...)...)
}

func (ns netns) run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := ns.command(args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestTapTwoUnikernels bridges two tap devices in a network namespace,
// boots www on one and reaches it with ping and HTTP from the namespace,
// then boots a second unikernel on the other tap that fetches from the
// first: two unikernels talking over real L2.
func TestTapTwoUnikernels(t *testing.T) {
	testenv.RequireKVM(t)
	testenv.RequireCommands(t, "ip", "ping", "curl")
	ns := newNetns(t)
	dir := t.TempDir()
	atoll := atollBinary(t, dir)
	www := buildTestImage(t, atoll, dir, "../../examples/www")
	fetch := buildTestImage(t, atoll, dir, "../../internal/testguests/fetch")
	ns.run(t, "ip", "link", "add", "br0", "type", "bridge")
	ns.run(t, "ip", "addr", "add", "10.77.0.1/24", "dev", "br0")
	ns.run(t, "ip", "link", "set", "br0", "up")
	for _, tap := range []string{"tap0", "tap1"} {
		ns.run(t, "ip", "tuntap", "add", tap, "mode", "tap")
		ns.run(t, "ip", "link", "set", tap, "master", "br0")
		ns.run(t, "ip", "link", "set", tap, "up")
	}
	server := ns.command(atoll, "run", "--net", "service=tap:tap0,ip=10.77.0.2/24,gw=10.77.0.1", www)
	var serverErr strings.Builder
	server.Stderr = &serverErr
	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { server.Process.Signal(syscall.SIGTERM); server.Wait() }()

	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := ns.command("curl", "-s", "-m", "5", "http://10.77.0.2/api/hello").Output()
		if err == nil && strings.Contains(string(out), "hello from www") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("curl from the namespace: %v %q\nserver stderr: %s", err, out, serverErr.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if out, err := ns.command("ping", "-c", "2", "-W", "2", "10.77.0.2").CombinedOutput(); err != nil {
		t.Errorf("ping the unikernel: %v\n%s", err, out)
	}
	// Hostile traffic: thousands of malformed, truncated and oversized
	// frames at the unikernel's MAC and at broadcast; it must keep serving.
	mac := strings.Fields(ns.run(t, "ip", "neigh", "show", "10.77.0.2"))
	var dst string
	for i, f := range mac {
		if f == "lladdr" && i+1 < len(mac) {
			dst = mac[i+1]
		}
	}
	if dst == "" {
		t.Fatalf("no neighbour entry for the unikernel: %v", mac)
	}
	spray := filepath.Join(dir, "framespray")
	if out, err := exec.Command("go", "build", "-o", spray, "../../internal/testtools/framespray").CombinedOutput(); err != nil {
		t.Fatalf("build framespray: %v\n%s", err, out)
	}
	t.Log(ns.run(t, spray, "br0", dst, "5000", "1"))
	if out, err := ns.command("curl", "-s", "-m", "10", "http://10.77.0.2/api/hello").Output(); err != nil || !strings.Contains(string(out), "hello from www") {
		t.Fatalf("after hostile frames: %v %q\nserver stderr: %s", err, out, serverErr.String())
	}
	out, err := ns.command(atoll, "run", "--net", "service=tap:tap1,ip=10.77.0.3/24,gw=10.77.0.1", fetch, "--", "http://10.77.0.2/api/hello").CombinedOutput()
	if err != nil || !strings.Contains(string(out), `200 {"message":"hello from www"`) {
		t.Fatalf("unikernel to unikernel: %v\n%s", err, out)
	}
}
