// Package netstack runs gVisor's TCP/IP stack over an Ethernet device — a
// file descriptor that carries one frame per read or write, such as a tap
// device (IFF_NO_PI) or an atoll network device — and hands out the
// standard net.Listener, net.Conn and net.PacketConn.
//
// gVisor's LinkEndpoint interface is wide; this package is the one place
// that touches it, through the channel and ethernet endpoints.
package netstack

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/log"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/link/ethernet"
	"gvisor.dev/gvisor/pkg/tcpip/link/loopback"
	"gvisor.dev/gvisor/pkg/tcpip/network/arp"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
)

// Device moves Ethernet frames, one per Read or Write. Read blocks until a
// frame arrives and fails once the device is closed.
type Device interface {
	io.ReadWriteCloser
}

// Config is a stack's addressing.
type Config struct {
	// Addr is the stack's IPv4 address and subnet; the zero value asks a
	// DHCP server on the link (Gateway then comes from it too).
	Addr    netip.Prefix
	Gateway netip.Addr // default route; invalid for none
	MTU     uint32     // IP MTU; 0 means 1500
	MAC     net.HardwareAddr
}

// Stack is a TCP/IP stack on one Ethernet device.
type Stack struct {
	s    *stack.Stack
	link *Link
	addr tcpip.Address
}

// NIC is the NIC ID of the device a stack built here has; loopbackNIC
// that of its loopback, 127.0.0.0/8.
const (
	NIC         tcpip.NICID = 1
	loopbackNIC tcpip.NICID = 2
)

// gVisor logs at Info level to standard error by default, a line per
// dropped "martian" packet among others: noise on a terminal. Warnings
// and worse are shown; Verbose shows the rest.
func init() { log.SetLevel(log.Warning) }

// Verbose makes gVisor log what it has to say (atoll run -v).
func Verbose() { log.SetLevel(log.Info) }

// timeWaitTimeout is how long a closed TCP connection stays in TIME_WAIT.
const timeWaitTimeout = 5 * time.Second

// NewGVisorStack returns a gVisor stack with IPv4, ARP, TCP, UDP and ICMP
// and the options Atoll pins (for usernet, which builds on gVisor too).
func NewGVisorStack() (*stack.Stack, error) {
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, arp.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol, icmp.NewProtocol4},
	})
	// Non-default options, pinned with their reasons:
	// - SACK recovers from loss without resending whole windows; it is off
	//   by default in gVisor and on by default in Linux, which peers expect.
	sack := tcpip.TCPSACKEnabled(true)
	// - Receive-buffer moderation grows windows with the transfer, as Linux
	//   does; without it bulk transfers stall at the initial window.
	moderate := tcpip.TCPModerateReceiveBufferOption(true)
	// - TIME_WAIT lasts 5 s, not 60. gVisor keeps a whole endpoint
	//   (~20 KB) for each connection in TIME_WAIT where Linux keeps a
	//   small record, so a server that closes a few hundred connections a
	//   second grew by ~8 MB/s for a minute (~550 MB) and ran out of
	//   memory (docs/benchmarks.md, frame rings). TIME_WAIT is there to
	//   answer a retransmitted FIN and let stray segments die; on a VM's
	//   link both take milliseconds.
	timeWait := tcpip.TCPTimeWaitTimeoutOption(timeWaitTimeout)
	for _, opt := range []tcpip.SettableTransportProtocolOption{&sack, &moderate, &timeWait} {
		if err := s.SetTransportProtocolOption(tcp.ProtocolNumber, opt); err != nil {
			s.Close()
			return nil, fmt.Errorf("netstack: %v", err)
		}
	}
	return s, nil
}

