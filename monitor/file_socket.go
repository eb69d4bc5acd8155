package monitor

import (
	"net/netip"

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

	// Guarded by net.mu. Addresses are kept with IPv4-mapped addresses
	// as IPv4, and given to the guest in its socket's family.
	local     netip.AddrPort // the guest's address; invalid until bound
	peer      netip.AddrPort // the guest's view of its peer; invalid until connected
	hostAddr  netip.AddrPort // the host socket's address, once the monitor bound it
	forward   netip.AddrPort // the host address of the forward it holds
	listening bool
	// pending maps the host address of each connection a guest socket
	// made to this listener to that socket's guest address, until the
	// listener accepts it: the client may be gone by then.
	pending   map[netip.AddrPort]netip.AddrPort
	v6only    bool // the guest's IPV6_V6ONLY; the host socket's is off
	reuseAddr bool // the guest's SO_REUSEADDR, SO_REUSEPORT: kept, not applied
	reusePort bool
	replies   map[netip.AddrPort]bool // host addresses a UDP socket sent to
}

var (
	_ reader   = (*socket)(nil)
	_ writer   = (*socket)(nil)
	_ flagged  = (*socket)(nil)
	_ pollable = (*socket)(nil)
)

// maxReplies bounds the addresses a UDP socket remembers sending to.
const maxReplies = 1024

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

// close gives back the guest port, and a forward's host port to its
// reservation.
func (s *socket) close() {
	n := s.net
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, a := range []netip.AddrPort{s.hostAddr, netip.AddrPortFrom(netpolicy.HostLoopback, s.hostAddr.Port())} {
		if n.ours[a] == s {
			delete(n.ours, a)
		}
	}
	s.hostStream.close() // first, so that a forward's port can be bound again
	k := portKey{s.udp, s.local.Port()}
	if !s.local.IsValid() || n.ports[k] != s {
		return
	}
	delete(n.ports, k)
	if s.forward.IsValid() {
		if err := n.reserve(k); err != nil {
			n.log.printf("port forward %s -> guest %s: cannot bind it again: %v", s.forward, k, err)
		}
	}
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

// bind gives the socket guest address ap: on its loopback, anywhere; on
// its other addresses, only a forwarded port (EACCES) or an ephemeral
// one. A forwarded port's host socket takes the forward's host address at
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
	if exposed && !fwd.IsValid() {
		n.log.printf("bind %s: guest port %s is not forwarded (-p); answered EACCES", ap, k)
		return unix.EACCES
	}
	port, e := n.claimPort(s, k)
	if e != 0 {
		return e
	}
	s.local = netip.AddrPortFrom(ap.Addr(), port)
	if !exposed {
		return 0
	}
	if fwd.Addr().Is6() && !s.v6() {
		delete(n.ports, k)
		s.local = netip.AddrPort{}
		n.log.printf("bind %s: forward %s is IPv6, the socket IPv4; answered EADDRNOTAVAIL", ap, fwd)
		return unix.EADDRNOTAVAIL
	}
	if fd, ok := n.reserved[k]; ok {
		unix.Close(fd)
		delete(n.reserved, k)
	}
	if err := unix.Bind(s.fd, sockaddrOf(fwd, s.v6())); err != nil {
		delete(n.ports, k)
		s.local = netip.AddrPort{}
		if rerr := n.reserve(k); rerr != nil {
			n.log.printf("port forward %s: cannot bind it again: %v", fwd, rerr)
		}
		n.log.printf("bind %s: forward %s: %v", ap, fwd, err)
		return errnoOf(err)
	}
	s.forward, s.hostAddr = fwd, fwd
	if fwd.Addr().IsLoopback() || fwd.Addr().IsUnspecified() {
		n.ours[netip.AddrPortFrom(netpolicy.HostLoopback, fwd.Port())] = s
	}
	return 0
}

