package main

import (
	"errors"
	"flag"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"atoll.dev/atoll/abi"
	"atoll.dev/atoll/manifest"
	"atoll.dev/atoll/monitor"
)

// Block devices are host files: --block NAME=FILE.
func init() { deviceKinds[abi.KindBlock] = blockKind{} }

type blockKind struct{}

type blockFlags struct{ files *listFlag }

func (blockKind) flags(fs *flag.FlagSet) kindFlags {
	f := blockFlags{&listFlag{what: "NAME=FILE"}}
	fs.Var(f.files, "block", "attach the declared block device NAME to the host file FILE, created at the declared size if missing (`NAME=FILE`; repeatable)")
	return f
}

func (f blockFlags) given() ([]string, string) { return f.files.items, "block" }

func (blockFlags) check(*manifest.Manifest, *attached) error { return nil }

func (blockFlags) attach(m *manifest.Manifest, d manifest.Device, path string, given bool, a *attached) error {
	if !given {
		return fmt.Errorf("%s declares block device %q, but nothing is attached: add --block %s=FILE", m.Name, d.Name, d.Name)
	}
	file, err := openBlock(path, d)
	if err != nil {
		return fmt.Errorf("--block %s=%s: %w", d.Name, path, err)
	}
	a.devs = append(a.devs, monitor.Device{Device: d, File: file})
	return nil
}

// openBlock opens the file behind a block device, creating it at the
// declared size if it is missing or empty. It refuses a file of another
// size (nothing is truncated or extended) and one another atoll has open.
func openBlock(path string, d manifest.Device) (*os.File, error) {
	spec, ok := d.Spec.(*manifest.BlockSpec)
	if !ok || spec == nil {
		return nil, fmt.Errorf("block device %s has no geometry", d.Name)
	}
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
