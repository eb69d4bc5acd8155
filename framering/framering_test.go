package framering

import (
	"encoding/binary"
	"errors"
	"sync"
	"testing"
)

func newTestRegion(t testing.TB) (*Region, *Region) {
	b := make([]byte, Size)
	mon, err := Init(b, 0x1000, 0x1008)
	if err != nil {
		t.Fatal(err)
	}
	guest, err := Open(b)
	if err != nil {
		t.Fatal(err)
	}
	return mon, guest
}

func TestOpenChecksHeader(t *testing.T) {
	if _, err := Open(make([]byte, Size)); err == nil {
		t.Error("Open accepted a region with no header")
	}
	if _, err := Open(make([]byte, Size-1)); err == nil {
		t.Error("Open accepted a short region")
	}
	if _, err := Init(make([]byte, 10), 0, 0); err == nil {
		t.Error("Init accepted a short region")
	}
	b := make([]byte, Size)
	Init(b, 1, 2)
	binary.LittleEndian.PutUint32(b[offSlots:], 64)
	if _, err := Open(b); err == nil {
		t.Error("Open accepted another geometry")
	}
	mon, guest := newTestRegion(t)
	if guest.TXDoorbell != 0x1000 || guest.RXDoorbell != 0x1008 || mon.TXDoorbell != 0x1000 {
		t.Errorf("doorbells %#x %#x", guest.TXDoorbell, guest.RXDoorbell)
	}
}

// TestStream moves 100,000 frames of varied lengths through one ring
// between two goroutines that sleep and wake as the devices do, and checks
// that every frame arrives once, in order, intact.
func TestStream(t *testing.T) {
	_, g := newTestRegion(t)
	const frames = 100000
	p, c := g.TX.Producer(), g.TX.Consumer()
	wakeConsumer, wakeProducer := make(chan struct{}, 1), make(chan struct{}, 1)
	notify := func(ch chan struct{}) {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < frames; {
			n, err := p.Space()
			if err != nil {
				t.Error(err)
				return
			}
			if n == 0 {
				if ready, _ := p.Wait(); !ready {
					<-wakeProducer
				}
				continue
			}
			n = min(n, 1+i%7, frames-i)
			for k := 0; k < n; k++ {
				size := MinFrame + (i+k)%(SlotSize-MinFrame+1)
				s := p.Slot(k)
				binary.LittleEndian.PutUint32(s, uint32(i+k))
				s[size-1] = byte(i + k)
				p.SetLen(k, size)
			}
			i += n
			if p.Publish(n) {
				notify(wakeConsumer)
			}
		}
	}()
	for i := 0; i < frames; {
		n, err := c.Avail()
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			if ready, _ := c.Sleep(); !ready {
				<-wakeConsumer
				c.Wake()
			}
			continue
		}
		for k := 0; k < n; k++ {
			f := c.Frame(k)
			want := MinFrame + (i+k)%(SlotSize-MinFrame+1)
			if len(f) != want || binary.LittleEndian.Uint32(f) != uint32(i+k) || f[want-1] != byte(i+k) {
				t.Fatalf("frame %d: %d bytes, seq %d", i+k, len(f), binary.LittleEndian.Uint32(f))
			}
		}
		i += n
		if c.Release(n) {
			notify(wakeProducer)
		}
	}
	wg.Wait()
	if n, _ := c.Avail(); n != 0 {
		t.Errorf("%d frames left over", n)
	}
}

// TestHostileIndices: a side whose peer writes impossible indices or
// lengths gets ErrCorrupt or a dropped frame, never a slice outside the
// ring.
func TestHostileIndices(t *testing.T) {
	mon, g := newTestRegion(t)
	c := mon.TX.Consumer()
	store(g.TX.prod, Slots+1)
	if _, err := c.Avail(); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Avail with prod beyond the ring: %v", err)
	}
	store(g.TX.prod, 0xffffffff)
	if _, err := c.Avail(); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Avail with prod behind cons: %v", err)
	}
	store(g.TX.prod, 2)
	binary.LittleEndian.PutUint32(g.TX.lens[0:], SlotSize+1)
	binary.LittleEndian.PutUint32(g.TX.lens[4:], 3)
	if f := c.Frame(0); f != nil {
		t.Errorf("a frame longer than its slot came through: %d bytes", len(f))
	}
	if f := c.Frame(1); f != nil {
		t.Errorf("a frame shorter than a header came through: %d bytes", len(f))
	}
	p := mon.RX.Producer()
	store(g.RX.cons, 5) // the guest claims to have taken frames never sent
	if _, err := p.Space(); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Space with cons beyond prod: %v", err)
	}
}

// FuzzConsumer lets arbitrary bytes stand for the region the other side
// wrote, and checks that the consumer only ever hands out frames inside
// their slot.
func FuzzConsumer(f *testing.F) {
	f.Add(uint32(3), uint32(0), []byte{60, 0, 0, 0, 0xff, 0xff, 0, 0})
	f.Fuzz(func(t *testing.T, prod, cons uint32, lens []byte) {
		b := make([]byte, Size)
		r, _ := Init(b, 0, 0)
		store(r.TX.cons, cons)
		store(r.TX.prod, prod)
		copy(r.TX.lens, lens)
		c := r.TX.Consumer()
		n, err := c.Avail()
		if err != nil {
			return
		}
		if n > Slots {
			t.Fatalf("Avail %d", n)
		}
		for i := 0; i < n; i++ {
			if f := c.Frame(i); f != nil && (len(f) < MinFrame || len(f) > SlotSize) {
				t.Fatalf("frame of %d bytes", len(f))
			}
		}
		c.Release(n)
	})
}
