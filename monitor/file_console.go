package monitor

import (
	"os"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// console is one of the guest's descriptors 0, 1 and 2 (docs/abi.md,
// devices): 0 reads the operator's standard input (end-of-file when there
// is none), 1 and 2 write to the operator's standard output and error.
// They share the operator's file descriptions, so the guest never changes
// their host flags: its O_NONBLOCK is kept here. Reads and writes wait for
// the host in bounded polls, so that a terminal, pipe or stalled reader
// cannot hold a thread past the VM's end.
type console struct {
	hostFD
	input    bool
	nonblock atomic.Bool // the guest's view; the host's flags are the operator's
}

var (
	_ reader   = (*console)(nil)
	_ writer   = (*console)(nil)
	_ flagged  = (*console)(nil)
	_ syncer   = (*console)(nil)
	_ pollable = (*console)(nil)
)

// consoleChunk bounds one host write: a pipe that polls writable has room
// for at least PIPE_BUF bytes, so a write this size does not block.
const consoleChunk = 4096

// openConsole installs descriptors 0, 1 and 2 in ft: duplicates of stdin
// (when nil, a pipe whose other end is closed: end-of-file), stdout and
// stderr (the monitor's stderr when nil).
func openConsole(ft *fdTable, stdin, stdout, stderr *os.File) error {
	in := -1
	if stdin != nil {
		h, err := unix.FcntlInt(stdin.Fd(), unix.F_DUPFD_CLOEXEC, 3)
		if err != nil {
			return err
		}
		in = h
	} else {
		var p [2]int
		if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
			return err
		}
		unix.Close(p[1])
		in = p[0]
	}
	ft.installAt(newOpenFile(&console{hostFD: hostFD{in}, input: true}), 0)
	for gfd, f := range map[int]*os.File{1: stdout, 2: stderr} {
		if f == nil {
			f = os.Stderr
		}
		h, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 3)
		if err != nil {
			return err
		}
		ft.installAt(newOpenFile(&console{hostFD: hostFD{h}}), gfd)
	}
	return nil
}

// readv reads the input console, waiting for the host while it has
// nothing (unless the guest asked for O_NONBLOCK); the output consoles are
// not open for reading.
func (c *console) readv(t *thread, iov [][]byte) (int, unix.Errno) {
	if !c.input {
		return 0, unix.EBADF
	}
	for {
		if c.nonblock.Load() {
			// The host descriptor may block: read only what is there.
			pfd := []unix.PollFd{{Fd: int32(c.fd), Events: unix.POLLIN}}
			if n, _ := unix.Poll(pfd, 0); n == 0 {
				return 0, unix.EAGAIN
			}
		} else if e := t.waitFor(c.fd, unix.POLLIN); e != 0 {
			return 0, e
		}
		n, err := unix.Readv(c.fd, iov)
		switch {
		case err == unix.EINTR, err == unix.EAGAIN && !c.nonblock.Load():
			continue // the operator's stdin is non-blocking, or a signal
		case err != nil:
			return 0, errnoOf(err)
		}
		return n, 0
	}
}

// writev writes an output console, waiting for the host while it is not
// writable; the input console is not open for writing. Interrupted, it
// reports what was written, if anything.
func (c *console) writev(t *thread, iov [][]byte) (int, unix.Errno) {
	if c.input {
		return 0, unix.EBADF
	}
	done := 0
	for _, b := range iov {
		for len(b) > 0 {
			if e := t.waitFor(c.fd, unix.POLLOUT); e != 0 {
				return done, orIfNone(done, e)
			}
			n, err := unix.Write(c.fd, b[:min(len(b), consoleChunk)])
			if err == unix.EAGAIN || err == unix.EINTR {
				continue
			}
			if err != nil {
				return done, orIfNone(done, errnoOf(err))
			}
			done += n
			b = b[n:]
		}
	}
	t.vm.timeline.mark(stageFirstOutput)
	return done, 0
}

// orIfNone is e when nothing was transferred, else no error: a partial
// transfer reports its count.
func orIfNone(done int, e unix.Errno) unix.Errno {
	if done > 0 {
		return 0
	}
	return e
}

func (c *console) statusFlags() (int, unix.Errno) {
	fl, e := c.hostFD.statusFlags()
	fl &^= unix.O_NONBLOCK
	if c.nonblock.Load() {
		fl |= unix.O_NONBLOCK
	}
	return fl, e
}

func (c *console) setNonblock(on bool) unix.Errno {
	c.nonblock.Store(on)
	return 0
}

// sync flushes the operator's file, as fsync of a redirected stdout does
// on Linux (a terminal or pipe answers EINVAL).
func (c *console) sync() unix.Errno { return errnoOf(unix.Fsync(c.fd)) }

func (c *console) pollFD() int { return c.fd }
