package monitor

import (
	"bytes"
	"encoding/binary"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"atoll.dev/atoll/abi"
	"atoll.dev/atoll/framering"
	"atoll.dev/atoll/manifest"
)

// ringVM is a test VM with one network device on a socket pair, whose
// host end stands for the backend.
func ringVM(t *testing.T, o vmOptions, noRings bool) (*testVM, *os.File) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	guest, host := os.NewFile(uintptr(fds[0]), "guest"), os.NewFile(uintptr(fds[1]), "host")
	t.Cleanup(func() { host.Close() })
	o.devices = []Device{{Device: manifest.Device{Name: "service", Kind: abi.KindNet}, File: guest, NoRings: noRings}}
	tv := newTestVM(t, o)
	guest.Close()
	return tv, host
}

const ringFD = 3

// mapRings maps the device's rings as the guest library does and opens
// them as the guest.
func mapRings(t *testing.T, tv *testVM) (*framering.Region, *netRing) {
	t.Helper()
	addr := tv.mustCall(t, unix.SYS_MMAP, 0, framering.Size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED, ringFD, 0)
	region, err := framering.Open(tv.bytes(t, addr, framering.Size))
	if err != nil {
		t.Fatal(err)
	}
	if region.TXDoorbell != uint64(doorbellAddr) || region.RXDoorbell != uint64(doorbellAddr)+8 {
		t.Errorf("doorbells at %#x and %#x", region.TXDoorbell, region.RXDoorbell)
	}
	f, _ := tv.fds.acquire(ringFD)
	defer f.release()
	return region, f.file.(*netDevice).ring.Load()
}

// ring is what the guest's doorbell write does under KVM.
func ring(t *testing.T, f *os.File) {
	var one [8]byte
	one[0] = 1
	if _, err := f.Write(one[:]); err != nil {
		t.Fatal(err)
	}
}

// waitNote waits for the monitor's notification, as the guest's epoll
// does.
func waitNote(t *testing.T, r *netRing) {
	pfd := []unix.PollFd{{Fd: int32(r.note), Events: unix.POLLIN}}
	if n, err := unix.Poll(pfd, 5000); n != 1 || err != nil {
		t.Fatalf("no notification from the monitor: %v", err)
	}
	var b [8]byte
	unix.Read(r.note, b[:])
}

// TestRingFrames moves 2,000 frames each way between the guest's side of
// the rings and the backend's descriptor, sleeping and waking as the
// guest library does, and checks each arrives once, in order, and that
// both sides' counts agree.
func TestRingFrames(t *testing.T) {
	tv, host := ringVM(t, vmOptions{}, false)
	region, r := mapRings(t, tv)
	const frames = 2000
	frame := func(i int) []byte {
		b := bytes.Repeat([]byte{byte(i)}, framering.MinFrame+i%1400)
		binary.LittleEndian.PutUint32(b, uint32(i))
		return b
	}
	// Guest to backend.
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, 4096)
		for i := 0; i < frames; i++ {
			n, err := host.Read(buf)
			if err != nil {
				done <- err
				return
			}
			if !bytes.Equal(buf[:n], frame(i)) {
				done <- &os.PathError{Op: "frame", Path: string(rune('0' + i%10)), Err: unix.EBADMSG}
				return
			}
		}
		done <- nil
	}()
	p := region.TX.Producer()
	for i := 0; i < frames; {
		space, err := p.Space()
		if err != nil {
			t.Fatal(err)
		}
		if space == 0 {
			if ready, _ := p.Wait(); !ready {
				waitNote(t, r)
			}
			continue
		}
		k := min(space, 7, frames-i)
		for j := 0; j < k; j++ {
			p.SetLen(j, copy(p.Slot(j), frame(i+j)))
		}
		i += k
		if p.Publish(k) {
			ring(t, r.txKick)
		}
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("backend: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the backend did not get every frame")
	}
	// Backend to guest.
	go func() {
		for i := 0; i < frames; i++ {
			if _, err := host.Write(frame(i)); err != nil {
				return
			}
		}
	}()
	c := region.RX.Consumer()
	for i := 0; i < frames; {
		n, err := c.Avail()
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			if ready, _ := c.Sleep(); !ready {
				waitNote(t, r)
			}
			continue
		}
		for j := 0; j < n; j++ {
			if got := c.Frame(j); !bytes.Equal(got, frame(i+j)) {
				t.Fatalf("guest frame %d: %d bytes", i+j, len(got))
			}
		}
		i += n
		if c.Release(n) {
			ring(t, r.rxKick)
		}
	}
	s := tv.snapshot()
	if len(s.Rings) != 1 || s.Rings[0].TXFrames != frames || s.Rings[0].RXFrames != frames || s.Rings[0].Dropped != 0 {
		t.Errorf("ring counts %+v", s.Rings)
	}
	if !strings.Contains(s.String(), "ring service: 2000 frames out, 2000 in, 0 dropped, 0 out and 0 in still in the rings") {
		t.Errorf("--stats:\n%s", s)
	}
}

