package server

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// chunkConn is a connection whose reads return data in chunks of the
// given sizes, then end of file.
type chunkConn struct {
	net.Conn
	data   []byte
	chunks []int
}

func (c *chunkConn) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := len(c.data)
	if len(c.chunks) > 0 {
		n = max(1, min(n, c.chunks[0]))
		c.chunks = c.chunks[1:]
	}
	n = copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

func (c *chunkConn) SetReadDeadline(time.Time) error { return nil }

// frameAll reads every command from data, delivered in chunks.
func frameAll(data []byte, chunks []int, lim Limits) ([][][]byte, int64, error) {
	var strict atomic.Bool
	var pool atomic.Int64
	f := newFramer(&chunkConn{data: data, chunks: chunks}, &lim, &strict, &pool)
	var out [][][]byte
	for {
		cmds, err := f.next()
		for _, c := range cmds {
			cp := make([][]byte, len(c))
			for i, a := range c {
				cp[i] = bytes.Clone(a)
			}
			out = append(out, cp)
		}
		if err != nil {
			f.release()
			return out, pool.Load(), err
		}
	}
}

// encode writes commands as RESP arrays of bulk strings.
func encode(cmds [][][]byte) []byte {
	var b bytes.Buffer
	for _, c := range cmds {
		b.WriteString("*" + itoa(len(c)) + "\r\n")
		for _, a := range c {
			b.WriteString("$" + itoa(len(a)) + "\r\n")
			b.Write(a)
			b.WriteString("\r\n")
		}
	}
	return b.Bytes()
}

func itoa(n int) string { return strconv.Itoa(n) }

// splitArgs makes commands out of fuzz input: each byte 0xff ends an
// argument, 0xfe a command.
func splitArgs(data []byte) [][][]byte {
	var cmds [][][]byte
	for _, c := range bytes.Split(data, []byte{0xfe}) {
		cmds = append(cmds, bytes.Split(c, []byte{0xff}))
	}
	return cmds
}

// FuzzFramer feeds the framer arbitrary bytes in arbitrary pieces: it
// never panics, holds no more than its limits allow, and, given well
// formed commands, returns exactly them however they are cut up.
func FuzzFramer(f *testing.F) {
	f.Add([]byte("SET\xffk\xffv\xfeGET\xffk"), []byte{1, 2, 3}, false)
	f.Add([]byte("*1\r\n$2147483648\r\n"), []byte{}, true)
	f.Add([]byte("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n"), []byte{5}, true)
	f.Add([]byte("PING\r\n\"a b\r\n"), []byte{2}, true)
	lim := Limits{MaxBulk: 4096, MaxArgs: 64, MaxFrame: 8192, MaxBuffered: 1 << 20}
	f.Fuzz(func(t *testing.T, data, cuts []byte, raw bool) {
		chunks := make([]int, len(cuts))
		for i, c := range cuts {
			chunks[i] = int(c) + 1
		}
		if raw {
			cmds, pool, err := frameAll(data, chunks, lim)
			if err == nil {
				t.Fatal("framing ended without an error")
			}
			if pool != 0 {
				t.Errorf("%d bytes still charged", pool)
			}
			for _, c := range cmds {
				if len(c) == 0 {
					t.Error("an empty command")
				}
			}
			return
		}
		want := splitArgs(data)
		for _, c := range want {
			if len(c) > int(lim.MaxArgs) {
				return
			}
			for _, a := range c {
				if len(a) > int(lim.MaxBulk) {
					return // refused as Redis does: invalid bulk length (the raw inputs cover it)
				}
			}
		}
		got, pool, err := frameAll(encode(want), chunks, lim)
		if !errors.Is(err, io.EOF) {
			var perr protocolError
			if errors.As(err, &perr) && perr == errBufferLimit {
				return // a frame beyond MaxFrame
			}
			t.Fatalf("well-formed commands: %v", err)
		}
		if pool != 0 {
			t.Errorf("%d bytes still charged", pool)
		}
		if len(got) != len(want) {
			t.Fatalf("%d commands, want %d", len(got), len(want))
		}
		for i := range want {
			if len(got[i]) != len(want[i]) {
				t.Fatalf("command %d: %q, want %q", i, got[i], want[i])
			}
			for j := range want[i] {
				if !bytes.Equal(got[i][j], want[i][j]) {
					t.Fatalf("command %d: %q, want %q", i, got[i], want[i])
				}
			}
		}
	})
}
