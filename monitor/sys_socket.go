package monitor

import (
	"encoding/binary"
	"net/netip"

	"golang.org/x/sys/unix"
)

// The socket calls of the host network backend (hostnet.go,
// file_socket.go). Without one, socket answers EAFNOSUPPORT, and the
// other calls find no socket to act on.

func sysSocket(t *thread, a sysArgs) (uint64, unix.Errno) {
	n := t.vm.net
	if n == nil {
		t.vm.log.printf("socket: not supported (the guest has no host sockets: attach a network to the host backend, or use a declared network device (atoll.Net)); answered EAFNOSUPPORT")
		return 0, unix.EAFNOSUPPORT
	}
	family, typ, proto := int(a[0]), int(a[1]), int(a[2])
	if typ&^(unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC|0xf) != 0 {
		return 0, unix.EINVAL
	}
	nonblock := typ&unix.SOCK_NONBLOCK != 0
	typ &= 0xf
	switch {
	case family != unix.AF_INET && family != unix.AF_INET6:
		t.vm.log.printf("socket: address family %d: not supported (IPv4 and IPv6 only); answered EAFNOSUPPORT", family)
		return 0, unix.EAFNOSUPPORT
	case typ == unix.SOCK_RAW:
		return 0, unix.EPERM // as for a process without CAP_NET_RAW
	case typ == unix.SOCK_STREAM && (proto == 0 || proto == unix.IPPROTO_TCP),
		typ == unix.SOCK_DGRAM && (proto == 0 || proto == unix.IPPROTO_UDP):
	case typ == unix.SOCK_STREAM, typ == unix.SOCK_DGRAM:
		return 0, unix.EPROTONOSUPPORT
	default:
		return 0, unix.ESOCKTNOSUPPORT
	}
	s, e := n.newSocket(family, typ == unix.SOCK_DGRAM, nonblock)
	if e != 0 {
		return 0, e
	}
	return t.installNew(s)
}

// sysSocketpair answers as Linux does without the families it would
// need: the guest has IPv4 and IPv6 only, which make no pairs.
func sysSocketpair(t *thread, a sysArgs) (uint64, unix.Errno) {
	if a[0] == unix.AF_INET || a[0] == unix.AF_INET6 {
		return 0, unix.EOPNOTSUPP
	}
	return 0, unix.EAFNOSUPPORT
}

// withSocket runs op on the socket behind guest fd: ENOTSOCK for another
// file.
func (t *thread) withSocket(fd uint64, op func(s *socket) (uint64, unix.Errno)) (uint64, unix.Errno) {
	return t.withFile(fd, func(f file) (uint64, unix.Errno) {
		s, ok := f.(*socket)
		if !ok {
			return 0, unix.ENOTSOCK
		}
		return op(s)
	})
}

// readSockaddr reads the guest's socket address for socket s. unspec
// reports an AF_UNSPEC address, which dissolves a UDP association.
func readSockaddr(t *thread, s *socket, addr, size uint64) (ap netip.AddrPort, unspec bool, e unix.Errno) {
	if int32(size) < 2 || size > 128 {
		return netip.AddrPort{}, false, unix.EINVAL
	}
	b, ok := t.slice(addr, size)
	if !ok {
		return netip.AddrPort{}, false, unix.EFAULT
	}
	switch family := int(binary.LittleEndian.Uint16(b)); {
	case family == unix.AF_UNSPEC:
		return netip.AddrPort{}, true, 0
	case family != s.family:
		return netip.AddrPort{}, false, unix.EAFNOSUPPORT
	case family == unix.AF_INET && len(b) >= sockaddrInSize:
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[4:8])), binary.BigEndian.Uint16(b[2:])), false, 0
	case family == unix.AF_INET6 && len(b) >= sockaddrIn6Min:
		return netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[8:24])), binary.BigEndian.Uint16(b[2:])), false, 0
	}
	return netip.AddrPort{}, false, unix.EINVAL // too short for its family
}

