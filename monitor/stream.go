package monitor

import (
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// hostStream is a host descriptor that never blocks on the host, read and
// written in sequence, with the guest's own O_NONBLOCK flag kept here:
// when the guest's view is blocking, a read or write that would block
// waits in bounded polls instead, so that it notices the VM ending and
// signals. Pipes, eventfds and network devices are host streams.
type hostStream struct {
	hostFD
	nonblock atomic.Bool
}

// newHostStream wraps host descriptor fd, which must be O_NONBLOCK, with
// the guest's O_NONBLOCK flag nonblock.
func newHostStream(fd int, nonblock bool) *hostStream {
	s := &hostStream{hostFD: hostFD{fd}}
	s.nonblock.Store(nonblock)
	return s
}

func (s *hostStream) pollFD() int { return s.fd }

// readv reads into iov, waiting while the guest's view is blocking and the
// host has nothing to read.
func (s *hostStream) readv(t *thread, iov [][]byte) (int, unix.Errno) {
	for {
		n, err := unix.Readv(s.fd, iov)
		if err != unix.EAGAIN || s.nonblock.Load() {
			return n, errnoOf(err)
		}
		if e := t.waitReady(s.fd, unix.POLLIN); e != 0 {
			return 0, e
		}
	}
}

// writev writes iov. While the guest's view is blocking it waits until
// everything is written, as a blocking write does, or until it is
// interrupted; then it reports what was written, if anything.
func (s *hostStream) writev(t *thread, iov [][]byte) (int, unix.Errno) {
	total := 0
	for _, b := range iov {
		total += len(b)
	}
	done := 0
	for {
		n, err := unix.Writev(s.fd, skipIovecs(iov, done))
		if err == nil {
			done += n
			if done >= total || n == 0 || s.nonblock.Load() {
				return done, 0
			}
			continue // partial write: try the rest
		}
		e := errnoOf(err)
		if e == unix.EAGAIN && !s.nonblock.Load() {
			e = t.waitReady(s.fd, unix.POLLOUT)
			if e == 0 {
				continue
			}
		}
		if done > 0 {
			return done, 0
		}
		return 0, e
	}
}

// statusFlags returns the host's flags with the guest's O_NONBLOCK.
func (s *hostStream) statusFlags() (int, unix.Errno) {
	fl, err := unix.FcntlInt(uintptr(s.fd), unix.F_GETFL, 0)
	if err != nil {
		return 0, errnoOf(err)
	}
	fl &^= unix.O_NONBLOCK
	if s.nonblock.Load() {
		fl |= unix.O_NONBLOCK
	}
	return fl, 0
}

// setNonblock sets the guest's O_NONBLOCK; the host descriptor stays
// non-blocking.
func (s *hostStream) setNonblock(on bool) unix.Errno {
	s.nonblock.Store(on)
	return 0
}

// waitChunk bounds each blocking host call so that a thread notices the
// VM ending and queued signals.
const waitChunk = 500 * time.Millisecond

// waitReady waits up to waitChunk for host descriptor fd to report
// events, for a call the guest made in blocking mode. It answers EINTR
// when the call must give up: the VM is ending or a signal is pending.
func (t *thread) waitReady(fd int, events int16) unix.Errno {
	_, e := t.pollReady(fd, events)
	return e
}

// pollReady is waitReady that also says whether fd became ready (or hung
// up) rather than the wait running out.
func (t *thread) pollReady(fd int, events int16) (bool, unix.Errno) {
	if t.interrupted() {
		return false, unix.EINTR
	}
	pfd := []unix.PollFd{{Fd: int32(fd), Events: events}}
	if _, err := unix.Poll(pfd, int(waitChunk/time.Millisecond)); err != nil && err != unix.EINTR {
		return false, errnoOf(err)
	}
	if t.interrupted() {
		return false, unix.EINTR
	}
	return pfd[0].Revents != 0, 0
}

// waitFor waits in bounded polls until host descriptor fd is ready for
// events (or hung up), for a host call that would otherwise block the
// thread: EINTR when the call must give up.
func (t *thread) waitFor(fd int, events int16) unix.Errno {
	for {
		ready, e := t.pollReady(fd, events)
		if e != 0 || ready {
			return e
		}
	}
}

// skipIovecs returns what is left of iov after its first n bytes.
func skipIovecs(iov [][]byte, n int) [][]byte {
	for len(iov) > 0 && n >= len(iov[0]) {
		n -= len(iov[0])
		iov = iov[1:]
	}
	if len(iov) > 0 && n > 0 {
		iov = append([][]byte{iov[0][n:]}, iov[1:]...)
	}
	return iov
}
