package hostile

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// Probe is a well-formed query and the answer it must get.
type Probe struct {
	Name  string // the name asked about
	Type  uint16 // the type asked for
	Rcode int    // the response code wanted: dns.RcodeSuccess, dns.RcodeNameError, …
	// Answer is the answer section wanted, in any order, as zone-file
	// lines ("h001.example. 3600 IN A 192.0.2.1"); TTLs are not compared.
	Answer []string
}

// Config says where Run sends what.
type Config struct {
	Addr    string // the server, host:port, over UDP and TCP
	Seed    uint64 // the Generator's seed
	Packets int    // how many hostile packets to send
	Zone    string // the zone the packets' queries ask under (default: Probe.Name)
	Probe   Probe  // the query that must be answered before, during and after

	TCPConns int           // connections carrying TCP packets at once (default 4)
	HalfOpen int           // connections held on a partial length prefix throughout (default 8)
	Timeout  time.Duration // how long one probe attempt waits (default 2 s)
	Attempts int           // attempts a probe gets before it fails (default 3)
	Every    time.Duration // pause between probes during the stream (default 20 ms)
	// PaceEvery is how many hostile datagrams are sent before a
	// well-formed query on the same socket, whose answer (or Timeout) the
	// next datagram waits for: so that they reach the server rather than
	// overflow its socket's buffer (default 16).
	PaceEvery int
}

// Result counts what Run did and saw.
type Result struct {
	Sent       map[string]int // hostile packets sent, by kind
	UDPReplies int            // datagrams the server sent back to hostile ones
	TCPReplies int            // messages the server sent back on hostile connections
	Unpackable int            // of those replies, how many miekg/dns could not unpack
	Probes     int            // probes answered correctly, before, during and after
	Retries    int            // probe attempts not answered in time before a later one was
	Redials    int            // hostile connections redialed after the server closed one
	PaceLost   int            // pacing queries not answered in time
	// HalfOpenClosed is how many of the connections held on a partial
	// length prefix the server had closed by the end.
	HalfOpenClosed int
}

// String summarizes the result in one line.
func (r Result) String() string {
	n := 0
	for _, c := range r.Sent {
		n += c
	}
	return fmt.Sprintf("%d hostile packets (%d kinds); replies: %d UDP, %d TCP, %d not unpackable; %d probes answered, %d retries; %d pacing queries lost; %d redials; %d half-open connections closed by the server",
		n, len(r.Sent), r.UDPReplies, r.TCPReplies, r.Unpackable, r.Probes, r.Retries, r.PaceLost, r.Redials, r.HalfOpenClosed)
}

