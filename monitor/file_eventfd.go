package monitor

import "golang.org/x/sys/unix"

// eventFD is an eventfd the guest made: a host eventfd, non-blocking on the
// host (hostStream), which keeps the counter and its semantics.
type eventFD struct{ *hostStream }

var (
	_ reader   = (*eventFD)(nil)
	_ writer   = (*eventFD)(nil)
	_ flagged  = (*eventFD)(nil)
	_ pollable = (*eventFD)(nil)
)

// sysEventfd2 implements eventfd2(initval, flags).
func sysEventfd2(t *thread, a sysArgs) (uint64, unix.Errno) {
	if a[1]&^(unix.EFD_NONBLOCK|unix.EFD_CLOEXEC|unix.EFD_SEMAPHORE) != 0 {
		return 0, unix.EINVAL
	}
	h, err := unix.Eventfd(uint(uint32(a[0])), int(a[1])|unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		return 0, errnoOf(err)
	}
	return t.installNew(&eventFD{newHostStream(h, a[1]&unix.EFD_NONBLOCK != 0)})
}
