// Package usernet is atoll's user-mode network backend: a NAT between a
// guest's Ethernet device and the host's sockets that needs no root and no
// host configuration. It runs its own gVisor stack as the guest's gateway:
// connections the guest opens are re-made from host sockets, and port
// forwards turn host listeners into connections to the guest.
//
// Addressing follows QEMU's user networking: the guest is 10.0.2.15/24,
// the gateway 10.0.2.2, and connecting to the gateway reaches the host's
// loopback. The gateway also answers DHCP with that address, for guests
// that ask rather than being told.
package usernet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"

	"atoll.dev/atoll/netpolicy"
	"atoll.dev/atoll/netstack"
)

func errorf(format string, args ...any) error { return fmt.Errorf("usernet: "+format, args...) }

// NAT is a running user-mode network.
type NAT struct {
	s        *stack.Stack
	link     *netstack.Link
	prefix   netip.Prefix // the guest's subnet
	guest    netip.Addr
	gw       netip.Addr
	outbound netpolicy.Outbound
	resolver netip.AddrPort

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// mu guards the fields below.
	mu      sync.Mutex
	closers []io.Closer
	closed  bool // Close has begun: nothing new is started or tracked
}

// dialTimeout bounds connecting to a host address for the guest.
const dialTimeout = 10 * time.Second

// udpIdle ends a UDP flow after this long without traffic.
const udpIdle = time.Minute

// Config describes a user network.
type Config struct {
	Guest    netip.Prefix // the guest's address and subnet
	Gateway  netip.Addr   // the NAT's own address in that subnet
	Forwards []netpolicy.Forward
	Outbound netpolicy.Outbound
	// Resolver is where the guest's resolver address (netpolicy.DNS)
	// leads; the zero value refuses it.
	Resolver netip.AddrPort
}

// Start binds the forwards' host ports (failing if one is taken) and
// serves the guest on dev.
func Start(dev netstack.Device, cfg Config) (*NAT, error) {
	guest, gw, forwards := cfg.Guest, cfg.Gateway, cfg.Forwards
	n := &NAT{prefix: guest, guest: guest.Addr(), gw: gw, outbound: cfg.Outbound, resolver: cfg.Resolver}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	var listeners []io.Closer
	fail := func(err error) (*NAT, error) {
		for _, l := range listeners {
			l.Close()
		}
		dev.Close()
		return nil, err
	}
	var accepts []func()
	for _, f := range forwards {
		switch f.Proto {
		case "tcp":
			ln, err := net.Listen("tcp", f.HostAddr)
			if err != nil {
				return fail(errorf("port forward %s -> guest %d: %w", f.HostAddr, f.GuestPort, err))
			}
			listeners = append(listeners, ln)
			port := f.GuestPort
			accepts = append(accepts, func() { n.serveTCPForward(ln, port) })
		case "udp":
			pc, err := net.ListenPacket("udp", f.HostAddr)
			if err != nil {
				return fail(errorf("port forward %s/udp -> guest %d: %w", f.HostAddr, f.GuestPort, err))
			}
			listeners = append(listeners, pc)
			port := f.GuestPort
			accepts = append(accepts, func() { n.serveUDPForward(pc, port) })
		default:
			return fail(errorf("port forward: protocol %q", f.Proto))
		}
	}
	s, err := netstack.NewGVisorStack()
	if err != nil {
		return fail(err)
	}
	link, err := netstack.Attach(s, dev, 0, nil)
	if err != nil {
		s.Close()
		return fail(err)
	}
	n.s, n.link, n.closers = s, link, listeners
	pa := tcpip.ProtocolAddress{Protocol: ipv4.ProtocolNumber, AddressWithPrefix: tcpip.AddressWithPrefix{
		Address: tcpip.AddrFrom4(gw.As4()), PrefixLen: guest.Bits()}}
	if err := s.AddProtocolAddress(netstack.NIC, pa, stack.AddressProperties{}); err != nil {
		n.Close()
		return nil, errorf("%v", err)
	}
	s.SetRouteTable([]tcpip.Route{{Destination: header.IPv4EmptySubnet, NIC: netstack.NIC}})
	// The gateway answers for every address the guest talks to.
	s.SetPromiscuousMode(netstack.NIC, true)
	s.SetSpoofing(netstack.NIC, true)
	s.SetTransportProtocolHandler(tcp.ProtocolNumber, tcp.NewForwarder(s, 0, 256, n.outboundTCP).HandlePacket)
	s.SetTransportProtocolHandler(udp.ProtocolNumber, udp.NewForwarder(s, n.outboundUDP).HandlePacket)
	dhcp, err := n.listenDHCP()
	if err != nil {
		n.Close()
		return nil, err
	}
	n.track(dhcp)
	n.goServe(func() { n.serveDHCP(dhcp) })
	for _, a := range accepts {
		n.goServe(a)
	}
	return n, nil
}