// Run checks that the server at cfg.Addr answers cfg.Probe, over UDP and
// TCP, then sends it cfg.Packets hostile packets from a Generator seeded
// with cfg.Seed — datagrams from one socket and messages over
// cfg.TCPConns connections at once, while cfg.HalfOpen more connections
// sit on a partial length prefix — and probes it all the while, over UDP
// and TCP in turn; and probes both once more at the end, with the
// half-open connections still open. It returns an error, naming the last
// packets sent, if a probe is not answered correctly in cfg.Attempts
// attempts of cfg.Timeout each, or if ctx ends first.
func Run(ctx context.Context, cfg Config) (Result, error) {
	res := Result{Sent: map[string]int{}}
	if cfg.TCPConns <= 0 {
		cfg.TCPConns = 4
	}
	if cfg.HalfOpen < 0 {
		cfg.HalfOpen = 0
	} else if cfg.HalfOpen == 0 {
		cfg.HalfOpen = 8
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Second
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = 3
	}
	if cfg.Every <= 0 {
		cfg.Every = 20 * time.Millisecond
	}
	if cfg.PaceEvery <= 0 {
		cfg.PaceEvery = 16
	}
	if cfg.Zone == "" {
		cfg.Zone = cfg.Probe.Name
	}
	want, err := parseAnswer(cfg.Probe.Answer)
	if err != nil {
		return res, err
	}
	r := &runner{cfg: cfg, want: want, res: &res}

	for _, network := range []string{"udp", "tcp"} {
		if err := r.probe(ctx, network); err != nil {
			return res, fmt.Errorf("before the stream: %w", err)
		}
	}

	var halfOpen []net.Conn
	defer func() {
		for _, c := range halfOpen {
			c.Close()
		}
	}()
	// The half-open connections' queries come from a generator of their
	// own, so the stream depends on the seed alone.
	hg := NewGenerator(^cfg.Seed, cfg.Zone)
	for i := range cfg.HalfOpen {
		c, err := net.DialTimeout("tcp", cfg.Addr, cfg.Timeout)
		if err != nil {
			return res, fmt.Errorf("half-open connection %d: %w", i, err)
		}
		halfOpen = append(halfOpen, c)
		partial := []byte{0} // half a length prefix
		if i%2 == 1 {
			// A whole prefix and part of the message it announces.
			q := hg.query(true)
			partial = append(binary.BigEndian.AppendUint16(nil, uint16(len(q))), q[:len(q)/2]...)
		}
		if _, err := c.Write(partial); err != nil {
			return res, fmt.Errorf("half-open connection %d: %w", i, err)
		}
	}

	streamCtx, stop := context.WithCancel(ctx)
	defer stop()
	var probeErr error
	probed := make(chan struct{})
	go func() {
		defer close(probed)
		for i := 0; ; i++ {
			select {
			case <-streamCtx.Done():
				return
			case <-time.After(cfg.Every):
			}
			network := []string{"udp", "tcp"}[i%2]
			if err := r.probe(streamCtx, network); err != nil {
				if streamCtx.Err() == nil {
					probeErr = fmt.Errorf("during the stream, after %s: %w", r.recent(), err)
					stop()
				}
				return
			}
		}
	}()
	err = r.stream(streamCtx, NewGenerator(cfg.Seed, cfg.Zone))
	stop()
	<-probed
	if probeErr != nil {
		return r.result(), probeErr
	}
	if err != nil {
		return r.result(), fmt.Errorf("during the stream: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return r.result(), err
	}

	for _, network := range []string{"udp", "tcp"} {
		if err := r.probe(ctx, network); err != nil {
			return r.result(), fmt.Errorf("after the stream (%s): %w", r.recent(), err)
		}
	}
	res = r.result()
	for _, c := range halfOpen {
		c.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
		var b [512]byte
		if _, err := c.Read(b[:]); !isTimeout(err) {
			res.HalfOpenClosed++
		}
	}
	return res, nil
}

// runner is one Run's state.
type runner struct {
	cfg  Config
	want []dns.RR

	mu   sync.Mutex
	res  *Result
	last []string // the last packets sent, "#N kind/transport"
	sent int

	udpReplies, tcpReplies, unpackable, redials, paceLost atomic.Int64
}

// result returns the counts so far.
func (r *runner) result() Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	res := *r.res
	res.Sent = make(map[string]int, len(r.res.Sent))
	for k, v := range r.res.Sent {
		res.Sent[k] = v
	}
	res.UDPReplies = int(r.udpReplies.Load())
	res.TCPReplies = int(r.tcpReplies.Load())
	res.Unpackable = int(r.unpackable.Load())
	res.Redials = int(r.redials.Load())
	res.PaceLost = int(r.paceLost.Load())
	return res
}

// sending records that p, the packet numbered n from 1, is being sent.
func (r *runner) sending(n int, p Packet) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.res.Sent[p.Kind]++
	r.sent++
	r.last = append(r.last, fmt.Sprintf("#%d %s/%s", n, p.Kind, p.Transport))
	if len(r.last) > 8 {
		r.last = r.last[1:]
	}
}

// recent describes the last packets sent.
func (r *runner) recent() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sent == 0 {
		return "no hostile packets"
	}
	return fmt.Sprintf("%d hostile packets, the last %s", r.sent, strings.Join(r.last, ", "))
}

