package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"atoll.dev/atoll/abi"
	"atoll.dev/atoll/monitor/kvm"
)

// initCmd is the hidden command of a container's process before start.
const initCmd = "__init"

// record is a container's state on disk.
type record struct {
	ID          string            `json:"id"`
	Bundle      string            `json:"bundle"`
	Pid         int               `json:"pid"`
	PidStart    uint64            `json:"pid_start"` // the process's start time, in clock ticks after boot
	Created     time.Time         `json:"created"`
	Started     bool              `json:"started"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Atoll       string            `json:"atoll"` // the atoll binary
	Args        []string          `json:"args"`  // after "atoll run"
	Netns       string            `json:"netns"`
}

var validID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.+-]{0,254}$`)

func (g globals) dir(id string) string { return filepath.Join(g.root, id) }

// load reads the container id's record.
func (g globals) load(id string) (*record, error) {
	if !validID.MatchString(id) {
		return nil, fmt.Errorf("invalid container ID %q", id)
	}
	b, err := os.ReadFile(filepath.Join(g.dir(id), "state.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("container %s does not exist", id)
	}
	if err != nil {
		return nil, err
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("container %s: %w", id, err)
	}
	return &r, nil
}

func (g globals) save(r *record) error {
	b, _ := json.MarshalIndent(r, "", "\t")
	tmp := filepath.Join(g.dir(r.ID), "state.json.new")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(g.dir(r.ID), "state.json"))
}

// oneID returns the single container ID of a command's arguments.
func oneID(cmd string, rest []string) (string, error) {
	if len(rest) != 1 {
		return "", fmt.Errorf("%s: want one container ID, got %d arguments", cmd, len(rest))
	}
	if !validID.MatchString(rest[0]) {
		return "", fmt.Errorf("invalid container ID %q", rest[0])
	}
	return rest[0], nil
}

// create makes the container: it checks the bundle and /dev/kvm, starts
// the container's process (initContainer) in a session of its own, with
// this process's standard streams or a terminal sent to the console
// socket, waits until it is in the bundle's network namespace, and writes
// its process ID to the pid file. The process, orphaned when create
// exits, is the engine's (conmon makes itself the subreaper).
func create(g globals, args []string) error {
	flags, rest := cmdFlags(args, "bundle", "b", "pid-file", "console-socket", "preserve-fds")
	id, err := oneID("create", rest)
	if err != nil {
		return err
	}
	bundle := flags["bundle"]
	if bundle == "" {
		bundle = flags["b"]
	}
	if bundle == "" {
		bundle = "."
	}
	if bundle, err = filepath.Abs(bundle); err != nil {
		return err
	}
	if isSandbox(bundle) {
		return g.delegate(id, args)
	}
	if err := checkKVM(); err != nil {
		return err
	}
	p, err := loadBundle(bundle)
	if err != nil {
		return err
	}
	atoll, err := atollBinary()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(g.root, 0o700); err != nil {
		return err
	}
	dir := g.dir(id)
	if err := os.Mkdir(dir, 0o700); errors.Is(err, os.ErrExist) {
		return fmt.Errorf("container %s exists", id)
	} else if err != nil {
		return err
	}
	fail := func(err error) error { os.RemoveAll(dir); return err }
	if err := unix.Mkfifo(filepath.Join(dir, "start"), 0o600); err != nil {
		return fail(err)
	}
	r := &record{ID: id, Bundle: bundle, Created: time.Now(), Atoll: atoll, Args: p.args, Netns: p.netns}
	if b, err := os.ReadFile(filepath.Join(bundle, "config.json")); err == nil {
		var s spec
		if json.Unmarshal(b, &s) == nil {
			r.Annotations = s.Annots
		}
	}
	if err := g.save(r); err != nil {
		return fail(err)
	}
	self, err := os.Executable()
	if err != nil {
		return fail(err)
	}
	ready, readyW, err := os.Pipe()
	if err != nil {
		return fail(err)
	}
	defer ready.Close()
	cmd := exec.Command(self, "--root", g.root, initCmd, id)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.ExtraFiles = []*os.File{readyW}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	var master *os.File
	if sock := flags["console-socket"]; sock != "" {
		m, slave, err := openPTY()
		if err != nil {
			return fail(fmt.Errorf("console: %w", err))
		}
		master = m
		defer slave.Close()
		cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
		cmd.SysProcAttr.Setctty = true
		if err := sendConsole(sock, master); err != nil {
			master.Close()
			return fail(fmt.Errorf("console socket %s: %w", sock, err))
		}
	}
	if err := cmd.Start(); err != nil {
		readyW.Close()
		return fail(err)
	}
	readyW.Close()
	if master != nil {
		master.Close() // the engine has it now
	}
	msg, _ := io.ReadAll(ready)
	if string(msg) != "ok\n" {
		cmd.Process.Kill()
		cmd.Wait()
		return fail(fmt.Errorf("the container's process: %s", strings.TrimSpace(string(msg))))
	}
	r.Pid = cmd.Process.Pid
	r.PidStart = startTime(r.Pid)
	if err := g.save(r); err != nil {
		cmd.Process.Kill()
		return fail(err)
	}
	if pf := flags["pid-file"]; pf != "" {
		if err := os.WriteFile(pf, []byte(strconv.Itoa(r.Pid)), 0o644); err != nil {
			cmd.Process.Kill()
			return fail(err)
		}
	}
	cmd.Process.Release()
	return nil
}