// TestRingMapping: the mapping is exactly the ABI's, once per device; the
// frame calls are refused once the rings carry the frames; rings=off
// answers ENODEV, as a monitor without rings.
func TestRingMapping(t *testing.T) {
	tv, _ := ringVM(t, vmOptions{}, false)
	const rw = unix.PROT_READ | unix.PROT_WRITE
	runErrCases(t, tv, []errCase{
		{"private", unix.SYS_MMAP, []uint64{0, framering.Size, rw, unix.MAP_PRIVATE, ringFD, 0}, unix.EINVAL},
		{"short", unix.SYS_MMAP, []uint64{0, framering.Size - 4096, rw, unix.MAP_SHARED, ringFD, 0}, unix.EINVAL},
		{"read-only", unix.SYS_MMAP, []uint64{0, framering.Size, unix.PROT_READ, unix.MAP_SHARED, ringFD, 0}, unix.EINVAL},
		{"offset", unix.SYS_MMAP, []uint64{0, framering.Size, rw, unix.MAP_SHARED, ringFD, 4096}, unix.EINVAL},
		{"fixed", unix.SYS_MMAP, []uint64{tv.at(0), framering.Size, rw, unix.MAP_SHARED | unix.MAP_FIXED, ringFD, 0}, unix.EINVAL},
	})
	mapRings(t, tv)
	runErrCases(t, tv, []errCase{
		{"again", unix.SYS_MMAP, []uint64{0, framering.Size, rw, unix.MAP_SHARED, ringFD, 0}, unix.EBUSY},
		{"read", unix.SYS_READ, []uint64{ringFD, tv.at(0), 100}, unix.EBUSY},
		{"write", unix.SYS_WRITE, []uint64{ringFD, tv.at(0), 100}, unix.EBUSY},
		{"recvmmsg", unix.SYS_RECVMMSG, []uint64{ringFD, tv.at(0), 1, 0, 0}, unix.EBUSY},
	})
	off, _ := ringVM(t, vmOptions{}, true)
	runErrCases(t, off, []errCase{
		{"rings=off", unix.SYS_MMAP, []uint64{0, framering.Size, rw, unix.MAP_SHARED, ringFD, 0}, unix.ENODEV},
	})
}

// TestRingHostile: a guest that writes impossible indices or lengths gets
// its frames dropped or its device stopped, with a note in -v's log; the
// monitor carries on and, once the device closes, holds no descriptor of
// it.
func TestRingHostile(t *testing.T) {
	before := hostFDs(t)
	// Cleanups run last first: this one after the VM's.
	t.Cleanup(func() {
		if extra := newFDs(t, before); len(extra) > 0 {
			t.Errorf("descriptors left open: %v", extra)
		}
	})
	log := &lockedWriter{w: &bytes.Buffer{}}
	tv, host := ringVM(t, vmOptions{log: log}, false)
	logged := func() string {
		log.mu.Lock()
		defer log.mu.Unlock()
		return log.w.(*bytes.Buffer).String()
	}
	region, r := mapRings(t, tv)
	// Lengths that are no frame are dropped; the frame after them goes.
	p := region.TX.Producer()
	p.SetLen(0, framering.SlotSize+1)
	p.SetLen(1, 3)
	p.SetLen(2, copy(p.Slot(2), bytes.Repeat([]byte{7}, 60)))
	if p.Publish(3) {
		ring(t, r.txKick)
	}
	host.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	if n, err := host.Read(buf); n != 60 || err != nil {
		t.Fatalf("backend read %d bytes: %v", n, err)
	}
	if d := tv.snapshot().Rings[0].Dropped; d != 2 {
		t.Errorf("%d frames dropped, want 2", d)
	}
	// An index beyond the ring stops the device.
	binary.LittleEndian.PutUint32(tv.bytes(t, uint64(r.addr), framering.Size)[0x40:], 0xdead)
	ring(t, r.txKick)
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logged(), "corrupt index: the device stops") {
		if time.Now().After(deadline) {
			t.Fatalf("no note of the corrupt ring; log:\n%s", logged())
		}
		time.Sleep(10 * time.Millisecond)
	}
	tv.mustCall(t, unix.SYS_CLOSE, ringFD)
}
