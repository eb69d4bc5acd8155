package server

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"atoll.dev/atoll/examples/kv/store"
)

var testLimits = Limits{MaxBulk: 1 << 20, MaxArgs: 1 << 16, MaxFrame: 2 << 20, MaxBuffered: 8 << 20, Timeout: time.Minute}

// start serves a fresh in-memory keyspace on a loopback port.
func start(t *testing.T, mod func(*Config)) (*Server, string) {
	t.Helper()
	db, err := store.Open(store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{DB: db, Limits: testLimits, MaxClients: 100, Logf: t.Logf}
	if mod != nil {
		mod(&cfg)
	}
	s := New(cfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	t.Cleanup(func() { s.Close() })
	return s, ln.Addr().String()
}

// eventually polls cond for up to five seconds.
func eventually(cond func() bool) bool {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return false
}

// conn is a raw client: it sends bytes and reads whole replies.
type conn struct {
	t  *testing.T
	nc net.Conn
	rd *bufio.Reader
}

func dial(t *testing.T, addr string) *conn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &conn{t: t, nc: nc, rd: bufio.NewReader(nc)}
}

func (c *conn) send(s string) {
	c.t.Helper()
	if _, err := c.nc.Write([]byte(s)); err != nil {
		c.t.Fatal(err)
	}
}

// cmd encodes args as a RESP array of bulk strings.
func cmd(args ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	return b.String()
}

// reply reads one whole reply, as raw protocol text.
func (c *conn) reply() string {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	var b strings.Builder
	if err := readReply(c.rd, &b); err != nil {
		c.t.Fatalf("reading a reply: %v (so far %q)", err, b.String())
	}
	return b.String()
}

func readReply(rd *bufio.Reader, b *strings.Builder) error {
	line, err := rd.ReadString('\n')
	if err != nil {
		return err
	}
	b.WriteString(line)
	body := strings.TrimSuffix(line[1:], "\r\n")
	var n int
	switch line[0] {
	case '$', '=':
		fmt.Sscan(body, &n)
		if n < 0 {
			return nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(rd, buf); err != nil {
			return err
		}
		b.Write(buf)
	case '*', '~', '%':
		fmt.Sscan(body, &n)
		if line[0] == '%' {
			n *= 2
		}
		for range n {
			if err := readReply(rd, b); err != nil {
				return err
			}
		}
	}
	return nil
}

func (c *conn) do(args ...string) string {
	c.t.Helper()
	c.send(cmd(args...))
	return c.reply()
}

// closed reports whether the server closed the connection (after any
// replies still to read): end of file, or a reset when it closed with
// requests unread.
func (c *conn) closed() bool {
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := c.rd.ReadByte()
	return err == io.EOF || err != nil && strings.Contains(err.Error(), "connection reset")
}

func TestCommands(t *testing.T) {
	_, addr := start(t, nil)
	c := dial(t, addr)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"PING"}, "+PONG\r\n"},
		{[]string{"ping", "hi"}, "$2\r\nhi\r\n"},
		{[]string{"SET", "k", "v"}, "+OK\r\n"},
		{[]string{"GET", "k"}, "$1\r\nv\r\n"},
		{[]string{"GET", "nope"}, "$-1\r\n"},
		{[]string{"SET", "k", "w", "NX"}, "$-1\r\n"},
		{[]string{"SET", "k", "w", "XX", "GET"}, "$1\r\nv\r\n"},
		{[]string{"SET", "k", "v", "EX", "0"}, "-ERR invalid expire time in 'set' command\r\n"},
		{[]string{"SET", "k", "v", "EX", "x"}, "-ERR value is not an integer or out of range\r\n"},
		{[]string{"SET", "k", "v", "NX", "XX"}, "-ERR syntax error\r\n"},
		{[]string{"SET", "k", "v", "EX", "10", "PX", "10"}, "-ERR syntax error\r\n"},
		{[]string{"SET", "k", "v", "KEEPTTL", "EX", "10"}, "-ERR syntax error\r\n"},
		{[]string{"GET"}, "-ERR wrong number of arguments for 'get' command\r\n"},
		{[]string{"MSET", "a", "1", "b"}, "-ERR wrong number of arguments for 'mset' command\r\n"},
		{[]string{"MSET", "a", "1", "b", "2"}, "+OK\r\n"},
		{[]string{"MGET", "a", "nope", "b"}, "*3\r\n$1\r\n1\r\n$-1\r\n$1\r\n2\r\n"},
		{[]string{"INCR", "a"}, ":2\r\n"},
		{[]string{"DECRBY", "a", "5"}, ":-3\r\n"},
		{[]string{"INCR", "k"}, "-ERR value is not an integer or out of range\r\n"},
		{[]string{"DECRBY", "a", "-9223372036854775808"}, "-ERR decrement would overflow\r\n"},
		{[]string{"INCRBYFLOAT", "f", "1.5"}, "$3\r\n1.5\r\n"},
		{[]string{"APPEND", "k", "xyz"}, ":4\r\n"},
		{[]string{"STRLEN", "k"}, ":4\r\n"},
		{[]string{"GETDEL", "k"}, "$4\r\nwxyz\r\n"},
		{[]string{"EXISTS", "k", "a", "a"}, ":2\r\n"},
		{[]string{"HSET", "h", "f1", "v1", "f2", "v2"}, ":2\r\n"},
		{[]string{"HSET", "h", "f1"}, "-ERR wrong number of arguments for 'hset' command\r\n"},
		{[]string{"HGET", "h", "f2"}, "$2\r\nv2\r\n"},
		{[]string{"HMGET", "h", "f1", "zz"}, "*2\r\n$2\r\nv1\r\n$-1\r\n"},
		{[]string{"GET", "h"}, "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"},
		{[]string{"TYPE", "h"}, "+hash\r\n"},
		{[]string{"TYPE", "nope"}, "+none\r\n"},
		{[]string{"RPUSH", "l", "a", "b", "c"}, ":3\r\n"},
		{[]string{"LPOP", "l"}, "$1\r\na\r\n"},
		{[]string{"LPOP", "l", "5"}, "*2\r\n$1\r\nb\r\n$1\r\nc\r\n"},
		{[]string{"LPOP", "l"}, "$-1\r\n"},
		{[]string{"LPOP", "l", "2"}, "*-1\r\n"},
		{[]string{"LPOP", "a", "-1"}, "-ERR value is out of range, must be positive\r\n"},
		{[]string{"SADD", "s", "m"}, ":1\r\n"},
		{[]string{"SISMEMBER", "s", "m"}, ":1\r\n"},
		{[]string{"SMISMEMBER", "s", "m", "x"}, "*2\r\n:1\r\n:0\r\n"},
		{[]string{"EXPIRE", "s", "100", "NX", "XX"}, "-ERR NX and XX, GT or LT options at the same time are not compatible\r\n"},
		{[]string{"EXPIRE", "s", "100", "FOO"}, "-ERR Unsupported option FOO\r\n"},
		{[]string{"EXPIRE", "s", "100"}, ":1\r\n"},
		{[]string{"TTL", "s"}, ":100\r\n"},
		{[]string{"PERSIST", "s"}, ":1\r\n"},
		{[]string{"TTL", "s"}, ":-1\r\n"},
		{[]string{"TTL", "nope"}, ":-2\r\n"},
		{[]string{"EXPIRE", "s", "-1"}, ":1\r\n"},
		{[]string{"EXISTS", "s"}, ":0\r\n"},
		{[]string{"SCAN", "x"}, "-ERR invalid cursor\r\n"},
		{[]string{"SCAN", "0", "COUNT", "0"}, "-ERR syntax error\r\n"},
		{[]string{"SCAN", "0", "MATCH", "h*"}, "*2\r\n$1\r\n0\r\n*1\r\n$1\r\nh\r\n"},
		{[]string{"FOO", "bar", "baz"}, "-ERR unknown command 'FOO', with args beginning with: 'bar' 'baz' \r\n"},
		{[]string{"CLIENT", "NOPE"}, "-ERR unknown subcommand 'NOPE'. Try CLIENT HELP.\r\n"},
		{[]string{"CLIENT", "SETNAME", "a b"}, "-ERR Client names cannot contain spaces, newlines or special characters.\r\n"},
		{[]string{"CLIENT", "SETNAME", "me"}, "+OK\r\n"},
		{[]string{"CLIENT", "GETNAME"}, "$2\r\nme\r\n"},
		{[]string{"SELECT", "1"}, "-ERR DB index is out of range\r\n"},
		{[]string{"SELECT", "0"}, "+OK\r\n"},
		{[]string{"AUTH", "pw"}, "-ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?\r\n"},
		{[]string{"DBSIZE"}, ":4\r\n"},
		{[]string{"FLUSHDB"}, "+OK\r\n"},
		{[]string{"DBSIZE"}, ":0\r\n"},
		{[]string{"ECHO", "a\r\nb"}, "$4\r\na\r\nb\r\n"},
	}
	for _, tt := range tests {
		if got := c.do(tt.args...); got != tt.want {
			t.Errorf("%q: %q, want %q", tt.args, got, tt.want)
		}
	}
}

