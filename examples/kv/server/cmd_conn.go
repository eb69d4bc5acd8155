package server

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"atoll.dev/atoll/examples/kv/store"
)

// Version is the Redis version the server answers as (HELLO, INFO): the
// one whose commands and replies it follows.
const Version = "7.0.0"

func init() {
	const (
		na = flagNoAuth
		ro = flagReadOnly
	)
	register([]command{
		{"ping", -1, 0, [3]int{}, cmdPing},
		{"echo", 2, 0, [3]int{}, func(x *ctx) { x.r.bulk(x.args[1]) }},
		{"hello", -1, na, [3]int{}, cmdHello},
		{"auth", -2, na, [3]int{}, cmdAuth},
		{"quit", -1, na, [3]int{}, func(x *ctx) { x.r.ok(); x.c.quit = true }},
		{"select", 2, 0, [3]int{}, cmdSelect},
		{"client", -2, 0, [3]int{}, cmdClient},
		{"info", -1, ro, [3]int{}, cmdInfo},
		{"config", -2, 0, [3]int{}, cmdConfig},
		{"command", -1, 0, [3]int{}, cmdCommand},
		{"time", 1, 0, [3]int{}, cmdTime},
	})
}

func cmdPing(x *ctx) {
	switch len(x.args) {
	case 1:
		x.r.simple("PONG")
	case 2:
		x.r.bulk(x.args[1])
	default:
		x.wrongArgs("ping")
	}
}

func cmdHello(x *ctx) {
	proto := 0
	if len(x.args) >= 2 {
		v, ok := store.ParseInt(x.args[1])
		if !ok {
			x.r.err("ERR Protocol version is not an integer or out of range")
			return
		}
		if v < 2 || v > 3 {
			x.r.err("NOPROTO unsupported protocol version")
			return
		}
		proto = int(v)
	}
	var user, pass, name []byte
	for i := 2; i < len(x.args); i++ {
		left := len(x.args) - 1 - i
		switch {
		case x.is(i, "auth") && left >= 2:
			user, pass = x.args[i+1], x.args[i+2]
			i += 2
		case x.is(i, "setname") && left >= 1:
			name = x.args[i+1]
			if !validName(name) {
				x.r.err(errClientName)
				return
			}
			i++
		default:
			x.r.err("ERR Syntax error in HELLO option '" + clip(x.args[i]) + "'")
			return
		}
	}
	if user != nil {
		if !x.s.checkPassword(user, pass) {
			x.r.err(errWrongPass)
			return
		}
		x.c.strict.Store(false)
	}
	if x.c.strict.Load() {
		x.r.err("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time")
		return
	}
	if name != nil {
		x.c.name = string(name)
	}
	if proto != 0 {
		x.r.resp3 = proto == 3
	}
	x.r.mapLen(7)
	x.r.bulkString("server")
	x.r.bulkString("atoll-kv")
	x.r.bulkString("version")
	x.r.bulkString(Version)
	x.r.bulkString("proto")
	if x.r.resp3 {
		x.r.int(3)
	} else {
		x.r.int(2)
	}
	x.r.bulkString("id")
	x.r.int(x.c.id)
	x.r.bulkString("mode")
	x.r.bulkString("standalone")
	x.r.bulkString("role")
	x.r.bulkString("master")
	x.r.bulkString("modules")
	x.r.array(0)
}

const errWrongPass = "WRONGPASS invalid username-password pair or user is disabled."

func cmdAuth(x *ctx) {
	var user, pass []byte
	switch len(x.args) {
	case 2:
		if x.s.cfg.Password == "" {
			x.r.err("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?")
			return
		}
		user, pass = []byte("default"), x.args[1]
	case 3:
		user, pass = x.args[1], x.args[2]
	default:
		x.r.err(errSyntax)
		return
	}
	if !x.s.checkPassword(user, pass) {
		x.r.err(errWrongPass)
		return
	}
	x.c.strict.Store(false)
	x.r.ok()
}

