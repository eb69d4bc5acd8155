package monitor

import (
	"os"

	"golang.org/x/sys/unix"
)

// console is one of the guest's descriptors 0, 1 and 2 (docs/abi.md,
// devices): 0 reads end-of-file, 1 and 2 write to the operator's standard
// output and error. The output descriptors share the operator's file
// description, so their host flags are left as they are, and writes block
// on the host as a terminal's do.
type console struct {
	hostFD
	input bool
}

var (
	_ reader   = (*console)(nil)
	_ writer   = (*console)(nil)
	_ flagged  = (*console)(nil)
	_ pollable = (*console)(nil)
)

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

// writev writes an output console; the input console is not open for
// writing.
func (c *console) writev(_ *thread, iov [][]byte) (int, unix.Errno) {
	if c.input {
		return 0, unix.EBADF
	}
	n, err := unix.Writev(c.fd, iov)
	return n, errnoOf(err)
}

func (c *console) pollFD() int { return c.fd }