// New starts a stack on dev. The stack owns dev: Close closes it, and so
// does a failing New.
func New(dev Device, cfg Config) (*Stack, error) {
	if cfg.Addr.IsValid() && !cfg.Addr.Addr().Is4() || cfg.Gateway.IsValid() && !cfg.Gateway.Is4() {
		dev.Close()
		return nil, fmt.Errorf("netstack: address %v via %v is not IPv4", cfg.Addr, cfg.Gateway)
	}
	s, err := NewGVisorStack()
	if err != nil {
		dev.Close()
		return nil, err
	}
	if cfg.MAC == nil {
		cfg.MAC = randomMAC()
	}
	link, err := Attach(s, dev, cfg.MTU, cfg.MAC)
	if err != nil {
		s.Close()
		dev.Close()
		return nil, err
	}
	if !cfg.Addr.IsValid() {
		l, err := acquireLease(s, cfg.MAC)
		if err != nil {
			link.Close()
			s.Close()
			return nil, err
		}
		cfg.Addr, cfg.Gateway = l.addr, l.gateway
	}
	addr := tcpip.AddrFrom4(cfg.Addr.Addr().As4())
	pa := tcpip.ProtocolAddress{
		Protocol:          ipv4.ProtocolNumber,
		AddressWithPrefix: tcpip.AddressWithPrefix{Address: addr, PrefixLen: cfg.Addr.Bits()},
	}
	if err := s.AddProtocolAddress(NIC, pa, stack.AddressProperties{}); err != nil {
		link.Close()
		s.Close()
		return nil, fmt.Errorf("netstack: add address: %v", err)
	}
	// The guest's own loopback, as on Linux: connections to 127.0.0.0/8
	// reach its listeners there, or are refused at once.
	lo := tcpip.ProtocolAddress{
		Protocol:          ipv4.ProtocolNumber,
		AddressWithPrefix: tcpip.AddressWithPrefix{Address: tcpip.AddrFrom4([4]byte{127, 0, 0, 1}), PrefixLen: 8},
	}
	if err := s.CreateNIC(loopbackNIC, loopback.New()); err != nil {
		link.Close()
		s.Close()
		return nil, fmt.Errorf("netstack: create the loopback NIC: %v", err)
	}
	if err := s.AddProtocolAddress(loopbackNIC, lo, stack.AddressProperties{}); err != nil {
		link.Close()
		s.Close()
		return nil, fmt.Errorf("netstack: add the loopback address: %v", err)
	}
	routes := []tcpip.Route{
		{Destination: lo.AddressWithPrefix.Subnet(), NIC: loopbackNIC},
		{Destination: pa.AddressWithPrefix.Subnet(), NIC: NIC},
	}
	if cfg.Gateway.IsValid() {
		routes = append(routes, tcpip.Route{Destination: header.IPv4EmptySubnet, Gateway: tcpip.AddrFrom4(cfg.Gateway.As4()), NIC: NIC})
	}
	s.SetRouteTable(routes)
	return &Stack{s: s, link: link, addr: addr}, nil
}

// Link connects a device to a gVisor stack as NIC 1.
type Link struct {
	ep     *channel.Endpoint
	dev    Device
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Attach makes dev NIC 1 of s (mtu 0 means 1500, a nil mac a random one)
// and starts moving frames. Closing the Link closes dev; a failing Attach
// leaves dev open.
func Attach(s *stack.Stack, dev Device, mtu uint32, mac net.HardwareAddr) (*Link, error) {
	if mtu == 0 {
		mtu = 1500
	}
	if mac == nil {
		mac = randomMAC()
	}
	ep := channel.New(512, mtu+header.EthernetMinimumSize, tcpip.LinkAddress(mac))
	if err := s.CreateNIC(NIC, ethernet.New(ep)); err != nil {
		return nil, fmt.Errorf("netstack: create NIC: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &Link{ep: ep, dev: dev, cancel: cancel}
	l.wg.Add(2)
	go l.receive(int(mtu) + header.EthernetMinimumSize)
	go l.transmit(ctx)
	return l, nil
}

// receive delivers frames from the device to the stack until it fails,
// several per call on a BatchDevice. Frames too short for an Ethernet
// header or too long for the MTU are dropped here; everything else is
// validated by the stack.
func (l *Link) receive(max int) {
	defer l.wg.Done()
	bd, batch := l.dev.(BatchDevice)
	n := 1
	if batch {
		n = batchFrames
	}
	bufs := make([][]byte, n)
	for i := range bufs {
		bufs[i] = make([]byte, max+4)
	}
	sizes := make([]int, n)
	for {
		var got int
		var err error
		if batch {
			got, err = bd.ReadFrames(bufs, sizes)
		} else {
			sizes[0], err = l.dev.Read(bufs[0])
			got = 1
		}
		if err != nil {
			return
		}
		for i := 0; i < got; i++ {
			if sizes[i] == 0 {
				return // end of the device: the other side closed it
			}
			if sizes[i] < header.EthernetMinimumSize || sizes[i] > max {
				continue
			}
			pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(append([]byte(nil), bufs[i][:sizes[i]]...))})
			l.ep.InjectInbound(0, pkt)
			pkt.DecRef()
		}
	}
}

// transmit writes the stack's outbound frames to the device: on a
// BatchDevice, every frame already queued goes in one call.
func (l *Link) transmit(ctx context.Context) {
	defer l.wg.Done()
	bd, batch := l.dev.(BatchDevice)
	var frames [][]byte
	for {
		pkt := l.ep.ReadContext(ctx)
		if pkt == nil {
			return
		}
		frames = append(frames[:0], flatten(pkt))
		for batch && len(frames) < batchFrames {
			next := l.ep.Read()
			if next == nil {
				break
			}
			frames = append(frames, flatten(next))
		}
		var err error
		if batch {
			_, err = bd.WriteFrames(frames)
		} else {
			_, err = l.dev.Write(frames[0])
		}
		if err != nil && errors.Is(err, net.ErrClosed) {
			return
		}
	}
}

// flatten copies a packet into one frame and releases it.
func flatten(pkt *stack.PacketBuffer) []byte {
	frame := make([]byte, 0, pkt.Size())
	for _, s := range pkt.AsSlices() {
		frame = append(frame, s...)
	}
	pkt.DecRef()
	return frame
}

// Close stops moving frames and closes the device.
func (l *Link) Close() error {
	l.cancel()
	err := l.dev.Close()
	l.ep.Close()
	l.wg.Wait()
	return err
}

// Close stops the stack and closes the device.
func (st *Stack) Close() error {
	err := st.link.Close()
	st.s.Close()
	return err
}

// FrameCounts reports the frames the stack's device has received (in)
// and sent (out), when it is driven through frame rings (ok).
func (st *Stack) FrameCounts() (in, out uint64, ok bool) {
	d, ok := st.link.dev.(*ringDevice)
	if !ok {
		return 0, 0, false
	}
	in, out = d.FrameCounts()
	return in, out, true
}

// Addr is the stack's address.
func (st *Stack) Addr() netip.Addr { return netip.AddrFrom4(st.addr.As4()) }

func (st *Stack) fullAddr(addr string) (tcpip.FullAddress, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return tcpip.FullAddress{}, err
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return tcpip.FullAddress{}, fmt.Errorf("bad port in %q", addr)
	}
	fa := tcpip.FullAddress{Port: uint16(p)} // any NIC: the device's or the loopback
	if host != "" {
		ip, err := netip.ParseAddr(host)
		if err != nil || !ip.Is4() {
			return tcpip.FullAddress{}, fmt.Errorf("%q is not an IPv4 address", host)
		}
		if !ip.IsUnspecified() {
			fa.Addr = tcpip.AddrFrom4(ip.As4())
		}
	}
	return fa, nil
}

