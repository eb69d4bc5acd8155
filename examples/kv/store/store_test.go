package store

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// clock is a settable clock for expiry tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func open(t *testing.T, dir string, mode Mode, clk *clock) *DB {
	t.Helper()
	opts := Options{Dir: dir, Mode: mode, Logf: t.Logf}
	if clk != nil {
		opts.Now = clk.now
	}
	db, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// do runs f in a transaction and ends it.
func do(t *testing.T, db *DB, f func(tx *Tx)) {
	t.Helper()
	tx := db.Begin()
	f(tx)
	if err := tx.End(); err != nil {
		t.Fatal(err)
	}
}

func b(s string) []byte { return []byte(s) }

func bs(ss ...string) [][]byte {
	out := make([][]byte, len(ss))
	for i, s := range ss {
		out[i] = []byte(s)
	}
	return out
}

func strs(in [][]byte) []string {
	out := make([]string, len(in))
	for i, x := range in {
		out[i] = string(x)
	}
	return out
}

func sorted(in [][]byte) string {
	s := strs(in)
	sort.Strings(s)
	return strings.Join(s, ",")
}

func TestStrings(t *testing.T) {
	db := open(t, "", Always, nil)
	do(t, db, func(tx *Tx) {
		if v, err := tx.Get(b("k")); v != nil || err != nil {
			t.Errorf("Get of nothing: %q %v", v, err)
		}
		if _, done, _ := tx.Set(b("k"), b(""), SetOptions{}); !done {
			t.Error("SET not done")
		}
		if v, _ := tx.Get(b("k")); v == nil || len(v) != 0 {
			t.Errorf("an empty value reads as %q (nil: %v)", v, v == nil)
		}
		if _, done, _ := tx.Set(b("k"), b("x"), SetOptions{NX: true}); done {
			t.Error("SET NX over an existing key was done")
		}
		if _, done, _ := tx.Set(b("new"), b("x"), SetOptions{XX: true}); done || tx.Exists(b("new")) {
			t.Error("SET XX of a missing key was done")
		}
		old, done, _ := tx.Set(b("k"), b("v2"), SetOptions{Get: true})
		if !done || old == nil || len(old) != 0 {
			t.Errorf("SET GET: old %q, done %v", old, done)
		}
		if n, err := tx.Append(b("k"), b("-more")); n != 7 || err != nil {
			t.Errorf("APPEND: %d %v", n, err)
		}
		if v, _ := tx.Get(b("k")); string(v) != "v2-more" {
			t.Errorf("after APPEND: %q", v)
		}
		if n, err := tx.IncrBy(b("n"), 5); n != 5 || err != nil {
			t.Errorf("INCRBY of nothing: %d %v", n, err)
		}
		if n, err := tx.IncrBy(b("n"), -7); n != -2 || err != nil {
			t.Errorf("INCRBY -7: %d %v", n, err)
		}
		if _, err := tx.IncrBy(b("k"), 1); err != ErrNotInt {
			t.Errorf("INCR of text: %v", err)
		}
		tx.Set(b("big"), b("9223372036854775806"), SetOptions{})
		if n, err := tx.IncrBy(b("big"), 1); n != 1<<63-1 || err != nil {
			t.Errorf("INCR to the maximum: %d %v", n, err)
		}
		if _, err := tx.IncrBy(b("big"), 1); err != ErrOverflow {
			t.Errorf("INCR past the maximum: %v", err)
		}
		if v, err := tx.GetDel(b("k")); string(v) != "v2-more" || err != nil || tx.Exists(b("k")) {
			t.Errorf("GETDEL: %q %v, still there: %v", v, err, tx.Exists(b("k")))
		}
		tx.HSet(b("h"), bs("f", "v"))
		if _, err := tx.Get(b("h")); err != ErrWrongType {
			t.Errorf("GET of a hash: %v", err)
		}
		if _, _, err := tx.Set(b("h"), b("x"), SetOptions{Get: true}); err != ErrWrongType {
			t.Errorf("SET GET over a hash: %v", err)
		}
		if _, done, err := tx.Set(b("h"), b("x"), SetOptions{}); !done || err != nil || tx.Type(b("h")) != KindString {
			t.Errorf("SET over a hash: %v %v, type %v", done, err, tx.Type(b("h")))
		}
		if !tx.MSet(bs("a", "1", "b", "2"), false) || tx.MSet(bs("c", "3", "a", "9"), true) || tx.Exists(b("c")) {
			t.Error("MSET/MSETNX")
		}
		if v, _ := tx.Get(b("a")); string(v) != "1" {
			t.Errorf("MSETNX changed a: %q", v)
		}
	})
}

