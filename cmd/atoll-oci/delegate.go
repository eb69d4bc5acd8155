package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
)

// Pods: Kubernetes runtimes start a pod's sandbox — a pause process that
// holds its namespaces — with the pod's runtime handler, before its
// containers. The sandbox is no Go program, and needs no VM: atoll-oci
// hands it to runc, as urunc does, under a state root of runc's own
// inside atoll-oci's, and marks the container so that every later call
// about it goes to runc too. Only containers the engine annotates as a
// sandbox are handed over; any other bundle atoll cannot boot is refused.

// sandboxAnnotations are the annotations with which containerd's CRI and
// CRI-O say a container is a pod's sandbox.
var sandboxAnnotations = map[string]string{
	"io.kubernetes.cri.container-type":  "sandbox",
	"io.kubernetes.cri-o.ContainerType": "sandbox",
}

// isSandbox reports whether the bundle at dir is a pod's sandbox.
func isSandbox(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return false
	}
	var s spec
	if json.Unmarshal(b, &s) != nil {
		return false
	}
	for k, v := range sandboxAnnotations {
		if s.Annots[k] == v {
			return true
		}
	}
	return false
}

// delegated reports whether container id is runc's.
func (g globals) delegated(id string) bool {
	_, err := os.Stat(filepath.Join(g.dir(id), "runc"))
	return err == nil
}

// runcRoot is runc's state root, inside atoll-oci's.
func (g globals) runcRoot() string { return filepath.Join(g.root, ".runc") }

// delegate makes container id runc's and has runc create it.
func (g globals) delegate(id string, args []string) error {
	if err := os.MkdirAll(g.dir(id), 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(g.dir(id), "runc"), nil, 0o600); err != nil {
		return err
	}
	return g.runc("create", args)
}

// runc runs runc's cmd with args and the global flags. It becomes runc,
// except for delete, after which the container's directory goes too.
func (g globals) runc(cmd string, args []string) error {
	bin := os.Getenv("ATOLL_RUNC")
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("runc"); err != nil {
			return errors.New("a pod's sandbox container is runc's to run, and runc is not on PATH ($ATOLL_RUNC names another)")
		}
	}
	argv := []string{"runc", "--root", g.runcRoot()}
	if g.log != "" {
		argv = append(argv, "--log", g.log, "--log-format", g.logFormat)
	}
	argv = append(append(argv, cmd), args...)
	if cmd != "delete" {
		return syscall.Exec(bin, argv, os.Environ())
	}
	c := exec.Command(bin, argv[1:]...)
	c.Stdin, c.Stdout, c.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := c.Run(); err != nil {
		return fmt.Errorf("runc delete: %w", err)
	}
	return os.RemoveAll(g.dir(args[len(args)-1]))
}

// idOf returns the container ID a command's arguments name, if any.
func idOf(cmd string, args []string) string {
	var rest []string
	switch cmd {
	case "create":
		_, rest = cmdFlags(args, "bundle", "b", "pid-file", "console-socket", "preserve-fds")
	case "start", "state", "delete", "exec", "pause", "resume", "update", "events":
		_, rest = cmdFlags(args, "process", "p", "pid-file", "console-socket", "cwd", "env", "e", "user", "u", "resources", "r", "interval")
	case "ps":
		_, rest = cmdFlags(args, "format", "f")
	case "kill":
		_, rest = cmdFlags(args)
		if len(rest) > 0 {
			return validIDOr(rest[0])
		}
		return ""
	default:
		return ""
	}
	if len(rest) == 0 {
		return ""
	}
	return validIDOr(rest[len(rest)-1])
}

func validIDOr(id string) string {
	if validID.MatchString(id) {
		return id
	}
	return ""
}
