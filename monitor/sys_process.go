package monitor

import (
	"encoding/binary"
	"sync"

	"golang.org/x/sys/unix"
)

// System calls about the process and its surroundings: ids, limits,
// entropy, names. A unikernel is one process, pid 1, run by root.

func sysGetpid(*thread, sysArgs) (uint64, unix.Errno) { return guestPID, 0 }

// sysZero answers the ids that are 0 in a unikernel: parent, users, groups.
func sysZero(*thread, sysArgs) (uint64, unix.Errno) { return 0, 0 }

// sysGetrandom fills the buffer from the host's entropy, at most 32 MiB
// per call. Flags are checked as Linux does: unknown ones, or GRND_INSECURE
// with GRND_RANDOM, are EINVAL. The host's generator is seeded, so
// GRND_INSECURE asks for nothing less. It is also how the vDSO's getrandom
// states take their keys (package vdso).
func sysGetrandom(t *thread, a sysArgs) (uint64, unix.Errno) {
	const insecureRandom = unix.GRND_INSECURE | unix.GRND_RANDOM
	if a[2]&^(unix.GRND_NONBLOCK|insecureRandom) != 0 || a[2]&insecureRandom == insecureRandom {
		return 0, unix.EINVAL
	}
	n := min(a[1], 1<<25)
	b, ok := t.slice(a[0], n)
	if !ok {
		return 0, unix.EFAULT
	}
	return hostResult(unix.Getrandom(b, int(a[2]&(unix.GRND_NONBLOCK|unix.GRND_RANDOM))))
}

// rlimits are the resource limits the guest has set. They bind nothing
// but the descriptor table's size, which is fixed.
type rlimits struct {
	m sync.Map // resource → [2]uint64
}

// get returns the soft and hard limit of res.
func (l *rlimits) get(res uint64) [2]uint64 {
	if v, ok := l.m.Load(res); ok {
		return v.([2]uint64)
	}
	switch res {
	case unix.RLIMIT_NOFILE:
		// The soft limit is what the table holds: Linux's 1024 would
		// only make the Go runtime raise it, one more exit at start-up.
		return [2]uint64{maxFDs, maxFDs}
	case unix.RLIMIT_STACK:
		return [2]uint64{stackSize, unix.RLIM_INFINITY}
	}
	return [2]uint64{unix.RLIM_INFINITY, unix.RLIM_INFINITY}
}

func sysPrlimit64(t *thread, a sysArgs) (uint64, unix.Errno) {
	if a[0] != 0 && a[0] != guestPID {
		return 0, unix.ESRCH
	}
	return rlimitCall(t, a[1], a[2], a[3])
}

func sysGetrlimit(t *thread, a sysArgs) (uint64, unix.Errno) { return rlimitCall(t, a[0], 0, a[1]) }

// rlimitCall reads limit res into oldp and sets it from newp, either
// pointer 0 to skip.
func rlimitCall(t *thread, res, newp, oldp uint64) (uint64, unix.Errno) {
	if res >= rlimNlimits {
		return 0, unix.EINVAL
	}
	old := t.vm.rlimits.get(res)
	if newp != 0 {
		b, ok := t.slice(newp, rlimitSize)
		if !ok {
			return 0, unix.EFAULT
		}
		l := [2]uint64{binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint64(b[8:])}
		if l[0] > l[1] || (res == unix.RLIMIT_NOFILE && l[1] > maxFDs) {
			return 0, unix.EINVAL
		}
		t.vm.rlimits.m.Store(res, l)
	}
	if oldp != 0 {
		b, ok := t.slice(oldp, rlimitSize)
		if !ok {
			return 0, unix.EFAULT
		}
		binary.LittleEndian.PutUint64(b, old[0])
		binary.LittleEndian.PutUint64(b[8:], old[1])
	}
	return 0, 0
}

// sysUname describes a Linux machine whose node name is the unikernel's.
func sysUname(t *thread, a sysArgs) (uint64, unix.Errno) {
	b, ok := t.slice(a[0], 6*utsFieldSize)
	if !ok {
		return 0, unix.EFAULT
	}
	clear(b)
	for i, s := range []string{"Linux", t.vm.cfg.Name, "6.1.0-atoll", "#1 Atoll unikernel", "x86_64", "(none)"} {
		copy(b[i*utsFieldSize:(i+1)*utsFieldSize-1], s)
	}
	return 0, 0
}
