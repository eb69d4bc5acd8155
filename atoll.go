// Package atoll is the guest side of Atoll: what a unikernel imports to
// find the devices `atoll run` attached to it. The same program also runs
// as a plain Linux process, where devices come from the environment.
// Each device kind has its accessor in a file of its own (block.go,
// net.go).
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
