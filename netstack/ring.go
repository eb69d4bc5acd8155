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
		n, err := d.rx.Avail()
		if err != nil {
			return 0, err
		}
		if n > 0 {
			n = min(n, len(bufs))
			got := 0
			for i := 0; i < n; i++ {
				if f := d.rx.Frame(i); f != nil && len(f) <= len(bufs[got]) {
					sizes[got] = copy(bufs[got], f)
					got++
				}
			}
			if d.rx.Release(n) {
				doorbell(uintptr(d.region.RXDoorbell))
			}
			d.in.Add(uint64(n))
			if got > 0 {
				return got, nil
			}
			continue
		}
		err = d.rc.Read(func(uintptr) bool {
			ready, _ := d.rx.Sleep() // a corrupt ring is ready: Avail reports it
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
	sent := 0
	for sent < len(frames) {
		space, err := d.tx.Space()
		if err != nil {
			return sent, err
		}
		if space == 0 {
			err := d.rc.Write(func(uintptr) bool {
				ready, _ := d.tx.Wait()
				return ready
			})
			if err != nil {
				return sent, err
			}
			continue
		}
		k := min(space, len(frames)-sent)
		for i := 0; i < k; i++ {
			f := frames[sent+i]
			if len(f) > framering.SlotSize {
				k = i
				break
			}
			d.tx.SetLen(i, copy(d.tx.Slot(i), f))
		}
		if k > 0 && d.tx.Publish(k) {
			doorbell(uintptr(d.region.TXDoorbell))
		}
		d.out.Add(uint64(k))
		sent += k
		if sent < len(frames) && len(frames[sent]) > framering.SlotSize {
			return sent, fmt.Errorf("frame of %d bytes: a ring slot holds %d", len(frames[sent]), framering.SlotSize)
		}
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