// TestRESP3 switches with HELLO 3: nulls, maps and sets have their own
// types; HELLO 2 switches back.
func TestRESP3(t *testing.T) {
	_, addr := start(t, nil)
	c := dial(t, addr)
	hello := c.do("HELLO", "3")
	if !strings.HasPrefix(hello, "%7\r\n") || !strings.Contains(hello, "$5\r\nproto\r\n:3\r\n") {
		t.Errorf("HELLO 3: %q", hello)
	}
	c.do("HSET", "h", "f", "v")
	c.do("SADD", "s", "m")
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"GET", "nope"}, "_\r\n"},
		{[]string{"HGETALL", "h"}, "%1\r\n$1\r\nf\r\n$1\r\nv\r\n"},
		{[]string{"SMEMBERS", "s"}, "~1\r\n$1\r\nm\r\n"},
		{[]string{"LPOP", "nope", "1"}, "_\r\n"},
		{[]string{"HGETALL", "nope"}, "%0\r\n"},
	} {
		if got := c.do(tt.args...); got != tt.want {
			t.Errorf("RESP3 %q: %q, want %q", tt.args, got, tt.want)
		}
	}
	if got := c.do("INFO", "keyspace"); !strings.HasPrefix(got, "=") || !strings.Contains(got, "txt:# Keyspace\r\ndb0:keys=2") {
		t.Errorf("RESP3 INFO: %q", got)
	}
	if got := c.do("HELLO", "4"); got != "-NOPROTO unsupported protocol version\r\n" {
		t.Errorf("HELLO 4: %q", got)
	}
	c.do("HELLO", "2")
	if got := c.do("HGETALL", "h"); got != "*2\r\n$1\r\nf\r\n$1\r\nv\r\n" {
		t.Errorf("back to RESP2: %q", got)
	}
}