// readDestSockaddr reads a datagram's destination for socket s: as
// readSockaddr, except that a UDP socket of family AF_INET6 also takes an
// AF_INET address, as Linux's udpv6_sendmsg does, unless it speaks IPv6
// only (ENETUNREACH then).
func readDestSockaddr(t *thread, s *socket, addr, size uint64) (netip.AddrPort, unix.Errno) {
	ap, unspec, e := readSockaddr(t, s, addr, size)
	if e == unix.EAFNOSUPPORT && s.udp && s.family == unix.AF_INET6 && size >= sockaddrInSize {
		if b, ok := t.slice(addr, sockaddrInSize); ok && binary.LittleEndian.Uint16(b) == unix.AF_INET {
			s.net.mu.Lock()
			v6only := s.ipv6Only()
			s.net.mu.Unlock()
			if v6only {
				return netip.AddrPort{}, unix.ENETUNREACH
			}
			return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[4:8])), binary.BigEndian.Uint16(b[2:])), 0
		}
	}
	if e == 0 && unspec {
		e = unix.EAFNOSUPPORT
	}
	return ap, e
}

// sockaddrBytes encodes ap as the guest's struct sockaddr_in or
// sockaddr_in6 for a socket of family.
func sockaddrBytes(ap netip.AddrPort, family int) []byte {
	le, be := binary.LittleEndian, binary.BigEndian
	if family == unix.AF_INET {
		b := make([]byte, sockaddrInSize)
		le.PutUint16(b, unix.AF_INET)
		be.PutUint16(b[2:], ap.Port())
		if a := ap.Addr().Unmap(); a.Is4() { // else 0.0.0.0: no IPv6 address reaches an IPv4 socket
			a4 := a.As4()
			copy(b[4:], a4[:])
		}
		return b
	}
	b := make([]byte, sockaddrIn6Size)
	le.PutUint16(b, unix.AF_INET6)
	be.PutUint16(b[2:], ap.Port())
	a := ap.Addr().As16() // IPv4 as IPv4-mapped
	copy(b[8:], a[:])
	return b
}

// putSockaddr gives the guest ap at addr, with the length at lenAddr: the
// guest's buffer takes what fits, and the length says the whole size, as
// Linux does. A null addr asks for nothing.
func putSockaddr(t *thread, addr, lenAddr uint64, ap netip.AddrPort, family int) unix.Errno {
	if addr == 0 {
		return 0
	}
	lb, ok := t.slice(lenAddr, 4)
	if !ok {
		return unix.EFAULT
	}
	room := int32(binary.LittleEndian.Uint32(lb))
	if room < 0 {
		return unix.EINVAL
	}
	b := sockaddrBytes(ap, family)
	if room > 0 {
		dst, ok := t.slice(addr, uint64(min(int(room), len(b))))
		if !ok {
			return unix.EFAULT
		}
		copy(dst, b)
	}
	binary.LittleEndian.PutUint32(lb, uint32(len(b)))
	return 0
}

func sysBind(t *thread, a sysArgs) (uint64, unix.Errno) {
	return t.withSocket(a[0], func(s *socket) (uint64, unix.Errno) {
		ap, unspec, e := readSockaddr(t, s, a[1], a[2])
		if e == 0 && unspec {
			e = unix.EAFNOSUPPORT
		}
		if e != 0 {
			return 0, e
		}
		return 0, s.bind(ap)
	})
}

func sysListen(t *thread, a sysArgs) (uint64, unix.Errno) {
	return t.withSocket(a[0], func(s *socket) (uint64, unix.Errno) { return 0, s.listen(int(int32(a[1]))) })
}

func sysConnect(t *thread, a sysArgs) (uint64, unix.Errno) {
	return t.withSocket(a[0], func(s *socket) (uint64, unix.Errno) {
		ap, unspec, e := readSockaddr(t, s, a[1], a[2])
		switch {
		case e != 0:
			return 0, e
		case unspec:
			return 0, s.disconnect()
		}
		return 0, s.connect(t, ap)
	})
}

func sysAccept4(t *thread, a sysArgs) (uint64, unix.Errno) {
	if a[3]&^(unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC) != 0 {
		return 0, unix.EINVAL
	}
	return t.withSocket(a[0], func(s *socket) (uint64, unix.Errno) {
		if s.udp {
			return 0, unix.EOPNOTSUPP
		}
		if a[1] != 0 { // check the length before taking a connection
			if _, ok := t.slice(a[2], 4); !ok {
				return 0, unix.EFAULT
			}
		}
		c, e := s.accept(t, a[3]&unix.SOCK_NONBLOCK != 0)
		if e != 0 {
			return 0, e
		}
		peer, _ := c.peerName()
		if e := putSockaddr(t, a[1], a[2], peer, c.family); e != 0 {
			c.close() // the connection is lost, as on Linux
			return 0, e
		}
		return t.installNew(c)
	})
}

