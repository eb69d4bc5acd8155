// Package framering is the shared-memory frame ring of a network device
// (docs/abi.md, section 5): two single-producer, single-consumer rings of
// Ethernet frames in guest memory, one per direction, that the guest's
// link and the monitor's backend move frames through without a VM exit
// while both are busy. A side that finds nothing to do says so in the
// ring before it sleeps, and the other side notifies it only then: the
// guest rings a doorbell (a write the host kernel absorbs), the monitor
// signals an eventfd the guest waits on through epoll.
//
// Both sides use this package, so the layout and the protocol have one
// definition. Neither side trusts what the other writes: each keeps its
// own copy of its index, checks the other's against it, and takes a
// frame's length once and checks it against the slot (ErrCorrupt, or a
// dropped frame).
//
// Layout of a region of Size bytes (offsets in bytes; words are
// little-endian uint32 or uint64, each index on a cache line of its own):
//
//	0x000 magic "ATRG" (u32), version (u32), slots (u32), slot size (u32)
//	0x010 TX doorbell address (u64), RX doorbell address (u64)
//	0x040 TX ring: producer index (guest)      0x080 consumer index (monitor)
//	0x0c0          consumer asleep (monitor)   0x100 producer waiting (guest)
//	0x140 RX ring: producer index (monitor)    0x180 consumer index (guest)
//	0x1c0          consumer asleep (guest)     0x200 producer waiting (monitor)
//	0x400 TX frame lengths (u32 × Slots)       0x800 RX frame lengths
//	0x1000 TX slots (SlotSize × Slots), then RX slots
//
// Indices run freely (mod 2³²); slot i holds frame i mod Slots.
package framering

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Geometry of a region.
const (
	// Slots is the number of frames each ring holds.
	Slots = 128
	// SlotSize is the room for one frame: an Ethernet frame of the
	// largest MTU the devices carry (1500) with its header, rounded up.
	SlotSize = 2048
	// Size is the size of a region.
	Size = 0x1000 + 2*Slots*SlotSize

	// Magic and Version identify a region the monitor has set up.
	Magic   = 0x47525441 // "ATRG"
	Version = 1

	// MinFrame is the smallest frame a consumer accepts: an Ethernet
	// header.
	MinFrame = 14
)

const (
	offMagic      = 0x000
	offVersion    = 0x004
	offSlots      = 0x008
	offSlotSize   = 0x00c
	offTXDoorbell = 0x010
	offRXDoorbell = 0x018
	offTX         = 0x040 // the TX ring's four words, 0x40 apart
	offRX         = 0x140
	offTXLens     = 0x400
	offRXLens     = 0x800
	offData       = 0x1000

	wordProd, wordCons, wordAsleep, wordWaiting = 0, 0x40, 0x80, 0xc0
)

// ErrCorrupt is returned when the other side's index is impossible: it
// claims more frames than a ring holds. The device is unusable after it.
var ErrCorrupt = errors.New("frame ring: corrupt index")

// Region is a mapped ring region.
type Region struct {
	b []byte
	// TX carries frames from the guest to the monitor, RX the other way.
	TX, RX *Ring
	// TXDoorbell and RXDoorbell are the guest addresses the guest writes
	// to wake the monitor's TX consumer and RX producer.
	TXDoorbell, RXDoorbell uint64
}

// Init lays out a fresh region in b (the monitor's side) with the given
// doorbell addresses. b must be Size bytes of zeroed memory.
func Init(b []byte, txDoorbell, rxDoorbell uint64) (*Region, error) {
	if len(b) != Size {
		return nil, fmt.Errorf("frame ring: region of %d bytes, want %d", len(b), Size)
	}
	le := binary.LittleEndian
	le.PutUint32(b[offSlots:], Slots)
	le.PutUint32(b[offSlotSize:], SlotSize)
	le.PutUint64(b[offTXDoorbell:], txDoorbell)
	le.PutUint64(b[offRXDoorbell:], rxDoorbell)
	le.PutUint32(b[offVersion:], Version)
	le.PutUint32(b[offMagic:], Magic)
	return newRegion(b, txDoorbell, rxDoorbell), nil
}

// Open checks a region the monitor laid out (the guest's side).
func Open(b []byte) (*Region, error) {
	if len(b) != Size {
		return nil, fmt.Errorf("frame ring: region of %d bytes, want %d", len(b), Size)
	}
	le := binary.LittleEndian
	if m, v := le.Uint32(b[offMagic:]), le.Uint32(b[offVersion:]); m != Magic || v != Version {
		return nil, fmt.Errorf("frame ring: magic %#x version %d, want %#x version %d", m, v, uint32(Magic), Version)
	}
	if s, z := le.Uint32(b[offSlots:]), le.Uint32(b[offSlotSize:]); s != Slots || z != SlotSize {
		return nil, fmt.Errorf("frame ring: %d slots of %d bytes, want %d of %d", s, z, Slots, SlotSize)
	}
	return newRegion(b, le.Uint64(b[offTXDoorbell:]), le.Uint64(b[offRXDoorbell:])), nil
}

func newRegion(b []byte, txd, rxd uint64) *Region {
	data := b[offData:]
	return &Region{
		b:          b,
		TX:         newRing(b[offTX:], b[offTXLens:offTXLens+4*Slots], data[:Slots*SlotSize]),
		RX:         newRing(b[offRX:], b[offRXLens:offRXLens+4*Slots], data[Slots*SlotSize:]),
		TXDoorbell: txd,
		RXDoorbell: rxd,
	}
}

// Ring is one direction of a region.
type Ring struct {
	prod, cons      *uint32
	asleep, waiting *uint32
	lens            []byte
	data            []byte
}

