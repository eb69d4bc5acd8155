package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"atoll.dev/atoll/abi"
	"atoll.dev/atoll/imagefile"
	"atoll.dev/atoll/manifest"
	"atoll.dev/atoll/monitor"
	"atoll.dev/atoll/monitor/elfimage"
	"atoll.dev/atoll/monitor/vfs"
	"atoll.dev/atoll/netstack"
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
  atoll run -p 8080:80 ./server                # a plain executable's own sockets: host 8080 -> guest 80
  atoll run --net host,outbound=noloopback ./client   # outbound connections, not to the host itself
  atoll run --net service=tap:tap0,ip=10.1.0.2/24 www.img   # a real tap device (root)
  atoll run --volume data=/srv/kv kv.img       # the declared volume "data" is /srv/kv on the host
  atoll run --volume $PWD:/work:ro --workdir /work ./tool   # a plain executable, given a directory
  atoll run -d -p 8080:80 --restart on-failure:3 www.img   # in the background: atoll ps, logs, stop, rm

The guest's files: what its manifest packs (read-only), /etc and /dev as a
Go program expects, /proc/self/exe, a private /tmp and its volumes
(docs/abi.md). Standard input, output and error are atoll's.

The network: on the user backend the unikernel's own TCP/IP stack
(atoll.Net) talks to a NAT in atoll; on the host backend its ordinary
sockets are served by the host's, where it may listen only on its own
loopback and forwarded ports. Either way it is 10.0.2.15, the host's
loopback is 10.0.2.2, and its resolver 10.0.2.3 forwards to the host's
(or --dns).

