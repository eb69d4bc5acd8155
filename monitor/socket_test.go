package monitor

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"atoll.dev/atoll/netpolicy"
)

// Socket addresses as the guest writes them, built here independently of
// the monitor's own encoding.
func sin(ip string, port uint16) []byte {
	b := make([]byte, 16)
	binary.LittleEndian.PutUint16(b, unix.AF_INET)
	binary.BigEndian.PutUint16(b[2:], port)
	a := netip.MustParseAddr(ip).As4()
	copy(b[4:], a[:])
	return b
}

func sin6(ip string, port uint16) []byte {
	b := make([]byte, 28)
	binary.LittleEndian.PutUint16(b, unix.AF_INET6)
	binary.BigEndian.PutUint16(b[2:], port)
	a := netip.MustParseAddr(ip).As16()
	copy(b[8:], a[:])
	return b
}

// sockTest drives socket calls on a test VM with a scratch area of its
// own per call.
type sockTest struct {
	*testVM
	t    *testing.T
	next uint64
}

func newSockTest(t *testing.T, hn HostNet) *sockTest {
	return &sockTest{testVM: newTestVM(t, vmOptions{hostNet: &hn}), t: t, next: 64 << 10}
}

// buf puts b in guest memory and returns its address.
func (st *sockTest) buf(b []byte) uint64 {
	a := st.at(st.next)
	st.put(st.t, a, b)
	st.next += uint64(len(b)+63) &^ 63
	if st.next > scratchSize-4096 {
		st.next = 64 << 10
	}
	return a
}

func (st *sockTest) socket(family, typ int) uint64 {
	return st.mustCall(st.t, unix.SYS_SOCKET, uint64(family), uint64(typ|unix.SOCK_CLOEXEC), 0)
}

// name answers getsockname (peer false) or getpeername as "ADDR:PORT".
func (st *sockTest) name(fd uint64, peer bool) netip.AddrPort {
	st.t.Helper()
	nr := uint64(unix.SYS_GETSOCKNAME)
	if peer {
		nr = unix.SYS_GETPEERNAME
	}
	a, l := st.buf(make([]byte, 32)), st.buf(u32le(32))
	st.mustCall(st.t, nr, fd, a, l)
	return decodeSockaddr(st.t, st.bytes(st.t, a, uint64(st.u32(st.t, l))))
}

func u32le(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }

func decodeSockaddr(t *testing.T, b []byte) netip.AddrPort {
	t.Helper()
	switch {
	case len(b) == 16 && binary.LittleEndian.Uint16(b) == unix.AF_INET:
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[4:8])), binary.BigEndian.Uint16(b[2:]))
	case len(b) == 28 && binary.LittleEndian.Uint16(b) == unix.AF_INET6:
		return netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[8:24])), binary.BigEndian.Uint16(b[2:]))
	}
	t.Fatalf("socket address % x", b)
	return netip.AddrPort{}
}

func (st *sockTest) write(fd uint64, s string) {
	st.t.Helper()
	if n := st.mustCall(st.t, unix.SYS_WRITE, fd, st.buf([]byte(s)), uint64(len(s))); n != uint64(len(s)) {
		st.t.Fatalf("write %d of %d", n, len(s))
	}
}

func (st *sockTest) read(fd uint64, max int) string {
	st.t.Helper()
	a := st.buf(make([]byte, max))
	n := st.mustCall(st.t, unix.SYS_READ, fd, a, uint64(max))
	return string(st.bytes(st.t, a, n))
}