func TestIncrByFloat(t *testing.T) {
	db := open(t, "", Always, nil)
	tests := []struct{ start, incr, want string }{
		{"", "0.1", "0.1"},
		{"0.1", "0.2", "0.3"}, // Redis's long double: not 0.30000000000000004
		{"10.5", "0.1", "10.6"},
		{"5.0e3", "2.0e2", "5200"},
		{"3", "-3", "0"},
		{"-0.5", "0.25", "-0.25"},
		{"1", "1e-17", "1.00000000000000001"},
	}
	for _, tt := range tests {
		do(t, db, func(tx *Tx) {
			tx.Del(b("f"))
			if tt.start != "" {
				tx.Set(b("f"), b(tt.start), SetOptions{})
			}
			got, err := tx.IncrByFloat(b("f"), b(tt.incr))
			if err != nil || string(got) != tt.want {
				t.Errorf("%s + %s = %q, %v; want %s", tt.start, tt.incr, got, err, tt.want)
			}
		})
	}
	do(t, db, func(tx *Tx) {
		for _, bad := range []string{"", " 1", "1 ", "abc", "1_0", "0b1", "nan", "++1"} {
			if _, err := tx.IncrByFloat(b("f"), b(bad)); err != ErrNotFloat {
				t.Errorf("increment %q: %v, want ErrNotFloat", bad, err)
			}
		}
		if _, err := tx.IncrByFloat(b("f"), b("inf")); err != ErrNaN {
			t.Errorf("increment inf: %v", err)
		}
	})
}

func TestParseInt(t *testing.T) {
	good := map[string]int64{"0": 0, "1": 1, "-1": -1, "9223372036854775807": 1<<63 - 1, "-9223372036854775808": -1 << 63, "10": 10}
	for s, want := range good {
		if n, ok := ParseInt(b(s)); !ok || n != want {
			t.Errorf("ParseInt(%q) = %d, %v", s, n, ok)
		}
	}
	for _, s := range []string{"", "-", "+1", "01", "-0", " 1", "1 ", "1a", "9223372036854775808", "-9223372036854775809", "18446744073709551616", "99999999999999999999"} {
		if n, ok := ParseInt(b(s)); ok {
			t.Errorf("ParseInt(%q) = %d, want failure", s, n)
		}
	}
}

func TestMatch(t *testing.T) {
	tests := []struct {
		p, s string
		want bool
	}{
		{"*", "", false}, // as Redis: KEYS and SCAN take a lone * as "everything" before matching
		{"*", "abc", true},
		{"a*", "abc", true},
		{"a*", "bac", false},
		{"*c", "abc", true},
		{"a?c", "abc", true},
		{"a?c", "ac", false},
		{"h[ae]llo", "hallo", true},
		{"h[ae]llo", "hillo", false},
		{"h[^e]llo", "hallo", true},
		{"h[^e]llo", "hello", false},
		{"h[a-b]llo", "hbllo", true},
		{"h[b-a]llo", "hallo", true}, // reversed ranges work
		{"h[a-b]llo", "hcllo", false},
		{`h\*llo`, "h*llo", true},
		{`h\*llo`, "hello", false},
		{"key:[0-9]*", "key:7abc", true},
		{"[abc", "a", true}, // an open class closes at the end
		{"[abc", "ab", false},
		{"a**b", "axxb", true},
		{"", "", true},
		{"", "a", false},
		{"a", "", false},
		{"*a", "", false},
	}
	for _, tt := range tests {
		if got := Match(b(tt.p), b(tt.s)); got != tt.want {
			t.Errorf("Match(%q, %q) = %v", tt.p, tt.s, got)
		}
	}
	// Many stars against a long miss must not take exponential time.
	start := time.Now()
	Match(b(strings.Repeat("*a", 30)+"b"), b(strings.Repeat("a", 1000)))
	if d := time.Since(start); d > time.Second {
		t.Errorf("a pathological pattern took %v", d)
	}
}

