package netstack

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
)

// wire is one direction of an in-memory Ethernet cable.
type wire chan []byte

// port is one end of a cable: it reads from in and writes to out.
type port struct {
	in, out wire
	once    sync.Once
	closed  chan struct{}
}

func (p *port) Read(b []byte) (int, error) {
	select {
	case f := <-p.in:
		return copy(b, f), nil
	case <-p.closed:
		return 0, net.ErrClosed
	}
}

func (p *port) Write(b []byte) (int, error) {
	select {
	case p.out <- append([]byte(nil), b...):
	case <-p.closed:
		return 0, net.ErrClosed
	default: // a full queue drops, as a real link does
	}
	return len(b), nil
}

func (p *port) Close() error {
	p.once.Do(func() { close(p.closed) })
	return nil
}

func cable() (*port, *port) {
	a, b := make(wire, 256), make(wire, 256)
	return &port{in: a, out: b, closed: make(chan struct{})}, &port{in: b, out: a, closed: make(chan struct{})}
}

func twoStacks(t *testing.T) (*Stack, *Stack) {
	t.Helper()
	pa, pb := cable()
	a, err := New(pa, Config{Addr: netip.MustParsePrefix("10.0.0.1/24")})
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(pb, Config{Addr: netip.MustParsePrefix("10.0.0.2/24"), Gateway: netip.MustParseAddr("10.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// TestTCPOverCable moves a megabyte each way between two stacks joined by
// an in-memory link: ARP, the handshake, windows and close all happen.
func TestTCPOverCable(t *testing.T) {
	a, b := twoStacks(t)
	ln, err := a.Listen("tcp", ":80")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	payload := bytes.Repeat([]byte("atoll "), 1<<20/6)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(c, c) // echo
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := b.DialContext(ctx, "tcp", "10.0.0.1:80")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	go func() { c.Write(payload); c.(interface{ CloseWrite() error }).CloseWrite() }()
	got, err := io.ReadAll(c)
	if err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("echo: %d of %d bytes, %v", len(got), len(payload), err)
	}
}

func TestUDPOverCable(t *testing.T) {
	a, b := twoStacks(t)
	pc, err := a.ListenPacket("udp", ":53")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go func() {
		buf := make([]byte, 1500)
		n, from, err := pc.ReadFrom(buf)
		if err == nil {
			pc.WriteTo(bytes.ToUpper(buf[:n]), from)
		}
	}()
	c, err := b.DialContext(context.Background(), "udp", "10.0.0.1:53")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	// ARP may drop the first datagram; resend until answered.
	buf := make([]byte, 100)
	for i := 0; ; i++ {
		c.Write([]byte("ping"))
		c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		n, err := c.Read(buf)
		if err == nil {
			if string(buf[:n]) != "PING" {
				t.Fatalf("got %q", buf[:n])
			}
			return
		}
		if i == 10 {
			t.Fatal(err)
		}
	}
}

// FuzzFrames feeds arbitrary frames to a stack: nothing may panic, and the
// stack must still serve afterwards. After each input a second stack on
// the same cable exchanges a UDP datagram with it and echoes a byte over
// a TCP connection opened before fuzzing began.
// TestLoopback connects to a listener on the stack's own loopback, and
// finds a port with no listener refused at once rather than sent to the
// gateway, where it would wait out the dial.
func TestLoopback(t *testing.T) {
	a, _ := twoStacks(t)
	ln, err := a.Listen("tcp", "127.0.0.1:8080")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Write([]byte("local"))
			c.Close()
		}
	}()
	c, err := a.DialContext(context.Background(), "tcp", "127.0.0.1:8080")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(c)
	c.Close()
	if string(got) != "local" {
		t.Errorf("read %q", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	if _, err := a.DialContext(ctx, "tcp", "127.0.0.1:1"); err == nil || time.Since(start) > time.Second {
		t.Errorf("dial of a closed loopback port: %v after %v", err, time.Since(start))
	}
}

func FuzzFrames(f *testing.F) {
	eth := func(typ ...byte) []byte { // to the target, from the prober
		return append(append(append([]byte(nil), fuzzMAC...), proberMAC...), typ...)
	}
	f.Add([]byte{0})
	f.Add(bytes.Repeat([]byte{0xff}, 14))
	f.Add(append(bytes.Repeat([]byte{0xff}, 12), 0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1))
	f.Add(append(bytes.Repeat([]byte{0xff}, 12), 0x08, 0x00, 0x45, 0, 0, 20, 0, 0, 0, 0, 64, 6, 0, 0, 10, 0, 0, 2, 10, 0, 0, 1))
	// An ARP reply that claims the prober's address for another machine.
	f.Add(append(eth(0x08, 0x06), 0, 1, 8, 0, 6, 4, 0, 2, 2, 0, 0, 0, 0, 9, 10, 0, 0, 2, 0, 0, 0, 0, 0, 0, 10, 0, 0, 1))
	// A UDP datagram to the echo port with a bad length.
	f.Add(append(eth(0x08, 0x00), 0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 2, 10, 0, 0, 1, 0x30, 0x39, 0, 7, 0xff, 0xff, 0, 0))
	// A TCP RST to the listening port.
	f.Add(append(eth(0x08, 0x00), 0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6, 0, 0, 10, 0, 0, 2, 10, 0, 0, 1, 0x30, 0x39, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x04, 0, 0, 0, 0, 0, 0))
	p := newProber(f)
	f.Fuzz(func(t *testing.T, frame []byte) {
		if len(frame) == 0 {
			// The link takes a zero-length read for the end of the
			// device (Link.receive), so an empty frame stops the stack
			// by design; no Ethernet link carries one.
			return
		}
		p.inject(frame)
		p.check(t, frame)
	})
}

var (
	fuzzMAC   = net.HardwareAddr{2, 0, 0, 0, 0, 1}
	proberMAC = net.HardwareAddr{2, 0, 0, 0, 0, 2}
)

// A prober checks that a stack fed arbitrary frames still serves.
type prober struct {
	in  wire     // the target stack's inbound wire
	udp net.Conn // to the target's UDP echo port
	tcp net.Conn // to the target's TCP echo port
	seq uint64
	buf []byte
}

func newProber(tb testing.TB) *prober {
	tb.Helper()
	pa, pb := cable()
	target, err := New(pa, Config{Addr: netip.MustParsePrefix("10.0.0.1/24"), MAC: fuzzMAC})
	if err != nil {
		tb.Fatal(err)
	}
	peer, err := New(pb, Config{Addr: netip.MustParsePrefix("10.0.0.2/24"), MAC: proberMAC})
	if err != nil {
		target.Close()
		tb.Fatal(err)
	}
	tb.Cleanup(func() { target.Close(); peer.Close() })
	// Static neighbours: a fuzzed ARP reply may claim either address for
	// another machine, which a real network would believe too.
	for _, n := range []struct {
		st   *Stack
		addr netip.Addr
		mac  net.HardwareAddr
	}{{target, peer.Addr(), proberMAC}, {peer, target.Addr(), fuzzMAC}} {
		if err := n.st.s.AddStaticNeighbor(NIC, ipv4.ProtocolNumber, tcpip.AddrFrom4(n.addr.As4()), tcpip.LinkAddress(n.mac)); err != nil {
			tb.Fatalf("static neighbour: %v", err)
		}
	}

	pc, err := target.ListenPacket("udp", ":7")
	if err != nil {
		tb.Fatal(err)
	}
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:n], from)
		}
	}()
	ln, err := target.Listen("tcp", ":7")
	if err != nil {
		tb.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p := &prober{in: pa.in, buf: make([]byte, 64)}
	if p.udp, err = peer.DialContext(ctx, "udp", "10.0.0.1:7"); err != nil {
		tb.Fatal(err)
	}
	if p.tcp, err = peer.DialContext(ctx, "tcp", "10.0.0.1:7"); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { p.udp.Close(); p.tcp.Close(); pc.Close(); ln.Close() })
	return p
}

