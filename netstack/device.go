package netstack

import (
	"errors"
	"net"
)

// batchFrames is how many frames one batched call moves at most.
const batchFrames = 32

// BatchDevice is a Device that can move several frames per call, which
// under atoll means several frames per VM exit.
type BatchDevice interface {
	Device
	// ReadFrames fills bufs with up to len(bufs) waiting frames, blocking
	// until there is at least one, and returns how many and their sizes.
	ReadFrames(bufs [][]byte, sizes []int) (int, error)
	// WriteFrames sends frames, returning how many went out.
	WriteFrames(frames [][]byte) (int, error)
}

// ReadFrame reads one frame from a BatchDevice: its Read.
func ReadFrame(d BatchDevice, b []byte) (int, error) {
	var size [1]int
	if _, err := d.ReadFrames([][]byte{b}, size[:]); err != nil {
		return 0, err
	}
	return size[0], nil
}

// WriteFrame writes one frame to a BatchDevice: its Write.
func WriteFrame(d BatchDevice, b []byte) (int, error) {
	if _, err := d.WriteFrames([][]byte{b}); err != nil {
		return 0, err
	}
	return len(b), nil
}

// Relay moves frames from one device to another, a batch at a time,
// until either fails: closed, or the other side gone.
func Relay(from, to BatchDevice) {
	bufs := make([][]byte, batchFrames)
	for i := range bufs {
		bufs[i] = make([]byte, maxFrame)
	}
	sizes := make([]int, batchFrames)
	frames := make([][]byte, 0, batchFrames)
	for {
		n, err := from.ReadFrames(bufs, sizes)
		if err != nil {
			return
		}
		frames = frames[:0]
		for i := 0; i < n; i++ {
			if sizes[i] == 0 {
				return // the end of a socket pair: the other side closed it
			}
			frames = append(frames, bufs[i][:sizes[i]])
		}
		if _, err := to.WriteFrames(frames); err != nil && errors.Is(err, net.ErrClosed) {
			return
		}
	}
}

// maxFrame is room for any frame a device carries: an Ethernet frame of
// a jumbo MTU.
const maxFrame = 9216 + 18
