package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"atoll.dev/atoll/internal/testenv"
)

// stocknet is the unchanged network program of internal/testguests/
// stocknet, built once as a plain static executable.
type stocknet struct {
	atoll, bin, dir string
}

func newStocknet(t *testing.T) stocknet {
	t.Helper()
	dir := t.TempDir()
	s := stocknet{atoll: atollBinary(t, dir), bin: filepath.Join(dir, "stocknet"), dir: dir}
	cmd := exec.Command("go", "build", "-o", s.bin, "../../internal/testguests/stocknet")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build stocknet: %v\n%s", err, out)
	}
	return s
}

// result is how a run ended.
type result struct {
	stdout, stderr string
	code           int
}

// runCmd runs cmd to the end, within a minute.
func runCmd(t *testing.T, cmd *exec.Cmd) result {
	t.Helper()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		cmd.Process.Kill()
		<-done
		t.Fatalf("%v did not finish within a minute\nstdout: %s\nstderr: %s", cmd.Args, out.String(), errb.String())
	}
	return result{out.String(), errb.String(), cmd.ProcessState.ExitCode()}
}

// native runs the program as a process; vm runs it under atoll run with
// the flags given.
func (s stocknet) native(t *testing.T, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(s.bin, args...)
	cmd.Env = append(os.Environ(), env...)
	return runCmd(t, cmd)
}

func (s stocknet) vm(t *testing.T, flags []string, args ...string) result {
	t.Helper()
	return runCmd(t, exec.Command(s.atoll, append(append(append([]string{"run"}, flags...), s.bin, "--"), args...)...))
}

// same checks that the unikernel printed what the process did.
func same(t *testing.T, what string, nat, vm result) {
	t.Helper()
	if nat.code != 0 || vm.code != 0 || nat.stdout != vm.stdout {
		t.Errorf("%s: native (exit %d):\n%s%s\natoll (exit %d):\n%s%s", what, nat.code, nat.stdout, nat.stderr, vm.code, vm.stdout, vm.stderr)
	}
}

