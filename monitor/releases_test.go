package monitor_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"atoll.dev/atoll/internal/testenv"
)

// goReleases are the toolchains besides the one running the tests that
// guests must boot with (fetched by the go command through GOTOOLCHAIN).
// eggos, the last Go unikernel on the stock toolchain, died when Go 1.17
// changed the runtime; testing the range is how Atoll avoids that fate.
var goReleases = []string{"go1.25.9", "go1.27.3"}

// TestGoReleases builds a set of guests with each release and boots them.
func TestGoReleases(t *testing.T) {
	testenv.RequireKVM(t)
	guests := map[string]string{
		"hello":      "hello from atoll\n",
		"goroutines": "gc ran true\n",
		"nilrecover": "still running\n",
		"preempt":    "main goroutine ran again: true\n",
		"clock":      "monotonic ok: true\n",
	}
	for _, rel := range goReleases {
		t.Run(rel, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module guests\n\ngo 1.25\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			for name := range guests {
				src, err := os.ReadFile(filepath.Join("..", "internal", "testguests", name, "main.go"))
				if err != nil {
					t.Fatal(err)
				}
				os.MkdirAll(filepath.Join(dir, name), 0o755)
				if err := os.WriteFile(filepath.Join(dir, name, "main.go"), src, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			ver := exec.Command("go", "version")
			ver.Dir = dir
			ver.Env = append(os.Environ(), "GOTOOLCHAIN="+rel)
			out, err := ver.CombinedOutput()
			if err != nil || !strings.Contains(string(out), rel) {
				if os.Getenv("CI") != "" {
					t.Fatalf("toolchain %s unavailable: %v\n%s", rel, err, out)
				}
				t.Skipf("toolchain %s unavailable (the module proxy serves it): %v\n%s", rel, err, out)
			}
			for name, want := range guests {
				bin := filepath.Join(dir, name+".bin")
				build := exec.Command("go", "build", "-o", bin, "./"+name)
				build.Dir = dir
				build.Env = append(os.Environ(), "GOTOOLCHAIN="+rel, "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
				if out, err := build.CombinedOutput(); err != nil {
					t.Fatalf("build %s with %s: %v\n%s", name, rel, err, out)
				}
				vm, _ := boot(t, bin, nil, nil, 512<<20)
				if vm.code != 0 || !strings.Contains(vm.stdout, want) {
					t.Errorf("%s built with %s: exit %d, stdout %q, want %q\nstderr:\n%.3000s", name, rel, vm.code, vm.stdout, want, vm.stderr)
				}
			}
		})
	}
}