func sysAccept(t *thread, a sysArgs) (uint64, unix.Errno) {
	return sysAccept4(t, sysArgs{a[0], a[1], a[2], 0})
}

func sysGetsockname(t *thread, a sysArgs) (uint64, unix.Errno) {
	return t.withSocket(a[0], func(s *socket) (uint64, unix.Errno) {
		if a[1] == 0 {
			return 0, unix.EFAULT
		}
		return 0, putSockaddr(t, a[1], a[2], s.name(), s.family)
	})
}

func sysGetpeername(t *thread, a sysArgs) (uint64, unix.Errno) {
	return t.withSocket(a[0], func(s *socket) (uint64, unix.Errno) {
		peer, e := s.peerName()
		if e != 0 {
			return 0, e
		}
		if a[1] == 0 {
			return 0, unix.EFAULT
		}
		return 0, putSockaddr(t, a[1], a[2], peer, s.family)
	})
}

// The message flags the guest may pass; others are EOPNOTSUPP.
const (
	sendFlags = unix.MSG_DONTWAIT | unix.MSG_NOSIGNAL | unix.MSG_MORE | unix.MSG_EOR | unix.MSG_OOB | unix.MSG_CONFIRM
	recvFlags = unix.MSG_DONTWAIT | unix.MSG_PEEK | unix.MSG_WAITALL | unix.MSG_TRUNC | unix.MSG_OOB | unix.MSG_CMSG_CLOEXEC
)

func checkFlags(t *thread, flags, allowed uint64) unix.Errno {
	if flags&^allowed != 0 {
		t.vm.log.printf("%s: message flags %#x: not supported; answered EOPNOTSUPP", syscallName(t.nr), flags&^allowed)
		return unix.EOPNOTSUPP
	}
	return 0
}

// sysSendto implements sendto(fd, buf, len, flags, dest, destlen), and
// send as sendto without a destination.
func sysSendto(t *thread, a sysArgs) (uint64, unix.Errno) {
	if e := checkFlags(t, a[3], sendFlags); e != 0 {
		return 0, e
	}
	return t.withSocket(a[0], func(s *socket) (uint64, unix.Errno) {
		b, ok := t.slice(a[1], min(a[2], maxIO))
		if !ok {
			return 0, unix.EFAULT
		}
		var dst netip.AddrPort
		if a[4] != 0 {
			ap, e := readDestSockaddr(t, s, a[4], a[5])
			if e != 0 {
				return 0, e
			}
			dst = ap
		}
		n, e := s.send(t, [][]byte{b}, int(a[3]), dst)
		return uint64(n), e
	})
}

// sysRecvfrom implements recvfrom(fd, buf, len, flags, src, srclen).
func sysRecvfrom(t *thread, a sysArgs) (uint64, unix.Errno) {
	if e := checkFlags(t, a[3], recvFlags); e != 0 {
		return 0, e
	}
	return t.withSocket(a[0], func(s *socket) (uint64, unix.Errno) {
		b, ok := t.slice(a[1], min(a[2], maxIO))
		if !ok {
			return 0, unix.EFAULT
		}
		if a[4] != 0 {
			if _, ok := t.slice(a[5], 4); !ok {
				return 0, unix.EFAULT
			}
		}
		n, from, _, e := s.recv(t, [][]byte{b}, int(a[3]))
		if e != 0 {
			return 0, e
		}
		if from.IsValid() {
			e = putSockaddr(t, a[4], a[5], from, s.family)
		} else if a[4] != 0 {
			binary.LittleEndian.PutUint32(mustSlice(t, a[5], 4), 0) // a stream names no sender
		}
		if flags := int(a[3]); flags&unix.MSG_TRUNC != 0 && s.udp {
			return uint64(n), e // the datagram's full length, which recvmsg also reports
		}
		return uint64(min(n, len(b))), e
	})
}

// mustSlice is t.slice for memory already checked.
func mustSlice(t *thread, addr, n uint64) []byte {
	b, _ := t.slice(addr, n)
	return b
}