// start starts cmd and waits for its first line of output, "listening".
func start(t *testing.T, cmd *exec.Cmd) *bufio.Reader {
	t.Helper()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	r := bufio.NewReader(out)
	line := make(chan string, 1)
	go func() { l, _ := r.ReadString('\n'); line <- l }()
	select {
	case l := <-line:
		if l != "listening\n" {
			t.Fatalf("%v: %q\n%s", cmd.Args, l, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("%v: not listening after 30 s\n%s", cmd.Args, stderr.String())
	}
	return r
}

// lockedBuffer is a bytes.Buffer safe to read while a command writes it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// curl fetches url with curl.
func curl(t *testing.T, url string) string {
	t.Helper()
	out, err := exec.Command("curl", "-sS", "--max-time", "20", url).CombinedOutput()
	if err != nil {
		t.Errorf("curl %s: %v\n%s", url, err, out)
	}
	return string(out)
}

// TestHostNetwork runs an unchanged net/http and net program on the host
// backend and natively, with real clients and servers on the host.
func TestHostNetwork(t *testing.T) {
	testenv.RequireKVM(t)
	testenv.RequireCommands(t, "curl")
	s := newStocknet(t)

	t.Run("serve", func(t *testing.T) {
		natPort, vmPort := testenv.FreePort(t), testenv.FreePort(t)
		start(t, exec.Command(s.bin, "serve", fmt.Sprintf("127.0.0.1:%d", natPort)))
		start(t, exec.Command(s.atoll, "run", "-p", fmt.Sprintf("%d:80", vmPort), s.bin, "--", "serve", ":80"))
		for _, path := range []string{"/", "/a/b?c=d"} {
			nat := curl(t, fmt.Sprintf("http://127.0.0.1:%d%s", natPort, path))
			vm := curl(t, fmt.Sprintf("http://127.0.0.1:%d%s", vmPort, path))
			if nat != vm || !strings.HasPrefix(vm, "hello from GET") {
				t.Errorf("GET %s: native %q, atoll %q", path, nat, vm)
			}
		}
	})

	t.Run("get", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "host server saw %s", r.URL.Path)
		}))
		defer srv.Close()
		port := srv.Listener.Addr().(*net.TCPAddr).Port
		nat := s.native(t, nil, "get", fmt.Sprintf("http://127.0.0.1:%d/x", port))
		vm := s.vm(t, []string{"--net", "host"}, "get", fmt.Sprintf("http://10.0.2.2:%d/x", port))
		same(t, "http.Get of a host server", nat, vm)
	})

	t.Run("selftest", func(t *testing.T) {
		env := []string{"STOCKNET_LINGER_MS=2000"}
		nat := s.native(t, env, "selftest")
		cmd := exec.Command(s.atoll, "run", "--net", "host,outbound=none", "-e", env[0], s.bin, "--", "selftest")
		var out bytes.Buffer
		var errb lockedBuffer // read while the command writes it
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// While the guest's server is up, try its address from the host.
		var addr string
		for deadline := time.Now().Add(30 * time.Second); addr == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if _, a, ok := strings.Cut(errb.String(), "server "); ok && strings.HasSuffix(a, "\n") {
				addr = strings.TrimSpace(a)
			}
		}
		if !strings.HasPrefix(addr, "127.0.0.1:") {
			t.Errorf("the guest's httptest server is at %q", addr)
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.SetDeadline(time.Now().Add(2 * time.Second))
			fmt.Fprintf(c, "GET /inside HTTP/1.0\r\n\r\n")
			got, _ := io.ReadAll(c)
			c.Close()
			if strings.Contains(string(got), "hello from GET /inside") {
				t.Errorf("the host reached the guest's loopback server at %s", addr)
			}
		}
		cmd.Wait()
		same(t, "httptest inside", nat, result{out.String(), errb.String(), cmd.ProcessState.ExitCode()})
	})

	t.Run("udp", func(t *testing.T) {
		// Guest to host, through the gateway.
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		go func() {
			buf := make([]byte, 1500)
			for {
				n, from, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				pc.WriteTo(bytes.ToUpper(buf[:n]), from)
			}
		}()
		port := pc.LocalAddr().(*net.UDPAddr).Port
		nat := s.native(t, nil, "udpsend", fmt.Sprintf("127.0.0.1:%d", port), "hello")
		vm := s.vm(t, []string{"--net", "host"}, "udpsend", fmt.Sprintf("10.0.2.2:%d", port), "hello")
		same(t, "UDP to the host", nat, vm)

		// Host to guest, through a forward.
		hp := testenv.FreePort(t)
		cmd := exec.Command(s.atoll, "run", "-p", fmt.Sprintf("%d:5353/udp", hp), s.bin, "--", "udpecho", ":5353")
		start(t, cmd)
		c, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", hp))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		buf := make([]byte, 100)
		for _, m := range []string{"ping", "quit"} {
			c.Write([]byte(m))
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			n, err := c.Read(buf)
			if want := map[string]string{"ping": "PING", "quit": "bye"}[m]; err != nil || string(buf[:n]) != want {
				t.Errorf("%s: %q %v, want %q", m, buf[:n], err, want)
			}
		}
	})

	t.Run("lookup", func(t *testing.T) {
		addr := dnsServer(t)
		nat := s.native(t, []string{"STOCKNET_RESOLVER=" + addr}, "lookup", "svc.atoll.test")
		if !strings.Contains(nat.stdout, "host: [192.0.2.10 2001:db8::10] ok") {
			t.Fatalf("native lookup:\n%s%s", nat.stdout, nat.stderr)
		}
		host := s.vm(t, []string{"--dns", addr, "--net", "host"}, "lookup", "svc.atoll.test")
		same(t, "lookups on the host backend", nat, host)
		user := runCmd(t, exec.Command(s.atoll, "run", "--dns", addr, "../../internal/testguests/stocknet", "--", "lookup", "svc.atoll.test"))
		same(t, "lookups on the user backend", nat, user)
		none := s.vm(t, []string{"--dns", addr, "--net", "host,outbound=none"}, "lookup", "svc.atoll.test")
		if none.code != 0 || strings.Contains(none.stdout, "192.0.2.10") {
			t.Errorf("outbound=none still resolved:\n%s%s", none.stdout, none.stderr)
		}
	})

	t.Run("policy", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		hostAddr := fmt.Sprintf("10.0.2.2:%d", ln.Addr().(*net.TCPAddr).Port)
		for _, c := range []struct {
			flags []string
			args  []string
			want  string
		}{
			{[]string{"-p", fmt.Sprintf("%d:80", testenv.FreePort(t))}, []string{"listen", ":81"}, "listen: permission denied\n"},
			{[]string{"--net", "host"}, []string{"listen", "127.0.0.1:81"}, "listening\n"},
			{[]string{"--net", "host"}, []string{"dial", hostAddr}, "connected\n"},
			{[]string{"--net", "host,outbound=noloopback"}, []string{"dial", hostAddr}, "dial: permission denied within a second: true\n"},
			{[]string{"--net", "host,outbound=none"}, []string{"dial", hostAddr}, "dial: permission denied within a second: true\n"},
			{[]string{"--net", "host,outbound=none"}, []string{"dial", "192.0.2.1:80"}, "dial: permission denied within a second: true\n"},
			{[]string{"--net", "host"}, []string{"dial", "127.0.0.1:1"}, "dial: connection refused within a second: true\n"},
			{nil, []string{"dial", hostAddr}, "dial: address family not supported by protocol within a second: true\n"},
		} {
			if got := s.vm(t, c.flags, c.args...); got.stdout != c.want {
				t.Errorf("atoll run %v ... %v: %q, want %q\n%s", c.flags, c.args, got.stdout, c.want, got.stderr)
			}
		}
	})
}