// goServe runs f on its own goroutine, which Close waits for. Once Close
// has begun it reports false and runs nothing.
func (n *NAT) goServe(f func()) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return false
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		f()
	}()
	return true
}

// Close stops the network: host ports are released before it returns.
func (n *NAT) Close() error {
	n.cancel()
	n.mu.Lock()
	n.closed = true
	for _, c := range n.closers {
		c.Close()
	}
	n.closers = nil
	n.mu.Unlock()
	n.link.Close()
	n.s.Close()
	n.wg.Wait()
	return nil
}

// track registers c to be closed with the NAT; the returned func forgets
// it. Once Close has begun, c is closed at once.
func (n *NAT) track(c io.Closer) (untrack func()) {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		c.Close()
		return func() {}
	}
	n.closers = append(n.closers, c)
	n.mu.Unlock()
	return func() {
		n.mu.Lock()
		for i, x := range n.closers {
			if x == c {
				n.closers = append(n.closers[:i], n.closers[i+1:]...)
				break
			}
		}
		n.mu.Unlock()
	}
}

// hostAddr maps an address the guest dialled to the host's view, or
// reports that the outbound policy refuses it.
func (n *NAT) hostAddr(a tcpip.Address, port uint16) (string, bool) {
	dst, ok := n.outbound.Target(netip.AddrPortFrom(netip.AddrFrom4(a.As4()), port), n.gw, n.resolver)
	return dst.String(), ok
}

// outboundTCP re-makes a guest's TCP connection from a host socket.
func (n *NAT) outboundTCP(req *tcp.ForwarderRequest) {
	id := req.ID()
	addr, ok := n.hostAddr(id.LocalAddress, id.LocalPort)
	if !ok {
		req.Complete(true) // refused by policy: reset
		return
	}
	host, err := (&net.Dialer{Timeout: dialTimeout}).DialContext(n.ctx, "tcp", addr)
	if err != nil {
		req.Complete(true) // refuse with a reset, as the destination did
		return
	}
	var wq waiter.Queue
	ep, terr := req.CreateEndpoint(&wq)
	if terr != nil {
		req.Complete(true)
		host.Close()
		return
	}
	req.Complete(false)
	guest := gonet.NewTCPConn(&wq, ep)
	if !n.goServe(func() { n.splice(guest, host) }) {
		guest.Close()
		host.Close()
	}
}

// outboundUDP relays a guest's UDP flow through a host socket.
func (n *NAT) outboundUDP(req *udp.ForwarderRequest) bool {
	id := req.ID()
	addr, ok := n.hostAddr(id.LocalAddress, id.LocalPort)
	if !ok {
		return true // refused by policy: dropped
	}
	host, err := net.Dial("udp", addr)
	if err != nil {
		return true
	}
	var wq waiter.Queue
	ep, terr := req.CreateEndpoint(&wq)
	if terr != nil {
		host.Close()
		return true
	}
	guest := gonet.NewUDPConn(&wq, ep)
	if !n.goServe(func() { n.relayUDP(guest, host) }) {
		guest.Close()
		host.Close()
	}
	return true
}

// serveTCPForward accepts host connections and connects each to the guest.
func (n *NAT) serveTCPForward(ln net.Listener, port uint16) {
	target := tcpip.FullAddress{NIC: netstack.NIC, Addr: tcpip.AddrFrom4(n.guest.As4()), Port: port}
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		if !n.goServe(func() {
			ctx, cancel := context.WithTimeout(n.ctx, dialTimeout)
			g, err := gonet.DialContextTCP(ctx, n.s, target, ipv4.ProtocolNumber)
			cancel()
			if err != nil {
				c.Close()
				return
			}
			n.splice(c, g)
		}) {
			c.Close()
		}
	}
}

