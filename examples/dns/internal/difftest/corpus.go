package difftest

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// Query is one query of the corpus.
type Query struct {
	// Name names the query, uniquely in the corpus, for subtests and
	// reports: the name, type and variant ("www.example.test. A
	// edns1232+do"), or what is odd about it ("opcode IQUERY").
	Name string
	// Kind is the group the query belongs to: "types" (a name of the
	// zones with each type), "nonexistent" (names under existing ones,
	// under wildcards, delegations and empty non-terminals), "outside"
	// (names in no zone served), "case" (query names in random case),
	// "size" (EDNS buffer sizes and the DO bit, for truncation) or
	// "malformed" (odd but parseable queries).
	Kind string
	// Msg is the query. Its ID is set; RD is clear (as a resolver sends
	// to an authoritative server) unless the query is about RD.
	Msg *dns.Msg
}

// corpusTypes are the types each name of the zones is queried with: the
// common ones, the DNSSEC ones, ANY, a type present nowhere (LOC) and an
// unknown one (TYPE65280, private use).
var corpusTypes = []uint16{
	dns.TypeA, dns.TypeAAAA, dns.TypeMX, dns.TypeTXT, dns.TypeNS, dns.TypeSOA,
	dns.TypeCNAME, dns.TypeSRV, dns.TypeCAA, dns.TypeHINFO, dns.TypePTR,
	dns.TypeDS, dns.TypeDNSKEY, dns.TypeRRSIG, dns.TypeNSEC, dns.TypeNSEC3,
	dns.TypeNSEC3PARAM, dns.TypeANY, dns.TypeLOC, 65280,
}

// nonexistentTypes are the types names that do not exist are queried with.
var nonexistentTypes = []uint16{dns.TypeA, dns.TypeTXT, dns.TypeDS, dns.TypeANY}

// ednsVariant is how a query uses EDNS: its UDP payload size (0: no
// EDNS) and the DO bit.
type ednsVariant struct {
	size uint16
	do   bool
}

// String returns the variant as query names show it: "noedns",
// "edns1232", "edns1232+do".
func (v ednsVariant) String() string {
	if v.size == 0 {
		return "noedns"
	}
	s := fmt.Sprintf("edns%d", v.size)
	if v.do {
		s += "+do"
	}
	return s
}

// sizeVariants are the EDNS variants of the "size" queries.
var sizeVariants = []ednsVariant{{0, false}, {512, false}, {512, true}, {1232, false}, {1232, true}, {4096, false}, {4096, true}}

// Corpus returns the queries of the differential tests for the zones of
// zonesDir (see [ZoneFiles]), built from the zones' contents: each owner
// name and empty non-terminal with each of a set of types, names that
// do not exist below each of them, wildcard matches, names below the
// delegations, names in no zone, random-case names, EDNS sizes and the
// DO bit on the names with large answers, and odd queries. In signed
// zones (a DNSKEY at the apex) every query is sent with the DO bit clear
// and set. The corpus is the same on every call: the random choices are
// seeded.
func Corpus(zonesDir string) ([]Query, error) {
	files, err := ZoneFiles(zonesDir)
	if err != nil {
		return nil, err
	}
	c := &corpus{rng: rand.New(rand.NewPCG(2026, 1035)), seen: map[string]bool{}}
	var zones []*zoneInfo
	for _, f := range files {
		z, err := readZone(f)
		if err != nil {
			return nil, err
		}
		zones = append(zones, z)
	}
	for _, z := range zones {
		c.zone(z)
	}
	c.outside(zones)
	c.malformed(zones[0])
	for _, z := range zones {
		if z.signed {
			c.dnssecFlags(z)
			break
		}
	}
	return c.queries, nil
}

// corpus is a corpus being built.
type corpus struct {
	rng     *rand.Rand
	queries []Query
	seen    map[string]bool // query names
}

// add adds the query m named name of kind, unless the corpus has a query
// of that name already.
func (c *corpus) add(kind, name string, m *dns.Msg) {
	if c.seen[name] {
		return
	}
	c.seen[name] = true
	m.Id = uint16(c.rng.Uint32())
	c.queries = append(c.queries, Query{Name: name, Kind: kind, Msg: m})
}

