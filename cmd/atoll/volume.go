package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"atoll.dev/atoll/abi"
	"atoll.dev/atoll/manifest"
	"atoll.dev/atoll/monitor/vfs"
)

// Volumes are host directories in the guest's file system: --volume
// NAME=HOSTDIR for a declared volume, or, for a plain executable (no
// manifest to declare any), --volume HOSTDIR:DST[:ro] directly.
func init() { deviceKinds[abi.KindVolume] = volumeKind{} }

type volumeKind struct{}

// volumeFlags holds --volume values of both forms.
type volumeFlags struct {
	named  []string // NAME=HOSTDIR
	direct []string // HOSTDIR:DST[:ro]
}

func (v *volumeFlags) String() string { return strings.Join(append(v.named, v.direct...), ",") }

func (v *volumeFlags) Set(s string) error {
	if name, dir, ok := strings.Cut(s, "="); ok && name != "" && dir != "" && !strings.Contains(name, "/") {
		v.named = append(v.named, s)
		return nil
	}
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || len(parts) == 3 && parts[2] != "ro" {
		return fmt.Errorf("want NAME=HOSTDIR, or HOSTDIR:DST[:ro] for a plain executable, got %q", s)
	}
	if err := manifest.ValidMountPath(parts[1]); err != nil {
		return err
	}
	v.direct = append(v.direct, s)
	return nil
}

func (volumeKind) flags(fs *flag.FlagSet) kindFlags {
	v := new(volumeFlags)
	fs.Var(v, "volume", "mount the host directory HOSTDIR as the declared volume NAME; a plain executable may be given HOSTDIR:DST[:ro] (`NAME=HOSTDIR`; repeatable)")
	return v
}

func (v *volumeFlags) given() ([]string, string) { return v.named, "volume" }

// check mounts the direct volumes, which only a plain executable may have:
// an image gets exactly what its manifest declares.
func (v *volumeFlags) check(m *manifest.Manifest, a *attached) error {
	if len(v.direct) > 0 && !a.plain {
		return fmt.Errorf("--volume %s: %s has a manifest, so its volumes are the ones it declares (%s): use --volume NAME=HOSTDIR", v.direct[0], m.Name, declared(m))
	}
	for _, d := range v.direct {
		parts := strings.Split(d, ":")
		if err := a.mount(parts[0], parts[1], len(parts) == 3); err != nil {
			return fmt.Errorf("--volume %s: %w", d, err)
		}
	}
	return nil
}

func (v *volumeFlags) attach(m *manifest.Manifest, d manifest.Device, dir string, given bool, a *attached) error {
	spec, ok := d.Spec.(*manifest.VolumeSpec)
	if !ok || spec == nil {
		return fmt.Errorf("volume %s has no path", d.Name)
	}
	if !given {
		if spec.Optional {
			return nil // its path is absent in the guest
		}
		return fmt.Errorf("%s declares volume %q, but nothing is attached: add --volume %s=HOSTDIR", m.Name, d.Name, d.Name)
	}
	if err := a.mount(dir, spec.Path, spec.ReadOnly); err != nil {
		return fmt.Errorf("--volume %s=%s: %w", d.Name, dir, err)
	}
	return nil
}

// mount opens host directory dir to appear at guest path at.
func (a *attached) mount(dir, at string, ro bool) error {
	for _, v := range a.volumes {
		switch {
		case v.Path == at:
			return fmt.Errorf("%s is already a volume", at)
		case strings.HasPrefix(at, v.Path+"/"), strings.HasPrefix(v.Path, at+"/"):
			return fmt.Errorf("volumes %s and %s are nested, which Atoll does not support: mount them side by side", v.Path, at)
		}
	}
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("host directory %s: %w", dir, err)
	}
	a.volumes = append(a.volumes, vfs.Volume{Path: at, Dir: os.NewFile(uintptr(fd), dir), ReadOnly: ro})
	return nil
}
