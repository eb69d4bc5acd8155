package server

import (
	"bytes"
	"errors"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/tidwall/redcon"
)

// Limits bound what one client's requests may cost, as Redis's
// proto-max-bulk-len and client-query-buffer-limit do, and what all
// clients' unread requests may hold together.
type Limits struct {
	MaxBulk     int64         // the longest argument
	MaxArgs     int64         // the most arguments in a command
	MaxFrame    int64         // the longest command, all arguments together, each counted 48 bytes more (its cost once parsed)
	MaxBuffered int64         // bytes all clients' request buffers may hold beyond their first 16 KiB
	Timeout     time.Duration // how long a command may take to arrive once begun; 0 is forever
}

// Redis's limits for a client that has not authenticated yet, and for
// inline commands and header lines; and what one argument costs once
// parsed, beyond its bytes.
const (
	argCost    = 48
	manyArgs   = 256
	strictArgs = 10
	strictBulk = 16 << 10
	maxLine    = 64 << 10
	baseBuffer = 16 << 10
)

// protocolError is a request the server will not read: the client gets
// "-ERR Protocol error: ..." and its connection is closed.
type protocolError string

func (e protocolError) Error() string { return "Protocol error: " + string(e) }

// errBufferLimit is a client that would take more than its share of
// request buffer space.
var errBufferLimit = protocolError("query buffer limit reached")

// A framer reads a client's commands. It finds where each frame (a RESP
// array of bulk strings, or an inline command line) ends, as it arrives,
// so that it can refuse one whose declared sizes exceed the limits
// before buffering it, buffer exactly what a frame needs, and hand
// redcon whole frames to parse. Frames of one read are returned
// together: a pipeline.
type framer struct {
	conn   net.Conn
	lim    *Limits
	strict *atomic.Bool // the client has not authenticated yet
	pool   *atomic.Int64

	buf        []byte
	start, end int   // buf[start:end] is unparsed data
	pos        int   // buf[start:pos] is scanned: whole frames, then part of one
	frame      int   // where the frame being scanned begins
	hdr        int   // where the argument being scanned begins
	charged    int64 // the buffer's growth, charged to pool

	// What parsed arguments cost beyond their bytes (redcon's slices),
	// charged to pool as a frame's count arrives: the frame being read,
	// and the frames returned last, released by the next call.
	argsCharged, argsDone int64

	// The scanner's state within the frame at frame.
	phase   int   // what pos is in
	args    int64 // arguments still to come
	body    int64 // bytes of the current argument (and its CRLF) still to come
	pending error // a protocol error after frames still to return

	// The frame timeout: when the data not yet parsed began to arrive,
	// and whether the connection's deadline is set for it.
	readAt, began time.Time
	armed, rearm  bool

	cmds [][][]byte
}

// The scanner's phases.
const (
	phaseStart  = iota // at a frame's first byte
	phaseCount         // in "*N\r\n"
	phaseHeader        // at or in "$N\r\n"
	phaseBody          // in an argument
	phaseInline        // in an inline command line
)

func newFramer(conn net.Conn, lim *Limits, strict *atomic.Bool, pool *atomic.Int64) *framer {
	return &framer{conn: conn, lim: lim, strict: strict, pool: pool, buf: make([]byte, baseBuffer)}
}

// next returns the next commands, reading until there is at least one.
// The arguments stay valid until the following call.
func (f *framer) next() ([][][]byte, error) {
	f.reclaim()
	for {
		if f.pending != nil {
			return nil, f.pending
		}
		f.cmds = f.cmds[:0]
		if err := f.scan(); err != nil {
			if len(f.cmds) == 0 {
				return nil, err
			}
			f.pending = err
		}
		if len(f.cmds) > 0 {
			return f.cmds, nil
		}
		if err := f.fill(); err != nil {
			return nil, err
		}
	}
}

// scan advances over what has arrived, parsing each frame it completes.
func (f *framer) scan() error {
	for f.pos < f.end {
		b := f.buf[f.pos:f.end]
		switch f.phase {
		case phaseStart:
			f.frame = f.pos
			if b[0] == '*' {
				f.phase = phaseCount
				f.pos++
			} else {
				f.phase = phaseInline
			}
		case phaseInline:
			i := bytes.IndexByte(b, '\n')
			if i < 0 {
				f.pos = f.end
				if f.end-f.frame > maxLine {
					return protocolError("too big inline request")
				}
				continue
			}
			f.pos += i + 1
			if err := f.complete(true); err != nil {
				return err
			}
		case phaseCount, phaseHeader:
			if f.phase == phaseHeader && f.pos < f.end && f.buf[f.pos] != '$' && f.lineStart() == f.pos {
				return protocolError("expected '$', got '" + string(f.buf[f.pos]) + "'")
			}
			i := bytes.IndexByte(b, '\n')
			if i < 0 {
				f.pos = f.end
				if f.end-f.lineStart() > maxLine {
					if f.phase == phaseCount {
						return protocolError("too big mbulk count string")
					}
					return protocolError("too big bulk count string")
				}
				continue
			}
			line := f.buf[f.lineStart()+1 : f.pos+i]
			f.pos += i + 1
			if len(line) == 0 || line[len(line)-1] != '\r' {
				return f.badLength()
			}
			n, err := strconv.ParseInt(string(line[:len(line)-1]), 10, 64)
			if err != nil {
				return f.badLength()
			}
			if f.phase == phaseCount {
				if n <= 0 {
					// An empty command, which Redis skips.
					f.phase = phaseStart
					f.start = f.pos
					continue
				}
				if n > f.lim.MaxArgs || f.strict.Load() && n > strictArgs {
					return protocolError("invalid multibulk length")
				}
				// A command of many small arguments costs more parsed
				// than it does to send: charge that up front (beyond a
				// few hundred, which the first 16 KiB cover).
				if n > manyArgs {
					if n*argCost > f.lim.MaxFrame {
						return errBufferLimit
					}
					if f.pool.Add(n*argCost) > f.lim.MaxBuffered {
						f.pool.Add(-n * argCost)
						return errBufferLimit
					}
					f.argsCharged = n * argCost
				}
				f.args = n
				f.phase = phaseHeader
				f.hdr = f.pos
				continue
			}
			if n < 0 || n > f.lim.MaxBulk || f.strict.Load() && n > strictBulk {
				return protocolError("invalid bulk length")
			}
			if int64(f.pos-f.frame)+n+f.argsCharged > f.lim.MaxFrame {
				return errBufferLimit
			}
			f.body = n + 2
			f.phase = phaseBody
		case phaseBody:
			take := min(int64(len(b)), f.body)
			f.pos += int(take)
			f.body -= take
			if f.body > 0 {
				continue
			}
			f.args--
			if f.args > 0 {
				f.phase = phaseHeader
				f.hdr = f.pos
				continue
			}
			if err := f.complete(false); err != nil {
				return err
			}
		}
		if f.phase != phaseStart && int64(f.pos-f.frame) > f.lim.MaxFrame {
			return errBufferLimit
		}
	}
	return nil
}

