package monitor_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"atoll.dev/atoll/abi"
	"atoll.dev/atoll/internal/testenv"
	"atoll.dev/atoll/manifest"
	"atoll.dev/atoll/monitor"
)

// Boot tests run each VM as atoll run does: confined by the monitor's
// seccomp filter (monitor.SeccompKill). The filter is for good, and the
// test binary goes on to build and boot more, so runVM runs the VM in a
// child process — this test binary again, told by confinedEnv what to run
// (TestMain) — and a VM the filter killed fails its test.

// confinedEnv carries a vmSpec to the child.
const confinedEnv = "ATOLL_TEST_CONFINED_VM"

// vmSpec is what the child runs: the parts of a monitor.Config that
// serialize, and the descriptors it inherits for the rest, from 3 up:
// stdout, stderr, the log, the result, then the block device if any.
type vmSpec struct {
	Image         string // the executable's path
	MapFile       bool   // Config.ImageFile: map the image from the file
	Name          string
	Args, Env     []string
	MemBytes      uint64
	CPUs          int
	Verbose       bool
	MeasureMemory bool
	Block         *blockSpec
}

// blockSpec is an attached block device.
type blockSpec struct {
	Name       string
	Size       uint64
	SectorSize uint64
}

// vmResult is what the child reports.
type vmResult struct {
	Result monitor.Result
	Err    string
}

// TestMain runs the tests, or, in a child of runVM, one confined VM.
func TestMain(m *testing.M) {
	if spec := os.Getenv(confinedEnv); spec != "" {
		testenv.ExitConfined(confinedChild(spec))
	}
	os.Exit(m.Run())
}

// confinedChild runs the VM of spec under the filter and writes its
// vmResult to descriptor 6.
func confinedChild(spec string) int {
	var s vmSpec
	if err := json.Unmarshal([]byte(spec), &s); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	image, err := os.ReadFile(s.Image)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	cfg := monitor.Config{Image: image, Name: s.Name, Args: s.Args, Env: s.Env, MemBytes: s.MemBytes, CPUs: s.CPUs,
		Stdout: os.NewFile(3, "stdout"), Stderr: os.NewFile(4, "stderr"), Log: os.NewFile(5, "log"),
		Verbose: s.Verbose, MeasureMemory: s.MeasureMemory, Seccomp: monitor.SeccompKill}
	if s.MapFile {
		if cfg.ImageFile, err = os.Open(s.Image); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 3
		}
	}
	if b := s.Block; b != nil {
		cfg.Devices = []monitor.Device{{Device: manifest.Device{Name: b.Name, Kind: abi.KindBlock,
			Spec: &manifest.BlockSpec{Size: b.Size, SectorSize: b.SectorSize}}, File: os.NewFile(7, "block")}}
	}
	var r vmResult
	r.Result, err = monitor.Run(context.Background(), cfg)
	if err != nil {
		r.Err = err.Error()
	}
	b, _ := json.Marshal(r)
	if _, err := os.NewFile(6, "result").Write(b); err != nil {
		return 3
	}
	return 0
}

// runVM runs cfg, whose executable is the file image, in a confined child
// process and returns what monitor.Run returned there. Stdout and Stderr
// must be files; Log may be any writer; a block device is the only device
// it passes on; cfg.Image is read from image again in the child.
func runVM(t *testing.T, image string, cfg monitor.Config) (monitor.Result, error) {
	t.Helper()
	if cfg.Stdin != nil || cfg.Files != nil || cfg.Volumes != nil || cfg.HostNet != nil || cfg.Workdir != "" || cfg.Nameservers != nil || len(cfg.Devices) > 1 {
		t.Fatal("runVM: the config has what a child cannot be given")
	}
	s := vmSpec{Image: image, MapFile: cfg.ImageFile != nil, Name: cfg.Name, Args: cfg.Args, Env: cfg.Env,
		MemBytes: cfg.MemBytes, CPUs: cfg.CPUs, Verbose: cfg.Verbose, MeasureMemory: cfg.MeasureMemory}
	dir := t.TempDir()
	log, err := os.Create(filepath.Join(dir, "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	result, err := os.Create(filepath.Join(dir, "result"))
	if err != nil {
		t.Fatal(err)
	}
	defer result.Close()
	files := []*os.File{cfg.Stdout, cfg.Stderr, log, result}
	if len(cfg.Devices) == 1 {
		d := cfg.Devices[0]
		b, ok := d.Spec.(*manifest.BlockSpec)
		if d.Kind != abi.KindBlock || !ok {
			t.Fatal("runVM: only a block device can be passed on")
		}
		s.Block = &blockSpec{Name: d.Name, Size: b.Size, SectorSize: b.SectorSize}
		files = append(files, d.File)
	}
	spec, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = testenv.ChildEnv(confinedEnv + "=" + string(spec))
	cmd.ExtraFiles = files
	cmd.Stdout, cmd.Stderr = cfg.Stderr, cfg.Stderr
	runErr := cmd.Run()
	if cfg.Log != nil {
		b, _ := os.ReadFile(log.Name())
		cfg.Log.Write(b)
	}
	var ee *exec.ExitError
	if errors.As(runErr, &ee) {
		if ws := ee.Sys().(syscall.WaitStatus); ws.Signaled() {
			if ws.Signal() == syscall.SIGSYS {
				t.Fatalf("%s: the monitor was killed by its seccomp filter (SIGSYS): it made a host call the filter lacks", cfg.Name)
			}
			t.Fatalf("%s: the monitor died of %v", cfg.Name, ws.Signal())
		}
	}
	if runErr != nil {
		t.Fatalf("%s: the monitor's process: %v", cfg.Name, runErr)
	}
	b, err := os.ReadFile(result.Name())
	if err != nil {
		t.Fatal(err)
	}
	var r vmResult
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("%s: the child's result %q: %v", cfg.Name, b, err)
	}
	if r.Err != "" {
		return r.Result, errors.New(r.Err)
	}
	return r.Result, nil
}
