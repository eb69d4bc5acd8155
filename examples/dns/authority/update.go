package authority

import (
	"github.com/miekg/dns"
)

// update applies an RFC 2136 dynamic update signed with a known key to a
// zone with a journal: the prerequisites checked (3.2), the update
// section checked whole before anything changes (3.4.1), the changes
// made (3.4.2), the serial increased, the delta written to the journal
// and fsynced, and only then the new zone served and the update
// answered NOERROR. Any failure leaves the zone as it was.
func (s *Server) update(req, resp *dns.Msg) {
	if len(req.Question) != 1 || req.Question[0].Qtype != dns.TypeSOA {
		resp.Rcode = dns.RcodeFormatError
		return
	}
	origin := dns.CanonicalName(req.Question[0].Name)
	sv := (*s.zones.Load())[origin]
	switch {
	case sv == nil:
		resp.Rcode = dns.RcodeNotAuth // not a zone served here (3.1.1)
		return
	case req.Question[0].Qclass != dns.ClassINET:
		resp.Rcode = dns.RcodeNotAuth
		return
	}
	key, err := s.authorized(req)
	if err != nil {
		s.logf("dns: update of %s refused: not signed with a known key", origin)
		resp.Rcode = dns.RcodeRefused
		return
	}
	if sv.journal == nil {
		s.logf("dns: update of %s refused: the zone has no journal (its file is read-only)", origin)
		resp.Rcode = dns.RcodeRefused
		return
	}
	sv.mu.Lock()
	defer sv.mu.Unlock()
	z := sv.cur.Load()
	if z.Signed() {
		// The zone is signed offline: changed data would carry no valid
		// signature, so a validator would reject it.
		s.logf("dns: update of %s refused: the zone is DNSSEC-signed offline", origin)
		resp.Rcode = dns.RcodeRefused
		return
	}
	if rcode := checkPrerequisites(z, req.Answer); rcode != dns.RcodeSuccess {
		resp.Rcode = rcode
		return
	}
	if rcode := prescan(z, req.Ns); rcode != dns.RcodeSuccess {
		resp.Rcode = rcode
		return
	}
	next, delta, changed, err := applyUpdates(z, req.Ns)
	if err != nil {
		s.logf("dns: update of %s: %v", origin, err)
		resp.Rcode = dns.RcodeServerFailure
		return
	}
	if !changed {
		return // nothing to do is success (3.4.2.7)
	}
	if err := sv.journal.Append(delta); err != nil {
		s.logf("dns: update of %s not applied: journal: %v", origin, err)
		resp.Rcode = dns.RcodeServerFailure
		return
	}
	sv.cur.Store(next)
	s.logf("dns: update of %s by key %s: serial %d, %d removed, %d added", origin, key.Name, next.Serial(), len(delta.Del), len(delta.Add))
	s.Notify(origin)
}

// checkPrerequisites evaluates RFC 2136 3.2's prerequisite section.
func checkPrerequisites(z *Zone, prereq []dns.RR) int {
	// Value-dependent prerequisites (class IN) compare whole RRsets.
	want := map[string][]dns.RR{}
	for _, rr := range prereq {
		h := rr.Header()
		name := dns.CanonicalName(h.Name)
		if h.Ttl != 0 {
			return dns.RcodeFormatError
		}
		if !dns.IsSubDomain(z.Origin, name) {
			return dns.RcodeNotZone
		}
		n := z.nodes[name]
		switch h.Class {
		case dns.ClassANY:
			if h.Rdlength != 0 {
				return dns.RcodeFormatError
			}
			if h.Rrtype == dns.TypeANY {
				if !z.exists[name] || n == nil || len(n.sets) == 0 {
					return dns.RcodeNameError
				}
			} else if s := n.get(h.Rrtype); s == nil || len(s.rrs) == 0 {
				return dns.RcodeNXRrset
			}
		case dns.ClassNONE:
			if h.Rdlength != 0 {
				return dns.RcodeFormatError
			}
			if h.Rrtype == dns.TypeANY {
				if n != nil && len(n.sets) > 0 {
					return dns.RcodeYXDomain
				}
			} else if s := n.get(h.Rrtype); s != nil && len(s.rrs) > 0 {
				return dns.RcodeYXRrset
			}
		case dns.ClassINET:
			k := name + "/" + dns.TypeToString[h.Rrtype]
			want[k] = append(want[k], rr)
		default:
			return dns.RcodeFormatError
		}
	}
	for _, set := range want {
		h := set[0].Header()
		s := z.nodes[dns.CanonicalName(h.Name)].get(h.Rrtype)
		if s == nil || !sameSet(s.rrs, set) {
			return dns.RcodeNXRrset
		}
	}
	return dns.RcodeSuccess
}