func TestContainers(t *testing.T) {
	db := open(t, "", Always, nil)
	do(t, db, func(tx *Tx) {
		if n, _ := tx.HSet(b("h"), bs("a", "1", "b", "2", "a", "3")); n != 2 {
			t.Errorf("HSET new fields: %d", n)
		}
		if v, _ := tx.HGet(b("h"), b("a")); string(v) != "3" {
			t.Errorf("HGET a: %q", v)
		}
		if ok, _ := tx.HSetNX(b("h"), b("a"), b("x")); ok {
			t.Error("HSETNX over a field")
		}
		if n, err := tx.HIncrBy(b("h"), b("a"), 4); n != 7 || err != nil {
			t.Errorf("HINCRBY: %d %v", n, err)
		}
		if all, _ := tx.HGetAll(b("h")); len(all) != 4 {
			t.Errorf("HGETALL: %q", all)
		}
		if n, _ := tx.HDel(b("h"), bs("a", "zz", "b")); n != 2 || tx.Exists(b("h")) {
			t.Errorf("HDEL: %d, hash still there: %v", n, tx.Exists(b("h")))
		}
		tx.Push(b("l"), bs("a", "b"), false, false) // a b
		tx.Push(b("l"), bs("c", "d"), true, false)  // d c a b
		if got, _ := tx.LRange(b("l"), 0, -1); strings.Join(strs(got), "") != "dcab" {
			t.Errorf("LRANGE: %q", got)
		}
		for _, r := range []struct {
			start, stop int64
			want        string
		}{{1, 2, "ca"}, {-2, -1, "ab"}, {-100, 100, "dcab"}, {3, 1, ""}, {5, 10, ""}, {0, -5, ""}} {
			if got, _ := tx.LRange(b("l"), r.start, r.stop); strings.Join(strs(got), "") != r.want {
				t.Errorf("LRANGE %d %d: %q, want %q", r.start, r.stop, got, r.want)
			}
		}
		if e, _ := tx.Pop(b("l"), 1, true); strings.Join(strs(e), "") != "d" {
			t.Errorf("LPOP: %q", e)
		}
		if e, _ := tx.Pop(b("l"), 5, false); strings.Join(strs(e), "") != "bac" || tx.Exists(b("l")) {
			t.Errorf("RPOP 5: %q, list still there: %v", e, tx.Exists(b("l")))
		}
		if e, _ := tx.Pop(b("l"), 1, true); e != nil {
			t.Errorf("LPOP of nothing: %q", e)
		}
		if n, _ := tx.Push(b("l"), bs("x"), true, true); n != 0 || tx.Exists(b("l")) {
			t.Error("LPUSHX created a list")
		}
		if n, _ := tx.SAdd(b("s"), bs("a", "b", "a")); n != 2 {
			t.Errorf("SADD: %d", n)
		}
		if ok, _ := tx.SIsMember(b("s"), b("b")); !ok {
			t.Error("SISMEMBER b")
		}
		if n, _ := tx.SRem(b("s"), bs("a", "b", "c")); n != 2 || tx.Exists(b("s")) {
			t.Errorf("SREM: %d", n)
		}
		tx.SAdd(b("s"), bs("x"))
		for _, f := range []func() error{
			func() error { _, err := tx.HSet(b("s"), bs("f", "v")); return err },
			func() error { _, err := tx.Push(b("s"), bs("e"), true, false); return err },
			func() error { tx.Set(b("str"), b("v"), SetOptions{}); _, err := tx.SAdd(b("str"), bs("m")); return err },
			func() error { _, err := tx.LRange(b("s"), 0, 1); return err },
		} {
			if err := f(); err != ErrWrongType {
				t.Errorf("an operation on the wrong kind: %v", err)
			}
		}
	})
}

