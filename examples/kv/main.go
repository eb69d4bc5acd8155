// Command kv is a key-value store unikernel that speaks Redis's protocol
// (RESP2 and RESP3) for the commands people use most — strings, keys with
// expiry, hashes, lists, sets — and keeps its data in a Pebble database
// on the volume "data", so that a restart finds every acknowledged
// write.
//
//	atoll run -p 6379:6379 --volume data=DIR ./examples/kv
//	go run ./examples/kv -addr 127.0.0.1:6379 -dir DIR    # as a process
//
// Configuration, from the environment (the manifest's env, or -e), named
// after the redis.conf directives they stand for:
//
//	APPENDFSYNC      always (the default: a write is acknowledged once it
//	                 is fsynced) or everysec (fsynced every second)
//	REQUIREPASS      the default user's password (AUTH, HELLO AUTH)
//	MAXMEMORY        bytes the data may take (100mb, 1gb, ...); default
//	                 about a third of the memory Go may use
//	MAXCLIENTS       connections served at once
//	PROTO_MAX_BULK_LEN  the longest argument
//	KV_DIR           the data directory (default /data, the volume, when
//	                 it is attached; without one the data is in memory only)
//	KV_DISK_RESERVE  free space on the data volume below which writes that
//	                 add data are refused (default 64mb)
//	KV_QUERY_TIMEOUT how long a command may take to arrive once begun
//	                 (default 60s)
package main

import (
	"flag"
	"fmt"
	"log"
	"math"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"syscall"
	"time"

	"atoll.dev/atoll"
	"atoll.dev/atoll/examples/kv/server"
	"atoll.dev/atoll/examples/kv/store"
)

// volumeDir is where the manifest's data volume appears.
const volumeDir = "/data"

func main() {
	addr := flag.String("addr", ":6379", "address to serve on")
	dir := flag.String("dir", "", "the data directory (default: $KV_DIR, else "+volumeDir+" when it exists, else none: memory only)")
	flag.Parse()
	log.SetFlags(0)
	if err := run(*addr, *dir); err != nil {
		log.Fatalf("kv: %v", err)
	}
}

// config is what the environment says.
type config struct {
	dir        string
	mode       store.Mode
	password   string
	maxMemory  int64
	maxClients int
	reserve    int64
	limits     server.Limits
	heapLimit  int64 // GOMEMLIMIT; math.MaxInt64 when none
}

func configure(getenv func(string) string, dirFlag string) (config, error) {
	c := config{heapLimit: heapLimit(debug.SetMemoryLimit(-1))}
	var err error
	if c.mode, err = store.ParseMode(or(getenv("APPENDFSYNC"), "always")); err != nil {
		return c, fmt.Errorf("APPENDFSYNC=%q: %v", getenv("APPENDFSYNC"), err)
	}
	c.password = getenv("REQUIREPASS")
	c.dir = dataDir(getenv, dirFlag)
	if c.maxMemory, err = size(getenv, "MAXMEMORY", defaultMaxMemory(c.heapLimit)); err != nil {
		return c, err
	}
	if c.reserve, err = size(getenv, "KV_DISK_RESERVE", 64<<20); err != nil {
		return c, err
	}
	// Each client costs ~30 KiB idle (buffers, goroutine, its socket):
	// let them have a tenth of the memory, and at least a hundred.
	clients := int64(10000)
	if c.heapLimit != math.MaxInt64 {
		clients = min(clients, max(100, c.heapLimit/10/(30<<10)))
	}
	n, err := size(getenv, "MAXCLIENTS", clients)
	if err != nil {
		return c, err
	}
	c.maxClients = int(n)
	// A command's arguments are kept two or three times over on their
	// way in (request, keyspace, journal): an eighth of the data's bound.
	bulk := int64(512 << 20)
	if c.maxMemory > 0 {
		bulk = min(bulk, max(1<<20, c.maxMemory/8))
	}
	if c.limits.MaxBulk, err = size(getenv, "PROTO_MAX_BULK_LEN", bulk); err != nil {
		return c, err
	}
	c.limits.MaxFrame = 2 * c.limits.MaxBulk
	c.limits.MaxArgs = 1 << 20
	c.limits.MaxBuffered = 4 * c.limits.MaxBulk
	if c.heapLimit != math.MaxInt64 {
		c.limits.MaxBuffered = max(c.limits.MaxFrame, c.heapLimit/16)
	}
	c.limits.Timeout = 60 * time.Second
	if s := getenv("KV_QUERY_TIMEOUT"); s != "" {
		if c.limits.Timeout, err = time.ParseDuration(s); err != nil {
			return c, fmt.Errorf("KV_QUERY_TIMEOUT=%q: want a duration (30s, 2m; 0 for none)", s)
		}
	}
	return c, nil
}

// heapLimit is the memory the Go runtime is told it may use, given
// GOMEMLIMIT: three quarters of it. In a unikernel, heap address space
// once mapped stays mapped (a freed page is given back to the monitor
// but still counts), and big values churning through the heap fragment
// it, so the runtime's own accounting can stay under GOMEMLIMIT while
// what is mapped outgrows the memory; collecting earlier keeps it
// inside.
func heapLimit(gomemlimit int64) int64 {
	if gomemlimit == math.MaxInt64 {
		return gomemlimit
	}
	return gomemlimit / 4 * 3
}