// freePort is a host TCP or UDP port on 127.0.0.1 free a moment ago.
func freePort(t *testing.T, udp bool) uint16 {
	t.Helper()
	if udp {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return uint16(c.LocalAddr().(*net.UDPAddr).Port)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return uint16(l.Addr().(*net.TCPAddr).Port)
}

// TestSocketLoopback connects two guest sockets over the guest's own
// loopback, in both families, and checks what each sees of the other.
func TestSocketLoopback(t *testing.T) {
	st := newSockTest(t, HostNet{Outbound: netpolicy.OutboundNone})
	for _, c := range []struct {
		family int
		addr   func(uint16) []byte
		lo     string
	}{
		{unix.AF_INET, func(p uint16) []byte { return sin("127.0.0.1", p) }, "127.0.0.1"},
		{unix.AF_INET6, func(p uint16) []byte { return sin6("::1", p) }, "::1"},
		{unix.AF_INET6, func(p uint16) []byte { return sin6("::", p) }, "::ffff:127.0.0.1"}, // Go's net.Listen(":0")
	} {
		ln := st.socket(c.family, unix.SOCK_STREAM)
		a := c.addr(0)
		st.mustCall(t, unix.SYS_BIND, ln, st.buf(a), uint64(len(a)))
		st.mustCall(t, unix.SYS_LISTEN, ln, 16)
		port := st.name(ln, false).Port()
		if port < ephemeralFirst || port > ephemeralLast {
			t.Errorf("ephemeral guest port %d", port)
		}
		cl := st.socket(c.family, unix.SOCK_STREAM)
		to := c.addr(port)
		if c.lo == "::ffff:127.0.0.1" {
			to = sin6("::ffff:127.0.0.1", port)
		}
		st.mustCall(t, unix.SYS_CONNECT, cl, st.buf(to), uint64(len(to)))
		sa, sl := st.buf(make([]byte, 28)), st.buf(u32le(28))
		srv := st.mustCall(t, unix.SYS_ACCEPT4, ln, sa, sl, unix.SOCK_CLOEXEC)
		peer := decodeSockaddr(t, st.bytes(t, sa, uint64(st.u32(t, sl))))
		if local := st.name(cl, false); peer != local || local.Addr().String() != c.lo {
			t.Errorf("accept says the peer is %v; the client says it is %v (want address %s)", peer, local, c.lo)
		}
		if p := st.name(cl, true); p.Port() != port || p.Addr().String() != c.lo {
			t.Errorf("the client's peer %v, want %s port %d", p, c.lo, port)
		}
		st.write(cl, "ping")
		if got := st.read(srv, 16); got != "ping" {
			t.Errorf("server read %q", got)
		}
		st.write(srv, "pong")
		st.mustCall(t, unix.SYS_SHUTDOWN, srv, unix.SHUT_WR)
		if got := st.read(cl, 16); got != "pong" {
			t.Errorf("client read %q", got)
		}
		if got := st.read(cl, 16); got != "" {
			t.Errorf("after shutdown the client read %q, want end of file", got)
		}
		for _, fd := range []uint64{cl, srv, ln} {
			st.mustCall(t, unix.SYS_CLOSE, fd)
		}
		// The port is free again, and nobody is there.
		cl = st.socket(c.family, unix.SOCK_STREAM)
		if _, e := st.call(t, unix.SYS_CONNECT, cl, st.buf(to), uint64(len(to))); e != unix.ECONNREFUSED {
			t.Errorf("connect to a closed listener: %v", e)
		}
		st.mustCall(t, unix.SYS_CLOSE, cl)
	}
}

// TestSocketClosedBeforeAccept: a guest client that connects, writes and
// closes before the server accepts is still accepted, with its data.
func TestSocketClosedBeforeAccept(t *testing.T) {
	st := newSockTest(t, HostNet{})
	ln := st.socket(unix.AF_INET, unix.SOCK_STREAM)
	st.mustCall(t, unix.SYS_BIND, ln, st.buf(sin("127.0.0.1", 0)), 16)
	st.mustCall(t, unix.SYS_LISTEN, ln, 16)
	port := st.name(ln, false).Port()
	cl := st.socket(unix.AF_INET, unix.SOCK_STREAM)
	st.mustCall(t, unix.SYS_CONNECT, cl, st.buf(sin("127.0.0.1", port)), 16)
	want := st.name(cl, false)
	st.write(cl, "last words")
	st.mustCall(t, unix.SYS_CLOSE, cl)
	sa, sl := st.buf(make([]byte, 16)), st.buf(u32le(16))
	srv := st.mustCall(t, unix.SYS_ACCEPT4, ln, sa, sl, 0)
	if got := decodeSockaddr(t, st.bytes(t, sa, 16)); got != want {
		t.Errorf("peer %v, want %v", got, want)
	}
	if got := st.read(srv, 64); got != "last words" {
		t.Errorf("read %q", got)
	}
	if got := st.read(srv, 64); got != "" {
		t.Errorf("then %q, want end of file", got)
	}
}

// TestSocketLoopbackPrivate connects to a guest-loopback listener's host
// socket from the host: the monitor closes the connection, and the guest
// never sees it.
func TestSocketLoopbackPrivate(t *testing.T) {
	st := newSockTest(t, HostNet{})
	ln := st.socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK)
	a := sin("127.0.0.1", 0)
	st.mustCall(t, unix.SYS_BIND, ln, st.buf(a), 16)
	st.mustCall(t, unix.SYS_LISTEN, ln, 16)
	st.net.mu.Lock()
	var host netip.AddrPort
	for _, s := range st.net.ports {
		host = s.hostAddr
	}
	st.net.mu.Unlock()
	c, err := net.Dial("tcp", host.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("intruder"))
	if _, e := st.call(t, unix.SYS_ACCEPT4, ln, 0, 0, 0); e != unix.EAGAIN {
		t.Errorf("the guest's accept after a host process connected: %v, want EAGAIN", e)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err == nil {
		t.Errorf("the host process read %d bytes from the guest's listener", n)
	}
}

// TestSocketForward binds a forwarded port, takes a connection from the
// host through it, and gives the port back when the socket closes.
func TestSocketForward(t *testing.T) {
	hostPort := freePort(t, false)
	fwd, err := netpolicy.ParseForward(strconv.Itoa(int(hostPort)) + ":80")
	if err != nil {
		t.Fatal(err)
	}
	st := newSockTest(t, HostNet{Forwards: []netpolicy.Forward{fwd}, Outbound: netpolicy.OutboundNone})
	// Reserved before the guest binds: no host process can take it.
	if l, err := net.Listen("tcp", fwd.HostAddr); err == nil {
		l.Close()
		t.Errorf("the forward's host port was free before the guest bound it")
	}
	runErrCases(t, st.testVM, []errCase{
		{"bind an unforwarded port", unix.SYS_BIND, []uint64{st.socket(unix.AF_INET, unix.SOCK_STREAM), st.buf(sin("0.0.0.0", 81)), 16}, unix.EACCES},
		{"bind a forwarded UDP port that is TCP", unix.SYS_BIND, []uint64{st.socket(unix.AF_INET, unix.SOCK_DGRAM), st.buf(sin("0.0.0.0", 80)), 16}, unix.EACCES},
		{"bind another machine's address", unix.SYS_BIND, []uint64{st.socket(unix.AF_INET, unix.SOCK_STREAM), st.buf(sin("192.0.2.1", 0)), 16}, unix.EADDRNOTAVAIL},
	})
	for round := 0; round < 2; round++ {
		ln := st.socket(unix.AF_INET6, unix.SOCK_STREAM)
		st.mustCall(t, unix.SYS_BIND, ln, st.buf(sin6("::", 80)), 28)
		st.mustCall(t, unix.SYS_LISTEN, ln, 16)
		if _, e := st.call(t, unix.SYS_BIND, st.socket(unix.AF_INET, unix.SOCK_STREAM), st.buf(sin("0.0.0.0", 80)), 16); e != unix.EADDRINUSE {
			t.Errorf("a second bind of the forwarded port: %v", e)
		}
		c, err := net.Dial("tcp", fwd.HostAddr)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		sa, sl := st.buf(make([]byte, 28)), st.buf(u32le(28))
		srv := st.mustCall(t, unix.SYS_ACCEPT4, ln, sa, sl, 0)
		peer := decodeSockaddr(t, st.bytes(t, sa, 28))
		if peer.Addr() != netip.MustParseAddr("::ffff:10.0.2.2") || int(peer.Port()) != c.LocalAddr().(*net.TCPAddr).Port {
			t.Errorf("a host client on the loopback is %v to the guest, want 10.0.2.2 and its port", peer)
		}
		if local := st.name(srv, false); local.String() != "[::ffff:10.0.2.15]:80" {
			t.Errorf("the connection's own address %v", local)
		}
		c.Write([]byte("GET"))
		if got := st.read(srv, 16); got != "GET" {
			t.Errorf("read %q", got)
		}
		c.Close()
		st.mustCall(t, unix.SYS_CLOSE, srv)
		st.mustCall(t, unix.SYS_CLOSE, ln)
	}
	if l, err := net.Listen("tcp", fwd.HostAddr); err == nil {
		l.Close()
		t.Errorf("the forward's host port was not reserved again after the guest closed it")
	}
}

// TestSocketListenAny checks HostNet.ListenAny: the guest binds any port
// beyond its loopback, taken at the host's unspecified address, twice
// over (a closed socket's port is free again, with no reservation).
func TestSocketListenAny(t *testing.T) {
	st := newSockTest(t, HostNet{ListenAny: true, Outbound: netpolicy.OutboundNone})
	for round := 0; round < 2; round++ {
		port := freePort(t, false)
		ln := st.socket(unix.AF_INET, unix.SOCK_STREAM)
		st.mustCall(t, unix.SYS_BIND, ln, st.buf(sin("0.0.0.0", port)), 16)
		st.mustCall(t, unix.SYS_LISTEN, ln, 16)
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			t.Fatalf("round %d: a host client: %v", round, err)
		}
		srv := st.mustCall(t, unix.SYS_ACCEPT4, ln, 0, 0, 0)
		c.Write([]byte("hi"))
		if got := st.read(srv, 16); got != "hi" {
			t.Errorf("read %q", got)
		}
		c.Close()
		st.mustCall(t, unix.SYS_CLOSE, srv)
		st.mustCall(t, unix.SYS_CLOSE, ln)
		if l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err != nil {
			t.Errorf("round %d: the port after the guest closed it: %v", round, err)
		} else {
			l.Close()
		}
	}
}

