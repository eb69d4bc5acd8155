package vdso

import (
	"encoding/binary"
	"math"
	"math/bits"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// RDTSC reads the host's time-stamp counter (clock_amd64.s).
func RDTSC() uint64

// Clock keeps the vDSO parameters page (image.go) so that the guest reads
// CLOCK_MONOTONIC and CLOCK_REALTIME from the TSC without an exit:
//
//	ns = monoBase + (tsc - tscBase) * mult >> clockShift
//
// The monitor re-anchors every clockPeriod: it measures the TSC frequency
// over the whole run against the host's CLOCK_MONOTONIC, starts the new
// segment where the guest's clock stands (so it never jumps backwards), and
// sets the rate so that any error is slewed away within the next period.
// Writers bump a sequence count around each update (a seqlock); readers
// retry while it is odd or changed.
type Clock struct {
	// mu serializes re-anchoring with readers in the monitor (now).
	mu        sync.Mutex
	page      []byte // the parameters page, in guest memory
	tscOffset int64  // guest TSC minus host TSC

	tsc0  uint64 // baseline for the frequency estimate
	mono0 int64
	freq  float64 // Hz

	tscBase, monoBase uint64
	realOff           int64
	mult              uint32
}

const (
	clockShift  = 32
	clockPeriod = time.Second
	// clockStep is the error beyond which the guest clock steps forward
	// instead of slewing (the host was suspended, say).
	clockStep = 50 * time.Millisecond
)

// NewClock anchors the guest clock on page, the parameters page in guest
// memory. khz is the TSC frequency KVM reports, the first estimate until
// the run-long measurement takes over; tscOffset is the guest's TSC minus
// the host's.
func NewClock(page []byte, khz uint64, tscOffset int64) *Clock {
	c := &Clock{page: page, tscOffset: tscOffset, freq: float64(khz) * 1000}
	tsc, mono, real := c.sample()
	c.tsc0, c.mono0 = tsc, mono
	c.publish(tsc, uint64(mono), real-mono, c.multFor(1))
	return c
}

// sample returns a guest TSC reading and the host clocks at that instant,
// from the tightest of a few bracketed readings.
func (c *Clock) sample() (tsc uint64, mono, real int64) {
	best := int64(math.MaxInt64)
	for i := 0; i < 5; i++ {
		var a, b, r unix.Timespec
		unix.ClockGettime(unix.CLOCK_MONOTONIC, &a)
		t := RDTSC()
		unix.ClockGettime(unix.CLOCK_REALTIME, &r)
		unix.ClockGettime(unix.CLOCK_MONOTONIC, &b)
		if w := b.Nano() - a.Nano(); w < best {
			best = w
			tsc = uint64(int64(t) + c.tscOffset)
			mono = a.Nano() + w/2
			real = r.Nano()
		}
	}
	return tsc, mono, real
}

// multFor returns the multiplier that advances the clock at rate times
// the measured TSC frequency.
func (c *Clock) multFor(rate float64) uint32 {
	m := rate * 1e9 * (1 << clockShift) / c.freq
	return uint32(min(max(m, 1), math.MaxUint32))
}

// at returns the guest's CLOCK_MONOTONIC at TSC value tsc.
func (c *Clock) at(tsc uint64) uint64 {
	if tsc < c.tscBase {
		return c.monoBase
	}
	hi, lo := bits.Mul64(tsc-c.tscBase, uint64(c.mult))
	return c.monoBase + (hi<<(64-clockShift) | lo>>clockShift)
}

// Now returns what the guest reads for CLOCK_REALTIME (real) or
// CLOCK_MONOTONIC, in nanoseconds: the system-call path's answer, the same
// as the vDSO's.
func (c *Clock) Now(real bool) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	ns := int64(c.at(RDTSC() + uint64(c.tscOffset)))
	if real {
		ns += c.realOff
	}
	return ns
}

// reanchor starts a new segment of the guest clock at the current TSC.
func (c *Clock) reanchor() {
	c.mu.Lock()
	defer c.mu.Unlock()
	tsc, mono, real := c.sample()
	if el := mono - c.mono0; el > int64(clockPeriod)/2 && tsc > c.tsc0 {
		c.freq = float64(tsc-c.tsc0) / (float64(el) / 1e9)
	}
	guest := c.at(tsc)
	diff := mono - int64(guest)
	rate := 1.0
	switch {
	case diff > int64(clockStep):
		guest = uint64(mono)
	default:
		rate = min(max(1+float64(diff)/float64(clockPeriod), 0.5), 2)
	}
	c.publish(tsc, guest, real-int64(guest), c.multFor(rate))
}

// publish writes new parameters under the sequence count.
func (c *Clock) publish(tscBase, monoBase uint64, realOff int64, mult uint32) {
	c.tscBase, c.monoBase, c.realOff, c.mult = tscBase, monoBase, realOff, mult
	bumpSeq(c.page[vvarSeq:])
	le := binary.LittleEndian
	le.PutUint64(c.page[vvarTSCBase:], tscBase)
	le.PutUint64(c.page[vvarMonoBase:], monoBase)
	le.PutUint64(c.page[vvarRealOff:], uint64(realOff))
	le.PutUint32(c.page[vvarMult:], mult)
	le.PutUint32(c.page[vvarShift:], clockShift)
	bumpSeq(c.page[vvarSeq:])
}

// Run re-anchors every clockPeriod until done is closed.
func (c *Clock) Run(done <-chan struct{}) { every(clockPeriod, done, c.reanchor) }

// every calls fn each period until done is closed.
func every(period time.Duration, done <-chan struct{}, fn func()) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			fn()
		}
	}
}
