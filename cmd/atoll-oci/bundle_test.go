package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

var (
	guestOnce sync.Once
	guestBin  string
	guestErr  error
)

// staticGuest builds a static Go program (the hello test guest) once.
func staticGuest(t *testing.T) string {
	t.Helper()
	guestOnce.Do(func() {
		dir, err := os.MkdirTemp("", "atoll-oci-test-")
		if err != nil {
			guestErr = err
			return
		}
		guestBin = filepath.Join(dir, "hello")
		cmd := exec.Command("go", "build", "-o", guestBin, "../../internal/testguests/hello")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			guestErr = err
			guestBin = string(out)
		}
	})
	if guestErr != nil {
		t.Fatalf("build the guest: %v\n%s", guestErr, guestBin)
	}
	return guestBin
}

// writeBundle makes a bundle in a new directory: rootfs with the given
// files (path → host file to copy, or "" for a directory), and config.json
// from s.
func writeBundle(t *testing.T, s spec, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	rootfs := filepath.Join(dir, "rootfs")
	for p, src := range files {
		dst := filepath.Join(rootfs, p)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if src == "" {
			os.MkdirAll(dst, 0o755)
			continue
		}
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(rootfs, 0o755)
	if s.Root == nil {
		s.Root = &root{Path: "rootfs"}
	}
	b, _ := json.Marshal(s)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func i64(v int64) *int64 { return &v }

// TestLoadBundle checks how a bundle becomes atoll run's arguments.
func TestLoadBundle(t *testing.T) {
	guest := staticGuest(t)
	data := t.TempDir()
	quota, period := int64(150000), uint64(100000)
	s := spec{
		Process: &process{Args: []string{"hello", "a b"}, Env: []string{"PATH=/bin", "GREETING=hi", "ATOLL_X=no", "1BAD=x"}, Cwd: "/srv"},
		Mounts: []mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/etc/resolv.conf", Type: "bind", Source: "/nonexistent/resolv.conf", Options: []string{"bind"}},
			{Destination: "/data", Type: "bind", Source: data, Options: []string{"rbind", "ro"}},
		},
		Linux: &linux{
			Namespaces: []namespace{{Type: "pid"}, {Type: "network", Path: "/run/netns/x"}},
			Resources: &resources{Memory: &struct {
				Limit *int64 `json:"limit"`
			}{Limit: i64(96 << 20)}, CPU: &struct {
				Quota  *int64  `json:"quota"`
				Period *uint64 `json:"period"`
				Cpus   string  `json:"cpus"`
			}{Quota: &quota, Period: &period}},
		},
	}
	dir := writeBundle(t, s, map[string]string{"bin/hello": guest, "srv": ""})
	p, err := loadBundle(dir)
	if err != nil {
		t.Fatal(err)
	}
	rootfs := filepath.Join(dir, "rootfs")
	want := []string{"--argv0", "hello", "-e", "PATH=/bin", "-e", "GREETING=hi", "--workdir", "/srv",
		"--mem", "96M", "--cpus", "2", "--volume", data + ":/data:ro",
		"--volume", filepath.Join(rootfs, "bin") + ":/bin:ro", "--volume", filepath.Join(rootfs, "srv") + ":/srv:ro",
		"--net", "host,listen=any,outbound=all", filepath.Join(rootfs, "bin/hello"), "--", "a b"}
	if !slices.Equal(p.args, want) || p.netns != "/run/netns/x" {
		t.Errorf("args\n%q\nwant\n%q\nnetns %q", p.args, want, p.netns)
	}
}

// TestBadBundles checks that what atoll cannot run is refused with a
// reason.
func TestBadBundles(t *testing.T) {
	guest := staticGuest(t)
	script := filepath.Join(t.TempDir(), "script")
	os.WriteFile(script, []byte("#!/bin/sh\necho hi\n"), 0o755)
	dynamic, err := exec.LookPath("true") // a dynamically linked system program
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		s     spec
		files map[string]string
		want  string
	}{
		{"no process", spec{}, nil, "no process to run"},
		{"no args", spec{Process: &process{}}, nil, "no process to run"},
		{"missing executable", spec{Process: &process{Args: []string{"/nope"}}}, nil, "not a file in the bundle's root file system"},
		{"not on PATH", spec{Process: &process{Args: []string{"nope"}}}, nil, "not in the bundle's root file system"},
		{"a script", spec{Process: &process{Args: []string{"/script"}}}, map[string]string{"script": script}, "static Go"},
		{"dynamic", spec{Process: &process{Args: []string{"/true"}}}, map[string]string{"true": dynamic}, "static Go"},
		{"a tmpfs mount", spec{Process: &process{Args: []string{"/hello"}}, Mounts: []mount{{Destination: "/cache", Type: "tmpfs", Source: "tmpfs"}}},
			map[string]string{"hello": guest}, "host directories only"},
		{"no root", spec{Process: &process{Args: []string{"/hello"}}, Root: &root{}}, nil, "no root file system"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := loadBundle(writeBundle(t, c.s, c.files))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want an error with %q", err, c.want)
			}
		})
	}
	if _, err := loadBundle(t.TempDir()); err == nil || !strings.Contains(err.Error(), "config.json") {
		t.Errorf("a bundle without config.json: %v", err)
	}
}

// TestSecureJoin checks that symbolic links in the root file system
// resolve inside it.
func TestSecureJoin(t *testing.T) {
	rootfs := t.TempDir()
	os.MkdirAll(filepath.Join(rootfs, "real"), 0o755)
	os.Symlink("/real", filepath.Join(rootfs, "abs"))
	os.Symlink("../../../../etc", filepath.Join(rootfs, "escape"))
	os.Symlink("loop", filepath.Join(rootfs, "loop"))
	for p, want := range map[string]string{
		"/abs/x":      filepath.Join(rootfs, "real/x"),
		"/escape/pwd": filepath.Join(rootfs, "etc/pwd"),
		"/../../x":    filepath.Join(rootfs, "x"),
	} {
		if got, err := secureJoin(rootfs, p); err != nil || got != want {
			t.Errorf("secureJoin(%q) = %q, %v; want %q", p, got, err, want)
		}
	}
	if _, err := secureJoin(rootfs, "/loop/x"); err == nil {
		t.Error("a symbolic-link loop resolved")
	}
}

func TestParseSignal(t *testing.T) {
	for s, want := range map[string]int{"9": 9, "KILL": 9, "SIGTERM": 15, "term": 15, "SIGRTMIN": 0} {
		got, err := parseSignal(s)
		if want == 0 {
			continue // names beyond x/sys's table are not required
		}
		if err != nil || int(got) != want {
			t.Errorf("parseSignal(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"", "0", "65", "-1", "SIGNOPE", "HUPP"} {
		if _, err := parseSignal(s); err == nil {
			t.Errorf("parseSignal(%q) accepted", s)
		}
	}
}

func TestCpusetSize(t *testing.T) {
	for s, want := range map[string]int{"0": 1, "0-3": 4, "0-1,4,6-7": 5, "x": 0, "3-1": 0} {
		if got := cpusetSize(s); got != want {
			t.Errorf("cpusetSize(%q) = %d, want %d", s, got, want)
		}
	}
}
