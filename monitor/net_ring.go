package monitor

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"atoll.dev/atoll/framering"
	"atoll.dev/atoll/monitor/guestmem"
	"atoll.dev/atoll/netstack"
)

// A network device's frame rings (docs/abi.md, section 5; package
// framering): the guest maps them with mmap on the device, and from then
// on two goroutines of the monitor move frames between the rings and the
// backend's descriptor, with no exit while both sides are busy. The guest
// wakes a sleeping pump with a doorbell — a 4-byte write to a page of the
// system area that is mapped to no memory, which KVM turns into an
// eventfd signal (an ioeventfd) without leaving the host kernel — and
// the monitor wakes the guest through the device descriptor's readiness,
// an eventfd the guest's epoll watches.

const (
	// doorbellAddr is the system-area page of doorbells: ring i's TX
	// doorbell is the word at doorbellAddr+16i, its RX doorbell 8 bytes
	// above. The page maps to guest-physical MMIOBase, where no memory is.
	doorbellAddr = guestmem.SystemBase + 0x6000
	// maxRings is how many rings the doorbell page has room for.
	maxRings = guestmem.PageSize / 16
	// ringBatch is how many frames a pump moves per backend call.
	ringBatch = 32
)

// netRing is a device's mapped rings and the pumps that serve them.
type netRing struct {
	name   string
	addr   guestmem.GuestAddr // where the region is
	region *framering.Region
	dev    netstack.BatchDevice // the backend's descriptor (a dup)
	// note is the eventfd behind the guest descriptor's readiness.
	note int
	// txKick and rxKick are the doorbells' eventfds.
	txKick, rxKick *os.File
	log            *onceLog
	wg             sync.WaitGroup
	stopOnce       sync.Once

	// Counters for --stats.
	txFrames, rxFrames, dropped, doorbells, wakeups atomic.Uint64
}

// RingStats counts what moved through one device's rings.
type RingStats struct {
	Device string
	// TXFrames went from the guest to the backend, RXFrames the other
	// way; Dropped are TX slots whose length was no frame.
	TXFrames, RXFrames, Dropped uint64
	// Doorbells are the guest's wake-ups of a sleeping pump; Wakeups the
	// monitor's of a sleeping guest.
	Doorbells, Wakeups uint64
	// RXPending are frames in the RX ring the guest has not taken, and
	// TXPending frames the guest has put in the TX ring that the monitor
	// has not, as the indices stand (the guest's are its word only).
	RXPending, TXPending uint64
}

func (r *netRing) stats() RingStats {
	s := RingStats{Device: r.name, TXFrames: r.txFrames.Load(), RXFrames: r.rxFrames.Load(),
		Dropped: r.dropped.Load(), Doorbells: r.doorbells.Load(), Wakeups: r.wakeups.Load()}
	if n, err := r.region.RX.Pending(); err == nil {
		s.RXPending = uint64(n)
	}
	if n, err := r.region.TX.Pending(); err == nil {
		s.TXPending = uint64(n)
	}
	return s
}

// mapRing sets up the rings of device n for the guest: it maps a region
// of guest memory, lays it out, registers the doorbells and starts the
// pumps. It returns the region's guest address.
func (v *VM) mapRing(n *netDevice) (uint64, unix.Errno) {
	v.ringsMu.Lock()
	defer v.ringsMu.Unlock()
	if n.ring.Load() != nil {
		return 0, unix.EBUSY
	}
	i := len(v.rings)
	if i >= maxRings {
		return 0, unix.ENOMEM
	}
	addr, e := v.mem.Mmap(0, framering.Size, unix.PROT_READ|unix.PROT_WRITE, 0)
	if e != 0 {
		return 0, e
	}
	r, err := v.newRing(n, addr, i)
	if err != nil {
		v.mem.Munmap(addr, framering.Size)
		v.log.printf("net device %s: cannot map its rings: %v", n.name, err)
		return 0, unix.ENODEV
	}
	v.rings = append(v.rings, r)
	n.ring.Store(r)
	r.start()
	return uint64(addr), 0
}

