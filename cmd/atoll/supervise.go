package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	iofs "io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"atoll.dev/atoll/manifest"
)

// superviseCmd is the hidden command a detached unikernel's supervisor
// runs: atoll __supervise DIR.
const superviseCmd = "__supervise"

// restartPolicy is --restart: no, on-failure[:N] or always.
type restartPolicy struct {
	onFailure, always bool
	max               int // on-failure's N; 0 for no bound
}

func parseRestart(s string) (restartPolicy, error) {
	switch {
	case s == "" || s == "no":
		return restartPolicy{}, nil
	case s == "always":
		return restartPolicy{always: true}, nil
	case s == "on-failure":
		return restartPolicy{onFailure: true}, nil
	}
	if n, ok := strings.CutPrefix(s, "on-failure:"); ok {
		if v, err := strconv.Atoi(n); err == nil && v > 0 {
			return restartPolicy{onFailure: true, max: v}, nil
		}
	}
	return restartPolicy{}, fmt.Errorf("bad --restart %q: want no, on-failure, on-failure:N (N > 0) or always", s)
}

// again reports whether a life that ended as x, after restarts restarts,
// is followed by another.
func (p restartPolicy) again(x fleetExit, restarts int) bool {
	switch {
	case x.Stopped:
		return false
	case p.always:
		return true
	case p.onFailure:
		return (x.Code != 0 || x.Signal != "") && (p.max == 0 || restarts < p.max)
	}
	return false
}

// detach starts the supervisor of a new entry, whose directory dir holds
// its config.json, in a session of its own, and waits until it has
// started the VM — or, within half a second, seen it fail for good (its
// restart policy starts it no more), which it then reports with the log's
// end.
func detach(dir string, stderr *os.File) int {
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "atoll run: %v\n", err)
		return exitFailure
	}
	cmd := exec.Command(self, superviseCmd, dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Env = os.Environ()
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(stderr, "atoll run: start the supervisor: %v\n", err)
		return exitFailure
	}
	sup := cmd.Process.Pid
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }() // the supervisor is reaped if it ends now
	e := &entry{dir: dir}
	deadline := time.Now().Add(10 * time.Second)
	var started time.Time
	for {
		if x, ok := e.lastExit(); ok && x.Code != 0 && !e.running() {
			fmt.Fprintf(stderr, "atoll run: %s ended at once (%s); its log ends:\n%s", filepath.Base(dir), exitWords(x), logTail(e, 10))
			return exitFailure
		}
		select {
		case <-done:
			if _, ok := e.lastExit(); !ok {
				fmt.Fprintf(stderr, "atoll run: the supervisor of %s ended: %s", filepath.Base(dir), logTail(e, 10))
				return exitFailure
			}
		default:
		}
		if s, vm := e.pids(); s == sup && vm != 0 && started.IsZero() {
			started = time.Now()
		}
		if !started.IsZero() && time.Since(started) > 500*time.Millisecond {
			break
		}
		if time.Now().After(deadline) {
			fmt.Fprintf(stderr, "atoll run: %s did not start within 10 s; see atoll logs %s\n", filepath.Base(dir), filepath.Base(dir))
			return exitFailure
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Release()
	return 0
}

// exitWords says how a life ended.
func exitWords(x fleetExit) string {
	if x.Signal != "" {
		return "killed by " + x.Signal
	}
	return fmt.Sprintf("exit status %d", x.Code)
}

// logTail returns the last n lines of the entry's log.
func logTail(e *entry, n int) string {
	b, _ := os.ReadFile(e.path("log"))
	lines := strings.SplitAfter(string(b), "\n")
	if len(lines) > n+1 {
		lines = lines[len(lines)-n-1:]
	}
	return strings.Join(lines, "")
}

// supervise is the supervisor of the entry in dir: it takes the entry's
// lock for its whole life, runs the foreground atoll run the entry's
// config says with its output in the log, records how each life ended,
// and starts it again as the restart policy says. SIGTERM, SIGINT and
// SIGHUP are passed on to the VM, after which it is not restarted;
// SIGUSR1 kills the VM outright (atoll stop, at its timeout).
func supervise(dir string) int {
	e := &entry{dir: dir}
	b, err := os.ReadFile(e.path("config.json"))
	if err != nil || json.Unmarshal(b, &e.cfg) != nil {
		return exitFailure
	}
	lock, err := os.OpenFile(e.path("lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return exitFailure
	}
	defer lock.Close()
	if unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
		return exitFailure // another supervisor has it
	}
	log, err := os.OpenFile(e.path("log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return exitFailure
	}
	defer log.Close()
	policy, _ := parseRestart(e.cfg.Restart) // checked by atoll run -d
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintf(log, "atoll: supervisor: %v\n", err)
		return exitFailure
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, unix.SIGTERM, unix.SIGINT, unix.SIGHUP, unix.SIGUSR1)
	writePids(e, os.Getpid(), 0)
	for restarts := 0; ; restarts++ {
		cmd := exec.Command(self, append([]string{"run"}, e.cfg.Args...)...)
		cmd.Dir, cmd.Stdout, cmd.Stderr = e.cfg.Dir, log, log
		start := time.Now()
		x := fleetExit{Started: start, Restarts: restarts}
		if err := cmd.Start(); err != nil {
			fmt.Fprintf(log, "atoll: supervisor: %v\n", err)
			x.Code, x.Ended = exitFailure, time.Now()
			writeExit(e, x)
			return exitFailure
		}
		writePids(e, os.Getpid(), cmd.Process.Pid)
		waited := make(chan error, 1)
		go func() { waited <- cmd.Wait() }()
		var werr error
	wait:
		for {
			select {
			case werr = <-waited:
				break wait
			case sig := <-sigs:
				if sig == unix.SIGUSR1 {
					cmd.Process.Signal(unix.SIGKILL)
				} else {
					cmd.Process.Signal(unix.SIGTERM)
				}
				x.Stopped = true
			}
		}
		x.Ended = time.Now()
		x.Code = cmd.ProcessState.ExitCode()
		var ee *exec.ExitError
		if errors.As(werr, &ee) {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				x.Signal = unix.SignalName(ws.Signal())
			}
		}
		if _, err := os.Stat(e.path("stop")); err == nil {
			x.Stopped = true
		}
		writeExit(e, x)
		if !policy.again(x, restarts) {
			return 0
		}
		fmt.Fprintf(log, "atoll: %s ended (%s); restart %d\n", e.cfg.Name, exitWords(x), restarts+1)
		select {
		case <-time.After(time.Second):
		case <-sigs:
			x.Stopped = true
			writeExit(e, x)
			return 0
		}
	}
}