func cmdSelect(x *ctx) {
	n, ok := x.int(1)
	if !ok {
		return
	}
	if n != 0 {
		x.r.err("ERR DB index is out of range")
		return
	}
	x.r.ok()
}

const errClientName = "ERR Client names cannot contain spaces, newlines or special characters."

// validName reports a client name Redis accepts: printable ASCII with no
// space.
func validName(b []byte) bool {
	for _, c := range b {
		if c < '!' || c > '~' {
			return false
		}
	}
	return true
}

// subcommand checks the arity of a subcommand, named as Redis names it in
// errors ("client|setname").
func (x *ctx) subcommand(name string, arity int) bool {
	if arity > 0 && len(x.args) != arity || arity < 0 && len(x.args) < -arity {
		x.wrongArgs(name)
		return false
	}
	return true
}

func (x *ctx) unknownSubcommand() {
	x.r.err("ERR unknown subcommand '" + clip(x.args[1]) + "'. Try " + strings.ToUpper(string(x.args[0])) + " HELP.")
}

func cmdClient(x *ctx) {
	c := x.c
	switch {
	case x.is(1, "setname"):
		if !x.subcommand("client|setname", 3) {
			return
		}
		if !validName(x.args[2]) {
			x.r.err(errClientName)
			return
		}
		c.name = string(x.args[2])
		x.r.ok()
	case x.is(1, "getname"):
		if !x.subcommand("client|getname", 2) {
			return
		}
		if c.name == "" {
			x.r.null()
		} else {
			x.r.bulkString(c.name)
		}
	case x.is(1, "id"):
		if x.subcommand("client|id", 2) {
			x.r.int(c.id)
		}
	case x.is(1, "setinfo"):
		if !x.subcommand("client|setinfo", 4) {
			return
		}
		switch {
		case x.is(2, "lib-name"), x.is(2, "lib-ver"):
			if !validName(x.args[3]) {
				x.r.err("ERR " + strings.ToUpper(string(x.args[2])) + " cannot contain spaces, newlines or special characters.")
				return
			}
			if c.lib != "" {
				c.lib += " "
			}
			c.lib += string(x.args[3])
			x.r.ok()
		default:
			x.r.err("ERR Unrecognized option '" + clip(x.args[2]) + "'")
		}
	case x.is(1, "info"):
		if x.subcommand("client|info", 2) {
			x.r.verbatim(x.s.clientLine(c) + "\n")
		}
	case x.is(1, "list"):
		x.s.mu.Lock()
		cs := make([]*client, 0, len(x.s.conns))
		for o := range x.s.conns {
			cs = append(cs, o)
		}
		x.s.mu.Unlock()
		sort.Slice(cs, func(i, j int) bool { return cs[i].id < cs[j].id })
		var b strings.Builder
		for _, o := range cs {
			b.WriteString(x.s.clientLine(o))
			b.WriteByte('\n')
		}
		x.r.verbatim(b.String())
	default:
		x.unknownSubcommand()
	}
}

// clientLine describes a client as CLIENT LIST does, in part.
func (s *Server) clientLine(c *client) string {
	resp := 2
	if c.out.resp3 {
		resp = 3
	}
	return fmt.Sprintf("id=%d addr=%s laddr=%s name=%s age=%d db=0 resp=%d lib=%s",
		c.id, c.nc.RemoteAddr(), c.nc.LocalAddr(), c.name, int(time.Since(c.since).Seconds()), resp, c.lib)
}

func cmdTime(x *ctx) {
	now := time.Now()
	x.r.array(2)
	x.r.bulkString(strconv.FormatInt(now.Unix(), 10))
	x.r.bulkString(strconv.FormatInt(int64(now.Nanosecond()/1000), 10))
}

