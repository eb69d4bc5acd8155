package monitor_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"atoll.dev/atoll/abi"
	"atoll.dev/atoll/internal/testenv"
	"atoll.dev/atoll/manifest"
	"atoll.dev/atoll/monitor"
)

// TestPipeFlagsAndBlocking checks O_NONBLOCK as pipe2, eventfd2 and fcntl
// set it, and blocking pipe and eventfd transfers, against native Linux.
func TestPipeFlagsAndBlocking(t *testing.T) {
	testenv.RequireKVM(t)
	bin := guest(t, "fdio")
	args := []string{"flags"}
	nat := native(t, bin, args, nil)
	vm, _ := boot(t, bin, args, nil, 256<<20)
	if nat.code != 0 || !strings.HasSuffix(nat.stdout, "flags ok\n") {
		t.Fatalf("native run: exit %d\n%s%s", nat.code, nat.stdout, nat.stderr)
	}
	if vm.stdout != nat.stdout || vm.code != 0 {
		t.Errorf("exit %d, stdout differs:\nnative:\n%s\natoll:\n%s\nstderr:\n%.2000s", vm.code, nat.stdout, vm.stdout, vm.stderr)
	}
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestExitWithBlockedReader checks that a guest thread blocked in read on
// an empty blocking pipe does not outlive the VM: Run returns promptly and
// the VM's host resources are released soon after.
func TestExitWithBlockedReader(t *testing.T) {
	testenv.RequireKVM(t)
	image, err := os.ReadFile(guest(t, "fdio"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	before := openFDs(t)
	type result struct {
		res monitor.Result
		err error
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		res, err := monitor.Run(context.Background(), monitor.Config{Image: image, Name: "fdio", Args: []string{"blockexit"},
			MemBytes: 256 << 20, CPUs: 2, Stdout: out, Stderr: out})
		done <- result{res, err}
	}()
	select {
	case r := <-done:
		b, _ := os.ReadFile(out.Name())
		if r.err != nil || r.res.ExitCode != 0 || !strings.Contains(string(b), "exiting with a reader blocked") {
			t.Fatalf("run: %v, exit %d, output:\n%s", r.err, r.res.ExitCode, b)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return with a guest thread blocked in read")
	}
	t.Logf("Run returned after %v", time.Since(start))
	// The VM closes its descriptors (KVM's, the pipe's) once its last
	// thread has left: the blocked reader must notice the end.
	deadline := time.Now().Add(5 * time.Second)
	for openFDs(t) > before {
		if time.Now().After(deadline) {
			t.Fatalf("%d host descriptors open 5s after the VM ended, %d before it started: a thread is stuck", openFDs(t), before)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestCloseDupWriteRace closes, dups and writes one guest descriptor from
// two threads: no write may reach another object than the guest named,
// in particular not the block device whose host descriptor may reuse the
// closed one's number.
func TestCloseDupWriteRace(t *testing.T) {
	testenv.RequireKVM(t)
	bin := guest(t, "fdio")
	image, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	const size = 1 << 20
	dev, err := os.Create(filepath.Join(dir, "data"))
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	if err := dev.Truncate(size); err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	for run := 0; run < 4; run++ {
		res, err := runVM(t, bin, monitor.Config{Image: image, Name: "fdio", Args: []string{"race"},
			MemBytes: 256 << 20, CPUs: 3, Stdout: out, Stderr: out,
			Devices: []monitor.Device{{Device: manifest.Device{Name: "data", Kind: abi.KindBlock,
				Spec: &manifest.BlockSpec{Size: size, SectorSize: 512}}, File: dev}}})
		b, _ := os.ReadFile(out.Name())
		if err != nil || res.ExitCode != 0 || !strings.Contains(string(b), "block untouched: true\npipe got only payload: true true\nrace ok\n") {
			t.Fatalf("run %d: %v, exit %d, output:\n%.3000s", run, err, res.ExitCode, b)
		}
		data, err := os.ReadFile(dev.Name())
		if err != nil {
			t.Fatal(err)
		}
		if len(data) != size || bytes.Count(data, []byte{0}) != size {
			t.Fatalf("run %d: the block device's host file was written (%d bytes, %d non-zero)", run, len(data), len(data)-bytes.Count(data, []byte{0}))
		}
		out.Truncate(0)
		out.Seek(0, 0)
	}
}
