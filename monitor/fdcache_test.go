package monitor

import (
	"testing"

	"golang.org/x/sys/unix"
)

// TestFDCache checks the words the fcntl fast path answers from: the
// console's at boot, forgotten at every change that could make one wrong,
// published again by the monitor's own answer, and never from an answer
// that a change overtook.
func TestFDCache(t *testing.T) {
	tv := newTestVM(t, vmOptions{})
	word := func(fd uint64) uint64 { return tv.word(t, uint64(fdCacheAddr)+8*fd) }
	for fd := range uint64(fdCached) {
		fl, _ := tv.call(t, unix.SYS_FCNTL, fd, unix.F_GETFL)
		if word(fd) != fdValid|fl {
			t.Errorf("descriptor %d: cached %#x, F_GETFL %#x", fd, word(fd), fl)
		}
	}
	for _, change := range []struct {
		name string
		do   func()
	}{
		{"close 0", func() { tv.mustCall(t, unix.SYS_CLOSE, 0) }},
		{"a pipe at 0", func() { tv.mustCall(t, unix.SYS_PIPE2, tv.at(0), 0) }},
		{"dup2 onto 2", func() { tv.mustCall(t, unix.SYS_DUP2, 1, 2) }},
		{"O_NONBLOCK on a dup of 1", func() {
			d := tv.mustCall(t, unix.SYS_DUP, 1)
			tv.mustCall(t, unix.SYS_FCNTL, d, unix.F_SETFL, unix.O_NONBLOCK)
		}},
	} {
		for fd := range uint64(fdCached) {
			tv.call(t, unix.SYS_FCNTL, fd, unix.F_GETFD) // publishes
		}
		change.do()
		for fd := range uint64(fdCached) {
			if word(fd) != 0 {
				t.Errorf("after %s, descriptor %d still cached: %#x", change.name, fd, word(fd))
			}
		}
	}
	fl, _ := tv.call(t, unix.SYS_FCNTL, 1, unix.F_GETFL)
	if fl&unix.O_NONBLOCK == 0 || word(1) != fdValid|fl {
		t.Errorf("F_GETFL 1 = %#x, cached %#x", fl, word(1))
	}
	// An answer found before a change is not published after it.
	gen := tv.fds.generation()
	tv.fds.flagsChanged()
	tv.fds.publish(1, 0, gen)
	if word(1) != 0 {
		t.Errorf("a stale answer was published: %#x", word(1))
	}
	tv.fds.publish(fdCached, 0, tv.fds.generation()) // no such word: ignored
}