// configs are the parameters CONFIG GET answers, as redis.conf names them.
func (s *Server) configs(st store.Stats) map[string]string {
	aof := "no"
	if st.Persistent {
		aof = "yes"
	}
	return map[string]string{
		"appendonly":         aof,
		"appendfsync":        st.Mode.String(),
		"save":               "",
		"databases":          "1",
		"maxmemory":          strconv.FormatInt(st.MaxMem, 10),
		"maxmemory-policy":   "noeviction",
		"maxclients":         strconv.Itoa(s.cfg.MaxClients),
		"proto-max-bulk-len": strconv.FormatInt(s.cfg.Limits.MaxBulk, 10),
		"timeout":            "0",
	}
}

func cmdConfig(x *ctx) {
	switch {
	case x.is(1, "get"):
		if !x.subcommand("config|get", -3) {
			return
		}
		cfg := x.s.configs(x.tx.Stats())
		names := make([]string, 0, len(cfg))
		for _, pat := range x.args[2:] {
			for name := range cfg {
				if store.Match([]byte(strings.ToLower(string(pat))), []byte(name)) && !contains(names, name) {
					names = append(names, name)
				}
			}
		}
		sort.Strings(names)
		x.r.mapLen(len(names))
		for _, n := range names {
			x.r.bulkString(n)
			x.r.bulkString(cfg[n])
		}
	case x.is(1, "set"):
		x.r.err("ERR CONFIG SET is not supported: configure the server with its environment (APPENDFSYNC, REQUIREPASS, MAXMEMORY, MAXCLIENTS)")
	case x.is(1, "resetstat"):
		x.s.commands.Store(0)
		x.s.connections.Store(0)
		x.s.rejected.Store(0)
		x.r.ok()
	default:
		x.unknownSubcommand()
	}
}

func contains(list []string, s string) bool {
	for _, l := range list {
		if l == s {
			return true
		}
	}
	return false
}

func cmdCommand(x *ctx) {
	if len(x.args) == 1 {
		names := make([]string, 0, len(commands))
		for n := range commands {
			names = append(names, n)
		}
		sort.Strings(names)
		x.r.array(len(names))
		for _, n := range names {
			commandInfo(x.r, commands[n])
		}
		return
	}
	switch {
	case x.is(1, "count"):
		x.r.int(int64(len(commands)))
	case x.is(1, "info"):
		x.r.array(len(x.args) - 2)
		for _, n := range x.args[2:] {
			if c := lookup(n); c != nil {
				commandInfo(x.r, c)
			} else {
				x.r.nullArray()
			}
		}
	case x.is(1, "docs"):
		// No documentation to give: redis-cli then shows no hints.
		x.r.mapLen(0)
	default:
		x.unknownSubcommand()
	}
}

// commandInfo is one command's entry in COMMAND's reply, in Redis 7's
// ten-field layout.
func commandInfo(r *reply, c *command) {
	r.array(10)
	r.bulkString(c.name)
	r.int(int64(c.arity))
	var flags []string
	if c.flags&flagWrite != 0 {
		flags = append(flags, "write")
	}
	if c.flags&flagReadOnly != 0 {
		flags = append(flags, "readonly")
	}
	if c.flags&flagDenyOOM != 0 {
		flags = append(flags, "denyoom")
	}
	if c.flags&flagNoAuth != 0 {
		flags = append(flags, "no_auth")
	}
	r.setLen(len(flags))
	for _, f := range flags {
		r.simple(f)
	}
	r.int(int64(c.keys[0]))
	r.int(int64(c.keys[1]))
	r.int(int64(c.keys[2]))
	for range 4 { // ACL categories, tips, key specifications, subcommands
		r.array(0)
	}
}

// infoSections are INFO's sections, in order.
var infoSections = []string{"server", "clients", "memory", "persistence", "stats", "keyspace"}

func cmdInfo(x *ctx) {
	want := map[string]bool{}
	for _, a := range x.args[1:] {
		s := strings.ToLower(string(a))
		switch s {
		case "default", "all", "everything":
			for _, n := range infoSections {
				want[n] = true
			}
		default:
			want[s] = true
		}
	}
	if len(x.args) == 1 {
		for _, n := range infoSections {
			want[n] = true
		}
	}
	x.r.verbatim(x.s.info(x.tx.Stats(), want))
}