// The memory plan, under a heap limit: ~40 MiB for the database's
// memtables and cache, the runtime and the clients' buffers; the data
// counts for about two and a half times itself at its peak (Go's maps and
// headers; a value's copies in the request, the journal batch and the
// memtable on its way in; garbage not yet collected).
const fixedMemory = 40 << 20

// defaultMaxMemory is the data's bound under heapLimit (none without one).
func defaultMaxMemory(heapLimit int64) int64 {
	if heapLimit == math.MaxInt64 {
		return 0
	}
	return max(heapLimit-fixedMemory, 20<<20) * 2 / 5
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// dataDir picks the data directory: the flag, KV_DIR, or the volume when
// it is attached; "" for none.
func dataDir(getenv func(string) string, flagDir string) string {
	switch {
	case flagDir != "":
		return flagDir
	case getenv("KV_DIR") != "":
		return getenv("KV_DIR")
	}
	if st, err := os.Stat(volumeDir); err == nil && st.IsDir() {
		return volumeDir
	}
	return ""
}

// size reads a byte count as redis.conf writes them: a number with an
// optional k, kb, m, mb, g or gb (k and kb both 1024), or def when unset.
func size(getenv func(string) string, name string, def int64) (int64, error) {
	s := strings.ToLower(strings.TrimSpace(getenv(name)))
	if s == "" {
		return def, nil
	}
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"gb", 1 << 30}, {"mb", 1 << 20}, {"kb", 1 << 10}, {"g", 1 << 30}, {"m", 1 << 20}, {"k", 1 << 10}, {"b", 1}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("%s=%q: want a size such as 100mb or 1gb", name, getenv(name))
	}
	return n * mult, nil
}

func run(addr, dirFlag string) error {
	cfg, err := configure(os.Getenv, dirFlag)
	if err != nil {
		return err
	}
	// At least two Ps, even on one CPU. A thread in a system call keeps
	// its P until the runtime's monitor thread notices, 20 µs to 10 ms
	// later; with one P every goroutine waits meanwhile. The journal's
	// fsync is such a call, and in a unikernel every system call is a VM
	// exit, ~100 µs on a nested host: a second P runs the other clients
	// through them (on one core, under redis-benchmark, 25-40% more
	// requests per second, and no collapses of the fsync groups).
	if runtime.GOMAXPROCS(0) < 2 && os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(2)
	}
	if cfg.dir == "" {
		log.Printf("kv: WARNING: NO DATA VOLUME: the data is kept in memory only and is lost when kv stops; attach one (atoll run --volume data=DIR) or give -dir")
	}
	db, err := store.Open(store.Options{Dir: cfg.dir, Mode: cfg.mode, MaxMemory: cfg.maxMemory, DiskReserve: cfg.reserve, Logf: log.Printf})
	if err != nil {
		return err
	}
	network, err := atoll.Net("service")
	if err != nil {
		return err
	}
	ln, err := network.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := server.New(server.Config{DB: db, Password: cfg.password, Limits: cfg.limits, MaxClients: cfg.maxClients, Logf: log.Printf})
	go expireLoop(db)
	if cfg.heapLimit != math.MaxInt64 {
		debug.SetMemoryLimit(cfg.heapLimit)
		go watchHeap(db, cfg.heapLimit)
	}
	where := "memory only"
	if cfg.dir != "" {
		where = cfg.dir + ", appendfsync " + cfg.mode.String()
	}
	auth := "no password"
	if cfg.password != "" {
		auth = "password required"
	}
	log.Printf("kv: serving on %s (%s; maxmemory %d; %s)", ln.Addr(), where, cfg.maxMemory, auth)
	// Stopped as a process (under atoll, SIGINT and SIGTERM stop the
	// VM, and nothing acknowledged needs this): close the database, which
	// fsyncs the journal.
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-stop
		srv.Close()
	}()
	if err := srv.Serve(ln); err != nil {
		return err
	}
	return db.Close()
}

// expireLoop removes expired keys in the background, ten times a second,
// as Redis's active expiry does.
func expireLoop(db *store.DB) {
	for range time.Tick(100 * time.Millisecond) {
		if _, err := db.ExpireCycle(25 * time.Millisecond); err != nil {
			return
		}
	}
}

// watchHeap refuses writes that add data while the live Go heap is above
// 60% of its limit: a client then gets an OOM error instead of the
// unikernel dying of its memory limit. It is the backstop of maxmemory,
// which counts only the data.
func watchHeap(db *store.DB, limit int64) {
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	full := false
	for range time.Tick(100 * time.Millisecond) {
		metrics.Read(sample)
		if sample[0].Value.Kind() != metrics.KindUint64 {
			return
		}
		live := int64(sample[0].Value.Uint64())
		now := live > limit/100*60
		if now != full {
			full = now
			db.SetHeapFull(full)
			if full {
				log.Printf("kv: the Go heap holds %d live bytes, above 60%% of its limit %d: refusing writes that add data", live, limit)
			}
		}
	}
}
