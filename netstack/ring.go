package netstack

import (
	"fmt"
	"os"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"

	"atoll.dev/atoll/framering"
)

// doorbell rings a doorbell of an atoll device: a 4-byte write to addr
// (ring_amd64.s).
func doorbell(addr uintptr)

// ringDevice is an atoll network device driven through its shared-memory
// frame rings (package framering, docs/abi.md): frames are copied into and
// out of guest memory the monitor's backend reads and writes too, and a
// VM exit happens only to sleep when there is nothing to do. The monitor
// wakes a sleeping reader or writer through the descriptor's readiness,
// which Go's poller watches; the device wakes a sleeping monitor by
// ringing a doorbell.
type ringDevice struct {
	f      *os.File
	rc     syscall.RawConn
	region *framering.Region
	tx     *framering.Producer
	rx     *framering.Consumer
	// in and out count the frames taken from and put in the rings.
	in, out atomic.Uint64
}

var _ BatchDevice = (*ringDevice)(nil)

// NewRingDevice maps the frame rings of the atoll network device fd (a
// descriptor atoll attached, non-blocking). It fails, leaving fd as it
// was, where the descriptor has no rings: not under atoll, or a monitor
// that offers none; then NewFileDevice drives it with system calls. The
// rings must be mapped before anything watches fd with epoll, so the
// returned device owns fd from here on.
func NewRingDevice(fd uintptr, name string) (BatchDevice, error) {
	mem, err := unix.Mmap(int(fd), 0, framering.Size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("map the frame rings: %w", err)
	}
	region, err := framering.Open(mem)
	if err != nil {
		unix.Munmap(mem)
		return nil, err
	}
	f := os.NewFile(fd, name)
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		unix.Munmap(mem)
		return nil, err
	}
	return &ringDevice{f: f, rc: rc, region: region, tx: region.TX.Producer(), rx: region.RX.Consumer()}, nil
}

// ReadFrames implements BatchDevice: it copies waiting frames out of the
// RX ring, sleeping in the poller while there are none.
func (d *ringDevice) ReadFrames(bufs [][]byte, sizes []int) (int, error) {
	for {
		got, taken, notify, err := d.rx.Take(bufs, sizes)
		if err != nil {
			return 0, err
		}
		if notify {
			doorbell(uintptr(d.region.RXDoorbell))
		}
		d.in.Add(uint64(taken))
		if got > 0 {
			return got, nil
		}
		if taken > 0 {
			continue
		}
		err = d.rc.Read(func(uintptr) bool {
			ready, _ := d.rx.Sleep() // a corrupt ring is ready: Take reports it
			return ready
		})
		if err != nil {
			return 0, err
		}
	}
}

// WriteFrames implements BatchDevice: it copies frames into the TX ring,
// waiting in the poller while it is full, and rings the doorbell when the
// monitor's side sleeps. A frame larger than a slot is refused.
func (d *ringDevice) WriteFrames(frames [][]byte) (int, error) {
	ok := len(frames)
	for i, f := range frames {
		if len(f) > framering.SlotSize {
			ok = i
			break
		}
	}
	sent := 0
	for sent < ok {
		used, put, err := d.tx.Put(frames[sent:ok])
		if err != nil {
			return sent, err
		}
		d.out.Add(uint64(put))
		if put > 0 && d.tx.Publish(put) {
			doorbell(uintptr(d.region.TXDoorbell))
		}
		sent += used
		if used > 0 {
			continue
		}
		err = d.rc.Write(func(uintptr) bool {
			ready, _ := d.tx.Wait()
			return ready
		})
		if err != nil {
			return sent, err
		}
	}
	if ok < len(frames) {
		return sent, fmt.Errorf("frame of %d bytes: a ring slot holds %d", len(frames[ok]), framering.SlotSize)
	}
	return sent, nil
}

// FrameCounts reports the frames taken from the RX ring (in) and put in
// the TX ring (out) so far.
func (d *ringDevice) FrameCounts() (in, out uint64) { return d.in.Load(), d.out.Load() }

// Read implements Device.
func (d *ringDevice) Read(b []byte) (int, error) { return ReadFrame(d, b) }

// Write implements Device.
func (d *ringDevice) Write(b []byte) (int, error) { return WriteFrame(d, b) }

// Close implements Device: it closes the descriptor, which stops the
// monitor's side. The rings stay mapped, since a reader or writer may
// still be between two looks at them; a device's descriptor is closed
// once in a process's life.
func (d *ringDevice) Close() error { return d.f.Close() }
