package hostile

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"atoll.dev/atoll/internal/testenv"
)

const testZone = `$ORIGIN bench.example.
$TTL 3600
@ IN SOA ns.bench.example. hostmaster.bench.example. 1 7200 3600 1209600 3600
@ IN NS ns
ns IN A 192.0.2.53
h001 IN A 192.0.2.1
h001 IN AAAA 2001:db8::1
h002 IN A 192.0.2.2
mx001 IN MX 10 h001
t001 IN TXT "v=bench record 1"
`

var probeA = Probe{
	Name:   "h001.bench.example.",
	Type:   dns.TypeA,
	Rcode:  dns.RcodeSuccess,
	Answer: []string{"h001.bench.example. 3600 IN A 192.0.2.1"},
}

// startNSD starts NSD in the foreground, one server process, serving
// testZone on a free port of 127.0.0.1, and returns its address once it
// answers, and a function that stops it (called when the test ends too).
func startNSD(t *testing.T) (addr string, stop func()) {
	t.Helper()
	testenv.RequireCommands(t, "nsd")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "bench.example.zone"), []byte(testZone), 0o644); err != nil {
		t.Fatal(err)
	}
	addr = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	conf := fmt.Sprintf(`server:
	ip-address: %s
	server-count: 1
	username: ""
	chroot: ""
	zonesdir: "%[2]s"
	database: ""
	zonelistfile: "%[2]s/zone.list"
	xfrdfile: "%[2]s/xfrd.state"
	xfrdir: "%[2]s"
	pidfile: "%[2]s/nsd.pid"
	logfile: "%[2]s/nsd.log"
	verbosity: 1
	rrl-ratelimit: 0
remote-control:
	control-enable: no
zone:
	name: bench.example
	zonefile: bench.example.zone
`, strings.Replace(addr, ":", "@", 1), dir)
	confPath := filepath.Join(dir, "nsd.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd := exec.Command("nsd", "-d", "-c", confPath)
	cmd.Stdout, cmd.Stderr = &out, &out
	// Its own process group: NSD forks a server and a transfer process.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	}
	t.Cleanup(stop)
	q := new(dns.Msg)
	q.SetQuestion(probeA.Name, probeA.Type)
	c := &dns.Client{Timeout: 200 * time.Millisecond}
	for deadline := time.Now().Add(10 * time.Second); ; {
		if _, _, err := c.Exchange(q, addr); err == nil {
			return addr, stop
		}
		select {
		case err := <-done:
			log, _ := os.ReadFile(filepath.Join(dir, "nsd.log"))
			t.Fatalf("nsd exited: %v\n%s%s", err, out.Bytes(), log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nsd did not answer on %s within 10 s\n%s", addr, out.Bytes())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestRunNSD(t *testing.T) {
	addr, _ := startNSD(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	res, err := Run(ctx, Config{Addr: addr, Seed: 1, Packets: 5000, Probe: probeA})
	t.Logf("%v in %v", res, time.Since(start).Round(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Sent) != len(Kinds()) {
		t.Errorf("%d kinds sent, want all %d", len(res.Sent), len(Kinds()))
	}
	if res.Probes < 4 {
		t.Errorf("%d probes answered, want at least the 4 before and after", res.Probes)
	}
	if res.UDPReplies == 0 || res.TCPReplies == 0 {
		t.Errorf("no replies to hostile packets (UDP %d, TCP %d): were they sent?", res.UDPReplies, res.TCPReplies)
	}
}

func TestRunServerDies(t *testing.T) {
	addr, stop := startNSD(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	type result struct {
		res Result
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := Run(ctx, Config{Addr: addr, Seed: 2, Packets: 10_000_000, Probe: probeA, Timeout: 200 * time.Millisecond})
		done <- result{res, err}
	}()
	time.Sleep(300 * time.Millisecond)
	stop() // the probes during the stream must notice
	r := <-done
	t.Logf("%v; %v", r.res, r.err)
	if r.err == nil || !strings.Contains(r.err.Error(), "during the stream, after") {
		t.Fatalf("Run while the server stopped: %v", r.err)
	}
}

func TestRunWrongAnswer(t *testing.T) {
	addr, _ := startNSD(t)
	p := probeA
	p.Answer = []string{"h001.bench.example. 3600 IN A 192.0.2.99"}
	_, err := Run(context.Background(), Config{Addr: addr, Packets: 10, Probe: p})
	if err == nil || !strings.Contains(err.Error(), "before the stream") || !strings.Contains(err.Error(), "192.0.2.99") {
		t.Fatalf("Run with a wrong answer wanted: %v", err)
	}
	p = probeA
	p.Rcode = dns.RcodeNameError
	if _, err := Run(context.Background(), Config{Addr: addr, Packets: 10, Probe: p}); err == nil || !strings.Contains(err.Error(), "rcode NOERROR, want NXDOMAIN") {
		t.Fatalf("Run with a wrong rcode wanted: %v", err)
	}
}

func TestRunNoServer(t *testing.T) {
	// A port with nothing on it: UDP probes go unanswered, TCP is refused.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, err = Run(context.Background(), Config{Addr: addr, Packets: 10, Probe: probeA, Timeout: 100 * time.Millisecond, Attempts: 2})
	if err == nil || !strings.Contains(err.Error(), "before the stream") {
		t.Fatalf("Run against nothing: %v", err)
	}
}
