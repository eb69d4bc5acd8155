package authority

import (
	"github.com/miekg/dns"
)

// maxChain bounds the CNAMEs followed for one answer.
const maxChain = 8

// query is one standard query being answered: it walks from zone to
// zone as CNAMEs lead (RFC 1034 4.3.2 step 3.a goes back to step 1 with
// the new name, and step 2 searches every zone the server has).
type query struct {
	z     *Zone // the zone of the name being resolved
	m     *dns.Msg
	qtype uint16
	do    bool // the DO bit
	// positive is the zone whose data answered the question, when it
	// did: its NS records go in the authority section.
	positive *Zone
	// referral marks a response that is a referral: its glue (the
	// additional records from glueFrom on) is required.
	referral bool
	glueFrom int
	// optionalNS marks the apex NS records apexNS added to the authority
	// section, from nsFrom on, which fit may drop.
	optionalNS bool
	nsFrom     int
}

// signedFor reports whether DNSSEC records go with z's answers.
func (q *query) signedFor(z *Zone) bool { return q.do && z.signed }

// resolve answers for one name in q.z; it returns a CNAME's target to
// follow, or false.
func (q *query) resolve(owner string) (string, bool) {
	z := q.z
	name := dns.CanonicalName(owner)
	if cut := z.cut(name); cut != nil && !(q.qtype == dns.TypeDS && cut.name == name) {
		q.referTo(cut)
		return "", false
	}
	if z.exists[name] {
		return q.atNode(owner, name, z.nodes[name], nil)
	}
	ce := z.closestEncloser(name)
	wild := "*." + ce
	if wn := z.nodes[wild]; wn != nil {
		return q.atNode(owner, name, wn, &ce)
	}
	q.m.Rcode = dns.RcodeNameError // after CNAMEs too: the last name's (RFC 6604 2.1)
	q.negative()
	if q.signedFor(z) {
		q.proveNXDomain(name, ce)
	}
	return "", false
}

// atNode answers from n, the node at name (an empty non-terminal when
// nil) or, with ce, the wildcard at closest encloser *ce that name is
// synthesized from.
func (q *query) atNode(owner, name string, n *node, ce *string) (string, bool) {
	z := q.z
	prove := func() {
		if ce != nil && q.signedFor(z) {
			q.proveWildcard(name, *ce)
		}
	}
	switch {
	case q.qtype == dns.TypeANY && n != nil:
		// RFC 8482 4.1, as NSD does: the first RRset the zone file
		// gives, a CNAME included, not followed.
		for _, t := range n.order {
			if s := n.sets[t]; len(s.rrs) > 0 && t != dns.TypeNSEC {
				q.answerSet(owner, s)
				q.additional(s)
				prove()
				return "", false
			}
		}
	case q.qtype == dns.TypeRRSIG && n != nil:
		if sigs := n.signatures(); len(sigs) > 0 {
			for _, sig := range sigs {
				q.m.Answer = append(q.m.Answer, withOwner(sig, owner))
			}
			q.positive = z
			prove()
			return "", false
		}
	case q.qtype != dns.TypeNSEC3:
		if s := n.get(q.qtype); s != nil && len(s.rrs) > 0 {
			q.answerSet(owner, s)
			q.additional(s)
			q.positive = z
			prove()
			return "", false
		}
	}
	// No data of the type: a CNAME is followed (except for the types
	// that sit beside one, and NSEC3, which never names a node).
	if c := n.get(dns.TypeCNAME); c != nil && len(c.rrs) > 0 && q.qtype != dns.TypeCNAME && q.qtype != dns.TypeANY && q.qtype != dns.TypeNSEC3 {
		q.answerSet(owner, c)
		prove()
		return c.rrs[0].(*dns.CNAME).Target, true
	}
	q.negative()
	if q.signedFor(z) {
		if ce != nil {
			q.proveWildcardNoData(name, *ce, "*."+*ce)
		} else {
			q.proveNoData(name)
		}
	}
	return "", false
}

// signatures returns every RRSIG at n, whatever type it covers.
func (n *node) signatures() []dns.RR {
	var out []dns.RR
	for _, t := range n.order {
		out = append(out, n.sets[t].sigs...)
	}
	return out
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
	if rr.Header().Name == owner {
		return rr
	}
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
	if q.signedFor(q.z) {
		for _, rr := range s.sigs {
			q.m.Answer = append(q.m.Answer, withOwner(rr, owner))
		}
	}
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
		q.addresses(q.z, target, false)
	}
}