// sameSet reports whether a and b hold the same records, TTLs aside.
func sameSet(a, b []dns.RR) bool {
	for _, x := range a {
		if !holds(b, x) {
			return false
		}
	}
	for _, x := range b {
		if !holds(a, x) {
			return false
		}
	}
	return true
}

func holds(set []dns.RR, rr dns.RR) bool {
	for _, x := range set {
		if dns.IsDuplicate(x, rr) {
			return true
		}
	}
	return false
}

// prescan checks the update section before any change (3.4.1.3).
func prescan(z *Zone, updates []dns.RR) int {
	for _, rr := range updates {
		h := rr.Header()
		if !dns.IsSubDomain(z.Origin, dns.CanonicalName(h.Name)) {
			return dns.RcodeNotZone
		}
		switch h.Class {
		case dns.ClassINET:
			if isMeta(h.Rrtype) || h.Rrtype == dns.TypeRRSIG || h.Rrtype == dns.TypeNSEC || h.Rrtype == dns.TypeNSEC3 {
				return dns.RcodeFormatError
			}
		case dns.ClassANY:
			if h.Ttl != 0 || h.Rdlength != 0 || (isMeta(h.Rrtype) && h.Rrtype != dns.TypeANY) {
				return dns.RcodeFormatError
			}
		case dns.ClassNONE:
			if h.Ttl != 0 || isMeta(h.Rrtype) {
				return dns.RcodeFormatError
			}
		default:
			return dns.RcodeFormatError
		}
	}
	return dns.RcodeSuccess
}

// isMeta reports the query-only types no zone holds.
func isMeta(t uint16) bool {
	switch t {
	case dns.TypeANY, dns.TypeAXFR, dns.TypeIXFR, dns.TypeMAILA, dns.TypeMAILB, dns.TypeOPT, dns.TypeTSIG, dns.TypeTKEY:
		return true
	}
	return false
}

