package authority

import (
	"context"
	"encoding/base64"
	"net"
	"time"

	"github.com/miekg/dns"
)

// transfer answers an AXFR or IXFR request (RFC 5936, RFC 1995) from a
// holder of a known TSIG key: the whole transfer in resp's answer
// section, which ServeDNS sends as a stream of messages.
func (s *Server) transfer(req, resp *dns.Msg, z *Zone, sv *served, tcp bool) {
	q := req.Question[0]
	key, err := s.authorized(req)
	switch {
	case dns.CanonicalName(q.Name) != z.Origin:
		resp.Rcode = dns.RcodeNotAuth // not a zone served here (RFC 5936 2.2.1)
	case err != nil:
		resp.Rcode = dns.RcodeRefused
		s.logf("dns: %s of %s refused: not signed with a known key", dns.TypeToString[q.Qtype], z.Origin)
	case q.Qtype == dns.TypeAXFR && !tcp:
		resp.Rcode = dns.RcodeFormatError // AXFR is TCP only (RFC 5936 4.2)
	default:
		resp.Authoritative = true
		resp.Answer = s.transferRecords(req, z, sv, tcp)
		s.logf("dns: %s of %s (serial %d, %d records) to key %s", dns.TypeToString[q.Qtype], z.Origin, z.Serial(), len(resp.Answer), key.Name)
		if tcp {
			return // streamed by ServeDNS
		}
	}
	finish(resp, req.IsEdns0(), tcp)
}

// transferRecords is what a transfer sends: for IXFR, the changes since
// the client's serial when the journal holds them, only the SOA when the
// client is current or asked over UDP, else the whole zone (RFC 1995 4).
func (s *Server) transferRecords(req *dns.Msg, z *Zone, sv *served, tcp bool) []dns.RR {
	soa := z.SOA()
	if req.Question[0].Qtype == dns.TypeIXFR {
		var have uint32
		var ok bool
		for _, rr := range req.Ns {
			if c, isSOA := rr.(*dns.SOA); isSOA {
				have, ok = c.Serial, true
			}
		}
		if ok && !serialLess(have, z.Serial()) || !tcp {
			return []dns.RR{soa}
		}
		if ok && sv.journal != nil {
			if deltas := sv.journal.Since(have, z.Serial()); deltas != nil {
				out := []dns.RR{soa}
				for _, d := range deltas {
					out = append(out, d.OldSOA)
					out = append(out, d.Del...)
					out = append(out, d.NewSOA)
					out = append(out, d.Add...)
				}
				return append(out, soa)
			}
		}
	}
	return append(z.Records(), soa)
}

// transferChunk bounds the records' uncompressed bytes in one message of
// a transfer, well under the 64 KiB a TCP message may hold.
const transferChunk = 16 << 10

// transferOut writes resp's answer section as a stream of messages, each
// signed when the request was (RFC 8945 5.3.1).
func (s *Server) transferOut(w dns.ResponseWriter, req, resp *dns.Msg) {
	rrs := resp.Answer
	tsig := req.IsTsig()
	for len(rrs) > 0 {
		n, size := 0, 0
		for n < len(rrs) && (n == 0 || size+dns.Len(rrs[n]) <= transferChunk) {
			size += dns.Len(rrs[n])
			n++
		}
		m := new(dns.Msg)
		m.SetReply(req)
		m.Authoritative = true
		m.Compress = true
		m.Answer = rrs[:n]
		rrs = rrs[n:]
		if tsig != nil {
			m.SetTsig(tsig.Hdr.Name, tsig.Algorithm, 300, time.Now().Unix())
		}
		if err := w.WriteMsg(m); err != nil {
			s.logf("dns: transfer of %s: %v", req.Question[0].Name, err)
			return
		}
		w.TsigTimersOnly(true)
	}
}

// serialLess compares SOA serials as RFC 1982 says.
func serialLess(a, b uint32) bool { return a != b && int32(b-a) > 0 }

func fromBase64(s string) ([]byte, error) { return base64.StdEncoding.DecodeString(s) }

// notifier tells the configured secondaries of new serials (RFC 1996).
type notifier struct {
	server *Server
}

// notifyTries and notifyWait are how often and how patiently a NOTIFY
// is sent before the secondary is given up on for that serial.
const (
	notifyTries = 5
	notifyWait  = 2 * time.Second
)

// Notify tells every configured secondary that origin has a new serial,
// in the background, retrying each until it answers.
func (s *Server) Notify(origin string) {
	z := s.Zone(origin)
	if z == nil {
		return
	}
	for _, addr := range s.cfg.Notify {
		go s.notifier.send(addr, z)
	}
}

func (n *notifier) send(addr string, z *Zone) {
	s := n.server
	m := new(dns.Msg)
	m.SetNotify(z.Origin)
	m.Answer = []dns.RR{z.SOA()}
	c := &dns.Client{Net: "udp", Timeout: notifyWait}
	if len(s.cfg.Keys) > 0 {
		k := s.cfg.Keys[0]
		m.SetTsig(k.Name, k.Algorithm, 300, time.Now().Unix())
		c.TsigSecret = s.TsigSecret()
	}
	dial := s.cfg.Dial
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	var err error
	for i := 0; i < notifyTries; i++ {
		var r *dns.Msg
		r, err = n.exchange(c, dial, m, addr)
		if err == nil {
			s.logf("dns: NOTIFY %s serial %d to %s: %s", z.Origin, z.Serial(), addr, dns.RcodeToString[r.Rcode])
			return
		}
		if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
			break
		}
	}
	s.logf("dns: NOTIFY %s serial %d to %s: %v", z.Origin, z.Serial(), addr, err)
}

// exchange sends m to addr over a connection from dial and waits for
// the answer.
func (n *notifier) exchange(c *dns.Client, dial func(context.Context, string, string) (net.Conn, error), m *dns.Msg, addr string) (*dns.Msg, error) {
	ctx, cancel := context.WithTimeout(context.Background(), c.Timeout)
	defer cancel()
	conn, err := dial(ctx, "udp", addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(c.Timeout))
	r, _, err := c.ExchangeWithConnContext(ctx, m, &dns.Conn{Conn: conn, TsigSecret: c.TsigSecret})
	return r, err
}