// stream sends cfg.Packets packets from g, UDP ones from one socket and
// TCP ones over cfg.TCPConns connections.
func (r *runner) stream(ctx context.Context, g *Generator) error {
	udp, err := net.Dial("udp", r.cfg.Addr)
	if err != nil {
		return err
	}
	defer udp.Close()
	// The pacing query in flight, by ID (or -1), and its answer's arrival.
	var paceID atomic.Int32
	paceID.Store(-1)
	paced := make(chan struct{}, 1)
	var readers sync.WaitGroup
	readers.Add(1)
	go func() {
		defer readers.Done()
		b := make([]byte, 65536)
		for {
			n, err := udp.Read(b)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue // ECONNREFUSED from an ICMP error, say
			}
			if n >= 2 && int32(binary.BigEndian.Uint16(b)) == paceID.Load() {
				paceID.Store(-1)
				select {
				case paced <- struct{}{}:
				default:
				}
				continue
			}
			r.udpReplies.Add(1)
			r.checkReply(b[:n])
		}
	}()
	pace := new(dns.Msg)
	pace.SetQuestion(dns.Fqdn(r.cfg.Probe.Name), r.cfg.Probe.Type)
	udpSent := 0

	type numbered struct {
		n int
		p Packet
	}
	tcp := make(chan numbered)
	var workers sync.WaitGroup
	for range r.cfg.TCPConns {
		workers.Add(1)
		go func() {
			defer workers.Done()
			w := &tcpWorker{r: r, readers: &readers}
			defer w.close()
			for np := range tcp {
				w.send(ctx, np.p)
			}
		}()
	}

	for n := 1; n <= r.cfg.Packets && ctx.Err() == nil; n++ {
		p := g.Next()
		r.sending(n, p)
		if p.Transport == UDP {
			udp.SetWriteDeadline(time.Now().Add(r.cfg.Timeout))
			udp.Write(p.Data) // a refusal shows in the probes
			if udpSent++; udpSent%r.cfg.PaceEvery == 0 {
				pace.Id = dns.Id()
				b, err := pace.Pack()
				if err != nil {
					return err
				}
				select { // a late answer to the last one
				case <-paced:
				default:
				}
				paceID.Store(int32(pace.Id))
				udp.Write(b)
				select {
				case <-paced:
				case <-time.After(r.cfg.Timeout):
					paceID.Store(-1)
					r.paceLost.Add(1)
				case <-ctx.Done():
				}
			}
			continue
		}
		select {
		case tcp <- numbered{n, p}:
		case <-ctx.Done():
		}
	}
	close(tcp)
	workers.Wait()
	// Let the last replies arrive, then stop reading.
	time.Sleep(50 * time.Millisecond)
	udp.Close()
	readers.Wait()
	return nil
}

// tcpWorker sends packets over one connection, redialing when the server
// closes it, and each TCPStream packet over one of its own.
type tcpWorker struct {
	r       *runner
	readers *sync.WaitGroup
	c       net.Conn
	closed  chan struct{} // closed when c's reader has seen it end
}

// send sends p.
func (w *tcpWorker) send(ctx context.Context, p Packet) {
	timeout := w.r.cfg.Timeout
	if p.Transport == TCPStream {
		c, err := (&net.Dialer{Timeout: timeout}).DialContext(ctx, "tcp", w.r.cfg.Addr)
		if err != nil {
			return // the probes say whether the server is still there
		}
		c.SetWriteDeadline(time.Now().Add(timeout))
		c.Write(p.Data)
		c.(*net.TCPConn).CloseWrite()
		// Read what comes back until the server closes, or for a while.
		c.SetReadDeadline(time.Now().Add(timeout))
		w.readers.Add(1)
		go func() {
			defer w.readers.Done()
			defer c.Close()
			w.r.readReplies(c)
		}()
		return
	}
	msg := framed(p.Data)
	for try := 0; try < 2; try++ {
		if w.c != nil {
			select {
			case <-w.closed:
				w.close()
				w.r.redials.Add(1)
			default:
			}
		}
		if w.c == nil {
			c, err := (&net.Dialer{Timeout: timeout}).DialContext(ctx, "tcp", w.r.cfg.Addr)
			if err != nil {
				return
			}
			w.c, w.closed = c, make(chan struct{})
			closed := w.closed
			w.readers.Add(1)
			go func() {
				defer w.readers.Done()
				defer close(closed)
				w.r.readReplies(c)
			}()
		}
		w.c.SetWriteDeadline(time.Now().Add(timeout))
		if _, err := w.c.Write(msg); err == nil {
			return
		}
		w.close()
		w.r.redials.Add(1)
	}
}

