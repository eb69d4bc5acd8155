package authority

import (
	"errors"
	"net"
	"runtime"
	"syscall"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// udpBatch is how many datagrams one system call moves at most.
const udpBatch = 64

// ServeUDP answers queries arriving on pc until it fails, with one
// reader per processor. On a host UDP socket it moves datagrams in
// batches (recvmmsg, sendmmsg: one system call, and under atoll's host
// backend one VM exit, for up to 64 queries and again for their
// answers). Answers leave from pc's own address, so a socket bound to a
// wildcard address on a host that has several would answer from the
// wrong one: such a socket, when it can report each datagram's
// destination, is better served by the dns package's server, which does
// (main uses it then).
func (s *Server) ServeUDP(pc net.PacketConn) error {
	workers := runtime.GOMAXPROCS(0)
	errc := make(chan error, workers)
	for i := 0; i < workers; i++ {
		go func() { errc <- s.serveUDP(pc) }()
	}
	return <-errc
}

// batchConn reads and writes datagrams in batches.
type batchConn interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

func (s *Server) serveUDP(pc net.PacketConn) error {
	u, ok := pc.(*net.UDPConn)
	if !ok {
		return s.serveUDPOne(pc)
	}
	var bc batchConn = ipv4.NewPacketConn(u)
	if a, ok := u.LocalAddr().(*net.UDPAddr); ok && a.IP.To4() == nil {
		bc = ipv6.NewPacketConn(u)
	}
	in := make([]ipv4.Message, udpBatch)
	out := make([]ipv4.Message, 0, udpBatch)
	for i := range in {
		in[i].Buffers = [][]byte{make([]byte, dns.MaxMsgSize)}
	}
	for {
		n, err := bc.ReadBatch(in, 0)
		if err != nil {
			if transient(err) {
				continue
			}
			return err
		}
		out = out[:0]
		for _, m := range in[:n] {
			if resp := s.packet(m.Buffers[0][:m.N]); resp != nil {
				out = append(out, ipv4.Message{Buffers: [][]byte{resp}, Addr: m.Addr})
			}
		}
		for len(out) > 0 {
			k, err := bc.WriteBatch(out, 0)
			if err != nil && !transient(err) {
				return err
			}
			if k == 0 {
				k = 1 // this answer cannot go (its client is gone): skip it
			}
			out = out[k:]
		}
	}
}

// serveUDPOne serves a packet connection one datagram at a time (a
// unikernel's own network stack).
func (s *Server) serveUDPOne(pc net.PacketConn) error {
	buf := make([]byte, dns.MaxMsgSize)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if transient(err) {
				continue
			}
			return err
		}
		if resp := s.packet(buf[:n]); resp != nil {
			pc.WriteTo(resp, from)
		}
	}
}

// transient reports errors a server reading on goes past: a datagram's
// ICMP error reported on the socket, or a timeout.
func transient(err error) bool {
	var ne net.Error
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EINTR) ||
		errors.As(err, &ne) && ne.Timeout()
}

// packet answers one UDP datagram, or returns nil when it deserves no
// answer; as the dns package's server does: a message whose header does
// not parse, or a response, is dropped; one that does not parse beyond
// its header, or fails AcceptMsg, gets FORMERR (or NOTIMP).
func (s *Server) packet(b []byte) []byte {
	if len(b) < 12 {
		return nil
	}
	var h dns.Header
	h.Id = uint16(b[0])<<8 | uint16(b[1])
	h.Bits = uint16(b[2])<<8 | uint16(b[3])
	h.Qdcount = uint16(b[4])<<8 | uint16(b[5])
	req := new(dns.Msg)
	action := AcceptMsg(h)
	var err error
	if action == dns.MsgAccept {
		if err = req.Unpack(b); err != nil {
			action = dns.MsgReject
		}
	}
	if action == dns.MsgIgnore {
		return nil
	}
	var resp *dns.Msg
	if action != dns.MsgAccept {
		resp = new(dns.Msg)
		resp.Id, resp.Response = h.Id, true
		resp.Opcode = int(h.Bits>>11) & 0xF
		resp.Rcode = dns.RcodeFormatError
		if action == dns.MsgRejectNotImplemented {
			resp.Rcode = dns.RcodeNotImplemented
		}
		out, _ := resp.Pack()
		return out
	}
	var tsigErr error
	var secret string
	t := req.IsTsig()
	if t != nil {
		k, ok := s.keys[dns.CanonicalName(t.Hdr.Name)]
		secret = k.Secret
		if !ok {
			tsigErr = dns.ErrSecret
		} else {
			tsigErr = dns.TsigVerify(b, secret, "", false)
		}
	}
	resp = s.Handle(req, false, tsigErr)
	if resp == nil {
		return nil
	}
	if t != nil && tsigErr == nil {
		resp.SetTsig(t.Hdr.Name, t.Algorithm, 300, time.Now().Unix())
		out, _, err := dns.TsigGenerate(resp, secret, t.MAC, false)
		if err != nil {
			return nil
		}
		return out
	}
	out, err := resp.Pack()
	if err != nil {
		return nil
	}
	return out
}

// AcceptMsg admits queries, NOTIFYs and updates (with one question); it
// drops responses (so no server can be made to talk to another in a
// loop) and rejects other opcodes with NOTIMP. It is the dns package
// server's MsgAcceptFunc too.
func AcceptMsg(dh dns.Header) dns.MsgAcceptAction {
	const qr = 1 << 15
	if dh.Bits&qr != 0 {
		return dns.MsgIgnore
	}
	switch int(dh.Bits>>11) & 0xF {
	case dns.OpcodeQuery, dns.OpcodeNotify, dns.OpcodeUpdate:
	default:
		return dns.MsgRejectNotImplemented
	}
	if dh.Qdcount != 1 {
		return dns.MsgReject
	}
	return dns.MsgAccept
}