// TestSocketOutbound reaches a host server through the gateway address,
// and checks that each policy refuses at once what it refuses.
func TestSocketOutbound(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := uint16(l.Addr().(*net.TCPAddr).Port)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("hello from the host"))
			c.Close()
		}
	}()
	for _, c := range []struct {
		o    netpolicy.Outbound
		dst  []byte
		want unix.Errno
	}{
		{netpolicy.OutboundAll, sin("10.0.2.2", port), 0},
		{netpolicy.OutboundNoLoopback, sin("10.0.2.2", port), unix.EACCES},
		{netpolicy.OutboundNone, sin("10.0.2.2", port), unix.EACCES},
		{netpolicy.OutboundNone, sin("192.0.2.1", 80), unix.EACCES},
		{netpolicy.OutboundAll, sin("127.0.0.1", port), unix.ECONNREFUSED}, // the guest's own loopback: nobody there
	} {
		st := newSockTest(t, HostNet{Outbound: c.o})
		fd := st.socket(unix.AF_INET, unix.SOCK_STREAM)
		start := time.Now()
		_, e := st.call(t, unix.SYS_CONNECT, fd, st.buf(c.dst), 16)
		if e != c.want {
			t.Errorf("outbound=%v, connect %v: %v, want %v", c.o, decodeSockaddr(t, c.dst), e, c.want)
		}
		if e != 0 {
			if d := time.Since(start); d > time.Second {
				t.Errorf("outbound=%v: the refusal took %v", c.o, d)
			}
			continue
		}
		if got := st.read(fd, 64); got != "hello from the host" {
			t.Errorf("read %q", got)
		}
		if p := st.name(fd, true); p != netip.MustParseAddrPort("10.0.2.2:"+strconv.Itoa(int(port))) {
			t.Errorf("peer %v", p)
		}
		if n := st.name(fd, false); n.Addr() != netpolicy.Guest.Addr() {
			t.Errorf("own address %v", n)
		}
	}
}

