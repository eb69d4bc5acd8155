// Package atoll is the guest side of Atoll: what a unikernel imports to
// find the devices `atoll run` attached to it. The same program also runs
// as a plain Linux process, where devices come from the environment.
package atoll

import (
	"fmt"
	"os"
	"sync"

	"atoll.dev/atoll/abi"
)

// Device is a device attached to this unikernel.
type Device struct {
	Kind abi.Kind
	Name string // as declared in the manifest
	fd   int
}

// Devices lists the attached devices. As a plain process with no
// ATOLL_DEVICES in the environment, the list is empty.
func Devices() ([]Device, error) {
	entries, err := abi.ParseDevices(os.Getenv(abi.DevicesEnv))
	if err != nil {
		return nil, err
	}
	out := make([]Device, len(entries))
	for i, e := range entries {
		out[i] = Device{Kind: e.Kind, Name: e.Name, fd: e.FD}
	}
	return out, nil
}

// opened holds what OpenBlock and Net have handed out, by device name:
// each device is opened once, however often it is asked for.
var opened struct {
	sync.Mutex
	m map[string]any // *os.File or Network
}

// once returns the value for name, making it with open the first time.
func once[T any](name string, open func() (T, error)) (T, error) {
	opened.Lock()
	defer opened.Unlock()
	if v, ok := opened.m[name]; ok {
		if t, ok := v.(T); ok {
			return t, nil
		}
		var zero T
		return zero, fmt.Errorf("device %q is not a %T", name, zero)
	}
	t, err := open()
	if err != nil {
		return t, err
	}
	if opened.m == nil {
		opened.m = map[string]any{}
	}
	opened.m[name] = t
	return t, nil
}

// OpenBlock returns the block device called name: under atoll run, the
// descriptor the monitor attached; as a plain process, the file named by
// ATOLL_BLOCK_<NAME> (the name upper-cased, '-' as '_'). Access it with
// ReadAt, WriteAt and Sync in whole sectors. Every call returns the same
// *os.File; closing it closes the device.
func OpenBlock(name string) (*os.File, error) {
	return once(name, func() (*os.File, error) { return openBlock(name) })
}

func openBlock(name string) (*os.File, error) {
	devs, err := Devices()
	if err != nil {
		return nil, err
	}
	for _, d := range devs {
		if d.Kind == abi.KindBlock && d.Name == name {
			return os.NewFile(uintptr(d.fd), "block:"+name), nil
		}
	}
	env := abi.BlockEnv(name)
	if path := os.Getenv(env); path != "" {
		return os.OpenFile(path, os.O_RDWR, 0)
	}
	return nil, fmt.Errorf("no block device %q: declare it in atoll.manifest and attach it with `atoll run --block %s=FILE` (as a plain process, set %s=FILE)", name, name, env)
}
