package netstack

import (
	"bytes"
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// framePair returns a frame device on one end of a non-blocking
// SOCK_SEQPACKET pair and the other end.
func framePair(t *testing.T) (BatchDevice, *os.File) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	dev, err := NewFileDevice(os.NewFile(uintptr(fds[0]), "dev"))
	if err != nil {
		t.Fatal(err)
	}
	peer := os.NewFile(uintptr(fds[1]), "peer")
	t.Cleanup(func() { peer.Close() })
	return dev.(BatchDevice), peer
}

// TestHandover moves a device's frames to another while a reader waits
// on the first: the reader goes on with the second, writes go there, the
// first is closed, and Close closes the second.
func TestHandover(t *testing.T) {
	first, firstPeer := framePair(t)
	second, secondPeer := framePair(t)
	h := NewHandover(first)
	firstPeer.Write([]byte("before the move"))
	buf := make([]byte, 64)
	if n, err := h.Read(buf); err != nil || string(buf[:n]) != "before the move" {
		t.Fatalf("Read on the first device: %q, %v", buf[:n], err)
	}
	got := make(chan string, 1)
	go func() {
		b := make([]byte, 64)
		n, err := h.Read(b) // waits on the first device
		if err != nil {
			got <- err.Error()
			return
		}
		got <- string(b[:n])
	}()
	time.Sleep(50 * time.Millisecond)
	h.To(second)
	secondPeer.Write([]byte("after the move"))
	select {
	case s := <-got:
		if s != "after the move" {
			t.Fatalf("the waiting reader got %q", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting reader never moved to the new device")
	}
	if _, err := h.Write([]byte("out")); err != nil {
		t.Fatal(err)
	}
	secondPeer.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := secondPeer.Read(buf); err != nil || !bytes.Equal(buf[:n], []byte("out")) {
		t.Fatalf("write after the move reached %q, %v", buf[:n], err)
	}
	if _, err := first.ReadFrames([][]byte{buf}, []int{0}); err == nil {
		t.Errorf("the first device is still open: %v", err)
	}
	h.Close()
	if _, err := second.WriteFrames([][]byte{[]byte("x")}); err == nil {
		t.Errorf("Close left the current device open: %v", err)
	}
	if err := h.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("a second Close: %v", err)
	}
	third, _ := framePair(t)
	h.To(third) // after Close: the new device is closed at once
	if _, err := third.WriteFrames([][]byte{[]byte("x")}); err == nil {
		t.Errorf("To after Close left the device open: %v", err)
	}
}
