package monitor_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"atoll.dev/atoll/internal/testenv"
	"atoll.dev/atoll/monitor"
)

var (
	buildMu sync.Mutex
	built   = map[string]string{}
)

// guest builds internal/testguests/name with the stock toolchain, once.
func guest(t *testing.T, name string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := built[name]; ok {
		return p
	}
	dir, err := os.MkdirTemp("", "atoll-guest-")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-o", out, "../internal/testguests/"+name)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", name, err, b)
	}
	built[name] = out
	return out
}

type outcome struct {
	stdout, stderr string
	code           int
}

func native(t *testing.T, bin string, args, env []string) outcome {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return outcome{o.String(), e.String(), code}
}

// boot runs bin as a unikernel, its pages mapped from the file and its
// monitor confined by seccomp as atoll run does (runVM), and checks that the guest's writes did not reach the file.
func boot(t *testing.T, bin string, args, env []string, mem uint64) (outcome, monitor.Result) {
	t.Helper()
	image, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	file, err := os.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	dir := t.TempDir()
	stdout, _ := os.Create(filepath.Join(dir, "stdout"))
	stderr, _ := os.Create(filepath.Join(dir, "stderr"))
	defer stdout.Close()
	defer stderr.Close()
	res, err := runVM(t, bin, monitor.Config{
		Image: image, ImageFile: file, Name: filepath.Base(bin), Args: args, Env: env,
		MemBytes: mem, CPUs: 2, Stdout: stdout, Stderr: stderr, Log: stderr,
	})
	if err != nil {
		t.Fatalf("boot %s: %v", bin, err)
	}
	if after, err := os.ReadFile(bin); err != nil || !bytes.Equal(after, image) {
		t.Fatalf("the guest changed its image file %s (%v)", bin, err)
	}
	o, _ := os.ReadFile(stdout.Name())
	e, _ := os.ReadFile(stderr.Name())
	return outcome{string(o), string(e), res.ExitCode}, res
}

// TestGuestsMatchNative runs each guest natively and as a unikernel and
// requires the same output and exit status.
func TestGuestsMatchNative(t *testing.T) {
	testenv.RequireKVM(t)
	cases := []struct {
		name       string
		args, env  []string
		wantOut    string // substring of stdout in both worlds
		wantCode   int
		stderrHas  string // substring of stderr in both worlds
		onlyStatus bool   // output legitimately differs (addresses)
	}{
		{name: "hello", wantOut: "hello from atoll\n"},
		{name: "random", wantOut: "distinct: true zero: false\nlarge read filled: true\n"},
		{name: "goroutines", wantOut: "timer fired\n100MB check 0\ngc ran true\n"},
		{name: "args", args: []string{"one", "two words"}, env: []string{"GREETING=hi"},
			wantOut: "args [\"one\" \"two words\"]\nGREETING=\"hi\"\nunset present: false\n"},
		{name: "exitcode", args: []string{"0"}, wantOut: "exiting with 0\n"},
		{name: "exitcode", args: []string{"1"}, wantOut: "exiting with 1\n", wantCode: 1},
		{name: "exitcode", args: []string{"3"}, wantOut: "exiting with 3\n", wantCode: 3},
		{name: "nilrecover", wantOut: "still running\n"},
		{name: "nilpanic", wantOut: "about to crash\n", wantCode: 2, stderrHas: "invalid memory address or nil pointer dereference", onlyStatus: true},
		{name: "preempt", wantOut: "main goroutine ran again: true\n"},
		{name: "sigaction", wantOut: "read: errno 0\nset: errno 0 true\nread back: true\nsame buffer: errno 0 true\nrestored: true\nsignal 0: invalid argument\nsignal 65: invalid argument\nSIGKILL: invalid argument\nsigsetsize 4: invalid argument\n"},
		{name: "fastpath", wantOut: "held while blocked\ndelivered once unblocked\n"},
		{name: "timenow", wantOut: "slept at least 200ms: true\nslept under 2s: true\nwall clock advanced: true\nyear plausible: true\n"},
		{name: "files", wantOut: "big: 8388608 bytes, same: true\n", args: nil},
		{name: "privileged", wantOut: "hlt: recovered true\ncli: recovered true\nlgdt: recovered true\nmov ss: recovered true\nout: recovered true\nrdmsr: recovered true\n"},
	}
	for _, c := range cases {
		t.Run(c.name+strings.Join(c.args, "_"), func(t *testing.T) {
			bin := guest(t, c.name)
			nat := native(t, bin, c.args, c.env)
			vm, _ := boot(t, bin, c.args, c.env, 512<<20)
			for world, o := range map[string]outcome{"native": nat, "atoll": vm} {
				if !strings.Contains(o.stdout, c.wantOut) {
					t.Errorf("%s stdout = %q, want it to contain %q", world, o.stdout, c.wantOut)
				}
				if o.code != c.wantCode {
					t.Errorf("%s exit status %d, want %d (stderr: %s)", world, o.code, c.wantCode, o.stderr)
				}
				if !strings.Contains(o.stderr, c.stderrHas) {
					t.Errorf("%s stderr lacks %q:\n%s", world, c.stderrHas, o.stderr)
				}
			}
			if !c.onlyStatus && nat.stdout != vm.stdout {
				t.Errorf("stdout differs:\nnative: %q\natoll:  %q", nat.stdout, vm.stdout)
			}
		})
	}
}

