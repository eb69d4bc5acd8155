package main

import (
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"

	"atoll.dev/atoll/abi"
	"atoll.dev/atoll/manifest"
	"atoll.dev/atoll/monitor"
	"atoll.dev/atoll/monitor/vfs"
)

// A deviceKind is how atoll run attaches one kind of declared device: the
// flags it adds and the host objects it opens. Each kind registers itself
// from its own file (block.go, net.go).
type deviceKind interface {
	// flags defines the kind's flags on fs and returns where their
	// values go.
	flags(fs *flag.FlagSet) kindFlags
}

// kindFlags is one run's flags of one kind.
type kindFlags interface {
	// given returns the NAME=VALUE items of the flag that attaches a
	// device, and the flag's name.
	given() (items []string, flag string)
	// check applies the kind's rules across the manifest before the
	// declared devices are attached.
	check(m *manifest.Manifest, a *attached) error
	// attach opens the host side of device d, declared in m, from the
	// value its flag gave (given false when none did) and adds it to a.
	// Its errors name the flag or the fix.
	attach(m *manifest.Manifest, d manifest.Device, value string, given bool, a *attached) error
}

// deviceKinds are the kinds atoll run attaches, by name.
var deviceKinds = map[abi.Kind]deviceKind{}

// attached is what attaching opened for the guest.
type attached struct {
	plain   bool // a plain executable: no manifest declared anything
	devs    []monitor.Device
	volumes []vfs.Volume
	env     []string // KEY=VALUE the guest needs, such as network addressing
	hostNet *monitor.HostNet
	// nameservers are what the guest's /etc/resolv.conf names.
	nameservers []string
	closers     []io.Closer // host objects to release when the guest has ended
}

// close releases the devices and what serves them (host ports included).
func (a *attached) close() {
	for _, d := range a.devs {
		d.File.Close()
	}
	for _, v := range a.volumes {
		v.Dir.Close()
	}
	for _, c := range a.closers {
		c.Close()
	}
}

// defineDeviceFlags adds every kind's flags to fs.
func defineDeviceFlags(fs *flag.FlagSet) map[abi.Kind]kindFlags {
	out := map[abi.Kind]kindFlags{}
	for k, d := range deviceKinds {
		out[k] = d.flags(fs)
	}
	return out
}

// attachDevices checks the device flags against the manifest — every
// flag names a declared device of its kind, once — and attaches every
// declared device in the manifest's order, each by its kind.
func attachDevices(m *manifest.Manifest, plain bool, kinds map[abi.Kind]kindFlags) (*attached, error) {
	a := &attached{plain: plain}
	values := map[string]string{} // device name → value after NAME=
	flagOf := map[string]string{} // device name → --flag NAME=VALUE
	for _, k := range sortedKinds(kinds) {
		items, fl := kinds[k].given()
		for _, item := range items {
			name, value, _ := strings.Cut(item, "=")
			given := fmt.Sprintf("--%s %s", fl, item)
			if prev, dup := flagOf[name]; dup {
				return a, fmt.Errorf("device %q attached twice (%s, %s)", name, prev, given)
			}
			if d, ok := m.Device(name); !ok || d.Kind != k {
				return a, fmt.Errorf("%s: %s declares no %s device %q (%s)", given, m.Name, k, name, declared(m))
			}
			values[name], flagOf[name] = value, given
		}
	}
	for _, k := range sortedKinds(kinds) {
		if err := kinds[k].check(m, a); err != nil {
			return a, err
		}
	}
	for _, d := range m.Devices {
		f, ok := kinds[d.Kind]
		if !ok {
			return a, fmt.Errorf("%s declares %s device %q, which this atoll cannot attach", m.Name, d.Kind, d.Name)
		}
		value, given := values[d.Name]
		if err := f.attach(m, d, value, given, a); err != nil {
			return a, err
		}
	}
	return a, nil
}

func sortedKinds(kinds map[abi.Kind]kindFlags) []abi.Kind {
	out := make([]abi.Kind, 0, len(kinds))
	for k := range kinds {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// declared lists m's devices for messages.
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
