package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"atoll.dev/atoll/abi"
	"atoll.dev/atoll/imagefile"
	"atoll.dev/atoll/manifest"
	"atoll.dev/atoll/monitor/elfimage"
)

const buildUsage = `Usage: atoll build [-o IMAGE] [DIR]

Builds the Go package in DIR (default: the current directory) with the
stock toolchain as a static linux/amd64 executable, checks its manifest
(DIR/atoll.manifest; without one the image has no devices), and writes
the image: the executable with the manifest appended. go build's own
errors are shown unchanged.

Examples:
  atoll build                    # writes NAME.img, NAME from the manifest
  atoll build -o web.img ./web

Flags:
`

func cmdBuild(args []string, stdout, stderr *os.File) int {
	fs := flag.NewFlagSet("build", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(fs.Output(), buildUsage); fs.PrintDefaults() }
	out := fs.String("o", "", "write the image to `IMAGE` (default NAME.img)")
	if code, done := parseFlags(fs, args, stdout); done {
		return code
	}
	if fs.NArg() > 1 {
		fmt.Fprintln(stderr, "atoll build: more than one DIR")
		return exitUsage
	}
	dir := "."
	if fs.NArg() == 1 {
		dir = fs.Arg(0)
	}
	m, err := readManifest(dir)
	if err != nil {
		fmt.Fprintf(stderr, "atoll: %v\n", err)
		return exitFailure
	}
	if *out == "" {
		*out = m.Name + ".img"
	}
	return buildImage(dir, m, *out, *out, stderr)
}

// parseFlags parses args; done reports that the command is over (help was
// asked for, or the flags were bad) with the status to exit with.
func parseFlags(fs *flag.FlagSet, args []string, stdout *os.File) (code int, done bool) {
	if showHelp(fs, args, stdout) {
		return 0, true
	}
	if err := fs.Parse(args); err != nil {
		return exitUsage, true
	}
	return 0, false
}

// showHelp prints fs's usage on stdout if args ask for help (before any
// "--"), and reports whether they did.
func showHelp(fs *flag.FlagSet, args []string, stdout *os.File) bool {
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "-h" || a == "-help" || a == "--help" {
			fs.SetOutput(stdout)
			fs.Usage()
			return true
		}
	}
	return false
}

// readManifest reads DIR/atoll.manifest, or makes the default one (named
// after the directory) when there is none.
func readManifest(dir string) (*manifest.Manifest, error) {
	path := filepath.Join(dir, manifest.FileName)
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return nil, err
		}
		name := sanitizeName(filepath.Base(abs))
		if name == "" {
			return nil, fmt.Errorf("%s: no %s, and the directory name gives no usable unikernel name: add one with `unikernel NAME`", dir, manifest.FileName)
		}
		return manifest.Default(name), nil
	}
	if err != nil {
		return nil, err
	}
	return manifest.Parse(path, data)
}

// sanitizeName turns a directory name into a unikernel name, or "".
func sanitizeName(s string) string {
	s = strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-':
			return r
		case r >= 'A' && r <= 'Z':
			return r + 'a' - 'A'
		case r == '_' || r == '.' || r == ' ':
			return '-'
		}
		return -1
	}, s)
	s = strings.Trim(s, "-0123456789")
	if len(s) > 63 {
		s = strings.TrimRight(s[:63], "-")
	}
	if !manifest.ValidName(s) {
		return ""
	}
	return s
}

// buildImage runs go build in dir and writes the image for m to out,
// reporting progress on stderr (naming the image show, if not empty).
func buildImage(dir string, m *manifest.Manifest, out, show string, stderr *os.File) int {
	tmp, err := os.CreateTemp(filepath.Dir(out), ".atoll-build-*")
	if err != nil {
		fmt.Fprintf(stderr, "atoll: %v\n", err)
		return exitFailure
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	exe, err := filepath.Abs(tmp.Name())
	if err != nil {
		fmt.Fprintf(stderr, "atoll: %v\n", err)
		return exitFailure
	}
	fmt.Fprintf(stderr, "atoll: building %s (go build, CGO_ENABLED=0 GOOS=linux GOARCH=amd64)\n", m.Name)
	if hint := libHint(dir); hint != "" {
		fmt.Fprintln(stderr, hint)
	}
	start := time.Now()
	// An interrupt stops go build (it gets the signal too) and must not
	// leave the temporary file behind: wait for go build, then clean up.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	cmd := exec.Command("go", "build", "-o", exe, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	var goErrors bytes.Buffer // to explain a missing guest library
	cmd.Stdout, cmd.Stderr = stderr, io.MultiWriter(stderr, &goErrors)
	err = cmd.Run()
	select {
	case sig := <-sigs:
		fmt.Fprintf(stderr, "atoll: build interrupted (%v)\n", sig)
		return 128 + int(sig.(syscall.Signal))
	default:
	}
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			if hint := missingLibHint(goErrors.String()); hint != "" {
				fmt.Fprintln(stderr, hint)
			}
			return exitBuild
		}
		fmt.Fprintf(stderr, "atoll: go build: %v\n", err)
		return exitFailure
	}
	data, err := os.ReadFile(exe)
	if err != nil {
		fmt.Fprintf(stderr, "atoll: %v\n", err)
		return exitFailure
	}
	if _, err := elfimage.Parse(data); err != nil {
		fmt.Fprintf(stderr, "atoll: %s: %v\n", dir, err)
		return exitFailure
	}
	img, err := imagefile.Append(data, imagefile.Embedded{Manifest: m, ABIVersion: abi.Version})
	if err == nil {
		err = os.WriteFile(exe, img, 0o755)
	}
	if err == nil {
		err = os.Rename(exe, out)
	}
	if err != nil {
		fmt.Fprintf(stderr, "atoll: write %s: %v\n", out, err)
		return exitFailure
	}
	if show != "" {
		show = " " + show
	}
	fmt.Fprintf(stderr, "atoll: built%s (%.1f MB) in %.1fs\n", show, float64(len(img))/1e6, time.Since(start).Seconds())
	return 0
}
