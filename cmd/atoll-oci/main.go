// Command atoll-oci is an OCI runtime for Atoll unikernels: runc's command
// line, for bundles whose process is an Atoll image or any static Go
// linux/amd64 executable, each container's process being atoll run, the
// monitor, booting it. Engines that drive runc drive it: podman with
// --runtime, containerd through its runc shim's BinaryName, CRI-O as a
// runtime handler (docs/kubernetes.md).
//
// A pod's sandbox container (the pause process a Kubernetes runtime
// starts first) is no unikernel: atoll-oci hands it, and every later call
// about it, to runc (delegate.go).
//
// A container is a directory under the state root (--root, default
// /run/atoll-oci) holding its state and a FIFO. create starts the
// container's process, which enters the bundle's network namespace and
// waits on the FIFO; start opens it, and the process becomes atoll run.
// Its exit status is the guest's.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

const usage = `Usage: atoll-oci [global flags] COMMAND [flags] ID

An OCI runtime for Atoll unikernels, with runc's command line.

Commands:
  create [--bundle DIR] [--pid-file FILE] [--console-socket SOCKET] ID
  start ID
  state ID
  kill ID [SIGNAL]
  delete [--force] ID
  ps [--format table|json] ID
  features
  list

Global flags: --root DIR (default /run/atoll-oci), --log FILE,
--log-format text|json; --debug and --systemd-cgroup are accepted and
ignored. The container's process runs atoll run: the atoll binary beside
atoll-oci, else on PATH, or $ATOLL_BINARY.

Not supported (a unikernel runs one program, with no guest kernel): exec,
pause, resume, update, checkpoint, restore.
`

// globals are the flags before the command.
type globals struct {
	root, log, logFormat string
}

// exitError is what a failed command exits with, as runc does.
const exitError = 1

func main() {
	g, args := parseGlobals(os.Args[1:])
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	err := runCommand(g, args[0], args[1:], os.Stdout)
	if err != nil {
		g.report(err)
		os.Exit(exitError)
	}
}

// parseGlobals takes the global flags off args.
func parseGlobals(args []string) (globals, []string) {
	g := globals{root: "/run/atoll-oci", logFormat: "text"}
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		name, value, hasValue := strings.Cut(strings.TrimLeft(args[0], "-"), "=")
		args = args[1:]
		switch name {
		case "root", "log", "log-format", "criu", "rootless":
			if !hasValue && len(args) > 0 {
				value, args = args[0], args[1:]
			}
		}
		switch name {
		case "root":
			g.root = value
		case "log":
			g.log = value
		case "log-format":
			g.logFormat = value
		case "h", "help":
			fmt.Print(usage)
			os.Exit(0)
		case "v", "version":
			fmt.Println("atoll-oci, runc-compatible command line; OCI runtime spec 1.1.0")
			os.Exit(0)
		}
	}
	return g, args
}

// report writes err to standard error and to the log, in the log's format
// (conmon reads a failed call's message from there).
func (g globals) report(err error) {
	fmt.Fprintf(os.Stderr, "atoll-oci: %v\n", err)
	if g.log == "" {
		return
	}
	f, ferr := os.OpenFile(g.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if ferr != nil {
		return
	}
	defer f.Close()
	now := time.Now().Format(time.RFC3339Nano)
	if g.logFormat == "json" {
		b, _ := json.Marshal(map[string]string{"level": "error", "msg": err.Error(), "time": now})
		f.Write(append(b, '\n'))
		return
	}
	fmt.Fprintf(f, "time=%q level=error msg=%q\n", now, err.Error())
}

// runCommand runs one command.
func runCommand(g globals, cmd string, args []string, stdout io.Writer) error {
	if id := idOf(cmd, args); id != "" && g.delegated(id) {
		return g.runc(cmd, args)
	}
	switch cmd {
	case "create":
		return create(g, args)
	case "start":
		return start(g, args)
	case "state":
		return state(g, args, stdout)
	case "kill":
		return kill(g, args)
	case "delete":
		return del(g, args)
	case "ps":
		return ps(g, args, stdout)
	case "features":
		return features(stdout)
	case "list":
		return list(g, stdout)
	case initCmd:
		return initContainer(g, args)
	case "exec", "pause", "resume", "update", "checkpoint", "restore", "run":
		return fmt.Errorf("%s is not supported: a unikernel runs one program, with no guest kernel to %s in (create and start it instead)", cmd, cmd)
	}
	return fmt.Errorf("unknown command %q\n%s", cmd, usage)
}

// cmdFlags splits a command's arguments into its flags (name → value;
// "true" for a flag without one) and the rest. valued names the flags
// that take a value.
func cmdFlags(args []string, valued ...string) (map[string]string, []string) {
	flags := map[string]string{}
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			rest = append(rest, args[i+1:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			rest = append(rest, a)
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !hasValue {
			value = "true"
			for _, v := range valued {
				if v == name && i+1 < len(args) {
					i++
					value = args[i]
				}
			}
		}
		flags[name] = value
	}
	return flags, rest
}
