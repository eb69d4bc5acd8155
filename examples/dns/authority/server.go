package authority

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// EDNSSize is the UDP payload size the server advertises and the largest
// UDP response it sends (RFC 9715's and DNS Flag Day 2020's 1232 bytes,
// NSD's default).
const EDNSSize = 1232

// Key is a TSIG key (RFC 8945).
type Key struct {
	Name      string // fully qualified, lower case
	Algorithm string // fully qualified, such as hmac-sha256.
	Secret    string // base64
}

// ParseKey reads a key as nsupdate -y writes one: [ALGORITHM:]NAME:SECRET,
// the algorithm hmac-sha256 when none is given.
func ParseKey(s string) (Key, error) {
	parts := strings.Split(s, ":")
	var k Key
	switch len(parts) {
	case 2:
		k = Key{Algorithm: dns.HmacSHA256, Name: parts[0], Secret: parts[1]}
	case 3:
		k = Key{Algorithm: dns.Fqdn(strings.ToLower(parts[0])), Name: parts[1], Secret: parts[2]}
	default:
		return Key{}, fmt.Errorf("TSIG key %q: want [ALGORITHM:]NAME:SECRET", s)
	}
	switch k.Algorithm {
	case dns.HmacSHA1, dns.HmacSHA224, dns.HmacSHA256, dns.HmacSHA384, dns.HmacSHA512:
	default:
		return Key{}, fmt.Errorf("TSIG key %s: algorithm %s is not one of hmac-sha1, hmac-sha224, hmac-sha256, hmac-sha384, hmac-sha512", k.Name, strings.TrimSuffix(k.Algorithm, "."))
	}
	if _, ok := dns.IsDomainName(k.Name); !ok || k.Name == "" {
		return Key{}, fmt.Errorf("TSIG key name %q is not a domain name", k.Name)
	}
	k.Name = dns.CanonicalName(k.Name)
	if _, err := fromBase64(k.Secret); err != nil || k.Secret == "" {
		return Key{}, fmt.Errorf("TSIG key %s: the secret is not base64", k.Name)
	}
	return k, nil
}

