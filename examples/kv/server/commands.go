package server

import (
	"strconv"
	"strings"

	"atoll.dev/atoll/examples/kv/store"
)

// A command is one of the commands the server knows.
type command struct {
	name  string
	arity int // Redis's: the argument count with the name, or -minimum
	flags int
	keys  [3]int // first key, last key (-1: the last argument), step; zero for none
	run   func(x *ctx)
}

// Command flags.
const (
	flagWrite   = 1 << iota // changes data: refused once the journal failed
	flagDenyOOM             // may add data: refused over the memory bound or the disk reserve
	flagNoAuth              // allowed before AUTH
	flagReadOnly
)

// ctx is one command's execution.
type ctx struct {
	s    *Server
	c    *client
	tx   *store.Tx
	args [][]byte
	r    *reply
}

// commands is the command table, by lower-case name; init fills it, as
// the commands refer to the table themselves (COMMAND).
var commands = map[string]*command{}

func register(list []command) {
	for i := range list {
		commands[list[i].name] = &list[i]
	}
}

// lookup finds the command args[0] names, in any case, without
// allocating for names of up to 32 bytes.
func lookup(name []byte) *command {
	var buf [32]byte
	if len(name) > len(buf) {
		return commands[strings.ToLower(string(name))]
	}
	for i, ch := range name {
		if 'A' <= ch && ch <= 'Z' {
			ch += 'a' - 'A'
		}
		buf[i] = ch
	}
	return commands[string(buf[:len(name)])]
}

// exec runs one command, appending its reply.
func (s *Server) exec(c *client, tx *store.Tx, args [][]byte) {
	r := &c.out
	cmd := lookup(args[0])
	if cmd == nil {
		var b strings.Builder
		for _, a := range args[1:] {
			if b.Len() >= 128 {
				break
			}
			b.WriteString("'")
			b.Write(a[:min(len(a), 128-b.Len())])
			b.WriteString("' ")
		}
		r.err("ERR unknown command '" + clip(args[0]) + "', with args beginning with: " + b.String())
		return
	}
	if c.strict.Load() && cmd.flags&flagNoAuth == 0 {
		r.err("NOAUTH Authentication required.")
		return
	}
	if cmd.arity > 0 && len(args) != cmd.arity || cmd.arity < 0 && len(args) < -cmd.arity {
		r.err("ERR wrong number of arguments for '" + cmd.name + "' command")
		return
	}
	if cmd.flags&flagDenyOOM != 0 {
		if err := tx.Writable(); err != nil {
			r.err(err.Error())
			return
		}
	} else if cmd.flags&flagWrite != 0 {
		if err := tx.Failed(); err != nil {
			r.err(err.Error())
			return
		}
	}
	cmd.run(&ctx{s: s, c: c, tx: tx, args: args, r: r})
}

// clip is an argument as error messages quote it: 128 bytes at most.
func clip(b []byte) string { return string(b[:min(len(b), 128)]) }

// Replies shared by many commands.
const (
	errSyntax   = "ERR syntax error"
	errNotInt   = "ERR value is not an integer or out of range"
	errPositive = "ERR value is out of range, must be positive"
	errCursor   = "ERR invalid cursor"
)

// fail replies with err, which the store's errors spell as Redis does.
func (x *ctx) fail(err error) { x.r.err(err.Error()) }

// wrongArgs is the arity error of a command whose arguments must pair up.
func (x *ctx) wrongArgs(name string) {
	x.r.err("ERR wrong number of arguments for '" + name + "' command")
}

// int parses argument i as a 64-bit integer, replying with the error when
// it is not one.
func (x *ctx) int(i int) (int64, bool) {
	n, ok := store.ParseInt(x.args[i])
	if !ok {
		x.r.err(errNotInt)
	}
	return n, ok
}

// is reports whether argument i is word, in any case.
func (x *ctx) is(i int, word string) bool { return strings.EqualFold(string(x.args[i]), word) }

// scanArgs are the options SCAN, HSCAN and SSCAN share.
type scanArgs struct {
	cursor   uint64
	count    int
	pattern  []byte
	kind     store.Kind
	anyKind  bool
	noValues bool
}

// parseScan reads a cursor at argument i and the options after it; typ
// allows TYPE (SCAN), noValues NOVALUES (HSCAN).
func (x *ctx) parseScan(i int, typ, noValues bool) (scanArgs, bool) {
	a := scanArgs{count: 10, anyKind: true}
	var err error
	if a.cursor, err = strconv.ParseUint(string(x.args[i]), 10, 64); err != nil {
		x.r.err(errCursor)
		return a, false
	}
	for i++; i < len(x.args); i++ {
		more := i+1 < len(x.args)
		switch {
		case x.is(i, "count") && more:
			n, ok := x.int(i + 1)
			if !ok {
				return a, false
			}
			if n < 1 {
				x.r.err(errSyntax)
				return a, false
			}
			a.count = int(min(n, 1<<20))
			i++
		case x.is(i, "match") && more:
			a.pattern = x.args[i+1]
			if len(a.pattern) == 1 && a.pattern[0] == '*' {
				a.pattern = nil
			}
			i++
		case typ && x.is(i, "type") && more:
			a.kind, _ = store.KindNamed(strings.ToLower(string(x.args[i+1])))
			a.anyKind = false
			i++
		case noValues && x.is(i, "novalues"):
			a.noValues = true
		default:
			x.r.err(errSyntax)
			return a, false
		}
	}
	return a, true
}

// scanReply is a SCAN-family reply: the next cursor and the items.
func (x *ctx) scanReply(next uint64, items [][]byte) {
	x.r.array(2)
	x.r.bulkString(strconv.FormatUint(next, 10))
	x.r.bulks(items)
}
