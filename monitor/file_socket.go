package monitor

import (
	"net/netip"
	"sync"

	"golang.org/x/sys/unix"

	"atoll.dev/atoll/netpolicy"
)

// socket is a guest socket on the host network backend (hostnet.go): a
// host socket of the guest's family and type, non-blocking on the host
// (hostStream), and the guest's view of its addresses, kept here because
// the host's are not the guest's. Reads and writes of a connected socket
// go straight to the host socket.
type socket struct {
	*hostStream
	net    *hostNet
	family int // AF_INET or AF_INET6, the guest's and the host socket's
	udp    bool

	// recvMu makes a UDP receive and the dropping of a datagram the
	// socket must not see one step for the guest's threads.
	recvMu sync.Mutex

	// Guarded by net.mu. Addresses are kept with IPv4-mapped addresses
	// as IPv4, and given to the guest in its socket's family.
	local     netip.AddrPort // the guest's address; invalid until bound
	peer      netip.AddrPort // the guest's view of its peer; invalid until connected
	hostAddr  netip.AddrPort // the host socket's address, once the monitor bound it
	forward   netip.AddrPort // the host address of the forward it holds
	listening bool
	// pending maps the host address of each connection a guest socket
	// made to this listener to that socket's guest address, until the
	// listener accepts it or the client closes: the client may be gone
	// by the time the listener accepts. expectedBy is the listener a
	// client is expected by.
	pending    map[netip.AddrPort]netip.AddrPort
	expectedBy *socket
	// replies are the host addresses a UDP socket may exchange datagrams
	// with beyond the guest: those it sent to, and, for a forward's
	// socket, those that sent to it.
	replies   map[netip.AddrPort]bool
	v6only    bool // the guest's IPV6_V6ONLY; the host socket's is off
	reuseAddr bool // the guest's SO_REUSEADDR, SO_REUSEPORT: kept, not applied
	reusePort bool
	// linger is the guest's SO_LINGER, kept rather than applied: a host
	// close must never wait. Only an abortive close ({1, 0}) reaches
	// the host socket, when it closes.
	linger unix.Linger
}

var (
	_ reader   = (*socket)(nil)
	_ writer   = (*socket)(nil)
	_ flagged  = (*socket)(nil)
	_ pollable = (*socket)(nil)
)

// Bounds on what a socket remembers; past them the oldest are forgotten
// one at a time.
const (
	maxReplies = 1024    // addresses a UDP socket exchanges datagrams with
	maxPending = 1 << 16 // connections a listener expects
)

// remember adds k to m, making room in a map of at most max entries.
func remember[V any](m map[netip.AddrPort]V, k netip.AddrPort, v V, max int) map[netip.AddrPort]V {
	if m == nil {
		m = map[netip.AddrPort]V{}
	}
	if _, ok := m[k]; !ok && len(m) >= max {
		for old := range m {
			delete(m, old)
			break
		}
	}
	m[k] = v
	return m
}

// newSocket makes a guest socket of family (AF_INET, AF_INET6) and type.
func (n *hostNet) newSocket(family int, udp, nonblock bool) (*socket, unix.Errno) {
	fd, err := hostSocket(family == unix.AF_INET6, udp)
	if err != nil {
		return nil, errnoOf(err)
	}
	return n.wrap(fd, family, udp, nonblock), 0
}

func (n *hostNet) wrap(fd, family int, udp, nonblock bool) *socket {
	return &socket{hostStream: newHostStream(fd, nonblock), net: n, family: family, udp: udp}
}

func (s *socket) v6() bool { return s.family == unix.AF_INET6 }

