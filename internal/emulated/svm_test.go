//go:build svm

package emulated

import (
	"bytes"
	"context"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"atoll.dev/atoll/internal/testenv"
)

// repo is the repository's root, from this package's directory.
const repo = "../.."

// svmCase is one atoll run inside the emulated machine.
type svmCase struct {
	name   string
	cmd    string   // the shell command inside the machine (atoll run ...)
	guest  string   // the guest binary under g/, for a native run to compare with
	args   []string // its arguments
	env    []string // its environment, natively
	native bool     // stdout and exit status must equal the native run's
	check  func(t *testing.T, r result)
}

// result is how one case ended inside the machine.
type result struct {
	stdout, stderr string
	code           int
}

// TestEmulatedSVM boots unikernels on Linux's kvm_amd, the hardware exit
// path (monitor/hwstub.go), inside QEMU's full emulation of an AMD CPU
// with SVM: Debian's kernel and kvm modules in a busybox initramfs, the
// guests run one after another by its init, the results read back from the
// serial console and compared with the same programs run natively here.
// Emulation is slow (an exit costs ~50–75 µs, a boot of the machine ~8 s):
// the cases cover the exit path, not speed.
func TestEmulatedSVM(t *testing.T) {
	testenv.RequireCommands(t, "qemu-system-x86_64", "cpio", "gzip")
	kernel, modDir := debianKernel(t)
	busybox := staticBusybox(t)
	work := t.TempDir()
	root := filepath.Join(work, "root")
	for _, d := range []string{"bin", "g", "mods", "proc", "sys", "dev", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	goBuild(t, filepath.Join(root, "atoll"), "./cmd/atoll")
	guests := []string{"hello", "goroutines", "args", "exitcode", "nilrecover", "nilpanic", "preempt", "sigaction",
		"timenow", "clock", "crash", "hostile", "privileged", "getpid", "random", "fastpath", "memlimit", "sharedmap"}
	for _, g := range guests {
		goBuild(t, filepath.Join(root, "g", g), "./internal/testguests/"+g)
	}
	atollBuild(t, filepath.Join(root, "atoll"), filepath.Join(root, "devices.img"), "./internal/testguests/devices")
	atollBuild(t, filepath.Join(root, "atoll"), filepath.Join(root, "www.img"), "./examples/www")
	copyModules(t, modDir, filepath.Join(root, "mods"))
	if err := copyFile(busybox, filepath.Join(root, "bin", "busybox"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"sh", "mount", "insmod", "cat", "echo", "poweroff", "sleep", "wget", "ip", "kill", "dmesg", "grep", "head"} {
		os.Symlink("busybox", filepath.Join(root, "bin", a))
	}

	cases := svmCases()
	if err := os.WriteFile(filepath.Join(root, "init"), []byte(initScript(cases)), 0o755); err != nil {
		t.Fatal(err)
	}
	initrd := filepath.Join(work, "initramfs.gz")
	pack := exec.Command("sh", "-c", "find . | cpio -o -H newc --quiet | gzip -1 > "+initrd)
	pack.Dir = root
	if out, err := pack.CombinedOutput(); err != nil {
		t.Fatalf("initramfs: %v\n%s", err, out)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	start := time.Now()
	q := exec.CommandContext(ctx, "qemu-system-x86_64", "-accel", "tcg", "-cpu", "max,vendor=AuthenticAMD,+svm",
		"-m", "3G", "-smp", "1", "-nographic", "-no-reboot", "-nodefaults", "-serial", "stdio",
		"-kernel", kernel, "-initrd", initrd, "-append", "console=ttyS0 panic=-1 loglevel=4 mitigations=off")
	console, err := q.CombinedOutput()
	t.Logf("emulated machine ran for %v", time.Since(start).Round(time.Second))
	log := strings.ReplaceAll(string(console), "\r", "")
	if err := os.WriteFile(filepath.Join(work, "console.log"), []byte(log), 0o644); err == nil {
		t.Logf("console: %s", filepath.Join(work, "console.log"))
	}
	if err != nil {
		t.Fatalf("qemu: %v\n%s", err, tail(log, 4000))
	}
	if !regexp.MustCompile(`@@SVM [1-9]`).MatchString(log) {
		t.Fatalf("kvm_amd did not come up in the emulated machine:\n%s", tail(log, 4000))
	}
	got := parseResults(log)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, ok := got[c.name]
			if !ok {
				t.Fatalf("no result on the console:\n%s", tail(log, 3000))
			}
			if c.native {
				want := runNative(t, filepath.Join(root, "g", c.guest), c.args, c.env)
				if r.stdout != want.stdout || r.code != want.code {
					t.Errorf("differs from the native run:\natoll:  exit %d, stdout %q\nnative: exit %d, stdout %q\natoll stderr:\n%s",
						r.code, r.stdout, want.code, want.stdout, r.stderr)
				}
			}
			if c.check != nil {
				c.check(t, r)
			}
			if t.Failed() {
				t.Logf("stderr:\n%s", r.stderr)
			}
		})
	}
	if s := regexp.MustCompile(`(?s)@@BEGIN stats\n.*?@@END`).FindString(log); s != "" {
		t.Logf("under emulation:\n%s", s)
	}
}

