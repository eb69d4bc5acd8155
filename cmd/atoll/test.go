package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"atoll.dev/atoll/manifest"
	"atoll.dev/atoll/monitor/vfs"
)

const testUsage = `Usage: atoll test [go test flags] [packages]

Runs go test with each package's test binary booted as a unikernel: the
package's directory is visible read-only at its own path and is the working
directory (so tests read their testdata/), /tmp is writable (t.TempDir),
sockets work on the guest's own loopback (the host backend, with
outbound=none: httptest servers and clients, but nothing beyond the
guest), and there is no subprocess. Test binaries are built with
CGO_ENABLED=0. Results and exit status are go test's.

The whole module holding the package is visible read-only (tests often
read ../testdata), and os.Args[0] is /proc/self/exe, which opens the test
binary, as a test that reads itself expects. A module under /tmp (which
each guest has for itself) appears at /module instead, and the working
directory moves with it.

Environment: ATOLL_TEST_MEM sets each test's memory limit (default 4G;
only what a test touches costs host memory).

Examples:
  atoll test ./...
  atoll test -run TestParse -v ./manifest
  atoll test archive/tar compress/gzip
`

func cmdTest(args []string, stdout, stderr *os.File) int {
	for _, a := range args {
		if a == "-h" || a == "-help" || a == "--help" {
			fmt.Fprint(stdout, testUsage)
			return 0
		}
		if a == "--" {
			break
		}
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "atoll test: %v\n", err)
		return exitFailure
	}
	cmd := exec.Command("go", append([]string{"test", "-exec", strconv.Quote(self) + " test-exec"}, args...)...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, stdout, stderr
	if err := cmd.Run(); err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		fmt.Fprintf(stderr, "atoll test: go: %v\n", err)
		return exitFailure
	}
	return 0
}

// cmdTestExec is go test's -exec program: it boots test binary args[0]
// with its arguments, the working directory (the package's, as go test
// sets it) mounted read-only where it is.
func cmdTestExec(args []string, stdout, stderr *os.File) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "atoll test-exec: want a test binary (this is what atoll test runs)")
		return exitUsage
	}
	wd, err := os.Getwd()
	if err != nil {
		fmt.Fprintf(stderr, "atoll test-exec: %v\n", err)
		return exitFailure
	}
	mem := os.Getenv("ATOLL_TEST_MEM")
	if mem == "" {
		mem = "4G"
	}
	root := moduleRoot(wd)
	var run []string
	if root != "/" {
		at := root
		if manifest.ValidMountPath(root) != nil {
			// Under /tmp, say, which the guest has for itself.
			at, wd = movedModule, movedModule+strings.TrimPrefix(wd, root)
		}
		run = append(run, "--volume", root+":"+at+":ro")
	}
	run = append(run, "--mem", mem, "--workdir", wd, "--argv0", vfs.ExeLink, "--net", "host,outbound=none")
	return cmdRun(append(append(run, args[0], "--"), args[1:]...), stdout, stderr)
}

// movedModule is where a module appears whose own path the guest cannot
// have as a volume.
const movedModule = "/module"

// moduleRoot returns the directory of the go.mod that holds dir, or dir
// itself when there is none.
func moduleRoot(dir string) string {
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if d == filepath.Dir(d) {
			return dir
		}
	}
}