// close closes the worker's connection.
func (w *tcpWorker) close() {
	if w.c != nil {
		w.c.Close()
		w.c = nil
	}
}

// readReplies reads framed replies from c until it ends, counting them.
func (r *runner) readReplies(c net.Conn) {
	br := bufio.NewReader(c)
	var lenBuf [2]byte
	for {
		if _, err := io.ReadFull(br, lenBuf[:]); err != nil {
			return
		}
		msg := make([]byte, binary.BigEndian.Uint16(lenBuf[:]))
		if _, err := io.ReadFull(br, msg); err != nil {
			return
		}
		r.tcpReplies.Add(1)
		r.checkReply(msg)
	}
}

// checkReply counts a reply that miekg/dns cannot unpack.
func (r *runner) checkReply(b []byte) {
	var m dns.Msg
	if m.Unpack(b) != nil {
		r.unpackable.Add(1)
	}
}

// probe asks the probe's question over network ("udp" or "tcp") and
// checks the answer, trying up to cfg.Attempts times.
func (r *runner) probe(ctx context.Context, network string) error {
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(r.cfg.Probe.Name), r.cfg.Probe.Type)
	c := &dns.Client{Net: network, Timeout: r.cfg.Timeout}
	var err error
	for attempt := 1; attempt <= r.cfg.Attempts; attempt++ {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var m *dns.Msg
		m, _, err = c.ExchangeContext(ctx, q, r.cfg.Addr)
		if err != nil {
			err = fmt.Errorf("%s probe %s %s, attempt %d: %w", network, r.cfg.Probe.Name, dns.TypeToString[r.cfg.Probe.Type], attempt, err)
			if attempt < r.cfg.Attempts {
				r.mu.Lock()
				r.res.Retries++
				r.mu.Unlock()
			}
			continue
		}
		// A wrong answer is wrong at once: no retry.
		if err := r.check(m); err != nil {
			return fmt.Errorf("%s probe %s %s: %w", network, r.cfg.Probe.Name, dns.TypeToString[r.cfg.Probe.Type], err)
		}
		r.mu.Lock()
		r.res.Probes++
		r.mu.Unlock()
		return nil
	}
	return err
}

// check compares a reply to the probe with what it wants.
func (r *runner) check(m *dns.Msg) error {
	p := r.cfg.Probe
	if m.Rcode != p.Rcode {
		return fmt.Errorf("rcode %s, want %s", dns.RcodeToString[m.Rcode], dns.RcodeToString[p.Rcode])
	}
	if len(m.Question) != 1 || !strings.EqualFold(m.Question[0].Name, dns.Fqdn(p.Name)) || m.Question[0].Qtype != p.Type {
		return fmt.Errorf("question %v in the reply, want %s %s", m.Question, p.Name, dns.TypeToString[p.Type])
	}
	if !sameRRs(m.Answer, r.want) {
		return fmt.Errorf("answer %v, want %v", m.Answer, r.want)
	}
	return nil
}

// sameRRs says whether got and want hold the same records, TTLs aside,
// in any order.
func sameRRs(got, want []dns.RR) bool {
	if len(got) != len(want) {
		return false
	}
	used := make([]bool, len(got))
	for _, w := range want {
		found := false
		for i, g := range got {
			if !used[i] && dns.IsDuplicate(g, w) {
				used[i], found = true, true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// parseAnswer parses zone-file lines.
func parseAnswer(lines []string) ([]dns.RR, error) {
	var rrs []dns.RR
	for _, l := range lines {
		rr, err := dns.NewRR(l)
		if err != nil {
			return nil, fmt.Errorf("probe answer %q: %w", l, err)
		}
		if rr != nil {
			rrs = append(rrs, rr)
		}
	}
	return rrs, nil
}

// isTimeout says whether err is a deadline passing.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
