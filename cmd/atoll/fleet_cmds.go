package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"atoll.dev/atoll/manifest"
)

const psUsage = `Usage: atoll ps

Lists the unikernels started with atoll run -d, running or not, until
atoll rm removes them: name, image, status (starting, running, exited,
failed, crashed, stopped, or gone when its supervisor was killed), for how
long, forwarded ports, and memory (the VM's atoll process's resident
memory, and the guest's limit). The state is kept under $ATOLL_STATE
(default /run/atoll for root, else $XDG_RUNTIME_DIR/atoll).

Flags:
`

func cmdPs(args []string, stdout, stderr *os.File) int {
	fs := flag.NewFlagSet("ps", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(fs.Output(), psUsage); fs.PrintDefaults() }
	if code, done := parseFlags(fs, args, stdout); done {
		return code
	}
	if fs.NArg() != 0 {
		fmt.Fprintln(stderr, "atoll ps: takes no arguments")
		return exitUsage
	}
	es, err := entries()
	if err != nil {
		fmt.Fprintf(stderr, "atoll ps: %v\n", err)
		return exitFailure
	}
	now := time.Now()
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tIMAGE\tSTATUS\tFOR\tPORTS\tMEMORY")
	for _, e := range es {
		st, d := e.status(now)
		age := "-"
		if d > 0 {
			age = d.Round(time.Second).String()
		}
		ports := strings.Join(e.cfg.Ports, ",")
		if ports == "" {
			ports = "-"
		}
		mem := "-/" + manifest.FormatSize(e.cfg.Memory)
		if rss, ok := e.vmRSS(); ok {
			mem = fmt.Sprintf("%.1fM/%s", float64(rss)/(1<<20), manifest.FormatSize(e.cfg.Memory))
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", e.cfg.Name, e.cfg.Image, st, age, ports, mem)
	}
	w.Flush()
	return 0
}

const logsUsage = `Usage: atoll logs [-f] NAME

Prints what the unikernel NAME (started with atoll run -d) wrote to its
standard output and error, every life of it, with atoll's own messages.
With -f, goes on printing what it writes until it ends.

Flags:
`

func cmdLogs(args []string, stdout, stderr *os.File) int {
	fs := flag.NewFlagSet("logs", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(fs.Output(), logsUsage); fs.PrintDefaults() }
	follow := fs.Bool("f", false, "follow: print new output as it comes, until the unikernel ends")
	if code, done := parseFlags(fs, args, stdout); done {
		return code
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "atoll logs: want one NAME")
		return exitUsage
	}
	e, err := openEntry(fs.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "atoll logs: %v\n", err)
		return exitFailure
	}
	f, err := os.Open(e.path("log"))
	if errors.Is(err, os.ErrNotExist) {
		return 0 // nothing written yet
	}
	if err != nil {
		fmt.Fprintf(stderr, "atoll logs: %v\n", err)
		return exitFailure
	}
	defer f.Close()
	for {
		if _, err := io.Copy(stdout, f); err != nil {
			fmt.Fprintf(stderr, "atoll logs: %v\n", err)
			return exitFailure
		}
		if !*follow {
			return 0
		}
		if !e.running() {
			// One more read: what it wrote before it ended.
			io.Copy(stdout, f)
			return 0
		}
		time.Sleep(100 * time.Millisecond)
	}
}

const stopUsage = `Usage: atoll stop [-t SECONDS] NAME...

Stops unikernels started with atoll run -d: SIGTERM, which the guest may
handle, then SIGKILL if it has not ended within the timeout. A stopped
unikernel is not restarted, whatever its restart policy; atoll rm removes
it.

Flags:
`

func cmdStop(args []string, stdout, stderr *os.File) int {
	fs := flag.NewFlagSet("stop", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(fs.Output(), stopUsage); fs.PrintDefaults() }
	timeout := fs.Int("t", 10, "seconds to wait after SIGTERM before SIGKILL")
	if code, done := parseFlags(fs, args, stdout); done {
		return code
	}
	if fs.NArg() == 0 || *timeout < 0 {
		fmt.Fprintln(stderr, "atoll stop: want NAME..., and -t of 0 or more")
		return exitUsage
	}
	code := 0
	for _, name := range fs.Args() {
		e, err := openEntry(name)
		if err == nil {
			err = e.stop(time.Duration(*timeout) * time.Second)
		}
		if err != nil {
			fmt.Fprintf(stderr, "atoll stop: %v\n", err)
			code = exitFailure
			continue
		}
		fmt.Fprintln(stdout, name)
	}
	return code
}

// stop asks the supervisor to stop the VM and not restart it (SIGTERM),
// then to kill it (SIGUSR1) if it has not ended after timeout, and waits
// for the supervisor to end. A unikernel that is not running is left as
// it is.
func (e *entry) stop(timeout time.Duration) error {
	if !e.running() {
		return nil
	}
	if err := os.WriteFile(e.path("stop"), nil, 0o600); err != nil {
		return err
	}
	sup, _ := e.pids()
	if sup == 0 {
		return fmt.Errorf("%s: its supervisor's process ID is unknown", e.cfg.Name)
	}
	// The lock is held, so sup is the supervisor, alive: it wrote its
	// ID after taking the lock.
	unix.Kill(sup, unix.SIGTERM)
	if e.waitEnded(timeout) {
		return nil
	}
	unix.Kill(sup, unix.SIGUSR1)
	if e.waitEnded(5 * time.Second) {
		return nil
	}
	unix.Kill(sup, unix.SIGKILL)
	if e.waitEnded(5 * time.Second) {
		return nil
	}
	return fmt.Errorf("%s: still running after SIGKILL", e.cfg.Name)
}

// waitEnded waits up to d for the supervisor to end.
func (e *entry) waitEnded(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for e.running() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

const rmUsage = `Usage: atoll rm [-f] NAME...

Removes unikernels started with atoll run -d, with their logs. A running
one is refused unless -f, which stops it first (SIGKILL at once).

Flags:
`

func cmdRm(args []string, stdout, stderr *os.File) int {
	fs := flag.NewFlagSet("rm", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(fs.Output(), rmUsage); fs.PrintDefaults() }
	force := fs.Bool("f", false, "stop a running unikernel first")
	if code, done := parseFlags(fs, args, stdout); done {
		return code
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(stderr, "atoll rm: want NAME...")
		return exitUsage
	}
	code := 0
	for _, name := range fs.Args() {
		if err := rmEntry(name, *force); err != nil {
			fmt.Fprintf(stderr, "atoll rm: %v\n", err)
			code = exitFailure
			continue
		}
		fmt.Fprintln(stdout, name)
	}
	return code
}

func rmEntry(name string, force bool) error {
	e, err := openEntry(name)
	if err != nil {
		return err
	}
	if e.running() {
		if !force {
			return fmt.Errorf("%s is running: atoll stop %s first, or atoll rm -f", name, name)
		}
		if err := e.stop(0); err != nil {
			return err
		}
	}
	return os.RemoveAll(e.dir)
}