// initContainer is the container's process: it enters the network
// namespace, says so on descriptor 3, waits for start on the FIFO, and
// becomes atoll run.
func initContainer(g globals, args []string) error {
	ready := os.NewFile(3, "ready")
	say := func(err error) error {
		if err != nil {
			fmt.Fprintln(ready, err)
		} else {
			fmt.Fprintln(ready, "ok")
		}
		ready.Close()
		return err
	}
	id, err := oneID(initCmd, args)
	if err != nil {
		return say(err)
	}
	r, err := g.load(id)
	if err != nil {
		return say(err)
	}
	runtime.LockOSThread() // the namespace is this thread's, which execs
	if r.Netns != "" {
		ns, err := os.Open(r.Netns)
		if err != nil {
			return say(fmt.Errorf("network namespace: %w", err))
		}
		err = unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET)
		ns.Close()
		if err != nil {
			return say(fmt.Errorf("enter the network namespace %s: %w", r.Netns, err))
		}
	}
	say(nil)
	// Opening the FIFO to write waits for start to open it to read.
	fifo, err := os.OpenFile(filepath.Join(g.dir(id), "start"), os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := fifo.Write([]byte{1}); err != nil {
		return err
	}
	fifo.Close()
	argv := append([]string{"atoll", "run"}, r.Args...)
	return syscall.Exec(r.Atoll, argv, os.Environ())
}

