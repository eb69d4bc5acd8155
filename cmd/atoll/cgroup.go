package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Each atoll run puts itself in a memory cgroup of its own when the host
// lets it (root, and a memory controller it can make a child cgroup in),
// with a limit of the guest's --mem plus cgroupOverhead: the monitor
// bounds what the guest holds itself (docs/architecture.md, "Memory"),
// and the cgroup is the host kernel's backstop should that fail — past
// it the kernel reclaims atoll's page cache and then ends atoll (SIGKILL,
// exit status 137). Where the host does not let it, atoll runs in the
// cgroup it was started in, and -v says why.

// cgroupOverhead is host memory beyond --mem that atoll run may use: its
// own (the Go runtime, the monitor's data, the image's page cache), and
// page cache of its volumes' files, which the kernel reclaims first.
const cgroupOverhead = 256 << 20

// memoryCgroup is the cgroup atoll run moved itself into.
type memoryCgroup struct {
	dir, parent string
}

// joinMemoryCgroup makes a memory cgroup for this process below the one
// it is in, limited to limit bytes, and moves the process into it.
func joinMemoryCgroup(limit uint64) (*memoryCgroup, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("not root")
	}
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	var parent, limitFile string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.SplitN(l, ":", 3)
		if len(f) != 3 {
			continue
		}
		for _, c := range strings.Split(f[1], ",") {
			if c == "memory" {
				parent, limitFile = filepath.Join("/sys/fs/cgroup/memory", f[2]), "memory.limit_in_bytes"
			}
		}
		if f[0] == "0" && f[1] == "" && parent == "" {
			// cgroup v2: usable if the memory controller is enabled for
			// children of the current cgroup.
			p := filepath.Join("/sys/fs/cgroup", f[2])
			if sc, err := os.ReadFile(filepath.Join(p, "cgroup.subtree_control")); err == nil && strings.Contains(" "+string(sc)+" ", " memory ") {
				parent, limitFile = p, "memory.max"
			}
		}
	}
	if parent == "" {
		return nil, errors.New("no memory controller this process can make a cgroup under")
	}
	removeStaleCgroups(parent)
	cg := &memoryCgroup{dir: filepath.Join(parent, fmt.Sprintf("atoll-%d", os.Getpid())), parent: parent}
	if err := os.Mkdir(cg.dir, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(cg.dir, limitFile), []byte(strconv.FormatUint(limit, 10)), 0); err != nil {
		os.Remove(cg.dir)
		return nil, fmt.Errorf("set its limit: %w", err)
	}
	if err := os.WriteFile(filepath.Join(cg.dir, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0); err != nil {
		os.Remove(cg.dir)
		return nil, fmt.Errorf("move into it: %w", err)
	}
	return cg, nil
}

// leave moves the process back to the cgroup it came from and removes its
// own.
func (cg *memoryCgroup) leave() error {
	if err := os.WriteFile(filepath.Join(cg.parent, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0); err != nil {
		return err
	}
	return os.Remove(cg.dir)
}

// removeStaleCgroups removes the cgroups of atoll runs that ended without
// removing theirs (killed with SIGKILL): atoll-PID where PID is gone.
func removeStaleCgroups(parent string) {
	des, _ := os.ReadDir(parent)
	for _, de := range des {
		pid, ok := strings.CutPrefix(de.Name(), "atoll-")
		if n, err := strconv.Atoi(pid); !ok || err != nil || !de.IsDir() || n == os.Getpid() {
			continue
		}
		if _, err := os.Stat("/proc/" + pid); errors.Is(err, os.ErrNotExist) {
			os.Remove(filepath.Join(parent, de.Name())) // fails, harmlessly, if it holds a process
		}
	}
}
