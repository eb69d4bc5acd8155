package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"atoll.dev/atoll/internal/testenv"
)

// dnsKey is the TSIG key the DNS tests give the appliance.
const (
	dnsKeyName   = "xfr.example."
	dnsKeySecret = "ZG5zLXRlc3Qtc2VjcmV0LWRucy10ZXN0LXNlY3JldA=="
	dnsKey       = "hmac-sha256:" + dnsKeyName + ":" + dnsKeySecret
)

// dnsSetup builds atoll and the examples/dns image, and a zones
// directory holding a copy of the example zone.
func dnsSetup(t *testing.T) (atoll, img, zones string) {
	t.Helper()
	dir := t.TempDir()
	atoll = atollBinary(t, dir)
	img = buildTestImage(t, atoll, dir, "../../examples/dns")
	zones = filepath.Join(dir, "zones")
	os.Mkdir(zones, 0o755)
	src, err := os.ReadFile("../../examples/dns/zones/example.org.zone")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(zones, "example.org.zone"), src, 0o644)
	return atoll, img, zones
}

// dnsUnikernel is one atoll run of examples/dns.
type dnsUnikernel struct {
	cmd    *exec.Cmd
	addr   string
	stderr *strings.Builder
}

// startDNS boots img serving the zones in dir on a forwarded port, and
// waits until it answers.
func startDNS(t *testing.T, atoll, img, zones string, port int, extra ...string) *dnsUnikernel {
	t.Helper()
	args := []string{"run", "-e", "DNS_KEYS=" + dnsKey, "-p", fmt.Sprintf("%d:53/udp", port), "-p", fmt.Sprintf("%d:53", port), "--volume", "zones=" + zones}
	args = append(append(args, extra...), img)
	u := &dnsUnikernel{cmd: exec.Command(atoll, args...), addr: fmt.Sprintf("127.0.0.1:%d", port), stderr: &strings.Builder{}}
	u.cmd.Stderr = u.stderr
	if err := u.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.cmd.Process.Kill(); u.cmd.Wait() })
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := dnsAsk(u.addr, "udp", "example.org.", dns.TypeSOA); err == nil {
			return u
		}
		if time.Now().After(deadline) {
			t.Fatalf("the DNS unikernel did not answer: %s", u.stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func dnsAsk(addr, network, name string, qtype uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.RecursionDesired = false
	c := &dns.Client{Net: network, Timeout: time.Second}
	r, _, err := c.Exchange(m, addr)
	return r, err
}

func dnsSerial(t *testing.T, addr string) uint32 {
	t.Helper()
	r, err := dnsAsk(addr, "udp", "example.org.", dns.TypeSOA)
	if err != nil || len(r.Answer) != 1 {
		t.Fatalf("SOA: %v %v", r, err)
	}
	return r.Answer[0].(*dns.SOA).Serial
}

// dnsUpdate adds one A record with a signed RFC 2136 update.
func dnsUpdate(addr, name, ip string) (int, error) {
	m := new(dns.Msg)
	m.SetUpdate("example.org.")
	rr, err := dns.NewRR(name + " 60 IN A " + ip)
	if err != nil {
		return 0, err
	}
	m.Insert([]dns.RR{rr})
	m.SetTsig(dnsKeyName, dns.HmacSHA256, 300, time.Now().Unix())
	c := &dns.Client{Net: "tcp", Timeout: 5 * time.Second, TsigSecret: map[string]string{dnsKeyName: dnsKeySecret}}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		return 0, err
	}
	return r.Rcode, nil
}

// TestDNSUnikernel boots examples/dns on the user network with a zones
// volume and checks it as a secondary and an nsupdate user would: UDP
// and TCP answers, AXFR with and without the key, an update visible at
// once, a NOTIFY to the configured secondary, and the update surviving
// kill -9 of atoll run and a restart.
func TestDNSUnikernel(t *testing.T) {
	testenv.RequireKVM(t)
	atoll, img, zones := dnsSetup(t)
	// The secondary: a UDP socket on the host's loopback, 10.0.2.2 to
	// the guest.
	sec, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sec.Close()
	secPort := sec.LocalAddr().(*net.UDPAddr).Port
	port := testenv.FreePort(t)
	notify := []string{"-e", fmt.Sprintf("DNS_NOTIFY=10.0.2.2:%d", secPort)}
	u := startDNS(t, atoll, img, zones, port, notify...)

	for _, network := range []string{"udp", "tcp"} {
		r, err := dnsAsk(u.addr, network, "a.b.Users.example.org.", dns.TypeTXT)
		if err != nil || r.Rcode != dns.RcodeSuccess || !r.Authoritative || len(r.Answer) != 1 || r.Answer[0].Header().Name != "a.b.Users.example.org." {
			t.Errorf("%s wildcard: %v %v", network, r, err)
		}
		if r, err := dnsAsk(u.addr, network, "none.example.org.", dns.TypeA); err != nil || r.Rcode != dns.RcodeNameError {
			t.Errorf("%s NXDOMAIN: %v %v", network, r, err)
		}
		if r, err := dnsAsk(u.addr, network, "example.com.", dns.TypeA); err != nil || r.Rcode != dns.RcodeRefused {
			t.Errorf("%s another zone: %v %v", network, r, err)
		}
	}
	// The NOTIFY sent at start-up.
	readNotify := func() uint32 {
		t.Helper()
		buf := make([]byte, 4096)
		sec.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			n, from, err := sec.ReadFrom(buf)
			if err != nil {
				t.Fatalf("no NOTIFY: %v\n%s", err, u.stderr)
			}
			m := new(dns.Msg)
			if m.Unpack(buf[:n]) != nil || m.Opcode != dns.OpcodeNotify || len(m.Answer) != 1 {
				continue
			}
			ack := new(dns.Msg)
			ack.SetReply(m)
			b, _ := ack.Pack()
			sec.WriteTo(b, from)
			return m.Answer[0].(*dns.SOA).Serial
		}
	}
	serial := dnsSerial(t, u.addr)
	if got := readNotify(); got != serial {
		t.Errorf("start-up NOTIFY for serial %d, want %d", got, serial)
	}
	// Transfers: with the key the zone, without it REFUSED.
	tr := &dns.Transfer{TsigSecret: map[string]string{dnsKeyName: dnsKeySecret}}
	m := new(dns.Msg)
	m.SetAxfr("example.org.")
	m.SetTsig(dnsKeyName, dns.HmacSHA256, 300, time.Now().Unix())
	ch, err := tr.In(m, u.addr)
	if err != nil {
		t.Fatal(err)
	}
	records := 0
	for env := range ch {
		if env.Error != nil {
			t.Fatalf("AXFR: %v", env.Error)
		}
		records += len(env.RR)
	}
	if records != 13 { // 12 records and the closing SOA
		t.Errorf("AXFR: %d records, want 13", records)
	}
	m = new(dns.Msg)
	m.SetAxfr("example.org.")
	if r, _, err := (&dns.Client{Net: "tcp"}).Exchange(m, u.addr); err != nil || r.Rcode != dns.RcodeRefused {
		t.Errorf("AXFR without the key: %v %v", r, err)
	}
	// Updates, each acknowledged then killed with -9: all survive.
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("host%d.example.org.", i)
		if rc, err := dnsUpdate(u.addr, name, fmt.Sprintf("192.0.2.%d", 100+i)); err != nil || rc != dns.RcodeSuccess {
			t.Fatalf("update %d: %s %v", i, dns.RcodeToString[rc], err)
		}
		if r, err := dnsAsk(u.addr, "udp", name, dns.TypeA); err != nil || len(r.Answer) != 1 {
			t.Fatalf("update %d not visible at once: %v %v", i, r, err)
		}
		if got := readNotify(); got != serial+uint32(i) {
			t.Errorf("NOTIFY after update %d: serial %d, want %d", i, got, serial+uint32(i))
		}
		u.cmd.Process.Signal(syscall.SIGKILL)
		u.cmd.Wait()
		u = startDNS(t, atoll, img, zones, port, notify...)
		if got := readNotify(); got != serial+uint32(i) {
			t.Errorf("start-up NOTIFY after kill -9 number %d: serial %d, want %d", i, got, serial+uint32(i))
		}
		for j := 1; j <= i; j++ {
			name := fmt.Sprintf("host%d.example.org.", j)
			if r, err := dnsAsk(u.addr, "tcp", name, dns.TypeA); err != nil || len(r.Answer) != 1 {
				t.Errorf("after kill -9 number %d: %s lost: %v %v", i, name, r, err)
			}
		}
		if got := dnsSerial(t, u.addr); got != serial+uint32(i) {
			t.Errorf("after kill -9 number %d: serial %d, want %d", i, got, serial+uint32(i))
		}
	}
	// The tools people use: nsupdate -y and dig -y AXFR.
	testenv.RequireCommands(t, "nsupdate", "dig")
	host, hport := u.addr[:strings.LastIndex(u.addr, ":")], u.addr[strings.LastIndex(u.addr, ":")+1:]
	nsupdate := exec.Command("nsupdate", "-y", dnsKey)
	nsupdate.Stdin = strings.NewReader(fmt.Sprintf("server %s %s\nzone example.org\nupdate add tool.example.org 300 TXT \"from nsupdate\"\nsend\n", host, hport))
	if out, err := nsupdate.CombinedOutput(); err != nil {
		t.Errorf("nsupdate: %v\n%s", err, out)
	}
	if r, err := dnsAsk(u.addr, "udp", "tool.example.org.", dns.TypeTXT); err != nil || len(r.Answer) != 1 {
		t.Errorf("nsupdate's record not visible: %v %v", r, err)
	}
	out, err := exec.Command("dig", "-y", dnsKey, "-p", hport, "@"+host, "example.org", "AXFR").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "from nsupdate") || !strings.Contains(string(out), "host3.example.org.") {
		t.Errorf("dig AXFR: %v\n%s", err, out)
	}
	if out, _ := exec.Command("dig", "-p", hport, "@"+host, "example.org", "AXFR").CombinedOutput(); !strings.Contains(string(out), "Transfer failed") {
		t.Errorf("dig AXFR without the key:\n%s", out)
	}
	// An unsigned update changes nothing.
	m = new(dns.Msg)
	m.SetUpdate("example.org.")
	rr, _ := dns.NewRR("evil.example.org. 60 IN A 192.0.2.66")
	m.Insert([]dns.RR{rr})
	if r, _, err := (&dns.Client{Net: "tcp"}).Exchange(m, u.addr); err != nil || r.Rcode != dns.RcodeRefused {
		t.Errorf("unsigned update: %v %v", r, err)
	}
}

