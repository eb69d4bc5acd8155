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

// Networks: --net NAME=BACKEND[,OPTIONS] attaches a declared network
// device to a backend — user (the default), host or tap:IFACE — and -p
// forwards host ports to the one device on the user or host backend. A
// plain executable has no devices: -p or --net host[,OPTIONS] gives it
// the host backend, which serves its own sockets.
func init() { deviceKinds[abi.KindNet] = netKind{} }

type netKind struct{}

type netFlags struct {
	named  []string // NAME=BACKEND[,OPTIONS]
	direct []string // host[,OPTIONS], for a plain executable
	ports  *portList
	dns    *string
}

func (f *netFlags) String() string { return strings.Join(append(f.named, f.direct...), " ") }

// Set takes NAME=BACKEND[,OPTIONS] or, for a plain executable,
// BACKEND[,OPTIONS]: the first "=" names a device unless an option comes
// before it.
func (f *netFlags) Set(s string) error {
	name, _, ok := strings.Cut(s, "=")
	if ok && name != "" && !strings.Contains(name, ",") {
		f.named = append(f.named, s)
		return nil
	}
	if backendName(s) != "host" {
		return fmt.Errorf("want NAME=BACKEND[,OPTION]..., or host[,OPTION]... for a plain executable, got %q", s)
	}
	f.direct = append(f.direct, s)
	return nil
}

func (netKind) flags(fs *flag.FlagSet) kindFlags {
	f := &netFlags{ports: new(portList)}
	fs.Var(f, "net", "attach the declared network device NAME to a backend: user (the default), host (the guest's own sockets, served by the host) or tap:IFACE, with options ip=ADDR/PREFIX or ip=dhcp, gw=ADDR (user, tap), outbound=all|noloopback|none (user, host), listen=any (host: any port, on the host's addresses, for a network namespace of the guest's own), rings=on|off (user, tap: shared-memory frame rings, on by default); a plain executable takes host[,OPTION]... (`NAME=BACKEND[,OPTION]...`; repeatable)")
	fs.Var(f.ports, "p", "forward a host port to the guest, on the user or host backend (a plain executable gets the host backend); HOSTIP defaults to 127.0.0.1 (`[HOSTIP:]HOSTPORT:GUESTPORT[/udp]`; repeatable)")
	f.dns = fs.String("dns", "", "the resolver the guest's resolver address (10.0.2.3) forwards to, `IP[:PORT]` (default: the host's first nameserver)")
	return f
}

func (f *netFlags) given() ([]string, string) { return f.named, "net" }

// check gives a plain executable its host network, and requires one
// device on a backend that takes port forwards when there are some, and
// at most one on the host backend.
func (f *netFlags) check(m *manifest.Manifest, a *attached) error {
	if len(f.direct) > 0 && !a.plain {
		return fmt.Errorf("--net %s: %s has a manifest, so its networks are the devices it declares (%s): use --net NAME=%s", f.direct[0], m.Name, declared(m), f.direct[0])
	}
	if len(f.direct) > 1 {
		return fmt.Errorf("--net %s, --net %s: a plain executable has one host network", f.direct[0], f.direct[1])
	}
	if a.plain {
		if len(f.direct) == 0 && len(*f.ports) == 0 {
			return nil // no network, as before
		}
		spec := "host"
		if len(f.direct) == 1 {
			spec = f.direct[0]
		}
		if err := f.attachHost(spec, a); err != nil {
			return fmt.Errorf("--net %s: %w", spec, err)
		}
		return nil
	}
	backend := map[string]string{}
	for _, item := range f.named {
		name, spec, _ := strings.Cut(item, "=")
		backend[name] = backendName(spec)
	}
	forwarded, hosts := 0, 0
	for _, d := range m.Devices {
		b, given := backend[d.Name]
		if d.Kind != abi.KindNet {
			continue
		}
		if !given || b == "user" || b == "host" {
			forwarded++
		}
		if b == "host" {
			hosts++
		}
	}
	if hosts > 1 {
		return fmt.Errorf("%s attaches %d network devices to the host backend; the guest has one set of sockets: attach one", m.Name, hosts)
	}
	if len(*f.ports) > 0 && forwarded != 1 {
		return fmt.Errorf("-p forwards ports to the one network device on the user or host backend, but %s has %d (%s)", m.Name, forwarded, declared(m))
	}
	return nil
}

