package store

import (
	"math/big"
	"strconv"
	"strings"
)

// Get returns key's string value, nil when there is none.
func (tx *Tx) Get(key []byte) ([]byte, error) {
	v, err := tx.lookupKind(key, KindString)
	if v == nil {
		return nil, err
	}
	return v.str, nil
}

// StrLen returns the length of key's string value.
func (tx *Tx) StrLen(key []byte) (int, error) {
	s, err := tx.Get(key)
	return len(s), err
}

// SetOptions are SET's options.
type SetOptions struct {
	NX, XX  bool  // only if the key does not exist, or does
	KeepTTL bool  // keep the key's expiry (else it has ExpireAt)
	At      int64 // the expiry, Unix milliseconds; 0 for none
	Get     bool  // return the old value (which must be a string)
}

// Set stores val under key as SET does, and reports whether it did and
// (with Get) the old value.
func (tx *Tx) Set(key, val []byte, o SetOptions) (old []byte, done bool, err error) {
	v := tx.lookup(key)
	if o.Get && v != nil {
		if v.kind != KindString {
			return nil, false, ErrWrongType
		}
		old = v.str
	}
	if o.NX && v != nil || o.XX && v == nil {
		return old, false, nil
	}
	at := o.At
	if o.KeepTTL && v != nil {
		at = v.expire
	}
	tx.setString(key, v, clone(val), at)
	return old, true, nil
}

// setString makes key (whose value is v, or nil) the string val expiring
// at at.
func (tx *Tx) setString(key []byte, v *value, val []byte, at int64) {
	db := tx.db
	if v != nil && v.kind == KindString {
		db.used += int64(len(val) - len(v.str))
		v.str = val
		tx.setExpire(key, v, at)
		tx.persistMeta(key, v)
		return
	}
	if v != nil {
		tx.remove(key, v)
	}
	nv := &value{kind: KindString, str: val, expire: at}
	tx.insert(key, nv)
	tx.persistMeta(key, nv)
}

// MSet sets each key of pairs (key, value, key, value...) to its value,
// removing their expiries; with nx, only if none of the keys exists, and
// it reports whether it set them.
func (tx *Tx) MSet(pairs [][]byte, nx bool) bool {
	if nx {
		for i := 0; i < len(pairs); i += 2 {
			if tx.lookup(pairs[i]) != nil {
				return false
			}
		}
	}
	for i := 0; i < len(pairs); i += 2 {
		tx.setString(pairs[i], tx.lookup(pairs[i]), clone(pairs[i+1]), 0)
	}
	return true
}

// GetDel returns key's string value and deletes the key.
func (tx *Tx) GetDel(key []byte) ([]byte, error) {
	v, err := tx.lookupKind(key, KindString)
	if v == nil {
		return nil, err
	}
	tx.remove(key, v)
	return v.str, nil
}

// GetEx returns key's string value and, when set, changes its expiry to
// at (0: none). An expiry not in the future deletes the key.
func (tx *Tx) GetEx(key []byte, set bool, at int64) ([]byte, error) {
	v, err := tx.lookupKind(key, KindString)
	if v == nil || !set {
		return v.strOrNil(), err
	}
	if at != 0 && at <= tx.now {
		tx.remove(key, v)
		return v.str, nil
	}
	if at != v.expire {
		tx.setExpire(key, v, at)
		tx.persistMeta(key, v)
	}
	return v.str, nil
}

func (v *value) strOrNil() []byte {
	if v == nil {
		return nil
	}
	return v.str
}

// Append appends val to key's string value (creating it) and returns the
// new length.
func (tx *Tx) Append(key, val []byte) (int, error) {
	v, err := tx.lookupKind(key, KindString)
	if err != nil {
		return 0, err
	}
	if v == nil {
		tx.setString(key, nil, clone(val), 0)
		return len(val), nil
	}
	s := append(v.str[:len(v.str):len(v.str)], val...)
	tx.setString(key, v, s, v.expire)
	return len(s), nil
}

