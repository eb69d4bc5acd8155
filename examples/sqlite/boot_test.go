// The boot test: this program as two unikernels and a host process at
// once, on one database.

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"atoll.dev/atoll/internal/testenv"
)

// TestSharedDatabase adds rows to one database from two unikernels sharing
// its volume and from the same program run as a host process, all at
// once, then counts them from a unikernel: every row is there and SQLite
// finds the database intact, so its fcntl locks held across the three
// and, in WAL mode, so did the log's index that they map shared. (Without
// record locks it failed at once with "disk I/O error", and WAL mode
// without shared mappings at its first query.)
func TestSharedDatabase(t *testing.T) {
	testenv.RequireKVM(t)
	dir := t.TempDir()
	atoll, img, native := testenv.BuildExample(t, dir, "sqlite")
	for _, journal := range []string{"WAL", "DELETE"} {
		t.Run(journal, func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "data")
			os.Mkdir(data, 0o755)
			unikernel := func(args ...string) *exec.Cmd {
				return exec.Command(atoll, append([]string{"run", "--volume", "data=" + data, "-e", "JOURNAL=" + journal, img, "--"}, args...)...)
			}
			process := exec.Command(native, "add", "host", "150")
			process.Env = append(os.Environ(), "DB="+filepath.Join(data, "tally.db"), "JOURNAL="+journal)
			runs := []*exec.Cmd{unikernel("add", "one", "150"), unikernel("add", "two", "150"), process}
			outs := make([]string, len(runs))
			for i, cmd := range runs {
				outs[i] = filepath.Join(data, fmt.Sprint("out", i))
				f, err := os.Create(outs[i])
				if err != nil {
					t.Fatal(err)
				}
				cmd.Stdout, cmd.Stderr = f, f
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				f.Close()
			}
			for i, cmd := range runs {
				err := cmd.Wait()
				if b, _ := os.ReadFile(outs[i]); err != nil || !strings.Contains(string(b), "added 150") {
					t.Errorf("%v: %v\n%s", cmd.Args, err, b)
				}
			}
			out, err := unikernel("count").CombinedOutput()
			if want := "host 150\none 150\ntwo 150\nintegrity ok\n"; err != nil || string(out) != want {
				t.Errorf("count: %v\n%s\nwant:\n%s", err, out, want)
			}
			// The header's write version is 2 in WAL mode, 1 otherwise.
			if b, err := os.ReadFile(filepath.Join(data, "tally.db")); err != nil || len(b) < 100 || (b[18] == 2) != (journal == "WAL") {
				t.Errorf("the database is not in %s mode: %v", journal, err)
			}
		})
	}
}
