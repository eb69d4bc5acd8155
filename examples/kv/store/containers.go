package store

import (
	"strconv"
)

// smallScan is the size up to which HSCAN and SSCAN return a whole hash
// or set at once, with cursor 0, as Redis does for its compact encodings.
const smallScan = 128

// scanDict is HSCAN's and SSCAN's walk of d.
func scanDict[V any](d *dict[V], cursor uint64, count int, pattern []byte, fn func(k string, v V)) uint64 {
	f := func(k string, v V) {
		if pattern == nil || Match(pattern, []byte(k)) {
			fn(k, v)
		}
	}
	if d.len() <= smallScan {
		for k, v := range d.m {
			f(k, v)
		}
		return 0
	}
	return d.scan(cursor, count, f)
}

// Hashes.

// hashFor returns key's hash, creating it when create is set.
func (tx *Tx) hashFor(key []byte, create bool) (*value, error) {
	v, err := tx.lookupKind(key, KindHash)
	if v != nil || err != nil || !create {
		return v, err
	}
	v = &value{kind: KindHash, hash: newDict[[]byte]()}
	tx.insert(key, v)
	tx.persistMeta(key, v)
	return v, nil
}

// hset sets one field of hash v and reports whether it is new.
func (tx *Tx) hset(key []byte, v *value, f, val []byte) bool {
	val = clone(val)
	old, ok := v.hash.get(f)
	v.hash.set(f, val)
	if ok {
		tx.db.used += int64(len(val) - len(old))
	} else {
		tx.db.used += int64(costField + len(f) + len(val))
	}
	tx.persistSub(key, f, val)
	return !ok
}

// HSet sets the fields of pairs (field, value, ...) in key's hash and
// returns how many were new.
func (tx *Tx) HSet(key []byte, pairs [][]byte) (int, error) {
	v, err := tx.hashFor(key, true)
	if err != nil {
		return 0, err
	}
	n := 0
	for i := 0; i+1 < len(pairs); i += 2 {
		if tx.hset(key, v, pairs[i], pairs[i+1]) {
			n++
		}
	}
	return n, nil
}

// HSetNX sets field f of key's hash unless it exists, and reports whether
// it did.
func (tx *Tx) HSetNX(key, f, val []byte) (bool, error) {
	v, err := tx.hashFor(key, false)
	if err != nil {
		return false, err
	}
	if v != nil {
		if _, ok := v.hash.get(f); ok {
			return false, nil
		}
	}
	v, _ = tx.hashFor(key, true)
	tx.hset(key, v, f, val)
	return true, nil
}

// HGet returns field f of key's hash, nil when there is none.
func (tx *Tx) HGet(key, f []byte) ([]byte, error) {
	v, err := tx.hashFor(key, false)
	if v == nil {
		return nil, err
	}
	x, _ := v.hash.get(f)
	return x, nil
}

// HMGet returns the fields of key's hash, nil for those missing.
func (tx *Tx) HMGet(key []byte, fields [][]byte) ([][]byte, error) {
	v, err := tx.hashFor(key, false)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(fields))
	if v != nil {
		for i, f := range fields {
			out[i], _ = v.hash.get(f)
		}
	}
	return out, nil
}

// HDel deletes fields of key's hash, and the key with its last field; it
// returns how many fields there were.
func (tx *Tx) HDel(key []byte, fields [][]byte) (int, error) {
	v, err := tx.hashFor(key, false)
	if v == nil {
		return 0, err
	}
	n := 0
	for _, f := range fields {
		old, ok := v.hash.get(f)
		if !ok {
			continue
		}
		v.hash.del(f)
		tx.db.used -= int64(costField + len(f) + len(old))
		tx.persistSubDelete(key, f)
		n++
	}
	if v.hash.len() == 0 {
		tx.remove(key, v)
	}
	return n, nil
}

