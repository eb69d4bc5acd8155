package monitor

import (
	"fmt"
	"strings"
	"sync/atomic"
	"time"
)

// Timeline is when a run reached each stage of its life, measured from
// Run's start: where a boot's time goes (bench/boot.sh prints it).
type Timeline struct {
	VM          time.Duration // the VM made: memory registered, exit path probed
	Guest       time.Duration // the first thread about to enter the guest
	FirstOutput time.Duration // the guest's first console write returned; 0 if none
	Exit        time.Duration // the guest exited, or was stopped
	Closed      time.Duration // the VM's resources released; 0 if Run left that to the background
}

// String formats the timeline in milliseconds.
func (tl Timeline) String() string {
	var b strings.Builder
	b.WriteString("timeline (ms from monitor.Run):")
	for _, s := range []struct {
		name string
		d    time.Duration
	}{{"vm", tl.VM}, {"guest", tl.Guest}, {"first-output", tl.FirstOutput}, {"exit", tl.Exit}, {"closed", tl.Closed}} {
		if s.d != 0 {
			fmt.Fprintf(&b, " %s %.2f", s.name, float64(s.d)/float64(time.Millisecond))
		}
	}
	b.WriteByte('\n')
	return b.String()
}

// timeline records a VM's Timeline as it happens.
type timeline struct {
	start  time.Time
	stages [5]atomic.Int64 // nanoseconds since start, in Timeline's order
}

// The stages, in Timeline's order.
const (
	stageVM = iota
	stageGuest
	stageFirstOutput
	stageExit
	stageClosed
)

// mark records stage now, unless it was recorded before.
func (tl *timeline) mark(stage int) {
	if tl.stages[stage].Load() == 0 {
		tl.stages[stage].CompareAndSwap(0, int64(time.Since(tl.start)))
	}
}

func (tl *timeline) snapshot() Timeline {
	d := func(s int) time.Duration { return time.Duration(tl.stages[s].Load()) }
	return Timeline{VM: d(stageVM), Guest: d(stageGuest), FirstOutput: d(stageFirstOutput), Exit: d(stageExit), Closed: d(stageClosed)}
}
