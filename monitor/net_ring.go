package monitor

import (
	"encoding/binary"
	"fmt"
	"net"
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
// on its frames move with no exit while both sides are busy. On the
// monitor's side the rings are a frame device (netRing): the user
// network's NAT reads and writes it itself (Device.Frames); for a tap,
// two relays move frames between it and the tap. The guest wakes a
// sleeping reader or writer with a doorbell — a 4-byte write to a page of
// the system area that is mapped to no memory, which KVM turns into an
// eventfd signal (an ioeventfd) without leaving the host kernel — and the
// monitor wakes the guest through the device descriptor's readiness, an
// eventfd the guest's epoll watches.

const (
	// doorbellAddr is the system-area page of doorbells: ring i's TX
	// doorbell is the word at doorbellAddr+16i, its RX doorbell 8 bytes
	// above. The page maps to guest-physical MMIOBase, where no memory is.
	doorbellAddr = guestmem.SystemBase + 0x6000
	// maxRings is how many rings the doorbell page has room for.
	maxRings = guestmem.PageSize / 16
)

// netRing is a device's mapped rings, as a frame device for the
// monitor's side: ReadFrames takes the guest's frames from the TX ring,
// WriteFrames puts frames in the RX ring, each sleeping when there is
// nothing to do until the guest rings the doorbell.
type netRing struct {
	name   string
	addr   guestmem.GuestAddr // where the region is
	region *framering.Region
	tx     *framering.Consumer
	rx     *framering.Producer
	// txKick and rxKick are the doorbells' eventfds.
	txKick, rxKick *os.File
	log            *onceLog
	// backend is the backend's descriptor (a dup) when the monitor
	// relays the frames to and from it; relays are the two relays.
	backend netstack.BatchDevice
	relays  sync.WaitGroup
	closed  atomic.Bool
	// noteMu guards note, the eventfd behind the guest descriptor's
	// readiness: a backend may still wake the guest while the device
	// closes, and must never write to a reused descriptor number.
	noteMu sync.RWMutex
	note   int

	// Counters for --stats.
	txFrames, rxFrames, dropped, doorbells, wakeups atomic.Uint64
}

var _ netstack.BatchDevice = (*netRing)(nil)

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
	i := v.doorbells
	if i >= maxRings {
		return 0, unix.ENOMEM
	}
	v.doorbells++ // registered doorbells stay taken, even by a ring that fails
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
	n.ring.Store(r)
	if err := r.start(n); err != nil {
		n.ring.Store(nil)
		r.closeFiles()
		v.mem.Munmap(addr, framering.Size)
		v.log.printf("net device %s: cannot start its rings: %v", n.name, err)
		return 0, unix.ENODEV
	}
	v.rings = append(v.rings, r)
	return uint64(addr), 0
}

// newRing makes ring number i of device n in guest memory at addr.
func (v *VM) newRing(n *netDevice, addr guestmem.GuestAddr, i int) (*netRing, error) {
	b, err := v.mem.Populate(addr, framering.Size)
	if err != nil {
		return nil, err
	}
	db := uint64(doorbellAddr) + 16*uint64(i)
	region, err := framering.Init(b, db, db+8)
	if err != nil {
		return nil, err
	}
	r := &netRing{name: n.name, addr: addr, region: region, tx: region.TX.Consumer(), rx: region.RX.Producer(), log: v.log, note: -1}
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
	ok = true
	return r, nil
}

// start has the frames flow: handed to the backend itself when it takes
// them (Device.Frames), else relayed to and from the backend's
// descriptor.
func (r *netRing) start(n *netDevice) error {
	if n.frames != nil {
		n.frames(r)
		return nil
	}
	h, err := unix.FcntlInt(uintptr(n.fd), unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		return err
	}
	dev, err := netstack.NewFileDevice(os.NewFile(uintptr(h), "net:"+n.name))
	if err != nil {
		unix.Close(h)
		return err
	}
	r.backend = dev.(netstack.BatchDevice)
	r.relays.Add(2)
	go func() { defer r.relays.Done(); netstack.Relay(r, r.backend); r.Close() }()
	go func() { defer r.relays.Done(); netstack.Relay(r.backend, r); r.Close() }()
	return nil
}

