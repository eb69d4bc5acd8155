package main_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/miekg/dns"

	"atoll.dev/atoll/examples/dns/internal/difftest"
	"atoll.dev/atoll/examples/dns/internal/hostile"
	"atoll.dev/atoll/internal/testenv"
)

// hostileProbe is the query that must keep its answer through the
// hostile stream, from zones/example.org.zone.
var hostileProbe = hostile.Probe{
	Name:   "mail.example.org.",
	Type:   dns.TypeA,
	Rcode:  dns.RcodeSuccess,
	Answer: []string{"mail.example.org. 3600 IN A 192.0.2.25"},
}

// hostileConfig is the stream each test sends: HOSTILE_SEED and
// HOSTILE_PACKETS change its seed (default 1) and length (default 5,000).
func hostileConfig(t *testing.T, addr string) hostile.Config {
	cfg := hostile.Config{Addr: addr, Seed: 1, Packets: 5000, Zone: "example.org.", Probe: hostileProbe}
	if s := os.Getenv("HOSTILE_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("HOSTILE_SEED: %v", err)
		}
		cfg.Seed = n
	}
	if s := os.Getenv("HOSTILE_PACKETS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("HOSTILE_PACKETS: %v", err)
		}
		cfg.Packets = n
	}
	return cfg
}

// hostileZones returns a directory holding a copy of the example zone.
func hostileZones(t *testing.T) string {
	t.Helper()
	src, err := os.ReadFile("zones/example.org.zone")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "zones")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "example.org.zone"), src, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// runHostile sends the stream to addr and fails the test if the server
// stopped answering correctly, showing the server's log.
func runHostile(t *testing.T, addr, logPath string) {
	t.Helper()
	cfg := hostileConfig(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	res, err := hostile.Run(ctx, cfg)
	t.Logf("seed %d: %v in %v", cfg.Seed, res, time.Since(start).Round(time.Millisecond))
	if err != nil {
		log, _ := os.ReadFile(logPath)
		t.Fatalf("seed %d: %v\nthe server's log:\n%s", cfg.Seed, err, log)
	}
	if res.Unpackable > 0 {
		t.Errorf("%d replies to hostile packets do not unpack", res.Unpackable)
	}
}

// TestHostileProcess sends malformed messages to the server as a process
// (go build, DNS_ZONES, -addr) over UDP and TCP, and checks that it keeps
// answering a well-formed query correctly.
func TestHostileProcess(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "dnsd")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	logPath := filepath.Join(dir, "dnsd.log")
	if err := difftest.StartProcess(t, []string{bin, "-addr", addr}, []string{"DNS_ZONES=" + hostileZones(t)},
		logPath, addr, "example.org."); err != nil {
		t.Fatal(err)
	}
	runHostile(t, addr, logPath)
}

// TestHostileUnikernel does the same to the server under atoll run, on
// the user backend (the guest's own TCP/IP stack behind the monitor's
// NAT) and on the host backend (the guest's sockets are the host's).
func TestHostileUnikernel(t *testing.T) {
	testenv.RequireKVM(t)
	dir := t.TempDir()
	atoll := filepath.Join(dir, "atoll")
	if out, err := exec.Command("go", "build", "-o", atoll, "../../cmd/atoll").CombinedOutput(); err != nil {
		t.Fatalf("build atoll: %v\n%s", err, out)
	}
	img := filepath.Join(dir, "dns.img")
	if out, err := exec.Command(atoll, "build", "-o", img, ".").CombinedOutput(); err != nil {
		t.Fatalf("atoll build: %v\n%s", err, out)
	}
	for _, backend := range []string{"user", "host"} {
		t.Run(backend, func(t *testing.T) {
			port := testenv.FreePort(t)
			addr := fmt.Sprintf("127.0.0.1:%d", port)
			argv := []string{atoll, "run", "--net", "service=" + backend,
				"-p", fmt.Sprintf("%d:53/udp", port), "-p", fmt.Sprintf("%d:53", port),
				"--volume", "zones=" + hostileZones(t), img}
			logPath := filepath.Join(t.TempDir(), "atoll.log")
			if err := difftest.StartProcess(t, argv, nil, logPath, addr, "example.org."); err != nil {
				t.Fatal(err)
			}
			runHostile(t, addr, logPath)
		})
	}
}