// query adds a query of kind for qname and qtype, with EDNS as v says.
func (c *corpus) query(kind, qname string, qtype uint16, v ednsVariant) {
	m := newQuery(qname, qtype, v)
	c.add(kind, fmt.Sprintf("%s %s %s", qname, dns.Type(qtype), v), m)
}

// newQuery returns a query for qname, qtype and class IN, RD clear, with
// EDNS as v says.
func newQuery(qname string, qtype uint16, v ednsVariant) *dns.Msg {
	m := new(dns.Msg)
	m.Question = []dns.Question{{Name: qname, Qtype: qtype, Qclass: dns.ClassINET}}
	if v.size != 0 {
		m.SetEdns0(v.size, v.do)
	}
	return m
}

// variants returns the EDNS variants the queries of zone z are sent
// with: EDNS at 1232 (the size DNS Flag Day 2020 recommends), with the
// DO bit set too in a signed zone.
func (z *zoneInfo) variants() []ednsVariant {
	if z.signed {
		return []ednsVariant{{1232, false}, {1232, true}}
	}
	return []ednsVariant{{1232, false}}
}

// zone adds the queries of one zone.
func (c *corpus) zone(z *zoneInfo) {
	names := z.names()
	for _, n := range names {
		types := corpusTypes
		if z.owners[n].nsec3Only {
			types = []uint16{dns.TypeNSEC3, dns.TypeA, dns.TypeRRSIG}
		}
		for _, t := range types {
			for _, v := range z.variants() {
				c.query("types", z.owners[n].name, t, v)
			}
		}
	}

	// Names that do not exist: below every name, and between and after
	// the zone's names; names wildcards match and names below
	// delegations, two labels down.
	var missing []string
	for _, n := range names {
		if !z.owners[n].nsec3Only {
			missing = append(missing, "nx."+n)
		}
	}
	missing = append(missing, "zzz."+z.origin, "mm."+z.origin)
	for _, n := range names {
		if strings.HasPrefix(n, "*.") || z.isCut(n) {
			missing = append(missing, "a.b."+strings.TrimPrefix(n, "*."))
		}
	}
	for _, n := range missing {
		for _, t := range nonexistentTypes {
			for _, v := range z.variants() {
				c.query("nonexistent", n, t, v)
			}
		}
	}

	// Random case: each name with A and with its first type, and the
	// wildcard matches.
	caseNames := slices.Clone(names)
	for _, n := range names {
		if strings.HasPrefix(n, "*.") {
			caseNames = append(caseNames, "nx."+n[2:], "a.b."+n[2:])
		}
	}
	caseNames = append(caseNames, "nx."+z.origin)
	v := z.variants()[len(z.variants())-1]
	for _, n := range caseNames {
		types := []uint16{dns.TypeA}
		if o := z.owners[n]; o != nil && len(o.types) > 0 && o.types[0] != dns.TypeA {
			types = append(types, o.types[0])
		}
		for _, t := range types {
			c.query("case", c.randomCase(n), t, v)
		}
	}

	// Sizes: the apex's large RRsets, the names with many or long
	// records, a referral, a name that does not exist and a wildcard
	// match, with and without EDNS, at 512, 1232 and 4096 octets, with
	// DO clear and set.
	type nt struct {
		name  string
		qtype uint16
	}
	sized := []nt{{z.origin, dns.TypeANY}, {z.origin, dns.TypeDNSKEY}, {z.origin, dns.TypeNS},
		{z.origin, dns.TypeSOA}, {z.origin, dns.TypeMX}, {z.origin, dns.TypeTXT}, {"nx." + z.origin, dns.TypeA}}
	for _, n := range names {
		o := z.owners[n]
		switch {
		case o.bytes > 300 || o.count > 8:
			for _, t := range append(slices.Clone(o.types), dns.TypeANY) {
				sized = append(sized, nt{o.name, t})
			}
		case strings.HasPrefix(n, "*."):
			sized = append(sized, nt{"nx." + n[2:], dns.TypeTXT})
		case z.isCut(n):
			sized = append(sized, nt{"host." + n, dns.TypeA})
		}
	}
	for _, s := range sized {
		for _, v := range sizeVariants {
			c.query("size", s.name, s.qtype, v)
		}
	}
}

