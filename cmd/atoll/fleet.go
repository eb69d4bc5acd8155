package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"atoll.dev/atoll/monitor"
)

// The local fleet: unikernels started with atoll run -d, each a directory
// under the state directory, with no daemon. A detached unikernel is two
// processes: a supervisor (atoll itself, in a session of its own), which
// holds an exclusive lock on the directory's lock file for as long as it
// lives, and its child, the atoll run that is the VM. The supervisor
// starts the child again as the restart policy says, and writes how each
// life ended. Whether a unikernel runs is whether its lock is held — not
// a process ID, which the system may give to another process once it is
// gone — so any atoll process reads the same state, and a supervisor
// killed outright leaves a unikernel that ps reports as gone.
//
// An entry's directory holds:
//
//	config.json  what was asked (fleetConfig), written once
//	lock         held by the supervisor while it lives
//	pid          the supervisor's process ID, then the VM's, one per line
//	log          the guest's output and atoll's messages, appended
//	exit.json    how the last life ended (fleetExit)
//	stop         present once atoll stop asked it to stop: no restart
//	image        the image, when atoll run -d built it from a directory

// stateEnv names the state directory, overriding the default.
const stateEnv = "ATOLL_STATE"

// stateDir returns the state directory: $ATOLL_STATE, else /run/atoll for
// root, else $XDG_RUNTIME_DIR/atoll, else a directory of the user's own
// under the temporary directory.
func stateDir() string {
	if d := os.Getenv(stateEnv); d != "" {
		return d
	}
	if os.Geteuid() == 0 {
		return "/run/atoll"
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "atoll")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("atoll-%d", os.Geteuid()))
}

// fleetConfig is what atoll run -d was asked.
type fleetConfig struct {
	Name    string    `json:"name"`
	Image   string    `json:"image"`   // as given
	Args    []string  `json:"args"`    // the foreground atoll run's arguments
	Dir     string    `json:"dir"`     // its working directory
	Ports   []string  `json:"ports"`   // -p flags, for ps
	Memory  uint64    `json:"memory"`  // the memory limit, for ps
	Restart string    `json:"restart"` // the restart policy, as given
	Created time.Time `json:"created"`
}

// fleetExit is how a life ended.
type fleetExit struct {
	Code     int       `json:"code"`     // atoll run's exit status
	Signal   string    `json:"signal"`   // what killed atoll run, if anything did
	Ended    time.Time `json:"ended"`    // when
	Started  time.Time `json:"started"`  // when that life began
	Restarts int       `json:"restarts"` // lives before this one
	Stopped  bool      `json:"stopped"`  // atoll stop asked for it
}

// entry is one unikernel of the fleet.
type entry struct {
	dir string
	cfg fleetConfig
}

var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// checkName refuses a name that cannot be a directory of its own.
func checkName(name string) error {
	if !validName.MatchString(name) {
		return fmt.Errorf("bad unikernel name %q: want letters, digits, '_', '.' or '-', starting with a letter or digit, at most 64", name)
	}
	return nil
}

// openEntry reads the entry called name.
func openEntry(name string) (*entry, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	e := &entry{dir: filepath.Join(stateDir(), name)}
	b, err := os.ReadFile(filepath.Join(e.dir, "config.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("no unikernel named %s (atoll ps lists them)", name)
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &e.cfg); err != nil {
		return nil, fmt.Errorf("%s: %v", filepath.Join(e.dir, "config.json"), err)
	}
	return e, nil
}

// entries reads every entry, by name.
func entries() ([]*entry, error) {
	des, err := os.ReadDir(stateDir())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []*entry
	for _, de := range des {
		if !de.IsDir() || checkName(de.Name()) != nil {
			continue
		}
		if e, err := openEntry(de.Name()); err == nil {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].cfg.Name < out[j].cfg.Name })
	return out, nil
}

func (e *entry) path(name string) string { return filepath.Join(e.dir, name) }

// running reports whether the entry's supervisor lives: whether its lock
// is held.
func (e *entry) running() bool {
	f, err := os.Open(e.path("lock"))
	if err != nil {
		return false
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB); err != nil {
		return true
	}
	return false
}

// pids returns the supervisor's process ID and the VM's (0 if none yet).
func (e *entry) pids() (supervisor, vm int) {
	b, _ := os.ReadFile(e.path("pid"))
	f := strings.Fields(string(b))
	if len(f) > 0 {
		supervisor, _ = strconv.Atoi(f[0])
	}
	if len(f) > 1 {
		vm, _ = strconv.Atoi(f[len(f)-1])
	}
	return supervisor, vm
}

// lastExit reads how the last life ended, if one has.
func (e *entry) lastExit() (fleetExit, bool) {
	var x fleetExit
	b, err := os.ReadFile(e.path("exit.json"))
	if err != nil || json.Unmarshal(b, &x) != nil {
		return x, false
	}
	return x, true
}

// status is what ps says of the entry, and how long it has been so.
func (e *entry) status(now time.Time) (string, time.Duration) {
	x, ended := e.lastExit()
	if e.running() {
		if _, vm := e.pids(); vm != 0 {
			since := e.cfg.Created
			if ended {
				since = x.Ended
			}
			return "running", now.Sub(since)
		}
		return "starting", now.Sub(e.cfg.Created)
	}
	if !ended {
		return "gone (its supervisor was killed)", 0
	}
	what := fmt.Sprintf("exit %d", x.Code)
	if x.Signal != "" {
		what = x.Signal
	}
	switch {
	case x.Stopped:
		return "stopped (" + what + ")", now.Sub(x.Ended)
	case x.Code == 0 && x.Signal == "":
		return "exited (0)", now.Sub(x.Ended)
	case x.Signal != "" || x.Code == monitor.ExitVMFault || x.Code > 128:
		return "crashed (" + what + ")", now.Sub(x.Ended) // a signal, a VM fault, out of memory
	}
	return "failed (" + what + ")", now.Sub(x.Ended) // the guest's own non-zero exit
}

// vmRSS returns the resident memory of the VM's process, if it runs: a
// child of the supervisor (its ID is not yet someone else's).
func (e *entry) vmRSS() (uint64, bool) {
	sup, vm := e.pids()
	if vm == 0 || !e.running() {
		return 0, false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", vm))
	if err != nil || !strings.Contains(string(b), fmt.Sprintf("\nPPid:\t%d\n", sup)) {
		return 0, false
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err == nil
		}
	}
	return 0, false
}
