package authority

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/miekg/dns"
)

// A Journal keeps a zone's dynamic updates durably: an append-only file
// of deltas, each written and fsynced before the update is acknowledged,
// replayed onto the zone file's data at start-up, and the history IXFR
// answers from.
//
// Each delta is a block of lines:
//
//	$delta OLD NEW
//	- RECORD          (one line per record removed, the old SOA first)
//	+ RECORD          (one line per record added, the new SOA first)
//	$end OLD NEW CRC  (CRC-32 of the block's lines above, in hex)
//
// A block without its end line, or whose CRC does not match, is a write
// that a crash cut short: it was never acknowledged, and replay drops it
// and truncates the file there.
type Journal struct {
	path string
	mu   sync.Mutex
	f    *os.File
	size int64
	// deltas is the history, oldest first, each one's OLD the previous
	// one's NEW.
	deltas []Delta
	broken error // set when a failed append could not be undone
}

// Delta is one update: the records removed and added between two serials.
type Delta struct {
	OldSOA, NewSOA *dns.SOA
	Del, Add       []dns.RR // without the SOAs
}

// OpenJournal opens (creating if missing) the journal at path for z and
// returns z with the journal's deltas applied. A journal that does not
// start at z's serial belongs to an older version of the zone file (the
// operator edited it): it is renamed aside, with a message, and a new one
// begun, so that nothing is lost and nothing is applied twice.
func OpenJournal(path string, z *Zone, logf func(string, ...any)) (*Journal, *Zone, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, nil, err
	}
	j := &Journal{path: path, f: f}
	deltas, good, err := readDeltas(f)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("journal %s: %w", path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if good < st.Size() {
		logf("dns: journal %s: dropping %d bytes of an update cut short (never acknowledged)", path, st.Size()-good)
		if err := f.Truncate(good); err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("journal %s: %w", path, err)
		}
	}
	j.size = good
	if len(deltas) > 0 && deltas[0].OldSOA.Serial != z.Serial() {
		aside := fmt.Sprintf("%s.stale-%d", path, z.Serial())
		logf("dns: journal %s starts at serial %d, the zone file is at %d: not applied, kept as %s", path, deltas[0].OldSOA.Serial, z.Serial(), aside)
		f.Close()
		if err := os.Rename(path, aside); err != nil {
			return nil, nil, fmt.Errorf("journal %s: %w", path, err)
		}
		return OpenJournal(path, z, logf)
	}
	for _, d := range deltas {
		if z, err = d.apply(z); err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("journal %s: delta %d→%d: %w", path, d.OldSOA.Serial, d.NewSOA.Serial, err)
		}
	}
	j.deltas = deltas
	if _, err := f.Seek(good, io.SeekStart); err != nil {
		f.Close()
		return nil, nil, err
	}
	return j, z, nil
}

// Close closes the journal's file.
func (j *Journal) Close() error { return j.f.Close() }

// Len is the number of deltas the journal holds.
func (j *Journal) Len() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return len(j.deltas)
}

// Append writes d and returns once it is on stable storage. On an error
// nothing of d stays in the journal.
func (j *Journal) Append(d Delta) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.broken != nil {
		return j.broken
	}
	block := d.encode()
	if _, err := j.f.Write(block); err != nil {
		return j.undo(err)
	}
	if err := j.f.Sync(); err != nil {
		return j.undo(err)
	}
	j.size += int64(len(block))
	j.deltas = append(j.deltas, d)
	return nil
}

// undo cuts a failed append off the file.
func (j *Journal) undo(cause error) error {
	if err := j.f.Truncate(j.size); err != nil {
		j.broken = fmt.Errorf("journal %s unusable after a failed write (%v): %w", j.path, cause, err)
		return j.broken
	}
	if _, err := j.f.Seek(j.size, io.SeekStart); err != nil {
		j.broken = fmt.Errorf("journal %s: %w", j.path, err)
		return j.broken
	}
	return cause
}

// Since returns the deltas from serial from to serial to, or nil when the
// journal does not hold that whole span.
func (j *Journal) Since(from, to uint32) []Delta {
	j.mu.Lock()
	defer j.mu.Unlock()
	for i, d := range j.deltas {
		if d.OldSOA.Serial == from {
			out := j.deltas[i:]
			if out[len(out)-1].NewSOA.Serial != to {
				return nil
			}
			return append([]Delta(nil), out...)
		}
	}
	return nil
}

