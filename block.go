package atoll

import (
	"fmt"
	"os"

	"atoll.dev/atoll/abi"
)

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