// TestVerboseLogsOnce checks that unsupported calls are logged only with
// Verbose, once per distinct call.
func TestVerboseLogsOnce(t *testing.T) {
	testenv.RequireKVM(t)
	bin := guest(t, "noaccess")
	image, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, verbose := range []bool{false, true} {
		var log bytes.Buffer
		out, _ := os.Create(filepath.Join(t.TempDir(), "out"))
		_, err := runVM(t, bin, monitor.Config{Image: image, Name: "noaccess", Args: []string{"x"}, MemBytes: 256 << 20,
			Stdout: out, Stderr: out, Log: &log, Verbose: verbose})
		out.Close()
		if err != nil {
			t.Fatal(err)
		}
		got := log.String()
		if !verbose {
			if got != "" {
				t.Errorf("quiet run logged:\n%s", got)
			}
			continue
		}
		// The child ran confined (runVM), and said so.
		for _, want := range []string{`open "/proc/atoll-probe": read-only file system`, "socket: not supported (the guest has no host sockets", "seccomp filter: "} {
			if strings.Count(got, want) != 1 {
				t.Errorf("verbose log has %q %d times, want once:\n%s", want, strings.Count(got, want), got)
			}
		}
	}
}

// TestNoHostAccess checks that a guest can open no host file and create no
// host socket (natively, both would work).
func TestNoHostAccess(t *testing.T) {
	testenv.RequireKVM(t)
	vm, _ := boot(t, guest(t, "noaccess"), nil, nil, 512<<20)
	if want := "open /etc/shadow failed: true\ncreate in /proc failed: true\ndial failed: true\n"; vm.stdout != want || vm.code != 0 {
		t.Fatalf("exit %d, stdout %q, want %q", vm.code, vm.stdout, want)
	}
}

// TestReservedMemory checks that address space the guest reserved but
// never mapped is no guest memory: touching it is a SIGSEGV in the guest,
// as natively, while the pages it mapped in it, one in every other 2 MiB
// (256 memory slots), work. Each of those pages holds its 2 MiB chunk
// (guestmem/hold.go): 512 MiB in all, hence the limit.
func TestReservedMemory(t *testing.T) {
	testenv.RequireKVM(t)
	bin := guest(t, "reserved")
	nat := native(t, bin, nil, nil)
	vm, _ := boot(t, bin, nil, nil, 1<<30)
	for world, o := range map[string]outcome{"native": nat, "atoll": vm} {
		if o.stdout != "mapped pages: 256\n" || o.code != 2 || !strings.Contains(o.stderr, "unexpected fault address") {
			t.Errorf("%s: exit %d, stdout %q, want Go's crash on the fault; stderr:\n%.1000s", world, o.code, o.stdout, o.stderr)
		}
	}
}

