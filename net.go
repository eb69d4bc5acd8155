package atoll

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"

	"atoll.dev/atoll/abi"
	"atoll.dev/atoll/netstack"
)

// Network is a network a unikernel listens and dials on.
type Network interface {
	Listen(network, addr string) (net.Listener, error)
	ListenPacket(network, addr string) (net.PacketConn, error)
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
	Close() error
}

// Net returns the network on device name. Under atoll run it is a TCP/IP
// stack (gVisor's netstack) running inside the unikernel on the device
// atoll attached, addressed as atoll says — or, when atoll attached the
// device to the host backend, the standard library's own sockets, which
// the monitor serves. As a plain process it is the host's own sockets —
// or, if ATOLL_TAP_<NAME> names a tap device and ATOLL_NET_<NAME> its
// addressing, the same stack on that tap. Every call returns the same
// Network.
func Net(name string) (Network, error) {
	return once(name, func() (Network, error) { return openNet(name) })
}

func openNet(name string) (Network, error) {
	if os.Getenv(abi.NetEnv(name)) == abi.HostNet {
		return hostNetwork{}, nil
	}
	devs, err := Devices()
	if err != nil {
		return nil, err
	}
	for _, d := range devs {
		if d.Kind == abi.KindNet && d.Name == name {
			return stackOn(uintptr(d.fd), name)
		}
	}
	if tap := os.Getenv(abi.TapEnv(name)); tap != "" {
		fd, err := netstack.OpenTap(tap)
		if err != nil {
			return nil, err
		}
		return stackOn(fd, name)
	}
	if os.Getenv(abi.DevicesEnv) != "" {
		return nil, fmt.Errorf("no network device %q: declare it in atoll.manifest (net %s)", name, name)
	}
	return hostNetwork{}, nil
}

// stackOn starts a stack on frame device fd, addressed from
// ATOLL_NET_<NAME> ("ADDR/PREFIX [GATEWAY]" or "dhcp").
func stackOn(fd uintptr, name string) (Network, error) {
	env := abi.NetEnv(name)
	fields := strings.Fields(os.Getenv(env))
	cfg := netstack.Config{}
	var err error
	switch {
	case len(fields) == 0:
		err = fmt.Errorf("network device %q has no address: %s is not set", name, env)
	case len(fields) == 1 && fields[0] == "dhcp":
		// The zero Config asks the link's DHCP server.
	case len(fields) > 2:
		err = fmt.Errorf("%s=%q: want ADDR/PREFIX [GATEWAY]", env, os.Getenv(env))
	default:
		if cfg.Addr, err = netip.ParsePrefix(fields[0]); err == nil && len(fields) == 2 {
			cfg.Gateway, err = netip.ParseAddr(fields[1])
		}
	}
	if err == nil {
		// Non-blocking, so that Go's poller drives the device.
		err = syscall.SetNonblock(int(fd), true)
	}
	if err != nil {
		syscall.Close(int(fd))
		return nil, err
	}
	// The frame rings when atoll offers them, system calls otherwise.
	if dev, err := netstack.NewRingDevice(fd, "net:"+name); err == nil {
		return netstack.New(dev, cfg)
	}
	f := os.NewFile(fd, "net:"+name)
	dev, err := netstack.NewFileDevice(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return netstack.New(dev, cfg)
}

// A unikernel whose networks are all devices has no sockets of its own,
// so Go's resolver (net.LookupHost and every Dial by name) asks through
// the first device's stack instead: at the address /etc/resolv.conf
// names, which the user network answers (10.0.2.3). The stack starts at
// the first lookup.
func init() {
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "ATOLL_NET_") && strings.HasSuffix(kv, "="+abi.HostNet) {
			return // the host backend serves the guest's sockets
		}
	}
	devs, err := Devices()
	if err != nil {
		return
	}
	for _, d := range devs {
		if d.Kind != abi.KindNet {
			continue
		}
		name := d.Name
		net.DefaultResolver.PreferGo = true
		net.DefaultResolver.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			n, err := Net(name)
			if err != nil {
				return nil, err
			}
			return n.DialContext(ctx, network, addr)
		}
		return
	}
}

// hostNetwork is the host's sockets: a plain process's, or a unikernel's
// on the host backend.
type hostNetwork struct{}

func (hostNetwork) Listen(network, addr string) (net.Listener, error) {
	return net.Listen(network, addr)
}

func (hostNetwork) ListenPacket(network, addr string) (net.PacketConn, error) {
	return net.ListenPacket(network, addr)
}

func (hostNetwork) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return (&net.Dialer{}).DialContext(ctx, network, addr)
}

func (hostNetwork) Close() error { return nil }