// HGetAll returns key's hash as field, value, field, value...
func (tx *Tx) HGetAll(key []byte) ([][]byte, error) {
	v, err := tx.hashFor(key, false)
	if v == nil {
		return nil, err
	}
	out := make([][]byte, 0, 2*v.hash.len())
	for f, x := range v.hash.m {
		out = append(out, []byte(f), x)
	}
	return out, nil
}

// HLen returns the number of fields in key's hash.
func (tx *Tx) HLen(key []byte) (int, error) {
	v, err := tx.hashFor(key, false)
	if v == nil {
		return 0, err
	}
	return v.hash.len(), nil
}

// HExists reports whether key's hash has field f.
func (tx *Tx) HExists(key, f []byte) (bool, error) {
	v, err := tx.hashFor(key, false)
	if v == nil {
		return false, err
	}
	_, ok := v.hash.get(f)
	return ok, nil
}

// HIncrBy adds delta to the integer in field f of key's hash (0 when
// there is none) and returns the sum.
func (tx *Tx) HIncrBy(key, f []byte, delta int64) (int64, error) {
	v, err := tx.hashFor(key, false)
	if err != nil {
		return 0, err
	}
	var n int64
	if v != nil {
		if x, ok := v.hash.get(f); ok {
			if n, ok = ParseInt(x); !ok {
				return 0, ErrHashInt
			}
		}
	}
	if delta > 0 && n > maxInt64-delta || delta < 0 && n < minInt64-delta {
		return 0, ErrOverflow
	}
	n += delta
	v, _ = tx.hashFor(key, true)
	tx.hset(key, v, f, strconv.AppendInt(nil, n, 10))
	return n, nil
}

// HScan returns about count fields of key's hash from cursor on, with
// their values unless noValues, and the cursor to go on from.
func (tx *Tx) HScan(key []byte, cursor uint64, count int, pattern []byte, noValues bool) (uint64, [][]byte, error) {
	v, err := tx.hashFor(key, false)
	if v == nil {
		return 0, nil, err
	}
	var out [][]byte
	next := scanDict(v.hash, cursor, count, pattern, func(f string, x []byte) {
		out = append(out, []byte(f))
		if !noValues {
			out = append(out, x)
		}
	})
	return next, out, nil
}

// Lists.

// Push adds elems to the head (left) or tail of key's list, creating it
// unless onlyExisting, and returns the list's length.
func (tx *Tx) Push(key []byte, elems [][]byte, left, onlyExisting bool) (int, error) {
	v, err := tx.lookupKind(key, KindList)
	if err != nil {
		return 0, err
	}
	if v == nil {
		if onlyExisting {
			return 0, nil
		}
		v = &value{kind: KindList, list: &list{}}
		tx.insert(key, v)
		tx.persistMeta(key, v)
	}
	l := v.list
	for _, e := range elems {
		e = clone(e)
		var pos int64
		if left {
			l.pushFront(e)
			pos = l.base
		} else {
			l.pushBack(e)
			pos = l.base + int64(l.len()) - 1
		}
		tx.db.used += int64(costElement + len(e))
		tx.persistSub(key, position(pos), e)
	}
	return l.len(), nil
}

// Pop removes and returns up to n elements from the head (left) or tail
// of key's list, deleting the key with its last element; nil when there
// is no list.
func (tx *Tx) Pop(key []byte, n int, left bool) ([][]byte, error) {
	v, err := tx.lookupKind(key, KindList)
	if v == nil {
		return nil, err
	}
	l := v.list
	out := make([][]byte, 0, min(n, l.len()))
	for len(out) < n && l.len() > 0 {
		var e []byte
		var pos int64
		if left {
			pos = l.base
			e = l.popFront()
		} else {
			pos = l.base + int64(l.len()) - 1
			e = l.popBack()
		}
		tx.db.used -= int64(costElement + len(e))
		tx.persistSubDelete(key, position(pos))
		out = append(out, e)
	}
	if l.len() == 0 {
		tx.remove(key, v)
	}
	return out, nil
}

