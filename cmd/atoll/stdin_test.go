package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"atoll.dev/atoll/internal/testenv"
)

// TestStdin gives a JSON tool its input on standard input, from a pipe
// and from a file, and requires the native answer — and no input, which
// must fail as it does natively, not succeed with an empty answer.
func TestStdin(t *testing.T) {
	testenv.RequireKVM(t)
	dir := t.TempDir()
	atoll := atollBinary(t, dir)
	guest := filepath.Join(dir, "jsonfield")
	build := exec.Command("go", "build", "-o", guest, "../../internal/testguests/jsonfield")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	input := filepath.Join(dir, "in.json")
	big := `{"pad":"` + strings.Repeat("x", 200_000) + `","a":{"b":[1,2,3]}}`
	os.WriteFile(input, []byte(big), 0o644)
	run := func(stdin func(*exec.Cmd), name string, args ...string) (string, int) {
		cmd := exec.Command(name, args...)
		stdin(cmd)
		var out bytes.Buffer
		cmd.Stdout = &out
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return out.String(), code
	}
	for _, c := range []struct {
		name  string
		stdin func(*exec.Cmd)
	}{
		{"pipe", func(c *exec.Cmd) { c.Stdin = strings.NewReader(big) }},
		{"file", func(c *exec.Cmd) { f, _ := os.Open(input); c.Stdin = f }},
		{"empty", func(c *exec.Cmd) { c.Stdin = strings.NewReader("") }},
	} {
		nOut, nCode := run(c.stdin, guest, "a")
		aOut, aCode := run(c.stdin, atoll, "run", guest, "--", "a")
		if nOut != aOut || nCode != aCode {
			t.Errorf("stdin from a %s: atoll exit %d, %q; native exit %d, %q", c.name, aCode, aOut, nCode, nOut)
		}
	}
}
