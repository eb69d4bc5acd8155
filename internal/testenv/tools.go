package testenv

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Assemble assembles the GNU as source file src and returns its .text
// bytes: how tests check hand-assembled machine code against its source.
func Assemble(t testing.TB, src string) []byte {
	t.Helper()
	RequireCommands(t, "as", "objcopy")
	dir := t.TempDir()
	obj, bin := filepath.Join(dir, "code.o"), filepath.Join(dir, "code.bin")
	if out, err := exec.Command("as", "-o", obj, src).CombinedOutput(); err != nil {
		t.Fatalf("as %s: %v\n%s", src, err, out)
	}
	if out, err := exec.Command("objcopy", "-O", "binary", "-j", ".text", obj, bin).CombinedOutput(); err != nil {
		t.Fatalf("objcopy: %v\n%s", err, out)
	}
	code, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// headerExists reports whether header h is installed for the C compiler.
func headerExists(h string) bool {
	for _, dir := range []string{"/usr/include", "/usr/include/x86_64-linux-gnu"} {
		if _, err := os.Stat(filepath.Join(dir, h)); err == nil {
			return true
		}
	}
	return false
}

// HeaderValues compiles a C program that includes headers and prints each
// of exprs (integer constants, sizeof and offsetof expressions) from the
// installed headers (a header given as "#..." is a preprocessor line
// written as is), and returns the values by expression: how
// tests check the constants and layouts the monitor mirrors.
func HeaderValues(t testing.TB, headers []string, exprs []string) map[string]uint64 {
	t.Helper()
	RequireCommands(t, "gcc")
	var src bytes.Buffer
	// printf is declared rather than included: the C library's headers
	// and the kernel's define some types twice.
	src.WriteString("#include <stddef.h>\nint printf(const char *, ...);\n")
	for _, h := range headers {
		if strings.HasPrefix(h, "#") {
			src.WriteString(h + "\n") // a directive, such as #define _GNU_SOURCE
			continue
		}
		if !headerExists(h) {
			SkipOrFail(t, "kernel headers not installed (linux-libc-dev): no "+h)
			return nil
		}
		src.WriteString("#include <" + h + ">\n")
	}
	src.WriteString("int main(void) {\n")
	for _, e := range exprs {
		src.WriteString("printf(\"%s\\t%llu\\n\", " + strconv.Quote(e) + ", (unsigned long long)(" + e + "));\n")
	}
	src.WriteString("return 0; }\n")
	dir := t.TempDir()
	c, bin := filepath.Join(dir, "probe.c"), filepath.Join(dir, "probe")
	if err := os.WriteFile(c, src.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("gcc", "-o", bin, c).CombinedOutput(); err != nil {
		t.Fatalf("compile header probe: %v\n%s", err, out)
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatalf("run header probe: %v", err)
	}
	vals := map[string]uint64{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), "\t")
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("header probe printed %q", sc.Text())
		}
		vals[k] = n
	}
	return vals
}