// outside adds queries for names in none of zones: the root, their
// parents, names that end like them but are not below them.
func (c *corpus) outside(zones []*zoneInfo) {
	names := []string{".", "example.com.", "nx.invalid."}
	for _, z := range zones {
		names = append(names, "x"+z.origin)
		if parent, ok := parentName(z.origin); ok && !slices.Contains(names, parent) {
			names = append(names, parent)
		}
	}
	for _, n := range names {
		for _, t := range []uint16{dns.TypeA, dns.TypeSOA, dns.TypeNS} {
			c.query("outside", n, t, ednsVariant{1232, false})
		}
	}
}

// malformed adds odd but parseable queries, for the apex of z.
func (c *corpus) malformed(z *zoneInfo) {
	apex := z.origin
	edns := ednsVariant{1232, false}
	base := func() *dns.Msg { return newQuery(apex, dns.TypeA, edns) }

	for _, op := range []int{dns.OpcodeIQuery, dns.OpcodeStatus, 3, dns.OpcodeNotify, dns.OpcodeUpdate, 6, 15} {
		m := base()
		m.Opcode = op
		if op == dns.OpcodeNotify {
			m.Authoritative = true
			m.Question[0].Qtype = dns.TypeSOA
		}
		c.add("malformed", "opcode "+opcodeString(op), m)
	}

	m := base()
	m.Question = nil
	c.add("malformed", "no question (QDCOUNT 0)", m)
	m = newQuery(apex, dns.TypeA, ednsVariant{})
	m.Question = nil
	c.add("malformed", "no question (QDCOUNT 0) noedns", m)
	m = base()
	m.Question = append(m.Question, dns.Question{Name: "www." + apex, Qtype: dns.TypeA, Qclass: dns.ClassINET})
	c.add("malformed", "two questions (QDCOUNT 2)", m)

	for _, q := range []struct {
		name   string
		qtype  uint16
		qclass uint16
	}{
		{apex, dns.TypeA, dns.ClassCHAOS},
		{"version.bind.", dns.TypeTXT, dns.ClassCHAOS},
		{"id.server.", dns.TypeTXT, dns.ClassCHAOS},
		{"hostname.bind.", dns.TypeTXT, dns.ClassCHAOS},
		{apex, dns.TypeA, dns.ClassHESIOD},
		{apex, dns.TypeA, 42},
		{apex, dns.TypeA, dns.ClassNONE},
		{apex, dns.TypeA, dns.ClassANY},
		{apex, dns.TypeSOA, dns.ClassANY},
	} {
		m := base()
		m.Question[0] = dns.Question{Name: q.name, Qtype: q.qtype, Qclass: q.qclass}
		c.add("malformed", fmt.Sprintf("class %s %s %s", dns.Class(q.qclass), q.name, dns.Type(q.qtype)), m)
	}

	for _, t := range []uint16{dns.TypeOPT, 0, dns.TypeAXFR, dns.TypeIXFR, dns.TypeMAILA, dns.TypeMAILB, dns.TypeTSIG, dns.TypeTKEY, dns.TypeNULL, dns.TypeMD} {
		m := base()
		m.Question[0].Qtype = t
		c.add("malformed", "qtype "+dns.Type(t).String(), m)
	}

	// EDNS: version 1 (BADVERS, RFC 6891 §6.1.3), unknown options and
	// flags, a payload size below 512, two OPT records (FORMERR, RFC
	// 6891 §6.1.1), cookies, NSID, padding.
	m = base()
	m.IsEdns0().SetVersion(1)
	c.add("malformed", "edns version 1", m)
	m = newQuery(apex, dns.TypeA, ednsVariant{1232, true})
	m.IsEdns0().SetVersion(1)
	c.add("malformed", "edns version 1 +do", m)
	m = newQuery("nx."+apex, dns.TypeA, edns)
	m.IsEdns0().SetVersion(1)
	c.add("malformed", "edns version 1 nxdomain", m)
	for _, o := range []struct {
		name string
		opt  dns.EDNS0
	}{
		{"unknown option 65001", &dns.EDNS0_LOCAL{Code: 65001, Data: []byte("atoll")}},
		{"empty unknown option 65002", &dns.EDNS0_LOCAL{Code: 65002}},
		{"nsid request", &dns.EDNS0_NSID{Code: dns.EDNS0NSID}},
		{"client cookie", &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"}},
		{"padding option", &dns.EDNS0_PADDING{Padding: make([]byte, 16)}},
		{"expire option", &dns.EDNS0_EXPIRE{Code: dns.EDNS0EXPIRE, Empty: true}},
		{"keepalive option", &dns.EDNS0_TCP_KEEPALIVE{Code: dns.EDNS0TCPKEEPALIVE}},
	} {
		m := base()
		m.IsEdns0().Option = append(m.IsEdns0().Option, o.opt)
		c.add("malformed", "edns "+o.name, m)
	}
	m = base()
	m.IsEdns0().Option = append(m.IsEdns0().Option,
		&dns.EDNS0_LOCAL{Code: 65001, Data: []byte{1}}, &dns.EDNS0_LOCAL{Code: 65003, Data: []byte{2, 3}})
	c.add("malformed", "edns two unknown options", m)
	m = base()
	m.IsEdns0().SetZ(0x4000)
	c.add("malformed", "edns unknown flag", m)
	m = newQuery(apex, dns.TypeANY, ednsVariant{100, false})
	c.add("malformed", "edns size 100 ANY", m)
	m = newQuery(apex, dns.TypeANY, ednsVariant{0xffff, true})
	c.add("malformed", "edns size 65535 ANY +do", m)
	m = base()
	m.Extra = append(m.Extra, newQuery(apex, dns.TypeA, edns).Extra[0])
	c.add("malformed", "edns two OPT records", m)
	m = base()
	opt := m.Extra[0]
	m.Extra[0] = &dns.A{Hdr: dns.RR_Header{Name: apex, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: []byte{192, 0, 2, 99}}
	m.Extra = append(m.Extra, opt)
	c.add("malformed", "an A record in additional", m)
	m = base()
	m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: apex, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: []byte{192, 0, 2, 99}}}
	c.add("malformed", "a record in answer", m)
	m = base()
	m.Ns = []dns.RR{&dns.NS{Hdr: dns.RR_Header{Name: apex, Rrtype: dns.TypeNS, Class: dns.ClassINET, Ttl: 60}, Ns: "ns.example.net."}}
	c.add("malformed", "a record in authority", m)
	opt2 := newQuery(apex, dns.TypeA, edns).Extra[0]
	m = base()
	m.Extra = nil
	m.Ns = []dns.RR{opt2}
	c.add("malformed", "OPT in authority", m)

	// Header bits a query should not have, or that the response copies.
	flags := []struct {
		name string
		set  func(*dns.MsgHdr)
	}{
		{"RD", func(h *dns.MsgHdr) { h.RecursionDesired = true }},
		{"CD", func(h *dns.MsgHdr) { h.CheckingDisabled = true }},
		{"AD", func(h *dns.MsgHdr) { h.AuthenticatedData = true }},
		{"RA", func(h *dns.MsgHdr) { h.RecursionAvailable = true }},
		{"AA", func(h *dns.MsgHdr) { h.Authoritative = true }},
		{"TC", func(h *dns.MsgHdr) { h.Truncated = true }},
		{"Z", func(h *dns.MsgHdr) { h.Zero = true }},
		{"QR", func(h *dns.MsgHdr) { h.Response = true }},
		{"RCODE NXDOMAIN", func(h *dns.MsgHdr) { h.Rcode = dns.RcodeNameError }},
		{"RD CD AD", func(h *dns.MsgHdr) { h.RecursionDesired, h.CheckingDisabled, h.AuthenticatedData = true, true, true }},
	}
	for _, f := range flags {
		m := base()
		f.set(&m.MsgHdr)
		c.add("malformed", "flag "+f.name, m)
	}
	for _, f := range flags[:3] {
		m := newQuery("nx."+apex, dns.TypeA, ednsVariant{})
		f.set(&m.MsgHdr)
		c.add("malformed", "flag "+f.name+" noedns nxdomain", m)
	}
}

