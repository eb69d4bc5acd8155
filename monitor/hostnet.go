package monitor

import (
	"fmt"
	"net/netip"
	"sync"

	"golang.org/x/sys/unix"

	"atoll.dev/atoll/netpolicy"
)

// HostNet is the host network backend: the guest's own socket calls
// served with host sockets, under a policy (docs/abi.md, sockets).
//
// The guest sees the user network's addressing (package netpolicy): it
// is 10.0.2.15, the host's loopback is 10.0.2.2, and its resolver is
// 10.0.2.3. It binds where it is allowed: any port of its own loopback,
// and on its other addresses the guest ports of Forwards, which the host
// sockets take at the forwards' host addresses. Its loopback is its own:
// guest sockets talk to each other through host loopback sockets the
// monitor binds, and a listener on the guest's loopback accepts only
// connections the monitor made for the guest.
type HostNet struct {
	Forwards []netpolicy.Forward
	Outbound netpolicy.Outbound
	// Resolver is where the guest's resolver address leads; the zero
	// value refuses it.
	Resolver netip.AddrPort
	// ListenAny lets the guest bind any port on its addresses beyond its
	// loopback, taken at the host's unspecified address: for a monitor in
	// a network namespace of the guest's own (a container's), where that
	// is the guest's to take.
	ListenAny bool
}

// hostNet is a VM's host network: its guest port space, and which host
// sockets are the monitor's own.
type hostNet struct {
	cfg HostNet
	log *onceLog

	// mu guards the fields below, and every socket's address fields.
	mu sync.Mutex
	// ports is the guest's port space: the socket bound to each guest
	// port.
	ports map[portKey]*socket
	// ours maps the host's loopback address of each guest UDP socket (at
	// its host port) to that socket, so that datagrams between guest
	// sockets are told from the host's.
	ours map[netip.AddrPort]*socket
	// forwards are the guest ports the guest may bind beyond its
	// loopback, with where each goes on the host; reserved holds a bound
	// host socket for each forward no guest socket has, so that nothing
	// else on the host takes its port meanwhile.
	forwards map[portKey]netip.AddrPort
	reserved map[portKey]int
	// next is the ephemeral guest port to try first.
	next uint16
}

// portKey names a port of the guest's port space.
type portKey struct {
	udp  bool
	port uint16
}

func (k portKey) String() string {
	if k.udp {
		return fmt.Sprintf("%d/udp", k.port)
	}
	return fmt.Sprintf("%d/tcp", k.port)
}

// The guest's ephemeral ports: Linux's default range.
const (
	ephemeralFirst = 32768
	ephemeralLast  = 60999
)

// newHostNet binds the forwards' host ports, failing if one is taken.
func newHostNet(cfg HostNet, log *onceLog) (*hostNet, error) {
	n := &hostNet{cfg: cfg, log: log, ports: map[portKey]*socket{}, ours: map[netip.AddrPort]*socket{},
		forwards: map[portKey]netip.AddrPort{}, reserved: map[portKey]int{}, next: ephemeralFirst}
	for _, f := range cfg.Forwards {
		host, err := netip.ParseAddrPort(f.HostAddr)
		if err != nil {
			n.close()
			return nil, fmt.Errorf("port forward %s: %w", f.HostAddr, err)
		}
		k := portKey{f.Proto == "udp", f.GuestPort}
		if _, dup := n.forwards[k]; dup {
			n.close()
			return nil, fmt.Errorf("port forward %s: guest port %s is forwarded twice", f.HostAddr, k)
		}
		n.forwards[k] = unmap(host)
		if err := n.reserve(k); err != nil {
			n.close()
			return nil, fmt.Errorf("port forward %s -> guest %s: %w", f.HostAddr, k, err)
		}
	}
	return n, nil
}

// unmap is ap with an IPv4-mapped IPv6 address as IPv4.
func unmap(ap netip.AddrPort) netip.AddrPort { return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()) }

// reserve binds forward k's host port with a socket of the monitor's own.
// A TCP reservation listens, as nothing else may bind a port where a
// socket listens; a host client that connects before the guest listens
// is reset. Called with mu, or before the guest runs.
func (n *hostNet) reserve(k portKey) error {
	host := n.forwards[k]
	fd, err := hostSocket(host.Addr().Is6(), k.udp)
	if err != nil {
		return err
	}
	sa, _ := sockaddrOf(host, host.Addr().Is6())
	if err = reuseAddr(fd, k.udp); err == nil {
		err = unix.Bind(fd, sa)
	}
	if err == nil && !k.udp {
		err = unix.Listen(fd, 1)
	}
	if err != nil {
		unix.Close(fd)
		return err
	}
	n.reserved[k] = fd
	return nil
}

// close releases the reservations.
func (n *hostNet) close() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for k, fd := range n.reserved {
		unix.Close(fd)
		delete(n.reserved, k)
	}
}