func TestExpiry(t *testing.T) {
	clk := &clock{t: time.UnixMilli(1_000_000_000_000)}
	db := open(t, "", Always, clk)
	do(t, db, func(tx *Tx) {
		tx.Set(b("k"), b("v"), SetOptions{At: tx.Now() + 1500})
		if ttl := tx.TTL(b("k")); ttl != 1500 {
			t.Errorf("TTL %d", ttl)
		}
		if tx.TTL(b("none")) != -2 {
			t.Error("TTL of nothing")
		}
		tx.Set(b("p"), b("v"), SetOptions{})
		if tx.TTL(b("p")) != -1 {
			t.Error("TTL of a persistent key")
		}
		if tx.Expire(b("p"), tx.Now()+100, ExpireXX) || !tx.Expire(b("p"), tx.Now()+100, ExpireNX) {
			t.Error("EXPIRE XX/NX")
		}
		if tx.Expire(b("p"), tx.Now()+50, ExpireGT) || !tx.Expire(b("p"), tx.Now()+50, ExpireLT) {
			t.Error("EXPIRE GT/LT")
		}
		if !tx.Persist(b("p")) || tx.Persist(b("p")) || tx.TTL(b("p")) != -1 {
			t.Error("PERSIST")
		}
		if tx.Expire(b("p"), tx.Now()+50, ExpireGT) {
			t.Error("EXPIRE GT of a key with no expiry (infinite) was done")
		}
		tx.Set(b("keep"), b("v"), SetOptions{At: tx.Now() + 1000})
		tx.Set(b("keep"), b("w"), SetOptions{KeepTTL: true})
		if tx.TTL(b("keep")) != 1000 {
			t.Error("SET KEEPTTL lost the expiry")
		}
		tx.Set(b("keep"), b("x"), SetOptions{})
		if tx.TTL(b("keep")) != -1 {
			t.Error("SET kept an expiry")
		}
		if !tx.Expire(b("keep"), tx.Now(), 0) || tx.Exists(b("keep")) {
			t.Error("EXPIRE to now did not delete")
		}
	})
	clk.advance(1499 * time.Millisecond)
	do(t, db, func(tx *Tx) {
		if !tx.Exists(b("k")) {
			t.Error("expired a millisecond early")
		}
	})
	clk.advance(time.Millisecond)
	do(t, db, func(tx *Tx) {
		if tx.Exists(b("k")) || tx.DBSize() != 1 {
			t.Errorf("not expired on time (%d keys)", tx.DBSize())
		}
	})
	// Active expiry reclaims keys nobody reads.
	do(t, db, func(tx *Tx) {
		for i := range 100 {
			tx.Set(fmt.Appendf(nil, "v%d", i), b("x"), SetOptions{At: tx.Now() + 10})
		}
	})
	clk.advance(20 * time.Millisecond)
	if n, err := db.ExpireCycle(time.Second); n != 100 || err != nil {
		t.Errorf("ExpireCycle removed %d: %v", n, err)
	}
	if s := db.Stats(); s.Keys != 1 || s.Volatile != 0 {
		t.Errorf("after the cycle: %+v", s)
	}
}

// TestScanGuarantee scans while keys come and go: every key present for
// the whole scan must be returned.
func TestScanGuarantee(t *testing.T) {
	db := open(t, "", Always, nil)
	do(t, db, func(tx *Tx) {
		for i := range 5000 {
			tx.Set(fmt.Appendf(nil, "stable%d", i), b("x"), SetOptions{})
		}
	})
	seen := map[string]bool{}
	cursor := uint64(0)
	rounds := 0
	for {
		var keys [][]byte
		do(t, db, func(tx *Tx) {
			cursor, keys = tx.Scan(cursor, 37, nil, KindNone)
			// Churn: add and delete other keys between calls.
			for j := range 50 {
				tx.Set(fmt.Appendf(nil, "churn%d-%d", rounds, j), b("x"), SetOptions{})
				tx.Del(fmt.Appendf(nil, "churn%d-%d", rounds-1, j))
			}
		})
		for _, k := range keys {
			seen[string(k)] = true
		}
		rounds++
		if cursor == 0 || rounds > 10000 {
			break
		}
	}
	for i := range 5000 {
		if !seen[fmt.Sprintf("stable%d", i)] {
			t.Fatalf("stable%d never returned (%d rounds)", i, rounds)
		}
	}
	if rounds < 5000/37 {
		t.Errorf("the scan took %d rounds: COUNT not honoured", rounds)
	}
	// MATCH and TYPE filter.
	do(t, db, func(tx *Tx) {
		tx.HSet(b("stable-hash"), bs("f", "v"))
		all := [][]byte{}
		c := uint64(0)
		for {
			var ks [][]byte
			c, ks = tx.Scan(c, 1000, b("stable-*"), KindHash)
			all = append(all, ks...)
			if c == 0 {
				break
			}
		}
		if sorted(all) != "stable-hash" {
			t.Errorf("SCAN MATCH stable-* TYPE hash: %q", all)
		}
	})
}

