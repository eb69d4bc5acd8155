package monitor

import (
	"encoding/binary"
	"time"

	"golang.org/x/sys/unix"
)

// System calls about time. CLOCK_MONOTONIC and CLOCK_REALTIME are the
// guest clock the vDSO also reads (package vdso), so the two never
// disagree; most reads never leave the guest.

// readTimespec reads a struct timespec; it reports a negative duration
// for an invalid one.
func readTimespec(t *thread, addr uint64) (time.Duration, bool) {
	b, ok := t.slice(addr, timespecSize)
	if !ok {
		return 0, false
	}
	sec, nsec := int64(binary.LittleEndian.Uint64(b)), int64(binary.LittleEndian.Uint64(b[8:]))
	if sec < 0 || nsec < 0 || nsec >= 1e9 {
		return -1, true
	}
	if sec > 1<<32 {
		sec = 1 << 32
	}
	return time.Duration(sec)*time.Second + time.Duration(nsec), true
}

func writeTimespec(b []byte, ts unix.Timespec) {
	binary.LittleEndian.PutUint64(b, uint64(ts.Sec))
	binary.LittleEndian.PutUint64(b[8:], uint64(ts.Nsec))
}

// sysNanosleep sleeps in chunks of waitChunk, returning EINTR (and the
// time left) when a signal arrives or the VM ends.
func sysNanosleep(t *thread, a sysArgs) (uint64, unix.Errno) {
	d, ok := readTimespec(t, a[0])
	if !ok {
		return 0, unix.EFAULT
	}
	if d < 0 {
		return 0, unix.EINVAL
	}
	deadline := time.Now().Add(d)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return 0, 0
		}
		if t.interrupted() {
			if b, ok := t.slice(a[1], timespecSize); ok && a[1] != 0 {
				writeTimespec(b, unix.NsecToTimespec(int64(left)))
			}
			return 0, unix.EINTR
		}
		time.Sleep(min(left, waitChunk))
	}
}

// clockIDs are the clocks clock_gettime knows.
var clockIDs = map[uint64]bool{
	unix.CLOCK_REALTIME: true, unix.CLOCK_MONOTONIC: true, unix.CLOCK_PROCESS_CPUTIME_ID: true,
	unix.CLOCK_THREAD_CPUTIME_ID: true, unix.CLOCK_MONOTONIC_RAW: true, unix.CLOCK_REALTIME_COARSE: true,
	unix.CLOCK_MONOTONIC_COARSE: true, unix.CLOCK_BOOTTIME: true,
}

func sysClockGettime(t *thread, a sysArgs) (uint64, unix.Errno) {
	if !clockIDs[a[0]] {
		return 0, unix.EINVAL
	}
	b, ok := t.slice(a[1], timespecSize)
	if !ok {
		return 0, unix.EFAULT
	}
	var ts unix.Timespec
	switch a[0] {
	case unix.CLOCK_MONOTONIC, unix.CLOCK_REALTIME:
		ts = unix.NsecToTimespec(t.vm.clock.Now(a[0] == unix.CLOCK_REALTIME))
	default:
		if err := unix.ClockGettime(int32(a[0]), &ts); err != nil {
			return 0, errnoOf(err)
		}
	}
	writeTimespec(b, ts)
	return 0, 0
}

func sysGettimeofday(t *thread, a sysArgs) (uint64, unix.Errno) {
	if a[0] != 0 {
		b, ok := t.slice(a[0], timevalSize)
		if !ok {
			return 0, unix.EFAULT
		}
		ts := unix.NsecToTimespec(t.vm.clock.Now(true))
		binary.LittleEndian.PutUint64(b, uint64(ts.Sec))
		binary.LittleEndian.PutUint64(b[8:], uint64(ts.Nsec/1000))
	}
	return 0, 0
}
