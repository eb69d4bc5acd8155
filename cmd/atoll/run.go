package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"atoll.dev/atoll/abi"
	"atoll.dev/atoll/imagefile"
	"atoll.dev/atoll/manifest"
	"atoll.dev/atoll/monitor"
	"atoll.dev/atoll/netback"
	"atoll.dev/atoll/usernet"
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
  atoll run -p 8080:80 ./examples/www          # user networking, host port 8080 -> guest 80
  atoll run --net service=tap:tap0,ip=10.1.0.2/24 www.img   # a real tap device (root)

Flags:
`

func cmdRun(args []string, stdout, stderr *os.File) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(fs.Output(), runUsage); fs.PrintDefaults() }
	var mem sizeFlag
	fs.Var(&mem, "mem", "guest memory limit, e.g. 256M (default: the manifest's, else 512M)")
	cpus := fs.Int("cpus", 0, "processors the guest sees, drives GOMAXPROCS (default: the manifest's, else 1)")
	env := &listFlag{what: "KEY=VALUE", check: checkEnv}
	fs.Var(env, "e", "set an environment variable `KEY=VALUE` in the guest (repeatable)")
	blocks := &listFlag{what: "NAME=FILE"}
	fs.Var(blocks, "block", "attach the declared block device NAME to `NAME=FILE` (created at the declared size if missing)")
	nets := &listFlag{what: "NAME=BACKEND"}
	fs.Var(nets, "net", "attach the declared network device `NAME=BACKEND[,ip=ADDR/PREFIX|dhcp][,gw=ADDR][,outbound=all|noloopback|none]`; BACKEND is user (the default) or tap:IFACE")
	var ports portList
	fs.Var(&ports, "p", "forward a host port to the guest: `[HOSTIP:]HOSTPORT:GUESTPORT[/udp]` (user network; HOSTIP defaults to 127.0.0.1)")
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
		fmt.Fprintf(stderr, "atoll run: --cpus must be between 1 and %d (or 0 for the manifest's)\n", manifest.MaxCPUs)
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
	att, err := attachDevices(m, blocks.items, nets.items, ports)
	defer att.close()
	if err != nil {
		fmt.Fprintf(stderr, "atoll run: %v\n", err)
		return exitFailure
	}
	// SIGINT and SIGTERM stop the guest; the backends then release their
	// host ports before atoll exits.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, unix.SIGINT, unix.SIGTERM)
	defer signal.Stop(sigs)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stopSig atomic.Value
	go func() {
		if sig, ok := <-sigs; ok {
			stopSig.Store(sig)
			cancel()
		}
	}()
	res, err := monitor.Run(ctx, monitor.Config{
		Image:    exe,
		Name:     m.Name,
		Args:     guestArgs,
		Env:      append(mergeEnv(m.Env, env.items), att.env...),
		MemBytes: m.Memory,
		CPUs:     m.CPUs,
		Stdout:   stdout,
		Stderr:   stderr,
		Log:      stderr,
		Verbose:  *verbose,
		Devices:  att.devs,
	})
	if err != nil {
		fmt.Fprintf(stderr, "atoll: %s: %v\n", target, err)
		return exitFailure
	}
	if *stats {
		fmt.Fprint(stderr, res.Stats)
	}
	if res.Stopped {
		sig, _ := stopSig.Load().(unix.Signal)
		fmt.Fprintf(stderr, "atoll: stopped %s (%s)\n", m.Name, unix.SignalName(sig))
		return 128 + int(sig)
	}
	return res.ExitCode
}

// portList collects -p flags.
type portList []usernet.Forward

func (p *portList) String() string { return fmt.Sprint(len(*p), " forwards") }

func (p *portList) Set(v string) error {
	f, err := usernet.ParseForward(v)
	if err != nil {
		return err
	}
	*p = append(*p, f)
	return nil
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
	exe, emb, err := imagefile.Load(target)
	if err != nil {
		fmt.Fprintf(stderr, "atoll: %v\n", err)
		return nil, nil, exitFailure
	}
	if emb == nil {
		name := sanitizeName(filepath.Base(target))
		if name == "" {
			name = "unikernel"
		}
		return exe, manifest.Default(name), 0
	}
	if !abi.Compatible(emb.ABIVersion) {
		fmt.Fprintf(stderr, "atoll: %s was built for guest ABI %q, and this atoll implements %s — rebuild it with this atoll (atoll build)\n", target, emb.ABIVersion, abi.Version)
		return nil, nil, exitFailure
	}
	return exe, emb.Manifest, 0
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

// attached is what attachDevices opened for the guest.
type attached struct {
	devs     []monitor.Device
	env      []string // addressing of the network devices
	backends []*netback.Backend
}

// close releases the devices and backends (host ports included).
func (a *attached) close() {
	for _, d := range a.devs {
		d.File.Close()
	}
	for _, b := range a.backends {
		b.Close()
	}
}

// attachDevices checks the device flags against the manifest — every
// declared device attached, nothing undeclared — and opens them. A net
// device without a flag gets the user backend, which also takes the -p
// forwards.
func attachDevices(m *manifest.Manifest, blocks, nets []string, ports []usernet.Forward) (*attached, error) {
	att := &attached{}
	given := map[string]string{} // name → flag
	for _, f := range append(append([]string(nil), blocks...), nets...) {
		name, _, _ := strings.Cut(f, "=")
		if prev, dup := given[name]; dup {
			return att, fmt.Errorf("device %q attached twice (%s, %s)", name, prev, f)
		}
		given[name] = f
	}
	check := func(kind abi.Kind, flag string, items []string) error {
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
		return att, err
	}
	if err := check(manifest.Net, "net", nets); err != nil {
		return att, err
	}
	var userNets []string
	for _, d := range m.Devices {
		_, spec, ok := strings.Cut(given[d.Name], "=")
		if d.Kind == manifest.Net && (!ok || backendName(spec) == "user") {
			userNets = append(userNets, d.Name)
		}
	}
	if len(ports) > 0 && len(userNets) != 1 {
		return att, fmt.Errorf("-p forwards ports to the one network device on the user backend, but %s has %d (%s)", m.Name, len(userNets), declared(m))
	}
	for _, d := range m.Devices {
		f, ok := given[d.Name]
		_, arg, _ := strings.Cut(f, "=")
		switch {
		case d.Kind == manifest.Net:
			if !ok {
				arg = "user"
			}
			b, err := openNet(arg, ports)
			if err != nil {
				return att, fmt.Errorf("net device %s (--net %s=%s): %w", d.Name, d.Name, arg, err)
			}
			att.backends = append(att.backends, b)
			att.devs = append(att.devs, monitor.Device{Device: d, File: b.Guest})
			att.env = append(att.env, abi.NetEnv(d.Name)+"="+b.GuestConfig())
		case !ok:
			return att, fmt.Errorf("%s declares %s device %q, but nothing is attached: add --%s %s=FILE", m.Name, d.Kind, d.Name, d.Kind, d.Name)
		default:
			file, err := openBlock(arg, d)
			if err != nil {
				return att, fmt.Errorf("--block %s: %w", f, err)
			}
			att.devs = append(att.devs, monitor.Device{Device: d, File: file})
		}
	}
	return att, nil
}

// backendName is the backend part of BACKEND[:ARG][,OPTIONS].
func backendName(spec string) string {
	spec, _, _ = strings.Cut(spec, ",")
	spec, _, _ = strings.Cut(spec, ":")
	return spec
}

// openNet opens a network backend from
// BACKEND[,ip=ADDR/PREFIX|dhcp][,gw=ADDR][,outbound=POLICY].
func openNet(spec string, ports []usernet.Forward) (*netback.Backend, error) {
	parts := strings.Split(spec, ",")
	o := netback.Options{}
	if backendName(spec) == "user" {
		o.Forwards = ports
	}
	for _, opt := range parts[1:] {
		k, v, _ := strings.Cut(opt, "=")
		var err error
		switch k {
		case "ip":
			if v == "dhcp" {
				o.DHCP = true
			} else {
				o.Addr, err = netip.ParsePrefix(v)
			}
		case "gw":
			o.Gateway, err = netip.ParseAddr(v)
		case "outbound":
			o.Outbound, err = usernet.ParseOutbound(v)
		default:
			err = fmt.Errorf("unknown option %q (want ip=ADDR/PREFIX, ip=dhcp, gw=ADDR or outbound=all|noloopback|none)", opt)
		}
		if err != nil {
			return nil, err
		}
	}
	return netback.Open(parts[0], o)
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
	spec := d.Spec.(*manifest.BlockSpec)
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
	if err != nil {
		f.Close()
		return nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	switch size := uint64(st.Size()); {
	case size == 0:
		if err := f.Truncate(int64(spec.Size)); err != nil {
			f.Close()
			return nil, err
		}
	case size != spec.Size:
		f.Close()
		return nil, fmt.Errorf("%s is %d bytes, but the manifest declares %s as %s (%d bytes): use a file of that size, or a new path to create one", path, size, d.Name, manifest.FormatSize(spec.Size), spec.Size)
	}
	return f, nil
}
