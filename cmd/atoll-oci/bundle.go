package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"atoll.dev/atoll/abi"
	"atoll.dev/atoll/imagefile"
	"atoll.dev/atoll/manifest"
	"atoll.dev/atoll/monitor/elfimage"
)

// plan is how a bundle runs: atoll run's arguments, and the network
// namespace to run it in.
type plan struct {
	args  []string // after "atoll run"
	netns string   // a path, or "" for atoll-oci's own
}

// loadBundle reads the bundle at dir and plans its run: the process's
// executable, in the root file system, booted by atoll run with the
// process's arguments, environment and working directory; the memory and
// CPU limits as --mem and --cpus; host directories mounted into it as
// volumes; and, in the engine's network namespace, the host backend, with
// which the guest's sockets are that namespace's.
func loadBundle(dir string) (*plan, error) {
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, fmt.Errorf("bundle %s: %w", dir, err)
	}
	var s spec
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("bundle %s: config.json: %w", dir, err)
	}
	if s.Process == nil || len(s.Process.Args) == 0 || s.Process.Args[0] == "" {
		return nil, fmt.Errorf("bundle %s: config.json has no process to run (process.args)", dir)
	}
	if s.Root == nil || s.Root.Path == "" {
		return nil, fmt.Errorf("bundle %s: config.json has no root file system (root.path)", dir)
	}
	rootfs := s.Root.Path
	if !filepath.IsAbs(rootfs) {
		rootfs = filepath.Join(dir, rootfs)
	}
	exe, err := resolveIn(rootfs, s.Process.Args[0], s.Process.Cwd, s.Process.Env)
	if err != nil {
		return nil, err
	}
	m, err := checkExecutable(exe)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.Process.Args[0], err)
	}
	p := &plan{}
	if s.Linux != nil {
		for _, ns := range s.Linux.Namespaces {
			if ns.Type == "network" {
				p.netns = ns.Path
			}
		}
	}
	a := []string{"--argv0", s.Process.Args[0]}
	for _, e := range s.Process.Env {
		// What atoll run would refuse (not a name, or atoll's own) is
		// the engine's, not the image's: it is left out.
		if k, _, ok := strings.Cut(e, "="); ok && manifest.ValidEnvKey(k) && !strings.HasPrefix(k, abi.ReservedEnvPrefix) {
			a = append(a, "-e", e)
		}
	}
	if cwd := s.Process.Cwd; cwd != "" && cwd != "/" {
		a = append(a, "--workdir", cwd)
	}
	if mem, cpus := limits(s.Linux); mem != 0 || cpus != 0 {
		if mem != 0 {
			a = append(a, "--mem", strconv.FormatUint(mem>>20, 10)+"M")
		}
		if cpus != 0 {
			a = append(a, "--cpus", strconv.Itoa(cpus))
		}
	}
	vols, err := volumes(s.Mounts, m, rootfs)
	if err != nil {
		return nil, err
	}
	a = append(a, vols...)
	if ns, err := resolvConf(s.Mounts); err == nil && ns != "" {
		a = append(a, "--dns", ns)
	}
	if n := netFlag(m); n != "" {
		a = append(a, "--net", n)
	}
	p.args = append(append(a, exe, "--"), s.Process.Args[1:]...)
	return p, nil
}

// resolveIn finds the executable name names inside rootfs, as execve with
// the process's PATH would, without following a symbolic link out of it.
func resolveIn(rootfs, name, cwd string, env []string) (string, error) {
	try := func(p string) (string, bool) {
		host, err := secureJoin(rootfs, p)
		if err != nil {
			return "", false
		}
		st, err := os.Stat(host)
		return host, err == nil && st.Mode().IsRegular()
	}
	if strings.Contains(name, "/") {
		if !path.IsAbs(name) {
			name = path.Join("/", cwd, name)
		}
		if host, ok := try(name); ok {
			return host, nil
		}
		return "", fmt.Errorf("the process's executable %s is not a file in the bundle's root file system", name)
	}
	search := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "PATH="); ok {
			search = v
		}
	}
	for _, d := range filepath.SplitList(search) {
		if host, ok := try(path.Join("/", d, name)); ok {
			return host, nil
		}
	}
	return "", fmt.Errorf("the process's executable %s is not in the bundle's root file system (PATH %s)", name, search)
}

// secureJoin resolves the absolute guest path p inside rootfs, following
// symbolic links as if rootfs were /.
func secureJoin(rootfs, p string) (string, error) {
	cur := "/"
	parts := strings.Split(path.Clean("/"+p), "/")
	for links := 0; len(parts) > 0; {
		part := parts[0]
		parts = parts[1:]
		if part == "" || part == "." {
			continue
		}
		next := path.Join(cur, part)
		target, err := os.Readlink(filepath.Join(rootfs, next))
		if err != nil {
			cur = next // not a link (or not there: the caller's stat says)
			continue
		}
		if links++; links > 40 {
			return "", errors.New("too many levels of symbolic links")
		}
		if path.IsAbs(target) {
			cur = "/"
		}
		parts = append(strings.Split(target, "/"), parts...)
	}
	return filepath.Join(rootfs, cur), nil
}

// checkExecutable refuses what atoll cannot boot: not a static Go
// linux/amd64 executable, or an image for another guest ABI. It returns
// the image's manifest, nil for a plain executable.
func checkExecutable(exe string) (*manifest.Manifest, error) {
	data, e, err := imagefile.Load(exe)
	if err != nil {
		return nil, err
	}
	if _, err := elfimage.Parse(data); err != nil {
		return nil, fmt.Errorf("atoll boots static Go linux/amd64 executables only: %w", err)
	}
	if e == nil {
		return nil, nil
	}
	if !abi.Compatible(e.ABIVersion) {
		return nil, fmt.Errorf("built for guest ABI %q; this atoll implements %s", e.ABIVersion, abi.Version)
	}
	for _, d := range e.Manifest.Devices {
		if d.Kind == abi.KindBlock {
			return nil, fmt.Errorf("its manifest declares block device %q, which atoll-oci cannot attach", d.Name)
		}
	}
	return e.Manifest, nil
}

