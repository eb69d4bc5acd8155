// Command atoll builds and boots Go unikernels. See `atoll help`.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"atoll.dev/atoll/monitor"
	"atoll.dev/atoll/monitor/elfimage"
)

// Exit statuses of atoll itself; a guest's own status passes through.
const (
	exitUsage   = 2   // bad command line
	exitFailure = 125 // atoll could not run the guest (as docker/podman use it)
)

const usage = `atoll boots Go programs as KVM unikernels.

Usage:
  atoll run [flags] IMAGE [-- ARGS...]   boot IMAGE, a static linux/amd64 Go executable
  atoll help                            show this help

Exit status: the guest's own; 125 when atoll could not start the guest;
128+N when the guest died of signal N (with a crash report on stderr);
2 for a bad command line.

Run 'atoll run -h' for the run flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr *os.File) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	case "run":
		return cmdRun(args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "atoll: unknown command %q\n\n%s", args[0], usage)
	return exitUsage
}

const runUsage = `Usage: atoll run [flags] IMAGE [-- ARGS...]

Boots IMAGE, a static linux/amd64 Go executable (CGO_ENABLED=0 go build),
as a KVM virtual machine with no guest kernel. The guest's standard output
and error are the terminal; atoll exits with the guest's status.

Examples:
  atoll run ./hello
  atoll run --mem 256M --cpus 2 -e GREETING=hi ./hello -- arg1 arg2

Flags:
`

func cmdRun(args []string, stdout, stderr *os.File) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, runUsage)
		fs.PrintDefaults()
	}
	mem := sizeFlag(512 << 20)
	fs.Var(&mem, "mem", "guest memory limit (bytes, or with K, M, G suffix)")
	cpus := fs.Int("cpus", 1, "processors the guest sees (drives GOMAXPROCS)")
	var env envFlag
	fs.Var(&env, "e", "set an environment variable KEY=VALUE in the guest (repeatable)")
	verbose := fs.Bool("v", false, "log each distinct unsupported call the guest makes (once each)")
	stats := fs.Bool("stats", false, "print VM exit counts by cause when the guest exits")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return exitUsage
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fmt.Fprintln(stderr, "atoll run: missing IMAGE")
		fs.Usage()
		return exitUsage
	}
	image, guestArgs := rest[0], rest[1:]
	if len(guestArgs) > 0 && guestArgs[0] == "--" {
		guestArgs = guestArgs[1:]
	}
	if *cpus < 1 || *cpus > 64 {
		fmt.Fprintln(stderr, "atoll run: --cpus must be between 1 and 64")
		return exitUsage
	}
	if mem < 32<<20 {
		fmt.Fprintln(stderr, "atoll run: --mem must be at least 32M")
		return exitUsage
	}
	f, err := os.Open(image)
	if err != nil {
		fmt.Fprintf(stderr, "atoll: %v\n", err)
		return exitFailure
	}
	data, err := elfimage.ReadFile(f, elfimage.MaxImageBytes)
	f.Close()
	if err != nil {
		fmt.Fprintf(stderr, "atoll: %s: %v\n", image, err)
		return exitFailure
	}
	var log io.Writer = stderr
	res, err := monitor.Run(monitor.Config{
		Image:    data,
		Name:     baseName(image),
		Args:     guestArgs,
		Env:      env,
		MemBytes: uint64(mem),
		CPUs:     *cpus,
		Stdout:   stdout,
		Stderr:   stderr,
		Log:      log,
		Verbose:  *verbose,
	})
	if err != nil {
		fmt.Fprintf(stderr, "atoll: %s: %v\n", image, err)
		return exitFailure
	}
	if *stats {
		fmt.Fprint(stderr, res.Stats)
	}
	return res.ExitCode
}

func baseName(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		p = p[i+1:]
	}
	return p
}

// sizeFlag is a byte count with an optional K/M/G suffix.
type sizeFlag uint64

func (s *sizeFlag) String() string { return fmt.Sprintf("%dM", uint64(*s)>>20) }

func (s *sizeFlag) Set(v string) error {
	n, err := parseSize(v)
	if err != nil {
		return err
	}
	*s = sizeFlag(n)
	return nil
}

func parseSize(v string) (uint64, error) {
	t := strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(v), "IB"), "B")
	mult := uint64(1)
	if t != "" {
		switch t[len(t)-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		}
		if mult != 1 {
			t = t[:len(t)-1]
		}
	}
	n, err := strconv.ParseUint(t, 10, 64)
	if err != nil || n == 0 || n > (1<<40)/mult {
		return 0, fmt.Errorf("invalid size %q (want e.g. 512M or 2G)", v)
	}
	return n * mult, nil
}

// envFlag collects repeated -e KEY=VALUE.
type envFlag []string

func (e *envFlag) String() string { return strings.Join(*e, ",") }

func (e *envFlag) Set(v string) error {
	if i := strings.IndexByte(v, '='); i <= 0 {
		return fmt.Errorf("want KEY=VALUE, got %q", v)
	}
	*e = append(*e, v)
	return nil
}
