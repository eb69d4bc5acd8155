package monitor

import (
	"testing"

	"golang.org/x/sys/unix"
)

func testPipe(t *testing.T) (r, w int) {
	t.Helper()
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		t.Fatal(err)
	}
	return p[0], p[1]
}

// readsEOF reports whether the pipe read end r sees end-of-file, that is
// whether every write end is closed.
func readsEOF(t *testing.T, r int) bool {
	t.Helper()
	n, err := unix.Read(r, make([]byte, 1))
	if err == unix.EAGAIN {
		return false
	}
	if err != nil || n != 0 {
		t.Fatalf("read: %d, %v", n, err)
	}
	return true
}

// TestFDTableCloseWhileInUse checks that closing a guest descriptor that a
// call still uses keeps the host descriptor open until the call ends.
func TestFDTableCloseWhileInUse(t *testing.T) {
	var ft fdTable
	ft.init()
	r, w := testPipe(t)
	defer unix.Close(r)
	fd, e := ft.install(&pipeEnd{newHostStream(w, true)}, 3)
	if e != 0 || fd != 3 {
		t.Fatalf("install: %d, %v", fd, e)
	}
	f, ok := ft.acquire(3)
	if !ok || f.file.(*pipeEnd).fd != w {
		t.Fatalf("acquire: %v %v", f, ok)
	}
	if e := ft.close(3); e != 0 {
		t.Fatalf("close: %v", e)
	}
	if _, ok := ft.acquire(3); ok {
		t.Fatal("closed descriptor still resolves")
	}
	if e := ft.close(3); e != unix.EBADF {
		t.Fatalf("second close: %v, want EBADF", e)
	}
	if readsEOF(t, r) {
		t.Fatal("host descriptor closed while a call holds it")
	}
	if n, err := unix.Write(f.file.(*pipeEnd).fd, []byte("x")); n != 1 || err != nil {
		t.Fatalf("write through the held reference: %d, %v", n, err)
	}
	unix.Read(r, make([]byte, 1))
	f.release()
	if !readsEOF(t, r) {
		t.Fatal("host descriptor still open after the last reference")
	}
}

// TestFDTableDupShares checks that descriptors made by dup share one open
// file (and its kind), closed with the last of them.
func TestFDTableDupShares(t *testing.T) {
	var ft fdTable
	ft.init()
	r, w := testPipe(t)
	defer unix.Close(r)
	blk := &blockDevice{hostFD: hostFD{w}, size: 4096, sector: 512}
	fd, _ := ft.install(blk, 3)
	f, _ := ft.acquire(uint64(fd))
	fd2, e := ft.installFile(f, 0)
	if e != 0 {
		t.Fatal(e)
	}
	g, _ := ft.acquire(uint64(fd2))
	if g != f || g.file != file(blk) {
		t.Fatalf("dup does not share the open file: %+v vs %+v", g, f)
	}
	g.release()
	f2, _ := ft.acquire(uint64(fd))
	ft.installAt(f2, 10) // dup2 onto a free number
	ft.close(uint64(fd))
	ft.close(uint64(fd2))
	if readsEOF(t, r) {
		t.Fatal("closed while a dup remains")
	}
	r2, w2 := testPipe(t)
	defer unix.Close(r2)
	ft.installAt(newOpenFile(&pipeEnd{newHostStream(w2, true)}), 10) // dup2 over the last one
	if !readsEOF(t, r) {
		t.Fatal("dup2 over the last descriptor left the file open")
	}
	ft.closeAll()
	if !readsEOF(t, r2) {
		t.Fatal("closeAll left a file open")
	}
	if ft.valid(10) {
		t.Fatal("descriptor valid after closeAll")
	}
}

// TestFDTableFull checks that a full table refuses a new file and closes it.
func TestFDTableFull(t *testing.T) {
	var ft fdTable
	ft.init()
	r, w := testPipe(t)
	defer unix.Close(r)
	if fd, e := ft.install(&pipeEnd{newHostStream(w, true)}, maxFDs); e != unix.EMFILE || fd != -1 {
		t.Fatalf("install past the limit: %d, %v", fd, e)
	}
	if !readsEOF(t, r) {
		t.Fatal("refused file left open")
	}
}

func TestSkipIovecs(t *testing.T) {
	iov := [][]byte{[]byte("ab"), []byte("cde"), []byte("f")}
	for n, want := range []string{"abcdef", "bcdef", "cdef", "def", "ef", "f", ""} {
		var got []byte
		for _, b := range skipIovecs(iov, n) {
			got = append(got, b...)
		}
		if string(got) != want {
			t.Errorf("skip %d: %q, want %q", n, got, want)
		}
	}
	if string(iov[0]) != "ab" {
		t.Error("skipIovecs changed its argument")
	}
}
