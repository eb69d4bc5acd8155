package main

import (
	"math"
	"testing"
	"time"

	"atoll.dev/atoll/examples/kv/store"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestSize(t *testing.T) {
	for s, want := range map[string]int64{"": 7, "100": 100, "100b": 100, "1k": 1024, "2KB": 2048, "3mb": 3 << 20, "1g": 1 << 30, " 5gb ": 5 << 30} {
		got, err := size(env(map[string]string{"X": s}), "X", 7)
		if err != nil || got != want {
			t.Errorf("size %q = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"-1", "lots", "1tb", "99999999999999gb", "1.5m"} {
		if got, err := size(env(map[string]string{"X": s}), "X", 7); err == nil {
			t.Errorf("size %q = %d, want an error", s, got)
		}
	}
}

func TestConfigure(t *testing.T) {
	c, err := configure(env(map[string]string{"APPENDFSYNC": "everysec", "REQUIREPASS": "pw", "MAXMEMORY": "10mb", "KV_QUERY_TIMEOUT": "5s", "KV_DIR": "/x"}), "")
	if err != nil {
		t.Fatal(err)
	}
	if c.mode != store.EverySec || c.password != "pw" || c.maxMemory != 10<<20 || c.limits.Timeout != 5*time.Second || c.dir != "/x" {
		t.Errorf("configure: %+v", c)
	}
	// The longest argument is an eighth of the data's bound, at least 1 MiB.
	if c.limits.MaxBulk != 10<<20/8 || c.limits.MaxFrame != 2*c.limits.MaxBulk {
		t.Errorf("limits %+v", c.limits)
	}
	if c, _ := configure(env(nil), "/flag"); c.mode != store.Always || c.dir != "/flag" {
		t.Errorf("defaults: mode %v, dir %q", c.mode, c.dir)
	}
	for _, bad := range []map[string]string{{"APPENDFSYNC": "no"}, {"MAXMEMORY": "x"}, {"KV_QUERY_TIMEOUT": "soon"}, {"MAXCLIENTS": "many"}} {
		if _, err := configure(env(bad), ""); err == nil {
			t.Errorf("configure %v: no error", bad)
		}
	}
	if defaultMaxMemory(math.MaxInt64) != 0 || defaultMaxMemory(540<<20) != 200<<20 {
		t.Errorf("default maxmemory: %d, %d", defaultMaxMemory(math.MaxInt64), defaultMaxMemory(540<<20))
	}
	if heapLimit(math.MaxInt64) != math.MaxInt64 || heapLimit(400<<20) != 300<<20 {
		t.Errorf("heap limit: %d", heapLimit(400<<20))
	}
}
