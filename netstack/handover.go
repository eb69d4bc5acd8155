package netstack

import (
	"net"
	"sync"
)

// Handover is a frame device whose frames move to another device on
// demand. The user network starts on its socket pair and hands over to
// the guest's frame rings once the guest maps them, with the stack on top
// none the wiser.
type Handover struct {
	// mu guards cur and closed.
	mu     sync.Mutex
	cur    BatchDevice
	closed bool
}

var _ BatchDevice = (*Handover)(nil)

// NewHandover starts on dev.
func NewHandover(dev BatchDevice) *Handover { return &Handover{cur: dev} }

// To moves the frames to dev and closes the device they moved from, which
// wakes a reader or writer waiting there. Frames still in flight on the
// old device are lost, as on a link that goes down and up. After Close,
// To closes dev instead.
func (h *Handover) To(dev BatchDevice) {
	h.mu.Lock()
	old := h.cur
	if h.closed {
		old = dev
	} else {
		h.cur = dev
	}
	h.mu.Unlock()
	old.Close()
}

func (h *Handover) current() BatchDevice {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.cur
}

// retry reports whether an error from d means the frames moved on.
func (h *Handover) retry(d BatchDevice, err error) bool {
	return err != nil && h.current() != d && !h.isClosed()
}

func (h *Handover) isClosed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.closed
}

// ReadFrames implements BatchDevice.
func (h *Handover) ReadFrames(bufs [][]byte, sizes []int) (int, error) {
	for {
		d := h.current()
		n, err := d.ReadFrames(bufs, sizes)
		if !h.retry(d, err) {
			return n, err
		}
	}
}

// WriteFrames implements BatchDevice.
func (h *Handover) WriteFrames(frames [][]byte) (int, error) {
	sent := 0
	for {
		d := h.current()
		n, err := d.WriteFrames(frames[sent:])
		sent += n
		if !h.retry(d, err) {
			return sent, err
		}
	}
}

// Read implements Device.
func (h *Handover) Read(b []byte) (int, error) { return ReadFrame(h, b) }

// Write implements Device.
func (h *Handover) Write(b []byte) (int, error) { return WriteFrame(h, b) }

// Close implements Device: it closes the current device.
func (h *Handover) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return net.ErrClosed
	}
	h.closed = true
	d := h.cur
	h.mu.Unlock()
	return d.Close()
}
