// Package netpolicy is what both network backends share: the addresses
// a guest sees (QEMU's user-network plan), port forwards from the host,
// the outbound policy, and the host's resolvers that the guest's DNS
// address stands for.
package netpolicy

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// The guest's view of the network, on either backend: its own address,
// the gateway, which stands for the host's loopback, and the resolver,
// which forwards to the host's.
var (
	Guest   = netip.MustParsePrefix("10.0.2.15/24")
	Gateway = netip.MustParseAddr("10.0.2.2")
	DNS     = netip.MustParseAddr("10.0.2.3")
)

// HostLoopback is the host address the gateway stands for.
var HostLoopback = netip.MustParseAddr("127.0.0.1")

// Forward is a port forward from the host into the guest.
type Forward struct {
	Proto     string // "tcp" or "udp"
	HostAddr  string // host address to listen on, "[IP]:PORT"
	GuestPort uint16
}

// ParseForward parses -p's [HOSTIP:]HOSTPORT:GUESTPORT[/udp]. HOSTIP
// defaults to 127.0.0.1: a forward is not exposed beyond the host unless
// asked for.
func ParseForward(s string) (Forward, error) {
	f := Forward{Proto: "tcp"}
	spec := s
	if p, proto, ok := cutLast(spec, "/"); ok {
		if proto != "tcp" && proto != "udp" {
			return f, fmt.Errorf("-p %s: protocol %q (want tcp or udp)", s, proto)
		}
		spec, f.Proto = p, proto
	}
	host, guest, ok := cutLast(spec, ":")
	if !ok {
		return f, fmt.Errorf("-p %s: want [HOSTIP:]HOSTPORT:GUESTPORT[/udp]", s)
	}
	gp, err := strconv.ParseUint(guest, 10, 16)
	if err != nil || gp == 0 {
		return f, fmt.Errorf("-p %s: guest port %q is not a port number", s, guest)
	}
	f.GuestPort = uint16(gp)
	hostIP, hostPort, ok := cutLast(host, ":")
	if !ok {
		hostIP, hostPort = "127.0.0.1", host
	}
	hostIP = strings.TrimSuffix(strings.TrimPrefix(hostIP, "["), "]")
	if hp, err := strconv.ParseUint(hostPort, 10, 16); err != nil || hp == 0 {
		return f, fmt.Errorf("-p %s: host port %q is not a port number", s, hostPort)
	}
	if _, err := netip.ParseAddr(hostIP); err != nil {
		return f, fmt.Errorf("-p %s: host address %q is not an IP address", s, hostIP)
	}
	f.HostAddr = net.JoinHostPort(hostIP, hostPort)
	return f, nil
}

func cutLast(s, sep string) (before, after string, ok bool) {
	if i := strings.LastIndex(s, sep); i >= 0 {
		return s[:i], s[i+len(sep):], true
	}
	return s, "", false
}

// Outbound says which connections the guest may open.
type Outbound int

// Outbound policies.
const (
	// OutboundAll allows any connection, with the gateway's address
	// standing for the host's loopback (QEMU's default).
	OutboundAll Outbound = iota
	// OutboundNoLoopback refuses the host's loopback (the gateway and
	// 127.0.0.0/8) and allows the rest.
	OutboundNoLoopback
	// OutboundNone refuses every connection the guest opens, and its
	// resolver; port forwards still reach it.
	OutboundNone
)

// ParseOutbound reads an Outbound policy: "all", "noloopback" or "none".
func ParseOutbound(s string) (Outbound, error) {
	switch s {
	case "all":
		return OutboundAll, nil
	case "noloopback":
		return OutboundNoLoopback, nil
	case "none":
		return OutboundNone, nil
	}
	return 0, fmt.Errorf("outbound %q (want all, noloopback or none)", s)
}

// String is the policy as ParseOutbound reads it.
func (o Outbound) String() string {
	switch o {
	case OutboundAll:
		return "all"
	case OutboundNoLoopback:
		return "noloopback"
	case OutboundNone:
		return "none"
	}
	return "Outbound(" + strconv.Itoa(int(o)) + ")"
}

// Target maps an address the guest connects to outside itself to the
// host address it leads to — the resolver's address (port 53) to
// resolver, gateway to the host's loopback — or reports that the policy
// refuses it. OutboundNone refuses the resolver too; an invalid resolver
// is refused.
func (o Outbound) Target(dst netip.AddrPort, gateway netip.Addr, resolver netip.AddrPort) (netip.AddrPort, bool) {
	ip := dst.Addr().Unmap()
	if ip == DNS {
		if dst.Port() != 53 || !resolver.IsValid() || o == OutboundNone {
			return netip.AddrPort{}, false
		}
		return netip.AddrPortFrom(resolver.Addr().Unmap(), resolver.Port()), true
	}
	loopback := ip == gateway || ip.IsLoopback()
	switch {
	case o == OutboundNone, o == OutboundNoLoopback && loopback:
		return netip.AddrPort{}, false
	case ip == gateway:
		ip = HostLoopback
	}
	return netip.AddrPortFrom(ip, dst.Port()), true
}

// Upstream returns the resolver the guest's DNS address forwards to:
// addr ("IP" or "IP:PORT", port 53 by default) if given, or else the
// first nameserver of the host's /etc/resolv.conf.
func Upstream(addr string) (netip.AddrPort, error) {
	if addr != "" {
		if ap, err := netip.ParseAddrPort(addr); err == nil {
			return ap, nil
		}
		ip, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(addr, "["), "]"))
		if err != nil {
			return netip.AddrPort{}, fmt.Errorf("resolver %q: want IP or IP:PORT", addr)
		}
		return netip.AddrPortFrom(ip, 53), nil
	}
	return hostResolver("/etc/resolv.conf")
}

// hostResolver reads the first nameserver of a resolv.conf file.
func hostResolver(path string) (netip.AddrPort, error) {
	f, err := os.Open(path)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("the host's resolver: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "nameserver" {
			// A zone suffix (fe80::1%eth0) cannot be re-used from here.
			if ip, err := netip.ParseAddr(fields[1]); err == nil && ip.Zone() == "" {
				return netip.AddrPortFrom(ip, 53), nil
			}
		}
	}
	if err := sc.Err(); err != nil {
		return netip.AddrPort{}, fmt.Errorf("the host's resolver: %s: %w", path, err)
	}
	return netip.AddrPort{}, fmt.Errorf("the host's resolver: %s names no nameserver (use --dns)", path)
}
