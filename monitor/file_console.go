package monitor

import (
	"os"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// console is one of the guest's descriptors 0, 1 and 2 (docs/abi.md,
// devices): 0 reads end-of-file, 1 and 2 write to the operator's standard
// output and error. The output descriptors share the operator's file
// description, so the guest never changes its host flags: its O_NONBLOCK
// is kept here. Writes wait for the host in bounded polls, so that a
// stalled terminal or pipe cannot hold a thread past the VM's end.
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

// openConsole installs descriptors 0, 1 and 2 in ft: 0 is a pipe whose
// other end is closed, 1 and 2 duplicates of stdout and stderr (the
// monitor's stderr when nil).
func openConsole(ft *fdTable, stdout, stderr *os.File) error {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return err
	}
	unix.Close(p[1])
	ft.installAt(newOpenFile(&console{hostFD: hostFD{p[0]}, input: true}), 0)
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

// readv reads the input console; the output consoles are not open for
// reading.
func (c *console) readv(_ *thread, iov [][]byte) (int, unix.Errno) {
	if !c.input {
		return 0, unix.EBADF
	}
	n, err := unix.Readv(c.fd, iov)
	return n, errnoOf(err)
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
			if e := t.waitReady(c.fd, unix.POLLOUT); e != 0 {
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