// lineStart is where the header line being scanned begins: the frame's
// start for the count, the argument's for a bulk length.
func (f *framer) lineStart() int {
	if f.phase == phaseCount {
		return f.frame
	}
	return f.hdr
}

func (f *framer) badLength() error {
	if f.phase == phaseCount {
		return protocolError("invalid multibulk length")
	}
	return protocolError("invalid bulk length")
}

// complete parses the frame that ends at pos.
func (f *framer) complete(inline bool) error {
	raw := f.buf[f.frame:f.pos]
	f.argsDone += f.argsCharged
	f.argsCharged = 0
	f.phase = phaseStart
	f.start = f.pos
	f.began, f.rearm = f.readAt, true
	if inline && len(bytes.TrimSpace(raw)) == 0 {
		return nil
	}
	cmd, err := redcon.Parse(raw)
	if err != nil {
		// redcon's protocol errors read "Protocol error: ...".
		return protocolError(trimPrefix(err.Error(), "Protocol error: "))
	}
	if len(cmd.Args) > 0 {
		f.cmds = append(f.cmds, cmd.Args)
	}
	return nil
}

func trimPrefix(s, p string) string {
	if len(s) >= len(p) && s[:len(p)] == p {
		return s[len(p):]
	}
	return s
}

// reclaim drops the frames returned last time and gives back a buffer
// grown for a big frame once it is no longer needed.
func (f *framer) reclaim() {
	f.pool.Add(-f.argsDone)
	f.argsDone = 0
	if f.start == f.end && f.phase == phaseStart {
		f.start, f.end, f.pos = 0, 0, 0
	}
	if len(f.buf) > baseBuffer && f.end-f.start <= baseBuffer/2 {
		f.resize(baseBuffer)
	}
}

// fill reads more, making room first: a buffer that has to grow doubles,
// so that a big argument arrives in few reads and few copies. A frame
// begun and not finished within the timeout ends the connection.
func (f *framer) fill() error {
	want := baseBuffer / 4 // the least free space worth a read
	live := f.end - f.start
	if f.phase == phaseBody {
		want = max(want, int(min(f.body, int64(live))))
	}
	if len(f.buf)-f.end < want {
		size := len(f.buf)
		for size-live < want {
			size *= 2
		}
		if err := f.resize(size); err != nil {
			return err
		}
	}
	if f.lim.Timeout > 0 {
		switch {
		case live > 0 && (!f.armed || f.rearm):
			f.conn.SetReadDeadline(f.began.Add(f.lim.Timeout))
			f.armed, f.rearm = true, false
		case live == 0 && f.armed:
			f.conn.SetReadDeadline(time.Time{})
			f.armed = false
		}
	}
	n, err := f.conn.Read(f.buf[f.end:])
	if n > 0 {
		if f.lim.Timeout > 0 {
			f.readAt = time.Now()
			if live == 0 {
				f.began = f.readAt
			}
		}
		f.end += n
		return nil
	}
	if err == nil {
		err = errors.New("read returned nothing")
	}
	return err
}

// resize moves the unparsed data to the front of a buffer of size bytes,
// charging the growth to the pool all clients share.
func (f *framer) resize(size int) error {
	extra := int64(max(size-baseBuffer, 0))
	if d := extra - f.charged; d > 0 {
		if f.pool.Add(d) > f.lim.MaxBuffered {
			f.pool.Add(-d)
			return errBufferLimit
		}
	} else {
		f.pool.Add(d)
	}
	f.charged = extra
	nb := f.buf
	if size != len(f.buf) {
		nb = make([]byte, size)
	}
	n := copy(nb, f.buf[f.start:f.end])
	shift := f.start
	f.buf = nb
	f.start, f.end = 0, n
	f.pos -= shift
	f.frame -= shift
	f.hdr -= shift
	return nil
}

// release gives back the framer's share of the pool.
func (f *framer) release() {
	f.pool.Add(-f.charged - f.argsCharged - f.argsDone)
	f.charged, f.argsCharged, f.argsDone = 0, 0, 0
}