// dnssecFlags adds queries with the DNSSEC header bits (CD, AD) for the
// signed zone z, DO set and clear.
func (c *corpus) dnssecFlags(z *zoneInfo) {
	for _, name := range []string{z.origin, "nx." + z.origin} {
		for _, do := range []bool{false, true} {
			v := ednsVariant{1232, do}
			for _, f := range []string{"CD", "AD", "CD AD"} {
				m := newQuery(name, dns.TypeA, v)
				m.CheckingDisabled = strings.Contains(f, "CD")
				m.AuthenticatedData = strings.Contains(f, "AD")
				c.add("malformed", fmt.Sprintf("flag %s %s A %s", f, name, v), m)
			}
		}
	}
}

// randomCase returns name with each letter's case flipped at random, at
// least one flipped if it has letters.
func (c *corpus) randomCase(name string) string {
	if strings.ToLower(name) == strings.ToUpper(name) {
		return name
	}
	for {
		b := []byte(name)
		for i, ch := range b {
			if ('a' <= ch && ch <= 'z' || 'A' <= ch && ch <= 'Z') && c.rng.IntN(2) == 0 {
				b[i] ^= 0x20
			}
		}
		if s := string(b); s != name {
			return s
		}
	}
}

// parentName returns the name one label up from name, if name is not the
// root.
func parentName(name string) (string, bool) {
	if name == "." {
		return "", false
	}
	_, rest, _ := strings.Cut(name, ".")
	if rest == "" {
		return ".", true
	}
	return rest, true
}