// sharedFile makes /tmp/shm, 8 KiB with "from the host" at 4096, for
// sharedmap.
const sharedFile = "head -c 4096 /dev/zero > /tmp/shm && echo -n 'from the host' >> /tmp/shm && head -c 4083 /dev/zero >> /tmp/shm"

// svmCases are the runs: the boot tests' guests, a block device, and
// examples/www answering through a port forward.
func svmCases() []svmCase {
	same := func(name string, args ...string) svmCase {
		return svmCase{name: name, guest: name, args: args, native: true,
			cmd: "/atoll run /g/" + name + " -- " + shellQuote(args...)}
	}
	contains := func(what string, wants ...string) func(*testing.T, result) {
		return func(t *testing.T, r result) {
			for _, w := range wants {
				if !strings.Contains(map[string]string{"stdout": r.stdout, "stderr": r.stderr}[what], w) {
					t.Errorf("%s lacks %q", what, w)
				}
			}
		}
	}
	args := same("args", "one", "two words")
	args.cmd = "/atoll run -e GREETING=hi /g/args -- one 'two words'"
	args.env = []string{"GREETING=hi"}
	hello := same("hello")
	hello.cmd = "/atoll run -v /g/hello"
	hello.check = contains("stderr", "exit path: hardware KVM")
	// crypto/rand through the vDSO: a getrandom exit per thread, its key.
	random := same("random")
	random.cmd = "/atoll run --stats /g/random"
	random.check = func(t *testing.T, r result) {
		count := func(call string) int {
			n := 0
			if m := regexp.MustCompile(call + ` +(\d+)`).FindStringSubmatch(r.stderr); m != nil {
				fmt.Sscan(m[1], &n)
			}
			return n
		}
		if n, threads := count("getrandom"), count("clone")+1; n == 0 || n > threads {
			t.Errorf("%d getrandom exits for 40,000 reads on %d threads:\n%s", n, threads, r.stderr)
		}
	}
	// Memory cycled through past the limit: chunks reclaimed, which
	// needs every vCPU's translations flushed (guestmem/hold.go).
	memlimit := same("memlimit", "cycle", "256")
	memlimit.cmd = "/atoll run --stats --mem 80M /g/memlimit -- cycle 256"
	memlimit.check = func(t *testing.T, r result) {
		m := regexp.MustCompile(`(\d+) chunks of 2 MiB reclaimed`).FindStringSubmatch(r.stderr)
		if m == nil || m[1] == "0" {
			t.Errorf("no chunks reclaimed:\n%s", r.stderr)
		}
	}
	nilpanic := same("nilpanic")
	nilpanic.check = contains("stderr", "invalid memory address or nil pointer dereference")
	return []svmCase{
		hello,
		same("goroutines"),
		args,
		same("exitcode", "3"),
		same("nilrecover"),
		nilpanic,
		same("preempt"),
		same("sigaction"),
		same("fastpath"),
		same("timenow"),
		same("privileged"),
		random,
		memlimit,
		{name: "clock", cmd: "/atoll run /g/clock", check: func(t *testing.T, r result) {
			if r.code != 0 || !strings.Contains(r.stdout, "monotonic ok: true") {
				t.Errorf("exit %d, stdout %q", r.code, r.stdout)
			}
		}},
		{name: "crash", cmd: "/atoll run /g/crash", check: func(t *testing.T, r result) {
			if r.code != 128+11 {
				t.Errorf("exit %d, want 139", r.code)
			}
			contains("stderr", "guest crashed", "SIGSEGV", "address 0x10", "backtrace", "main.poke", "runtime.main")(t, r)
		}},
		{name: "hostile", cmd: "/atoll run /g/hostile", check: func(t *testing.T, r result) {
			if r.code != 0 || !strings.HasSuffix(r.stdout, "survived\n") || strings.Contains(r.stdout, "UNEXPECTED") {
				t.Errorf("exit %d, stdout:\n%s", r.code, r.stdout)
			}
		}},
		// The monitor's own pages attacked: a crash report or a signal,
		// and the monitor lives to report it.
		{name: "stub", cmd: "/atoll run /g/privileged -- stub", check: func(t *testing.T, r result) {
			if r.code != 70 || !strings.Contains(r.stderr, "guest crashed") {
				t.Errorf("exit %d, want 70 with a crash report", r.code)
			}
		}},
		// The IDT is the monitor's, CPL 0 only: the program's write
		// faults, as on Linux, instead of handing it CPL 0.
		{name: "idt", cmd: "/atoll run /g/privileged -- idt", check: func(t *testing.T, r result) {
			if r.code != 0 || r.stdout != "idt: recovered true\n" {
				t.Errorf("exit %d, stdout %q: the IDT was writable", r.code, r.stdout)
			}
		}},
		// The thread blocks the fast paths write at CPL 0 are closed
		// to the program.
		{name: "threadblock", cmd: "/atoll run /g/privileged -- block", check: func(t *testing.T, r result) {
			if r.code != 0 || r.stdout != "block: recovered true\n" {
				t.Errorf("exit %d, stdout %q: the thread blocks were writable", r.code, r.stdout)
			}
		}},
		{name: "block", cmd: "/atoll run --block data=/tmp/disk /devices.img", check: func(t *testing.T, r result) {
			want := "device block data\nunaligned write refused: true\nread past the end refused: true\nblock ok\n"
			if r.code != 0 || r.stdout != want {
				t.Errorf("exit %d, stdout %q, want %q", r.code, r.stdout, want)
			}
		}},
		// A volume's file mapped shared: the host file's pages through
		// the hardware's nested paging, and a page past the end of the
		// file truncated under it.
		{name: "sharedmap", cmd: sharedFile + " && /atoll run --volume /tmp:/data /g/sharedmap -- /data/shm && " +
			sharedFile + " && /atoll run --volume /tmp:/data /g/sharedmap -- /data/shm shrink", check: func(t *testing.T, r result) {
			if r.code != 70 || r.stdout != "host wrote \"from the host\"\ntruncated\n" || !strings.Contains(r.stderr, "shared file mapping past its file's end") {
				t.Errorf("exit %d, stdout %q, want 70 after the two runs' output\nstderr:\n%s", r.code, r.stdout, r.stderr)
			}
		}},
		{name: "www", check: func(t *testing.T, r result) {
			if r.code != 128+15 || !strings.Contains(r.stdout, `"message":"hello from www"`) {
				t.Errorf("exit %d (want 143 after SIGTERM), body %q", r.code, r.stdout)
			}
		}},
		{name: "stats", cmd: "/atoll run --stats /g/hello && /atoll run --stats /g/getpid 2000", check: func(t *testing.T, r result) {
			if r.code != 0 || !strings.Contains(r.stderr, "exits:") {
				t.Errorf("exit %d", r.code)
			}
		}},
	}
}

