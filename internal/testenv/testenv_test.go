package testenv

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// recorder is a testing.TB that records how a helper would have ended the
// test, without ending it.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper() {}

func (r *recorder) Skipf(format string, args ...any) { r.skipped = fmt.Sprintf(format, args...) }

func (r *recorder) Fatalf(format string, args ...any) { r.failed = fmt.Sprintf(format, args...) }

func TestRequireCommands(t *testing.T) {
	const missing = "atoll-no-such-command"
	tests := []struct {
		name, ci        string
		cmds            []string
		skipped, failed string // fragments; empty for none
	}{
		{name: "present", cmds: []string{"go"}},
		{name: "none", cmds: nil},
		{name: "missing", cmds: []string{"go", missing}, skipped: "not installed (not on PATH): " + missing},
		{name: "missing two", cmds: []string{missing, missing + "2"}, skipped: missing + ", " + missing + "2"},
		{name: "missing under CI", ci: "true", cmds: []string{missing}, failed: "must run in CI, but not installed (not on PATH): " + missing},
		{name: "present under CI", ci: "true", cmds: []string{"go"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("CI", tt.ci)
			r := &recorder{TB: t}
			RequireCommands(r, tt.cmds...)
			for _, c := range []struct{ what, got, want string }{{"skip", r.skipped, tt.skipped}, {"failure", r.failed, tt.failed}} {
				if c.want == "" && c.got != "" || !strings.Contains(c.got, c.want) {
					t.Errorf("%s %q, want %q", c.what, c.got, c.want)
				}
			}
		})
	}
}

// TestChildEnv checks that a child's environment keeps the parent's, adds
// the extra variables, and keeps GORACE's options with atexit_sleep_ms=0
// last.
func TestChildEnv(t *testing.T) {
	t.Setenv("GORACE", "halt_on_error=1")
	t.Setenv("ATOLL_TEST_KEPT", "yes")
	env := ChildEnv("EXTRA=1")
	has := map[string]bool{}
	for _, kv := range env {
		has[kv] = true
	}
	if !has["ATOLL_TEST_KEPT=yes"] || !has["EXTRA=1"] || !has["GORACE=halt_on_error=1 atexit_sleep_ms=0"] {
		t.Errorf("ChildEnv: %q", env)
	}
	os.Unsetenv("GORACE")
	if env := ChildEnv(); env[len(env)-1] != "GORACE=atexit_sleep_ms=0" {
		t.Errorf("without GORACE: %q", env)
	}
}
