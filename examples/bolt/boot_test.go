// The boot test: this program as a unikernel and as a host process, one
// after the other, on one database.

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"atoll.dev/atoll/internal/testenv"
)

// TestBolt adds keys as a unikernel, each transaction reading back the
// one before (through bbolt's shared mapping of the file, which atoll
// keeps current with the guest's writes), then as a host process on the
// same file, then again as a unikernel, and counts from a unikernel: every
// key is there and bbolt's check passes. Before atoll kept the mapping
// current, the second transaction panicked ("page 3 already freed").
func TestBolt(t *testing.T) {
	testenv.RequireKVM(t)
	dir := t.TempDir()
	atoll, img, native := testenv.BuildExample(t, dir, "bolt")
	data := filepath.Join(dir, "data")
	os.Mkdir(data, 0o755)
	unikernel := func(args ...string) *exec.Cmd {
		return exec.Command(atoll, append([]string{"run", "--volume", "data=" + data, img, "--"}, args...)...)
	}
	process := exec.Command(native, "add", "host", "300")
	process.Env = append(os.Environ(), "DB="+filepath.Join(data, "tally.bolt"))
	for _, cmd := range []*exec.Cmd{unikernel("add", "one", "1000"), process, unikernel("add", "two", "300")} {
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", cmd.Args, err, out)
		}
	}
	out, err := unikernel("count").CombinedOutput()
	if want := "host 300\none 1000\ntwo 300\ncheck ok\n"; err != nil || string(out) != want {
		t.Errorf("count: %v\n%s\nwant:\n%s", err, out, want)
	}
}
