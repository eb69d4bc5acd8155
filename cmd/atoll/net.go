package main

import (
	"flag"
	"fmt"
	"net/netip"
	"strings"

	"atoll.dev/atoll/abi"
	"atoll.dev/atoll/manifest"
	"atoll.dev/atoll/monitor"
	"atoll.dev/atoll/netback"
	"atoll.dev/atoll/netpolicy"
)

// Network devices attach to a backend (package netback): --net
// NAME=BACKEND[,OPTIONS], the user backend when no flag names the device;
// -p forwards host ports to the one device on the user backend.
func init() { deviceKinds[abi.KindNet] = netKind{} }

type netKind struct{}

type netFlags struct {
	nets  *listFlag
	ports *portList
}

func (netKind) flags(fs *flag.FlagSet) kindFlags {
	f := netFlags{&listFlag{what: "NAME=BACKEND"}, new(portList)}
	fs.Var(f.nets, "net", "attach the declared network device NAME to a backend: user (the default) or tap:IFACE, with options ip=ADDR/PREFIX or ip=dhcp, gw=ADDR, outbound=all|noloopback|none (`NAME=BACKEND[,OPTION]...`; repeatable)")
	fs.Var(f.ports, "p", "forward a host port to the guest on the user network; HOSTIP defaults to 127.0.0.1 (`[HOSTIP:]HOSTPORT:GUESTPORT[/udp]`; repeatable)")
	return f
}

func (f netFlags) given() ([]string, string) { return f.nets.items, "net" }

// check requires exactly one network device on the user backend when
// ports are forwarded.
func (f netFlags) check(m *manifest.Manifest, _ *attached) error {
	if len(*f.ports) == 0 {
		return nil
	}
	backend := map[string]string{}
	for _, item := range f.nets.items {
		name, spec, _ := strings.Cut(item, "=")
		backend[name] = backendName(spec)
	}
	users := 0
	for _, d := range m.Devices {
		if b, given := backend[d.Name]; d.Kind == abi.KindNet && (!given || b == "user") {
			users++
		}
	}
	if users != 1 {
		return fmt.Errorf("-p forwards ports to the one network device on the user backend, but %s has %d (%s)", m.Name, users, declared(m))
	}
	return nil
}

func (f netFlags) attach(_ *manifest.Manifest, d manifest.Device, spec string, given bool, a *attached) error {
	if !given {
		spec = "user"
	}
	b, err := openNet(spec, *f.ports)
	if err != nil {
		return fmt.Errorf("net device %s (--net %s=%s): %w", d.Name, d.Name, spec, err)
	}
	a.closers = append(a.closers, b)
	a.devs = append(a.devs, monitor.Device{Device: d, File: b.Guest})
	a.env = append(a.env, abi.NetEnv(d.Name)+"="+b.GuestConfig())
	return nil
}

// portList collects -p flags.
type portList []netpolicy.Forward

func (p *portList) String() string { return fmt.Sprint(len(*p), " forwards") }

func (p *portList) Set(v string) error {
	f, err := netpolicy.ParseForward(v)
	if err != nil {
		return err
	}
	*p = append(*p, f)
	return nil
}

// backendName is the backend part of BACKEND[:ARG][,OPTIONS].
func backendName(spec string) string {
	spec, _, _ = strings.Cut(spec, ",")
	spec, _, _ = strings.Cut(spec, ":")
	return spec
}

// openNet opens a network backend from
// BACKEND[,ip=ADDR/PREFIX|dhcp][,gw=ADDR][,outbound=POLICY].
func openNet(spec string, ports []netpolicy.Forward) (*netback.Backend, error) {
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
			o.Outbound, err = netpolicy.ParseOutbound(v)
		default:
			err = fmt.Errorf("unknown option %q (want ip=ADDR/PREFIX, ip=dhcp, gw=ADDR or outbound=all|noloopback|none)", opt)
		}
		if err != nil {
			return nil, err
		}
	}
	return netback.Open(parts[0], o)
}