// TestMemoryCycle checks that --mem bounds the memory the guest holds,
// not the address space it maps: memlimit allocates and frees four times
// the limit from Go's heap, then maps, writes and unmaps four times the
// limit in blocks that each take fresh address space, then writes and
// gives back a page in every 2 MiB of four times the limit, and runs under
// the limit as natively. The chunks it gave back are reclaimed at the
// limit (guestmem/hold.go; the last part cannot finish otherwise);
// before, the first part died of Go's "out of memory".
func TestMemoryCycle(t *testing.T) {
	testenv.RequireKVM(t)
	bin := guest(t, "memlimit")
	args := []string{"cycle", "512"}
	nat := native(t, bin, args, nil)
	vm, res := boot(t, bin, args, nil, 128<<20)
	for world, o := range map[string]outcome{"native": nat, "atoll": vm} {
		if o.code != 0 || o.stdout != "cycled 524 MiB\nmapped and unmapped 540 MiB\ntouched a page in each 2 MiB of 512 MiB\n" {
			t.Errorf("%s: exit %d, stdout %q; stderr:\n%.2000s", world, o.code, o.stdout, o.stderr)
		}
	}
	t.Logf("%s", strings.TrimSpace(res.Stats.String()[strings.Index(res.Stats.String(), "guest memory"):]))
	if res.Stats.Reclaimed == 0 || res.Stats.PeakHeld > 128<<20 {
		t.Errorf("%d chunks reclaimed, %d MiB held at most: the guest did not cycle through more than its limit, or held more", res.Stats.Reclaimed, res.Stats.PeakHeld>>20)
	}
}

// TestBigReservations checks that 4 GiB mappings, read-only and
// PROT_NONE, succeed under --mem 256M (as starlark's does), and that
// reading the first costs only the chunks read.
func TestBigReservations(t *testing.T) {
	testenv.RequireKVM(t)
	bin := guest(t, "memlimit")
	vm, _ := boot(t, bin, []string{"reserve"}, nil, 256<<20)
	if vm.code != 0 || vm.stdout != "read 16 pages of 4 GiB, sum 0\nreserved and released 8 GiB\n" {
		t.Errorf("exit %d, stdout %q; stderr:\n%.2000s", vm.code, vm.stdout, vm.stderr)
	}
}