// Listen listens for TCP connections on addr ("host:port", host optional).
func (st *Stack) Listen(network, addr string) (net.Listener, error) {
	if network != "tcp" && network != "tcp4" {
		return nil, fmt.Errorf("netstack: Listen: network %q not supported", network)
	}
	fa, err := st.fullAddr(addr)
	if err != nil {
		return nil, err
	}
	ln, err := gonet.ListenTCP(st.s, fa, ipv4.ProtocolNumber)
	if err != nil {
		return nil, err
	}
	return ln, nil
}

// ListenPacket opens a UDP socket on addr.
func (st *Stack) ListenPacket(network, addr string) (net.PacketConn, error) {
	if network != "udp" && network != "udp4" {
		return nil, fmt.Errorf("netstack: ListenPacket: network %q not supported", network)
	}
	fa, err := st.fullAddr(addr)
	if err != nil {
		return nil, err
	}
	pc, err := gonet.DialUDP(st.s, &fa, nil, ipv4.ProtocolNumber)
	if err != nil {
		return nil, err
	}
	return pc, nil
}

// DialContext connects to addr over TCP or UDP.
func (st *Stack) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	fa, err := st.fullAddr(addr)
	if err != nil {
		return nil, err
	}
	// The adapters return typed nil pointers with their errors; hand back
	// a nil interface instead.
	switch network {
	case "tcp", "tcp4":
		c, err := gonet.DialContextTCP(ctx, st.s, fa, ipv4.ProtocolNumber)
		if err != nil {
			return nil, err
		}
		return c, nil
	case "udp", "udp4":
		c, err := gonet.DialUDP(st.s, nil, &fa, ipv4.ProtocolNumber)
		if err != nil {
			return nil, err
		}
		return c, nil
	}
	return nil, fmt.Errorf("netstack: Dial: network %q not supported", network)
}

// ioctl number and flags from include/uapi/linux/if_tun.h.
const (
	tunSetIff = 0x400454ca
	iffTap    = 0x0002
	iffNoPI   = 0x1000
)

// OpenTap attaches to the existing tap device iface and returns its
// descriptor, non-blocking, carrying one Ethernet frame per read or write.
func OpenTap(iface string) (uintptr, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return 0, fmt.Errorf("open /dev/net/tun: %w — tap devices need root or CAP_NET_ADMIN, or a tap created for your user (ip tuntap add %s mode tap user $USER)", err, iface)
	}
	ifr, err := unix.NewIfreq(iface)
	if err == nil {
		ifr.SetUint16(iffTap | iffNoPI)
		err = unix.IoctlIfreq(fd, tunSetIff, ifr)
	}
	if err != nil {
		unix.Close(fd)
		return 0, fmt.Errorf("attach to tap device %s: %w — is it a tap (not tun) device you may use, and not in use by another program?", iface, err)
	}
	return uintptr(fd), nil
}

func randomMAC() net.HardwareAddr {
	mac := make(net.HardwareAddr, 6)
	rand.Read(mac)
	mac[0] = mac[0]&^1 | 2 // unicast, locally administered
	return mac
}
