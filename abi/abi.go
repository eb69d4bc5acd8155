// Package abi names the parts of the guest interface (docs/abi.md) that
// both the monitor and guest code must agree on.
package abi

import (
	"fmt"
	"strconv"
	"strings"
)

// Version is the guest ABI this tree implements (docs/abi.md).
const Version = "0.8"

// Kind is a device kind, as manifests declare it and DevicesEnv lists it.
// Each kind has one file in each layer that knows it: its manifest
// directive (manifest), its attachment (cmd/atoll), its guest file
// (monitor) and its guest accessor (package atoll).
type Kind string

// Device kinds.
const (
	KindBlock  Kind = "block"
	KindNet    Kind = "net"
	KindVolume Kind = "volume" // a host directory mounted in the guest's file system; no descriptor
)

// ReservedEnvPrefix starts the names of the environment variables atoll
// sets; a manifest or -e may not set them.
const ReservedEnvPrefix = "ATOLL_"

// Compatible reports whether an image built for ABI version image can run
// on a monitor implementing this Version: the same major version, and a
// minor version no newer than this one (versions only add).
func Compatible(image string) bool {
	var im, in, mm, mn int
	if _, err := fmt.Sscanf(image, "%d.%d", &im, &in); err != nil {
		return false
	}
	fmt.Sscanf(Version, "%d.%d", &mm, &mn)
	return im == mm && in <= mn
}

// DevicesEnv is the environment variable through which a guest learns its
// devices: a space-separated list of KIND:NAME=FD entries, such as
// "block:data=3 net:service=4". It is set by `atoll run` and absent when
// the program runs as a plain process.
const DevicesEnv = "ATOLL_DEVICES"

// NetEnv returns the environment variable that carries the addressing of
// network device name: "ADDR/PREFIX", "ADDR/PREFIX GATEWAY", "dhcp" or
// HostNet, for example ATOLL_NET_SERVICE="10.0.2.15/24 10.0.2.2". In a plain process, setting
// it together with TapEnv(name) makes the guest library use that tap
// device instead of the host's sockets.
func NetEnv(name string) string { return "ATOLL_NET_" + envName(name) }

// HostNet is NetEnv's value for a device on the host backend: the guest
// has no device then, and its own sockets reach the network.
const HostNet = "host"

// TapEnv returns the variable naming a tap device for network device name
// when the program runs as a plain process.
func TapEnv(name string) string { return "ATOLL_TAP_" + envName(name) }

// BlockEnv returns the variable naming the file behind block device name
// when the program runs as a plain process.
func BlockEnv(name string) string { return "ATOLL_BLOCK_" + envName(name) }

func envName(name string) string { return strings.ToUpper(strings.ReplaceAll(name, "-", "_")) }

// DeviceFD is one entry of DevicesEnv.
type DeviceFD struct {
	Kind Kind
	Name string
	FD   int
}

// FormatDevices encodes entries for DevicesEnv.
func FormatDevices(ds []DeviceFD) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = fmt.Sprintf("%s:%s=%d", d.Kind, d.Name, d.FD)
	}
	return strings.Join(parts, " ")
}

// ParseDevices decodes a DevicesEnv value.
func ParseDevices(s string) ([]DeviceFD, error) {
	var out []DeviceFD
	for _, f := range strings.Fields(s) {
		kn, fd, ok1 := strings.Cut(f, "=")
		kind, name, ok2 := strings.Cut(kn, ":")
		n, err := strconv.Atoi(fd)
		if !ok1 || !ok2 || err != nil || n < 0 || kind == "" || name == "" {
			return nil, fmt.Errorf("%s: malformed entry %q (want KIND:NAME=FD)", DevicesEnv, f)
		}
		out = append(out, DeviceFD{Kind(kind), name, n})
	}
	return out, nil
}