// Config is a server's policy.
type Config struct {
	// Keys may transfer every zone and update the zones that have a
	// journal. Without keys nothing is transferred or updated.
	Keys []Key
	// Notify lists the secondaries (HOST:PORT) told of each new serial.
	Notify []string
	// Logf reports loads, updates and transfers; nil is silent.
	Logf func(format string, args ...any)
	// Dial makes the connections NOTIFY is sent on (a unikernel's own
	// network stack); nil is the host's.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Server answers for its zones. It is a dns.Handler.
type Server struct {
	cfg   Config
	keys  map[string]Key
	zones atomic.Pointer[map[string]*served]
	mu    sync.Mutex // serializes AddZone
	// notifier sends NOTIFY messages (xfr.go).
	notifier notifier
}

// served is one zone as served: the current snapshot and what updates it.
type served struct {
	cur     atomic.Pointer[Zone]
	mu      sync.Mutex // serializes updates
	journal *Journal   // nil: the zone cannot be updated
}

// NewServer makes a server with no zones.
func NewServer(cfg Config) *Server {
	s := &Server{cfg: cfg, keys: map[string]Key{}}
	for _, k := range cfg.Keys {
		s.keys[k.Name] = k
	}
	s.zones.Store(&map[string]*served{})
	s.notifier.server = s
	return s
}

func (s *Server) logf(format string, args ...any) {
	if s.cfg.Logf != nil {
		s.cfg.Logf(format, args...)
	}
}

// TsigSecret is the key table a dns.Server verifies requests with.
func (s *Server) TsigSecret() map[string]string {
	out := map[string]string{}
	for _, k := range s.keys {
		out[k.Name] = k.Secret
	}
	return out
}

// AddZone serves z. With j, the zone takes dynamic updates, kept in the
// journal, which has been replayed onto z already (OpenJournal).
func (s *Server) AddZone(z *Zone, j *Journal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := *s.zones.Load()
	if _, dup := old[z.Origin]; dup {
		return fmt.Errorf("zone %s is served twice", z.Origin)
	}
	next := make(map[string]*served, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	sv := &served{journal: j}
	sv.cur.Store(z)
	next[z.Origin] = sv
	s.zones.Store(&next)
	return nil
}

// Zone returns the current snapshot of the zone at origin, or nil.
func (s *Server) Zone(origin string) *Zone {
	if sv := (*s.zones.Load())[dns.CanonicalName(origin)]; sv != nil {
		return sv.cur.Load()
	}
	return nil
}

// Origins lists the zones served, sorted.
func (s *Server) Origins() []string {
	var out []string
	for k := range *s.zones.Load() {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// find returns the served zone holding name: the one with the longest
// origin that is name or an ancestor of it.
func (s *Server) find(name string) *served {
	zones := *s.zones.Load()
	for n := name; ; {
		if sv := zones[n]; sv != nil {
			return sv
		}
		i, end := dns.NextLabel(n, 0)
		if end {
			if sv := zones["."]; sv != nil {
				return sv
			}
			return nil
		}
		n = n[i:]
	}
}

// ServeDNS answers one request.
func (s *Server) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	resp := s.Handle(req, isTCP(w), w.TsigStatus())
	if resp == nil {
		return
	}
	if resp.IsTsig() == nil && req.IsTsig() != nil && w.TsigStatus() == nil {
		t := req.IsTsig()
		resp.SetTsig(t.Hdr.Name, t.Algorithm, 300, time.Now().Unix())
	}
	if isTCP(w) && len(req.Question) == 1 {
		switch req.Question[0].Qtype {
		case dns.TypeAXFR, dns.TypeIXFR:
			if resp.Rcode == dns.RcodeSuccess && len(resp.Answer) > 0 {
				s.transferOut(w, req, resp)
				return
			}
		}
	}
	w.WriteMsg(resp)
}

func isTCP(w dns.ResponseWriter) bool {
	_, ok := w.RemoteAddr().(*net.TCPAddr)
	if !ok {
		// A listener from a user-space stack: its address's network says.
		ok = w.RemoteAddr().Network() == "tcp"
	}
	return ok
}

// Handle answers req (tsigErr is the verification of its TSIG record,
// if any). It returns nil when nothing should be sent. The response to a
// zone transfer holds the whole transfer in its answer section.
func (s *Server) Handle(req *dns.Msg, tcp bool, tsigErr error) *dns.Msg {
	if req.Response {
		return nil
	}
	resp := new(dns.Msg)
	resp.SetReply(req)
	resp.Compress = true
	resp.RecursionDesired = req.RecursionDesired
	resp.CheckingDisabled = req.CheckingDisabled
	opt := req.IsEdns0()
	if req.IsTsig() != nil && tsigErr != nil {
		// RFC 8945 5.2: a request whose TSIG fails is answered NOTAUTH.
		resp.Rcode = dns.RcodeNotAuth
		s.logf("dns: TSIG from key %s failed: %v", req.IsTsig().Hdr.Name, tsigErr)
		return finish(resp, nil, tcp)
	}
	if opt != nil && opt.Version() != 0 {
		resp.Rcode = dns.RcodeBadVers // RFC 6891 6.1.3
		return finish(resp, opt, tcp)
	}
	switch req.Opcode {
	case dns.OpcodeQuery:
	case dns.OpcodeUpdate:
		s.update(req, resp)
		return finish(resp, opt, tcp)
	case dns.OpcodeNotify:
		// A primary takes no NOTIFY (RFC 1996 3.10: only secondaries do).
		resp.Rcode = dns.RcodeRefused
		return finish(resp, opt, tcp)
	default:
		resp.Rcode = dns.RcodeNotImplemented
		return finish(resp, opt, tcp)
	}
	if len(req.Question) != 1 {
		resp.Rcode = dns.RcodeFormatError
		return finish(resp, opt, tcp)
	}
	q := req.Question[0]
	if q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY {
		resp.Rcode = dns.RcodeRefused
		return finish(resp, opt, tcp)
	}
	name := dns.CanonicalName(q.Name)
	sv := s.find(name)
	if sv != nil && q.Qtype == dns.TypeDS && sv.cur.Load().Origin == name && name != "." {
		// RFC 4035 3.1.4.1: DS lives in the parent zone, when served.
		if p := s.find(parentOf(name)); p != nil {
			sv = p
		}
	}
	if sv == nil {
		resp.Rcode = dns.RcodeRefused
		return finish(resp, opt, tcp)
	}
	z := sv.cur.Load()
	switch q.Qtype {
	case dns.TypeAXFR, dns.TypeIXFR:
		s.transfer(req, resp, z, sv, tcp)
		return resp
	case dns.TypeOPT, dns.TypeTSIG, dns.TypeTKEY, dns.TypeMAILA, dns.TypeMAILB:
		// Meta-types are not queries for data (RFC 6895 3.1).
		resp.Rcode = dns.RcodeFormatError
		return finish(resp, opt, tcp)
	}
	do := opt != nil && opt.Do()
	z.Answer(resp, q.Name, q.Qtype, do)
	return finish(resp, opt, tcp)
}

// finish adds the OPT record the request's calls for and fits the
// response in the size the transport allows.
func finish(resp *dns.Msg, opt *dns.OPT, tcp bool) *dns.Msg {
	limit := dns.MinMsgSize
	if opt != nil {
		o := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
		o.SetUDPSize(EDNSSize)
		if opt.Do() {
			o.SetDo()
		}
		if resp.Rcode > 0xF {
			o.SetExtendedRcode(uint16(resp.Rcode))
		}
		resp.Extra = append(resp.Extra, o)
		limit = max(dns.MinMsgSize, min(int(opt.UDPSize()), EDNSSize))
	} else if resp.Rcode > 0xF {
		resp.Rcode = dns.RcodeServerFailure // no OPT to carry it
	}
	if tcp {
		limit = dns.MaxMsgSize
	}
	fit(resp, limit)
	return resp
}

// fit makes resp no longer than limit bytes: first the additional
// section gives up whole RRsets from its end (RFC 2181 9: no TC for
// that), then, if the answer and authority still do not fit, the
// response is cut to its header and question with TC set, so the client
// retries over TCP.
func fit(resp *dns.Msg, limit int) {
	if resp.Len() <= limit {
		return
	}
	var opt dns.RR
	if n := len(resp.Extra); n > 0 && resp.Extra[n-1].Header().Rrtype == dns.TypeOPT {
		opt = resp.Extra[n-1]
		resp.Extra = resp.Extra[:n-1]
	}
	for len(resp.Extra) > 0 {
		resp.Extra = dropLastSet(resp.Extra)
		if lenWith(resp, opt) <= limit {
			break
		}
	}
	if lenWith(resp, opt) > limit {
		resp.Truncated = true
		resp.Answer, resp.Ns, resp.Extra = nil, nil, nil
	}
	if opt != nil {
		resp.Extra = append(resp.Extra, opt)
	}
}

func lenWith(m *dns.Msg, opt dns.RR) int {
	n := m.Len()
	if opt != nil {
		n += dns.Len(opt)
	}
	return n
}

// dropLastSet removes the last RRset (and the signatures after it) from
// section.
func dropLastSet(section []dns.RR) []dns.RR {
	last := section[len(section)-1].Header()
	name := dns.CanonicalName(last.Name)
	i := len(section)
	for i > 0 {
		h := section[i-1].Header()
		if dns.CanonicalName(h.Name) != name {
			break
		}
		i--
	}
	return section[:i]
}

var errNoKey = errors.New("no TSIG")

// authorized returns the key that signed req when the server knows it
// and the signature verified; errNoKey otherwise.
func (s *Server) authorized(req *dns.Msg) (Key, error) {
	t := req.IsTsig()
	if t == nil {
		return Key{}, errNoKey
	}
	k, ok := s.keys[dns.CanonicalName(t.Hdr.Name)]
	if !ok || dns.CanonicalName(t.Algorithm) != k.Algorithm {
		return Key{}, errNoKey
	}
	return k, nil
}
