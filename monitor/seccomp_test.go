package monitor

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"atoll.dev/atoll/internal/testenv"
	"atoll.dev/atoll/monitor/kvm"
)

// seccompProbeEnv names the probe a re-executed test binary runs
// (TestSeccompFilter).
const seccompProbeEnv = "ATOLL_TEST_SECCOMP_PROBE"

// seccompProbe is a host call made under the filter: allowed ones must
// leave the process alive (and print what they returned), others must
// kill it.
type seccompProbe struct {
	name    string
	allowed bool
	call    func() string
}

// sys makes a raw system call and describes its result.
func sys(nr uintptr, args ...uintptr) string {
	var a [6]uintptr
	copy(a[:], args)
	r, _, e := unix.Syscall6(nr, a[0], a[1], a[2], a[3], a[4], a[5])
	if e != 0 {
		return "errno " + unix.ErrnoName(e)
	}
	return fmt.Sprintf("returned %d", r)
}

// devNull opens /dev/null, a descriptor no ioctl applies to.
func devNull() uintptr {
	fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		panic(err)
	}
	return uintptr(fd)
}

// socketProbe makes a socket and closes it.
func socketProbe(family, typ, proto int) func() string {
	return func() string {
		fd, err := unix.Socket(family, typ, proto)
		if err != nil {
			return err.Error()
		}
		unix.Close(fd)
		return "made"
	}
}

// mmapProbe maps a page with prot.
func mmapProbe(prot int) func() string {
	return func() string {
		b, err := unix.Mmap(-1, 0, 4096, prot, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err != nil {
			return err.Error()
		}
		unix.Munmap(b)
		return "mapped"
	}
}

// page maps a read-write page for probes that need one.
func page() []byte {
	b, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		panic(err)
	}
	return b
}