// addresses adds target's A and AAAA records from z to the additional
// section once each: glue (below a zone cut) only in a referral.
func (q *query) addresses(z *Zone, target string, glue bool) {
	name := dns.CanonicalName(target)
	n := z.nodes[name]
	if n == nil || !glue && z.cut(name) != nil {
		return
	}
	for _, t := range []uint16{dns.TypeA, dns.TypeAAAA} {
		s := n.get(t)
		if s == nil || len(s.rrs) == 0 || inSection(q.m.Extra, s.rrs[0]) || inSection(q.m.Answer, s.rrs[0]) {
			continue
		}
		q.m.Extra = append(q.m.Extra, s.rrs...)
		if q.signedFor(z) {
			q.m.Extra = append(q.m.Extra, s.sigs...)
		}
	}
}

// inSection reports whether section already holds rr's set.
func inSection(section []dns.RR, rr dns.RR) bool {
	h := rr.Header()
	for _, have := range section {
		if have.Header().Rrtype == h.Rrtype && dns.CanonicalName(have.Header().Name) == dns.CanonicalName(h.Name) {
			return true
		}
	}
	return false
}

// referTo answers for a name below the cut at n: the delegation's NS
// records, the DS records (or the proof there are none) when DNSSEC is
// wanted, and glue.
func (q *query) referTo(n *node) {
	q.referral = true
	if len(q.m.Answer) == 0 {
		q.m.Authoritative = false
	}
	ns := n.get(dns.TypeNS)
	q.m.Ns = append(q.m.Ns, ns.rrs...)
	if q.signedFor(q.z) {
		if ds := n.get(dns.TypeDS); ds != nil && len(ds.rrs) > 0 {
			q.m.Ns = append(q.m.Ns, ds.rrs...)
			q.m.Ns = append(q.m.Ns, ds.sigs...)
		} else {
			q.proveNoData(n.name)
		}
	}
	q.glueFrom = len(q.m.Extra)
	for _, rr := range ns.rrs {
		q.addresses(q.z, rr.(*dns.NS).Ns, true)
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
	if q.signedFor(q.z) {
		for _, sig := range q.z.nodes[q.z.Origin].get(dns.TypeSOA).sigs {
			sig = dns.Copy(sig)
			sig.Header().Ttl = soa.Hdr.Ttl
			q.m.Ns = append(q.m.Ns, sig)
		}
	}
}

// apexNS adds, to a positive answer, the NS records of the zone that
// answered in the authority section and their addresses in the
// additional section, as NSD does (RFC 1034 4.3.2 step 3.a: "probably"
// in the authority); they are optional, and fit drops them first.
// Not with DS and DNSKEY answers, as NSD does: those go to validators,
// which do not need them.
func (q *query) apexNS() {
	z, m := q.positive, q.m
	if z == nil || m.Rcode != dns.RcodeSuccess || q.referral || q.qtype == dns.TypeDS || q.qtype == dns.TypeDNSKEY {
		return
	}
	ns := z.nodes[z.Origin].get(dns.TypeNS)
	if inSection(m.Answer, ns.rrs[0]) || inSection(m.Ns, ns.rrs[0]) {
		return
	}
	q.optionalNS, q.nsFrom = true, len(m.Ns)
	m.Ns = append(m.Ns, ns.rrs...)
	if q.signedFor(z) {
		m.Ns = append(m.Ns, ns.sigs...)
	}
	for _, rr := range ns.rrs {
		q.addresses(z, rr.(*dns.NS).Ns, false)
	}
}

// Answer fills m, a reply to a query for (qname, qtype) that falls in z,
// as an authoritative server answers from z alone: data, a referral
// below a zone cut, CNAMEs followed inside the zone, wildcards
// synthesized, NXDOMAIN or NODATA with the SOA, and with do the DNSSEC
// records that prove each. Records at the name asked keep the query's
// case.
func (z *Zone) Answer(m *dns.Msg, qname string, qtype uint16, do bool) {
	answer(m, z, qname, qtype, do, true, func(name string) *Zone {
		if dns.IsSubDomain(z.Origin, name) {
			return z
		}
		return nil
	})
}

// answer answers a query starting in z; find gives the zone a CNAME's
// target is in, or nil when the server has none. Without withNS, a
// positive answer gets no NS records (a class ANY query's, as in NSD).
func answer(m *dns.Msg, z *Zone, qname string, qtype uint16, do, withNS bool, find func(string) *Zone) *query {
	q := &query{z: z, m: m, qtype: qtype, do: do}
	m.Authoritative = true
	seen := map[string]bool{dns.CanonicalName(qname): true}
	for name, i := qname, 0; i <= maxChain; i++ {
		next, ok := q.resolve(name)
		if !ok {
			break
		}
		key := dns.CanonicalName(next)
		nz := find(key)
		if seen[key] || nz == nil {
			break // a loop, or a name the server has no zone for
		}
		seen[key] = true
		q.z, name = nz, next
	}
	if withNS {
		q.apexNS()
	}
	return q
}
