// Package store is the key-value appliance's data: a Redis keyspace of
// strings, hashes, lists and sets with expiry, held in memory for speed
// and kept on disk in a Pebble database, so that a restart finds every
// acknowledged write.
//
// Commands run in transactions (Tx): the caller takes the keyspace with
// DB.Begin, runs any number of commands — a client's pipeline — and ends
// with Tx.End, which hands their changes to Pebble as one atomic batch
// and, in the Always mode, waits until that batch is on stable storage.
// A crash therefore keeps a transaction whole or drops it whole.
package store

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Kind is a value's type.
type Kind uint8

// The kinds of value, as TYPE names them.
const (
	KindNone Kind = iota
	KindString
	KindHash
	KindList
	KindSet
)

// String returns the name TYPE answers with.
func (k Kind) String() string {
	switch k {
	case KindString:
		return "string"
	case KindHash:
		return "hash"
	case KindList:
		return "list"
	case KindSet:
		return "set"
	}
	return "none"
}

// KindNamed returns the kind TYPE calls name, and false for a name that
// is no kind.
func KindNamed(name string) (Kind, bool) {
	for k := KindString; k <= KindSet; k++ {
		if k.String() == name {
			return k, true
		}
	}
	return KindNone, false
}

// Error is an error a client sees: its text is the reply, in Redis's
// words, starting with the error code (ERR, WRONGTYPE, OOM...).
type Error string

func (e Error) Error() string { return string(e) }

// Errors that commands return.
const (
	ErrWrongType Error = "WRONGTYPE Operation against a key holding the wrong kind of value"
	ErrNotInt    Error = "ERR value is not an integer or out of range"
	ErrNotFloat  Error = "ERR value is not a valid float"
	ErrOverflow  Error = "ERR increment or decrement would overflow"
	ErrNaN       Error = "ERR increment would produce NaN or Infinity"
	ErrHashInt   Error = "ERR hash value is not an integer"
)

// Mode is the durability of acknowledged writes, as Redis's appendfsync.
type Mode int

// The durability modes.
const (
	// Always acknowledges a write only once it is on stable storage (the
	// journal fsynced); transactions committing together share one
	// fsync.
	Always Mode = iota
	// EverySec acknowledges a write once it is written to the journal
	// file, and fsyncs the journal every second: the end of the process
	// loses nothing acknowledged, a crash of the host may lose the last
	// second.
	EverySec
)

// String returns the mode's appendfsync name.
func (m Mode) String() string {
	if m == EverySec {
		return "everysec"
	}
	return "always"
}

// ParseMode reads an appendfsync name.
func ParseMode(s string) (Mode, error) {
	switch s {
	case "always":
		return Always, nil
	case "everysec":
		return EverySec, nil
	}
	return 0, errors.New("want always or everysec")
}

// value is one key's value.
type value struct {
	kind   Kind
	expire int64 // Unix milliseconds; 0 for none
	str    []byte
	hash   *dict[[]byte]
	list   *list
	set    *dict[struct{}]
}

// DB is a keyspace, and the Pebble database that keeps it when it has
// one.
type DB struct {
	mu       sync.Mutex
	keys     *dict[*value]
	volatile map[string]struct{} // keys with an expiry
	used     int64               // approximate bytes the data takes
	eng      *engine             // nil: memory only
	maxMem   int64               // 0: no limit
	heapFull atomic.Bool         // the Go heap is near its limit
	now      func() time.Time

	applied uint64 // sequence number of the last batch applied (mu)

	dmu     sync.Mutex
	dcond   *sync.Cond
	durable uint64              // every batch up to this one is in the journal
	done    map[uint64]struct{} // batches after durable whose SyncWait returned
	failed  error               // the journal failed: writes are refused

	expired atomic.Int64 // keys removed because they expired
}

