package server

import (
	"strconv"

	"github.com/tidwall/redcon"
)

// reply accumulates a client's replies in the protocol it speaks: RESP2,
// or RESP3 after HELLO 3, whose nulls, maps and sets have types of their
// own (redcon writes the types both share).
type reply struct {
	b     []byte
	resp3 bool
}

func (r *reply) ok()                 { r.b = redcon.AppendOK(r.b) }
func (r *reply) simple(s string)     { r.b = redcon.AppendString(r.b, s) }
func (r *reply) err(s string)        { r.b = redcon.AppendError(r.b, s) }
func (r *reply) int(n int64)         { r.b = redcon.AppendInt(r.b, n) }
func (r *reply) bulk(b []byte)       { r.b = redcon.AppendBulk(r.b, b) }
func (r *reply) bulkString(s string) { r.b = redcon.AppendBulkString(r.b, s) }
func (r *reply) array(n int)         { r.b = redcon.AppendArray(r.b, n) }

// bool is an integer 1 or 0, as Redis answers yes-or-no commands.
func (r *reply) bool(v bool) {
	if v {
		r.int(1)
	} else {
		r.int(0)
	}
}

// null is a missing value: RESP2's null bulk string.
func (r *reply) null() {
	if r.resp3 {
		r.b = append(r.b, "_\r\n"...)
	} else {
		r.b = redcon.AppendNull(r.b)
	}
}

// nullArray is a missing list: RESP2's null array.
func (r *reply) nullArray() {
	if r.resp3 {
		r.b = append(r.b, "_\r\n"...)
	} else {
		r.b = append(r.b, "*-1\r\n"...)
	}
}

// bulkOrNull is b, or null when b is nil (missing; an empty value is not
// nil).
func (r *reply) bulkOrNull(b []byte) {
	if b == nil {
		r.null()
	} else {
		r.bulk(b)
	}
}

// mapLen begins a map of n pairs: a flat array in RESP2.
func (r *reply) mapLen(n int) {
	if r.resp3 {
		r.b = append(strconv.AppendInt(append(r.b, '%'), int64(n), 10), '\r', '\n')
	} else {
		r.array(2 * n)
	}
}

// setLen begins a set of n members: an array in RESP2.
func (r *reply) setLen(n int) {
	if r.resp3 {
		r.b = append(strconv.AppendInt(append(r.b, '~'), int64(n), 10), '\r', '\n')
	} else {
		r.array(n)
	}
}

// verbatim is text meant for people (INFO): RESP3's verbatim string of
// format txt, a bulk string in RESP2.
func (r *reply) verbatim(s string) {
	if !r.resp3 {
		r.bulkString(s)
		return
	}
	r.b = append(strconv.AppendInt(append(r.b, '='), int64(len(s)+4), 10), '\r', '\n')
	r.b = append(append(append(r.b, "txt:"...), s...), '\r', '\n')
}

// bulks is an array of bulk strings.
func (r *reply) bulks(bs [][]byte) {
	r.array(len(bs))
	for _, b := range bs {
		r.bulkOrNull(b)
	}
}