func TestHScanBig(t *testing.T) {
	db := open(t, "", Always, nil)
	do(t, db, func(tx *Tx) {
		var pairs [][]byte
		for i := range 1000 {
			pairs = append(pairs, fmt.Appendf(nil, "f%d", i), fmt.Appendf(nil, "%d", i))
		}
		tx.HSet(b("h"), pairs)
		seen := map[string]string{}
		c := uint64(0)
		calls := 0
		for {
			var items [][]byte
			var err error
			c, items, err = tx.HScan(b("h"), c, 100, nil, false)
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < len(items); i += 2 {
				seen[string(items[i])] = string(items[i+1])
			}
			calls++
			if c == 0 {
				break
			}
		}
		if len(seen) != 1000 || seen["f7"] != "7" || calls < 10 {
			t.Errorf("HSCAN saw %d fields in %d calls", len(seen), calls)
		}
		// A small set comes whole, cursor 0.
		tx.SAdd(b("s"), bs("a", "b", "c"))
		if c, ms, _ := tx.SScan(b("s"), 0, 1, nil); c != 0 || len(ms) != 3 {
			t.Errorf("SSCAN of a small set: %d %q", c, ms)
		}
	})
}

// TestRestart writes every kind of value with both modes, closes, and
// reopens: everything is back, expiries included, and what expired while
// the store was down is gone.
func TestRestart(t *testing.T) {
	for _, mode := range []Mode{Always, EverySec} {
		t.Run(mode.String(), func(t *testing.T) {
			dir := t.TempDir()
			clk := &clock{t: time.UnixMilli(1_700_000_000_000)}
			db := open(t, dir, mode, clk)
			do(t, db, func(tx *Tx) {
				tx.Set(b("s"), b("string"), SetOptions{})
				tx.Set(b("empty"), b(""), SetOptions{})
				tx.Set(b("ttl"), b("soon"), SetOptions{At: tx.Now() + 60_000})
				tx.Set(b("short"), b("gone"), SetOptions{At: tx.Now() + 1000})
				tx.HSet(b("h"), bs("a", "1", "b", "2", "c", "3"))
				tx.HDel(b("h"), bs("b"))
				tx.Push(b("l"), bs("1", "2", "3"), false, false)
				tx.Push(b("l"), bs("0", "-1"), true, false)
				tx.Pop(b("l"), 1, false)
				tx.SAdd(b("set"), bs("x", "y", "z"))
				tx.SRem(b("set"), bs("y"))
				tx.HSet(b("h2"), bs("f", "v"))
				tx.Set(b("h2"), b("now a string"), SetOptions{}) // its field record must go
				tx.Push(b("gone"), bs("a"), true, false)
				tx.Del(b("gone"))
				tx.Expire(b("h"), tx.Now()+120_000, 0)
			})
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			clk.advance(2 * time.Second)
			db = open(t, dir, mode, clk)
			do(t, db, func(tx *Tx) {
				check := func(what string, got, want any) {
					t.Helper()
					if fmt.Sprint(got) != fmt.Sprint(want) {
						t.Errorf("%s: %v, want %v", what, got, want)
					}
				}
				v, _ := tx.Get(b("s"))
				check("s", string(v), "string")
				v, _ = tx.Get(b("empty"))
				check("empty is there and empty", v != nil && len(v) == 0, true)
				check("ttl", tx.TTL(b("ttl")), 58_000)
				check("short (expired while down)", tx.Exists(b("short")), false)
				all, _ := tx.HGetAll(b("h"))
				check("h", sorted(all), "1,3,a,c")
				check("h's ttl", tx.TTL(b("h")), 118_000)
				l, _ := tx.LRange(b("l"), 0, -1)
				check("l", strings.Join(strs(l), " "), "-1 0 1 2")
				ms, _ := tx.SMembers(b("set"))
				check("set", sorted(ms), "x,z")
				v, _ = tx.Get(b("h2"))
				check("h2", string(v), "now a string")
				check("gone", tx.Exists(b("gone")), false)
				check("dbsize", tx.DBSize(), 7)
				// The list goes on from where it was, at both ends.
				tx.Push(b("l"), bs("L"), true, false)
				tx.Push(b("l"), bs("R"), false, false)
				tx.Pop(b("l"), 1, true)
			})
			db.Close()
			db = open(t, dir, mode, clk)
			do(t, db, func(tx *Tx) {
				l, _ := tx.LRange(b("l"), 0, -1)
				if got := strings.Join(strs(l), " "); got != "-1 0 1 2 R" {
					t.Errorf("l after a second restart: %s", got)
				}
				tx.Flush()
			})
			db.Close()
			db = open(t, dir, mode, clk)
			defer db.Close()
			do(t, db, func(tx *Tx) {
				if n := tx.DBSize(); n != 0 {
					t.Errorf("%d keys after FLUSHDB and a restart", n)
				}
			})
		})
	}
}

