// Package server is the key-value appliance's front: it speaks RESP2 and
// RESP3 to clients, over any net.Listener, and runs their commands on a
// store.DB.
//
// Each client's pipeline runs as one store transaction, in pieces of at
// most 64 KiB of replies: the commands of a piece reach the journal as
// one batch, and its replies leave only once the store says they are
// durable (store.Tx.End), so a reply is an acknowledgement. Requests are
// framed by this package, under Limits, and parsed by redcon; replies
// are written with redcon's encoders and this package's RESP3 types.
package server

import (
	"crypto/subtle"
	"errors"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"atoll.dev/atoll/examples/kv/store"
)

// Config is a server's configuration.
type Config struct {
	// DB is the keyspace the commands run on.
	DB *store.DB
	// Password, when set, must be given with AUTH or HELLO before any
	// other command (the default user's, as Redis's requirepass).
	Password string
	// Limits bound what requests may cost.
	Limits Limits
	// MaxClients is the most connections served at once; beyond it a
	// client is told so and disconnected.
	MaxClients int
	// Logf logs connections refused and failures.
	Logf func(format string, args ...any)
}

// Server serves RESP clients.
type Server struct {
	cfg     Config
	start   time.Time
	pool    atomic.Int64 // request buffer bytes beyond the clients' first 16 KiB
	nextID  atomic.Int64
	clients atomic.Int64

	// Counters INFO reports.
	connections atomic.Int64
	rejected    atomic.Int64
	commands    atomic.Int64

	mu    sync.Mutex
	conns map[*client]struct{}
	ln    net.Listener
}

// New returns a server for cfg.
func New(cfg Config) *Server {
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	return &Server{cfg: cfg, start: time.Now(), conns: make(map[*client]struct{})}
}

// Serve accepts connections on ln and serves each until it ends; it
// returns when ln is closed (nil after Close).
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	s.ln = ln
	s.mu.Unlock()
	backoff := 5 * time.Millisecond
	for {
		nc, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Out of descriptors or memory, for instance: wait and go
			// on rather than spin or stop serving.
			s.cfg.Logf("kv: accept: %v", err)
			time.Sleep(backoff)
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		s.connections.Add(1)
		if s.clients.Add(1) > int64(s.cfg.MaxClients) {
			s.clients.Add(-1)
			s.rejected.Add(1)
			nc.SetWriteDeadline(time.Now().Add(time.Second))
			nc.Write([]byte("-ERR max number of clients reached\r\n"))
			nc.Close()
			continue
		}
		go s.serveConn(nc)
	}
}

// Close stops accepting and closes every connection.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var err error
	if s.ln != nil {
		err = s.ln.Close()
	}
	for c := range s.conns {
		c.nc.Close()
	}
	return err
}

// client is one connection's state.
type client struct {
	id     int64
	nc     net.Conn
	fr     *framer
	out    reply
	strict atomic.Bool // not authenticated (with a password set)
	name   string
	lib    string // CLIENT SETINFO lib-name and lib-ver
	quit   bool
	since  time.Time
}

// replyChunk is the reply bytes after which a pipeline's piece ends: its
// changes are committed and its replies sent before the next runs.
const replyChunk = 64 << 10

func (s *Server) serveConn(nc net.Conn) {
	c := &client{id: s.nextID.Add(1), nc: nc, since: time.Now()}
	c.strict.Store(s.cfg.Password != "")
	c.fr = newFramer(nc, &s.cfg.Limits, &c.strict, &s.pool)
	s.mu.Lock()
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	defer func() {
		nc.Close()
		c.fr.release()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		s.clients.Add(-1)
	}()
	for !c.quit {
		cmds, err := c.fr.next()
		if err != nil {
			// A protocol error is answered; the end of the connection,
			// a reset or a timeout needs no word, as in Redis's log.
			var perr protocolError
			if errors.As(err, &perr) {
				c.out.err("ERR " + perr.Error())
				nc.Write(c.out.b)
			}
			return
		}
		if err := s.run(c, cmds); err != nil {
			return
		}
		// Let the other clients' pipelines run before reading this
		// one's next: by then it has usually arrived, and the read does
		// not come back empty first — in a unikernel on the host
		// backend that empty read is a VM exit (a sixth of them, under
		// redis-benchmark).
		runtime.Gosched()
	}
}

// run executes a pipeline, a piece at a time, and sends the replies.
func (s *Server) run(c *client, cmds [][][]byte) error {
	for len(cmds) > 0 && !c.quit {
		tx := s.cfg.DB.Begin()
		mark := len(c.out.b)
		n := 0
		for n < len(cmds) && len(c.out.b) < replyChunk && !c.quit {
			s.exec(c, tx, cmds[n])
			n++
		}
		if err := tx.End(); err != nil {
			// Not durable: no reply of the piece may say it worked.
			c.out.b = c.out.b[:mark]
			for range n {
				c.out.err(err.Error())
			}
		}
		s.commands.Add(int64(n))
		cmds = cmds[n:]
		_, err := c.nc.Write(c.out.b)
		c.out.b = c.out.b[:0]
		if cap(c.out.b) > 4*replyChunk {
			c.out.b = nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// checkPassword reports whether user and pass are the default user's
// credentials.
func (s *Server) checkPassword(user, pass []byte) bool {
	if string(user) != "default" {
		return false
	}
	if s.cfg.Password == "" {
		return true
	}
	return subtle.ConstantTimeCompare(pass, []byte(s.cfg.Password)) == 1
}
