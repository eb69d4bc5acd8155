package store

import "github.com/google/btree"

// A dict is a map with Redis's SCAN guarantee: a scan that runs from
// cursor 0 until it returns 0 again returns every entry present for the
// whole scan at least once, however the dict changes in between, and a
// cursor is a plain number, as clients expect.
//
// Entries are ordered by a fixed 63-bit hash of their name (then by the
// name) in a B-tree, and a cursor is the hash to continue from. A batch
// never stops between two entries of the same hash, so a cursor never
// points into the middle of a group. The ordered index costs memory and
// time, so a dict that is never scanned (most hashes and sets, and the
// keyspace of a store that nobody SCANs) does not build it until the
// first scan, and keeps it from then on.
type dict[V any] struct {
	m   map[string]V
	idx *btree.BTreeG[hkey] // nil until needed
}

// hkey is an entry's place in the scan order.
type hkey struct {
	h uint64
	k string
}

func lessHkey(a, b hkey) bool {
	if a.h != b.h {
		return a.h < b.h
	}
	return a.k < b.k
}

// scanHash is the 63-bit FNV-1a hash of k with its lowest bit set, so
// that it is never 0 (the cursor that means "done") and fits the signed
// integers some clients parse cursors into.
func scanHash(k string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(k); i++ {
		h ^= uint64(k[i])
		h *= 1099511628211
	}
	return h>>1 | 1
}

func newDict[V any]() *dict[V] {
	return &dict[V]{m: make(map[string]V)}
}

// index builds the scan order, if it is not built yet.
func (d *dict[V]) index() {
	if d.idx != nil {
		return
	}
	d.idx = btree.NewG(32, lessHkey)
	for k := range d.m {
		d.idx.ReplaceOrInsert(hkey{scanHash(k), k})
	}
}

func (d *dict[V]) len() int { return len(d.m) }

func (d *dict[V]) get(k []byte) (V, bool) {
	v, ok := d.m[string(k)]
	return v, ok
}

// set stores v under k and reports whether k is new.
func (d *dict[V]) set(k []byte, v V) bool {
	if _, ok := d.m[string(k)]; ok {
		d.m[string(k)] = v
		return false
	}
	s := string(k)
	d.m[s] = v
	if d.idx != nil {
		d.idx.ReplaceOrInsert(hkey{scanHash(s), s})
	}
	return true
}

// del removes k and reports whether it was there.
func (d *dict[V]) del(k []byte) bool {
	if _, ok := d.m[string(k)]; !ok {
		return false
	}
	s := string(k)
	delete(d.m, s)
	if d.idx != nil {
		d.idx.Delete(hkey{scanHash(s), s})
	}
	return true
}

// scan calls fn for the entries from cursor on, about count of them (more
// when a hash group straddles the end), and returns the cursor to go on
// from, 0 when the scan is complete.
func (d *dict[V]) scan(cursor uint64, count int, fn func(k string, v V)) uint64 {
	d.index()
	next := uint64(0)
	n := 0
	var last uint64
	d.idx.AscendGreaterOrEqual(hkey{h: cursor}, func(it hkey) bool {
		if n >= count && it.h != last {
			next = it.h
			return false
		}
		fn(it.k, d.m[it.k])
		last = it.h
		n++
		return true
	})
	return next
}