// TestSocketUDP sends datagrams between two guest sockets, to a host
// server through the gateway and to the resolver, and checks that a host
// process cannot send to a guest socket that never sent to it.
func TestSocketUDP(t *testing.T) {
	host, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	hp := uint16(host.LocalAddr().(*net.UDPAddr).Port)
	dns, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer dns.Close()
	st := newSockTest(t, HostNet{Resolver: netip.MustParseAddrPort(dns.LocalAddr().String())})

	a, b := st.socket(unix.AF_INET, unix.SOCK_DGRAM), st.socket(unix.AF_INET6, unix.SOCK_DGRAM)
	st.mustCall(t, unix.SYS_BIND, a, st.buf(sin("127.0.0.1", 5353)), 16)
	msg := "datagram"
	st.mustCall(t, unix.SYS_SENDTO, b, st.buf([]byte(msg)), uint64(len(msg)), 0, st.buf(sin6("::ffff:127.0.0.1", 5353)), 28)
	from, fl := st.buf(make([]byte, 28)), st.buf(u32le(28))
	rb := st.buf(make([]byte, 64))
	n := st.mustCall(t, unix.SYS_RECVFROM, a, rb, 64, 0, from, fl)
	src := decodeSockaddr(t, st.bytes(t, from, uint64(st.u32(t, fl))))
	if string(st.bytes(t, rb, n)) != msg || src != unmap(st.name(b, false)) || src.Addr() != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("received %q from %v; the sender is %v", st.bytes(t, rb, n), src, st.name(b, false))
	}
	// A datagram to a guest port nobody holds is dropped, as on Linux.
	st.mustCall(t, unix.SYS_SENDTO, b, st.buf([]byte("x")), 1, 0, st.buf(sin6("::1", 9)), 28)
	// An IPv6 UDP socket also sends to an IPv4 address given as
	// AF_INET, as Linux's udpv6_sendmsg allows (x/net's sendmmsg does);
	// with IPV6_V6ONLY, ENETUNREACH. A TCP or IPv4 socket refuses the
	// other family.
	st.mustCall(t, unix.SYS_SENDTO, b, st.buf([]byte("as inet")), 7, 0, st.buf(sin("127.0.0.1", 5353)), 16)
	n = st.mustCall(t, unix.SYS_RECVFROM, a, rb, 64, 0, 0, 0)
	if got := string(st.bytes(t, rb, n)); got != "as inet" {
		t.Errorf("AF_INET destination on an AF_INET6 socket: received %q", got)
	}
	v6only := st.socket(unix.AF_INET6, unix.SOCK_DGRAM)
	st.mustCall(t, unix.SYS_SETSOCKOPT, v6only, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, st.buf(u32le(1)), 4)
	if _, e := st.call(t, unix.SYS_SENDTO, v6only, st.buf([]byte("x")), 1, 0, st.buf(sin("127.0.0.1", 5353)), 16); e != unix.ENETUNREACH {
		t.Errorf("AF_INET destination on an IPv6-only socket: %v, want ENETUNREACH", e)
	}
	if _, e := st.call(t, unix.SYS_SENDTO, a, st.buf([]byte("x")), 1, 0, st.buf(sin6("::1", 5353)), 28); e != unix.EAFNOSUPPORT {
		t.Errorf("AF_INET6 destination on an AF_INET socket: %v, want EAFNOSUPPORT", e)
	}

	// The host, through the gateway, and its reply.
	st.mustCall(t, unix.SYS_SENDTO, b, st.buf([]byte("to host")), 7, 0, st.buf(sin6("::ffff:10.0.2.2", hp)), 28)
	buf := make([]byte, 64)
	host.SetReadDeadline(time.Now().Add(5 * time.Second))
	hn, guestAddr, err := host.ReadFrom(buf)
	if err != nil || string(buf[:hn]) != "to host" {
		t.Fatalf("host read %q, %v", buf[:hn], err)
	}
	host.WriteTo([]byte("reply"), guestAddr)
	from, fl = st.buf(make([]byte, 28)), st.buf(u32le(28))
	n = st.mustCall(t, unix.SYS_RECVFROM, b, rb, 64, 0, from, fl)
	if src := decodeSockaddr(t, st.bytes(t, from, 28)); string(st.bytes(t, rb, n)) != "reply" || src != netip.MustParseAddrPort("[::ffff:10.0.2.2]:"+strconv.Itoa(int(hp))) {
		t.Errorf("reply %q from %v", st.bytes(t, rb, n), src)
	}

	// The resolver.
	q := st.socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK)
	st.mustCall(t, unix.SYS_CONNECT, q, st.buf(sin("10.0.2.3", 53)), 16)
	st.write(q, "query")
	dns.SetReadDeadline(time.Now().Add(5 * time.Second))
	dn, qa, err := dns.ReadFrom(buf)
	if err != nil || string(buf[:dn]) != "query" {
		t.Fatalf("resolver read %q, %v", buf[:dn], err)
	}
	dns.WriteTo([]byte("answer"), qa)
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, e := st.call(t, unix.SYS_RECVFROM, q, rb, 64, 0, from, fl)
		if e == unix.EAGAIN && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
			continue
		}
		if e != 0 || string(st.bytes(t, rb, n)) != "answer" {
			t.Fatalf("resolver answer %q, %v", st.bytes(t, rb, n), e)
		}
		break
	}
	if p := st.name(q, true); p != netip.MustParseAddrPort("10.0.2.3:53") {
		t.Errorf("the resolver is %v to the guest", p)
	}

	// A host process sending to the guest's loopback socket's host port:
	// dropped.
	st.net.mu.Lock()
	ha := st.net.ports[portKey{true, 5353}].hostAddr
	st.net.mu.Unlock()
	intruder, err := net.Dial("udp", ha.String())
	if err != nil {
		t.Fatal(err)
	}
	intruder.Write([]byte("spoof"))
	intruder.Close()
	time.Sleep(50 * time.Millisecond)
	if _, e := st.call(t, unix.SYS_RECVFROM, a, rb, 64, unix.MSG_DONTWAIT, 0, 0); e != unix.EAGAIN {
		t.Errorf("a host process's datagram reached the guest's loopback socket: %v", e)
	}
}