// msghdr is a guest struct msghdr, read.
type msghdr struct {
	raw     []byte // the guest's structure, for the fields written back
	name    uint64
	namelen uint32
	iov     [][]byte
}

// readMsghdr reads the guest's struct msghdr at addr; control data is not
// supported on sends.
func readMsghdr(t *thread, raw []byte, send bool) (msghdr, unix.Errno) {
	le := binary.LittleEndian
	m := msghdr{raw: raw, name: le.Uint64(raw[msgNameOff:]), namelen: le.Uint32(raw[msgNamelenOff:])}
	if send && le.Uint64(raw[msgControllenOff:]) != 0 {
		t.vm.log.printf("%s: control messages: not supported; answered EINVAL", syscallName(t.nr))
		return m, unix.EINVAL
	}
	iov, e := t.iovecs(le.Uint64(raw[msgIovOff:]), le.Uint64(raw[msgIovlenOff:]))
	m.iov = iov
	return m, e
}

// sendMsg sends one guest message on s.
func sendMsg(t *thread, s *socket, raw []byte, flags int) (int, unix.Errno) {
	m, e := readMsghdr(t, raw, true)
	if e != 0 {
		return 0, e
	}
	var dst netip.AddrPort
	if m.name != 0 && m.namelen != 0 {
		ap, e := readDestSockaddr(t, s, m.name, uint64(m.namelen))
		if e != 0 {
			return 0, e
		}
		dst = ap
	}
	return s.send(t, m.iov, flags, dst)
}

// recvMsg receives one guest message on s, writing back its name, its
// length, no control data, and its flags.
func recvMsg(t *thread, s *socket, raw []byte, flags int) (int, unix.Errno) {
	m, e := readMsghdr(t, raw, false)
	if e != 0 {
		return 0, e
	}
	n, from, rflags, e := s.recv(t, m.iov, flags)
	if e != 0 {
		return 0, e
	}
	le := binary.LittleEndian
	if m.name != 0 && from.IsValid() {
		b := sockaddrBytes(from, s.family)
		if dst, ok := t.slice(m.name, uint64(min(int(m.namelen), len(b)))); ok {
			copy(dst, b)
		}
		le.PutUint32(raw[msgNamelenOff:], uint32(len(b)))
	} else {
		le.PutUint32(raw[msgNamelenOff:], 0)
	}
	le.PutUint64(raw[msgControllenOff:], 0)
	le.PutUint32(raw[msgFlagsOff:], uint32(rflags))
	if flags&unix.MSG_TRUNC == 0 || !s.udp {
		n = min(n, iovLen(m.iov))
	}
	return n, 0
}

func sysSendmsg(t *thread, a sysArgs) (uint64, unix.Errno) {
	if e := checkFlags(t, a[2], sendFlags); e != 0 {
		return 0, e
	}
	return t.withSocket(a[0], func(s *socket) (uint64, unix.Errno) {
		raw, ok := t.slice(a[1], msghdrSize)
		if !ok {
			return 0, unix.EFAULT
		}
		n, e := sendMsg(t, s, raw, int(a[2]))
		return uint64(n), e
	})
}

func sysRecvmsg(t *thread, a sysArgs) (uint64, unix.Errno) {
	if e := checkFlags(t, a[2], recvFlags); e != 0 {
		return 0, e
	}
	return t.withSocket(a[0], func(s *socket) (uint64, unix.Errno) {
		raw, ok := t.slice(a[1], msghdrSize)
		if !ok {
			return 0, unix.EFAULT
		}
		n, e := recvMsg(t, s, raw, int(a[2]))
		return uint64(n), e
	})
}

// socketMmsg moves several messages on a socket, one host call each: the
// first may wait; the rest stop at the first that would. It answers how
// many moved, or the first one's error.
func socketMmsg(t *thread, s *socket, raw []byte, vlen uint64, flags int, recv bool) (uint64, unix.Errno) {
	var done uint64
	for ; done < vlen; done++ {
		g := raw[done*mmsghdrSize : (done+1)*mmsghdrSize]
		f := flags
		if done > 0 && (!recv || flags&unix.MSG_WAITFORONE != 0) {
			f |= unix.MSG_DONTWAIT
		}
		f &^= unix.MSG_WAITFORONE
		var n int
		var e unix.Errno
		if recv {
			n, e = recvMsg(t, s, g[:msghdrSize], f)
		} else {
			n, e = sendMsg(t, s, g[:msghdrSize], f)
		}
		if e != 0 {
			if done == 0 {
				return 0, e
			}
			break
		}
		binary.LittleEndian.PutUint32(g[msgLenOff:], uint32(n))
	}
	return done, 0
}

