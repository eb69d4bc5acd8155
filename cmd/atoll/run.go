package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"atoll.dev/atoll/imagefile"
	"atoll.dev/atoll/manifest"
	"atoll.dev/atoll/monitor"
	"atoll.dev/atoll/monitor/elfimage"
)

const runUsage = `Usage: atoll run [flags] IMAGE|DIR [-- ARGS...]

Boots IMAGE — an image from atoll build, or any static linux/amd64 Go
executable (no devices then) — as a KVM virtual machine with no guest
kernel. Given a package directory, builds it first. The guest's standard
output and error are the terminal; atoll exits with the guest's status.

Memory, processors and environment default to the manifest's. Every
device the manifest declares must be attached, and nothing else can be.

Examples:
  atoll run hello-web.img
  atoll run .                                  # build and boot this package
  atoll run --mem 256M --cpus 2 -e GREETING=hi ./hello -- arg1 arg2
  atoll run --block data=disk.img kv.img       # attach the declared block device

Flags:
`

func cmdRun(args []string, stdout, stderr *os.File) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(fs.Output(), runUsage); fs.PrintDefaults() }
	var mem sizeFlag
	fs.Var(&mem, "mem", "guest memory limit, e.g. 256M (default: the manifest's, else 512M)")
	cpus := fs.Int("cpus", 0, "processors the guest sees, drives GOMAXPROCS (default: the manifest's, else 1)")
	env := &listFlag{what: "KEY=VALUE"}
	fs.Var(env, "e", "set an environment variable `KEY=VALUE` in the guest (repeatable)")
	blocks := &listFlag{what: "NAME=FILE"}
	fs.Var(blocks, "block", "attach the declared block device NAME to `NAME=FILE` (created at the declared size if missing)")
	nets := &listFlag{what: "NAME=BACKEND"}
	fs.Var(nets, "net", "attach the declared network device `NAME=BACKEND` (not available yet)")
	verbose := fs.Bool("v", false, "log each distinct unsupported call the guest makes (once each)")
	stats := fs.Bool("stats", false, "print VM exit counts by cause when the guest exits")
	if code, done := parseFlags(fs, args, stdout); done {
		return code
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fmt.Fprintln(stderr, "atoll run: missing IMAGE")
		fs.Usage()
		return exitUsage
	}
	target, guestArgs := rest[0], rest[1:]
	if len(guestArgs) > 0 && guestArgs[0] == "--" {
		guestArgs = guestArgs[1:]
	}
	if *cpus < 0 || *cpus > manifest.MaxCPUs {
		fmt.Fprintf(stderr, "atoll run: --cpus must be between 1 and %d\n", manifest.MaxCPUs)
		return exitUsage
	}
	if mem.set && mem.n < manifest.MinMemory {
		fmt.Fprintln(stderr, "atoll run: --mem must be at least 32M")
		return exitUsage
	}
	exe, m, code := loadTarget(target, stderr)
	if code != 0 {
		return code
	}
	if mem.set {
		m.Memory = mem.n
	}
	if *cpus != 0 {
		m.CPUs = *cpus
	}
	devs, err := attachDevices(m, blocks.items, nets.items)
	defer func() {
		for _, d := range devs {
			d.File.Close()
		}
	}()
	if err != nil {
		fmt.Fprintf(stderr, "atoll run: %v\n", err)
		return exitFailure
	}
	res, err := monitor.Run(monitor.Config{
		Image:    exe,
		Name:     m.Name,
		Args:     guestArgs,
		Env:      mergeEnv(m.Env, env.items),
		MemBytes: m.Memory,
		CPUs:     m.CPUs,
		Stdout:   stdout,
		Stderr:   stderr,
		Log:      stderr,
		Verbose:  *verbose,
		Devices:  devs,
	})
	if err != nil {
		fmt.Fprintf(stderr, "atoll: %s: %v\n", target, err)
		return exitFailure
	}
	if *stats {
		fmt.Fprint(stderr, res.Stats)
	}
	return res.ExitCode
}

