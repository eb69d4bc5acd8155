package netstack

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"
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
// stack must still serve afterwards.
func FuzzFrames(f *testing.F) {
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{0xff}, 14))
	f.Add(append(bytes.Repeat([]byte{0xff}, 12), 0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1))
	f.Add(append(bytes.Repeat([]byte{0xff}, 12), 0x08, 0x00, 0x45, 0, 0, 20, 0, 0, 0, 0, 64, 6, 0, 0, 10, 0, 0, 2, 10, 0, 0, 1))
	pa, pb := cable()
	st, err := New(pa, Config{Addr: netip.MustParsePrefix("10.0.0.1/24")})
	if err != nil {
		f.Fatal(err)
	}
	defer st.Close()
	go func() { // drain what the stack sends
		buf := make([]byte, 2000)
		for {
			if _, err := pb.Read(buf); err != nil {
				return
			}
		}
	}()
	f.Fuzz(func(t *testing.T, frame []byte) {
		pb.Write(frame)
	})
}
