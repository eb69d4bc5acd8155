package testenv

import (
	"fmt"
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
