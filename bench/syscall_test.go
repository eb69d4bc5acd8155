// Package bench holds benchmarks that compare a unikernel under atoll with
// the same program run natively, in the same run. Scripts beside it
// (boot.sh) time whole commands.
package bench

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"atoll.dev/atoll/monitor"
	"atoll.dev/atoll/monitor/kvm"
)

// BenchmarkGetpid measures one forwarded system call's round trip: the
// guest times b.N raw getpid calls itself (its clock is the vDSO, so timing
// adds no exits), natively and under atoll. exits/op counts getpid exits.
func BenchmarkGetpid(b *testing.B) { compare(b, "getpid", "getpid") }

// BenchmarkRandRead measures crypto/rand.Read of 16 bytes, which the Go
// runtime answers through the vDSO's getrandom: the guest times b.N reads
// itself, natively and under atoll. exits/op counts getrandom exits.
func BenchmarkRandRead(b *testing.B) { compare(b, "random", "getrandom") }

// compare builds internal/testguests/guest, which times b.N operations
// itself and prints the nanoseconds per operation, and runs it natively
// and under atoll, where it counts the exits of system call call, and of
// all calls (total-exits/op, boot included), per operation.
func compare(b *testing.B, guest, call string) {
	bin := filepath.Join(b.TempDir(), guest)
	cmd := exec.Command("go", "build", "-o", bin, "../internal/testguests/"+guest)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("%v\n%s", err, out)
	}
	b.Run("native", func(b *testing.B) {
		out, err := exec.Command(bin, strconv.Itoa(b.N)).Output()
		if err != nil {
			b.Fatal(err)
		}
		report(b, string(out))
	})
	b.Run("atoll", func(b *testing.B) {
		if s, err := kvm.Open(); err != nil {
			b.Skipf("no KVM: %v", err)
		} else {
			s.Close()
		}
		image, err := os.ReadFile(bin)
		if err != nil {
			b.Fatal(err)
		}
		stdout, err := os.CreateTemp(b.TempDir(), "stdout")
		if err != nil {
			b.Fatal(err)
		}
		defer stdout.Close()
		res, err := monitor.Run(context.Background(), monitor.Config{Image: image, Name: guest, Args: []string{strconv.Itoa(b.N)},
			MemBytes: 256 << 20, CPUs: 1, Stdout: stdout, Stderr: os.Stderr, Log: os.Stderr})
		if err != nil || res.ExitCode != 0 {
			b.Fatalf("boot: %v, exit %d", err, res.ExitCode)
		}
		out, _ := os.ReadFile(stdout.Name())
		report(b, string(out))
		b.ReportMetric(float64(res.Stats.Syscalls[call])/float64(b.N), "exits/op")
		b.ReportMetric(float64(res.Stats.Total)/float64(b.N), "total-exits/op")
	})
}

// report replaces the benchmark's time (which includes starting the
// program) with the per-call time the guest measured.
func report(b *testing.B, out string) {
	ns, err := strconv.ParseFloat(strings.TrimSpace(out), 64)
	if err != nil {
		b.Fatalf("guest printed %q", out)
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(ns, "guest-ns/call")
}
