package usernet

import (
	"net"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"

	"atoll.dev/atoll/netstack"
)

// leaseSeconds is the lease the DHCP server grants. There is one guest and
// one address, so a long lease costs nothing.
const leaseSeconds = 24 * 60 * 60

// listenDHCP opens the DHCP server's socket: UDP port 67, able to
// broadcast its replies.
func (n *NAT) listenDHCP() (*gonet.UDPConn, error) {
	var wq waiter.Queue
	ep, err := n.s.NewEndpoint(udp.ProtocolNumber, ipv4.ProtocolNumber, &wq)
	if err != nil {
		return nil, errorf("DHCP socket: %v", err)
	}
	ep.SocketOptions().SetBroadcast(true)
	if err := ep.Bind(tcpip.FullAddress{NIC: netstack.NIC, Port: dhcpv4.ServerPort}); err != nil {
		ep.Close()
		return nil, errorf("DHCP bind: %v", err)
	}
	return gonet.NewUDPConn(&wq, ep), nil
}

// serveDHCP answers DHCP for the one guest: it offers and acknowledges the
// guest's address with the gateway as router and server. Malformed
// messages are ignored.
func (n *NAT) serveDHCP(conn *gonet.UDPConn) {
	defer conn.Close()
	mask := net.CIDRMask(n.prefix.Bits(), 32)
	guest, gw := net.IP(n.guest.AsSlice()), net.IP(n.gw.AsSlice())
	buf := make([]byte, 1500)
	for {
		m, _, err := conn.ReadFrom(buf)
		if err != nil {
			return
		}
		req, err := dhcpv4.FromBytes(buf[:m])
		if err != nil || req.OpCode != dhcpv4.OpcodeBootRequest {
			continue
		}
		var reply dhcpv4.MessageType
		switch req.MessageType() {
		case dhcpv4.MessageTypeDiscover:
			reply = dhcpv4.MessageTypeOffer
		case dhcpv4.MessageTypeRequest:
			reply = dhcpv4.MessageTypeAck
			if ip := req.RequestedIPAddress(); ip != nil && !ip.Equal(guest) && !ip.IsUnspecified() {
				reply = dhcpv4.MessageTypeNak
			}
		default:
			continue
		}
		resp, err := dhcpv4.NewReplyFromRequest(req,
			dhcpv4.WithMessageType(reply),
			dhcpv4.WithServerIP(gw),
			dhcpv4.WithOption(dhcpv4.OptServerIdentifier(gw)),
		)
		if err != nil {
			continue
		}
		if reply != dhcpv4.MessageTypeNak {
			dhcpv4.WithYourIP(guest)(resp)
			dhcpv4.WithNetmask(mask)(resp)
			dhcpv4.WithRouter(gw)(resp)
			dhcpv4.WithLeaseTime(leaseSeconds)(resp)
		}
		conn.WriteTo(resp.ToBytes(), &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ClientPort})
	}
}