// bindHostLoopback binds the host socket on the host's loopback, where
// the guest's sockets reach each other. Called with mu.
func (s *socket) bindHostLoopback() unix.Errno {
	if err := unix.Bind(s.fd, sockaddrOf(netip.AddrPortFrom(netpolicy.HostLoopback, 0), s.v6())); err != nil {
		return errnoOf(err)
	}
	sa, err := unix.Getsockname(s.fd)
	if err != nil {
		return errnoOf(err)
	}
	s.hostAddr, _ = addrPortOf(sa)
	s.net.ours[s.hostAddr] = s
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
		if e := s.bindHostLoopback(); e != 0 {
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

// connect connects to dst: a socket of the guest's own, through the
// host's loopback, or a host address by the policy. A blocking connect
// waits for the outcome.
func (s *socket) connect(t *thread, dst netip.AddrPort) unix.Errno {
	n := s.net
	n.mu.Lock()
	if s.v6() && s.v6only && dst.Addr().Is4In6() {
		n.mu.Unlock()
		return unix.ENETUNREACH
	}
	dst = unmap(dst)
	var host netip.AddrPort
	var e unix.Errno
	if isGuestLocal(dst.Addr()) {
		var tgt *socket
		if tgt, host, e = n.target(s.udp, dst); e == 0 && !s.hostAddr.IsValid() {
			e = s.bindHostLoopback()
		}
		if e == 0 {
			e = s.ensureLocal(dst.Addr())
		}
		if e == 0 && !s.udp {
			tgt.expect(s.hostAddr, s.localView())
		}
	} else if host, e = n.outside(dst); e == 0 {
		s.noteReply(host)
	}
	if e != 0 {
		n.mu.Unlock()
		return e
	}
	n.mu.Unlock()
	err := unix.Connect(s.fd, sockaddrOf(host, s.v6()))
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
	if err == nil || err == unix.EINPROGRESS {
		n.mu.Lock()
		s.peer = dst
		n.mu.Unlock()
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

// noteReply lets a UDP socket receive from host address a, which it sent
// to. Called with mu.
func (s *socket) noteReply(a netip.AddrPort) {
	if !s.udp {
		return
	}
	if s.replies == nil || len(s.replies) >= maxReplies {
		s.replies = map[netip.AddrPort]bool{}
	}
	s.replies[unmap(a)] = true
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

// maxPending bounds the connections a listener expects: beyond it, the
// expectations so far are forgotten (connections it never accepted).
const maxPending = 1 << 16

// expect tells a listener that the guest socket at host address from,
// whose guest address is guest, is connecting. Called with mu.
func (s *socket) expect(from, guest netip.AddrPort) {
	if s.pending == nil || len(s.pending) >= maxPending {
		s.pending = map[netip.AddrPort]netip.AddrPort{}
	}
	s.pending[from] = guest
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

// destination resolves where a UDP datagram for dst goes on the host,
// binding the socket where the guest's sockets reach each other if it is
// one of theirs. drop is true for a datagram to a guest port nobody
// holds, which Linux also drops without a word.
func (s *socket) destination(dst netip.AddrPort) (host netip.AddrPort, drop bool, e unix.Errno) {
	n := s.net
	n.mu.Lock()
	defer n.mu.Unlock()
	if s.v6() && s.v6only && dst.Addr().Is4In6() {
		return netip.AddrPort{}, false, unix.ENETUNREACH
	}
	dst = unmap(dst)
	if !isGuestLocal(dst.Addr()) {
		host, e = n.outside(dst)
		if e == 0 {
			s.noteReply(host)
		}
		return host, false, e
	}
	_, host, e = n.target(true, dst)
	if e == unix.ECONNREFUSED {
		return netip.AddrPort{}, true, 0
	}
	if e == 0 && !s.hostAddr.IsValid() {
		e = s.bindHostLoopback()
	}
	if e == 0 {
		e = s.ensureLocal(dst.Addr())
	}
	return host, false, e
}

// send writes bufs, to dst for a UDP socket that names one. Blocking, it
// waits until everything is written or it is interrupted.
func (s *socket) send(t *thread, bufs [][]byte, flags int, dst netip.AddrPort) (int, unix.Errno) {
	var to unix.Sockaddr
	if dst.IsValid() && s.udp {
		host, drop, e := s.destination(dst)
		switch {
		case e != 0:
			return 0, e
		case drop:
			return iovLen(bufs), 0
		}
		to = sockaddrOf(host, s.v6())
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
		n, _, rflags, from, err := unix.RecvmsgBuffers(s.fd, skipIovecs(bufs, done), nil, flags|unix.MSG_DONTWAIT)
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
		if !s.udp {
			done += n
			if flags&unix.MSG_WAITALL != 0 && !nonblock && n > 0 && done < total && flags&unix.MSG_PEEK == 0 {
				continue
			}
			return done, netip.AddrPort{}, rflags, 0
		}
		if from == nil {
			return n, netip.AddrPort{}, rflags, 0
		}
		src, _ := addrPortOf(from)
		s.net.mu.Lock()
		view, ok := s.net.guestView(s, src)
		s.net.mu.Unlock()
		if ok {
			return n, view, rflags, 0
		}
		if flags&unix.MSG_PEEK != 0 { // consume what was only looked at
			unix.Recvfrom(s.fd, nil, unix.MSG_DONTWAIT)
		}
		s.net.log.printf("a datagram from %s to a guest socket that did not send there: dropped", src)
	}
}
