package authority

import (
	"github.com/miekg/dns"
)

// maxChain bounds the CNAMEs followed inside one zone for one answer.
const maxChain = 8

// query is one standard query being answered from one zone.
type query struct {
	z     *Zone
	m     *dns.Msg
	qtype uint16
	do    bool // the DO bit: DNSSEC records wanted
	// anyAnswer and referred mark answers that get no apex NS records
	// in their authority section.
	anyAnswer, referred bool
}

// Answer fills m, a reply to a query for (qname, qtype) that falls in z,
// as an authoritative server answers: data, a referral below a zone cut,
// CNAMEs followed inside the zone, wildcards synthesized, NXDOMAIN or
// NODATA with the SOA, and with do the DNSSEC records that prove each.
// Owner names of records at the name asked keep the query's case.
func (z *Zone) Answer(m *dns.Msg, qname string, qtype uint16, do bool) {
	q := &query{z: z, m: m, qtype: qtype, do: do && z.signed}
	m.Authoritative = true
	seen := map[string]bool{dns.CanonicalName(qname): true}
	for name, i := qname, 0; i <= maxChain; i++ {
		next, ok := q.resolve(name)
		if !ok {
			break
		}
		key := dns.CanonicalName(next)
		if seen[key] || !dns.IsSubDomain(z.Origin, key) {
			break // a loop, or the chain leaves the zone: the resolver follows it
		}
		seen[key] = true
		name = next
	}
	q.apexNS()
}

// apexNS adds, to a positive answer, the zone's NS records in the
// authority section and their addresses in the additional section, as
// NSD does (RFC 1034 4.3.2 step 3a: "probably" in the authority).
func (q *query) apexNS() {
	m := q.m
	if m.Rcode != dns.RcodeSuccess || len(m.Answer) == 0 || len(m.Ns) > 0 || q.anyAnswer || q.referred {
		return
	}
	ns := q.z.nodes[q.z.Origin].get(dns.TypeNS)
	if q.inSection(m.Answer, ns.rrs[0]) {
		return
	}
	m.Ns = append(m.Ns, ns.rrs...)
	if q.do {
		m.Ns = append(m.Ns, ns.sigs...)
	}
	for _, rr := range ns.rrs {
		q.addresses(rr.(*dns.NS).Ns)
	}
}

// resolve answers for one name; it returns a CNAME's target to follow.
func (q *query) resolve(owner string) (string, bool) {
	z := q.z
	name := dns.CanonicalName(owner)
	if cut := z.cut(name); cut != nil && !(q.qtype == dns.TypeDS && cut.name == name) {
		q.referral(cut)
		return "", false
	}
	if z.exists[name] {
		n := z.nodes[name]
		if c := n.get(dns.TypeCNAME); c != nil && len(c.rrs) > 0 && q.qtype != dns.TypeCNAME {
			q.answerSet(owner, c)
			return c.rrs[0].(*dns.CNAME).Target, true
		}
		if q.qtype == dns.TypeANY && n != nil && q.any(owner, n) {
			return "", false
		}
		if s := n.get(q.qtype); s != nil && len(s.rrs) > 0 {
			q.answerSet(owner, s)
			q.additional(s)
			return "", false
		}
		q.negative()
		if q.do {
			q.proveNoData(name)
		}
		return "", false
	}
	ce := z.closestEncloser(name)
	wild := "*." + ce
	if wn := z.nodes[wild]; wn != nil {
		if c := wn.get(dns.TypeCNAME); c != nil && len(c.rrs) > 0 && q.qtype != dns.TypeCNAME {
			q.answerSet(owner, c)
			q.proveWildcard(name, ce)
			return c.rrs[0].(*dns.CNAME).Target, true
		}
		if q.qtype == dns.TypeANY && q.any(owner, wn) {
			q.proveWildcard(name, ce)
			return "", false
		}
		if s := wn.get(q.qtype); s != nil && len(s.rrs) > 0 {
			q.answerSet(owner, s)
			q.additional(s)
			q.proveWildcard(name, ce)
			return "", false
		}
		q.negative()
		if q.do {
			q.proveWildcardNoData(name, ce, wild)
		}
		return "", false
	}
	q.m.Rcode = dns.RcodeNameError
	q.negative()
	if q.do {
		q.proveNXDomain(name, ce)
	}
	return "", false
}

// cut returns the highest zone cut at or above name (below the apex):
// the node whose NS records delegate name away, or nil.
func (z *Zone) cut(name string) *node {
	labels := dns.Split(name)
	apexLabels := dns.CountLabel(z.Origin)
	for i := len(labels) - apexLabels - 1; i >= 0; i-- {
		n := z.nodes[name[labels[i]:]]
		if s := n.get(dns.TypeNS); s != nil && len(s.rrs) > 0 {
			return n
		}
	}
	return nil
}

