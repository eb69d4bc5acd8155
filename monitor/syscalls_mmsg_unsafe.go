package monitor

import (
	"encoding/binary"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Layout of struct mmsghdr on x86-64 (include/linux/socket.h): a msghdr,
// then msg_len.
const (
	mmsghdrSize  = 64
	msgNameOff   = 0
	msgIovOff    = 16
	msgIovlenOff = 24
	msgCtrlOff   = 32
	msgFlagsOff  = 48
	msgLenOff    = 56
	// maxMmsg bounds the messages in one call (Linux's UIO_MAXIOV).
	maxMmsg = 1024
)

// sysRecvmmsg implements recvmmsg(fd, msgvec, vlen, flags, timeout) for
// frame devices: several Ethernet frames per exit (docs/abi.md). Messages
// must carry no name and no control data; timeouts are not supported.
func sysRecvmmsg(t *vcpu, a *sysArgs) (uint64, control) {
	if a[4] != 0 {
		return fail(unix.EINVAL)
	}
	return mmsg(t, a, unix.SYS_RECVMMSG, a[3]&(unix.MSG_DONTWAIT|unix.MSG_WAITFORONE))
}

// sysSendmmsg implements sendmmsg(fd, msgvec, vlen, flags) likewise.
func sysSendmmsg(t *vcpu, a *sysArgs) (uint64, control) {
	return mmsg(t, a, unix.SYS_SENDMMSG, a[3]&unix.MSG_DONTWAIT)
}

// mmsg translates the guest's message vector to host iovecs pointing into
// guest memory, makes the host call, and writes back each message's
// length and flags.
func mmsg(t *vcpu, a *sysArgs, nr uintptr, flags uint64) (uint64, control) {
	f, ok := t.vm.fds.acquire(a[0])
	if !ok {
		return fail(unix.EBADF)
	}
	defer f.release()
	if f.block != nil {
		return fail(unix.ENOTSOCK)
	}
	vlen := a[2]
	if vlen == 0 {
		return 0, ctlReturn
	}
	vlen = min(vlen, maxMmsg)
	raw, ok := t.slice(a[1], vlen*mmsghdrSize)
	if !ok {
		return fail(unix.EFAULT)
	}
	le := binary.LittleEndian
	hdrs := make([]unix.Mmsghdr, vlen)
	iovs := make([][]unix.Iovec, vlen)
	for i := range hdrs {
		g := raw[i*mmsghdrSize:]
		if le.Uint64(g[msgNameOff:]) != 0 || le.Uint64(g[msgCtrlOff:]) != 0 {
			return fail(unix.EINVAL) // named and ancillary messages are not part of the ABI
		}
		bufs, e := t.iovecs(le.Uint64(g[msgIovOff:]), le.Uint64(g[msgIovlenOff:]))
		if e != 0 {
			return fail(e)
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
	n, _, e := unix.Syscall6(nr, uintptr(f.host), uintptr(unsafe.Pointer(&hdrs[0])), uintptr(vlen), uintptr(flags), 0, 0)
	runtime.KeepAlive(iovs)
	if e != 0 {
		return fail(e)
	}
	for i := uintptr(0); i < n; i++ {
		g := raw[i*mmsghdrSize:]
		le.PutUint32(g[msgLenOff:], hdrs[i].Len)
		le.PutUint32(g[msgFlagsOff:], uint32(hdrs[i].Hdr.Flags))
	}
	return uint64(n), ctlReturn
}