func TestPipelineAndInline(t *testing.T) {
	_, addr := start(t, nil)
	c := dial(t, addr)
	var b strings.Builder
	for i := range 1000 {
		b.WriteString(cmd("INCR", "n"))
		if i%100 == 0 {
			b.WriteString("PING\r\n") // inline, amid the pipeline
		}
	}
	c.send(b.String())
	for i := range 1000 {
		if got := c.reply(); got != fmt.Sprintf(":%d\r\n", i+1) {
			t.Fatalf("reply %d: %q", i, got)
		}
		if i%100 == 0 {
			if got := c.reply(); got != "+PONG\r\n" {
				t.Fatalf("inline PING: %q", got)
			}
		}
	}
	// Many arguments are fine within the limits.
	args := []string{"SADD", "many"}
	for i := range 10000 {
		args = append(args, fmt.Sprint(i))
	}
	if got := c.do(args...); got != ":10000\r\n" {
		t.Errorf("SADD of 10000 members: %q", got)
	}
	// Inline with quotes; an empty line and *0 are skipped.
	c.send("\r\n*0\r\nSET q \"a b\"\r\n")
	if got := c.reply(); got != "+OK\r\n" {
		t.Errorf("inline SET: %q", got)
	}
	if got := c.do("GET", "q"); got != "$3\r\na b\r\n" {
		t.Errorf("inline quoted value: %q", got)
	}
	// A command split across writes, byte by byte.
	for _, ch := range []byte(cmd("SET", "split", "value")) {
		c.send(string(ch))
	}
	if got := c.reply(); got != "+OK\r\n" {
		t.Errorf("split SET: %q", got)
	}
	c.send("QUIT\r\n")
	if got := c.reply(); got != "+OK\r\n" || !c.closed() {
		t.Errorf("QUIT: %q", got)
	}
}

