package main

import (
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"atoll.dev/atoll/internal/testenv"
)

// guestBinary builds a test guest as a plain static executable.
func guestBinary(t *testing.T, dir, name string) string {
	t.Helper()
	out := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-o", out, "../../internal/testguests/"+name)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", name, err, b)
	}
	return out
}

// TestVolume mounts a writable and a read-only host directory in a plain
// executable: it reads what the host left, and what it writes is on the
// host after it exits.
func TestVolume(t *testing.T) {
	testenv.RequireKVM(t)
	dir := t.TempDir()
	guest := guestBinary(t, dir, "volume")
	data, config := filepath.Join(dir, "data"), filepath.Join(dir, "config")
	os.Mkdir(data, 0o755)
	os.Mkdir(config, 0o755)
	os.WriteFile(filepath.Join(config, "settings"), []byte("mode=fast"), 0o644)
	stdout, stderr, code := invoke(t, dir, "run", "--volume", data+":/data", "--volume", config+":/config:ro", guest)
	want := "settings: \"mode=fast\" <nil>\nwrite /data: <nil>\nmkdir /data: <nil>\nwrite /config refused with EROFS: true\nremove /config refused with EROFS: true\n"
	if code != 0 || stdout != want {
		t.Fatalf("exit %d\nstdout %q\nwant   %q\nstderr %s", code, stdout, want, stderr)
	}
	if b, err := os.ReadFile(filepath.Join(data, "from-guest.txt")); err != nil || string(b) != "written by the unikernel\n" {
		t.Errorf("host reads %q, %v", b, err)
	}
	if st, err := os.Stat(filepath.Join(data, "sub", "dir")); err != nil || !st.IsDir() {
		t.Errorf("directory the guest made: %v", err)
	}
	if _, err := os.Stat(filepath.Join(config, "new")); err == nil {
		t.Error("the read-only volume was written")
	}
	// An image's volumes are the ones its manifest declares.
	pkgDir := pkg(t, dir, "withvol", "unikernel withvol\nvolume data /data\n")
	img := filepath.Join(dir, "withvol.img")
	if _, stderr, code := invoke(t, dir, "build", "-o", img, pkgDir); code != 0 {
		t.Fatalf("build: %s", stderr)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"run", img}, `withvol declares volume "data", but nothing is attached: add --volume data=HOSTDIR`},
		{[]string{"run", "--volume", data + ":/data", img}, "has a manifest, so its volumes are the ones it declares"},
		{[]string{"run", "--volume", "data=" + filepath.Join(dir, "missing"), img}, "no such file or directory"},
		{[]string{"run", "--volume", "data=" + data, "--volume", "data=" + config, img}, `device "data" attached twice`},
	} {
		if _, stderr, code := invoke(t, dir, c.args...); code != exitFailure || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q, want %q", c.args, code, stderr, c.want)
		}
	}
	if _, stderr, code := invoke(t, dir, "run", "--volume", "data="+data, img); code != 0 {
		t.Errorf("declared volume attached: exit %d, %s", code, stderr)
	}
	// An optional volume may be left out.
	optDir := pkg(t, dir, "withopt", "unikernel withopt\nvolume data /data optional\n")
	opt := filepath.Join(dir, "withopt.img")
	if _, stderr, code := invoke(t, dir, "build", "-o", opt, optDir); code != 0 {
		t.Fatalf("build: %s", stderr)
	}
	for _, args := range [][]string{{"run", opt}, {"run", "--volume", "data=" + data, opt}} {
		if _, stderr, code := invoke(t, dir, args...); code != 0 {
			t.Errorf("%v: exit %d, %s", args, code, stderr)
		}
	}
	if _, stderr, code := invoke(t, dir, "run", "--volume", data+":/proc/x", guest); code != exitUsage || !strings.Contains(stderr, "monitor serves itself") {
		t.Errorf("a volume on /proc: exit %d, %s", code, stderr)
	}
}

// snapshot records every file below root but skip: mode, size, contents,
// link targets.
func snapshot(t *testing.T, root, skip string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == skip {
			return filepath.SkipDir
		}
		st, err := os.Lstat(p)
		if err != nil {
			return err
		}
		v := fmt.Sprintf("%v %d", st.Mode(), st.Size())
		if st.Mode().IsRegular() {
			b, _ := os.ReadFile(p)
			v += fmt.Sprintf(" %x", sha256.Sum256(b))
		} else if st.Mode()&fs.ModeSymlink != 0 {
			l, _ := os.Readlink(p)
			v += " -> " + l
		}
		out[p] = v
		return nil
	})
	return out
}