// inject delivers frame to the target as if the prober had sent it.
func (p *prober) inject(frame []byte) {
	p.in <- append([]byte(nil), frame...)
}

// probeTimeout bounds one liveness check; a check that passes takes
// tens of microseconds.
const probeTimeout = 5 * time.Second

// check fails t unless the target echoes a fresh UDP datagram and a byte
// on the TCP connection.
func (p *prober) check(t *testing.T, frame []byte) {
	t.Helper()
	p.seq++
	token := fmt.Appendf(nil, "probe %d", p.seq)
	deadline := time.Now().Add(probeTimeout)
	for answered := false; !answered; {
		if time.Now().After(deadline) {
			t.Fatalf("no UDP echo within %v after frame %x", probeTimeout, frame)
		}
		p.udp.Write(token)
		// Resend after a while: a fuzzed frame may fill a queue and
		// a datagram be dropped, as on a real link.
		p.udp.SetReadDeadline(time.Now().Add(min(time.Until(deadline), 200*time.Millisecond)))
		for {
			n, err := p.udp.Read(p.buf)
			if err != nil {
				break
			}
			if bytes.Equal(p.buf[:n], token) {
				answered = true
				break
			}
			// An echo of an earlier resend: read on.
		}
	}
	p.tcp.SetDeadline(deadline)
	b := []byte{byte(p.seq)}
	if _, err := p.tcp.Write(b); err != nil {
		t.Fatalf("TCP write after frame %x: %v", frame, err)
	}
	if _, err := io.ReadFull(p.tcp, p.buf[:1]); err != nil || p.buf[0] != b[0] {
		t.Fatalf("TCP echo after frame %x: got %q, %v; want %q", frame, p.buf[:1], err, b)
	}
}

// TestPinnedOptions checks the TCP options NewGVisorStack pins, each with
// its reason there; a short TIME_WAIT is what keeps a server under
// connection churn from holding an endpoint per closed connection for a
// minute.
func TestPinnedOptions(t *testing.T) {
	s, err := NewGVisorStack()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var sack tcpip.TCPSACKEnabled
	var moderate tcpip.TCPModerateReceiveBufferOption
	var timeWait tcpip.TCPTimeWaitTimeoutOption
	for _, opt := range []tcpip.GettableTransportProtocolOption{&sack, &moderate, &timeWait} {
		if err := s.TransportProtocolOption(tcp.ProtocolNumber, opt); err != nil {
			t.Fatalf("%T: %v", opt, err)
		}
	}
	if !bool(sack) || !bool(moderate) || time.Duration(timeWait) != timeWaitTimeout {
		t.Errorf("SACK %v, receive-buffer moderation %v, TIME_WAIT %v", sack, moderate, time.Duration(timeWait))
	}
}