// start lets a created container's process go on to boot the unikernel.
func start(g globals, args []string) error {
	_, rest := cmdFlags(args)
	id, err := oneID("start", rest)
	if err != nil {
		return err
	}
	r, err := g.load(id)
	if err != nil {
		return err
	}
	if st := r.status(); st != "created" {
		return fmt.Errorf("cannot start container %s: it is %s, not created", id, st)
	}
	// The process waits to open the FIFO to write; once it has, it
	// writes a byte and goes on.
	fd, err := unix.Open(filepath.Join(g.dir(id), "start"), unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var b [1]byte
	for deadline := time.Now().Add(10 * time.Second); ; {
		n, err := unix.Read(fd, b[:])
		if n == 1 {
			break
		}
		if err != nil && err != unix.EAGAIN || time.Now().After(deadline) || !alive(r.Pid, r.PidStart) {
			return fmt.Errorf("cannot start container %s: its process did not take the start (%v)", id, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	r.Started = true
	return g.save(r)
}

// status is the container's OCI status: created until started, running
// while its process lives, then stopped.
func (r *record) status() string {
	if r.Pid == 0 {
		return "creating"
	}
	if !alive(r.Pid, r.PidStart) {
		return "stopped"
	}
	if r.Started {
		return "running"
	}
	return "created"
}

// state prints the container's state as runc does.
func state(g globals, args []string, stdout io.Writer) error {
	_, rest := cmdFlags(args)
	id, err := oneID("state", rest)
	if err != nil {
		return err
	}
	r, err := g.load(id)
	if err != nil {
		return err
	}
	s := ociState{OCIVersion: "1.1.0", ID: r.ID, Status: r.status(), Bundle: r.Bundle, Annotations: r.Annotations, Created: r.Created}
	if s.Status != "stopped" {
		s.Pid = r.Pid
	}
	b, _ := json.MarshalIndent(s, "", "  ")
	fmt.Fprintf(stdout, "%s\n", b)
	return nil
}

// list prints the containers, as runc list does.
func list(g globals, stdout io.Writer) error {
	des, err := os.ReadDir(g.root)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tPID\tSTATUS\tBUNDLE\tCREATED")
	for _, de := range des {
		if r, err := g.load(de.Name()); err == nil {
			fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\n", r.ID, r.Pid, r.status(), r.Bundle, r.Created.Format(time.RFC3339Nano))
		}
	}
	return w.Flush()
}

// kill sends a signal (default SIGTERM) to the container's process.
func kill(g globals, args []string) error {
	_, rest := cmdFlags(args)
	if len(rest) == 1 {
		rest = append(rest, "TERM")
	}
	if len(rest) != 2 {
		return errors.New("kill: want a container ID and a signal")
	}
	r, err := g.load(rest[0])
	if err != nil {
		return err
	}
	sig, err := parseSignal(rest[1])
	if err != nil {
		return err
	}
	if r.status() == "stopped" {
		return fmt.Errorf("container %s is not running", r.ID)
	}
	return unix.Kill(r.Pid, sig)
}

// parseSignal reads a signal as a number or a name, with or without SIG.
func parseSignal(s string) (unix.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 || n > 64 {
			return 0, fmt.Errorf("unknown signal %q", s)
		}
		return unix.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("unknown signal %q", s)
}

// del deletes the container: a running one only with --force, which
// kills it first.
func del(g globals, args []string) error {
	flags, rest := cmdFlags(args)
	id, err := oneID("delete", rest)
	if err != nil {
		return err
	}
	r, err := g.load(id)
	if err != nil {
		if flags["force"] == "true" || flags["f"] == "true" {
			if _, serr := os.Stat(g.dir(id)); errors.Is(serr, os.ErrNotExist) {
				return nil // runc delete --force of what is gone succeeds
			}
			return os.RemoveAll(g.dir(id))
		}
		return err
	}
	switch r.status() {
	case "running":
		if flags["force"] != "true" && flags["f"] != "true" {
			return fmt.Errorf("cannot delete container %s that is not stopped: running (use --force)", id)
		}
		fallthrough
	case "created", "creating":
		if r.Pid != 0 && alive(r.Pid, r.PidStart) {
			unix.Kill(r.Pid, unix.SIGKILL)
			for deadline := time.Now().Add(10 * time.Second); alive(r.Pid, r.PidStart); {
				if time.Now().After(deadline) {
					return fmt.Errorf("container %s: process %d outlived SIGKILL", id, r.Pid)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
	}
	return os.RemoveAll(g.dir(id))
}

// ps lists the container's processes: the one, atoll run.
func ps(g globals, args []string, stdout io.Writer) error {
	flags, rest := cmdFlags(args, "format", "f")
	id, err := oneID("ps", rest)
	if err != nil {
		return err
	}
	r, err := g.load(id)
	if err != nil {
		return err
	}
	var pids []int
	if r.status() != "stopped" {
		pids = []int{r.Pid}
	}
	if f := flags["format"] + flags["f"]; f == "json" {
		b, _ := json.Marshal(append([]int{}, pids...))
		fmt.Fprintf(stdout, "%s\n", b)
		return nil
	}
	fmt.Fprintln(stdout, "PID")
	for _, p := range pids {
		fmt.Fprintln(stdout, p)
	}
	return nil
}

// features prints what this runtime supports (runc features).
func features(stdout io.Writer) error {
	f := map[string]any{
		"ociVersionMin": "1.0.0",
		"ociVersionMax": "1.1.0",
		"hooks":         []string{},
		"mountOptions":  []string{"bind", "rbind", "ro", "rw"},
		"linux": map[string]any{
			"namespaces": []string{"network"},
		},
		"annotations": map[string]string{
			"dev.atoll.abi":      abi.Version,
			"dev.atoll.boots":    "static Go linux/amd64 executables and Atoll images",
			"dev.atoll.requires": "/dev/kvm",
		},
	}
	b, _ := json.MarshalIndent(f, "", "  ")
	fmt.Fprintf(stdout, "%s\n", b)
	return nil
}

// checkKVM refuses to create a container on a host without a usable KVM:
// /dev/kvm missing, not openable, or not KVM (the monitor's own check of
// the API version and capabilities).
func checkKVM() error {
	s, err := kvm.Open()
	if err != nil {
		return fmt.Errorf("atoll needs /dev/kvm: %w", err)
	}
	return s.Close()
}

// atollBinary finds atoll: $ATOLL_BINARY, else beside this executable,
// else on PATH.
func atollBinary() (string, error) {
	if p := os.Getenv("ATOLL_BINARY"); p != "" {
		return p, nil
	}
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), "atoll")
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p, nil
		}
	}
	p, err := exec.LookPath("atoll")
	if err != nil {
		return "", errors.New("cannot find atoll: install it beside atoll-oci, on PATH, or name it in $ATOLL_BINARY")
	}
	return filepath.Abs(p)
}

// startTime returns a process's start time (clock ticks after boot), 0 if
// it is gone: with its ID, it names the process even once the ID is
// reused.
func startTime(pid int) uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name may hold spaces and parentheses: fields start
	// after its last ')'.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 20 || f[0] == "Z" || f[0] == "X" {
		return 0 // a zombie has ended
	}
	v, _ := strconv.ParseUint(f[19], 10, 64)
	return v
}

// alive reports whether the process pid that started at start lives.
func alive(pid int, start uint64) bool {
	return pid > 0 && start != 0 && startTime(pid) == start
}
