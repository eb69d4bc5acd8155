package guestmem

import "math/bits"

// bitmap is a set of page indices.
type bitmap []uint64

func newBitmap(n uint64) bitmap { return make(bitmap, (n+63)/64) }

func (b bitmap) get(i uint64) bool { return b[i/64]&(1<<(i%64)) != 0 }

// words calls fn for each word overlapping [lo, hi) with the mask of the
// range's bits in it.
func (b bitmap) words(lo, hi uint64, fn func(w *uint64, mask uint64)) {
	for i := lo; i < hi; {
		off := i % 64
		span := min(64-off, hi-i)
		fn(&b[i/64], ^uint64(0)>>(64-span)<<off)
		i += span
	}
}

// set marks [lo, hi) and returns how many were newly marked.
func (b bitmap) set(lo, hi uint64) (n uint64) {
	b.words(lo, hi, func(w *uint64, mask uint64) {
		n += uint64(bits.OnesCount64(mask &^ *w))
		*w |= mask
	})
	return n
}

// clear unmarks [lo, hi) and returns how many were marked before.
func (b bitmap) clear(lo, hi uint64) (n uint64) {
	b.words(lo, hi, func(w *uint64, mask uint64) {
		n += uint64(bits.OnesCount64(mask & *w))
		*w &^= mask
	})
	return n
}

// count returns how many of [lo, hi) are marked.
func (b bitmap) count(lo, hi uint64) (n uint64) {
	b.words(lo, hi, func(w *uint64, mask uint64) {
		n += uint64(bits.OnesCount64(mask & *w))
	})
	return n
}

// findFree returns the first index >= lo of a run of n unmarked entries
// ending at or before hi.
func (b bitmap) findFree(lo, hi, n uint64) (uint64, bool) {
	start, run := lo, uint64(0)
	for i := lo; i < hi; {
		if i%64 == 0 && i+64 <= hi {
			switch b[i/64] {
			case 0:
				run += 64
				i += 64
				if run >= n {
					return start, true
				}
				continue
			case ^uint64(0):
				run = 0
				i += 64
				start = i
				continue
			}
		}
		if b.get(i) {
			run = 0
			start = i + 1
		} else {
			run++
			if run >= n {
				return start, true
			}
		}
		i++
	}
	return 0, false
}