// limits reads the memory limit (bytes) and the CPU count from the
// bundle's resources: the quota over the period, rounded up, or the
// cpuset's size.
func limits(l *linux) (mem uint64, cpus int) {
	if l == nil || l.Resources == nil {
		return 0, 0
	}
	r := l.Resources
	if r.Memory != nil && r.Memory.Limit != nil && *r.Memory.Limit > 0 {
		mem = uint64(*r.Memory.Limit)
	}
	if c := r.CPU; c != nil {
		switch {
		case c.Quota != nil && c.Period != nil && *c.Quota > 0 && *c.Period > 0:
			cpus = int((uint64(*c.Quota) + *c.Period - 1) / *c.Period)
		case c.Cpus != "":
			cpus = cpusetSize(c.Cpus)
		}
	}
	return mem, min(cpus, manifest.MaxCPUs)
}

// cpusetSize counts the CPUs of a cpuset list such as 0-3,8.
func cpusetSize(s string) int {
	n := 0
	for _, r := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(r, "-")
		a, err1 := strconv.Atoi(lo)
		b, err2 := strconv.Atoi(hi)
		switch {
		case err1 != nil:
		case !isRange:
			n++
		case err2 == nil && b >= a:
			n += b - a + 1
		}
	}
	return n
}

// engineMounts are the destinations an engine mounts into every container
// that a unikernel has of its own (synthesized by atoll: docs/abi.md,
// section 3), or has no use for.
var engineMounts = map[string]bool{
	"/proc": true, "/dev": true, "/dev/pts": true, "/dev/shm": true, "/dev/mqueue": true,
	"/sys": true, "/sys/fs/cgroup": true, "/etc/hosts": true, "/etc/hostname": true,
	"/etc/resolv.conf": true, "/run/.containerenv": true, "/run/secrets": true, "/tmp": true,
}

// volumes turns the bundle's bind mounts of host directories into
// --volume flags: for an image, onto the volumes its manifest declares at
// those paths (any other is refused); for a plain executable, at their
// destinations, with the root file system's own top-level directories
// too (read-only), so that the program sees its image's files.
func volumes(mounts []mount, m *manifest.Manifest, rootfs string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, mt := range mounts {
		dst := path.Clean(mt.Destination)
		if engineMounts[dst] || strings.HasPrefix(dst, "/proc/") || strings.HasPrefix(dst, "/sys/") || strings.HasPrefix(dst, "/dev/") {
			continue
		}
		if mt.Type == "tmpfs" && (dst == "/run" || dst == "/var/run") {
			continue // containerd's default: the guest has a /tmp of its own
		}
		bind := mt.Type == "bind"
		for _, o := range mt.Options {
			bind = bind || o == "bind" || o == "rbind"
		}
		st, err := os.Stat(mt.Source)
		if !bind || err != nil || !st.IsDir() {
			return nil, fmt.Errorf("mount at %s: atoll-oci mounts host directories only (type bind), not %s %q", dst, mt.Type, mt.Source)
		}
		ro := false
		for _, o := range mt.Options {
			ro = ro || o == "ro"
		}
		seen[dst] = true
		if m == nil {
			v := mt.Source + ":" + dst
			if ro {
				v += ":ro"
			}
			out = append(out, "--volume", v)
			continue
		}
		name := ""
		for _, d := range m.Devices {
			if vs, ok := d.Spec.(*manifest.VolumeSpec); ok && d.Kind == abi.KindVolume && path.Clean(vs.Path) == dst {
				name = d.Name
			}
		}
		if name == "" {
			return nil, fmt.Errorf("mount at %s: the image declares no volume there (atoll inspect lists its volumes)", dst)
		}
		out = append(out, "--volume", name+"="+mt.Source)
	}
	if m != nil {
		return out, nil
	}
	des, err := os.ReadDir(rootfs)
	if err != nil {
		return nil, fmt.Errorf("the root file system: %w", err)
	}
	for _, de := range des {
		dst := "/" + de.Name()
		if de.IsDir() && !engineMounts[dst] && dst != "/etc" && !seen[dst] {
			out = append(out, "--volume", filepath.Join(rootfs, de.Name())+":"+dst+":ro")
		}
	}
	return out, nil
}

// resolvConf returns the first name server of the resolv.conf the engine
// mounts into the container, the one its network has.
func resolvConf(mounts []mount) (string, error) {
	for _, mt := range mounts {
		if path.Clean(mt.Destination) != "/etc/resolv.conf" {
			continue
		}
		b, err := os.ReadFile(mt.Source)
		if err != nil {
			return "", err
		}
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) == 2 && f[0] == "nameserver" {
				return f[1], nil
			}
		}
	}
	return "", nil
}

// netFlag is the --net flag that puts the guest's sockets in the
// namespace atoll runs in, any port open to listen on: for an image, on
// the network device it declares ("" if none); for a plain executable,
// its own sockets.
func netFlag(m *manifest.Manifest) string {
	const opts = "host,listen=any,outbound=all"
	if m == nil {
		return opts
	}
	for _, d := range m.Devices {
		if d.Kind == abi.KindNet {
			return d.Name + "=" + opts
		}
	}
	return ""
}