// TestSocketHostile makes every socket call with bad pointers, lengths,
// families and options: errors, no crash, and no host socket listening
// outside the host's loopback.
func TestSocketHostile(t *testing.T) {
	before := hostListeners(t)
	st := newSockTest(t, HostNet{Outbound: netpolicy.OutboundNone})
	tcp := st.socket(unix.AF_INET, unix.SOCK_STREAM)
	udp := st.socket(unix.AF_INET, unix.SOCK_DGRAM)
	v6 := st.socket(unix.AF_INET6, unix.SOCK_STREAM)
	pipe := st.buf(make([]byte, 8))
	st.mustCall(t, unix.SYS_PIPE2, pipe, 0)
	notSock := uint64(st.u32(t, pipe))
	good, goodLen := st.buf(sin("127.0.0.1", 0)), uint64(16)
	neg := st.buf(u32le(0xffffffff))
	l32 := st.buf(u32le(32))
	opt := st.buf(u32le(1))
	runErrCases(t, st.testVM, []errCase{
		{"socket AF_UNIX", unix.SYS_SOCKET, []uint64{unix.AF_UNIX, unix.SOCK_STREAM, 0}, unix.EAFNOSUPPORT},
		{"socket AF_NETLINK", unix.SYS_SOCKET, []uint64{unix.AF_NETLINK, unix.SOCK_RAW, 0}, unix.EAFNOSUPPORT},
		{"socket AF_PACKET", unix.SYS_SOCKET, []uint64{unix.AF_PACKET, unix.SOCK_RAW, 0}, unix.EAFNOSUPPORT},
		{"socket raw", unix.SYS_SOCKET, []uint64{unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_ICMP}, unix.EPERM},
		{"socket TCP over datagrams", unix.SYS_SOCKET, []uint64{unix.AF_INET, unix.SOCK_DGRAM, unix.IPPROTO_TCP}, unix.EPROTONOSUPPORT},
		{"socket seqpacket", unix.SYS_SOCKET, []uint64{unix.AF_INET, unix.SOCK_SEQPACKET, 0}, unix.ESOCKTNOSUPPORT},
		{"socket bad flags", unix.SYS_SOCKET, []uint64{unix.AF_INET, unix.SOCK_STREAM | 0x1000, 0}, unix.EINVAL},
		{"socketpair", unix.SYS_SOCKETPAIR, []uint64{unix.AF_UNIX, unix.SOCK_STREAM, 0, pipe}, unix.EAFNOSUPPORT},
		{"bind wild", unix.SYS_BIND, []uint64{tcp, wild, 16}, unix.EFAULT},
		{"bind short", unix.SYS_BIND, []uint64{tcp, good, 8}, unix.EINVAL},
		{"bind huge length", unix.SYS_BIND, []uint64{tcp, good, 1 << 20}, unix.EINVAL},
		{"bind negative length", unix.SYS_BIND, []uint64{tcp, good, 0xffffffff}, unix.EINVAL},
		{"bind IPv6 address on IPv4", unix.SYS_BIND, []uint64{tcp, st.buf(sin6("::1", 0)), 28}, unix.EAFNOSUPPORT},
		{"bind IPv4 address on IPv6", unix.SYS_BIND, []uint64{v6, good, goodLen}, unix.EAFNOSUPPORT},
		{"bind AF_UNSPEC", unix.SYS_BIND, []uint64{tcp, st.buf(make([]byte, 16)), 16}, unix.EAFNOSUPPORT},
		{"bind a pipe", unix.SYS_BIND, []uint64{notSock, good, goodLen}, unix.ENOTSOCK},
		{"bind a bad descriptor", unix.SYS_BIND, []uint64{999, good, goodLen}, unix.EBADF},
		{"connect wild", unix.SYS_CONNECT, []uint64{tcp, wild, 16}, unix.EFAULT},
		{"connect outside, policy none", unix.SYS_CONNECT, []uint64{tcp, st.buf(sin("192.0.2.1", 80)), 16}, unix.EACCES},
		{"listen UDP", unix.SYS_LISTEN, []uint64{udp, 5}, unix.EOPNOTSUPP},
		{"accept UDP", unix.SYS_ACCEPT4, []uint64{udp, 0, 0, 0}, unix.EOPNOTSUPP},
		{"accept bad flags", unix.SYS_ACCEPT4, []uint64{tcp, 0, 0, 0x10}, unix.EINVAL},
		{"accept wild length", unix.SYS_ACCEPT4, []uint64{tcp, good, wild, 0}, unix.EFAULT},
		{"getsockname wild", unix.SYS_GETSOCKNAME, []uint64{tcp, wild, l32}, unix.EFAULT},
		{"getsockname wild length", unix.SYS_GETSOCKNAME, []uint64{tcp, good, wild}, unix.EFAULT},
		{"getsockname null", unix.SYS_GETSOCKNAME, []uint64{tcp, 0, l32}, unix.EFAULT},
		{"getsockname negative length", unix.SYS_GETSOCKNAME, []uint64{tcp, good, neg}, unix.EINVAL},
		{"getpeername unconnected", unix.SYS_GETPEERNAME, []uint64{tcp, good, l32}, unix.ENOTCONN},
		{"sendto wild buffer", unix.SYS_SENDTO, []uint64{udp, wild, 10, 0, good, goodLen}, unix.EFAULT},
		{"sendto wild address", unix.SYS_SENDTO, []uint64{udp, good, 1, 0, wild, 16}, unix.EFAULT},
		{"sendto unknown flag", unix.SYS_SENDTO, []uint64{udp, good, 1, 0x80000000, 0, 0}, unix.EOPNOTSUPP},
		{"recvfrom wild buffer", unix.SYS_RECVFROM, []uint64{udp, wild, 10, unix.MSG_DONTWAIT, 0, 0}, unix.EFAULT},
		{"recvfrom wild length", unix.SYS_RECVFROM, []uint64{udp, good, 10, unix.MSG_DONTWAIT, good, wild}, unix.EFAULT},
		{"recvfrom nothing", unix.SYS_RECVFROM, []uint64{udp, good, 10, unix.MSG_DONTWAIT, 0, 0}, unix.EAGAIN},
		{"recvfrom MSG_ERRQUEUE", unix.SYS_RECVFROM, []uint64{udp, good, 10, unix.MSG_ERRQUEUE, 0, 0}, unix.EOPNOTSUPP},
		{"sendmsg wild", unix.SYS_SENDMSG, []uint64{udp, wild, 0}, unix.EFAULT},
		{"sendmsg control", unix.SYS_SENDMSG, []uint64{udp, st.buf(msghdrBytes(0, 0, 0, 0, good, 16)), 0}, unix.EINVAL},
		{"sendmsg wild iovec", unix.SYS_SENDMSG, []uint64{udp, st.buf(msghdrBytes(good, 16, wild, 1, 0, 0)), 0}, unix.EFAULT},
		{"recvmsg wild", unix.SYS_RECVMSG, []uint64{udp, wild, 0}, unix.EFAULT},
		{"recvmmsg wild", unix.SYS_RECVMMSG, []uint64{udp, wild, 2, 0, 0}, unix.EFAULT},
		{"sendmmsg a pipe", unix.SYS_SENDMMSG, []uint64{notSock, good, 1, 0}, unix.ENOTSOCK},
		{"setsockopt unknown", unix.SYS_SETSOCKOPT, []uint64{tcp, unix.SOL_SOCKET, unix.SO_BINDTODEVICE, opt, 4}, unix.ENOPROTOOPT},
		{"setsockopt multicast", unix.SYS_SETSOCKOPT, []uint64{udp, unix.IPPROTO_IP, unix.IP_ADD_MEMBERSHIP, opt, 4}, unix.ENOPROTOOPT},
		{"setsockopt wild", unix.SYS_SETSOCKOPT, []uint64{tcp, unix.IPPROTO_TCP, unix.TCP_NODELAY, wild, 4}, unix.EFAULT},
		{"setsockopt huge", unix.SYS_SETSOCKOPT, []uint64{tcp, unix.IPPROTO_TCP, unix.TCP_NODELAY, opt, 1 << 20}, unix.EINVAL},
		{"setsockopt TCP on UDP", unix.SYS_SETSOCKOPT, []uint64{udp, unix.IPPROTO_TCP, unix.TCP_NODELAY, opt, 4}, unix.EOPNOTSUPP},
		{"setsockopt IPv6 on IPv4", unix.SYS_SETSOCKOPT, []uint64{tcp, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, opt, 4}, unix.ENOPROTOOPT},
		{"getsockopt negative length", unix.SYS_GETSOCKOPT, []uint64{tcp, unix.SOL_SOCKET, unix.SO_ERROR, opt, neg}, unix.EINVAL},
		{"getsockopt wild", unix.SYS_GETSOCKOPT, []uint64{tcp, unix.SOL_SOCKET, unix.SO_ERROR, wild, l32}, unix.EFAULT},
		{"shutdown bad how", unix.SYS_SHUTDOWN, []uint64{tcp, 7}, unix.EINVAL},
		{"shutdown unconnected", unix.SYS_SHUTDOWN, []uint64{tcp, unix.SHUT_RDWR}, unix.ENOTCONN},
		{"ioctl FIONREAD wild", unix.SYS_IOCTL, []uint64{udp, unix.SIOCINQ, wild}, unix.EFAULT},
		{"ioctl a terminal's", unix.SYS_IOCTL, []uint64{udp, unix.TCGETS, good}, unix.ENOTTY},
	})
	// What works: options, FIONREAD, IPV6_V6ONLY kept for the guest.
	st.mustCall(t, unix.SYS_SETSOCKOPT, tcp, unix.IPPROTO_TCP, unix.TCP_NODELAY, opt, 4)
	st.mustCall(t, unix.SYS_SETSOCKOPT, v6, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, opt, 4)
	val, vl := st.buf(make([]byte, 4)), st.buf(u32le(4))
	st.mustCall(t, unix.SYS_GETSOCKOPT, v6, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, val, vl)
	if st.u32(t, val) != 1 {
		t.Error("IPV6_V6ONLY did not read back")
	}
	st.mustCall(t, unix.SYS_GETSOCKOPT, tcp, unix.SOL_SOCKET, unix.SO_TYPE, val, vl)
	if st.u32(t, val) != unix.SOCK_STREAM {
		t.Errorf("SO_TYPE %d", st.u32(t, val))
	}
	st.mustCall(t, unix.SYS_IOCTL, udp, unix.SIOCINQ, val)
	// A guest-loopback listener and a closed socket leave nothing
	// listening beyond the host's loopback.
	st.mustCall(t, unix.SYS_BIND, tcp, good, goodLen)
	st.mustCall(t, unix.SYS_LISTEN, tcp, 1)
	for l := range hostListeners(t) {
		if !before[l] && !strings.HasPrefix(l, "127.0.0.1:") {
			t.Errorf("a host socket listens at %s", l)
		}
	}
}