func TestAuth(t *testing.T) {
	_, addr := start(t, func(c *Config) { c.Password = "s3cret" })
	c := dial(t, addr)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"GET", "k"}, "-NOAUTH Authentication required.\r\n"},
		{[]string{"HELLO", "3"}, "-NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time\r\n"},
		{[]string{"AUTH", "wrong"}, "-WRONGPASS invalid username-password pair or user is disabled.\r\n"},
		{[]string{"AUTH", "other", "s3cret"}, "-WRONGPASS invalid username-password pair or user is disabled.\r\n"},
		{[]string{"AUTH", "s3cret"}, "+OK\r\n"},
		{[]string{"SET", "k", "v"}, "+OK\r\n"},
	} {
		if got := c.do(tt.args...); got != tt.want {
			t.Errorf("%q: %q, want %q", tt.args, got, tt.want)
		}
	}
	c2 := dial(t, addr)
	if got := c2.do("HELLO", "3", "AUTH", "default", "s3cret", "SETNAME", "x"); !strings.HasPrefix(got, "%7") {
		t.Errorf("HELLO AUTH: %q", got)
	}
	if got := c2.do("GET", "k"); got != "$1\r\nv\r\n" {
		t.Errorf("after HELLO AUTH: %q", got)
	}
	// Before AUTH, Redis's tight limits: at most 10 arguments, 16 KiB
	// each.
	c3 := dial(t, addr)
	c3.send(cmd("AUTH", strings.Repeat("x", 20<<10)))
	if got := c3.reply(); got != "-ERR Protocol error: invalid bulk length\r\n" || !c3.closed() {
		t.Errorf("a 20 KiB argument before AUTH: %q", got)
	}
	c4 := dial(t, addr)
	c4.send("*11\r\n")
	if got := c4.reply(); got != "-ERR Protocol error: invalid multibulk length\r\n" || !c4.closed() {
		t.Errorf("11 arguments before AUTH: %q", got)
	}
}

