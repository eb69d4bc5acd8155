// Command files exercises the file system an unchanged Go program expects:
// a temporary directory and its round trips, the working directory,
// os.Executable, /dev, /etc/hosts lookups and "not exist" errors. It
// prints only what is the same on any Linux, so its output can be
// compared with a native run.
package main

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"
)

func check(what string, err error) {
	if err != nil {
		fmt.Printf("%s: %v\n", what, err)
		os.Exit(1)
	}
}

func main() {
	dir, err := os.MkdirTemp("", "files-")
	check("mkdtemp", err)
	defer os.RemoveAll(dir)
	p := filepath.Join(dir, "a.txt")
	check("write", os.WriteFile(p, []byte("hello"), 0o640))
	f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	check("open append", err)
	f.WriteString(", world")
	f.Close()
	b, _ := os.ReadFile(p)
	fmt.Printf("read back: %q\n", b)
	st, _ := os.Stat(p)
	fmt.Println("size", st.Size(), "mode", st.Mode().Perm(), "regular", st.Mode().IsRegular())
	check("truncate", os.Truncate(p, 5))
	b, _ = os.ReadFile(p)
	fmt.Printf("truncated: %q\n", b)
	check("rename", os.Rename(p, filepath.Join(dir, "b.txt")))
	_, err = os.Stat(p)
	fmt.Println("old name gone:", errors.Is(err, fs.ErrNotExist))
	check("mkdir", os.MkdirAll(filepath.Join(dir, "sub", "deeper"), 0o755))
	check("symlink", os.Symlink("b.txt", filepath.Join(dir, "link")))
	target, _ := os.Readlink(filepath.Join(dir, "link"))
	via, _ := os.ReadFile(filepath.Join(dir, "link"))
	fmt.Printf("link -> %s reads %q\n", target, via)
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		names = append(names, fmt.Sprintf("%s:%v", e.Name(), e.Type()))
	}
	fmt.Println("entries", names)
	var walked []string
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		rel, _ := filepath.Rel(dir, path)
		walked = append(walked, rel)
		return err
	})
	fmt.Println("walked", walked)
	check("chmod", os.Chmod(filepath.Join(dir, "b.txt"), 0o600))
	when := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	check("chtimes", os.Chtimes(filepath.Join(dir, "b.txt"), when, when))
	st, _ = os.Stat(filepath.Join(dir, "b.txt"))
	fmt.Println("mode", st.Mode().Perm(), "mtime", st.ModTime().UTC())

	// A large file, written and read back in pieces.
	big := make([]byte, 8<<20)
	for i := range big {
		big[i] = byte(i * 7)
	}
	bp := filepath.Join(dir, "big")
	check("big write", os.WriteFile(bp, big, 0o644))
	bf, err := os.Open(bp)
	check("big open", err)
	h := sha256.New()
	n, err := io.CopyBuffer(h, bf, make([]byte, 100_000))
	check("big read", err)
	bf.Close()
	fmt.Printf("big: %d bytes, same: %v\n", n, bytes.Equal(h.Sum(nil), func() []byte { s := sha256.Sum256(big); return s[:] }()))
	check("remove", os.Remove(bp))

	// The working directory.
	check("chdir", os.Chdir(dir))
	wd, _ := os.Getwd()
	fmt.Println("getwd is the temp dir:", wd == dir)
	rel, err := os.ReadFile("b.txt")
	fmt.Printf("relative read: %q %v\n", rel, err)

	// Not-exist errors, whatever the call.
	for _, op := range []func() error{
		func() error { _, err := os.Stat("/nonexistent/x"); return err },
		func() error { _, err := os.Lstat("/nonexistent"); return err },
		func() error { _, err := os.Readlink("/nonexistent"); return err },
		func() error { _, err := os.Open("/nonexistent"); return err },
		func() error { return os.Mkdir("/nonexistent/x", 0o755) },
	} {
		fmt.Print(errors.Is(op(), fs.ErrNotExist), " ")
	}
	fmt.Println("= not exist")

	// The executable, /dev and /etc/hosts.
	exe, err := os.Executable()
	check("executable", err)
	ef, err := os.Open(exe)
	check("open executable", err)
	magic := make([]byte, 4)
	io.ReadFull(ef, magic)
	ef.Close()
	fmt.Printf("executable starts %q\n", magic)
	null, _ := os.OpenFile("/dev/null", os.O_RDWR, 0)
	nw, _ := null.Write([]byte("discard"))
	nr, err := null.Read(make([]byte, 8))
	fmt.Println("/dev/null:", nw, nr, err)
	zeros := make([]byte, 16)
	zf, _ := os.Open("/dev/zero")
	io.ReadFull(zf, zeros)
	fmt.Println("/dev/zero:", bytes.Count(zeros, []byte{0}))
	addrs, err := net.LookupHost("localhost")
	fmt.Println("localhost:", slices.Contains(addrs, "127.0.0.1"), err)
	fmt.Println("done")
}