func newRing(words, lens, data []byte) *Ring {
	return &Ring{
		prod:    word(words, wordProd),
		cons:    word(words, wordCons),
		asleep:  word(words, wordAsleep),
		waiting: word(words, wordWaiting),
		lens:    lens,
		data:    data,
	}
}

// Pending returns how many frames are in the ring as its indices stand:
// published and not yet released. For statistics: either side may be
// moving.
func (r *Ring) Pending() (int, error) {
	n := load(r.prod) - load(r.cons)
	if n > Slots {
		return 0, ErrCorrupt
	}
	return int(n), nil
}

// Producer is the side of a ring that adds frames. One goroutine uses it.
type Producer struct {
	r    *Ring
	next uint32 // our index: the frames we have published
}

// Consumer is the side of a ring that takes frames. One goroutine uses it.
type Consumer struct {
	r    *Ring
	next uint32 // our index: the frames we have released
}

// Producer returns the producing side of r, starting at its current
// index (zero in a fresh region).
func (r *Ring) Producer() *Producer { return &Producer{r: r, next: load(r.prod)} }

// Consumer returns the consuming side of r.
func (r *Ring) Consumer() *Consumer { return &Consumer{r: r, next: load(r.cons)} }

func (r *Ring) slot(i uint32) []byte {
	o := int(i%Slots) * SlotSize
	return r.data[o : o+SlotSize : o+SlotSize]
}

// Space returns how many frames can be added now.
func (p *Producer) Space() (int, error) {
	used := p.next - load(p.r.cons)
	if used > Slots {
		return 0, ErrCorrupt
	}
	return int(Slots - used), nil
}

// Slot returns the slot for the i-th frame after those published (i below
// Space).
func (p *Producer) Slot(i int) []byte { return p.r.slot(p.next + uint32(i)) }

// SetLen records the length of the i-th frame after those published.
func (p *Producer) SetLen(i, n int) {
	binary.LittleEndian.PutUint32(p.r.lens[4*((p.next+uint32(i))%Slots):], uint32(n))
}

// Publish makes the next n frames visible to the consumer. It reports
// whether the consumer was asleep and must be notified; only one
// publication reports so per sleep.
func (p *Producer) Publish(n int) (notify bool) {
	p.next += uint32(n)
	store(p.r.prod, p.next) // a full barrier before reading asleep
	return cas(p.r.asleep, 1, 0)
}

// Put copies into free slots as many of frames as fit, for Publish(put)
// to make visible. A frame of no frame's length (below MinFrame, above
// SlotSize) takes no slot and is skipped. It returns how many of frames it
// used (put or skipped) and how many it put.
func (p *Producer) Put(frames [][]byte) (used, put int, err error) {
	space, err := p.Space()
	if err != nil {
		return 0, 0, err
	}
	for _, f := range frames {
		if put == space {
			break
		}
		used++
		if len(f) < MinFrame || len(f) > SlotSize {
			continue
		}
		p.SetLen(put, copy(p.Slot(put), f))
		put++
	}
	return used, put, nil
}

// Wait is called when Space was 0: it asks the consumer to notify when it
// frees slots, and reports whether space has appeared meanwhile (then no
// notification is due and the producer goes on).
func (p *Producer) Wait() (ready bool, err error) {
	store(p.r.waiting, 1)
	n, err := p.Space()
	if n > 0 || err != nil {
		store(p.r.waiting, 0)
		return true, err
	}
	return false, nil
}

// Avail returns how many frames wait to be taken.
func (c *Consumer) Avail() (int, error) {
	n := load(c.r.prod) - c.next
	if n > Slots {
		return 0, ErrCorrupt
	}
	return int(n), nil
}

// Frame returns the i-th waiting frame (i below Avail), or nil if the
// producer wrote a length that is no frame (shorter than MinFrame or
// longer than a slot): the frame is dropped. The bytes stay the
// producer's to overwrite only after Release.
func (c *Consumer) Frame(i int) []byte {
	k := c.next + uint32(i)
	n := binary.LittleEndian.Uint32(c.r.lens[4*(k%Slots):])
	if n < MinFrame || n > SlotSize {
		return nil
	}
	return c.r.slot(k)[:n]
}

// Take copies up to len(bufs) waiting frames into bufs, their lengths in
// sizes, and releases their slots. A slot whose length is no frame, or
// whose frame does not fit its buffer, is skipped. It returns how many
// frames it copied, how many slots it released, and whether the producer
// must be notified.
func (c *Consumer) Take(bufs [][]byte, sizes []int) (got, taken int, notify bool, err error) {
	taken, err = c.Avail()
	if err != nil || taken == 0 {
		return 0, 0, false, err
	}
	taken = min(taken, len(bufs))
	for i := 0; i < taken; i++ {
		if f := c.Frame(i); f != nil && len(f) <= len(bufs[got]) {
			sizes[got] = copy(bufs[got], f)
			got++
		}
	}
	return got, taken, c.Release(taken), nil
}

// Release hands the next n frames' slots back to the producer. It reports
// whether the producer was waiting for space and must be notified.
func (c *Consumer) Release(n int) (notify bool) {
	c.next += uint32(n)
	store(c.r.cons, c.next)
	return cas(c.r.waiting, 1, 0)
}

// Sleep is called when Avail was 0: it tells the producer to notify on
// its next publication, and reports whether frames have arrived meanwhile
// (then the consumer goes on and no notification is due).
func (c *Consumer) Sleep() (ready bool, err error) {
	store(c.r.asleep, 1)
	n, err := c.Avail()
	if n > 0 || err != nil {
		store(c.r.asleep, 0)
		return true, err
	}
	return false, nil
}

// Wake clears the consumer's asleep flag after a notification or a
// spurious wake-up.
func (c *Consumer) Wake() { store(c.r.asleep, 0) }