// TestHostileFrames sends malformed requests: each gets Redis's protocol
// error and its connection is closed, after the replies to the commands
// before it; the server keeps serving others.
func TestHostileFrames(t *testing.T) {
	s, addr := start(t, nil)
	for _, tt := range []struct{ name, req, want string }{
		{"huge bulk length", "*1\r\n$2147483648\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
		{"negative bulk length", "*1\r\n$-2\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
		{"huge count", "*2147483648\r\n", "-ERR Protocol error: invalid multibulk length\r\n"},
		{"bad count", "*x\r\n", "-ERR Protocol error: invalid multibulk length\r\n"},
		{"nested array", "*1\r\n*1\r\n$4\r\nPING\r\n", "-ERR Protocol error: expected '$', got '*'\r\n"},
		{"bare LF", "*1\r\n$4\nPING\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
		{"bulk without CRLF", "*1\r\n$4\r\nPINGxx", "-ERR Protocol error: invalid bulk length\r\n"},
		{"frame beyond its share", cmd("SET", "k", strings.Repeat("v", 1<<20), "x", strings.Repeat("v", 1<<20)), "-ERR Protocol error: query buffer limit reached\r\n"},
		{"many arguments", "*60000\r\n", "-ERR Protocol error: query buffer limit reached\r\n"},
		{"inline too long", strings.Repeat("a", 70<<10), "-ERR Protocol error: too big inline request\r\n"},
		{"count line too long", "*" + strings.Repeat("1", 70<<10), "-ERR Protocol error: too big mbulk count string\r\n"},
		{"unbalanced quotes", "SET \"a b\r\n", "-ERR Protocol error: unbalanced quotes in request\r\n"},
	} {
		c := dial(t, addr)
		c.send(cmd("PING") + tt.req)
		if got := c.reply(); got != "+PONG\r\n" {
			t.Errorf("%s: the command before: %q", tt.name, got)
		}
		if got := c.reply(); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
		if !c.closed() {
			t.Errorf("%s: the connection stayed open", tt.name)
		}
	}
	if got := dial(t, addr).do("PING"); got != "+PONG\r\n" {
		t.Errorf("after the hostile frames: %q", got)
	}
	if !eventually(func() bool { return s.pool.Load() == 0 }) {
		t.Errorf("%d request-buffer bytes still charged after the clients left", s.pool.Load())
	}
}

// TestBufferPool holds big partial frames open on many connections: once
// their buffers reach the shared bound, further ones are refused, and
// the server still answers.
func TestBufferPool(t *testing.T) {
	s, addr := start(t, nil)
	var refused int
	var conns []*conn
	for range 12 {
		c := dial(t, addr)
		// Declare a 1 MiB value and send most of it.
		c.send("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1048576\r\n" + strings.Repeat("v", 1000<<10))
		conns = append(conns, c)
	}
	for _, c := range conns {
		c.nc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		line, err := c.rd.ReadString('\n')
		if err == nil && line == "-ERR Protocol error: query buffer limit reached\r\n" {
			refused++
		}
	}
	if refused == 0 {
		t.Error("no connection refused past the pool's bound")
	}
	if n := s.pool.Load(); n > testLimits.MaxBuffered {
		t.Errorf("pool at %d, above its bound %d", n, testLimits.MaxBuffered)
	}
	if got := dial(t, addr).do("PING"); got != "+PONG\r\n" {
		t.Errorf("PING while the pool is full: %q", got)
	}
	// Those that fit can still finish their frames.
	for _, c := range conns {
		c.nc.Write([]byte(strings.Repeat("v", 24<<10) + "\r\n"))
	}
}

func TestQueryTimeout(t *testing.T) {
	_, addr := start(t, func(c *Config) { c.Limits.Timeout = 300 * time.Millisecond })
	slow := dial(t, addr)
	slow.send("*2\r\n$4\r\nECHO\r\n$10\r\nabc") // and no more
	idle := dial(t, addr)
	idle.do("PING")
	start := time.Now()
	if !slow.closed() {
		t.Fatal("a frame begun and not finished was not timed out")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("timed out after %v", d)
	}
	// An idle connection (no partial frame) has no timeout.
	time.Sleep(400 * time.Millisecond)
	if got := idle.do("PING"); got != "+PONG\r\n" {
		t.Errorf("the idle connection: %q", got)
	}
}

func TestMaxClients(t *testing.T) {
	_, addr := start(t, func(c *Config) { c.MaxClients = 3 })
	var cs []*conn
	for range 3 {
		c := dial(t, addr)
		c.do("PING")
		cs = append(cs, c)
	}
	extra := dial(t, addr)
	extra.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, _ := extra.rd.ReadString('\n')
	if line != "-ERR max number of clients reached\r\n" {
		t.Errorf("the fourth client: %q", line)
	}
	cs[0].nc.Close()
	if !eventually(func() bool {
		c := dial(t, addr)
		c.send(cmd("PING"))
		line, _ := c.rd.ReadString('\n')
		return line == "+PONG\r\n"
	}) {
		t.Error("no room after one client left")
	}
}

// TestConcurrentClients runs many clients' pipelines at once: each sees
// its own replies in order, and the counters add up.
func TestConcurrentClients(t *testing.T) {
	_, addr := start(t, nil)
	var wg sync.WaitGroup
	for g := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := dial(t, addr)
			var b bytes.Buffer
			for i := range 200 {
				b.WriteString(cmd("SET", fmt.Sprintf("c%d", g), fmt.Sprint(i)))
				b.WriteString(cmd("GET", fmt.Sprintf("c%d", g)))
				b.WriteString(cmd("INCR", "shared"))
			}
			c.send(b.String())
			for i := range 200 {
				if got := c.reply(); got != "+OK\r\n" {
					t.Errorf("SET: %q", got)
					return
				}
				want := fmt.Sprint(i)
				if got := c.reply(); got != fmt.Sprintf("$%d\r\n%s\r\n", len(want), want) {
					t.Errorf("client %d GET %d: %q", g, i, got)
					return
				}
				c.reply()
			}
		}()
	}
	wg.Wait()
	if got := dial(t, addr).do("GET", "shared"); got != "$4\r\n4000\r\n" {
		t.Errorf("shared counter: %q", got)
	}
}

// TestOOM fills a small memory bound: writes that add data get Redis's
// OOM error, reads and deletes go on.
func TestOOM(t *testing.T) {
	_, addr := start(t, func(c *Config) {
		db, _ := store.Open(store.Options{MaxMemory: 200 << 10})
		c.DB = db
	})
	c := dial(t, addr)
	val := strings.Repeat("x", 10<<10)
	var last string
	n := 0
	for ; n < 100; n++ {
		if last = c.do("SET", fmt.Sprint("k", n), val); last != "+OK\r\n" {
			break
		}
	}
	if last != "-OOM command not allowed when used memory > 'maxmemory'.\r\n" || n < 15 || n > 21 {
		t.Fatalf("after %d values: %q", n, last)
	}
	if got := c.do("GET", "k1"); got != "$10240\r\n"+val+"\r\n" {
		t.Errorf("GET under OOM: %.40q", got)
	}
	if got := c.do("DEL", "k1", "k2"); got != ":2\r\n" {
		t.Errorf("DEL under OOM: %q", got)
	}
	if got := c.do("SET", "again", "v"); got != "+OK\r\n" {
		t.Errorf("SET after freeing: %q", got)
	}
}
