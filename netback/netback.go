// Package netback opens the host side of a guest's network device. Each
// backend is an entry in a table: `user` (the default) is a user-mode NAT
// with port forwards that needs no root; `tap:IFACE` hands the guest an
// existing tap device.
//
// A network device, whatever the backend, is a descriptor that carries one
// Ethernet frame per read or write (docs/abi.md): the tap descriptor
// itself, or one end of a SOCK_SEQPACKET socket pair.
package netback

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"atoll.dev/atoll/netpolicy"
	"atoll.dev/atoll/netstack"
	"atoll.dev/atoll/usernet"
)

// Options configure a backend.
type Options struct {
	Forwards []netpolicy.Forward // user: host ports to forward into the guest
	// Addr and Gateway are the guest's addressing; zero values take the
	// backend's default (user: 10.0.2.15/24 via 10.0.2.2; tap: none, so
	// Addr is required).
	Addr    netip.Prefix
	Gateway netip.Addr
	// DHCP has the guest ask for its address instead (Addr is ignored).
	DHCP bool
	// Outbound limits the connections a guest on the user backend opens,
	// and Resolver is where its resolver address leads (none if zero).
	Outbound netpolicy.Outbound
	Resolver netip.AddrPort
}

// Backend is an opened backend.
type Backend struct {
	// Guest is the descriptor to attach to the guest; the caller closes it
	// once the monitor has its own copy.
	Guest   *os.File
	Addr    netip.Prefix // invalid when the guest uses DHCP
	Gateway netip.Addr
	// Frames, when not nil, takes the device's frames from the guest's
	// frame rings once it maps them (monitor.Device.Frames): the user
	// network then reads and writes the rings itself, and its socket
	// pair goes quiet.
	Frames func(netstack.BatchDevice)
	closer io.Closer
}

// GuestConfig is the guest's addressing in the form abi.NetEnv carries:
// "ADDR/PREFIX [GATEWAY]", or "dhcp".
func (b *Backend) GuestConfig() string {
	if !b.Addr.IsValid() {
		return "dhcp"
	}
	if b.Gateway.IsValid() {
		return b.Addr.String() + " " + b.Gateway.String()
	}
	return b.Addr.String()
}

// Close stops the backend and releases what it holds (host ports, tap).
func (b *Backend) Close() error {
	if b.closer != nil {
		return b.closer.Close()
	}
	return nil
}

type opener func(arg string, o Options) (*Backend, error)

// backends maps a backend's name to its constructor.
var backends = map[string]opener{
	"user": openUser,
	"tap":  openTap,
}

// Open opens the backend named by spec: "user" or "tap:IFACE". (The host
// backend is no device: the monitor serves the guest's sockets.)
func Open(spec string, o Options) (*Backend, error) {
	if o.Addr.IsValid() && !o.Addr.Addr().Is4() || o.Gateway.IsValid() && !o.Gateway.Is4() {
		return nil, fmt.Errorf("only IPv4 is supported (got ip=%v gw=%v)", o.Addr, o.Gateway)
	}
	if o.Addr.IsValid() && o.Gateway.IsValid() && (!o.Addr.Contains(o.Gateway) || o.Addr.Addr() == o.Gateway) {
		return nil, fmt.Errorf("gateway %v must be another address in %v", o.Gateway, o.Addr.Masked())
	}
	name, arg, _ := strings.Cut(spec, ":")
	open, ok := backends[name]
	if !ok {
		return nil, fmt.Errorf("unknown network backend %q (want user, host or tap:IFACE)", spec)
	}
	return open(arg, o)
}

// socketPair returns two connected frame-preserving descriptors, set
// non-blocking so Go's poller drives them.
func socketPair() (*os.File, *os.File, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("socketpair: %w", err)
	}
	// Room for a burst of full-size frames each way.
	for _, fd := range fds {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 1<<20)
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 1<<20)
	}
	return os.NewFile(uintptr(fds[0]), "net-guest"), os.NewFile(uintptr(fds[1]), "net-host"), nil
}

func openUser(arg string, o Options) (*Backend, error) {
	if arg != "" {
		return nil, fmt.Errorf("the user backend takes no argument (got %q)", arg)
	}
	addr, gw := o.Addr, o.Gateway
	if !addr.IsValid() {
		addr = netpolicy.Guest
	}
	if !gw.IsValid() {
		gw = netpolicy.Gateway
	}
	if !addr.Contains(gw) || addr.Addr() == gw {
		return nil, fmt.Errorf("gateway %v must be another address in %v (give gw= with ip=)", gw, addr.Masked())
	}
	guest, host, err := socketPair()
	if err != nil {
		return nil, err
	}
	dev, err := netstack.NewFileDevice(host)
	if err != nil {
		guest.Close()
		host.Close()
		return nil, err
	}
	link := netstack.NewHandover(dev.(netstack.BatchDevice))
	nat, err := usernet.Start(link, usernet.Config{Guest: addr, Gateway: gw, Forwards: o.Forwards, Outbound: o.Outbound, Resolver: o.Resolver})
	if err != nil {
		guest.Close()
		return nil, err
	}
	b := &Backend{Guest: guest, Addr: addr, Gateway: gw, Frames: link.To, closer: nat}
	if o.DHCP {
		b.Addr, b.Gateway = netip.Prefix{}, netip.Addr{}
	}
	return b, nil
}

func openTap(iface string, o Options) (*Backend, error) {
	if iface == "" {
		return nil, fmt.Errorf("tap needs an interface: --net NAME=tap:IFACE")
	}
	if len(o.Forwards) > 0 {
		return nil, fmt.Errorf("port forwards (-p) need the user backend; on a tap device the guest is reachable at its own address")
	}
	if o.Outbound != netpolicy.OutboundAll {
		return nil, fmt.Errorf("outbound= applies to the user backend; on a tap device use the host's firewall")
	}
	if !o.Addr.IsValid() && !o.DHCP {
		return nil, fmt.Errorf("tap:%s needs the guest's address: add ,ip=ADDR/PREFIX (and ,gw=ADDR for a default route), or ,ip=dhcp", iface)
	}
	if _, err := net.InterfaceByName(iface); err != nil {
		return nil, fmt.Errorf("tap device %s does not exist: create it with `ip tuntap add %s mode tap` (as root)", iface, iface)
	}
	fd, err := netstack.OpenTap(iface)
	if err != nil {
		return nil, err
	}
	b := &Backend{Guest: os.NewFile(fd, "tap:"+iface), Addr: o.Addr, Gateway: o.Gateway}
	if o.DHCP {
		b.Addr, b.Gateway = netip.Prefix{}, netip.Addr{}
	}
	return b, nil
}