// TestWWWHostBackend boots the examples/www image, built for the user
// backend, on the host backend instead: atoll.Net gives it the standard
// library's sockets, and it serves through the forward the same.
func TestWWWHostBackend(t *testing.T) {
	testenv.RequireKVM(t)
	dir := t.TempDir()
	atoll := atollBinary(t, dir)
	img := buildTestImage(t, atoll, dir, "../../examples/www")
	port := testenv.FreePort(t)
	cmd := exec.Command(atoll, "run", "--net", "service=host", "-p", fmt.Sprintf("%d:80", port), img)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	if code, body := get(t, fmt.Sprintf("http://127.0.0.1:%d/api/hello", port)); code != 200 || !strings.Contains(body, "hello from www") {
		t.Errorf("GET /api/hello: %d %q", code, body)
	}
}

// TestUserLoopbackFails: on the user network, a client's connection to the
// guest's own loopback, where nothing listens, fails at once rather than
// waiting out its timeout (it used to travel to the gateway and vanish),
// and nothing of gVisor's reaches the terminal.
func TestUserLoopbackFails(t *testing.T) {
	testenv.RequireKVM(t)
	dir := t.TempDir()
	atoll := atollBinary(t, dir)
	img := buildTestImage(t, atoll, dir, "../../internal/testguests/fetch")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	begin := time.Now()
	r := runCmd(t, exec.CommandContext(ctx, atoll, "run", img, "--", "http://127.0.0.1:1/"))
	// Boot included: the dial itself is refused in milliseconds.
	if r.code == 0 || !strings.Contains(r.stdout, "refused") || time.Since(begin) > 5*time.Second {
		t.Errorf("fetch of 127.0.0.1:1 on the user network: exit %d after %v\n%s%s", r.code, time.Since(begin), r.stdout, r.stderr)
	}
	if strings.Contains(r.stderr, "artian") || strings.Contains(r.stderr, "gvisor") {
		t.Errorf("gVisor logged:\n%s", r.stderr)
	}
}

// dnsServer serves svc.atoll.test on the host's loopback, over UDP and TCP
// at one port, and returns its address.
func dnsServer(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := pc.LocalAddr().(*net.UDPAddr).Port
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		pc.Close()
		t.Skipf("TCP port %d, for the DNS server, is taken: %v", port, err)
	}
	mux := dns.NewServeMux()
	mux.HandleFunc("atoll.test.", func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		m.Authoritative = true
		q := req.Question[0]
		rrs := map[uint16][]string{
			dns.TypeA:    {"svc.atoll.test. 60 IN A 192.0.2.10"},
			dns.TypeAAAA: {"svc.atoll.test. 60 IN AAAA 2001:db8::10"},
			dns.TypeTXT:  {`svc.atoll.test. 60 IN TXT "v=atoll" "second"`},
		}
		switch {
		case q.Name == "svc.atoll.test.":
			for _, s := range rrs[q.Qtype] {
				rr, _ := dns.NewRR(s)
				m.Answer = append(m.Answer, rr)
			}
		case q.Name == "_http._tcp.svc.atoll.test." && q.Qtype == dns.TypeSRV:
			for _, s := range []string{"_http._tcp.svc.atoll.test. 60 IN SRV 10 5 8080 web.atoll.test.", "_http._tcp.svc.atoll.test. 60 IN SRV 20 1 8081 backup.atoll.test."} {
				rr, _ := dns.NewRR(s)
				m.Answer = append(m.Answer, rr)
			}
		default:
			m.Rcode = dns.RcodeNameError
		}
		w.WriteMsg(m)
	})
	udp := &dns.Server{PacketConn: pc, Handler: mux}
	tcp := &dns.Server{Listener: ln, Handler: mux}
	go udp.ActivateAndServe()
	go tcp.ActivateAndServe()
	t.Cleanup(func() { udp.Shutdown(); tcp.Shutdown() })
	return pc.LocalAddr().String()
}