// msghdrBytes builds a struct msghdr.
func msghdrBytes(name, namelen, iov, iovlen, control, controllen uint64) []byte {
	b := make([]byte, msghdrSize)
	le := binary.LittleEndian
	le.PutUint64(b[msgNameOff:], name)
	le.PutUint32(b[msgNamelenOff:], uint32(namelen))
	le.PutUint64(b[msgIovOff:], iov)
	le.PutUint64(b[msgIovlenOff:], iovlen)
	le.PutUint64(b[msgControlOff:], control)
	le.PutUint64(b[msgControllenOff:], controllen)
	return b
}

// hostListeners lists the TCP sockets this process has listening, as
// ADDR:PORT, from /proc/net/tcp and tcp6.
func hostListeners(t *testing.T) map[string]bool {
	t.Helper()
	inodes := map[string]bool{}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	out := map[string]bool{}
	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(file)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // the header
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 || fields[3] != "0A" || !inodes[fields[9]] { // 0A: TCP_LISTEN
				continue
			}
			out[procAddr(fields[1])] = true
		}
		f.Close()
	}
	return out
}

// procAddr decodes /proc/net/tcp's HEXADDR:HEXPORT.
func procAddr(s string) string {
	h, p, _ := strings.Cut(s, ":")
	raw, _ := hex.DecodeString(h)
	port, _ := strconv.ParseUint(p, 16, 16)
	for i := 0; i+4 <= len(raw); i += 4 { // each 32-bit word is host-endian
		raw[i], raw[i+1], raw[i+2], raw[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
	}
	a, _ := netip.AddrFromSlice(raw)
	return netip.AddrPortFrom(a.Unmap(), uint16(port)).String()
}

// TestSocketRaces closes, dups and re-binds sockets in one thread while
// another accepts, receives and sends on them: every call ends with a
// result or an error, the monitor keeps its state (run with -race), and
// no host descriptor outlives the VM.
func TestSocketRaces(t *testing.T) {
	before := hostFDs(t)
	func() {
		st := newSockTest(t, HostNet{Outbound: netpolicy.OutboundNone})
		other := st.thread(int(st.mustCall(t, unix.SYS_CLONE, cloneThreadFlags, 0, 0, 0, 0)))
		scratch := st.buf(make([]byte, 4096))
		addrBuf, addrLen := st.buf(make([]byte, 28)), st.buf(u32le(28))
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := uint64(0); ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				fd := 3 + i%8
				switch i % 4 {
				case 0:
					st.sys(other, unix.SYS_ACCEPT4, fd, 0, 0, unix.SOCK_NONBLOCK)
				case 1:
					st.sys(other, unix.SYS_RECVFROM, fd, scratch, 64, unix.MSG_DONTWAIT, addrBuf, addrLen)
				case 2:
					st.sys(other, unix.SYS_SENDTO, fd, scratch, 8, unix.MSG_DONTWAIT, st.at(64<<10), 16)
				case 3:
					st.sys(other, unix.SYS_GETSOCKNAME, fd, addrBuf, addrLen)
				}
			}
		}()
		lo := sin("127.0.0.1", 0)
		for i := 0; i < 300; i++ {
			typ := []int{unix.SOCK_STREAM, unix.SOCK_DGRAM}[i%2]
			fd := st.socket(unix.AF_INET, typ|unix.SOCK_NONBLOCK)
			st.call(t, unix.SYS_BIND, fd, st.buf(lo), 16)
			if typ == unix.SOCK_STREAM {
				st.call(t, unix.SYS_LISTEN, fd, 4)
				port := st.name(fd, false).Port()
				c := st.socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK)
				st.call(t, unix.SYS_CONNECT, c, st.buf(sin("127.0.0.1", port)), 16)
			}
			st.call(t, unix.SYS_DUP, fd)
			if i%3 == 0 {
				st.call(t, unix.SYS_CLOSE, fd)
			}
			if i%10 == 9 {
				for fd := uint64(3); fd < 64; fd++ {
					st.call(t, unix.SYS_CLOSE, fd)
				}
			}
		}
		close(stop)
		<-done
		st.close()
	}()
	if leaked := newFDs(t, before); len(leaked) > 0 {
		t.Errorf("host descriptors left after the VM closed: %v", leaked)
	}
}