With -d, atoll run starts a supervisor in a session of its own and
returns; the supervisor runs the unikernel (again, as --restart says)
with its output in a log, under a name (--name, default the manifest's).
atoll ps, logs, stop and rm manage such unikernels, from any shell.

Before the guest's first instruction atoll confines itself with a seccomp
filter: the host calls it needs, nothing else (docs/threat-model.md).
ATOLL_SECCOMP=trap makes a call outside it crash atoll with a traceback
naming the caller, to report; ATOLL_SECCOMP=off runs without it, for
debugging only.

Flags:
`

func cmdRun(args []string, stdout, stderr *os.File) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(fs.Output(), runUsage); fs.PrintDefaults() }
	var mem sizeFlag
	fs.Var(&mem, "mem", "the guest's memory limit `SIZE`, such as 256M or 2G (default: the manifest's, else 512M)")
	cpus := fs.Int("cpus", 0, "processors the guest sees, which GOMAXPROCS follows (default: the manifest's, else 1)")
	env := &listFlag{what: "KEY=VALUE", check: checkEnv}
	fs.Var(env, "e", "set an environment variable in the guest (`KEY=VALUE`; repeatable)")
	kinds := defineDeviceFlags(fs)
	workdir := fs.String("workdir", "", "the guest's working directory, an absolute guest path (default /)")
	argv0 := fs.String("argv0", "", "the guest's argv[0] (default: the unikernel's name)")
	verbose := fs.Bool("v", false, "log each distinct unsupported call the guest makes, once, with what the ABI says of it")
	stats := fs.Bool("stats", false, "print VM exit counts by cause, and the host memory used, when the guest exits")
	detached := fs.Bool("d", false, "run in the background, supervised, with the output in a log (atoll ps, logs, stop, rm)")
	name := fs.String("name", "", "with -d, the unikernel's name (default: the manifest's)")
	restart := fs.String("restart", "no", "with -d, when to start it again: no, on-failure[:N] or always")
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
	if *detached {
		return runDetached(fs, args, target, mem, *name, *restart, stdout, stderr)
	}
	if *name != "" || *restart != "no" {
		fmt.Fprintln(stderr, "atoll run: --name and --restart are for -d")
		return exitUsage
	}
	tg, code := loadTarget(target, stderr)
	if code != 0 {
		return code
	}
	defer tg.close()
	exe, m := tg.exe, tg.m
	if mem.set {
		m.Memory = mem.n
	}
	if *cpus != 0 {
		m.CPUs = *cpus
	}
	// Refuse a limit the image cannot start in before opening anything.
	if img, err := elfimage.Parse(exe); err == nil {
		if err := monitor.CheckMemory(img, m.Memory); err != nil {
			fmt.Fprintf(stderr, "atoll run: %v: raise --mem (or the manifest's memory)\n", err)
			return exitFailure
		}
	}
	if *verbose {
		netstack.Verbose()
	}
	confinement, err := seccompMode(stderr)
	if err != nil {
		fmt.Fprintf(stderr, "atoll run: %v\n", err)
		return exitUsage
	}
	att, err := attachDevices(m, tg.plain, kinds)
	defer att.close()
	if err != nil {
		fmt.Fprintf(stderr, "atoll run: %v\n", err)
		return exitFailure
	}
	if cg, err := joinMemoryCgroup(m.Memory + cgroupOverhead); err != nil {
		if *verbose {
			fmt.Fprintf(stderr, "atoll: no memory cgroup of its own (%v): the monitor's bound on guest memory applies alone\n", err)
		}
	} else {
		if *verbose {
			fmt.Fprintf(stderr, "atoll: memory cgroup %s, limit %s\n", cg.dir, manifest.FormatSize(m.Memory+cgroupOverhead))
		}
		defer func() {
			if err := cg.leave(); err != nil {
				fmt.Fprintf(stderr, "atoll: leaving memory cgroup %s: %v\n", cg.dir, err)
			}
		}()
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
	runStart := time.Now()
	res, err := monitor.Run(ctx, monitor.Config{
		Image:         exe,
		ImageFile:     tg.im.File(),
		Name:          m.Name,
		Args:          guestArgs,
		Env:           append(mergeEnv(m.Env, env.items), att.env...),
		MemBytes:      m.Memory,
		CPUs:          m.CPUs,
		Stdin:         os.Stdin,
		Stdout:        stdout,
		Stderr:        stderr,
		Log:           stderr,
		Verbose:       *verbose,
		MeasureMemory: *stats,
		Devices:       att.devs,
		Files:         tg.files,
		Volumes:       att.volumes,
		Workdir:       *workdir,
		Argv0:         *argv0,
		HostNet:       att.hostNet,
		Seccomp:       confinement,

		Nameservers: att.nameservers,
	})
	if err != nil {
		fmt.Fprintf(stderr, "atoll: %s: %v\n", target, err)
		return exitFailure
	}
	if *stats {
		fmt.Fprint(stderr, res.Stats)
		fmt.Fprintf(stderr, "atoll start to monitor.Run: %.2f ms\n", float64(runStart.Sub(processStart))/float64(time.Millisecond))
		fmt.Fprint(stderr, res.Timeline)
		if res.Memory != nil {
			fmt.Fprint(stderr, res.Memory)
		}
	}
	if res.Stopped {
		sig, _ := stopSig.Load().(unix.Signal)
		fmt.Fprintf(stderr, "atoll: stopped %s (%s)\n", m.Name, unix.SignalName(sig))
		return 128 + int(sig)
	}
	return res.ExitCode
}

// seccompEnv chooses how atoll run confines itself (docs/threat-model.md,
// "Seccomp"): unset, a call outside the monitor's seccomp filter kills
// atoll; "trap" makes it crash with a Go traceback that names the caller
// instead (to report a call the filter lacks); "off" runs without the
// filter, for debugging only.
const seccompEnv = "ATOLL_SECCOMP"

// seccompMode reads seccompEnv, warning on stderr on every run that
// weakens the filter.
func seccompMode(stderr *os.File) (monitor.SeccompMode, error) {
	switch v := os.Getenv(seccompEnv); v {
	case "", "kill":
		return monitor.SeccompKill, nil
	case "trap":
		fmt.Fprintf(stderr, "atoll: warning: %s=trap: a host call outside the seccomp filter crashes atoll with a traceback instead of killing it; for diagnosis only\n", seccompEnv)
		return monitor.SeccompTrap, nil
	case "off":
		fmt.Fprintf(stderr, "atoll: WARNING: %s=off: the monitor runs WITHOUT its seccomp filter; a guest that took it over would have all of atoll's host privileges; for debugging only\n", seccompEnv)
		return monitor.SeccompOff, nil
	default:
		return 0, fmt.Errorf("%s=%q: want kill (the default), trap or off", seccompEnv, v)
	}
}

// processStart is when atoll's package variables were initialized: as
// near its start as Go lets it see, for --stats's timeline.
var processStart = time.Now()

// bootTarget is what atoll run boots.
type bootTarget struct {
	exe   []byte
	m     *manifest.Manifest
	plain bool       // a plain executable: no manifest, nothing declared
	files []vfs.File // the image's read-only tree
	im    *imagefile.Image
}

// close unmaps the image.
func (tg *bootTarget) close() { tg.im.Close() }

// loadTarget maps what to boot: an image, a plain executable (default
// manifest, no devices), or a package built first.
func loadTarget(target string, stderr *os.File) (*bootTarget, int) {
	if st, err := os.Stat(target); err == nil && st.IsDir() {
		m, err := readManifest(target)
		if err != nil {
			fmt.Fprintf(stderr, "atoll: %v\n", err)
			return nil, exitFailure
		}
		tmp, err := os.MkdirTemp("", "atoll-run-")
		if err != nil {
			fmt.Fprintf(stderr, "atoll: %v\n", err)
			return nil, exitFailure
		}
		defer os.RemoveAll(tmp) // the mapping outlives the file
		img := filepath.Join(tmp, m.Name+".img")
		if code := buildImage(target, m, img, "", stderr); code != 0 {
			return nil, code
		}
		target = img
	}
	im, err := imagefile.Open(target)
	if err != nil {
		fmt.Fprintf(stderr, "atoll: %v\n", err)
		return nil, exitFailure
	}
	tg := &bootTarget{exe: im.Exe, im: im}
	emb := im.Embedded
	if emb == nil {
		name := sanitizeName(filepath.Base(target))
		if name == "" {
			name = "unikernel"
		}
		tg.m, tg.plain = manifest.Default(name), true
		return tg, 0
	}
	if !abi.Compatible(emb.ABIVersion) {
		im.Close()
		fmt.Fprintf(stderr, "atoll: %s was built for guest ABI %q, and this atoll implements %s — rebuild it with this atoll (atoll build)\n", target, emb.ABIVersion, abi.Version)
		return nil, exitFailure
	}
	tg.m = emb.Manifest
	if t := emb.Tree; t != nil {
		for _, e := range t.Entries {
			f := vfs.File{Path: e.Path, Mode: e.Mode, ModTime: e.ModTime}
			if !e.IsDir() {
				f.Data = t.Data(e)
			}
			tg.files = append(tg.files, f)
		}
	}
	return tg, 0
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
