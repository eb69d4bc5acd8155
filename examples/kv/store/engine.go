package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// How the keyspace lies in Pebble. Each key has a record under 'k'+key
// holding its kind, expiry and, for a string, its value. A hash field, a
// set member and a list element each have a record of their own under
// 's' + uvarint(len(key)) + key + name (the field, the member, or the
// element's position as 8 big-endian bytes, offset so that negative
// positions sort first). The length prefix makes one key's records a
// contiguous range no other key's records fall into, so deleting a key
// is one range deletion.
const (
	prefixMeta = 'k'
	prefixSub  = 's'
	metaHeader = 1 + 8 // kind, expiry
)

// engine is the Pebble database under a keyspace.
type engine struct {
	pdb     *pebble.DB
	mode    Mode
	dir     string
	logf    func(string, ...any)
	reserve int64

	free    atomic.Int64 // free bytes on the data volume, at the last look
	diskLow atomic.Bool  // free < reserve
	written int64        // bytes applied since the last look at free space (DB.mu)

	wal *lazyWAL // EverySec: the journal files, fsynced every second

	stop chan struct{}
	wg   sync.WaitGroup
}

// openEngine opens (or creates) the database in opts.Dir and loads it
// into db.
func openEngine(opts Options, db *DB) (*engine, error) {
	e := &engine{mode: opts.Mode, dir: opts.Dir, logf: opts.Logf, reserve: opts.DiskReserve, stop: make(chan struct{})}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, err
	}
	cache := pebble.NewCache(4 << 20)
	defer cache.Unref()
	fs := vfs.Default
	if e.mode == EverySec {
		e.wal = &lazyWAL{FS: vfs.Default, files: map[*lazyFile]struct{}{}}
		fs = e.wal
	}
	po := &pebble.Options{
		FS:                 flockFS{fs},
		Cache:              cache,
		FormatMajorVersion: pebble.FormatNewest,
		MemTableSize:       4 << 20,
		Logger:             pebbleLogger{e.logf},
		EventListener: &pebble.EventListener{
			BackgroundError: func(err error) { e.logf("kv: pebble: background error: %v", err) },
		},
		CompactionConcurrencyRange: func() (int, int) { return 1, 1 },
	}
	start := time.Now()
	pdb, err := pebble.Open(opts.Dir, po)
	if err != nil {
		return nil, fmt.Errorf("open the database in %s: %w", opts.Dir, err)
	}
	e.pdb = pdb
	n, dropped, err := e.load(db)
	if err != nil {
		pdb.Close()
		return nil, err
	}
	e.logf("kv: loaded %d keys from %s in %v (%d expired while down)", n, opts.Dir, time.Since(start).Round(time.Millisecond), dropped)
	e.checkDisk()
	e.wg.Add(1)
	go e.background(db)
	return e, nil
}

// load reads every key into db, dropping those that expired while the
// store was down.
func (e *engine) load(db *DB) (n, dropped int, err error) {
	now := db.now().UnixMilli()
	it, err := e.pdb.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixMeta}, UpperBound: []byte{prefixSub + 1}})
	if err != nil {
		return 0, 0, err
	}
	defer it.Close()
	del := e.pdb.NewBatch()
	defer del.Close()
	var cur *value // the value the last sub-record belonged to
	var curKey []byte
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		raw, err := it.ValueAndErr()
		if err != nil {
			return 0, 0, err
		}
		switch k[0] {
		case prefixMeta:
			key := k[1:]
			if len(raw) < metaHeader || Kind(raw[0]) < KindString || Kind(raw[0]) > KindSet {
				return 0, 0, fmt.Errorf("record of key %q is damaged", key)
			}
			v := &value{kind: Kind(raw[0]), expire: int64(binary.BigEndian.Uint64(raw[1:metaHeader]))}
			if v.expire != 0 && v.expire <= now {
				del.Delete(k, nil)
				lo, hi := subRange(nil, key)
				del.DeleteRange(lo, hi, nil)
				dropped++
				continue
			}
			switch v.kind {
			case KindString:
				v.str = clone(raw[metaHeader:])
			case KindHash:
				v.hash = newDict[[]byte]()
			case KindList:
				v.list = &list{}
			case KindSet:
				v.set = newDict[struct{}]()
			}
			db.keys.set(key, v)
			if v.expire != 0 {
				db.volatile[string(key)] = struct{}{}
			}
			n++
		case prefixSub:
			l, w := binary.Uvarint(k[1:])
			if w <= 0 || uint64(len(k)-1-w) < l {
				return 0, 0, fmt.Errorf("damaged record %q", k)
			}
			key, sub := k[1+w:1+w+int(l)], k[1+w+int(l):]
			if cur == nil || string(curKey) != string(key) {
				curKey = append(curKey[:0], key...)
				cur, _ = db.keys.get(key)
			}
			if cur == nil {
				// A record of a key that expired while down.
				del.Delete(k, nil)
				continue
			}
			switch cur.kind {
			case KindHash:
				cur.hash.set(sub, clone(raw))
			case KindSet:
				cur.set.set(sub, struct{}{})
			case KindList:
				if len(sub) != 8 {
					return 0, 0, fmt.Errorf("list %q: damaged position %x", key, sub)
				}
				pos := int64(binary.BigEndian.Uint64(sub) ^ 1<<63)
				if cur.list.len() == 0 {
					cur.list.base = pos
				} else if pos != cur.list.base+int64(cur.list.len()) {
					return 0, 0, fmt.Errorf("list %q: position %d missing", key, cur.list.base+int64(cur.list.len()))
				}
				cur.list.pushBack(clone(raw))
			default:
				return 0, 0, fmt.Errorf("key %q is a %s but has a record %q", key, cur.kind, sub)
			}
		}
	}
	if err := it.Error(); err != nil {
		return 0, 0, err
	}
	// A container with no elements is never written; one found is
	// dropped.
	for k, v := range db.keys.m {
		if v.empty() {
			db.keys.del([]byte(k))
			delete(db.volatile, k)
			del.Delete(metaKey(nil, []byte(k)), nil)
			n--
		}
	}
	for k, v := range db.keys.m {
		db.used += v.size(len(k))
	}
	if !del.Empty() {
		if err := e.pdb.Apply(del, pebble.Sync); err != nil {
			return 0, 0, err
		}
	}
	return n, dropped, nil
}

