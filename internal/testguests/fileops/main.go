// Command fileops makes every kind of file call a volume serves, on the
// directory /data (a volume under atoll, any directory natively), and
// prints "all file calls succeeded" when none failed: the seccomp tests'
// walk through the monitor's host file calls.
package main

import (
	"fmt"
	"os"
	"syscall"
	"time"
	"unsafe"
)

// fOFDSetlk is F_OFD_SETLK, which package syscall does not name.
const fOFDSetlk = 37

func main() {
	failed := false
	check := func(what string, err error) {
		if err != nil {
			fmt.Printf("%s: %v\n", what, err)
			failed = true
		}
	}
	f, err := os.Create("/data/f")
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	_, err = f.Write([]byte("hello"))
	check("write", err)
	check("fchmod", f.Chmod(0o600))
	check("chmod", os.Chmod("/data/f", 0o640))
	check("chtimes", os.Chtimes("/data/f", time.Unix(1, 0), time.Unix(2, 0)))
	var st syscall.Statfs_t
	check("fstatfs", syscall.Fstatfs(int(f.Fd()), &st))
	check("statfs", syscall.Statfs("/data", &st))
	check("flock", syscall.Flock(int(f.Fd()), syscall.LOCK_EX))
	lk := syscall.Flock_t{Type: syscall.F_WRLCK, Len: 4}
	check("fcntl F_SETLK", syscall.FcntlFlock(f.Fd(), syscall.F_SETLK, &lk))
	check("fcntl F_GETLK", syscall.FcntlFlock(f.Fd(), syscall.F_GETLK, &lk))
	lk = syscall.Flock_t{Type: syscall.F_RDLCK, Start: 8, Len: 4}
	check("fcntl F_OFD_SETLK", syscall.FcntlFlock(f.Fd(), fOFDSetlk, &lk))
	if m, err := syscall.Mmap(int(f.Fd()), 0, 4096, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED); err != nil {
		check("mmap shared", err)
	} else {
		m[0] = 'H'
		if _, _, e := syscall.Syscall(syscall.SYS_MSYNC, uintptr(unsafe.Pointer(&m[0])), 4096, syscall.MS_SYNC); e != 0 {
			check("msync", e)
		}
		check("munmap", syscall.Munmap(m))
	}
	check("truncate", os.Truncate("/data/f", 10))
	check("ftruncate", f.Truncate(12))
	check("fdatasync", syscall.Fdatasync(int(f.Fd())))
	check("fsync", f.Sync())
	b := make([]byte, 4)
	_, err = f.ReadAt(b, 0)
	check("pread", err)
	_, err = f.WriteAt(b, 2)
	check("pwrite", err)
	check("link", os.Link("/data/f", "/data/g"))
	check("symlink", os.Symlink("f", "/data/h"))
	check("rename", os.Rename("/data/g", "/data/i"))
	_, err = os.Readlink("/data/h")
	check("readlink", err)
	check("mkdir", os.MkdirAll("/data/d/e", 0o755))
	_, err = os.ReadDir("/data")
	check("readdir", err)
	check("remove", os.RemoveAll("/data/d"))
	check("close", f.Close())
	if !failed {
		fmt.Println("all file calls succeeded")
	}
}
