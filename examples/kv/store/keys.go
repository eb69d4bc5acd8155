package store

import "time"

// Exists reports whether key holds a live value.
func (tx *Tx) Exists(key []byte) bool { return tx.lookup(key) != nil }

// Type returns the kind of key's value (KindNone for none).
func (tx *Tx) Type(key []byte) Kind {
	if v := tx.lookup(key); v != nil {
		return v.kind
	}
	return KindNone
}

// Del deletes key and reports whether it held a value.
func (tx *Tx) Del(key []byte) bool {
	v := tx.lookup(key)
	if v == nil {
		return false
	}
	tx.remove(key, v)
	return true
}

// DBSize returns the number of keys, counting those expired but not yet
// removed, as Redis does.
func (tx *Tx) DBSize() int { return tx.db.keys.len() }

// Flush deletes every key.
func (tx *Tx) Flush() {
	db := tx.db
	db.keys = newDict[*value]()
	db.volatile = make(map[string]struct{})
	db.used = 0
	tx.persistFlush()
}

// ExpireCond is EXPIRE's conditions, any of them together.
type ExpireCond int

// The conditions of EXPIRE: NX (no expiry yet), XX (an expiry already),
// GT (later than the current one; none is infinite), LT (earlier).
const (
	ExpireNX ExpireCond = 1 << iota
	ExpireXX
	ExpireGT
	ExpireLT
)

// Expire sets key's expiry to at (Unix milliseconds) if the conditions
// hold, and reports whether it did. A time not in the future deletes the
// key, as its expiry would.
func (tx *Tx) Expire(key []byte, at int64, cond ExpireCond) bool {
	v := tx.lookup(key)
	if v == nil ||
		cond&ExpireNX != 0 && v.expire != 0 ||
		cond&ExpireXX != 0 && v.expire == 0 ||
		cond&ExpireGT != 0 && (v.expire == 0 || at <= v.expire) ||
		cond&ExpireLT != 0 && v.expire != 0 && at >= v.expire {
		return false
	}
	if at <= tx.now {
		tx.remove(key, v)
		return true
	}
	tx.setExpire(key, v, at)
	tx.persistMeta(key, v)
	return true
}

// Persist removes key's expiry and reports whether it had one.
func (tx *Tx) Persist(key []byte) bool {
	v := tx.lookup(key)
	if v == nil || v.expire == 0 {
		return false
	}
	tx.setExpire(key, v, 0)
	tx.persistMeta(key, v)
	return true
}

// TTL returns the milliseconds key has left: -2 when there is no key, -1
// when it has no expiry.
func (tx *Tx) TTL(key []byte) int64 {
	v := tx.lookup(key)
	switch {
	case v == nil:
		return -2
	case v.expire == 0:
		return -1
	}
	return max(v.expire-tx.now, 0)
}

// ExpireTime returns key's expiry in Unix milliseconds: -2 when there is
// no key, -1 when it has no expiry.
func (tx *Tx) ExpireTime(key []byte) int64 {
	v := tx.lookup(key)
	switch {
	case v == nil:
		return -2
	case v.expire == 0:
		return -1
	}
	return v.expire
}

// Scan returns about count keys from cursor on that match pattern (nil:
// all) and are of kind k (KindNone: any), and the cursor to go on from,
// 0 at the end. A key present for the whole scan is returned at least
// once.
func (tx *Tx) Scan(cursor uint64, count int, pattern []byte, k Kind) (uint64, [][]byte) {
	var keys [][]byte
	next := tx.db.keys.scan(cursor, count, func(key string, v *value) {
		if v.expire != 0 && v.expire <= tx.now || k != KindNone && v.kind != k || pattern != nil && !Match(pattern, []byte(key)) {
			return
		}
		keys = append(keys, []byte(key))
	})
	return next, keys
}

// Keys returns every live key matching pattern.
func (tx *Tx) Keys(pattern []byte) [][]byte {
	var out [][]byte
	all := len(pattern) == 1 && pattern[0] == '*'
	for k, v := range tx.db.keys.m {
		if v.expire != 0 && v.expire <= tx.now {
			continue
		}
		if all || Match(pattern, []byte(k)) {
			out = append(out, []byte(k))
		}
	}
	return out
}

// expireSome removes up to n expired keys among a sample of the volatile
// ones, and reports how many of the sample had expired.
func (tx *Tx) expireSome(n int) (sampled, expired int) {
	db := tx.db
	var dead [][]byte
	for k := range db.volatile {
		if sampled == n {
			break
		}
		sampled++
		if v := db.keys.m[k]; v != nil && v.expire <= tx.now {
			dead = append(dead, []byte(k))
		}
	}
	for _, k := range dead {
		if v, ok := db.keys.get(k); ok {
			tx.remove(k, v)
			db.expired.Add(1)
		}
	}
	return sampled, len(dead)
}

// ExpireCycle removes expired keys as Redis's active expiry does: it
// samples 20 keys with an expiry at a time and goes on while more than a
// quarter of a sample had expired, for at most budget.
func (db *DB) ExpireCycle(budget time.Duration) (int, error) {
	start := time.Now()
	total := 0
	for {
		tx := db.Begin()
		sampled, expired := tx.expireSome(20)
		total += expired
		if err := tx.End(); err != nil {
			return total, err
		}
		if sampled == 0 || expired*4 <= sampled || time.Since(start) > budget {
			return total, nil
		}
	}
}