// IncrBy adds delta to the integer in key's string value (0 when there is
// none) and returns the sum.
func (tx *Tx) IncrBy(key []byte, delta int64) (int64, error) {
	v, err := tx.lookupKind(key, KindString)
	if err != nil {
		return 0, err
	}
	var n int64
	if v != nil {
		var ok bool
		if n, ok = ParseInt(v.str); !ok {
			return 0, ErrNotInt
		}
	}
	if delta > 0 && n > maxInt64-delta || delta < 0 && n < minInt64-delta {
		return 0, ErrOverflow
	}
	n += delta
	var at int64
	if v != nil {
		at = v.expire
	}
	tx.setString(key, v, strconv.AppendInt(nil, n, 10), at)
	return n, nil
}

const (
	maxInt64 = 1<<63 - 1
	minInt64 = -1 << 63
)

// ParseInt parses s as Redis parses integers (string2ll): an optional
// minus, digits with no leading zero, within 64 bits; no plus, spaces or
// "-0".
func ParseInt(s []byte) (int64, bool) {
	if len(s) == 0 || len(s) > 20 {
		return 0, false
	}
	if len(s) == 1 && s[0] == '0' {
		return 0, true
	}
	neg := s[0] == '-'
	d := s
	if neg {
		d = s[1:]
	}
	if len(d) == 0 || d[0] < '1' || d[0] > '9' {
		return 0, false
	}
	var u uint64
	for _, c := range d {
		if c < '0' || c > '9' {
			return 0, false
		}
		if u > (1<<64-1-uint64(c-'0'))/10 {
			return 0, false
		}
		u = u*10 + uint64(c-'0')
	}
	if neg {
		if u > 1<<63 {
			return 0, false
		}
		return -int64(u), true
	}
	if u > maxInt64 {
		return 0, false
	}
	return int64(u), true
}

// IncrByFloat adds the decimal incr to the number in key's string value (0
// when there is none) and returns the sum as stored. The arithmetic is
// Redis's: x87 extended precision (a 64-bit mantissa), printed with 17
// decimals and the trailing zeros dropped.
func (tx *Tx) IncrByFloat(key, incr []byte) ([]byte, error) {
	v, err := tx.lookupKind(key, KindString)
	if err != nil {
		return nil, err
	}
	d, ok := ParseLongDouble(incr)
	if !ok {
		return nil, ErrNotFloat
	}
	n := new(big.Float).SetPrec(64)
	if v != nil {
		if n, ok = ParseLongDouble(v.str); !ok {
			return nil, ErrNotFloat
		}
	}
	if d.IsInf() || n.IsInf() {
		return nil, ErrNaN
	}
	n.Add(n, d)
	out, ok := FormatLongDouble(n)
	if !ok {
		return nil, ErrNaN
	}
	var at int64
	if v != nil {
		at = v.expire
	}
	tx.setString(key, v, out, at)
	return out, nil
}

// ParseLongDouble parses s as Redis's string2ld does with strtold: a
// decimal or hexadecimal number, or inf, with an optional sign, nothing
// around it, rounded to 64 bits of mantissa.
func ParseLongDouble(s []byte) (*big.Float, bool) {
	if len(s) == 0 || len(s) >= 5*1024 {
		return nil, false
	}
	str := string(s)
	body := strings.TrimLeft(str, "+-")
	if len(str)-len(body) > 1 {
		return nil, false
	}
	switch strings.ToLower(body) {
	case "inf", "infinity":
		return new(big.Float).SetInf(str[0] == '-'), true
	}
	base := 10
	if len(body) > 2 && body[0] == '0' && (body[1] == 'x' || body[1] == 'X') {
		base = 0
	} else {
		for i := 0; i < len(body); i++ {
			c := body[i]
			if !(c >= '0' && c <= '9' || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-') {
				return nil, false
			}
		}
	}
	f, _, err := big.ParseFloat(str, base, 64, big.ToNearestEven)
	if err != nil {
		return nil, false
	}
	return f, true
}

// FormatLongDouble prints f as Redis stores an INCRBYFLOAT result
// ("%.17Lf", trailing zeros and point dropped), or fails if f is beyond
// an x87 extended double.
func FormatLongDouble(f *big.Float) ([]byte, bool) {
	if f.IsInf() || f.MantExp(nil) > 16384 {
		return nil, false
	}
	s := f.Text('f', 17)
	if strings.IndexByte(s, '.') >= 0 {
		s = strings.TrimRight(s, "0")
		s = strings.TrimSuffix(s, ".")
	}
	if s == "-0" {
		s = "0"
	}
	return []byte(s), true
}