// newRing makes ring number i of device n in guest memory at addr.
func (v *VM) newRing(n *netDevice, addr guestmem.GuestAddr, i int) (*netRing, error) {
	b, err := v.mem.Slice(addr, framering.Size)
	if err != nil {
		return nil, err
	}
	db := uint64(doorbellAddr) + 16*uint64(i)
	region, err := framering.Init(b, db, db+8)
	if err != nil {
		return nil, err
	}
	r := &netRing{name: n.name, addr: addr, region: region, log: v.log, note: -1}
	ok := false
	defer func() {
		if !ok {
			r.closeFiles()
		}
	}()
	if r.note, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	gpa := v.mem.MMIOBase() + 16*uint64(i)
	for k, kick := range []**os.File{&r.txKick, &r.rxKick} {
		fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
		if err != nil {
			return nil, fmt.Errorf("eventfd: %w", err)
		}
		*kick = os.NewFile(uintptr(fd), "doorbell")
		if err := v.mach.doorbell(gpa+8*uint64(k), fd); err != nil {
			return nil, err
		}
	}
	h, err := unix.FcntlInt(uintptr(n.fd), unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		return nil, err
	}
	dev, err := netstack.NewFileDevice(os.NewFile(uintptr(h), "net:"+n.name))
	if err != nil {
		unix.Close(h)
		return nil, err
	}
	r.dev = dev.(netstack.BatchDevice)
	ok = true
	return r, nil
}

func (r *netRing) start() {
	r.wg.Add(2)
	go r.transmit()
	go r.receive()
}

// transmit moves the guest's frames from the TX ring to the backend.
func (r *netRing) transmit() {
	defer r.wg.Done()
	c := r.region.TX.Consumer()
	frames := make([][]byte, 0, ringBatch)
	for {
		n, err := c.Avail()
		if err != nil {
			r.fail(err)
			return
		}
		if n == 0 {
			ready, err := c.Sleep()
			if err != nil {
				r.fail(err)
				return
			}
			if !ready {
				if !r.waitKick(r.txKick) {
					return
				}
				c.Wake()
			}
			continue
		}
		n = min(n, ringBatch)
		frames = frames[:0]
		for i := 0; i < n; i++ {
			if f := c.Frame(i); f != nil {
				frames = append(frames, f)
			} else {
				r.dropped.Add(1)
			}
		}
		if len(frames) > 0 {
			// The frames are read straight from guest memory.
			if _, err := r.dev.WriteFrames(frames); err != nil && errors.Is(err, os.ErrClosed) {
				return
			}
			r.txFrames.Add(uint64(len(frames)))
		}
		if c.Release(n) {
			r.wake()
		}
	}
}

// receive moves the backend's frames into the RX ring.
func (r *netRing) receive() {
	defer r.wg.Done()
	p := r.region.RX.Producer()
	bufs := make([][]byte, ringBatch)
	sizes := make([]int, ringBatch)
	for {
		space, err := p.Space()
		if err != nil {
			r.fail(err)
			return
		}
		if space == 0 {
			ready, err := p.Wait()
			if err != nil {
				r.fail(err)
				return
			}
			if !ready && !r.waitKick(r.rxKick) {
				return
			}
			continue
		}
		n := min(space, ringBatch)
		for i := range n {
			bufs[i] = p.Slot(i) // frames land straight in guest memory
		}
		got, err := r.dev.ReadFrames(bufs[:n], sizes[:n])
		if err != nil {
			return
		}
		for i := 0; i < got; i++ {
			if sizes[i] == 0 {
				return // the backend closed its end
			}
			p.SetLen(i, sizes[i])
		}
		r.rxFrames.Add(uint64(got))
		if p.Publish(got) {
			r.wake()
		}
	}
}

// waitKick blocks until the guest rings doorbell f, counting the rings;
// it reports false once the ring is stopping.
func (r *netRing) waitKick(f *os.File) bool {
	var b [8]byte
	if _, err := f.Read(b[:]); err != nil {
		return false
	}
	r.doorbells.Add(binary.LittleEndian.Uint64(b[:]))
	return true
}

// wake makes the guest descriptor readable and writable again: an edge
// for the guest's epoll.
func (r *netRing) wake() {
	var one [8]byte
	one[0] = 1
	unix.Write(r.note, one[:])
	r.wakeups.Add(1)
}

// fail stops a ring whose guest corrupted it. The device stays silent
// from then on; nothing outside the ring is touched.
func (r *netRing) fail(err error) {
	r.log.printf("net device %s: %v: the device stops", r.name, err)
	go r.stop()
}

// stop ends the pumps and releases the doorbells and the backend's
// descriptor. The notification stays open for the guest descriptor's
// readiness until the device closes; the region stays guest memory.
func (r *netRing) stop() {
	r.stopOnce.Do(func() {
		r.txKick.Close()
		r.rxKick.Close()
		r.dev.Close()
		r.wg.Wait()
	})
}

// closeFiles releases what a half-made ring holds.
func (r *netRing) closeFiles() {
	for _, f := range []*os.File{r.txKick, r.rxKick} {
		if f != nil {
			f.Close()
		}
	}
	if r.note >= 0 {
		unix.Close(r.note)
	}
}