// apply hands a transaction's batch to Pebble, in the order transactions
// end. The caller then waits for the journal with SyncWait, outside the
// keyspace lock, so that transactions ending together share one write
// and, in the Always mode, one fsync. (In the EverySec mode the journal's
// fsyncs are lazyWAL's: SyncWait waits for the write(2) alone.)
func (e *engine) apply(b *pebble.Batch) error {
	e.written += int64(b.Len())
	if e.reserve > 0 && e.written > e.reserve/8 {
		e.checkDisk()
	}
	return e.pdb.ApplyNoSyncWait(b, pebble.Sync)
}

// checkDisk looks at the data volume's free space.
func (e *engine) checkDisk() {
	e.written = 0
	var st syscall.Statfs_t
	if err := syscall.Statfs(e.dir, &st); err != nil {
		e.free.Store(-1)
		return
	}
	free := int64(st.Bavail) * st.Bsize
	e.free.Store(free)
	if e.reserve == 0 {
		return
	}
	low := free < e.reserve
	if low != e.diskLow.Load() {
		e.diskLow.Store(low)
		if low {
			e.logf("kv: the data volume has %d bytes free, below the reserve of %d: refusing writes that add data", free, e.reserve)
		} else {
			e.logf("kv: the data volume has %d bytes free again: accepting writes", free)
		}
	}
}

// background fsyncs the journal every second in the EverySec mode and
// watches the free space.
func (e *engine) background(db *DB) {
	defer e.wg.Done()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	lastSync := time.Now()
	for {
		select {
		case <-e.stop:
			return
		case <-tick.C:
		}
		if e.reserve > 0 {
			db.mu.Lock()
			e.checkDisk()
			db.mu.Unlock()
		}
		if e.wal != nil && time.Since(lastSync) >= time.Second {
			lastSync = time.Now()
			if err := e.wal.syncAll(); err != nil {
				db.fail(err)
			}
		}
	}
}

// close closes the database; the journal is fsynced as it closes.
func (e *engine) close() error {
	close(e.stop)
	e.wg.Wait()
	return e.pdb.Close()
}

// metaKey appends key's record name to dst.
func metaKey(dst, key []byte) []byte {
	return append(append(dst, prefixMeta), key...)
}

// subKey appends the name of key's record for sub to dst.
func subKey(dst, key, sub []byte) []byte {
	dst = append(dst, prefixSub)
	dst = binary.AppendUvarint(dst, uint64(len(key)))
	return append(append(dst, key...), sub...)
}

// subRange returns the range holding every sub-record of key.
func subRange(dst, key []byte) (lo, hi []byte) {
	lo = subKey(dst, key, nil)
	hi = append([]byte(nil), lo...)
	// lo ends with key's last byte or its length; a byte of 0xff carries.
	for i := len(hi) - 1; i >= 0; i-- {
		if hi[i] != 0xff {
			hi[i]++
			return lo, hi[:i+1]
		}
	}
	return lo, []byte{prefixSub + 1}
}

// position is the 8-byte record name of list position p.
func position(p int64) []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(p)^1<<63)
}

// batch returns the transaction's batch, creating it on first use.
func (tx *Tx) batch() *pebble.Batch {
	if tx.b == nil {
		tx.b = tx.db.eng.pdb.NewBatch()
	}
	return tx.b
}

// persistMeta writes key's record: kind, expiry and, for a string, value.
func (tx *Tx) persistMeta(key []byte, v *value) {
	if tx.db.eng == nil {
		return
	}
	tx.key = metaKey(tx.key[:0], key)
	op := tx.batch().SetDeferred(len(tx.key), metaHeader+len(v.str))
	copy(op.Key, tx.key)
	op.Value[0] = byte(v.kind)
	binary.BigEndian.PutUint64(op.Value[1:metaHeader], uint64(v.expire))
	copy(op.Value[metaHeader:], v.str)
	op.Finish()
}