func sysShutdown(t *thread, a sysArgs) (uint64, unix.Errno) {
	return t.withSocket(a[0], func(s *socket) (uint64, unix.Errno) {
		if a[1] > unix.SHUT_RDWR {
			return 0, unix.EINVAL
		}
		return 0, errnoOf(unix.Shutdown(s.fd, int(a[1])))
	})
}

// sockopt is an option the guest may set and get: passed to the host
// socket, or kept here (emulated).
type sockopt struct{ level, name int }

// sockopts is the allow-list; anything else is ENOPROTOOPT, logged. The
// emulated ones are answered from the socket: the host socket's own
// IPV6_V6ONLY stays off, its SO_REUSEADDR is the monitor's (hostnet.go),
// and its SO_LINGER must never make a close wait (file_socket.go).
var sockopts = map[sockopt]bool{
	{unix.SOL_SOCKET, unix.SO_KEEPALIVE}: true, {unix.SOL_SOCKET, unix.SO_BROADCAST}: true,
	{unix.SOL_SOCKET, unix.SO_LINGER}: false, {unix.SOL_SOCKET, unix.SO_RCVBUF}: true,
	{unix.SOL_SOCKET, unix.SO_SNDBUF}: true, {unix.SOL_SOCKET, unix.SO_OOBINLINE}: true,
	{unix.SOL_SOCKET, unix.SO_RCVLOWAT}: true, {unix.SOL_SOCKET, unix.SO_ERROR}: true,
	{unix.SOL_SOCKET, unix.SO_TYPE}: true, {unix.SOL_SOCKET, unix.SO_DOMAIN}: true,
	{unix.SOL_SOCKET, unix.SO_PROTOCOL}: true, {unix.SOL_SOCKET, unix.SO_ACCEPTCONN}: true,
	{unix.SOL_SOCKET, unix.SO_REUSEADDR}: false, {unix.SOL_SOCKET, unix.SO_REUSEPORT}: false,
	{unix.IPPROTO_TCP, unix.TCP_NODELAY}: true, {unix.IPPROTO_TCP, unix.TCP_KEEPIDLE}: true,
	{unix.IPPROTO_TCP, unix.TCP_KEEPINTVL}: true, {unix.IPPROTO_TCP, unix.TCP_KEEPCNT}: true,
	{unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT}: true, {unix.IPPROTO_TCP, unix.TCP_CORK}: true,
	{unix.IPPROTO_TCP, unix.TCP_QUICKACK}: true, {unix.IPPROTO_TCP, unix.TCP_MAXSEG}: true,
	{unix.IPPROTO_TCP, unix.TCP_NOTSENT_LOWAT}: true, {unix.IPPROTO_TCP, unix.TCP_INFO}: true,
	{unix.IPPROTO_IP, unix.IP_TOS}: true, {unix.IPPROTO_IP, unix.IP_TTL}: true,
	{unix.IPPROTO_IPV6, unix.IPV6_V6ONLY}: false, {unix.IPPROTO_IPV6, unix.IPV6_UNICAST_HOPS}: true,
	{unix.IPPROTO_IPV6, unix.IPV6_TCLASS}: true,
}

// maxSockopt bounds an option value.
const maxSockopt = 256

func lookupSockopt(t *thread, s *socket, level, name int) (host bool, e unix.Errno) {
	host, ok := sockopts[sockopt{level, name}]
	switch {
	case !ok:
		t.vm.log.printf("%s: option %d at level %d: not supported; answered ENOPROTOOPT", syscallName(t.nr), name, level)
		return false, unix.ENOPROTOOPT
	case level == unix.IPPROTO_IPV6 && !s.v6():
		return false, unix.ENOPROTOOPT
	case level == unix.IPPROTO_TCP && s.udp:
		return false, unix.EOPNOTSUPP
	}
	return host, 0
}