// ReadFrames implements netstack.BatchDevice: it copies the guest's
// frames out of the TX ring, waiting for the doorbell while there are
// none. A length that is no frame drops the frame.
func (r *netRing) ReadFrames(bufs [][]byte, sizes []int) (int, error) {
	for {
		if r.closed.Load() {
			return 0, net.ErrClosed
		}
		got, taken, notify, err := r.tx.Take(bufs, sizes)
		if err != nil {
			return 0, r.fail(err)
		}
		if notify {
			r.wake()
		}
		r.dropped.Add(uint64(taken - got))
		r.txFrames.Add(uint64(got))
		if got > 0 {
			return got, nil
		}
		if taken > 0 {
			continue
		}
		ready, err := r.tx.Sleep()
		if err != nil {
			return 0, r.fail(err)
		}
		if !ready {
			if err := r.waitKick(r.txKick); err != nil {
				return 0, err
			}
			r.tx.Wake()
		}
	}
}

// WriteFrames implements netstack.BatchDevice: it copies frames into the
// RX ring, waiting for the doorbell while it is full, and wakes the guest
// if it sleeps. A frame larger than a slot is dropped, as on a wire.
func (r *netRing) WriteFrames(frames [][]byte) (int, error) {
	sent := 0
	for sent < len(frames) {
		if r.closed.Load() {
			return sent, net.ErrClosed
		}
		used, put, err := r.rx.Put(frames[sent:])
		if err != nil {
			return sent, r.fail(err)
		}
		r.dropped.Add(uint64(used - put))
		r.rxFrames.Add(uint64(put)) // counted before the guest can see them
		if put > 0 && r.rx.Publish(put) {
			r.wake()
		}
		sent += used
		if used > 0 {
			continue
		}
		ready, err := r.rx.Wait()
		if err != nil {
			return sent, r.fail(err)
		}
		if !ready {
			if err := r.waitKick(r.rxKick); err != nil {
				return sent, err
			}
		}
	}
	return sent, nil
}

// Read implements netstack.Device.
func (r *netRing) Read(b []byte) (int, error) { return netstack.ReadFrame(r, b) }

// Write implements netstack.Device.
func (r *netRing) Write(b []byte) (int, error) { return netstack.WriteFrame(r, b) }

// waitKick blocks until the guest rings doorbell f, counting the rings;
// it fails once the ring is closed.
func (r *netRing) waitKick(f *os.File) error {
	var b [8]byte
	if _, err := f.Read(b[:]); err != nil {
		return net.ErrClosed
	}
	r.doorbells.Add(binary.LittleEndian.Uint64(b[:]))
	return nil
}

// wake makes the guest descriptor readable and writable again: an edge
// for the guest's epoll.
func (r *netRing) wake() {
	var one [8]byte
	one[0] = 1
	r.noteMu.RLock()
	if r.note >= 0 {
		unix.Write(r.note, one[:])
	}
	r.noteMu.RUnlock()
	r.wakeups.Add(1)
}

// fail stops a ring whose guest corrupted it and returns err. The device
// stays silent from then on; nothing outside the ring is touched.
func (r *netRing) fail(err error) error {
	r.log.printf("net device %s: %v: the device stops", r.name, err)
	r.Close()
	return err
}

// Close implements netstack.Device: the frames stop, and every wait ends
// (the doorbells and the backend's descriptor close). The notification
// stays open for the guest descriptor's readiness until the device
// closes (closeNote); the region stays guest memory.
func (r *netRing) Close() error {
	if !r.closed.Swap(true) {
		r.txKick.Close()
		r.rxKick.Close()
		if r.backend != nil {
			r.backend.Close()
		}
	}
	return nil
}

// stop closes the ring, waits for its relays to end and closes the
// notification: the device is closing.
func (r *netRing) stop() {
	r.Close()
	r.relays.Wait()
	r.closeNote()
}

func (r *netRing) closeNote() {
	r.noteMu.Lock()
	defer r.noteMu.Unlock()
	if r.note >= 0 {
		unix.Close(r.note)
		r.note = -1
	}
}

// closeFiles releases what a half-made ring holds.
func (r *netRing) closeFiles() {
	for _, f := range []*os.File{r.txKick, r.rxKick} {
		if f != nil {
			f.Close()
		}
	}
	r.closeNote()
}
