package main

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"atoll.dev/atoll/internal/testenv"
)

// TestRingSoak serves HTTP from a unikernel whose device runs on frame
// rings, under clients that keep connections and clients that make a new
// one per request, checking every body; then it has the guest count the
// frames it moved and checks them against the monitor's counts: no frame
// lost or made up on the way. ATOLL_SOAK sets how long (10s by default;
// bench/soak.sh runs 10 minutes).
func TestRingSoak(t *testing.T) {
	testenv.RequireKVM(t)
	soak := soakDuration(t, 10*time.Second)
	dir := t.TempDir()
	atoll := atollBinary(t, dir)
	img := buildTestImage(t, atoll, dir, "../../internal/testguests/ringsoak")
	port := testenv.FreePort(t)
	var stdout bytes.Buffer
	stderr := &lockedBuffer{}
	cmd := exec.Command(atoll, "run", "--stats", "-p", fmt.Sprintf("%d:80", port), img)
	cmd.Stdout, cmd.Stderr = &stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	get(t, base+"/echo?n=1") // waits for the boot

	var requests, failures atomic.Int64
	var wg sync.WaitGroup
	end := time.Now().Add(soak)
	client := func(keepAlive bool, seed uint64) {
		defer wg.Done()
		c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: !keepAlive}}
		rng := rand.New(rand.NewPCG(seed, 1))
		for time.Now().Before(end) {
			n := rng.IntN(64 << 10)
			if rng.IntN(2) == 0 {
				n = rng.IntN(200)
			}
			resp, err := c.Get(fmt.Sprintf("%s/echo?n=%d", base, n))
			if err == nil {
				var body []byte
				body, err = io.ReadAll(resp.Body)
				resp.Body.Close()
				if err == nil && !bytes.Equal(body, bytes.Repeat([]byte{byte('a' + n%26)}, n)) {
					err = fmt.Errorf("/echo?n=%d: %d bytes, not the expected ones", n, len(body))
				}
			}
			if err != nil {
				if failures.Add(1) <= 5 {
					t.Errorf("request: %v", err)
				}
				continue
			}
			requests.Add(1)
		}
	}
	for i := range 9 {
		wg.Add(1)
		go client(i < 6, uint64(i))
	}
	wg.Wait()
	if failures.Load() > 0 {
		t.Fatalf("%d of %d requests failed\nstderr: %s", failures.Load(), failures.Load()+requests.Load(), stderr.String())
	}
	if code, body := get(t, base+"/quit"); code != 200 || body != "bye\n" {
		t.Fatalf("/quit: %d %q", code, body)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("atoll run: %v\nstderr: %s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the guest did not exit after /quit\nstderr: %s", stderr.String())
	}
	guest := regexp.MustCompile(`frames in=(\d+) out=(\d+)`).FindStringSubmatch(stdout.String())
	mon := regexp.MustCompile(`ring service: (\d+) frames out, (\d+) in, (\d+) dropped, (\d+) out and (\d+) in still in the rings`).FindStringSubmatch(stderr.String())
	if guest == nil || mon == nil {
		t.Fatalf("no frame counts\nstdout: %s\nstderr: %s", stdout.String(), stderr.String())
	}
	n := func(s string) uint64 { v, _ := strconv.ParseUint(s, 10, 64); return v }
	gIn, gOut := n(guest[1]), n(guest[2])
	mOut, mIn, dropped, txPending, rxPending := n(mon[1]), n(mon[2]), n(mon[3]), n(mon[4]), n(mon[5])
	t.Logf("%d requests in %v; guest frames in %d out %d; monitor out %d in %d, %d and %d in the rings",
		requests.Load(), soak, gIn, gOut, mOut, mIn, txPending, rxPending)
	if dropped != 0 || gOut != mOut+txPending || mIn != gIn+rxPending {
		t.Errorf("frames lost or duplicated: guest sent %d, monitor took %d (+%d in the ring, %d dropped); monitor delivered %d, guest took %d (+%d in the ring)",
			gOut, mOut, txPending, dropped, mIn, gIn, rxPending)
	}
	if requests.Load() == 0 {
		t.Error("no requests")
	}
}

// soakDuration is how long a soak test runs: ATOLL_SOAK, else def.
func soakDuration(t *testing.T, def time.Duration) time.Duration {
	t.Helper()
	s := os.Getenv("ATOLL_SOAK")
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatalf("ATOLL_SOAK=%q: %v", s, err)
	}
	return d
}
