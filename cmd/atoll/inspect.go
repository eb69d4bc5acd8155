package main

import (
	"bytes"
	"debug/buildinfo"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"

	"atoll.dev/atoll/imagefile"
	"atoll.dev/atoll/manifest"
	"atoll.dev/atoll/monitor/elfimage"
)

const inspectUsage = `Usage: atoll inspect [--json] IMAGE

Shows what an image declares — name, devices, memory, processors and
environment defaults — and facts about it: size, Go version, main package,
the guest ABI version it was built for, whether it carries the time-zone
database and CA roots, and the files in its read-only tree.

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
	// TreeSize is the total size of the tree's files; Tree its entries.
	TreeSize int64           `json:"tree_size,omitempty"`
	Tree     []inspectedFile `json:"tree,omitempty"`
}

// inspectedFile is one entry of the image's tree.
type inspectedFile struct {
	Path    string    `json:"path"`
	Mode    string    `json:"mode"` // as ls shows it: drwxr-xr-x, -rw-r--r--
	Size    int64     `json:"size"`
	ModTime time.Time `json:"mod_time"`
}

// maxListed bounds the tree entries atoll inspect lists as text.
const maxListed = 50

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
	im, err := imagefile.Open(path)
	if err == nil {
		defer im.Close()
		if _, err = elfimage.Parse(im.Exe); err != nil {
			err = fmt.Errorf("%s: %w", path, err)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "atoll: %v\n", err)
		return exitFailure
	}
	exe, emb := im.Exe, im.Embedded
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
		in.TreeSize = emb.Tree.Size()
		if emb.Tree != nil {
			in.Tree = []inspectedFile{}
			for _, e := range emb.Tree.Entries {
				in.Tree = append(in.Tree, inspectedFile{e.Path, e.Mode.String(), e.Size, e.ModTime})
			}
		}
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
	} else {
		row("devices", "")
	}
	for _, d := range m.Devices {
		if desc := d.Describe(); desc != "" {
			fmt.Fprintf(w, "  %-6s %-16s %s\n", d.Kind, d.Name, desc)
		} else {
			fmt.Fprintf(w, "  %-6s %s\n", d.Kind, d.Name)
		}
	}
	row("tzdata", onOff(m.TZData, "Go's embedded time-zone database"))
	row("cacerts", onOff(m.CACerts, "the build host's CA bundle, if it had one"))
	if in.Tree == nil {
		row("files", "none")
		return
	}
	row("files", fmt.Sprintf("%d entries, %d bytes", len(in.Tree), in.TreeSize))
	for i, f := range in.Tree {
		if i == maxListed {
			fmt.Fprintf(w, "  … and %d more (atoll inspect --json lists them all)\n", len(in.Tree)-maxListed)
			break
		}
		fmt.Fprintf(w, "  %s %10d  %s\n", f.Mode, f.Size, quoteOdd(f.Path))
	}
}

func onOff(on bool, what string) string {
	if on {
		return "on (" + what + ")"
	}
	return "off"
}

// quoteOdd quotes s if it holds anything but printable characters other
// than quotes and backslashes: an image's paths are not to be trusted
// with the terminal.
func quoteOdd(s string) string {
	for _, r := range s {
		if !unicode.IsPrint(r) || r == '"' || r == '\\' {
			return strconv.Quote(s)
		}
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
