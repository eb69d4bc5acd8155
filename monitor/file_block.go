package monitor

import (
	"fmt"

	"golang.org/x/sys/unix"

	"atoll.dev/atoll/abi"
	"atoll.dev/atoll/manifest"
)

// blockDevice is an attached block device (docs/abi.md, devices): a host
// file the operator named, read and written only with pread64 and
// pwrite64 in whole sectors within the declared size.
type blockDevice struct {
	hostFD
	size, sector uint64
}

var (
	_ positional = (*blockDevice)(nil)
	_ seeker     = (*blockDevice)(nil)
	_ syncer     = (*blockDevice)(nil)
)

func init() { deviceKinds[abi.KindBlock] = attachBlock }

// attachBlock makes a block device of host descriptor h, with the declared
// geometry.
func attachBlock(d Device, h int) (file, error) {
	spec, ok := d.Spec.(*manifest.BlockSpec)
	if !ok || spec.SectorSize == 0 || spec.Size%spec.SectorSize != 0 {
		return nil, fmt.Errorf("block device %s: bad geometry %+v", d.Name, d.Spec)
	}
	return &blockDevice{hostFD: hostFD{h}, size: spec.Size, sector: spec.SectorSize}, nil
}

// checkIO validates a transfer of n bytes at off.
func (b *blockDevice) checkIO(off, n uint64) unix.Errno {
	if off%b.sector != 0 || n%b.sector != 0 || off > b.size || n > b.size-off {
		return unix.EINVAL
	}
	return 0
}

func (b *blockDevice) pread(p []byte, off uint64) (int, unix.Errno) {
	if e := b.checkIO(off, uint64(len(p))); e != 0 {
		return 0, e
	}
	n, err := unix.Pread(b.fd, p, int64(off))
	return n, errnoOf(err)
}

func (b *blockDevice) pwrite(p []byte, off uint64) (int, unix.Errno) {
	if e := b.checkIO(off, uint64(len(p))); e != 0 {
		return 0, e
	}
	n, err := unix.Pwrite(b.fd, p, int64(off))
	return n, errnoOf(err)
}

// seek is refused: a block device is addressed by offset only.
func (b *blockDevice) seek(int64, int) (int64, unix.Errno) { return 0, unix.EINVAL }

// sync returns once every completed write is on the host's storage.
func (b *blockDevice) sync() unix.Errno { return errnoOf(unix.Fsync(b.fd)) }