// close gives back the guest port, the listener's expectation of it, and
// a forward's host port to its reservation. The host close never waits:
// the guest's SO_LINGER is not the host socket's.
func (s *socket) close() {
	n := s.net
	n.mu.Lock()
	if a := netip.AddrPortFrom(netpolicy.HostLoopback, s.hostAddr.Port()); s.udp && n.ours[a] == s {
		delete(n.ours, a)
	}
	if l := s.expectedBy; l != nil && !s.reachedListener() {
		delete(l.pending, s.hostAddr) // it never will
	}
	var fwd portKey
	k := portKey{s.udp, s.local.Port()}
	if s.local.IsValid() && n.ports[k] == s {
		delete(n.ports, k)
		if _, configured := n.forwards[k]; configured && s.forward.IsValid() {
			fwd = k // not a ListenAny port, which has no reservation
		}
	}
	abort := s.linger.Onoff != 0 && s.linger.Linger == 0
	n.mu.Unlock()
	if abort {
		unix.SetsockoptLinger(s.fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1})
	}
	s.hostStream.close()
	if fwd.port != 0 {
		n.mu.Lock()
		if err := n.reserve(fwd); err != nil {
			n.log.printf("port forward %s -> guest %s: cannot bind it again: %v", s.forward, fwd, err)
		}
		n.mu.Unlock()
	}
}

// reachedListener reports whether a TCP client's connection was made: it
// then waits in its listener's queue, to be accepted as the guest's even
// after the client closed. One never made (still SYN_SENT, or failed)
// never arrives.
func (s *socket) reachedListener() bool {
	info, err := unix.GetsockoptTCPInfo(s.fd, unix.IPPROTO_TCP, unix.TCP_INFO)
	return err == nil && info.State != tcpSynSent && info.State != tcpClose
}

// loopbackOf is the guest's loopback address in the family of a.
func loopbackOf(a netip.Addr) netip.Addr {
	if a.Unmap().Is6() {
		return netip.IPv6Loopback()
	}
	return netpolicy.HostLoopback // 127.0.0.1, the guest's too
}

// localView is the address the guest's other sockets see this one by.
// Called with mu.
func (s *socket) localView() netip.AddrPort {
	if s.local.Addr().IsUnspecified() {
		return netip.AddrPortFrom(netpolicy.HostLoopback, s.local.Port())
	}
	return s.local
}

// ipv6Only reports whether the socket speaks IPv6 only: by the guest's
// IPV6_V6ONLY, or by being bound to an IPv6 address. Called with mu.
func (s *socket) ipv6Only() bool {
	return s.v6() && (s.v6only || s.local.Addr().Is6() && !s.local.Addr().IsUnspecified())
}

// bind gives the socket guest address ap: on its loopback, anywhere; on
// its other addresses, only a forwarded port (EACCES) or an ephemeral
// one — or, with ListenAny, any port, at the host's unspecified address. A forwarded port's host socket takes the forward's host address at
// once; the others are bound on the host when they are first used.
func (s *socket) bind(ap netip.AddrPort) unix.Errno {
	n := s.net
	n.mu.Lock()
	defer n.mu.Unlock()
	if s.local.IsValid() || s.peer.IsValid() {
		return unix.EINVAL
	}
	ap = unmap(ap)
	if !isGuestLocal(ap.Addr()) {
		return unix.EADDRNOTAVAIL
	}
	k := portKey{s.udp, ap.Port()}
	fwd := n.forwards[k]
	exposed := !ap.Addr().IsLoopback() && ap.Port() != 0
	if exposed && !fwd.IsValid() && n.cfg.ListenAny {
		fwd = netip.AddrPortFrom(netip.IPv4Unspecified(), ap.Port())
		if s.v6() {
			fwd = netip.AddrPortFrom(netip.IPv6Unspecified(), ap.Port())
		}
	}
	if exposed && !fwd.IsValid() {
		n.log.printf("bind %s: guest port %s is not forwarded (-p); answered EACCES", ap, k)
		return unix.EACCES
	}
	sa, ok := sockaddrOf(fwd, s.v6())
	if exposed && !ok {
		n.log.printf("bind %s: forward %s is IPv6, the socket IPv4; answered EADDRNOTAVAIL", ap, fwd)
		return unix.EADDRNOTAVAIL
	}
	port, e := n.claimPort(s, k)
	if e != 0 {
		return e
	}
	s.local = netip.AddrPortFrom(ap.Addr(), port)
	if !exposed {
		return 0
	}
	if fd, ok := n.reserved[k]; ok {
		unix.Close(fd)
		delete(n.reserved, k)
	}
	err := reuseAddr(s.fd, k.udp)
	if err == nil {
		err = unix.Bind(s.fd, sa)
	}
	if err != nil {
		delete(n.ports, k)
		s.local = netip.AddrPort{}
		if rerr := n.reserve(k); rerr != nil {
			n.log.printf("port forward %s: cannot bind it again: %v", fwd, rerr)
		}
		n.log.printf("bind %s: forward %s: %v", ap, fwd, err)
		return errnoOf(err)
	}
	s.forward, s.hostAddr = fwd, fwd
	if s.udp && (fwd.Addr().IsLoopback() || fwd.Addr().IsUnspecified()) {
		n.ours[netip.AddrPortFrom(netpolicy.HostLoopback, fwd.Port())] = s
	}
	return 0
}

