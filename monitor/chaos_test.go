package monitor_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"atoll.dev/atoll/internal/testenv"
	"atoll.dev/atoll/monitor"
	"atoll.dev/atoll/monitor/vfs"
	"atoll.dev/atoll/netpolicy"
)

// TestChaosThreads boots the chaos guest with four threads making random
// system calls with adversarial arguments while its other goroutines do
// file and pipe I/O, on a VM with a volume and host sockets (outbound
// none), over and over until the monitor has served ATOLL_CHAOS_CALLS
// calls (its exit count; 100,000 by default; docs/threat-model.md records
// a 10⁶ run). The guest often corrupts itself (a random length through
// its own buffer) and crashes; each run must still end with a result. Checked from outside the
// guest: no host descriptor left open, nothing changed beside the
// volume, no connection reached a host listener the policy forbids, and
// the process's memory within the limit and the documented overhead.
func TestChaosThreads(t *testing.T) {
	testenv.RequireKVM(t)
	target := 100_000
	if s := os.Getenv("ATOLL_CHAOS_CALLS"); s != "" {
		target, _ = strconv.Atoi(s)
	}
	image, err := os.ReadFile(guest(t, "chaos"))
	if err != nil {
		t.Fatal(err)
	}
	// The volume, and a sentinel beside it that must stay as it is.
	root := t.TempDir()
	vol, beside := filepath.Join(root, "volume"), filepath.Join(root, "beside")
	os.Mkdir(vol, 0o755)
	os.Mkdir(beside, 0o755)
	sentinel := filepath.Join(beside, "sentinel")
	os.WriteFile(sentinel, []byte("untouched"), 0o644)
	before, _ := os.Stat(sentinel)
	// A host listener no guest connection may reach (outbound none).
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	reached := make(chan string, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			reached <- c.RemoteAddr().String()
			c.Close()
		}
	}()

	fds := openFDs(t)
	const mem = 256 << 20
	made, runs, crashed := 0, 0, 0
	var peak uint64
	completed := regexp.MustCompile(`made \d+ calls`)
	for seed := 1; made < target; seed++ {
		dir, err := os.Open(vol)
		if err != nil {
			t.Fatal(err)
		}
		out, _ := os.CreateTemp(t.TempDir(), "out")
		res, err := monitor.Run(context.Background(), monitor.Config{
			Image: image, Name: "chaos", Args: []string{fmt.Sprint(seed), "20000", "4"},
			MemBytes: mem, CPUs: 2, Stdout: out, Stderr: out, Log: out, MeasureMemory: true,
			Volumes: []vfs.Volume{{Path: "/data", Dir: dir}},
			HostNet: &monitor.HostNet{Outbound: netpolicy.OutboundNone},
		})
		dir.Close()
		out.Close()
		b, _ := os.ReadFile(out.Name())
		if err != nil {
			t.Fatalf("seed %d: %v\n%.2000s", seed, err, b)
		}
		runs++
		made += int(res.Stats.Total)
		if !completed.Match(b) {
			// The guest broke itself before the end (how it reports that,
			// if it can, is its own runtime's affair): Run returned a
			// result, which is what the monitor owes.
			crashed++
		}
		if res.Memory != nil {
			peak = max(peak, res.Memory.PeakRSS)
		}
		if runs > 50*target/20000+50 {
			t.Fatalf("%d runs made only %d calls: the guest crashes too early", runs, made)
		}
	}
	t.Logf("%d calls in %d runs (%d crashed before the end); peak RSS %d MiB", made, runs, crashed, peak>>20)

	// Outside the guest.
	time.Sleep(100 * time.Millisecond) // descriptors of the last VM close just after Run returns
	if n := openFDs(t); n > fds {
		t.Errorf("%d host descriptors open after the runs, %d before", n, fds)
	}
	after, err := os.Stat(sentinel)
	if b, _ := os.ReadFile(sentinel); err != nil || string(b) != "untouched" || !after.ModTime().Equal(before.ModTime()) {
		t.Errorf("the file beside the volume changed: %v %q", err, b)
	}
	if ents, _ := os.ReadDir(beside); len(ents) != 1 {
		t.Errorf("the directory beside the volume holds %d entries", len(ents))
	}
	if ents, _ := os.ReadDir(root); len(ents) != 2 {
		t.Errorf("the volume's parent holds %d entries", len(ents))
	}
	select {
	case from := <-reached:
		t.Errorf("a guest connection reached a host listener (outbound none): from %s", from)
	default:
	}
	// Host memory: the guest's limit, plus the monitor's own (the Go
	// runtime, KVM's structures, the image's page cache) — under 128 MiB
	// for these runs.
	if peak > mem+128<<20 {
		t.Errorf("peak RSS %d MiB, over the %d MiB limit plus 128 MiB", peak>>20, mem>>20)
	}
}
