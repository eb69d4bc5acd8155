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
	"slices"
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
the image: the executable with the manifest and a read-only file tree
appended. The tree holds the manifest's files entries and the build
host's CA bundle (manifest: cacerts off to leave it out); the program is
built with Go's embedded time-zone database (-tags timetzdata, added to
any tags GOFLAGS gives; manifest: tzdata off). go build's own errors are
shown unchanged.

With --oci, it also writes an OCI image archive (podman load -i, ctr
image import) whose entry point is the image, with the files its tree
packs; atoll-oci runs it (docs/kubernetes.md).

Examples:
  atoll build                    # writes NAME.img, NAME from the manifest
  atoll build -o web.img ./web
  atoll build --oci web.tar ./web   # an OCI image archive, localhost/web:latest

Flags:
`

func cmdBuild(args []string, stdout, stderr *os.File) int {
	fs := flag.NewFlagSet("build", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(fs.Output(), buildUsage); fs.PrintDefaults() }
	out := fs.String("o", "", "write the image to `IMAGE` (default NAME.img, or none with --oci)")
	oci := fs.String("oci", "", "also write an OCI image archive to `ARCHIVE`")
	tag := fs.String("tag", "", "with --oci, the image's reference (default localhost/NAME:latest)")
	if code, done := parseFlags(fs, args, stdout); done {
		return code
	}
	if *tag != "" && *oci == "" {
		fmt.Fprintln(stderr, "atoll build: --tag is for --oci")
		return exitUsage
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
	if *oci == "" {
		if *out == "" {
			*out = m.Name + ".img"
		}
		return buildImage(dir, m, *out, *out, stderr)
	}
	img := *out
	if img == "" {
		tmp, err := os.MkdirTemp(filepath.Dir(*oci), ".atoll-oci-")
		if err != nil {
			fmt.Fprintf(stderr, "atoll: %v\n", err)
			return exitFailure
		}
		defer os.RemoveAll(tmp)
		img = filepath.Join(tmp, m.Name+".img")
	}
	if code := buildImage(dir, m, img, *out, stderr); code != 0 {
		return code
	}
	ref := *tag
	if ref == "" {
		ref = ociRef(m.Name)
	}
	if err := writeOCIArchive(img, *oci, ref); err != nil {
		fmt.Fprintf(stderr, "atoll: %s: %v\n", *oci, err)
		return exitFailure
	}
	fmt.Fprintf(stderr, "atoll: wrote %s (OCI image %s)\n", *oci, ref)
	return 0
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
	start := time.Now()
	files, err := collectFiles(dir, m, []string{out, exe}, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "atoll: %v\n", err)
		return exitFailure
	}
	buildArgs := []string{"build", "-o", exe}
	how := "CGO_ENABLED=0 GOOS=linux GOARCH=amd64"
	if m.TZData {
		tags, err := goTags(dir, "timetzdata")
		if err != nil {
			fmt.Fprintf(stderr, "atoll: %v\n", err)
			return exitFailure
		}
		buildArgs = append(buildArgs, "-tags="+tags)
		how += " -tags=" + tags
	}
	fmt.Fprintf(stderr, "atoll: building %s (go build, %s)\n", m.Name, how)
	if hint := libHint(dir); hint != "" {
		fmt.Fprintln(stderr, hint)
	}
	// An interrupt stops go build (it gets the signal too) and must not
	// leave the temporary file behind: wait for go build, then clean up.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	cmd := exec.Command("go", append(buildArgs, ".")...)
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
	size, err := writeImage(exe, data, m, files, stderr)
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
	fmt.Fprintf(stderr, "atoll: built%s (%.1f MB) in %.1fs\n", show, float64(size)/1e6, time.Since(start).Seconds())
	return 0
}

// writeImage writes the image to path (the executable data, the tree
// packed from files, the manifest m), reports what the tree holds, and
// returns the image's size.
func writeImage(path string, data []byte, m *manifest.Manifest, files []imagefile.Source, stderr *os.File) (int64, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return 0, err
	}
	packStart := time.Now()
	entries, err := imagefile.Write(f, data, imagefile.Embedded{Manifest: m, ABIVersion: abi.Version}, files)
	var size int64
	if err == nil {
		size, err = f.Seek(0, io.SeekCurrent)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil || len(entries) == 0 {
		return size, err
	}
	var nfiles, ndirs int
	var total int64
	for _, e := range entries {
		if e.IsDir() {
			ndirs++
		} else {
			nfiles++
			total += e.Size
		}
	}
	from := fmt.Sprintf("files entries: %d", len(m.Files))
	for _, s := range files {
		if s.Path == caGuestPath && slices.Contains(caBundles, s.HostPath) {
			from += "; CA bundle: " + s.HostPath
		}
	}
	fmt.Fprintf(stderr, "atoll: packed %s in %s, %.1f MB (%s) in %.1fs\n", plural(nfiles, "file"), plural(ndirs, "directory"), float64(total)/1e6, from, time.Since(packStart).Seconds())
	return size, nil
}

// plural returns "1 file", "2 files", "1 directory", "3 directories".
func plural(n int, noun string) string {
	switch {
	case n == 1:
		return "1 " + noun
	case strings.HasSuffix(noun, "y"):
		return fmt.Sprintf("%d %sies", n, noun[:len(noun)-1])
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// caBundles are where build hosts keep their CA bundle, the first found
// packed: Debian and its family, Fedora and its family, Alpine and macOS.
var caBundles = []string{"/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem"}

// caGuestPath is where the guest finds its CA bundle: the first file Go's
// crypto/x509 tries on Linux.
const caGuestPath = "/etc/ssl/certs/ca-certificates.crt"

// collectFiles walks m's files entries in dir (leaving out the files in
// skip: the image being written) and, if m asks for CA roots, adds the
// build host's bundle unless the tree has the path already.
func collectFiles(dir string, m *manifest.Manifest, skip []string, stderr *os.File) ([]imagefile.Source, error) {
	files, err := imagefile.Collect(dir, m.Files, skip...)
	if err != nil {
		where := filepath.Join(dir, manifest.FileName)
		if len(m.Files) == 0 {
			where = dir
		}
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	if !m.CACerts {
		return files, nil
	}
	for _, f := range files {
		switch {
		case f.Path == caGuestPath:
			return files, nil // the package brings its own
		case strings.HasPrefix(caGuestPath, f.Path+"/") && !f.IsDir():
			fmt.Fprintf(stderr, "atoll: note: no CA bundle packed: %s is a file in the tree, so %s cannot be (cacerts off silences this)\n", f.Path, caGuestPath)
			return files, nil
		}
	}
	for _, p := range caBundles {
		st, err := os.Stat(p)
		if err != nil || !st.Mode().IsRegular() {
			continue
		}
		var s imagefile.Source
		s.Path, s.Mode, s.Size, s.ModTime, s.HostPath = caGuestPath, st.Mode().Perm(), st.Size(), st.ModTime().UTC(), p
		return append(files, s), nil
	}
	fmt.Fprintf(stderr, "atoll: note: no CA bundle on this host (%s): the image has none, so TLS clients in it verify nothing unless the program brings its roots (cacerts off silences this)\n", strings.Join(caBundles, ", "))
	return files, nil
}

// goTags returns the build tags go build would use from GOFLAGS (the
// environment's or go env's), with tag added: a -tags flag on go build's
// command line replaces GOFLAGS' instead of adding to it.
func goTags(dir, tag string) (string, error) {
	cmd := exec.Command("go", "env", "GOFLAGS")
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go env GOFLAGS: %v", err)
	}
	var tags []string
	for _, f := range splitQuoted(strings.TrimSpace(string(out))) {
		name, value, ok := strings.Cut(strings.TrimPrefix(f, "-"), "=")
		if ok && (name == "tags" || name == "-tags") {
			tags = parseTags(value) // the last -tags wins, as in go build
		}
	}
	if !slices.Contains(tags, tag) {
		tags = append(tags, tag)
	}
	return strings.Join(tags, ","), nil
}

// splitQuoted splits GOFLAGS as the go command does: fields separated by
// blanks, each possibly in single or double quotes.
func splitQuoted(s string) []string {
	var out []string
	for {
		s = strings.TrimLeft(s, " \t\n\r")
		if s == "" {
			return out
		}
		if q := s[0]; q == '"' || q == '\'' {
			end := strings.IndexByte(s[1:], q)
			if end < 0 {
				return append(out, s[1:])
			}
			out, s = append(out, s[1:1+end]), s[2+end:]
			continue
		}
		end := strings.IndexAny(s, " \t\n\r")
		if end < 0 {
			end = len(s)
		}
		out, s = append(out, s[:end]), s[end:]
	}
}

// parseTags reads a -tags value as go build does: comma-separated, or
// the old blank-separated form in quotes.
func parseTags(v string) []string {
	var tags []string
	if strings.ContainsAny(v, "' ") {
		tags = splitQuoted(v)
	} else {
		tags = strings.Split(v, ",")
	}
	return slices.DeleteFunc(tags, func(t string) bool { return t == "" })
}