// zoneInfo is what the corpus needs of a zone.
type zoneInfo struct {
	origin string            // lower case
	owners map[string]*owner // by lower-case name
	signed bool              // a DNSKEY at the apex
}

// owner is a name of a zone: one with records, or an empty non-terminal.
type owner struct {
	name      string   // its first spelling in the file
	types     []uint16 // in the order of the file, none for an empty non-terminal
	count     int      // records
	bytes     int      // octets of the records, uncompressed
	nsec3Only bool     // only NSEC3 and RRSIG records: an NSEC3 record's hashed owner
}

// readZone parses the zone file f, adding the empty non-terminals.
func readZone(f ZoneFile) (*zoneInfo, error) {
	r, err := os.Open(f.Path)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	z := &zoneInfo{origin: f.Origin, owners: map[string]*owner{}}
	zp := dns.NewZoneParser(r, f.Origin, f.Path)
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		h := rr.Header()
		key := strings.ToLower(h.Name)
		if !dns.IsSubDomain(z.origin, key) {
			return nil, fmt.Errorf("%s: %s is not in zone %s", f.Path, h.Name, z.origin)
		}
		o := z.owners[key]
		if o == nil {
			o = &owner{name: h.Name, nsec3Only: true}
			z.owners[key] = o
		}
		if !slices.Contains(o.types, h.Rrtype) {
			o.types = append(o.types, h.Rrtype)
		}
		o.count++
		o.bytes += dns.Len(rr)
		if h.Rrtype != dns.TypeNSEC3 && h.Rrtype != dns.TypeRRSIG {
			o.nsec3Only = false
		}
		if key == z.origin && h.Rrtype == dns.TypeDNSKEY {
			z.signed = true
		}
	}
	if err := zp.Err(); err != nil {
		return nil, err
	}
	if z.owners[z.origin] == nil {
		return nil, fmt.Errorf("%s: no records at the apex %s", f.Path, z.origin)
	}
	for key, o := range z.owners {
		if o.nsec3Only {
			continue
		}
		for n, ok := parentName(key); ok && n != z.origin && dns.IsSubDomain(z.origin, n); n, ok = parentName(n) {
			if z.owners[n] == nil && !z.belowCut(n) {
				z.owners[n] = &owner{name: n}
			}
		}
	}
	return z, nil
}

// names returns the zone's names, lower case, in DNSSEC canonical order
// (RFC 4034 §6.1).
func (z *zoneInfo) names() []string {
	var names []string
	for n := range z.owners {
		names = append(names, n)
	}
	slices.SortFunc(names, func(a, b string) int { return strings.Compare(canonicalKey(a), canonicalKey(b)) })
	return names
}

// canonicalKey returns a string that sorts as name does in DNSSEC
// canonical order, for lower-case names without escapes: its labels from
// the root down.
func canonicalKey(name string) string {
	labels := dns.SplitDomainName(name)
	slices.Reverse(labels)
	return strings.Join(labels, "\x00")
}

// isCut reports whether the lower-case name is a delegation of z: not the
// apex, with NS records.
func (z *zoneInfo) isCut(name string) bool {
	o := z.owners[name]
	return name != z.origin && o != nil && slices.Contains(o.types, dns.TypeNS)
}

// belowCut reports whether the lower-case name is below a delegation of
// z.
func (z *zoneInfo) belowCut(name string) bool {
	for n, ok := parentName(name); ok && n != z.origin && dns.IsSubDomain(z.origin, n); n, ok = parentName(n) {
		if z.isCut(n) {
			return true
		}
	}
	return false
}