// persistDelete deletes key's records; a container loses its elements.
func (tx *Tx) persistDelete(key []byte, k Kind) {
	if tx.db.eng == nil {
		return
	}
	b := tx.batch()
	tx.key = metaKey(tx.key[:0], key)
	b.Delete(tx.key, nil)
	if k != KindString {
		lo, hi := subRange(tx.key[:0], key)
		b.DeleteRange(lo, hi, nil)
	}
}

// persistSub writes one element's record (val nil for a set member).
func (tx *Tx) persistSub(key, sub, val []byte) {
	if tx.db.eng == nil {
		return
	}
	tx.key = subKey(tx.key[:0], key, sub)
	tx.batch().Set(tx.key, val, nil)
}

// persistSubDelete deletes one element's record.
func (tx *Tx) persistSubDelete(key, sub []byte) {
	if tx.db.eng == nil {
		return
	}
	tx.key = subKey(tx.key[:0], key, sub)
	tx.batch().Delete(tx.key, nil)
}

// persistFlush deletes every record.
func (tx *Tx) persistFlush() {
	if tx.db.eng == nil {
		return
	}
	tx.batch().DeleteRange([]byte{prefixMeta}, []byte{prefixSub + 1}, nil)
}

// flockFS is Pebble's file system with its lock taken by flock(2) rather
// than Pebble's fcntl(F_SETLK) (atoll serves both, on volumes with the
// host's locks), so that a second kv on the same directory, in this
// process, another or another unikernel, is told plainly that it is in
// use: a process's own POSIX locks never conflict with each other.
type flockFS struct{ vfs.FS }

// Lock creates name if needed and takes an exclusive flock on it.
func (flockFS) Lock(name string) (io.Closer, error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s is in use by another kv", name)
		}
		return nil, fmt.Errorf("lock %s: %w", name, err)
	}
	return f, nil
}

// lazyWAL is Pebble's file system with the journal's fsyncs taken out of
// the commit path, for the EverySec mode: a journal file's Sync returns
// at once (Pebble has written the data by then, so a commit waits for
// write(2), as Redis's everysec does before it replies), and syncAll,
// every second, fsyncs each file written since. A file is fsynced for
// real as it closes.
type lazyWAL struct {
	vfs.FS
	mu    sync.Mutex
	files map[*lazyFile]struct{}
}

// lazyFile is a journal file of a lazyWAL.
type lazyFile struct {
	vfs.File
	fs    *lazyWAL
	dirty atomic.Bool
}

func (fs *lazyWAL) wrap(f vfs.File, err error, category vfs.DiskWriteCategory) (vfs.File, error) {
	if err != nil || category != "pebble-wal" {
		return f, err
	}
	lf := &lazyFile{File: f, fs: fs}
	fs.mu.Lock()
	fs.files[lf] = struct{}{}
	fs.mu.Unlock()
	return lf, nil
}

// Create creates a file, a lazily synced one for the journal.
func (fs *lazyWAL) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, category)
	return fs.wrap(f, err, category)
}

// ReuseForWrite recycles an old journal file as a new one.
func (fs *lazyWAL) ReuseForWrite(oldname, newname string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname, category)
	return fs.wrap(f, err, category)
}

// syncAll fsyncs every journal file written since the last time.
func (fs *lazyWAL) syncAll() error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	var errs []error
	for f := range fs.files {
		if f.dirty.Swap(false) {
			errs = append(errs, f.File.SyncData())
		}
	}
	return errors.Join(errs...)
}

func (f *lazyFile) Write(p []byte) (int, error) {
	f.dirty.Store(true)
	return f.File.Write(p)
}

func (f *lazyFile) WriteAt(p []byte, off int64) (int, error) {
	f.dirty.Store(true)
	return f.File.WriteAt(p, off)
}

// Sync leaves the fsync to syncAll.
func (f *lazyFile) Sync() error { return nil }

// SyncData leaves the fsync to syncAll.
func (f *lazyFile) SyncData() error { return nil }

// SyncTo leaves the fsync to syncAll.
func (f *lazyFile) SyncTo(int64) (bool, error) { return true, nil }

// Close fsyncs the file and closes it.
func (f *lazyFile) Close() error {
	f.fs.mu.Lock()
	delete(f.fs.files, f)
	f.fs.mu.Unlock()
	return errors.Join(f.File.SyncData(), f.File.Close())
}

// pebbleLogger passes Pebble's errors on and keeps its chatter quiet.
type pebbleLogger struct{ logf func(string, ...any) }

func (pebbleLogger) Infof(string, ...any) {}

func (l pebbleLogger) Errorf(format string, args ...any) {
	l.logf("kv: pebble: "+format, args...)
}

// Fatalf is Pebble finding its state unusable (a journal or manifest it
// cannot write): the store stops, and a restart recovers what was
// acknowledged.
func (l pebbleLogger) Fatalf(format string, args ...any) {
	l.logf("kv: pebble: FATAL: "+format, args...)
	os.Exit(70)
}