// TestSocketReviewCases covers what an independent review found: short
// addresses, families that cannot meet, SO_LINGER, datagrams from host
// sockets that share a guest TCP socket's port, connections never made,
// and replies from a forwarded UDP port under outbound=none.
func TestSocketReviewCases(t *testing.T) {
	udpPort := freePort(t, true)
	fwd, err := netpolicy.ParseForward(strconv.Itoa(int(udpPort)) + ":53/udp")
	if err != nil {
		t.Fatal(err)
	}
	st := newSockTest(t, HostNet{Outbound: netpolicy.OutboundNone, Forwards: []netpolicy.Forward{fwd}})
	tcp, udp := st.socket(unix.AF_INET, unix.SOCK_STREAM), st.socket(unix.AF_INET, unix.SOCK_DGRAM)
	good := st.buf(sin("127.0.0.1", 9))
	runErrCases(t, st.testVM, []errCase{
		{"bind length 2", unix.SYS_BIND, []uint64{tcp, good, 2}, unix.EINVAL},
		{"connect length 3", unix.SYS_CONNECT, []uint64{tcp, good, 3}, unix.EINVAL},
		{"sendto length 2", unix.SYS_SENDTO, []uint64{udp, good, 1, 0, good, 2}, unix.EINVAL},
		{"sendmsg length 3", unix.SYS_SENDMSG, []uint64{udp, st.buf(msghdrBytes(good, 3, 0, 0, 0, 0)), 0}, unix.EINVAL},
	})

	// An IPv6 client bound to ::1 cannot reach an IPv4 listener.
	ln := st.socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK)
	st.mustCall(t, unix.SYS_BIND, ln, st.buf(sin("127.0.0.1", 0)), 16)
	st.mustCall(t, unix.SYS_LISTEN, ln, 0)
	port := st.name(ln, false).Port()
	v6 := st.socket(unix.AF_INET6, unix.SOCK_STREAM)
	st.mustCall(t, unix.SYS_BIND, v6, st.buf(sin6("::1", 0)), 28)
	if _, e := st.call(t, unix.SYS_CONNECT, v6, st.buf(sin6("::ffff:127.0.0.1", port)), 28); e != unix.ENETUNREACH {
		t.Errorf("IPv6-bound client to an IPv4 listener: %v", e)
	}
	u6 := st.socket(unix.AF_INET6, unix.SOCK_DGRAM)
	st.mustCall(t, unix.SYS_BIND, u6, st.buf(sin6("::1", 0)), 28)
	if _, e := st.call(t, unix.SYS_SENDTO, u6, good, 1, 0, st.buf(sin6("::ffff:127.0.0.1", 9)), 28); e != unix.ENETUNREACH {
		t.Errorf("IPv6-bound UDP socket to an IPv4 address: %v", e)
	}

	// SO_LINGER is the guest's: close does not wait on a host socket
	// with unsent data, and the value reads back.
	cl := st.socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK)
	st.call(t, unix.SYS_CONNECT, cl, st.buf(sin("127.0.0.1", port)), 16)
	big := st.buf(make([]byte, 1<<20))
	for i := 0; i < 64; i++ {
		if _, e := st.call(t, unix.SYS_WRITE, cl, big, 1<<20); e != 0 {
			break
		}
	}
	linger := st.buf(u64s(1 | 0x7fffffff<<32)[:8])
	st.mustCall(t, unix.SYS_SETSOCKOPT, cl, unix.SOL_SOCKET, unix.SO_LINGER, linger, 8)
	val, vl := st.buf(make([]byte, 8)), st.buf(u32le(8))
	st.mustCall(t, unix.SYS_GETSOCKOPT, cl, unix.SOL_SOCKET, unix.SO_LINGER, val, vl)
	if got := st.bytes(t, val, 8); binary.LittleEndian.Uint32(got) != 1 || binary.LittleEndian.Uint32(got[4:]) != 0x7fffffff {
		t.Errorf("SO_LINGER read back % x", got)
	}
	begin := time.Now()
	st.mustCall(t, unix.SYS_CLOSE, cl)
	if d := time.Since(begin); d > time.Second {
		t.Errorf("close with SO_LINGER waited %v", d)
	}

	// Connections never made leave no expectation behind.
	for i := 0; i < 4; i++ {
		c := st.socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK)
		st.call(t, unix.SYS_CONNECT, c, st.buf(sin("127.0.0.1", port)), 16)
		st.mustCall(t, unix.SYS_CLOSE, c)
	}
	time.Sleep(50 * time.Millisecond)
	lnFile := st.socketAt(ln)
	for {
		fd, e := st.call(t, unix.SYS_ACCEPT4, ln, 0, 0, unix.SOCK_NONBLOCK)
		if e != 0 {
			break
		}
		st.mustCall(t, unix.SYS_CLOSE, fd)
	}
	st.net.mu.Lock()
	left := len(lnFile.pending)
	st.net.mu.Unlock()
	if left != 0 {
		t.Errorf("%d expectations left for connections never made", left)
	}

	// A host UDP socket at a guest TCP socket's host port is no guest.
	st.net.mu.Lock()
	hostPort := lnFile.hostAddr.Port()
	st.net.mu.Unlock()
	spoof, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(int(hostPort)))
	if err == nil {
		rcv := st.socket(unix.AF_INET, unix.SOCK_DGRAM)
		st.mustCall(t, unix.SYS_BIND, rcv, st.buf(sin("127.0.0.1", 7000)), 16)
		st.net.mu.Lock()
		to := st.net.ports[portKey{true, 7000}]
		st.mustBindHost(to)
		dst := net.UDPAddrFromAddrPort(to.hostAddr)
		st.net.mu.Unlock()
		spoof.WriteTo([]byte("spoof"), dst)
		spoof.Close()
		time.Sleep(50 * time.Millisecond)
		if _, e := st.call(t, unix.SYS_RECVFROM, rcv, good, 8, unix.MSG_DONTWAIT, 0, 0); e != unix.EAGAIN {
			t.Errorf("a datagram from a host socket at a guest TCP port reached the guest: %v", e)
		}
	}

	// A forwarded UDP port answers its clients under outbound=none.
	srv := st.socket(unix.AF_INET, unix.SOCK_DGRAM)
	st.mustCall(t, unix.SYS_BIND, srv, st.buf(sin("0.0.0.0", 53)), 16)
	c, err := net.Dial("udp", fwd.HostAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("query"))
	from, fl := st.buf(make([]byte, 16)), st.buf(u32le(16))
	rb := st.buf(make([]byte, 64))
	st.mustCall(t, unix.SYS_RECVFROM, srv, rb, 64, 0, from, fl)
	if _, e := st.call(t, unix.SYS_SENDTO, srv, st.buf([]byte("answer")), 6, 0, from, 16); e != 0 {
		t.Fatalf("reply to a forward's client: %v", e)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 16)
	if n, err := c.Read(buf); err != nil || string(buf[:n]) != "answer" {
		t.Errorf("the client read %q, %v", buf[:n], err)
	}
	if _, e := st.call(t, unix.SYS_SENDTO, srv, rb, 1, 0, st.buf(sin("192.0.2.1", 53)), 16); e != unix.EACCES {
		t.Errorf("a forward's socket to an address that never wrote: %v", e)
	}
}