// LRange returns the elements of key's list from start to stop, both
// included; negative indexes count from the end.
func (tx *Tx) LRange(key []byte, start, stop int64) ([][]byte, error) {
	v, err := tx.lookupKind(key, KindList)
	if v == nil {
		return nil, err
	}
	n := int64(v.list.len())
	if start < 0 {
		start = max(n+start, 0)
	}
	if stop < 0 {
		stop = n + stop
	}
	stop = min(stop, n-1)
	if start > stop || start >= n {
		return [][]byte{}, nil
	}
	out := make([][]byte, 0, stop-start+1)
	for i := start; i <= stop; i++ {
		out = append(out, v.list.at(int(i)))
	}
	return out, nil
}

// LLen returns the length of key's list.
func (tx *Tx) LLen(key []byte) (int, error) {
	v, err := tx.lookupKind(key, KindList)
	if v == nil {
		return 0, err
	}
	return v.list.len(), nil
}

// LIndex returns element i of key's list (negative: from the end), nil
// when there is none.
func (tx *Tx) LIndex(key []byte, i int64) ([]byte, error) {
	v, err := tx.lookupKind(key, KindList)
	if v == nil {
		return nil, err
	}
	n := int64(v.list.len())
	if i < 0 {
		i += n
	}
	if i < 0 || i >= n {
		return nil, nil
	}
	return v.list.at(int(i)), nil
}

// Sets.

func (tx *Tx) setFor(key []byte, create bool) (*value, error) {
	v, err := tx.lookupKind(key, KindSet)
	if v != nil || err != nil || !create {
		return v, err
	}
	v = &value{kind: KindSet, set: newDict[struct{}]()}
	tx.insert(key, v)
	tx.persistMeta(key, v)
	return v, nil
}

// SAdd adds members to key's set and returns how many were new.
func (tx *Tx) SAdd(key []byte, members [][]byte) (int, error) {
	v, err := tx.setFor(key, true)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, m := range members {
		if v.set.set(m, struct{}{}) {
			tx.db.used += int64(costMember + len(m))
			tx.persistSub(key, m, nil)
			n++
		}
	}
	return n, nil
}

// SRem removes members from key's set, and the key with its last member;
// it returns how many were there.
func (tx *Tx) SRem(key []byte, members [][]byte) (int, error) {
	v, err := tx.setFor(key, false)
	if v == nil {
		return 0, err
	}
	n := 0
	for _, m := range members {
		if v.set.del(m) {
			tx.db.used -= int64(costMember + len(m))
			tx.persistSubDelete(key, m)
			n++
		}
	}
	if v.set.len() == 0 {
		tx.remove(key, v)
	}
	return n, nil
}

// SMembers returns the members of key's set.
func (tx *Tx) SMembers(key []byte) ([][]byte, error) {
	v, err := tx.setFor(key, false)
	if v == nil {
		return nil, err
	}
	out := make([][]byte, 0, v.set.len())
	for m := range v.set.m {
		out = append(out, []byte(m))
	}
	return out, nil
}

// SIsMember reports whether m is in key's set.
func (tx *Tx) SIsMember(key, m []byte) (bool, error) {
	v, err := tx.setFor(key, false)
	if v == nil {
		return false, err
	}
	_, ok := v.set.get(m)
	return ok, nil
}

// SCard returns the size of key's set.
func (tx *Tx) SCard(key []byte) (int, error) {
	v, err := tx.setFor(key, false)
	if v == nil {
		return 0, err
	}
	return v.set.len(), nil
}

// SScan returns about count members of key's set from cursor on, and the
// cursor to go on from.
func (tx *Tx) SScan(key []byte, cursor uint64, count int, pattern []byte) (uint64, [][]byte, error) {
	v, err := tx.setFor(key, false)
	if v == nil {
		return 0, nil, err
	}
	var out [][]byte
	next := scanDict(v.set, cursor, count, pattern, func(m string, _ struct{}) {
		out = append(out, []byte(m))
	})
	return next, out, nil
}
