package difftest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/miekg/dns"
)

// Timeout is how long [Exchange] waits for a response. Servers rightly
// send none to some queries of the corpus (a query with QR set), so it
// is short: the servers are on this machine.
const Timeout = 2 * time.Second

// ErrNoResponse is the error of [Exchange] and [ExchangeWire] when the
// server sent no response within [Timeout] (over TCP: closed the
// connection without one).
var ErrNoResponse = errors.New("no response")

// Exchange sends m to the server at addr ("127.0.0.1:PORT") over UDP, or
// TCP if tcp, and returns its response as it came: truncated (TC set,
// whatever was kept), with a question that may not match, any size (the
// UDP read buffer is 64 KiB whatever the query's EDNS size, so an
// oversized response is seen whole). Only the ID is checked: a UDP
// datagram with another ID is not the response and is ignored. m is sent
// as it is (its ID included) and not modified.
func Exchange(addr string, m *dns.Msg, tcp bool) (*dns.Msg, error) {
	return exchange(addr, m, tcp, Timeout)
}

// ExchangeWire is [Exchange] returning the response's wire form, not
// unpacked: for checking its size, or a response that does not unpack.
func ExchangeWire(addr string, m *dns.Msg, tcp bool) ([]byte, error) {
	return exchangeWire(addr, m, tcp, Timeout)
}

// exchange is [Exchange] with a timeout.
func exchange(addr string, m *dns.Msg, tcp bool, timeout time.Duration) (*dns.Msg, error) {
	b, err := exchangeWire(addr, m, tcp, timeout)
	if err != nil {
		return nil, err
	}
	r := new(dns.Msg)
	if err := r.Unpack(b); err != nil {
		return nil, fmt.Errorf("unpacking the %d-octet response: %w", len(b), err)
	}
	return r, nil
}

// exchangeWire is [ExchangeWire] with a timeout.
func exchangeWire(addr string, m *dns.Msg, tcp bool, timeout time.Duration) ([]byte, error) {
	q, err := m.Pack()
	if err != nil {
		return nil, fmt.Errorf("packing the query: %w", err)
	}
	network := "udp"
	if tcp {
		network = "tcp"
	}
	conn, err := net.DialTimeout(network, addr, timeout)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return nil, err
	}
	if tcp {
		return exchangeTCP(conn, q)
	}
	if _, err := conn.Write(q); err != nil {
		return nil, err
	}
	buf := make([]byte, 65536)
	for {
		n, err := conn.Read(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, ErrNoResponse
		}
		if err != nil {
			return nil, err
		}
		if n >= 2 && buf[0] == q[0] && buf[1] == q[1] {
			return buf[:n:n], nil
		}
	}
}

// exchangeTCP sends the query q on the TCP connection conn and reads one
// response, each preceded by its two-octet length (RFC 1035 §4.2.2).
func exchangeTCP(conn net.Conn, q []byte) ([]byte, error) {
	out := make([]byte, 2+len(q))
	binary.BigEndian.PutUint16(out, uint16(len(q)))
	copy(out[2:], q)
	if _, err := conn.Write(out); err != nil {
		return nil, err
	}
	var n [2]byte
	if _, err := io.ReadFull(conn, n[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, syscall.ECONNRESET) {
			return nil, ErrNoResponse
		}
		return nil, err
	}
	b := make([]byte, binary.BigEndian.Uint16(n[:]))
	if _, err := io.ReadFull(conn, b); err != nil {
		return nil, fmt.Errorf("reading the %d-octet response: %w", len(b), err)
	}
	return b, nil
}

// UDPLimit returns the largest UDP response the query m allows: its EDNS
// UDP payload size, but no less than 512 octets (RFC 6891 §6.2.5), or 512
// without EDNS (RFC 1035 §4.2.1).
func UDPLimit(m *dns.Msg) int {
	if opt := m.IsEdns0(); opt != nil && opt.UDPSize() > 512 {
		return int(opt.UDPSize())
	}
	return 512
}