// loadTarget returns the executable and manifest to boot: an image, a plain
// executable (default manifest, no devices), or a package built first.
func loadTarget(target string, stderr *os.File) ([]byte, *manifest.Manifest, int) {
	if st, err := os.Stat(target); err == nil && st.IsDir() {
		m, err := readManifest(target)
		if err != nil {
			fmt.Fprintf(stderr, "atoll: %v\n", err)
			return nil, nil, exitFailure
		}
		tmp, err := os.MkdirTemp("", "atoll-run-")
		if err != nil {
			fmt.Fprintf(stderr, "atoll: %v\n", err)
			return nil, nil, exitFailure
		}
		defer os.RemoveAll(tmp)
		img := filepath.Join(tmp, m.Name+".img")
		if code := buildImage(target, m, img, "", stderr); code != 0 {
			return nil, nil, code
		}
		target = img
	}
	f, err := os.Open(target)
	if err != nil {
		fmt.Fprintf(stderr, "atoll: %v\n", err)
		return nil, nil, exitFailure
	}
	data, err := elfimage.ReadFile(f, elfimage.MaxImageBytes+1<<20)
	f.Close()
	if err == nil {
		var emb *imagefile.Embedded
		var exe []byte
		if exe, emb, err = imagefile.Split(data); err == nil {
			if emb != nil {
				return exe, emb.Manifest, 0
			}
			name := sanitizeName(filepath.Base(target))
			if name == "" {
				name = "unikernel"
			}
			return exe, manifest.Default(name), 0
		}
	}
	fmt.Fprintf(stderr, "atoll: %s: %v\n", target, err)
	return nil, nil, exitFailure
}

// mergeEnv returns the manifest's environment overridden by -e flags.
func mergeEnv(base, flags []string) []string {
	out := append([]string(nil), base...)
	for _, kv := range flags {
		k, _, _ := strings.Cut(kv, "=")
		out = slices.DeleteFunc(out, func(e string) bool { return strings.HasPrefix(e, k+"=") })
		out = append(out, kv)
	}
	return out
}

// attachDevices checks the device flags against the manifest — every
// declared device attached, nothing undeclared — and opens them.
func attachDevices(m *manifest.Manifest, blocks, nets []string) ([]monitor.Device, error) {
	given := map[string]string{} // name → flag
	for _, f := range append(append([]string(nil), blocks...), nets...) {
		name, _, _ := strings.Cut(f, "=")
		if prev, dup := given[name]; dup {
			return nil, fmt.Errorf("device %q attached twice (%s, %s)", name, prev, f)
		}
		given[name] = f
	}
	check := func(kind manifest.Kind, flag string, items []string) error {
		for _, f := range items {
			name, _, _ := strings.Cut(f, "=")
			d, ok := m.Device(name)
			if !ok || d.Kind != kind {
				return fmt.Errorf("--%s %s: %s declares no %s device %q (%s)", flag, f, m.Name, kind, name, declared(m))
			}
		}
		return nil
	}
	if err := check(manifest.Block, "block", blocks); err != nil {
		return nil, err
	}
	if err := check(manifest.Net, "net", nets); err != nil {
		return nil, err
	}
	var devs []monitor.Device
	for _, d := range m.Devices {
		f, ok := given[d.Name]
		switch {
		case d.Kind == manifest.Net:
			return devs, fmt.Errorf("%s declares net device %q, but network backends are not available yet (they arrive with networking); this image cannot boot until then", m.Name, d.Name)
		case !ok:
			return devs, fmt.Errorf("%s declares %s device %q, but nothing is attached: add --%s %s=%s", m.Name, d.Kind, d.Name, d.Kind, d.Name, map[manifest.Kind]string{manifest.Block: "FILE", manifest.Net: "BACKEND"}[d.Kind])
		}
		_, path, _ := strings.Cut(f, "=")
		file, err := openBlock(path, d)
		if err != nil {
			return devs, fmt.Errorf("--block %s: %w", f, err)
		}
		devs = append(devs, monitor.Device{Kind: string(d.Kind), Name: d.Name, File: file, Size: d.Size, SectorSize: d.SectorSize})
	}
	return devs, nil
}

func declared(m *manifest.Manifest) string {
	if len(m.Devices) == 0 {
		return "it declares no devices"
	}
	var l []string
	for _, d := range m.Devices {
		l = append(l, string(d.Kind)+" "+d.Name)
	}
	sort.Strings(l)
	return "it declares: " + strings.Join(l, ", ")
}

// openBlock opens the file behind a block device, creating it at the
// declared size if it is missing or empty. It refuses a file of another
// size (nothing is truncated or extended) and one another atoll has open.
func openBlock(path string, d manifest.Device) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s is in use by another atoll", path)
		}
		return nil, err
	}
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	switch size := uint64(st.Size()); {
	case size == 0:
		if err := f.Truncate(int64(d.Size)); err != nil {
			f.Close()
			return nil, err
		}
	case size != d.Size:
		f.Close()
		return nil, fmt.Errorf("%s is %d bytes, but the manifest declares %s as %s (%d bytes): use a file of that size, or a new path to create one", path, size, d.Name, manifest.FormatSize(d.Size), d.Size)
	}
	return f, nil
}
