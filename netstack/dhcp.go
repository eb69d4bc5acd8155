package netstack

import (
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// DHCP timing: each step waits dhcpWait for an answer, dhcpTries times.
const (
	dhcpWait  = 2 * time.Second
	dhcpTries = 4
)

// lease is an address obtained with DHCP.
type lease struct {
	addr    netip.Prefix
	gateway netip.Addr
}

// acquireLease runs a DHCP exchange (discover, offer, request, ack) on
// NIC 1 of s, which has no address yet. It leaves the NIC without one; the
// caller adds the lease. Renewal is not implemented: the lease is assumed
// to outlive the unikernel (usernet grants a day).
func acquireLease(s *stack.Stack, mac net.HardwareAddr) (lease, error) {
	// Sending from 0.0.0.0 needs the unspecified address on the NIC and a
	// route for the broadcast.
	any := tcpip.ProtocolAddress{Protocol: ipv4.ProtocolNumber, AddressWithPrefix: header.IPv4Any.WithPrefix()}
	if err := s.AddProtocolAddress(NIC, any, stack.AddressProperties{}); err != nil {
		return lease{}, fmt.Errorf("dhcp: %v", err)
	}
	defer s.RemoveAddress(NIC, header.IPv4Any)
	s.SetRouteTable([]tcpip.Route{{Destination: header.IPv4EmptySubnet, NIC: NIC}})
	defer s.SetRouteTable(nil)

	var wq waiter.Queue
	ep, terr := s.NewEndpoint(udp.ProtocolNumber, ipv4.ProtocolNumber, &wq)
	if terr != nil {
		return lease{}, fmt.Errorf("dhcp: %v", terr)
	}
	ep.SocketOptions().SetBroadcast(true)
	if terr := ep.Bind(tcpip.FullAddress{NIC: NIC, Port: dhcpv4.ClientPort}); terr != nil {
		ep.Close()
		return lease{}, fmt.Errorf("dhcp: bind: %v", terr)
	}
	conn := gonet.NewUDPConn(&wq, ep)
	defer conn.Close()

	discover, err := dhcpv4.NewDiscovery(mac)
	if err != nil {
		return lease{}, err
	}
	offer, err := exchange(conn, discover, dhcpv4.MessageTypeOffer)
	if err != nil {
		return lease{}, err
	}
	request, err := dhcpv4.NewRequestFromOffer(offer)
	if err != nil {
		return lease{}, err
	}
	ack, err := exchange(conn, request, dhcpv4.MessageTypeAck)
	if err != nil {
		return lease{}, err
	}
	ip, ok := netip.AddrFromSlice(ack.YourIPAddr.To4())
	ones, _ := ack.SubnetMask().Size()
	if !ok || ip.IsUnspecified() || ones == 0 {
		return lease{}, fmt.Errorf("dhcp: acknowledgement without a usable address (%v/%d)", ack.YourIPAddr, ones)
	}
	l := lease{addr: netip.PrefixFrom(ip, ones)}
	if r := ack.Router(); len(r) > 0 {
		l.gateway, _ = netip.AddrFromSlice(r[0].To4())
	}
	return l, nil
}

// exchange broadcasts msg until a reply of type want with msg's
// transaction ID arrives; a NAK is an error.
func exchange(conn *gonet.UDPConn, msg *dhcpv4.DHCPv4, want dhcpv4.MessageType) (*dhcpv4.DHCPv4, error) {
	server := &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ServerPort}
	buf := make([]byte, 1500)
	for try := 0; try < dhcpTries; try++ {
		if _, err := conn.WriteTo(msg.ToBytes(), server); err != nil {
			return nil, fmt.Errorf("dhcp: send %v: %v", msg.MessageType(), err)
		}
		deadline := time.Now().Add(dhcpWait)
		for {
			conn.SetReadDeadline(deadline)
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				break // timed out: send again
			}
			reply, err := dhcpv4.FromBytes(buf[:n])
			if err != nil || reply.TransactionID != msg.TransactionID || reply.OpCode != dhcpv4.OpcodeBootReply {
				continue
			}
			switch reply.MessageType() {
			case want:
				return reply, nil
			case dhcpv4.MessageTypeNak:
				return nil, fmt.Errorf("dhcp: server refused the request (NAK)")
			}
		}
	}
	return nil, fmt.Errorf("dhcp: no %v after %d tries — is a DHCP server on this link?", want, dhcpTries)
}