// initScript is the machine's /init: load kvm_amd, run each case between
// markers, power off.
func initScript(cases []svmCase) string {
	var b strings.Builder
	b.WriteString(`#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
for m in /mods/*.ko; do insmod $m || echo "insmod $m failed"; done
ip link set lo up
echo "@@SVM $(grep -c -w svm /proc/cpuinfo | head -1)"
[ -e /dev/kvm ] || { echo "no /dev/kvm"; dmesg | grep -i -E 'kvm|svm'; poweroff -f; }
`)
	for _, c := range cases {
		fmt.Fprintf(&b, "echo '@@BEGIN %s'\n", c.name)
		if c.name == "www" {
			b.WriteString(`/atoll run -p 8080:80 /www.img > /tmp/e 2>&1 &
pid=$!
n=0
until wget -q -O /tmp/o http://127.0.0.1:8080/api/hello 2>/dev/null || [ $n -ge 300 ]; do sleep 1; n=$((n+1)); done
kill -TERM $pid
wait $pid
`)
		} else {
			fmt.Fprintf(&b, "(%s) > /tmp/o 2> /tmp/e\n", c.cmd)
		}
		b.WriteString("echo \"@@RC $?\"\necho '@@STDOUT'\ncat /tmp/o\necho '@@STDERR'\ncat /tmp/e\necho '@@END'\n")
	}
	b.WriteString("poweroff -f\n")
	return b.String()
}