// info is INFO's text for the sections in want.
func (s *Server) info(st store.Stats, want map[string]bool) string {
	var b strings.Builder
	section := func(name string, lines ...string) {
		if !want[name] {
			return
		}
		if b.Len() > 0 {
			b.WriteString("\r\n")
		}
		b.WriteString("# " + strings.ToUpper(name[:1]) + name[1:] + "\r\n")
		for _, l := range lines {
			b.WriteString(l + "\r\n")
		}
	}
	host, _ := os.Hostname()
	section("server",
		"redis_version:"+Version,
		"redis_mode:standalone",
		"kv_server:atoll-kv",
		"os:"+runtime.GOOS+" "+runtime.GOARCH+" ("+runtime.Version()+")",
		"arch_bits:64",
		"process_id:"+strconv.Itoa(os.Getpid()),
		"host:"+host,
		"uptime_in_seconds:"+strconv.Itoa(int(time.Since(s.start).Seconds())),
	)
	section("clients",
		"connected_clients:"+strconv.FormatInt(s.clients.Load(), 10),
		"maxclients:"+strconv.Itoa(s.cfg.MaxClients),
		"query_buffers_bytes:"+strconv.FormatInt(s.pool.Load(), 10),
	)
	var ms runtime.MemStats
	if want["memory"] {
		runtime.ReadMemStats(&ms)
	}
	section("memory",
		"used_memory:"+strconv.FormatInt(st.Used, 10),
		"used_memory_human:"+human(st.Used),
		"maxmemory:"+strconv.FormatInt(st.MaxMem, 10),
		"maxmemory_human:"+human(st.MaxMem),
		"maxmemory_policy:noeviction",
		"go_heap_alloc:"+strconv.FormatUint(ms.HeapAlloc, 10),
		"go_sys:"+strconv.FormatUint(ms.Sys, 10),
	)
	failed := "0"
	if st.Failed != nil {
		failed = "1"
	}
	storage := "memory (nothing is kept across restarts)"
	aof := "0"
	if st.Persistent {
		storage = "pebble"
		aof = "1"
	}
	diskLow := "0"
	if st.DiskLow {
		diskLow = "1"
	}
	section("persistence",
		"loading:0",
		"aof_enabled:"+aof,
		"appendfsync:"+st.Mode.String(),
		"kv_storage:"+storage,
		"kv_storage_failed:"+failed,
		"kv_disk_free:"+strconv.FormatInt(st.DiskFree, 10),
		"kv_disk_low:"+diskLow,
	)
	section("stats",
		"total_connections_received:"+strconv.FormatInt(s.connections.Load(), 10),
		"total_commands_processed:"+strconv.FormatInt(s.commands.Load(), 10),
		"rejected_connections:"+strconv.FormatInt(s.rejected.Load(), 10),
		"expired_keys:"+strconv.FormatInt(st.Expired, 10),
	)
	var ks []string
	if st.Keys > 0 {
		ks = append(ks, fmt.Sprintf("db0:keys=%d,expires=%d,avg_ttl=0", st.Keys, st.Volatile))
	}
	section("keyspace", ks...)
	return b.String()
}

// human prints a byte count as Redis's *_human fields do.
func human(n int64) string {
	switch {
	case n >= 1<<30:
		return strconv.FormatFloat(float64(n)/(1<<30), 'f', 2, 64) + "G"
	case n >= 1<<20:
		return strconv.FormatFloat(float64(n)/(1<<20), 'f', 2, 64) + "M"
	case n >= 1<<10:
		return strconv.FormatFloat(float64(n)/(1<<10), 'f', 2, 64) + "K"
	}
	return strconv.FormatInt(n, 10) + "B"
}