// TestDNSHostBackendAndPacked serves the zone packed in the image (no
// volume) on the host backend, where the guest's own sockets are the
// host's: same answers, and updates refused (nowhere to keep them).
func TestDNSHostBackendAndPacked(t *testing.T) {
	testenv.RequireKVM(t)
	dir := t.TempDir()
	atoll := atollBinary(t, dir)
	img := buildTestImage(t, atoll, dir, "../../examples/dns")
	port := testenv.FreePort(t)
	cmd := exec.Command(atoll, "run", "--net", "service=host", "-p", fmt.Sprintf("%d:53/udp", port), "-p", fmt.Sprintf("%d:53", port), img)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(30 * time.Second)
	for {
		r, err := dnsAsk(addr, "udp", "www.example.org.", dns.TypeA)
		if err == nil {
			if len(r.Answer) != 2 || r.Answer[1].(*dns.A).A.String() != "192.0.2.1" {
				t.Errorf("CNAME to the apex: %v", r)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no answer: %v\n%s", err, &stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if r, err := dnsAsk(addr, "tcp", "mail.example.org.", dns.TypeA); err != nil || len(r.Answer) != 1 {
		t.Errorf("TCP: %v %v", r, err)
	}
	if rc, err := dnsUpdate(addr, "x.example.org.", "192.0.2.1"); err != nil || rc != dns.RcodeNotAuth && rc != dns.RcodeRefused {
		t.Errorf("update of the packed zone: %s %v", dns.RcodeToString[rc], err)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	if !strings.Contains(stderr.String(), "read-only, so no updates") {
		t.Errorf("the packed zone was not reported read-only:\n%s", &stderr)
	}
}

// TestDNSSoak loads the DNS unikernel with queries from eight clients —
// six over UDP, two over TCP with a new connection each time — and a
// signed update every 50 ms, for ATOLL_SOAK (20 s by default, in two
// halves with a kill -9 and a restart between them), sampling the atoll
// process's RSS and open descriptors. Every query must be answered
// right and every acknowledged update must be there after the restart.
// Descriptors must not grow (the last quarter's peak within 16 of the
// second quarter's). RSS rises and falls with the two Go heaps' garbage
// collections — each TCP connection holds ~20 KiB in each network stack
// through its 5 s TIME_WAIT — so it is held to a bound, the guest's
// 256 MiB plus 192 MiB, and on runs of 2 minutes or more must not climb:
// the last quarter's peak within 25 % (and 16 MiB) of the second's.
func TestDNSSoak(t *testing.T) {
	testenv.RequireKVM(t)
	soak := soakDuration(t, 20*time.Second)
	atoll, img, zones := dnsSetup(t)
	port := testenv.FreePort(t)
	acked := 0
	for half := 0; half < 2; half++ {
		u := startDNS(t, atoll, img, zones, port)
		for i := 0; i < acked; i++ {
			if r, err := dnsAsk(u.addr, "tcp", fmt.Sprintf("soak%d.example.org.", i), dns.TypeA); err != nil || len(r.Answer) != 1 {
				t.Fatalf("after the restart, acknowledged update %d is missing: %v %v", i, r, err)
			}
		}
		end := time.Now().Add(soak / 2)
		var queries, bad, retried atomic.Int64
		var wg sync.WaitGroup
		for c := 0; c < 8; c++ {
			wg.Go(func() {
				network := "udp"
				if c < 2 {
					network = "tcp"
				}
				for time.Now().Before(end) {
					// A datagram can be lost under load: retried, as
					// resolvers do.
					r, err := dnsAsk(u.addr, network, "mail.example.org.", dns.TypeA)
					for try := 1; err != nil && try < 3; try++ {
						retried.Add(1)
						r, err = dnsAsk(u.addr, network, "mail.example.org.", dns.TypeA)
					}
					queries.Add(1)
					if err != nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "192.0.2.25" {
						bad.Add(1)
					}
				}
			})
		}
		pid := u.cmd.Process.Pid
		var rss, fds []int
		for time.Now().Before(end) {
			if rc, err := dnsUpdate(u.addr, fmt.Sprintf("soak%d.example.org.", acked), "192.0.2.7"); err == nil && rc == dns.RcodeSuccess {
				acked++
			}
			if r, f := processUse(pid); r > 0 {
				rss, fds = append(rss, r), append(fds, f)
			}
			time.Sleep(50 * time.Millisecond)
		}
		wg.Wait()
		if bad.Load() > 0 || queries.Load() == 0 {
			t.Errorf("half %d: %d of %d queries not answered right", half, bad.Load(), queries.Load())
		}
		if n := len(rss); n >= 8 {
			q2, q4 := slices.Max(rss[n/4:n/2]), slices.Max(rss[3*n/4:])
			f2, f4 := slices.Max(fds[n/4:n/2]), slices.Max(fds[3*n/4:])
			t.Logf("half %d: %d queries (%d retried), %d updates acknowledged in all; peak RSS %d MiB in the second quarter, %d MiB in the last; descriptors %d, %d",
				half, queries.Load(), retried.Load(), acked, q2>>10, q4>>10, f2, f4)
			if f4-f2 > 16 || slices.Max(rss) > (256+192)<<10 || soak >= 2*time.Minute && q4 > q2+q2/4+16<<10 {
				t.Errorf("half %d: growing: RSS %v KiB, descriptors %v", half, rss, fds)
			}
		}
		u.cmd.Process.Signal(syscall.SIGKILL)
		u.cmd.Wait()
	}
}

// processUse reads a process's resident memory (KiB) and its open
// descriptors.
func processUse(pid int) (rssKiB, fds int) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	for _, l := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			rssKiB, _ = strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
	}
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return rssKiB, len(ents)
}