// Options configure Open.
type Options struct {
	// Dir is the directory of the Pebble database; empty keeps the data
	// in memory only.
	Dir string
	// Mode is the durability of acknowledged writes.
	Mode Mode
	// MaxMemory bounds the data's size in bytes (as Redis's maxmemory
	// counts it, roughly); commands that would add data beyond it fail
	// with ErrOOM. 0 is no bound.
	MaxMemory int64
	// DiskReserve is the free space below which commands that add data
	// fail with ErrDiskFull, so that the database never meets a full
	// disk itself. 0 is no reserve.
	DiskReserve int64
	// Logf logs what the store has to say (recovery, failures).
	Logf func(format string, args ...any)
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// Open opens the keyspace, loading what the database in opts.Dir holds.
func Open(opts Options) (*DB, error) {
	db := &DB{
		keys:     newDict[*value](),
		volatile: make(map[string]struct{}),
		done:     make(map[uint64]struct{}),
		maxMem:   opts.MaxMemory,
		now:      opts.Now,
	}
	if db.now == nil {
		db.now = time.Now
	}
	db.dcond = sync.NewCond(&db.dmu)
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	if opts.Dir != "" {
		eng, err := openEngine(opts, db)
		if err != nil {
			return nil, err
		}
		db.eng = eng
	}
	return db, nil
}

// Close stops the background work and closes the database, after making
// everything written durable.
func (db *DB) Close() error {
	if db.eng == nil {
		return nil
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	err := db.eng.close()
	db.eng = nil
	return err
}

// Persistent reports whether the keyspace is kept on disk.
func (db *DB) Persistent() bool { return db.eng != nil }

// Mode returns the durability mode (Always without a database).
func (db *DB) Mode() Mode {
	if db.eng == nil {
		return Always
	}
	return db.eng.mode
}

// Stats is what INFO reports about the keyspace.
type Stats struct {
	Keys, Volatile int
	Used, MaxMem   int64
	Expired        int64
	Persistent     bool
	Mode           Mode
	Failed         error
	DiskFree       int64 // -1 when unknown
	DiskLow        bool
}

// Stats returns the keyspace's numbers.
func (db *DB) Stats() Stats {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.stats()
}

// Stats returns the keyspace's numbers, as the transaction sees them.
func (tx *Tx) Stats() Stats { return tx.db.stats() }

func (db *DB) stats() Stats {
	s := Stats{Keys: db.keys.len(), Volatile: len(db.volatile), Used: db.used, MaxMem: db.maxMem,
		Expired: db.expired.Load(), Persistent: db.eng != nil, Mode: db.Mode(), DiskFree: -1}
	if db.eng != nil {
		s.DiskFree = db.eng.free.Load()
		s.DiskLow = db.eng.diskLow.Load()
	}
	s.Failed = db.failure()
	return s
}

func (db *DB) failure() error {
	db.dmu.Lock()
	defer db.dmu.Unlock()
	return db.failed
}

// Begin takes the keyspace for a transaction. Every Begin must be
// followed by End.
func (db *DB) Begin() *Tx {
	db.mu.Lock()
	return &Tx{db: db, now: db.now().UnixMilli()}
}

// Tx is a transaction: commands run in it see each other's changes, and
// its changes reach the database together, at End.
type Tx struct {
	db  *DB
	now int64 // Unix milliseconds, one clock reading for every command
	b   *pebble.Batch
	key []byte // scratch for database keys
}

// Now returns the transaction's clock, in Unix milliseconds.
func (tx *Tx) Now() int64 { return tx.now }

// End commits the transaction's changes and releases the keyspace. It
// returns once they — and every change the transaction could have read —
// are in the journal: fsynced in the Always mode, written (and fsynced
// within a second) in the EverySec mode, as Redis writes its append-only
// file before it replies. An error means they may not be: the journal
// failed, and the store refuses writes from then on.
func (tx *Tx) End() error {
	db := tx.db
	eng := db.eng
	if eng == nil {
		db.mu.Unlock()
		return nil
	}
	b := tx.b
	tx.b = nil
	var seq uint64
	if b != nil && !b.Empty() {
		db.applied++
		seq = db.applied
		if err := eng.apply(b); err != nil {
			db.mu.Unlock()
			b.Close()
			return db.fail(err)
		}
	} else if b != nil {
		b.Close()
		b = nil
	}
	waitFor := db.applied
	db.mu.Unlock()
	if b != nil {
		err := b.SyncWait()
		b.Close()
		if err != nil {
			return db.fail(err)
		}
		db.markDurable(seq)
		return nil
	}
	return db.waitDurable(waitFor)
}

// fail records that the journal failed, wakes every waiter, and returns
// the error a client sees.
func (db *DB) fail(err error) error {
	db.dmu.Lock()
	if db.failed == nil {
		db.failed = err
		if db.eng != nil {
			db.eng.logf("kv: STORAGE FAILED, refusing writes from now on (reads go on; restart to recover): %v", err)
		}
	}
	db.dcond.Broadcast()
	db.dmu.Unlock()
	return ErrFailed
}

// ErrFailed is a write the journal could not take: it may or may not
// survive a restart, and no further write is accepted.
const ErrFailed Error = "MISCONF the journal failed: writes are refused until restart"

// markDurable records that batch seq is in the journal. durable moves
// past it only once every batch before it is too, so that waiting for
// durable ≥ n needs nothing of how Pebble orders its syncs.
func (db *DB) markDurable(seq uint64) {
	db.dmu.Lock()
	if seq == db.durable+1 {
		db.durable = seq
		for {
			if _, ok := db.done[db.durable+1]; !ok {
				break
			}
			delete(db.done, db.durable+1)
			db.durable++
		}
		db.dcond.Broadcast()
	} else if seq > db.durable {
		db.done[seq] = struct{}{}
	}
	db.dmu.Unlock()
}

// waitDurable waits until batch seq is on stable storage (or the journal
// failed: then reads go on, from memory).
func (db *DB) waitDurable(seq uint64) error {
	db.dmu.Lock()
	for db.durable < seq && db.failed == nil {
		db.dcond.Wait()
	}
	db.dmu.Unlock()
	return nil
}

// Writable returns the error a command that adds data gets now, or nil:
// ErrOOM over the memory bound, ErrDiskFull below the disk reserve,
// ErrFailed after a journal failure.
func (tx *Tx) Writable() error {
	db := tx.db
	if db.maxMem > 0 && db.used > db.maxMem || db.heapFull.Load() {
		return ErrOOM
	}
	if db.eng != nil {
		if db.eng.diskLow.Load() {
			return ErrDiskFull
		}
		if db.failure() != nil {
			return ErrFailed
		}
	}
	return nil
}

// Failed returns ErrFailed after a journal failure; every write, even one
// that frees data, is refused then.
func (tx *Tx) Failed() error {
	if tx.db.eng != nil && tx.db.failure() != nil {
		return ErrFailed
	}
	return nil
}

// The errors of Writable.
const (
	ErrOOM      Error = "OOM command not allowed when used memory > 'maxmemory'."
	ErrDiskFull Error = "MISCONF the data volume is nearly full: writes that add data are refused until space is freed"
)

// SetHeapFull tells the store whether the Go heap is near its limit;
// while it is, commands that add data fail with ErrOOM.
func (db *DB) SetHeapFull(full bool) { db.heapFull.Store(full) }

// Memory accounting: what a key, a string, a field or an element costs
// beyond its bytes, roughly (Go map slots, headers, the scan index).
const (
	costKey     = 128
	costField   = 64
	costElement = 32
	costMember  = 56
)

// clone copies b; the copy is never nil, so that an empty value is told
// from a missing one.
func clone(b []byte) []byte { return append([]byte{}, b...) }

// lookup returns key's live value, removing it first if it has expired.
func (tx *Tx) lookup(key []byte) *value {
	v, ok := tx.db.keys.get(key)
	if !ok {
		return nil
	}
	if v.expire != 0 && v.expire <= tx.now {
		tx.remove(key, v)
		tx.db.expired.Add(1)
		return nil
	}
	return v
}

// lookupKind returns key's value, nil when there is none, or ErrWrongType
// when it is not of kind k.
func (tx *Tx) lookupKind(key []byte, k Kind) (*value, error) {
	v := tx.lookup(key)
	if v != nil && v.kind != k {
		return nil, ErrWrongType
	}
	return v, nil
}

// remove deletes key, whose value is v, from memory and the database.
func (tx *Tx) remove(key []byte, v *value) {
	db := tx.db
	db.keys.del(key)
	if v.expire != 0 {
		delete(db.volatile, string(key))
	}
	db.used -= v.size(len(key))
	tx.persistDelete(key, v.kind)
}

// insert adds a new key with value v (it must not exist).
func (tx *Tx) insert(key []byte, v *value) {
	db := tx.db
	db.keys.set(key, v)
	if v.expire != 0 {
		db.volatile[string(key)] = struct{}{}
	}
	db.used += v.size(len(key))
}

// setExpire changes v's expiry, keeping the volatile set in step; the
// caller persists the change.
func (tx *Tx) setExpire(key []byte, v *value, at int64) {
	switch {
	case v.expire == 0 && at != 0:
		tx.db.volatile[string(key)] = struct{}{}
	case v.expire != 0 && at == 0:
		delete(tx.db.volatile, string(key))
	}
	v.expire = at
}

// empty reports a container with no elements.
func (v *value) empty() bool {
	switch v.kind {
	case KindHash:
		return v.hash.len() == 0
	case KindList:
		return v.list.len() == 0
	case KindSet:
		return v.set.len() == 0
	}
	return false
}

// size is what a key with value v counts for in used.
func (v *value) size(keyLen int) int64 {
	n := int64(costKey + keyLen)
	switch v.kind {
	case KindString:
		n += int64(len(v.str))
	case KindHash:
		for f, x := range v.hash.m {
			n += int64(costField + len(f) + len(x))
		}
	case KindList:
		for i := range v.list.len() {
			n += int64(costElement + len(v.list.at(i)))
		}
	case KindSet:
		for m := range v.set.m {
			n += int64(costMember + len(m))
		}
	}
	return n
}