var seccompProbes = []seccompProbe{
	// Allowed, with the arguments the monitor and the Go runtime use.
	{"ioctl-KVM_RUN", true, func() string { return sys(unix.SYS_IOCTL, devNull(), uintptr(kvm.Requests["KVM_RUN"]), 0) }},
	{"ioctl-KVM-all", true, func() string {
		fd, out := devNull(), ""
		for _, r := range kvmRequests {
			out += r + " " + sys(unix.SYS_IOCTL, fd, uintptr(kvm.Requests[r]), 0) + ", "
		}
		return out
	}},
	{"ioctl-FIONREAD", true, func() string {
		var n int32
		return sys(unix.SYS_IOCTL, devNull(), unix.SIOCINQ, uintptr(unsafe.Pointer(&n)))
	}},
	{"socket-tcp6", true, socketProbe(unix.AF_INET6, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)},
	{"socket-udp4", true, socketProbe(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)},
	{"mmap-rw", true, mmapProbe(unix.PROT_READ | unix.PROT_WRITE)},
	{"madvise-DONTNEED", true, func() string { return errorText(unix.Madvise(page(), unix.MADV_DONTNEED)) }},
	{"prctl-PR_SET_VMA", true, func() string {
		p, name := page(), []byte("probe\x00")
		return sys(unix.SYS_PRCTL, unix.PR_SET_VMA, unix.PR_SET_VMA_ANON_NAME, uintptr(unsafe.Pointer(&p[0])), 4096, uintptr(unsafe.Pointer(&name[0])))
	}},
	{"clone3-ENOSYS", true, func() string { return sys(unix.SYS_CLONE3, 0, 0) }},
	{"tgkill-self", true, func() string { return sys(unix.SYS_TGKILL, uintptr(unix.Getpid()), uintptr(unix.Gettid()), 0) }},
	{"kill-self", true, func() string { return sys(unix.SYS_KILL, uintptr(unix.Getpid()), 0) }},
	{"restart_syscall", true, func() string { return sys(unix.SYS_RESTART_SYSCALL) }},
	{"threads-confined", true, threadsConfined},
	// Forbidden: calls the monitor never makes, and allowed calls with
	// other arguments.
	{"execve", false, func() string {
		p := []byte("/nonexistent/atoll\x00")
		return sys(unix.SYS_EXECVE, uintptr(unsafe.Pointer(&p[0])), 0, 0)
	}},
	{"ptrace", false, func() string { return sys(unix.SYS_PTRACE, unix.PTRACE_PEEKDATA, 1, 0, 0) }},
	{"setuid", false, func() string { return sys(unix.SYS_SETUID, uintptr(unix.Getuid())) }},
	{"socketpair", false, func() string {
		var fds [2]int32
		return sys(unix.SYS_SOCKETPAIR, unix.AF_UNIX, unix.SOCK_STREAM, 0, uintptr(unsafe.Pointer(&fds)))
	}},
	{"ioctl-TIOCGWINSZ", false, func() string {
		var ws unix.Winsize
		return sys(unix.SYS_IOCTL, 2, unix.TIOCGWINSZ, uintptr(unsafe.Pointer(&ws)))
	}},
	{"ioctl-KVM_CREATE_VM", false, func() string { return sys(unix.SYS_IOCTL, devNull(), uintptr(kvm.Requests["KVM_CREATE_VM"]), 0) }},
	{"socket-AF_PACKET", false, socketProbe(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)},
	{"socket-AF_UNIX", false, socketProbe(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)},
	{"socket-SOCK_RAW", false, socketProbe(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMP)},
	{"socket-ICMP", false, socketProbe(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMP)},
	{"clone-process", false, func() string {
		r, _, e := unix.RawSyscall6(unix.SYS_CLONE, uintptr(unix.SIGCHLD), 0, 0, 0, 0, 0)
		if r == 0 && e == 0 {
			unix.RawSyscall(unix.SYS_EXIT_GROUP, 0, 0, 0) // the child, had the filter let it be
		}
		return fmt.Sprintf("returned %d, errno %d", r, e)
	}},
	{"mmap-exec", false, mmapProbe(unix.PROT_READ | unix.PROT_EXEC)},
	{"mprotect-exec", false, func() string { return errorText(unix.Mprotect(page(), unix.PROT_READ|unix.PROT_EXEC)) }},
	{"madvise-DONTFORK", false, func() string { return errorText(unix.Madvise(page(), unix.MADV_DONTFORK)) }},
	{"prctl-GET_DUMPABLE", false, func() string { return sys(unix.SYS_PRCTL, unix.PR_GET_DUMPABLE) }},
	{"kill-init", false, func() string { return sys(unix.SYS_KILL, 1, 0) }},
	{"tgkill-init", false, func() string { return sys(unix.SYS_TGKILL, 1, 1, 0) }},
	// getpid through the 32-bit system-call ABI, which the filter's
	// architecture check refuses whatever the call.
	{"int80-getpid", false, func() string { return fmt.Sprint(testenv.CallSysV(int80Code, 0, 0, 0, 0, 0)) }},
}

// int80Code is machine code mapped executable before the filter (which
// forbids mapping it after): mov eax, 20 (getpid in the i386 ABI);
// int 0x80; ret.
var int80Code uintptr

// mapInt80Code maps int80Code.
func mapInt80Code() {
	b, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		panic(err)
	}
	copy(b, []byte{0xb8, 20, 0, 0, 0, 0xcd, 0x80, 0xc3})
	if err := unix.Mprotect(b, unix.PROT_READ|unix.PROT_EXEC); err != nil {
		panic(err)
	}
	int80Code = uintptr(unsafe.Pointer(&b[0]))
}