// TestConcurrentAlways commits from many goroutines in the Always mode:
// every End returns with its writes durable, and they are all there
// after a restart.
func TestConcurrentAlways(t *testing.T) {
	dir := t.TempDir()
	db := open(t, dir, Always, nil)
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				tx := db.Begin()
				tx.Set(fmt.Appendf(nil, "g%d-%d", g, i), fmt.Appendf(nil, "%d", i), SetOptions{})
				tx.IncrBy(b("total"), 1)
				if err := tx.End(); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if db.durable != db.applied {
		t.Errorf("durable %d, applied %d", db.durable, db.applied)
	}
	db.Close()
	db = open(t, dir, Always, nil)
	defer db.Close()
	do(t, db, func(tx *Tx) {
		if n := tx.DBSize(); n != 16*50+1 {
			t.Errorf("%d keys", n)
		}
		if v, _ := tx.Get(b("total")); string(v) != "800" {
			t.Errorf("total %s", v)
		}
	})
}

func TestMaxMemory(t *testing.T) {
	db, err := Open(Options{MaxMemory: 100_000})
	if err != nil {
		t.Fatal(err)
	}
	val := bytes.Repeat(b("x"), 1000)
	n := 0
	for {
		tx := db.Begin()
		err := tx.Writable()
		if err == nil {
			tx.Set(fmt.Appendf(nil, "k%d", n), val, SetOptions{})
			n++
		}
		tx.End()
		if err != nil {
			if !errors.Is(err, ErrOOM) {
				t.Fatal(err)
			}
			break
		}
		if n > 1000 {
			t.Fatal("no OOM after 1 MB")
		}
	}
	if n < 80 || n > 100 {
		t.Errorf("%d values of 1000 bytes fit in 100000", n)
	}
	// Deleting makes room again.
	tx := db.Begin()
	for i := range 10 {
		tx.Del(fmt.Appendf(nil, "k%d", i))
	}
	if err := tx.Writable(); err != nil {
		t.Errorf("after deleting: %v", err)
	}
	tx.End()
}

// TestRandomOps checks the keyspace against a simple model through a
// restart, with random commands on a few keys.
func TestRandomOps(t *testing.T) {
	dir := t.TempDir()
	db := open(t, dir, EverySec, nil)
	model := map[string][]string{} // list contents
	r := rand.New(rand.NewPCG(1, 2))
	do(t, db, func(tx *Tx) {
		for range 5000 {
			k := fmt.Sprintf("l%d", r.IntN(5))
			e := fmt.Sprint(r.IntN(1000))
			switch r.IntN(4) {
			case 0:
				tx.Push(b(k), bs(e), true, false)
				model[k] = append([]string{e}, model[k]...)
			case 1:
				tx.Push(b(k), bs(e), false, false)
				model[k] = append(model[k], e)
			case 2:
				n := r.IntN(3)
				tx.Pop(b(k), n, true)
				model[k] = model[k][min(n, len(model[k])):]
			case 3:
				n := r.IntN(3)
				tx.Pop(b(k), n, false)
				model[k] = model[k][:len(model[k])-min(n, len(model[k]))]
			}
		}
	})
	db.Close()
	db = open(t, dir, EverySec, nil)
	defer db.Close()
	do(t, db, func(tx *Tx) {
		for k, want := range model {
			got, _ := tx.LRange(b(k), 0, -1)
			if strings.Join(strs(got), ",") != strings.Join(want, ",") {
				t.Errorf("%s: %v, want %v", k, strs(got), want)
			}
			if len(want) == 0 && tx.Exists(b(k)) {
				t.Errorf("%s: empty but present", k)
			}
		}
	})
}

// TestDurableOrder marks batches durable out of order: the durable mark
// moves only over an unbroken run, and a reader waiting for it wakes
// then.
func TestDurableOrder(t *testing.T) {
	db := open(t, "", Always, nil)
	woke := make(chan struct{})
	go func() {
		db.waitDurable(3)
		close(woke)
	}()
	db.markDurable(2)
	db.markDurable(3)
	if db.durable != 0 {
		t.Errorf("durable %d with batch 1 outstanding", db.durable)
	}
	select {
	case <-woke:
		t.Fatal("a reader of batch 3 woke before batch 1 was durable")
	case <-time.After(50 * time.Millisecond):
	}
	db.markDurable(1)
	<-woke
	if db.durable != 3 || len(db.done) != 0 {
		t.Errorf("durable %d, %d pending", db.durable, len(db.done))
	}
}
