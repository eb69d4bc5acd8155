package netback

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"atoll.dev/atoll/internal/testenv"
	"atoll.dev/atoll/netpolicy"
	"atoll.dev/atoll/netstack"
)

// userGuest opens the user backend with the given forwards and starts a
// guest stack on it, batching as the guest library does; dhcp asks for the
// address instead of taking the one the backend chose.
func userGuest(t *testing.T, o Options, dhcp bool) (*Backend, *netstack.Stack) {
	t.Helper()
	b, err := Open("user", o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	dev, err := netstack.NewFileDevice(b.Guest)
	if err != nil {
		t.Fatal(err)
	}
	cfg := netstack.Config{Addr: b.Addr, Gateway: b.Gateway}
	if dhcp {
		cfg = netstack.Config{}
	}
	g, err := netstack.New(dev, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return b, g
}

// TestUserNetwork runs a guest stack on the user backend, without a VM:
// a host client reaches the guest through a port forward, and the guest
// reaches a host server through the gateway.
func TestUserNetwork(t *testing.T) {
	port := testenv.FreePort(t)
	fwd, err := netpolicy.ParseForward(strconv.Itoa(port) + ":80")
	if err != nil {
		t.Fatal(err)
	}
	b, g := userGuest(t, Options{Forwards: []netpolicy.Forward{fwd}}, false)
	if b.Addr.String() != "10.0.2.15/24" || b.Gateway.String() != "10.0.2.2" {
		t.Fatalf("addressing %v via %v", b.Addr, b.Gateway)
	}

	ln, err := g.Listen("tcp", ":80")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, "hello from the guest")
			c.Close()
		}
	}()
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(c)
	c.Close()
	if string(got) != "hello from the guest" {
		t.Fatalf("port forward: %q, %v", got, err)
	}

	host, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	go func() {
		c, err := host.Accept()
		if err == nil {
			io.Copy(c, c)
			c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := g.DialContext(ctx, "tcp", "10.0.2.2:"+strconv.Itoa(host.Addr().(*net.TCPAddr).Port))
	if err != nil {
		t.Fatal(err)
	}
	out.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(out, "ping")
	out.(interface{ CloseWrite() error }).CloseWrite()
	back, err := io.ReadAll(out)
	if string(back) != "ping" {
		t.Fatalf("outbound: %q, %v", back, err)
	}
}

// TestUserDHCP: a guest stack with no address gets the user network's
// one (10.0.2.15/24 via 10.0.2.2) from its DHCP server, and works.
func TestUserDHCP(t *testing.T) {
	_, g := userGuest(t, Options{}, true)
	if g.Addr().String() != "10.0.2.15" {
		t.Fatalf("leased %v, want 10.0.2.15", g.Addr())
	}
	host, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	go func() {
		if c, err := host.Accept(); err == nil {
			io.WriteString(c, "via the gateway")
			c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := g.DialContext(ctx, "tcp", "10.0.2.2:"+strconv.Itoa(host.Addr().(*net.TCPAddr).Port))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(c)
	if string(got) != "via the gateway" {
		t.Fatalf("got %q", got)
	}
}

// TestUDPForward relays datagrams from a host client through a -p .../udp
// forward to a guest UDP service and back.
func TestUDPForward(t *testing.T) {
	port := testenv.FreePort(t) // a TCP port number that is very likely free for UDP too
	fwd, err := netpolicy.ParseForward(strconv.Itoa(port) + ":53/udp")
	if err != nil {
		t.Fatal(err)
	}
	_, g := userGuest(t, Options{Forwards: []netpolicy.Forward{fwd}}, false)
	pc, err := g.ListenPacket("udp", ":53")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo([]byte(strings.ToUpper(string(buf[:n]))), from)
		}
	}()
	c, err := net.Dial("udp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 100)
	for i := 0; ; i++ { // the first datagram may wait for ARP
		c.Write([]byte("query"))
		c.SetReadDeadline(time.Now().Add(time.Second))
		if n, err := c.Read(buf); err == nil {
			if string(buf[:n]) != "QUERY" {
				t.Fatalf("got %q", buf[:n])
			}
			return
		}
		if i == 5 {
			t.Fatal("no answer through the UDP forward")
		}
	}
}

// TestUDPForwardManyClients: a client per query, as DNS resolvers send
// them, far more than the forward tracks at once: each is answered, the
// quietest flows making room.
func TestUDPForwardManyClients(t *testing.T) {
	port := testenv.FreePort(t)
	fwd, err := netpolicy.ParseForward(strconv.Itoa(port) + ":53/udp")
	if err != nil {
		t.Fatal(err)
	}
	_, g := userGuest(t, Options{Forwards: []netpolicy.Forward{fwd}}, false)
	pc, err := g.ListenPacket("udp", ":53")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
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
	buf := make([]byte, 100)
	for i := 0; i < 3*256; i++ {
		c, err := net.Dial("udp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			t.Fatal(err)
		}
		msg := fmt.Sprintf("query %d", i)
		answered := false
		for try := 0; try < 5 && !answered; try++ { // the first may wait for ARP
			c.Write([]byte(msg))
			c.SetReadDeadline(time.Now().Add(time.Second))
			n, err := c.Read(buf)
			answered = err == nil && string(buf[:n]) == msg
		}
		c.Close()
		if !answered {
			t.Fatalf("client %d got no answer", i)
		}
	}
}

// TestOutboundPolicy: with outbound=none the guest's connections are
// refused, to the host's loopback or anywhere, while port forwards still
// reach it.
func TestOutboundPolicy(t *testing.T) {
	host, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	go func() {
		for {
			c, err := host.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	port := strconv.Itoa(host.Addr().(*net.TCPAddr).Port)
	for _, c := range []struct {
		policy netpolicy.Outbound
		addr   string
		ok     bool
	}{
		{netpolicy.OutboundAll, "10.0.2.2:" + port, true},
		{netpolicy.OutboundNoLoopback, "10.0.2.2:" + port, false},
		{netpolicy.OutboundNoLoopback, "127.0.0.1:" + port, false},
		{netpolicy.OutboundNone, "10.0.2.2:" + port, false},
	} {
		b, err := Open("user", Options{Outbound: c.policy})
		if err != nil {
			t.Fatal(err)
		}
		dev, _ := netstack.NewFileDevice(b.Guest)
		g, err := netstack.New(dev, netstack.Config{Addr: b.Addr, Gateway: b.Gateway})
		if err != nil {
			t.Fatal(err)
		}
		// A refused connection is reset at once, or (127.0.0.1, which the
		// guest stack will not send on its NIC) never answered.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := g.DialContext(ctx, "tcp", c.addr)
		cancel()
		if (err == nil) != c.ok {
			t.Errorf("policy %d, dial %s: err %v, want ok=%v", c.policy, c.addr, err, c.ok)
		}
		if err == nil {
			conn.Close()
		}
		g.Close()
		b.Close()
	}
}

// TestPortInUse: a taken host port is an error naming it, and nothing is
// left bound.
func TestPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	fwd, _ := netpolicy.ParseForward(strings.TrimPrefix(ln.Addr().String(), "127.0.0.1:") + ":80")
	if _, err := Open("user", Options{Forwards: []netpolicy.Forward{fwd}}); err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("err %v", err)
	}
}

func TestTapErrors(t *testing.T) {
	for spec, want := range map[string]string{
		"tap:":                "tap needs an interface",
		"tap:atoll-nonexist0": "does not exist",
		"bridge:br0":          "unknown network backend",
		"user:x":              "takes no argument",
	} {
		_, err := Open(spec, Options{Addr: netpolicy.Guest})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Open(%q): %v, want %q", spec, err, want)
		}
	}
}

// TestUserResolver asks the guest's resolver address, which the user
// network forwards to the resolver it was given.
func TestUserResolver(t *testing.T) {
	dns, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer dns.Close()
	go func() {
		buf := make([]byte, 512)
		for {
			n, from, err := dns.ReadFrom(buf)
			if err != nil {
				return
			}
			dns.WriteTo(append([]byte("answer to "), buf[:n]...), from)
		}
	}()
	_, g := userGuest(t, Options{Resolver: netip.MustParseAddrPort(dns.LocalAddr().String())}, false)
	c, err := g.DialContext(context.Background(), "udp", "10.0.2.3:53")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 100)
	for i := 0; ; i++ { // the first datagram may wait for ARP
		c.Write([]byte("query"))
		c.SetReadDeadline(time.Now().Add(time.Second))
		if n, err := c.Read(buf); err == nil {
			if string(buf[:n]) != "answer to query" {
				t.Fatalf("got %q", buf[:n])
			}
			return
		}
		if i == 5 {
			t.Fatal("no answer from the resolver address")
		}
	}
}
