package monitor

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// HostMemory is the host memory of the process running a VM, as the
// kernel accounts it. The guest's pages live in the monitor's mappings, so
// this is the monitor and the guest's touched pages together (not the
// kernel's own memory for the VM, such as KVM's page-tracking metadata).
type HostMemory struct {
	RSS uint64 // resident bytes, shared file pages (the image's, atoll's code) included
	// PSS is RSS with each shared page divided among the processes
	// mapping it: what one more VM of the same image costs, roughly.
	PSS uint64
	// Anonymous is private memory: the guest's written pages and the
	// monitor's heap.
	Anonymous uint64
	PeakRSS   uint64 // the highest RSS so far
}

// String formats m in MiB, for atoll run --stats.
func (m HostMemory) String() string {
	mib := func(n uint64) float64 { return float64(n) / (1 << 20) }
	return fmt.Sprintf("host memory: RSS %.1f MiB, PSS %.1f MiB, anonymous %.1f MiB; peak RSS %.1f MiB\n",
		mib(m.RSS), mib(m.PSS), mib(m.Anonymous), mib(m.PeakRSS))
}

// readHostMemory measures this process.
func readHostMemory() (HostMemory, error) {
	f, err := os.Open("/proc/self/smaps_rollup")
	if err != nil {
		return HostMemory{}, err
	}
	defer f.Close()
	m, err := parseSmapsRollup(f)
	if err != nil {
		return HostMemory{}, err
	}
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return HostMemory{}, err
	}
	// The kernel updates the high-water mark lazily: it may lag RSS.
	m.PeakRSS = max(uint64(ru.Maxrss)<<10, m.RSS) // Maxrss is in kB
	return m, nil
}

// parseSmapsRollup reads the Rss, Pss and Anonymous lines of
// /proc/PID/smaps_rollup (in kB).
func parseSmapsRollup(r io.Reader) (HostMemory, error) {
	var m HostMemory
	fields := map[string]*uint64{"Rss:": &m.RSS, "Pss:": &m.PSS, "Anonymous:": &m.Anonymous}
	found := 0
	s := bufio.NewScanner(r)
	for s.Scan() {
		f := bytes.Fields(s.Bytes())
		if len(f) != 3 || string(f[2]) != "kB" {
			continue
		}
		p, ok := fields[string(f[0])]
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(string(f[1]), 10, 64)
		if err != nil {
			return HostMemory{}, fmt.Errorf("smaps_rollup: %s: %w", f[0], err)
		}
		*p = n << 10
		found++
	}
	if err := s.Err(); err != nil {
		return HostMemory{}, err
	}
	if found != len(fields) {
		return HostMemory{}, fmt.Errorf("smaps_rollup: %d of the Rss, Pss and Anonymous lines", found)
	}
	return m, nil
}