func (f *netFlags) attach(_ *manifest.Manifest, d manifest.Device, spec string, given bool, a *attached) error {
	if !given {
		spec = "user"
	}
	if backendName(spec) == "host" {
		if err := f.attachHost(spec, a); err != nil {
			return fmt.Errorf("net device %s (--net %s=%s): %w", d.Name, d.Name, spec, err)
		}
		a.env = append(a.env, abi.NetEnv(d.Name)+"="+abi.HostNet)
		return nil
	}
	spec, rings, err := cutRings(spec)
	var o netback.Options
	if err == nil {
		o, err = f.options(spec)
	}
	if err == nil {
		var b *netback.Backend
		if b, err = netback.Open(strings.Split(spec, ",")[0], o); err == nil {
			a.closers = append(a.closers, b)
			a.devs = append(a.devs, monitor.Device{Device: d, File: b.Guest, NoRings: !rings, Frames: b.Frames})
			a.env = append(a.env, abi.NetEnv(d.Name)+"="+b.GuestConfig())
			a.resolver()
			return nil
		}
	}
	return fmt.Errorf("net device %s (--net %s=%s): %w", d.Name, d.Name, spec, err)
}

// cutRings takes the rings=on|off option out of a device's spec: whether
// the guest may drive the device through shared-memory frame rings
// (docs/abi.md, section 5), on by default; off leaves it the system
// calls, to compare or to rule the rings out.
func cutRings(spec string) (string, bool, error) {
	parts := strings.Split(spec, ",")
	rings := true
	kept := parts[:1]
	for _, p := range parts[1:] {
		v, ok := strings.CutPrefix(p, "rings=")
		switch {
		case !ok:
			kept = append(kept, p)
		case v == "on":
			rings = true
		case v == "off":
			rings = false
		default:
			return spec, false, fmt.Errorf("rings=%s: want rings=on or rings=off", v)
		}
	}
	return strings.Join(kept, ","), rings, nil
}

// attachHost gives the guest the host backend from host[,OPTIONS].
func (f *netFlags) attachHost(spec string, a *attached) error {
	if _, rest, _ := strings.Cut(spec, ","); strings.HasPrefix(rest, "rings=") || strings.Contains(rest, ",rings=") {
		return fmt.Errorf("rings= applies to frame devices (user, tap): on the host backend the monitor serves the guest's sockets, and there are no frames")
	}
	listenAny := false
	var kept []string
	for i, p := range strings.Split(spec, ",") {
		switch {
		case i > 0 && p == "listen=any":
			listenAny = true
		case i > 0 && strings.HasPrefix(p, "listen="):
			return fmt.Errorf("%s: want listen=any (the guest may listen on any port of the host's addresses: for a network namespace of its own)", p)
		default:
			kept = append(kept, p)
		}
	}
	o, err := f.options(strings.Join(kept, ","))
	if err != nil {
		return err
	}
	if o.Addr.IsValid() || o.Gateway.IsValid() || o.DHCP {
		return fmt.Errorf("the host backend takes no addressing: the guest is 10.0.2.15 with the host at 10.0.2.2 (only outbound= and listen= apply)")
	}
	a.hostNet = &monitor.HostNet{Forwards: o.Forwards, Outbound: o.Outbound, Resolver: o.Resolver, ListenAny: listenAny}
	a.resolver()
	return nil
}

// options reads BACKEND[,ip=ADDR/PREFIX|dhcp][,gw=ADDR][,outbound=POLICY]
// with the forwards and the resolver for the backends that take them.
func (f *netFlags) options(spec string) (netback.Options, error) {
	o := netback.Options{}
	if b := backendName(spec); b == "user" || b == "host" {
		o.Forwards = *f.ports
		// Without a usable resolver the guest's resolver address is
		// refused, which Go's resolver reports as a failed lookup; a
		// --dns that names none is an error.
		var err error
		if o.Resolver, err = netpolicy.Upstream(*f.dns); err != nil && *f.dns != "" {
			return o, fmt.Errorf("--dns: %w", err)
		}
	}
	for _, opt := range strings.Split(spec, ",")[1:] {
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
			err = fmt.Errorf("unknown option %q (want ip=ADDR/PREFIX, ip=dhcp, gw=ADDR outbound=all|noloopback|none or rings=on|off)", opt)
		}
		if err != nil {
			return o, err
		}
	}
	return o, nil
}

// resolver has the guest's /etc/resolv.conf name the resolver address.
func (a *attached) resolver() { a.nameservers = []string{netpolicy.DNS.String()} }

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