// bindHost gives the host socket an address where the guest's sockets
// reach each other: a TCP socket on the host's loopback (IPv6's, to reach
// a peer there); a UDP socket there too if the guest bound it to its
// loopback, else on the unspecified address, so that it can also send
// beyond the guest (what arrives from there is filtered: guestView). A
// UDP socket the host kernel already bound, by a send, keeps its
// address. Called with mu.
func (s *socket) bindHost(peer netip.Addr) unix.Errno {
	sa, err := unix.Getsockname(s.fd)
	if err != nil {
		return errnoOf(err)
	}
	if a, _ := addrPortOf(sa); a.Port() == 0 {
		at := netpolicy.HostLoopback
		switch {
		case s.udp && !s.local.Addr().IsLoopback():
			at = netip.IPv4Unspecified()
		case !s.udp && s.v6() && peer.Is6() && !peer.Is4In6():
			at = netip.IPv6Loopback()
		}
		host, _ := sockaddrOf(netip.AddrPortFrom(at, 0), s.v6())
		if err := unix.Bind(s.fd, host); err != nil {
			return errnoOf(err)
		}
		if sa, err = unix.Getsockname(s.fd); err != nil {
			return errnoOf(err)
		}
	}
	s.hostAddr, _ = addrPortOf(sa)
	if s.udp {
		s.net.ours[netip.AddrPortFrom(netpolicy.HostLoopback, s.hostAddr.Port())] = s
	}
	return 0
}

// ensureLocal gives an unbound socket an ephemeral guest port, on the
// loopback address of dst's family. Called with mu.
func (s *socket) ensureLocal(dst netip.Addr) unix.Errno {
	if s.local.IsValid() {
		return 0
	}
	port, e := s.net.claimPort(s, portKey{s.udp, 0})
	if e != 0 {
		return e
	}
	s.local = netip.AddrPortFrom(loopbackOf(dst), port)
	return 0
}

// listen makes the socket a listener, binding it first if need be.
func (s *socket) listen(backlog int) unix.Errno {
	if s.udp {
		return unix.EOPNOTSUPP
	}
	n := s.net
	n.mu.Lock()
	defer n.mu.Unlock()
	if s.peer.IsValid() {
		return unix.EINVAL
	}
	if !s.local.IsValid() {
		port, e := n.claimPort(s, portKey{false, 0})
		if e != 0 {
			return e
		}
		s.local = netip.AddrPortFrom(unspecifiedOf(s.family), port)
	}
	if !s.hostAddr.IsValid() {
		if e := s.bindHost(netip.Addr{}); e != 0 {
			return e
		}
	}
	if err := unix.Listen(s.fd, max(min(backlog, 4096), 0)); err != nil {
		return errnoOf(err)
	}
	s.listening = true
	return 0
}

func unspecifiedOf(family int) netip.Addr {
	if family == unix.AF_INET6 {
		return netip.IPv6Unspecified()
	}
	return netip.IPv4Unspecified()
}

