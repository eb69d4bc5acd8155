package monitor

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"atoll.dev/atoll/abi"
	"atoll.dev/atoll/netstack"
)

// netDevice is an attached network device (docs/abi.md, devices): a tap
// descriptor or one end of a SOCK_SEQPACKET socket pair, one Ethernet frame
// per read or write, non-blocking on the host (hostStream). Once the
// guest maps its frame rings (net_ring.go), frames move through them
// only, and the descriptor's readiness is the rings' notification.
type netDevice struct {
	*hostStream
	name    string
	noRings bool                       // Device.NoRings
	frames  func(netstack.BatchDevice) // Device.Frames
	ring    atomic.Pointer[netRing]
}

var (
	_ reader   = (*netDevice)(nil)
	_ writer   = (*netDevice)(nil)
	_ flagged  = (*netDevice)(nil)
	_ pollable = (*netDevice)(nil)
)

func init() { deviceKinds[abi.KindNet] = attachNet }

// attachNet makes a network device of host descriptor h. The guest sees
// it non-blocking.
func attachNet(d Device, h int) (file, error) {
	if err := unix.SetNonblock(h, true); err != nil {
		return nil, fmt.Errorf("net device %s: %w", d.Name, err)
	}
	return &netDevice{hostStream: newHostStream(h, true), name: d.Name, noRings: d.NoRings, frames: d.Frames}, nil
}

// errRingMode answers the frame calls on a device whose rings are mapped.
const errRingMode = unix.EBUSY

func (n *netDevice) readv(t *thread, iov [][]byte) (int, unix.Errno) {
	if n.ring.Load() != nil {
		return 0, errRingMode
	}
	return n.hostStream.readv(t, iov)
}

func (n *netDevice) writev(t *thread, iov [][]byte) (int, unix.Errno) {
	if n.ring.Load() != nil {
		return 0, errRingMode
	}
	return n.hostStream.writev(t, iov)
}

// pollFD is the rings' notification once they are mapped. (It is read
// while the guest holds a reference to the device, so the device is not
// closing and note is open.)
func (n *netDevice) pollFD() int {
	if r := n.ring.Load(); r != nil {
		return r.note
	}
	return n.fd
}

func (n *netDevice) close() {
	if r := n.ring.Load(); r != nil {
		r.stop()
	}
	n.hostStream.close()
}

// mmsg moves several frames in one host recvmmsg or sendmmsg (nr).
func (n *netDevice) mmsg(nr uintptr, hdrs []unix.Mmsghdr, flags uint64) (int, unix.Errno) {
	if n.ring.Load() != nil {
		return 0, errRingMode
	}
	return hostMmsg(n.fd, nr, hdrs, flags)
}

// sysRecvmmsg implements recvmmsg(fd, msgvec, vlen, flags, timeout): on
// sockets, as recvmsg per message; on network devices, several frames per
// exit (docs/abi.md), with no names and no control data. Timeouts are not
// supported.
func sysRecvmmsg(t *thread, a sysArgs) (uint64, unix.Errno) {
	if a[4] != 0 {
		return t.unsupported("a timeout", unix.EINVAL)
	}
	return mmsg(t, a, unix.SYS_RECVMMSG)
}

// sysSendmmsg implements sendmmsg(fd, msgvec, vlen, flags) likewise.
func sysSendmmsg(t *thread, a sysArgs) (uint64, unix.Errno) {
	return mmsg(t, a, unix.SYS_SENDMMSG)
}

// mmsg moves a guest message vector: a socket's message by message, a
// network device's in one host call, with host iovecs pointing into guest
// memory, writing back each message's length and flags.
func mmsg(t *thread, a sysArgs, nr uintptr) (uint64, unix.Errno) {
	f, ok := t.vm.fds.acquire(a[0])
	if !ok {
		return 0, unix.EBADF
	}
	defer f.release()
	recv := nr == unix.SYS_RECVMMSG
	vlen := min(a[2], maxMmsg)
	raw, ok := t.slice(a[1], vlen*mmsghdrSize)
	switch {
	case !ok:
		return 0, unix.EFAULT
	case vlen == 0:
		return 0, 0
	}
	switch x := f.file.(type) {
	case *socket:
		allowed := uint64(sendFlags)
		if recv {
			allowed = recvFlags | unix.MSG_WAITFORONE
		}
		if e := checkFlags(t, a[3], allowed); e != 0 {
			return 0, e
		}
		return socketMmsg(t, x, raw, vlen, int(a[3]), recv)
	case *netDevice:
		flags := a[3] & unix.MSG_DONTWAIT
		if recv {
			flags = a[3] & (unix.MSG_DONTWAIT | unix.MSG_WAITFORONE)
		}
		return deviceMmsg(t, x, raw, vlen, nr, flags)
	}
	return 0, unix.ENOTSOCK
}

func deviceMmsg(t *thread, dev *netDevice, raw []byte, vlen uint64, nr uintptr, flags uint64) (uint64, unix.Errno) {
	le := binary.LittleEndian
	hdrs := make([]unix.Mmsghdr, vlen)
	iovs := make([][]unix.Iovec, vlen)
	for i := range hdrs {
		g := raw[i*mmsghdrSize:]
		if le.Uint64(g[msgNameOff:]) != 0 || le.Uint64(g[msgControlOff:]) != 0 {
			return t.unsupported("messages with a name or control data", unix.EINVAL)
		}
		bufs, e := t.iovecs(le.Uint64(g[msgIovOff:]), le.Uint64(g[msgIovlenOff:]))
		if e != 0 {
			return 0, e
		}
		for _, b := range bufs {
			if len(b) > 0 {
				iovs[i] = append(iovs[i], unix.Iovec{Base: &b[0], Len: uint64(len(b))})
			}
		}
		if len(iovs[i]) > 0 {
			hdrs[i].Hdr.Iov = &iovs[i][0]
			hdrs[i].Hdr.Iovlen = uint64(len(iovs[i]))
		}
	}
	n, e := dev.mmsg(nr, hdrs, flags)
	runtime.KeepAlive(iovs)
	if e != 0 {
		return 0, e
	}
	for i := 0; i < n; i++ {
		g := raw[i*mmsghdrSize:]
		le.PutUint32(g[msgLenOff:], hdrs[i].Len)
		le.PutUint32(g[msgFlagsOff:], uint32(hdrs[i].Hdr.Flags))
	}
	return uint64(n), 0
}
