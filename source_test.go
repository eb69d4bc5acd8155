package atoll

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSourceComplete checks that Source holds every file the guest
// library's packages are built from, so that a copy written by atoll lib
// builds: a new package, or a file of another kind, must be added to the
// //go:embed line.
func TestSourceComplete(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f",
		`{{if and .Module (eq .Module.Path "atoll.dev/atoll")}}{{.ImportPath}}|{{.Dir}}|{{join .GoFiles " "}} {{join .IgnoredGoFiles " "}} {{join .SFiles " "}} {{join .HFiles " "}} {{join .CgoFiles " "}} {{join .SysoFiles " "}} {{join .EmbedFiles " "}}{{end}}`,
		".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	root, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for line := range strings.Lines(strings.TrimSpace(string(out))) {
		f := strings.SplitN(strings.TrimSpace(line), "|", 3)
		if len(f) != 3 {
			continue
		}
		rel, err := filepath.Rel(root, f[1])
		if err != nil {
			t.Fatal(err)
		}
		for _, file := range strings.Fields(f[2]) {
			p := filepath.ToSlash(filepath.Join(rel, file))
			if _, err := fs.Stat(Source, p); err != nil && !strings.HasPrefix(file, "..") {
				if f[0] == "atoll.dev/atoll" && (file == "go.mod" || file == "go.sum") {
					continue
				}
				t.Errorf("%s: Source lacks %s: add it to the //go:embed line in source.go", f[0], p)
			}
			n++
		}
	}
	for _, f := range []string{"go.mod", "go.sum"} {
		if _, err := fs.Stat(Source, f); err != nil {
			t.Errorf("Source lacks %s", f)
		}
	}
	if n < 5 {
		t.Fatalf("go list found only %d library files:\n%s", n, out)
	}
}

// TestSourceNotLinked checks that the embedded source costs unikernels
// nothing: the linker leaves the unreferenced Source out of a program
// that imports the library (examples/hello). A program that reads Source,
// added to the tree for the build only with -overlay, is the control.
func TestSourceNotLinked(t *testing.T) {
	const sym = " atoll.dev/atoll.Source\n"
	dir := t.TempDir()
	root, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	control := filepath.Join(dir, "control.go")
	overlay := filepath.Join(dir, "overlay.json")
	os.WriteFile(control, []byte("package main\n\nimport (\n\t\"fmt\"\n\n\t\"atoll.dev/atoll\"\n)\n\nfunc main() { fmt.Println(atoll.Source.ReadFile(\"go.mod\")) }\n"), 0o644)
	os.WriteFile(overlay, []byte(`{"Replace": {"`+filepath.Join(root, "internal", "sourcecontrol", "main.go")+`": "`+control+`"}}`), 0o644)
	symbols := func(pkg string) string {
		t.Helper()
		bin := filepath.Join(dir, filepath.Base(pkg))
		cmd := exec.Command("go", "build", "-overlay", overlay, "-o", bin, pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", pkg, err, out)
		}
		out, err := exec.Command("go", "tool", "nm", bin).Output()
		if err != nil {
			t.Fatalf("go tool nm %s: %v", bin, err)
		}
		return string(out)
	}
	if !strings.Contains(symbols("./internal/sourcecontrol"), sym) {
		t.Fatalf("the control failed: a program that reads Source has no symbol%q", sym)
	}
	hello := symbols("./examples/hello")
	if !strings.Contains(hello, " atoll.dev/atoll.Devices\n") {
		t.Fatal("examples/hello no longer uses the guest library: pick another program")
	}
	if strings.Contains(hello, sym) {
		t.Errorf("examples/hello links%q: the library's source is in every unikernel", sym)
	}
}