// route resolves where the socket's traffic for guest address dst goes
// on the host: a socket of the guest's own, which it binds itself for,
// or a host address by the policy. For a connected stream it returns the
// listener that must expect the connection. Called with mu.
func (s *socket) route(dst netip.AddrPort) (host netip.AddrPort, tgt *socket, e unix.Errno) {
	n := s.net
	if s.ipv6Only() && dst.Addr().Unmap().Is4() {
		return netip.AddrPort{}, nil, unix.ENETUNREACH
	}
	dst = unmap(dst)
	if !isGuestLocal(dst.Addr()) {
		if host = replyAddr(dst); s.udp && s.replies[host] {
			return host, nil, 0 // a peer it talks with already
		}
		if host, e = n.outside(dst); e == 0 {
			s.noteReply(host)
		}
		return host, nil, e
	}
	if tgt, host, e = n.target(s.udp, dst); e == 0 && !s.hostAddr.IsValid() {
		e = s.bindHost(host.Addr())
	}
	if e == 0 {
		e = s.ensureLocal(dst.Addr())
	}
	return host, tgt, e
}

// replyAddr is where a guest address beyond the guest is on the host,
// whatever the policy says: the gateway is the host's loopback.
func replyAddr(dst netip.AddrPort) netip.AddrPort {
	if dst.Addr() == netpolicy.Gateway {
		return netip.AddrPortFrom(netpolicy.HostLoopback, dst.Port())
	}
	return dst
}