// socketAt returns the socket behind guest fd.
func (st *sockTest) socketAt(fd uint64) *socket {
	f, ok := st.fds.acquire(fd)
	if !ok {
		st.t.Fatalf("no descriptor %d", fd)
	}
	defer f.release()
	return f.file.(*socket)
}

// mustBindHost binds a guest socket's host socket. Called with mu.
func (st *sockTest) mustBindHost(s *socket) {
	if !s.hostAddr.IsValid() {
		if e := s.bindHost(netip.Addr{}); e != 0 {
			st.t.Fatal(e)
		}
	}
}

// TestSocketIPv6Host: host addresses an IPv4 socket cannot take — an
// IPv6 resolver, an IPv6 forward — are refused, not a crash.
func TestSocketIPv6Host(t *testing.T) {
	fwdPort := freePort(t, false)
	fwd, err := netpolicy.ParseForward("[::1]:" + strconv.Itoa(int(fwdPort)) + ":80")
	if err != nil {
		t.Fatal(err)
	}
	if l, err := net.Listen("tcp", fwd.HostAddr); err != nil {
		t.Skipf("no IPv6 loopback here: %v", err)
	} else {
		l.Close()
	}
	st := newSockTest(t, HostNet{Resolver: netip.MustParseAddrPort("[::1]:53"), Forwards: []netpolicy.Forward{fwd}})
	q := st.socket(unix.AF_INET, unix.SOCK_DGRAM)
	if _, e := st.call(t, unix.SYS_CONNECT, q, st.buf(sin("10.0.2.3", 53)), 16); e != unix.ENETUNREACH {
		t.Errorf("IPv4 socket to an IPv6 resolver: %v", e)
	}
	if _, e := st.call(t, unix.SYS_BIND, st.socket(unix.AF_INET, unix.SOCK_STREAM), st.buf(sin("0.0.0.0", 80)), 16); e != unix.EADDRNOTAVAIL {
		t.Errorf("IPv4 socket on an IPv6 forward: %v", e)
	}
	ln := st.socket(unix.AF_INET6, unix.SOCK_STREAM)
	st.mustCall(t, unix.SYS_BIND, ln, st.buf(sin6("::", 80)), 28)
	st.mustCall(t, unix.SYS_LISTEN, ln, 4)
	if _, e := st.call(t, unix.SYS_CONNECT, st.socket(unix.AF_INET, unix.SOCK_STREAM), st.buf(sin("127.0.0.1", 80)), 16); e != unix.ENETUNREACH {
		t.Errorf("IPv4 client to a listener on an IPv6 forward: %v", e)
	}
	c6 := st.socket(unix.AF_INET6, unix.SOCK_STREAM)
	st.mustCall(t, unix.SYS_CONNECT, c6, st.buf(sin6("::1", 80)), 28)
}
