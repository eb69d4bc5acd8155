package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"atoll.dev/atoll/manifest"
)

const newUsage = `Usage: atoll new NAME

Creates directory NAME holding a Go module that builds and boots as is:
main.go, atoll.manifest and a README. NAME is also the unikernel's name:
1–63 of [a-z0-9-], starting with a letter.

Example:
  atoll new hello-web && cd hello-web && atoll run .
`

func cmdNew(args []string, stdout, stderr *os.File) int {
	fs := flag.NewFlagSet("new", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(fs.Output(), newUsage) }
	if code, done := parseFlags(fs, args, stdout); done {
		return code
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "atoll new: want exactly one NAME")
		return exitUsage
	}
	dir := fs.Arg(0)
	name := filepath.Base(dir)
	if !manifest.ValidName(name) {
		fmt.Fprintf(stderr, "atoll new: name %q must be %s\n", name, manifest.NameRule)
		return exitUsage
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		if errors.Is(err, os.ErrExist) {
			fmt.Fprintf(stderr, "atoll new: %s already exists; nothing was changed\n", dir)
		} else {
			fmt.Fprintf(stderr, "atoll new: %v\n", err)
		}
		return exitFailure
	}
	r := strings.NewReplacer("NAME", name)
	for file, text := range scaffold {
		if err := os.WriteFile(filepath.Join(dir, file), []byte(r.Replace(text)), 0o644); err != nil {
			fmt.Fprintf(stderr, "atoll new: %v\n", err)
			return exitFailure
		}
	}
	fmt.Fprintf(stdout, "created %s: a unikernel module. Next:\n  cd %s\n  atoll run .          # build and boot it\n  go run .             # the same program as a process\n", dir, dir)
	return 0
}

// scaffold is the new module's files; NAME is replaced by its name.
var scaffold = map[string]string{
	"go.mod": "module NAME\n\ngo 1.26\n",
	manifest.FileName: `// Manifest of the NAME unikernel (see Atoll's docs/manifest.md).
unikernel NAME

// Defaults for atoll run; its flags override them.
memory 256M
cpus 1
env GREETING=hello

// Devices are declared here and attached by atoll run, for example:
//   block data 64M       (then: atoll run --block data=data.img .)
`,
	"main.go": `// Command NAME is a unikernel: build and boot it with atoll run, or run
// it as a process with go run.
package main

import (
	"fmt"
	"os"
)

func main() {
	greeting := os.Getenv("GREETING")
	if greeting == "" {
		greeting = "hello"
	}
	host, err := os.Hostname()
	if err != nil {
		host = "?"
	}
	fmt.Printf("%s from %s\n", greeting, host)
}
`,
	"README.md": "# NAME\n\nA Go unikernel made with Atoll.\n\n" +
		"```\natoll build              # writes NAME.img\natoll run NAME.img       # boots it as a VM\n" +
		"./NAME.img               # the same image as a plain process\natoll run .              # build and boot in one step\n" +
		"atoll inspect NAME.img   # what the image declares\n```\n\n" +
		"`atoll.manifest` names the unikernel and declares its devices and defaults.\n",
}