// connect connects to dst: a socket of the guest's own, through the
// host's loopback, or a host address by the policy. A blocking connect
// waits for the outcome.
func (s *socket) connect(t *thread, dst netip.AddrPort) unix.Errno {
	n := s.net
	n.mu.Lock()
	host, tgt, e := s.route(dst)
	sa, ok := sockaddrOf(host, s.v6())
	switch {
	case e == 0 && !ok:
		e = unix.ENETUNREACH // an IPv6 host address for an IPv4 socket
	case e == 0 && tgt != nil && !s.udp:
		tgt.pending = remember(tgt.pending, s.hostAddr, s.localView(), maxPending)
		s.expectedBy = tgt
	}
	n.mu.Unlock()
	if e != 0 {
		return e
	}
	err := unix.Connect(s.fd, sa)
	if err == unix.EINPROGRESS && !s.nonblock.Load() {
		if e := t.waitFor(s.fd, unix.POLLOUT); e != 0 {
			return e
		}
		soerr, gerr := unix.GetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_ERROR)
		if gerr != nil {
			return errnoOf(gerr)
		}
		err = nil
		if soerr != 0 {
			err = unix.Errno(soerr)
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	switch err {
	case nil, unix.EINPROGRESS, unix.EALREADY, unix.EISCONN:
		s.peer = unmap(dst)
	default:
		if tgt != nil && s.expectedBy == tgt {
			delete(tgt.pending, s.hostAddr) // it will never arrive
			s.expectedBy = nil
		}
	}
	return errnoOf(err)
}

// disconnect dissolves a UDP socket's association (connect to AF_UNSPEC).
func (s *socket) disconnect() unix.Errno {
	if !s.udp {
		return unix.EINVAL
	}
	err := hostDisconnect(s.fd)
	if err == 0 {
		s.net.mu.Lock()
		s.peer = netip.AddrPort{}
		s.net.mu.Unlock()
	}
	return err
}

// noteReply lets a UDP socket exchange datagrams with host address a.
// Called with mu.
func (s *socket) noteReply(a netip.AddrPort) {
	if s.udp {
		s.replies = remember(s.replies, unmap(a), true, maxReplies)
	}
}

// accept takes the next connection; a listener on the guest's loopback
// closes any the monitor did not make for the guest.
func (s *socket) accept(t *thread, nonblock bool) (*socket, unix.Errno) {
	n := s.net
	for {
		fd, sa, err := unix.Accept4(s.fd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		if err == unix.EAGAIN && !s.nonblock.Load() {
			if e := t.waitReady(s.fd, unix.POLLIN); e != 0 {
				return nil, e
			}
			continue
		}
		if err != nil {
			return nil, errnoOf(err)
		}
		from, _ := addrPortOf(sa)
		n.mu.Lock()
		guest, ours := s.pending[from]
		delete(s.pending, from)
		if !ours && !s.forward.IsValid() {
			n.mu.Unlock()
			unix.Close(fd)
			n.log.printf("a host process (%s) connected to the guest's loopback listener %s: closed", from, s.local)
			if t.interrupted() { // a flood of them must not hold the thread
				return nil, unix.EINTR
			}
			continue
		}
		c := n.wrap(fd, s.family, false, nonblock)
		c.local = s.local
		if ours {
			c.peer = guest
			if c.local.Addr().IsUnspecified() {
				c.local = netip.AddrPortFrom(loopbackOf(c.peer.Addr()), c.local.Port())
			}
		} else {
			c.peer = from
			if from.Addr().IsLoopback() {
				c.peer = netip.AddrPortFrom(netpolicy.Gateway, from.Port())
			}
			if c.local.Addr().IsUnspecified() {
				c.local = netip.AddrPortFrom(netpolicy.Guest.Addr(), c.local.Port())
			}
		}
		n.mu.Unlock()
		return c, 0
	}
}

// name is the guest's view of the socket's own address (getsockname).
func (s *socket) name() netip.AddrPort {
	n := s.net
	n.mu.Lock()
	defer n.mu.Unlock()
	switch {
	case s.local.IsValid() && s.local.Addr().IsUnspecified() && s.peer.IsValid():
		if isGuestLocal(s.peer.Addr()) {
			return netip.AddrPortFrom(loopbackOf(s.peer.Addr()), s.local.Port())
		}
		return netip.AddrPortFrom(netpolicy.Guest.Addr(), s.local.Port())
	case s.local.IsValid():
		return s.local
	case s.peer.IsValid():
		// Connected beyond the guest: the host chose the port.
		port := uint16(0)
		if sa, err := unix.Getsockname(s.fd); err == nil {
			a, _ := addrPortOf(sa)
			port = a.Port()
		}
		return netip.AddrPortFrom(netpolicy.Guest.Addr(), port)
	}
	return netip.AddrPortFrom(unspecifiedOf(s.family), 0)
}

// peerName is the guest's view of the connected peer (getpeername).
func (s *socket) peerName() (netip.AddrPort, unix.Errno) {
	s.net.mu.Lock()
	defer s.net.mu.Unlock()
	if !s.peer.IsValid() {
		return netip.AddrPort{}, unix.ENOTCONN
	}
	return s.peer, 0
}

// destination resolves where a UDP datagram for dst goes on the host.
// drop is true for a datagram to a guest port nobody holds, which Linux
// also drops without a word.
func (s *socket) destination(dst netip.AddrPort) (to unix.Sockaddr, drop bool, e unix.Errno) {
	s.net.mu.Lock()
	defer s.net.mu.Unlock()
	host, _, e := s.route(dst)
	if e == unix.ECONNREFUSED && isGuestLocal(dst.Addr()) {
		return nil, true, 0
	}
	if e != 0 {
		return nil, false, e
	}
	sa, ok := sockaddrOf(host, s.v6())
	if !ok {
		return nil, false, unix.ENETUNREACH
	}
	return sa, false, 0
}

// send writes bufs, to dst for a UDP socket that names one. Blocking, it
// waits until everything is written or it is interrupted.
func (s *socket) send(t *thread, bufs [][]byte, flags int, dst netip.AddrPort) (int, unix.Errno) {
	var to unix.Sockaddr
	if dst.IsValid() && s.udp {
		sa, drop, e := s.destination(dst)
		switch {
		case e != 0:
			return 0, e
		case drop:
			return iovLen(bufs), 0
		}
		to = sa
	}
	nonblock := s.nonblock.Load() || flags&unix.MSG_DONTWAIT != 0
	total, done := iovLen(bufs), 0
	for {
		n, err := unix.SendmsgBuffers(s.fd, skipIovecs(bufs, done), nil, to, flags|unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL)
		if err == nil {
			done += n
			if done >= total || s.udp || nonblock {
				return done, 0
			}
			continue
		}
		e := errnoOf(err)
		if e == unix.EAGAIN && !nonblock {
			if e = t.waitReady(s.fd, unix.POLLOUT); e == 0 {
				continue
			}
		}
		if done > 0 {
			return done, 0
		}
		return 0, e
	}
}

func iovLen(bufs [][]byte) int {
	n := 0
	for _, b := range bufs {
		n += len(b)
	}
	return n
}

// recv reads into bufs and, for UDP, says whom from, in the guest's view;
// datagrams the socket must not see are dropped. Blocking, it waits for
// data; with MSG_WAITALL on a stream, for all of it.
func (s *socket) recv(t *thread, bufs [][]byte, flags int) (int, netip.AddrPort, int, unix.Errno) {
	nonblock := s.nonblock.Load() || flags&unix.MSG_DONTWAIT != 0
	total, done := iovLen(bufs), 0
	for {
		if s.udp {
			n, from, rflags, e := s.recvDatagram(bufs, flags)
			if e == unix.EAGAIN && !nonblock {
				if e = t.waitReady(s.fd, unix.POLLIN); e == 0 {
					continue
				}
			}
			if e == unix.EAGAIN && from.IsValid() { // dropped one
				if t.interrupted() {
					return 0, netip.AddrPort{}, 0, unix.EINTR
				}
				continue
			}
			return n, from, rflags, e
		}
		n, _, rflags, _, err := unix.RecvmsgBuffers(s.fd, skipIovecs(bufs, done), nil, flags|unix.MSG_DONTWAIT)
		if err == unix.EAGAIN && !nonblock {
			if e := t.waitReady(s.fd, unix.POLLIN); e != 0 {
				if done > 0 {
					return done, netip.AddrPort{}, 0, 0
				}
				return 0, netip.AddrPort{}, 0, e
			}
			continue
		}
		if err != nil {
			if done > 0 {
				return done, netip.AddrPort{}, 0, 0
			}
			return 0, netip.AddrPort{}, 0, errnoOf(err)
		}
		done += n
		if flags&unix.MSG_WAITALL != 0 && !nonblock && n > 0 && done < total && flags&unix.MSG_PEEK == 0 {
			continue
		}
		return done, netip.AddrPort{}, rflags, 0
	}
}

// recvDatagram takes one datagram without waiting. A datagram the socket
// must not see is consumed and answered as EAGAIN with its sender (so
// that the caller tries again); a forward's socket remembers who sent to
// it, to answer them.
func (s *socket) recvDatagram(bufs [][]byte, flags int) (int, netip.AddrPort, int, unix.Errno) {
	s.recvMu.Lock()
	defer s.recvMu.Unlock()
	n, _, rflags, from, err := unix.RecvmsgBuffers(s.fd, bufs, nil, flags|unix.MSG_DONTWAIT)
	if err != nil {
		return 0, netip.AddrPort{}, 0, errnoOf(err)
	}
	if from == nil {
		return n, netip.AddrPort{}, rflags, 0
	}
	src, _ := addrPortOf(from)
	s.net.mu.Lock()
	view, ok := s.net.guestView(s, src)
	if ok && s.forward.IsValid() && s.net.ours[unmap(src)] == nil {
		s.noteReply(src)
	}
	s.net.mu.Unlock()
	if ok {
		return n, view, rflags, 0
	}
	if flags&unix.MSG_PEEK != 0 { // consume what was only looked at: recvMu keeps it the same one
		unix.Recvfrom(s.fd, nil, unix.MSG_DONTWAIT)
	}
	s.net.log.printf("a datagram from %s to a guest socket that did not send there: dropped", src)
	return 0, src, 0, unix.EAGAIN
}