// applyUpdates makes the update section's changes (3.4.2) to a copy of
// z's records and returns the new zone, its serial increased unless the
// update set a greater one, and the delta between the two.
func applyUpdates(z *Zone, updates []dns.RR) (*Zone, Delta, bool, error) {
	oldSOA := z.SOA()
	// The working set: records by canonical owner, in order.
	byName := map[string][]dns.RR{}
	var order []string
	for _, rr := range z.Records() {
		name := dns.CanonicalName(rr.Header().Name)
		if _, ok := byName[name]; !ok {
			order = append(order, name)
		}
		byName[name] = append(byName[name], rr)
	}
	soa := dns.Copy(z.soa).(*dns.SOA)
	for _, u := range updates {
		h := u.Header()
		name := dns.CanonicalName(h.Name)
		cur := byName[name]
		if _, ok := byName[name]; !ok {
			order = append(order, name)
		}
		apex := name == z.Origin
		switch h.Class {
		case dns.ClassINET:
			switch {
			case h.Rrtype == dns.TypeSOA:
				if apex && serialLess(soa.Serial, u.(*dns.SOA).Serial) {
					soa = dns.Copy(u).(*dns.SOA)
				}
				continue
			case h.Rrtype == dns.TypeCNAME && hasType(cur, func(t uint16) bool { return t != dns.TypeCNAME && t != dns.TypeRRSIG && t != dns.TypeNSEC }):
				continue // a CNAME cannot join other data (3.4.2.2)
			case h.Rrtype != dns.TypeCNAME && hasType(cur, func(t uint16) bool { return t == dns.TypeCNAME }):
				continue // nor other data a CNAME
			case h.Rrtype == dns.TypeCNAME:
				cur = dropType(cur, dns.TypeCNAME) // a CNAME replaces a CNAME
			case holds(cur, u):
				continue
			}
			add := dns.Copy(u)
			add.Header().Name = dns.Fqdn(add.Header().Name)
			byName[name] = append(cur, add)
		case dns.ClassANY:
			switch {
			case h.Rrtype == dns.TypeANY && apex:
				byName[name] = keepTypes(cur, dns.TypeSOA, dns.TypeNS)
			case h.Rrtype == dns.TypeANY:
				byName[name] = nil
			case apex && (h.Rrtype == dns.TypeSOA || h.Rrtype == dns.TypeNS):
			default:
				byName[name] = dropType(cur, h.Rrtype)
			}
		case dns.ClassNONE:
			if h.Rrtype == dns.TypeSOA {
				continue
			}
			var kept []dns.RR
			for _, rr := range cur {
				del := rr.Header().Rrtype == h.Rrtype && dns.IsDuplicate(rr, withClass(u, rr.Header().Class))
				if del && apex && h.Rrtype == dns.TypeNS && countType(cur, dns.TypeNS) == 1 {
					del = false // the last apex NS stays (3.4.2.4)
				}
				if !del {
					kept = append(kept, rr)
				}
			}
			byName[name] = kept
		}
	}
	var rrs []dns.RR
	for _, name := range order {
		for _, rr := range byName[name] {
			if rr.Header().Rrtype != dns.TypeSOA {
				rrs = append(rrs, rr)
			}
		}
	}
	oldKeys := map[string]dns.RR{}
	for _, rr := range z.Records() {
		if rr.Header().Rrtype != dns.TypeSOA {
			oldKeys[rrKey(rr)] = rr
		}
	}
	var d Delta
	newKeys := map[string]bool{}
	for _, rr := range rrs {
		k := rrKey(rr)
		newKeys[k] = true
		if _, ok := oldKeys[k]; !ok {
			d.Add = append(d.Add, rr)
		}
	}
	for _, rr := range z.Records() {
		if rr.Header().Rrtype != dns.TypeSOA && !newKeys[rrKey(rr)] {
			d.Del = append(d.Del, rr)
		}
	}
	soaChanged := soa.Serial != oldSOA.Serial
	if len(d.Add) == 0 && len(d.Del) == 0 && !soaChanged {
		return z, Delta{}, false, nil
	}
	if !soaChanged {
		soa.Serial++
		if soa.Serial == 0 {
			soa.Serial = 1
		}
	}
	d.OldSOA, d.NewSOA = oldSOA, soa
	next, err := NewZone(z.Origin, append([]dns.RR{soa}, rrs...))
	if err != nil {
		return nil, Delta{}, false, err
	}
	return next, d, true, nil
}

func hasType(rrs []dns.RR, f func(uint16) bool) bool {
	for _, rr := range rrs {
		if f(rr.Header().Rrtype) {
			return true
		}
	}
	return false
}

func countType(rrs []dns.RR, t uint16) int {
	n := 0
	for _, rr := range rrs {
		if rr.Header().Rrtype == t {
			n++
		}
	}
	return n
}

func dropType(rrs []dns.RR, t uint16) []dns.RR {
	var out []dns.RR
	for _, rr := range rrs {
		if rr.Header().Rrtype != t {
			out = append(out, rr)
		}
	}
	return out
}

func keepTypes(rrs []dns.RR, types ...uint16) []dns.RR {
	var out []dns.RR
	for _, rr := range rrs {
		for _, t := range types {
			if rr.Header().Rrtype == t {
				out = append(out, rr)
			}
		}
	}
	return out
}

// withClass copies rr with another class: a class NONE deletion compared
// with the zone's class IN record.
func withClass(rr dns.RR, class uint16) dns.RR {
	c := dns.Copy(rr)
	c.Header().Class = class
	return c
}
