package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strings"

	"atoll.dev/atoll/abi"
)

const versionUsage = `Usage: atoll version [--json]

Shows atoll's version (its module version, or the revision it was built
from), the guest ABI it implements, the guest library it carries (what
atoll lib writes), the Go version it was built with, and the Go toolchain
atoll build runs (go env GOVERSION here).

Flags:
`

// versionInfo is what `atoll version --json` prints.
type versionInfo struct {
	Version   string `json:"version"`            // module version or "(devel)"
	Revision  string `json:"revision,omitempty"` // VCS revision, when built from a checkout
	Time      string `json:"time,omitempty"`     // its commit time
	Modified  bool   `json:"modified,omitempty"` // the checkout had changes
	ABI       string `json:"abi"`
	Library   string `json:"library"`
	Go        string `json:"go"`                  // what built atoll
	Toolchain string `json:"toolchain,omitempty"` // what atoll build runs
	NoGo      string `json:"no_go,omitempty"`     // why there is none
}

func cmdVersion(args []string, stdout, stderr *os.File) int {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(fs.Output(), versionUsage); fs.PrintDefaults() }
	asJSON := fs.Bool("json", false, "print JSON for tools")
	if code, done := parseFlags(fs, args, stdout); done {
		return code
	}
	if fs.NArg() != 0 {
		fmt.Fprintln(stderr, "atoll version: takes no arguments")
		return exitUsage
	}
	v := versionInfo{Version: "(devel)", ABI: abi.Version, Go: runtime.Version()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			v.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				v.Revision = s.Value
			case "vcs.time":
				v.Time = s.Value
			case "vcs.modified":
				v.Modified = s.Value == "true"
			}
		}
	}
	if l, err := embeddedLib(); err == nil {
		v.Library = l.id
	} else {
		v.Library = "unreadable: " + err.Error()
	}
	if out, err := exec.Command("go", "env", "GOVERSION").Output(); err == nil {
		v.Toolchain = strings.TrimSpace(string(out))
	} else if _, lookErr := exec.LookPath("go"); lookErr != nil {
		v.NoGo = "no go command on PATH"
	} else {
		v.NoGo = fmt.Sprintf("go env GOVERSION failed: %v", err)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(v)
		return 0
	}
	version := v.Version
	if v.Revision != "" {
		var extra []string
		if v.Time != "" {
			extra = append(extra, v.Time)
		}
		if v.Modified {
			extra = append(extra, "with local changes")
		}
		version += " (revision " + v.Revision
		if len(extra) > 0 {
			version += ", " + strings.Join(extra, ", ")
		}
		version += ")"
	}
	toolchain := v.Toolchain + " (what atoll build runs)"
	if v.Toolchain == "" {
		toolchain = "none: " + v.NoGo + "; atoll build needs one"
	}
	fmt.Fprintf(stdout, "atoll:     %s\nabi:       %s (guest ABI)\nlibrary:   lib %s (the guest library atoll lib writes)\ngo:        %s (built with)\ntoolchain: %s\n",
		version, v.ABI, v.Library, v.Go, toolchain)
	return 0
}