// writePids records the supervisor's and the VM's process IDs.
func writePids(e *entry, supervisor, vm int) {
	s := strconv.Itoa(supervisor) + "\n"
	if vm != 0 {
		s += strconv.Itoa(vm) + "\n"
	}
	writeAtomic(e.path("pid"), []byte(s))
}

// writeExit records how a life ended.
func writeExit(e *entry, x fleetExit) {
	b, _ := json.Marshal(x)
	writeAtomic(e.path("exit.json"), b)
}

// writeAtomic replaces the file at path with b, so that a reader sees the
// old contents or the new, never part.
func writeAtomic(path string, b []byte) error {
	tmp := path + ".new"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// runDetached is atoll run -d: it checks the target as atoll run would
// (building a package directory into the entry), makes the entry, and
// starts its supervisor, which runs atoll run with the same arguments
// but -d, --name and --restart. It prints the unikernel's name.
func runDetached(fs *flag.FlagSet, args []string, target string, mem sizeFlag, name, restart string, stdout, stderr *os.File) int {
	if _, err := parseRestart(restart); err != nil {
		fmt.Fprintf(stderr, "atoll run: %v\n", err)
		return exitUsage
	}
	dirTarget := false
	var m *manifest.Manifest
	if st, err := os.Stat(target); err == nil && st.IsDir() {
		if m, err = readManifest(target); err != nil {
			fmt.Fprintf(stderr, "atoll: %v\n", err)
			return exitFailure
		}
		dirTarget = true
	} else {
		tg, code := loadTarget(target, stderr)
		if code != 0 {
			return code
		}
		m = tg.m
		tg.close()
	}
	if mem.set {
		m.Memory = mem.n
	}
	if name == "" {
		name = m.Name
	}
	if err := checkName(name); err != nil {
		fmt.Fprintf(stderr, "atoll run: %v\n", err)
		return exitUsage
	}
	state := stateDir()
	if err := os.MkdirAll(state, 0o700); err != nil {
		fmt.Fprintf(stderr, "atoll run: the state directory: %v\n", err)
		return exitFailure
	}
	dir := filepath.Join(state, name)
	if err := os.Mkdir(dir, 0o700); errors.Is(err, iofs.ErrExist) {
		fmt.Fprintf(stderr, "atoll run: a unikernel named %s exists: atoll rm %s first, or choose another --name\n", name, name)
		return exitFailure
	} else if err != nil {
		fmt.Fprintf(stderr, "atoll run: %v\n", err)
		return exitFailure
	}
	image, err := filepath.Abs(target)
	if dirTarget {
		image = filepath.Join(dir, "image")
		if code := buildImage(target, m, image, "", stderr); code != 0 {
			os.RemoveAll(dir)
			return code
		}
	}
	cwd, err2 := os.Getwd()
	if err = errors.Join(err, err2); err != nil {
		os.RemoveAll(dir)
		fmt.Fprintf(stderr, "atoll run: %v\n", err)
		return exitFailure
	}
	child, ports := detachArgs(fs, args, image)
	cfg := fleetConfig{Name: name, Image: target, Args: child, Dir: cwd, Ports: ports,
		Memory: m.Memory, Restart: restart, Created: time.Now()}
	b, _ := json.MarshalIndent(cfg, "", "\t")
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o600); err != nil {
		os.RemoveAll(dir)
		fmt.Fprintf(stderr, "atoll run: %v\n", err)
		return exitFailure
	}
	if code := detach(dir, stderr); code != 0 {
		return code
	}
	fmt.Fprintln(stdout, name)
	return 0
}

// detachArgs returns atoll run's arguments args for the supervisor's
// foreground run: without -d, --name and --restart, and with image as the
// target; and the -p flags' values.
func detachArgs(fs *flag.FlagSet, args []string, image string) (child, ports []string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" || !strings.HasPrefix(a, "-") || a == "-" {
			child = append(child, image)
			return append(child, args[i+1:]...), ports
		}
		n, v, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		tokens := []string{a}
		if f := fs.Lookup(n); f != nil && !isBoolFlag(f) && !hasValue && i+1 < len(args) {
			i++
			v = args[i]
			tokens = append(tokens, v)
		}
		if n == "p" {
			ports = append(ports, v)
		}
		if n != "d" && n != "name" && n != "restart" {
			child = append(child, tokens...)
		}
	}
	return append(child, image), ports
}

// isBoolFlag reports whether f takes no value.
func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}
