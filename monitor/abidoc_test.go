package monitor

import (
	"flag"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite docs/abi.md's call list from the system-call table")

// The generated part of docs/abi.md lies between these lines.
const (
	docBegin = "<!-- BEGIN system-call table: generated from monitor/systable.go by `go generate ./monitor`; do not edit -->\n"
	docEnd   = "<!-- END system-call table -->\n"
)

// TestABIDocMatchesTable fails when docs/abi.md's call list differs from
// the system-call table; -update rewrites it.
func TestABIDocMatchesTable(t *testing.T) {
	const path = "../docs/abi.md"
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(doc)
	i, j := strings.Index(s, docBegin), strings.Index(s, docEnd)
	if i < 0 || j < i {
		t.Fatalf("%s lacks the markers of the generated call list", path)
	}
	want := s[:i+len(docBegin)] + SyscallDoc() + s[j:]
	if want == s {
		return
	}
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("%s's call list differs from the system-call table: run go generate ./monitor", path)
}

// TestSyscallTable checks the table's entries are complete: a handler or
// an errno each, a note wherever support is not full, known subjects.
func TestSyscallTable(t *testing.T) {
	known := map[string]bool{}
	for _, s := range subjects {
		known[s] = true
	}
	for _, s := range syscallTable {
		switch {
		case s.name == "" || !known[s.subject]:
			t.Errorf("entry %d: name %q, subject %q", s.nr, s.name, s.subject)
		case s.support == SupportError && s.errno == 0:
			t.Errorf("%s: an error entry without an errno", s.name)
		case s.support != SupportError && (s.fn == nil || s.errno != 0):
			t.Errorf("%s: a supported call needs a handler and no fixed errno", s.name)
		case s.support != SupportFull && s.note == "":
			t.Errorf("%s: %v support needs a note", s.name, s.support)
		}
		if lookupSyscall(s.nr) == nil || syscallName(s.nr) != s.name {
			t.Errorf("%s: not found by number", s.name)
		}
	}
	if got := syscallName(999); got != "syscall_999" {
		t.Errorf("syscallName(999) = %q", got)
	}
	doc := SyscallDoc()
	for _, want := range []string{"### Memory\n", "| `socketpair` | 53 | error: `EAFNOSUPPORT` |", "| `read` | 0 | full |"} {
		if !strings.Contains(doc, want) {
			t.Errorf("SyscallDoc lacks %q", want)
		}
	}
}