// errorText describes err, nil included.
func errorText(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

// threadsConfined reports whether every thread of the process has the
// filter (TSYNC) and no_new_privs, from /proc.
func threadsConfined() string {
	// No os.Stat: the monitor never needs newfstatat once confined.
	d, err := os.Open("/proc/self/task")
	if err != nil {
		return err.Error()
	}
	tasks, err := d.Readdirnames(-1)
	d.Close()
	if err != nil || len(tasks) < 2 {
		return fmt.Sprintf("tasks %v: %v", tasks, err)
	}
	for _, tid := range tasks {
		p := "/proc/self/task/" + tid + "/status"
		b, err := os.ReadFile(p)
		if err != nil {
			return err.Error()
		}
		for _, want := range []string{"\nSeccomp:\t2\n", "\nSeccomp_filters:\t2\n", "\nNoNewPrivs:\t1\n"} {
			if !strings.Contains(string(b), want) {
				return fmt.Sprintf("%s lacks %q", p, want)
			}
		}
	}
	return fmt.Sprintf("all %d threads confined", len(tasks))
}

// runSeccompProbe is the re-executed test binary: it installs the filter
// (mode "kill" or "trap") and makes probe name's call on a thread that
// existed before, which the filter reached through TSYNC.
func runSeccompProbe(spec string) {
	mode, name, _ := strings.Cut(spec, ":")
	var p *seccompProbe
	for i := range seccompProbes {
		if seccompProbes[i].name == name {
			p = &seccompProbes[i]
		}
	}
	if p == nil {
		fmt.Println("no probe", name)
		os.Exit(3)
	}
	mapInt80Code()
	ready, do, done := make(chan struct{}), make(chan struct{}), make(chan string)
	go func() {
		runtime.LockOSThread()
		close(ready)
		<-do
		done <- p.call()
	}()
	<-ready
	m := SeccompKill
	if mode == "trap" {
		m = SeccompTrap
	}
	if _, err := confine(m); err != nil {
		fmt.Println(err)
		os.Exit(3)
	}
	fmt.Println("calling", name)
	close(do)
	fmt.Println(name+":", <-done)
	fmt.Println("survived")
	testenv.ExitConfined(0)
}

// TestSeccompFilter confines a child process with the monitor's filter,
// as atoll run does, and has it make calls the monitor makes (it must
// live) and calls it must not (the process must die of SIGSYS, at once).
// The call is made on another thread than the one that installed the
// filter.
func TestSeccompFilter(t *testing.T) {
	if spec := os.Getenv(seccompProbeEnv); spec != "" {
		runSeccompProbe(spec)
	}
	probe := func(t *testing.T, spec string) (string, error) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestSeccompFilter$")
		cmd.Env = testenv.ChildEnv(seccompProbeEnv + "=" + spec)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	for _, p := range seccompProbes {
		t.Run(p.name, func(t *testing.T) {
			out, err := probe(t, "kill:"+p.name)
			var ee *exec.ExitError
			killed := errors.As(err, &ee) && ee.Sys().(syscall.WaitStatus).Signaled() && ee.Sys().(syscall.WaitStatus).Signal() == syscall.SIGSYS
			switch {
			case !strings.Contains(out, "calling "+p.name):
				t.Fatalf("the child did not get to the call: %v\n%s", err, out)
			case p.allowed && (err != nil || !strings.HasSuffix(out, "survived\n")):
				t.Errorf("an allowed call: %v\n%s", err, out)
			case !p.allowed && !killed:
				t.Errorf("a forbidden call left the process alive: %v\n%s", err, out)
			case !p.allowed && strings.Contains(out, p.name+":"):
				t.Errorf("a forbidden call returned:\n%s", out)
			}
			t.Logf("%s", strings.TrimSpace(out))
		})
	}
	t.Run("results", func(t *testing.T) {
		for name, want := range map[string]string{
			"clone3-ENOSYS":    "errno ENOSYS",
			"threads-confined": "threads confined",
			"ioctl-KVM_RUN":    "errno ENOTTY",
			"ioctl-KVM-all":    "KVM_IOEVENTFD errno ENOTTY",
		} {
			if out, _ := probe(t, "kill:"+name); !strings.Contains(out, want) {
				t.Errorf("%s: want %q:\n%s", name, want, out)
			}
		}
	})
	t.Run("trap", func(t *testing.T) {
		// A trapped call crashes the Go runtime with a traceback that
		// names the caller, and the process exits 2.
		out, err := probe(t, "trap:ptrace")
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(out, "SIGSYS: bad system call") || !strings.Contains(out, "monitor.sys(") {
			t.Errorf("trap: %v\n%s", err, out)
		}
	})
}

// TestSeccompInfo checks the filter's description and that it assembles
// with every call name the library knows.
func TestSeccompInfo(t *testing.T) {
	info, err := Seccomp()
	if err != nil {
		t.Fatal(err)
	}
	if info.Calls != len(seccompCalls) || info.Checked < 9 || info.CallInstructions < info.Calls || info.ArgInstructions < 4*info.Checked || info.CallInstructions+info.ArgInstructions > 1024 {
		t.Errorf("implausible filter: %+v", info)
	}
	if s, want := info.String(), fmt.Sprintf("%d host calls allowed, %d with argument checks; %d BPF instructions", info.Calls, info.Checked, info.CallInstructions+info.ArgInstructions); !strings.Contains(s, want) {
		t.Errorf("String() = %q, want it to contain %q", s, want)
	}
	if s := (SeccompInfo{Mode: SeccompTrap}).String(); !strings.Contains(s, "traceback") {
		t.Errorf("trap mode's String() = %q", s)
	}
	// The calls with argument checks come first, as the filter tests
	// them first (seccompPolicy) and the documentation lists the calls
	// in the filter's order.
	for i := 1; i < len(seccompCalls); i++ {
		if seccompCalls[i].check != nil && seccompCalls[i-1].check == nil {
			t.Errorf("%s has an argument check but comes after %s, which has none", seccompCalls[i].name, seccompCalls[i-1].name)
		}
	}
	seen := map[string]bool{}
	for _, c := range append(seccompCalls, seccompENOSYS...) {
		if seen[c.name] || c.who == "" {
			t.Errorf("%s: listed twice, or without who needs it", c.name)
		}
		seen[c.name] = true
	}
}

// The generated part of docs/threat-model.md lies between these lines.
const (
	seccompDocBegin = "<!-- BEGIN seccomp filter: generated from monitor/seccomp.go by `go generate ./monitor`; do not edit -->\n"
	seccompDocEnd   = "<!-- END seccomp filter -->\n"
)

// seccompDoc is the filter's call list in Markdown, with its size.
func seccompDoc(t *testing.T) string {
	info, err := Seccomp()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "The filter allows **%d host calls**, %d of them with argument checks, and is **%d BPF instructions** long: %d for the call list, %d for the argument checks. In the order it tests them:\n\n",
		info.Calls, info.Checked, info.CallInstructions+info.ArgInstructions, info.CallInstructions, info.ArgInstructions)
	b.WriteString("| call | who makes it once the guest runs | arguments allowed |\n| --- | --- | --- |\n")
	for _, c := range seccompCalls {
		args := "any"
		if c.check != nil {
			args = c.check.doc
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", c.name, c.who, strings.ReplaceAll(args, "|", `\|`))
	}
	b.WriteString("\nAnswered `ENOSYS` without being made:\n\n")
	for _, c := range seccompENOSYS {
		fmt.Fprintf(&b, "- `%s`: %s.\n", c.name, c.who)
	}
	return b.String()
}

// TestSeccompDocMatchesFilter fails when docs/threat-model.md's call list
// differs from the filter; -update rewrites it.
func TestSeccompDocMatchesFilter(t *testing.T) {
	const path = "../docs/threat-model.md"
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(doc)
	i, j := strings.Index(s, seccompDocBegin), strings.Index(s, seccompDocEnd)
	if i < 0 || j < i {
		t.Fatalf("%s lacks the markers of the filter's call list", path)
	}
	want := s[:i+len(seccompDocBegin)] + seccompDoc(t) + s[j:]
	if want == s {
		return
	}
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("%s's seccomp call list differs from the filter: run go generate ./monitor", path)
}

// seccompData is struct seccomp_data as the x/net/bpf VM reads it: each
// 32-bit word big-endian, so that its loads see what the kernel's
// native-endian loads see.
func seccompData(arch, nr uint32, args [6]uint64) []byte {
	b := make([]byte, 64)
	binary.BigEndian.PutUint32(b[seccompDataNr:], nr)
	binary.BigEndian.PutUint32(b[seccompDataArch:], arch)
	for i, a := range args {
		binary.BigEndian.PutUint32(b[seccompDataArgs+8*i:], uint32(a))
		binary.BigEndian.PutUint32(b[seccompDataArgs+8*i+4:], uint32(a>>32))
	}
	return b
}

// stricter is the verdict the kernel keeps of two filters' (the lower
// action, as a signed number: KILL_PROCESS first, ALLOW last).
func stricter(a, b uint32) uint32 {
	if int32(a&unix.SECCOMP_RET_ACTION_FULL) < int32(b&unix.SECCOMP_RET_ACTION_FULL) {
		return a
	}
	return b
}

// seccompVerdict is what the list says of a call, written plainly: the
// verdict both programs together must reach.
func seccompVerdict(pid int, arch, nr uint32, args [6]uint64) uint32 {
	const kill, enosys = unix.SECCOMP_RET_KILL_PROCESS, unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
	switch {
	case arch != auditArchX8664:
		return kill
	case nr >= x32SyscallBit:
		return enosys
	}
	for _, c := range seccompENOSYS {
		if syscallNumbers[c.name] == nr {
			return enosys
		}
	}
	for _, c := range seccompCalls {
		if syscallNumbers[c.name] != nr {
			continue
		}
		if c.check == nil {
			return unix.SECCOMP_RET_ALLOW
		}
		rules := c.check.rules
		if c.check.ownPID {
			rules = []argRule{{{0, seccomp.Equal, uint64(pid)}}}
		}
		for _, r := range rules {
			pass := true
			for _, t := range r {
				a := args[t.arg]
				switch t.op {
				case seccomp.Equal:
					pass = pass && a == t.v
				case seccomp.BitsSet:
					pass = pass && a&t.v == t.v
				case seccomp.BitsNotSet:
					pass = pass && a&t.v == 0
				}
			}
			if pass {
				return unix.SECCOMP_RET_ALLOW
			}
		}
		return kill
	}
	return kill
}

// TestSeccompPrograms runs both programs of the filter in a BPF
// interpreter on every call number, with the arguments each check allows,
// those values changed by a bit or in their high half, random ones, and
// high halves that are call numbers (a check that failed and went on
// comparing an argument with call numbers would let those through), and
// requires the verdict the list says.
func TestSeccompPrograms(t *testing.T) {
	const pid = 4242
	calls, args, err := seccompFilters(pid, seccomp.ActionKillProcess)
	if err != nil {
		t.Fatal(err)
	}
	var vms []*bpf.VM
	for _, p := range [][]bpf.Instruction{calls, args} {
		vm, err := bpf.NewVM(p)
		if err != nil {
			t.Fatal(err)
		}
		vms = append(vms, vm)
	}
	n := 0
	check := func(arch, nr uint32, a [6]uint64) {
		t.Helper()
		n++
		got := uint32(unix.SECCOMP_RET_ALLOW)
		for _, vm := range vms {
			v, err := vm.Run(seccompData(arch, nr, a))
			if err != nil {
				t.Fatal(err)
			}
			got = stricter(got, uint32(v))
		}
		if want := seccompVerdict(pid, arch, nr, a); got != want {
			t.Errorf("arch %#x, call %d, arguments %#x: verdict %#x, want %#x", arch, nr, a, got, want)
		}
	}
	// The values the checks name, and call numbers.
	var values []uint64
	for _, c := range seccompCalls {
		if c.check == nil {
			continue
		}
		for _, r := range c.check.rules {
			for _, t := range r {
				values = append(values, t.v)
			}
		}
	}
	values = append(values, pid, 0, 1, ^uint64(0))
	rng := rand.New(rand.NewPCG(1, 2))
	for nr := uint32(0); nr < 500; nr++ {
		check(auditArchX8664, nr, [6]uint64{})
		check(auditArchX8664|1, nr, [6]uint64{})
		check(auditArchX8664, nr|x32SyscallBit, [6]uint64{})
		for range 20 {
			var a [6]uint64
			for i := range a {
				switch rng.IntN(4) {
				case 0:
					a[i] = rng.Uint64()
				case 1:
					a[i] = values[rng.IntN(len(values))]
				case 2:
					a[i] = values[rng.IntN(len(values))] ^ 1<<rng.IntN(64)
				case 3:
					a[i] = values[rng.IntN(len(values))] | uint64(rng.IntN(500))<<32
				}
			}
			check(auditArchX8664, nr, a)
		}
	}
	for _, c := range seccompCalls {
		if c.check == nil {
			continue
		}
		nr := syscallNumbers[c.name]
		rules := c.check.rules
		if c.check.ownPID {
			rules = []argRule{{{0, seccomp.Equal, pid}}}
		}
		for _, r := range rules {
			var a [6]uint64
			for _, t := range r {
				a[t.arg] = t.v
			}
			check(auditArchX8664, nr, a) // allowed
			for _, t := range r {
				for other := uint32(0); other < 500; other++ {
					b := a
					b[t.arg] |= uint64(other) << 32
					check(auditArchX8664, nr, b)
					b = a
					b[t.arg] = uint64(other)
					check(auditArchX8664, nr, b)
				}
			}
		}
	}
	t.Logf("%d calls judged", n)
}
