// The boot tests: examples/kv as a unikernel under atoll run, against
// redis-cli, Debian's redis-server and go-redis, killed with SIGKILL,
// fed hostile input, starved of memory and of disk.

package main

import (
	"bufio"
	"context"
	crand "crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"atoll.dev/atoll/internal/testenv"
)

// built is atoll, built from the repository this module sits in, and
// this program's image, made once for every boot test in a directory
// TestMain removes.
var built struct {
	once       sync.Once
	dir        string
	atoll, img string
	err        error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// kvBuild returns atoll and the kv image, building them on first use.
// examples/kv is a module of its own, so atoll is built from ../.. .
func kvBuild(t *testing.T) (atoll, img string) {
	t.Helper()
	built.once.Do(func() {
		if built.dir, built.err = os.MkdirTemp("", "kv-boot-"); built.err != nil {
			return
		}
		built.atoll, built.img = filepath.Join(built.dir, "atoll"), filepath.Join(built.dir, "kv.img")
		for _, c := range [][]string{
			{"go", "build", "-C", "../..", "-o", built.atoll, "./cmd/atoll"},
			{built.atoll, "build", "-o", built.img, "."},
		} {
			if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
				built.err = fmt.Errorf("%v: %v\n%s", c, err, out)
				return
			}
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.atoll, built.img
}

// kvVolume returns atoll, the kv image and an empty directory, data in
// the test's temporary directory, for a data volume.
func kvVolume(t *testing.T) (atoll, img, data string) {
	t.Helper()
	atoll, img = kvBuild(t)
	data = filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	return atoll, img, data
}

// kvUnikernel is one atoll run of examples/kv.
type kvUnikernel struct {
	cmd    *exec.Cmd
	addr   string
	stderr *syncBuffer
}

// syncBuffer is a strings.Builder safe for the writer and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startKV boots img with its data volume at dir on a forwarded port.
// Unless nowait, it waits until the store answers PING.
func startKV(t *testing.T, atoll, img, dir string, port int, nowait bool, extra ...string) *kvUnikernel {
	t.Helper()
	args := []string{"run", "-p", fmt.Sprintf("%d:6379", port)}
	if dir != "" {
		args = append(args, "--volume", "data="+dir)
	}
	args = append(append(args, extra...), img)
	u := &kvUnikernel{cmd: exec.Command(atoll, args...), addr: fmt.Sprintf("127.0.0.1:%d", port), stderr: &syncBuffer{}}
	u.cmd.Stderr = u.stderr
	u.cmd.Stdout = u.stderr
	if err := u.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.kill() })
	if nowait {
		return u
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if c, err := kvDial(u.addr); err == nil {
			r, err := c.do("PING")
			c.close()
			if err == nil && r == "PONG" {
				return u
			}
		}
		if time.Now().After(deadline) || u.cmd.ProcessState != nil {
			t.Fatalf("the kv unikernel did not answer:\n%s", u.stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// kill sends SIGKILL to atoll run and waits for it.
func (u *kvUnikernel) kill() {
	if u.cmd.ProcessState == nil {
		u.cmd.Process.Signal(syscall.SIGKILL)
		u.cmd.Wait()
	}
}

// kvConn is a minimal RESP client: one command at a time, or a
// pipeline, over one connection.
type kvConn struct {
	nc net.Conn
	rd *bufio.Reader
}

// kvError is an error reply.
type kvError string

func (e kvError) Error() string { return string(e) }

func kvDial(addr string) (*kvConn, error) {
	nc, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return nil, err
	}
	return &kvConn{nc: nc, rd: bufio.NewReader(nc)}, nil
}

func (c *kvConn) close() { c.nc.Close() }

func kvEncode(args ...string) []byte {
	b := fmt.Appendf(nil, "*%d\r\n", len(args))
	for _, a := range args {
		b = fmt.Appendf(b, "$%d\r\n%s\r\n", len(a), a)
	}
	return b
}

// do sends one command and returns its reply: a string, an int64, nil,
// a []any, or a kvError.
func (c *kvConn) do(args ...string) (any, error) {
	c.nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.nc.Write(kvEncode(args...)); err != nil {
		return nil, err
	}
	return c.read()
}

// pipeline sends all commands at once and reads their replies.
func (c *kvConn) pipeline(cmds [][]string) ([]any, error) {
	c.nc.SetDeadline(time.Now().Add(30 * time.Second))
	var b []byte
	for _, a := range cmds {
		b = append(b, kvEncode(a...)...)
	}
	if _, err := c.nc.Write(b); err != nil {
		return nil, err
	}
	out := make([]any, len(cmds))
	for i := range cmds {
		r, err := c.read()
		if err != nil {
			return nil, err
		}
		out[i] = r
	}
	return out, nil
}

func (c *kvConn) read() (any, error) {
	line, err := c.rd.ReadString('\n')
	if err != nil {
		return nil, err
	}
	if len(line) < 3 || !strings.HasSuffix(line, "\r\n") {
		return nil, fmt.Errorf("bad reply line %q", line)
	}
	body := line[1 : len(line)-2]
	switch line[0] {
	case '+':
		return body, nil
	case '-':
		return kvError(body), nil
	case ':':
		return strconv.ParseInt(body, 10, 64)
	case '$':
		n, err := strconv.Atoi(body)
		if err != nil || n < 0 {
			return nil, err
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(c.rd, buf); err != nil {
			return nil, err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(body)
		if err != nil || n < 0 {
			return nil, err
		}
		out := make([]any, n)
		for i := range out {
			if out[i], err = c.read(); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("unknown reply type %q", line)
}

// kvOp is one write of the durability test, with what must be true of it
// after a crash.
type kvOp struct {
	kind  int      // 0: MSET of keys to val; 1: HSET of fields of key to val
	keys  []string // MSET: the keys; HSET: the hash and its fields
	val   string
	acked bool
}

func (op kvOp) command() []string {
	if op.kind == 0 {
		args := []string{"MSET"}
		for _, k := range op.keys {
			args = append(args, k, op.val)
		}
		return args
	}
	args := []string{"HSET", op.keys[0]}
	for _, f := range op.keys[1:] {
		args = append(args, f, op.val)
	}
	return args
}

// check reads op's keys back: all must be there if it was acknowledged,
// all or none if not (never half). It reports whether they were there.
func (op kvOp) check(c *kvConn) (bool, error) {
	var r any
	var err error
	if op.kind == 0 {
		r, err = c.do(append([]string{"MGET"}, op.keys...)...)
	} else {
		r, err = c.do(append([]string{"HMGET"}, op.keys...)...)
	}
	if err != nil {
		return false, err
	}
	vals, ok := r.([]any)
	if !ok {
		return false, fmt.Errorf("%v: reply %v", op.command(), r)
	}
	present := 0
	for _, v := range vals {
		switch v {
		case op.val:
			present++
		case nil:
		default:
			return false, fmt.Errorf("%v: a value %q", op.command()[:2], v)
		}
	}
	switch {
	case op.acked && present != len(vals):
		return false, fmt.Errorf("acknowledged %v: only %d of %d values present (LOST)", op.command()[:2], present, len(vals))
	case !op.acked && present != 0 && present != len(vals):
		return false, fmt.Errorf("unacknowledged %v: %d of %d values present (HALF-APPLIED)", op.command()[:2], present, len(vals))
	}
	return present > 0, nil
}

// kvClient writes until its connection fails, recording what was
// acknowledged; every third write is an INCR of its own counter.
func kvClient(addr string, round, id int, stop <-chan struct{}) (ops []kvOp, lastIncr int64, pendingIncr bool) {
	c, err := kvDial(addr)
	if err != nil {
		return nil, 0, false
	}
	defer c.close()
	for i := 0; ; i++ {
		select {
		case <-stop:
			return ops, lastIncr, false
		default:
		}
		if i%3 == 2 {
			r, err := c.do("INCR", fmt.Sprintf("counter:%d", id))
			if err != nil {
				return ops, lastIncr, true
			}
			n, ok := r.(int64)
			if !ok {
				return ops, lastIncr, true
			}
			lastIncr = n
			continue
		}
		prefix := fmt.Sprintf("r%d:c%d:%d", round, id, i)
		op := kvOp{kind: i % 3, val: fmt.Sprintf("v%d-%d-%d", round, id, i)}
		if op.kind == 0 {
			op.keys = []string{prefix + ":a", prefix + ":b", prefix + ":c"}
		} else {
			op.keys = []string{prefix + ":h", "f1", "f2", "f3", "f4"}
		}
		r, err := c.do(op.command()...)
		op.acked = err == nil && (r == "OK" || r == int64(4))
		ops = append(ops, op)
		if !op.acked {
			return ops, lastIncr, false
		}
	}
}

// TestKVKill9 is the durability test: clients write with acknowledgements
// (APPENDFSYNC=always) while atoll run is killed with SIGKILL at random
// moments — a tenth of the time while the store is still recovering —
// for many rounds. After each restart every acknowledged write of the
// last round must be there and no unacknowledged one half there; each
// client's counter at least its last acknowledged value and at most one
// more; and at the end every acknowledged write of every round.
func TestKVKill9(t *testing.T) {
	testenv.RequireKVM(t)
	rounds := 200
	if testing.Short() {
		rounds = 20
	}
	if s := os.Getenv("KV_KILL_ROUNDS"); s != "" {
		rounds, _ = strconv.Atoi(s)
	}
	const clients = 8
	atoll, img, data := kvVolume(t)
	port := testenv.FreePort(t)
	run := []string{"--net", "service=host", "-e", "APPENDFSYNC=always"}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 13))

	var all []kvOp     // every operation of every round
	var pending []kvOp // last round's, to check at the next start
	counters := [clients]int64{}
	maybeMore := [clients]bool{} // an INCR in flight at the kill
	acked, unacked, recoveryKills := 0, 0, 0
	var bootTotal time.Duration
	start := time.Now()

	// verify checks ops after a restart. An unacknowledged write found
	// whole is on disk now: from then on it must stay.
	verify := func(u *kvUnikernel, ops []kvOp) {
		t.Helper()
		c, err := kvDial(u.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.close()
		for i, op := range ops {
			present, err := op.check(c)
			if err != nil {
				t.Fatalf("%v\n%s", err, u.stderr)
			}
			if present {
				ops[i].acked = true
			}
		}
		for id := range clients {
			r, err := c.do("GET", fmt.Sprintf("counter:%d", id))
			if err != nil {
				t.Fatal(err)
			}
			var n int64
			if r != nil {
				n, _ = strconv.ParseInt(r.(string), 10, 64)
			}
			max := counters[id]
			if maybeMore[id] {
				max++
			}
			if n < counters[id] || n > max {
				t.Fatalf("counter %d is %d after the restart; acknowledged %d (in flight: %v)", id, n, counters[id], maybeMore[id])
			}
			counters[id], maybeMore[id] = n, false
		}
	}

	for round := 0; round < rounds; round++ {
		if rng.IntN(10) == 0 {
			// Kill it while it starts: during recovery, or before.
			u := startKV(t, atoll, img, data, port, true, run...)
			time.Sleep(time.Duration(rng.IntN(150)) * time.Millisecond)
			u.kill()
			recoveryKills++
		}
		t0 := time.Now()
		u := startKV(t, atoll, img, data, port, false, run...)
		bootTotal += time.Since(t0)
		verify(u, pending)
		all = append(all, pending...)
		pending = nil

		stop := make(chan struct{})
		var wg sync.WaitGroup
		var mu sync.Mutex
		for id := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ops, last, inflight := kvClient(u.addr, round, id, stop)
				mu.Lock()
				defer mu.Unlock()
				pending = append(pending, ops...)
				if last > counters[id] {
					counters[id] = last
				}
				maybeMore[id] = inflight
			}()
		}
		time.Sleep(time.Duration(5+rng.IntN(200)) * time.Millisecond)
		u.kill()
		wg.Wait()
		close(stop)
		for _, op := range pending {
			if op.acked {
				acked++
			} else {
				unacked++
			}
		}
	}
	u := startKV(t, atoll, img, data, port, false, run...)
	verify(u, pending)
	all = append(all, pending...)
	verify(u, all)
	t.Logf("%d rounds (%d more killed while starting) in %v: %d acknowledged writes and %d unacknowledged, all checked after every restart and again at the end; 0 lost, 0 half-applied; boot to first PING %v on average",
		rounds, recoveryKills, time.Since(start).Round(time.Second), acked, unacked, (bootTotal / time.Duration(rounds)).Round(time.Millisecond))
	if acked < rounds {
		t.Errorf("only %d writes acknowledged in %d rounds: the test did not write", acked, rounds)
	}
}

// TestKVUnikernel boots examples/kv on the user network with its data
// volume: it serves, keeps values, expiries and every kind across a kill
// -9 in both durability modes, reports its mode and, without a volume,
// warns that it keeps nothing.
func TestKVUnikernel(t *testing.T) {
	testenv.RequireKVM(t)
	atoll, img := kvBuild(t)
	dir := t.TempDir()
	for _, mode := range []string{"always", "everysec"} {
		t.Run(mode, func(t *testing.T) {
			data := filepath.Join(dir, "data-"+mode)
			os.Mkdir(data, 0o755)
			port := testenv.FreePort(t)
			u := startKV(t, atoll, img, data, port, false, "-e", "APPENDFSYNC="+mode)
			c, err := kvDial(u.addr)
			if err != nil {
				t.Fatal(err)
			}
			replies, err := c.pipeline([][]string{
				{"SET", "s", "hello"},
				{"SET", "soon", "x", "PX", "1500"},
				{"SET", "later", "y", "EX", "3600"},
				{"HSET", "h", "a", "1", "b", "2"},
				{"RPUSH", "l", "x", "y", "z"},
				{"SADD", "set", "m1", "m2"},
				{"INCRBY", "n", "41"},
				{"INCR", "n"},
				{"INFO", "persistence"},
			})
			if err != nil {
				t.Fatal(err)
			}
			if replies[7] != int64(42) || !strings.Contains(replies[8].(string), "appendfsync:"+mode) {
				t.Errorf("replies %v", replies)
			}
			c.close()
			if mode == "everysec" {
				time.Sleep(1500 * time.Millisecond) // one fsync later
			}
			u.kill()
			time.Sleep(1600 * time.Millisecond) // "soon" expires while it is down
			u = startKV(t, atoll, img, data, port, false, "-e", "APPENDFSYNC="+mode)
			c, err = kvDial(u.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.close()
			got, err := c.pipeline([][]string{
				{"GET", "s"}, {"EXISTS", "soon"}, {"TTL", "later"}, {"HGET", "h", "b"},
				{"LRANGE", "l", "0", "-1"}, {"SCARD", "set"}, {"GET", "n"}, {"DBSIZE"},
			})
			if err != nil {
				t.Fatal(err)
			}
			want := fmt.Sprint([]any{"hello", int64(0), "ttl", "2", []any{"x", "y", "z"}, int64(2), "42", int64(6)})
			if ttl, ok := got[2].(int64); ok && ttl > 3590 && ttl <= 3600 {
				got[2] = "ttl"
			}
			if fmt.Sprint(got) != want {
				t.Errorf("after kill -9 and a restart: %v, want %v\n%s", got, want, u.stderr)
			}
		})
	}
	t.Run("no volume", func(t *testing.T) {
		port := testenv.FreePort(t)
		u := startKV(t, atoll, img, "", port, false)
		c, err := kvDial(u.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.close()
		if r, err := c.do("SET", "k", "v"); r != "OK" || err != nil {
			t.Errorf("SET without a volume: %v %v", r, err)
		}
		if r, _ := c.do("CONFIG", "GET", "appendonly"); fmt.Sprint(r) != "[appendonly no]" {
			t.Errorf("CONFIG GET appendonly: %v", r)
		}
		if !strings.Contains(u.stderr.String(), "NO DATA VOLUME") {
			t.Errorf("no warning about the missing volume:\n%s", u.stderr)
		}
	})
}

// startRedis starts Debian's redis-server on port as a process, with
// extra configuration, and waits until it answers.
func startRedis(t *testing.T, dir string, port int, extra ...string) {
	t.Helper()
	args := append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--dir", dir, "--daemonize", "no"}, extra...)
	cmd := exec.Command("redis-server", args...)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := kvDial(fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			r, err := c.do("PING")
			c.close()
			if err == nil && r == "PONG" {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server did not answer:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// compatCorpus reads examples/kv/testdata/compat.txt: the commands, and
// whether each reply is unordered.
func compatCorpus(t *testing.T) (cmds []string, unordered []bool) {
	t.Helper()
	b, err := os.ReadFile("testdata/compat.txt")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		u := strings.HasPrefix(line, "~")
		cmds = append(cmds, strings.TrimPrefix(line, "~"))
		unordered = append(unordered, u)
	}
	return cmds, unordered
}

// redisCLI runs cmds through one redis-cli session against port, each
// followed by an ECHO of a marker, and returns each command's output.
func redisCLI(t *testing.T, port int, proto string, cmds []string) []string {
	t.Helper()
	var in strings.Builder
	for i, c := range cmds {
		fmt.Fprintf(&in, "%s\nECHO ---%d---\n", c, i)
	}
	cmd := exec.Command("redis-cli", "-p", strconv.Itoa(port), "--no-raw", "-"+proto)
	cmd.Stdin = strings.NewReader(in.String())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("redis-cli: %v\n%s", err, out)
	}
	outs := make([]string, len(cmds))
	rest := string(out)
	for i := range cmds {
		marker := fmt.Sprintf("\"---%d---\"\n", i)
		j := strings.Index(rest, marker)
		if j < 0 {
			t.Fatalf("redis-cli output lacks the marker after %q:\n%s", cmds[i], rest)
		}
		outs[i], rest = rest[:j], rest[j+len(marker):]
	}
	return outs
}

// kvNormalize sorts an unordered reply's lines, without their positions.
func kvNormalize(out string, unordered bool) string {
	if !unordered {
		return out
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for i, l := range lines {
		l = strings.TrimSpace(l)
		if j := strings.Index(l, ") "); j >= 0 && j < 8 {
			l = l[j+2:] // "1) ", "2) 1) "
		}
		if j := strings.Index(l, ") "); j >= 0 && j < 8 {
			l = l[j+2:]
		}
		if j := strings.Index(l, "~ "); j >= 0 && j < 8 {
			l = l[j+2:] // RESP3 sets: "1~ "
		}
		if j := strings.Index(l, "# "); j >= 0 && j < 8 {
			l = l[j+2:] // RESP3 maps: "1# "
		}
		lines[i] = l
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// TestKVRedisCompat runs the command corpus through redis-cli against the
// kv unikernel and against redis-server, in RESP2 and RESP3, and
// compares every reply.
func TestKVRedisCompat(t *testing.T) {
	testenv.RequireKVM(t)
	testenv.RequireCommands(t, "redis-server", "redis-cli")
	atoll, img, data := kvVolume(t)
	dir := filepath.Dir(data)
	kvPort, redisPort := testenv.FreePort(t), testenv.FreePort(t)
	startKV(t, atoll, img, data, kvPort, false)
	startRedis(t, dir, redisPort)
	cmds, unordered := compatCorpus(t)
	for _, proto := range []string{"2", "3"} {
		got := redisCLI(t, kvPort, proto, cmds)
		want := redisCLI(t, redisPort, proto, cmds)
		diffs := 0
		for i, c := range cmds {
			if g, w := kvNormalize(got[i], unordered[i]), kvNormalize(want[i], unordered[i]); g != w {
				t.Errorf("RESP%s %s:\nkv:\n%s\nredis-server:\n%s", proto, c, got[i], want[i])
				diffs++
			}
		}
		t.Logf("RESP%s: %d commands, %d replies differ", proto, len(cmds), diffs)
	}
}

// TestKVGoRedis drives the kv unikernel with a Go Redis client library
// (go-redis), in RESP2 and RESP3, with a password: its handshake (HELLO,
// CLIENT SETINFO and the extensions it probes for), and the calls an
// application makes, scans and pipelines included.
func TestKVGoRedis(t *testing.T) {
	testenv.RequireKVM(t)
	atoll, img, data := kvVolume(t)
	port := testenv.FreePort(t)
	u := startKV(t, atoll, img, data, port, true, "-e", "REQUIREPASS=pa55", "-e", "APPENDFSYNC=everysec")
	ctx := context.Background()
	bad := redis.NewClient(&redis.Options{Addr: u.addr, Password: "wrong", MaxRetries: -1})
	defer bad.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := bad.Ping(ctx).Err()
		if err != nil && strings.Contains(err.Error(), "WRONGPASS") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a wrong password: %v\n%s", err, u.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, proto := range []int{2, 3} {
		t.Run(fmt.Sprintf("RESP%d", proto), func(t *testing.T) {
			rdb := redis.NewClient(&redis.Options{Addr: u.addr, Password: "pa55", Protocol: proto, ClientName: "gotest", MaxRetries: -1})
			defer rdb.Close()
			must := func(err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
			}
			check := func(what string, got, want any) {
				t.Helper()
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("%s: %v, want %v", what, got, want)
				}
			}
			must(rdb.FlushDB(ctx).Err())
			check("PING", rdb.Ping(ctx).Val(), "PONG")
			name, err := rdb.Do(ctx, "CLIENT", "GETNAME").Result()
			check("client name", name, "gotest")
			must(err)
			// Strings.
			must(rdb.Set(ctx, "k", "v", 0).Err())
			check("GET", rdb.Get(ctx, "k").Val(), "v")
			if err := rdb.Get(ctx, "missing").Err(); err != redis.Nil {
				t.Errorf("GET missing: %v, want redis.Nil", err)
			}
			check("SETNX", rdb.SetNX(ctx, "k", "x", 0).Val(), false)
			old, err := rdb.SetArgs(ctx, "k", "w", redis.SetArgs{Get: true, TTL: 10 * time.Second}).Result()
			check("SET GET EX", old, "v")
			must(err)
			if ttl := rdb.TTL(ctx, "k").Val(); ttl <= 9*time.Second || ttl > 10*time.Second {
				t.Errorf("TTL %v", ttl)
			}
			check("PERSIST", rdb.Persist(ctx, "k").Val(), true)
			check("TTL persisted", rdb.TTL(ctx, "k").Val(), time.Duration(-1))
			check("INCR", rdb.Incr(ctx, "n").Val(), 1)
			check("INCRBY", rdb.IncrBy(ctx, "n", 41).Val(), 42)
			check("DECR", rdb.Decr(ctx, "n").Val(), 41)
			check("INCRBYFLOAT", rdb.IncrByFloat(ctx, "f", 2.5).Val(), 2.5)
			must(rdb.MSet(ctx, "a", "1", "b", "2").Err())
			check("MGET", rdb.MGet(ctx, "a", "nope", "b").Val(), []any{"1", nil, "2"})
			check("APPEND", rdb.Append(ctx, "a", "23").Val(), 3)
			check("STRLEN", rdb.StrLen(ctx, "a").Val(), 3)
			check("GETDEL", rdb.GetDel(ctx, "a").Val(), "123")
			check("GETEX", rdb.GetEx(ctx, "b", time.Minute).Val(), "2")
			check("EXPIRE", rdb.Expire(ctx, "b", time.Hour).Val(), true)
			check("EXPIRE NX", rdb.ExpireNX(ctx, "b", time.Hour).Val(), false)
			check("EXISTS", rdb.Exists(ctx, "a", "b", "k").Val(), 2)
			check("TYPE", rdb.Type(ctx, "n").Val(), "string")
			check("DEL", rdb.Del(ctx, "b", "nope").Val(), 1)
			// Hashes.
			check("HSET", rdb.HSet(ctx, "h", map[string]any{"f1": "v1", "f2": "v2"}).Val(), 2)
			check("HGET", rdb.HGet(ctx, "h", "f1").Val(), "v1")
			check("HGETALL", rdb.HGetAll(ctx, "h").Val(), map[string]string{"f1": "v1", "f2": "v2"})
			check("HINCRBY", rdb.HIncrBy(ctx, "h", "c", 5).Val(), 5)
			check("HMGET", rdb.HMGet(ctx, "h", "f2", "zz").Val(), []any{"v2", nil})
			check("HLEN", rdb.HLen(ctx, "h").Val(), 3)
			check("HEXISTS", rdb.HExists(ctx, "h", "c").Val(), true)
			check("HDEL", rdb.HDel(ctx, "h", "c", "zz").Val(), 1)
			if err := rdb.Get(ctx, "h").Err(); err == nil || !strings.HasPrefix(err.Error(), "WRONGTYPE") {
				t.Errorf("GET of a hash: %v", err)
			}
			// Lists.
			check("RPUSH", rdb.RPush(ctx, "l", "a", "b", "c").Val(), 3)
			check("LPUSH", rdb.LPush(ctx, "l", "z").Val(), 4)
			check("LRANGE", rdb.LRange(ctx, "l", 0, -1).Val(), []string{"z", "a", "b", "c"})
			check("LPOP", rdb.LPop(ctx, "l").Val(), "z")
			check("RPOP", rdb.RPopCount(ctx, "l", 2).Val(), []string{"c", "b"})
			check("LLEN", rdb.LLen(ctx, "l").Val(), 1)
			check("LINDEX", rdb.LIndex(ctx, "l", -1).Val(), "a")
			if err := rdb.LPopCount(ctx, "nolist", 2).Err(); err != redis.Nil {
				t.Errorf("LPOP count of nothing: %v", err)
			}
			// Sets.
			check("SADD", rdb.SAdd(ctx, "s", "x", "y", "x").Val(), 2)
			check("SISMEMBER", rdb.SIsMember(ctx, "s", "y").Val(), true)
			check("SMISMEMBER", rdb.SMIsMember(ctx, "s", "x", "q").Val(), []bool{true, false})
			members := rdb.SMembers(ctx, "s").Val()
			sort.Strings(members)
			check("SMEMBERS", members, []string{"x", "y"})
			check("SREM", rdb.SRem(ctx, "s", "x").Val(), 1)
			check("SCARD", rdb.SCard(ctx, "s").Val(), 1)
			// A pipeline, and scans over more than one batch.
			pipe := rdb.Pipeline()
			var incrs []*redis.IntCmd
			for i := range 300 {
				pipe.Set(ctx, fmt.Sprintf("scan:%d", i), i, 0)
				incrs = append(incrs, pipe.Incr(ctx, "pipelined"))
				pipe.HSet(ctx, "bighash", fmt.Sprintf("f%d", i), i)
				pipe.SAdd(ctx, "bigset", i)
			}
			_, err = pipe.Exec(ctx)
			must(err)
			check("the pipeline's last INCR", incrs[299].Val(), 300)
			keys := map[string]bool{}
			iter := rdb.Scan(ctx, 0, "scan:*", 50).Iterator()
			for iter.Next(ctx) {
				keys[iter.Val()] = true
			}
			must(iter.Err())
			check("SCAN MATCH scan:*", len(keys), 300)
			fields := map[string]bool{}
			hiter := rdb.HScan(ctx, "bighash", 0, "", 20).Iterator()
			for hiter.Next(ctx) {
				fields[hiter.Val()] = true
			}
			must(hiter.Err())
			check("HSCAN fields and values", len(fields), 600)
			n := 0
			siter := rdb.SScan(ctx, "bigset", 0, "", 20).Iterator()
			for siter.Next(ctx) {
				n++
			}
			must(siter.Err())
			check("SSCAN", n, 300)
			check("DBSIZE", rdb.DBSize(ctx).Val(), 309)
			if info := rdb.Info(ctx, "keyspace").Val(); !strings.Contains(info, "db0:keys=309") {
				t.Errorf("INFO keyspace: %q", info)
			}
			if err := rdb.Do(ctx, "NOSUCHCOMMAND", "x").Err(); err == nil || !strings.HasPrefix(err.Error(), "ERR unknown command 'NOSUCHCOMMAND'") {
				t.Errorf("an unknown command: %v", err)
			}
		})
	}
}

// kvInfo returns the value of one INFO field.
func kvInfo(t *testing.T, c *kvConn, field string) string {
	t.Helper()
	r, err := c.do("INFO")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(fmt.Sprint(r), "\r\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			return v
		}
	}
	t.Fatalf("INFO has no %s: %v", field, r)
	return ""
}

// TestKVHostile attacks the kv unikernel with malformed and abusive
// requests at once — huge declared lengths and counts, nested arrays,
// garbage, truncated frames, big frames left unfinished, slowloris
// connections trickling bytes, pipelines nobody reads — while a client
// keeps using it: every one of its commands is answered, the attackers
// are refused or timed out, and afterwards the server holds no request
// buffers and is still running within its memory.
func TestKVHostile(t *testing.T) {
	testenv.RequireKVM(t)
	atoll, img, data := kvVolume(t)
	port := testenv.FreePort(t)
	u := startKV(t, atoll, img, data, port, false, "--mem", "256M", "--net", "service=host", "-e", "KV_QUERY_TIMEOUT=2s")
	good, err := kvDial(u.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer good.close()
	maxBulk, _ := good.do("CONFIG", "GET", "proto-max-bulk-len")
	bulk, _ := strconv.Atoi(fmt.Sprint(maxBulk.([]any)[1]))

	var wg sync.WaitGroup
	var mu sync.Mutex
	replies := map[string]int{}
	attack := func(name string, n int, f func(c net.Conn) string) {
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := net.DialTimeout("tcp", u.addr, 5*time.Second)
				if err != nil {
					return
				}
				defer c.Close()
				r := f(c)
				mu.Lock()
				replies[name+": "+r]++
				mu.Unlock()
			}()
		}
	}
	firstLine := func(c net.Conn) string {
		c.SetReadDeadline(time.Now().Add(15 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			return "closed (" + strings.Split(err.Error(), ": ")[len(strings.Split(err.Error(), ": "))-1] + ")"
		}
		return strings.TrimSpace(line)
	}
	send := func(req string) func(net.Conn) string {
		return func(c net.Conn) string { c.Write([]byte(req)); return firstLine(c) }
	}
	attack("huge bulk", 20, send("*1\r\n$2147483647\r\n"))
	attack("huge count", 20, send("*2147483647\r\n"))
	attack("many arguments", 20, send("*1000000\r\n"))
	attack("nested", 20, send("*1\r\n*1\r\n$4\r\nPING\r\n"))
	attack("garbage", 20, send("*\x00\xff\xfe garbage \x01\r\n"))
	attack("truncated then closed", 20, func(c net.Conn) string {
		c.Write([]byte("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$10\r\nabc"))
		return "sent"
	})
	attack("big frame left unfinished", 12, func(c net.Conn) string {
		c.Write(fmt.Appendf(nil, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$%d\r\n", bulk))
		c.Write([]byte(strings.Repeat("x", bulk-1000)))
		return firstLine(c)
	})
	attack("slowloris", 200, func(c net.Conn) string {
		c.Write([]byte("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100\r\n"))
		for i := 0; i < 100; i++ {
			time.Sleep(100 * time.Millisecond)
			if _, err := c.Write([]byte("x")); err != nil {
				return "closed while trickling"
			}
		}
		return firstLine(c)
	})
	attack("pipeline never read", 10, func(c net.Conn) string {
		c.Write([]byte(strings.Repeat("*2\r\n$4\r\nINCR\r\n$3\r\nctr\r\n", 100000)))
		return "sent"
	})
	// The client meanwhile.
	slowest := time.Duration(0)
	for i := range 300 {
		t0 := time.Now()
		if r, err := good.do("SET", "good", strconv.Itoa(i)); err != nil || r != "OK" {
			t.Fatalf("SET during the attack: %v %v\n%s", r, err, u.stderr)
		}
		if r, err := good.do("GET", "good"); err != nil || r != strconv.Itoa(i) {
			t.Fatalf("GET during the attack: %v %v", r, err)
		}
		slowest = max(slowest, time.Since(t0))
		time.Sleep(10 * time.Millisecond)
	}
	wg.Wait()
	var summary []string
	for r, n := range replies {
		summary = append(summary, fmt.Sprintf("%d× %s", n, r))
	}
	sort.Strings(summary)
	t.Logf("the client's slowest SET+GET during the attack: %v; attackers got:\n%s", slowest, strings.Join(summary, "\n"))
	for _, want := range []string{
		"huge bulk: -ERR Protocol error: invalid bulk length",
		"huge count: -ERR Protocol error: invalid multibulk length",
		"many arguments: -ERR Protocol error: query buffer limit reached",
		"nested: -ERR Protocol error: expected '$', got '*'",
		"slowloris: closed while trickling",
	} {
		if replies[want] == 0 {
			t.Errorf("no attacker got %q", want)
		}
	}
	if replies["big frame left unfinished: -ERR Protocol error: query buffer limit reached"] == 0 {
		t.Error("the unfinished big frames never filled the request buffers' bound")
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if kvInfo(t, good, "query_buffers_bytes") == "0" && kvInfo(t, good, "connected_clients") == "1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the attack: %s bytes of request buffers, %s clients", kvInfo(t, good, "query_buffers_bytes"), kvInfo(t, good, "connected_clients"))
		}
	}
	if u.cmd.ProcessState != nil {
		t.Fatalf("the unikernel exited:\n%s", u.stderr)
	}
	if r, _ := good.do("PING"); r != "PONG" {
		t.Errorf("PING after the attack: %v", r)
	}
}

// kvFill writes values of size bytes from 16 clients, pipelines of 8,
// until each gets an OOM error, and returns how many were stored and the
// replies that were neither OK nor OOM.
func kvFill(addr, prefix string, size int) (stored, oom int, other []string) {
	val := strings.Repeat("v", size)
	var wg sync.WaitGroup
	var mu sync.Mutex
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := kvDial(addr)
			if err != nil {
				return
			}
			defer c.close()
			for i := 0; ; i += 8 {
				var cmds [][]string
				for j := range 8 {
					cmds = append(cmds, []string{"SET", fmt.Sprintf("%s:%d:%d", prefix, g, i+j), val})
				}
				rs, err := c.pipeline(cmds)
				mu.Lock()
				if err != nil {
					other = append(other, err.Error())
					mu.Unlock()
					return
				}
				full := false
				for _, r := range rs {
					switch {
					case r == "OK":
						stored++
					case r == kvError("OOM command not allowed when used memory > 'maxmemory'."):
						oom++
						full = true
					default:
						other = append(other, fmt.Sprint(r))
					}
				}
				mu.Unlock()
				if full {
					return
				}
			}
		}()
	}
	wg.Wait()
	return stored, oom, other
}

// TestKVMemoryBound fills the kv unikernel's memory from many clients at
// once, with big values and then with small ones: writes that would add
// data past maxmemory get Redis's OOM error while reads and deletes go
// on, and the unikernel does not die of its memory limit.
func TestKVMemoryBound(t *testing.T) {
	testenv.RequireKVM(t)
	atoll, img, data := kvVolume(t)
	port := testenv.FreePort(t)
	u := startKV(t, atoll, img, data, port, false, "--mem", "256M", "--net", "service=host", "-e", "APPENDFSYNC=everysec")
	c, err := kvDial(u.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	maxmemory, _ := strconv.ParseInt(kvInfo(t, c, "maxmemory"), 10, 64)
	if maxmemory <= 0 {
		t.Fatalf("maxmemory %d under --mem 256M", maxmemory)
	}
	for _, size := range []int{256 << 10, 100} {
		stored, oom, other := kvFill(u.addr, fmt.Sprint("v", size), size)
		used, _ := strconv.ParseInt(kvInfo(t, c, "used_memory"), 10, 64)
		t.Logf("maxmemory %d: %d values of %d bytes stored (used_memory %d), %d refused with OOM", maxmemory, stored, size, used, oom)
		if len(other) > 0 || oom == 0 {
			t.Fatalf("replies other than OK and OOM: %q\n%s", other, u.stderr)
		}
		if used < maxmemory*8/10 {
			t.Errorf("OOM with used_memory %d, well below maxmemory %d", used, maxmemory)
		}
		if used > maxmemory+16*8*int64(size+1024) {
			t.Errorf("used_memory %d, beyond maxmemory %d by more than the pipelines in flight", used, maxmemory)
		}
		key := fmt.Sprintf("v%d:0:0", size)
		if r, _ := c.do("STRLEN", key); r != int64(size) {
			t.Errorf("STRLEN under OOM: %v", r)
		}
		if r, _ := c.do("DEL", key); r != int64(1) {
			t.Errorf("DEL under OOM: %v", r)
		}
		if r, _ := c.do("FLUSHALL"); r != "OK" {
			t.Errorf("FLUSHALL: %v", r)
		}
		if r, _ := c.do("SET", "after", "v"); r != "OK" {
			t.Errorf("SET after FLUSHALL: %v", r)
		}
	}
	if u.cmd.ProcessState != nil {
		t.Fatalf("the unikernel exited:\n%s", u.stderr)
	}
}

// TestKVDiskFull puts the data volume on a small tmpfs and writes until
// it is nearly full: writes are refused with an error, every acknowledged
// one survives kill -9 and a restart on the full volume, reads go on, and
// once the volume has room again writes are accepted. It needs root, for
// the mount.
func TestKVDiskFull(t *testing.T) {
	testenv.RequireKVM(t)
	if os.Geteuid() != 0 {
		t.Skip("skipping: mounting a tmpfs needs root")
	}
	atoll, img := kvBuild(t)
	dir := t.TempDir()
	vol := filepath.Join(dir, "vol")
	os.Mkdir(vol, 0o755)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", vol).CombinedOutput(); err != nil {
		testenv.SkipOrFail(t, fmt.Sprintf("cannot mount a tmpfs: %v %s", err, out))
	}
	t.Cleanup(func() {
		// After the unikernel's own cleanup (registered later, run
		// first) has killed it.
		if out, err := exec.Command("umount", vol).CombinedOutput(); err != nil {
			if out2, err2 := exec.Command("umount", "-l", vol).CombinedOutput(); err2 != nil {
				t.Errorf("umount %s: %v %s; %v %s", vol, err, out, err2, out2)
			}
		}
	})
	port := testenv.FreePort(t)
	run := []string{"--net", "service=host", "-e", "KV_DISK_RESERVE=16m"}
	u := startKV(t, atoll, img, vol, port, false, run...)
	// Values that do not compress, so that the journal and the tables
	// take room.
	raw := make([]byte, 12<<10)
	crand.Read(raw)
	val := base64.StdEncoding.EncodeToString(raw)
	var mu sync.Mutex
	var acked []string
	refusals := map[string]int{}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := kvDial(u.addr)
			if err != nil {
				return
			}
			defer c.close()
			for i := 0; i < 10000; i++ {
				k := fmt.Sprintf("disk:%d:%d", g, i)
				r, err := c.do("SET", k, val)
				mu.Lock()
				if err != nil {
					refusals["connection: "+err.Error()]++
					mu.Unlock()
					return
				}
				if r == "OK" {
					acked = append(acked, k)
					mu.Unlock()
					continue
				}
				refusals[fmt.Sprint(r)]++
				mu.Unlock()
				return
			}
		}()
	}
	wg.Wait()
	t.Logf("%d writes of 16 KiB acknowledged on a 48 MiB tmpfs, then: %v", len(acked), refusals)
	if refusals["MISCONF the data volume is nearly full: writes that add data are refused until space is freed"] == 0 {
		t.Fatalf("writes were not refused for the full volume: %v\n%s", refusals, u.stderr)
	}
	c, err := kvDial(u.addr)
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := c.do("GET", acked[0]); r != val {
		t.Errorf("GET on the full volume: %.20v", r)
	}
	if kvInfo(t, c, "kv_disk_low") != "1" {
		t.Error("INFO does not report the volume low")
	}
	c.close()
	verify := func(u *kvUnikernel) {
		t.Helper()
		c, err := kvDial(u.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.close()
		for i := 0; i < len(acked); i += 100 {
			keys := acked[i:min(i+100, len(acked))]
			r, err := c.do(append([]string{"MGET"}, keys...)...)
			if err != nil {
				t.Fatal(err)
			}
			for j, v := range r.([]any) {
				if v != val {
					t.Fatalf("acknowledged %s lost after the restart on a full volume\n%s", keys[j], u.stderr)
				}
			}
		}
	}
	u.kill()
	u = startKV(t, atoll, img, vol, port, false, run...)
	verify(u)
	// Room again: writes are accepted within a second or so.
	if out, err := exec.Command("mount", "-o", "remount,size=128m", vol).CombinedOutput(); err != nil {
		t.Fatalf("remount: %v %s", err, out)
	}
	c, err = kvDial(u.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		r, err := c.do("SET", "after", "room")
		if err == nil && r == "OK" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("writes still refused with room on the volume: %v %v", r, err)
		}
	}
}