// TestVolumeHostile turns a guest loose on a volume planted with links out
// of it (absolute and relative), a FIFO, a device node and a link loop:
// 100,000 random path operations later, nothing outside the volume has
// been read, written or created, and the monitor reported the run.
func TestVolumeHostile(t *testing.T) {
	testenv.RequireKVM(t)
	dir := t.TempDir()
	guest := guestBinary(t, dir, "pathchaos")
	root := filepath.Join(dir, "host")
	vol, outside := filepath.Join(root, "vol"), filepath.Join(root, "outside")
	os.MkdirAll(vol, 0o755)
	os.MkdirAll(outside, 0o755)
	os.WriteFile(filepath.Join(outside, "secret"), []byte("host secret"), 0o600)
	os.WriteFile(filepath.Join(root, "x"), []byte("beside the volume"), 0o644)
	os.Symlink(outside, filepath.Join(vol, "abs"))
	os.Symlink("../outside", filepath.Join(vol, "rel"))
	os.Symlink("loop", filepath.Join(vol, "loop"))
	unix.Mkfifo(filepath.Join(vol, "fifo"), 0o644)
	if os.Geteuid() == 0 {
		unix.Mknod(filepath.Join(vol, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3)))
	}
	before := snapshot(t, root, vol)
	for seed := 1; seed <= 2; seed++ {
		stdout, stderr, code := invoke(t, dir, "run", "--volume", vol+":/data", guest, "--", "50000", fmt.Sprint(seed))
		if code != 0 || !strings.HasPrefix(stdout, "operations 50000 succeeded ") {
			t.Fatalf("seed %d: exit %d, stdout %q\n%.2000s", seed, code, stdout, stderr)
		}
		t.Logf("seed %d: %s", seed, strings.TrimSpace(stdout))
	}
	after := snapshot(t, root, vol)
	for p, v := range before {
		if after[p] != v {
			t.Errorf("%s changed: %s -> %s", p, v, after[p])
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			t.Errorf("%s was created outside the volume", p)
		}
	}
}

// TestVolumeSwappedLink reads a link in a volume while the host swaps it,
// between a file inside the volume and one outside, as fast as it can:
// the guest reads the inside file or fails, never the outside one.
func TestVolumeSwappedLink(t *testing.T) {
	testenv.RequireKVM(t)
	dir := t.TempDir()
	guest := guestBinary(t, dir, "pathchaos")
	vol, outside := filepath.Join(dir, "vol"), filepath.Join(dir, "outside")
	os.Mkdir(vol, 0o755)
	os.Mkdir(outside, 0o755)
	os.WriteFile(filepath.Join(vol, "inside"), []byte("inside"), 0o644)
	os.WriteFile(filepath.Join(outside, "secret"), []byte("host secret"), 0o644)
	os.Symlink("inside", filepath.Join(vol, "swap"))
	stop := make(chan struct{})
	done := make(chan int)
	go func() {
		swaps := 0
		tmp := filepath.Join(vol, ".swap")
		for {
			select {
			case <-stop:
				done <- swaps
				return
			default:
			}
			target := "inside"
			if swaps%2 == 0 {
				target = filepath.Join(outside, "secret")
			}
			os.Remove(tmp)
			os.Symlink(target, tmp)
			os.Rename(tmp, filepath.Join(vol, "swap"))
			swaps++
		}
	}()
	stdout, stderr, code := invoke(t, dir, "run", "--volume", vol+":/data", guest, "--", "swap", "20000")
	close(stop)
	swaps := <-done
	var in, out, errs int
	if _, err := fmt.Sscanf(stdout, "inside %d outside %d errors %d", &in, &out, &errs); err != nil || code != 0 {
		t.Fatalf("exit %d, stdout %q (%v)\n%s", code, stdout, err, stderr)
	}
	t.Logf("%d swaps; read inside %d, failed %d", swaps, in, errs)
	if out != 0 {
		t.Errorf("read the file outside the volume %d times", out)
	}
	if in == 0 {
		t.Errorf("never read the file inside the volume")
	}
}

// volumeGuest builds atoll and a test guest, and makes an empty directory
// for a volume.
func volumeGuest(t *testing.T, name string) (atoll, guest, data string) {
	t.Helper()
	testenv.RequireKVM(t)
	dir := t.TempDir()
	data = filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	return atollBinary(t, dir), guestBinary(t, dir, name), data
}

