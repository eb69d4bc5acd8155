package main

import (
	"bytes"
	"debug/buildinfo"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"

	"atoll.dev/atoll/imagefile"
	"atoll.dev/atoll/manifest"
	"atoll.dev/atoll/monitor/elfimage"
)

const inspectUsage = `Usage: atoll inspect [--json] IMAGE

Shows what an image declares — name, devices, memory, processors and
environment defaults — and facts about it: size, Go version, main package
and the guest ABI version it was built for.

Examples:
  atoll inspect hello-web.img
  atoll inspect --json hello-web.img | jq .manifest.devices

Flags:
`

// inspection is what `atoll inspect --json` prints.
type inspection struct {
	Image      string             `json:"image"`
	Size       int                `json:"size"`
	GoVersion  string             `json:"go_version,omitempty"`
	Package    string             `json:"package,omitempty"`
	ABIVersion string             `json:"abi_version,omitempty"`
	Manifest   *manifest.Manifest `json:"manifest"` // null for a plain executable
}

func cmdInspect(args []string, stdout, stderr *os.File) int {
	fs := flag.NewFlagSet("inspect", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(fs.Output(), inspectUsage); fs.PrintDefaults() }
	asJSON := fs.Bool("json", false, "print JSON for tools")
	if code, done := parseFlags(fs, args, stdout); done {
		return code
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "atoll inspect: want exactly one IMAGE")
		return exitUsage
	}
	path := fs.Arg(0)
	exe, emb, err := imagefile.Load(path)
	if err == nil {
		if _, err = elfimage.Parse(exe); err != nil {
			err = fmt.Errorf("%s: %w", path, err)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "atoll: %v\n", err)
		return exitFailure
	}
	st, err := os.Stat(path)
	if err != nil {
		fmt.Fprintf(stderr, "atoll: %v\n", err)
		return exitFailure
	}
	in := inspection{Image: path, Size: int(st.Size())}
	if bi, err := buildinfo.Read(bytes.NewReader(exe)); err == nil {
		in.GoVersion, in.Package = bi.GoVersion, bi.Path
	}
	if emb != nil {
		in.Manifest, in.ABIVersion = emb.Manifest, emb.ABIVersion
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(in); err != nil {
			fmt.Fprintf(stderr, "atoll: %v\n", err)
			return exitFailure
		}
		return 0
	}
	printInspection(stdout, in)
	return 0
}

func printInspection(w *os.File, in inspection) {
	row := func(k, v string) { fmt.Fprintf(w, "%-10s %s\n", k+":", v) }
	row("image", in.Image)
	row("size", fmt.Sprintf("%d bytes", in.Size))
	row("go", orDash(in.GoVersion))
	row("package", orDash(in.Package))
	m := in.Manifest
	if m == nil {
		row("manifest", "none (a plain executable: it boots with no devices)")
		return
	}
	row("abi", in.ABIVersion)
	row("name", m.Name)
	row("memory", manifest.FormatSize(m.Memory))
	row("cpus", fmt.Sprint(m.CPUs))
	row("env", orDash(strings.Join(m.Env, " ")))
	if len(m.Devices) == 0 {
		row("devices", "none")
		return
	}
	row("devices", "")
	for _, d := range m.Devices {
		if desc := d.Describe(); desc != "" {
			fmt.Fprintf(w, "  %-6s %-16s %s\n", d.Kind, d.Name, desc)
		} else {
			fmt.Fprintf(w, "  %-6s %s\n", d.Kind, d.Name)
		}
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
