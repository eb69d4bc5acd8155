package monitor

import (
	"encoding/binary"

	"golang.org/x/sys/unix"
)

// pipeEnd is one end of a pipe the guest made: a host pipe, non-blocking on
// the host (hostStream).
type pipeEnd struct{ *hostStream }

var (
	_ reader   = (*pipeEnd)(nil)
	_ writer   = (*pipeEnd)(nil)
	_ flagged  = (*pipeEnd)(nil)
	_ pollable = (*pipeEnd)(nil)
)

func sysPipe(t *thread, a sysArgs) (uint64, unix.Errno) { return sysPipe2(t, sysArgs{a[0], 0}) }

// sysPipe2 implements pipe2(fds, flags).
func sysPipe2(t *thread, a sysArgs) (uint64, unix.Errno) {
	if a[1]&^(unix.O_NONBLOCK|unix.O_CLOEXEC) != 0 {
		return 0, unix.EINVAL
	}
	b, ok := t.slice(a[0], 8)
	if !ok {
		return 0, unix.EFAULT
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		return 0, errnoOf(err)
	}
	nonblock := a[1]&unix.O_NONBLOCK != 0
	w := newOpenFile(&pipeEnd{newHostStream(p[1], nonblock)})
	r := newOpenFile(&pipeEnd{newHostStream(p[0], nonblock)})
	r.ref() // ours, to undo the install if the write end finds no room
	defer r.release()
	rfd, e := t.vm.fds.installFile(r, 0)
	if e != 0 {
		w.release()
		return 0, e
	}
	wfd, e := t.vm.fds.installFile(w, 0)
	if e != 0 {
		t.vm.fds.closeIf(rfd, r)
		return 0, e
	}
	binary.LittleEndian.PutUint32(b, uint32(rfd))
	binary.LittleEndian.PutUint32(b[4:], uint32(wfd))
	return 0, 0
}