// TestVolumeRecordLocks shares a volume between two unikernels and the
// host: a lock one unikernel holds (fcntl F_SETLK) is seen by the host and
// refused to the other, whose F_GETLK describes it; a second waits
// (F_SETLKW) and gets the lock once the holder exits.
func TestVolumeRecordLocks(t *testing.T) {
	atoll, guest, data := volumeGuest(t, "recordlock")
	start := func(mode string) (*exec.Cmd, string) {
		t.Helper()
		out := filepath.Join(t.TempDir(), "out")
		f, err := os.Create(out)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() }) // after the run: it is the run's standard output
		cmd := exec.Command(atoll, "run", "--volume", data+":/data", guest, "--", mode, "/data/db")
		cmd.Stdout, cmd.Stderr = f, f
		return cmd, out
	}
	waitFor := func(out, want string) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			b, _ := os.ReadFile(out)
			if strings.Contains(string(b), want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %q in:\n%s", want, b)
			}
		}
	}

	holder, holderOut := start("hold")
	release, err := holder.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	defer holder.Process.Kill()
	waitFor(holderOut, "locked")

	host, err := os.Open(filepath.Join(data, "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	lk := unix.Flock_t{Type: unix.F_RDLCK}
	if err := unix.FcntlFlock(host.Fd(), unix.F_OFD_GETLK, &lk); err != nil || lk.Type != unix.F_WRLCK || lk.Pid != int32(holder.Process.Pid) {
		t.Errorf("the host sees %+v (%v), want a write lock of atoll's process %d", lk, err, holder.Process.Pid)
	}

	other, otherOut := start("try")
	if err := other.Run(); err != nil {
		b, _ := os.ReadFile(otherOut)
		t.Fatalf("try: %v\n%s", err, b)
	}
	b, _ := os.ReadFile(otherOut)
	if want := "F_SETLK: resource temporarily unavailable\nF_GETLK: write lock true, pid -1\n"; string(b) != want {
		t.Errorf("a second unikernel:\n%s\nwant:\n%s", b, want)
	}

	waiter, waiterOut := start("wait")
	if err := waiter.Start(); err != nil {
		t.Fatal(err)
	}
	defer waiter.Process.Kill()
	time.Sleep(300 * time.Millisecond)
	if b, _ := os.ReadFile(waiterOut); strings.Contains(string(b), "locked") {
		t.Fatalf("F_SETLKW took a held lock:\n%s", b)
	}
	release.Close()
	if err := holder.Wait(); err != nil {
		t.Errorf("holder: %v", err)
	}
	waitFor(waiterOut, "locked")
	if err := waiter.Wait(); err != nil {
		t.Errorf("waiter: %v", err)
	}
}

// TestVolumeSharedMapping maps a volume's file shared and writable in a
// unikernel: its stores reach the file, the host's show in it; mapped
// shared and read-only, the guest's own writes show in it; and a
// mapping whose file is truncated under it ends the VM with a report when
// touched, where the program as a process dies of SIGBUS.
func TestVolumeSharedMapping(t *testing.T) {
	atoll, guest, data := volumeGuest(t, "sharedmap")
	file := filepath.Join(data, "shm")
	content := make([]byte, 8192)
	copy(content[4096:], "from the host")
	if err := os.WriteFile(file, content, 0o644); err != nil {
		t.Fatal(err)
	}
	r := runCmd(t, exec.Command(atoll, "run", "--volume", data+":/data", guest, "--", "/data/shm"))
	if r.code != 0 || r.stdout != "host wrote \"from the host\"\n" {
		t.Fatalf("exit %d, stdout %q\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if b, _ := os.ReadFile(file); !strings.HasPrefix(string(b), "from the guest") {
		t.Errorf("the file starts %q", b[:16])
	}
	// A read-only shared mapping sees the guest's own later writes.
	r = runCmd(t, exec.Command(atoll, "run", "--volume", data+":/data", guest, "--", "/data/shm", "mirror"))
	if r.code != 0 || r.stdout != "the mapping reads \"written later\"\n" {
		t.Errorf("mirror: exit %d, stdout %q\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}

	os.WriteFile(file, content, 0o644)
	native := runCmd(t, exec.Command(guest, file, "shrink"))
	if native.code != 2 || !strings.Contains(native.stderr, "SIGBUS") {
		t.Errorf("natively: exit %d, stderr %.300s", native.code, native.stderr)
	}
	os.WriteFile(file, content, 0o644)
	r = runCmd(t, exec.Command(atoll, "run", "--volume", data+":/data", guest, "--", "/data/shm", "shrink"))
	if r.code != 70 || r.stdout != "truncated\n" || !strings.Contains(r.stderr, "shared file mapping past its file's end") {
		t.Errorf("exit %d, stdout %q, want 70 and a report\nstderr:\n%.2000s", r.code, r.stdout, r.stderr)
	}
}