// TestMemoryHog checks that a guest out to make the host commit memory —
// it maps all the address space it can read-write and writes every page
// — is stopped at its limit with a report, and that the monitor's own
// host memory stays below the limit plus hostOverhead.
func TestMemoryHog(t *testing.T) {
	testenv.RequireKVM(t)
	const mem = 128 << 20
	bin := guest(t, "memlimit")
	image, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := runVM(t, bin, monitor.Config{Image: image, Name: "memlimit", Args: []string{"hog"},
		MemBytes: mem, CPUs: 2, Stdout: f, Stderr: f, Log: f, MeasureMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(f.Name())
	out := string(b)
	if res.ExitCode != monitor.ExitOutOfMemory || !strings.Contains(out, "guest out of memory: it holds 128 MiB") {
		t.Errorf("exit %d, want %d with a report:\n%.2000s", res.ExitCode, monitor.ExitOutOfMemory, out)
	}
	var gib int
	if _, err := fmt.Sscanf(out, "mapped %d GiB", &gib); err != nil || gib < 8 {
		t.Errorf("the guest mapped %d GiB (%v), want most of its arena:\n%.2000s", gib, err, out)
	}
	if res.Memory == nil {
		t.Fatal("no host memory measured")
	}
	t.Logf("peak RSS %d MiB under --mem %d MiB", res.Memory.PeakRSS>>20, mem>>20)
	if res.Memory.PeakRSS > mem+hostOverhead {
		t.Errorf("peak RSS %d MiB, over the limit (%d MiB) plus %d MiB", res.Memory.PeakRSS>>20, mem>>20, hostOverhead>>20)
	}
}

// hostOverhead bounds the host memory of atoll run beyond --mem: the Go
// runtime and the monitor's own data, the image's pages, the page tables
// (docs/threat-model.md).
const hostOverhead = 64 << 20

// TestHostileGuest passes bad pointers and lengths to every emulated call
// that takes one: each must fail and the VM must carry on.
func TestHostileGuest(t *testing.T) {
	testenv.RequireKVM(t)
	vm, _ := boot(t, guest(t, "hostile"), nil, nil, 512<<20)
	if vm.code != 0 || !strings.HasSuffix(vm.stdout, "survived\n") || strings.Contains(vm.stdout, "UNEXPECTED") {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%.2000s", vm.code, vm.stdout, vm.stderr)
	}
	if n := strings.Count(vm.stdout, "bad address"); n < 20 {
		t.Errorf("only %d calls failed with EFAULT:\n%s", n, vm.stdout)
	}
}

// TestGuestClock checks that the guest's clock (the vDSO) is monotonic
// across goroutines and agrees with the host's wall clock.
func TestGuestClock(t *testing.T) {
	testenv.RequireKVM(t)
	vm, res := boot(t, guest(t, "clock"), nil, nil, 512<<20)
	end := time.Now()
	var unixNano int64
	if _, err := fmt.Sscanf(vm.stdout[strings.LastIndex(vm.stdout, "unix "):], "unix %d", &unixNano); err != nil ||
		!strings.Contains(vm.stdout, "monotonic ok: true") || vm.code != 0 {
		t.Fatalf("exit %d, stdout %q (%v)", vm.code, vm.stdout, err)
	}
	if d := end.Sub(time.Unix(0, unixNano)); d < 0 || d > 5*time.Second {
		t.Errorf("guest wall clock is %v behind the host's", d)
	}
	if n := res.Stats.Syscalls["clock_gettime"]; n > 10 {
		t.Errorf("%d clock_gettime exits for 800,000 clock reads: the vDSO is not used", n)
	}
}

// TestGuestRandom checks that crypto/rand is answered by the vDSO's
// getrandom: 40,000 reads cost at most one getrandom exit per thread (each
// thread's generator state takes one key; the monitor rekeys them only
// every minute).
func TestGuestRandom(t *testing.T) {
	testenv.RequireKVM(t)
	vm, res := boot(t, guest(t, "random"), nil, nil, 512<<20)
	if vm.code != 0 || vm.stdout != "distinct: true zero: false\nlarge read filled: true\n" {
		t.Fatalf("exit %d, stdout %q, stderr %.2000s", vm.code, vm.stdout, vm.stderr)
	}
	threads := res.Stats.Syscalls["clone"] + 1
	if n := res.Stats.Syscalls["getrandom"]; n == 0 || n > threads {
		t.Errorf("%d getrandom exits for 40,000 reads on %d threads", n, threads)
	}
}

// TestCrashReport checks the monitor's report for a death Go cannot
// report itself: cause, registers, a symbolized backtrace, status 128+11.
func TestCrashReport(t *testing.T) {
	testenv.RequireKVM(t)
	vm, _ := boot(t, guest(t, "crash"), nil, nil, 512<<20)
	if vm.code != 128+11 {
		t.Errorf("exit status %d, want 139", vm.code)
	}
	for _, want := range []string{"guest crashed", "SIGSEGV", "address 0x10", "rip 0x", "rsp 0x", "backtrace", "main.poke", "main.main", "runtime.main"} {
		if !strings.Contains(vm.stderr, want) {
			t.Errorf("crash report lacks %q:\n%s", want, vm.stderr)
		}
	}
}

// TestCPUs checks that --cpus sets what the guest runtime sees.
func TestCPUs(t *testing.T) {
	testenv.RequireKVM(t)
	bin := guest(t, "gomaxprocs")
	for _, n := range []int{1, 3} {
		image, _ := os.ReadFile(bin)
		out, err := os.Create(filepath.Join(t.TempDir(), "out"))
		if err != nil {
			t.Fatal(err)
		}
		res, err := runVM(t, bin, monitor.Config{Image: image, Name: "gomaxprocs", MemBytes: 256 << 20, CPUs: n, Stdout: out, Stderr: out})
		out.Close()
		b, _ := os.ReadFile(out.Name())
		if err != nil || res.ExitCode != 0 || string(b) != fmt.Sprintf("GOMAXPROCS %d\n", n) {
			t.Errorf("--cpus %d: %v, exit %d, output %q", n, err, res.ExitCode, b)
		}
	}
}

// TestChaosGuest boots guests that make thousands of random system calls.
// The guest may crash itself; the monitor must answer every call and end
// the run with a result (a monitor panic fails the whole test binary).
func TestChaosGuest(t *testing.T) {
	testenv.RequireKVM(t)
	bin := guest(t, "chaos")
	for seed := 1; seed <= 8; seed++ {
		vm, _ := boot(t, bin, []string{fmt.Sprint(seed)}, nil, 256<<20)
		t.Logf("seed %d: exit %d, %s", seed, vm.code, strings.TrimSpace(vm.stdout))
		if vm.code != 0 && !strings.Contains(vm.stderr, "goroutine") && !strings.Contains(vm.stderr, "guest crashed") && !strings.Contains(vm.stderr, "killed") {
			t.Errorf("seed %d: exit %d without a report:\n%.2000s", seed, vm.code, vm.stderr)
		}
	}
}

// TestOutOfMemory checks that touching memory past the limit ends the VM
// as Linux's OOM killer ends a process, with a report, not a monitor
// failure.
func TestOutOfMemory(t *testing.T) {
	testenv.RequireKVM(t)
	vm, _ := boot(t, guest(t, "oom"), nil, nil, 128<<20)
	if vm.code != monitor.ExitOutOfMemory || !strings.Contains(vm.stderr, "atoll: guest out of memory: it holds 128 MiB, all its --mem 128 MiB") {
		t.Fatalf("exit %d, stderr:\n%.2000s", vm.code, vm.stderr)
	}
}

// TestHostMemory checks that a VM's host memory, measured when the
// guest ends, counts the pages the guest wrote: goroutines writes 100 MB.
func TestHostMemory(t *testing.T) {
	testenv.RequireKVM(t)
	bin := guest(t, "goroutines")
	image, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	res, err := runVM(t, bin, monitor.Config{Image: image, Name: "goroutines",
		MemBytes: 512 << 20, Stdout: null, Stderr: null, Log: null, MeasureMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	m := res.Memory
	if m == nil {
		t.Fatal("no host memory measured")
	}
	if m.PeakRSS < 100<<20 || m.Anonymous > m.RSS || m.PSS > m.RSS || m.RSS > m.PeakRSS || m.Anonymous == 0 {
		t.Errorf("implausible host memory for a guest that wrote 100 MB: %+v", *m)
	}
}

// TestBootExits checks the exit statistics a boot reports and that a boot
// stays within a generous bound, so a regression that multiplies exits
// shows up here before it shows up in benchmarks.
func TestBootExits(t *testing.T) {
	testenv.RequireKVM(t)
	_, res := boot(t, guest(t, "hello"), nil, nil, 512<<20)
	if res.Stats.Total == 0 || res.Stats.Syscalls["write"] == 0 {
		t.Fatalf("implausible statistics: %v", res.Stats)
	}
	// The trampoline answers these in the guest.
	for _, call := range []string{"rt_sigaction", "rt_sigprocmask", "sigaltstack", "gettid", "sched_getaffinity"} {
		if n := res.Stats.Syscalls[call]; n != 0 {
			t.Errorf("%d %s exits: the trampoline's fast path is not taken", n, call)
		}
	}
	if res.Stats.Total > 1000 {
		t.Errorf("hello took %d exits to boot:\n%v", res.Stats.Total, res.Stats)
	}
	// The timeline's stages come in order; the VM is released before
	// Run returns unless that took over a second.
	tl := res.Timeline
	if tl.VM <= 0 || tl.Guest < tl.VM || tl.FirstOutput < tl.Guest || tl.Exit < tl.FirstOutput || tl.Closed != 0 && tl.Closed < tl.Exit {
		t.Errorf("timeline out of order: %+v", tl)
	}
	if s := tl.String(); !strings.HasPrefix(s, "timeline (ms from monitor.Run): vm ") || !strings.Contains(s, " first-output ") {
		t.Errorf("timeline reads %q", s)
	}
}

// TestMonitorPagesAttacked has a guest jump into the monitor's CPL-0 stub,
// and overwrite its IDT and then fault: a crash report (or, where the IDT
// is not used, the guest's own signal), never a monitor failure.
func TestMonitorPagesAttacked(t *testing.T) {
	testenv.RequireKVM(t)
	bin := guest(t, "privileged")
	vm, _ := boot(t, bin, []string{"stub"}, nil, 512<<20)
	if vm.code != monitor.ExitVMFault || !strings.Contains(vm.stderr, "guest crashed") || !strings.Contains(vm.stderr, "monitor-owned code") {
		t.Errorf("jump into the stub: exit %d\n%s", vm.code, vm.stderr)
	}
	vm, _ = boot(t, bin, []string{"idt"}, nil, 512<<20)
	recovered := vm.code == 0 && vm.stdout == "idt: recovered true\n"
	reported := vm.code == monitor.ExitVMFault && strings.Contains(vm.stderr, "triple fault")
	if !recovered && !reported {
		t.Errorf("IDT overwritten: exit %d, stdout %q\n%s", vm.code, vm.stdout, vm.stderr)
	}
}