// parseResults reads the cases' results from the console.
func parseResults(log string) map[string]result {
	out := map[string]result{}
	re := regexp.MustCompile(`(?s)@@BEGIN ([a-z]+)\n@@RC (\d+)\n@@STDOUT\n(.*?)@@STDERR\n(.*?)@@END\n`)
	for _, m := range re.FindAllStringSubmatch(log, -1) {
		var code int
		fmt.Sscan(m[2], &code)
		out[m[1]] = result{stdout: m[3], stderr: m[4], code: code}
	}
	return out
}

// runNative runs a guest as a process on this machine.
func runNative(t *testing.T, bin string, args, env []string) result {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("native %s: %v", bin, err)
	}
	return result{o.String(), e.String(), code}
}

// debianKernel finds Debian's amd64 kernel and its modules (package
// linux-image-amd64).
func debianKernel(t *testing.T) (kernel, modDir string) {
	t.Helper()
	ks, _ := filepath.Glob("/boot/vmlinuz-*-amd64")
	sort.Strings(ks)
	for i := len(ks) - 1; i >= 0; i-- {
		ver := strings.TrimPrefix(ks[i], "/boot/vmlinuz-")
		if _, err := os.Stat(filepath.Join("/lib/modules", ver, "modules.dep")); err == nil {
			return ks[i], filepath.Join("/lib/modules", ver)
		}
	}
	testenv.SkipOrFail(t, "no Debian kernel with modules in /boot and /lib/modules (linux-image-amd64)")
	return "", ""
}

// staticBusybox finds a statically linked busybox (busybox-static).
func staticBusybox(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/bin/busybox", "/usr/bin/busybox"} {
		f, err := elf.Open(p)
		if err != nil {
			continue
		}
		static := true
		for _, prog := range f.Progs {
			if prog.Type == elf.PT_INTERP {
				static = false
			}
		}
		f.Close()
		if static {
			return p
		}
	}
	testenv.SkipOrFail(t, "no statically linked busybox (busybox-static)")
	return ""
}

// copyModules puts kvm-amd and what it needs into dir, in load order.
func copyModules(t *testing.T, modDir, dir string) {
	t.Helper()
	dep, err := os.ReadFile(filepath.Join(modDir, "modules.dep"))
	if err != nil {
		t.Fatal(err)
	}
	var mods []string
	for _, line := range strings.Split(string(dep), "\n") {
		name, deps, ok := strings.Cut(line, ":")
		if !ok || !strings.Contains(filepath.Base(name), "kvm-amd.ko") {
			continue
		}
		d := strings.Fields(deps)
		for i := len(d) - 1; i >= 0; i-- {
			mods = append(mods, d[i])
		}
		mods = append(mods, name)
	}
	if len(mods) == 0 {
		t.Fatalf("no kvm-amd in %s/modules.dep", modDir)
	}
	for i, m := range mods {
		src := filepath.Join(modDir, m)
		dst := filepath.Join(dir, fmt.Sprintf("%02d-%s.ko", i, strings.SplitN(filepath.Base(m), ".ko", 2)[0]))
		var err error
		switch {
		case strings.HasSuffix(m, ".ko.xz"):
			err = decompress(dst, "xz", "-dc", src)
		case strings.HasSuffix(m, ".ko.zst"):
			err = decompress(dst, "zstd", "-qdc", src)
		default:
			err = copyFile(src, dst, 0o644)
		}
		if err != nil {
			t.Fatalf("module %s: %v", m, err)
		}
	}
}

func decompress(dst, tool string, args ...string) error {
	out, err := exec.Command(tool, args...).Output()
	if err != nil {
		return err
	}
	return os.WriteFile(dst, out, 0o644)
}

func copyFile(src, dst string, mode os.FileMode) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, mode)
}

// goBuild builds a static program of this repository.
func goBuild(t *testing.T, out, pkg string) {
	t.Helper()
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
}

// atollBuild builds an image with the atoll just built.
func atollBuild(t *testing.T, atoll, out, pkg string) {
	t.Helper()
	cmd := exec.Command(atoll, "build", "-o", out, pkg)
	cmd.Dir = repo
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("atoll build %s: %v\n%s", pkg, err, b)
	}
}

// shellQuote quotes words for sh.
func shellQuote(words ...string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
