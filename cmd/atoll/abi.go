package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"atoll.dev/atoll/abi"
	"atoll.dev/atoll/monitor"
)

const abiUsage = `Usage: atoll abi [--json]

Lists the guest ABI's system calls: each call the monitor answers, how
fully (full, partial, or an error it always returns) and what to know about
it. docs/abi.md holds the same list and the rest of the interface. With -v,
atoll run logs the calls a guest makes that the ABI does not support.

Flags:
`

// abiCall is one system call as `atoll abi --json` prints it.
type abiCall struct {
	Number  uint64 `json:"number"`
	Name    string `json:"name"`
	Subject string `json:"subject"`
	Support string `json:"support"`
	Errno   string `json:"errno,omitempty"`
	Note    string `json:"note,omitempty"`
}

func cmdABI(args []string, stdout, stderr *os.File) int {
	fs := flag.NewFlagSet("abi", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(fs.Output(), abiUsage); fs.PrintDefaults() }
	asJSON := fs.Bool("json", false, "print JSON for tools")
	if code, done := parseFlags(fs, args, stdout); done {
		return code
	}
	if fs.NArg() != 0 {
		fmt.Fprintln(stderr, "atoll abi: takes no arguments")
		return exitUsage
	}
	var calls []abiCall
	for _, s := range monitor.Syscalls() {
		c := abiCall{Number: s.Number, Name: s.Name, Subject: s.Subject, Support: s.Support.String(), Note: s.Note}
		if s.Support == monitor.SupportError {
			c.Errno = unix.ErrnoName(s.Errno)
		}
		calls = append(calls, c)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(struct {
			Version string    `json:"version"`
			Calls   []abiCall `json:"calls"`
		}{abi.Version, calls}); err != nil {
			fmt.Fprintf(stderr, "atoll: %v\n", err)
			return exitFailure
		}
		return 0
	}
	fmt.Fprintf(stdout, "guest ABI %s: %d system calls (docs/abi.md); others are ENOSYS\n", abi.Version, len(calls))
	subject := ""
	for _, c := range calls {
		if c.Subject != subject {
			subject = c.Subject
			fmt.Fprintf(stdout, "\n%s\n", subject)
		}
		support := c.Support
		if c.Errno != "" {
			support = c.Errno
		}
		line := fmt.Sprintf("  %-18s %-3d  %-13s %s", c.Name, c.Number, support, strings.ReplaceAll(c.Note, "`", ""))
		fmt.Fprintln(stdout, strings.TrimRight(line, " "))
	}
	return 0
}
