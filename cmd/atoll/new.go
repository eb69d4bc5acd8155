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

const newUsage = `Usage: atoll new [--net] NAME

Creates directory NAME holding a Go module that builds and boots as is:
main.go, atoll.manifest, a README, and a copy of the guest library
atoll.dev/atoll in .atoll/ (see 'atoll help lib'), so that the program can
import it, offline, with atoll build and go build alike. NAME is also the
unikernel's name: 1–63 of [a-z0-9-], starting with a letter.

Without --net the program uses only the standard library. With --net it
is an HTTP service on the network device "service" its manifest declares:
port 80 in the unikernel (atoll run -p 8080:80 . serves it on the host's
port 8080), and PORT, default 8080, on the host's sockets as a process.

Examples:
  atoll new hello-web && cd hello-web && atoll run .
  atoll new web --net && cd web && atoll run -p 8080:80 .

Flags:
`

func cmdNew(args []string, stdout, stderr *os.File) int {
	fs := flag.NewFlagSet("new", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(fs.Output(), newUsage); fs.PrintDefaults() }
	withNet := fs.Bool("net", false, "scaffold an HTTP service on a network device")
	if showHelp(fs, args, stdout) {
		return 0
	}
	names, err := parseInterspersed(fs, args)
	if err != nil {
		return exitUsage
	}
	if len(names) != 1 {
		fmt.Fprintln(stderr, "atoll new: want exactly one NAME")
		return exitUsage
	}
	dir := names[0]
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
	files := scaffold
	if *withNet {
		files = netScaffold
	}
	r := strings.NewReplacer("NAME", name)
	for file, text := range files {
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, file), []byte(r.Replace(text)), 0o644)
		}
	}
	if err == nil {
		_, err = installLib(dir, false)
	}
	if err != nil {
		os.RemoveAll(dir) // made just now: leave nothing half done
		fmt.Fprintf(stderr, "atoll new: %v\n", err)
		return exitFailure
	}
	next := "  atoll run .          # build and boot it\n  go run .             # the same program as a process\n"
	if *withNet {
		next = "  atoll run -p 8080:80 .   # build and boot it, then: curl localhost:8080\n  go run .                 # the same program as a process, on port 8080\n"
	}
	fmt.Fprintf(stdout, "created %s: a unikernel module, with the guest library in %s/%s. Next:\n  cd %s\n%s", dir, dir, libDir, dir, next)
	return 0
}

// parseInterspersed parses fs's flags wherever they stand among args —
// the flag package stops at the first argument that is not a flag — and
// returns the others in order. Everything after "--" is not a flag.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		left := fs.Args()
		if used := len(args) - len(left); used > 0 && args[used-1] == "--" {
			return append(rest, left...), nil
		}
		if len(left) == 0 {
			return rest, nil
		}
		rest = append(rest, left[0])
		args = left[1:]
	}
}

const goModText = "module NAME\n\ngo 1.26\n"

// scaffold is a new module's files; NAME is replaced by its name. atoll
// lib adds the guest library to go.mod.
var scaffold = map[string]string{
	"go.mod": goModText,
	manifest.FileName: `// Manifest of the NAME unikernel (see Atoll's docs/manifest.md).
unikernel NAME

// Defaults for atoll run; its flags override them.
memory 256M
cpus 1
env GREETING=hello

// Devices are declared here and attached by atoll run, for example:
//   block data 64M       (then: atoll run --block data=data.img .)
// The program finds them with the guest library, atoll.dev/atoll
// (atoll.OpenBlock("data")), which go.mod points at the copy in .atoll.
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
		"`atoll.manifest` names the unikernel and declares its devices and defaults.\n\n" + libReadmeNote,
}

// netScaffold is the files of `atoll new --net`.
var netScaffold = map[string]string{
	"go.mod": goModText,
	manifest.FileName: `// Manifest of the NAME unikernel (see Atoll's docs/manifest.md).
unikernel NAME

// Defaults for atoll run; its flags override them. In the unikernel the
// service has ports of its own and listens on 80.
memory 256M
cpus 1
env PORT=80

// The network device main.go listens on, with atoll.Net("service").
// atoll run gives it the user-mode network (no root, no host setup) unless
// --net says otherwise, and -p forwards a host port to it:
//   atoll run -p 8080:80 .
net service
`,
	"main.go": `// Command NAME is an HTTP service as a unikernel. It listens on the
// network device "service" its manifest declares:
//
//	atoll run -p 8080:80 .   # as a VM; then curl localhost:8080
//	go run .                 # as a process, on the host's sockets, port 8080
package main

import (
	"fmt"
	"log"
	"net/http"
	"os"

	"atoll.dev/atoll"
)

func main() {
	// The manifest sets PORT=80 for the unikernel; as a process the
	// default, 8080, needs no privileges.
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	// Under atoll run, a TCP/IP stack inside the unikernel on its network
	// device; as a process, the host's own sockets.
	network, err := atoll.Net("service")
	if err != nil {
		log.Fatal(err)
	}
	ln, err := network.Listen("tcp", ":"+port)
	if err != nil {
		log.Fatal(err)
	}
	host, _ := os.Hostname() // once: in a unikernel each call is a VM exit
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s\n", host)
	})
	log.Printf("NAME: serving on %s", ln.Addr())
	log.Fatal(http.Serve(ln, nil))
}
`,
	"README.md": "# NAME\n\nAn HTTP service as a Go unikernel, made with Atoll.\n\n" +
		"```\natoll run -p 8080:80 .          # build and boot it; then: curl localhost:8080\n" +
		"atoll build                     # writes NAME.img\natoll run -p 8080:80 NAME.img   # boots the image\n" +
		"go run .                        # the same program as a process, on port 8080\n" +
		"./NAME.img                      # the image as a process, likewise\n```\n\n" +
		"`atoll.manifest` declares the network device `service` and sets `PORT=80` for the\n" +
		"unikernel, which has its own TCP/IP stack; `-p 8080:80` forwards the host's port\n" +
		"8080 to it (`atoll help run`). As a process, `atoll.Net(\"service\")` gives the\n" +
		"host's sockets and the program listens on `PORT`, 8080 unless set.\n\n" + libReadmeNote,
}

const libReadmeNote = "The guest library, `atoll.dev/atoll`, is in `.atoll/`, a copy that `go.mod`\n" +
	"points at, so the module builds offline. Commit it with the module, and run\n" +
	"`atoll lib` after upgrading atoll to update it.\n"