// hostSocket makes a non-blocking host socket; an IPv6 one also carries
// IPv4 (IPV6_V6ONLY off), whatever the guest asks, so that it can reach
// the guest's IPv4 loopback and the forwards' IPv4 addresses.
func hostSocket(v6, udp bool) (int, error) {
	family, typ := unix.AF_INET, unix.SOCK_STREAM
	if v6 {
		family = unix.AF_INET6
	}
	if udp {
		typ = unix.SOCK_DGRAM
	}
	fd, err := unix.Socket(family, typ|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if v6 {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0); err != nil {
			unix.Close(fd)
			return -1, err
		}
	}
	return fd, nil
}

// reuseAddr lets a forward's TCP port be bound again as soon as a socket
// lets it go, its old connections in TIME_WAIT or not. Only forwards'
// sockets have it: on others it would let a host process bind beside
// them, and for UDP it would let one share the port.
func reuseAddr(fd int, udp bool) error {
	if udp {
		return nil
	}
	return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
}

// sockaddrOf is ap as a host socket of the given family takes it; ok is
// false for an IPv6 address and an IPv4 socket.
func sockaddrOf(ap netip.AddrPort, v6 bool) (sa unix.Sockaddr, ok bool) {
	if v6 {
		return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}, true
	}
	if a := ap.Addr().Unmap(); a.Is4() {
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: a.As4()}, true
	}
	return nil, false
}

// addrPortOf is a host socket address, IPv4-mapped addresses as IPv4; ok
// is false for other families.
func addrPortOf(sa unix.Sockaddr) (netip.AddrPort, bool) {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port)), true
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), uint16(sa.Port)), true
	}
	return netip.AddrPort{}, false
}

// isGuestLocal reports whether a is one of the guest's own addresses: its
// loopback, the unspecified address (which connect takes for loopback, as
// Linux does) or its address on the network.
func isGuestLocal(a netip.Addr) bool {
	a = a.Unmap()
	return a.IsLoopback() || a.IsUnspecified() || a == netpolicy.Guest.Addr()
}

// claimPort gives s guest port k, or an ephemeral one when k.port is 0.
// Called with mu.
func (n *hostNet) claimPort(s *socket, k portKey) (uint16, unix.Errno) {
	if k.port != 0 {
		if _, taken := n.ports[k]; taken {
			return 0, unix.EADDRINUSE
		}
		n.ports[k] = s
		return k.port, 0
	}
	for range ephemeralLast - ephemeralFirst + 1 {
		k.port = n.next
		if n.next++; n.next > ephemeralLast {
			n.next = ephemeralFirst
		}
		if _, taken := n.ports[k]; !taken && n.forwards[k] == (netip.AddrPort{}) {
			n.ports[k] = s
			return k.port, 0
		}
	}
	return 0, unix.EADDRINUSE
}

// target finds the guest socket a guest-loopback address names, with the
// host address its host socket has: a listener for TCP, any bound socket
// for UDP. Called with mu.
func (n *hostNet) target(udp bool, dst netip.AddrPort) (*socket, netip.AddrPort, unix.Errno) {
	s := n.ports[portKey{udp, dst.Port()}]
	v4 := dst.Addr().Unmap().Is4()
	switch {
	case s == nil, !udp && !s.listening:
		return nil, netip.AddrPort{}, unix.ECONNREFUSED
	case v4 && s.v6only, !v4 && s.family == unix.AF_INET:
		return nil, netip.AddrPort{}, unix.ECONNREFUSED // the other family's port
	}
	if !s.hostAddr.IsValid() {
		if e := s.bindHost(netip.Addr{}); e != 0 {
			return nil, netip.AddrPort{}, e
		}
	}
	host := s.hostAddr
	if host.Addr().IsUnspecified() {
		host = netip.AddrPortFrom(netpolicy.HostLoopback, host.Port())
	}
	return s, host, 0
}

// outside maps a destination outside the guest to the host's address, by
// the policy: the resolver's address leads to the resolver, the gateway
// to the host's loopback. A refusal is EACCES, logged.
func (n *hostNet) outside(dst netip.AddrPort) (netip.AddrPort, unix.Errno) {
	host, ok := n.cfg.Outbound.Target(dst, netpolicy.Gateway, n.cfg.Resolver)
	if !ok {
		n.log.printf("connection to %s: refused by outbound=%v (resolver %v); answered EACCES", unmap(dst), n.cfg.Outbound, n.cfg.Resolver)
		return netip.AddrPort{}, unix.EACCES
	}
	return host, 0
}

// guestView is how the guest sees a host address its socket s talks to:
// a socket of its own by the guest address that socket has, the resolver
// by the resolver's address, the host's loopback by the gateway. ok is
// false for a datagram s must not see: from the host's loopback, or
// beyond, when s is no forward's and never sent there. Called with mu.
func (n *hostNet) guestView(s *socket, from netip.AddrPort) (netip.AddrPort, bool) {
	from = unmap(from)
	if owner := n.ours[from]; owner != nil {
		return owner.localView(), true
	}
	exposed := s.forward.IsValid() || s.replies[from]
	switch {
	case from == unmap(n.cfg.Resolver) && s.replies[from]:
		return netip.AddrPortFrom(netpolicy.DNS, 53), true
	case !exposed:
		return netip.AddrPort{}, false
	case from.Addr().IsLoopback():
		return netip.AddrPortFrom(netpolicy.Gateway, from.Port()), true
	}
	return from, true
}
