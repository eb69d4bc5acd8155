// Command atoll builds, inspects and boots Go unikernels. See `atoll help`.
package main

import (
	"fmt"
	"os"
	"strings"

	"atoll.dev/atoll/abi"
	"atoll.dev/atoll/manifest"
)

// Exit statuses of atoll itself; a guest's own status passes through.
const (
	exitBuild   = 1   // go build failed (its errors are shown as they are)
	exitUsage   = 2   // bad command line
	exitFailure = 125 // atoll could not do what was asked (as docker/podman use it)
	// monitor.ExitVMFault (70): the VM failed in a way no signal
	// describes, with a crash report.
)

const usage = `atoll builds and boots Go programs as KVM unikernels.

Usage:
  atoll new [--net] NAME            create a unikernel module in directory NAME
  atoll lib [-f] [DIR]              give the module in DIR a copy of the guest
                                    library, atoll.dev/atoll, or update it
  atoll build [-o IMAGE] [DIR]      build the package in DIR (default .) into an image
  atoll inspect [--json] IMAGE      show an image's manifest and facts
  atoll run [flags] IMAGE|DIR [-- ARGS...]
                                    boot an image, a static Go executable,
                                    or a package directory (built first);
                                    with -d, in the background
  atoll ps                          list the unikernels run with -d
  atoll logs [-f] NAME              show a detached unikernel's output
  atoll stop [-t SECONDS] NAME...   stop detached unikernels
  atoll rm [-f] NAME...             remove detached unikernels
  atoll test [go test flags] [packages]
                                    run packages' tests, each booted as a unikernel
  atoll abi [--json]                list the system calls the guest ABI
                                    supports, and how fully
  atoll version [--json]            show the versions of atoll, the guest ABI
                                    and library, and Go
  atoll help [COMMAND]              show help

An image is the static Go executable with its manifest (atoll.manifest)
appended: it still runs as an ordinary Linux process.

Exit status: a booted guest's own; 1 when go build failed; 2 for a bad
command line; 70 when the VM failed in a way no signal describes (with a
crash report on stderr); 125 when atoll could not do what was asked;
128+N when the guest died of signal N (with a crash report on stderr);
137 when it touched memory past its limit (--mem).

Run 'atoll COMMAND -h' for a command's flags and examples.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// commands maps each subcommand to its implementation.
var commands = map[string]func(args []string, stdout, stderr *os.File) int{
	"new":     cmdNew,
	"lib":     cmdLib,
	"build":   cmdBuild,
	"inspect": cmdInspect,
	"run":     cmdRun,
	"ps":      cmdPs,
	"logs":    cmdLogs,
	"stop":    cmdStop,
	"rm":      cmdRm,
	"test":    cmdTest,
	"abi":     cmdABI,
	"version": cmdVersion,
}

func run(args []string, stdout, stderr *os.File) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "help", "-h", "--help":
		if len(args) > 1 {
			c, ok := commands[args[1]]
			if !ok {
				fmt.Fprintf(stderr, "atoll help: unknown command %q; the commands are %s\n", args[1], commandNames())
				return exitUsage
			}
			return c([]string{"-h"}, stdout, stdout)
		}
		fmt.Fprint(stdout, usage)
		return 0
	}
	if c, ok := commands[args[0]]; ok {
		return c(args[1:], stdout, stderr)
	}
	if args[0] == "test-exec" { // go test -exec's program, for atoll test
		return cmdTestExec(args[1:], stdout, stderr)
	}
	if args[0] == superviseCmd && len(args) == 2 { // a detached unikernel's supervisor
		return supervise(args[1])
	}
	fmt.Fprintf(stderr, "atoll: unknown command %q\n\n%s", args[0], usage)
	return exitUsage
}

// commandNames lists the commands in the order the usage shows them.
func commandNames() string {
	return "new, lib, build, inspect, run, ps, logs, stop, rm, test, abi, version and help"
}

// sizeFlag is a byte count with an optional K/M/G suffix.
type sizeFlag struct {
	n   uint64
	set bool
}

func (s *sizeFlag) String() string { return manifest.FormatSize(s.n) }

func (s *sizeFlag) Set(v string) error {
	n, err := manifest.ParseSize(v)
	if err != nil {
		return err
	}
	s.n, s.set = n, true
	return nil
}

// listFlag collects a repeated KEY=VALUE flag.
type listFlag struct {
	what  string // for errors: "KEY=VALUE", "NAME=FILE"
	check func(key string) error
	items []string
}

func (l *listFlag) String() string { return strings.Join(l.items, ",") }

func (l *listFlag) Set(v string) error {
	i := strings.IndexByte(v, '=')
	if i <= 0 {
		return fmt.Errorf("want %s, got %q", l.what, v)
	}
	if l.check != nil {
		if err := l.check(v[:i]); err != nil {
			return err
		}
	}
	l.items = append(l.items, v)
	return nil
}

// checkEnv vets an environment variable name given with -e.
func checkEnv(k string) error {
	if !manifest.ValidEnvKey(k) {
		return fmt.Errorf("%q is not a variable name ([A-Za-z0-9_], not starting with a digit)", k)
	}
	if strings.HasPrefix(k, abi.ReservedEnvPrefix) {
		return fmt.Errorf("%s: names starting with %s are atoll's own", k, abi.ReservedEnvPrefix)
	}
	return nil
}