// sysSetsockopt implements setsockopt(fd, level, name, value, len).
func sysSetsockopt(t *thread, a sysArgs) (uint64, unix.Errno) {
	return t.withSocket(a[0], func(s *socket) (uint64, unix.Errno) {
		level, name := int(int32(a[1])), int(int32(a[2]))
		host, e := lookupSockopt(t, s, level, name)
		if e != 0 {
			return 0, e
		}
		if int32(a[4]) < 0 || a[4] > maxSockopt {
			return 0, unix.EINVAL
		}
		val, ok := t.slice(a[3], a[4])
		if !ok {
			return 0, unix.EFAULT
		}
		if host {
			return 0, hostSetsockopt(s.fd, level, name, val)
		}
		if len(val) < 4 || name == unix.SO_LINGER && len(val) < 8 {
			return 0, unix.EINVAL
		}
		le := binary.LittleEndian
		on := le.Uint32(val) != 0
		s.net.mu.Lock()
		defer s.net.mu.Unlock()
		switch name {
		case unix.IPV6_V6ONLY:
			if s.local.IsValid() {
				return 0, unix.EINVAL // fixed once bound, as on Linux
			}
			s.v6only = on
		case unix.SO_REUSEADDR:
			s.reuseAddr = on
		case unix.SO_REUSEPORT:
			s.reusePort = on
		case unix.SO_LINGER:
			s.linger = unix.Linger{Onoff: int32(le.Uint32(val)), Linger: int32(le.Uint32(val[4:]))}
		}
		return 0, 0
	})
}

// sysGetsockopt implements getsockopt(fd, level, name, value, lenp).
func sysGetsockopt(t *thread, a sysArgs) (uint64, unix.Errno) {
	return t.withSocket(a[0], func(s *socket) (uint64, unix.Errno) {
		level, name := int(int32(a[1])), int(int32(a[2]))
		host, e := lookupSockopt(t, s, level, name)
		if e != 0 {
			return 0, e
		}
		lb, ok := t.slice(a[4], 4)
		if !ok {
			return 0, unix.EFAULT
		}
		room := int32(binary.LittleEndian.Uint32(lb))
		if room < 0 {
			return 0, unix.EINVAL
		}
		buf := make([]byte, min(int(room), maxSockopt))
		var n int
		if host {
			if n, e = hostGetsockopt(s.fd, level, name, buf); e != 0 {
				return 0, e
			}
		} else {
			n = copy(buf, s.emulatedOpt(name))
		}
		if n > 0 {
			dst, ok := t.slice(a[3], uint64(n))
			if !ok {
				return 0, unix.EFAULT
			}
			copy(dst, buf[:n])
		}
		binary.LittleEndian.PutUint32(lb, uint32(n))
		return 0, 0
	})
}

// emulatedOpt is the value of an option the monitor keeps for the guest.
func (s *socket) emulatedOpt(name int) []byte {
	s.net.mu.Lock()
	defer s.net.mu.Unlock()
	le := binary.LittleEndian
	if name == unix.SO_LINGER {
		return le.AppendUint32(le.AppendUint32(nil, uint32(s.linger.Onoff)), uint32(s.linger.Linger))
	}
	on := map[int]bool{unix.IPV6_V6ONLY: s.v6only, unix.SO_REUSEADDR: s.reuseAddr, unix.SO_REUSEPORT: s.reusePort}[name]
	v := uint32(0)
	if on {
		v = 1
	}
	return le.AppendUint32(nil, v)
}

// socketIoctl answers the ioctls of sockets: bytes waiting to be read
// (FIONREAD) or sent (SIOCOUTQ), and FIONBIO.
func socketIoctl(t *thread, s *socket, req, arg uint64) (uint64, unix.Errno) {
	b, ok := t.slice(arg, 4)
	if !ok {
		return 0, unix.EFAULT
	}
	switch req {
	case unix.SIOCINQ, unix.SIOCOUTQ:
		v, err := unix.IoctlGetInt(s.fd, uint(req))
		if err != nil {
			return 0, errnoOf(err)
		}
		binary.LittleEndian.PutUint32(b, uint32(v))
		return 0, 0
	case fionbio:
		e := s.setNonblock(binary.LittleEndian.Uint32(b) != 0)
		t.vm.fds.flagsChanged()
		return 0, e
	}
	return 0, unix.ENOTTY
}