// maxUDPFlows bounds the host clients one UDP forward tracks at once;
// a new client beyond it takes the place of the one quiet longest.
const maxUDPFlows = 256

// serveUDPForward relays datagrams from host clients to the guest port,
// one guest-side socket per client so replies find their way back. A flow
// ends after udpIdle without traffic either way, or when maxUDPFlows
// newer clients need its place (a DNS server's clients each use a new
// port per query: dropping them instead would stop the service).
func (n *NAT) serveUDPForward(pc net.PacketConn, port uint16) {
	target := tcpip.FullAddress{NIC: netstack.NIC, Addr: tcpip.AddrFrom4(n.guest.As4()), Port: port}
	type flow struct {
		conn *gonet.UDPConn
		last atomic.Int64 // unix nanoseconds of the last datagram either way
	}
	var mu sync.Mutex
	flows := map[string]*flow{}
	buf := make([]byte, 65536)
	for {
		nr, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		key := from.String()
		mu.Lock()
		f := flows[key]
		if f == nil && len(flows) >= maxUDPFlows {
			oldKey, oldest := "", int64(0)
			for k, o := range flows {
				if l := o.last.Load(); oldKey == "" || l < oldest {
					oldKey, oldest = k, l
				}
			}
			flows[oldKey].conn.Close() // its reader goroutine ends
			delete(flows, oldKey)
		}
		if f == nil {
			g, err := gonet.DialUDP(n.s, nil, &target, ipv4.ProtocolNumber)
			if err == nil {
				f = &flow{conn: g}
				f.last.Store(time.Now().UnixNano())
				flows[key] = f
				untrack := n.track(g)
				if !n.goServe(func() {
					defer untrack()
					b := make([]byte, 65536)
					for {
						g.SetReadDeadline(time.Unix(0, f.last.Load()).Add(udpIdle))
						m, err := g.Read(b)
						if err != nil {
							if n.ctx.Err() == nil && isTimeout(err) && time.Since(time.Unix(0, f.last.Load())) < udpIdle {
								continue // traffic the other way kept the flow alive
							}
							break
						}
						f.last.Store(time.Now().UnixNano())
						pc.WriteTo(b[:m], from)
					}
					mu.Lock()
					if flows[key] == f {
						delete(flows, key)
					}
					mu.Unlock()
					g.Close()
				}) {
					g.Close()
					delete(flows, key)
					f = nil
				}
			}
		}
		mu.Unlock()
		if f != nil {
			f.last.Store(time.Now().UnixNano())
			f.conn.Write(buf[:nr])
		}
	}
}

// isTimeout reports whether err is a read deadline expiring.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// relayUDP copies datagrams both ways until the flow has been idle, in
// both directions, for udpIdle.
func (n *NAT) relayUDP(guest, host net.Conn) {
	untrackG, untrackH := n.track(guest), n.track(host)
	defer func() { untrackG(); untrackH(); guest.Close(); host.Close() }()
	var last atomic.Int64
	last.Store(time.Now().UnixNano())
	done := make(chan struct{}, 2)
	pump := func(dst, src net.Conn) {
		b := make([]byte, 65536)
		for {
			src.SetReadDeadline(time.Unix(0, last.Load()).Add(udpIdle))
			m, err := src.Read(b)
			if err != nil {
				if n.ctx.Err() == nil && isTimeout(err) && time.Since(time.Unix(0, last.Load())) < udpIdle {
					continue
				}
				break
			}
			last.Store(time.Now().UnixNano())
			dst.Write(b[:m])
		}
		done <- struct{}{}
	}
	go pump(host, guest)
	go pump(guest, host)
	<-done
}

// splice copies both ways between a and b until both directions end.
func (n *NAT) splice(a, b net.Conn) {
	untrackA, untrackB := n.track(a), n.track(b)
	defer func() { untrackA(); untrackB(); a.Close(); b.Close() }()
	var wg sync.WaitGroup
	copyHalf := func(dst, src net.Conn) {
		defer wg.Done()
		io.Copy(dst, src)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		} else {
			dst.Close()
		}
	}
	wg.Add(2)
	go copyHalf(a, b)
	go copyHalf(b, a)
	wg.Wait()
}