// closestEncloser is name's longest ancestor that exists in the zone.
func (z *Zone) closestEncloser(name string) string {
	for n := name; ; {
		if z.exists[n] || n == z.Origin {
			return n
		}
		i, end := dns.NextLabel(n, 0)
		if end {
			return z.Origin
		}
		n = n[i:]
	}
}

// nextCloser is the ancestor of name one label longer than ce.
func nextCloser(name, ce string) string {
	labels := dns.Split(name)
	i := len(labels) - dns.CountLabel(ce) - 1
	if i < 0 {
		return name
	}
	return name[labels[i]:]
}

// withOwner copies rr under another owner name.
func withOwner(rr dns.RR, owner string) dns.RR {
	c := dns.Copy(rr)
	c.Header().Name = owner
	return c
}

// answerSet adds s's records, named owner, to the answer section, with
// their signatures when DNSSEC records are wanted.
func (q *query) answerSet(owner string, s *rrset) {
	for _, rr := range s.rrs {
		q.m.Answer = append(q.m.Answer, withOwner(rr, owner))
	}
	if q.do {
		for _, rr := range s.sigs {
			q.m.Answer = append(q.m.Answer, withOwner(rr, owner))
		}
	}
}

// any answers an ANY query for n as RFC 8482 4.1 allows and NSD does:
// with one RRset, the first the zone file gives at the name. It reports
// false when n has no data (NODATA follows).
func (q *query) any(owner string, n *node) bool {
	for _, t := range n.order {
		s := n.sets[t]
		if len(s.rrs) == 0 || t == dns.TypeNSEC || t == dns.TypeNSEC3 {
			continue
		}
		q.answerSet(owner, s)
		q.anyAnswer = true
		return true
	}
	return false
}

// additional adds the addresses of the names an answer's NS, MX and SRV
// records point at, where the zone holds them (RFC 1035 3.3, RFC 2782).
func (q *query) additional(s *rrset) {
	for _, rr := range s.rrs {
		var target string
		switch rr := rr.(type) {
		case *dns.NS:
			target = rr.Ns
		case *dns.MX:
			target = rr.Mx
		case *dns.SRV:
			target = rr.Target
		default:
			return
		}
		q.addresses(target)
	}
}

// addresses adds target's A and AAAA records from the zone, glue
// included, to the additional section once each.
func (q *query) addresses(target string) {
	n := q.z.nodes[dns.CanonicalName(target)]
	if n == nil {
		return
	}
	for _, t := range []uint16{dns.TypeA, dns.TypeAAAA} {
		s := n.get(t)
		if s == nil || len(s.rrs) == 0 || q.inSection(q.m.Extra, s.rrs[0]) || q.inSection(q.m.Answer, s.rrs[0]) {
			continue
		}
		q.m.Extra = append(q.m.Extra, s.rrs...)
		if q.do {
			q.m.Extra = append(q.m.Extra, s.sigs...)
		}
	}
}

// inSection reports whether section already holds rr's set.
func (q *query) inSection(section []dns.RR, rr dns.RR) bool {
	h := rr.Header()
	for _, have := range section {
		if have.Header().Rrtype == h.Rrtype && dns.CanonicalName(have.Header().Name) == dns.CanonicalName(h.Name) {
			return true
		}
	}
	return false
}

// referral answers for a name below the cut at n: the delegation's NS
// records, the DS records (or the proof there are none) when DNSSEC is
// wanted, and glue.
func (q *query) referral(n *node) {
	q.referred = true
	if len(q.m.Answer) == 0 {
		q.m.Authoritative = false
	}
	ns := n.get(dns.TypeNS)
	q.m.Ns = append(q.m.Ns, ns.rrs...)
	if q.do {
		if ds := n.get(dns.TypeDS); ds != nil && len(ds.rrs) > 0 {
			q.m.Ns = append(q.m.Ns, ds.rrs...)
			q.m.Ns = append(q.m.Ns, ds.sigs...)
		} else {
			q.proveNoData(n.name)
		}
	}
	for _, rr := range ns.rrs {
		q.addresses(rr.(*dns.NS).Ns)
	}
}

// negative adds the SOA that makes a negative answer cacheable, with the
// TTL RFC 2308 3 gives it: the lesser of its TTL and its MINIMUM.
func (q *query) negative() {
	soa := dns.Copy(q.z.soa).(*dns.SOA)
	if soa.Minttl < soa.Hdr.Ttl {
		soa.Hdr.Ttl = soa.Minttl
	}
	q.m.Ns = append(q.m.Ns, soa)
	if q.do {
		for _, sig := range q.z.nodes[q.z.Origin].get(dns.TypeSOA).sigs {
			sig = dns.Copy(sig)
			sig.Header().Ttl = soa.Hdr.Ttl
			q.m.Ns = append(q.m.Ns, sig)
		}
	}
}