// encode writes d as a journal block.
func (d Delta) encode() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "$delta %d %d\n", d.OldSOA.Serial, d.NewSOA.Serial)
	line := func(sign byte, rr dns.RR) {
		b.WriteByte(sign)
		b.WriteByte(' ')
		b.WriteString(strings.ReplaceAll(rr.String(), "\n", " "))
		b.WriteByte('\n')
	}
	line('-', d.OldSOA)
	for _, rr := range d.Del {
		line('-', rr)
	}
	line('+', d.NewSOA)
	for _, rr := range d.Add {
		line('+', rr)
	}
	fmt.Fprintf(&b, "$end %d %d %08x\n", d.OldSOA.Serial, d.NewSOA.Serial, crc32.ChecksumIEEE(b.Bytes()))
	return b.Bytes()
}

// errBadJournal is a journal whose complete blocks do not parse: not a
// torn write, so not repaired silently.
var errBadJournal = errors.New("corrupt")

// readDeltas parses r's complete blocks; good is the offset after the
// last one. Only the last block may be incomplete or fail its CRC (a
// write a crash cut short); anywhere else that is corruption, an error.
func readDeltas(r io.Reader) (deltas []Delta, good int64, err error) {
	br := bufio.NewReader(r)
	var block bytes.Buffer
	var off int64
	var cur *pendingDelta
	lineNo := 0
	// torn ends the journal at the current block, if nothing follows.
	torn := func(what string) ([]Delta, int64, error) {
		if _, err := br.Peek(1); err == io.EOF {
			return deltas, good, nil
		}
		return nil, 0, fmt.Errorf("%w: %s at line %d, with more after it", errBadJournal, what, lineNo)
	}
	for {
		line, err := br.ReadString('\n')
		if err == io.EOF {
			return deltas, good, nil // a line without its newline: torn
		}
		if err != nil {
			return nil, 0, err
		}
		lineNo++
		off += int64(len(line))
		text := strings.TrimSuffix(line, "\n")
		switch {
		case strings.HasPrefix(text, "$delta "):
			if cur != nil {
				return nil, 0, fmt.Errorf("%w: delta without its end before line %d", errBadJournal, lineNo)
			}
			block.Reset()
			block.WriteString(line)
			cur = &pendingDelta{}
		case cur == nil:
			return torn("a line outside a delta")
		case strings.HasPrefix(text, "$end "):
			f := strings.Fields(text)
			want, perr := strconv.ParseUint(f[len(f)-1], 16, 32)
			if perr != nil || len(f) != 4 || uint32(want) != crc32.ChecksumIEEE(block.Bytes()) {
				return torn("a delta failing its checksum")
			}
			if cur.bad != nil {
				return nil, 0, cur.bad
			}
			if cur.OldSOA == nil || cur.NewSOA == nil {
				return nil, 0, fmt.Errorf("%w: delta ending on line %d has no SOA", errBadJournal, lineNo)
			}
			deltas = append(deltas, cur.Delta)
			good = off
			cur = nil
		case len(text) > 2 && (text[0] == '-' || text[0] == '+') && text[1] == ' ':
			block.WriteString(line)
			rr, perr := dns.NewRR(text[2:])
			if perr != nil || rr == nil {
				// A torn block can hold half a line only at its end;
				// the CRC decides whether the block counts.
				cur.bad = fmt.Errorf("%w: line %d: %v", errBadJournal, lineNo, perr)
				continue
			}
			soa, isSOA := rr.(*dns.SOA)
			switch {
			case text[0] == '-' && isSOA && cur.OldSOA == nil:
				cur.OldSOA = soa
			case text[0] == '+' && isSOA && cur.NewSOA == nil:
				cur.NewSOA = soa
			case text[0] == '-':
				cur.Del = append(cur.Del, rr)
			default:
				cur.Add = append(cur.Add, rr)
			}
		default:
			block.WriteString(line)
		}
	}
}

// pendingDelta is a block being read: its records, and the first record
// that did not parse.
type pendingDelta struct {
	Delta
	bad error
}

// apply returns z with d's changes.
func (d Delta) apply(z *Zone) (*Zone, error) {
	if d.OldSOA.Serial != z.Serial() {
		return nil, fmt.Errorf("zone is at serial %d", z.Serial())
	}
	del := map[string]bool{rrKey(d.OldSOA): true}
	for _, rr := range d.Del {
		del[rrKey(rr)] = true
	}
	var rrs []dns.RR
	for _, rr := range z.Records() {
		if !del[rrKey(rr)] {
			rrs = append(rrs, rr)
		}
	}
	rrs = append(rrs, d.NewSOA)
	rrs = append(rrs, d.Add...)
	return NewZone(z.Origin, rrs)
}

// rrKey identifies a record by owner (without case), class, type and
// data, not TTL.
func rrKey(rr dns.RR) string {
	c := dns.Copy(rr)
	c.Header().Ttl = 0
	c.Header().Name = dns.CanonicalName(c.Header().Name)
	return c.String()
}
